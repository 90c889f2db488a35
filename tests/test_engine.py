"""The engine's paths against the independent reference, its batching invariants, and the
memory it allocates against its plan's estimate."""

import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from reference import reference_features
from settings import default_plan, spec_plan

from sklearn_convfeat._engine import feature_maps, pooled_features
from sklearn_convfeat._spec import parse_pooling


def engine_features(
    images,
    filters,
    *,
    stride=1,
    padding="valid",
    activation="relu",
    pooling="max",
    pool_size=(1, 1),
    pool_grid=None,
    bias=None,
    patch_norm_eps=None,
    threshold=0.0,
    method="auto",
    tile_budget=None,
    n_jobs=None,
    batch_size=None,
    dilations=None,
    antialias=False,
    balance_levels=False,
):
    """The engine's features with the reference's arguments: a plan, then the engine.
    ``dilations`` gives each filter's (in groups of one dilation, as a fitted bank's)."""
    groups = None
    if dilations is not None:
        values, counts = np.unique(dilations, return_counts=True)
        assert_array_equal(dilations, np.repeat(values, counts))
        groups = tuple(zip(values.tolist(), counts.tolist(), strict=True))

    def plan_of(budget):
        return spec_plan(
            images.shape[1:],
            filter_size=filters.shape[1:3],
            n_filters=len(filters),
            stride=stride,
            padding=padding,
            activation=activation,
            threshold=threshold,
            pooling=pooling,
            layout=parse_pooling(pool_size if pool_grid is None else None, pool_grid, True),
            flatten=True,
            patch_norm=patch_norm_eps is not None,
            method=method,
            tile_budget=budget,
            dilations=groups,
            antialias=antialias,
            balance_levels=balance_levels,
        )

    if tile_budget == "bands of rows":
        # The smallest budget (in steps of 2) whose bands hold several map rows (the whole
        # map for maps that go from bands of one row to one band; the default for one row).
        plan = next(
            (
                plan
                for plan in (plan_of(2**k) for k in range(6, 24))
                if any(stop - start > 1 for start, stop in plan.bands)
            ),
            plan_of(None),
        )
    else:
        plan = plan_of(tile_budget)
    return pooled_features(
        images, plan, filters, bias, patch_norm_eps, n_jobs=n_jobs, batch_size=batch_size
    )


METHODS = ["gemm", "fft", "auto"]

# (image shape, filter shape (n_filters, h, w, C), stride, padding, pool_size, pool_grid)
CASES = [
    ((12, 12, 1), (5, 3, 3, 1), 1, "valid", (2, 2), None),
    ((28, 28, 1), (6, 5, 5, 1), 1, "valid", (4, 4), None),
    ((13, 11, 3), (4, 5, 3, 3), 2, "same", (3, 2), None),
    ((16, 16, 2), (3, 4, 4, 2), 1, "same", (1, 1), (3, 3)),
    ((10, 17, 1), (5, 3, 6, 1), 3, "valid", (1, 1), None),
    ((9, 9, 4), (7, 9, 9, 4), 1, "same", (2, 2), (2, 3)),
    ((20, 20, 1), (4, 13, 13, 1), 1, "valid", (3, 3), None),
    ((1, 30, 1), (3, 1, 7, 1), 2, "valid", (1, 4), None),
    ((27, 28, 2), (4, 3, 3, 2), 1, "same", (1, 1), [(1, 1), (2, 2), (4, 4)]),
    ((15, 14, 1), (5, 11, 11, 1), 1, "same", (1, 1), [(3, 2), (1, 1)]),
]

# Every activation and every pooling mode, with max pooling after each non-monotone activation
# (whose bias and activation cannot move after the pooling), and means of each activation
# given by parts (pooled from sums of |z - t| and of z).
ACTIVATION_POOLINGS = [
    ("relu", "max"),
    ("abs", "max"),
    ("two_sided", "max"),
    ("tanh", "avg"),
    ("identity", "avg"),
    ("relu", "avg"),
    ("two_sided", "avg"),
    ("relu", "rms"),
    ("two_sided", "ppv"),
    ("abs", "rms"),
]

