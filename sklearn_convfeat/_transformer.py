"""ConvFeatureTransformer: the scikit-learn face of the filter banks and the engine."""

import math
from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from . import _dask
from ._engine import ACTIVATIONS, transform_images
from ._filters import FILTER_BANKS, check_filter_array
from ._limits import (
    bank_bytes,
    check_feature_range,
    check_memory,
    feature_gain,
    format_bytes,
    transform_bytes,
)
from ._shapes import as_pair, clip_filter_size, pooled_shape, resolve_image_shape, to_images


def _is_int(value):
    return isinstance(value, (Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_pair(name, value, minimum=1):
    """Validate an int-or-pair parameter; return it as a pair of ints."""
    values = (value, value) if _is_int(value) else value
    if not isinstance(values, (tuple, list)) or len(values) != 2 or not all(map(_is_int, values)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}.")
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum} in each direction, got {value!r}.")
    return int(values[0]), int(values[1])


class ConvFeatureTransformer(TransformerMixin, BaseEstimator):
    """Convolutional features of images: a filter bank, a nonlinearity and pooling.

    Each image is cross-correlated with every filter of a bank, the maps go through an
    activation, then they are pooled over local windows (``pool_size``) or onto a fixed grid
    (``pool_grid``). The pooled maps, flattened, are features for any scikit-learn estimator.

    Read more in the README.

    Parameters
    ----------
    n_filters : int, default=64
        Number of filters in the bank. Like every integer parameter, it must be an int, not
        a bool.

    filter_size : int or (int, int), default=5
        Height and width of the filters. Clipped to the image, so that tiny images and 1-D
        signals work.

    filter_init : {'gaussian', 'uniform', 'gabor'} or array-like, default='gaussian'
        How the bank is made:

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

    padding : {'valid', 'same'}, default='valid'
        ``'valid'`` applies filters only where they fit inside the image; ``'same'`` pads the
        image with zeros so that the maps have the image's size (before the stride), as
        :func:`scipy.signal.correlate2d` with ``mode='same'``.

    activation : {'relu', 'abs', 'tanh', 'identity'}, default='relu'
        Nonlinearity applied to the maps before pooling.

    pooling : {'max', 'avg'}, default='max'
        How values are combined inside each pooling region.

    pool_size : int or (int, int), default=2
        Size of the non-overlapping pooling windows (clipped to the maps). A remainder of the
        map smaller than a window is dropped. 1 means no pooling. Ignored when ``pool_grid``
        is set.

    pool_grid : int or (int, int), default=None
        Pool each map onto a fixed grid of ``(rows, cols)`` nearly equal regions that cover
        the whole map, whatever the image size (for example 2 for quadrants, as Coates & Ng).

    flatten : bool, default=True
        If True, ``transform`` returns ``(n_samples, n_features_out)``. If False, it returns
        ``(n_samples, rows, cols, n_filters)`` images, so that another
        ``ConvFeatureTransformer`` can follow in a pipeline.

    random_state : int, RandomState instance or None, default=None
        Seeds the random filter banks. Pass an int for reproducible filters and features.

    n_jobs : int, default=None
        Number of threads that compute batches at the same time; the transform uses this
        many cores in all (BLAS is limited to one thread per batch). ``None`` means 1 unless
        in a :obj:`joblib.parallel_backend` context; ``-1`` means all cores. Results do not
        depend on it.

    batch_size : int or 'auto', default='auto'
        Number of images computed at once. ``'auto'`` keeps one batch's temporaries within a
        few tens of MB. Results do not depend on it.

    Attributes
    ----------
    filters_ : ndarray of shape (n_filters, h, w, channels), float32
        The filter bank.

    image_shape_ : tuple of int
        The ``(height, width, channels)`` of the images.

    output_shape_ : tuple of int
        The ``(rows, cols, n_filters)`` of the features of one image.

    n_features_in_ : int
        Number of features seen during fit (``X.shape[1]``).

    feature_names_in_ : ndarray of shape (n_features_in_,)
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

    Random filters larger than the image are clipped to it (so are ``stride``, ``pool_size``
    and ``pool_grid`` to the maps); a ``filter_init`` array must fit in the images.
    Before allocating, ``fit`` (random banks) and ``transform`` compare the memory they need
    with the memory available (``MemAvailable`` on Linux, else the physical memory) and raise
    :class:`~sklearn_convfeat.MemoryLimitError` if it does not fit.

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
    (3, 64)
    >>> conv.get_feature_names_out()[:3].tolist()
    ['f0_y0_x0', 'f1_y0_x0', 'f2_y0_x0']
    """

    _parameter_constraints = {
        "n_filters": [Interval(Integral, 1, None, closed="left")],
        "filter_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "filter_init": [StrOptions(set(FILTER_BANKS)), "array-like"],
        "image_shape": [None, tuple, list],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "padding": [StrOptions({"valid", "same"})],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "pooling": [StrOptions({"max", "avg"})],
        "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "pool_grid": [None, Interval(Integral, 1, None, closed="left"), tuple, list],
        "flatten": ["boolean"],
        "random_state": ["random_state"],
        "n_jobs": [None, Integral],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        n_filters=64,
        filter_size=5,
        filter_init="gaussian",
        image_shape=None,
        stride=1,
        padding="valid",
        activation="relu",
        pooling="max",
        pool_size=2,
        pool_grid=None,
        flatten=True,
        random_state=None,
        n_jobs=None,
        batch_size="auto",
    ):
        self.n_filters = n_filters
        self.filter_size = filter_size
        self.filter_init = filter_init
        self.image_shape = image_shape
        self.stride = stride
        self.padding = padding
        self.activation = activation
        self.pooling = pooling
        self.pool_size = pool_size
        self.pool_grid = pool_grid
        self.flatten = flatten
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.batch_size = batch_size

    def _check_params(self):
        """Checks that the constraints cannot say: no booleans for ints, pairs, image_shape,
        n_jobs."""
        # bool is an Integral for Python, but n_filters=True is a bug, not one filter.
        for name in ("n_filters", "stride", "n_jobs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got the boolean {value!r}.")
        _check_pair("filter_size", self.filter_size)
        _check_pair("pool_size", self.pool_size)
        if self.pool_grid is not None:
            _check_pair("pool_grid", self.pool_grid)
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if not all(map(_is_int, shape)):
                raise TypeError(
                    f"image_shape must hold ints (height, width[, channels]), got "
                    f"{self.image_shape!r}."
                )
            if len(shape) not in (2, 3) or min(shape) < 1:
                raise ValueError(
                    "image_shape must be None, (height, width) or (height, width, channels) "
                    f"with positive ints, got {self.image_shape!r}."
                )
        if self.n_jobs == 0:
            raise ValueError("n_jobs must be a non-zero int or None (-1 means all cores), got 0.")

    def _validate_X(self, X, reset):
        """``X`` as a numeric array of 2 to 4 dimensions with no empty axis, in its own dtype.

        The dtype is kept (booleans, integers and float16 included) so that ``transform`` can
        check the range of the values before casting them to float32. A dask array is checked
        from its metadata only.
        """
        if _dask.is_dask_array(X):
            return _dask.check_dask_array(self, X, reset=reset)
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

    def fit(self, X, y=None):
        """Make the filter bank for images like those in ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, H, W) or \
                (n_samples, H, W, C)
            Training images. Random banks read only their shape. A ``dask.array.Array`` is
            checked from its metadata, without computing it.

        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        self._validate_params()
        self._check_params()
        X = self._validate_X(X, reset=True)
        image_shape = resolve_image_shape(X.shape, self.image_shape)
        random_state = check_random_state(self.random_state)
        if isinstance(self.filter_init, str):
            filter_size = clip_filter_size(self.filter_size, image_shape)
            check_memory(
                bank_bytes(self.n_filters, filter_size, image_shape[2]),
                f"A bank of {self.n_filters} filters of shape {filter_size + image_shape[2:]}",
                "Use fewer filters (n_filters) or smaller ones (filter_size).",
            )
            make_bank = FILTER_BANKS[self.filter_init]
            filters = make_bank(self.n_filters, filter_size, image_shape[2], random_state)
        else:
            filters = check_filter_array(
                self.filter_init, self.n_filters, image_shape[2], image_shape
            )
        self.filters_ = filters
        self.image_shape_ = image_shape
        rows, cols = pooled_shape(
            image_shape,
            filters.shape[1:3],
            self.stride,
            self.padding,
            as_pair(self.pool_size),
            None if self.pool_grid is None else as_pair(self.pool_grid),
        )
        self.output_shape_ = (rows, cols, filters.shape[0])
        return self

    def transform(self, X):
        """Compute the pooled convolutional features of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, H, W) or \
                (n_samples, H, W, C)
            Images shaped as in ``fit``. A ``dask.array.Array`` chunked along the samples
            gives a lazy result.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out) or \
                (n_samples, rows, cols, n_filters), float32
            The features; 4-D when ``flatten=False``. For a dask array, a dask array chunked
            along the samples as ``X``, each block computed by this method on the matching
            block of ``X`` (single-threaded: dask runs blocks in parallel); the errors below
            then come from the blocks, when they are computed.

        Raises
        ------
        ValueError
            If ``X`` holds images unlike those seen in ``fit``, non-finite values, or values
            so large that the features could overflow float32.
        TypeError
            If ``X`` is a sparse matrix.
        MemoryLimitError
            If the features (and, with an integer ``batch_size``, the temporaries of the
            batches computed at once) would need more memory than is available. Nothing is
            allocated; transform ``X`` in chunks or make fewer features.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        if _dask.is_dask_array(X):
            return _dask.transform(self, X)
        images = self._to_images(X)
        pool_size = as_pair(self.pool_size)
        pool_grid = None if self.pool_grid is None else as_pair(self.pool_grid)
        gain = feature_gain(
            self.image_shape_,
            self.filters_,
            self.stride,
            self.padding,
            self.pooling,
            pool_size,
            pool_grid,
        )
        check_feature_range(max(float(X.max()), -float(X.min())), gain)
        self._check_transform_memory(X.shape[0])
        features = transform_images(
            images,
            self.filters_,
            stride=self.stride,
            padding=self.padding,
            activation=self.activation,
            pooling=self.pooling,
            pool_size=pool_size,
            pool_grid=pool_grid,
            batch_size=None if self.batch_size == "auto" else self.batch_size,
            n_jobs=self.n_jobs,
        )
        if self.flatten:
            return features.reshape(features.shape[0], -1)
        return features

    def _check_transform_memory(self, n_samples):
        """Fail before allocating if the features of ``n_samples`` images cannot fit in memory."""
        batch = None
        if self.batch_size != "auto":
            n_batches = math.ceil(n_samples / self.batch_size)
            batch = self.batch_size * min(effective_n_jobs(self.n_jobs), n_batches)
        n_bytes = transform_bytes(
            n_samples,
            self.image_shape_,
            self.filters_.shape,
            self.output_shape_,
            self.stride,
            self.padding,
            batch,
        )
        per_sample = 4 * math.prod(self.output_shape_)
        check_memory(
            n_bytes,
            f"The features of {n_samples} images ({n_samples} x "
            f"{' x '.join(map(str, self.output_shape_))} float32, {format_bytes(per_sample)} "
            f"per image{'' if batch is None else ', with batch temporaries'})",
            "Use fewer filters (n_filters), a larger pool_size, a small pool_grid or a larger "
            "stride, or transform X in chunks (sklearn.utils.gen_batches)"
            + ("." if batch is None else ", or a smaller batch_size or n_jobs."),
        )

    def _to_images(self, X):
        """``X`` as ``(n, H, W, C)`` images, after checking it holds images like fit's."""
        expected = self.image_shape_
        given = X.shape[1:]
        if X.ndim == 2:
            matches = given[0] == np.prod(expected)
        else:
            matches = (given if X.ndim == 4 else given + (1,)) == tuple(expected)
        if not matches:
            raise ValueError(
                f"X holds samples of shape {given}, but {type(self).__name__} was fitted on "
                f"images of shape {tuple(expected)} (height, width, channels); transform "
                f"images of the shape seen in fit."
            )
        return to_images(X, expected)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: ``f{filter}_y{row}_x{col}``.

        The order is that of the flattened output: row, then column, then filter.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the names seen in ``fit``.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        rows, cols, n_filters = self.output_shape_
        names = [
            f"f{f}_y{i}_x{j}" for i in range(rows) for j in range(cols) for f in range(n_filters)
        ]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
