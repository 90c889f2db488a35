"""ConvFeatureTransformer as a scikit-learn estimator."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from reference import reference_features
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import sklearn_convfeat
from sklearn_convfeat import ConvFeatureTransformer

# The parameters these tests were written for (the 0.1 defaults): a random bank on raw pixels,
# pooled over windows. Pinned, so that the tests do not depend on the current defaults.
V01 = dict(
    filter_init="gaussian",
    filter_size=5,
    dilation=1,
    padding="valid",
    patch_norm=False,
    pool_size=2,
    center=False,
)


def _v01(**params):
    return ConvFeatureTransformer(**{**V01, **params})


def _explicit_bank():
    # 1x1 filters fit every image the common checks make, even a single feature.
    return np.array([[[1.0]], [[-0.5]], [[2.0]]])


@parametrize_with_checks(
    [
        ConvFeatureTransformer(),
        ConvFeatureTransformer(n_filters=4, pooling="avg", activation="abs", random_state=0),
        ConvFeatureTransformer(n_filters=4, activation="tanh", padding="same", stride=2),
        ConvFeatureTransformer(n_filters=3, activation="identity", filter_init="uniform"),
        ConvFeatureTransformer(n_filters=5, filter_init="gabor", filter_size=3, pool_grid=2),
        ConvFeatureTransformer(n_filters=3, filter_init=_explicit_bank(), pool_size=1),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_public_api():
    assert sklearn_convfeat.__all__ == ["ConvFeatureTransformer", "MemoryLimitError", "__version__"]
    assert isinstance(sklearn_convfeat.__version__, str)


def test_init_only_stores_parameters():
    filters = np.ones((2, 3, 3))
    est = ConvFeatureTransformer(n_filters=-5, filter_size="nonsense", filter_init=filters)
    assert est.n_filters == -5
    assert est.filter_size == "nonsense"
    assert est.filter_init is filters


@pytest.mark.parametrize(
    "image_shape, filter_size, stride, padding, activation, pooling, pool_size, pool_grid",
    [
        ((9, 11, 1), (3, 3), 1, "valid", "relu", "max", (2, 2), None),
        ((9, 11, 1), (4, 2), 2, "same", "abs", "avg", (3, 2), None),
        ((12, 12, 3), (5, 5), 1, "same", "tanh", "max", (1, 1), (2, 3)),
        ((7, 16, 2), (3, 4), 3, "valid", "identity", "avg", (2, 2), None),
        ((10, 10, 4), (2, 3), 1, "valid", "relu", "avg", (4, 4), (3, 1)),
        ((1, 40, 1), (1, 5), 1, "valid", "relu", "max", (1, 4), None),
    ],
)
def test_transform_matches_correlate2d_reference(
    image_shape, filter_size, stride, padding, activation, pooling, pool_size, pool_grid
):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, *image_shape))
    est = _v01(
        n_filters=6,
        filter_size=filter_size,
        stride=stride,
        padding=padding,
        activation=activation,
        pooling=pooling,
        pool_size=pool_size if pool_grid is None else None,
        pool_grid=pool_grid,
        flatten=False,
        random_state=0,
    ).fit(X)
    expected = reference_features(
        X,
        est.filters_,
        stride=stride,
        padding=padding,
        activation=activation,
        pooling=pooling,
        pool_size=pool_size,
        pool_grid=pool_grid,
    )
    got = est.transform(X)
    assert got.shape == expected.shape == (5, *est.output_shape_)
    assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _formula_length(length, size, stride, padding, pool, grid, dilation=1):
    span = (size - 1) * dilation + 1
    maps = -(-length // stride) if padding == "same" else (length - span) // stride + 1
    if grid is not None:
        return min(grid, maps)
    return maps // min(pool, maps)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(
    "pool_size, pool_grid", [(1, None), (2, None), (3, None), (None, 2), (None, 4)]
)
def test_output_shape_formula(stride, padding, pool_size, pool_grid):
    X = np.random.default_rng(0).normal(size=(2, 13 * 10))
    est = ConvFeatureTransformer(
        n_filters=3,
        filter_size=(4, 3),
        image_shape=(13, 10),
        stride=stride,
        padding=padding,
        pool_size=pool_size,
        pool_grid=pool_grid,
    ).fit(X)
    # The default dilations keep 1 and 2 on 13x10 images: a 4x3 filter spans 7x5 at 2, 10x7 at 3.
    assert est.dilations_.tolist() == [1, 1, 2]
    rows = _formula_length(13, 4, stride, padding, pool_size, pool_grid, 2)
    cols = _formula_length(10, 3, stride, padding, pool_size, pool_grid, 2)
    Xt = est.transform(X)
    assert est.output_shape_ == (rows, cols, 3)
    assert Xt.shape == (2, rows * cols * 3)
    assert len(est.get_feature_names_out()) == Xt.shape[1]


def test_flatten_false_gives_images_matching_flat_output():
    X = np.random.default_rng(0).normal(size=(4, 10, 10))
    flat = _v01(n_filters=3, random_state=0).fit_transform(X)
    nd = _v01(n_filters=3, random_state=0, flatten=False).fit_transform(X)
    assert nd.ndim == 4 and nd.shape[-1] == 3
    assert_array_equal(nd.reshape(4, -1), flat)


def test_feature_names_follow_output_order():
    X = np.random.default_rng(0).normal(size=(3, 6, 6))
    est = _v01(n_filters=2, filter_size=3, pool_size=2, random_state=0, flatten=False).fit(X)
    names = est.get_feature_names_out()
    nd = est.transform(X)
    flat = nd.reshape(3, -1)
    for index in [0, 1, 5, len(names) - 1]:
        f, y, x = (int(part[1:]) for part in names[index].split("_"))
        assert_array_equal(flat[:, index], nd[:, y, x, f])


def test_set_output_pandas():
    pd = pytest.importorskip("pandas")
    X, _ = load_digits(return_X_y=True)
    est = ConvFeatureTransformer(n_filters=4, random_state=0).set_output(transform="pandas")
    out = est.fit_transform(X[:10])
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(est.get_feature_names_out())


def test_dataframe_input_records_feature_names():
    pd = pytest.importorskip("pandas")
    X, _ = load_digits(return_X_y=True)
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    est = ConvFeatureTransformer(n_filters=4, random_state=0).fit(df)
    assert list(est.feature_names_in_) == list(df.columns)
    with pytest.warns(UserWarning, match="feature names"):
        from_array = est.transform(X)
    assert_array_equal(est.transform(df), from_array)


@pytest.mark.parametrize(
    "make_input",
    [
        lambda X: X.tolist(),
        lambda X: X.astype(np.uint8),
        lambda X: X.astype(np.int64),
        lambda X: X.astype(np.float32),
        lambda X: np.asfortranarray(X),
        lambda X: X.reshape(-1, 8, 8),
        lambda X: X.reshape(-1, 8, 8, 1),
    ],
    ids=["list", "uint8", "int64", "float32", "fortran", "3d", "4d"],
)
def test_input_kinds_give_the_same_features(make_input):
    X, _ = load_digits(return_X_y=True)
    X = X[:20]
    reference = ConvFeatureTransformer(n_filters=4, random_state=0).fit(X).transform(X)
    other = make_input(X)
    est = ConvFeatureTransformer(n_filters=4, random_state=0).fit(other)
    assert est.image_shape_ == (8, 8, 1)
    assert_array_equal(est.transform(other), reference)


def test_read_only_input_is_not_modified():
    X = np.random.default_rng(0).normal(size=(5, 49)).astype(np.float32)
    copy = X.copy()
    X.setflags(write=False)
    ConvFeatureTransformer(n_filters=2, padding="same").fit_transform(X)
    assert_array_equal(X, copy)


def test_shape_rule_flat_inputs():
    rng = np.random.default_rng(0)
    assert ConvFeatureTransformer().fit(rng.normal(size=(2, 49))).image_shape_ == (7, 7, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        signal = ConvFeatureTransformer(filter_size=5).fit(rng.normal(size=(2, 50)))
    assert signal.image_shape_ == (1, 50, 1)
    assert signal.filters_.shape[1:3] == (1, 5)
    explicit = ConvFeatureTransformer(image_shape=(5, 10)).fit(rng.normal(size=(2, 50)))
    assert explicit.image_shape_ == (5, 10, 1)


def test_flat_colour_width_warns():
    X = np.random.default_rng(0).normal(size=(2, 8 * 8 * 3))
    with pytest.warns(UserWarning, match=r"image_shape=\(8, 8, 3\)"):
        est = ConvFeatureTransformer().fit(X)
    assert est.image_shape_ == (1, 192, 1)


def test_flat_colour_images_read_channels_last():
    images = np.random.default_rng(0).normal(size=(3, 6, 7, 3))
    kw = dict(n_filters=4, filter_size=3, random_state=0)
    flat = ConvFeatureTransformer(image_shape=(6, 7, 3), **kw).fit(images.reshape(3, -1))
    nd = ConvFeatureTransformer(**kw).fit(images)
    assert_array_equal(flat.transform(images.reshape(3, -1)), nd.transform(images))


def test_filters_and_pools_are_clipped_to_tiny_images():
    X = np.random.default_rng(0).normal(size=(4, 2, 3))
    est = _v01(n_filters=3, filter_size=7, pool_size=5).fit(X)
    assert est.filters_.shape == (3, 2, 3, 1)
    assert est.transform(X).shape == (4, 3)


def test_transform_rejects_images_unlike_fit():
    rng = np.random.default_rng(0)
    est = ConvFeatureTransformer(n_filters=2).fit(rng.normal(size=(3, 8, 8)))
    with pytest.raises(ValueError, match=r"\(8, 8, 1\)"):
        est.transform(rng.normal(size=(3, 8, 9)))
    with pytest.raises(ValueError, match="64"):
        ConvFeatureTransformer(n_filters=2).fit(rng.normal(size=(3, 64))).transform(
            rng.normal(size=(3, 49))
        )


@pytest.mark.parametrize("random_state", [0, np.random.RandomState(0)])
def test_random_state_gives_identical_filters(random_state):
    X = np.random.default_rng(1).normal(size=(3, 64))
    a = ConvFeatureTransformer(random_state=random_state).fit(X)
    b = ConvFeatureTransformer(random_state=np.random.RandomState(0)).fit(X)
    assert_array_equal(a.filters_, b.filters_)
    assert_array_equal(a.transform(X), b.transform(X))


def test_random_state_none_varies_and_is_not_written_back():
    X = np.random.default_rng(1).normal(size=(3, 64))
    est = ConvFeatureTransformer()
    first = est.fit(X).filters_.copy()
    assert est.random_state is None
    assert not np.array_equal(first, est.fit(X).filters_)


@pytest.mark.parametrize("filter_init", ["gaussian", "uniform", "gabor"])
def test_filter_banks_have_unit_norm(filter_init):
    X = np.random.default_rng(0).normal(size=(2, 16, 16, 3))
    est = ConvFeatureTransformer(n_filters=20, filter_size=(5, 4), filter_init=filter_init).fit(X)
    assert est.filters_.shape == (20, 5, 4, 3)
    assert est.filters_.dtype == np.float32
    assert_allclose(np.sqrt((est.filters_.astype(float) ** 2).sum(axis=(1, 2, 3))), 1, rtol=1e-5)


def test_gaussian_filters_have_zero_mean():
    X = np.zeros((2, 10, 10))
    filters = ConvFeatureTransformer(n_filters=8, filter_size=3).fit(X).filters_
    assert_allclose(filters.mean(axis=(1, 2, 3)), 0, atol=1e-6)


def test_gabor_bank_is_oriented():
    """Each Gabor filter's strongest Fourier component points along its orientation."""
    X = np.zeros((1, 32, 32))
    filters = ConvFeatureTransformer(n_filters=8, filter_size=15, filter_init="gabor").fit(X)
    for k, filt in enumerate(filters.filters_[..., 0]):
        spectrum = np.abs(np.fft.fftshift(np.fft.fft2(filt, s=(64, 64))))
        fy, fx = np.unravel_index(np.argmax(spectrum), spectrum.shape)
        angle = np.arctan2(fy - 32, fx - 32) % np.pi
        expected = np.pi * k / 8
        assert min(abs(angle - expected), np.pi - abs(angle - expected)) < 0.2


