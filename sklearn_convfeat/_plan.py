"""The plan of a transform: everything that depends only on the parameters and the image shape.

:func:`make_plan` decides it once per image shape, into one plain, immutable :class:`Plan`: the
filter size after clipping, the filters' dilations and the footprint they span, the padding,
the maps' shape, the convolution method, the pooling regions and the order in which a
pyramid's grids are pooled, the layout of the maps, how the work is tiled (images per chunk,
bands of map rows, blocks of filters), every buffer a tile uses (which is both what the engine
allocates and what the memory check counts), the output shape and the feature names.
``transform``, the memory check, ``get_feature_names_out``, the Dask path and the plots all
read it; the engine runs it.

It is made from the :class:`~sklearn_convfeat._spec.FeatureSpec` of a fitted estimator and an
image shape, and cached on them.
"""

import bisect
import itertools
import math
import os
from dataclasses import dataclass, replace
from functools import lru_cache, partial

import numpy as np

from ._convolution import FftConvolution, GemmConvolution, PhasedGemmConvolution
from ._loading import Loader, Smoothing
from ._pooling import ActivateThenPool, LevelBuffers, PoolThenActivate, SumsOfParts
from ._regions import grid_regions, make_level, window_regions
from ._shapes import (
    conv_output_size,
    footprint,
    padding_widths,
    smoothing_radius,
    smoothing_sigma,
)
from ._spec import PoolingLayout
from ._variants import ACTIVATIONS, POOLINGS

# The name of PoolingLayout in the pickles of estimators fitted before FeatureSpec.
PoolingSpec = PoolingLayout

# The tiling's constants; benchmarks/TILING.md gives the measurements behind each.

# A chunk's buffers aim at this many times a core's L2 cache: enough work per call that Python
# costs little, the maps still in cache when pooled (bench_stages.py, configs A and B).
CHUNK_L2 = 3

# A band of map rows of one large image, or a block of filters, may use this many times a
# chunk's budget: tiles that stay in the shared cache and do enough work per call.
BAND_FACTOR = 2

# A block of filters is the N of the tile's matrix product: below MIN_BLOCK filters it runs
# slower per FLOP, so bands shrink before blocks do; blocks are multiples of BLOCK_ALIGN
# filters (a cache line of float32 maps) unless a block is all of them.
MIN_BLOCK = 64
BLOCK_ALIGN = 16

# Bands hold at least MIN_BAND_ROWS map rows in blocks of MIN_BLOCK filters while such a tile
# fits FLOOR_FACTOR times the budget: in smaller bands a band's fixed costs outweigh what the
# cache saves (bench_large.py); only very wide images go below, so that memory stays bounded.
MIN_BAND_ROWS = 8
FLOOR_FACTOR = 16

# The L2 cache of a core when the machine does not say.
DEFAULT_L2_BYTES = 2**20

# Bytes of a call's Python objects and small arrays beyond its buffers, and of the views of one
# kept tile of a banded plan (tracemalloc, tests/test_engine.py); tiles whose views are kept,
# at most, so that the memory of a tall image does not grow with its height.
CALL_BYTES = 2**20
TILE_VIEW_BYTES = 2**12
KEPT_TILES = 256

# The FFT path's cost per filter, in the GEMM path's multiply-adds per point P of the padded
# image: FFT_COST_PER_LOG_POINT * log2(P) + FFT_COST_PER_CHANNEL * C (bench_speed.py
# --crossover).
FFT_COST_PER_LOG_POINT = 12
FFT_COST_PER_CHANNEL = 25


@lru_cache(maxsize=1)
def l2_bytes(cache_dir="/sys/devices/system/cpu/cpu0/cache"):
    """The L2 cache of one core, in bytes, as Linux reports it; :data:`DEFAULT_L2_BYTES`
    elsewhere."""
    try:
        for index in sorted(os.listdir(cache_dir)):
            path = os.path.join(cache_dir, index)
            with open(os.path.join(path, "level")) as level:
                if level.read().strip() != "2":
                    continue
            with open(os.path.join(path, "size")) as size:
                text = size.read().strip().upper()
            units = {"K": 2**10, "M": 2**20, "G": 2**30}
            return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
    except (OSError, ValueError, IndexError):
        pass
    return DEFAULT_L2_BYTES


