"""Pictures of a fitted transformer, in scikit-learn's Display style.

``FilterBankDisplay`` draws the filters; ``FeatureMapsDisplay`` draws one image and what the
filters see in it. Each has ``from_estimator`` and ``plot(ax=...)``. Needs matplotlib
(``pip install "sklearn-convfeat[plot]"``), imported only when drawing.
"""

import math

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._engine import feature_maps
from ._optional import import_optional
from ._plan import make_plan
from ._shapes import check_sample_shape, to_images
from ._transformer import ConvFeatureTransformer


def _split_estimator(estimator):
    """The first ConvFeatureTransformer of ``estimator`` and the steps before it (or None)."""
    if isinstance(estimator, ConvFeatureTransformer):
        check_is_fitted(estimator)
        return estimator, None
    if isinstance(estimator, Pipeline):
        for i, (_, step) in enumerate(estimator.steps):
            if isinstance(step, ConvFeatureTransformer):
                check_is_fitted(step)
                return step, (estimator[:i] if i else None)
    raise TypeError(
        "estimator must be a fitted ConvFeatureTransformer or a Pipeline holding one, got "
        f"{type(estimator).__name__}."
    )


def _panel_axes(ax, n_panels, n_cols):
    """A 2-D array of Axes for ``n_panels`` panels, and the figure.

    ``ax`` is None (a new figure), one Axes (its area is divided into the grid), or an array
    of at least ``n_panels`` Axes used as they are.
    """
    plt = import_optional("matplotlib.pyplot")
    if n_cols is None:
        n_cols = math.ceil(math.sqrt(n_panels))
    n_rows = math.ceil(n_panels / n_cols)
    if ax is None:
        fig, axes = plt.subplots(
            n_rows,
            n_cols,
            figsize=(1.5 * n_cols, 1.6 * n_rows),
            squeeze=False,
            layout="constrained",
        )
        return axes, fig
    if isinstance(ax, np.ndarray | list | tuple):
        axes = np.asarray(ax, dtype=object).ravel()
        if axes.size < n_panels:
            raise ValueError(f"ax holds {axes.size} Axes, but {n_panels} panels are drawn.")
        return axes.reshape(1, -1), axes[0].figure
    fig = ax.figure
    ax.set_axis_off()
    grid = ax.get_subplotspec().subgridspec(n_rows, n_cols, wspace=0.1, hspace=0.1)
    axes = np.empty((n_rows, n_cols), dtype=object)
    for i in range(n_rows):
        for j in range(n_cols):
            axes[i, j] = fig.add_subplot(grid[i, j])
    return axes, fig


def _as_picture(array):
    """A ``(h, w, c)`` array as imshow data: 2-D (the first channel) when it has fewer than three
    channels, else its first three channels as RGB rescaled to [0, 1]."""
    if array.shape[-1] < 3:
        return array[..., 0]
    array = array[..., :3]
    low, high = array.min(), array.max()
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def _plan_for(transformer, sample_shape):
    """The plan of the transformer for one sample of ``sample_shape``: the plan of fit, or,
    when it was fitted on images of several sizes, the plan of the sample's own size."""
    channels = transformer.image_shape_[2]
    if not transformer.spec_.any_size:
        return make_plan(transformer.spec_, transformer.image_shape_)
    if len(sample_shape) not in (2, 3):
        raise ValueError(
            f"image has shape {tuple(sample_shape)}, but {type(transformer).__name__} was "
            "fitted on images of several sizes: pass one (height, width) or (height, width, "
            "channels) image."
        )
    shape = (*sample_shape[:2], sample_shape[2] if len(sample_shape) == 3 else 1)
    if shape[2] != channels:
        raise ValueError(
            f"image has {shape[2]} channel(s), but {type(transformer).__name__} was fitted on "
            f"images with {channels} channel(s)."
        )
    return make_plan(transformer.spec_, shape)


