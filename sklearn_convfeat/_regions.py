"""Pooling regions: contiguous runs of map positions along one axis, and the levels (grids or
windows) of a pooling made of them.

Plain frozen data, made by the plan (:mod:`~sklearn_convfeat._plan`) and read by the engine's
pooling stages.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Regions:
    """Contiguous pooling regions along one axis: region ``i`` is ``[starts[i], starts[i + 1])``,
    the last one ending at ``stop``. Made by :func:`make_regions`, which fills in ``count``,
    ``sizes``, ``size`` (the common size of the regions, or None if they differ or do not
    start at 0) and ``runs``: the regions as runs of consecutive regions of one size,
    ``(first, count, size, start)``, region ``first`` starting at map position ``start``.
    Nearly equal regions (a grid's) make at most a few runs, each pooled by one reduction."""

    starts: tuple
    stop: int
    count: int
    sizes: tuple
    size: int | None
    runs: tuple

    def within(self, finer):
        """These regions as unions of the regions of ``finer`` (indices into them), or None."""
        if self.stop != finer.stop or not set(self.starts) <= set(finer.starts):
            return None
        return make_regions(tuple(finer.starts.index(start) for start in self.starts), finer.count)

    def clip(self, start, stop):
        """The parts of the regions inside ``[start, stop)``: ``(first, regions)``, the index of
        the first region met and their parts, relative to ``start``; ``(0, None)`` if none."""
        ends = (*self.starts[1:], self.stop)
        met = [i for i in range(self.count) if self.starts[i] < stop and ends[i] > start]
        if not met:
            return 0, None
        starts = tuple(max(self.starts[i], start) - start for i in met)
        return met[0], make_regions(starts, min(ends[met[-1]], stop) - start)


def make_regions(starts, stop):
    """The :class:`Regions` starting at ``starts`` and ending at ``stop``."""
    starts = tuple(int(start) for start in starts)
    sizes = tuple(int(b - a) for a, b in zip(starts, (*starts[1:], stop), strict=True))
    common = sizes[0] if len(set(sizes)) == 1 and starts[0] == 0 else None
    runs = []
    for index, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        if runs and runs[-1][2] == size:
            first, count, _, run_start = runs[-1]
            runs[-1] = (first, count + 1, size, run_start)
        else:
            runs.append((index, 1, size, start))
    return Regions(starts, int(stop), len(starts), sizes, common, tuple(runs))


def window_regions(length, size):
    """Windows of ``size`` (clipped to ``length``); a remainder shorter than a window is dropped,
    as in ``torch.nn.MaxPool2d``."""
    size = min(size, length)
    count = length // size
    return make_regions(range(0, count * size, size), count * size)


def grid_regions(length, count, clip=True):
    """``count`` nearly equal regions that cover the whole axis: clipped to ``length`` with
    ``clip``, else an error if there are fewer positions than regions."""
    if count > length:
        if not clip:
            raise ValueError(
                f"maps of {length} positions cannot be pooled onto {count} regions; features "
                f"of the same length for images of any size need maps at least as large as "
                f"the largest grid of pool_grid: use a smaller pool_grid or larger images."
            )
        count = length
    return make_regions((i * length // count for i in range(count)), length)


@dataclass(frozen=True)
class Level:
    """One grid (or the windows) of the pooling: its regions, and where they come from.

    ``source`` is the index of a finer level whose regions these regions are unions of, and
    ``rows``/``cols`` then index that level's regions: it is pooled from that level's pooled
    values (partial sums for the sums), reading the maps once for the whole pyramid. With
    ``source`` None, ``rows`` and ``cols`` index map positions. ``map_rows``/``map_cols`` are
    the regions in map positions, ``offset`` the index of the first region in the features,
    ``shape`` the grid of regions, ``sizes`` the number of map values of each region and
    ``largest`` the largest of them.
    """

    grid: tuple | None
    rows: Regions
    cols: Regions
    map_rows: Regions
    map_cols: Regions
    offset: int
    source: int | None
    shape: tuple
    n_regions: int
    sizes: tuple
    largest: int

    def region_names(self):
        prefix = "" if self.grid is None else f"g{self.grid[0]}x{self.grid[1]}_"
        rows, cols = self.shape
        return [f"{prefix}y{i}_x{j}" for i in range(rows) for j in range(cols)]


def make_level(grid, rows, cols, offset, source=None, map_rows=None, map_cols=None):
    """The :class:`Level` of ``rows`` x ``cols`` regions (indices into ``source``'s regions,
    with their map positions ``map_rows``/``map_cols``, if it is pooled from a finer level)."""
    map_rows, map_cols = map_rows or rows, map_cols or cols
    sizes = tuple(tuple(r * c for c in map_cols.sizes) for r in map_rows.sizes)
    shape = (map_rows.count, map_cols.count)
    largest = max(map_rows.sizes) * max(map_cols.sizes)
    n_regions = math.prod(shape)
    return Level(
        grid, rows, cols, map_rows, map_cols, offset, source, shape, n_regions, sizes, largest
    )