def tile_bytes():
    """The bytes a chunk's tiles aim at (its buffers but the smoothing's,
    :meth:`~sklearn_convfeat._loading.Smoothing.buffers`): :data:`CHUNK_L2` times a
    core's L2 cache."""
    return int(CHUNK_L2 * l2_bytes())


def _levels(layout, map_shape, clip):
    """The levels of ``layout`` (a :class:`~sklearn_convfeat._spec.PoolingLayout`) on maps of
    ``map_shape``, in the order of the features, each pooled from the coarsest finer level it
    nests in (levels are computed finest first)."""
    if layout.windows is not None:
        grids = [(None, *map(window_regions, map_shape, layout.windows))]
    else:
        grids = [
            (
                grid,
                *(
                    grid_regions(length, count, clip)
                    for length, count in zip(map_shape, grid, strict=True)
                ),
            )
            for grid in layout.grids
        ]
    offsets = np.cumsum([0] + [rows.count * cols.count for _, rows, cols in grids])
    order = sorted(range(len(grids)), key=lambda i: -offsets[i + 1] + offsets[i])
    levels = [None] * len(grids)
    for position, index in enumerate(order):
        grid, rows, cols = grids[index]
        offset = int(offsets[index])
        levels[index] = make_level(grid, rows, cols, offset)
        # The coarsest finer level that it nests in: the fewest values to read.
        for finer in reversed(order[:position]):
            nested = rows.within(levels[finer].map_rows), cols.within(levels[finer].map_cols)
            if None not in nested:
                levels[index] = make_level(grid, *nested, offset, finer, rows, cols)
                break
    return tuple(levels), tuple(order)


def level_weights(levels, balance):
    """The factor of each level's features: with ``balance``, ``sqrt(N / (L * n))`` for a
    level of ``n`` of the ``N`` regions of ``L`` levels, else 1.

    A level's features then add ``n * N / (L * n) = N / L`` times a region's share to the
    squared norm of an image's features, the same for every level (as the levels of a
    spatial pyramid match kernel, here weighed alike), and all of them ``N`` times, as
    unscaled features do: on a 1 + 2x2 + 3x3 pyramid the whole-image maxima count
    ``sqrt(14 / 3) = 2.16`` times, the 3x3 grid's ``sqrt(14 / 27) = 0.72``. A linear model
    with a penalty that follows then leans on the coarse levels more, the fine ones less.
    One level (one grid, or windows) keeps factor 1.
    """
    if not balance:
        return (1.0,) * len(levels)
    total = sum(level.n_regions for level in levels)
    return tuple(math.sqrt(total / (len(levels) * level.n_regions)) for level in levels)


def choose_method(image_shape, filter_size, stride, padding):
    """``'gemm'`` or ``'fft'``: the faster path for these shapes, from a measured cost model.

    Per filter, the GEMM costs ``h * w * C`` multiply-adds per output position; the FFT costs
    about ``FFT_COST_PER_LOG_POINT * log2(P) + FFT_COST_PER_CHANNEL * C`` per point of the padded
    image (``P`` points) whatever the stride, as it computes every position.
    """
    rows, cols = filter_size
    channels = image_shape[2]
    out_rows, out_cols = (
        conv_output_size(length, size, stride, padding)
        for length, size in zip(image_shape[:2], filter_size, strict=True)
    )
    (top, bottom), (left, right) = padding_widths(filter_size, padding)
    points = (image_shape[0] + top + bottom) * (image_shape[1] + left + right)
    gemm = out_rows * out_cols * rows * cols * channels
    fft = points * (FFT_COST_PER_LOG_POINT * math.log2(points) + FFT_COST_PER_CHANNEL * channels)
    return "fft" if fft < gemm else "gemm"


