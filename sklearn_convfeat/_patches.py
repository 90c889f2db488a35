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

import numpy as np
from sklearn.feature_extraction.image import extract_patches_2d

from ._shapes import padding_widths

# Regularisers, relative to the data's own variance so that they do not depend on the scale
# of the pixels (0..16, 0..255 or 0..1): Coates & Ng (2011) add 10 to the variance of
# 0..255 patches before normalising them and 0.1 to the eigenvalues of normalised patches.
PATCH_NORM_EPS = 0.1
WHITEN_EPS = 0.1


def sample_patches(images, patch_size, max_patches, random_state):
    """A random sample of at most ``max_patches`` patches of ``images``, flattened.

    Patches are drawn from at most ``max_patches`` random images, an equal number from each,
    with :func:`sklearn.feature_extraction.image.extract_patches_2d`; every patch of the chosen
    images is taken when they have no more than that number.

    Returns
    -------
    patches : ndarray of shape (n_patches, h * w * channels), float64
    """
    n_images = min(images.shape[0], max_patches)
    chosen = np.sort(random_state.choice(images.shape[0], n_images, replace=False))
    per_image = -(-max_patches // n_images)
    n_positions = (images.shape[1] - patch_size[0] + 1) * (images.shape[2] - patch_size[1] + 1)
    if per_image >= n_positions:
        per_image = None
    patches = [
        extract_patches_2d(images[i], patch_size, max_patches=per_image, random_state=random_state)
        for i in chosen
    ]
    patches = np.concatenate(patches).reshape(-1, patch_size[0] * patch_size[1] * images.shape[3])
    return patches[:max_patches].astype(np.float64)


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
    covariance = np.cov(patches - mean, rowvar=False).reshape(mean.size, mean.size)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.maximum(eigenvalues, 0)
    eps = WHITEN_EPS * eigenvalues.mean() + np.finfo(np.float32).tiny
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


def patch_moments(images, patch_size, stride, padding):
    """Mean and variance of every patch a convolution sees, over its pixels and channels.

    Sums over windows come from summed-area tables (float64, so that the variance does not
    suffer from cancellation), with the zero padding that :func:`conv2d` uses.

    Returns
    -------
    mean, var : ndarrays of shape (n, rows, cols), float32
    """
    rows, cols = patch_size
    (top, bottom), (left, right) = padding_widths(patch_size, padding)
    count = rows * cols * images.shape[3]
    moments = []
    for values in (images, np.square(images, dtype=np.float64)):
        summed = values.sum(axis=3, dtype=np.float64)
        table = np.pad(summed, ((0, 0), (top + 1, bottom), (left + 1, right)))
        table = table.cumsum(axis=1).cumsum(axis=2)
        sums = (
            table[:, rows:, cols:]
            - table[:, :-rows, cols:]
            - table[:, rows:, :-cols]
            + table[:, :-rows, :-cols]
        )
        moments.append(sums[:, ::stride, ::stride] / count)
    mean, mean_square = moments
    return mean.astype(np.float32), np.maximum(mean_square - mean**2, 0).astype(np.float32)
