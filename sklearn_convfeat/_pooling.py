"""The pooling stages of the engine: reductions over regions, and the three ways of pooling.

Pooling reads every map value once, so its cost is set by how many NumPy inner loops it takes:
a grid's nearly equal regions are pooled as a few runs of equal ones (:class:`AxisReduction`),
sums over whole rows are products with a vector of ones (BLAS reads several times faster than
NumPy's reductions over rows of a few hundred values), and :func:`region_steps` is the one
reduction of a tile's values onto a level's regions, whatever is pooled (maps, activated maps,
their parts, patches).

A way of pooling is a class chosen once, by the plan (``plan.pooling_way``); it declares its
buffers and builds the steps of each block of filters:

- :class:`ActivateThenPool` adds the bias and applies the activation to the maps, then pools
  them;
- :class:`PoolThenActivate` pools the maps as they come out of the product: max pooling
  commutes with the bias and a non-decreasing activation, which then touch only the pooled
  values (:meth:`~PoolThenActivate.finish_batch`);
- :class:`SumsOfParts` pools means of an activation made of ``|z - t|`` and ``z`` (relu,
  two_sided, identity) from the sums of ``|z - t|`` and of ``z``, one pass over the maps
  without writing the activated ones (the sums of ``z`` from the patches, on the GEMM path).

The levels' values are held in :class:`LevelBuffers`. A tile's values are pooled straight into
them for a whole map, or, for a band of map rows of a large image, into a part that is combined
with the other bands' (a maximum, or a sum until the division by the region's size), exactly as
if the whole map had been pooled at once.
"""

from functools import partial

import numpy as np

from ._regions import make_regions
from ._variants import ACTIVATIONS, POOLINGS

F32 = np.float32


class AxisReduction:
    """Reduces the fixed ``array`` over ``regions`` along ``axis`` into ``out``.

    The views are made once. Each run of regions of one size (all of them for equal regions,
    a few for a grid's nearly equal ones) is one reduction over a view with the region as an
    axis of its own: one pass reads each value once, in runs along the axes after ``axis``.
    (``reduceat`` reduces along ``axis`` itself, in short strided loops: 40 times slower on a
    2x2 grid of 27x27 maps.)
    """

    def __init__(self, array, axis, regions, reduce, out):
        before, after = array.shape[:axis], array.shape[axis + 1 :]
        lead = (slice(None),) * axis
        self.reduce, self.axis, self.runs = reduce, axis + 1, []
        for first, count, size, start in regions.runs:
            # Splitting one axis in two is always a view, much cheaper to make than as_strided.
            windows = array[lead + (slice(start, start + count * size),)]
            windows = windows.reshape(before + (count, size) + after)
            self.runs.append((windows, out[lead + (slice(first, first + count),)]))

    def run(self):
        for windows, target in self.runs:
            self.reduce.reduce(windows, axis=self.axis, out=target)


class OnesSum:
    """Sums the fixed ``array`` over ``regions`` of its ``axis`` (the last or the next to last)
    into ``out``, as products with the vector ``ones``: NumPy reduces rows of a few hundred
    values at 0.15-0.4 ns a value, BLAS at 0.05."""

    def __init__(self, array, axis, regions, out, ones):
        before, after = array.shape[:axis], array.shape[axis + 1 :]
        lead = (slice(None),) * axis
        self.last = axis == array.ndim - 1
        self.runs = []
        for first, count, size, start in regions.runs:
            windows = array[lead + (slice(start, start + count * size),)]
            windows = windows.reshape(before + (count, size) + after)
            self.runs.append((ones[:size], windows, out[lead + (slice(first, first + count),)]))

    def run(self):
        for vector, windows, target in self.runs:
            if self.last:
                np.matmul(windows, vector, out=target)
            else:
                np.matmul(vector, windows, out=target)


class Combine:
    """``reduce(target, part)`` into ``target``: a band's pooled values joined to the others'."""

    def __init__(self, reduce, target, part):
        self.reduce, self.target, self.part = reduce, target, part

    def run(self):
        self.reduce(self.target, self.part, out=self.target)


def position_spans(rows, cols):
    """Regions of whole map rows ``rows`` as spans of positions (row-major, ``cols`` a row)."""
    return make_regions(tuple(start * cols for start in rows.starts), rows.stop * cols)


