"""Every bad input gets the exact exception type and a message naming the problem (and fix).

Where the library accepts an unusual input by policy (booleans, integers, float16, parameters
larger than the image), the test checks the documented result against an independent one.
"""

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.signal import correlate2d
from settings import SIMPLE, simple
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_convfeat import ConvFeatureTransformer, MemoryLimitError

PARAMS = SIMPLE


def make(**params):
    return ConvFeatureTransformer(**simple(**params))


def raises_exactly(exc, match, func, *args):
    """Call ``func(*args)``: it must raise ``exc`` itself (not a subclass or parent) with a
    message matching ``match`` (``.`` matches newlines too)."""
    with pytest.raises(exc, match=re.compile(match, re.DOTALL)) as info:
        func(*args)
    assert type(info.value) is exc, f"raised {type(info.value).__name__}, not {exc.__name__}"
    return info.value


@pytest.fixture
def X():
    return np.random.default_rng(0).random((6, 64))


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, match", [(np.nan, "contains NaN"), (np.inf, "infinity"), (-np.inf, "infinity")]
)
@pytest.mark.parametrize("stage", ["fit", "transform"])
def test_non_finite_values_are_rejected(X, value, match, stage):
    bad = X.copy()
    bad[2, 10] = value
    if stage == "fit":
        raises_exactly(ValueError, match, make().fit, bad)
    else:
        raises_exactly(ValueError, match, make().fit(X).transform, bad)


def test_values_beyond_float32_are_rejected_not_turned_into_inf(X):
    conv = make().fit(X)
    raises_exactly(ValueError, "overflow float32.*Scale X down", conv.transform, X * 1e300)


def test_features_that_could_overflow_float32_are_rejected(X):
    # Finite float32 pixels whose sums over a filter and an average-pooling region overflow.
    conv = make(pooling="avg", pool_size=4).fit(X)
    big = np.full_like(X, 3e37, dtype=np.float32)
    raises_exactly(ValueError, r"up to 3e\+37 in magnitude.*overflow float32", conv.transform, big)


def test_large_but_safe_values_give_finite_exact_features(X):
    conv = make(activation="identity", pool_size=1).fit(X)
    scale = np.float32(2.0**100)
    np.testing.assert_array_equal(
        conv.transform((X * scale).astype(np.float32)),
        conv.transform(X.astype(np.float32)) * scale,
    )


# --- empty inputs ---------------------------------------------------------------------------


def test_zero_samples_are_rejected_in_fit_and_transform(X):
    raises_exactly(ValueError, r"0 sample\(s\).*minimum of 1", make().fit, X[:0])
    raises_exactly(ValueError, r"0 sample\(s\).*minimum of 1", make().fit(X).transform, X[:0])


def test_zero_features_are_rejected(X):
    raises_exactly(ValueError, r"0 feature\(s\).*minimum of 1", make().fit, X[:, :0])


@pytest.mark.parametrize("shape", [(5, 0, 8), (5, 8, 0), (5, 0, 8, 3), (5, 8, 8, 0)])
def test_images_with_an_empty_axis_are_rejected(shape):
    raises_exactly(ValueError, r"empty axis.*at least one row", make().fit, np.zeros(shape))


# --- shapes ---------------------------------------------------------------------------------


def test_width_unlike_fit_is_rejected_at_transform(X):
    conv = make().fit(X)
    raises_exactly(
        ValueError,
        "X has 49 features, but ConvFeatureTransformer is expecting 64 features",
        conv.transform,
        X[:, :49],
    )


@pytest.mark.parametrize("shape", [(6, 8, 7), (6, 8, 8, 3)])
def test_images_unlike_fit_are_rejected_at_transform(shape):
    conv = make().fit(np.zeros((6, 8, 8)))
    raises_exactly(
        ValueError,
        r"fitted on images of shape \(8, 8, 1\).*transform images of the shape seen in fit",
        conv.transform,
        np.zeros(shape),
    )


def test_image_shape_inconsistent_with_width_is_rejected(X):
    raises_exactly(
        ValueError,
        r"image_shape=\(8, 9\) holds 72 values.*X has 64 features",
        make(image_shape=(8, 9)).fit,
        X,
    )


def test_image_shape_inconsistent_with_3d_images_is_rejected():
    raises_exactly(
        ValueError,
        r"image_shape=\(8, 9\) does not match.*pass image_shape=None",
        make(image_shape=(8, 9)).fit,
        np.zeros((3, 8, 8)),
    )


