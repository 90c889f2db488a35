"""Accuracy and end-to-end time on Fashion-MNIST and MNIST: fit on the 60,000 training images,
score once on the 10,000 test images.

    python benchmarks/bench_real.py                              # both sets, every row
    python benchmarks/bench_real.py --sets mnist --rows defaults  # one set, one row
    python benchmarks/bench_real.py --train-subset 5000 --no-save # a quick run
    python benchmarks/bench_real.py --list                        # the rows' names
    python benchmarks/bench_real.py --sets mnist --cv 5 --rows "kernel on the defaults"

Rows (``random_state=0`` wherever there is randomness):

- ``raw pixels``: ``LogisticRegression(max_iter=1000)`` on the pixels / 255;
- ``HOG``: scikit-image's ``hog`` (9 orientations, 4x4 cells, 2x2 blocks), then
  ``LogisticRegression(max_iter=1000)``;
- ``scattering``: kymatio's ``Scattering2D(J=2)``, ``StandardScaler``,
  ``LogisticRegression(max_iter=1000)``;
- ``old defaults``: the defaults of 28 Nov 2026 (before issue 25), written out, with
  ``LogisticRegression(max_iter=1000)``;
- ``defaults``: ``ConvFeatureTransformer()`` of this tree with the README quickstart's
  classifier (``QUICKSTART_CLASSIFIER``);
- ``feature_norm='auto'``: the defaults with the features scaled for LogisticRegression's
  default ``C`` (the candidate default of issue 25), with the quickstart's classifier;
- ``recommended``: the pipeline of the command line's ``evaluate``
  (``sklearn_convfeat._cli.make_model``) on the defaults;
- ``accurate recipe``: the README's accurate recipe (``accurate_recipe``: a union of two
  poolings of the default bank, ``PCA``, ``SVC``);
- ``kernel on the defaults``: the kernel recipe it replaced (the default features, ``PCA``,
  ``SVC``);
- ``960 filters, 'auto'``: the linear recipe before both, with the quickstart's classifier.

Each row reports the seconds of each stage: the features of the training images (fit and
transform), of the test images, the classifier (fit and predict), and the total. The
features use ``--threads`` threads (``n_jobs``, each on one BLAS thread, for ours; torch's
threads for scattering; joblib workers for HOG), and BLAS gets as many for the peers' features
and every classifier. Only the test split is scored, once per row. The results
go to ``benchmarks/real_results.json`` (merged by set; ``--no-save`` to skip).

``--cv K`` is for tuning, and scores no test image: each row is cross-validated on the training
split alone (K stratified folds, shuffled with seed 0, every stage refitted on each fold's
training part). It prints each row's errors over the whole training split, fold by fold, and
against the first row image by image (the errors it fixes and the ones it makes anew): on
60,000 images, differences that a holdout of 10,000 cannot see. Its results go to the same
file, under ``"<set>, K-fold CV"``.

The BLAS kernel: like ``bench_speed.py``, the script restarts itself without
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` if they are set and prints the kernel that
threadpoolctl reports (``--keep-blas-env`` keeps them).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from bench_speed import _restart_with_native_blas  # noqa: E402

if __name__ == "__main__":
    _restart_with_native_blas()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, os.path.dirname(__file__))

from bench_speed import blas_report  # noqa: E402
from real_datasets import LOADERS, MissingDataset, load_real  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.pipeline import FeatureUnion, make_pipeline, make_union  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "real_results.json")

# The defaults before issue 25 (those of 28 Nov 2026), written out so that the row stays fixed.
OLD_DEFAULTS = dict(
    n_filters=192,
    filter_size=4,
    dilation=(1, 2, 3),
    antialias=True,
    filter_init="kmeans",
    stride=1,
    padding="same",
    activation="relu",
    threshold=0.0,
    pooling="max",
    pool_grid=None,
    pool_size=None,
    balance_levels=True,
    whiten=True,
    patch_norm=True,
    max_patches=10_000,
    center=True,
)
OLD_CLASSIFIER = LogisticRegression(max_iter=1000)

# The classifier of the README's quickstart (tests/test_readme.py checks they agree).
QUICKSTART_CLASSIFIER = LogisticRegression(max_iter=1000)


def accurate_recipe(random_state=0, n_jobs=None):
    """The accurate recipe of the README and benchmarks/REAL.md, the whole pipeline: the
    union of two poolings of the default bank, each scaled to the same size, their 256
    leading principal components, an RBF support vector machine (chosen on holdouts of the
    training splits: REAL.md sections 5 and 6). The two-sided maxima suit MNIST, the root
    mean squares on a finer pyramid Fashion-MNIST; ``feature_norm=1.0`` on both makes each
    weigh the same in the kernel. ``SVC``'s default ``gamma='scale'`` is blind to the
    features' overall scale."""

    def features(**params):
        return ConvFeatureTransformer(
            **params, feature_norm=1.0, random_state=random_state, n_jobs=n_jobs
        )

    return make_pipeline(
        make_union(
            features(activation="two_sided"),
            features(pooling="rms", pool_grid=[1, 2, 3, 4]),
        ),
        PCA(256, random_state=random_state),
        SVC(C=10),
    )


