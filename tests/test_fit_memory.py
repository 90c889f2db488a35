"""fit's memory check (sklearn_convfeat._fit_memory): every step counted before it allocates,
and the centring streamed within what the check counted."""

import numpy as np
import pytest
from settings import simple

from sklearn_convfeat import (
    ConvFeatureTransformer,
    MemoryLimitError,
    _bank,
    _fit_memory,
    _limits,
    _transformer,
)


def make(**params):
    return ConvFeatureTransformer(**simple(**params))


def counted_checks(monkeypatch):
    """The ``(bytes, what)`` of each memory check that fit makes, as it makes them."""
    counted = []
    check = _limits.check_memory
    monkeypatch.setattr(
        _fit_memory,
        "check_memory",
        lambda n_bytes, what, *args: counted.append((n_bytes, what)) or check(n_bytes, what, *args),
    )
    return counted


def big_output(**params):
    """A random bank without patch_norm (fit samples no patch) and unpooled maps: 24x24x32
    features, 72 KiB per image."""
    return make(**{"n_filters": 32, "pool_size": 1, "padding": "same", "center": True, **params})


def test_fit_streams_the_centring_and_gets_the_same_mean(monkeypatch):
    """200 images' features need 14 MiB at once, which the old centring computed whole: under
    8 MiB of memory, fit now computes them a few at a time, to the same mean, bit for bit
    (float64 sums of float32 features, image after image, as NumPy's mean over samples)."""
    X = np.random.default_rng(0).random((200, 24, 24))
    reference = big_output(center=False).fit(X).transform(X)
    expected = reference.mean(axis=0, dtype=np.float64).astype(np.float32)
    monkeypatch.setattr(_limits, "available_memory", lambda: 8 * 2**20)
    calls = []
    features = _transformer.ConvFeatureTransformer._features
    monkeypatch.setattr(
        _transformer.ConvFeatureTransformer,
        "_features",
        lambda self, images: calls.append(len(images)) or features(self, images),
    )
    counted = counted_checks(monkeypatch)
    import tracemalloc

    tracemalloc.start()
    try:
        conv = big_output().fit(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(calls) > 4 and max(calls) * 72 * 2**10 < 2 * 2**20
    np.testing.assert_array_equal(conv.feature_mean_, expected)
    # What the check counted for centring bounds what fit allocated, one batch at a time.
    (centring,) = [n_bytes for n_bytes, what in counted if what.startswith("Centring")]
    assert peak <= centring <= 8 * 2**20
    # A list of images, and features kept as images (flatten=False): the same.
    listed = big_output().fit(list(X))
    np.testing.assert_array_equal(listed.feature_mean_, expected)
    layered = big_output(flatten=False).fit(X)
    np.testing.assert_array_equal(layered.feature_mean_, expected.reshape(24, 24, 32))


def test_fit_refuses_before_learning_when_one_image_cannot_be_centred(monkeypatch):
    """One 48x48 image's 48 x 48 x 192 features (1.7 MiB) and their float64 mean: more than
    8 MiB with the engine's working memory. The refusal comes before the patches are sampled
    and k-means runs (they would fit)."""
    X = np.random.default_rng(0).random((20, 48, 48))
    monkeypatch.setattr(_limits, "available_memory", lambda: 8 * 2**20)

    def must_not_run(*args, **kwargs):
        raise AssertionError("fit sampled patches before the memory check")

    monkeypatch.setattr(_bank, "sample_patches", must_not_run)
    conv = ConvFeatureTransformer(pool_size=1, max_patches=200)
    message = (
        r"^Centring the features \(center=True\) of 1 image at a time \(442368 float32, "
        r"1\.7 MiB per image\) with [0-9.]+ [KM]iB of working memory would need [0-9.]+ MiB, "
        r"more than the 8\.0 MiB of memory available\. Use fewer filters \(n_filters\), a "
        r"larger pool_size, a small pool_grid or a larger stride, or center=False\.$"
    )
    with pytest.raises(MemoryLimitError, match=message):
        conv.fit(X)
    monkeypatch.undo()
    conv.set_params(center=False, n_filters=16).fit(X)


def test_fit_refuses_before_sampling_patches_that_cannot_fit(monkeypatch):
    """A million patches of 7x7 pixels (dilation 2) are 392 MB of float64, three times that
    while they are sampled and normalised: refused before sampling anything (the first
    dilation's would fit), the size and the fix named."""
    X = np.random.default_rng(0).random((20, 256, 256))
    monkeypatch.setattr(_limits, "available_memory", lambda: 2**30)

    def must_not_run(*args, **kwargs):
        raise AssertionError("fit sampled patches before the memory check")

    monkeypatch.setattr(_bank, "sample_patches", must_not_run)
    conv = ConvFeatureTransformer(max_patches=10**6)
    message = (
        r"^Sampling 1000000 patches of 7x7x1 pixels \(dilation 2\) and learning 64 filters "
        r"from them would need 1\.1 GiB, more than the 1\.0 GiB of memory available\. Use a "
        r"smaller max_patches, smaller filters \(filter_size\) or smaller dilations\.$"
    )
    with pytest.raises(MemoryLimitError, match=message):
        conv.fit(X)


def test_fit_estimates_bound_the_peak_of_sampling_and_learning(monkeypatch):
    """What the check counts for the patches of each dilation and the bank learnt from them
    is at least what fit allocates (tracemalloc's peak, centring off) and at most twice it,
    for every learnt bank, whitened or not, with smoothed dilations and in colour."""
    import tracemalloc

    counted = counted_checks(monkeypatch)
    rng = np.random.default_rng(0)
    cases = [
        ((300, 32, 32), {}),
        ((300, 32, 32), {"filter_init": "pca", "whiten": False, "n_filters": 48}),
        ((300, 32, 32), {"filter_init": "patches"}),
        ((300, 32, 32), {"filter_init": "gaussian"}),  # patches for patch_norm only
        ((100, 32, 32, 3), {"filter_size": 8, "dilation": 1, "n_filters": 256}),
        ((20, 96, 96, 3), {"filter_size": 6, "dilation": (1, 3), "max_patches": 15_000}),
    ]
    for shape, params in cases:
        X = rng.random(shape)
        conv = ConvFeatureTransformer(center=False, random_state=0, **params)
        counted.clear()
        tracemalloc.start()
        try:
            conv.fit(X)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        estimate = max(n_bytes for n_bytes, what in counted if what.startswith("Sampling"))
        assert peak <= estimate <= 2 * peak, (shape, params, peak, estimate)


def test_patches_of_large_images_are_smoothed_a_few_at_a_time(monkeypatch):
    """Smoothing (dilation 2) 12 images of 256x256 (0.5 MiB each in float64) at most 2 MiB at
    a time: 4 images, not all 12 (the old batch of 256 images held 3 float64 copies of
    them all)."""
    import tracemalloc

    from sklearn_convfeat import _patches

    monkeypatch.setattr(_patches, "SMOOTH_BYTES", 2 * 2**20)
    assert _patches.smooth_batch((256, 256, 1)) == 4
    assert _patches.smooth_batch((3000, 4000, 3)) == 1
    images = np.random.default_rng(0).random((12, 256, 256, 1))
    tracemalloc.start()
    try:
        patches = _patches.sample_patches(images, (7, 7), 1000, np.random.RandomState(0), 2 / 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert patches.shape == (1000, 49)
    assert peak <= _limits.patch_bytes(1000, 49, 16, 0, 4 * 256 * 256) < 3 * 8 * 12 * 256 * 256


def test_dask_samples_are_counted_before_they_are_computed(monkeypatch):
    """A learnt bank on a dask array of 64x64 images: its sample for the patches (8192
    images, the 256 MiB that FIT_SAMPLE_BYTES allows, twice while computed then joined) is
    refused under 256 MiB before a block is computed, and so is the centring's (1000)."""
    da = pytest.importorskip("dask.array")

    def fail(block):
        raise AssertionError("a block was computed")

    X = da.zeros((20_000, 64, 64), chunks=(1000, 64, 64)).map_blocks(fail, dtype=np.float64)
    monkeypatch.setattr(_limits, "available_memory", lambda: 256 * 2**20)
    message = r"^A sample of 8192 images of the dask array for the patches \(32\.0 KiB each"
    with pytest.raises(MemoryLimitError, match=message + r".*patch_norm=False\.$"):
        ConvFeatureTransformer().fit(X)
    message = r"^A sample of 1000 images of the dask array for centring .*Use center=False\.$"
    monkeypatch.setattr(_limits, "available_memory", lambda: 50 * 2**20)
    with pytest.raises(MemoryLimitError, match=message):
        ConvFeatureTransformer(filter_init="gaussian", patch_norm=False).fit(X)
