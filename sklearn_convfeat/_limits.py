"""Limits checked before computing: the memory a step needs and the float32 range of features.

Pure functions over sizes; nothing here allocates the arrays it reasons about.
"""

import math
import os

import numpy as np

from ._variants import POOLINGS

FLOAT32_MAX = float(np.finfo(np.float32).max)

# A float64 bank is drawn, centred, normalised and cast: a few float64 copies at the peak.
_BANK_BYTES_PER_VALUE = 4 * 8


class MemoryLimitError(MemoryError):
    """Raised before allocating when a step would need more memory than is available.

    A subclass of :class:`MemoryError`, raised instead of swapping or being killed by the
    operating system. Its message states the size and how to reduce it.
    """


def available_memory(meminfo="/proc/meminfo"):
    """Bytes of memory that new allocations can use, or None when unknown.

    On Linux this is ``MemAvailable`` from ``/proc/meminfo`` (free memory plus reclaimable
    caches). Elsewhere it falls back to the physical memory of the machine, and to None (no
    limit) when that is unknown too.
    """
    try:
        with open(meminfo) as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    # The kernel always reports kB (KiB).
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n_bytes):
    """``n_bytes`` in a human unit, e.g. ``'1.5 GiB'``."""
    if n_bytes < 1024:
        return f"{n_bytes} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n_bytes /= 1024
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.1f} {unit}"


def transform_bytes(n_samples, output_shape, working_bytes=0):
    """Bytes that a transform allocates: its float32 output and the engine's working memory.

    Parameters
    ----------
    n_samples : int
    output_shape : tuple of int
        The shape of the features of one image.
    working_bytes : int, default=0
        The engine's buffers beyond the output, from
        :meth:`~sklearn_convfeat._plan.Plan.working_bytes`.
    """
    return 4 * n_samples * math.prod(output_shape) + working_bytes


def bank_bytes(n_filters, filter_size, n_channels):
    """Peak bytes needed to draw a random bank of ``n_filters`` filters."""
    return _BANK_BYTES_PER_VALUE * n_filters * math.prod(filter_size) * n_channels


def check_memory(n_bytes, what, advice, available=None):
    """Raise :class:`MemoryLimitError` if ``n_bytes`` exceed the ``available`` memory.

    Parameters
    ----------
    n_bytes : int
        Size of the planned allocation.
    what : str
        What would be allocated, for the message.
    advice : str
        How to need less, for the message.
    available : int or None, default=None
        Bytes available; None reads them with :func:`available_memory` (and checks nothing
        when they are unknown).
    """
    if available is None:
        available = available_memory()
    if available is not None and n_bytes > available:
        raise MemoryLimitError(
            f"{what} would need {format_bytes(n_bytes)}, more than the "
            f"{format_bytes(available)} of memory available. {advice}"
        )


def map_gain(filters):
    """An upper bound on ``max |map| / max |pixel|`` for these filters (at least 1).

    A map value is a dot product of a filter with a patch, so Cauchy-Schwarz bounds it by the
    filter's norm times the patch's norm, at most ``sqrt(h * w * c) * max |pixel|``.
    """
    norms = np.sqrt(np.sum(np.square(filters, dtype=np.float64), axis=(1, 2, 3)))
    return max(math.sqrt(math.prod(filters.shape[1:])) * float(norms.max()), 1.0)


def check_feature_range(max_abs, filters, plan):
    """Raise ValueError if inputs up to ``max_abs`` could give features beyond float32's range.

    The maps are bounded by :func:`map_gain`; the activations do not increase magnitudes; the
    pooling mode says how large its sums over the plan's largest region can get (the sum of
    squares, for 'rms'); the largest of the levels' weights scales the pooled values.
    """
    magnitude = max_abs * map_gain(filters)
    pooling = POOLINGS[plan.pooling]
    weight = max(1.0, *plan.level_weights)
    largest = max(magnitude, pooling.largest(magnitude, plan.largest_region)) * weight
    weighted = f" times the largest weight of the pyramid's levels, {weight:.3g}," * (weight > 1)
    # A factor 2 absorbs float32 rounding in the sums.
    if 2 * largest > FLOAT32_MAX:
        raise ValueError(
            f"X holds values up to {max_abs:.3g} in magnitude: the maps could reach "
            f"{magnitude:.3g}, and the {pooling.reduces} of {pooling.name} pooling{weighted} "
            f"{largest:.3g}, which could overflow float32 (max {FLOAT32_MAX:.3g}). Scale X "
            f"down, for example to [0, 1] (divide by 255) or with "
            f"sklearn.preprocessing.StandardScaler."
        )