def kernel_on_defaults(random_state=0, n_jobs=None):
    """The kernel recipe before the union (2 Dec 2026): the default features, PCA, SVC."""
    return make_pipeline(
        ConvFeatureTransformer(random_state=random_state, n_jobs=n_jobs),
        PCA(256, random_state=random_state),
        SVC(C=10),
    )


def _split(pipeline):
    """A pipeline as (its first step, the rest): the features, and their classifier."""
    return pipeline[0], pipeline[1:]


class HOG:
    """scikit-image's ``hog`` of every image, on ``n_jobs`` joblib workers."""

    def __init__(self, n_jobs=1):
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        return self

    @staticmethod
    def _hog(images):
        from skimage.feature import hog

        return np.stack(
            [
                hog(image, orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2))
                for image in images
            ]
        ).astype(np.float32)

    def transform(self, X):
        from joblib import Parallel, delayed

        chunks = np.array_split(X, max(1, self.n_jobs) * 4)
        parts = Parallel(n_jobs=self.n_jobs)(delayed(self._hog)(c) for c in chunks)
        return np.concatenate(parts)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)


class Scattering:
    """kymatio's ``Scattering2D(J)`` of the images, flattened, on torch's ``threads``.

    kymatio's own ``Scattering2D`` import pulls its 3-D module, which fails with recent SciPy
    (``sph_harm`` was removed), so the 2-D torch frontend is imported directly.
    """

    def __init__(self, J=2, threads=1, batch_size=512):
        self.J, self.threads, self.batch_size = J, threads, batch_size

    def fit(self, X, y=None):
        import torch
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

        torch.set_num_threads(self.threads)
        self.scattering_ = ScatteringTorch2D(J=self.J, shape=X.shape[1:3])
        return self

    def transform(self, X):
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                batch = torch.from_numpy(
                    np.ascontiguousarray(X[start : start + self.batch_size], dtype=np.float32)
                )
                out.append(self.scattering_(batch).reshape(len(batch), -1).numpy())
        return np.concatenate(out)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)