# A bias, a patch normalisation and a threshold, or none of them.
ENCODINGS = {
    "plain": {},
    "bias-norm-threshold": {"bias": True, "patch_norm_eps": 0.3, "threshold": 0.1},
}


def _encoded(encoding, n_filters, stride, padding, activation, pooling):
    """The reference's arguments of a case with ``ENCODINGS[encoding]`` (a random bias)."""
    params = dict(stride=stride, padding=padding, activation=activation, pooling=pooling)
    params.update(ENCODINGS[encoding])
    if params.get("bias"):
        params["bias"] = np.random.default_rng(1).standard_normal(n_filters).astype(np.float32)
    return params


def _data(image_shape, filter_shape, n_images=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, *image_shape)).astype(np.float32)
    filters = rng.standard_normal(filter_shape).astype(np.float32)
    return images, filters


# Default tiles (whole images for these sizes); the smallest: bands of one map row and blocks
# of one filter, so that every region spans several bands; and bands of a few map rows (the
# first budget that gives them; with antialias, consecutive bands share smoothed rows).
TILINGS = {"default": None, "one-row-one-filter": 1, "bands-of-rows": "bands of rows"}


@pytest.mark.parametrize("tiling", TILINGS)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("activation, pooling", ACTIVATION_POOLINGS)
@pytest.mark.parametrize("image_shape, filter_shape, stride, padding, pool_size, pool_grid", CASES)
def test_every_path_matches_the_correlate2d_reference(
    tiling,
    encoding,
    method,
    activation,
    pooling,
    image_shape,
    filter_shape,
    stride,
    padding,
    pool_size,
    pool_grid,
):
    images, filters = _data(image_shape, filter_shape)
    params = _encoded(encoding, filter_shape[0], stride, padding, activation, pooling)
    params.update(pool_size=pool_size, pool_grid=pool_grid)
    features = engine_features(
        images, filters, method=method, tile_budget=TILINGS[tiling], **params
    )
    expected = reference_features(images, filters, **params)
    assert features.dtype == np.float32
    assert features.shape == expected.shape
    assert_allclose(features, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize(
    "stride, pool_size, pooling, activation",
    [(1, (2, 3), "max", "relu"), (2, (3, 2), "avg", "relu"), (1, (4, 4), "max", "abs")],
)
def test_patch_norm_and_bias_are_pooled_like_the_unpooled_maps(
    stride, pool_size, pooling, activation
):
    """Pooled features equal the unpooled ones pooled over whole windows by NumPy (the GEMM
    path lays maps out for pooling, so patch moments must follow the same order)."""
    rng = np.random.default_rng(5)
    images = rng.standard_normal((4, 17, 19, 2)).astype(np.float32)
    filters = rng.standard_normal((5, 3, 4, 2)).astype(np.float32)
    params = dict(
        stride=stride,
        padding="same",
        activation=activation,
        pooling=pooling,
        bias=rng.standard_normal(5).astype(np.float32),
        patch_norm_eps=0.3,
        method="gemm",
    )
    maps = engine_features(images, filters, pool_size=(1, 1), **params)
    rows, cols = pool_size
    n_rows, n_cols = maps.shape[1] // rows, maps.shape[2] // cols
    windows = maps[:, : n_rows * rows, : n_cols * cols].reshape(4, n_rows, rows, n_cols, cols, 5)
    expected = windows.max(axis=(2, 4)) if pooling == "max" else windows.mean(axis=(2, 4))
    got = engine_features(images, filters, pool_size=pool_size, **params)
    assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["gemm", "fft"])
