"""Encodings (threshold, two-sided rectification), rms/ppv pooling and pyramids."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat._variants import ACTIVATIONS


def make(**params):
    """A transformer with every parameter these tests depend on given explicitly."""
    fixed = dict(
        n_filters=3,
        filter_size=3,
        dilation=1,
        filter_init="gaussian",
        padding="same",
        activation="relu",
        threshold=0.0,
        pooling="max",
        pool_size=None if params.get("pool_grid") is not None else 2,
        pool_grid=None,
        balance_levels=False,  # the levels' weights: tests/test_parameters.py
        patch_norm=False,
        whiten=False,
        center=False,
        random_state=0,
    )
    return ConvFeatureTransformer(**{**fixed, **params})


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).uniform(0, 1, size=(4, 9, 10, 2))


def reference_pool(maps, grid, reduce):
    """Pool (n, R, C, F) maps onto a grid of nearly equal regions, by loops."""
    n, height, width, n_maps = maps.shape
    rows = [(i * height) // grid[0] for i in range(grid[0] + 1)]
    cols = [(j * width) // grid[1] for j in range(grid[1] + 1)]
    out = np.empty((n, grid[0], grid[1], n_maps))
    for i in range(grid[0]):
        for j in range(grid[1]):
            region = maps[:, rows[i] : rows[i + 1], cols[j] : cols[j + 1]]
            out[:, i, j] = reduce(region.reshape(n, -1, n_maps))
    return out


REDUCTIONS = {
    "max": lambda r: r.max(axis=1),
    "avg": lambda r: r.mean(axis=1),
    "rms": lambda r: np.sqrt((r**2).mean(axis=1)),
    "ppv": lambda r: (r > 0).mean(axis=1),
}


@pytest.mark.parametrize("mode", list(REDUCTIONS))
def test_pooling_modes_match_a_loop_over_regions(mode):
    """With one-hot 1x1 filters and no activation, the maps are the images' channels."""
    maps = np.random.RandomState(0).standard_normal((3, 7, 9, 4)).astype(np.float32)
    one_hot = np.eye(4).reshape(4, 1, 1, 4)
    conv = make(n_filters=4, filter_init=one_hot, activation="identity", pooling=mode)
    conv.set_params(pool_size=None, pool_grid=(3, 2), flatten=False)
    expected = reference_pool(maps.astype(np.float64), (3, 2), REDUCTIONS[mode])
    assert_allclose(conv.fit_transform(maps), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "activation, reference",
    [
        ("relu", lambda z, t: np.maximum(z - t, 0)),
        ("abs", lambda z, t: np.maximum(np.abs(z) - t, 0)),
        ("identity", lambda z, t: z - t),
        ("tanh", lambda z, t: np.tanh(z - t)),
        (
            "two_sided",
            lambda z, t: np.concatenate([np.maximum(z - t, 0), np.maximum(-z - t, 0)], axis=3),
        ),
    ],
)
@pytest.mark.parametrize("threshold", [0.0, 0.3])
def test_activations_with_a_threshold_match_their_formula(activation, reference, threshold):
    maps = np.random.RandomState(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    expected = reference(maps.astype(np.float64), threshold)
    variant = ACTIVATIONS[activation]
    given = maps.copy()
    out = given if variant.maps_per_filter == 1 else np.empty_like(expected, dtype=np.float32)
    assert_allclose(variant.apply(given, threshold, out), expected, rtol=1e-6, atol=1e-6)
    assert len(variant.map_names(5)) == expected.shape[-1]


@pytest.mark.parametrize("pooling", ["max", "avg", "rms", "ppv"])
def test_pyramid_concatenates_each_grid_pooled_from_the_same_maps(images, pooling):
    params = dict(n_filters=3, filter_size=3, padding="same", activation="two_sided", threshold=0.1)
    pyramid = make(pool_grid=[1, (2, 3), 4], pooling=pooling, random_state=0, **params).fit(images)
    maps = make(pool_size=1, flatten=False, random_state=0, **params)
    maps = maps.fit(images).transform(images).astype(np.float64)
    expected = np.concatenate(
        [
            reference_pool(maps, grid, REDUCTIONS[pooling]).reshape(len(images), -1)
            for grid in [(1, 1), (2, 3), (4, 4)]
        ],
        axis=1,
    )
    assert pyramid.output_shape_ == (1 + 6 + 16, 6)
    assert_allclose(pyramid.transform(images), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params, n_features",
    [
        (dict(activation="relu", pool_grid=2), 2 * 2 * 3),
        (dict(activation="two_sided", pool_grid=2), 2 * 2 * 6),
        (dict(activation="two_sided", pool_size=2), 4 * 5 * 6),
        (dict(activation="relu", pool_grid=[1, 2, 4]), 21 * 3),
        (dict(activation="two_sided", pool_grid=[(1, 2), 3]), 11 * 6),
        (dict(activation="relu", pool_grid=((1, 1), (2, 2))), 5 * 3),
        (dict(activation="relu", pool_grid=(2, 3)), 6 * 3),
    ],
)
def test_feature_names_are_unique_and_as_many_as_the_features(images, params, n_features):
    conv = make(n_filters=3, filter_size=3, padding="same", random_state=0, **params).fit(images)
    names = conv.get_feature_names_out()
    assert conv.transform(images).shape == (len(images), n_features)
    assert len(names) == len(set(names)) == n_features
    assert np.prod(conv.output_shape_) == n_features


def test_two_sided_features_and_names_follow_the_output_order(images):
    params = dict(n_filters=2, filter_size=3, threshold=0.2, pool_grid=[1, 2])
    conv = make(activation="two_sided", random_state=0, **params).fit(images)
    names = conv.get_feature_names_out()
    assert names[:4].tolist() == [
        "f0_pos_g1x1_y0_x0",
        "f1_pos_g1x1_y0_x0",
        "f0_neg_g1x1_y0_x0",
        "f1_neg_g1x1_y0_x0",
    ]
    assert names[-1] == "f1_neg_g2x2_y1_x1"
    positive = make(filter_init=conv.filters_, activation="relu", **params)
    negative = make(filter_init=-conv.filters_, activation="relu", **params)
    features = conv.transform(images).reshape(len(images), 5, 2, 2)
    expected = np.stack(
        [
            positive.fit_transform(images).reshape(len(images), 5, 2),
            negative.fit_transform(images).reshape(len(images), 5, 2),
        ],
        axis=2,
    )
    assert_allclose(features, expected, rtol=1e-6, atol=1e-6)


def test_two_sided_flatten_false_gives_twice_the_maps_for_a_next_layer(images):
    first = make(n_filters=3, activation="two_sided", padding="valid", flatten=False)
    maps = first.fit_transform(images)
    assert maps.shape == (len(images), *first.output_shape_) == (4, 3, 4, 6)
    second = make(n_filters=5, filter_size=2, pool_grid=1, random_state=0)
    assert second.fit_transform(maps).shape == (4, 5)


def test_pyramid_needs_flatten(images):
    conv = make(pool_grid=[1, 2], flatten=False)
    with pytest.raises(ValueError, match="flatten=False needs one grid"):
        conv.fit(images)


@pytest.mark.parametrize("pool_grid", [[], [0, 2], [(1, 2, 3)]])
def test_bad_pyramids_are_rejected(images, pool_grid):
    with pytest.raises((ValueError, TypeError), match="pool_grid"):
        make(pool_grid=pool_grid).fit(images)
