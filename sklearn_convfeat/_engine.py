"""The engine: runs :class:`~sklearn_convfeat._plan.Plan` s over images.

Images are ``(n, H, W, C)``; filters are float32 ``(n_filters, h, w, C)``. The convolution is a
cross-correlation (the filter is not flipped), as in :func:`scipy.signal.correlate2d` and in CNN
libraries. :func:`pooled_features` gives the features of ``transform`` for images of one shape,
:func:`pooled_features_of_groups` for groups of images of several shapes, :func:`feature_maps`
the maps before pooling.

A transform runs, for each batch of images (:func:`_run_batch`), each chunk of ``plan.chunk``
images (:class:`Chunk`, or :class:`BandedChunk` when the image is large): for each band of map
rows (one, the whole map, unless the image is large), the image rows it reads are loaded into
the padded buffer (and, smoothed, into each dilation's that reads them so:
:mod:`~sklearn_convfeat._loading`), then the band's :class:`Tile` runs, for each block of
filters, the steps that the plan's convolution method
(:mod:`~sklearn_convfeat._convolution`) and way of pooling (:mod:`~sklearn_convfeat._pooling`)
built: gather the patches, multiply them with the block's filters, activate, pool. Each
block's maps are pooled right after the product that makes them, so the unpooled maps never
travel to main memory and memory does not grow with the number of filters. The chunk then
pools the grids of a pyramid that nest in a finer one from its pooled values, and writes the
features.

Every buffer a chunk uses is listed by ``plan.chunk_buffers`` (each stage declares its own and
makes their views), allocated once per thread (:class:`Space`), and reused by every chunk: a
chunk allocates nothing of its own. Whole map or bands is chosen once, by the
:class:`Workspace`: no step tests it. Steps and their views are made once per chunk size and
band length. *Batches* (many chunks) are the unit of work of the ``n_jobs`` threads. Every
image goes through the same code in tiles that do not depend on ``batch_size``, ``n_jobs`` or
the other images, and every matrix product covers one image, so results are bit-identical for
any of them.
"""

import math
import queue
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from sklearn.utils import gen_batches

from ._convolution import Kernel
from ._loading import BandLoader, Loader
from ._pooling import AxisReduction, LevelBuffers
from ._threads import single_threaded_blas, thread_count
from ._variants import POOLINGS

# Alignment of the buffers, in bytes: a cache line, and the width of AVX-512 registers. The GEMM
# writes, and pooling reads, the maps about 5% faster than at NumPy's default 16-byte alignment
# (measured on configs A and B of benchmarks/bench_speed.py).
ALIGNMENT = 64


