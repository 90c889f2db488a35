"""The convolution methods of the engine: each computes the maps of a tile of images, one block
of filters at a time, into buffers it declares.

A method is a class chosen once, by the plan (``plan.convolution``): its ``buffers`` say what
a chunk of images needs (the plan sums them, the engine allocates them), its ``__init__``
makes the views of one tile over those buffers, once, and a tile then calls ``gather(k)``
(where ``plan.regathers`` says: blocks of one dilation share their patches) and
``multiply(k)`` for each block ``k`` of filters. Views are made once per tile: a tile then
costs a handful of calls.

- :class:`GemmConvolution` gathers the patches *transposed*, one row per filter tap
  ``(channel, dy, dx)`` (each row is made of whole image rows, so the gather copies long
  runs even for grey images), normalises them if asked, and multiplies them with the filters,
  one GEMM per image: BLAS rounds a row differently depending on the matrix's size, so a GEMM
  over the chunk would make a sample's features depend on its chunk. Dilated filters gather
  their taps ``dilation`` apart, from the image smoothed for their dilation with antialias,
  normalised by the moments of their whole footprint.
- :class:`PhasedGemmConvolution` orders the positions by column phase, for pooling equal
  windows by whole blocks (its :meth:`~PhasedGemmConvolution.pool_finest`).
- :class:`FftConvolution` multiplies spectra (``scipy.fft``); it wins when filters are large.
"""

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import as_strided

from ._patches import patch_moments
from ._pooling import region_steps

F32, C64, F64 = np.float32, np.complex64, np.float64


class Kernel:
    """What the filters become for a plan, once per call: the method's arrays per block of
    filters (:meth:`Convolution.filter_arrays`), the filters' sums, the bias, and the
    patch normalisation's ``eps`` of each block (None without ``plan.patch_norm``)."""

    def __init__(self, plan, filters, bias, patch_norm_eps):
        filters = np.asarray(filters, dtype=np.float32)
        blocks = [slice(start, stop) for start, stop in plan.blocks]
        # The variance added to a patch's, per block: one value, or one per dilation.
        groups = [dilation for dilation, _ in plan.dilations]
        eps = patch_norm_eps if plan.patch_norm else None
        if eps is not None and np.ndim(eps) == 0:
            eps = (eps,) * len(groups)
        self.eps = [
            None if eps is None else eps[groups.index(dilation)] for dilation, _, _ in plan.gathers
        ]
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)
        self.filter_sums = [filters[block].sum(axis=(1, 2, 3)) for block in blocks]
        self.arrays = plan.convolution.filter_arrays(plan, filters, blocks)


class Normaliser:
    """The moments of each patch, ``(n, 1, positions)`` buffers, that a normaliser divides
    by."""

    MEAN, SCALE = "norm_mean", "norm_scale"

    @classmethod
    def buffers(cls, n, taps, positions):
        """The buffers of a chunk of ``n`` images of ``positions`` patches of ``taps``."""
        return {cls.MEAN: ((n, 1, positions), F32), cls.SCALE: ((n, 1, positions), F32)}

    def __init__(self, space, n, positions):
        self.mean = space.view(self.MEAN, (n, 1, positions))
        self.scale = space.view(self.SCALE, (n, 1, positions))


class PatchNormaliser(Normaliser):
    """Normalises, in place, each patch of the fixed buffer ``patches_t`` ``(n, taps,
    positions)`` to zero mean and unit variance, ``eps`` added to the variance.

    The patches are centred before their variance is taken, so float32 loses nothing to
    cancellation; normalising the patches before the GEMM equals normalising the maps after
    it, on ``taps`` instead of ``n_filters`` values per position.
    """

    SQUARES = "norm_squares"

    @classmethod
    def buffers(cls, n, taps, positions):
        return {**super().buffers(n, taps, positions), cls.SQUARES: ((n, taps, positions), F32)}

    def __init__(self, patches_t, space, eps):
        n, self.taps, positions = patches_t.shape
        super().__init__(space, n, positions)
        self.patches_t = patches_t
        self.squares = space.view(self.SQUARES, patches_t.shape)
        self.eps = np.float32(eps)

    def normalise(self):
        patches_t, mean, scale, taps = self.patches_t, self.mean, self.scale, self.taps
        np.add.reduce(patches_t, axis=1, keepdims=True, out=mean)
        np.divide(mean, taps, out=mean)
        np.subtract(patches_t, mean, out=patches_t)
        np.square(patches_t, out=self.squares)
        np.add.reduce(self.squares, axis=1, keepdims=True, out=scale)
        np.divide(scale, taps, out=scale)
        np.add(scale, self.eps, out=scale)
        np.sqrt(scale, out=scale)
        np.divide(patches_t, scale, out=patches_t)


