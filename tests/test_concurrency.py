"""One fitted estimator used from several threads at once: same results as sequential calls, and
transform changes no state (neither the estimator's nor the process's BLAS settings)."""

import copy
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from settings import SIMPLE
from threadpoolctl import threadpool_info

from sklearn_convfeat import ConvFeatureTransformer

N_THREADS = 6

PARAMS = {
    **SIMPLE,
    "n_filters": 8,
    "padding": "same",
    "activation": "tanh",
    "pooling": "avg",
    "patch_norm": True,
    "batch_size": 4,
}


def snapshot(estimator):
    return copy.deepcopy(estimator.__dict__)


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
            assert after[key].dtype == value.dtype
        else:
            assert after[key] == value, key


def run_at_once(functions):
    """Run the functions on threads released together by a barrier; return their results."""
    barrier = threading.Barrier(len(functions))

    def call(function):
        barrier.wait()
        return function()

    with ThreadPoolExecutor(len(functions)) as pool:
        return list(pool.map(call, functions))


@pytest.fixture(scope="module")
def images():
    images = np.random.default_rng(0).random((60, 12, 12, 2)).astype(np.float32)
    images.setflags(write=False)
    return images


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_threads_sharing_one_estimator_match_sequential_calls(images, n_jobs):
    conv = ConvFeatureTransformer(**{**PARAMS, "n_jobs": n_jobs}).fit(images)
    # Any write to the filters during transform would raise.
    conv.filters_.setflags(write=False)
    chunks = [images[i::N_THREADS] for i in range(N_THREADS)]
    sequential = [conv.transform(chunk) for chunk in chunks] + [conv.transform(images)]
    before = snapshot(conv)
    for _ in range(3):
        concurrent = run_at_once(
            [lambda c=chunk: conv.transform(c) for chunk in chunks]
            + [lambda: conv.transform(images)]
        )
        for got, expected in zip(concurrent, sequential, strict=True):
            np.testing.assert_array_equal(got, expected)
    assert_same_state(before, snapshot(conv))


def test_threads_with_different_estimators_match_sequential_calls(images):
    estimators = [
        ConvFeatureTransformer(
            **{**PARAMS, "n_filters": 2 + k, "random_state": k, "n_jobs": k % 2 + 1}
        )
        for k in range(N_THREADS)
    ]
    for conv in estimators:
        conv.fit(images)
    sequential = [conv.transform(images) for conv in estimators]
    concurrent = run_at_once([lambda c=conv: c.transform(images) for conv in estimators])
    for got, expected in zip(concurrent, sequential, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_transform_changes_no_state(images):
    conv = ConvFeatureTransformer(**{**PARAMS, "n_jobs": 2}).fit(images)
    before = snapshot(conv)
    params = conv.get_params()
    conv.transform(images)
    conv.fit_transform(images)
    assert_same_state(before, snapshot(conv))
    assert conv.get_params() == params


def test_concurrent_transforms_restore_the_blas_thread_limits(images):
    conv = ConvFeatureTransformer(**{**PARAMS, "n_jobs": 2}).fit(images)
    before = [(lib["prefix"], lib["num_threads"]) for lib in threadpool_info()]
    run_at_once([lambda: conv.transform(images)] * N_THREADS)
    assert [(lib["prefix"], lib["num_threads"]) for lib in threadpool_info()] == before


def resident_bytes():
    """This process's resident memory: ``/proc/self/statm`` (Linux), else the peak that
    ``getrusage`` reports (which can only grow, so flatness is still tested)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


SOAK_ROUNDS, WARM_UP = 25, 5
SOAK_MARGIN = 8 * 2**20


def test_soak_four_threads_keep_memory_flat_and_results_equal():
    """One fitted estimator (the defaults) transforming a batch on each of 4 threads, round
    after round: every result equals the sequential call's, and the process's resident memory
    after the warm-up rounds never grows by more than 8 MiB (measured: 0.1 MiB; keeping a
    copy of each call's 0.33 MiB of features, a leak put in on purpose, grew it by 17 MiB)."""
    batches = np.random.default_rng(0).random((4, 32, 16, 16)).astype(np.float32)
    conv = ConvFeatureTransformer(random_state=0).fit(batches[0])
    expected = [conv.transform(batch) for batch in batches]

    def call(i):
        return np.array_equal(conv.transform(batches[i]), expected[i])

    resident = []
    with ThreadPoolExecutor(4) as pool:
        for _ in range(SOAK_ROUNDS):
            assert all(pool.map(call, range(4)))
            resident.append(resident_bytes())
    growth = max(resident[WARM_UP:]) - resident[WARM_UP - 1]
    assert growth <= SOAK_MARGIN, [round(r / 2**20, 1) for r in resident]
