"""The engine: runs a :class:`~sklearn_convfeat._plan.Plan` over images.

Pure functions over arrays. Images are ``(n, H, W, C)``; filters are float32
``(n_filters, h, w, C)``. The convolution is a cross-correlation (the filter is not flipped),
as in :func:`scipy.signal.correlate2d` and in CNN libraries. :func:`pooled_features` gives
the features of ``transform``, :func:`feature_maps` the maps before pooling.

How the work is laid out, and why:

- Images are cut into *chunks* small enough for one chunk's patches and maps to stay in the
  core's cache (``plan.chunk`` images); each chunk is convolved, activated and pooled before
  the next one starts, so the unpooled maps never travel to main memory and never exist for
  more than a chunk. Every buffer a chunk uses is listed by ``plan.chunk_buffers``, allocated
  once per thread, and reused by every chunk: a chunk allocates nothing.
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
  the grids of a pyramid that nest in a finer one are pooled from its pooled values.
- The FFT path multiplies spectra (``scipy.fft``) and wins when filters are large; which path
  runs is decided by the plan.
- *Batches* (many chunks) are the unit of work of the ``n_jobs`` threads. Every image goes
  through the same code in chunks of a size that does not depend on ``batch_size`` or
  ``n_jobs``, and every matrix product covers one image, so results are bit-identical for
  any of them.
"""

import math
import queue

import numpy as np
import scipy.fft
from joblib import Parallel, delayed
from numpy.lib.stride_tricks import as_strided
from sklearn.utils import gen_batches

from ._patches import patch_moments
from ._threads import single_threaded_blas, thread_count
from ._variants import ACTIVATIONS, POOLINGS

# Alignment of the buffers, in bytes: a cache line, and the width of AVX-512 registers. The GEMM
# writes, and pooling reads, the maps about 5% faster than at NumPy's default 16-byte alignment
# (measured on configs A and B).
ALIGNMENT = 64