class Space:
    """Named flat buffers, aligned to :data:`ALIGNMENT`: ``view(name, shape)`` is a C-contiguous
    view of the start of buffer ``name``, of any shape that fits. The stages that declare the
    buffers make their views."""

    def __init__(self, buffers):
        self.flat = {}
        for name, (shape, dtype) in buffers.items():
            if name.startswith("tmp_"):
                continue
            itemsize = np.dtype(dtype).itemsize
            size = math.prod(shape)
            flat = np.empty(size + ALIGNMENT // itemsize, dtype=dtype)
            offset = -flat.ctypes.data % ALIGNMENT // itemsize
            self.flat[name] = flat[offset : offset + size]

    def view(self, name, shape):
        return self.flat[name][: math.prod(shape)].reshape(shape)

    def buffer(self, name):
        """The whole flat buffer ``name``, or None if the plan has none."""
        return self.flat.get(name)


class Tile:
    """The steps of one band of ``band_rows`` map rows of the images that ``loader`` loaded:
    for each block of filters, the convolution's (gather where ``plan.regathers`` says,
    multiply), then the way of pooling's (:meth:`pool_steps`), which the kind of tile keeps
    or makes again for each band (:meth:`band_steps`)."""

    def __init__(self, plan, kernel, space, way, loader, band_rows):
        padded, smoothed = loader.padded, loader.by_dilation
        convolution = plan.convolution(plan, kernel, space, padded, smoothed, band_rows)
        self.way = way
        # Per block of filters: the steps that make its values to pool, and those values.
        self.to_pool = []
        for k in range(len(plan.blocks)):
            steps = [partial(convolution.gather, k)] if plan.regathers[k] else []
            steps.append(partial(convolution.multiply, k))
            before, values = way.block_steps(convolution.maps[k], k)
            self.to_pool.append((steps + before, values))

    def pool_steps(self, band):
        """The pooling steps of each block, for ``band`` (None: the whole map)."""
        return [self.way.pool_steps(values, k, band) for k, (_, values) in enumerate(self.to_pool)]

    def band_steps(self, band):
        """The pooling steps of each block for ``band``, as this kind of tile keeps them."""
        raise NotImplementedError

    def run(self, band):
        for (steps, _), pool in zip(self.to_pool, self.band_steps(band), strict=True):
            for step in steps:
                step()
            for step in pool:
                step()


class MapTile(Tile):
    """The tile of a whole map (the plan's one band): its values pooled straight into the
    levels, by steps made once."""

    def __init__(self, *args):
        super().__init__(*args)
        self.pools = self.pool_steps(None)

    def band_steps(self, band):
        return self.pools


class BandTile(Tile):
    """The tile of the bands of one length of a large image: each band's values pooled into
    a part combined with the other bands', by steps made as the band comes (the views of
    every band would grow with the image's height)."""

    def band_steps(self, band):
        return self.pool_steps(band)


class KeptBandTile(BandTile):
    """A :class:`BandTile` whose steps of a band are made at its first run and kept, for a
    plan of few tiles (``plan.kept_tiles``): the same buffers serve every chunk."""

    def __init__(self, *args):
        super().__init__(*args)
        self.kept = {}

    def band_steps(self, band):
        steps = self.kept.get(band)
        if steps is None:
            steps = self.kept[band] = self.pool_steps(band)
        return steps


class Emit:
    """Writes a level's pooled values, finished (:meth:`Pooling.finish`), into its features."""

    def __init__(self, pooling, pooled, level):
        self.pooling, self.pooled = pooling, pooled
        self.offset, self.n_regions = level.offset, level.n_regions
        self.sizes = np.float32(level.sizes)[:, :, None]

    def run(self, out):
        target = out[:, self.offset : self.offset + self.n_regions].reshape(self.pooled.shape)
        self.pooling.finish(self.pooled, self.sizes, target)


class Chunk:
    """Convolution, normalisation, activation and pooling of ``size`` images into their
    features.

    Its views are built here, once per chunk size (the full chunk and, at most, a last shorter
    one): a chunk holds few images, and building views costs as much as they do. This one
    computes a whole map in one band (:class:`MapTile`); :class:`BandedChunk`, large images
    in bands of map rows, one tile serving every band of the same length.
    """

    loader_type, tile_type = Loader, MapTile

    def __init__(self, plan, kernel, space, size):
        self.plan = plan
        self.loader = self.loader_type(plan, space, size)
        buffers = LevelBuffers(plan, space, size)
        levels = buffers.levels
        pooling = POOLINGS[plan.pooling]
        self.nested = []
        for index in plan.order:
            level = plan.levels[index]
            if level.source is None:
                continue
            source = levels[level.source]
            shape = (size, level.rows.count, source.shape[2], plan.n_maps)
            rows = buffers.rows(index, shape)
            self.nested += [
                AxisReduction(source, 1, level.rows, pooling.reduce, rows),
                AxisReduction(rows, 2, level.cols, pooling.reduce, levels[index]),
            ]
        self.emits = [Emit(pooling, levels[i], level) for i, level in enumerate(plan.levels)]
        self.way = plan.pooling_way(plan, kernel, space, size, buffers)
        self.tiles = {}
        for start, stop in plan.bands:
            if stop - start not in self.tiles:
                self.tiles[stop - start] = self.tile_type(
                    plan, kernel, space, self.way, self.loader, stop - start
                )

    def run(self, images, out):
        loaded = None
        for band in self.plan.bands:
            loaded = self.loader.load(images, band, loaded)
            self.tiles[band[1] - band[0]].run(band)
        self.way.finish_chunk()
        for reduction in self.nested:
            reduction.run()
        for emit in self.emits:
            emit.run(out)


class BandedChunk(Chunk):
    """A :class:`Chunk` of large images, in several bands of map rows: each band's rows are
    loaded with zeros outside the image (:class:`~sklearn_convfeat._loading.BandLoader`),
    its pooled values combined into the levels, which start each chunk at the reduction's
    identity."""

    loader_type = BandLoader

    def __init__(self, plan, kernel, space, size):
        self.tile_type = KeptBandTile if plan.kept_tiles else BandTile
        super().__init__(plan, kernel, space, size)

    def run(self, images, out):
        self.way.reset()
        super().run(images, out)


class Workspace:
    """The buffers of one thread for chunks of up to ``size`` images of one plan, and the
    chunks built on them for each chunk size."""

    def __init__(self, plan, kernel, size):
        self.plan, self.kernel = plan, kernel
        self.space = Space(plan.chunk_buffers(size))
        self.chunk_type = Chunk if len(plan.bands) == 1 else BandedChunk
        self.chunks = {}

    def chunk(self, size):
        if size not in self.chunks:
            self.chunks[size] = self.chunk_type(self.plan, self.kernel, self.space, size)
        return self.chunks[size]


class Batches:
    """Runs batches on the threads at work, one workspace per thread handed from batch to
    batch."""

    def __init__(self):
        self.workspaces = queue.SimpleQueue()

    def run(self, plan, kernel, capacity, images, by_region, batch):
        """The features of the images ``batch`` of ``images`` into ``by_region``."""
        try:
            workspace = self.workspaces.get_nowait()
        except queue.Empty:
            workspace = None
        if workspace is None or workspace.kernel is not kernel:
            workspace = Workspace(plan, kernel, capacity)
        _run_batch(plan, workspace, images[batch], by_region[batch])
        self.workspaces.put(workspace)


def _run_batch(plan, workspace, images, out):
    """The features of a batch of images into ``out``, ``(n, n_regions, n_maps)``, each
    level's scaled by its weight last."""
    for start in range(0, len(images), plan.chunk):
        stop = min(start + plan.chunk, len(images))
        workspace.chunk(stop - start).run(images[start:stop], out[start:stop])
    plan.pooling_way.finish_batch(plan, workspace.kernel, out)
    for level, weight in zip(plan.levels, plan.level_weights, strict=True):
        if weight != 1.0:
            out[:, level.offset : level.offset + level.n_regions] *= np.float32(weight)


def pooled_features_of_groups(
    groups, filters, bias=None, patch_norm_eps=None, *, n_jobs=None, batch_size=None
):
    """The pooled features of groups of images, one plan per group.

    Batches of every group run on ``n_jobs`` threads with BLAS limited to one thread each; a
    thread keeps its buffers from batch to batch while the plan stays the same. A sample's
    features never depend on its batch, its group's other images or the other groups, so the
    result is the same for any ``batch_size`` and ``n_jobs``.

    Parameters
    ----------
    groups : list of (Plan, images)
        ``images`` of shape ``(n, *plan.image_shape)``: an array of any real dtype and memory
        layout, or a list of arrays of ``plan.image_shape``. They are read a chunk at a time
        into the engine's float32 buffers, never copied whole.
    filters : ndarray of shape (n_filters, h, w, C), float32
    bias : ndarray of shape (n_filters,), default=None
        Added to each filter's map (after the patch normalisation).
    patch_norm_eps : float or tuple of float, default=None
        With ``plan.patch_norm``: each patch is normalised to zero mean and unit variance,
        with ``patch_norm_eps`` added to its variance (one value, or one per group of
        ``plan.dilations``).
    n_jobs : int, default=None
        As in :class:`~sklearn_convfeat.ConvFeatureTransformer`.
    batch_size : int, default=None
        Images per batch; None for each plan's ``batch_size``.

    Returns
    -------
    features : list of ndarray of shape (n, *plan.output_shape), float32
        One per group.
    """
    n_threads = thread_count(n_jobs)
    outputs, tasks = [], []
    for plan, images in groups:
        n_samples = len(images)
        out = np.empty((n_samples, *plan.output_shape), dtype=np.float32)
        outputs.append(out)
        size = batch_size or plan.batch_size(n_samples, n_threads)
        kernel = Kernel(plan, filters, bias, patch_norm_eps)
        capacity = min(plan.chunk, size, n_samples)
        by_region = out.reshape(n_samples, -1, plan.n_maps)
        tasks += [
            (plan, kernel, capacity, images, by_region, batch)
            for batch in gen_batches(n_samples, size)
        ]
    batches = Batches()
    n_threads = min(n_threads, len(tasks))
    with single_threaded_blas():
        if n_threads <= 1:
            for task in tasks:
                batches.run(*task)
        else:
            # The standard library's pool, not joblib's threading backend: starting and
            # stopping that one costs 7-13 ms a call (0.6 ms here), more than half of the
            # 21 ms that 1,000 small images now take on two threads (benchmarks/README.md).
            with ThreadPoolExecutor(n_threads, thread_name_prefix="convfeat") as pool:
                for _ in pool.map(batches.run, *zip(*tasks, strict=True)):
                    pass
    return outputs


def pooled_features(
    images, plan, filters, bias=None, patch_norm_eps=None, *, n_jobs=None, batch_size=None
):
    """The pooled features of ``images`` of ``plan.image_shape``: ``(n, *plan.output_shape)``
    float32. See :func:`pooled_features_of_groups`."""
    (features,) = pooled_features_of_groups(
        [(plan, images)], filters, bias, patch_norm_eps, n_jobs=n_jobs, batch_size=batch_size
    )
    return features


def feature_maps(images, plan, filters, bias=None, patch_norm_eps=None):
    """The maps of ``images`` before pooling, ``(n, rows, cols, n_maps)`` float32: the
    convolution, the patch normalisation, the bias and the activation of ``plan``."""
    return pooled_features(images, plan.unpooled(), filters, bias, patch_norm_eps)