@dataclass(frozen=True)
class Plan:
    """How ``transform`` computes the features of images of one shape. Immutable, plain data:
    every field is worked out once, by :func:`make_plan`.

    The work is tiled three ways: ``chunk`` images at a time; for each, the bands of map rows
    ``bands`` (one band, the whole map, unless a map of :data:`MIN_BLOCK` filters would not
    fit a tile); for each band, the blocks of filters ``blocks``, whose maps are pooled right
    after their product (see :func:`_tiled`).

    Attributes
    ----------
    image_shape, filter_size, stride, map_shape : tuple, tuple, int, tuple
        ``(H, W, C)``, ``(h, w)``, the step, and the maps' ``(rows, cols)``.
    dilations, footprint : tuple
        ``((dilation, n_filters), ...)``: the filters in groups of one dilation, in the order
        of the bank; and the ``(rows, cols)`` of image that the most dilated filter spans,
        ``(h - 1) * dilation + 1`` by ``(w - 1) * dilation + 1``, from which the padding
        and the maps' shape follow (the filters of every dilation are centred on the same
        positions).
    padding, padded_shape : tuple
        ``((top, bottom), (left, right))`` zeros, and the padded image's ``(rows, cols)``.
    antialias, smoothing, smooth_radius : bool, tuple, int
        Whether dilated filters read the image smoothed
        (:func:`~sklearn_convfeat._shapes.smoothing_sigma`); ``((dilation, sigma), ...)`` for
        the dilations that do; the rows of image beyond a band's that their smoothing reads.
    taps, gathers, regathers : int, tuple, tuple
        Values of one patch, ``h * w * C``; for each block of filters, the ``(dilation,
        (top, left), (rows, cols))`` of its patches: their taps start at ``(top, left)`` in
        the footprint and span ``(rows, cols)`` (blocks never span two dilations); and whether
        the patches are gathered for it (the first block, and each block whose gather differs
        from the one before).
    method : {'gemm', 'fft'}
    activation, threshold, pooling : str, float, str
        As the parameters; ``n_maps`` is ``n_filters`` times the activation's maps per filter.
    levels, order : tuple
        The :class:`Level` s in the order of the features, and the order in which they are
        pooled (finest first).
    balance_levels, level_weights : bool, tuple
        Whether the levels of a pyramid are weighed alike; the factor of each level's
        features, applied last (:func:`level_weights`; all 1 without ``balance_levels``).
    pyramid, flatten, patch_norm : bool
        Whether the features are ``(n_regions, n_maps)``; whether transform flattens them;
        whether patches are normalised.
    convolution, pooling_way : type
        The convolution method (a :class:`~sklearn_convfeat._convolution.Convolution`) and
        the way of pooling (a :class:`~sklearn_convfeat._pooling.PoolingWay`): max pooling
        runs before the bias and a non-decreasing activation, which commute with it, to the
        bit (``PoolThenActivate``); means of an activation given by parts are made from sums
        (``SumsOfParts``); else the maps are activated, then pooled (``ActivateThenPool``).
    sums_parts, sum_shifts : tuple or None, tuple
        The activation's parts (:class:`~sklearn_convfeat._variants.Part`) when the maps are
        pooled by their means onto grids or windows that the plain layout serves (the engine
        then sums ``z`` and ``|z + b - sign * t|`` over the regions and forms the means of the
        activated maps from these sums, without writing them), else None; the distinct
        ``sign * t`` of the parts with an absolute value (one sum each).
    phased, phased_shape : bool, tuple or None
        Whether the GEMM path lays positions out by column phase for equal windows, and then
        ``(win_rows, win_cols, out_rows, units)``.
    output_shape, n_features, largest_region : tuple, int, int
        One image's features: ``(rows, cols, n_maps)`` or ``(n_regions, n_maps)``; their
        number; the map values of the largest region.
    chunk, bands, blocks, padded_rows : int, tuple, tuple, int
        The tiling; the padded rows that the longest band reads.
    bytes_per_image, tile_bytes_per_image, kept_tiles : int
        Bytes of a chunk's buffers per image (:meth:`chunk_buffers`), the FFT's filter
        spectra excepted; those a tile works in, which the tiling fits to the cache (all but
        the smoothing's, ``Smoothing.buffers``); the tiles of a banded plan whose views are
        made once and kept (all of them, up to :data:`KEPT_TILES`; else none).
    """

    image_shape: tuple
    n_filters: int
    filter_size: tuple
    dilations: tuple
    stride: int
    padding: tuple
    map_shape: tuple
    method: str
    activation: str
    threshold: float
    pooling: str
    levels: tuple
    order: tuple
    balance_levels: bool
    pyramid: bool
    flatten: bool
    patch_norm: bool
    antialias: bool
    phased: bool
    chunk: int
    bands: tuple
    blocks: tuple
    n_maps: int
    maps_per_filter: int
    padded_shape: tuple
    padded_rows: int
    taps: int
    footprint: tuple
    gathers: tuple
    regathers: tuple
    sums_parts: tuple | None
    sum_shifts: tuple
    phased_shape: tuple | None
    output_shape: tuple
    n_features: int
    largest_region: int
    kept_tiles: int
    smoothing: tuple
    smooth_radius: int
    level_weights: tuple
    convolution: type
    pooling_way: type
    bytes_per_image: int = 0
    tile_bytes_per_image: int = 0

    @property
    def block(self):
        """Filters of the largest block."""
        return max(stop - start for start, stop in self.blocks)

    def band_input_rows(self, band_rows):
        """Rows of the padded image that ``band_rows`` map rows read."""
        return self.stride * (band_rows - 1) + self.footprint[0]

    def feature_names(self):
        """One name per feature, in the order of the flattened output: region-major, map-minor."""
        maps = ACTIVATIONS[self.activation].map_names(self.n_filters)
        return [
            f"{name}_{region}"
            for level in self.levels
            for region in level.region_names()
            for name in maps
        ]

    def unpooled(self):
        """This plan without its pooling: each image's maps, ``(rows, cols, n_maps)``."""
        rows, cols = (window_regions(length, 1) for length in self.map_shape)
        return _tiled(
            self,
            pooling="max",
            levels=(make_level(None, rows, cols, 0),),
            order=(0,),
            pyramid=False,
            flatten=False,
            phased=False,
        )

    def chunk_buffers(self, n):
        """Every buffer a chunk of ``n`` images needs: name -> (shape, dtype). The engine
        allocates the names it owns from this table, and the memory check sums it; names
        starting with ``'tmp_'`` are the temporaries that NumPy and SciPy allocate inside a
        call, counted but not allocated by the engine. Each stage declares its own, and
        makes their views: the loading of image rows
        (:class:`~sklearn_convfeat._loading.Loader`), the convolution method (with the maps
        of a block), the way of pooling and the levels
        (:class:`~sklearn_convfeat._pooling.LevelBuffers`)."""
        band = max(stop - start for start, stop in self.bands)
        buffers = {**Loader.buffers(self, n), **Smoothing.buffers(self, n)}
        positions = self.convolution.positions(self, band)
        buffers.update(self.convolution.buffers(self, n, band))
        buffers.update(self.pooling_way.buffers(self, n, positions))
        width = self.pooling_way.width(self)
        buffers.update(LevelBuffers.buffers(self, n, band, positions, width))
        return buffers

    def pools_whole_rows(self, level):
        """Whether ``level``'s regions are whole map rows (one region across): a region's
        positions are then consecutive in the maps, and pooled by one reduction."""
        return level.map_cols.count == 1 and level.map_cols.stop == self.map_shape[1]

    def batch_size(self, n_samples, n_threads):
        """Images per batch: whole chunks, all in one batch on one thread, else about four
        batches per thread so that none waits long for the last one."""
        if n_threads == 1:
            return max(n_samples, 1)
        return self.chunk * max(1, math.ceil(n_samples / (4 * n_threads * self.chunk)))

    def working_bytes(self, n_samples, *, batch_size=None, n_threads=1):
        """Peak bytes that running this plan allocates beyond its output.

        Each thread at work holds one chunk's buffers (the images are read from the caller's
        arrays into them, whatever their dtype: they are never copied whole); the FFT path adds
        the filters' spectra once (``convolution.kernel_bytes``), every call
        :data:`CALL_BYTES`, and a banded plan the views of its kept tiles, or of one
        (:data:`TILE_VIEW_BYTES` each). Checked against
        tracemalloc's peak in ``tests/test_engine.py``.
        """
        if batch_size is None:
            batch_size = self.batch_size(n_samples, n_threads)
        batch = max(1, min(batch_size, n_samples))
        # Every buffer holds its chunk's images side by side: bytes grow with the chunk.
        per_thread = min(batch, self.chunk) * self.bytes_per_image
        if len(self.bands) > 1:
            per_thread += TILE_VIEW_BYTES * max(1, self.kept_tiles)
        threads = min(n_threads, math.ceil(n_samples / batch))
        return threads * per_thread + self.convolution.kernel_bytes(self) + CALL_BYTES


