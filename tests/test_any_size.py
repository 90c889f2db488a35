"""Images of any size: a list of images of several sizes in, features of one length out, each
image's features its own, large images tiled within a bounded memory."""

import pickle
import tracemalloc

import numpy as np
import pytest
import skops.io as sio
from numpy.testing import assert_allclose, assert_array_equal
from settings import TILE_BUDGET, default_plan, spec_plan
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat._engine import pooled_features
from sklearn_convfeat._patches import sample_patches
from sklearn_convfeat._plan import (
    BAND_FACTOR,
    BLOCK_ALIGN,
    FLOOR_FACTOR,
    MIN_BAND_ROWS,
    MIN_BLOCK,
    make_plan,
)
from sklearn_convfeat._spec import parse_pooling

SIZES = [(30, 40), (64, 48), (30, 40), (100, 120), (17, 23), (9, 200)]


def photos(channels=3, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    shape = () if channels == 1 else (channels,)
    return [rng.random((h, w, *shape)).astype(np.float32) for h, w in sizes]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    "params",
    [{}, {"pool_grid": 2, "pooling": "avg"}, {"activation": "two_sided", "pooling": "rms"}],
    ids=["defaults", "grid-avg", "two-sided-rms"],
)
def test_an_image_of_a_mixed_list_has_the_features_it_has_alone(channels, params):
    images = photos(channels)
    conv = ConvFeatureTransformer(n_filters=16, random_state=0, **params).fit(images)
    assert conv.image_shape_ == (None, None, channels)
    features = conv.transform(images)
    assert features.shape == (len(images), np.prod(conv.output_shape_))
    assert len(conv.get_feature_names_out()) == features.shape[1]
    for image, row in zip(images, features, strict=True):
        assert_array_equal(conv.transform(image[None]), row[None])
    order = [3, 0, 5, 1, 4, 2]
    assert_array_equal(conv.transform([images[i] for i in order]), features[order])


def test_a_list_of_equal_sizes_is_an_array_as_before():
    images = photos(sizes=[(20, 24)] * 5)
    as_list = ConvFeatureTransformer(n_filters=8, random_state=0).fit(images)
    as_array = ConvFeatureTransformer(n_filters=8, random_state=0).fit(np.stack(images))
    assert as_list.image_shape_ == as_array.image_shape_ == (20, 24, 3)
    assert_array_equal(as_list.transform(images), as_array.transform(np.stack(images)))


def test_a_transformer_fitted_on_one_size_transforms_a_list_of_any_sizes():
    conv = ConvFeatureTransformer(n_filters=8, random_state=0).fit(
        np.stack(photos(sizes=[(30, 40)] * 4))
    )
    images = photos(seed=1)
    features = conv.transform(images)
    assert features.shape == (len(images), 14 * 8)
    assert_array_equal(conv.transform(images[0][None]), features[:1])


def test_a_list_of_one_size_in_fit_then_any_size_in_transform():
    """Photos of one camera share a size; a new photo may not."""
    same = photos(sizes=[(40, 30)] * 4)
    conv = ConvFeatureTransformer(n_filters=8, random_state=0).fit(same)
    assert conv.image_shape_ == (40, 30, 3)
    other = photos(sizes=[(50, 20)], seed=2)
    assert conv.transform(other).shape == (1, 14 * 8)
    assert_array_equal(conv.transform(same[:2]), conv.transform(np.stack(same[:2])))
    windows = ConvFeatureTransformer(n_filters=8, pool_size=2).fit(same)
    assert windows.transform(same[:2]).shape == (2, 20 * 15 * 8)
    with pytest.raises(ValueError, match="a size unlike fit's.*pool_size=2"):
        windows.transform(other)


def test_fit_samples_patches_from_every_size_within_max_patches():
    images = photos(channels=1, sizes=[(5, 6), (8, 4)])
    grey = [image[..., None] for image in images]
    every = sample_patches(grey, (2, 2), 10**6, np.random.RandomState(0))
    expected = [
        image[i : i + 2, j : j + 2].ravel()
        for image in grey
        for i in range(image.shape[0] - 1)
        for j in range(image.shape[1] - 1)
    ]
    assert_array_equal(every, expected)
    some = sample_patches(grey, (2, 2), 7, np.random.RandomState(0))
    assert len(some) == 7 and len({row.tobytes() for row in some}) == 7
    assert_array_equal(some, sample_patches(grey, (2, 2), 7, np.random.RandomState(0)))
    conv = ConvFeatureTransformer(n_filters=4, max_patches=50, random_state=3)
    assert_array_equal(conv.fit(photos()).filters_, conv.fit(photos()).filters_)


@pytest.mark.parametrize("pooling", ["max", "avg", "rms", "ppv"])
@pytest.mark.parametrize("method", ["gemm", "fft"])
def test_a_tiled_image_equals_the_whole_image(pooling, method):
    """Bands of map rows and blocks of filters combine to the features of the whole map."""
    rng = np.random.default_rng(0)
    images = rng.random((2, 61, 70, 3)).astype(np.float32)
    filters = rng.standard_normal((10, 5, 5, 3)).astype(np.float32)
    params = dict(
        filter_size=(5, 5),
        n_filters=10,
        stride=1,
        padding="same",
        activation="relu",
        threshold=0.1,
        pooling=pooling,
        layout=parse_pooling(None, [1, 2, 3, 7], True),
        flatten=True,
        patch_norm=True,
        method=method,
    )
    whole = spec_plan(images.shape[1:], tile_budget=2**40, **params)
    tiled = spec_plan(images.shape[1:], tile_budget=2**16, **params)
    assert len(whole.bands) == 1 and len(tiled.bands) > 1
    bias = rng.standard_normal(10).astype(np.float32)
    expected = pooled_features(images, whole, filters, bias, 0.2)
    got = pooled_features(images, tiled, filters, bias, 0.2)
    assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("antialias", [False, True])