class FootprintNormaliser(Normaliser):
    """Normalises, in place, the taps of a dilated filter ``patches_t`` ``(n, taps,
    positions)`` by the mean and variance of its whole footprint ``span`` (``eps`` added to
    the variance): a local contrast normalisation at the scale the filter sees. ``images`` is
    the fixed padded view ``(n, rows, cols, C)`` whose ``span`` windows are the footprints;
    their moments come from window sums (:func:`patch_moments`)."""

    def __init__(self, patches_t, space, eps, images, span, stride, band_rows, out_cols):
        n, _, positions = patches_t.shape
        super().__init__(space, n, positions)
        self.patches_t, self.images, self.span, self.stride = patches_t, images, span, stride
        self.positions = (band_rows, out_cols)
        self.grids = (
            self.mean.reshape(n, band_rows, out_cols),
            self.scale.reshape(n, band_rows, out_cols),
        )
        self.eps = np.float32(eps)

    def normalise(self):
        moments = patch_moments(self.images, self.span, self.stride, "valid", self.positions)
        for moment, out in zip(moments, self.grids, strict=True):
            np.copyto(out, moment)
        np.add(self.scale, self.eps, out=self.scale)
        np.sqrt(self.scale, out=self.scale)
        np.subtract(self.patches_t, self.mean, out=self.patches_t)
        np.divide(self.patches_t, self.scale, out=self.patches_t)


class Convolution:
    """A convolution method (see the module's docstring); subclasses say how."""

    MAPS = "maps"

    # Whether its maps are pooled along the rows into a level's rows buffer
    # (:func:`~sklearn_convfeat._pooling.region_steps`), or another way (:meth:`pool_regions`).
    pools_through_rows = True

    @staticmethod
    def positions(plan, band_rows):
        """Map positions of a tile of ``band_rows`` map rows, per image."""
        return band_rows * plan.map_shape[1]

    @classmethod
    def buffers(cls, plan, n, band_rows):
        """The buffers of a chunk of ``n`` images in tiles of ``band_rows`` map rows: name
        -> (shape, dtype); names starting with ``'tmp_'`` are temporaries that NumPy and
        SciPy allocate inside a call, counted but not allocated by the engine. Here, the
        maps of a block; subclasses add theirs."""
        positions = cls.positions(plan, band_rows)
        return {cls.MAPS: ((n, positions, plan.block), F32)}

    def maps_view(self, space, n, positions, block):
        """The buffer of the maps of a block of ``block`` filters."""
        return space.view(self.MAPS, (n, positions, block))

    @staticmethod
    def filter_arrays(plan, filters, blocks):
        """What each block of ``filters`` is to this method."""
        raise NotImplementedError

    @staticmethod
    def kernel_bytes(plan):
        """Bytes of :meth:`filter_arrays` beyond the filters, made once per transform."""
        return 0

    @staticmethod
    def pool_regions(plan, space, values, level, rows, reduce, destinations, rows_buffer, ones):
        """The steps pooling a tile's ``values`` ``(n, positions, width)`` over the regions
        ``rows`` x ``level.cols`` (see :func:`~sklearn_convfeat._pooling.region_steps`): the
        positions are the map's, row-major."""
        return region_steps(
            values, 1, rows, level.cols, plan.map_shape[1], reduce, destinations,
            whole_rows=plan.pools_whole_rows(level), rows_buffer=rows_buffer, ones=ones,
        )  # fmt: skip

    def gather(self, k):
        """Ready the inputs of block ``k``'s product (the first block of each gather)."""

    def multiply(self, k):
        """Block ``k``'s maps into ``self.maps[k]``, ``(n, positions, block)``."""
        raise NotImplementedError