@pytest.mark.parametrize("shape", [(2, 3, 3, 3, 3), (1, 2, 2, 2, 2, 2)])
def test_arrays_with_more_than_4_dimensions_are_rejected(shape):
    raises_exactly(ValueError, r"-D array of shape.*Stack or reshape", make().fit, np.zeros(shape))


def test_a_1d_array_is_rejected_with_sklearn_advice():
    raises_exactly(ValueError, "Expected 2D array.*Reshape your data", make().fit, np.zeros(64))


def test_ragged_lists_are_rejected():
    raises_exactly(ValueError, "inhomogeneous", make().fit, [[1.0, 2.0], [1.0]])


def test_image_smaller_than_filter_clips_the_random_filters():
    """Documented policy: with padding='valid', random filters are clipped to the image."""
    images = np.random.default_rng(1).random((2, 3, 4))
    conv = make(filter_size=7, pool_size=5, activation="identity").fit(images)
    assert conv.filters_.shape == (4, 3, 4, 1)
    assert conv.output_shape_ == (1, 1, 4)
    expected = [
        [correlate2d(image, f[..., 0], mode="valid")[0, 0] for f in conv.filters_]
        for image in images
    ]
    np.testing.assert_allclose(conv.transform(images), expected, rtol=1e-5, atol=1e-6)


def test_image_smaller_than_a_given_filter_array_is_rejected():
    raises_exactly(
        ValueError,
        "filter_init holds 5x5 filters, larger than the 3x3 images",
        make(n_filters=2, filter_init=np.ones((2, 5, 5))).fit,
        np.zeros((2, 3, 3)),
    )


# --- dtypes and containers ------------------------------------------------------------------


@pytest.mark.parametrize("values", [["a", "b"], ["0.5", "1.5"]])
def test_strings_are_rejected_even_when_they_look_numeric(values):
    X = np.resize(np.array(values), (4, 16))
    raises_exactly(ValueError, "not compatible with arrays of bytes/strings", make().fit, X)


def test_object_arrays_of_non_numbers_are_rejected(X):
    bad = X.astype(object)
    bad[0, 0] = "a"
    raises_exactly(ValueError, "could not convert string to float", make().fit, bad)
    bad[0, 0] = {"a": 1}
    raises_exactly(TypeError, "must be a string or a (real )?number", make().fit, bad)


def test_object_arrays_of_numbers_are_converted(X):
    conv = make().fit(X)
    np.testing.assert_array_equal(conv.transform(X.astype(object)), conv.transform(X))


def test_complex_numbers_are_rejected(X):
    raises_exactly(ValueError, "Complex data not supported", make().fit, X + 1j)


def test_booleans_are_read_as_zero_and_one(X):
    """Documented policy: boolean images (binary masks) are converted to 0.0 and 1.0."""
    mask = X > 0.5
    conv = make().fit(mask)
    np.testing.assert_array_equal(conv.transform(mask), conv.transform(mask.astype(np.float32)))


@pytest.mark.parametrize("dtype", [np.float16, np.uint8, np.int64, np.float64])
def test_other_numeric_dtypes_are_cast_to_float32(X, dtype):
    """Documented policy: any real dtype is cast to float32; the output is float32."""
    data = (X * 200).astype(dtype)
    conv = make().fit(data)
    out = conv.transform(data)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, conv.transform(data.astype(np.float32)))


@pytest.mark.parametrize(
    "to_sparse", [sp.csr_matrix, sp.csr_array, sp.coo_matrix, sp.csc_array], ids=str
)
@pytest.mark.parametrize("stage", ["fit", "transform"])
def test_sparse_input_is_a_type_error_that_says_toarray(X, to_sparse, stage):
    """Documented policy: no silent densification, which could exhaust memory."""
    fit_with = to_sparse(X) if stage == "fit" else X
    func = make().fit if stage == "fit" else make().fit(fit_with).transform
    raises_exactly(TypeError, r"Sparse data was passed.*\.toarray\(\)", func, to_sparse(X))


def test_dataframe_with_other_columns_than_fit_is_rejected(X):
    df = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    conv = make().fit(df)
    renamed = df.rename(columns={"p0": "q0"})
    raises_exactly(
        ValueError,
        r"feature names should match.*unseen at fit time:\n- q0",
        conv.transform,
        renamed,
    )
    reordered = df[df.columns[::-1]]
    raises_exactly(
        ValueError, "must be in the same order as they were in fit", conv.transform, reordered
    )


def test_dataframe_with_the_same_columns_gives_the_array_result(X):
    df = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    np.testing.assert_array_equal(make().fit(df).transform(df), make().fit(X).transform(X))


def test_transform_before_fit_is_a_not_fitted_error(X):
    raises_exactly(NotFittedError, "not fitted yet.*Call 'fit'", make().transform, X)


