"""Accuracy and time of filter banks, encodings and pooling on small image sets.

Each row: ``make_pipeline(ConvFeatureTransformer(**params), LogisticRegression(max_iter=1000))``
(no scaler) under 5-fold stratified shuffled cross-validation (random_state=0), with the mean
accuracy, the number of features, the time of one fit + transform of the whole set, and the
number of ConvergenceWarnings. The sets are described in ``accuracy_datasets.py``.

    python benchmarks/bench_accuracy.py                      # every set, every config
    python benchmarks/bench_accuracy.py --sets digits --configs default gaussian
    python benchmarks/bench_accuracy.py --headline --seeds 0 1 2

Timings are wall-clock seconds on whatever machine runs it; compare rows, not machines.
"""

import argparse
import time
import warnings

import numpy as np
from accuracy_datasets import DATASETS
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline, make_union

from sklearn_convfeat import ConvFeatureTransformer

RAW = "raw pixels"


def multiscale(random_state):
    """3x3 and 5x5 banks side by side, 32 filters each (the FeatureUnion recipe)."""
    return make_union(
        ConvFeatureTransformer(n_filters=32, filter_size=3, random_state=random_state),
        ConvFeatureTransformer(n_filters=32, filter_size=5, random_state=random_state),
    )


def stacked(random_state):
    """Two layers: 32 maps pooled 2x2, then the default transformer on them."""
    return make_pipeline(
        ConvFeatureTransformer(
            n_filters=32, pool_grid=None, pool_size=2, flatten=False, random_state=random_state
        ),
        ConvFeatureTransformer(random_state=random_state),
    )


# Parameters that differ from the defaults; a callable builds a composite transformer.
CONFIGS = {
    RAW: None,
    "default": {},
    "v0.1 default (gaussian 5x5 valid, max 2x2)": dict(
        filter_init="gaussian",
        filter_size=5,
        padding="valid",
        patch_norm=False,
        pool_grid=None,
        pool_size=2,
    ),
    "gaussian": dict(filter_init="gaussian"),
    "gabor": dict(filter_init="gabor"),
    "patches": dict(filter_init="patches"),
    "pca (9 filters, no whitening)": dict(filter_init="pca", n_filters=9, whiten=False),
    "kmeans without whitening": dict(whiten=False),
    "kmeans without patch_norm": dict(patch_norm=False),
    "3x3 filters": dict(filter_size=3),
    "5x5 filters": dict(filter_size=5),
    "128 filters": dict(n_filters=128),
    "two_sided, avg": dict(activation="two_sided", pooling="avg"),
    "two_sided threshold 0.25, avg": dict(activation="two_sided", threshold=0.25, pooling="avg"),
    "relu, avg": dict(pooling="avg"),
    "relu, rms": dict(pooling="rms"),
    "relu threshold 0.25, ppv": dict(threshold=0.25, pooling="ppv"),
    "max on one 2x2 grid": dict(pool_grid=2),
    "max on 2x2 windows": dict(pool_grid=None, pool_size=2),
    "multi-scale 3x3 + 5x5 (FeatureUnion)": multiscale,
    "stacked, 2 layers": stacked,
}

HEADLINE = [
    RAW,
    "default",
    "v0.1 default (gaussian 5x5 valid, max 2x2)",
    "gaussian",
    "3x3 filters",
    "5x5 filters",
    "two_sided, avg",
    "multi-scale 3x3 + 5x5 (FeatureUnion)",
    "stacked, 2 layers",
]


def evaluate(X, y, params, random_state=0):
    """Mean CV accuracy, number of features, fit+transform seconds, convergence warnings."""
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    if params is None:
        data = X.reshape(len(X), -1) / X.max()
        model, n_features, seconds = LogisticRegression(max_iter=1000), data.shape[1], 0.0
    else:
        if callable(params):
            conv = params(random_state)
        else:
            conv = ConvFeatureTransformer(random_state=random_state, **params)
        start = time.perf_counter()
        n_features = conv.fit(X).transform(X).shape[1]
        seconds = time.perf_counter() - start
        model, data = make_pipeline(conv, LogisticRegression(max_iter=1000)), X
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        scores = cross_val_score(model, data, y, cv=cv)
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return scores.mean(), n_features, seconds, n_warnings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--headline", action="store_true", help="only the README's rows")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    if args.headline:
        args.configs = HEADLINE
    print("| set | config | accuracy | features | fit+transform (s) | convergence warnings |")
    print("|---|---|---|---|---|---|")
    for set_name in args.sets:
        X, y = DATASETS[set_name]()
        for config in args.configs:
            results = [evaluate(X, y, CONFIGS[config], seed) for seed in args.seeds]
            accuracy = np.mean([r[0] for r in results])
            n_features, seconds = results[0][1], np.mean([r[2] for r in results])
            n_warnings = sum(r[3] for r in results)
            print(
                f"| {set_name} | {config} | {accuracy:.4f} | {n_features} | {seconds:.2f} "
                f"| {n_warnings} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
