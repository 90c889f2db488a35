"""The engine's fast paths against the independent reference, and its batching invariants."""

import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from reference import reference_features

from sklearn_convfeat import _engine
from sklearn_convfeat._engine import (
    CHUNK_BYTES,
    auto_batch_size,
    choose_method,
    chunk_bytes_per_image,
    chunk_size,
    pool,
    thread_count,
    transform_images,
)
from sklearn_convfeat._shapes import pool_regions

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
# (whose bias and activation cannot move after the pooling).
ACTIVATION_POOLINGS = [
    ("relu", "max"),
    ("abs", "max"),
    ("two_sided", "max"),
    ("tanh", "avg"),
    ("identity", "avg"),
    ("relu", "rms"),
    ("two_sided", "ppv"),
    ("abs", "rms"),
]

# A bias, a patch normalisation and a threshold, or none of them.
ENCODINGS = {"plain": {}, "bias-norm-threshold": {"bias": True, "patch_norm_eps": 0.3, "threshold": 0.1}}


def _data(image_shape, filter_shape, n_images=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, *image_shape)).astype(np.float32)
    filters = rng.standard_normal(filter_shape).astype(np.float32)
    return images, filters


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("activation, pooling", ACTIVATION_POOLINGS)
@pytest.mark.parametrize("image_shape, filter_shape, stride, padding, pool_size, pool_grid", CASES)
def test_every_path_matches_the_correlate2d_reference(
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
    params = dict(
        stride=stride,
        padding=padding,
        activation=activation,
        pooling=pooling,
        pool_size=pool_size,
        pool_grid=pool_grid,
        **ENCODINGS[encoding],
    )
    if params.get("bias"):
        params["bias"] = np.random.default_rng(1).standard_normal(filter_shape[0])
        params["bias"] = params["bias"].astype(np.float32)
    features = transform_images(images, filters, method=method, **params)
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
    maps = transform_images(images, filters, pool_size=(1, 1), **params)
    rows, cols = pool_size
    n_rows, n_cols = maps.shape[1] // rows, maps.shape[2] // cols
    windows = maps[:, : n_rows * rows, : n_cols * cols].reshape(4, n_rows, rows, n_cols, cols, 5)
    expected = windows.max(axis=(2, 4)) if pooling == "max" else windows.mean(axis=(2, 4))
    got = transform_images(images, filters, pool_size=pool_size, **params)
    assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["gemm", "fft"])
@pytest.mark.parametrize(
    "image_shape, filter_shape, stride, padding, pool_size, pool_grid",
    [CASES[1], CASES[2], CASES[3]],
)
def test_results_are_identical_for_any_batch_size_and_n_jobs(
    monkeypatch, method, image_shape, filter_shape, stride, padding, pool_size, pool_grid
):
    # Small chunks, so that batches hold several chunks and end on partial ones.
    per_image = chunk_bytes_per_image(image_shape, filter_shape, stride, padding, method)
    monkeypatch.setattr(_engine, "CHUNK_BYTES", 3 * per_image)
    images, filters = _data(image_shape, filter_shape, n_images=23, seed=1)
    params = dict(
        stride=stride,
        padding=padding,
        activation="tanh",
        pooling="max",
        pool_size=pool_size,
        pool_grid=pool_grid,
        method=method,
    )
    baseline = transform_images(images, filters, batch_size=1, n_jobs=1, **params)
    for batch_size, n_jobs in [(None, 1), (2, 2), (5, 1), (7, 2), (23, 1), (100, 2), (None, 2)]:
        features = transform_images(images, filters, batch_size=batch_size, n_jobs=n_jobs, **params)
        assert np.array_equal(features, baseline), (batch_size, n_jobs)
    # A sample's features do not depend on the other samples either.
    alone = transform_images(images[10:11], filters, **params)
    assert np.array_equal(alone, baseline[10:11])