# --- parameters -----------------------------------------------------------------------------

BAD_PARAMS = [
    # (parameter, value, exception, message)
    ("n_filters", 0, InvalidParameterError, "'n_filters' parameter.*range \\[1, inf\\)"),
    ("n_filters", -3, InvalidParameterError, "'n_filters' parameter.*range \\[1, inf\\)"),
    ("n_filters", 2.0, InvalidParameterError, "'n_filters' parameter.*Got 2.0"),
    ("n_filters", "8", InvalidParameterError, "'n_filters' parameter.*Got '8'"),
    ("n_filters", None, InvalidParameterError, "'n_filters' parameter.*Got None"),
    ("n_filters", True, TypeError, "n_filters must be an int, got the boolean True"),
    ("filter_size", 0, InvalidParameterError, "'filter_size' parameter"),
    ("filter_size", -1, InvalidParameterError, "'filter_size' parameter"),
    ("filter_size", 2.5, InvalidParameterError, "'filter_size' parameter.*Got 2.5"),
    ("filter_size", "3", InvalidParameterError, "'filter_size' parameter.*Got '3'"),
    ("filter_size", True, TypeError, "filter_size must be an int or a pair of ints"),
    ("filter_size", (3,), TypeError, "filter_size must be an int or a pair of ints"),
    ("filter_size", (3, 3, 3), TypeError, "filter_size must be an int or a pair of ints"),
    ("filter_size", (3, "3"), TypeError, "filter_size must be an int or a pair of ints"),
    ("filter_size", (3, 1.5), TypeError, "filter_size must be an int or a pair of ints"),
    ("filter_size", (0, 3), ValueError, "filter_size must be >= 1 in each direction"),
    ("filter_size", (3, -2), ValueError, "filter_size must be >= 1 in each direction"),
    ("dilation", 0, InvalidParameterError, "'dilation' parameter"),
    ("antialias", "yes", InvalidParameterError, "'antialias' parameter.*bool"),
    ("antialias", 1, InvalidParameterError, "'antialias' parameter.*Got 1"),
    ("dilation", 1.5, InvalidParameterError, "'dilation' parameter.*Got 1.5"),
    ("dilation", True, TypeError, "dilation must be an int or a sequence of ints, got True"),
    ("dilation", (1, 2.5), TypeError, "dilation must be an int or a sequence of ints"),
    ("dilation", (2, 2), ValueError, "dilation must hold distinct ints >= 1, got \\(2, 2\\)"),
    ("dilation", [0, 1], ValueError, "dilation must hold distinct ints >= 1"),
    ("dilation", (), ValueError, "dilation must hold distinct ints >= 1"),
    ("filter_init", "sobel", InvalidParameterError, "'filter_init' parameter.*'gaussian'"),
    ("filter_init", 5, InvalidParameterError, "'filter_init' parameter.*array-like"),
    ("filter_init", None, InvalidParameterError, "'filter_init' parameter"),
    ("image_shape", 8, InvalidParameterError, "'image_shape' parameter.*Got 8"),
    ("image_shape", "8x8", InvalidParameterError, "'image_shape' parameter"),
    ("image_shape", (8, 8.0), TypeError, "image_shape must hold ints"),
    ("image_shape", (True, 8), TypeError, "image_shape must hold ints"),
    ("image_shape", (8,), ValueError, "image_shape must be None, \\(height, width\\)"),
    ("image_shape", (8, 8, 1, 1), ValueError, "image_shape must be None, \\(height, width\\)"),
    ("image_shape", (8, 0), ValueError, "with positive ints, got \\(8, 0\\)"),
    ("image_shape", (-8, -8), ValueError, "with positive ints"),
    ("image_shape", (10**9, 10**9), ValueError, "holds 1000000000000000000 values per image"),
    ("stride", 0, InvalidParameterError, "'stride' parameter.*range \\[1, inf\\)"),
    ("stride", -1, InvalidParameterError, "'stride' parameter"),
    ("stride", 1.5, InvalidParameterError, "'stride' parameter.*Got 1.5"),
    ("stride", (2, 2), InvalidParameterError, "'stride' parameter"),
    ("stride", True, TypeError, "stride must be an int, got the boolean True"),
    ("padding", "full", InvalidParameterError, "'padding' parameter.*Got 'full'"),
    ("padding", 1, InvalidParameterError, "'padding' parameter"),
    ("activation", "sigmoid", InvalidParameterError, "'activation' parameter.*'relu'"),
    ("activation", None, InvalidParameterError, "'activation' parameter"),
    ("pooling", "min", InvalidParameterError, "'pooling' parameter.*'max'"),
    ("pooling", 2, InvalidParameterError, "'pooling' parameter"),
    ("pool_size", 0, InvalidParameterError, "'pool_size' parameter"),
    ("pool_size", -2, InvalidParameterError, "'pool_size' parameter"),
    ("pool_size", 1.5, InvalidParameterError, "'pool_size' parameter.*Got 1.5"),
    ("pool_size", True, TypeError, "pool_size must be an int or a pair of ints"),
    ("pool_size", (2, 0), ValueError, "pool_size must be >= 1 in each direction"),
    ("pool_grid", 0, InvalidParameterError, "'pool_grid' parameter"),
    ("pool_grid", -1, InvalidParameterError, "'pool_grid' parameter"),
    ("pool_grid", "2", InvalidParameterError, "'pool_grid' parameter.*Got '2'"),
    ("pool_grid", True, TypeError, "pool_grid must be an int or a pair of ints"),
    ("pool_grid", (2, 0), ValueError, "pool_grid must be >= 1 in each direction"),
    ("balance_levels", "yes", InvalidParameterError, "'balance_levels' parameter.*bool"),
    ("balance_levels", 1, InvalidParameterError, "'balance_levels' parameter.*Got 1"),
    ("whiten", "yes", InvalidParameterError, "'whiten' parameter.*bool"),
    ("patch_norm", 1, InvalidParameterError, "'patch_norm' parameter.*Got 1"),
    ("threshold", -0.1, InvalidParameterError, "'threshold' parameter.*range \\[0"),
    ("threshold", "high", InvalidParameterError, "'threshold' parameter"),
    ("max_patches", 0, InvalidParameterError, "'max_patches' parameter.*range \\[1"),
    ("flatten", "yes", InvalidParameterError, "'flatten' parameter.*bool"),
    ("flatten", 1, InvalidParameterError, "'flatten' parameter.*Got 1"),
    ("flatten", None, InvalidParameterError, "'flatten' parameter"),
    ("center", "yes", InvalidParameterError, "'center' parameter.*bool"),
    ("center", 0, InvalidParameterError, "'center' parameter.*Got 0"),
    ("feature_norm", 0, InvalidParameterError, "'feature_norm' parameter.*range \\(0"),
    ("feature_norm", -1.0, InvalidParameterError, "'feature_norm' parameter.*range \\(0"),
    ("feature_norm", float("inf"), InvalidParameterError, "'feature_norm' parameter"),
    ("feature_norm", "big", InvalidParameterError, "'feature_norm' parameter.*'auto'"),
    ("feature_norm", True, TypeError, "feature_norm must be a float or None, got the boolean"),
    ("random_state", -1, InvalidParameterError, "'random_state' parameter.*\\[0, 4294967295\\]"),
    ("random_state", 2**32, InvalidParameterError, "'random_state' parameter"),
    ("random_state", 1.5, InvalidParameterError, "'random_state' parameter"),
    ("random_state", "0", InvalidParameterError, "'random_state' parameter"),
    ("n_jobs", 0, ValueError, "n_jobs must be a non-zero int or None"),
    ("n_jobs", 1.5, InvalidParameterError, "'n_jobs' parameter.*Got 1.5"),
    ("n_jobs", "2", InvalidParameterError, "'n_jobs' parameter"),
    ("n_jobs", True, TypeError, "n_jobs must be an int, got the boolean True"),
    ("batch_size", 0, InvalidParameterError, "'batch_size' parameter.*'auto'"),
    ("batch_size", -1, InvalidParameterError, "'batch_size' parameter"),
    ("batch_size", 1.5, InvalidParameterError, "'batch_size' parameter"),
    ("batch_size", "big", InvalidParameterError, "'batch_size' parameter.*Got 'big'"),
    ("batch_size", True, TypeError, "batch_size must be an int, got the boolean True"),
]