def test_explicit_filter_array_is_used_as_given():
    bank = np.random.default_rng(0).normal(size=(2, 3, 3))
    X = np.random.default_rng(1).normal(size=(4, 6, 6))
    est = _v01(n_filters=2, filter_init=bank, pool_size=1, flatten=False).fit(X)
    assert_array_equal(est.filters_[..., 0], bank.astype(np.float32))
    expected = reference_features(X[..., None], est.filters_, pool_size=(1, 1))
    assert_allclose(est.transform(X), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="n_filters=2"):
        _v01(n_filters=5, filter_init=bank).fit(X)


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(n_filters=0), ValueError, "n_filters"),
        (dict(n_filters=2.5), ValueError, "n_filters"),
        (dict(filter_size=0), ValueError, "filter_size"),
        (dict(filter_size=(3, 0)), ValueError, "filter_size"),
        (dict(filter_size=(3, 2.0)), TypeError, "filter_size"),
        (dict(filter_init="zeros"), ValueError, "filter_init"),
        (dict(stride=0), ValueError, "stride"),
        (dict(padding="full"), ValueError, "padding"),
        (dict(activation="sigmoid"), ValueError, "activation"),
        (dict(pooling="median"), ValueError, "pooling"),
        (dict(pool_size=-1), ValueError, "pool_size"),
        (dict(pool_grid=0), ValueError, "pool_grid"),
        (dict(flatten="yes"), ValueError, "flatten"),
        (dict(n_jobs=0), ValueError, "n_jobs"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(image_shape=(8,)), ValueError, "image_shape"),
        (dict(random_state="seed"), ValueError, "random_state"),
    ],
)
def test_bad_parameters_are_named(params, error, match):
    X = np.zeros((2, 64))
    with pytest.raises(error, match=match):
        ConvFeatureTransformer(**params).fit(X)


