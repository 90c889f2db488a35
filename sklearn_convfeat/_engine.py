"""The engine: runs :class:`~sklearn_convfeat._plan.Plan` s over images.

Pure functions over arrays. Images are ``(n, H, W, C)``; filters are float32
``(n_filters, h, w, C)``. The convolution is a cross-correlation (the filter is not flipped),
as in :func:`scipy.signal.correlate2d` and in CNN libraries. :func:`pooled_features` gives
the features of ``transform`` for images of one shape, :func:`pooled_features_of_groups` for
groups of images of several shapes, :func:`feature_maps` the maps before pooling.

How the work is laid out, and why:

- The work is tiled so that a tile's calls do enough work to cost little and its maps are
  pooled while in cache: *chunks* of ``plan.chunk`` small images; for large images or large
  banks, one image at a time, the whole map in *blocks* of filters (``plan.block``: the N of
  the product) and, for large images, in *bands* of map rows (``plan.bands``: each band reads
  its rows of the image and the filter's halo). Each block's maps are activated and pooled
  right after the product that makes them, so the unpooled maps never travel to main memory
  and memory does not grow with the number of filters. A band's pooled values are combined
  with the other bands' (a maximum, or a sum until the division by the region's size),
  exactly as if the whole map had been pooled at once. Every buffer a chunk uses is listed
  by ``plan.chunk_buffers``, allocated once per thread, and reused by every chunk: a chunk
  allocates nothing of its own.
- The GEMM path gathers the patches of a tile *transposed*, one row per filter tap
  ``(channel, dy, dx)``: each row is then made of whole image rows, so the gather copies long
  contiguous runs even for grey images, where a patch is only ``h * w`` values. A float32
  matrix product with the filters per image (looped over in C) gives the maps, channels-last.
  With ``patch_norm``, the patches are normalised before the product (on ``h * w * C``
  values per position rather than ``n_filters``). Dilated filters are gathered the same way,
  their taps ``dilation`` rows and columns apart, once per dilation (blocks of filters never
  span two), and normalised by the moments of their whole footprint (window sums). With
  ``antialias``, each dilation gathers from its own copy of the padded rows, smoothed as it is
  loaded (the rows of a band and those around it that the Gaussian reads, so that a band's
  values are those of the whole image smoothed).
- Pooling reads every map value once, so its cost is set by how many NumPy inner loops it
  takes: for equal windows of several columns, the GEMM path orders positions by column
  phase (:func:`_phased_gemm_convolver`) so that pooling reduces whole blocks; a grid's
  nearly equal regions are pooled as a few runs of equal ones; sums over whole rows are
  products with a vector of ones (BLAS reads several times faster than NumPy's reductions
  over rows of a few hundred values); max pooling commutes with the bias and monotone
  activations, which then touch only pooled values; means of an activation made of
  ``|z - t|`` and ``z`` (relu, two_sided, identity) are formed from sums of ``|z - t|`` and
  of ``z`` (:func:`_sums_steps`), one pass over the maps without writing the activated ones,
  the sums of ``z`` from the patches; and the grids of a pyramid that nest in a finer one
  are pooled from its pooled values.
- The FFT path multiplies spectra (``scipy.fft``) and wins when filters are large; which path
  runs is decided by the plan.
- *Batches* (many chunks) are the unit of work of the ``n_jobs`` threads. Every image goes
  through the same code in tiles that do not depend on ``batch_size``, ``n_jobs`` or the other
  images, and every matrix product covers one image, so results are bit-identical for any of
  them.
"""

import math
import queue
from functools import partial

import numpy as np
import scipy.fft
from joblib import Parallel, delayed
from numpy.lib.stride_tricks import as_strided
from sklearn.utils import gen_batches

from ._patches import patch_moments, smooth
from ._plan import regions as make_regions
from ._threads import single_threaded_blas, thread_count
from ._variants import ACTIVATIONS, POOLINGS

# Alignment of the buffers, in bytes: a cache line, and the width of AVX-512 registers. The GEMM
# writes, and pooling reads, the maps about 5% faster than at NumPy's default 16-byte alignment
# (measured on configs A and B).
ALIGNMENT = 64


