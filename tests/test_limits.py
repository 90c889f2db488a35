"""Memory and float32-range limits, checked before anything large is allocated."""

import math
import os
import time

import numpy as np
import pytest
from settings import SIMPLE, simple

from sklearn_convfeat import ConvFeatureTransformer, MemoryLimitError, _limits, _transformer
from sklearn_convfeat._plan import make_plan
from sklearn_convfeat._variants import POOLINGS

PARAMS = SIMPLE


def make(**params):
    return ConvFeatureTransformer(**simple(**params))


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


def test_transform_bytes_is_the_output_plus_the_working_memory():
    # 100 images with 14x14x16 float32 features each.
    assert _limits.transform_bytes(100, (14, 14, 16)) == 4 * 100 * 14 * 14 * 16
    assert _limits.transform_bytes(100, (14, 14, 16), 12345) == 4 * 100 * 14 * 14 * 16 + 12345


def test_transform_bytes_of_huge_inputs_is_exact_without_allocating():
    n_images, side, n_filters = 10**6, 10**4, 10**4
    n_bytes = _limits.transform_bytes(n_images, (side, side, n_filters))
    assert n_bytes == 4 * n_images * side * side * n_filters


def _working_bytes(conv, X):
    """The engine's working memory for ``conv.transform(X)`` (checked against tracemalloc's
    peak in test_engine.py)."""
    return make_plan(conv.spec_, conv.image_shape_).working_bytes(
        len(X),
        batch_size=None if conv.batch_size == "auto" else conv.batch_size,
    )


def test_transform_refuses_before_allocating_when_memory_is_short(monkeypatch):
    X = np.random.default_rng(0).random((50, 64))
    conv = make(n_filters=8).fit(X)
    # 30 images fit exactly; 50 images' 50 x 3 x 3 x 8 float32 features need 5760 B more.
    available = 30 * 288 + _working_bytes(conv, X[:30])
    assert 50 * 288 + _working_bytes(conv, X) > available
    monkeypatch.setattr(_limits, "available_memory", lambda: available)

    def engine_must_not_run(*args, **kwargs):
        raise AssertionError("the engine ran before the memory check")

    monkeypatch.setattr(_transformer, "pooled_features_of_groups", engine_must_not_run)
    message = (
        r"^The features of 50 images \(50 x 3 x 3 x 8 float32, 288 B per image\) and "
        r"[0-9.]+ [KM]iB of working memory would need [0-9.]+ [KM]iB, more than the "
        r"[0-9.]+ [KM]iB of memory available\. Use fewer filters \(n_filters\), a larger "
        r"pool_size, a small pool_grid or a larger stride, or transform X in chunks "
        r"\(sklearn\.utils\.gen_batches\)\.$"
    )
    with pytest.raises(MemoryLimitError, match=message):
        conv.transform(X)
    monkeypatch.undo()
    monkeypatch.setattr(_limits, "available_memory", lambda: available)
    assert conv.transform(X[:30]).shape == (30, 72)


def test_explicit_batch_size_counts_its_temporaries(monkeypatch):
    X = np.random.default_rng(0).random((50, 64))
    conv = make(n_filters=8, batch_size=50).fit(X)
    one_by_one = 50 * 288 + _working_bytes(conv.set_params(batch_size=1), X)
    all_at_once = 50 * 288 + _working_bytes(conv.set_params(batch_size=50), X)
    # A batch's float32 copy of its images (and, here, its maps) grows with batch_size.
    assert all_at_once > one_by_one
    monkeypatch.setattr(_limits, "available_memory", lambda: one_by_one)
    with pytest.raises(MemoryLimitError, match="working memory.*smaller batch_size or n_jobs"):
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