def test_input_images_are_not_modified():
    images, filters = _data((14, 14, 3), (4, 5, 5, 3))
    images.flags.writeable = False
    copy = images.copy()
    for method in ["gemm", "fft"]:
        transform_images(images, filters, padding="same", activation="abs", method=method)
    assert np.array_equal(images, copy)


def test_float64_and_non_contiguous_input_give_the_float32_result():
    images, filters = _data((10, 10, 2), (3, 3, 3, 2), n_images=6)
    expected = transform_images(images, filters, pool_size=(2, 2))
    wide = np.asfortranarray(images.astype(np.float64))
    assert np.array_equal(transform_images(wide, filters, pool_size=(2, 2)), expected)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pool_size, pool_grid", [((2, 3), None), (None, (3, 4)), (None, (2, 5))])
def test_pool_matches_plain_loops(mode, pool_size, pool_grid):
    rng = np.random.default_rng(2)
    maps = rng.standard_normal((3, 10, 11, 4)).astype(np.float32)
    rows, cols = pool_regions(maps.shape[1:3], pool_size, pool_grid)
    row_edges = list(rows[0]) + [rows[1]]
    col_edges = list(cols[0]) + [cols[1]]
    expected = np.empty((3, len(rows[0]), len(cols[0]), 4), dtype=np.float32)
    for i in range(len(rows[0])):
        for j in range(len(cols[0])):
            region = maps[:, row_edges[i] : row_edges[i + 1], col_edges[j] : col_edges[j + 1]]
            reduce = np.max if mode == "max" else np.mean
            expected[:, i, j] = reduce(region, axis=(1, 2))
    # Channels-last or any other layout gives the same pooled values.
    for layout in [maps, np.asfortranarray(maps)]:
        assert_allclose(pool(layout, rows, cols, mode), expected, rtol=1e-5, atol=1e-6)


def test_choose_method_picks_gemm_for_small_filters_and_fft_for_large_ones():
    assert choose_method((28, 28, 1), (64, 5, 5, 1), 1, "valid") == "gemm"
    assert choose_method((32, 32, 3), (128, 5, 5, 3), 1, "valid") == "gemm"
    assert choose_method((64, 64, 1), (64, 25, 25, 1), 1, "valid") == "fft"
    assert choose_method((128, 128, 1), (16, 31, 31, 1), 1, "same") == "fft"
    # A stride divides the GEMM's work, not the FFT's.
    assert choose_method((64, 64, 1), (64, 25, 25, 1), 4, "valid") == "gemm"


@pytest.mark.parametrize(
    "image_shape, filter_shape, padding",
    [((28, 28, 1), (64, 5, 5, 1), "valid"), ((32, 32, 3), (128, 5, 5, 3), "same")],
)
@pytest.mark.parametrize("method", ["gemm", "fft"])
def test_chunks_fit_the_cache_budget_and_batches_are_whole_chunks(
    image_shape, filter_shape, padding, method
):
    chunk = chunk_size(image_shape, filter_shape, 1, padding, method)
    per_image = chunk_bytes_per_image(image_shape, filter_shape, 1, padding, method)
    assert chunk == 1 or chunk * per_image <= CHUNK_BYTES
    for n_samples in [10, 1_000, 100_000, 10_000_000]:
        for n_threads in [1, 2]:
            batch = auto_batch_size(
                image_shape,
                filter_shape,
                1,
                padding,
                n_samples=n_samples,
                n_threads=n_threads,
                method=method,
            )
            assert batch % chunk == 0
            # The float32 copy of a batch's images stays within the budget, whatever n_samples.
            assert batch == chunk or 4 * np.prod(image_shape) * batch <= _engine.BATCH_BYTES


