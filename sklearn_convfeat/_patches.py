"""Patches: sampling them for data-driven banks, normalising them, whitening them.

Pure functions over arrays. A patch is flattened in the filters' layout ``(h, w, channels)``,
so that a filter of shape ``(h, w, channels)`` is a vector of the same space.

Whitening and centring are linear, so a filter ``c`` applied to whitened, centred patches
``(p - mean) @ W`` equals the filter ``W @ c`` applied to the raw patch ``p`` plus the bias
``-(W @ c) . mean``: :func:`fold_preprocessing` turns a bank learnt in the whitened space into
filters and biases for the raw images, so that transform needs nothing else. Per-patch
normalisation is not linear; the engine computes it exactly from the patches' moments
(:func:`patch_moments`), at a cost independent of the number of filters.
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter1d
from sklearn.utils import gen_batches
from sklearn.utils.random import sample_without_replacement

from ._shapes import SMOOTH_TRUNCATE, padding_widths

# Images smoothed at once while sampling patches from smoothed images, at most: bounds the
# copies (the images, their float64 copy and its smoothed rows), in number and in bytes.
SMOOTH_BATCH = 256
SMOOTH_BYTES = 32 * 2**20

# Regularisers, relative to the data's own variance so that they do not depend on the scale
# of the pixels (0..16, 0..255 or 0..1): Coates & Ng (2011) add 10 to the variance of
# 0..255 patches before normalising them and 0.1 to the eigenvalues of normalised patches.
PATCH_NORM_EPS = 0.1
WHITEN_EPS = 0.1


def smooth(images, sigma, axes, *, rows=None, output=None, scratch=None):
    """``images`` smoothed by a Gaussian of standard deviation ``sigma`` along the two
    ``axes`` (rows, then columns), the edge pixels repeated beyond the image (SciPy's
    ``'nearest'`` mode).

    With ``rows`` (a slice along ``axes[0]``), only those rows are returned: the others are
    only read, as the rows around a band of a large image. The rows' pass goes into
    ``scratch`` (of the images' shape), the result into ``output`` (of the kept rows' shape);
    new float64 arrays if not given.
    """
    options = dict(mode="nearest", truncate=SMOOTH_TRUNCATE)
    if scratch is None:
        images = np.asarray(images, dtype=np.float64)
        scratch = np.empty_like(images)
    gaussian_filter1d(images, sigma, axis=axes[0], output=scratch, **options)
    if rows is not None:
        scratch = scratch[(slice(None),) * axes[0] + (rows,)]
    if output is None:
        output = scratch
    gaussian_filter1d(scratch, sigma, axis=axes[1], output=output, **options)
    return output


def sample_patches(images, patch_size, max_patches, random_state, sigma=0.0):
    """A random sample of ``max_patches`` distinct patches of ``images`` (all if fewer), flattened.

    As :func:`sklearn.feature_extraction.image.extract_patches_2d`, patches are read from a
    strided view of the images; but positions are drawn once over all images, so that the
    cost does not grow with the number of images. ``images`` is an ``(n, H, W, C)`` array or
    a list of ``(H_i, W_i, C)`` arrays of any sizes, each position of each image as likely.
    With ``sigma``, the patches are those of the images smoothed by :func:`smooth` (only the
    images a patch is drawn from, a few at a time).

    Returns
    -------
    patches : ndarray of shape (n_patches, h * w * channels), float64
    """
    shapes = [image.shape[:2] for image in images]
    counts = [(h - patch_size[0] + 1) * (w - patch_size[1] + 1) for h, w in shapes]
    offsets = np.cumsum([0, *counts])
    if max_patches >= offsets[-1]:
        chosen = np.arange(offsets[-1])
    else:
        chosen = np.sort(
            sample_without_replacement(offsets[-1], max_patches, random_state=random_state)
        )
    if isinstance(images, np.ndarray):
        owners, positions = np.divmod(chosen, counts[0])
        if not sigma:
            return _patches_at(images, owners, positions, patch_size)
        # Only the images patches are drawn from are smoothed, a batch at a time.
        used, local = np.unique(owners, return_inverse=True)
        parts = []
        for batch in gen_batches(len(used), smooth_batch(images.shape[1:])):
            inside = (local >= batch.start) & (local < batch.stop)
            smoothed = smooth(images[used[batch]], sigma, axes=(1, 2))
            parts.append(
                _patches_at(smoothed, local[inside] - batch.start, positions[inside], patch_size)
            )
        return np.concatenate(parts)
    owners = np.searchsorted(offsets, chosen, side="right") - 1
    parts = []
    for index in np.unique(owners):
        image = images[index][None]
        if sigma:
            image = smooth(image, sigma, axes=(1, 2))
        positions = chosen[owners == index] - offsets[index]
        parts.append(_patches_at(image, np.zeros_like(positions), positions, patch_size))
    return np.concatenate(parts)


def patch_count(sizes, patch_size):
    """Positions of patches of ``patch_size`` in images of the ``{(H, W, C): count}``
    ``sizes``: what :func:`sample_patches` draws from."""
    rows, cols = patch_size
    return sum(
        count * max(0, h - rows + 1) * max(0, w - cols + 1) for (h, w, _), count in sizes.items()
    )


def smooth_batch(image_shape):
    """Images of ``image_shape`` that :func:`sample_patches` smooths at once: at most
    :data:`SMOOTH_BATCH`, and :data:`SMOOTH_BYTES` of float64 (one image at least)."""
    return max(1, min(SMOOTH_BATCH, SMOOTH_BYTES // (8 * math.prod(image_shape))))


def _patches_at(images, owners, positions, patch_size):
    """The flattened float64 patches of ``(n, H, W, C)`` ``images`` at ``positions`` (row-major
    indices of the valid windows) of images ``owners``."""
    windows = sliding_window_view(images, patch_size, axis=(1, 2))
    rows, cols = np.divmod(positions, windows.shape[2])
    # windows are (n, rows, cols, channels, h, w); patches are flattened as (h, w, channels).
    patches = windows[owners, rows, cols].transpose(0, 2, 3, 1)
    return patches.reshape(len(positions), -1).astype(np.float64)


def dilated_taps(patches, patch_size, dilation):
    """The values of flattened ``patches`` of ``patch_size`` (a dilated filter's footprint)
    under the filter's taps, ``dilation`` pixels apart.

    Returns
    -------
    taps : ndarray of shape (n_patches, h * w * channels)
    """
    patches = patches.reshape(len(patches), *patch_size, -1)[:, ::dilation, ::dilation]
    return patches.reshape(len(patches), -1)


def patch_norm_eps(patches):
    """The variance added before dividing patches by their standard deviation."""
    return PATCH_NORM_EPS * float(np.mean(np.var(patches, axis=1))) + np.finfo(np.float32).tiny


def normalize_patches(patches, eps):
    """Remove each patch's mean and divide it by ``sqrt(variance + eps)``."""
    centred = patches - patches.mean(axis=1, keepdims=True)
    return centred / np.sqrt(np.mean(centred**2, axis=1, keepdims=True) + eps)


def zca_whitening(patches):
    """The symmetric (ZCA) whitening matrix of ``patches``, regularised.

    Returns
    -------
    mean : ndarray of shape (n_features,)
    whitening : ndarray of shape (n_features, n_features), symmetric
        ``(patches - mean) @ whitening`` has a covariance close to the identity; eigenvalues
        smaller than ``WHITEN_EPS`` times their mean are damped rather than blown up.
    """
    mean = patches.mean(axis=0)
    centred = patches - mean
    covariance = centred.T @ centred / patches.shape[0]
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.maximum(eigenvalues, 0)
    # Identical patches have nothing to whiten: eps=1 then makes the whitening the identity.
    eps = WHITEN_EPS * eigenvalues.mean() or 1.0
    return mean, (eigenvectors / np.sqrt(eigenvalues + eps)) @ eigenvectors.T


def fold_preprocessing(filters, mean, whitening):
    """Filters and biases on raw patches equal to ``filters`` on ``(patch - mean) @ whitening``.

    Parameters
    ----------
    filters : ndarray of shape (n_filters, n_features)
    mean : ndarray of shape (n_features,)
    whitening : ndarray of shape (n_features, n_features), symmetric, or None (identity)

    Returns
    -------
    folded : ndarray of shape (n_filters, n_features)
    bias : ndarray of shape (n_filters,)
    """
    folded = filters if whitening is None else filters @ whitening
    return folded, -(folded @ mean)


def patch_moments(images, patch_size, stride, padding, positions=None):
    """Mean and variance of every patch a convolution sees, over its pixels and channels.

    Sums over windows in float64 (so that the variance does not suffer from cancellation):
    down the columns as ``patch_size[0]`` additions of shifted rows, then across as
    differences of cumulative sums, with the zero padding of ``padding`` (``'same'`` as
    :func:`scipy.signal.correlate2d`; the engine passes images it has padded already, with
    ``'valid'``). With ``positions=(rows, cols)``, only the first ``rows`` x ``cols``
    positions, and only the pixels they read (a band of one row of a large image reads
    ``patch_size[0]`` rows of it).

    Returns
    -------
    mean, var : ndarrays of shape (n, rows, cols), float32
    """
    size_rows, size_cols = patch_size
    (top, bottom), (left, right) = padding_widths(patch_size, padding)
    if positions is None:
        positions = [
            (length + before + after - size) // stride + 1
            for length, (before, after), size in zip(
                images.shape[1:3], ((top, bottom), (left, right)), patch_size, strict=True
            )
        ]
    rows, cols = positions
    used_rows, used_cols = stride * (rows - 1) + size_rows, stride * (cols - 1) + size_cols
    # Rows and columns past the used ones in the padded image are past them unpadded too.
    images = images[:, :used_rows, :used_cols]
    count = size_rows * size_cols * images.shape[3]
    moments = []
    for values in (images, np.square(images, dtype=np.float64)):
        plane = values.sum(axis=3, dtype=np.float64)
        if top or bottom or left or right:
            plane = np.pad(plane, ((0, 0), (top, bottom), (left, right)))
        plane = plane[:, :used_rows, :used_cols]
        down = plane[:, 0 : stride * (rows - 1) + 1 : stride].copy()
        for dy in range(1, size_rows):
            down += plane[:, dy : dy + stride * (rows - 1) + 1 : stride]
        table = np.zeros((len(plane), rows, used_cols + 1))
        np.cumsum(down, axis=2, out=table[:, :, 1:])
        ends = table[:, :, size_cols : size_cols + stride * (cols - 1) + 1 : stride]
        moments.append((ends - table[:, :, 0 : stride * (cols - 1) + 1 : stride]) / count)
    mean, mean_square = moments
    return mean.astype(np.float32), np.maximum(mean_square - mean**2, 0).astype(np.float32)
