"""The compute engine: convolution, activation and pooling over batches of images.

Pure functions over arrays. Images are float32 ``(n, H, W, C)``; filters are float32
``(n_filters, h, w, C)``; feature maps are ``(n, rows, cols, n_filters)``.

The convolution is a cross-correlation (the filter is not flipped), as in
:func:`scipy.signal.correlate2d` and in CNN libraries.
"""

import threading
from contextlib import contextmanager

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.utils import gen_batches
from threadpoolctl import threadpool_limits

from ._shapes import map_shape, padding_widths, pool_regions, pooled_shape


def _relu(maps):
    return np.maximum(maps, 0, out=maps)


def _abs(maps):
    return np.abs(maps, out=maps)


def _tanh(maps):
    return np.tanh(maps, out=maps)


def _identity(maps):
    return maps


# Activations work in place on float32 maps.
ACTIVATIONS = {"relu": _relu, "abs": _abs, "tanh": _tanh, "identity": _identity}

# Non-decreasing activations commute with max pooling: pooling first touches fewer values.
MONOTONE_ACTIVATIONS = frozenset({"relu", "tanh", "identity"})


def conv2d(images, filters, *, stride=1, padding="valid"):
    """Cross-correlate each image with each filter, summing over channels.

    A strided view of all patches (no copy) is gathered once into a matrix, then one float32
    matrix product with the flattened filters gives every map of the batch.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C), float32
    filters : ndarray of shape (n_filters, h, w, C), float32
    stride : int
    padding : {'valid', 'same'}

    Returns
    -------
    maps : ndarray of shape (n, rows, cols, n_filters), float32
    """
    n_filters, rows, cols, channels = filters.shape
    (top, bottom), (left, right) = padding_widths((rows, cols), padding)
    if top or bottom or left or right:
        images = np.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)))
    windows = sliding_window_view(images, (rows, cols), axis=(1, 2))[:, ::stride, ::stride]
    n, out_rows, out_cols = windows.shape[:3]
    # windows: (n, out_rows, out_cols, C, h, w); match the filters' layout to it.
    patches = windows.reshape(n, out_rows * out_cols, channels * rows * cols)
    weights = filters.transpose(0, 3, 1, 2).reshape(n_filters, -1)
    # One GEMM per image (numpy loops over the stack in C, at the same speed): BLAS kernels
    # round a row differently depending on the matrix's size, so one GEMM over the batch would
    # make a sample's features depend on its batch.
    return np.matmul(patches, weights.T).reshape(n, out_rows, out_cols, n_filters)


def pool(maps, rows, cols, mode):
    """Pool maps over contiguous regions.

    Parameters
    ----------
    maps : ndarray of shape (n, map_rows, map_cols, n_filters)
    rows, cols : tuple (starts, stop)
        The regions along each axis, from :func:`~sklearn_convfeat._shapes.pool_starts`.
    mode : {'max', 'avg'}
    """
    reduce = np.maximum if mode == "max" else np.add
    (row_starts, row_stop), (col_starts, col_stop) = rows, cols
    pooled = reduce.reduceat(maps[:, :row_stop], row_starts, axis=1)
    pooled = reduce.reduceat(pooled[:, :, :col_stop], col_starts, axis=2)
    if mode == "avg":
        row_counts = np.diff(np.append(row_starts, row_stop))
        col_counts = np.diff(np.append(col_starts, col_stop))
        pooled /= np.outer(row_counts, col_counts)[None, :, :, None].astype(np.float32)
    return pooled


def feature_maps(images, filters, *, stride, padding, activation, pooling, pool_size, pool_grid):
    """Convolution, activation and pooling of one batch: ``(n, out_rows, out_cols, n_filters)``."""
    maps = conv2d(images, filters, stride=stride, padding=padding)
    rows, cols = pool_regions(maps.shape[1:3], pool_size, pool_grid)
    if pooling == "max" and activation in MONOTONE_ACTIVATIONS:
        return ACTIVATIONS[activation](pool(maps, rows, cols, pooling))
    return pool(ACTIVATIONS[activation](maps), rows, cols, pooling)


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


def auto_batch_size(image_shape, filter_shape, stride, padding, budget_bytes=16 * 2**20):
    """Images per batch so that one batch's temporaries (patches and maps) fit ``budget_bytes``."""
    n_filters, rows, cols, channels = filter_shape
    out_rows, out_cols = map_shape(image_shape, (rows, cols), stride, padding)
    per_image = 4 * out_rows * out_cols * (rows * cols * channels + n_filters)
    return max(1, budget_bytes // max(per_image, 1))


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
    batch_size=None,
    n_jobs=None,
    out=None,
):
    """Pooled features of all images, computed batch by batch into one output array.

    Batches run on ``n_jobs`` threads with BLAS limited to one thread each. A sample's features
    never depend on its batch, so the result is the same for any ``batch_size`` and ``n_jobs``.

    Returns
    -------
    features : ndarray of shape (n, out_rows, out_cols, n_filters), float32
    """
    params = dict(
        stride=stride,
        padding=padding,
        activation=activation,
        pooling=pooling,
        pool_size=pool_size,
        pool_grid=pool_grid,
    )
    n_samples = images.shape[0]
    if batch_size is None:
        batch_size = auto_batch_size(images.shape[1:], filters.shape, stride, padding)
    if out is None:
        grid = pooled_shape(
            images.shape[1:], filters.shape[1:3], stride, padding, pool_size, pool_grid
        )
        out = np.empty((n_samples, *grid, filters.shape[0]), dtype=np.float32)

    def fill(batch):
        out[batch] = feature_maps(
            np.ascontiguousarray(images[batch], dtype=np.float32), filters, **params
        )

    batches = list(gen_batches(n_samples, batch_size))
    n_threads = min(effective_n_jobs(n_jobs), len(batches))
    with single_threaded_blas():
        if n_threads == 1:
            for batch in batches:
                fill(batch)
        else:
            Parallel(n_jobs=n_threads, prefer="threads")(delayed(fill)(b) for b in batches)
    return out