@pytest.mark.parametrize(
    "name, value, exc, match", BAD_PARAMS, ids=[f"{p[0]}={p[1]!r}" for p in BAD_PARAMS]
)
def test_bad_parameter_values_are_rejected_at_fit(X, name, value, exc, match):
    conv = make(**{name: value})
    raises_exactly(exc, match, conv.fit, X)


def test_every_parameter_has_bad_values_in_the_matrix():
    assert {p[0] for p in BAD_PARAMS} == set(make().get_params())


def test_huge_n_filters_fails_before_allocating(X):
    raises_exactly(
        MemoryLimitError,
        r"bank of 1000000000000 filters.*TiB.*fewer filters \(n_filters\)",
        make(n_filters=10**12).fit,
        X,
    )


def test_huge_sizes_are_clipped_to_the_image(X):
    """Documented policy: filter_size, stride, pool_size and pool_grid larger than the image
    (or the maps) are clipped to it; beyond NumPy's 64-bit strides too."""
    for huge in (10**9, 2**62):
        assert make(filter_size=huge).fit(X).filters_.shape == (4, 8, 8, 1)
        assert make(stride=huge, pool_size=1).fit(X).output_shape_ == (1, 1, 4)
        np.testing.assert_array_equal(
            make(stride=huge, pool_size=1).fit_transform(X),
            make(stride=6, pool_size=1).fit_transform(X),
        )
        assert make(pool_size=huge).fit(X).output_shape_ == (1, 1, 4)
        assert make(pool_grid=huge).fit(X).output_shape_ == (6, 6, 4)
        np.testing.assert_array_equal(
            make(pool_size=huge).fit_transform(X), make(pool_grid=1).fit_transform(X)
        )