def test_a_large_image_is_tiled_in_bands_of_several_rows_while_memory_allows(antialias):
    """The default filters on a 3000x4000 photo: bands of MIN_BAND_ROWS map rows in blocks of
    MIN_BLOCK filters, though such tiles outgrow BAND_FACTOR times the budget (bands of one
    row before); a panorama 40,000 pixels wide, whose such tiles outgrow FLOOR_FACTOR times
    it, in bands of one row in the smallest blocks, as before."""
    photo = default_plan((3000, 4000, 1), antialias=antialias)
    assert {stop - start for start, stop in photo.bands} == {MIN_BAND_ROWS}
    assert {stop - start for start, stop in photo.blocks} == {MIN_BLOCK}
    assert BAND_FACTOR < photo.tile_bytes_per_image / TILE_BUDGET <= FLOOR_FACTOR
    panorama = default_plan((300, 40_000, 1), antialias=antialias)
    assert {stop - start for start, stop in panorama.bands} == {1}
    assert {stop - start for start, stop in panorama.blocks} == {BLOCK_ALIGN}
    assert panorama.tile_bytes_per_image <= FLOOR_FACTOR * TILE_BUDGET


def test_the_memory_estimate_bounds_the_peak_on_a_large_image():
    """A 1500x1000 colour photo, 64 filters: its unpooled maps would take 384 MB."""
    image = np.random.default_rng(0).random((1500, 1000, 3)).astype(np.float32)
    conv = ConvFeatureTransformer(random_state=0).fit([image[:60, :50], image[:40, :70]])
    plan = make_plan(conv.spec_, image.shape)
    assert len(plan.bands) > 1
    conv.transform([image[:100, :90]])
    tracemalloc.start()
    features = conv.transform([image])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    estimate = plan.working_bytes(1)
    assert peak - features.nbytes <= estimate < 64 * 2**20


@pytest.mark.parametrize(
    "images, params, match",
    [
        (
            photos(),
            {"pool_size": 2},
            r"several sizes.*pool_size=2 pools over windows.*pool_grid",
        ),
        ([np.zeros((10, 10)), np.zeros((12, 10, 3))], {}, r"\[1, 3\] channels.*same number"),
        ([np.zeros((10, 10)), np.zeros((0, 10))], {}, r"X\[1\] has shape \(0, 10\).*no empty axis"),
        ([np.zeros((10, 10)), np.zeros((2, 4))], {}, r"shape \(2, 4, 1\).*3 regions"),
        ([np.zeros((10, 10)), np.full((12, 10), np.nan)], {}, r"X\[1\].*NaN"),
    ],
    ids=["windows", "channels", "empty", "smaller-than-grid", "nan"],
)
def test_bad_lists_of_images_are_rejected_clearly(images, params, match):
    with pytest.raises(ValueError, match=match):
        ConvFeatureTransformer(n_filters=4, **params).fit(images)


def test_transform_rejects_other_channels():
    conv = ConvFeatureTransformer(n_filters=4).fit(photos(channels=3))
    with pytest.raises(ValueError, match="images with 1 channels.*fitted on images with 3"):
        conv.transform(photos(channels=1))


def test_lists_go_through_pipelines_searches_and_persistence(tmp_path):
    images = photos(sizes=[(24 + 3 * (i % 5), 30 - 2 * (i % 4)) for i in range(40)])
    y = np.array([i % 2 for i in range(40)])
    for image, label in zip(images, y, strict=True):
        image[:, : image.shape[1] // 2] += label  # brighter left half: class 1
    model = make_pipeline(
        ConvFeatureTransformer(n_filters=8, random_state=0), LogisticRegression(max_iter=1000)
    )
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    assert cross_val_score(model, images, y, cv=cv).mean() > 0.9
    search = GridSearchCV(model, {"convfeaturetransformer__n_filters": [4, 8]}, cv=cv)
    search.fit(images, y)
    assert search.best_score_ > 0.9
    conv = model[0].fit(images)
    features = conv.transform(images)
    pd = pytest.importorskip("pandas")
    frame = conv.set_output(transform="pandas").transform(images)
    assert isinstance(frame, pd.DataFrame) and frame.shape == features.shape
    conv.set_output(transform="default")
    for loaded in [
        pickle.loads(pickle.dumps(conv)),
        sio.loads(sio.dumps(conv), trusted=sio.get_untrusted_types(data=sio.dumps(conv))),
    ]:
        assert_array_equal(loaded.transform(images), features)


def test_the_working_memory_of_a_tall_image_does_not_grow_with_its_height():
    """A large image visits each band once: the views of its tiles are made as they come, not
    kept (which took 36 MiB for a 3000x4000 photo in 3000 bands of 3 blocks)."""
    conv = ConvFeatureTransformer(random_state=0).fit([np.zeros((40, 50)), np.zeros((60, 30))])
    short, tall = (make_plan(conv.spec_, shape) for shape in [(1500, 2000, 1), (6000, 2000, 1)])
    assert len(tall.bands) > 3 * len(short.bands) > 4
    assert tall.working_bytes(1) == short.working_bytes(1)