def region_steps(
    array, axis, rows, cols, map_cols, reduce, destinations, *, whole_rows, rows_buffer, ones
):
    """The steps reducing ``array``, whose ``axis`` holds map positions row-major (``map_cols``
    a row), over the regions ``rows`` x ``cols``, into each ``(source, out)`` of
    ``destinations``: ``array[..., source]`` reduced into ``out`` (regions on ``axis`` and the
    next).

    Regions that are whole rows (``whole_rows``) are spans of consecutive positions, reduced
    at once (summed with ``ones`` if given); other regions are reduced along the rows, into
    ``rows_buffer(shape)`` (or, without it, regions of one row are the rows themselves), then
    along the columns.
    """
    if whole_rows:
        spans = position_spans(rows, map_cols)
        index = (slice(None),) * (axis + 1) + (0,)
        if ones is not None and reduce is np.add:
            return [OnesSum(array[..., s], axis, spans, o[index], ones) for s, o in destinations]
        return [
            AxisReduction(array[..., s], axis, spans, reduce, o[index]) for s, o in destinations
        ]
    grid = array.reshape(array.shape[:axis] + (-1, map_cols) + array.shape[axis + 1 :])
    steps = []
    if rows_buffer is None:
        pooled = grid[(slice(None),) * axis + (slice(0, rows.count),)]
    else:
        shape = grid.shape[:axis] + (rows.count,) + grid.shape[axis + 1 :]
        pooled = rows_buffer(shape)
        steps.append(AxisReduction(grid, axis, rows, reduce, pooled))
    return steps + [
        AxisReduction(pooled[..., source], axis + 1, cols, reduce, out)
        for source, out in destinations
    ]


def map_slices(plan, start, stop):
    """Where block ``[start, stop)``'s activated maps go among all maps: ``[(source, target)]``
    slices of the maps axis (each sign of a two-sided activation is a block of all filters)."""
    block = stop - start
    signs = plan.maps_per_filter
    if block == plan.n_filters:
        return [(slice(0, signs * block), slice(0, signs * block))]
    return [
        (
            slice(s * block, (s + 1) * block),
            slice(s * plan.n_filters + start, s * plan.n_filters + stop),
        )
        for s in range(signs)
    ]


class LevelBuffers:
    """The buffers of the levels, for a chunk of ``n`` images: each level's pooled values
    (:attr:`levels`), and the rows of partly pooled values, parts of a band and ones that
    pooling them takes. Declared (:meth:`buffers`) and viewed here only."""

    LEVEL, ROWS, PART, ONES = "level_{}", "rows_{}", "part_{}", "ones"

    @classmethod
    def buffers(cls, plan, n, band, positions, width):
        """The buffers of a chunk of ``n`` images in bands of ``band`` map rows of
        ``positions``, pooling values ``width`` a block."""
        cols = plan.map_shape[1]
        buffers = {}
        from_maps = [level for level in plan.levels if level.source is None]
        if POOLINGS[plan.pooling].reduce is np.add and any(map(plan.pools_whole_rows, from_maps)):
            buffers[cls.ONES] = ((positions,), F32)
        for index in plan.order:
            level = plan.levels[index]
            if level.source is None:
                # Pooled block by block, band by band: at most one region per row of a band.
                shape = (n, min(level.rows.count, band), cols, width)
                if len(plan.bands) > 1:
                    part = (n, shape[1], level.cols.count, width)
                    buffers[cls.PART.format(index)] = (part, F32)
            else:
                source_cols = plan.levels[level.source].map_cols.count
                shape = (n, level.rows.count, source_cols, plan.n_maps)
            if level.source is not None or (
                plan.convolution.pools_through_rows and not plan.pools_whole_rows(level)
            ):
                buffers[cls.ROWS.format(index)] = (shape, F32)
            buffers[cls.LEVEL.format(index)] = ((n, *level.shape, plan.n_maps), F32)
        return buffers

    def __init__(self, plan, space, n):
        self.space = space
        self.levels = {
            index: space.view(self.LEVEL.format(index), (n, *level.shape, plan.n_maps))
            for index, level in enumerate(plan.levels)
        }
        self.all_ones = space.buffer(self.ONES)
        if self.all_ones is not None:
            self.all_ones[...] = 1

    def rows(self, index, shape):
        """Level ``index``'s rows of partly pooled values."""
        return self.space.view(self.ROWS.format(index), shape)

    def part(self, index, shape):
        """Level ``index``'s values pooled from one band."""
        return self.space.view(self.PART.format(index), shape)

    def ones(self, positions):
        """``positions`` ones, if the plan sums rows with them; else None."""
        return None if self.all_ones is None else self.all_ones[:positions]