def test_clone_and_set_params_rebuild_filters():
    """Unlike a bank built in __init__, set_params then fit gives the new bank."""
    X = np.random.default_rng(0).normal(size=(3, 10, 10))
    est = ConvFeatureTransformer(n_filters=4, filter_size=3, random_state=0).fit(X)
    est.set_params(n_filters=6, filter_size=5).fit(X)
    assert est.filters_.shape == (6, 5, 5, 1)
    cloned = clone(est)
    assert not hasattr(cloned, "filters_")
    assert_array_equal(cloned.fit(X).transform(X), est.transform(X))


def test_pickle_round_trip_gives_identical_output():
    X = np.random.default_rng(0).normal(size=(5, 10, 10))
    est = ConvFeatureTransformer(n_filters=4, random_state=0).fit(X)
    restored = pickle.loads(pickle.dumps(est))
    assert_array_equal(restored.transform(X), est.transform(X))


def test_two_stacked_layers_in_a_pipeline():
    X, y = load_digits(return_X_y=True)
    first = _v01(
        n_filters=8, filter_size=3, padding="same", pool_size=1, flatten=False, random_state=0
    )
    second = _v01(n_filters=16, filter_size=3, pool_size=2, random_state=0)
    model = make_pipeline(first, second, LogisticRegression(max_iter=2000))
    model.fit(X[:300], y[:300])
    assert model[1].image_shape_ == (8, 8, 8)
    assert model[1].filters_.shape == (16, 3, 3, 8)
    assert model.score(X[300:600], y[300:600]) > 0.8


