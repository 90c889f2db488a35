"""Candidate configurations of the accuracy research, built from the outside of the package.

Everything here is a prototype made with today's engine: the ideas that need engine support
(dilated filters, per-filter biases from quantiles of the responses, k-means with more
centroids than filters kept) are computed in ``fit`` below and written into the fitted
attributes (``filters_``, ``bias_``, ``patch_norm_eps_``) of plain ``ConvFeatureTransformer``
objects, whose ``transform`` then runs unchanged. ``bench_accuracy.py`` runs them by name
(``--configs "cand: ..."``; ``--list`` prints the names).

- A dilated ``k x k`` filter with dilation ``d`` is a ``(k-1)d+1`` square filter whose taps
  are ``d`` apart, zeros between them: the engine computes it as a large dense filter, so its
  time here is an upper bound (a native dilated GEMM costs the ``k x k`` taps only). The
  patch normalisation is the engine's, over the filter's whole footprint; the filters are
  learnt consistently: patches of the footprint are normalised, their taps kept, whitened,
  clustered.
- Quantile biases (MiniRocket): once the bank is made, each filter's responses (with the
  bank's centring bias) on a random training image are computed and the bias is moved so
  that the filter's threshold is a random quantile (in ``quantiles``) of them.
- ``oversample=r``: k-means with ``r * n_filters`` centroids, of which ``n_filters`` are
  kept: the most populated clusters (``keep='count'``) or a greedy spread of them
  (``keep='spread'``: the largest cluster first, then each time the centroid least similar,
  in absolute cosine, to those kept).
- ``footprint_rule``: which dilations a small image keeps: ``'image'`` drops those whose
  footprint exceeds the image; ``'half'`` and ``'two_thirds'`` keep those whose footprint is at
  most that fraction of the image side and give the dropped dilations' filters to the kept
  ones (the number of maps then does not depend on the image size).
- ``Centred``: the features minus their mean over at most 1000 training images (a ``center``
  option): LogisticRegression's optimum is unchanged, its L-BFGS needs 4-5x fewer iterations.

``cand: proposed`` is the recommendation of the research report.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.cluster import MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline, make_union
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat._patches import (
    fold_preprocessing,
    normalize_patches,
    patch_norm_eps,
    sample_patches,
    zca_whitening,
)
from sklearn_convfeat._shapes import resolve_image_shape, to_images

PYRAMID = ((1, 1), (2, 2), (4, 4))

# The package's defaults when these candidates were measured (before issue 12): every
# candidate starts from them, so that it stays what it was whatever the defaults become.
BEFORE = dict(
    n_filters=64,
    dilation=1,
    antialias=False,
    center=False,
    pool_grid=PYRAMID,
    balance_levels=False,
)


def _unit_rows(vectors):
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def spherical_kmeans(patches, n_filters, random_state, oversample=1, keep="count"):
    """``n_filters`` unit centroids of k-means of the unit patches, from ``oversample`` times
    as many clusters."""
    n_clusters = min(n_filters * oversample, patches.shape[0])
    kmeans = MiniBatchKMeans(n_clusters=n_clusters, n_init=1, random_state=random_state)
    data = _unit_rows(patches)
    with threadpool_limits(limits=1, user_api="openmp"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans.fit(data)
    centres = _unit_rows(kmeans.cluster_centers_)
    counts = np.bincount(kmeans.labels_, minlength=n_clusters)
    order = np.argsort(-counts, kind="stable")
    if keep == "count" or oversample == 1:
        chosen = order[:n_filters]
    elif keep == "spread":
        chosen = [order[0]]
        similarity = np.abs(centres @ centres[order[0]])
        for _ in range(1, min(n_filters, n_clusters)):
            similarity[chosen] = np.inf
            best = int(np.argmin(similarity))
            chosen.append(best)
            similarity = np.maximum(similarity, np.abs(centres @ centres[best]))
        chosen = np.asarray(chosen)
    else:
        raise ValueError(keep)
    return np.resize(centres[chosen], (n_filters, patches.shape[1]))


class ResearchConv(TransformerMixin, BaseEstimator):
    """One or several k-means banks (size, dilation, count each), features concatenated.

    ``banks``: tuple of ``(n_filters, filter_size, dilation)``. Every bank is its own
    ``ConvFeatureTransformer`` (own patch normalisation, own whitening), as a native
    multi-size bank would be. The other parameters are the transformer's.
    """

    def __init__(
        self,
        banks=((64, 4, 1),),
        activation="relu",
        pooling="max",
        pool_grid=PYRAMID,
        threshold=0.0,
        oversample=1,
        keep="count",
        quantiles=None,
        bias_images=1,
        max_patches=10_000,
        footprint_rule="image",
        random_state=0,
    ):
        self.banks = banks
        self.activation = activation
        self.pooling = pooling
        self.pool_grid = pool_grid
        self.threshold = threshold
        self.oversample = oversample
        self.keep = keep
        self.quantiles = quantiles
        self.bias_images = bias_images
        self.max_patches = max_patches
        self.footprint_rule = footprint_rule
        self.random_state = random_state

    def _conv(self, **params):
        return ConvFeatureTransformer(
            **{
                **BEFORE,
                "activation": self.activation,
                "pooling": self.pooling,
                "pool_grid": self.pool_grid,
                "threshold": self.threshold,
                "max_patches": self.max_patches,
                **params,
            }
        )

    def _fit_bank(self, X, images, n_filters, size, dilation, rng):
        plain = dilation == 1 and self.oversample == 1
        if plain:
            conv = self._conv(n_filters=n_filters, filter_size=size, random_state=rng).fit(X)
        else:
            footprint = (size - 1) * dilation + 1
            channels = images.shape[3]
            patches = sample_patches(images, (footprint, footprint), self.max_patches, rng)
            eps = patch_norm_eps(patches)
            patches = normalize_patches(patches, eps)
            taps = patches.reshape(-1, footprint, footprint, channels)[:, ::dilation, ::dilation]
            taps = taps.reshape(len(taps), -1)
            mean, whitening = zca_whitening(taps)
            bank = spherical_kmeans(
                (taps - mean) @ whitening, n_filters, rng, self.oversample, self.keep
            )
            filters, bias = fold_preprocessing(bank, mean, whitening)
            dense = np.zeros((n_filters, footprint, footprint, channels), dtype=np.float32)
            dense[:, ::dilation, ::dilation] = filters.reshape(n_filters, size, size, channels)
            conv = self._conv(n_filters=n_filters, filter_init=dense, random_state=rng).fit(X[:2])
            conv.filters_ = dense
            conv.bias_ = bias.astype(np.float32)
            conv.patch_norm_eps_ = eps
        if self.quantiles is not None:
            self._set_quantile_bias(conv, X, rng)
        return conv

    def _set_quantile_bias(self, conv, X, rng):
        """Move each filter's bias to minus a random quantile of its responses on a random
        training image (MiniRocket); with ``bias_images > 1``, over that many images."""
        n_filters = conv.filters_.shape[0]
        probe = clone(conv).set_params(
            n_filters=n_filters,
            filter_init=conv.filters_,
            activation="identity",
            threshold=0.0,
            pool_grid=None,
            pool_size=1,
            flatten=False,
        )
        probe.fit(X[:2])
        probe.bias_, probe.patch_norm_eps_ = conv.bias_, conv.patch_norm_eps_
        n_filters = conv.filters_.shape[0]
        chosen = rng.randint(0, len(X), size=(n_filters, self.bias_images))
        lo, hi = self.quantiles
        q = rng.uniform(lo, hi, size=n_filters)
        maps = probe.transform(X[np.unique(chosen)])
        index = {image: row for row, image in enumerate(np.unique(chosen))}
        shift = np.empty(n_filters)
        for f in range(n_filters):
            responses = maps[[index[i] for i in chosen[f]], ..., f].ravel()
            shift[f] = np.quantile(responses, q[f])
        conv.bias_ = (conv.bias_ - shift).astype(np.float32)

    def fit(self, X, y=None):
        rng = check_random_state(self.random_state)
        X = np.asarray(X)
        images = to_images(X.astype(np.float32), resolve_image_shape(X.shape, None))
        # Dilations whose footprint does not fit in the images are dropped (8x8 digits: d3).
        side = min(images.shape[1:3])
        if self.footprint_rule in ("half", "two_thirds"):
            # footprints up to half (two thirds) of the image side; the filters of the dropped
            # dilations go to those kept, so that the number of maps does not depend on the
            # image size.
            limit = side // 2 if self.footprint_rule == "half" else 2 * side // 3
            fits = [(n, s, d) for n, s, d in self.banks if (s - 1) * d + 1 <= max(s, limit)]
            total = sum(n for n, _, _ in self.banks)
            fits = [(total // len(fits), s, d) for _, s, d in fits]
        else:
            fits = [(n, s, d) for n, s, d in self.banks if (s - 1) * d + 1 <= side]
        self.convs_ = [self._fit_bank(X, images, n, s, d, rng) for n, s, d in fits]
        return self

    def transform(self, X):
        return np.hstack([conv.transform(X) for conv in self.convs_])


def _conv(**params):
    return lambda random_state: ConvFeatureTransformer(
        random_state=random_state, **{**BEFORE, **params}
    )


def _research(**params):
    return lambda random_state: ResearchConv(random_state=random_state, **params)


def _stacked(first, second):
    def build(random_state):
        return make_pipeline(
            ConvFeatureTransformer(
                flatten=False, random_state=random_state, **{**BEFORE, "pool_grid": None, **first}
            ),
            ConvFeatureTransformer(random_state=random_state, **{**BEFORE, **second}),
        )

    return build


def _union(*param_sets):
    def build(random_state):
        return make_union(
            *[
                ConvFeatureTransformer(random_state=random_state, **{**BEFORE, **p})
                for p in param_sets
            ]
        )

    return build


P1234 = ((1, 1), (2, 2), (3, 3), (4, 4))
P1248 = ((1, 1), (2, 2), (4, 4), (8, 8))
P124_6 = ((1, 1), (2, 2), (4, 4), (6, 6))
P1246 = P124_6
P123 = ((1, 1), (2, 2), (3, 3))

CANDIDATES = {
    # the hand-tuned settings
    "cand: 128x5": _conv(n_filters=128, filter_size=5),
    "cand: 256x6 two_sided": _conv(n_filters=256, filter_size=6, activation="two_sided"),
    # bank size and filter size
    "cand: 128x4": _conv(n_filters=128),
    "cand: 64x5": _conv(filter_size=5),
    "cand: 64x6": _conv(filter_size=6),
    "cand: 64x7": _conv(filter_size=7),
    "cand: 128x6": _conv(n_filters=128, filter_size=6),
    "cand: 256x5": _conv(n_filters=256, filter_size=5),
    # two_sided
    "cand: 64x4 two_sided": _conv(activation="two_sided"),
    "cand: 64x5 two_sided": _conv(filter_size=5, activation="two_sided"),
    "cand: 128x5 two_sided": _conv(n_filters=128, filter_size=5, activation="two_sided"),
    # finer pyramids
    "cand: 64x4 p1234": _conv(pool_grid=P1234),
    "cand: 64x4 p1248": _conv(pool_grid=P1248),
    "cand: 64x4 p1246": _conv(pool_grid=P1246),
    "cand: 64x4 grid3": _conv(pool_grid=((1, 1), (3, 3))),
    "cand: 64x5 p1234": _conv(filter_size=5, pool_grid=P1234),
    "cand: 64x5 p1248": _conv(filter_size=5, pool_grid=P1248),
    "cand: 128x5 p1234": _conv(n_filters=128, filter_size=5, pool_grid=P1234),
    # two sizes in one bank (a union of two transformers)
    "cand: 32x3+32x5": _union(dict(n_filters=32, filter_size=3), dict(n_filters=32, filter_size=5)),
    "cand: 64x4+64x6": _union(dict(), dict(filter_size=6)),
    "cand: 32x4+32x7": _union(dict(n_filters=32), dict(n_filters=32, filter_size=7)),
    # dilations
    "cand: 64x4 d2": _research(banks=((64, 4, 2),)),
    "cand: 32x4 d1+32x4 d2": _research(banks=((32, 4, 1), (32, 4, 2))),
    "cand: 64x4 d1+64x4 d2": _research(banks=((64, 4, 1), (64, 4, 2))),
    "cand: 64x3 d1+64x3 d2": _research(banks=((64, 3, 1), (64, 3, 2))),
    "cand: 32x3 d1,d2,d3": _research(banks=((32, 3, 1), (32, 3, 2), (32, 3, 3))),
    # k-means with more centroids than kept
    "cand: 64x4 kmeans x4 count": _research(oversample=4, keep="count"),
    "cand: 64x4 kmeans x4 spread": _research(oversample=4, keep="spread"),
    # quantile biases (MiniRocket)
    "cand: 64x4 q.25-.75": _research(quantiles=(0.25, 0.75)),
    "cand: 64x4 q.5-.9": _research(quantiles=(0.5, 0.9)),
    "cand: 64x4 q.25-.75 ppv": _research(quantiles=(0.25, 0.75), pooling="ppv"),
    "cand: 64x4 q.25-.75 avg": _research(quantiles=(0.25, 0.75), pooling="avg"),
    # a second layer
    "cand: 2 layers 64x4 pool2 -> 64x3": _stacked(
        dict(pool_grid=None, pool_size=2), dict(filter_size=3)
    ),
    # combinations
    "cand: 64x4 d2 p1234": _research(banks=((64, 4, 2),), pool_grid=P1234),
    "cand: 32x4 d1+32x4 d2 p1234": _research(banks=((32, 4, 1), (32, 4, 2)), pool_grid=P1234),
    "cand: 64x4 d1+64x4 d2 p1234": _research(banks=((64, 4, 1), (64, 4, 2)), pool_grid=P1234),
    "cand: 64x4 d1+64x4 d2 p123": _research(banks=((64, 4, 1), (64, 4, 2)), pool_grid=P123),
    "cand: 48x4 d1,d2,d3": _research(banks=((48, 4, 1), (48, 4, 2), (48, 4, 3))),
    "cand: 64x5 d1+64x5 d2": _research(banks=((64, 5, 1), (64, 5, 2))),
    "cand: 64x4 d1+64x4 d2 spread": _research(
        banks=((64, 4, 1), (64, 4, 2)), oversample=4, keep="spread"
    ),
    "cand: 64x4 spread x2": _research(oversample=2, keep="spread"),
    "cand: 32x4 d1+32x4 d2 p123": _research(banks=((32, 4, 1), (32, 4, 2)), pool_grid=P123),
    "cand: 64x4 p123": _conv(pool_grid=P123),
    "cand: 48x4 d1,d2,d3 spread p123": _research(
        banks=((48, 4, 1), (48, 4, 2), (48, 4, 3)), oversample=4, keep="spread", pool_grid=P123
    ),
    "cand: 48x4 d1,d2,d3 spread2 p123": _research(
        banks=((48, 4, 1), (48, 4, 2), (48, 4, 3)), oversample=2, keep="spread", pool_grid=P123
    ),
    "cand: 64x4 d2 p123": _research(banks=((64, 4, 2),), pool_grid=P123),
    "cand: 48x4 d1,d2,d3 p123": _research(
        banks=((48, 4, 1), (48, 4, 2), (48, 4, 3)), pool_grid=P123
    ),
    "cand: 64x5 d1+64x5 d2 p123": _research(banks=((64, 5, 1), (64, 5, 2)), pool_grid=P123),
    "cand: 96x4 d1+96x4 d2 p123": _research(banks=((96, 4, 1), (96, 4, 2)), pool_grid=P123),
    "cand: 64x4 d1+64x4 d2 spread p123": _research(
        banks=((64, 4, 1), (64, 4, 2)), oversample=4, keep="spread", pool_grid=P123
    ),
    "cand: 64x4 d1+64x4 d2 p1234 two_sided": _research(
        banks=((64, 4, 1), (64, 4, 2)), pool_grid=P1234, activation="two_sided"
    ),
    "cand: 64x4 d1+64x4 d2 p123 two_sided": _research(
        banks=((64, 4, 1), (64, 4, 2)), pool_grid=P123, activation="two_sided"
    ),
}


class Centred(TransformerMixin, BaseEstimator):
    """``transformer``'s features minus their mean over (a sample of) the training images.

    Prototype of a ``center`` option: ``fit`` transforms at most ``n_images`` random training
    images and stores the mean feature; ``transform`` subtracts it. With an unpenalised
    intercept this leaves LogisticRegression's optimum unchanged, but the non-negative pooled
    features all share a large mean, which makes L-BFGS take several times more iterations.
    """

    def __init__(self, transformer, n_images=1000, scale=None, random_state=0):
        self.transformer = transformer
        self.n_images = n_images
        self.scale = scale
        self.random_state = random_state

    def fit(self, X, y=None):
        self.transformer_ = clone(self.transformer).fit(X)
        rng = check_random_state(self.random_state)
        sample = np.sort(rng.permutation(len(X))[: self.n_images])
        features = self.transformer_.transform(np.asarray(X)[sample])
        self.mean_ = features.mean(axis=0)
        if self.scale == "global":  # one number: the features' root mean variance
            self.scale_ = np.sqrt(np.mean(features.var(axis=0)))
        elif self.scale == "feature":  # as StandardScaler
            std = features.std(axis=0)
            self.scale_ = np.where(std > 1e-6, std, 1.0)
        else:
            self.scale_ = 1.0
        return self

    def transform(self, X):
        return (self.transformer_.transform(X) - self.mean_) / self.scale_


def _centred(build):
    return lambda random_state: Centred(build(random_state), random_state=random_state)


for _name in list(CANDIDATES):
    CANDIDATES[_name + " +centre"] = _centred(CANDIDATES[_name])
CANDIDATES["cand: old defaults +centre"] = _centred(_conv())

C2 = CANDIDATES["cand: 48x4 d1,d2,d3 p123"]
CANDIDATES["cand: 48x4 d1,d2,d3 p123 +centre+global scale"] = lambda random_state: Centred(
    C2(random_state), scale="global", random_state=random_state
)
CANDIDATES["cand: 48x4 d1,d2,d3 p123 +standardise"] = lambda random_state: Centred(
    C2(random_state), scale="feature", random_state=random_state
)

CANDIDATES["cand: 48x4 d1,d2,d3 p123 half-rule +centre"] = _centred(
    _research(banks=((48, 4, 1), (48, 4, 2), (48, 4, 3)), pool_grid=P123, footprint_rule="half")
)
CANDIDATES["cand: 64x4 d1,d2,d3 p123 +centre"] = _centred(
    _research(banks=((64, 4, 1), (64, 4, 2), (64, 4, 3)), pool_grid=P123)
)
CANDIDATES["cand: 64x4 d1+48x4 d2+48x4 d3 p123 +centre"] = _centred(
    _research(banks=((64, 4, 1), (48, 4, 2), (48, 4, 3)), pool_grid=P123)
)
CANDIDATES["cand: 64x4 d1,d2,d3 p123 half-rule +centre"] = _centred(
    _research(banks=((64, 4, 1), (64, 4, 2), (64, 4, 3)), pool_grid=P123, footprint_rule="half")
)

# The recommendation (see the research report): 64 4x4 k-means filters at each of the
# dilations 1, 2 and 3 (192 maps), a dilation kept only if its footprint (k-1)d+1 is at most
# two thirds of the image side (the filters of a dropped dilation go to the kept ones: 8x8
# images get 192 undilated filters), ReLU, max pooling onto the 1+2x2+3x3 pyramid (14
# regions, 2688 features), features centred on their mean over <= 1000 training images.
CANDIDATES["cand: proposed"] = _centred(
    _research(
        banks=((64, 4, 1), (64, 4, 2), (64, 4, 3)), pool_grid=P123, footprint_rule="two_thirds"
    )
)
CANDIDATES["cand: 64x4 d1,d2,d3 p123"] = _research(
    banks=((64, 4, 1), (64, 4, 2), (64, 4, 3)), pool_grid=P123
)
