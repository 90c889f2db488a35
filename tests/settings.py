"""A small random-bank transformer on raw pixels, pooled over windows, for the tests that do not
test the defaults: every parameter they depend on is pinned here, once. And the plan of the
defaults on an image shape, derived from the estimator."""

from dataclasses import replace

import numpy as np

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat._plan import make_plan
from sklearn_convfeat._spec import FeatureSpec

SIMPLE = dict(
    n_filters=4,
    filter_size=3,
    dilation=1,
    filter_init="gaussian",
    image_shape=None,
    stride=1,
    padding="valid",
    activation="relu",
    pooling="max",
    pool_size=2,
    pool_grid=None,
    patch_norm=False,
    flatten=True,
    center=False,
    random_state=0,
    n_jobs=None,
    batch_size="auto",
)


def simple(**params):
    """The ``SIMPLE`` settings overridden by ``params``; a ``pool_grid`` replaces the windows."""
    base = {**SIMPLE, "pool_size": None} if params.get("pool_grid") is not None else SIMPLE
    return {**base, **params}


def make_conv(**params):
    """A transformer with the ``SIMPLE`` settings, overridden by ``params``."""
    return ConvFeatureTransformer(**simple(**params))


# The tile budget of a 1 MiB L2 cache: plans made with it tile alike on every machine.
TILE_BUDGET = 3 * 2**20


def default_plan(image_shape, **changes):
    """The plan of ``ConvFeatureTransformer()`` (fitted on 32x32 images) for images of
    ``image_shape`` (height, width, channels), with ``changes``; the tile budget is
    :data:`TILE_BUDGET` unless changed."""
    images = np.random.default_rng(0).random((2, 32, 32, image_shape[2]))
    conv = ConvFeatureTransformer(random_state=0).fit(images)
    budget = changes.pop("tile_budget", TILE_BUDGET)
    return make_plan(replace(conv.spec_, **changes), image_shape, tile_budget=budget)


def spec_plan(image_shape, *, method="auto", tile_budget=None, **fields):
    """The plan of the :class:`FeatureSpec` of ``fields`` on images of ``image_shape``."""
    return make_plan(FeatureSpec(**fields), image_shape, method=method, tile_budget=tile_budget)
