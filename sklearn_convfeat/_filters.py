"""Filter banks: pure functions that return filters of shape ``(n_filters, h, w, channels)``.

Every random bank is float32, and every filter has unit L2 norm, so that feature scales do not
depend on the bank or on the filter size. Data-driven banks (``PATCH_BANKS``) learn filters
from a sample of (preprocessed) patches instead; they return flat unit-norm filters in the
patches' space, for :func:`~sklearn_convfeat._patches.fold_preprocessing`.
"""

import warnings

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits


def _unit_norm(filters):
    norms = np.sqrt(np.sum(filters.astype(np.float64) ** 2, axis=(1, 2, 3), keepdims=True))
    return (filters / np.maximum(norms, np.finfo(np.float32).tiny)).astype(np.float32)


def gaussian_bank(n_filters, filter_size, n_channels, random_state):
    """Gaussian random filters, each with zero mean and unit norm.

    A 1x1 single-channel filter cannot have zero mean; it is kept as a unit-norm random sign.
    """
    shape = (n_filters, *filter_size, n_channels)
    filters = random_state.standard_normal(shape)
    if np.prod(shape[1:]) > 1:
        filters -= filters.mean(axis=(1, 2, 3), keepdims=True)
    return _unit_norm(filters)


def uniform_bank(n_filters, filter_size, n_channels, random_state):
    """Filters drawn uniformly from [-1, 1], each scaled to unit norm."""
    filters = random_state.uniform(-1.0, 1.0, size=(n_filters, *filter_size, n_channels))
    return _unit_norm(filters)


def gabor_bank(n_filters, filter_size, n_channels, random_state, n_orientations=8):
    """An oriented, multi-scale bank of Gabor filters.

    Filter ``k`` has orientation ``k mod n_orientations`` (evenly spread over 180 degrees),
    a phase alternating between even (cosine) and odd (sine) every ``n_orientations`` filters,
    and a wavelength that grows by a factor of sqrt(2) every ``2 * n_orientations`` filters,
    from 2 pixels up to the filter size. The envelope's width is half the wavelength. Even
    filters have their mean removed, so no filter responds to flat regions. With several
    channels, each filter is the same on every channel times random positive channel weights,
    so the bank covers colour as well as grey structure. ``random_state`` is used only there.
    """
    rows, cols = filter_size
    y = np.arange(rows) - (rows - 1) / 2
    x = np.arange(cols) - (cols - 1) / 2
    yy, xx = np.meshgrid(y, x, indexing="ij")
    index = np.arange(n_filters)
    theta = np.pi * (index % n_orientations) / n_orientations
    phase = np.where((index // n_orientations) % 2 == 0, 0.0, np.pi / 2)
    n_scales = max(1, -(-n_filters // (2 * n_orientations)))
    longest = max(2.0, float(max(rows, cols)))
    wavelengths = np.geomspace(2.0, longest, n_scales)
    wavelength = wavelengths[index // (2 * n_orientations)][:, None, None]
    sigma = wavelength / 2
    along = xx * np.cos(theta)[:, None, None] + yy * np.sin(theta)[:, None, None]
    envelope = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    filters = envelope * np.cos(2 * np.pi * along / wavelength + phase[:, None, None])
    filters -= np.where(phase[:, None, None] == 0, filters.mean(axis=(1, 2), keepdims=True), 0)
    if n_channels == 1:
        channel_weights = np.ones((n_filters, 1))
    else:
        channel_weights = random_state.uniform(0.0, 1.0, size=(n_filters, n_channels))
    return _unit_norm(filters[..., None] * channel_weights[:, None, None, :])


FILTER_BANKS = {
    "gaussian": gaussian_bank,
    "uniform": uniform_bank,
    "gabor": gabor_bank,
}


def _unit_rows(vectors):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def patches_bank(patches, n_filters, random_state):
    """Random patches, drawn among the higher-contrast half of the sample.

    Flat patches (blank background) would make filters that respond to nothing, so patches
    whose norm is below the median are not drawn.
    """
    norms = np.linalg.norm(patches, axis=1)
    candidates = np.flatnonzero(norms >= np.median(norms))
    chosen = random_state.choice(candidates, n_filters, replace=n_filters > candidates.size)
    return _unit_rows(patches[chosen])


def kmeans_bank(patches, n_filters, random_state):
    """Centroids of spherical k-means (Coates & Ng): k-means of the unit-norm patches.

    With fewer patches than filters (tiny training sets), each patch is a centroid and the
    centroids repeat to make ``n_filters``.
    """
    n_clusters = min(n_filters, patches.shape[0])
    kmeans = MiniBatchKMeans(n_clusters=n_clusters, n_init=1, random_state=random_state)
    # A sample of small patches is tiny work: OpenMP threads cost more than they bring
    # (tens of times more on a busy machine).
    with threadpool_limits(limits=1, user_api="openmp"), warnings.catch_warnings():
        # Duplicate patches (blank background) leave some clusters empty; that is expected.
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans.fit(_unit_rows(patches))
    return np.resize(_unit_rows(kmeans.cluster_centers_), (n_filters, patches.shape[1]))


def pca_bank(patches, n_filters, random_state):
    """Leading principal components of the patches (PCANet): ``n_filters`` of them, or all
    there are when fewer (one per value of a patch, and per patch), as
    :class:`~sklearn.decomposition.PCA` with ``n_components=None``."""
    n_components = min(n_filters, *patches.shape)
    return PCA(n_components=n_components, random_state=random_state).fit(patches).components_


# Banks learnt from patches: fn(patches, n_filters, random_state) -> (n, n_features), with
# n = n_filters unless the bank has fewer to give ('pca').
PATCH_BANKS = {"patches": patches_bank, "kmeans": kmeans_bank, "pca": pca_bank}


def check_filter_array(filters, n_filters, n_channels, image_shape):
    """Validate a user-given filter bank and return it as float32 ``(n_filters, h, w, c)``."""
    array = np.asarray(filters)
    if array.ndim not in (3, 4) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            "filter_init as an array must be numeric of shape (n_filters, height, width) or "
            f"(n_filters, height, width, channels); got an array of shape {array.shape} and "
            f"dtype {array.dtype}."
        )
    if np.iscomplexobj(array) or not np.all(np.isfinite(array)):
        raise ValueError("filter_init as an array must hold finite real numbers.")
    if array.ndim == 3:
        array = array[..., None]
    if array.shape[0] != n_filters:
        raise ValueError(
            f"filter_init holds {array.shape[0]} filters but n_filters={n_filters}; set "
            f"n_filters={array.shape[0]} to use this array."
        )
    if array.shape[3] != n_channels:
        raise ValueError(
            f"filter_init has {array.shape[3]} channels but the images have {n_channels}; "
            f"the filters' last axis must match the images' channels."
        )
    if array.shape[1] > image_shape[0] or array.shape[2] > image_shape[1]:
        raise ValueError(
            f"filter_init holds {array.shape[1]}x{array.shape[2]} filters, larger than the "
            f"{image_shape[0]}x{image_shape[1]} images."
        )
    if min(array.shape[1:3]) < 1:
        raise ValueError(f"filter_init holds empty filters of shape {array.shape[1:3]}.")
    return np.array(array, dtype=np.float32, order="C", copy=True)