class MapPooler:
    """Builds the steps pooling the values ``(n, positions, width)`` of one tile and block of
    filters onto every level pooled from the maps, into the levels' buffers ``levels``.

    For a whole map (``band`` None), straight into the levels; for a band of a large image,
    into the ``part`` of each level, then combined with the other bands' (the levels start at
    the reduction's identity)."""

    def __init__(self, plan, space, buffers, reduce):
        self.plan, self.space, self.buffers, self.reduce = plan, space, buffers, reduce
        self.from_maps = [(i, plan.levels[i]) for i in plan.order if plan.levels[i].source is None]

    def steps(self, values, k, band=None):
        plan, space, buffers, reduce = self.plan, self.space, self.buffers, self.reduce
        n, positions, width = values.shape
        slices = map_slices(plan, *plan.blocks[k])
        ones = buffers.ones(positions)
        steps = []
        for index, level in self.from_maps:
            rows_buffer = partial(buffers.rows, index)
            pool_regions = partial(plan.convolution.pool_regions, plan, space, values, level)
            if band is None:
                destinations = [(s, buffers.levels[index][..., t]) for s, t in slices]
                steps += pool_regions(level.map_rows, reduce, destinations, rows_buffer, ones)
                continue
            first, rows = level.map_rows.clip(*band)
            if rows is None:
                continue
            part = buffers.part(index, (n, rows.count, level.cols.count, width))
            if rows.size == 1:  # one map row a region (one-row bands): nothing to reduce
                rows_buffer = None
            steps += pool_regions(rows, reduce, [(slice(None), part)], rows_buffer, ones)
            target = buffers.levels[index][:, first : first + rows.count]
            steps += [Combine(reduce, target[..., t], part[..., s]) for s, t in slices]
        return [step.run for step in steps]


class Activate:
    """Adds the bias to a block's maps, applies the activation into ``activated`` and readies
    the values for the pooling (squares for 'rms', ones for the positive values for 'ppv')."""

    def __init__(self, plan, maps, activated, bias):
        self.maps, self.activated, self.bias = maps, activated, bias
        self.activation = ACTIVATIONS[plan.activation]
        self.threshold = plan.threshold
        self.prepare = POOLINGS[plan.pooling].prepare

    def run(self):
        if self.bias is not None:
            np.add(self.maps, self.bias, out=self.maps)
        self.activation.apply(self.maps, self.threshold, self.activated)
        if self.prepare is not None:
            self.prepare(self.activated)


class PoolingWay:
    """A way of pooling (see the module's docstring), for one chunk of ``n`` images on the
    levels' ``buffers`` (:class:`LevelBuffers`): its steps for each block of filters, for the
    whole map or a band of it, and what ends a chunk and a batch."""

    @staticmethod
    def width(plan):
        """Values a block pools: one per filter of the block and map it gives."""
        return plan.block * plan.maps_per_filter

    @staticmethod
    def buffers(plan, n, positions):
        return {}

    def __init__(self, plan, kernel, space, n, buffers):
        self.plan, self.kernel, self.space, self.buffers = plan, kernel, space, buffers
        self.pooler = MapPooler(plan, space, buffers, POOLINGS[plan.pooling].reduce)
        self.from_maps = [
            buffers.levels[i] for i, level in enumerate(plan.levels) if level.source is None
        ]

    def identity(self):
        """The value the buffers that bands are combined into start at."""
        return -np.inf if POOLINGS[self.plan.pooling].is_max else 0.0

    def reset(self):
        """Ready the buffers that the bands of a chunk combine into."""
        for values in self.from_maps:
            values[...] = self.identity()

    def block_steps(self, maps, k):
        """The steps on block ``k``'s maps before pooling them, and the values to pool."""
        return [], maps

    def pool_steps(self, values, k, band=None):
        """The steps pooling block ``k``'s ``values`` of a whole map or of a ``band``."""
        return self.pooler.steps(values, k, band)

    def finish_chunk(self):
        """After the last band of a chunk."""

    @staticmethod
    def finish_batch(plan, kernel, out):
        """On the batch's features ``out``, before the levels' weights."""


class ActivateThenPool(PoolingWay):
    ACTIVATED = "activated"

    @classmethod
    def buffers(cls, plan, n, positions):
        if plan.maps_per_filter == 1:
            return {}
        return {cls.ACTIVATED: ((n, positions, plan.block * plan.maps_per_filter), F32)}

    def block_steps(self, maps, k):
        start, stop = self.plan.blocks[k]
        activated = maps
        if self.plan.maps_per_filter > 1:
            width = maps.shape[2] * self.plan.maps_per_filter
            activated = self.space.view(self.ACTIVATED, (*maps.shape[:2], width))
        bias = None if self.kernel.bias is None else self.kernel.bias[start:stop]
        return [Activate(self.plan, maps, activated, bias).run], activated


