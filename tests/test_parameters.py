"""Every parameter means what it says: set alone, it changes the features (or their shape), or
it is documented as not changing them; conflicting settings are errors that name them."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import StrOptions

from sklearn_convfeat import ConvFeatureTransformer

# A valid value other than the default for every parameter. A parameter added to the
# estimator without an entry here fails test_every_parameter_has_a_value_to_try.
NON_DEFAULTS = {
    "n_filters": 32,
    "filter_size": 3,
    "dilation": 2,
    "antialias": False,
    "filter_init": "gaussian",
    "image_shape": (4, 16),
    "stride": 2,
    "padding": "valid",
    "activation": "abs",
    "threshold": 0.5,
    "pooling": "avg",
    "pool_size": 4,
    "pool_grid": 2,
    "balance_levels": False,
    "whiten": False,
    "patch_norm": False,
    "max_patches": 500,
    "flatten": False,
    "center": False,
    "feature_norm": "auto",
    "random_state": 1,
    "n_jobs": 2,
    "batch_size": 7,
}

# Documented as never changing the features.
NO_EFFECT = {"n_jobs", "batch_size"}
# Documented as acting on dilated filters only, which 8x8 images do not keep by default:
# tested alone on larger images below.
DILATED_ONLY = {"antialias"}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def baseline(digits):
    return ConvFeatureTransformer(random_state=0).fit_transform(digits[0])


def test_every_parameter_has_a_value_to_try():
    defaults = ConvFeatureTransformer().get_params()
    assert set(NON_DEFAULTS) == set(defaults)
    for name, value in NON_DEFAULTS.items():
        assert value != defaults[name], name


@pytest.mark.parametrize("name", sorted(NON_DEFAULTS))
def test_each_parameter_alone_changes_the_features(digits, baseline, name):
    """On 300 8x8 digits, with the defaults and random_state=0 otherwise."""
    params = {"random_state": 0, name: NON_DEFAULTS[name]}
    features = ConvFeatureTransformer(**params).fit_transform(digits[0])
    if name in NO_EFFECT | DILATED_ONLY:
        assert_array_equal(features, baseline)
    else:
        assert features.shape != baseline.shape or not np.array_equal(features, baseline)


# Every option of every categorical parameter, read from the estimator's constraints.
OPTIONS = sorted(
    (name, option)
    for name, constraints in ConvFeatureTransformer._parameter_constraints.items()
    for constraint in constraints
    if isinstance(constraint, StrOptions)
    for option in constraint.options
)


@pytest.fixture(scope="module")
def digits16(digits):
    """60 digits at 16x16, where the default dilations are all kept, and their features with
    the defaults (random_state=0)."""
    X = np.kron(digits[0][:60].reshape(-1, 8, 8), np.ones((2, 2)))
    return X, ConvFeatureTransformer(random_state=0).fit_transform(X)


def test_the_options_cover_every_categorical_parameter():
    names = {name for name, _ in OPTIONS}
    assert {"filter_init", "padding", "activation", "pooling", "batch_size"} <= names
    assert ("filter_init", "pca") in OPTIONS


@pytest.mark.parametrize("name, option", OPTIONS, ids=[f"{n}={o}" for n, o in OPTIONS])
@pytest.mark.filterwarnings("ignore:filter_init='pca' gives at most")  # tested in test_filters
def test_each_option_alone_on_the_defaults_fits_and_transforms(digits16, name, option):
    """Each option of each categorical parameter, with every other parameter at its default
    (random_state=0): fit and transform work, the features are finite and as many as their
    names, and differ from the defaults' unless the option is the default."""
    X, baseline = digits16
    conv = ConvFeatureTransformer(random_state=0, **{name: option}).fit(X)
    features = conv.transform(X)
    assert features.shape == (len(X), len(conv.get_feature_names_out()))
    assert np.isfinite(features).all()
    if option == ConvFeatureTransformer().get_params()[name] or name in NO_EFFECT:
        assert_array_equal(features, baseline)
    else:
        assert features.shape != baseline.shape or not np.array_equal(features, baseline)


@pytest.mark.parametrize("name", sorted(DILATED_ONLY))
def test_each_dilated_only_parameter_alone_changes_the_features_of_larger_images(digits, name):
    """On the digits at 24x24, where the default dilations are all kept: the dilated filters'
    features change, the undilated ones' do not."""
    X = np.kron(digits[0][:100].reshape(-1, 8, 8), np.ones((3, 3)))
    baseline = ConvFeatureTransformer(random_state=0).fit(X)
    changed = ConvFeatureTransformer(random_state=0, **{name: NON_DEFAULTS[name]}).fit(X)
    assert_array_equal(baseline.dilations_, [1] * 64 + [2] * 64 + [3] * 64)
    before, after = (est.transform(X).reshape(len(X), -1, 192) for est in (baseline, changed))
    dilated = baseline.dilations_ > 1
    assert_array_equal(before[..., ~dilated], after[..., ~dilated])
    assert not np.allclose(before[..., dilated], after[..., dilated])