class GemmConvolution(Convolution):
    """The maps of the padded rows ``padded`` (a chunk of zero-padded channels-first image
    rows; ``smoothed`` holds the same rows smoothed, for each dilation that reads them so, by
    ``plan.smoothing``) as products of transposed patches with the filters."""

    # The sums of its maps over a region are the sums of its patches times the filters.
    sums_patches = True

    PATCHES = "patches"

    @classmethod
    def buffers(cls, plan, n, band_rows):
        positions = cls.positions(plan, band_rows)
        buffers = {
            **super().buffers(plan, n, band_rows),
            cls.PATCHES: ((n, plan.taps, positions), F32),
        }
        if plan.patch_norm:
            buffers.update(PatchNormaliser.buffers(n, plan.taps, positions))
        if plan.patch_norm and plan.footprint != plan.filter_size:
            # Dilated filters: their footprints' moments from window sums, in float64.
            height, width, channels = plan.padded_rows, plan.padded_shape[1], plan.image_shape[2]
            buffers.update(
                tmp_squares=((n, height, width, channels), F64),
                tmp_tables=((4, n, height + 1, width + 1), F64),
                tmp_moments=((4, n, band_rows, plan.map_shape[1]), F64),
            )
        return buffers

    @classmethod
    def patches(cls, space, plan, n, positions):
        """The buffer of the transposed patches, ``(n, taps, positions)``."""
        return space.view(cls.PATCHES, (n, plan.taps, positions))

    @staticmethod
    def filter_arrays(plan, filters, blocks):
        flat = filters.transpose(0, 3, 1, 2).reshape(len(filters), -1)
        weights = np.ascontiguousarray(flat).T
        return [weights[:, block] for block in blocks]

    def __init__(self, plan, kernel, space, padded, smoothed, band_rows):
        rows = plan.band_input_rows(band_rows)
        padded = padded[:, :, :rows]
        smoothed = {dilation: buffer[:, :, :rows] for dilation, buffer in smoothed.items()}
        n, channels = padded.shape[:2]
        height, width = plan.filter_size
        out_cols = plan.map_shape[1]
        stride = plan.stride
        s_n, s_c, s_y, s_x = padded.strides
        patches_t = self.patches(space, plan, n, band_rows * out_cols)
        self.target = patches_t.reshape(n, channels, height, width, band_rows, out_cols)
        self.gathers = {}
        for k, (dilation, (top, left), span) in enumerate(plan.gathers):
            if not plan.regathers[k]:
                continue  # the patches of the block before
            # Per image, rows are filter taps (c, dy, dx), columns positions (i, j). A dilated
            # filter's taps are ``dilation`` rows and columns apart, its footprint centred in
            # the footprint of the most dilated one.
            corner = smoothed.get(dilation, padded)[:, :, top:, left:]
            windows = as_strided(
                corner,
                shape=self.target.shape,
                strides=(s_n, s_c, s_y * dilation, s_x * dilation, s_y * stride, s_x * stride),
                writeable=False,
            )
            eps, normaliser = kernel.eps[k], None
            if eps is not None and dilation == 1:
                normaliser = PatchNormaliser(patches_t, space, eps)
            elif eps is not None:
                images = corner.transpose(0, 2, 3, 1)
                normaliser = FootprintNormaliser(
                    patches_t, space, eps, images, span, stride, band_rows, out_cols
                )
            self.gathers[k] = (windows, normaliser)
        self._products(patches_t, kernel, space)

    def _products(self, patches_t, kernel, space):
        n, _, positions = patches_t.shape
        self.patches_t = patches_t
        self.patches = patches_t.transpose(0, 2, 1)
        self.weights = kernel.arrays
        self.maps = [self.maps_view(space, n, positions, w.shape[1]) for w in kernel.arrays]

    def gather(self, k):
        windows, normaliser = self.gathers[k]
        np.copyto(self.target, windows)
        if normaliser is not None:
            normaliser.normalise()

    def multiply(self, k):
        np.matmul(self.patches, self.weights[k], out=self.maps[k])


