"""bench_accuracy.py's screening options: ``set: name=value`` configs are today's defaults with
those parameters, and ``--splits`` shuffles the folds anew for each repeat."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from sklearn_convfeat import ConvFeatureTransformer


@pytest.fixture(scope="module")
def bench():
    environ = dict(os.environ)  # the script sets BLAS threads for its own process only
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        import bench_accuracy
    finally:
        sys.path.pop(0)
        os.environ.clear()
        os.environ.update(environ)
    return bench_accuracy


def test_a_setting_is_the_defaults_with_its_parameters(bench):
    config = "set: feature_norm='auto', n_filters=288, dilation=(1, 2)"
    assert bench.parse_setting(config) == {
        "feature_norm": "auto",
        "n_filters": 288,
        "dilation": (1, 2),
    }
    conv = bench.make_model(config, random_state=3)[0]
    expected = ConvFeatureTransformer(
        feature_norm="auto", n_filters=288, dilation=(1, 2), random_state=3
    )
    assert conv.get_params() == expected.get_params()


@pytest.mark.parametrize("config", ["set: 3", "set: n_filters=len('abc')"])
def test_a_setting_accepts_literal_keywords_only(bench, config):
    with pytest.raises(ValueError):
        bench.parse_setting(config)


def test_splits_shuffle_the_folds_differently(bench):
    X = np.random.default_rng(0).random((60, 8, 8))
    y = np.arange(60) % 3
    scores = [
        bench.evaluate(X, y, None, "set: n_filters=4, dilation=1", n_folds=3, split=split)[0]
        for split in (0, 0, 1)
    ]
    assert scores[0] == scores[1]
    assert scores[0] != scores[2]