def _derive(**decisions):
    """A :class:`Plan` from its decisions, with every derived field worked out."""
    activation = ACTIVATIONS[decisions["activation"]]
    (top, bottom), (left, right) = decisions["padding"]
    height, width, channels = decisions["image_shape"]
    levels, order = decisions["levels"], decisions["order"]
    maps_per_filter = activation.maps_per_filter
    n_maps = decisions["n_filters"] * maps_per_filter
    finest = levels[order[0]]
    phased_shape = None
    if decisions["phased"]:
        win_cols = finest.map_cols.size
        phased_shape = (
            finest.map_rows.size,
            win_cols,
            finest.map_rows.stop,
            finest.map_cols.stop // win_cols,
        )
    if decisions["pyramid"]:
        output_shape = (sum(level.n_regions for level in levels), n_maps)
    else:
        output_shape = (*levels[0].shape, n_maps)
    longest = max(stop - start for start, stop in decisions["bands"])
    tiles = len(decisions["bands"]) * len(decisions["blocks"])
    largest = max(dilation for dilation, _ in decisions["dilations"])
    whole = footprint(decisions["filter_size"], largest)
    # Each dilation's taps, centred in the footprint; each block's are its group's.
    group_gathers, group_starts, first = [], [], 0
    for dilation, count in decisions["dilations"]:
        spans = footprint(decisions["filter_size"], dilation)
        offsets = tuple((w - 1) // 2 - (s - 1) // 2 for w, s in zip(whole, spans, strict=True))
        group_gathers.append((dilation, offsets, spans))
        group_starts.append(first)
        first += count
    gathers = [
        group_gathers[bisect.bisect_right(group_starts, start) - 1]
        for start, _ in decisions["blocks"]
    ]
    smoothing = tuple(
        (dilation, smoothing_sigma(dilation))
        for dilation, _ in decisions["dilations"]
        if decisions["antialias"] and smoothing_sigma(dilation)
    )
    pooling = POOLINGS[decisions["pooling"]]
    pool_first = pooling.is_max and activation.monotone
    sums_parts = None
    if pooling.reduce is np.add and pooling.prepare is None and not pooling.root:
        sums_parts = None if decisions["phased"] else activation.parts
    threshold = decisions["threshold"]
    sum_shifts = tuple(
        dict.fromkeys(part.sign * threshold for part in sums_parts or () if part.abs_coef)
    )
    plan = Plan(
        **decisions,
        n_maps=n_maps,
        maps_per_filter=maps_per_filter,
        padded_shape=(height + top + bottom, width + left + right),
        padded_rows=decisions["stride"] * (longest - 1) + whole[0],
        taps=math.prod(decisions["filter_size"]) * channels,
        footprint=whole,
        gathers=tuple(gathers),
        regathers=tuple(k == 0 or gathers[k] != gathers[k - 1] for k in range(len(gathers))),
        sums_parts=sums_parts,
        sum_shifts=sum_shifts,
        phased_shape=phased_shape,
        output_shape=output_shape,
        n_features=math.prod(output_shape),
        largest_region=max(level.largest for level in levels),
        kept_tiles=0 if len(decisions["bands"]) == 1 or tiles > KEPT_TILES else tiles,
        smoothing=smoothing,
        smooth_radius=max((smoothing_radius(sigma) for _, sigma in smoothing), default=0),
        level_weights=level_weights(levels, decisions["balance_levels"]),
        convolution=_convolution(decisions["method"], decisions["phased"]),
        pooling_way=_pooling_way(pool_first, sums_parts),
    )
    buffers = plan.chunk_buffers(1)
    loading = Smoothing.buffers(plan, 1)
    tile = {name: value for name, value in buffers.items() if name not in loading}
    return replace(plan, bytes_per_image=_nbytes(buffers), tile_bytes_per_image=_nbytes(tile))


def _convolution(method, phased):
    """The convolution method's class."""
    if phased:
        return PhasedGemmConvolution
    return {"gemm": GemmConvolution, "fft": FftConvolution}[method]


def _pooling_way(pool_first, sums_parts):
    """The way of pooling's class."""
    if pool_first:
        return PoolThenActivate
    return ActivateThenPool if sums_parts is None else SumsOfParts


def _nbytes(buffers):
    return sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in buffers.values())


