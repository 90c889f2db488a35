"""ConvFeatureTransformer: the scikit-learn face of the filter banks and the engine."""

import math
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_array,
    check_is_fitted,
    validate_data,
)

from . import _dask
from ._bank import make_bank
from ._centring import feature_moments
from ._engine import pooled_features_of_groups
from ._filters import FILTER_BANKS, PATCH_BANKS, check_filter_array
from ._fit_memory import check_fit_memory
from ._limits import check_feature_range, check_transform_memory
from ._plan import make_plan
from ._shapes import check_sample_shape, to_images, training_shapes
from ._spec import check_params, make_spec, spec_of_plan_params
from ._threads import thread_count
from ._variants import ACTIVATIONS, POOLINGS

# Parameters documented as not changing the features: they may change after fit.
RUNTIME_PARAMETERS = frozenset({"n_jobs", "batch_size"})


def _is_image_list(X, several_shapes=True):
    """Whether ``X`` is a list (tuple, or 1-D object array) of images, arrays of 2 or 3
    dimensions: of several shapes, which NumPy cannot stack (equal shapes stack into an ordinary
    ``X``), or, with ``several_shapes=False``, of any shapes."""
    if isinstance(X, np.ndarray):
        if X.dtype != object or X.ndim != 1:
            return False
    elif not isinstance(X, (list, tuple)):
        return False
    shapes = {np.shape(item) for item in X}
    return (len(shapes) > 1 or not several_shapes) and all(len(s) in (2, 3) for s in shapes)


def _same_value(a, b):
    """Whether two values of a parameter are the same setting: arrays by value, generators as
    generators (they only seed fit), everything else by ``==``."""
    if isinstance(a, np.random.RandomState) or isinstance(b, np.random.RandomState):
        return isinstance(a, np.random.RandomState) and isinstance(b, np.random.RandomState)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and np.array_equal(a, b)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


