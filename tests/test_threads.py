"""The thread count of n_jobs, and results that do not depend on the calling thread: BLAS runs
on one thread inside the engine whichever Python thread calls it, and the engine leaves the
control of the BLAS threads free for others."""

import threading

import numpy as np
import pytest
from joblib import cpu_count
from threadpoolctl import threadpool_info, threadpool_limits

from sklearn_convfeat import ConvFeatureTransformer, _engine
from sklearn_convfeat._threads import thread_count


def test_thread_count():
    assert thread_count(None) == 1
    assert thread_count(3) == 3
    assert thread_count(-1) == cpu_count()
    assert thread_count(-cpu_count() - 5) == 1


def on_thread(function):
    """Run ``function`` on a plain new thread and return its result."""
    result = []
    worker = threading.Thread(target=lambda: result.append(function()))
    worker.start()
    worker.join()
    return result[0]


def blas_threads():
    return {
        info["filepath"]: info["num_threads"]
        for info in threadpool_info()
        if info["user_api"] == "blas"
    }


@pytest.fixture
def seen_blas_threads(monkeypatch):
    """The BLAS thread counts seen by every batch the engine runs."""
    seen = []
    run_batch = _engine._run_batch

    def recording(*args):
        seen.append(blas_threads())
        return run_batch(*args)

    monkeypatch.setattr(_engine, "_run_batch", recording)
    return seen


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"filter_init": "gaussian", "patch_norm": False},
        {"filter_init": "gaussian", "filter_size": 21, "pool_size": 4},  # the FFT path
        {"filter_init": "gaussian", "filter_size": 5, "pool_size": 4, "n_jobs": 2},
    ],
    ids=["defaults", "gaussian", "fft", "n_jobs"],
)
def test_a_transform_from_another_thread_equals_the_main_thread_s(seen_blas_threads, params):
    """Main thread, then plain threads, then the main thread again: the same bits, and BLAS
    on one thread inside every batch (it stayed at the machine's count for threads started
    after a transform of the main thread)."""
    X = np.random.default_rng(0).random((40, 28, 28)).astype(np.float32)
    conv = ConvFeatureTransformer(random_state=0, **params).fit(X)
    expected = conv.transform(X)
    for _ in range(2):
        np.testing.assert_array_equal(on_thread(lambda: conv.transform(X)), expected)
        np.testing.assert_array_equal(conv.transform(X), expected)
    assert seen_blas_threads
    for counts in seen_blas_threads:
        assert set(counts.values()) == {1}, counts


def test_the_engine_leaves_the_blas_limits_to_other_threads():
    """After a transform in this thread, another thread can still limit BLAS (threadpoolctl
    lets one thread at a time do it: the engine must not keep that control)."""
    X = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    ConvFeatureTransformer(n_filters=4).fit_transform(X)
    before = blas_threads()

    def limited():
        with threadpool_limits(limits=1, user_api="blas"):
            return blas_threads()

    assert set(on_thread(limited).values()) == {1}
    assert blas_threads() == before


def test_a_warning_says_when_another_thread_holds_the_blas_limits():
    """Inside this thread's own threadpool_limits, the engine cannot change the BLAS threads:
    it says so rather than silently running them on several."""
    X = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    conv = ConvFeatureTransformer(n_filters=4).fit(X)
    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.warns(RuntimeWarning, match="BLAS could not be limited to one thread"):
            conv.transform(X)