@pytest.mark.parametrize("pool_size, n_regions", [(1, 64), (2, 16), (3, 4), (4, 4), (8, 1)])
def test_pool_size_alone_pools_over_windows_of_that_size(digits, pool_size, n_regions):
    conv = ConvFeatureTransformer(pool_size=pool_size, random_state=0).fit(digits[0])
    assert conv.output_shape_ == (8 // pool_size, 8 // pool_size, 192)
    assert conv.transform(digits[0][:2]).shape == (2, n_regions * 192)


@pytest.mark.parametrize(
    "pool_grid, shape",
    [(2, (2, 2, 192)), ((1, 3), (1, 3, 192)), ([1, 2], (5, 192)), (((1, 1), (4, 2)), (9, 192))],
)
def test_pool_grid_alone_pools_onto_that_grid_or_pyramid(digits, pool_grid, shape):
    conv = ConvFeatureTransformer(pool_grid=pool_grid, random_state=0).fit(digits[0])
    assert conv.output_shape_ == shape


def test_neither_gives_the_default_pyramid(digits):
    conv = ConvFeatureTransformer(random_state=0).fit(digits[0])
    assert conv.output_shape_ == (1 + 4 + 9, 192)
    names = conv.get_feature_names_out()
    assert names[0] == "f0_g1x1_y0_x0" and names[-1] == "f191_g3x3_y2_x2"


def test_balance_levels_scales_each_level_of_the_pyramid_and_nothing_else(digits):
    """The features of balance_levels=False, each level multiplied by sqrt(14 / (3 * n)):
    2.16 for the whole image, 1.08 for the 2x2 grid, 0.72 for the 3x3 one (centred too); the
    squared features sum as much as before. With one grid or windows it changes nothing."""
    X = digits[0]
    plain, balanced = (
        ConvFeatureTransformer(balance_levels=balance, random_state=0).fit(X)
        for balance in (False, True)
    )
    before, after = (est.transform(X).reshape(len(X), 14, 192) for est in (plain, balanced))
    weights = np.repeat(np.sqrt(14 / (3 * np.array([1, 4, 9]))), [1, 4, 9])
    assert_allclose(after, before * weights[:, None], rtol=1e-5, atol=1e-5)
    assert_allclose(np.sum(weights**2), 14)
    for pooling in [{"pool_grid": 2}, {"pool_grid": [3]}, {"pool_size": 2}]:
        one, other = (
            ConvFeatureTransformer(balance_levels=b, random_state=0, **pooling).fit_transform(X)
            for b in (False, True)
        )
        assert_array_equal(one, other)


def test_pool_size_and_pool_grid_together_are_an_error_naming_both(digits):
    conv = ConvFeatureTransformer(pool_size=2, pool_grid=2)
    with pytest.raises(ValueError, match=r"pool_size=2 and pool_grid=2 both set the pooling"):
        conv.fit(digits[0])


def test_a_grid_search_over_pool_size_searches_window_sizes(digits):
    X, y = digits
    model = make_pipeline(
        ConvFeatureTransformer(n_filters=8, random_state=0), LogisticRegression(max_iter=1000)
    )
    grid = {"convfeaturetransformer__pool_size": [1, 2, 4]}
    search = GridSearchCV(model, grid, cv=2).fit(X, y)
    shapes = [
        clone(model).set_params(**params).fit(X, y)[0].output_shape_
        for params in search.cv_results_["params"]
    ]
    assert shapes == [(8, 8, 8), (4, 4, 8), (2, 2, 8)]
    assert len(set(search.cv_results_["mean_test_score"])) > 1


def test_flatten_false_alone_gives_images_for_a_second_transformer(digits):
    X, y = digits
    first = ConvFeatureTransformer(flatten=False, random_state=0)
    maps = first.fit_transform(X)
    assert maps.shape == (len(X), 4, 4, 192)  # 2x2 windows: a pyramid has no map layout
    stacked = make_pipeline(
        ConvFeatureTransformer(flatten=False, random_state=0),
        ConvFeatureTransformer(random_state=0),
        LogisticRegression(max_iter=1000),
    )
    stacked.fit(X[:200], y[:200])
    assert stacked[1].image_shape_ == (4, 4, 192)
    assert stacked.score(X[200:], y[200:]) > 0.8


def test_a_parameter_changed_after_fit_is_refused_until_fit_runs_again(digits):
    X = digits[0][:20]
    conv = ConvFeatureTransformer(n_filters=8, random_state=0).fit(X)
    expected = conv.transform(X)
    conv.set_params(n_jobs=2, batch_size=3)
    assert_array_equal(conv.transform(X), expected)
    conv.set_params(pool_size=4)
    with pytest.raises(ValueError, match=r"pool_size \(None -> 4\) changed since fit.*fit again"):
        conv.transform(X)
    assert conv.fit(X).transform(X).shape == (20, 2 * 2 * 8)