class PhasedGemmConvolution(GemmConvolution):
    """Like :class:`GemmConvolution` (for a whole map of undilated filters), with positions
    ordered for pooling equal windows.

    For pooling windows of ``(wr, wc)`` positions, only the ``wr * (out_rows // wr)`` rows and
    ``wc * (out_cols // wc)`` columns that are pooled are computed, and the column ``j = wc * u
    + v`` of a map goes to phase ``v``: the maps are ``(n, wc, rows, out_cols // wc, block)``,
    so pooling reduces whole blocks (:meth:`pool_finest`) instead of runs of ``block`` values.
    The image columns of each phase are gathered first, into the ``phases`` buffer: the patches
    are then copied in runs of ``rows * (out_cols // wc)`` values. The same products are summed
    in the same order as in :class:`GemmConvolution`.
    """

    sums_patches = False  # its plans never pool by sums of parts
    pools_through_rows = False

    PHASES, PHASE_POOLED = "phases", "phase_pooled"

    @staticmethod
    def positions(plan, band_rows):
        _, win_cols, out_rows, units = plan.phased_shape
        return win_cols * out_rows * units

    def __init__(self, plan, kernel, space, padded, smoothed, band_rows):
        padded = padded[:, :, : plan.band_input_rows(band_rows)]
        n, channels = padded.shape[:2]
        rows, cols = plan.filter_size
        stride = plan.stride
        _, win_cols, out_rows, units = plan.phased_shape
        # phases[q, y, u] = padded[y, stride * win_cols * u + q]: the image columns that phase
        # positions read, for every offset q of a filter tap within a window of map columns.
        n_phases = stride * (win_cols - 1) + cols
        used_rows = plan.band_input_rows(out_rows)
        self.phases = space.view(self.PHASES, (n, channels, n_phases, used_rows, units))
        s_n, s_c, s_y, s_x = padded.strides
        self.phase_gather = as_strided(
            padded,
            shape=self.phases.shape,
            strides=(s_n, s_c, s_x, s_y, s_x * stride * win_cols),
            writeable=False,
        )
        p_n, p_c, p_q, p_y, p_u = self.phases.strides
        # Tap (c, dy, dx) at position (v, i, u) reads phase stride * v + dx, row stride * i + dy.
        self.taps_view = as_strided(
            self.phases,
            shape=(n, channels, rows, cols, win_cols, out_rows, units),
            strides=(p_n, p_c, p_y, p_q, p_q * stride, p_y * stride, p_u),
            writeable=False,
        )
        patches_t = self.patches(space, plan, n, win_cols * out_rows * units)
        self.target = patches_t.reshape(self.taps_view.shape)
        eps = kernel.eps[0]
        self.normaliser = None if eps is None else PatchNormaliser(patches_t, space, eps)
        self._products(patches_t, kernel, space)

    def gather(self, k):
        np.copyto(self.phases, self.phase_gather)
        np.copyto(self.target, self.taps_view)
        if self.normaliser is not None:
            self.normaliser.normalise()

    @classmethod
    def buffers(cls, plan, n, band_rows):
        _, win_cols, out_rows, units = plan.phased_shape
        n_phases = plan.stride * (win_cols - 1) + plan.filter_size[1]
        phases = (n, plan.image_shape[2], n_phases, plan.band_input_rows(out_rows), units)
        pooled = (n, out_rows * units * plan.block * plan.maps_per_filter)
        return {
            cls.PHASES: (phases, F32),
            **super().buffers(plan, n, band_rows),
            cls.PHASE_POOLED: (pooled, F32),
        }

    @classmethod
    def pool_regions(cls, plan, space, maps, level, rows, reduce, destinations, rows_buffer, ones):
        """The steps pooling the phased maps ``(n, positions, block maps)`` onto the finest
        level (the only one pooled from the maps): columns first, as one reduction over the
        phases (blocks of a whole phase), then rows, in runs of a row of pooled columns, into
        each ``(source, target)`` of ``destinations``."""
        n, _, block_maps = maps.shape
        win_rows, win_cols, out_rows, units = plan.phased_shape
        phases = maps.reshape(n, win_cols, -1)
        pooled = space.view(cls.PHASE_POOLED, (n, out_rows * units * block_maps))
        by_rows = pooled.reshape(n, out_rows // win_rows, win_rows, units, block_maps)
        steps = [PhaseReduction(reduce, phases, 1, pooled)]
        return steps + [
            PhaseReduction(reduce, by_rows[..., source], 2, target)
            for source, target in destinations
        ]


class PhaseReduction:
    """``reduce`` over one axis of a phased view, into ``out``."""

    def __init__(self, reduce, array, axis, out):
        self.reduce, self.array, self.axis, self.out = reduce, array, axis, out

    def run(self):
        self.reduce.reduce(self.array, axis=self.axis, out=self.out)


class FftConvolution(Convolution):
    """Like :class:`GemmConvolution`, by FFT (undilated filters only: ``smoothed`` is empty):
    :meth:`gather` transforms the padded rows (and, with a patch normalisation, takes the
    patches' moments from box sums), :meth:`multiply` multiplies the spectra with block
    ``k``'s and inverts them into the maps; the maps of the normalised patches are corrected
    from the moments and the filters' sums."""

    sums_patches = False

    PRODUCT, TERM = "product", "term"

    @classmethod
    def buffers(cls, plan, n, band_rows):
        height, width = plan.padded_rows, plan.padded_shape[1]
        channels, block, half = plan.image_shape[2], plan.block, width // 2 + 1
        buffers = {
            **super().buffers(plan, n, band_rows),
            "tmp_spectra": ((n, channels, height, half), C64),
            cls.PRODUCT: ((n, block, height, half), C64),
            cls.TERM: ((n, block, height, half), C64),
            "tmp_rows_inverse": ((n, block, height, half), C64),
            "tmp_maps_first": ((n, block, band_rows, width), F32),
        }
        if plan.patch_norm:
            # Window sums of the values and of their squares, in float64.
            positions = cls.positions(plan, band_rows)
            buffers.update(
                tmp_tables=((4, n, height + 1, width + 1), F64),
                tmp_moments=((4, n, band_rows, plan.map_shape[1]), F64),
                tmp_centring=((n, positions, block), F32),
            )
        return buffers

    @staticmethod
    def filter_arrays(plan, filters, blocks):
        band = max(stop - start for start, stop in plan.bands)
        shape = (plan.band_input_rows(band), plan.padded_shape[1])
        spectra = np.conj(scipy.fft.rfft2(filters.transpose(0, 3, 1, 2), s=shape))
        return [spectra[block] for block in blocks]

    @staticmethod
    def kernel_bytes(plan):
        half = plan.padded_shape[1] // 2 + 1
        return 8 * plan.n_filters * plan.image_shape[2] * plan.padded_rows * half

    def __init__(self, plan, kernel, space, padded, smoothed, band_rows):
        self.padded, self.band_rows, self.kernel = padded, band_rows, kernel
        self.filter_size, self.stride = plan.filter_size, plan.stride
        self.out_cols = plan.map_shape[1]
        n, _, height, width = padded.shape
        self.eps = kernel.eps[0]
        self.product, self.term, self.maps = [], [], []
        for filters in kernel.arrays:
            block = len(filters)
            product = space.view(self.PRODUCT, (n, block, height, width // 2 + 1))
            self.product.append(product)
            self.term.append(space.view(self.TERM, product.shape))
            self.maps.append(self.maps_view(space, n, band_rows * self.out_cols, block))

    def gather(self, k):
        self.spectra = scipy.fft.rfft2(self.padded)
        if self.eps is not None:
            images = self.padded.transpose(0, 2, 3, 1)
            positions = (self.band_rows, self.out_cols)
            mean, var = patch_moments(images, self.filter_size, self.stride, "valid", positions)
            self.mean = mean[..., None]
            self.scale = np.sqrt(var + np.float32(self.eps))[..., None]

    def multiply(self, k):
        spectra, filters = self.spectra, self.kernel.arrays[k]
        product, term, maps = self.product[k], self.term[k], self.maps[k]
        n, channels, _, width = self.padded.shape
        band_rows, stride, out_cols = self.band_rows, self.stride, self.out_cols
        # Cross-correlation is a product with the conjugate spectrum, summed over channels.
        np.multiply(spectra[:, None, 0], filters[None, :, 0], out=product)
        for channel in range(1, channels):
            np.multiply(spectra[:, None, channel], filters[None, :, channel], out=term)
            np.add(product, term, out=product)
        # Circular correlation equals the linear one where the filter fits: invert the
        # columns' transform only on the rows that are kept, then the rows' transform.
        kept = scipy.fft.ifft(product, axis=2, overwrite_x=True)[
            :, :, : band_rows * stride : stride
        ]
        first = scipy.fft.irfft(kept, n=width, axis=3)
        grid = maps.reshape(n, band_rows, out_cols, len(filters))
        np.copyto(grid, first[:, :, :, : out_cols * stride : stride].transpose(0, 2, 3, 1))
        if self.eps is not None:
            np.subtract(grid, self.mean * self.kernel.filter_sums[k], out=grid)
            np.divide(grid, self.scale, out=grid)
