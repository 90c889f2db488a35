"""Limits checked before computing: the memory a step needs and the float32 range of features.

Pure functions over sizes; nothing here allocates the arrays it reasons about.
"""

import math
import os

import numpy as np

from ._shapes import map_shape, pool_regions

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
        The engine's temporaries beyond the output, from
        :func:`~sklearn_convfeat._engine.working_bytes`.
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


def feature_gain(image_shape, filters, stride, padding, pooling, pool_size, pool_grid):
    """An upper bound on ``max |feature| / max |pixel|`` (at least 1).

    A map value is a dot product of a filter with a patch, so Cauchy-Schwarz bounds it by the
    filter's norm times the patch's norm, at most ``sqrt(h * w * c) * max |pixel|``. The
    activations do not increase magnitudes; average pooling sums a region before dividing, so
    the float32 sum can reach the region's area times the largest value. 'rms' pooling sums
    squares: the gain then includes the square root of the area, and
    :func:`check_feature_range` checks its square. ``pool_grid`` may be a list of grids (a
    pyramid): the largest region of any grid counts.
    """
    norms = np.sqrt(np.sum(np.square(filters, dtype=np.float64), axis=(1, 2, 3)))
    gain = math.sqrt(math.prod(filters.shape[1:])) * float(norms.max())
    if pooling in ("avg", "rms"):
        maps = map_shape(image_shape, filters.shape[1:3], stride, padding)
        grids = pool_grid if isinstance(pool_grid, list) else [pool_grid]
        area = max(
            math.prod(
                int(np.diff(np.append(starts, stop)).max())
                for starts, stop in pool_regions(maps, pool_size, grid)
            )
            for grid in grids
        )
        gain *= area if pooling == "avg" else math.sqrt(area)
    return max(gain, 1.0)


def check_feature_range(max_abs, gain, squared=False):
    """Raise ValueError if inputs up to ``max_abs`` could give features beyond float32's range.

    ``squared`` (for 'rms' pooling) checks the square of ``max_abs * gain``, the largest sum
    of squares.
    """
    largest = max_abs * gain
    # A factor 2 absorbs float32 rounding in the sums.
    if 2 * (largest * largest if squared else largest) > FLOAT32_MAX:
        raise ValueError(
            f"X holds values up to {max_abs:.3g} in magnitude: the features, up to {gain:.3g} "
            f"times larger{' (and squared, for rms pooling)' if squared else ''}, could "
            f"overflow float32 (max {FLOAT32_MAX:.3g}). Scale X down, "
            f"for example to [0, 1] (divide by 255) or with sklearn.preprocessing.StandardScaler."
        )