def _aligned_empty(shape, dtype):
    itemsize = np.dtype(dtype).itemsize
    size = math.prod(shape)
    flat = np.empty(size + ALIGNMENT // itemsize, dtype=dtype)
    offset = -flat.ctypes.data % ALIGNMENT // itemsize
    return flat[offset : offset + size].reshape(shape)


def _patch_normaliser(patches_t, buffers, eps):
    """A function normalising, in place, each patch of the fixed buffer ``patches_t``
    ``(n, taps, positions)`` to zero mean and unit variance, ``eps`` added to the variance.

    The patches are centred before their variance is taken, so float32 loses nothing to
    cancellation; normalising the patches before the GEMM equals normalising the maps after
    it, on ``taps`` instead of ``n_filters`` values per position.
    """
    taps = patches_t.shape[1]
    mean, scale, squares = buffers["norm_mean"], buffers["norm_scale"], buffers["norm_squares"]
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


def _gemm_convolver(plan, padded, weights, buffers, eps):
    """A function computing the maps ``(n, positions, n_filters)`` of the images in the fixed
    buffer ``padded`` (a chunk of zero-padded channels-first images), through im2col and a GEMM
    per image, in ``buffers``. All views are made here, once: a chunk then costs a handful of
    NumPy calls."""
    n, channels = padded.shape[:2]
    rows, cols = plan.filter_size
    out_rows, out_cols = plan.map_shape
    stride = plan.stride
    s_n, s_c, s_y, s_x = padded.strides
    # Per image, rows are filter taps (c, dy, dx), columns positions (i, j): each row is copied
    # in runs along image rows, long even for grey images where a patch is only h * w values.
    windows = as_strided(
        padded,
        shape=(n, channels, rows, cols, out_rows, out_cols),
        strides=(s_n, s_c, s_y, s_x, s_y * stride, s_x * stride),
        writeable=False,
    )
    patches_t = buffers["patches"]
    maps = buffers["maps"]
    # One GEMM per image, which numpy loops over in C: BLAS rounds a row differently depending
    # on the matrix's size, so a GEMM over the chunk would make a sample's features depend on
    # its chunk, hence on batch_size and n_jobs.
    patches = patches_t.transpose(0, 2, 1)
    normalise = _patch_normaliser(patches_t, buffers, eps) if eps is not None else None
    target = patches_t.reshape(windows.shape)

    def convolve():
        np.copyto(target, windows)
        if normalise is not None:
            normalise()
        np.matmul(patches, weights, out=maps)
        return maps

    return convolve


def _phased_gemm_convolver(plan, padded, weights, buffers, eps):
    """Like :func:`_gemm_convolver`, with positions ordered for pooling equal windows.

    For pooling windows of ``(wr, wc)`` positions, only the ``wr * (out_rows // wr)`` rows and
    ``wc * (out_cols // wc)`` columns that are pooled are computed, and the column ``j = wc * u
    + v`` of a map goes to phase ``v``: the maps are ``(n, wc, rows, out_cols // wc,
    n_filters)``, so pooling reduces whole blocks (:func:`_phased_pooler`) instead of runs of
    ``n_filters`` values. The image columns of each phase are gathered first, into
    ``buffers["phases"]``: the patches are then copied in runs of ``rows * (out_cols // wc)``
    values. The same products are summed in the same order as in :func:`_gemm_convolver`.
    """
    n, channels = padded.shape[:2]
    rows, cols = plan.filter_size
    stride = plan.stride
    _, win_cols, out_rows, units = plan.phased_shape
    # phases[q, y, u] = padded[y, stride * win_cols * u + q]: the image columns that phase
    # positions read, for every offset q of a filter tap within a window of map columns.
    phases = buffers["phases"]
    n_phases, used_rows = phases.shape[2:4]
    s_n, s_c, s_y, s_x = padded.strides
    gather = as_strided(
        padded,
        shape=(n, channels, n_phases, used_rows, units),
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
    patches_t = buffers["patches"]
    target = patches_t.reshape(taps_view.shape)
    maps = buffers["maps"]
    patches = patches_t.transpose(0, 2, 1)
    normalise = _patch_normaliser(patches_t, buffers, eps) if eps is not None else None

    def convolve():
        np.copyto(phases, gather)
        np.copyto(target, taps_view)
        if normalise is not None:
            normalise()
        np.matmul(patches, weights, out=maps)
        return maps

    return convolve


def filter_spectra(plan, filters):
    """The conjugate spectra of the filters on the padded image, for the FFT path."""
    return np.conj(scipy.fft.rfft2(filters.transpose(0, 3, 1, 2), s=plan.padded_shape))


def _fft_convolver(plan, padded, spectra, filters, buffers, eps):
    """A function from the fixed padded channels-first chunk to its maps ``(n, positions,
    n_filters)``, by FFT; with ``eps``, the maps of the normalised patches, from the patches'
    moments (box sums) and the filters' sums."""
    n, channels, height, width = padded.shape
    out_rows, out_cols = plan.map_shape
    stride = plan.stride
    product, term, maps = buffers["product"], buffers["term"], buffers["maps"]
    grid_maps = maps.reshape(n, out_rows, out_cols, plan.n_filters)
    filter_sums = filters.sum(axis=(1, 2, 3))
    (top, _), (left, _) = plan.padding
    inside = padded[:, :, top : top + plan.image_shape[0], left : left + plan.image_shape[1]]
    padding = "valid" if plan.padding == ((0, 0), (0, 0)) else "same"

    def convolve():
        image_spectra = scipy.fft.rfft2(padded)
        # Cross-correlation is a product with the conjugate spectrum, summed over channels.
        np.multiply(image_spectra[:, None, 0], spectra[None, :, 0], out=product)
        for channel in range(1, channels):
            np.multiply(image_spectra[:, None, channel], spectra[None, :, channel], out=term)
            np.add(product, term, out=product)
        # Circular correlation equals the linear one where the filter fits: invert the
        # columns' transform only on the rows that are kept, then the rows' transform.
        kept = scipy.fft.ifft(product, axis=2, overwrite_x=True)[:, :, : out_rows * stride : stride]
        first = scipy.fft.irfft(kept, n=width, axis=3)
        np.copyto(grid_maps, first[:, :, :, : out_cols * stride : stride].transpose(0, 2, 3, 1))
        if eps is not None:
            # The GEMM path normalises the patches; here the maps are corrected instead.
            images = inside.transpose(0, 2, 3, 1)
            mean, var = patch_moments(images, plan.filter_size, stride, padding)
            np.subtract(grid_maps, mean[..., None] * filter_sums, out=grid_maps)
            np.divide(grid_maps, np.sqrt(var + np.float32(eps))[..., None], out=grid_maps)
        return maps

    return convolve


def _axis_reducer(array, axis, regions, reduce, out):
    """A function reducing the fixed ``array`` over ``regions`` along ``axis`` into ``out``.

    The views are made once. Equal regions are one reduction over a view with the window as an
    axis of its own: one pass reads each value once, several times faster than ``reduceat``.
    """
    head = array[(slice(None),) * axis + (slice(0, regions.stop),)]
    size = regions.size
    if size is None:
        starts = np.asarray(regions.starts)
        return lambda: reduce.reduceat(head, starts, axis=axis, out=out)
    # Splitting one axis in two is always a view, and much cheaper to make than as_strided.
    windows = head.reshape(array.shape[:axis] + (len(regions), size) + array.shape[axis + 1 :])
    return lambda: reduce.reduce(windows, axis=axis + 1, out=out)


def _phased_pooler(plan, maps, reduce, buffers, out):
    """A function pooling the fixed phased maps ``(n, positions, n_maps)`` (from
    :func:`_phased_gemm_convolver`) onto the finest level, into ``out``.

    Columns first, as one reduction over the phases (blocks of a whole phase), then rows, in
    runs of a row of pooled columns.
    """
    n, _, n_maps = maps.shape
    win_rows, win_cols, out_rows, units = plan.phased_shape
    phases = maps.reshape(n, win_cols, -1)
    pooled = buffers["phase_pooled"]
    by_rows = pooled.reshape(n, out_rows // win_rows, win_rows, units, n_maps)

    def pool():
        reduce.reduce(phases, axis=1, out=pooled)
        reduce.reduce(by_rows, axis=2, out=out)

    return pool


def _pooler(plan, maps, buffers):
    """A function pooling the fixed maps ``(n, positions, n_maps)`` onto every level of the
    plan: ``pool(out)`` writes the finished features of the chunk into ``out``, ``(n,
    n_regions, n_maps)``."""
    pooling = POOLINGS[plan.pooling]
    reduce = pooling.reduce
    n, _, n_maps = maps.shape
    grid = maps.reshape(n, *plan.map_shape, n_maps) if not plan.phased else None
    steps = []
    for index in plan.order:
        level = plan.levels[index]
        pooled = buffers[f"level_{index}"]
        if plan.phased and index == plan.order[0]:
            steps.append(_phased_pooler(plan, maps, reduce, buffers, pooled))
            continue
        source = grid if level.source is None else buffers[f"level_{level.source}"]
        rows = buffers[f"rows_{index}"]
        pool_rows = _axis_reducer(source, 1, level.rows, reduce, rows)
        pool_cols = _axis_reducer(rows, 2, level.cols, reduce, pooled)
        steps += [pool_rows, pool_cols]
    emits = [
        (buffers[f"level_{index}"], level.offset, level.n_regions, level.sizes)
        for index, level in enumerate(plan.levels)
    ]

    def pool(out):
        for step in steps:
            step()
        for pooled, offset, n_regions, sizes in emits:
            target = out[:, offset : offset + n_regions].reshape(pooled.shape)
            if pooling.mean:
                np.divide(pooled, sizes, out=target)
                if pooling.root:
                    np.sqrt(target, out=target)
            else:
                np.copyto(target, pooled)

    return pool


class _Workspace:
    """The buffers of one thread for chunks of up to ``size`` images, and the steps built on
    them for each chunk size."""

    def __init__(self, plan, kernel, size):
        self.plan, self.kernel = plan, kernel
        self.buffers = {
            name: _aligned_empty(shape, dtype)
            for name, (shape, dtype) in plan.chunk_buffers(size).items()
            if not name.startswith("tmp_")
        }
        # Zeroed once: the borders stay zero, each chunk only overwrites the inside.
        self.buffers["padded"][...] = 0
        self.steps = {}

    def step(self, size):
        if size not in self.steps:
            self.steps[size] = _make_step(self.plan, self.kernel, self.buffers, size)
        return self.steps[size]


def _make_step(plan, kernel, all_buffers, size):
    """Convolution, normalisation, activation and pooling of ``size`` images into ``out``.

    Its views are built here, once per chunk size (the full chunk and, at most, a last shorter
    one): a chunk holds few images, and building views costs as much as they do.
    """
    buffers = {name: buffer[:size] for name, buffer in all_buffers.items()}
    weights, spectra, filters, bias, eps = kernel
    padded = buffers["padded"]
    (top, _), (left, _) = plan.padding
    height, width = plan.image_shape[:2]
    target = padded[:, :, top : top + height, left : left + width]
    if plan.method == "fft":
        convolve = _fft_convolver(plan, padded, spectra, filters, buffers, eps)
    elif plan.phased:
        convolve = _phased_gemm_convolver(plan, padded, weights, buffers, eps)
    else:
        convolve = _gemm_convolver(plan, padded, weights, buffers, eps)
    activation = ACTIVATIONS[plan.activation]
    prepare = POOLINGS[plan.pooling].prepare
    maps = buffers["maps"]
    activated = buffers.get("activated", maps)
    pool = _pooler(plan, activated, buffers)

    def step(images, out):
        np.copyto(target, images.transpose(0, 3, 1, 2))
        convolve()
        if not plan.pool_first:
            if bias is not None:
                np.add(maps, bias, out=maps)
            activation.apply(maps, plan.threshold, activated)
            if prepare is not None:
                prepare(activated)
        pool(out)

    return step


def _run_batch(plan, workspace, images, out):
    """The features of a batch of images into ``out``, ``(n, n_regions, n_maps)``."""
    for start in range(0, len(images), plan.chunk):
        stop = min(start + plan.chunk, len(images))
        workspace.step(stop - start)(images[start:stop], out[start:stop])
    if plan.pool_first:
        # Once for the batch: one large call instead of one per chunk of a few images.
        weights, spectra, filters, bias, eps = workspace.kernel
        if bias is not None:
            out += bias
        ACTIVATIONS[plan.activation].apply(out, plan.threshold, out)


def pooled_features(
    images, plan, filters, bias=None, patch_norm_eps=None, *, n_jobs=None, batch_size=None
):
    """The pooled features of ``images``, computed batch by batch into one output array.

    Batches run on ``n_jobs`` threads with BLAS limited to one thread each. A sample's features
    never depend on its batch, so the result is the same for any ``batch_size`` and ``n_jobs``.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C)
        Any real dtype and memory layout; ``(H, W, C)`` must be ``plan.image_shape``.
    plan : Plan
        From :func:`~sklearn_convfeat._plan.make_plan`.
    filters : ndarray of shape (n_filters, h, w, C), float32
    bias : ndarray of shape (n_filters,), default=None
        Added to each filter's map (after the patch normalisation).
    patch_norm_eps : float, default=None
        With ``plan.patch_norm``: each patch is normalised to zero mean and unit variance,
        with ``patch_norm_eps`` added to its variance.
    n_jobs : int, default=None
        As in :class:`~sklearn_convfeat.ConvFeatureTransformer`.
    batch_size : int, default=None
        Images per batch; None for ``plan.batch_size``.

    Returns
    -------
    features : ndarray of shape (n, *plan.output_shape), float32
    """
    n_samples = images.shape[0]
    out = np.empty((n_samples, *plan.output_shape), dtype=np.float32)
    regions = out.reshape(n_samples, -1, plan.n_maps)
    n_threads = thread_count(n_jobs)
    if batch_size is None:
        batch_size = plan.batch_size(n_samples, n_threads)
    batches = list(gen_batches(n_samples, batch_size))
    n_threads = min(n_threads, len(batches))
    filters = np.asarray(filters, dtype=np.float32)
    if plan.method == "fft":
        weights, spectra = None, filter_spectra(plan, filters)
    else:
        weights = np.ascontiguousarray(filters.transpose(0, 3, 1, 2).reshape(len(filters), -1)).T
        spectra = None
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float32)
    eps = patch_norm_eps if plan.patch_norm else None
    kernel = (weights, spectra, filters, bias, eps)
    # One workspace per thread at work, handed from batch to batch.
    workspaces = queue.SimpleQueue()

    def fill(batch):
        try:
            workspace = workspaces.get_nowait()
        except queue.Empty:
            workspace = _Workspace(plan, kernel, min(plan.chunk, batch_size, n_samples))
        _run_batch(plan, workspace, np.asarray(images[batch], dtype=np.float32), regions[batch])
        workspaces.put(workspace)

    with single_threaded_blas():
        if n_threads <= 1:
            for batch in batches:
                fill(batch)
        else:
            Parallel(n_jobs=n_threads, backend="threading")(delayed(fill)(b) for b in batches)
    return out


def feature_maps(images, plan, filters, bias=None, patch_norm_eps=None):
    """The maps of ``images`` before pooling, ``(n, rows, cols, n_maps)`` float32: the
    convolution, the patch normalisation, the bias and the activation of ``plan``."""
    return pooled_features(images, plan.unpooled(), filters, bias, patch_norm_eps)
