"""Data-driven filter banks, patch sampling, normalisation and whitening."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.linalg import fractional_matrix_power
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_digits

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat._patches import (
    fold_preprocessing,
    normalize_patches,
    patch_moments,
    sample_patches,
    zca_whitening,
)


@pytest.fixture(scope="module")
def digits_images():
    X, _ = load_digits(return_X_y=True)
    return X[:200].reshape(-1, 8, 8)


def all_patches(images, size):
    """Every size x size patch of (n, H, W, C) images, flattened (h, w, c), by plain loops."""
    n, height, width, _ = images.shape
    return np.array(
        [
            images[k, i : i + size, j : j + size].ravel()
            for k in range(n)
            for i in range(height - size + 1)
            for j in range(width - size + 1)
        ]
    )


@pytest.mark.parametrize("filter_init", ["patches", "kmeans", "pca"])
def test_data_driven_banks_are_deterministic_for_a_random_state(filter_init, digits_images):
    params = dict(filter_init=filter_init, n_filters=8, filter_size=3, patch_norm=True)
    first = ConvFeatureTransformer(random_state=0, **params).fit(digits_images)
    second = ConvFeatureTransformer(random_state=0, **params).fit(digits_images)
    assert_array_equal(first.filters_, second.filters_)
    assert_array_equal(first.bias_, second.bias_)
    assert_array_equal(first.transform(digits_images), second.transform(digits_images))
    if filter_init != "pca":
        other = ConvFeatureTransformer(random_state=1, **params).fit(digits_images)
        assert not np.allclose(first.filters_, other.filters_)


def test_sample_patches_is_bounded_and_drawn_from_the_images(digits_images):
    images = digits_images[..., None].astype(np.float32)
    patches = sample_patches(images, (3, 3), 500, np.random.RandomState(0))
    assert patches.shape == (500, 9)
    every_patch = {tuple(p) for p in all_patches(images, 3)}
    assert all(tuple(p) in every_patch for p in patches)


@pytest.mark.parametrize("as_list", [False, True])
def test_sample_patches_with_sigma_are_patches_of_the_smoothed_images(digits_images, as_list):
    """The same draws as without smoothing, read from each whole image smoothed by SciPy's
    Gaussian (edges repeated); images smoothed a batch at a time, or one by one for a list."""
    images = np.kron(digits_images[:300], np.ones((2, 2)))[..., None]  # 16x16
    smoothed = gaussian_filter(images, sigma=(0, 1, 1, 0), mode="nearest")
    given = list(images) if as_list else images
    patches = sample_patches(given, (5, 5), 4000, np.random.RandomState(0), sigma=1.0)
    expected = sample_patches(smoothed, (5, 5), 4000, np.random.RandomState(0))
    assert_allclose(patches, expected, rtol=1e-12, atol=1e-10)


def test_dilated_filters_are_learnt_on_the_smoothed_images(digits_images):
    """With antialias, the bank of a dilation is learnt from the images its filters read: the
    same bank as without antialias on images smoothed beforehand."""
    images = np.kron(digits_images, np.ones((3, 3)))  # 24x24
    params = dict(n_filters=8, dilation=3, max_patches=500, random_state=0)
    learnt = ConvFeatureTransformer(antialias=True, **params).fit(images)
    smoothed = gaussian_filter(images, sigma=(0, 1, 1), mode="nearest")
    expected = ConvFeatureTransformer(antialias=False, **params).fit(smoothed)
    assert_allclose(learnt.filters_, expected.filters_, rtol=1e-5, atol=1e-6)
    assert_allclose(learnt.patch_norm_eps_, expected.patch_norm_eps_, rtol=1e-10)


def test_zca_whitening_is_the_regularised_inverse_square_root_of_the_covariance():
    rng = np.random.RandomState(0)
    patches = rng.standard_normal((2000, 6)) @ rng.standard_normal((6, 6)) + 3.0
    mean, whitening = zca_whitening(patches)
    covariance = np.cov(patches, rowvar=False, bias=True)
    eps = 0.1 * np.trace(covariance) / 6
    expected = fractional_matrix_power(covariance + eps * np.eye(6), -0.5).real
    assert_allclose(mean, patches.mean(axis=0))
    assert_allclose(whitening, expected, rtol=1e-8, atol=1e-10)


def test_folded_filters_equal_filters_on_whitened_patches():
    rng = np.random.RandomState(0)
    patches = rng.standard_normal((300, 6)) @ rng.standard_normal((6, 6))
    mean, whitening = zca_whitening(patches)
    filters = rng.standard_normal((4, 6))
    folded, bias = fold_preprocessing(filters, mean, whitening)
    whitened = np.array([whitening @ (p - mean) for p in patches])
    assert_allclose(patches @ folded.T + bias, whitened @ filters.T, atol=1e-10)


def test_normalize_patches_gives_zero_mean_and_regularised_unit_variance():
    rng = np.random.RandomState(0)
    patches = rng.uniform(0, 10, size=(50, 9))
    normalised = normalize_patches(patches, eps=2.0)
    for raw, out in zip(patches, normalised, strict=True):
        assert_allclose(out, (raw - raw.mean()) / np.sqrt(raw.var() + 2.0))


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", [1, 2])
def test_patch_moments_match_a_loop_over_patches(padding, stride):
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 255, size=(2, 7, 6, 3)).astype(np.float32)
    size = (3, 2)
    padded = images
    if padding == "same":
        padded = np.pad(images, ((0, 0), (1, 1), (0, 1), (0, 0)))
    mean, var = patch_moments(images, size, stride, padding)
    rows = range(0, padded.shape[1] - size[0] + 1, stride)
    cols = range(0, padded.shape[2] - size[1] + 1, stride)
    assert mean.shape == var.shape == (2, len(rows), len(cols))
    for k in range(2):
        for a, i in enumerate(rows):
            for b, j in enumerate(cols):
                patch = padded[k, i : i + size[0], j : j + size[1]].astype(np.float64)
                assert_allclose(mean[k, a, b], patch.mean(), rtol=1e-5)
                assert_allclose(var[k, a, b], patch.var(), rtol=1e-4, atol=1e-2)


def test_whitened_pca_features_have_the_whitened_spectrum(digits_images):
    """PCA filters learnt on whitened patches, folded: the features of all patches are
    uncorrelated with variances lambda / (lambda + eps) of the raw patches' covariance."""
    images = digits_images[:60, ..., None]
    conv = ConvFeatureTransformer(
        filter_init="pca",
        n_filters=9,
        filter_size=3,
        dilation=1,
        whiten=True,
        patch_norm=False,
        max_patches=60 * 36,
        activation="identity",
        padding="valid",
        pool_size=1,
        pool_grid=None,
        center=False,
        random_state=0,
    ).fit(images)
    features = conv.transform(images).reshape(-1, 9).astype(np.float64)
    eigenvalues = np.linalg.eigvalsh(np.cov(all_patches(images, 3), rowvar=False, bias=True))
    expected = eigenvalues / (eigenvalues + 0.1 * eigenvalues.mean())
    covariance = np.cov(features, rowvar=False, bias=True)
    assert_allclose(features.mean(axis=0), 0, atol=1e-4)
    assert_allclose(np.sort(np.diag(covariance)), np.sort(expected), rtol=1e-3, atol=1e-5)
    assert_allclose(covariance - np.diag(np.diag(covariance)), 0, atol=1e-4)


