"""Dask arrays and Dask clusters: lazy transform, fit from metadata, grid search on a cluster."""

import importlib.util
import os
import pickle
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
from joblib import parallel_backend  # noqa: E402
from settings import make_conv  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from sklearn_convfeat._dask import sample_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKER_MEMORY = 500 * 2**20


def _fail(block):
    raise AssertionError("a block was computed")


def never_computed(shape, chunks, dtype=np.float32):
    """A dask array whose blocks raise if anything computes them."""
    return da.zeros(shape, chunks=chunks, dtype=dtype).map_blocks(_fail, dtype=dtype)


def worker_peak_rss():
    """The peak resident memory of this worker process, in bytes.

    Linux keeps ``ru_maxrss`` across ``exec``: a spawned worker reports the test process's
    peak at the time it was forked (over the limit after the CLI tests, say). ``VmHWM`` is
    the peak of the worker's own memory map."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Elsewhere, ru_maxrss (in KiB on Linux, bytes on macOS; an upper bound either way here).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit=WORKER_MEMORY,
        dashboard_address=":0",
        worker_dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture
def images():
    return np.random.default_rng(0).random((50, 9, 8, 2)).astype(np.float32)


@pytest.mark.parametrize("layout", ["flat", "grey", "channels"])
@pytest.mark.parametrize("flatten", [True, False])
def test_lazy_transform_equals_in_memory_transform_on_cluster(client, images, layout, flatten):
    X = {
        "flat": images.reshape(50, -1),
        "grey": images[..., 0],
        "channels": images,
    }[layout]
    conv = make_conv(flatten=flatten).fit(X)
    expected = conv.transform(X)
    # Chunked along every axis: the transformer must rechunk the image axes to one chunk.
    X_dask = da.from_array(X, chunks=(15,) + tuple(max(1, s // 2) for s in X.shape[1:]))

    features = conv.transform(X_dask)

    assert isinstance(features, da.Array)
    assert features.chunks[0] == (15, 15, 15, 5)
    assert features.chunks[1:] == tuple((size,) for size in expected.shape[1:])
    assert features.dtype == np.float32
    assert type(features._meta) is np.ndarray and features._meta.ndim == expected.ndim
    assert features._meta.dtype == np.float32
    computed = features.compute()
    assert computed.dtype == np.float32
    np.testing.assert_array_equal(computed, expected)


def test_lazy_transform_with_unknown_sample_chunks(images):
    X = images.reshape(50, -1)
    keep = X[:, 0] > 0.5
    conv = make_conv().fit(X)
    X_dask = da.from_array(X, chunks=(20, -1))
    selected = X_dask[X_dask[:, 0] > 0.5]
    assert np.isnan(selected.shape[0])

    features = conv.transform(selected)

    np.testing.assert_array_equal(
        features.compute(scheduler="synchronous"), conv.transform(X[keep])
    )


def test_fit_on_unknown_sample_chunks_needs_them_only_for_a_sample():
    """A random bank without patch_norm or centring reads only the shape; with centring, the
    sample it draws needs the chunk sizes, and the error says how to get them."""
    X = da.from_array(np.random.default_rng(0).random((50, 64)), chunks=(20, -1))
    selected = X[X[:, 0] > 0.5]
    assert make_conv().fit(selected).n_features_in_ == 64
    with pytest.raises(ValueError, match=r"call X\.compute_chunk_sizes\(\) first"):
        make_conv(center=True).fit(selected)


def test_transform_computes_nothing_until_asked():
    conv = make_conv().fit(np.zeros((2, 10, 10), dtype=np.float32))
    features = conv.transform(never_computed((100, 10, 10), chunks=(25, 10, 10)))
    assert features.shape == (100, 4 * 4 * 4)


def test_lazy_transform_is_a_snapshot_of_the_fitted_estimator(images):
    conv = make_conv().fit(images)
    features = conv.transform(da.from_array(images, chunks=10))
    expected = conv.transform(images)
    conv.set_params(random_state=1).fit(images)
    np.testing.assert_array_equal(features.compute(scheduler="synchronous"), expected)


def test_transform_rejects_other_images_before_computing():
    conv = make_conv().fit(np.zeros((2, 10, 10), dtype=np.float32))
    with pytest.raises(ValueError, match="fitted on images of shape"):
        conv.transform(never_computed((100, 10, 10, 2), chunks=(25, 10, 10, 2)))
    with pytest.raises(ValueError, match="features"):
        conv.transform(never_computed((100, 12, 10), chunks=(25, 12, 10)))


@pytest.mark.parametrize("filter_init", ["gaussian", "uniform", "gabor"])
def test_fit_on_dask_reads_only_the_shape_for_random_banks(images, filter_init):
    conv = make_conv(filter_init=filter_init, n_filters=5).fit(images)
    conv_dask = make_conv(filter_init=filter_init, n_filters=5).fit(
        never_computed(images.shape, chunks=(10, 9, 8, 2))
    )
    np.testing.assert_array_equal(conv_dask.filters_, conv.filters_)
    assert conv_dask.image_shape_ == conv.image_shape_ == (9, 8, 2)
    assert conv_dask.output_shape_ == conv.output_shape_
    assert conv_dask.n_features_in_ == conv.n_features_in_ == 9


@pytest.mark.parametrize(
    "X, message",
    [
        (da.zeros((4, 3, 3, 1, 1), chunks=2), "5-D dask array"),
        (da.zeros((4, 9), chunks=2, dtype=complex), "real numbers"),
        (da.zeros((4, 9), chunks=2, dtype=object), "real numbers"),
        (da.zeros((0, 9), chunks=2), "empty axis"),
        (da.zeros((4, 3, 3, 0), chunks=2), "empty axis"),
    ],
)
def test_fit_rejects_bad_dask_arrays_from_metadata(X, message):
    with pytest.raises(ValueError, match=message):
        make_conv().fit(X)


def test_sample_rows_is_bounded_distinct_and_reads_few_blocks():
    n_rows, width = 1000, 6
    # Each row holds its own index, so a sampled row says where it came from.
    X_numpy = np.repeat(np.arange(n_rows, dtype=np.float64)[:, None], width, axis=1)
    X = da.from_array(X_numpy, chunks=(50, 3))
    computed_blocks = []

    def record(block, block_info=None):
        computed_blocks.append(block_info[0]["chunk-location"][0])
        return block

    watched = X.map_blocks(record, dtype=X.dtype)

    with dask.config.set(scheduler="synchronous"):
        sample = sample_rows(watched, 0, max_rows=120, min_blocks=4)

    assert sample.shape == (120, width)
    index = sample[:, 0].astype(int)
    np.testing.assert_array_equal(sample, X_numpy[index])
    assert np.all(np.diff(index) > 0)
    blocks_used = set(index // 50)
    assert len(blocks_used) >= 4
    # 120 rows need 3 blocks of 50, but rows come from at least 4; nothing else is computed.
    assert set(computed_blocks) == blocks_used and len(blocks_used) == 4


def test_sample_rows_bounds_bytes_and_follows_random_state():
    X = da.random.default_rng(0).random((400, 10, 10), chunks=(40, 10, 10))
    row_bytes = 10 * 10 * 8
    sample = sample_rows(X, 0, max_rows=300, max_bytes=25 * row_bytes)
    assert sample.shape == (25, 10, 10)
    np.testing.assert_array_equal(sample_rows(X, 0, max_rows=30), sample_rows(X, 0, max_rows=30))
    assert not np.array_equal(sample_rows(X, 0, max_rows=30), sample_rows(X, 1, max_rows=30))
    # Small arrays are sampled whole.
    assert sample_rows(X[:7], 0).shape == (7, 10, 10)


def test_sample_rows_needs_known_chunk_sizes():
    X = da.ones((10, 4), chunks=5)
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        sample_rows(X[X[:, 0] > 0], 0)


def test_numpy_use_does_not_import_dask():
    code = (
        "import sys, numpy as np\n"
        "from sklearn_convfeat import ConvFeatureTransformer\n"
        "X = np.random.default_rng(0).random((5, 8, 8))\n"
        "ConvFeatureTransformer(n_filters=2, filter_size=3, pool_size=2).fit_transform(X)\n"
        "print(sorted(m for m in sys.modules if m == 'dask' or m.startswith('dask.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_fitted_estimator_pickles_to_little_more_than_its_filters():
    conv = make_conv(n_filters=64, filter_size=7).fit(np.zeros((3, 28, 28), dtype=np.float32))
    size = len(pickle.dumps(conv))
    assert conv.filters_.nbytes <= size < conv.filters_.nbytes + 2048


def test_grid_search_on_dask_backend_matches_loky(client):
    X, y = load_digits(return_X_y=True)
    X, y = X[:500], y[:500]
    pipeline = Pipeline(
        [
            ("conv", make_conv(n_filters=4, filter_size=3)),
            ("clf", LogisticRegression(max_iter=300)),
        ]
    )
    grid = {"conv__n_filters": [2, 8], "conv__pool_size": [2, 4]}

    def search():
        return GridSearchCV(pipeline, grid, cv=3, n_jobs=-1).fit(X, y)

    with parallel_backend("loky"):
        loky = search()
    with distributed.get_task_stream(client) as tasks, parallel_backend("dask"):
        on_dask = search()

    # The fits ran on the cluster (joblib may batch several fits into one task).
    assert len(tasks.data) >= 1
    assert on_dask.best_params_ == loky.best_params_
    np.testing.assert_allclose(
        on_dask.cv_results_["mean_test_score"], loky.cv_results_["mean_test_score"]
    )


def test_out_of_core_example_learns_block_by_block(client):
    spec = importlib.util.spec_from_file_location(
        "plot_dask_out_of_core", ROOT / "examples" / "plot_dask_out_of_core.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    train_images, train_labels = example.lazy_dataset(range(3))
    test_images, test_labels = example.lazy_dataset(range(3, 4))
    conv = make_conv(n_filters=8, filter_size=7, filter_init="gabor", activation="abs", pool_grid=2)
    conv.fit(train_images)

    model = example.train_block_by_block(
        client, conv, train_images, train_labels, np.arange(4), n_epochs=1
    )

    assert model.n_features_in_ == 2 * 2 * 8
    # Four balanced classes: chance is 0.25.
    assert example.score_block_by_block(client, conv, model, test_images, test_labels) > 0.6


def test_data_several_times_a_worker_memory_streams_through(client):
    # Last in the module: it leaves the workers near their memory limit.
    pids = client.run(os.getpid)
    n_images, side, chunk = 80_000, 96, 500
    # Generated on the workers, block by block: these 2.75 GiB never exist in this process.
    X = da.random.default_rng(0).random(
        (n_images, side, side), chunks=(chunk, side, side), dtype=np.float32
    )
    assert X.nbytes > 5 * WORKER_MEMORY
    conv = make_conv(n_filters=2, filter_size=4, stride=4, pool_size=4).fit(X)

    total = conv.transform(X).sum(axis=0).compute()

    assert total.shape == (6 * 6 * 2,)
    assert np.all(np.isfinite(total)) and np.all(total > 0)
    # Max-pooled ReLU features of uniform [0, 1) noise through zero-mean unit-norm filters:
    # every feature is non-negative, and none is above the filter's L1 norm (<= 4).
    assert np.all(total <= 4 * n_images)
    assert client.run(os.getpid) == pids, "a worker was restarted"
    peaks = client.run(worker_peak_rss)
    assert all(peak < WORKER_MEMORY for peak in peaks.values()), peaks


def test_learnt_bank_fits_on_a_bounded_sample_of_a_dask_array(client):
    X = da.random.RandomState(0).random_sample((2_000, 8, 8), chunks=(250, 8, 8))
    conv = make_conv(filter_init="kmeans", patch_norm=True, max_patches=500).fit(X)
    assert conv.filters_.shape == (4, 3, 3, 1)
    assert conv.patch_norm_eps_ is not None
    again = make_conv(filter_init="kmeans", patch_norm=True, max_patches=500).fit(X)
    np.testing.assert_array_equal(conv.filters_, again.filters_)
    block = X[:250].compute()
    np.testing.assert_allclose(conv.transform(X[:250]).compute(), conv.transform(block))