@pytest.mark.parametrize(
    "params", [{"n_jobs": 10**9}, {"n_jobs": -(10**9)}, {"batch_size": 10**12}], ids=str
)
def test_huge_n_jobs_and_batch_size_change_nothing(X, params):
    np.testing.assert_array_equal(make(**params).fit_transform(X), make().fit_transform(X))


# --- filter arrays --------------------------------------------------------------------------

BAD_FILTERS = [
    (np.ones((4, 3)), "shape \\(n_filters, height, width\\).*got an array of shape \\(4, 3\\)"),
    (np.ones((4, 3, 3, 1, 1)), "got an array of shape \\(4, 3, 3, 1, 1\\)"),
    (np.ones((4, 3, 3), dtype=bool), "must be numeric.*dtype bool"),
    (np.ones((4, 3, 3), dtype=object), "must be numeric.*dtype object"),
    (np.full((4, 3, 3), "a"), "must be numeric.*dtype <U1"),
    (np.full((4, 3, 3), np.nan), "must hold finite real numbers"),
    (np.full((4, 3, 3), -np.inf), "must hold finite real numbers"),
    (np.ones((4, 3, 3)) + 1j, "must hold finite real numbers"),
    (np.ones((3, 3, 3)), "holds 3 filters but n_filters=4; set n_filters=3"),
    (np.ones((4, 3, 3, 2)), "has 2 channels but the images have 1"),
    (np.ones((4, 9, 3)), "holds 9x3 filters, larger than the 8x8 images"),
    (np.ones((4, 0, 3)), "empty filters of shape \\(0, 3\\)"),
]


@pytest.mark.parametrize(
    "filters, match", BAD_FILTERS, ids=[f"{f.shape}-{f.dtype}" for f, _ in BAD_FILTERS]
)
def test_bad_filter_arrays_are_rejected(X, filters, match):
    raises_exactly(ValueError, match, make(filter_init=filters).fit, X)


def test_filter_array_channels_must_match_colour_images():
    images = np.zeros((2, 8, 8, 3))
    raises_exactly(
        ValueError,
        "has 1 channels but the images have 3",
        make(filter_init=np.ones((4, 3, 3))).fit,
        images,
    )


def test_filter_array_as_nested_lists_is_accepted(X):
    filters = np.random.default_rng(2).standard_normal((4, 3, 3))
    np.testing.assert_array_equal(
        make(filter_init=filters.tolist()).fit(X).filters_,
        make(filter_init=filters).fit(X).filters_,
    )


# --- the caller's arrays --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, bool])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape", [(6, 64), (6, 8, 8), (6, 8, 8, 1)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_read_only_inputs_work_and_are_not_modified(X, dtype, order, shape, padding):
    data = np.asarray((X * 3).reshape(shape), dtype=dtype, order=order)
    data.setflags(write=False)
    before = data.copy()
    conv = make(padding=padding, activation="abs").fit(data)
    out = conv.transform(data)
    np.testing.assert_array_equal(data, before)
    assert not np.shares_memory(out, data)
    np.testing.assert_array_equal(out, conv.transform(before.copy()))


def test_filter_array_is_copied_not_modified(X):
    filters = np.random.default_rng(3).standard_normal((4, 3, 3))
    filters.setflags(write=False)
    before = filters.copy()
    conv = make(filter_init=filters).fit(X)
    np.testing.assert_array_equal(filters, before)
    assert not np.shares_memory(conv.filters_, filters)


def test_dataframe_input_is_not_modified(X):
    df = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    before = df.copy()
    make().fit(df).transform(df)
    pd.testing.assert_frame_equal(df, before)
