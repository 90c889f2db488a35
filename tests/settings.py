"""A small random-bank transformer on raw pixels, pooled over windows, for the tests that do not
test the defaults: every parameter they depend on is pinned here, once."""

from sklearn_convfeat import ConvFeatureTransformer

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
