"""The compute engine: convolution, activation and pooling over batches of images.

Pure functions over arrays. Images are float32 ``(n, H, W, C)``; filters are float32
``(n_filters, h, w, C)``; feature maps are ``(n, rows, cols, n_filters)``.

The convolution is a cross-correlation (the filter is not flipped), as in
:func:`scipy.signal.correlate2d` and in CNN libraries.

How the work is laid out, and why:

- Images are cut into *chunks* small enough for one chunk's patches and maps to stay in the
  core's cache; each chunk is convolved, activated and pooled before the next one starts, so
  the unpooled maps never travel to main memory and never exist for more than a chunk.
- The GEMM path gathers the patches of a chunk *transposed*, one row per filter tap
  ``(channel, dy, dx)``: each row is then made of whole image rows, so the gather copies long
  contiguous runs even for grey images, where a patch is only ``h * w`` values. A float32
  matrix product with the filters per image (looped over in C) gives the maps, channels-last.
  With ``patch_norm``, the patches are normalised before the product (on ``h * w * C``
  values per position rather than ``n_filters``).
- Pooling reads every map value once, so its cost is set by how many NumPy inner loops it
  takes: for equal windows of several columns, the GEMM path orders positions by column
  phase (:func:`_phased_gemm_convolver`) so that pooling reduces whole blocks; max pooling
  commutes with the bias and monotone activations, which then touch only pooled values; and
  coarse grids of a pyramid are pooled from finer ones.
- The FFT path multiplies spectra (``scipy.fft``) and wins when filters are large; which path
  runs is chosen from a cost model measured on a 2-core x86 machine (see ``benchmarks/``).
- *Batches* (many chunks) are the unit of work of the ``n_jobs`` threads. Every image goes
  through the same code in chunks of a size that does not depend on ``batch_size`` or
  ``n_jobs``, so results are bit-identical for any of them.
"""

import math
import threading
from contextlib import contextmanager
from functools import partial

import numpy as np
import scipy.fft
from joblib import Parallel, cpu_count, delayed
from numpy.lib.stride_tricks import as_strided
from sklearn.utils import gen_batches
from threadpoolctl import threadpool_limits

from ._patches import patch_moments
from ._shapes import features_shape, map_shape, padding_widths, pool_regions


def _relu(maps, threshold):
    if threshold:
        maps -= threshold
    return np.maximum(maps, 0, out=maps)


def _abs(maps, threshold):
    maps = np.abs(maps, out=maps)
    return _relu(maps, threshold) if threshold else maps


def _tanh(maps, threshold):
    if threshold:
        maps -= threshold
    return np.tanh(maps, out=maps)


def _identity(maps, threshold):
    if threshold:
        maps -= threshold
    return maps


def _two_sided(maps, threshold):
    # Coates & Ng's soft threshold with the sign kept apart, as MOSAIKS: twice the maps.
    negative = _relu(-maps, threshold)
    return np.concatenate([_relu(maps, threshold), negative], axis=3)


# Activations work in place on float32 maps, after subtracting a threshold (for 'abs', from
# the absolute value); they may return new arrays.
ACTIVATIONS = {
    "relu": _relu,
    "abs": _abs,
    "tanh": _tanh,
    "identity": _identity,
    "two_sided": _two_sided,
}

# Activations that give more maps than filters: relu(z - t) for each filter, then relu(-z - t).
MAPS_PER_FILTER = {"two_sided": 2}

# Non-decreasing activations commute with max pooling: pooling first touches fewer values.
MONOTONE_ACTIVATIONS = frozenset({"relu", "tanh", "identity"})

# Bytes of one chunk's temporaries (patches, maps, partly pooled maps): three quarters of a
# 2 MiB L2 cache, so that the maps are pooled while still in cache. Measured on config A and B
# of benchmarks/bench_speed.py: 0.5 to 3 MiB are within noise of each other there.
CHUNK_BYTES = 3 * 2**19

# Bytes of one batch's float32 copy of its images, made only when the input is not float32.
BATCH_BYTES = 8 * 2**20

# Cost of the FFT path per filter, in the GEMM path's multiply-adds: ``FFT_COST_PER_LOG_POINT
# * log2(P) + FFT_COST_PER_CHANNEL * C`` per point ``P`` of the padded image. Fitted to the
# crossovers measured with ``benchmarks/bench_speed.py --crossover`` on a 2-core x86 machine
# (AVX-512, OpenBLAS, pocketfft): grey 64x64 images at 17x17 to 19x19 filters, 96x96 at 15x15.
FFT_COST_PER_LOG_POINT = 12
FFT_COST_PER_CHANNEL = 25