def test_patch_norm_features_match_normalise_then_filter(digits_images):
    """transform normalises every patch, then applies the filters and the biases."""
    images = digits_images[:5, ..., None]
    conv = ConvFeatureTransformer(
        filter_init="kmeans",
        n_filters=6,
        filter_size=3,
        dilation=1,
        patch_norm=True,
        whiten=True,
        activation="identity",
        padding="valid",
        pool_size=1,
        pool_grid=None,
        center=False,
        random_state=0,
    ).fit(digits_images)
    patches = all_patches(images, 3)
    eps = conv.patch_norm_eps_
    normalised = (patches - patches.mean(1, keepdims=True)) / np.sqrt(
        patches.var(1, keepdims=True) + eps
    )
    expected = normalised @ conv.filters_.reshape(6, -1).T.astype(np.float64) + conv.bias_
    assert_allclose(conv.transform(images).reshape(-1, 6), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("filter_init", ["patches", "kmeans", "pca"])
def test_data_driven_features_do_not_depend_on_the_pixel_scale(filter_init, digits_images):
    params = dict(
        filter_init=filter_init, n_filters=8, filter_size=3, patch_norm=True, random_state=0
    )
    small = ConvFeatureTransformer(**params).fit_transform(digits_images / 16)
    large = ConvFeatureTransformer(**params).fit_transform(digits_images * 16)
    assert_allclose(small, large, rtol=1e-3, atol=1e-4)


def test_a_pca_bank_holds_as_many_filters_as_it_can_give(digits_images):
    """3x3 grey filters have 9 values: 9 principal components, a whole orthonormal basis, of
    the 10 (then 20 over two dilations) asked for; the output follows the bank."""
    conv = ConvFeatureTransformer(
        filter_init="pca", n_filters=10, filter_size=3, dilation=1, whiten=False, random_state=0
    )
    with pytest.warns(UserWarning, match=r"holds 9 filters \(9 at dilation 1\) of the n_filt"):
        conv.fit(digits_images)
    assert conv.n_filters_ == len(conv.filters_) == 9
    assert conv.output_shape_ == (14, 9)
    assert conv.transform(digits_images[:3]).shape == (3, 14 * 9)
    assert len(conv.get_feature_names_out()) == 14 * 9
    # The whitening is off: the filters are the components, unit-norm and orthogonal.
    flat = conv.filters_.reshape(9, 9).astype(np.float64)
    assert_allclose(flat @ flat.T, np.eye(9), atol=1e-5)
    conv.set_params(n_filters=20, dilation=(1, 2))
    with pytest.warns(UserWarning, match=r"holds 18 filters \(9 at dilation 1, 9 at dilati"):
        conv.fit(digits_images)
    assert conv.n_filters_ == 18
    assert_array_equal(conv.dilations_, [1] * 9 + [2] * 9)
    # As many as it can give, without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert conv.set_params(n_filters=18).fit(digits_images).n_filters_ == 18


def test_random_banks_ignore_whitening(digits_images):
    params = dict(filter_init="gaussian", n_filters=4, filter_size=3, random_state=0)
    whitened = ConvFeatureTransformer(whiten=True, **params).fit(digits_images)
    plain = ConvFeatureTransformer(whiten=False, **params).fit(digits_images)
    assert_array_equal(whitened.filters_, plain.filters_)
    assert_array_equal(whitened.bias_, 0)


@pytest.mark.parametrize("whiten", [True, False])
def test_kmeans_on_fewer_patches_than_filters_repeats_centroids(whiten):
    images = np.random.RandomState(0).uniform(0, 1, size=(2, 3, 3))
    conv = ConvFeatureTransformer(
        filter_init="kmeans", n_filters=10, filter_size=3, whiten=whiten, random_state=0
    ).fit(images)
    flat = conv.filters_.reshape(10, -1)
    assert np.all(np.isfinite(flat))
    assert len({tuple(f) for f in flat}) == 2
    assert np.all(np.isfinite(conv.transform(images)))


def test_constant_images_give_finite_zero_features():
    images = np.full((3, 6, 6), 7.0)
    conv = ConvFeatureTransformer(
        filter_init="kmeans",
        n_filters=4,
        filter_size=3,
        patch_norm=True,
        padding="valid",
        pool_grid=1,
        random_state=0,
    ).fit(images)
    features = conv.transform(images)
    assert np.all(np.isfinite(features))
    assert_allclose(features, 0, atol=1e-6)