_DECISIONS = (
    "image_shape",
    "n_filters",
    "filter_size",
    "dilations",
    "stride",
    "padding",
    "map_shape",
    "method",
    "activation",
    "threshold",
    "pooling",
    "levels",
    "order",
    "balance_levels",
    "pyramid",
    "flatten",
    "patch_norm",
    "antialias",
    "phased",
)


def _split(length, count, align=1):
    """The size of ``count`` nearly equal parts of ``length``, rounded up to a multiple of
    ``align`` (unless that is the whole)."""
    size = -(-length // count)
    return min(length, -(-size // align) * align)


def _tiled(plan=None, budget=None, **decisions):
    """The plan of these decisions (``plan``'s, with ``decisions`` changed) with its tiling:
    whole images and all filters if one image's tile bytes (``tile_bytes_per_image``) fit
    ``budget`` (then as many images per chunk as fit); else one image at a time, in tiles that
    fit :data:`BAND_FACTOR` times the budget: the whole map in blocks of filters, as long as a
    block keeps :data:`MIN_BLOCK` filters; else bands of map rows, the largest that fit with
    such blocks, down to :data:`MIN_BAND_ROWS` rows; else bands of that many rows in blocks of
    ``MIN_BLOCK`` if they fit :data:`FLOOR_FACTOR` times the budget; at last, smaller bands,
    down to one row in smaller blocks."""
    if plan is not None:
        decisions = {**{name: getattr(plan, name) for name in _DECISIONS}, **decisions}
    budget = tile_bytes() if budget is None else budget
    rows, n_filters = decisions["map_shape"][0], decisions["n_filters"]
    whole = _tiling(decisions, rows, n_filters)
    if whole.tile_bytes_per_image <= budget:
        return replace(whole, chunk=max(1, budget // whole.tile_bytes_per_image))
    blocks = sorted({_split(n_filters, count, BLOCK_ALIGN) for count in range(1, n_filters + 1)})
    wide = blocks[bisect.bisect_left(blocks, min(MIN_BLOCK, n_filters)) :]
    bands = sorted({_split(rows, count) for count in range(1, rows + 1)}, reverse=True)
    floor = min(band for band in bands if band >= min(MIN_BAND_ROWS, rows))
    limit = BAND_FACTOR * budget
    return (
        _first(_largest(decisions, band, wide, limit) for band in bands if band >= floor)
        or _largest(decisions, floor, wide[:1], FLOOR_FACTOR * budget)
        or _first(
            _largest(decisions, band, blocks if band == 1 else wide, limit)
            for band in bands
            if band < floor
        )
        or _tiling(decisions, 1, blocks[0])
    )


def _tiling(decisions, band, block):
    """The plan of ``decisions`` in bands of ``band`` map rows and blocks of at most ``block``
    filters, none across two dilations, one image a chunk (phased on whole maps only)."""
    rows = decisions["map_shape"][0]
    groups = np.cumsum([0] + [count for _, count in decisions["dilations"]]).tolist()
    return _derive(
        **{**decisions, "phased": decisions["phased"] and band == rows},
        chunk=1,
        bands=tuple((start, min(start + band, rows)) for start in range(0, rows, band)),
        blocks=tuple(
            (start, min(start + block, stop))
            for first, stop in itertools.pairwise(groups)
            for start in range(first, stop, block)
        ),
    )


def _too_large(decisions, band, limit, block):
    """Whether a tile of ``band`` rows and ``block`` filters exceeds ``limit`` bytes."""
    return _tiling(decisions, band, block).tile_bytes_per_image > limit


def _largest(decisions, band, usable, limit):
    """``band`` rows in the largest of the ``usable`` blocks whose tile fits ``limit`` bytes (a
    tile's bytes grow with its filters: by bisection), or None."""
    too_large = partial(_too_large, decisions, band, limit)
    if too_large(usable[0]):
        return None
    return _tiling(decisions, band, usable[bisect.bisect_left(usable, True, key=too_large) - 1])


def _first(tilings):
    """The first of ``tilings`` that is not None, or None."""
    return next((found for found in tilings if found is not None), None)


@lru_cache(maxsize=256)
def make_plan(spec, image_shape, *, method="auto", tile_budget=None):
    """The :class:`Plan` of a transform of ``spec`` (a
    :class:`~sklearn_convfeat._spec.FeatureSpec`) on images of ``image_shape`` ``(H, W, C)``.

    With ``spec.antialias``, the filters of a dilation above 1 read the image smoothed;
    ``method`` is ``'gemm'``, ``'fft'`` or ``'auto'`` (:func:`choose_method`; dilated filters
    run on the GEMM path, whose patches take their taps where they are). With
    ``spec.any_size``, grids are never clipped to smaller maps, so that images of any size
    give features of one length (an image too small for them is an error that names its
    shape). ``tile_budget`` (bytes) defaults to :func:`tile_bytes`. Plans are cached: a shape
    seen before costs nothing.
    """
    image_shape = tuple(int(s) for s in image_shape)
    try:
        return _make_plan(spec, image_shape, method, tile_budget)
    except ValueError as error:
        if not spec.any_size:
            raise
        raise ValueError(f"An image of shape {image_shape}: {error}") from None


def _make_plan(spec, image_shape, method, tile_budget):
    filter_size, dilations, antialias = spec.filter_size, spec.dilations, spec.antialias
    spans = spec.footprint
    # A stride past the padded image leaves one position per axis, as any larger one does:
    # capped there, the engine's views take it in NumPy's strides.
    stride = min(spec.stride, max(image_shape[:2]) + max(spans))
    map_shape = tuple(
        conv_output_size(length, size, stride, spec.padding)
        for length, size in zip(image_shape[:2], spans, strict=True)
    )
    levels, order = _levels(spec.layout, map_shape, clip=not spec.any_size)
    # Filters whose taps are spread, or that read the image smoothed (a 1x1 filter at a
    # dilation above 1, with antialias), take each dilation's taps from its own rows: the
    # plain GEMM path's gathers.
    dilated = spans != filter_size or (
        antialias and any(smoothing_sigma(dilation) for dilation, _ in dilations)
    )
    if method == "auto":
        method = (
            "gemm" if dilated else choose_method(image_shape, filter_size, stride, spec.padding)
        )
    elif method == "fft" and dilated:
        raise ValueError(
            "dilated filters run on the GEMM path only, not method='fft' (with antialias, "
            "1x1 filters at a dilation above 1 too: they read the image smoothed)."
        )
    finest = levels[order[0]]
    phased = (
        method == "gemm"
        and not dilated
        and finest.map_rows.size is not None
        and finest.map_cols.size is not None
        and finest.map_cols.size > 1
        and finest.map_cols.count > 1
        and all(level.source is not None for level in levels if level is not finest)
    )
    return _tiled(
        budget=tile_budget,
        image_shape=image_shape,
        n_filters=spec.n_filters,
        filter_size=filter_size,
        dilations=dilations,
        stride=stride,
        padding=padding_widths(spans, spec.padding),
        map_shape=map_shape,
        method=method,
        activation=spec.activation,
        threshold=spec.threshold,
        pooling=spec.pooling,
        levels=levels,
        order=order,
        balance_levels=spec.balance_levels,
        pyramid=spec.layout.pyramid,
        flatten=spec.flatten,
        patch_norm=spec.patch_norm,
        antialias=antialias,
        phased=phased,
    )
