"""The loading stage of the engine: the image rows that a band of map rows reads, copied into a
chunk's zero-padded, channels-first float32 rows, and, for each dilation that reads the image
smoothed (``plan.smoothing``), into its own padded rows, smoothed.

:class:`Loader` owns the padded rows and :class:`Smoothing` the smoothed ones: each declares its
buffers for the plan's table and makes their views. The variants are chosen once, when a chunk
is built: :class:`BandLoader` for the bands of a large image, whose rows outside the image
change from band to band; :class:`Smoothing` or, for a plan that smooths nothing,
:class:`NoSmoothing`.
"""

import numpy as np

from ._patches import smooth

F32 = np.float32


def copy_rows(images, low, high, target):
    """Image rows ``low:high`` into ``target``, channels first, as float32 (the images are
    checked to fit). ``images`` is an array or a list."""
    if isinstance(images, list):
        for image, inside in zip(images, target, strict=True):
            np.copyto(inside, image[low:high].transpose(2, 0, 1), casting="unsafe")
    else:
        np.copyto(target, images[:, low:high].transpose(0, 3, 1, 2), casting="unsafe")


class Loader:
    """Loads a whole map's image rows into a chunk of ``size`` images' padded rows, on the
    buffers of ``space``, and smooths them for the dilations that read them so."""

    PADDED = "padded"

    @classmethod
    def buffers(cls, plan, n):
        """The padded rows that a chunk of ``n`` images' longest band reads: name -> (shape,
        dtype). A dilated block's gathers read one smoothed copy in their place."""
        shape = (n, plan.image_shape[2], plan.padded_rows, plan.padded_shape[1])
        return {cls.PADDED: (shape, F32)}

    def __init__(self, plan, space, size):
        self.plan = plan
        shape, _ = self.buffers(plan, size)[self.PADDED]
        self.padded = space.view(self.PADDED, shape)
        self.smoothing = (Smoothing if plan.smoothing else NoSmoothing)(plan, space, size)
        self.by_dilation = self.smoothing.by_dilation
        for buffer in (self.padded, *self.smoothing.smoothed):
            buffer[...] = 0

    def clear_outside(self, first, low, high):
        """Zeros in the padded rows outside the image rows ``low:high``: there since the
        buffers were made, for the one band of a whole map."""

    def load(self, images, band, before):
        """Copy the image rows that ``band`` reads into the padded buffer, zeros elsewhere;
        and, smoothed, into each dilation's. ``before`` is what the previous band of these
        images loaded, ``(first, low, high)``, or None. Returns this band's."""
        plan, padded = self.plan, self.padded
        height, width = plan.image_shape[:2]
        (top, _), (left, _) = plan.padding
        first = band[0] * plan.stride - top  # the image row at the buffer's first row
        low, high = max(first, 0), min(first + padded.shape[2], height)
        fresh = self.smoothing.keep_shared(first, low, high, before)
        self.clear_outside(first, low, high)
        copy_rows(images, low, high, padded[:, :, low - first : high - first, left : left + width])
        self.smoothing.smooth_rows(images, first, fresh, high)
        return first, low, high


class BandLoader(Loader):
    """Loads the bands of a large image: a band's padded rows outside the image, which
    the band before may have filled, are zeroed as it is loaded."""

    def clear_outside(self, first, low, high):
        for buffer in (self.padded, *self.smoothing.smoothed):
            buffer[:, :, : low - first] = 0
            buffer[:, :, high - first :] = 0


class NoSmoothing:
    """The smoothing of a plan whose filters all read the image itself: nothing to do (the
    methods of :class:`Smoothing`)."""

    by_dilation = {}
    smoothed = ()

    def __init__(self, plan, space, size):
        pass

    def keep_shared(self, first, low, high, before):
        """Returns the first image row to smooth."""
        return low

    def smooth_rows(self, images, first, fresh, high):
        """Smooth the image rows ``fresh:high`` into each dilation's padded rows."""


class Smoothing:
    """The padded rows of each dilation that reads the image smoothed (zeros outside), and
    the rows around a band's that their smoothing reads."""

    HALO, HALO_ROWS, SMOOTHED = "halo", "halo_rows", "smoothed_{}"

    @classmethod
    def buffers(cls, plan, n):
        """The buffers that only the smoothing of a band's rows works in: the image rows a
        band reads and those its smoothing reads, once, then per dilation smoothed down the
        rows, then across into its own padded rows."""
        if not plan.smoothing:
            return {}
        channels = plan.image_shape[2]
        halo = (n, channels, plan.padded_rows + 2 * plan.smooth_radius, plan.image_shape[1])
        buffers = {cls.HALO: (halo, F32), cls.HALO_ROWS: (halo, F32)}
        for dilation, _ in plan.smoothing:
            buffers[cls.SMOOTHED.format(dilation)] = Loader.buffers(plan, n)[Loader.PADDED]
        return buffers

    def __init__(self, plan, space, size):
        self.plan, self.space, self.size = plan, space, size
        shape, _ = Loader.buffers(plan, size)[Loader.PADDED]
        self.by_dilation = {
            d: space.view(self.SMOOTHED.format(d), shape) for d, _ in plan.smoothing
        }
        self.smoothed = list(self.by_dilation.values())
        self.sigmas = [sigma for _, sigma in plan.smoothing]

    def keep_shared(self, first, low, high, before):
        """Move the smoothed rows that the band before, which loaded ``before``, shares with
        this one, not to smooth them again; returns the first image row to smooth."""
        if before is None or not before[1] <= low < before[2]:
            return low
        # Bands go down the image: the rows they share are the previous band's last.
        shift, fresh = first - before[0], min(before[2], high)
        for buffer in self.smoothed:
            for row in range(low - first, fresh - first):  # row by row: no overlap
                buffer[:, :, row] = buffer[:, :, row + shift]
        return fresh

    def smooth_rows(self, images, first, fresh, high):
        """Smooth the image rows ``fresh:high`` into each dilation's padded rows, from the
        rows around them that the smoothing reads: the result is that of smoothing the whole
        image."""
        if fresh >= high:
            return
        plan = self.plan
        height, width = plan.image_shape[:2]
        left = plan.padding[1][0]
        radius = plan.smooth_radius
        start, stop = max(fresh - radius, 0), min(high + radius, height)
        halo = self.space.view(self.HALO, (self.size, plan.image_shape[2], stop - start, width))
        copy_rows(images, start, stop, halo)
        scratch = self.space.view(self.HALO_ROWS, halo.shape)
        for buffer, sigma in zip(self.smoothed, self.sigmas, strict=True):
            target = buffer[:, :, fresh - first : high - first, left : left + width]
            rows = slice(fresh - start, high - start)
            smooth(halo, sigma, (2, 3), rows=rows, output=target, scratch=scratch)