class _Space:
    """Named flat buffers, aligned to :data:`ALIGNMENT`: ``space[name](shape)`` is a
    C-contiguous view of the start of buffer ``name``, of any shape that fits."""

    def __init__(self, buffers):
        self.flat = {}
        for name, (shape, dtype) in buffers.items():
            if name.startswith("tmp_"):
                continue
            itemsize = np.dtype(dtype).itemsize
            size = math.prod(shape)
            flat = np.empty(size + ALIGNMENT // itemsize, dtype=dtype)
            offset = -flat.ctypes.data % ALIGNMENT // itemsize
            self.flat[name] = flat[offset : offset + size]

    def __contains__(self, name):
        return name in self.flat

    def __getitem__(self, name):
        flat = self.flat[name]
        return lambda shape: flat[: math.prod(shape)].reshape(shape)


def _patch_normaliser(patches_t, space, eps):
    """A function normalising, in place, each patch of the fixed buffer ``patches_t``
    ``(n, taps, positions)`` to zero mean and unit variance, ``eps`` added to the variance.

    The patches are centred before their variance is taken, so float32 loses nothing to
    cancellation; normalising the patches before the GEMM equals normalising the maps after
    it, on ``taps`` instead of ``n_filters`` values per position.
    """
    n, taps, positions = patches_t.shape
    mean = space["norm_mean"]((n, 1, positions))
    scale = space["norm_scale"]((n, 1, positions))
    squares = space["norm_squares"](patches_t.shape)
    eps = np.float32(eps)

    def normalise():
        np.add.reduce(patches_t, axis=1, keepdims=True, out=mean)
        np.divide(mean, taps, out=mean)
        np.subtract(patches_t, mean, out=patches_t)
        np.square(patches_t, out=squares)
        np.add.reduce(squares, axis=1, keepdims=True, out=scale)
        np.divide(scale, taps, out=scale)
        np.add(scale, eps, out=scale)
        np.sqrt(scale, out=scale)
        np.divide(patches_t, scale, out=patches_t)

    return normalise


def _footprint_normaliser(patches_t, space, eps, images, span, stride, band_rows, out_cols):
    """A function normalising, in place, the taps of a dilated filter ``patches_t`` ``(n, taps,
    positions)`` by the mean and variance of its whole footprint ``span`` (``eps`` added to the
    variance): a local contrast normalisation at the scale the filter sees. ``images`` is the
    fixed padded view ``(n, rows, cols, C)`` whose ``span`` windows are the footprints; their
    moments come from window sums (:func:`patch_moments`)."""
    n, taps, positions = patches_t.shape
    mean = space["norm_mean"]((n, 1, positions))
    scale = space["norm_scale"]((n, 1, positions))
    grid_mean = mean.reshape(n, band_rows, out_cols)
    grid_scale = scale.reshape(n, band_rows, out_cols)
    eps = np.float32(eps)

    def normalise():
        moments = patch_moments(images, span, stride, "valid", (band_rows, out_cols))
        for moment, out in zip(moments, (grid_mean, grid_scale), strict=True):
            np.copyto(out, moment)
        np.add(scale, eps, out=scale)
        np.sqrt(scale, out=scale)
        np.subtract(patches_t, mean, out=patches_t)
        np.divide(patches_t, scale, out=patches_t)

    return normalise


def _multiplier(patches_t, kernel, space):
    """A function multiplying the fixed patches ``(n, taps, positions)`` with block ``k`` of
    the filters into the maps ``(n, positions, block)``: one GEMM per image, which numpy loops
    over in C. BLAS rounds a row differently depending on the matrix's size, so a GEMM over
    the chunk would make a sample's features depend on its chunk, hence on batch_size."""
    n, _, positions = patches_t.shape
    patches = patches_t.transpose(0, 2, 1)
    products = [
        (weights, space["maps"]((n, positions, weights.shape[1]))) for weights in kernel.weights
    ]

    def multiply(k):
        weights, maps = products[k]
        np.matmul(patches, weights, out=maps)
        return maps

    return multiply


def _gemm_convolver(plan, padded, band_rows, kernel, space, smoothed):
    """Functions computing the maps of the fixed buffer ``padded`` (a chunk of zero-padded
    channels-first image rows; ``smoothed`` holds the same rows smoothed, for each dilation
    that reads them so, by ``plan.smoothing``): ``prepare(k)`` gathers (and normalises) the
    patches of ``band_rows`` map rows for block ``k`` of filters (called where
    ``plan.regathers`` says: blocks of one dilation share their patches), ``multiply(k)``
    returns the maps ``(n, positions, block)`` of block ``k``. All views are made here, once:
    a tile then costs a handful of calls."""
    n, channels = padded.shape[:2]
    rows, cols = plan.filter_size
    out_cols = plan.map_shape[1]
    stride = plan.stride
    s_n, s_c, s_y, s_x = padded.strides
    patches_t = space["patches"]((n, plan.taps, band_rows * out_cols))
    target = patches_t.reshape(n, channels, rows, cols, band_rows, out_cols)
    gathers = {}
    for k, (dilation, (top, left), span) in enumerate(plan.gathers):
        if not plan.regathers[k]:
            continue  # the patches of the block before
        # Per image, rows are filter taps (c, dy, dx), columns positions (i, j): each row is
        # copied in runs along image rows, long even for grey images where a patch is only
        # h * w values. A dilated filter's taps are ``dilation`` rows and columns apart,
        # its footprint centred in the footprint of the most dilated one.
        corner = smoothed.get(dilation, padded)[:, :, top:, left:]
        windows = as_strided(
            corner,
            shape=target.shape,
            strides=(s_n, s_c, s_y * dilation, s_x * dilation, s_y * stride, s_x * stride),
            writeable=False,
        )
        eps, normalise = kernel.eps[k], None
        if eps is not None and dilation == 1:
            normalise = _patch_normaliser(patches_t, space, eps)
        elif eps is not None:
            images = corner.transpose(0, 2, 3, 1)
            normalise = _footprint_normaliser(
                patches_t, space, eps, images, span, stride, band_rows, out_cols
            )
        gathers[k] = (windows, normalise)

    def prepare(k):
        windows, normalise = gathers[k]
        np.copyto(target, windows)
        if normalise is not None:
            normalise()

    return prepare, _multiplier(patches_t, kernel, space)


def _phased_gemm_convolver(plan, padded, band_rows, kernel, space, smoothed):
    """Like :func:`_gemm_convolver` (for a whole map), with positions ordered for pooling equal
    windows.

    For pooling windows of ``(wr, wc)`` positions, only the ``wr * (out_rows // wr)`` rows and
    ``wc * (out_cols // wc)`` columns that are pooled are computed, and the column ``j = wc * u
    + v`` of a map goes to phase ``v``: the maps are ``(n, wc, rows, out_cols // wc, block)``,
    so pooling reduces whole blocks (:func:`_phased_pooler`) instead of runs of ``block``
    values. The image columns of each phase are gathered first, into the ``phases`` buffer: the
    patches are then copied in runs of ``rows * (out_cols // wc)`` values. The same products
    are summed in the same order as in :func:`_gemm_convolver`.
    """
    n, channels = padded.shape[:2]
    rows, cols = plan.filter_size
    stride = plan.stride
    _, win_cols, out_rows, units = plan.phased_shape
    # phases[q, y, u] = padded[y, stride * win_cols * u + q]: the image columns that phase
    # positions read, for every offset q of a filter tap within a window of map columns.
    n_phases = stride * (win_cols - 1) + cols
    used_rows = plan.band_input_rows(out_rows)
    phases = space["phases"]((n, channels, n_phases, used_rows, units))
    s_n, s_c, s_y, s_x = padded.strides
    gather = as_strided(
        padded,
        shape=phases.shape,
        strides=(s_n, s_c, s_x, s_y, s_x * stride * win_cols),
        writeable=False,
    )
    p_n, p_c, p_q, p_y, p_u = phases.strides
    # Tap (c, dy, dx) at position (v, i, u) reads phase stride * v + dx, row stride * i + dy.
    taps_view = as_strided(
        phases,
        shape=(n, channels, rows, cols, win_cols, out_rows, units),
        strides=(p_n, p_c, p_y, p_q, p_q * stride, p_y * stride, p_u),
        writeable=False,
    )
    patches_t = space["patches"]((n, plan.taps, win_cols * out_rows * units))
    target = patches_t.reshape(taps_view.shape)
    eps = kernel.eps[0]
    normalise = _patch_normaliser(patches_t, space, eps) if eps is not None else None

    def prepare(k):
        np.copyto(phases, gather)
        np.copyto(target, taps_view)
        if normalise is not None:
            normalise()

    return prepare, _multiplier(patches_t, kernel, space)


def _fft_convolver(plan, padded, band_rows, kernel, space, smoothed):
    """Like :func:`_gemm_convolver`, by FFT (undilated filters only: ``smoothed`` is empty):
    ``prepare()`` transforms the padded rows (and, with a patch normalisation, takes the
    patches' moments from box sums), ``multiply(k)`` multiplies the spectra with block ``k``'s
    and inverts them into the maps; the maps of the normalised patches are corrected from the
    moments and the filters' sums."""
    n, channels, height, width = padded.shape
    out_cols = plan.map_shape[1]
    stride = plan.stride
    state = {}

    eps = kernel.eps[0]

    def prepare(k):
        state["spectra"] = scipy.fft.rfft2(padded)
        if eps is not None:
            images = padded.transpose(0, 2, 3, 1)
            positions = (band_rows, out_cols)
            mean, var = patch_moments(images, plan.filter_size, stride, "valid", positions)
            state["mean"] = mean[..., None]
            state["scale"] = np.sqrt(var + np.float32(eps))[..., None]

    def multiply(k):
        spectra, filters = state["spectra"], kernel.spectra[k]
        block = len(filters)
        product = space["product"]((n, block, height, width // 2 + 1))
        term = space["term"](product.shape)
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
        maps = space["maps"]((n, band_rows * out_cols, block))
        grid = maps.reshape(n, band_rows, out_cols, block)
        np.copyto(grid, first[:, :, :, : out_cols * stride : stride].transpose(0, 2, 3, 1))
        if eps is not None:
            np.subtract(grid, state["mean"] * kernel.filter_sums[k], out=grid)
            np.divide(grid, state["scale"], out=grid)
        return maps

    return prepare, multiply


def _axis_reducer(array, axis, regions, reduce, out, ones=None):
    """A function reducing the fixed ``array`` over ``regions`` along ``axis`` into ``out``.

    The views are made once. Each run of regions of one size (all of them for equal regions,
    a few for a grid's nearly equal ones) is one reduction over a view with the region as an
    axis of its own: one pass reads each value once, in runs along the axes after ``axis``.
    (``reduceat`` reduces along ``axis`` itself, in short strided loops: 40 times slower on a
    2x2 grid of 27x27 maps.) Sums along the next to last axis, given a buffer of ``ones``, are
    products with a vector of ones: NumPy reduces rows of a few hundred values at 0.15-0.4 ns
    a value, BLAS at 0.05.
    """
    if ones is not None and reduce is np.add and axis == array.ndim - 2:
        return _ones_summer(array, regions, out, ones)
    before, after = array.shape[:axis], array.shape[axis + 1 :]
    lead = (slice(None),) * axis
    steps = []
    for first, count, size, start in regions.runs:
        # Splitting one axis in two is always a view, and much cheaper to make than as_strided.
        windows = array[lead + (slice(start, start + count * size),)]
        windows = windows.reshape(before + (count, size) + after)
        steps.append((windows, out[lead + (slice(first, first + count),)]))
    if len(steps) == 1:
        ((windows, target),) = steps
        return lambda: reduce.reduce(windows, axis=axis + 1, out=target)

    def run():
        for windows, target in steps:
            reduce.reduce(windows, axis=axis + 1, out=target)

    return run


def _ones_summer(array, regions, out, ones):
    """A function summing the fixed ``array`` ``(..., positions, width)`` over ``regions`` of
    positions into ``out`` ``(..., regions, width)``, as products with ``ones``."""
    steps = []
    for first, count, size, start in regions.runs:
        windows = array[..., start : start + count * size, :]
        windows = windows.reshape(array.shape[:-2] + (count, size, array.shape[-1]))
        steps.append((ones[:size], windows, out[..., first : first + count, :]))

    def run():
        for vector, windows, target in steps:
            np.matmul(vector, windows, out=target)

    return run


def _map_slices(plan, start, stop):
    """Where block ``[start, stop)``'s activated maps go among all maps: ``[(source, target)]``
    slices of the maps axis (each sign of a two-sided activation is a block of all filters)."""
    block = stop - start
    signs = plan.maps_per_filter
    if block == plan.n_filters:
        return [(slice(0, signs * block), slice(0, signs * block))]
    return [
        (
            slice(s * block, (s + 1) * block),
            slice(s * plan.n_filters + start, s * plan.n_filters + stop),
        )
        for s in range(signs)
    ]


def _map_pooler(plan, maps, block, space, levels):
    """A function pooling the fixed activated maps ``(n, positions, block maps)`` of a whole
    map and one block of filters onto every level pooled from the maps, into the levels'
    buffers ``levels``. All views are made here, once."""
    reduce = POOLINGS[plan.pooling].reduce
    ones = _ones(space, maps.shape[1])
    n, _, block_maps = maps.shape
    slices = _map_slices(plan, *block)
    steps = []
    for index in plan.order:
        level = plan.levels[index]
        if level.source is not None:
            continue
        if plan.phased:
            steps.append(_phased_pooler(plan, maps, reduce, space, levels[index], slices))
            continue
        if plan.pools_whole_rows(level):
            spans = _position_spans(level.rows, plan.map_shape[1])
            pooled = levels[index].reshape(n, level.rows.count, plan.n_maps)
            steps += [
                _axis_reducer(maps[..., source], 1, spans, reduce, pooled[..., target], ones)
                for source, target in slices
            ]
            continue
        grid = maps.reshape(n, *plan.map_shape, block_maps)
        rows = space[f"rows_{index}"]((n, level.rows.count, plan.map_shape[1], block_maps))
        steps.append(_axis_reducer(grid, 1, level.rows, reduce, rows))
        steps += [
            _axis_reducer(rows[..., source], 2, level.cols, reduce, levels[index][..., target])
            for source, target in slices
        ]

    def pool():
        for step in steps:
            step()

    return pool


def _position_spans(rows, cols):
    """Regions of whole map rows ``rows`` as spans of positions (row-major, ``cols`` a row)."""
    return make_regions(tuple(start * cols for start in rows.starts), rows.stop * cols)


def _band_pooler(plan, space, levels, kernel, sums):
    """A function ``pool(maps, band, block)`` pooling the activated maps ``(n, positions,
    block maps)`` of one band of map rows and one block of filters onto every level pooled
    from the maps, combined into the levels' buffers ``levels`` (initialised to the
    reduction's identity): regions that span several bands get each band's part. With sums
    of parts, the maps are the products alone, summed into ``sums`` (initialised to zero).
    The views of each band and block are made at its first tile and kept (the same buffers
    serve every chunk) if the plan keeps its tiles' views; else as each band comes."""
    reduce = POOLINGS[plan.pooling].reduce
    cols = plan.map_shape[1]
    parts = [
        (index, plan.levels[index]) for index in plan.order if plan.levels[index].source is None
    ]
    made = {}

    def steps_of(maps, band, block):
        n, positions, block_maps = maps.shape
        if plan.sums_parts is not None:
            return _sums_steps(plan, maps, plan.blocks.index(block), kernel, space, sums, band)
        ones = _ones(space, positions)
        grid = maps.reshape(n, band[1] - band[0], cols, block_maps)
        steps = []
        for index, level in parts:
            first, rows = level.map_rows.clip(*band)
            if rows is None:
                continue
            part = space[f"part_{index}"]((n, rows.count, level.cols.count, block_maps))
            if plan.pools_whole_rows(level):
                spans = _position_spans(rows, cols)
                steps.append(_axis_reducer(maps, 1, spans, reduce, part[:, :, 0], ones))
            else:
                if rows.size == 1:  # one map row a region (one-row bands): nothing to reduce
                    pooled_rows = grid[:, : rows.count]
                else:
                    pooled_rows = space[f"rows_{index}"]((n, rows.count, cols, block_maps))
                    steps.append(_axis_reducer(grid, 1, rows, reduce, pooled_rows))
                steps.append(_axis_reducer(pooled_rows, 2, level.cols, reduce, part))
            target = levels[index][:, first : first + rows.count]
            for source, destination in _map_slices(plan, *block):
                combined = target[..., destination]
                steps.append(partial(reduce, combined, part[..., source], out=combined))
        return steps

    def pool(maps, band, block):
        steps = made.get((band, block))
        if steps is None:
            steps = steps_of(maps, band, block)
            if plan.kept_tiles:
                made[band, block] = steps
        for step in steps:
            step()

    return pool


def _ones(space, positions):
    """The first ``positions`` values of the buffer of ones, if the plan has one."""
    return space["ones"]((positions,)) if "ones" in space else None


def _sums_steps(plan, maps, k, kernel, space, sums, band=None):
    """The steps pooling the products ``(n, positions, block)`` of block ``k`` of filters (no
    bias or activation yet) when the plan pools means of an activation given by parts: the
    sums over each region of ``z`` and, for each shift ``sign * t``, of ``|z + b - sign * t|``
    (taken in place, the first of two shifts in a buffer of its own) go to their slots of the
    ``sums`` buffers ``(slots, n, rows, cols, n_filters)`` of the levels pooled from the maps;
    :func:`_sums_combiner` makes the means from them. Those of a band of a banded plan are
    added to the sums of the other bands. On the GEMM path, the sums of ``z`` are those of
    the patches times the filters: ``h * w * C`` values a position to sum instead of
    ``block``."""
    n, positions, width = maps.shape
    start, stop = plan.blocks[k]
    cols = plan.map_shape[1]
    ones = _ones(space, positions)
    shifts = plan.sum_shifts
    offsets = np.zeros(width, np.float32) if kernel.bias is None else kernel.bias[start:stop]
    arrays, passes = [maps], []
    for j, shift in enumerate(shifts):
        work = maps if j == len(shifts) - 1 else space["shifted"](maps.shape)
        row = (offsets - np.float32(shift)).astype(np.float32)
        arrays.append(work)
        passes.append((work, row if row.any() else None))
    sum_steps = [[] for _ in arrays]
    for index in plan.order:
        level = plan.levels[index]
        if level.source is not None:
            continue
        first, rows = (0, level.map_rows) if band is None else level.map_rows.clip(*band)
        if rows is None:
            continue
        target = sums[index][:, :, first : first + rows.count, :, start:stop]
        out = target
        if band is not None:
            out = [space[f"part_{index}"]((n, rows.count, level.cols.count, width))] * len(arrays)
        for slot, array in enumerate(arrays):
            if slot == 0 and plan.method == "gemm":
                weights = kernel.weights[k]
                reducers = _patch_summers(plan, space, index, positions, rows, out[0], k, weights)
            elif plan.pools_whole_rows(level):
                spans = _position_spans(rows, cols)
                reducers = [_axis_reducer(array, 1, spans, np.add, out[slot][:, :, 0], ones)]
            else:
                grid = array.reshape(n, -1, cols, width)
                pooled_rows = space[f"rows_{index}"]((n, rows.count, cols, width))
                reducers = [
                    _axis_reducer(grid, 1, rows, np.add, pooled_rows),
                    _axis_reducer(pooled_rows, 2, level.cols, np.add, out[slot]),
                ]
            if band is not None:
                reducers.append(partial(np.add, target[slot], out[slot], out=target[slot]))
            sum_steps[slot] += reducers
    steps = list(sum_steps[0])
    for (work, row), slot_steps in zip(passes, sum_steps[1:], strict=True):
        if row is not None:
            steps.append(partial(np.add, maps, row, out=work))
            steps.append(partial(np.abs, work, out=work))
        else:
            steps.append(partial(np.abs, maps, out=work))
        steps += slot_steps
    return steps


def _patch_summers(plan, space, index, positions, rows, out, k, weights):
    """Steps summing the maps of the GEMM path over the regions of level ``index`` in the map
    rows ``rows`` of a band of ``positions``, into ``out`` ``(n, rows, cols, block)``: the sums
    of the patches over each region (taken with the first block ``k`` of a gather, for all of
    them), times the filters ``weights``."""
    level = plan.levels[index]
    n, _, n_cols, width = out.shape
    cols = plan.map_shape[1]
    patches = space["patches"]((n, plan.taps, positions))
    patch_sums = space[f"patch_sums_{index}"]((n, plan.taps, rows.count, n_cols))
    steps = []
    if plan.regathers[k] and plan.pools_whole_rows(level):
        # Sums along the last axis, as products with ones: NumPy's are 5 times slower.
        ones = _ones(space, positions)
        for first, count, size, start in _position_spans(rows, cols).runs:
            windows = patches[..., start : start + count * size].reshape(n, -1, count, size)
            target = patch_sums[:, :, first : first + count, 0]
            steps.append(partial(np.matmul, windows, ones[:size], out=target))
    elif plan.regathers[k]:
        patch_rows = space[f"patch_rows_{index}"]((n, plan.taps, rows.count, cols))
        grid = patches.reshape(n, plan.taps, -1, cols)
        steps = [
            _axis_reducer(grid, 2, rows, np.add, patch_rows),
            _axis_reducer(patch_rows, 3, level.cols, np.add, patch_sums),
        ]
    regions = patch_sums.reshape(n, plan.taps, -1).transpose(0, 2, 1)
    steps.append(partial(np.matmul, regions, weights, out=out.reshape(n, -1, width)))
    return steps


def _sums_combiner(plan, bias, sums, levels):
    """A function making the sums over regions of the activated maps, into the levels'
    buffers, from the ``sums`` of parts (:func:`_sums_steps`): ``abs_coef * sum |z + b -
    sign * t| + z_coef * sum z + (z_coef * b - t_coef * t) * region size`` per part."""
    parts, shifts = plan.sums_parts, plan.sum_shifts
    n_filters, t = plan.n_filters, np.float32(plan.threshold)
    bias = np.zeros(n_filters, np.float32) if bias is None else bias
    zeros = np.zeros(n_filters, np.float32)
    steps = []
    for index, level in enumerate(plan.levels):
        if level.source is not None:
            continue
        slots, scratch = sums[index], sums[index][-1]
        sizes = np.float32(level.sizes)[:, :, None]
        for k, part in enumerate(parts):
            target = levels[index][..., k * n_filters : (k + 1) * n_filters]
            z_sums = slots[0]
            if part.abs_coef:
                absolute = slots[1 + shifts.index(part.sign * plan.threshold)]
                steps.append(partial(np.multiply, absolute, np.float32(part.abs_coef), out=target))
                steps.append(partial(np.multiply, z_sums, np.float32(part.z_coef), out=scratch))
                steps.append(partial(np.add, target, scratch, out=target))
            else:
                steps.append(partial(np.multiply, z_sums, np.float32(part.z_coef), out=target))
            offset = (np.float32(part.z_coef) * bias - np.float32(part.t_coef) * t).astype(
                np.float32
            )
            if offset.any():
                steps.append(partial(np.multiply, sizes, offset, out=scratch))
                steps.append(partial(np.add, target, scratch, out=target))
            if part.abs_coef >= abs(part.z_coef):
                # A relu is never negative; its sum, a difference of two rounded sums, may be
                # by a rounding error when all the values of a region are below the threshold.
                steps.append(partial(np.maximum, target, zeros, out=target))
    return _runner(steps)


def _phased_pooler(plan, maps, reduce, space, level, slices):
    """A function pooling the fixed phased maps ``(n, positions, block maps)`` (from
    :func:`_phased_gemm_convolver`) onto the finest level, into the map ``slices`` of its
    buffer ``level``.

    Columns first, as one reduction over the phases (blocks of a whole phase), then rows, in
    runs of a row of pooled columns.
    """
    n, _, block_maps = maps.shape
    win_rows, win_cols, out_rows, units = plan.phased_shape
    phases = maps.reshape(n, win_cols, -1)
    pooled = space["phase_pooled"]((n, out_rows * units * block_maps))
    by_rows = pooled.reshape(n, out_rows // win_rows, win_rows, units, block_maps)
    pool_rows = [(by_rows[..., source], level[..., destination]) for source, destination in slices]

    def pool():
        reduce.reduce(phases, axis=1, out=pooled)
        for source, destination in pool_rows:
            reduce.reduce(source, axis=2, out=destination)

    return pool


class _Kernel:
    """What the filters become for a plan, once per call: the GEMM's weights or the FFT's
    spectra, per block of filters, and the filters' sums and bias."""

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
        self.weights = self.spectra = None
        if plan.method == "fft":
            band = max(stop - start for start, stop in plan.bands)
            shape = (plan.band_input_rows(band), plan.padded_shape[1])
            spectra = np.conj(scipy.fft.rfft2(filters.transpose(0, 3, 1, 2), s=shape))
            self.spectra = [spectra[block] for block in blocks]
        else:
            flat = filters.transpose(0, 3, 1, 2).reshape(len(filters), -1)
            weights = np.ascontiguousarray(flat).T
            self.weights = [weights[:, block] for block in blocks]


class _Workspace:
    """The buffers of one thread for chunks of up to ``size`` images of one plan, and the steps
    built on them for each chunk size."""

    def __init__(self, plan, kernel, size):
        self.plan, self.kernel = plan, kernel
        self.space = _Space(plan.chunk_buffers(size))
        self.steps = {}

    def step(self, size):
        if size not in self.steps:
            self.steps[size] = _make_step(self.plan, self.kernel, self.space, size)
        return self.steps[size]


_CONVOLVERS = {"gemm": _gemm_convolver, "fft": _fft_convolver}


def _tile(plan, kernel, space, n, band_rows, levels, sums, band_pool=None):
    """A function ``run(band)`` computing one band of ``band_rows`` map rows of ``n`` images
    (already in the padded buffer): for each block of filters, the product, the bias, the
    activation and the pooling into ``levels`` (or the sums of parts into ``sums``), by
    ``band_pool(maps, band, block)`` or, for a whole map (``band_pool`` None), by poolers
    built here."""
    shape = (n, plan.image_shape[2], plan.padded_rows, plan.padded_shape[1])
    padded = space["padded"](shape)
    smoothed = {dilation: space[f"smoothed_{dilation}"](shape) for dilation, _ in plan.smoothing}
    if plan.method == "gemm":
        rows = plan.band_input_rows(band_rows)
        padded = padded[:, :, :rows]
        smoothed = {dilation: buffer[:, :, :rows] for dilation, buffer in smoothed.items()}
    if plan.phased:
        convolver = _phased_gemm_convolver
        _, win_cols, out_rows, units = plan.phased_shape
        positions = win_cols * out_rows * units
    else:
        convolver = _CONVOLVERS[plan.method]
        positions = band_rows * plan.map_shape[1]
    prepare, multiply = convolver(plan, padded, band_rows, kernel, space, smoothed)
    activation = ACTIVATIONS[plan.activation]
    prepare_pooling = POOLINGS[plan.pooling].prepare
    blocks = []
    for k, block in enumerate(plan.blocks):
        maps = space["maps"]((n, positions, block[1] - block[0]))
        activated = maps
        if plan.activates_maps and plan.maps_per_filter > 1:
            activated = space["activated"]((n, positions, maps.shape[2] * plan.maps_per_filter))
        bias = None if kernel.bias is None else kernel.bias[block[0] : block[1]]
        if band_pool:
            pool = None
        elif plan.sums_parts is not None:
            pool = _runner(_sums_steps(plan, maps, k, kernel, space, sums))
        else:
            pool = _map_pooler(plan, activated, block, space, levels)
        blocks.append((block, bias, activated, pool))

    activates, regathers, threshold = plan.activates_maps, plan.regathers, plan.threshold

    def run(band):
        for k, (block, bias, activated, pool) in enumerate(blocks):
            if regathers[k]:
                prepare(k)
            maps = multiply(k)
            if activates:
                if bias is not None:
                    np.add(maps, bias, out=maps)
                activation.apply(maps, threshold, activated)
                if prepare_pooling is not None:
                    prepare_pooling(activated)
            if pool is None:
                band_pool(activated, band, block)
            else:
                pool()

    return run


def _runner(steps):
    """A function running ``steps`` in order."""

    def run():
        for step in steps:
            step()

    return run


def _make_step(plan, kernel, space, size):
    """Convolution, normalisation, activation and pooling of ``size`` images into ``out``.

    Its views are built here, once per chunk size (the full chunk and, at most, a last shorter
    one): a chunk holds few images, and building views costs as much as they do. With several
    bands (large images), one tile serves every band of the same length, and each band pools
    through views made as it comes, which costs little next to a band's work.
    """
    height, width = plan.image_shape[:2]
    (top, _), (left, _) = plan.padding
    shape = (size, plan.image_shape[2], plan.padded_rows, plan.padded_shape[1])
    padded = space["padded"](shape)
    # Each dilation that reads the image smoothed has its own padded rows (zeros outside).
    smoothed = [(space[f"smoothed_{d}"](shape), sigma) for d, sigma in plan.smoothing]
    for buffer in (padded, *(buffer for buffer, _ in smoothed)):
        buffer[...] = 0
    radius = plan.smooth_radius
    levels = {
        index: space[f"level_{index}"]((size, *level.shape, plan.n_maps))
        for index, level in enumerate(plan.levels)
    }
    pooling = POOLINGS[plan.pooling]
    nested = []
    for index in plan.order:
        level = plan.levels[index]
        if level.source is None:
            continue
        source = levels[level.source]
        rows = space[f"rows_{index}"]((size, level.rows.count, source.shape[2], plan.n_maps))
        nested += [
            _axis_reducer(source, 1, level.rows, pooling.reduce, rows),
            _axis_reducer(rows, 2, level.cols, pooling.reduce, levels[index]),
        ]
    emits = [
        (levels[index], level.offset, level.n_regions, np.float32(level.sizes)[:, :, None])
        for index, level in enumerate(plan.levels)
    ]
    sums = {
        index: space[f"sums_{index}"](
            (len(plan.sum_shifts) + 2, size, *level.shape, plan.n_filters)
        )
        for index, level in enumerate(plan.levels)
        if f"sums_{index}" in space
    }
    combine = _sums_combiner(plan, kernel.bias, sums, levels) if sums else None
    if "ones" in space:
        space["ones"](space.flat["ones"].shape)[...] = 1
    whole = len(plan.bands) == 1
    band_pool = None if whole else _band_pooler(plan, space, levels, kernel, sums)
    from_maps = [levels[i] for i, level in enumerate(plan.levels) if level.source is None]
    if sums:
        from_maps = list(sums.values())
    identity = -np.inf if pooling.is_max else 0.0
    tiles = {}
    for start, stop in plan.bands:
        if stop - start not in tiles:
            tiles[stop - start] = _tile(
                plan, kernel, space, size, stop - start, levels, sums, band_pool
            )

    def copy_rows(images, low, high, target):
        """Image rows ``low:high`` into ``target``, channels first, as float32 (the images are
        checked to fit). ``images`` is an array or a list."""
        if isinstance(images, list):
            for image, inside in zip(images, target, strict=True):
                np.copyto(inside, image[low:high].transpose(2, 0, 1), casting="unsafe")
        else:
            np.copyto(target, images[:, low:high].transpose(0, 3, 1, 2), casting="unsafe")

    def load(images, band, before):
        """Copy the image rows that ``band`` reads into the padded buffer, zeros elsewhere;
        and, smoothed, into each dilation's (from the rows around them that the smoothing
        reads: the result is that of smoothing the whole image). ``before`` is what the
        previous band of these images loaded, ``(first, low, high)``, or None: its smoothed
        rows that this band reads too are moved, not smoothed again. Returns this band's."""
        first = band[0] * plan.stride - top  # the image row at the buffer's first row
        low, high = max(first, 0), min(first + padded.shape[2], height)
        fresh = low  # the first image row to smooth
        if smoothed and before is not None and before[1] <= low < before[2]:
            # Bands go down the image: the rows they share are the previous band's last.
            shift, fresh = first - before[0], min(before[2], high)
            for buffer, _ in smoothed:
                for row in range(low - first, fresh - first):  # row by row: no overlap
                    buffer[:, :, row] = buffer[:, :, row + shift]
        buffers = (padded, *(buffer for buffer, _ in smoothed))
        if not whole:
            for buffer in buffers:
                buffer[:, :, : low - first] = 0
                buffer[:, :, high - first :] = 0
        copy_rows(images, low, high, padded[:, :, low - first : high - first, left : left + width])
        if smoothed and fresh < high:
            start, stop = max(fresh - radius, 0), min(high + radius, height)
            halo = space["halo"]((size, plan.image_shape[2], stop - start, width))
            copy_rows(images, start, stop, halo)
            scratch = space["halo_rows"](halo.shape)
            for buffer, sigma in smoothed:
                target = buffer[:, :, fresh - first : high - first, left : left + width]
                rows = slice(fresh - start, high - start)
                smooth(halo, sigma, (2, 3), rows=rows, output=target, scratch=scratch)
        return first, low, high

    def step(images, out):
        if not whole:
            for level in from_maps:
                level[...] = identity
        loaded = None
        for band in plan.bands:
            loaded = load(images, band, loaded)
            tiles[band[1] - band[0]](band)
        if combine is not None:
            combine()
        for reducer in nested:
            reducer()
        for pooled, offset, n_regions, sizes in emits:
            target = out[:, offset : offset + n_regions].reshape(pooled.shape)
            if pooling.mean:
                np.divide(pooled, sizes, out=target)
                if pooling.root:
                    np.sqrt(target, out=target)
            else:
                np.copyto(target, pooled)

    return step


def _run_batch(plan, workspace, images, out):
    """The features of a batch of images into ``out``, ``(n, n_regions, n_maps)``, each
    level's scaled by its weight last."""
    for start in range(0, len(images), plan.chunk):
        stop = min(start + plan.chunk, len(images))
        workspace.step(stop - start)(images[start:stop], out[start:stop])
    if plan.pool_first:
        # Once for the batch: one large call instead of one per chunk of a few images.
        if workspace.kernel.bias is not None:
            out += workspace.kernel.bias
        ACTIVATIONS[plan.activation].apply(out, plan.threshold, out)
    for level, weight in zip(plan.levels, plan.level_weights, strict=True):
        if weight != 1.0:
            out[:, level.offset : level.offset + level.n_regions] *= np.float32(weight)


def pooled_features_of_groups(
    groups, filters, bias=None, patch_norm_eps=None, *, n_jobs=None, batch_size=None
):
    """The pooled features of groups of images, one plan per group.

    Batches of every group run on ``n_jobs`` threads with BLAS limited to one thread each; a
    thread keeps its buffers from batch to batch while the plan stays the same. A sample's
    features never depend on its batch, its group's other images or the other groups, so the
    result is the same for any ``batch_size`` and ``n_jobs``.

    Parameters
    ----------
    groups : list of (Plan, images)
        ``images`` of shape ``(n, *plan.image_shape)``: an array of any real dtype and memory
        layout, or a list of arrays of ``plan.image_shape``. They are read a chunk at a time
        into the engine's float32 buffers, never copied whole.
    filters : ndarray of shape (n_filters, h, w, C), float32
    bias : ndarray of shape (n_filters,), default=None
        Added to each filter's map (after the patch normalisation).
    patch_norm_eps : float or tuple of float, default=None
        With ``plan.patch_norm``: each patch is normalised to zero mean and unit variance,
        with ``patch_norm_eps`` added to its variance (one value, or one per group of
        ``plan.dilations``).
    n_jobs : int, default=None
        As in :class:`~sklearn_convfeat.ConvFeatureTransformer`.
    batch_size : int, default=None
        Images per batch; None for each plan's ``batch_size``.

    Returns
    -------
    features : list of ndarray of shape (n, *plan.output_shape), float32
        One per group.
    """
    n_threads = thread_count(n_jobs)
    outputs, tasks = [], []
    for plan, images in groups:
        n_samples = len(images)
        out = np.empty((n_samples, *plan.output_shape), dtype=np.float32)
        outputs.append(out)
        size = batch_size or plan.batch_size(n_samples, n_threads)
        kernel = _Kernel(plan, filters, bias, patch_norm_eps)
        capacity = min(plan.chunk, size, n_samples)
        regions = out.reshape(n_samples, -1, plan.n_maps)
        tasks += [
            (plan, kernel, capacity, images, regions, batch)
            for batch in gen_batches(n_samples, size)
        ]
    # One workspace per thread at work, handed from batch to batch.
    workspaces = queue.SimpleQueue()

    def fill(plan, kernel, capacity, images, regions, batch):
        try:
            workspace = workspaces.get_nowait()
        except queue.Empty:
            workspace = None
        if workspace is None or workspace.kernel is not kernel:
            workspace = _Workspace(plan, kernel, capacity)
        _run_batch(plan, workspace, images[batch], regions[batch])
        workspaces.put(workspace)

    n_threads = min(n_threads, len(tasks))
    with single_threaded_blas():
        if n_threads <= 1:
            for task in tasks:
                fill(*task)
        else:
            Parallel(n_jobs=n_threads, backend="threading")(delayed(fill)(*task) for task in tasks)
    return outputs


def pooled_features(
    images, plan, filters, bias=None, patch_norm_eps=None, *, n_jobs=None, batch_size=None
):
    """The pooled features of ``images`` of ``plan.image_shape``: ``(n, *plan.output_shape)``
    float32. See :func:`pooled_features_of_groups`."""
    (features,) = pooled_features_of_groups(
        [(plan, images)], filters, bias, patch_norm_eps, n_jobs=n_jobs, batch_size=batch_size
    )
    return features


def feature_maps(images, plan, filters, bias=None, patch_norm_eps=None):
    """The maps of ``images`` before pooling, ``(n, rows, cols, n_maps)`` float32: the
    convolution, the patch normalisation, the bias and the activation of ``plan``."""
    return pooled_features(images, plan.unpooled(), filters, bias, patch_norm_eps)
