"""Property-based tests over random image shapes and settings.

The output shape is checked against the documented formula, written here independently of
``_shapes``; the values against a direct reference (scipy.signal.correlate2d, then loops).
"""

import math

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter
from scipy.signal import correlate2d
from settings import SIMPLE

from sklearn_convfeat import ConvFeatureTransformer

SETTINGS = settings(max_examples=40, deadline=None)


def expected_axis(length, filter_size, stride, padding, pool_size, pool_grid, dilation=1):
    """Documented rule for one axis: filters clipped to the image, spanning (k - 1) * d + 1
    at the largest dilation d kept; 'valid' gives floor((L - span) / s) + 1 positions and
    'same' ceil(L / s); windows of p (clipped to the map) give floor(m / p) regions, a grid of
    g gives min(g, m)."""
    span = (min(filter_size, length) - 1) * dilation + 1
    maps = (length - span) // stride + 1 if padding == "valid" else math.ceil(length / stride)
    if pool_grid is not None:
        return min(pool_grid, maps)
    return maps // min(pool_size, maps)


def region_edges(length, pool_size, pool_grid):
    """Edges of the pooling regions along one axis of a map of ``length``."""
    if pool_grid is not None:
        n = min(pool_grid, length)
        return [(i * length // n, (i + 1) * length // n) for i in range(n)]
    p = min(pool_size, length)
    return [(i * p, (i + 1) * p) for i in range(length // p)]


def dilated(filters, dilations):
    """Each filter with ``d - 1`` zeros between its taps, centred in the largest footprint."""
    n_filters, kh, kw, channels = filters.shape
    big = max(dilations)
    out = np.zeros((n_filters, (kh - 1) * big + 1, (kw - 1) * big + 1, channels))
    for f, d in enumerate(dilations):
        top = (out.shape[1] - 1) // 2 - (kh - 1) * d // 2
        left = (out.shape[2] - 1) // 2 - (kw - 1) * d // 2
        out[f, top : top + (kh - 1) * d + 1 : d, left : left + (kw - 1) * d + 1 : d] = filters[f]
    return out


def reference(
    images,
    filters,
    dilations,
    stride,
    padding,
    activation,
    pooling,
    pool_size,
    pool_grid,
    antialias=False,
):
    """Features of ``(n, H, W, C)`` images, one image, one filter and one region at a time.
    With ``antialias``, a filter at dilation d > 1 reads the image smoothed by a Gaussian of
    standard deviation d / 3 (edges repeated), before the padding."""
    filters = dilated(filters, dilations)
    n_filters, kh, kw, _ = filters.shape
    pads = ((0, 0), (0, 0), (0, 0))
    if padding == "same":
        pads = (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0))
    act = {"relu": lambda v: np.maximum(v, 0), "abs": np.abs, "tanh": np.tanh}.get(
        activation, lambda v: v
    )
    out = []
    for image in images.astype(np.float64):
        maps = []
        for f, d in zip(filters.astype(np.float64), dilations, strict=True):
            read = image
            if antialias and d > 1:
                read = gaussian_filter(image, sigma=(d / 3, d / 3, 0), mode="nearest")
            read = np.pad(read, pads)
            corr = sum(
                correlate2d(read[..., c], f[..., c], mode="valid") for c in range(f.shape[2])
            )
            maps.append(act(corr[::stride, ::stride]))
        maps = np.stack(maps, axis=-1)
        rows = region_edges(maps.shape[0], pool_size[0], pool_grid and pool_grid[0])
        cols = region_edges(maps.shape[1], pool_size[1], pool_grid and pool_grid[1])
        reduce = np.max if pooling == "max" else np.mean
        out.append(
            [[reduce(maps[r0:r1, c0:c1], axis=(0, 1)) for c0, c1 in cols] for r0, r1 in rows]
        )
    return np.asarray(out)


pairs = st.integers(1, 6) | st.tuples(st.integers(1, 6), st.integers(1, 6))


@st.composite
def cases(draw):
    height, width = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    channels = draw(st.integers(1, 4))
    n_samples = draw(st.integers(1, 4))
    pooling_by = draw(st.sampled_from(["pool_size", "pool_grid"]))
    params = dict(
        n_filters=draw(st.integers(1, 5)),
        filter_size=draw(st.integers(1, 9) | st.tuples(st.integers(1, 9), st.integers(1, 9))),
        dilation=draw(st.sampled_from([1, 2, (1, 2), (1, 2, 3), (2, 4)])),
        filter_init=draw(st.sampled_from(["gaussian", "uniform", "gabor"])),
        stride=draw(st.integers(1, 5)),
        padding=draw(st.sampled_from(["valid", "same"])),
        activation=draw(st.sampled_from(["relu", "abs", "tanh", "identity"])),
        pooling=draw(st.sampled_from(["max", "avg"])),
        pool_size=draw(pairs) if pooling_by == "pool_size" else None,
        pool_grid=draw(pairs) if pooling_by == "pool_grid" else None,
        patch_norm=False,
        random_state=draw(st.integers(0, 2**32 - 1)),
        n_jobs=draw(st.sampled_from([None, 2])),
        batch_size=draw(st.sampled_from(["auto", 1, 3])),
        flatten=True,
        center=draw(st.booleans()),
        antialias=draw(st.booleans()),
    )
    scale = draw(st.sampled_from([1e-3, 1.0, 255.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    images = np.random.default_rng(seed).uniform(
        -scale, scale, (n_samples, height, width, channels)
    )
    layout = draw(st.sampled_from(["flat", "3d", "4d"] if channels == 1 else ["flat", "4d"]))
    if layout == "flat":
        X = images.reshape(n_samples, -1)
        params["image_shape"] = (height, width, channels)
    else:
        X = images[..., 0] if layout == "3d" else images
        params["image_shape"] = None
    return X, images, params


def as_pair(value):
    return (value, value) if isinstance(value, int) else value


@SETTINGS
@given(cases())
def test_output_shape_follows_the_documented_formula(case):
    X, images, params = case
    conv = ConvFeatureTransformer(**params).fit(X)
    height, width = images.shape[1:3]
    (fh, fw), (ph, pw) = as_pair(params["filter_size"]), as_pair(params["pool_size"] or 1)
    gh, gw = as_pair(params["pool_grid"]) if params["pool_grid"] is not None else (None, None)
    args = params["stride"], params["padding"]
    dilation = conv.dilations_.max()
    rows = expected_axis(height, fh, *args, ph, gh, dilation)
    cols = expected_axis(width, fw, *args, pw, gw, dilation)
    assert conv.output_shape_ == (rows, cols, params["n_filters"])
    features = conv.transform(X)
    assert features.shape == (len(X), rows * cols * params["n_filters"])
    assert features.dtype == np.float32
    assert len(conv.get_feature_names_out()) == features.shape[1]
    unflat = conv.set_params(flatten=False).fit(X).transform(X)
    assert unflat.shape == (len(X), rows, cols, params["n_filters"])
    np.testing.assert_array_equal(unflat.reshape(len(X), -1), features)


@SETTINGS
@given(cases())
def test_features_are_finite_match_the_reference_and_respect_the_activation(case):
    X, images, params = case
    conv = ConvFeatureTransformer(**{**params, "flatten": False}).fit(X)
    features = conv.transform(X)
    assert np.isfinite(features).all()
    # Centred features are the pooled ones minus the training mean.
    pooled = features if conv.feature_mean_ is None else features + conv.feature_mean_
    if params["activation"] in ("relu", "abs"):
        assert (pooled >= -1e-6 * max(1.0, np.abs(pooled).max())).all()
    if params["activation"] == "tanh":
        assert (np.abs(pooled) <= 1 + 1e-6).all()
    expected = reference(
        images,
        conv.filters_,
        conv.dilations_,
        params["stride"],
        params["padding"],
        params["activation"],
        params["pooling"],
        as_pair(params["pool_size"] or 1),
        params["pool_grid"] and as_pair(params["pool_grid"]),
        params["antialias"],
    )
    if conv.feature_mean_ is not None:
        expected = expected - conv.feature_mean_
    scale = np.abs(images).max() * math.sqrt(conv.filters_[0].size)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5 * scale)


@SETTINGS
@given(cases(), st.data())
def test_a_sample_does_not_depend_on_its_batch(case, data):
    X, _, params = case
    conv = ConvFeatureTransformer(**params).fit(X)
    full = conv.transform(X)
    start = data.draw(st.integers(0, len(X) - 1))
    stop = data.draw(st.integers(start + 1, len(X)))
    np.testing.assert_array_equal(conv.transform(X[start:stop]), full[start:stop])
    np.testing.assert_array_equal(conv.transform(X[::-1]), full[::-1])


VALID_STRINGS = ["gaussian", "uniform", "gabor", "valid", "same", "relu", "abs", "tanh"]
VALID_STRINGS += ["identity", "max", "avg", "auto"]
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 1000),
    st.integers(2**31, 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.sampled_from(VALID_STRINGS),
    st.tuples(st.integers(-2, 10)),
    st.tuples(st.integers(-2, 70), st.integers(-2, 70)),
    st.tuples(st.integers(-2, 10), st.floats(-2, 10)),
    st.lists(st.integers(-2, 10), max_size=4),
)
# pool_size unset, so that a fuzzed pool_grid is a valid pooling on its own.
FUZZ_BASE = {**SIMPLE, "n_filters": 3, "pool_size": None}


@SETTINGS
@given(st.sampled_from(sorted(FUZZ_BASE)), ANY_VALUE)
def test_any_parameter_value_works_or_fails_clearly(name, value):
    """Never a crash deep in NumPy: either documented output, or an error naming the parameter."""
    if name == "n_filters" and isinstance(value, int) and value > 1000:
        value = 1000  # a real allocation otherwise: the memory limit is tested elsewhere
    X = np.random.default_rng(0).random((3, 64))
    conv = ConvFeatureTransformer(**{**FUZZ_BASE, name: value})
    try:
        features = conv.fit_transform(X)
    except (ValueError, TypeError) as error:
        assert name in str(error)
        return
    assert features.shape == (
        (3, math.prod(conv.output_shape_)) if conv.flatten else (3, *conv.output_shape_)
    )
    assert np.isfinite(features).all()
    assert len(conv.get_feature_names_out()) == math.prod(conv.output_shape_)


DTYPES = [bool, np.uint8, np.int64, np.float16, np.float32, np.float64, np.complex64, object, str]


@st.composite
def arrays(draw, shape=None):
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=5)))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).normal(size=shape) * draw(st.sampled_from([1, 1e3]))
    if values.size and draw(st.booleans()):
        values.flat[draw(st.integers(0, values.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1e300])
        )
    with np.errstate(all="ignore"):
        return values.astype(dtype)


@SETTINGS
@given(arrays(), st.data())
def test_any_array_works_or_fails_clearly(X, data):
    """Fit on one random array, transform another (often of the same shape): documented
    output, or a ValueError or TypeError, never another exception from deep inside NumPy."""
    X_new = data.draw(arrays(X.shape) | arrays())
    conv = ConvFeatureTransformer(**{**FUZZ_BASE, "n_filters": 2})
    for array, step in ((X, conv.fit), (X_new, conv.transform)):
        try:
            result = step(array)
        except (ValueError, TypeError) as error:
            event(f"{step.__name__}: {type(error).__name__}")
            return
    event("transformed")
    assert result.shape == (len(X_new), math.prod(conv.output_shape_))
    assert np.isfinite(result).all()