class ConvFeatureTransformer(TransformerMixin, BaseEstimator):
    """Convolutional features of images: a filter bank, a nonlinearity and pooling.

    Each image is cross-correlated with every filter of a bank, the maps go through an
    activation, then they are pooled over local windows (``pool_size``) or onto a fixed grid
    (``pool_grid``). The pooled maps, flattened, are features for any scikit-learn estimator.

    Read more in the :ref:`User Guide <parameters>`.

    Parameters
    ----------
    n_filters : int, default=192
        Number of filters in the bank, shared among the dilations, or at most that many for
        a bank with fewer to give (``'pca'``; ``n_filters_`` says how many it holds). Like
        every integer parameter, it must be an int, not a bool.

    filter_size : int or (int, int), default=4
        Height and width of the filters. Clipped to the image, so that tiny images and 1-D
        signals work.

    dilation : int, tuple or list of int, default=(1, 2, 3)
        Spacing, in pixels, between the taps of the filters (1: adjacent): a filter of size
        ``k`` at dilation ``d`` sees a footprint of ``(k - 1) * d + 1`` pixels a side for the
        cost of ``k``, as MiniRocket's kernels. With several dilations, the ``n_filters``
        filters are shared evenly among them (the remainder to the smallest), each group
        learnt or drawn for its own dilation. A dilation whose footprint exceeds two thirds
        of the image's side is left out and its filters go to the others (``dilations_``
        says which each filter has), so small images get undilated filters only. Dilated
        filters always run on the GEMM path, and ``'valid'`` padding keeps the positions
        where the largest footprint fits (maps of all dilations share their centres).

    antialias : bool, default=True
        If True, filters at a dilation ``d`` above 1 read the image smoothed by a Gaussian of
        standard deviation ``d / 3`` (scikit-image's rule before sampling every ``d``
        pixels, edges repeated), in ``fit`` and ``transform``: their taps, ``d`` pixels
        apart, then respond to the image at their own scale instead of aliasing finer detail,
        as the low-pass filters of a wavelet or scattering transform. Undilated filters read
        the image itself. Without dilated filters, it has no effect.

    filter_init : {'kmeans', 'patches', 'pca', 'gaussian', 'uniform', 'gabor'} or \
            array-like, default='kmeans'
        How the bank is made. Learnt in ``fit`` from a random sample of at most
        ``max_patches`` patches of ``X`` (normalised if ``patch_norm``, then centred and, if
        ``whiten``, ZCA-whitened):

        - ``'kmeans'``: centroids of spherical k-means of the patches (Coates & Ng), with
          :class:`~sklearn.cluster.MiniBatchKMeans`;
        - ``'patches'``: random patches among the higher-contrast half of the sample;
        - ``'pca'``: the leading principal components of the patches (PCANet), best with
          ``whiten=False``. There are at most ``height * width * channels`` of them per
          dilation (16 for the default 4x4 grey filters), and one per patch sampled: asked
          for more, the bank holds all there are, with a warning, as
          :class:`~sklearn.preprocessing.QuantileTransformer` keeps at most ``n_samples``
          quantiles; ``n_filters_`` and the output follow it (48 filters on the defaults).

        Random or fixed, they read only the images' shape:

        - ``'gaussian'``: Gaussian random filters, zero mean, unit norm;
        - ``'uniform'``: uniform random filters in [-1, 1], unit norm;
        - ``'gabor'``: an oriented, multi-scale Gabor bank;
        - an array of shape ``(n_filters, h, w)`` or ``(n_filters, h, w, channels)``: these
          filters, used as given (``n_filters`` must match).

    image_shape : (int, int) or (int, int, int), default=None
        ``(height, width)`` or ``(height, width, channels)`` of the images when ``X`` is flat.
        With ``None``: a 3-D ``X`` ``(n, H, W)`` holds grey images, a 4-D ``X``
        ``(n, H, W, C)`` holds images with ``C`` channels; a flat ``X`` of width ``d`` holds
        square grey images when ``d`` is a perfect square, otherwise one-row images
        ``(1, d)`` (1-D signals), with a warning when ``d`` looks like flattened colour images.
        Flat colour images are read channels-last, as ``X.reshape(n, H, W, C)``.

    stride : int, default=1
        Step between the positions at which a filter is applied.

    padding : {'valid', 'same'}, default='same'
        ``'valid'`` applies filters only where they fit inside the image; ``'same'`` pads the
        image with zeros so that the maps have the image's size (before the stride), as
        :func:`scipy.signal.correlate2d` with ``mode='same'``.

    activation : {'relu', 'two_sided', 'abs', 'tanh', 'identity'}, default='relu'
        Nonlinearity applied to the maps ``z`` before pooling, with the ``threshold`` ``t``:
        ``relu(z - t)``; ``'two_sided'`` gives two maps per filter, ``relu(z - t)`` and
        ``relu(-z - t)`` (the soft threshold of Coates & Ng with the sign kept apart, as in
        MOSAIKS); ``'abs'`` is ``relu(|z| - t)``; ``'tanh'`` is ``tanh(z - t)``;
        ``'identity'`` is ``z - t``.

    threshold : float, default=0.0
        The threshold ``t`` of the activation, >= 0. In the units of the maps: with
        ``patch_norm`` and whitening, these are about unit variance.

    pooling : {'max', 'avg', 'rms', 'ppv'}, default='max'
        How values are combined inside each pooling region: maximum, mean, root mean square,
        or proportion of positive values (as ROCKET).

    pool_size : int, (int, int) or None, default=None
        Pool over non-overlapping windows of this size (clipped to the maps); a remainder of
        the map smaller than a window is dropped, and 1 means no pooling. Set either
        ``pool_size`` or ``pool_grid``, not both; with neither, the pyramid described under
        ``pool_grid``.

    pool_grid : int, (int, int), list of grids or None, default=None
        Pool each map onto a fixed grid of ``(rows, cols)`` nearly equal regions that cover
        the whole map, whatever the image size (for example 2 for quadrants, as Coates & Ng).
        A list of grids, each an int or a pair (or a tuple of pairs), is a spatial pyramid:
        the regions of every grid are concatenated, grid after grid, and the number of
        features does not depend on the image size; ``flatten=False`` needs one grid. With
        neither ``pool_grid`` nor ``pool_size``: the pyramid ``((1, 1), (2, 2), (3, 3))``
        (14 regions per map), or 2x2 windows when ``flatten=False`` (a pyramid has no map
        layout).

    balance_levels : bool, default=True
        If True, the features of each level (grid) of a pooling pyramid are multiplied by
        ``sqrt(N / (L * n))``, for a level of ``n`` of the ``N`` regions of ``L`` levels:
        every level then weighs the same in the features' inner products, and all together
        as much as unscaled features. On the default pyramid the whole-image maxima count
        2.16 times and the 3x3 grid's 0.72 times, so that a penalised linear model that
        follows leans on the coarse, shift-tolerant levels more and on the fine ones less.
        With one grid or windows, it has no effect.

    whiten : bool, default=True
        Whether banks learnt from patches are learnt on ZCA-whitened patches. The whitening
        (and the centring) is linear, so it is folded into ``filters_`` and ``bias_``:
        transform applies the filters to the raw images. Only for the banks learnt from
        patches ('kmeans', 'patches', 'pca'): the others ignore it.

    patch_norm : bool, default=True
        Normalise every patch the filters see to zero mean and unit variance, in fit and in
        transform (a local contrast normalisation over the filter's window), as Coates & Ng.
        A fraction of the mean patch variance of the training sample, ``patch_norm_eps_``, is
        added to each variance, so that flat patches stay flat. The features then do not
        depend on the pixels' scale or offset.

    max_patches : int, default=10_000
        Size of the random sample of patches that learnt banks and ``patch_norm`` are fitted
        on, so that fit stays fast on large ``X``. Without either (a random, Gabor or given
        bank and ``patch_norm=False``), or when ``X`` has fewer patches, it has no effect.

    flatten : bool, default=True
        If True, ``transform`` returns ``(n_samples, n_features_out)``. If False, it returns
        ``(n_samples, rows, cols, n_maps)`` images, so that another
        ``ConvFeatureTransformer`` can follow in a pipeline (then the pooling is windows or
        one grid, by default 2x2 windows).

    center : bool, default=True
        Subtract from the features their mean over (at most 1,000 of) the training images,
        learnt in ``fit`` a batch of images at a time (within 64 MiB of features and half the
        memory available), summed in float64: the features are then centred, so that a
        linear model that follows converges several times faster (LogisticRegression's
        solution does not change, as its intercept is not penalised). With ``False``, ReLU
        or ``abs`` features are >= 0.

    feature_norm : 'auto', float or None, default=None
        Multiply the features by one factor, learnt in ``fit`` on the images that ``center``
        reads, so that their root mean squared distance to their mean over those images is
        ``feature_norm``: whatever the bank, the pooling or the pixels' scale, the features
        then have the same overall size, so that a penalised linear model that follows
        (LogisticRegression's ``C``, a ridge's ``alpha``) is regularised alike for all of
        them. ``'auto'`` is ``sqrt(8000 / sqrt(n_samples))`` for the ``n_samples`` images of
        ``fit`` (5.7 on 60,000, 15.9 on 1,000): LogisticRegression's penalty at its default
        ``C=1`` then falls as ``1 / sqrt(n_samples)`` against its mean loss, the level that
        cross-validation found best on Fashion-MNIST and MNIST (``benchmarks/REAL.md``).
        None leaves the features unscaled. Features that do not vary over the training
        images are left unscaled. A ``StandardScaler`` after the features undoes it.

    random_state : int, RandomState instance or None, default=None
        Seeds the random filter banks and the sample of patches. Pass an int for reproducible
        filters and features. A given array of filters, and a Gabor bank on grey images, use
        no randomness.

    n_jobs : int, default=None
        Number of threads that compute batches at the same time; the transform uses this
        many cores in all (BLAS is limited to one thread per batch). ``None`` means 1 and
        ``-1`` all cores, whatever joblib backend is in effect: these are always threads of
        this process, so inside ``GridSearchCV(n_jobs=...)`` leave it at None. Results do not
        depend on it.

    batch_size : int or 'auto', default='auto'
        Number of images computed at once. ``'auto'`` keeps one batch's temporaries within a
        few tens of MB. Results do not depend on it.

    Attributes
    ----------
    filters_ : ndarray of shape (`n_filters_`, h, w, channels), float32
        The filter bank, applied to the raw (or, with ``patch_norm``, patch-normalised)
        images; learnt banks include the whitening.

    n_filters_ : int
        The filters the bank holds: ``n_filters``, or fewer for a ``'pca'`` bank asked for
        more components than there are.

    bias_ : ndarray of shape (`n_filters_`,), float32
        Added to each filter's map: the centring of learnt banks (zeros for the others).

    dilations_ : ndarray of shape (`n_filters_`,), int
        The dilation of each filter (the filters are grouped by dilation, in increasing
        order).

    patch_norm_eps_ : tuple of float or None
        The variance added to each patch's before dividing by it, one per dilation of
        ``dilations_`` (a fraction of the mean variance of that dilation's training
        patches); None without ``patch_norm``.

    feature_mean_ : ndarray of shape (n_features_out,) or `output_shape_`, float32, or None
        The mean features of the training images that ``transform`` subtracts (shaped as one
        image's features), before ``feature_scale_``; None with ``center=False``.

    feature_scale_ : float or None
        The factor that ``transform`` multiplies the (centred) features by; None with
        ``feature_norm=None``.

    image_shape_ : tuple of int
        The ``(height, width, channels)`` of the images; ``(None, None, channels)`` when
        fitted on a list of images of several sizes (``spec_.any_size``).

    spec_ : FeatureSpec
        The parameters that shape the features, parsed once in ``fit``, with what follows
        from the training images: the filters' ``filter_size`` (clipped to the images), the
        ``dilations`` kept and their filters, the pooling ``layout`` (windows, a grid or a
        pyramid), and ``any_size``, whether ``fit`` saw images of several sizes (each size
        then gets features of one length). Plain frozen data
        (``sklearn_convfeat._spec.FeatureSpec``): what the plans are made from, and what the
        command line, the plots and the Dask path read.

    output_shape_ : tuple of int
        The shape of the features of one image: ``(rows, cols, n_maps)``, or
        ``(n_regions, n_maps)`` with a pyramid of grids (the default). ``n_maps`` is
        ``n_filters_``, twice that with ``activation='two_sided'``.

    n_features_in_ : int
        Number of features seen during fit (``X.shape[1]``).

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit. Defined only when ``X`` has feature names that
        are all strings.

    See Also
    --------
    sklearn.kernel_approximation.RBFSampler : Random Fourier features for flat vectors.
    sklearn.feature_extraction.image.extract_patches_2d : Patches of images.

    Notes
    -----
    The output is float32, whatever the input dtype. The features of a sample never depend on
    the other samples in ``X``, bit for bit, nor on ``n_jobs`` or ``batch_size``.

    What ``X`` may hold (anything else raises an error that names the problem):

    - any real dtype: booleans are read as 0 and 1; integers, float16 and float64 are cast to
      float32. Strings (even numeric ones), complex numbers, NaN and infinities are rejected
      with a ValueError, and so are values so large that the features could overflow float32;
    - dense arrays only: a scipy sparse matrix raises a TypeError (convert it with
      ``.toarray()``), because images are dense and a silent conversion could exhaust memory;
    - 2-D, 3-D or 4-D arrays with no empty axis; 1-D and 5-D arrays raise a ValueError;
    - in ``transform``, images of the shape seen in ``fit`` and, for a DataFrame, the same
      columns in the same order.

    Random filters larger than the image are clipped to it (so are ``pool_size`` and
    ``pool_grid`` to the maps); a ``filter_init`` array must fit in the images.

    ``fit`` decides, once, everything that depends only on the parameters and the image
    shape (filter size, padding, convolution method, pooling regions, output shape, feature
    names, working memory); ``transform`` runs that plan. So a parameter changed with
    ``set_params`` acts at the next ``fit``; ``transform`` refuses to run a plan made for
    other parameters (``n_jobs`` and ``batch_size`` excepted, which never change the
    features).
    Before allocating, ``fit`` and ``transform`` compare the memory they need with the memory
    available and raise :class:`~sklearn_convfeat.MemoryLimitError` if it does not fit:
    ``fit`` counts, before sampling or learning anything, the random bank, the patches of
    each dilation with the bank learnt from them, a dask array's samples and the centring's
    batches; ``transform`` its output and working memory. The memory available is the
    smallest of ``MemAvailable`` (Linux's ``/proc/meminfo``; else the physical memory), the
    memory cgroup's limit less its usage (containers, batch jobs: cgroup v2 ``memory.max``
    less ``memory.current``, v1 ``memory.limit_in_bytes`` less ``memory.usage_in_bytes``,
    for the process's cgroup and its parents) and ``RLIMIT_AS`` / ``RLIMIT_DATA``
    (``ulimit -v`` / ``-d``) less what the process maps (the guide's "Errors and
    guarantees" says how each is read).

    References
    ----------
    A. Coates, H. Lee and A. Y. Ng, "An Analysis of Single-Layer Networks in Unsupervised
    Feature Learning", AISTATS 2011.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_convfeat import ConvFeatureTransformer
    >>> X, y = load_digits(return_X_y=True)
    >>> conv = ConvFeatureTransformer(n_filters=16, random_state=0).fit(X)
    >>> conv.image_shape_
    (8, 8, 1)
    >>> conv.transform(X[:3]).shape
    (3, 224)
    >>> conv.get_feature_names_out()[:3].tolist()
    ['f0_g1x1_y0_x0', 'f1_g1x1_y0_x0', 'f2_g1x1_y0_x0']
    """

    _parameter_constraints = {
        "n_filters": [Interval(Integral, 1, None, closed="left")],
        "filter_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "dilation": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "antialias": ["boolean"],
        "filter_init": [StrOptions(set(FILTER_BANKS) | set(PATCH_BANKS)), "array-like"],
        "image_shape": [None, tuple, list],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "padding": [StrOptions({"valid", "same"})],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "threshold": [Interval(Real, 0, None, closed="left")],
        "pooling": [StrOptions(set(POOLINGS))],
        "pool_size": [None, Interval(Integral, 1, None, closed="left"), tuple, list],
        "pool_grid": [None, Interval(Integral, 1, None, closed="left"), tuple, list],
        "balance_levels": ["boolean"],
        "whiten": ["boolean"],
        "patch_norm": ["boolean"],
        "max_patches": [Interval(Integral, 1, None, closed="left")],
        "flatten": ["boolean"],
        "center": ["boolean"],
        "feature_norm": [None, StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "n_jobs": [None, Integral],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        n_filters=192,
        filter_size=4,
        dilation=(1, 2, 3),
        antialias=True,
        filter_init="kmeans",
        image_shape=None,
        stride=1,
        padding="same",
        activation="relu",
        threshold=0.0,
        pooling="max",
        pool_size=None,
        pool_grid=None,
        balance_levels=True,
        whiten=True,
        patch_norm=True,
        max_patches=10_000,
        flatten=True,
        center=True,
        feature_norm=None,
        random_state=None,
        n_jobs=None,
        batch_size="auto",
    ):
        self.n_filters = n_filters
        self.filter_size = filter_size
        self.dilation = dilation
        self.antialias = antialias
        self.filter_init = filter_init
        self.image_shape = image_shape
        self.stride = stride
        self.padding = padding
        self.activation = activation
        self.threshold = threshold
        self.pooling = pooling
        self.pool_size = pool_size
        self.pool_grid = pool_grid
        self.balance_levels = balance_levels
        self.whiten = whiten
        self.patch_norm = patch_norm
        self.max_patches = max_patches
        self.flatten = flatten
        self.center = center
        self.feature_norm = feature_norm
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.batch_size = batch_size

    def _check_params(self):
        """Checks that the constraints cannot say (:func:`~sklearn_convfeat._spec.check_params`):
        no booleans for ints, pairs, pooling, image_shape, n_jobs."""
        check_params(self.get_params(deep=False))

    def _validate_X(self, X, reset):
        """``X`` as a numeric array of 2 to 4 dimensions with no empty axis, in its own dtype,
        or, for a list of images of several sizes, as a list of ``(H, W, C)`` arrays.

        The dtype is kept (booleans, integers and float16 included) so that ``transform`` can
        check the range of the values before casting them to float32. A dask array is checked
        from its metadata only.
        """
        if _dask.is_dask_array(X):
            return _dask.check_dask_array(self, X, reset=reset)
        if self._reads_image_list(X, reset):
            return self._validate_image_list(X, reset)
        X = validate_data(
            self, X, reset=reset, allow_nd=True, dtype="numeric", ensure_min_features=1
        )
        if X.ndim > 4:
            raise ValueError(
                f"X must be 2-D (n_samples, n_features), 3-D (n_samples, height, width) or 4-D "
                f"(n_samples, height, width, channels); got a {X.ndim}-D array of shape "
                f"{X.shape}. Stack or reshape the images into one of these layouts."
            )
        if 0 in X.shape[1:]:
            raise ValueError(
                f"X has an empty axis: shape {X.shape}. Images need at least one row, one "
                f"column and one channel."
            )
        return X

    def _reads_image_list(self, X, reset):
        """Whether ``X`` is read as a list of images of any sizes: in fit, a list of several
        shapes (images of one shape stack into an ordinary ``X``); in transform, any input
        after a fit on several shapes, and a list of images unlike those seen in fit."""
        if reset:
            return _is_image_list(X)
        if self.spec_.any_size:
            return True
        if not _is_image_list(X, several_shapes=False):
            return False
        fitted = tuple(self.image_shape_)
        return any((*np.shape(image), 1)[:3] != fitted for image in X)

    def _validate_image_list(self, X, reset):
        """The images of a list of images of several sizes, each ``(H, W, C)``, checked."""
        if self.pool_size is not None:
            raise ValueError(
                f"X holds images of several sizes (or of a size unlike fit's), and "
                f"pool_size={self.pool_size!r} pools over windows, whose number depends on the "
                "image size; use pool_grid (one grid or a pyramid of grids, the default) for "
                "features of one length."
            )
        images = []
        for i, image in enumerate(X):
            shape = np.shape(image)
            if len(shape) not in (2, 3) or 0 in shape:
                raise ValueError(
                    f"X[{i}] has shape {shape}; each image of a list must be (height, width) "
                    f"or (height, width, channels), with no empty axis."
                )
            image = check_array(
                image, ensure_2d=False, allow_nd=True, dtype="numeric", input_name=f"X[{i}]"
            )
            images.append(image if image.ndim == 3 else image[:, :, None])
        channels = {image.shape[2] for image in images}
        if len(channels) > 1:
            raise ValueError(
                f"X holds images with {sorted(channels)} channels; every image of a list must "
                "have the same number of channels (convert them all to grey or all to RGB)."
            )
        if reset:
            for name in ("n_features_in_", "feature_names_in_"):
                if hasattr(self, name):
                    delattr(self, name)
        elif self.image_shape_[2] not in channels:
            raise ValueError(
                f"X holds images with {channels.pop()} channels, but {type(self).__name__} was "
                f"fitted on images with {self.image_shape_[2]}."
            )
        return images

    def fit(self, X, y=None):
        """Make the filter bank and the plan of the transform for images like those in ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, H, W) or \
                (n_samples, H, W, C), or list of arrays of shape (H_i, W_i) or (H_i, W_i, C)
            Training images. Random banks read only their shape. A ``dask.array.Array`` is
            checked from its metadata, without computing it. A list of images of several
            sizes needs a pooling onto a grid or a pyramid (``pool_grid``, or the default).

        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted transformer.

        Raises
        ------
        MemoryLimitError
            If a step would need more memory than is available: drawing a random bank,
            sampling the patches of a dilation and learning its filters, a dask array's
            samples, or centring one batch of images (features of one image at least, and
            their mean). Raised before anything is sampled or learnt; the message gives the
            size and how to cut it.

        Warns
        -----
        UserWarning
            If a ``'pca'`` bank holds fewer filters than ``n_filters`` (see ``filter_init``).
        """
        self._validate_params()
        self._check_params()
        X = self._validate_X(X, reset=True)
        any_size = isinstance(X, list)
        shapes, fit_shape, image_shape = training_shapes(X, self.image_shape)
        filter_init, filter_size = self.filter_init, None
        if not isinstance(filter_init, str):
            filter_init = check_filter_array(filter_init, self.n_filters, fit_shape[2], fit_shape)
            filter_size = filter_init.shape[1:3]
        params = self.get_params(deep=False)
        spec = make_spec(params, fit_shape, filter_size=filter_size, any_size=any_size)
        random_state = check_random_state(self.random_state)

        def training_images():
            sample = _dask.sample_rows(X, random_state) if _dask.is_dask_array(X) else X
            return sample if any_size else to_images(sample, image_shape)

        moments = self.center or self.feature_norm is not None
        center_batch = check_fit_memory(
            X,
            spec,
            image_shape,
            shapes,
            filter_init=filter_init,
            max_patches=self.max_patches,
            moments=moments,
            n_jobs=self.n_jobs,
        )
        bank = make_bank(
            spec,
            filter_init,
            fit_shape[2],
            training_images,
            random_state,
            whiten=self.whiten,
            max_patches=self.max_patches,
        )
        if bank.dilations != spec.dilations:
            # A bank with a natural maximum ('pca') holds fewer filters than asked for.
            spec = replace(spec, n_filters=len(bank.filters), dilations=bank.dilations)
        self.filters_, self.bias_, self.patch_norm_eps_ = bank.filters, bank.bias, bank.eps
        self.image_shape_ = image_shape
        self.n_filters_ = spec.n_filters
        self.dilations_ = spec.filter_dilations()
        self.spec_ = spec
        # Every shape's plan now: it checks that the maps of each image hold the grids.
        for shape in shapes if any_size else [image_shape]:
            make_plan(spec, shape)
        self._plan_shape = shapes[0] if any_size else image_shape
        self.output_shape_ = self._plan_of().output_shape
        self._fitted_params = {
            name: value for name, value in params.items() if name not in RUNTIME_PARAMETERS
        }
        self.feature_mean_ = self.feature_scale_ = None
        if moments:
            self._fit_moments(X, random_state, center_batch)
        return self

    def _fit_moments(self, X, random_state, batch_size):
        """``feature_mean_`` (with ``center``) and ``feature_scale_`` (with ``feature_norm``)
        from the features of the training images ``X``, ``batch_size`` at a time."""
        mean, scale = feature_moments(
            self._features,
            X,
            random_state,
            batch_size,
            image_shape=self.image_shape_,
            n_features=math.prod(self.output_shape_),
            feature_norm=self.feature_norm,
        )
        if self.center:
            self.feature_mean_ = mean if self.spec_.flatten else mean.reshape(self.output_shape_)
        if self.feature_norm is not None:
            self.feature_scale_ = scale

    def _plan_of(self, image_shape=None):
        """The plan of images of ``image_shape`` (by default, of those seen in ``fit``; the
        smallest shape, with ``spec_.any_size``)."""
        return make_plan(self.spec_, self._plan_shape if image_shape is None else image_shape)

    def __setstate__(self, state):
        # An estimator saved before these parameters existed made the features they now
        # default to turning off.
        state = {
            "antialias": False,
            "balance_levels": False,
            "feature_norm": None,
            "feature_scale_": None,
            **state,
        }
        if "filters_" in state and "n_filters_" not in state:
            state["n_filters_"] = len(state["filters_"])
        if "_plan_params" in state:
            state = {name: value for name, value in state.items() if name != "_plan"}
            state["spec_"], state["_plan_shape"] = spec_of_plan_params(state.pop("_plan_params"))
        super().__setstate__(state)

    def _check_unchanged(self):
        """Raise if a parameter that shapes the features changed since fit: the fitted plan
        would not be what the parameters say."""
        params = self.get_params(deep=False)
        changed = [
            name
            for name, value in self._fitted_params.items()
            if not _same_value(params[name], value)
        ]
        if changed:
            listing = ", ".join(
                f"{name} ({self._fitted_params[name]!r} -> {params[name]!r})" for name in changed
            )
            raise ValueError(
                f"{listing} changed since fit, and the fitted filters and plan follow the "
                f"parameters of fit; call fit again (only n_jobs and batch_size may change "
                f"after fit)."
            )

    def transform(self, X):
        """Compute the pooled convolutional features of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, H, W) or \
                (n_samples, H, W, C), or list of arrays of shape (H_i, W_i) or (H_i, W_i, C)
            Images shaped as in ``fit``, or a list of images of any sizes (with the channels
            seen in fit) when the pooling is onto a grid or a pyramid. A
            ``dask.array.Array`` chunked along the samples gives a lazy result.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out) or \
                (n_samples, rows, cols, n_maps), float32
            The features; 4-D when ``flatten=False``. For a dask array, a dask array chunked
            along the samples as ``X``, each block computed by this method on the matching
            block of ``X`` (single-threaded: dask runs blocks in parallel); the errors below
            then come from the blocks, when they are computed.

        Raises
        ------
        ValueError
            If ``X`` holds images unlike those seen in ``fit``, non-finite values, or values
            so large that the features could overflow float32; or if a parameter other than
            ``n_jobs`` and ``batch_size`` changed since ``fit``.
        TypeError
            If ``X`` is a sparse matrix.
        MemoryLimitError
            If the features and the working memory of the batches computed at once (their
            chunks' buffers and, for input that is not float32, their float32 copies) would
            need more memory than is available. Nothing is allocated; transform ``X`` in
            chunks or make fewer features.
        """
        check_is_fitted(self)
        self._check_unchanged()
        X = self._validate_X(X, reset=False)
        if _dask.is_dask_array(X):
            if not self.spec_.any_size:
                check_sample_shape(X.shape[1:], self.image_shape_, type(self).__name__)
            return _dask.transform(self, X)
        features = self._features(X)
        if self.spec_.flatten:
            features = features.reshape(len(features), -1)
        if self.feature_mean_ is not None:
            features -= self.feature_mean_
        if self.feature_scale_ is not None:
            features *= np.float32(self.feature_scale_)
        return features

    def _features(self, X):
        """The features of validated images (an array, or a list of images of any sizes),
        ``(n_samples, *output_shape_)``, before centring."""
        if isinstance(X, list):
            shapes = {}
            for index, image in enumerate(X):
                shapes.setdefault(image.shape, []).append(index)
            groups = [
                (self._plan_of(shape), [X[i] for i in shapes[shape]]) for shape in sorted(shapes)
            ]
            order = np.concatenate([shapes[plan.image_shape] for plan, _ in groups])
        else:
            plan = self._plan_of()
            check_sample_shape(X.shape[1:], plan.image_shape, type(self).__name__)
            groups, order = [(plan, to_images(X, plan.image_shape))], None
        for plan, images in groups:
            values = images if isinstance(images, list) else [images]
            largest = max(max(float(x.max()), -float(x.min())) for x in values)
            check_feature_range(largest, self.filters_, plan)
        batch_size = None if self.batch_size == "auto" else self.batch_size
        check_transform_memory(groups, self.output_shape_, batch_size, thread_count(self.n_jobs))
        parts = pooled_features_of_groups(
            groups,
            self.filters_,
            self.bias_,
            self.patch_norm_eps_,
            n_jobs=self.n_jobs,
            batch_size=batch_size,
        )
        if order is None:
            return parts[0]
        features = np.empty((len(order), *self.output_shape_), dtype=np.float32)
        features[order] = np.concatenate(parts)
        return features

    def get_feature_names_out(self, input_features=None):
        """Names of the output features, in the order of the flattened output.

        ``f{filter}_y{row}_x{col}`` in the order row, column, filter. With
        ``activation='two_sided'``, each filter gives ``f{filter}_pos`` then ``f{filter}_neg``
        maps (all filters' positive parts, then all negative parts). With a pyramid of grids,
        the names are ``{map}_g{rows}x{cols}_y{row}_x{col}``, grid after grid.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the names seen in ``fit``.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        return np.asarray(self._plan_of().feature_names(), dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