class Raw:
    """The pixels / 255, flat."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X.reshape(len(X), -1).astype(np.float32) / 255

    def fit_transform(self, X, y=None):
        return self.transform(X)


def _recommended(n_jobs):
    from sklearn_convfeat._cli import make_model

    model = make_model(ConvFeatureTransformer(random_state=0, n_jobs=n_jobs))
    return model.steps[0][1], make_pipeline(*[step for _, step in model.steps[1:]])


# Each row: threads -> (features, classifier). The features are fitted on the training
# images and transform both splits; the classifier is fitted on the training features.
ROWS = {
    "raw pixels": lambda n: (Raw(), LogisticRegression(max_iter=1000)),
    "HOG": lambda n: (HOG(n_jobs=n), LogisticRegression(max_iter=1000)),
    "scattering": lambda n: (
        Scattering(J=2, threads=n),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    ),
    "old defaults": lambda n: (
        ConvFeatureTransformer(**OLD_DEFAULTS, random_state=0, n_jobs=n),
        clone(OLD_CLASSIFIER),
    ),
    "defaults": lambda n: (
        ConvFeatureTransformer(random_state=0, n_jobs=n),
        clone(QUICKSTART_CLASSIFIER),
    ),
    "feature_norm='auto'": lambda n: (
        ConvFeatureTransformer(feature_norm="auto", random_state=0, n_jobs=n),
        clone(QUICKSTART_CLASSIFIER),
    ),
    "recommended": _recommended,
    "accurate recipe": lambda n: _split(accurate_recipe(0, n)),
    "kernel on the defaults": lambda n: _split(kernel_on_defaults(0, n)),
    # The linear recipe before the kernel one (2 Dec 2026): five times the filters.
    "960 filters, 'auto'": lambda n: (
        ConvFeatureTransformer(n_filters=960, feature_norm="auto", random_state=0, n_jobs=n),
        clone(QUICKSTART_CLASSIFIER),
    ),
}
PEERS = ("raw pixels", "HOG", "scattering")


def run_row(row, threads, X_train, y_train, X_test, y_test):
    """Accuracy on ``X_test``, the features' width, each stage's seconds, warnings; and the
    predictions of ``X_test``."""
    features, classifier = ROWS[row](threads)
    # Our transformer holds BLAS to one thread under each of its n_jobs threads itself; inside
    # a threadpool_limits of 2 it cannot (it warns), and its threads' products then compete
    # for the cores (the 576-filter recipe's features took over ten times as long).
    parts = features.transformer_list if isinstance(features, FeatureUnion) else [(0, features)]
    blas = (
        contextlib.nullcontext()
        if all(isinstance(part, ConvFeatureTransformer) for _, part in parts)
        else threadpool_limits(limits=threads, user_api="blas")
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        with blas:
            start = time.perf_counter()
            F_train = features.fit_transform(X_train)
            train_s = time.perf_counter() - start
            start = time.perf_counter()
            F_test = features.transform(X_test)
            test_s = time.perf_counter() - start
        with threadpool_limits(limits=threads, user_api="blas"):
            start = time.perf_counter()
            classifier.fit(F_train, y_train)
            predictions = classifier.predict(F_test)
            accuracy = float(np.mean(predictions == y_test))
            classifier_s = time.perf_counter() - start
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:  # any other warning is the reader's to see
        if not issubclass(w.category, ConvergenceWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    last = classifier[-1] if hasattr(classifier, "steps") else classifier
    result = dict(
        accuracy=accuracy,
        features=int(F_train.shape[1]),
        train_features_s=round(train_s, 1),
        test_features_s=round(test_s, 1),
        classifier_s=round(classifier_s, 1),
        total_s=round(train_s + test_s + classifier_s, 1),
        iterations=int(np.max(getattr(last, "n_iter_", 0))),
        convergence_warnings=n_warnings,
    )
    return result, predictions


def cross_validate_row(row, threads, X, y, n_folds):
    """The row cross-validated on ``(X, y)``, a training split: ``n_folds`` stratified folds
    shuffled with seed 0, every stage fitted on each fold's training part. Returns the accuracy
    over all of ``X``, the errors of each fold, the seconds of the whole cross-validation, and
    ``wrong``: which images of ``X`` the row got wrong."""
    wrong = np.zeros(len(y), dtype=bool)
    fold_errors, seconds = [], 0.0
    for train, test in StratifiedKFold(n_folds, shuffle=True, random_state=0).split(X, y):
        result, predictions = run_row(row, threads, X[train], y[train], X[test], y[test])
        wrong[test] = predictions != y[test]
        fold_errors.append(int(wrong[test].sum()))
        seconds += result["total_s"]
    return dict(
        accuracy=float(1 - wrong.mean()),
        errors=int(wrong.sum()),
        fold_errors=fold_errors,
        total_s=round(seconds, 1),
        wrong=wrong,
    )


def cross_validate_rows(rows, threads, X, y, n_folds):
    """``--cv``: each row's cross-validated errors on the training split ``(X, y)``, printed,
    and image by image against the first row's."""
    print("| row | CV accuracy | errors | errors per fold | fixed / new against the first | s |")
    print("|---|---|---|---|---|---|")
    results, first = {}, None
    for row in rows:
        result = cross_validate_row(row, threads, X, y, n_folds)
        wrong = result.pop("wrong")
        first = wrong if first is None else first
        results[row] = result
        print(
            f"| {row} | {result['accuracy']:.5f} | {result['errors']} "
            f"| {', '.join(map(str, result['fold_errors']))} "
            f"| {int(np.sum(first & ~wrong))} / {int(np.sum(wrong & ~first))} "
            f"| {result['total_s']} |",
            flush=True,
        )
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), metavar="ROW")
    parser.add_argument("--threads", type=int, default=2, help="threads of every stage")
    parser.add_argument(
        "--train-subset", type=int, default=None, help="the first N training images only"
    )
    parser.add_argument(
        "--test-subset", type=int, default=None, help="the first N test images only (a smoke run)"
    )
    parser.add_argument(
        "--cv",
        type=int,
        default=None,
        metavar="K",
        help="cross-validate each row on the training split (K folds); the test split is not used",
    )
    parser.add_argument("--no-save", action="store_true", help=f"do not update {RESULTS}")
    parser.add_argument("--keep-blas-env", action="store_true", help="keep a forced kernel")
    parser.add_argument("--list", action="store_true", help="print the rows' names and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(ROWS))
        return
    unknown = [row for row in args.rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; --list prints them")
    blas = blas_report()
    print(blas)
    print(f"{args.threads} threads; {platform.processor() or platform.machine()}; seed 0")
    saved = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as file:
            saved = json.load(file)
    for set_name in args.sets:
        try:
            X_train, y_train, X_test, y_test = load_real(set_name)
        except MissingDataset as exc:
            print(f"{set_name} skipped: {exc}")
            continue
        if args.train_subset:
            X_train, y_train = X_train[: args.train_subset], y_train[: args.train_subset]
        if args.test_subset:
            X_test, y_test = X_test[: args.test_subset], y_test[: args.test_subset]
        if args.cv:
            print(
                f"\n{set_name}: {args.cv}-fold CV of the {len(X_train)} training images "
                "(the test split not used)"
            )
            results = cross_validate_rows(args.rows, args.threads, X_train, y_train, args.cv)
            save(saved, f"{set_name}, {args.cv}-fold CV", results, args, blas, len(X_train), 0)
            continue
        print(f"\n{set_name}: {len(X_train)} training images, {len(X_test)} test images")
        print(
            "| row | test accuracy | features | train features s | test features s "
            "| classifier s | total s | solver iterations | warnings |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        results = {}
        for row in args.rows:
            result, _ = run_row(row, args.threads, X_train, y_train, X_test, y_test)
            results[row] = result
            print(
                f"| {row} | {result['accuracy']:.4f} | {result['features']} "
                f"| {result['train_features_s']} | {result['test_features_s']} "
                f"| {result['classifier_s']} | {result['total_s']} | {result['iterations']} "
                f"| {result['convergence_warnings']} |",
                flush=True,
            )
        if "scattering" in results:
            base = results["scattering"]["total_s"]
            ratios = ", ".join(
                f"{row} {r['total_s'] / base:.2f}" for row, r in results.items() if base
            )
            print(f"total time / scattering's: {ratios}")
        save(saved, set_name, results, args, blas, len(X_train), len(X_test))


def save(saved, key, results, args, blas, n_train, n_test):
    """Merge a run's rows into ``RESULTS`` under ``key``, unless ``--no-save``. Rows of one
    run are compared with each other: each row keeps the run it came from."""
    if args.no_save:
        return
    run = {
        "command": "python benchmarks/bench_real.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "blas": blas,
        "threads": args.threads,
        "n_train": n_train,
        "n_test": n_test,
    }
    rows = saved.setdefault(key, {})
    rows.update({row: {**result, **run} for row, result in results.items()})
    with open(RESULTS, "w") as file:
        json.dump(saved, file, indent=1)
        file.write("\n")


if __name__ == "__main__":
    main()