class FilterBankDisplay:
    """The filters of a fitted ConvFeatureTransformer, one small picture each.

    Single-channel filters are drawn with their raw values, on a diverging colormap centred
    on zero (each filter on its own symmetric scale, so that wide, faint filters show);
    filters with three or more channels as RGB
    pictures of their first three channels, each filter rescaled to [0, 1]; two-channel
    filters by their first channel.

    Create it with :meth:`from_estimator`.

    Parameters
    ----------
    filters : ndarray of shape (n_filters, h, w, channels)
        The filters to draw.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes
        One Axes per panel; the panels past the last filter are hidden.

    images_ : list of matplotlib AxesImage
        The picture of each filter, in order.

    figure_ : matplotlib Figure
        The figure holding the panels.
    """

    def __init__(self, filters):
        self.filters = filters

    @classmethod
    def from_estimator(cls, estimator, *, max_filters=64, ax=None, n_cols=None, cmap="RdBu_r"):
        """Draw the filters of a fitted transformer.

        Parameters
        ----------
        estimator : ConvFeatureTransformer or Pipeline
            Fitted; in a pipeline, the first ConvFeatureTransformer is drawn.

        max_filters : int, default=64
            Draw at most the first ``max_filters`` filters.

        ax : matplotlib Axes, array of Axes or None, default=None
            Where to draw: None makes a new figure; one Axes is divided into a grid of
            panels; an array of Axes gets one filter each.

        n_cols : int, default=None
            Number of panel columns; by default the grid is about square.

        cmap : str or Colormap, default='RdBu_r'
            Colormap of single-channel filters.

        Returns
        -------
        display : FilterBankDisplay
        """
        transformer, _ = _split_estimator(estimator)
        return cls(transformer.filters_[:max_filters]).plot(ax=ax, n_cols=n_cols, cmap=cmap)

    def plot(self, *, ax=None, n_cols=None, cmap="RdBu_r"):
        """Draw the filters.

        Parameters
        ----------
        ax : matplotlib Axes, array of Axes or None, default=None
            See :meth:`from_estimator`.

        n_cols : int, default=None
            Number of panel columns.

        cmap : str or Colormap, default='RdBu_r'
            Colormap of single-channel filters.

        Returns
        -------
        self : FilterBankDisplay
        """
        filters = np.asarray(self.filters)
        axes, fig = _panel_axes(ax, len(filters), n_cols)
        self.images_ = []
        for panel, filt in zip(axes.ravel(), filters, strict=False):
            picture = _as_picture(filt)
            limit = float(np.abs(picture).max()) or 1.0
            kwargs = dict(cmap=cmap, vmin=-limit, vmax=limit) if picture.ndim == 2 else {}
            self.images_.append(panel.imshow(picture, interpolation="nearest", **kwargs))
        for panel in axes.ravel():
            panel.set_axis_off()
        self.axes_, self.figure_ = axes, fig
        return self


class FeatureMapsDisplay:
    """One image and its feature maps: what each filter responds to, before pooling.

    The maps are those of the fitted transformer (convolution, stride, padding and
    activation) without pooling, so that they have about the image's resolution.

    Create it with :meth:`from_estimator`.

    Parameters
    ----------
    image : ndarray of shape (height, width, channels)
        The image, as the transformer sees it.

    maps : ndarray of shape (rows, cols, n_maps)
        The feature maps to draw.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes
        One Axes per panel: the image first, then the maps; extra panels are hidden.

    images_ : list of matplotlib AxesImage
        The picture of the image, then of each map, in order.

    figure_ : matplotlib Figure
        The figure holding the panels.
    """

    def __init__(self, image, maps):
        self.image = image
        self.maps = maps

    @classmethod
    def from_estimator(cls, estimator, image, *, max_maps=15, ax=None, n_cols=None, cmap="viridis"):
        """Compute and draw the feature maps of one image.

        Parameters
        ----------
        estimator : ConvFeatureTransformer or Pipeline
            Fitted; in a pipeline, the steps before the first ConvFeatureTransformer are
            applied to the image first.

        image : array-like
            One sample, shaped as one row of the ``X`` given to ``fit``: flat
            ``(n_features,)``, ``(height, width)`` or ``(height, width, channels)``. For a
            transformer fitted on a list of images of several sizes, ``(height, width)`` or
            ``(height, width, channels)`` of any size, with the channels seen in fit.

        max_maps : int, default=15
            Draw the maps of at most the first ``max_maps`` filters.

        ax : matplotlib Axes, array of Axes or None, default=None
            Where to draw: None makes a new figure; one Axes is divided into a grid of
            panels; an array of Axes gets one panel each.

        n_cols : int, default=None
            Number of panel columns; by default the grid is about square.

        cmap : str or Colormap, default='viridis'
            Colormap of the maps (a grey image is drawn in grey).

        Returns
        -------
        display : FeatureMapsDisplay
        """
        transformer, before = _split_estimator(estimator)
        X = np.asarray(image)[np.newaxis]
        if before is not None:
            X = before.transform(X)
        plan = _plan_for(transformer, np.shape(X)[1:])
        check_sample_shape(np.shape(X)[1:], plan.image_shape, type(transformer).__name__)
        picture = to_images(np.asarray(X, dtype=np.float32), plan.image_shape)
        maps = feature_maps(
            picture, plan, transformer.filters_, transformer.bias_, transformer.patch_norm_eps_
        )
        return cls(picture[0], maps[0, :, :, :max_maps]).plot(ax=ax, n_cols=n_cols, cmap=cmap)

    def plot(self, *, ax=None, n_cols=None, cmap="viridis"):
        """Draw the image and its maps.

        Parameters
        ----------
        ax : matplotlib Axes, array of Axes or None, default=None
            See :meth:`from_estimator`.

        n_cols : int, default=None
            Number of panel columns.

        cmap : str or Colormap, default='viridis'
            Colormap of the maps (a grey image is drawn in grey).

        Returns
        -------
        self : FeatureMapsDisplay
        """
        maps = np.asarray(self.maps)
        n_maps = maps.shape[-1]
        axes, fig = _panel_axes(ax, 1 + n_maps, n_cols)
        panels = axes.ravel()
        picture = _as_picture(np.asarray(self.image)[..., :3])
        self.images_ = [panels[0].imshow(picture, cmap="gray" if picture.ndim == 2 else None)]
        panels[0].set_title("image", fontsize=8)
        for k in range(n_maps):
            self.images_.append(panels[1 + k].imshow(maps[:, :, k], cmap=cmap))
            panels[1 + k].set_title(f"filter {k}", fontsize=8)
        for panel in panels:
            panel.set_axis_off()
        self.axes_, self.figure_ = axes, fig
        return self
