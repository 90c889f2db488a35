"""pickle, joblib and skops round trips give an estimator with identical output; skops needs to
trust only this package's own classes."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from settings import simple
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from skops.io.exceptions import UntrustedTypesFoundException

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat._plan import PoolingSpec

# patch_norm on: its fitted epsilon must survive the round trips too.
OVERRIDES = {"n_filters": 5, "patch_norm": True}
BASE = simple(**OVERRIDES)

VARIANTS = {
    "default": {},
    "gabor-grid-unflattened": dict(filter_init="gabor", pool_grid=2, flatten=False),
    "array-filters-avg": dict(filter_init=np.arange(45.0).reshape(5, 3, 3), pooling="avg"),
    "random-state-instance": dict(random_state=np.random.RandomState(4), padding="same"),
}


def round_trips(estimator, tmp_path):
    """The estimator after each round trip, by name."""
    path = tmp_path / "model.joblib"
    joblib.dump(estimator, path)
    compressed = tmp_path / "model.joblib.gz"
    joblib.dump(estimator, compressed, compress=3)
    data = sio.dumps(estimator)
    return {
        "pickle": pickle.loads(pickle.dumps(estimator)),
        "joblib": joblib.load(path),
        "joblib-compressed": joblib.load(compressed),
        "skops": sio.loads(data, trusted=sio.get_untrusted_types(data=data)),
    }


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).random((12, 64))


@pytest.mark.parametrize("variant", VARIANTS)
def test_round_trips_give_identical_output(X, tmp_path, variant):
    conv = ConvFeatureTransformer(**simple(**OVERRIDES, **VARIANTS[variant])).fit(X)
    expected = conv.transform(X)
    for name, loaded in round_trips(conv, tmp_path).items():
        assert type(loaded) is ConvFeatureTransformer, name
        np.testing.assert_array_equal(loaded.filters_, conv.filters_, err_msg=name)
        assert loaded.output_shape_ == conv.output_shape_, name
        assert loaded.image_shape_ == conv.image_shape_, name
        np.testing.assert_array_equal(loaded.transform(X), expected, err_msg=name)
        assert list(loaded.get_feature_names_out()) == list(conv.get_feature_names_out()), name


def test_round_trips_keep_dataframe_feature_names(X, tmp_path):
    df = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    conv = ConvFeatureTransformer(**BASE).fit(df)
    for name, loaded in round_trips(conv, tmp_path).items():
        np.testing.assert_array_equal(loaded.feature_names_in_, conv.feature_names_in_)
        np.testing.assert_array_equal(loaded.transform(df), conv.transform(df), err_msg=name)


def test_unfitted_estimator_round_trips_and_fits_the_same(X, tmp_path):
    conv = ConvFeatureTransformer(**BASE)
    expected = ConvFeatureTransformer(**BASE).fit_transform(X)
    for name, loaded in round_trips(conv, tmp_path).items():
        assert loaded.get_params() == conv.get_params(), name
        np.testing.assert_array_equal(loaded.fit_transform(X), expected, err_msg=name)


def test_skops_untrusted_types_are_only_this_package_s_classes(X):
    """The transformer and its plan (plain data in this package's classes)."""
    y = np.arange(len(X)) % 2
    model = make_pipeline(ConvFeatureTransformer(**BASE), LogisticRegression()).fit(X, y)
    data = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=data)
    assert "sklearn_convfeat._transformer.ConvFeatureTransformer" in untrusted
    assert all(name.startswith("sklearn_convfeat.") for name in untrusted), untrusted
    loaded = sio.loads(data, trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_skops_refuses_to_load_without_trusting_our_class(X):
    data = sio.dumps(ConvFeatureTransformer(**BASE).fit(X))
    with pytest.raises(UntrustedTypesFoundException, match="ConvFeatureTransformer"):
        sio.loads(data)


def test_an_estimator_saved_before_antialias_and_balance_levels_keeps_its_features():
    """A pickle of an estimator from before these parameters (no such attributes) loads with
    both off, the features it made then, and transforms without an error."""
    X = np.random.default_rng(0).random((12, 24, 24))
    conv = ConvFeatureTransformer(
        antialias=False, balance_levels=False, max_patches=300, random_state=0
    ).fit(X)
    expected = conv.transform(X)
    for name in ("antialias", "balance_levels"):
        delattr(conv, name)
        del conv._fitted_params[name]
        del conv.spec_.__dict__[name]
    loaded = pickle.loads(pickle.dumps(conv))
    assert (loaded.antialias, loaded.balance_levels) == (False, False)
    np.testing.assert_array_equal(loaded.transform(X), expected)


@pytest.mark.parametrize("several_sizes", [False, True])
def test_an_estimator_saved_before_its_spec_loads_with_the_same_spec(several_sizes):
    """A pickle from before ``spec_`` held the plan's parameters in ``_plan_params`` (its
    pooling as a ``_plan.PoolingSpec``): it loads with the spec that fit makes now, and the
    same features."""
    rng = np.random.default_rng(0)
    X = [rng.random((20, 30)), rng.random((26, 22))] if several_sizes else rng.random((8, 24, 24))
    conv = ConvFeatureTransformer(n_filters=12, max_patches=300, random_state=0).fit(X)
    expected = conv.transform(X)
    spec = conv.spec_
    state = dict(conv.__getstate__())
    plan_shape = state.pop("_plan_shape")
    del state["spec_"]
    state["_plan_params"] = dict(
        filter_size=spec.filter_size,
        dilations=spec.dilations,
        antialias=spec.antialias,
        n_filters=spec.n_filters,
        stride=spec.stride,
        padding=spec.padding,
        activation=spec.activation,
        threshold=spec.threshold,
        pooling=spec.pooling,
        spec=PoolingSpec(spec.layout.windows, spec.layout.grids, spec.layout.pyramid),
        flatten=spec.flatten,
        balance_levels=spec.balance_levels,
        patch_norm=spec.patch_norm,
        image_shape=plan_shape,
        fixed_regions=several_sizes,
    )
    loaded = ConvFeatureTransformer.__new__(ConvFeatureTransformer)
    loaded.__setstate__(pickle.loads(pickle.dumps(state)))
    assert loaded.spec_ == spec
    np.testing.assert_array_equal(loaded.transform(X), expected)