def _axis_plan(starts, stop):
    """How to pool one axis: ``(size, stop)`` for equal regions, else ``(starts, stop)``."""
    count = len(starts)
    size = stop // count
    if size * count == stop and np.array_equal(starts, np.arange(count) * size):
        return size, stop
    return np.asarray(starts), stop


def _axis_pooler(maps, axis, plan, reduce):
    """A function pooling the fixed array ``maps`` along ``axis`` into a given ``out``.

    The views are made once, so that a chunk of a few images costs one ufunc call per axis.
    Equal regions are one reduction over a view with the window as its own axis: one pass
    reads each value once, where ``reduceat`` or pairwise calls are several times slower.
    """
    regions, stop = plan
    if not isinstance(regions, int):
        head = maps[(slice(None),) * axis + (slice(0, stop),)]
        return lambda out=None: reduce.reduceat(head, regions, axis=axis, out=out)
    # Splitting one axis in two is always a view, and much cheaper to make than as_strided.
    head = maps[(slice(None),) * axis + (slice(0, stop),)]
    windows = head.reshape(maps.shape[:axis] + (stop // regions, regions) + maps.shape[axis + 1 :])
    return lambda out=None: reduce.reduce(windows, axis=axis + 1, out=out)


def _plan_length(plan):
    """Number of regions of an axis plan."""
    regions, stop = plan
    return stop // regions if isinstance(regions, int) else len(regions)


def _region_sizes(plans):
    """Number of values in each pooling region: float32 ``(rows, cols, 1)``."""
    row_counts, col_counts = (
        np.full(stop // regions, regions)
        if isinstance(regions, int)
        else np.diff(np.append(regions, stop))
        for regions, stop in plans
    )
    return np.outer(row_counts, col_counts)[:, :, None].astype(np.float32)


def _pool_planned(maps, plans, mode, out=None):
    """Pool channels-last maps, rows then columns, with precomputed plans, into ``out``."""
    if mode == "ppv":
        return _pool_planned(np.greater(maps, 0).astype(np.float32), plans, "avg", out)
    if mode == "rms":
        pooled = _pool_planned(np.square(maps), plans, "avg", out)
        return np.sqrt(pooled, out=pooled)
    reduce = np.maximum if mode == "max" else np.add
    rows = _axis_pooler(maps, 1, plans[0], reduce)()
    pooled = _axis_pooler(rows, 2, plans[1], reduce)(out)
    if mode == "avg":
        pooled /= _region_sizes(plans)
    return pooled


def _buffer_pooler(maps, plans, mode, rows_buffer):
    """A function pooling the fixed buffer ``maps`` (max or avg, one grid) into ``out``.

    All views are made here, once: for small images a chunk holds a few images, and the Python
    overhead of building views at every chunk would cost as much as the arithmetic (and hold
    the GIL that the other threads wait for).
    """
    reduce = np.maximum if mode == "max" else np.add
    pool_rows = _axis_pooler(maps, 1, plans[0], reduce)
    pool_cols = _axis_pooler(rows_buffer, 2, plans[1], reduce)
    sizes = _region_sizes(plans) if mode == "avg" else None

    def pool_into(out):
        pool_rows(rows_buffer)
        pool_cols(out)
        if sizes is not None:
            np.divide(out, sizes, out=out)
        return out

    return pool_into


def pool(maps, rows, cols, mode):
    """Pool maps over contiguous regions.

    Parameters
    ----------
    maps : ndarray of shape (n, map_rows, map_cols, n_filters)
        Any memory layout.
    rows, cols : tuple (starts, stop)
        The regions along each axis, from :func:`~sklearn_convfeat._shapes.pool_regions`.
    mode : {'max', 'avg', 'rms', 'ppv'}
        'rms' is the root mean square; 'ppv' the proportion of positive values (ROCKET).

    Returns
    -------
    pooled : ndarray of shape (n, len(row starts), len(col starts), n_filters)
    """
    return _pool_planned(maps, (_axis_plan(*rows), _axis_plan(*cols)), mode)


def choose_method(image_shape, filter_shape, stride, padding):
    """``'gemm'`` or ``'fft'``: the faster path for these shapes, from a measured cost model.

    Per filter, the GEMM costs ``h * w * C`` multiply-adds per output position; the FFT costs
    about ``FFT_COST_PER_LOG_POINT * log2(P) + FFT_COST_PER_CHANNEL * C`` per point of the padded
    image (``P`` points) whatever the stride, as it computes every position.
    """
    _, rows, cols, channels = filter_shape
    out_rows, out_cols = map_shape(image_shape, (rows, cols), stride, padding)
    (top, bottom), (left, right) = padding_widths((rows, cols), padding)
    points = (image_shape[0] + top + bottom) * (image_shape[1] + left + right)
    gemm = out_rows * out_cols * rows * cols * channels
    fft = points * (FFT_COST_PER_LOG_POINT * math.log2(points) + FFT_COST_PER_CHANNEL * channels)
    return "fft" if fft < gemm else "gemm"


# Alignment of the workspaces, in bytes: a cache line, and the width of AVX-512 registers.
ALIGNMENT = 64


def _workspace(size):
    """A reusable float32 buffer: ``take(shape)`` views its start as a C-contiguous array.

    The start is aligned to a cache line: the GEMM writes, and pooling reads, the maps about 5%
    faster than at NumPy's default 16-byte alignment (measured on configs A and B).
    """
    flat = np.empty(size + ALIGNMENT // 4, dtype=np.float32)
    offset = -flat.ctypes.data % ALIGNMENT // 4
    flat = flat[offset : offset + size]

    def take(shape):
        return flat[: math.prod(shape)].reshape(shape)

    return take


def _patch_normaliser(patches_t, taps, eps):
    """A function normalising, in place, each patch of the fixed patch buffer ``patches_t``
    (any layout of ``(n, taps, ...)``) to zero mean and unit variance, ``eps`` added to the
    variance; a function doing nothing if ``eps`` is None.

    The patches are centred before their variance is taken, so float32 loses nothing to
    cancellation; normalising the patches before the GEMM equals normalising the maps after
    it, on ``taps`` instead of ``n_filters`` values per position.
    """
    if eps is None:
        return lambda: None
    patches = patches_t.reshape(len(patches_t), taps, -1)
    n, taps, positions = patches.shape
    mean = np.empty((n, 1, positions), dtype=np.float32)
    scale = np.empty((n, 1, positions), dtype=np.float32)
    squares = np.empty_like(patches)
    eps = np.float32(eps)

    def normalise():
        np.add.reduce(patches, axis=1, keepdims=True, out=mean)
        np.divide(mean, taps, out=mean)
        np.subtract(patches, mean, out=patches)
        np.square(patches, out=squares)
        np.add.reduce(squares, axis=1, keepdims=True, out=scale)
        np.divide(scale, taps, out=scale)
        np.add(scale, eps, out=scale)
        np.sqrt(scale, out=scale)
        np.divide(patches, scale, out=patches)

    return normalise


def _gemm_convolver(padded, weights, filter_size, stride, space, patch_norm_eps=None):
    """A function computing the maps of the images in the fixed buffer ``padded``.

    ``padded`` holds a chunk of zero-padded channels-first images. The returned function turns
    them into channels-last maps ``(n, out_rows, out_cols, n_filters)`` through im2col and a
    GEMM per image, in buffers taken from ``space``, reused at every call (the maps are always
    ``space["maps"]((n, out_rows, out_cols, n_filters))``). All views are made
    here, once: a chunk then costs a handful of NumPy calls.
    """
    n, channels, height, width = padded.shape
    rows, cols = filter_size
    taps, n_filters = weights.shape
    out_rows = (height - rows) // stride + 1
    out_cols = (width - cols) // stride + 1
    s_n, s_c, s_y, s_x = padded.strides
    # Per image, rows are filter taps (c, dy, dx), columns positions (i, j): each row is copied
    # in runs along image rows, long even for grey images where a patch is only h * w values.
    windows = as_strided(
        padded,
        shape=(n, channels, rows, cols, out_rows, out_cols),
        strides=(s_n, s_c, s_y, s_x, s_y * stride, s_x * stride),
        writeable=False,
    )
    patches_t = space["patches"](windows.shape)
    maps = space["maps"]((n, out_rows * out_cols, n_filters))
    # One GEMM per image, which numpy loops over in C: BLAS rounds a row differently depending
    # on the matrix's size, so a GEMM over the chunk would make a sample's features depend on
    # its chunk, hence on batch_size and n_jobs.
    patches = patches_t.reshape(n, taps, -1).transpose(0, 2, 1)
    normalise = _patch_normaliser(patches_t, taps, patch_norm_eps)

    def convolve():
        np.copyto(patches_t, windows)
        normalise()
        np.matmul(patches, weights, out=maps)
        return maps.reshape(n, out_rows, out_cols, n_filters)

    return convolve


def _phased_gemm_convolver(
    padded, weights, filter_size, stride, windows, space, patch_norm_eps=None
):
    """Like :func:`_gemm_convolver`, with positions ordered for pooling equal windows.

    For pooling windows of ``(wr, wc)`` positions, only the ``wr * (out_rows // wr)`` rows and
    ``wc * (out_cols // wc)`` columns that are pooled are computed, and the column ``j = wc * u
    + v`` of a map goes to phase ``v``: the maps are ``(n, wc, rows, out_cols // wc,
    n_filters)``, so pooling reduces whole blocks (:func:`_phased_pooler`) instead of runs of
    ``n_filters`` values. The image columns of each phase are gathered first, into
    ``space["phases"]``: the patches are then copied in runs of ``rows * (out_cols // wc)``
    values. The same products are summed in the same order as in :func:`_gemm_convolver`.
    """
    n, channels, height, width = padded.shape
    rows, cols = filter_size
    taps, n_filters = weights.shape
    win_rows, win_cols = windows
    out_rows = ((height - rows) // stride + 1) // win_rows * win_rows
    units = ((width - cols) // stride + 1) // win_cols
    # phases[q, y, u] = padded[y, stride * win_cols * u + q]: the image columns that phase
    # positions read, for every offset q of a filter tap within a window of map columns.
    n_phases = stride * (win_cols - 1) + cols
    used_rows = stride * (out_rows - 1) + rows
    s_n, s_c, s_y, s_x = padded.strides
    gather = as_strided(
        padded,
        shape=(n, channels, n_phases, used_rows, units),
        strides=(s_n, s_c, s_x, s_y, s_x * stride * win_cols),
        writeable=False,
    )
    phases = space["phases"](gather.shape)
    p_n, p_c, p_q, p_y, p_u = phases.strides
    # Tap (c, dy, dx) at position (v, i, u) reads phase stride * v + dx, row stride * i + dy.
    taps_view = as_strided(
        phases,
        shape=(n, channels, rows, cols, win_cols, out_rows, units),
        strides=(p_n, p_c, p_y, p_q, p_q * stride, p_y * stride, p_u),
        writeable=False,
    )
    patches_t = space["patches"](taps_view.shape)
    maps = space["maps"]((n, win_cols * out_rows * units, n_filters))
    patches = patches_t.reshape(n, taps, -1).transpose(0, 2, 1)
    normalise = _patch_normaliser(patches_t, taps, patch_norm_eps)

    def convolve():
        np.copyto(phases, gather)
        np.copyto(patches_t, taps_view)
        normalise()
        np.matmul(patches, weights, out=maps)
        return maps.reshape(n, win_cols, out_rows, units, n_filters)

    return convolve


def _phased_pooler(maps, windows, mode, buffer):
    """A function pooling the fixed maps of :func:`_phased_gemm_convolver` into ``out``.

    Columns first, as one reduction over the phases (blocks of a whole phase), then rows, in
    runs of a row of pooled columns.
    """
    n, win_cols, rows, units, n_filters = maps.shape
    win_rows = windows[0]
    reduce = np.maximum if mode == "max" else np.add
    phases = maps.reshape(n, win_cols, -1)
    by_rows = buffer.reshape(n, rows // win_rows, win_rows, units, n_filters)
    area = np.float32(win_rows * win_cols)

    def pool_into(out):
        reduce.reduce(phases, axis=1, out=buffer)
        reduce.reduce(by_rows, axis=2, out=out)
        if mode == "avg":
            np.divide(out, area, out=out)
        return out

    return pool_into


def _fft_convolver(filters, padded_shape, stride, out_shape):
    """A function from a padded channels-first chunk to its channels-last maps, by FFT."""
    height, width = padded_shape
    out_rows, out_cols = out_shape
    kernel = np.conj(scipy.fft.rfft2(filters.astype(np.float32), s=(height, width)))

    def convolve(padded):
        channels = padded.shape[1]
        spectra = scipy.fft.rfft2(padded)
        # Cross-correlation is a product with the conjugate spectrum, summed over channels.
        product = spectra[:, None, 0] * kernel[None, :, 0]
        for channel in range(1, channels):
            product += spectra[:, None, channel] * kernel[None, :, channel]
        # Circular correlation equals the linear one where the filter fits: invert the
        # columns' transform only on the rows that are kept, then the rows' transform.
        kept = scipy.fft.ifft(product, axis=2, overwrite_x=True)[:, :, : out_rows * stride : stride]
        maps = scipy.fft.irfft(kept, n=width, axis=3)[:, :, :, : out_cols * stride : stride]
        return np.ascontiguousarray(maps.transpose(0, 2, 3, 1))

    return convolve


def chunk_bytes_per_image(image_shape, filter_shape, stride, padding, method):
    """Bytes of the temporaries that one image adds to a chunk (its maps and patches/spectra)."""
    n_filters, rows, cols, channels = filter_shape
    (top, bottom), (left, right) = padding_widths((rows, cols), padding)
    height, width = image_shape[0] + top + bottom, image_shape[1] + left + right
    out_rows, out_cols = map_shape(image_shape, (rows, cols), stride, padding)
    padded = 4 * height * width * channels
    # The maps and the maps pooled along rows.
    maps = 4 * out_rows * out_cols * 2 * n_filters
    if method == "fft":
        half = height * (width // 2 + 1)
        # Image spectra; the product and each channel's term; the first inverse; the real
        # maps before they are cut and made channels-last.
        return (
            padded
            + 8 * half * channels
            + 8 * half * n_filters * 3
            + 4 * height * width * n_filters
            + maps
        )
    # The columns of each phase when pooling windows of w >= 2 columns: at most
    # (stride * (w - 1) + cols) / w <= stride + cols / 2 values per map column and image row,
    # and none with fewer than 2 map columns (else stride * (out_cols - 1) < width).
    phases = 0
    if out_cols >= 2:
        phases = 4 * channels * height * math.ceil((min(stride, width) + cols / 2) * out_cols)
    return padded + phases + 4 * out_rows * out_cols * rows * cols * channels + maps


def chunk_size(image_shape, filter_shape, stride, padding, method):
    """Images per chunk so that one chunk's temporaries stay within ``CHUNK_BYTES``."""
    per_image = chunk_bytes_per_image(image_shape, filter_shape, stride, padding, method)
    return max(1, CHUNK_BYTES // per_image)


def _region_starts(plan):
    """The start of every region of an axis plan."""
    regions, stop = plan
    return np.arange(0, stop, regions) if isinstance(regions, int) else np.asarray(regions)


def _pyramid_steps(plans, pooling):
    """How to pool the grids of a pyramid: ``(grid, source, plan, regions)`` in the order to
    compute, ``regions`` the slice of the features' regions that the grid fills.

    With max pooling, a grid whose regions are unions of a finer grid's (as 1x1 and 2x2 of
    4x4 on maps of 28x28) is pooled from that grid's pooled values, ``source``, exactly: the
    maps are read once instead of once per grid. Other grids have ``source`` None (the maps).
    """
    sizes = [math.prod(map(_plan_length, grid)) for grid in plans]
    offsets = np.cumsum([0, *sizes])
    order = sorted(range(len(plans)), key=lambda i: -sizes[i])
    steps = []
    for position, grid in enumerate(order):
        source, plan = None, plans[grid]
        for finer in order[:position] if pooling == "max" else []:
            nested = []
            for coarse_axis, fine_axis in zip(plans[grid], plans[finer], strict=True):
                coarse, fine = _region_starts(coarse_axis), _region_starts(fine_axis)
                if coarse_axis[1] != fine_axis[1] or not np.isin(coarse, fine).all():
                    break
                nested.append(_axis_plan(np.searchsorted(fine, coarse), len(fine)))
            else:
                source, plan = finer, tuple(nested)
                break
        steps.append((grid, source, plan, slice(offsets[grid], offsets[grid + 1])))
    return steps


def _pool_chunk(maps, out, *, pooling, plan, pool_into=None, pyramid=None):
    """Pool a chunk's channels-last maps into ``out``, over one grid or a pyramid.

    ``plan`` is the pair of axis plans of a single grid, which ``pool_into`` (from
    :func:`_buffer_pooler` or :func:`_phased_pooler` on ``maps``) pools faster when given. A
    pyramid (a list of grids, even of one) comes as the steps of :func:`_pyramid_steps`; then
    ``out`` is ``(n, n_regions, n_maps)`` and receives the grids' regions one after another.
    """
    if pyramid is None:
        if pool_into is not None:
            pool_into(out)
        else:
            _pool_planned(maps, plan, pooling, out=out)
        return
    levels = {}
    for grid, source, grid_plan, regions in pyramid:
        level = _pool_planned(maps if source is None else levels[source], grid_plan, pooling)
        levels[grid] = level
        out[:, regions] = level.reshape(len(level), -1, out.shape[2])


def feature_maps(
    images,
    filters,
    *,
    stride,
    padding,
    activation,
    pooling,
    pool_size,
    pool_grid,
    bias=None,
    patch_norm_eps=None,
    threshold=0.0,
    method="auto",
    out=None,
):
    """Convolution, activation and pooling of one batch.

    The batch is processed in cache-sized chunks whose size depends only on the shapes.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C)
    filters : ndarray of shape (n_filters, h, w, C), float32
    stride, padding, activation, pooling, pool_size, pool_grid, threshold
        As in :class:`~sklearn_convfeat.ConvFeatureTransformer`. A list of grids as
        ``pool_grid`` is a spatial pyramid: the regions of all grids are concatenated.
    bias : ndarray of shape (n_filters,), default=None
        Added to each filter's map (after the patch normalisation).
    patch_norm_eps : float, default=None
        If given, each patch is first normalised to zero mean and unit variance, with
        ``patch_norm_eps`` added to its variance.
    method : {'auto', 'gemm', 'fft'}, default='auto'
        The convolution algorithm; ``'auto'`` uses :func:`choose_method`.
    out : ndarray, default=None
        Where to write the features.

    Returns
    -------
    out : ndarray of shape (n, out_rows, out_cols, n_maps) or (n, n_regions, n_maps), float32
        ``n_maps`` is ``n_filters`` times ``MAPS_PER_FILTER`` of the activation.
    """
    n, height, width, channels = images.shape
    n_filters, rows, cols, _ = filters.shape
    if method == "auto":
        method = choose_method(images.shape[1:], filters.shape, stride, padding)
    (top, bottom), (left, right) = padding_widths((rows, cols), padding)
    out_shape = map_shape(images.shape[1:], (rows, cols), stride, padding)
    grids = pool_grid if isinstance(pool_grid, list) else [pool_grid]
    plans = [
        tuple(_axis_plan(*axis) for axis in pool_regions(out_shape, pool_size, grid))
        for grid in grids
    ]
    n_maps = n_filters * MAPS_PER_FILTER.get(activation, 1)
    if out is None:
        shape = features_shape(
            images.shape[1:], (rows, cols), n_maps, stride, padding, pool_size, pool_grid
        )
        out = np.empty((n, *shape), dtype=np.float32)
    chunk = min(n, chunk_size(images.shape[1:], filters.shape, stride, padding, method))
    # Zeroed once: the borders stay zero, each chunk only overwrites the inside.
    padded_space = np.zeros(
        (chunk, channels, height + top + bottom, width + left + right), dtype=np.float32
    )
    inside = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))
    filters_cf = filters.transpose(0, 3, 1, 2)
    # The GEMM path writes each chunk's maps into the same buffer, and every step up to pooling
    # works in place on it: one grid of max or avg pooling can then use views built once, and
    # equal windows of several columns a layout where pooling reduces whole blocks.
    buffer_pooling = (
        method == "gemm"
        and not isinstance(pool_grid, list)
        and pooling in ("max", "avg")
        and n_maps == n_filters
    )
    (row_window, row_stop), (col_window, col_stop) = plans[0]
    phased = (
        buffer_pooling
        and isinstance(row_window, int)
        and isinstance(col_window, int)
        and col_window > 1
        and row_stop == out_shape[0] // row_window * row_window
        and col_stop == out_shape[1] // col_window * col_window
    )
    windows = (row_window, col_window)
    grid_rows = _plan_length(plans[0][0])
    pooled_rows = grid_rows * out_shape[1]
    if phased:
        pooled_rows = max(pooled_rows, row_stop * (col_stop // col_window))
    rows_space = _workspace(chunk * pooled_rows * n_filters)
    if method == "fft":
        fft_convolve = _fft_convolver(filters_cf, padded_space.shape[2:], stride, out_shape)
    else:
        weights = np.ascontiguousarray(filters_cf.reshape(n_filters, -1), dtype=np.float32).T
        positions = out_shape[0] * out_shape[1]
        space = {
            "patches": _workspace(chunk * positions * weights.shape[0]),
            "maps": _workspace(chunk * positions * n_filters),
        }
        if phased:
            n_phases = stride * (col_window - 1) + cols
            used_rows = stride * (row_stop - 1) + rows
            space["phases"] = _workspace(
                chunk * channels * n_phases * used_rows * (col_stop // col_window)
            )
    filter_sums = filters.sum(axis=(1, 2, 3))
    activate = ACTIVATIONS[activation]
    # Max pooling commutes with adding a per-map constant and with a non-decreasing activation
    # (rounding is non-decreasing too, so the result is the same to the bit): then the maps are
    # pooled first, and the bias and activation touch only the pooled values, once per batch.
    pool_first = pooling == "max" and activation in MONOTONE_ACTIVATIONS
    # A list of grids, even of one, gives features (n, n_regions, n_maps).
    pyramid = _pyramid_steps(plans, pooling) if isinstance(pool_grid, list) else None

    def make_step(size):
        """Convolution, normalisation, activation and pooling of ``size`` images into ``out``.

        Its views are built here, once per chunk size (the full chunk and, at most, a last
        shorter one): a chunk holds few images, and building views costs as much as they do.
        """
        padded = padded_space[:size]
        target = padded[inside]
        pool_into = None
        if method == "fft":
            convolve = partial(fft_convolve, padded)
        elif phased:
            convolve = _phased_gemm_convolver(
                padded, weights, (rows, cols), stride, windows, space, patch_norm_eps
            )
            maps = space["maps"]((size, col_window, row_stop, col_stop // col_window, n_filters))
            buffer = rows_space((size, row_stop * (col_stop // col_window) * n_filters))
            pool_into = _phased_pooler(maps, windows, pooling, buffer)
        else:
            convolve = _gemm_convolver(padded, weights, (rows, cols), stride, space, patch_norm_eps)
            if buffer_pooling:
                maps = space["maps"]((size, *out_shape, n_filters))
                rows_buffer = rows_space((size, grid_rows, out_shape[1], n_filters))
                pool_into = _buffer_pooler(maps, plans[0], pooling, rows_buffer)

        def step(chunk_images, chunk_out):
            np.copyto(target, chunk_images.transpose(0, 3, 1, 2))
            maps = convolve()
            if patch_norm_eps is not None and method == "fft":
                # The GEMM path normalised the patches already.
                mean, var = patch_moments(chunk_images, (rows, cols), stride, padding)
                maps -= mean[..., None] * filter_sums
                maps /= np.sqrt(var + np.float32(patch_norm_eps))[..., None]
            if not pool_first:
                if bias is not None:
                    maps += bias
                maps = activate(maps, threshold)
            _pool_chunk(
                maps,
                chunk_out,
                pooling=pooling,
                plan=plans[0],
                pool_into=pool_into,
                pyramid=pyramid,
            )

        return step

    steps = {}
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        if stop - start not in steps:
            steps[stop - start] = make_step(stop - start)
        steps[stop - start](images[start:stop], out[start:stop])
    if pool_first:
        # Once for the batch: one large call instead of one per chunk of a few images.
        if bias is not None:
            out += bias
        activate(out, threshold)
    return out


def thread_count(n_jobs):
    """Threads that ``n_jobs`` asks for: None means 1, -1 all CPUs, -2 all but one, ...

    Independent of any joblib backend in effect: the engine's threads write into one output
    array, so they must be threads of this process, whatever backend the caller chose for its
    own work (loky or dask inside ``parallel_backend``, for example).
    """
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, cpu_count() + 1 + n_jobs)
    return n_jobs


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread while any thread is inside this context.

    Reference-counted, so that concurrent transforms neither oversubscribe the cores nor leave
    the limit in place when they finish in another order than they started.
    """
    global _blas_users, _blas_limiter
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def auto_batch_size(
    image_shape,
    filter_shape,
    stride,
    padding,
    *,
    n_samples,
    n_threads,
    method="auto",
    budget_bytes=BATCH_BYTES,
):
    """Images per batch: whole chunks, within a memory budget, enough batches for the threads.

    A batch's temporaries are its chunk's (about ``CHUNK_BYTES``) and, when the input is not
    float32 already, its float32 copy, which ``budget_bytes`` bounds. With several threads,
    each gets about four batches so that none waits long for the last one.
    """
    if method == "auto":
        method = choose_method(image_shape, filter_shape, stride, padding)
    chunk = chunk_size(image_shape, filter_shape, stride, padding, method)
    per_image = 4 * math.prod(image_shape)
    by_memory = max(1, budget_bytes // (per_image * chunk))
    if n_threads == 1:
        return chunk * by_memory
    by_balance = max(1, math.ceil(n_samples / (4 * n_threads * chunk)))
    return chunk * min(by_memory, by_balance)


def working_bytes(
    image_shape,
    filter_shape,
    stride,
    padding,
    *,
    n_samples,
    batch_size=None,
    n_threads=1,
    copies_input=True,
    activation="relu",
    pooling="max",
    patch_norm=False,
    method="auto",
):
    """Peak bytes that :func:`transform_images` allocates beyond its output.

    Each thread at work holds one chunk's temporaries and, when the input is not float32
    already (``copies_input``), the float32 copy of its batch. Checked against tracemalloc's
    peak in ``tests/test_engine.py``.

    Parameters
    ----------
    image_shape : (int, int, int)
    filter_shape : (int, int, int, int)
        ``(n_filters, h, w, channels)``.
    stride, padding
        As in :func:`transform_images`.
    n_samples : int
    batch_size : int, default=None
        As in :func:`transform_images`; None for :func:`auto_batch_size`.
    n_threads : int, default=1
    copies_input : bool, default=True
    activation, pooling : str, default='relu', 'max'
        As in :func:`transform_images`.
    patch_norm : bool, default=False
        Whether patches are normalised (``patch_norm_eps`` given).
    method : {'auto', 'gemm', 'fft'}, default='auto'

    Returns
    -------
    n_bytes : int
    """
    if method == "auto":
        method = choose_method(image_shape, filter_shape, stride, padding)
    if batch_size is None:
        batch_size = auto_batch_size(
            image_shape,
            filter_shape,
            stride,
            padding,
            n_samples=n_samples,
            n_threads=n_threads,
            method=method,
        )
    batch = max(1, min(batch_size, n_samples))
    chunk = min(batch, chunk_size(image_shape, filter_shape, stride, padding, method))
    per_image = chunk_bytes_per_image(image_shape, filter_shape, stride, padding, method)
    # What the encoding adds to a chunk, in float32 values per map value: the mean times the
    # filters' sums for patch_norm (FFT path; the GEMM path squares the patches instead);
    # the negated maps and both halves for 'two_sided'; the squares for 'rms', the signs
    # (bool, then float32) for 'ppv', of every map.
    n_maps = MAPS_PER_FILTER.get(activation, 1)
    extra = patch_norm + (1 + n_maps if n_maps > 1 else 0)
    extra += {"rms": 1, "ppv": 1.25}.get(pooling, 0) * n_maps
    n_filters, rows, cols, channels = filter_shape
    positions = math.prod(map_shape(image_shape, (rows, cols), stride, padding))
    squares = patch_norm * positions * (rows * cols * channels + 2)
    per_thread = chunk * (per_image + math.ceil(4 * (extra * positions * n_filters + squares)))
    if method == "fft":
        # The filters' spectra, made once per batch.
        (top, bottom), (left, right) = padding_widths((rows, cols), padding)
        half = (image_shape[0] + top + bottom) * ((image_shape[1] + left + right) // 2 + 1)
        per_thread += 8 * half * n_filters * channels
    if copies_input:
        per_thread += batch * 4 * math.prod(image_shape)
    return min(n_threads, math.ceil(n_samples / batch)) * per_thread


def transform_images(
    images,
    filters,
    *,
    stride=1,
    padding="valid",
    activation="relu",
    pooling="max",
    pool_size=(1, 1),
    pool_grid=None,
    bias=None,
    patch_norm_eps=None,
    threshold=0.0,
    batch_size=None,
    n_jobs=None,
    method="auto",
    out=None,
):
    """Pooled features of all images, computed batch by batch into one output array.

    Batches run on ``n_jobs`` threads with BLAS limited to one thread each. A sample's features
    never depend on its batch, so the result is the same for any ``batch_size`` and ``n_jobs``.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C)
    filters : ndarray of shape (n_filters, h, w, C), float32
    stride, padding, activation, pooling, pool_size, pool_grid, threshold, n_jobs
        As in :class:`~sklearn_convfeat.ConvFeatureTransformer`.
    bias, patch_norm_eps
        As in :func:`feature_maps`.
    batch_size : int, default=None
        Images per batch; None for :func:`auto_batch_size`.
    method : {'auto', 'gemm', 'fft'}, default='auto'
        The convolution algorithm; ``'auto'`` uses :func:`choose_method`.
    out : ndarray, default=None
        Where to write the features.

    Returns
    -------
    features : ndarray of shape (n, out_rows, out_cols, n_maps) or (n, n_regions, n_maps)
        float32; see :func:`feature_maps`.
    """
    params = dict(
        stride=stride,
        padding=padding,
        activation=activation,
        pooling=pooling,
        pool_size=pool_size,
        pool_grid=pool_grid,
        bias=bias,
        patch_norm_eps=patch_norm_eps,
        threshold=threshold,
    )
    n_samples = images.shape[0]
    if method == "auto":
        method = choose_method(images.shape[1:], filters.shape, stride, padding)
    n_threads = thread_count(n_jobs)
    if batch_size is None:
        batch_size = auto_batch_size(
            images.shape[1:],
            filters.shape,
            stride,
            padding,
            n_samples=n_samples,
            n_threads=n_threads,
            method=method,
        )
    if out is None:
        n_maps = filters.shape[0] * MAPS_PER_FILTER.get(activation, 1)
        shape = features_shape(
            images.shape[1:], filters.shape[1:3], n_maps, stride, padding, pool_size, pool_grid
        )
        out = np.empty((n_samples, *shape), dtype=np.float32)

    def fill(batch):
        feature_maps(
            np.asarray(images[batch], dtype=np.float32),
            filters,
            method=method,
            out=out[batch],
            **params,
        )

    batches = list(gen_batches(n_samples, batch_size))
    n_threads = min(n_threads, len(batches))
    with single_threaded_blas():
        if n_threads <= 1:
            for batch in batches:
                fill(batch)
        else:
            Parallel(n_jobs=n_threads, backend="threading")(delayed(fill)(b) for b in batches)
    return out
