"""FilterBankDisplay and FeatureMapsDisplay, checked by what they draw (headless)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.signal import correlate2d  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402
from sklearn_convfeat.plotting import FeatureMapsDisplay, FilterBankDisplay  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _grey_images(n=6, shape=(9, 11), seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, *shape))


def _params(**extra):
    fixed = dict(filter_init="gaussian", dilation=1, patch_norm=False, pool_grid=None, center=False)
    return (
        dict(n_filters=5, filter_size=3, pool_size=2, padding="valid", random_state=0)
        | fixed
        | extra
    )


def test_filter_bank_draws_each_grey_filter_with_its_values():
    conv = ConvFeatureTransformer(**_params()).fit(_grey_images())
    display = FilterBankDisplay.from_estimator(conv)

    assert len(display.images_) == 5
    # A 3x2 grid for 5 filters: the 6th panel exists but holds no picture.
    assert display.axes_.shape == (2, 3)
    assert len(display.figure_.axes) == 6
    assert sum(len(ax.get_images()) for ax in display.figure_.axes) == 5
    for k, image in enumerate(display.images_):
        np.testing.assert_array_equal(image.get_array(), conv.filters_[k, :, :, 0])
        limit = np.abs(conv.filters_[k]).max()
        assert image.get_clim() == pytest.approx((-limit, limit))


@pytest.mark.parametrize("n_channels", [3, 5])
def test_filter_bank_colour_filters_show_three_channels_rescaled(n_channels):
    images = np.random.default_rng(0).uniform(size=(4, 8, 8, n_channels))
    conv = ConvFeatureTransformer(**_params(n_filters=3)).fit(images)
    display = FilterBankDisplay.from_estimator(conv, max_filters=2)

    assert len(display.images_) == 2
    for k, image in enumerate(display.images_):
        f = conv.filters_[k, :, :, :3]
        np.testing.assert_allclose(image.get_array(), (f - f.min()) / (f.max() - f.min()))


def test_filter_bank_in_a_given_axes_or_axes_array_and_from_a_pipeline():
    X = _grey_images(n=8).reshape(8, -1)
    y = np.arange(8) % 2
    model = make_pipeline(
        ConvFeatureTransformer(**_params(image_shape=(9, 11))), LogisticRegression()
    ).fit(X, y)
    conv = model[0]

    fig, (left, right) = plt.subplots(1, 2)
    display = FilterBankDisplay.from_estimator(model, ax=right, n_cols=5)
    assert display.figure_ is fig
    assert display.axes_.shape == (1, 5)
    # The two original Axes plus one per filter, each new one inside the right-hand Axes.
    assert len(fig.axes) == 2 + 5
    right_box = right.get_position()
    for ax in display.axes_.ravel():
        assert right_box.x0 - 1e-9 <= ax.get_position().x0 <= right_box.x1
    assert len(left.get_images()) == 0

    fig, axes = plt.subplots(2, 3)
    display = FilterBankDisplay.from_estimator(conv, ax=axes)
    assert len(fig.axes) == 6
    np.testing.assert_array_equal(
        axes.ravel()[4].get_images()[0].get_array(), conv.filters_[4, ..., 0]
    )
    with pytest.raises(ValueError, match="5 panels"):
        FilterBankDisplay.from_estimator(conv, ax=axes[0])


def test_feature_maps_are_the_unpooled_relu_correlations():
    images = _grey_images()
    conv = ConvFeatureTransformer(**_params(activation="relu")).fit(images)
    display = FeatureMapsDisplay.from_estimator(conv, images[2], max_maps=4)

    # The image, then four maps.
    assert len(display.images_) == 5
    np.testing.assert_allclose(display.images_[0].get_array(), images[2], rtol=1e-6)
    for k in range(4):
        expected = np.maximum(correlate2d(images[2], conv.filters_[k, :, :, 0], mode="valid"), 0)
        drawn = display.images_[1 + k].get_array()
        assert drawn.shape == (7, 9)
        np.testing.assert_allclose(drawn, expected, rtol=1e-4, atol=1e-5)
    # Drawing did not change the fitted transformer.
    assert conv.pool_size == 2 and conv.flatten is True
    assert conv.transform(images[:1]).shape == (1, 3 * 4 * 5)


def test_feature_maps_apply_the_pipeline_steps_before_the_transformer():
    images = _grey_images()
    double = FunctionTransformer(lambda X: 2 * X)
    model = make_pipeline(double, ConvFeatureTransformer(**_params(activation="identity")))
    model.fit(images)
    display = FeatureMapsDisplay.from_estimator(model, images[0], max_maps=1)

    np.testing.assert_allclose(display.images_[0].get_array(), 2 * images[0], rtol=1e-6)
    expected = correlate2d(2 * images[0], model[-1].filters_[0, :, :, 0], mode="valid")
    np.testing.assert_allclose(display.images_[1].get_array(), expected, rtol=1e-4, atol=1e-5)


def test_feature_maps_of_an_image_of_its_own_size():
    rng = np.random.default_rng(3)
    images = [rng.uniform(0, 1, size=shape) for shape in [(9, 11), (14, 8), (12, 12)]]
    conv = ConvFeatureTransformer(**_params(pool_size=None, pool_grid=2)).fit(images)
    new = rng.uniform(0, 1, size=(10, 17))
    display = FeatureMapsDisplay.from_estimator(conv, new, max_maps=2)

    for k in range(2):
        expected = np.maximum(correlate2d(new, conv.filters_[k, :, :, 0], mode="valid"), 0)
        np.testing.assert_allclose(display.images_[1 + k].get_array(), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"3 channel\(s\), but .* with 1 channel"):
        FeatureMapsDisplay.from_estimator(conv, np.zeros((10, 10, 3)))
    with pytest.raises(ValueError, match="several sizes"):
        FeatureMapsDisplay.from_estimator(conv, np.zeros(100))


def test_displays_refuse_unfitted_or_foreign_estimators():
    with pytest.raises(NotFittedError):
        FilterBankDisplay.from_estimator(ConvFeatureTransformer())
    with pytest.raises(TypeError, match="ConvFeatureTransformer"):
        FeatureMapsDisplay.from_estimator(LogisticRegression(), np.zeros((4, 4)))


def test_feature_maps_of_an_image_of_any_size_after_a_fit_on_several_sizes():
    images = [
        _grey_images(n=1, shape=shape, seed=i)[0] for i, shape in enumerate([(9, 11), (14, 8)])
    ]
    conv = ConvFeatureTransformer(**_params(pool_size=None, pool_grid=2)).fit(images)
    image = _grey_images(n=1, shape=(12, 15), seed=5)[0]
    display = FeatureMapsDisplay.from_estimator(conv, image, max_maps=2)
    expected = np.maximum(correlate2d(image, conv.filters_[1, :, :, 0], mode="valid"), 0)
    np.testing.assert_allclose(display.images_[2].get_array(), expected, rtol=1e-4, atol=1e-5)
