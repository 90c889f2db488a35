"""Dask arrays in and out: metadata checks, lazy block-wise transform, bounded fit samples.

Nothing here imports dask before a dask array comes in. One is recognised by looking its class
up in ``sys.modules``: if ``dask.array`` was never imported, no dask array can exist, so plain
NumPy use neither pays for dask nor needs it installed.

Every block goes through the estimator's own in-memory ``transform`` (validation, engine and
all), so a dask array gives exactly the features of its blocks computed in memory.
"""

import copy
import math
import sys

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_feature_names, _check_n_features

# A fit sample of at most this many rows and bytes, whatever the size of the dask array.
FIT_SAMPLE_ROWS = 10_000
FIT_SAMPLE_BYTES = 256 * 2**20
# Rows of a fit sample come from at least this many blocks (when there are that many), so that
# a sample of data sorted by, say, class or date is not read from a single block.
FIT_SAMPLE_MIN_BLOCKS = 8


def is_dask_array(X):
    """Whether ``X`` is a ``dask.array.Array``, without importing dask."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(X, dask_array.Array)


def check_dask_array(estimator, X, *, reset):
    """Check a dask array of images from its metadata alone, as ``validate_data`` would.

    Only the shape, chunks and dtype are read: computing the values would load the whole
    dataset. Each block's values are validated later, when the block goes through the
    estimator's in-memory path. Sets (``reset=True``) or checks ``n_features_in_``.

    Returns
    -------
    X : dask.array.Array
        ``X`` with each sample in a single chunk (chunked along samples only).
    """
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), 3-D (n_samples, height, width) or 4-D "
            f"(n_samples, height, width, channels); got a {X.ndim}-D dask array of shape "
            f"{X.shape}."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold real numbers; got a dask array of dtype {X.dtype}.")
    if any(math.isnan(size) for size in X.shape[1:]):
        raise ValueError(
            f"X is a dask array of shape {X.shape} with unknown sizes beyond the sample axis; "
            f"only the number of samples may be unknown (call X.compute_chunk_sizes())."
        )
    if 0 in X.shape:
        raise ValueError(
            f"X is a dask array of shape {X.shape} with an empty axis; at least one sample "
            f"and one value on every other axis are required."
        )
    _check_feature_names(estimator, X, reset=reset)
    _check_n_features(estimator, X, reset=reset)
    return X.rechunk({axis: -1 for axis in range(1, X.ndim)})


def _transform_block(block, estimator):
    return estimator.transform(block)


def transform(estimator, X):
    """Lazy features of a dask array of images, one in-memory ``transform`` per block.

    The shape of the output comes from the estimator's ``output_shape_`` and ``spec_``;
    ``transform`` has already checked, from the metadata, that ``X`` holds images like those
    seen in fit.

    Parameters
    ----------
    estimator : ConvFeatureTransformer
        A fitted transformer.
    X : dask.array.Array
        Images as accepted by ``estimator.transform``, checked by :func:`check_dask_array`.

    Returns
    -------
    features : dask.array.Array, float32
        Chunked along samples as ``X``; each other axis is one chunk.
    """
    from dask import delayed

    # A snapshot, so that refitting the estimator later does not change this lazy result. It
    # runs single-threaded: dask already computes blocks in parallel.
    block_estimator = copy.deepcopy(estimator).set_params(n_jobs=None)
    output_shape = block_estimator.output_shape_
    sample_shape = (math.prod(output_shape),) if block_estimator.spec_.flatten else output_shape
    n_axes = 1 + len(sample_shape)
    if n_axes < X.ndim:
        axes = {"drop_axis": list(range(n_axes, X.ndim))}
    elif n_axes > X.ndim:
        axes = {"new_axis": list(range(X.ndim, n_axes))}
    else:
        axes = {}
    # One graph key for the estimator: a worker receives it once, not once per block.
    return X.map_blocks(
        _transform_block,
        delayed(block_estimator, pure=True),
        chunks=(X.chunks[0], *((size,) for size in sample_shape)),
        dtype=np.float32,
        meta=np.empty((0, *sample_shape), dtype=np.float32),
        token="conv-features",
        **axes,
    )


def sample_size(X, *, max_rows=FIT_SAMPLE_ROWS, max_bytes=FIT_SAMPLE_BYTES):
    """Rows of the sample that :func:`sample_rows` draws from ``X``, from its metadata alone.

    Computing it takes twice their bytes at the peak: the drawn blocks' rows, then the
    sample they are joined into.
    """
    if any(math.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            "A random sample of a dask array needs its chunk sizes along the samples; call "
            "X.compute_chunk_sizes() first."
        )
    row_bytes = max(1, math.prod(X.shape[1:]) * X.dtype.itemsize)
    return min(max_rows, X.shape[0], max(1, max_bytes // row_bytes))


def sample_rows(
    X,
    random_state=None,
    *,
    max_rows=FIT_SAMPLE_ROWS,
    max_bytes=FIT_SAMPLE_BYTES,
    min_blocks=FIT_SAMPLE_MIN_BLOCKS,
):
    """A bounded random subset of the rows of a dask array, as a NumPy array.

    Whole blocks are drawn at random, as few as hold the sample but at least ``min_blocks``,
    then rows are drawn uniformly without replacement from them. Only the drawn blocks are
    computed, each sliced down to its drawn rows on the workers, so the cost and the memory are
    bounded by the sample, not by ``X``.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, ...)
        Its chunk sizes along the samples must be known.
    random_state : int, RandomState instance or None
        Draws the blocks and the rows.
    max_rows : int
        At most this many rows.
    max_bytes : int
        At most this many bytes (at least one row).
    min_blocks : int
        Rows come from at least this many blocks, or from all of them if there are fewer.

    Returns
    -------
    sample : ndarray of shape (n_rows, ...)
        The drawn rows, in their order in ``X``.
    """
    n_rows = sample_size(X, max_rows=max_rows, max_bytes=max_bytes)
    block_sizes = X.chunks[0]
    rng = check_random_state(random_state)
    order = rng.permutation(len(block_sizes))
    held = np.cumsum(np.asarray(block_sizes)[order])
    n_blocks = max(min_blocks, int(np.searchsorted(held, n_rows)) + 1)
    blocks = np.sort(order[:n_blocks])
    starts = np.concatenate(([0], np.cumsum(np.asarray(block_sizes)[blocks])))
    rows = np.sort(rng.choice(starts[-1], size=n_rows, replace=False))
    import dask.array as da

    parts = [
        X.blocks[int(block)][rows[(rows >= start) & (rows < stop)] - start]
        for block, start, stop in zip(blocks, starts[:-1], starts[1:], strict=True)
    ]
    return da.concatenate(parts).compute()
