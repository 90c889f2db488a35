"""The loading stage of the engine: the image rows that a band of map rows reads, copied into a
chunk's zero-padded, channels-first float32 rows, and, for each dilation that reads the image
smoothed (``plan.smoothing``), into its own padded rows, smoothed.

:class:`Loader` owns these buffers: it declares them for the plan's table (:meth:`~Loader.buffers`,
:meth:`~Loader.smoothing_buffers`) and makes their views; :class:`BandLoader` loads the bands of
a large image, whose rows outside the image change from band to band.
"""

import numpy as np

from ._patches import smooth

F32 = np.float32


class Loader:
    """Loads a whole map's image rows into a chunk of ``size`` images' padded rows, on the
    buffers of ``space``."""

    PADDED, HALO, HALO_ROWS, SMOOTHED = "padded", "halo", "halo_rows", "smoothed_{}"

    @classmethod
    def buffers(cls, plan, n):
        """The padded rows that a chunk of ``n`` images' longest band reads: name -> (shape,
        dtype). A dilated block's gathers read one smoothed copy in their place."""
        shape = (n, plan.image_shape[2], plan.padded_rows, plan.padded_shape[1])
        return {cls.PADDED: (shape, F32)}

    @classmethod
    def smoothing_buffers(cls, plan, n):
        """The buffers that only the smoothing of a band's rows works in: the image rows a
        band reads and those its smoothing reads, once, then per dilation smoothed down the
        rows, then across into its own padded rows."""
        if not plan.smoothing:
            return {}
        channels = plan.image_shape[2]
        halo = (n, channels, plan.padded_rows + 2 * plan.smooth_radius, plan.image_shape[1])
        buffers = {cls.HALO: (halo, F32), cls.HALO_ROWS: (halo, F32)}
        for dilation, _ in plan.smoothing:
            buffers[cls.SMOOTHED.format(dilation)] = cls.buffers(plan, n)[cls.PADDED]
        return buffers

    def __init__(self, plan, space, size):
        self.plan, self.space, self.size = plan, space, size
        shape, _ = self.buffers(plan, size)[self.PADDED]
        self.padded = space.view(self.PADDED, shape)
        # Each dilation that reads the image smoothed has its own padded rows (zeros outside).
        self.by_dilation = {
            d: space.view(self.SMOOTHED.format(d), shape) for d, _ in plan.smoothing
        }
        self.smoothed = [(self.by_dilation[d], sigma) for d, sigma in plan.smoothing]
        for buffer in (self.padded, *self.by_dilation.values()):
            buffer[...] = 0

    def copy_rows(self, images, low, high, target):
        """Image rows ``low:high`` into ``target``, channels first, as float32 (the images are
        checked to fit). ``images`` is an array or a list."""
        if isinstance(images, list):
            for image, inside in zip(images, target, strict=True):
                np.copyto(inside, image[low:high].transpose(2, 0, 1), casting="unsafe")
        else:
            np.copyto(target, images[:, low:high].transpose(0, 3, 1, 2), casting="unsafe")

    def clear_outside(self, first, low, high):
        """Zeros in the padded rows outside the image rows ``low:high``: there since the
        buffers were made, for the one band of a whole map."""

    def load(self, images, band, before):
        """Copy the image rows that ``band`` reads into the padded buffer, zeros elsewhere;
        and, smoothed, into each dilation's (from the rows around them that the smoothing
        reads: the result is that of smoothing the whole image). ``before`` is what the
        previous band of these images loaded, ``(first, low, high)``, or None: its smoothed
        rows that this band reads too are moved, not smoothed again. Returns this band's."""
        plan, padded, smoothed = self.plan, self.padded, self.smoothed
        height, width = plan.image_shape[:2]
        (top, _), (left, _) = plan.padding
        first = band[0] * plan.stride - top  # the image row at the buffer's first row
        low, high = max(first, 0), min(first + padded.shape[2], height)
        fresh = low  # the first image row to smooth
        if smoothed and before is not None and before[1] <= low < before[2]:
            # Bands go down the image: the rows they share are the previous band's last.
            shift, fresh = first - before[0], min(before[2], high)
            for buffer, _ in smoothed:
                for row in range(low - first, fresh - first):  # row by row: no overlap
                    buffer[:, :, row] = buffer[:, :, row + shift]
        self.clear_outside(first, low, high)
        inside = padded[:, :, low - first : high - first, left : left + width]
        self.copy_rows(images, low, high, inside)
        if smoothed and fresh < high:
            radius = plan.smooth_radius
            start, stop = max(fresh - radius, 0), min(high + radius, height)
            halo = self.space.view(self.HALO, (self.size, plan.image_shape[2], stop - start, width))
            self.copy_rows(images, start, stop, halo)
            scratch = self.space.view(self.HALO_ROWS, halo.shape)
            for buffer, sigma in smoothed:
                target = buffer[:, :, fresh - first : high - first, left : left + width]
                rows = slice(fresh - start, high - start)
                smooth(halo, sigma, (2, 3), rows=rows, output=target, scratch=scratch)
        return first, low, high


class BandLoader(Loader):
    """Loads the bands of a large image: a band's padded rows outside the image, which
    the band before may have filled, are zeroed as it is loaded."""

    def clear_outside(self, first, low, high):
        for buffer in (self.padded, *(buffer for buffer, _ in self.smoothed)):
            buffer[:, :, : low - first] = 0
            buffer[:, :, high - first :] = 0
