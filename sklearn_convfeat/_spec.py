"""The spec of the features: the estimator's parameters, parsed once, as plain frozen data.

Every int, pair, dilation and pooling parameter is checked and normalised here, and only here:
:func:`check_params` raises the errors that ``_parameter_constraints`` cannot say (booleans for
ints, pairs, pyramids), and :func:`make_spec` turns the parameters and the shape of the
training images into the :class:`FeatureSpec` that ``fit`` keeps as ``spec_``: what the filter
bank, the plan (:func:`~sklearn_convfeat._plan.make_plan`, cached on it) and the edges (the
command line, the plots, the Dask path) read.
"""

from dataclasses import dataclass
from numbers import Integral

import numpy as np

from ._shapes import footprint

# The pooling when neither pool_size nor pool_grid is given: a spatial pyramid of the whole map,
# 2x2 and 3x3 grids (14 regions; finer grids lost accuracy, benchmarks/ACCURACY.md); with
# flatten=False, whose maps need a layout, 2x2 windows.
DEFAULT_PYRAMID = ((1, 1), (2, 2), (3, 3))
DEFAULT_WINDOWS = (2, 2)


def is_int(value):
    """Whether ``value`` is an integer (Python's or NumPy's), and not a boolean."""
    return isinstance(value, (Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_pair(name, value, minimum=1):
    """Validate an int-or-pair parameter; return it as a pair of ints."""
    values = (value, value) if is_int(value) else value
    if not isinstance(values, (tuple, list)) or len(values) != 2 or not all(map(is_int, values)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}.")
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum} in each direction, got {value!r}.")
    return int(values[0]), int(values[1])


def check_dilations(dilation):
    """``dilation`` (an int or a sequence of distinct ints >= 1) as a sorted tuple."""
    values = (dilation,) if is_int(dilation) else dilation
    if not isinstance(values, (tuple, list)) or not all(map(is_int, values)):
        raise TypeError(f"dilation must be an int or a sequence of ints, got {dilation!r}.")
    if not values or min(values) < 1 or len(set(values)) < len(values):
        raise ValueError(f"dilation must hold distinct ints >= 1, got {dilation!r}.")
    return tuple(sorted(int(value) for value in values))


def check_image_shape(image_shape):
    """``image_shape`` (None, ``(H, W)`` or ``(H, W, C)`` of positive ints) as a tuple or None."""
    if image_shape is None:
        return None
    shape = tuple(image_shape)
    if not all(map(is_int, shape)):
        raise TypeError(
            f"image_shape must hold ints (height, width[, channels]), got {image_shape!r}."
        )
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(
            "image_shape must be None, (height, width) or (height, width, channels) "
            f"with positive ints, got {image_shape!r}."
        )
    return tuple(int(side) for side in shape)


@dataclass(frozen=True)
class PoolingLayout:
    """What ``pool_size`` and ``pool_grid`` ask for, checked.

    ``windows`` is a ``(rows, cols)`` window size, or ``grids`` a tuple of ``(rows, cols)``
    grids; ``pyramid`` is whether the grids' regions are concatenated into
    ``(n_regions, n_maps)`` features rather than laid out as maps.
    """

    windows: tuple | None = None
    grids: tuple = ()
    pyramid: bool = False


def parse_pooling(pool_size, pool_grid, flatten):
    """Check ``pool_size`` and ``pool_grid`` together; return the :class:`PoolingLayout` they
    ask for.

    ``pool_size`` pools over windows; ``pool_grid`` onto one grid (an int or a pair) or a
    pyramid (a list of grids, or a tuple of pairs); both at once is an error; neither gives
    :data:`DEFAULT_PYRAMID`, or :data:`DEFAULT_WINDOWS` with ``flatten=False``.
    """
    if pool_size is not None and pool_grid is not None:
        raise ValueError(
            f"pool_size={pool_size!r} and pool_grid={pool_grid!r} both set the pooling; set "
            "one of them: pool_size for windows of that size, pool_grid for a fixed grid or a "
            "pyramid of grids (the other stays None)."
        )
    if pool_size is not None:
        return PoolingLayout(windows=check_pair("pool_size", pool_size))
    if pool_grid is None:
        if not flatten:
            return PoolingLayout(windows=DEFAULT_WINDOWS)
        return PoolingLayout(grids=DEFAULT_PYRAMID, pyramid=True)
    is_pyramid = isinstance(pool_grid, list) or (
        isinstance(pool_grid, tuple) and not all(map(is_int, pool_grid))
    )
    if not is_pyramid:
        return PoolingLayout(grids=(check_pair("pool_grid", pool_grid),))
    if not pool_grid:
        raise ValueError("pool_grid as a list of grids (a pyramid) must not be empty.")
    if not flatten:
        raise ValueError(
            f"pool_grid={pool_grid!r} is a list of grids (a spatial pyramid), whose regions "
            "cannot be laid out as maps; flatten=False needs one grid, as an int or a "
            "(rows, cols) tuple, or pool_size for windows."
        )
    grids = tuple(check_pair("each grid of pool_grid", grid) for grid in pool_grid)
    return PoolingLayout(grids=grids, pyramid=True)


def check_params(params):
    """Raise what ``_parameter_constraints`` cannot say of the estimator's ``params`` (a
    ``get_params`` dict): booleans given for ints, malformed pairs, dilations, pooling and
    ``image_shape``, ``n_jobs=0``."""
    # bool is an Integral for Python, but n_filters=True is a bug, not one filter.
    for name in ("n_filters", "stride", "n_jobs", "batch_size"):
        if isinstance(params[name], (bool, np.bool_)):
            raise TypeError(f"{name} must be an int, got the boolean {params[name]!r}.")
    if isinstance(params["feature_norm"], (bool, np.bool_)):
        raise TypeError(
            f"feature_norm must be a float or None, got the boolean {params['feature_norm']!r}."
        )
    check_pair("filter_size", params["filter_size"])
    check_dilations(params["dilation"])
    parse_pooling(params["pool_size"], params["pool_grid"], params["flatten"])
    check_image_shape(params["image_shape"])
    if params["n_jobs"] == 0:
        raise ValueError("n_jobs must be a non-zero int or None (-1 means all cores), got 0.")


@dataclass(frozen=True)
class FeatureSpec:
    """What the features of a fitted estimator are: its parameters parsed, with what follows
    from the training images' shape (the filters' size, the dilations kept). Plain, frozen,
    hashable: the key of the plans (:func:`~sklearn_convfeat._plan.make_plan`).

    The defaults are those of a bank of ``n_filters`` plain filters on raw pixels (and of an
    estimator saved before a field existed: a field missing from a pickle reads its default).

    Attributes
    ----------
    n_filters : int
    filter_size : (int, int)
        The filters' ``(h, w)``, as applied: clipped to the training images, or a given bank's.
    dilations : tuple of (int, int)
        ``((dilation, n_filters), ...)``: the filters in groups of one dilation, in the order
        of the bank (:func:`kept_dilations`).
    antialias : bool
        Whether the filters of a dilation above 1 read the image smoothed.
    stride : int
    padding : {'valid', 'same'}
    activation, pooling : str
        Keys of :data:`~sklearn_convfeat._variants.ACTIVATIONS` and ``POOLINGS``.
    threshold : float
    layout : PoolingLayout
        Windows, one grid or a pyramid (:func:`parse_pooling`).
    flatten, balance_levels, patch_norm : bool
        As the parameters.
    any_size : bool
        Fitted on a list of images of several sizes: every image shape has its own plan, and
        grids are never clipped to smaller maps, so that every image gives features of one
        length.
    """

    n_filters: int
    filter_size: tuple
    dilations: tuple = None
    antialias: bool = False
    stride: int = 1
    padding: str = "valid"
    activation: str = "relu"
    threshold: float = 0.0
    pooling: str = "max"
    layout: PoolingLayout = PoolingLayout(windows=(1, 1))
    flatten: bool = True
    balance_levels: bool = False
    patch_norm: bool = False
    any_size: bool = False

    def __post_init__(self):
        # Normalised to plain Python values, so that equal specs hash alike.
        dilations = ((1, self.n_filters),) if self.dilations is None else self.dilations
        dilations = tuple((int(dilation), int(count)) for dilation, count in dilations)
        if sum(count for _, count in dilations) != self.n_filters:
            raise ValueError(f"dilations {dilations} do not share n_filters={self.n_filters}.")
        for name, value in [
            ("n_filters", int(self.n_filters)),
            ("filter_size", tuple(int(size) for size in self.filter_size)),
            ("dilations", dilations),
            ("stride", int(self.stride)),
            ("threshold", float(self.threshold)),
        ] + [(name, bool(getattr(self, name))) for name in _BOOLEANS]:
            object.__setattr__(self, name, value)

    @property
    def footprint(self):
        """The ``(rows, cols)`` of image that the most dilated filter spans."""
        return footprint(self.filter_size, max(dilation for dilation, _ in self.dilations))

    def filter_dilations(self):
        """The dilation of each filter, ``(n_filters,)``."""
        return np.repeat([d for d, _ in self.dilations], [n for _, n in self.dilations])


_BOOLEANS = ("antialias", "flatten", "balance_levels", "patch_norm", "any_size")


def kept_dilations(filter_size, dilations, n_filters, image_shape):
    """``((dilation, n_filters), ...)``: the ``dilations`` a filter of ``filter_size`` keeps on
    images of ``image_shape``, in increasing order, and how many filters each has.

    A dilation is kept when the filter's footprint, ``(k - 1) * dilation + 1`` along each
    axis, is at most two thirds of the image's side (or ``k``). If none is, the smallest,
    made smaller if its footprint exceeds the image, until it fits (1 always does: the filter
    is clipped to the image). ``n_filters`` is shared evenly among those kept, the remainder
    to the smallest dilations, so that the number of maps does not depend on the image size.
    """
    sides = image_shape[:2]
    rule = [max(k, 2 * side // 3) for k, side in zip(filter_size, sides, strict=True)]

    def spans_within(d, limits):
        spans = footprint(filter_size, d)
        return all(span <= limit for span, limit in zip(spans, limits, strict=True))

    kept = [d for d in dilations if spans_within(d, rule)]
    if not kept:
        fitting = range(min(dilations[0], max(sides)), 0, -1)
        kept = [next(d for d in fitting if spans_within(d, sides))]
    kept = kept[:n_filters]
    share, extra = divmod(n_filters, len(kept))
    return tuple((d, share + (i < extra)) for i, d in enumerate(kept))


def make_spec(params, fit_shape, *, filter_size=None, any_size=False):
    """The :class:`FeatureSpec` of the estimator's ``params`` (a ``get_params`` dict, checked
    by :func:`check_params`) for training images of ``fit_shape`` ``(H, W, C)`` (the smallest
    of each axis, for images of several sizes: ``any_size``). ``filter_size`` is a given
    bank's; else the parameter's, clipped to the images."""
    if filter_size is None:
        rows, cols = check_pair("filter_size", params["filter_size"])
        filter_size = (min(rows, fit_shape[0]), min(cols, fit_shape[1]))
    n_filters = params["n_filters"]
    dilations = check_dilations(params["dilation"])
    return FeatureSpec(
        n_filters=n_filters,
        filter_size=tuple(filter_size),
        dilations=kept_dilations(filter_size, dilations, n_filters, fit_shape),
        antialias=params["antialias"],
        stride=params["stride"],
        padding=params["padding"],
        activation=params["activation"],
        threshold=params["threshold"],
        pooling=params["pooling"],
        layout=parse_pooling(params["pool_size"], params["pool_grid"], params["flatten"]),
        flatten=params["flatten"],
        balance_levels=params["balance_levels"],
        patch_norm=params["patch_norm"],
        any_size=any_size,
    )


def spec_of_plan_params(params):
    """The :class:`FeatureSpec` and the fitted image shape of ``params``, the ``_plan_params``
    dict of an estimator pickled before ``spec_`` existed."""
    layout = params["spec"]
    spec = FeatureSpec(
        n_filters=params["n_filters"],
        filter_size=params["filter_size"],
        dilations=params["dilations"],
        antialias=params.get("antialias", False),
        stride=params["stride"],
        padding=params["padding"],
        activation=params["activation"],
        threshold=params["threshold"],
        pooling=params["pooling"],
        layout=PoolingLayout(layout.windows, layout.grids, layout.pyramid),
        flatten=params["flatten"],
        balance_levels=params.get("balance_levels", False),
        patch_norm=params["patch_norm"],
        any_size=params["fixed_regions"],
    )
    return spec, tuple(params["image_shape"])