def test_grid_search_and_cross_val_score_on_digits():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    model = make_pipeline(ConvFeatureTransformer(random_state=0), LogisticRegression(max_iter=2000))
    grid = {
        "convfeaturetransformer__n_filters": [8, 16],
        "convfeaturetransformer__filter_size": [3, 5],
        "convfeaturetransformer__pooling": ["max", "avg"],
    }
    search = GridSearchCV(model, grid, cv=3, n_jobs=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 8
    assert search.best_score_ == np.max(search.cv_results_["mean_test_score"])
    assert search.best_score_ > 0.85
    best = search.best_estimator_[0]
    size = search.best_params_["convfeaturetransformer__filter_size"]
    assert best.filters_.shape[:3] == (
        search.best_params_["convfeaturetransformer__n_filters"],
        size,
        size,
    )
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(search.best_estimator_, X, y, cv=cv)
    assert scores.mean() > 0.85


def test_center_subtracts_the_mean_features_of_the_training_images():
    X = np.random.default_rng(0).random((300, 10, 10))
    plain = ConvFeatureTransformer(n_filters=8, center=False, random_state=0).fit(X)
    centred = ConvFeatureTransformer(n_filters=8, random_state=0).fit(X)
    raw = plain.transform(X)
    assert plain.feature_mean_ is None
    assert_allclose(centred.feature_mean_, raw.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert_array_equal(centred.transform(X), raw - centred.feature_mean_)
    assert_allclose(centred.transform(X).mean(axis=0), 0, atol=1e-5)


def test_center_reads_at_most_a_thousand_training_images():
    X = np.random.default_rng(0).random((1500, 6, 6))
    conv = ConvFeatureTransformer(n_filters=4, filter_init="gaussian", random_state=0).fit(X)
    raw = ConvFeatureTransformer(**{**conv.get_params(), "center": False}).fit(X).transform(X)
    means = [raw[rows].mean(axis=0) for rows in (slice(0, 1000), slice(500, 1500))]
    assert not any(np.allclose(conv.feature_mean_, mean, rtol=1e-6) for mean in means)
    assert_allclose(conv.feature_mean_, raw.mean(axis=0), atol=0.05 * np.abs(raw).max())


@pytest.mark.parametrize(
    "image_shape, filter_size, n_filters, dilation, groups",
    [
        ((8, 8), 4, 192, (1, 2, 3), ((1, 192),)),
        ((28, 28), 4, 192, (1, 2, 3), ((1, 64), (2, 64), (3, 64))),
        ((28, 28), 4, 10, (3, 1, 2), ((1, 4), (2, 3), (3, 3))),
        ((14, 14), 4, 9, (1, 2, 3), ((1, 5), (2, 4))),
        ((8, 8), 4, 6, 2, ((2, 6),)),
        ((30, 6), (3, 2), 8, (1, 4), ((1, 8),)),
        ((28, 28), 4, 2, (1, 2, 3), ((1, 1), (2, 1))),
    ],
)
def test_dilations_kept_on_an_image_size_share_the_filters(
    image_shape, filter_size, n_filters, dilation, groups
):
    """A dilation is kept when the footprint fits two thirds of the image's side (the
    smallest always is); the filters are shared evenly, the remainder to the smallest."""
    X = np.random.default_rng(0).normal(size=(6, *image_shape))
    est = ConvFeatureTransformer(
        n_filters=n_filters,
        filter_size=filter_size,
        dilation=dilation,
        filter_init="gaussian",
        random_state=0,
    ).fit(X)
    expected = np.repeat([d for d, _ in groups], [n for _, n in groups])
    assert_array_equal(est.dilations_, expected)
    assert est.transform(X).shape == (6, len(est.get_feature_names_out()))


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("patch_norm", [False, True])
@pytest.mark.parametrize("filter_init", ["kmeans", "gaussian"])
def test_dilated_default_bank_matches_the_reference(patch_norm, filter_init, antialias):
    """The default dilations on 20x20 images: every filter at its dilation, its bias, the
    patch normalisation with its dilation's variance, the smoothed image the dilated ones
    read with ``antialias``, the levels' weights, the centring, against the reference."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 20, 20))
    est = ConvFeatureTransformer(
        n_filters=9,
        filter_init=filter_init,
        patch_norm=patch_norm,
        max_patches=300,
        antialias=antialias,
        random_state=0,
    ).fit(X)
    assert_array_equal(est.dilations_, [1, 1, 1, 2, 2, 2, 3, 3, 3])
    eps = None
    if patch_norm:
        assert len(est.patch_norm_eps_) == 3
        eps = [est.patch_norm_eps_[d - 1] for d in est.dilations_]
    expected = reference_features(
        X[..., None],
        est.filters_,
        padding="same",
        pool_grid=[(1, 1), (2, 2), (3, 3)],
        bias=est.bias_,
        patch_norm_eps=eps,
        dilations=est.dilations_,
        antialias=antialias,
        balance_levels=True,
    )
    expected = expected.reshape(len(X), -1) - est.feature_mean_
    assert_allclose(est.transform(X), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_dilation_must_hold_distinct_positive_ints():
    X = np.zeros((3, 16, 16))
    for bad in [(1, 1), (0, 2), ()]:
        with pytest.raises(ValueError, match="dilation must hold distinct ints >= 1"):
            ConvFeatureTransformer(dilation=bad).fit(X)
    with pytest.raises(TypeError, match="dilation must be an int or a sequence of ints"):
        ConvFeatureTransformer(dilation=(1, 2.5)).fit(X)


@pytest.mark.parametrize("center", [True, False])
def test_feature_norm_scales_the_spread_of_the_training_features(center):
    """The root mean squared distance of the features to their mean over the training images
    is feature_norm, and the features are the unscaled ones (centred or not) times one
    factor."""
    X = np.random.default_rng(0).random((300, 10, 10))
    params = dict(n_filters=8, center=center, random_state=0)
    raw = ConvFeatureTransformer(**params).fit(X).transform(X)
    conv = ConvFeatureTransformer(**params, feature_norm=3.0).fit(X)
    features = conv.transform(X)
    spread = np.sqrt(np.mean(np.sum((features - features.mean(axis=0)) ** 2, axis=1)))
    assert_allclose(spread, 3.0, rtol=1e-4)
    expected_scale = 3.0 / np.sqrt(np.mean(np.sum((raw - raw.mean(axis=0)) ** 2, axis=1)))
    assert_allclose(conv.feature_scale_, expected_scale, rtol=1e-4)
    assert_allclose(features, raw * np.float32(conv.feature_scale_), rtol=1e-6, atol=1e-7)
    assert ConvFeatureTransformer(**params).fit(X).feature_scale_ is None


def test_feature_norm_gives_every_pooling_and_pixel_scale_the_same_size():
    """Max and mean pooling, and images in 0..1 or 0..255 without patch_norm, give features
    of one size: the penalty of a linear model that follows means the same for all."""
    X = np.random.default_rng(1).random((200, 12, 12))
    sizes = []
    for pooling, scale in [("max", 1), ("avg", 1), ("max", 255)]:
        conv = ConvFeatureTransformer(
            n_filters=6,
            pooling=pooling,
            patch_norm=False,
            filter_init="gaussian",
            feature_norm="auto",
            random_state=0,
        )
        features = conv.fit(X * scale).transform(X * scale)
        sizes.append(np.sqrt(np.mean(np.sum(features**2, axis=1))))
    assert_allclose(sizes, np.sqrt(8000 / np.sqrt(len(X))), rtol=1e-4)


@pytest.mark.parametrize("n_samples", [40, 400])
def test_feature_norm_auto_gives_the_features_a_norm_that_falls_with_the_images(n_samples):
    """'auto': a mean squared norm of 8000 / sqrt(n_samples), so that LogisticRegression(C=1),
    whose penalty weighs 1 / n_samples of its mean loss, penalises unit-size features by
    1 / sqrt(n_samples)."""
    X = np.random.default_rng(3).random((n_samples, 9, 9))
    conv = ConvFeatureTransformer(n_filters=5, feature_norm="auto", random_state=0).fit(X)
    features = conv.transform(X)
    squared = np.mean(np.sum((features - features.mean(axis=0)) ** 2, axis=1))
    assert_allclose(squared * np.sqrt(n_samples), 8000, rtol=1e-4)


def test_feature_norm_leaves_features_that_do_not_vary_unscaled():
    X = np.ones((50, 8, 8))
    conv = ConvFeatureTransformer(n_filters=4, feature_norm="auto", random_state=0).fit(X)
    assert conv.feature_scale_ == 1.0
    assert_array_equal(conv.transform(X), 0)


def test_feature_norm_reads_the_images_center_reads():
    """At most 1,000 training images, as center: the spread is feature_norm on those."""
    X = np.random.default_rng(2).random((1500, 6, 6))
    conv = ConvFeatureTransformer(
        n_filters=4, filter_init="gaussian", feature_norm=2.0, random_state=0
    ).fit(X)
    features = conv.transform(X)
    spread = np.sqrt(np.mean(np.sum((features - features.mean(axis=0)) ** 2, axis=1)))
    assert_allclose(spread, 2.0, rtol=0.05)
    assert not np.isclose(spread, 2.0, rtol=1e-5)
