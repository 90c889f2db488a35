"""Features of a spread of configurations, saved or compared bit for bit: a refactoring check.

Run it once on the commit before a change and once after, from each tree's root::

    PYTHONPATH=/path/to/old python benchmarks/golden_features.py --save /tmp/old.npz
    PYTHONPATH=$PWD python benchmarks/golden_features.py --compare /tmp/old.npz

Only the public estimator is used, so the script runs unchanged on either side. Each
configuration sets a few parameters on ``random_state=0`` and covers one path of the engine
(GEMM, phased GEMM, FFT, banded large images, sums of parts, pyramids, dilated and smoothed
banks, images of several sizes); ``--compare`` prints, for each, whether the filters and the
features are identical (byte for byte: -0.0 is not 0.0) and the largest difference if not.
"""

import argparse
import sys

import numpy as np

from sklearn_convfeat import ConvFeatureTransformer

RNG = np.random.default_rng(0)
GREY = RNG.random((24, 28, 28)).astype(np.float32)
COLOUR = RNG.random((12, 20, 18, 3))
LARGE = RNG.random((1, 700, 900)).astype(np.float32)
SIZES = [RNG.random((h, w)) for h, w in [(30, 40), (36, 30), (28, 28), (45, 50)]]

SMALL = dict(n_filters=24, random_state=0)
CONFIGS = {
    "defaults": (dict(random_state=0), GREY),
    "defaults colour": (dict(random_state=0), COLOUR),
    "gaussian windows": (dict(SMALL, filter_init="gaussian", pool_size=2, dilation=1), GREY),
    "phased avg": (
        dict(SMALL, filter_init="gaussian", pool_size=(2, 3), dilation=1, pooling="avg"),
        GREY,
    ),
    "phased relu rms": (dict(SMALL, pool_size=4, dilation=1, pooling="rms"), GREY),
    "patches ppv": (dict(SMALL, filter_init="patches", pooling="ppv"), COLOUR),
    "pca no whiten": (dict(SMALL, filter_init="pca", whiten=False), GREY),
    "gabor two_sided avg": (
        dict(SMALL, filter_init="gabor", activation="two_sided", pooling="avg"),
        COLOUR,
    ),
    "uniform abs max": (dict(SMALL, filter_init="uniform", activation="abs"), GREY),
    "tanh avg threshold": (dict(SMALL, activation="tanh", pooling="avg", threshold=0.2), GREY),
    "identity avg": (dict(SMALL, activation="identity", pooling="avg"), GREY),
    "relu avg grid": (dict(SMALL, pooling="avg", pool_grid=(2, 3)), COLOUR),
    "two_sided avg threshold": (
        dict(SMALL, activation="two_sided", pooling="avg", threshold=0.1, dilation=1),
        GREY,
    ),
    "stride valid": (dict(SMALL, stride=2, padding="valid"), COLOUR),
    "no patch_norm no center": (dict(SMALL, patch_norm=False, center=False), GREY),
    "flatten False": (dict(SMALL, flatten=False), GREY),
    "unbalanced no antialias": (dict(SMALL, balance_levels=False, antialias=False), GREY),
    "fft large filters": (
        dict(SMALL, filter_init="gaussian", filter_size=19, dilation=1, pool_grid=2),
        np.repeat(np.repeat(GREY[:6], 3, axis=1), 3, axis=2),
    ),
    "fft patch_norm avg": (
        dict(SMALL, filter_size=17, dilation=1, pooling="avg", pool_grid=[1, 2]),
        np.repeat(np.repeat(GREY[:6], 3, axis=1), 3, axis=2),
    ),
    "large banded": (dict(random_state=0, n_filters=96), LARGE),
    "large banded avg": (dict(random_state=0, n_filters=64, pooling="avg", pool_grid=3), LARGE),
    "large banded two_sided": (
        dict(random_state=0, n_filters=64, activation="two_sided", pooling="rms"),
        LARGE,
    ),
    "large banded fft": (
        dict(random_state=0, n_filters=32, filter_init="gaussian", filter_size=21, dilation=1),
        LARGE,
    ),
    "rows grid avg": (dict(SMALL, pooling="avg", pool_grid=[(3, 1), (1, 1)]), GREY),
    "large rows grid avg": (dict(SMALL, pooling="avg", pool_grid=(4, 1)), LARGE),
    "several sizes": (dict(SMALL), SIZES),
    "several sizes avg": (dict(SMALL, pooling="avg", activation="two_sided"), SIZES),
    "n_jobs 2 batch 5": (dict(SMALL, n_jobs=2, batch_size=5), GREY),
}


def features():
    """Name -> (filters, features) of every configuration."""
    results = {}
    for name, (params, X) in CONFIGS.items():
        conv = ConvFeatureTransformer(**params)
        fitted = X[:1] if X is LARGE else X
        if X is LARGE:
            fitted = [LARGE[0, :256, :256]]
            X = [LARGE[0]]
        conv.fit(fitted)
        results[name] = (conv.filters_, conv.transform(X))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save")
    parser.add_argument("--compare")
    args = parser.parse_args()
    results = features()
    if args.save:
        arrays = {}
        for name, (filters, values) in results.items():
            arrays[f"{name}|filters"], arrays[f"{name}|features"] = filters, values
        np.savez(args.save, **arrays)
    if args.compare:
        saved = np.load(args.compare)
        failures = 0
        for name, (filters, values) in results.items():
            old_filters, old = saved[f"{name}|filters"], saved[f"{name}|features"]
            same = all(
                a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
                for a, b in [(filters, old_filters), (values, old)]
            )
            if same:
                print(f"identical  {name} {values.shape}")
                continue
            failures += 1
            gap = np.abs(values - old).max() if values.shape == old.shape else "shape"
            print(f"DIFFERENT  {name}: features {values.shape} vs {old.shape}, max gap {gap}")
        print(f"{len(results) - failures} of {len(results)} configurations identical")
        sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