@pytest.mark.parametrize("pooling", ["max", "avg", "rms"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool", [{"pool_size": 3}, {"pool_grid": 2}, {"pool_size": 1}], ids=str)
def test_the_overflow_bound_holds_for_the_features(pooling, padding, pool):
    """Maps are bounded by map_gain times the largest pixel (Cauchy-Schwarz, tight for an
    all-ones filter on all-ones images), and what a pooling mode accumulates by its bound."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (20, 12, 12, 2))
    # Filters far from unit norm and all-positive worst cases.
    filters = np.concatenate([rng.standard_normal((3, 4, 4, 2)) * 7, np.ones((1, 4, 4, 2))])
    conv = make(n_filters=4, filter_init=filters, padding=padding, pooling=pooling)
    conv.set_params(activation="abs", **{"pool_size": None, **pool}).fit(X)
    gain = _limits.map_gain(conv.filters_)
    assert gain >= 1
    area = make_plan(conv.spec_, conv.image_shape_).largest_region
    ones = np.ones_like(X)
    for images in (X, ones):
        magnitude = gain * np.abs(images).max()
        features = conv.transform(images)
        assert np.abs(features).max() <= magnitude * (1 + 1e-5)
        accumulated = {"max": features, "avg": features * area, "rms": features**2 * area}
        largest = POOLINGS[pooling].largest(magnitude, area)
        assert np.abs(accumulated[pooling]).max() <= largest * (1 + 1e-5)
    if pooling == "max":
        ones_filter_features = conv.transform(ones).reshape(len(X), -1, 4)[..., 3]
        assert ones_filter_features.max() == pytest.approx(math.prod(filters.shape[1:]))


def test_check_feature_range_names_the_sizes_and_the_fix():
    """An all-ones 4x4 filter (maps up to 16 times the pixels) averaged over 3x3 windows."""
    X = np.ones((2, 12, 12))
    conv = make(n_filters=1, filter_init=np.ones((1, 4, 4)), pooling="avg", pool_size=3).fit(X)
    _limits.check_feature_range(1e36, conv.filters_, make_plan(conv.spec_, conv.image_shape_))
    message = r"up to 2e\+36 in magnitude: the maps could reach 3\.2e\+37, and the sums of avg "
    message += r"pooling 2\.88e\+38, which could overflow float32.*Scale X down"
    with pytest.raises(ValueError, match=message):
        _limits.check_feature_range(2e36, conv.filters_, make_plan(conv.spec_, conv.image_shape_))


def test_the_check_counts_the_weights_of_the_pyramid_levels():
    """A 1x1 all-ones filter on constant images of 1e38 onto a 1 + 8x8 pyramid: the maxima are
    1e38, finite, but balance_levels multiplies the whole-image level by sqrt(65 / 2) = 5.7."""
    X = np.full((2, 16, 16), 1e38, dtype=np.float32)
    params = dict(
        n_filters=1,
        filter_init=np.ones((1, 1, 1)),
        patch_norm=False,
        center=False,
        dilation=1,
        pool_grid=[1, 8],
    )
    plain = ConvFeatureTransformer(balance_levels=False, **params).fit(X)
    assert np.isfinite(plain.transform(X)).all()
    balanced = ConvFeatureTransformer(balance_levels=True, **params).fit(X)
    message = r"max pooling times the largest weight of the pyramid's levels, 5\.7, 5\.7e\+38"
    with pytest.raises(ValueError, match=message + ".*overflow float32"):
        balanced.transform(X)


def test_rms_pooling_checks_the_sum_of_squares():
    """An all-ones filter on constant images m: maps 16 m, and rms pooling over 3x3 sums
    9 * (16 m)^2, which overflows float32 from m = 3.8e17 while 16 m is far from it."""
    ones = np.ones((2, 12, 12, 1), dtype=np.float32)
    conv = make(
        n_filters=1, filter_init=np.ones((1, 4, 4, 1)), activation="identity", pooling="rms"
    ).set_params(pool_size=3)
    conv.fit(ones)
    features = conv.transform(ones * np.float32(1e17))
    assert np.all(np.isfinite(features))
    assert features.max() == pytest.approx(16e17, rel=1e-5)
    with pytest.raises(ValueError, match=r"up to 1e\+18 .*sums of squares of rms.*overflow"):
        conv.transform(ones * np.float32(1e18))
