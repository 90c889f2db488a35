"""Memory and float32-range limits, checked before anything large is allocated."""

import math
import os
import time

import numpy as np
import pytest
from settings import SIMPLE

from sklearn_convfeat import ConvFeatureTransformer, MemoryLimitError, _limits, _transformer

PARAMS = SIMPLE


def make(**params):
    return ConvFeatureTransformer(**{**PARAMS, **params})


def test_memory_limit_error_is_a_memory_error():
    assert issubclass(MemoryLimitError, MemoryError)


def test_available_memory_reads_mem_available(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  1000 kB\nMemFree:  10 kB\nMemAvailable:   12345 kB\n")
    assert _limits.available_memory(meminfo) == 12345 * 1024


def test_available_memory_falls_back_to_physical_memory_then_to_none(tmp_path, monkeypatch):
    missing = tmp_path / "missing"
    if hasattr(os, "sysconf"):
        monkeypatch.setattr(os, "sysconf", {"SC_PHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}.get)
        assert _limits.available_memory(missing) == 1000 * 4096

    def unknown(name):
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", unknown, raising=False)
    assert _limits.available_memory(missing) is None


def test_available_memory_of_this_machine_is_positive():
    available = _limits.available_memory()
    assert available is None or available > 0


def test_check_memory_raises_with_size_and_advice():
    with pytest.raises(MemoryLimitError, match=r"^Thing would need 3\.0 GiB, more than the "):
        _limits.check_memory(3 * 2**30, "Thing", "Use less.", available=2**30)
    _limits.check_memory(2**30, "Thing", "Use less.", available=2**30)


def test_check_memory_checks_nothing_when_memory_is_unknown(monkeypatch):
    monkeypatch.setattr(_limits, "available_memory", lambda: None)
    _limits.check_memory(2**80, "Thing", "Use less.")


@pytest.mark.parametrize(
    "n_bytes, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 2**40, "5.0 TiB")]
)
def test_format_bytes(n_bytes, text):
    assert _limits.format_bytes(n_bytes) == text


def test_transform_bytes_counts_output_and_batch_temporaries():
    # 100 images 32x32x3, 16 filters 5x5, valid: 28x28 maps; output 14x14x16 per image.
    output = 4 * 100 * 14 * 14 * 16
    assert (
        _limits.transform_bytes(100, (32, 32, 3), (16, 5, 5, 3), (14, 14, 16), 1, "valid", None)
        == output
    )
    patches_and_maps = 4 * 28 * 28 * (5 * 5 * 3 + 16)
    assert (
        _limits.transform_bytes(100, (32, 32, 3), (16, 5, 5, 3), (14, 14, 16), 1, "valid", 10)
        == output + 10 * patches_and_maps
    )
    # A batch larger than the data holds only the data.
    assert (
        _limits.transform_bytes(3, (32, 32, 3), (16, 5, 5, 3), (14, 14, 16), 1, "valid", 10**9)
        == 4 * 3 * 14 * 14 * 16 + 3 * patches_and_maps
    )


def test_transform_bytes_of_huge_inputs_is_exact_without_allocating():
    n_images, side, n_filters = 10**6, 10**4, 10**4
    n_bytes = _limits.transform_bytes(
        n_images, (side, side, 3), (n_filters, 1, 1, 3), (side, side, n_filters), 1, "same", None
    )
    assert n_bytes == 4 * n_images * side * side * n_filters


def test_transform_refuses_before_allocating_when_memory_is_short(monkeypatch):
    X = np.random.default_rng(0).random((50, 64))
    conv = make(n_filters=8).fit(X)
    monkeypatch.setattr(_limits, "available_memory", lambda: 10_000)

    def engine_must_not_run(*args, **kwargs):
        raise AssertionError("the engine ran before the memory check")

    monkeypatch.setattr(_transformer, "transform_images", engine_must_not_run)
    # 50 images x 3 x 3 x 8 float32 = 14400 bytes > 10000.
    message = (
        r"^The features of 50 images \(50 x 3 x 3 x 8 float32, 288 B per image\) would need "
        r"14\.1 KiB, more than the 9\.8 KiB of memory available\. Use fewer filters "
        r"\(n_filters\), a larger pool_size, a small pool_grid or a larger stride, or "
        r"transform X in chunks"
    )
    with pytest.raises(MemoryLimitError, match=message):
        conv.transform(X)
    monkeypatch.undo()
    monkeypatch.setattr(_limits, "available_memory", lambda: 10_000)
    assert conv.transform(X[:30]).shape == (30, 72)


def test_explicit_batch_size_counts_its_temporaries(monkeypatch):
    X = np.random.default_rng(0).random((50, 64))
    conv = make(n_filters=8, batch_size=50).fit(X)
    monkeypatch.setattr(_limits, "available_memory", lambda: 20_000)
    with pytest.raises(MemoryLimitError, match="with batch temporaries.*smaller batch_size"):
        conv.transform(X)
    conv.set_params(batch_size=1).fit(X).transform(X)


def test_huge_images_with_many_filters_fail_fast_before_allocating():
    """One 4000x4000 image, 100000 filters, no pooling: 6.4 TB of features."""
    X = np.broadcast_to(np.float32(0.5), (1, 4000 * 4000))
    conv = make(n_filters=100_000, image_shape=(4000, 4000), pool_size=1, padding="same")
    conv.fit(X)
    start = time.perf_counter()
    with pytest.raises(MemoryLimitError, match=r"\(1 x 4000 x 4000 x 100000 float32.*TiB"):
        conv.transform(X)
    # Generous: only validation of the input ran, not the convolution (which takes hours).
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool", [{"pool_size": 3}, {"pool_grid": 2}, {"pool_size": 1}], ids=str)
def test_feature_gain_bounds_the_features(pooling, padding, pool):
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (20, 12, 12, 2))
    # Filters far from unit norm and all-positive worst cases.
    filters = np.concatenate([rng.standard_normal((3, 4, 4, 2)) * 7, np.ones((1, 4, 4, 2))])
    conv = make(
        n_filters=4, filter_init=filters, padding=padding, pooling=pooling, activation="abs", **pool
    ).fit(X)
    gain = _limits.feature_gain(
        conv.image_shape_,
        conv.filters_,
        1,
        padding,
        pooling,
        (pool.get("pool_size", 1),) * 2,
        None if "pool_grid" not in pool else (2, 2),
    )
    assert gain >= 1
    ones = np.ones_like(X)
    for images in (X, ones):
        features = conv.transform(images)
        assert np.abs(features).max() <= gain * np.abs(images).max() * (1 + 1e-5)
    if pooling == "max":
        # Cauchy-Schwarz is tight: the all-ones filter on all-ones images gives sqrt(n) * ||f||.
        ones_filter_features = conv.transform(ones).reshape(len(X), -1, 4)[..., 3]
        assert ones_filter_features.max() == pytest.approx(math.prod(filters.shape[1:]))


def test_check_feature_range():
    _limits.check_feature_range(1e30, 1e6)
    with pytest.raises(ValueError, match=r"up to 1e\+33 in magnitude.*1e\+06 times larger"):
        _limits.check_feature_range(1e33, 1e6)
