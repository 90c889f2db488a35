"""Accuracy and time of filter banks, encodings and pooling on small image sets.

Each row is a model under 5-fold stratified shuffled cross-validation (``random_state=0``;
``StratifiedGroupKFold`` on sets whose images come in groups drawn from one source, see
``accuracy_datasets.py``), with the mean accuracy, the number of features, the seconds of the
whole cross-validation (every fit, transform and prediction) and the number of
ConvergenceWarnings over the folds. Convolutional rows are
``make_pipeline(<transformer>, LogisticRegression(max_iter=1000))``, no scaler.

    python benchmarks/bench_accuracy.py --headline            # raw, scattering, old, new
    python benchmarks/bench_accuracy.py --headline --held-out # also the held-out sets
    python benchmarks/bench_accuracy.py --sets digits --configs default gaussian
    python benchmarks/bench_accuracy.py --sets handwriting --configs "cand: 128x5" --folds 3
    python benchmarks/bench_accuracy.py --sets handwriting --splits 5 \
        --configs "new defaults" "set: feature_norm='auto', n_filters=288"
    python benchmarks/bench_accuracy.py --list                # every config's name

The headline rows, for every set:

- ``raw pixels``: ``LogisticRegression(max_iter=1000)`` on the pixels divided by their max;
- ``scattering``: kymatio's ``Scattering2D(J=2)`` of the images (each channel apart), then
  ``StandardScaler`` and ``LogisticRegression(max_iter=3000)``; skipped, with a note, when
  kymatio (and torch) are not installed;
- ``old defaults``: the defaults before the handwriting issue (64 4x4 k-means filters, ReLU,
  max pooling onto the 1+2x2+4x4 pyramid), written out below so that the row stays fixed;
- ``new defaults``: ``ConvFeatureTransformer(random_state=0)`` of the installed package,
  whatever its defaults are.

Candidate configurations of the accuracy research (``accuracy_candidates.py``) are named
``cand: ...``. Timings are wall-clock seconds on whatever machine runs it, with BLAS and torch
limited to one thread (set by this script): compare rows, not machines.
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import ast  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from accuracy_datasets import ALL_DATASETS, DATASETS, HELD_OUT, load  # noqa: E402
from sklearn.base import BaseEstimator, TransformerMixin  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline, make_union  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402

RAW = "raw pixels"
SCATTERING = "scattering"
OLD = "old defaults"
NEW = "new defaults"

# The defaults before the handwriting issue (version 0.1.0), written out so that the
# "old defaults" row stays fixed whatever the installed package's defaults become.
OLD_DEFAULTS = dict(
    n_filters=64,
    filter_size=4,
    filter_init="kmeans",
    stride=1,
    padding="same",
    activation="relu",
    pooling="max",
    pool_grid=((1, 1), (2, 2), (4, 4)),
    whiten=True,
    patch_norm=True,
    threshold=0.0,
    max_patches=10_000,
    dilation=1,
    antialias=False,
    balance_levels=False,
    center=False,
)


class Scattering(TransformerMixin, BaseEstimator):
    """kymatio's ``Scattering2D(J)`` of every channel of the images, flattened.

    kymatio's own ``Scattering2D`` import pulls its 3-D module, which fails with recent SciPy
    (``sph_harm`` was removed), so the 2-D torch frontend is imported directly.
    """

    def __init__(self, J=2, batch_size=256):
        self.J = J
        self.batch_size = batch_size

    def fit(self, X, y=None):
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

        self.shape_ = X.shape[1:3]
        self.scattering_ = ScatteringTorch2D(J=self.J, shape=self.shape_)
        return self

    def transform(self, X):
        import torch

        images = np.asarray(X, dtype=np.float32)
        if images.ndim == 4:  # (n, H, W, C) -> (n, C, H, W): each channel is scattered apart
            images = images.transpose(0, 3, 1, 2)
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = torch.from_numpy(
                    np.ascontiguousarray(images[start : start + self.batch_size])
                )
                out.append(self.scattering_(batch).reshape(len(batch), -1).numpy())
        return np.concatenate(out)


def scattering_available():
    try:
        import torch
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D  # noqa: F401
    except ImportError as exc:
        return str(exc)
    torch.set_num_threads(1)
    return None


def multiscale(random_state):
    """3x3 and 5x5 banks side by side, 32 filters each (the FeatureUnion recipe), otherwise
    the old defaults."""
    params = {**OLD_DEFAULTS, "n_filters": 32, "random_state": random_state}
    return make_union(
        ConvFeatureTransformer(**{**params, "filter_size": 3}),
        ConvFeatureTransformer(**{**params, "filter_size": 5}),
    )


def stacked(random_state):
    """Two layers: 32 maps pooled 2x2, then the default transformer on them."""
    return make_pipeline(
        ConvFeatureTransformer(
            **{**OLD_DEFAULTS, "n_filters": 32, "pool_grid": None},
            pool_size=2,
            flatten=False,
            random_state=random_state,
        ),
        ConvFeatureTransformer(**OLD_DEFAULTS, random_state=random_state),
    )


# Parameters that differ from the old defaults; a callable builds a composite transformer.
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
    # On today's defaults, not the old ones: the setting the README recommends (issue 25).
    "feature_norm='auto'": lambda random_state: ConvFeatureTransformer(
        random_state=random_state, feature_norm="auto"
    ),
    "multi-scale 3x3 + 5x5 (FeatureUnion)": multiscale,
    "stacked, 2 layers": stacked,
    # Today's defaults without their last two changes, one at a time and both: the defaults of
    # 27 Nov 2026 (benchmarks/ACCURACY.md).
    "new defaults, antialias=False": lambda random_state: ConvFeatureTransformer(
        random_state=random_state, antialias=False
    ),
    "new defaults, balance_levels=False": lambda random_state: ConvFeatureTransformer(
        random_state=random_state, balance_levels=False
    ),
    "new defaults, neither (27 Nov)": lambda random_state: ConvFeatureTransformer(
        random_state=random_state, antialias=False, balance_levels=False
    ),
}

try:  # the research candidates, when run from the benchmarks folder
    from accuracy_candidates import CANDIDATES
except ImportError:
    CANDIDATES = {}

HEADLINE = [RAW, SCATTERING, OLD, NEW]


# A config "set: name=value, ..." is today's defaults with those parameters (values are
# Python literals), for a screening without adding a named config.
SETTING = "set: "


def parse_setting(config):
    """The parameters of a ``set: name=value, ...`` config."""
    call = ast.parse(f"f({config[len(SETTING) :]})", mode="eval").body
    if call.args:
        raise ValueError(f"{config!r}: only name=value pairs are allowed")
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def make_model(config, random_state):
    """The estimator of a config name (a pipeline ending in LogisticRegression)."""
    if config == RAW:
        return make_pipeline(LogisticRegression(max_iter=1000))
    if config == SCATTERING:
        return make_pipeline(Scattering(J=2), StandardScaler(), LogisticRegression(max_iter=3000))
    if config == OLD:
        conv = ConvFeatureTransformer(random_state=random_state, **OLD_DEFAULTS)
    elif config == NEW:
        conv = ConvFeatureTransformer(random_state=random_state)
    elif config.startswith(SETTING):
        conv = ConvFeatureTransformer(random_state=random_state, **parse_setting(config))
    elif config in CANDIDATES:
        conv = CANDIDATES[config](random_state)
    else:
        params = CONFIGS[config]
        if callable(params):
            conv = params(random_state)
        else:
            conv = ConvFeatureTransformer(random_state=random_state, **{**OLD_DEFAULTS, **params})
    return make_pipeline(conv, LogisticRegression(max_iter=1000))


def evaluate(X, y, groups, config, random_state=0, n_folds=5, split=0):
    """Mean CV accuracy, number of features, seconds of the whole CV, convergence warnings;
    ``split`` seeds the folds' shuffle."""
    if groups is None:
        cv = StratifiedKFold(n_folds, shuffle=True, random_state=split)
    else:
        cv = StratifiedGroupKFold(n_folds, shuffle=True, random_state=split)
    model = make_model(config, random_state)
    data = X.reshape(len(X), -1) / X.max() if config == RAW else X
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        scores = cross_val_score(model, data, y, groups=groups, cv=cv)
        seconds = time.perf_counter() - start
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    features = model[:-1]
    n_features = (
        features.fit(data[:300]).transform(data[:1]).shape[1] if len(features) else data.shape[1]
    )
    return scores.mean(), n_features, seconds, n_warnings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=None, choices=list(ALL_DATASETS))
    parser.add_argument("--held-out", action="store_true", help="also the held-out sets")
    parser.add_argument("--configs", nargs="+", default=None)
    parser.add_argument("--headline", action="store_true", help="raw, scattering, old, new")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--folds", type=int, default=5, help="fewer for a quick screening")
    parser.add_argument(
        "--splits",
        type=int,
        default=1,
        help="repeat the CV on this many shuffles of the folds (seeds 0, 1, ...): the mean "
        "accuracy and, from 2 on, its standard deviation over the shuffles",
    )
    parser.add_argument("--list", action="store_true", help="print the config names and exit")
    args = parser.parse_args()
    known = [*HEADLINE, *CONFIGS, *CANDIDATES]
    if args.list:
        print("\n".join(known))
        return
    sets = args.sets or list(DATASETS) + (list(HELD_OUT) if args.held_out else [])
    configs = list(HEADLINE) if args.headline else []
    configs += [c for c in args.configs or ([] if args.headline else CONFIGS) if c not in configs]
    unknown = [c for c in configs if c not in known and not c.startswith(SETTING)]
    if unknown:
        parser.error(f"unknown configs {unknown}; --list prints the known ones")
    missing = scattering_available() if SCATTERING in configs else None
    if missing:
        print(f"(scattering skipped: kymatio and torch are needed: {missing})")
        configs.remove(SCATTERING)
    splits = range(args.splits)
    print(
        f"{args.folds}-fold CV on {args.splits} shuffle(s) of the folds; seconds are those of "
        "one whole cross-validation"
    )
    print()
    print("| set | config | accuracy | features | CV seconds | convergence warnings |")
    print("|---|---|---|---|---|---|")
    for set_name in sets:
        X, y, groups = load(set_name)
        for config in configs:
            results = [
                evaluate(X, y, groups, config, seed, args.folds, split)
                for split in splits
                for seed in args.seeds
            ]
            # The spread between shuffles: each shuffle's accuracy averaged over the seeds.
            per_split = np.reshape([r[0] for r in results], (len(splits), -1)).mean(axis=1)
            accuracy = f"{per_split.mean():.4f}"
            if len(splits) > 1:
                each = ", ".join(f"{a:.4f}" for a in per_split)
                accuracy += f" ± {per_split.std(ddof=1):.4f} ({each})"
            n_features, seconds = results[0][1], np.mean([r[2] for r in results])
            n_warnings = sum(r[3] for r in results)
            print(
                f"| {set_name} | {config} | {accuracy} | {n_features} | {seconds:.1f} "
                f"| {n_warnings} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
