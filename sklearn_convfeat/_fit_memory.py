"""The memory check of ``fit``: every step's bytes counted from the spec and the images'
shapes, before anything is drawn, sampled, learnt or computed.

Pure functions; the byte counts of each step are those of :mod:`~sklearn_convfeat._limits`
(a bank, a dilation's patches and the bank learnt from them, centring's batches), the engine's
working memory that of the plans (:meth:`~sklearn_convfeat._plan.Plan.working_bytes`).
"""

import math
from collections import Counter

from . import _dask, _limits
from ._centring import CENTER_SAMPLES
from ._filters import PATCH_BANKS
from ._limits import bank_bytes, center_batch, check_memory, format_bytes, patch_bytes
from ._patches import patch_count, smooth_batch
from ._plan import make_plan
from ._shapes import footprint
from ._threads import thread_count


def check_fit_memory(X, spec, image_shape, shapes, *, filter_init, max_patches, moments, n_jobs):
    """Raise :class:`~sklearn_convfeat.MemoryLimitError` if a step of fit would need more
    memory than is available: a named bank, a dask array's samples, the patches of each
    dilation of ``spec`` and the bank learnt from them, the centring's batches.

    Parameters
    ----------
    X : ndarray, list of ndarray or dask array
        The validated training images.
    spec : FeatureSpec
    image_shape : tuple
        ``(H, W, C)``, or ``(None, None, C)`` for images of several sizes.
    shapes : list of tuple or None
        The shapes of images of several sizes; None for an array.
    filter_init : str or ndarray
        A bank's name, or given filters.
    max_patches : int
    moments : bool
        Whether fit learns the features' moments (``center`` or ``feature_norm``).
    n_jobs : int or None

    Returns
    -------
    batch : int or None
        The images centring computes at once (:func:`~sklearn_convfeat._limits.center_batch`);
        None without ``moments``.
    """
    available = _limits.available_memory()
    named = isinstance(filter_init, str)
    if named:
        check_memory(
            bank_bytes(spec.n_filters, spec.filter_size, image_shape[2]),
            f"A bank of {spec.n_filters} filters of shape {spec.filter_size + image_shape[2:]}",
            "Use fewer filters (n_filters) or smaller ones (filter_size).",
            available,
        )
    learnt = named and filter_init in PATCH_BANKS
    reads_patches = spec.patch_norm or learnt
    # Images that the patches and the centring are drawn from; for a dask array, its samples,
    # computed into memory (the centring's held while its features are).
    patch_images = center_images = held = 0
    if _dask.is_dask_array(X):
        row_bytes = math.prod(X.shape[1:]) * X.dtype.itemsize
        if reads_patches:
            patch_images = _check_dask_sample(
                _dask.sample_size(X),
                row_bytes,
                "the patches",
                "a random bank (filter_init='gaussian', 'uniform' or 'gabor') with "
                "patch_norm=False",
                available,
            )
        if moments:
            center_images = _check_dask_sample(
                _dask.sample_size(X, max_rows=CENTER_SAMPLES),
                row_bytes,
                "centring",
                "center=False",
                available,
            )
            held = center_images * row_bytes
    else:
        patch_images = center_images = len(X)
    if reads_patches:
        sizes = Counter(image.shape for image in X) if shapes else {image_shape: patch_images}
        for dilation, count in spec.dilations:
            _check_patches(
                spec, image_shape, sizes, dilation, count if learnt else 0, max_patches,
                smoothed_at_once=min(1 if shapes else smooth_batch(image_shape), patch_images),
                available=available,
            )  # fmt: skip
    if not moments:
        return None
    return _check_centring(X, spec, image_shape, shapes, center_images, held, n_jobs, available)


def _check_dask_sample(n_rows, row_bytes, purpose, change, available):
    """Check the sample of ``n_rows`` rows of a dask array drawn for ``purpose``; return
    ``n_rows``."""
    check_memory(
        2 * n_rows * row_bytes,
        f"A sample of {n_rows} images of the dask array for {purpose} "
        f"({format_bytes(row_bytes)} each, computed then joined)",
        f"Use {change}.",
        available,
    )
    return n_rows


def _check_patches(
    spec, image_shape, sizes, dilation, n_learnt, max_patches, *, smoothed_at_once, available
):
    """Check sampling the patches of ``dilation`` from images of ``sizes`` (shape -> count)
    and learning ``n_learnt`` filters from them (0: none)."""
    filter_size, channels = spec.filter_size, image_shape[2]
    span = footprint(filter_size, dilation)
    n_patches = min(max_patches, patch_count(sizes, span))
    smoothed = 0
    if spec.antialias and dilation > 1:
        smoothed = smoothed_at_once * max(map(math.prod, sizes))
    needed = patch_bytes(
        n_patches,
        math.prod(span) * channels,
        math.prod(filter_size) * channels,
        n_learnt,
        smoothed,
    )
    learning = f" and learning {n_learnt} filters from them" * bool(n_learnt)
    check_memory(
        needed,
        f"Sampling {n_patches} patches of {span[0]}x{span[1]}x{channels} pixels "
        f"(dilation {dilation}){learning}",
        "Use a smaller max_patches, smaller filters (filter_size) or smaller dilations.",
        available,
    )


def _check_centring(X, spec, image_shape, shapes, center_images, held, n_jobs, available):
    """Check centring the features of at most :data:`CENTER_SAMPLES` of ``center_images``
    images, a dask array's sample of ``held`` bytes held meanwhile; return the images
    computed at once."""
    plans = [make_plan(spec, shape) for shape in shapes or [image_shape]]
    n_features = math.prod(plans[0].output_shape)
    n_samples = min(CENTER_SAMPLES, center_images)
    # Per image: its features (twice for a list: by shape, then in order) and its copy.
    copy_bytes = 0 if shapes else math.prod(image_shape) * X.dtype.itemsize
    image_bytes = 4 * n_features * (2 if shapes else 1) + copy_bytes
    n_threads = thread_count(n_jobs)
    # The engine's buffers stop growing at a chunk of images per thread: those of all the
    # images bound those of any batch of them.
    working = max(plan.working_bytes(n_samples, n_threads=n_threads) for plan in plans)
    # The mean in float64 and float32, an image's features in float64 (for their spread); a
    # dask array's sample, held meanwhile.
    fixed = 20 * n_features + working + held
    batch = center_batch(image_bytes, n_samples, fixed, available)
    check_memory(
        batch * image_bytes + fixed,
        f"Centring the features (center=True) of {batch} image{'s' * (batch > 1)} at a "
        f"time ({n_features} float32, {format_bytes(4 * n_features)} per image) with "
        f"{format_bytes(working)} of working memory",
        "Use fewer filters (n_filters), a larger pool_size, a small pool_grid or a larger "
        "stride, or center=False.",
        available,
    )
    return batch