def test_peak_memory_beyond_the_output_does_not_grow_with_n_samples():
    filters = np.random.default_rng(3).standard_normal((32, 5, 5, 1)).astype(np.float32)
    image_shape = (28, 28, 1)
    bound = (
        2 * CHUNK_BYTES
        + 2 * chunk_bytes_per_image(image_shape, filters.shape, 1, "valid", "gemm")
        + 2**20
    )
    extra = []
    for n_samples in [500, 4_000]:
        images = np.random.default_rng(4).standard_normal((n_samples, *image_shape))
        images = images.astype(np.float32)
        out = np.empty((n_samples, 6, 6, 32), dtype=np.float32)
        tracemalloc.start()
        transform_images(images, filters, pool_size=(4, 4), method="gemm", out=out)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        extra.append(peak)
    assert max(extra) <= bound, (extra, bound)


# (image shape, filter shape, padding, input dtype, batch_size, n_jobs, method, encoding)
WORKING_CASES = [
    ((28, 28, 1), (32, 5, 5, 1), "valid", np.float32, None, 1, "gemm", {}),
    ((28, 28, 1), (32, 5, 5, 1), "valid", np.float64, None, 1, "gemm", {}),
    ((28, 28, 1), (32, 5, 5, 1), "same", np.float64, 7, 2, "gemm", {}),
    ((32, 32, 3), (16, 5, 5, 3), "same", np.uint8, None, 2, "gemm", {}),
    ((64, 64, 1), (8, 21, 21, 1), "valid", np.float32, None, 1, "fft", {}),
    ((64, 64, 3), (8, 21, 21, 3), "same", np.float64, 5, 2, "fft", {}),
    ((100, 100, 1), (64, 5, 5, 1), "same", np.float32, None, 1, "gemm", {}),
    (
        (28, 28, 1),
        (32, 5, 5, 1),
        "same",
        np.float32,
        None,
        1,
        "gemm",
        {"patch_norm_eps": 0.1, "pool_grid": [(1, 1), (2, 2)], "pool_size": (1, 1)},
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
    # More taps than filters: normalising the patches holds their squares.
    ((32, 32, 3), (8, 9, 9, 3), "same", np.float32, None, 1, "gemm", {"patch_norm_eps": 0.1}),
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
    params = dict(padding=padding, pool_size=(4, 4), batch_size=batch_size, n_jobs=n_jobs)
    params.update(method=method, **encoding)
    out = transform_images(images, filters, **params)
    tracemalloc.start()
    transform_images(images, filters, out=out, **params)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    estimate = _engine.working_bytes(
        image_shape,
        filter_shape,
        1,
        padding,
        n_samples=n_samples,
        batch_size=batch_size,
        n_threads=n_jobs,
        copies_input=dtype != np.float32,
        activation=encoding.get("activation", "relu"),
        pooling=encoding.get("pooling", "max"),
        patch_norm="patch_norm_eps" in encoding,
        method=method,
    )
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
    expected = transform_images(images, filters, **params)
    with parallel_backend("loky", n_jobs=2):
        got = transform_images(images, filters, **params)
    assert_array_equal(got, expected)
    assert_allclose(expected, reference_features(images, filters, pool_size=(2, 2)), atol=1e-5)


def test_thread_count():
    from joblib import cpu_count

    assert thread_count(None) == 1
    assert thread_count(3) == 3
    assert thread_count(-1) == cpu_count()
    assert thread_count(-cpu_count() - 5) == 1


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
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_a_pyramid_is_its_grids_side_by_side(grids, pooling):
    """Coarse grids pooled from finer ones (max pooling) equal grids pooled from the maps."""
    rng = np.random.default_rng(6)
    images = rng.standard_normal((3, 27, 28, 2)).astype(np.float32)
    filters = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    params = dict(padding="same", activation="relu", pooling=pooling, pool_size=(1, 1))
    pyramid = transform_images(images, filters, pool_grid=grids, **params)
    alone = [transform_images(images, filters, pool_grid=grid, **params) for grid in grids]
    expected = np.concatenate([grid.reshape(3, -1, 4) for grid in alone], axis=1)
    if pooling == "max":
        assert_array_equal(pyramid, expected)
    else:  # sums may run in another order (rows or columns first) for a single grid
        assert_allclose(pyramid, expected, rtol=1e-6, atol=1e-7)