@pytest.mark.parametrize("activation", ["relu", "two_sided"])
def test_feature_maps_are_the_unpooled_features(method, activation):
    """The maps before the plan's pooling: convolution, normalisation, bias, activation."""
    rng = np.random.default_rng(7)
    images = rng.standard_normal((3, 11, 12, 2)).astype(np.float32)
    filters = rng.standard_normal((4, 3, 5, 2)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    plan = spec_plan(
        images.shape[1:],
        filter_size=(3, 5),
        n_filters=4,
        stride=1,
        padding="same",
        activation=activation,
        threshold=0.2,
        pooling="avg",
        layout=parse_pooling(None, [1, 2], True),
        flatten=True,
        patch_norm=True,
        method=method,
    )
    maps = feature_maps(images, plan, filters, bias, 0.1)
    expected = reference_features(
        images,
        filters,
        padding="same",
        activation=activation,
        bias=bias,
        patch_norm_eps=0.1,
        threshold=0.2,
    )
    assert maps.shape == expected.shape == (3, 11, 12, plan.n_maps)
    assert_allclose(maps, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("method", ["gemm", "fft"])
@pytest.mark.parametrize(
    "image_shape, filter_shape, stride, padding, pool_size, pool_grid",
    [CASES[1], CASES[2], CASES[3], CASES[8]],
)
def test_results_are_identical_for_any_batch_size_and_n_jobs(
    method, image_shape, filter_shape, stride, padding, pool_size, pool_grid
):
    images, filters = _data(image_shape, filter_shape, n_images=23, seed=1)
    params = dict(
        stride=stride,
        padding=padding,
        activation="tanh",
        pooling="max",
        pool_size=pool_size,
        pool_grid=pool_grid,
        method=method,
        patch_norm_eps=0.5,
        bias=np.linspace(-1, 1, filter_shape[0], dtype=np.float32),
    )
    # Small chunks, so that batches hold several chunks and end on partial ones.
    per_image = spec_plan(
        image_shape,
        filter_size=filter_shape[1:3],
        n_filters=filter_shape[0],
        stride=stride,
        padding=padding,
        activation="tanh",
        threshold=0.0,
        pooling="max",
        layout=parse_pooling(pool_size if pool_grid is None else None, pool_grid, True),
        flatten=True,
        patch_norm=True,
        method=method,
    ).bytes_per_image
    params["tile_budget"] = 3 * per_image
    baseline = engine_features(images, filters, batch_size=1, n_jobs=1, **params)
    for batch_size, n_jobs in [(None, 1), (2, 2), (5, 1), (7, 2), (23, 1), (100, 2), (None, 2)]:
        features = engine_features(images, filters, batch_size=batch_size, n_jobs=n_jobs, **params)
        assert_array_equal(features, baseline, err_msg=str((batch_size, n_jobs)))
    # A sample's features do not depend on the other samples either.
    alone = engine_features(images[10:11], filters, **params)
    assert_array_equal(alone, baseline[10:11])


def test_input_images_are_not_modified():
    images, filters = _data((14, 14, 3), (4, 5, 5, 3))
    images.flags.writeable = False
    copy = images.copy()
    for method in ["gemm", "fft"]:
        engine_features(
            images, filters, padding="same", activation="abs", method=method, patch_norm_eps=0.1
        )
    assert_array_equal(images, copy)


def test_float64_and_non_contiguous_input_give_the_float32_result():
    images, filters = _data((10, 10, 2), (3, 3, 3, 2), n_images=6)
    expected = engine_features(images, filters, pool_size=(2, 2))
    wide = np.asfortranarray(images.astype(np.float64))
    assert_array_equal(engine_features(wide, filters, pool_size=(2, 2)), expected)


def test_peak_memory_beyond_the_output_does_not_grow_with_n_samples():
    filters = np.random.default_rng(3).standard_normal((32, 5, 5, 1)).astype(np.float32)
    image_shape = (28, 28, 1)
    extra = []
    for n_samples in [500, 4_000]:
        images = np.random.default_rng(4).standard_normal((n_samples, *image_shape))
        images = images.astype(np.float32)
        engine_features(images[:10], filters, pool_size=(4, 4), method="gemm")
        tracemalloc.start()
        features = engine_features(images, filters, pool_size=(4, 4), method="gemm")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        extra.append(peak - features.nbytes)
    # The same few MB of buffers, whatever the number of images.
    assert extra[1] <= extra[0] + 2**16, extra
    assert max(extra) <= 4 * 2**20, extra


# (image shape, filter shape, padding, input dtype, batch_size, n_jobs, method, encoding)
WORKING_CASES = [
    ((28, 28, 1), (32, 5, 5, 1), "valid", np.float32, None, 1, "gemm", {}),
    ((28, 28, 1), (32, 5, 5, 1), "valid", np.float64, None, 1, "gemm", {}),
    ((28, 28, 1), (32, 5, 5, 1), "same", np.float64, 7, 2, "gemm", {}),
    ((32, 32, 3), (16, 5, 5, 3), "same", np.uint8, None, 2, "gemm", {}),
    ((64, 64, 1), (8, 21, 21, 1), "valid", np.float32, None, 1, "fft", {}),
    ((64, 64, 3), (8, 21, 21, 3), "same", np.float64, 5, 2, "fft", {}),
    ((64, 64, 1), (8, 21, 21, 1), "same", np.float32, None, 1, "fft", {"patch_norm_eps": 0.1}),
    ((100, 100, 1), (64, 5, 5, 1), "same", np.float32, None, 1, "gemm", {}),
    (
        (28, 28, 1),
        (32, 5, 5, 1),
        "same",
        np.float32,
        None,
        1,
        "gemm",
        {"patch_norm_eps": 0.1, "pool_grid": [(1, 1), (2, 2)]},
    ),
    (
        (28, 28, 1),
        (32, 5, 5, 1),
        "same",
        np.float32,
        None,
        1,
        "gemm",
        {"activation": "two_sided", "pooling": "rms"},
    ),
    ((28, 28, 1), (32, 5, 5, 1), "same", np.float32, None, 1, "gemm", {"pooling": "ppv"}),
    ((27, 27, 3), (64, 6, 6, 3), "valid", np.float32, None, 1, "gemm", {"pool_grid": 2}),
    # More taps than filters: normalising the patches holds their squares.
    ((32, 32, 3), (8, 9, 9, 3), "same", np.float32, None, 1, "gemm", {"patch_norm_eps": 0.1}),
    # Dilated filters: their footprints' moments from summed-area tables.
    (
        (28, 28, 1),
        (64, 4, 4, 1),
        "same",
        np.float32,
        None,
        1,
        "gemm",
        {
            "patch_norm_eps": (0.1, 0.2, 0.3),
            "dilations": ((1, 16), (2, 16), (3, 32)),
            "pool_grid": [(1, 1), (2, 2), (3, 3)],
        },
    ),
    (
        (40, 36, 3),
        (16, 4, 4, 3),
        "valid",
        np.uint8,
        7,
        2,
        "gemm",
        {"patch_norm_eps": (0.1, 0.2), "dilations": ((1, 8), (3, 8)), "pooling": "avg"},
    ),
]


@pytest.mark.parametrize(
    "image_shape, filter_shape, padding, dtype, batch_size, n_jobs, method, encoding",
    WORKING_CASES,
)
def test_working_bytes_bounds_the_peak_memory_beyond_the_output(
    image_shape, filter_shape, padding, dtype, batch_size, n_jobs, method, encoding
):
    """The memory check counts at least what the engine allocates, and not much more."""
    rng = np.random.default_rng(0)
    n_samples = 200
    images = (rng.random((n_samples, *image_shape)) * 100).astype(dtype)
    filters = rng.standard_normal(filter_shape).astype(np.float32)
    pool_grid = encoding.get("pool_grid")
    plan = spec_plan(
        image_shape,
        filter_size=filter_shape[1:3],
        n_filters=filter_shape[0],
        stride=1,
        padding=padding,
        activation=encoding.get("activation", "relu"),
        threshold=0.0,
        pooling=encoding.get("pooling", "max"),
        layout=parse_pooling((4, 4) if pool_grid is None else None, pool_grid, True),
        flatten=True,
        patch_norm="patch_norm_eps" in encoding,
        method=method,
        dilations=encoding.get("dilations"),
    )
    run = dict(n_jobs=n_jobs, batch_size=batch_size)
    eps = encoding.get("patch_norm_eps")
    pooled_features(images[:5], plan, filters, None, eps, **run)
    tracemalloc.start()
    features = pooled_features(images, plan, filters, None, eps, **run)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak -= features.nbytes
    estimate = plan.working_bytes(n_samples, batch_size=batch_size, n_threads=n_jobs)
    assert peak <= estimate
    if n_jobs == 1:  # with threads, their peaks need not coincide
        assert estimate <= 3 * peak


@pytest.mark.parametrize("n_jobs", [None, 2, -1])
def test_threads_stay_in_process_under_any_joblib_backend(n_jobs):
    """Batches write into one output array: a process backend chosen by the caller (as
    GridSearchCV users do with parallel_backend) must not take them elsewhere."""
    from joblib import parallel_backend

    rng = np.random.default_rng(0)
    images = rng.normal(size=(60, 9, 9, 1)).astype(np.float32)
    filters = rng.normal(size=(3, 3, 3, 1)).astype(np.float32)
    params = dict(pool_size=(2, 2), batch_size=10, n_jobs=n_jobs)
    expected = engine_features(images, filters, **params)
    with parallel_backend("loky", n_jobs=2):
        got = engine_features(images, filters, **params)
    assert_array_equal(got, expected)
    assert_allclose(expected, reference_features(images, filters, pool_size=(2, 2)), atol=1e-5)


def test_an_error_in_one_batch_stops_the_batches_not_started(monkeypatch):
    """The error of a batch reaches the caller without the other threads first running every
    batch still queued (a large transform would otherwise hold the error back for minutes):
    ``Executor.map`` cancels the futures not started when its results stop."""
    import threading
    import time

    import sklearn_convfeat._engine as engine

    started, lock = [], threading.Lock()
    run = engine.Batches.run

    def failing(self, plan, kernel, capacity, images, by_region, batch):
        with lock:
            started.append(batch.start)
        if batch.start == 0:
            raise ValueError("a batch failed")
        time.sleep(0.002)  # each batch lasts, as a real one does, without the GIL
        return run(self, plan, kernel, capacity, images, by_region, batch)

    monkeypatch.setattr(engine.Batches, "run", failing)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(400, 9, 9, 1)).astype(np.float32)
    filters = rng.normal(size=(3, 3, 3, 1)).astype(np.float32)
    with pytest.raises(ValueError, match="a batch failed"):
        engine_features(images, filters, pool_size=(2, 2), batch_size=2, n_jobs=2)
    assert len(started) < 100  # of 200 batches


@pytest.mark.parametrize(
    "grids",
    [
        [(1, 1), (2, 2), (4, 4)],
        [(4, 4), (1, 1)],
        [(3, 3), (2, 2), (1, 3)],
        [(2, 3), (4, 6)],
        [(2, 3)],
    ],
)
@pytest.mark.parametrize("pooling", ["max", "avg", "rms", "ppv"])
def test_a_pyramid_is_its_grids_side_by_side(grids, pooling):
    """Grids pooled from finer ones equal grids pooled from the maps (to the bit for max)."""
    rng = np.random.default_rng(6)
    images = rng.standard_normal((3, 27, 28, 2)).astype(np.float32)
    filters = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    params = dict(padding="same", activation="identity", pooling=pooling)
    pyramid = engine_features(images, filters, pool_grid=grids, **params)
    alone = [engine_features(images, filters, pool_grid=grid, **params) for grid in grids]
    expected = np.concatenate([grid.reshape(3, -1, 4) for grid in alone], axis=1)
    if pooling == "max":
        assert_array_equal(pyramid, expected)
    else:  # sums may run in another order
        assert_allclose(pyramid, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "grids", [[(1, 1), (2, 2), (3, 3)], [(4, 4), (1, 1)], [(2, 3), (1, 2), (5, 5)], [(2, 3)]]
)
@pytest.mark.parametrize(
    "activation, pooling",
    [("relu", "max"), ("two_sided", "max"), ("abs", "avg"), ("tanh", "rms"), ("relu", "ppv")],
)
def test_balanced_levels_match_the_reference(grids, activation, pooling):
    """Each level of the pyramid scaled by sqrt(N / (L * n)), after the bias, the activation
    and the pooling, whichever order the engine runs them in; one grid is left as it is."""
    rng = np.random.default_rng(7)
    images = rng.standard_normal((3, 15, 17, 2)).astype(np.float32)
    filters = rng.standard_normal((5, 3, 3, 2)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    params = dict(
        padding="same", activation=activation, pooling=pooling, bias=bias, pool_grid=grids
    )
    got = engine_features(images, filters, balance_levels=True, threshold=0.1, **params)
    expected = reference_features(images, filters, balance_levels=True, threshold=0.1, **params)
    assert_allclose(got, expected.reshape(got.shape), rtol=1e-4, atol=1e-4)
    plain = engine_features(images, filters, threshold=0.1, **params)
    if len(grids) == 1:
        assert_array_equal(got, plain)
    else:
        assert not np.allclose(got, plain)


# (image shape, filter shape, per-filter dilations, stride, padding, pool_size, pool_grid)
DILATED_CASES = [
    ((16, 16, 1), (6, 3, 3, 1), (1, 1, 2, 2, 3, 3), 1, "same", (1, 1), [(1, 1), (2, 2)]),
    ((19, 17, 2), (5, 4, 4, 2), (1, 1, 1, 3, 3), 1, "valid", (2, 2), None),
    ((21, 20, 3), (4, 4, 3, 3), (2, 2, 5, 5), 2, "same", (1, 1), (3, 2)),
    ((12, 14, 1), (3, 2, 2, 1), (1, 2, 4), 1, "same", (3, 3), None),
    # 1x1 filters: dilation moves no tap, but with antialias it smooths what they read.
    ((10, 12, 1), (4, 1, 1, 1), (1, 1, 2, 3), 1, "valid", (2, 2), None),
]


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("tiling", TILINGS)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("activation, pooling", ACTIVATION_POOLINGS)
@pytest.mark.parametrize(
    "image_shape, filter_shape, dilations, stride, padding, pool_size, pool_grid", DILATED_CASES
)
def test_dilated_filters_match_the_reference(
    antialias,
    tiling,
    encoding,
    activation,
    pooling,
    image_shape,
    filter_shape,
    dilations,
    stride,
    padding,
    pool_size,
    pool_grid,
):
    """Filters of several dilations in one bank: each filter's taps ``dilation`` apart, all
    centred on the positions of the most dilated, the patch normalisation over the taps with
    one variance per dilation, and (``antialias``) the image each reads smoothed by its
    dilation's Gaussian; against zero-stuffed filters of the largest footprint on the whole
    smoothed image (the engine smooths a band's rows and those around it)."""
    images, filters = _data(image_shape, filter_shape)
    params = _encoded(encoding, filter_shape[0], stride, padding, activation, pooling)
    params.update(pool_size=pool_size, pool_grid=pool_grid)
    reference_eps = None
    if "patch_norm_eps" in params:
        # One variance per dilation, as fit learns them.
        values = np.unique(dilations)
        params["patch_norm_eps"] = tuple(0.1 * (1 + i) for i in range(len(values)))
        reference_eps = [params["patch_norm_eps"][list(values).index(d)] for d in dilations]
    features = engine_features(
        images,
        filters,
        tile_budget=TILINGS[tiling],
        dilations=dilations,
        antialias=antialias,
        **params,
    )
    params["patch_norm_eps"] = reference_eps
    expected = reference_features(
        images, filters, dilations=dilations, antialias=antialias, **params
    )
    assert features.shape == expected.shape
    assert_allclose(features, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (3000, 4000, 1)])
def test_the_smoothing_leaves_the_tiling_alone(image_shape):
    """antialias adds buffers that only the loading of a band works in: the tiles (chunk,
    bands, blocks) are those without it, fitted to the same cache budget; only the memory
    counted grows."""
    plain, smoothed = (default_plan(image_shape, antialias=value) for value in (False, True))
    assert smoothed.smoothing and not plain.smoothing
    assert (smoothed.chunk, smoothed.bands, smoothed.blocks) == (
        plain.chunk,
        plain.bands,
        plain.blocks,
    )
    assert smoothed.bytes_per_image > plain.bytes_per_image


def test_dilated_filters_take_the_gemm_path():
    images, filters = _data((12, 12, 1), (2, 3, 3, 1))
    with pytest.raises(ValueError, match="dilated filters run on the GEMM path"):
        engine_features(images, filters, method="fft", dilations=(1, 2))
    # 1x1 filters at dilation 2 read the image smoothed with antialias: the same path.
    images, filters = _data((12, 12, 1), (2, 1, 1, 1))
    with pytest.raises(ValueError, match="dilated filters run on the GEMM path"):
        engine_features(images, filters, method="fft", dilations=(1, 2), antialias=True)
    engine_features(images, filters, method="fft", dilations=(1, 2))  # no smoothing: any path