class PoolThenActivate(PoolingWay):
    @staticmethod
    def finish_batch(plan, kernel, out):
        # Once for the batch: one large call instead of one per chunk of a few images.
        if kernel.bias is not None:
            out += kernel.bias
        ACTIVATIONS[plan.activation].apply(out, plan.threshold, out)


class SumsOfParts(PoolingWay):
    """The sums over each region of ``z`` and, for each shift ``sign * t`` of the plan's
    ``sum_shifts``, of ``|z + b - sign * t|`` go to their slots of the ``sums`` buffers
    ``(slots, n, rows, cols, n_filters)`` of the levels pooled from the maps; at the end of a
    chunk, :class:`SumsCombiner` makes the sums of the activated maps from them."""

    SHIFTED, SUMS = "shifted", "sums_{}"
    PATCH_SUMS, PATCH_ROWS = "patch_sums_{}", "patch_rows_{}"

    @staticmethod
    def width(plan):
        return plan.block

    @classmethod
    def buffers(cls, plan, n, positions):
        block, band = plan.block, max(stop - start for start, stop in plan.bands)
        buffers = {}
        if len(plan.sum_shifts) > 1:
            # The first of two shifts is taken out of place; pooling reads the maps alone.
            buffers[cls.SHIFTED] = ((n, positions, block), F32)
        for index in plan.order:
            level = plan.levels[index]
            if level.source is not None:
                continue
            # The sums of z, of each shift's absolute values, and room to combine them.
            slots = len(plan.sum_shifts) + 2
            buffers[cls.SUMS.format(index)] = ((slots, n, *level.shape, plan.n_filters), F32)
            if plan.convolution.sums_patches:
                # The sums of z from the sums of the patches.
                rows = min(level.rows.count, band)
                cols = level.cols.count
                buffers[cls.PATCH_SUMS.format(index)] = ((n, plan.taps, rows, cols), F32)
                if not plan.pools_whole_rows(level):
                    shape = (n, plan.taps, rows, plan.map_shape[1])
                    buffers[cls.PATCH_ROWS.format(index)] = (shape, F32)
        return buffers

    def __init__(self, plan, kernel, space, n, buffers):
        super().__init__(plan, kernel, space, n, buffers)
        slots = len(plan.sum_shifts) + 2
        self.sums = {
            index: space.view(self.SUMS.format(index), (slots, n, *level.shape, plan.n_filters))
            for index, level in enumerate(plan.levels)
            if level.source is None
        }
        self.combiner = SumsCombiner(plan, kernel.bias, self.sums, buffers.levels)
        self.from_maps = list(self.sums.values())

    def identity(self):
        return 0.0

    def finish_chunk(self):
        self.combiner.run()

    def pool_steps(self, maps, k, band=None):
        """The steps summing the products ``(n, positions, block)`` of block ``k`` (no bias or
        activation yet) over the regions of a whole map or of a ``band`` (added to the other
        bands' sums)."""
        plan, space = self.plan, self.space
        n, positions, width = maps.shape
        start, stop = plan.blocks[k]
        cols = plan.map_shape[1]
        ones = self.buffers.ones(positions)
        shifts = plan.sum_shifts
        bias = self.kernel.bias
        offsets = np.zeros(width, np.float32) if bias is None else bias[start:stop]
        arrays, passes = [maps], []
        for j, shift in enumerate(shifts):
            work = maps if j == len(shifts) - 1 else space.view(self.SHIFTED, maps.shape)
            row = (offsets - np.float32(shift)).astype(np.float32)
            arrays.append(work)
            passes.append((work, row if row.any() else None))
        slot_steps = [[] for _ in arrays]
        for index, level in self.pooler.from_maps:
            first, rows = (0, level.map_rows) if band is None else level.map_rows.clip(*band)
            if rows is None:
                continue
            target = self.sums[index][:, :, first : first + rows.count, :, start:stop]
            out = list(target)
            if band is not None:
                part = self.buffers.part(index, (n, rows.count, level.cols.count, width))
                out = [part] * len(arrays)
            whole_rows = plan.pools_whole_rows(level)
            rows_buffer = partial(self.buffers.rows, index)
            for slot, array in enumerate(arrays):
                if slot == 0 and plan.convolution.sums_patches:
                    steps = self._patch_sums(index, positions, rows, out[0], k)
                else:
                    steps = region_steps(
                        array, 1, rows, level.cols, cols, np.add, [(slice(None), out[slot])],
                        whole_rows=whole_rows, rows_buffer=rows_buffer, ones=ones,
                    )  # fmt: skip
                if band is not None:
                    steps.append(Combine(np.add, target[slot], out[slot]))
                slot_steps[slot] += [step.run for step in steps]
        steps = list(slot_steps[0])
        for (work, row), more in zip(passes, slot_steps[1:], strict=True):
            if row is not None:
                steps.append(partial(np.add, maps, row, out=work))
                steps.append(partial(np.abs, work, out=work))
            else:
                steps.append(partial(np.abs, maps, out=work))
            steps += more
        return steps

    def _patch_sums(self, index, positions, rows, out, k):
        """The steps summing the GEMM path's maps over the regions of level ``index`` in the
        map rows ``rows`` of a band of ``positions``, into ``out`` ``(n, rows, cols, block)``:
        the sums of the patches over each region (taken with the first block ``k`` of a
        gather, for all of them), times the filters (``h * w * C`` values a position to sum
        instead of ``block``)."""
        plan, space = self.plan, self.space
        level = plan.levels[index]
        n, _, n_cols, width = out.shape
        patches = plan.convolution.patches(space, plan, n, positions)
        patch_sums = space.view(self.PATCH_SUMS.format(index), (n, plan.taps, rows.count, n_cols))
        steps = []
        if plan.regathers[k]:
            steps = region_steps(
                patches, 2, rows, level.cols, plan.map_shape[1], np.add,
                [(slice(None), patch_sums)], whole_rows=plan.pools_whole_rows(level),
                rows_buffer=partial(space.view, self.PATCH_ROWS.format(index)),
                ones=self.buffers.ones(positions),
            )  # fmt: skip
        by_region = patch_sums.reshape(n, plan.taps, -1).transpose(0, 2, 1)
        weights = self.kernel.arrays[k]
        return steps + [MatMul(by_region, weights, out.reshape(n, -1, width))]


