"""The activations and the pooling modes: each is one entry of a table that says all the rest of
the package needs to know of it.

Pure functions over float32 arrays, working in place (``out=``): the engine hands them its own
buffers, so that a chunk of images allocates nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _shift(maps, threshold):
    if threshold:
        np.subtract(maps, np.float32(threshold), out=maps)
    return maps


def _relu(maps, threshold, out):
    # A row of zeros rather than the scalar 0: NumPy 2.4 takes the maximum with a scalar in
    # a loop 3-4 times slower (0.7 against 0.2 ns a value, measured on AVX-512 machines).
    zeros = np.zeros(maps.shape[-1:], dtype=maps.dtype)
    return np.maximum(_shift(maps, threshold), zeros, out=out)


def _abs(maps, threshold, out):
    np.abs(maps, out=maps)
    return _relu(maps, threshold, out) if threshold else maps


def _tanh(maps, threshold, out):
    return np.tanh(_shift(maps, threshold), out=out)


def _identity(maps, threshold, out):
    return _shift(maps, threshold)


def _two_sided(maps, threshold, out):
    # relu(z - t) for every filter, then relu(-z - t) for every filter.
    n_filters = maps.shape[-1]
    positive, negative = out[..., :n_filters], out[..., n_filters:]
    np.negative(maps, out=negative)
    _relu(_shift(negative, threshold), 0.0, negative)
    _relu(_shift(maps, threshold), 0.0, positive)
    return out


@dataclass(frozen=True)
class Part:
    """An activation of ``z`` with threshold ``t`` as ``abs_coef * |z - sign * t| + z_coef * z
    - t_coef * t``: relu(z - t) is ``(|z - t| + z - t) / 2``. Summed over a pooling region,
    it needs only the sums of ``|z - sign * t|`` and of ``z``: one pass over the maps for the
    absolute values, where applying relu and summing takes two (and two_sided, whose two
    signs share ``|z|`` when ``t`` is 0, four)."""

    abs_coef: float
    sign: int
    z_coef: float
    t_coef: float


_RELU_PART = Part(0.5, 1, 0.5, 0.5)


@dataclass(frozen=True)
class Activation:
    """A nonlinearity applied to the maps ``z`` with a threshold ``t``.

    Attributes
    ----------
    name : str
        The value of the ``activation`` parameter.
    formula : str
        What it computes, for the documentation.
    apply : callable
        ``apply(maps, threshold, out)``: writes the activated maps into ``out`` and returns it.
        ``maps`` may be overwritten. With one map per filter, ``out`` may be ``maps`` itself;
        otherwise it holds ``len(signs)`` times the maps, one block of all filters per sign.
    signs : tuple of str
        One entry per map a filter gives, the suffix of its feature names (``''``: none).
    monotone : bool
        Non-decreasing: it commutes with max pooling (and so does adding a bias), so that
        with max pooling the engine pools first and activates only the pooled values.
    parts : tuple of Part, or None
        One per sign, when each map is ``abs_coef * |z - sign * t| + z_coef * z - t_coef * t``:
        a sum of the activated values is then a sum of ``|z - sign * t|`` and a sum of ``z``
        (which the engine takes without writing the activated maps: see ``Part``).
    """

    name: str
    formula: str
    apply: Callable
    signs: tuple = ("",)
    monotone: bool = False
    parts: tuple | None = None

    @property
    def maps_per_filter(self):
        return len(self.signs)

    def map_names(self, n_filters):
        """The names of the maps, in the order of the features: ``f{k}`` or ``f{k}_{sign}``."""
        return [
            f"f{k}_{sign}" if sign else f"f{k}" for sign in self.signs for k in range(n_filters)
        ]


ACTIVATIONS = {
    activation.name: activation
    for activation in [
        Activation("relu", "relu(z - t)", _relu, monotone=True, parts=(_RELU_PART,)),
        Activation("abs", "relu(|z| - t)", _abs),
        Activation("tanh", "tanh(z - t)", _tanh, monotone=True),
        Activation("identity", "z - t", _identity, monotone=True, parts=(Part(0, 1, 1, 1),)),
        Activation(
            "two_sided",
            "relu(z - t) and relu(-z - t)",
            _two_sided,
            ("pos", "neg"),
            parts=(_RELU_PART, Part(0.5, -1, -0.5, 0.5)),
        ),
    ]
}


def _square(values):
    return np.square(values, out=values)


def _positive(values):
    return np.greater(values, 0, out=values)


@dataclass(frozen=True)
class Pooling:
    """How the values of a pooling region are combined.

    Every mode is ``finish(reduce(prepare(values)))``: ``prepare`` works value by value,
    ``reduce`` is a ufunc that also combines partial results (of parts of a region, or of the
    regions of a finer grid), and ``finish`` divides sums by the region's size.

    Attributes
    ----------
    name : str
        The value of the ``pooling`` parameter.
    description : str
        What it computes, for the documentation.
    reduce : numpy.ufunc
        ``np.maximum`` or ``np.add``.
    prepare : callable or None
        In place, before reducing: squares for 'rms', 1.0 for the positive values for 'ppv'.
    mean : bool
        Whether the reduced sums are divided by the number of values in the region.
    root : bool
        Whether the square root of the mean is taken ('rms').
    reduces : str
        What ``reduce`` accumulates, for messages: 'maxima', 'sums', 'sums of squares'...
    largest : callable
        ``largest(magnitude, area)``: the largest magnitude those reach over ``area`` values
        of at most ``magnitude``, for the float32 overflow check.
    """

    name: str
    description: str
    reduce: np.ufunc
    reduces: str
    largest: Callable
    prepare: Callable | None = None
    mean: bool = False
    root: bool = False

    @property
    def is_max(self):
        return self.reduce is np.maximum

    def finish(self, pooled, sizes, out):
        """The features of the reduced values ``pooled`` into ``out``; ``sizes`` (the number
        of values of each region) broadcasts against them."""
        if self.mean:
            np.divide(pooled, sizes, out=out)
            if self.root:
                np.sqrt(out, out=out)
        else:
            np.copyto(out, pooled)


POOLINGS = {
    pooling.name: pooling
    for pooling in [
        Pooling("max", "maximum", np.maximum, "maxima", lambda m, area: m),
        Pooling("avg", "mean", np.add, "sums", lambda m, area: area * m, mean=True),
        Pooling(
            "rms",
            "root mean square",
            np.add,
            "sums of squares",
            lambda m, area: area * m * m,
            _square,
            mean=True,
            root=True,
        ),
        Pooling(
            "ppv",
            "proportion of positive values (ROCKET)",
            np.add,
            "counts",
            lambda m, area: float(area),
            _positive,
            mean=True,
        ),
    ]
}
