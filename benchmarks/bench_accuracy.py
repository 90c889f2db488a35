"""Accuracy and time of filter banks, encodings and pooling on small image sets.

Each row: ``make_pipeline(ConvFeatureTransformer(**params), LogisticRegression(max_iter=1000))``
(no scaler) under 5-fold stratified shuffled cross-validation (random_state=0), with the mean
accuracy, the number of features, the time of one fit + transform of the whole set, and the
number of ConvergenceWarnings. The sets are described in ``accuracy_datasets.py``.

    python benchmarks/bench_accuracy.py                      # every set, every config
    python benchmarks/bench_accuracy.py --sets digits --configs default kmeans

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
from sklearn.pipeline import make_pipeline

from sklearn_convfeat import ConvFeatureTransformer

RAW = "raw pixels"

CONFIGS = {
    RAW: None,
    "default": {},
}


def evaluate(X, y, params, random_state=0):
    """Mean CV accuracy, number of features, fit+transform seconds, convergence warnings."""
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    if params is None:
        flat = X.reshape(len(X), -1) / X.max()
        model, n_features, seconds = LogisticRegression(max_iter=1000), flat.shape[1], 0.0
        data = flat
    else:
        conv = ConvFeatureTransformer(random_state=random_state, **params)
        start = time.perf_counter()
        n_features = conv.fit(X).transform(X).shape[1]
        seconds = time.perf_counter() - start
        model = make_pipeline(conv, LogisticRegression(max_iter=1000))
        data = X
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        scores = cross_val_score(model, data, y, cv=cv)
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return scores.mean(), n_features, seconds, n_warnings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
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