class MatMul:
    """``a @ b`` into ``out``."""

    def __init__(self, a, b, out):
        self.a, self.b, self.out = a, b, out

    def run(self):
        np.matmul(self.a, self.b, out=self.out)


class SumsCombiner:
    """Makes the sums over regions of the activated maps, into the levels' buffers, from the
    ``sums`` of parts: ``abs_coef * sum |z + b - sign * t| + z_coef * sum z + (z_coef * b -
    t_coef * t) * region size`` per part."""

    def __init__(self, plan, bias, sums, levels):
        parts, shifts = plan.sums_parts, plan.sum_shifts
        n_filters, t = plan.n_filters, np.float32(plan.threshold)
        bias = np.zeros(n_filters, np.float32) if bias is None else bias
        zeros = np.zeros(n_filters, np.float32)
        steps = []
        for index, slots in sums.items():
            level, scratch = plan.levels[index], slots[-1]
            sizes = np.float32(level.sizes)[:, :, None]
            for k, part in enumerate(parts):
                target = levels[index][..., k * n_filters : (k + 1) * n_filters]
                z_sums = slots[0]
                if part.abs_coef:
                    absolute = slots[1 + shifts.index(part.sign * plan.threshold)]
                    coef = np.float32(part.abs_coef)
                    steps.append(partial(np.multiply, absolute, coef, out=target))
                    steps.append(partial(np.multiply, z_sums, np.float32(part.z_coef), out=scratch))
                    steps.append(partial(np.add, target, scratch, out=target))
                else:
                    steps.append(partial(np.multiply, z_sums, np.float32(part.z_coef), out=target))
                offset = np.float32(part.z_coef) * bias - np.float32(part.t_coef) * t
                offset = offset.astype(np.float32)
                if offset.any():
                    steps.append(partial(np.multiply, sizes, offset, out=scratch))
                    steps.append(partial(np.add, target, scratch, out=target))
                if part.abs_coef >= abs(part.z_coef):
                    # A relu is never negative; its sum, a difference of two rounded sums, may
                    # be by a rounding error when all the values of a region are below the
                    # threshold.
                    steps.append(partial(np.maximum, target, zeros, out=target))
        self.steps = steps

    def run(self):
        for step in self.steps:
            step()
