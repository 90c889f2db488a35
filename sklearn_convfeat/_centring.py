"""The features' moments that ``fit`` learns: their mean (``center``) and the factor that sets
their spread (``feature_norm``), from a bounded sample of the training images.

Pure functions; the features themselves come from a callable (the estimator's transform before
centring), so nothing here knows about estimators.
"""

import math

import numpy as np
from sklearn.utils import gen_batches

from . import _dask
from ._shapes import to_images

# Images whose mean features center=True subtracts, at most: enough to condition the models
# that follow, few enough to cost a small part of fit.
CENTER_SAMPLES = 1000

# feature_norm='auto': the features' mean squared distance to their mean is this number over
# the square root of the number of training images. With LogisticRegression's default C=1,
# whose penalty weighs 1 / n_samples of its mean loss, the penalty on features of unit size
# then falls as 1 / sqrt(n_samples): the level cross-validation found best from 800 to 60,000
# training images on Fashion-MNIST, MNIST and the sets of bench_accuracy.py (issue 25).
AUTO_NORM = 8000


def feature_moments(
    features, X, random_state, batch_size, *, image_shape, n_features, feature_norm
):
    """The mean features of at most :data:`CENTER_SAMPLES` images of ``X``, drawn with
    ``random_state``, computed ``batch_size`` images at a time and summed in float64 one
    image after another (the order of NumPy's ``mean(axis=0)``), and the factor that brings
    their root mean squared distance to that mean to ``feature_norm`` (1 if they do not
    vary); ``'auto'`` reads the number of training images.

    Parameters
    ----------
    features : callable
        The features of validated images (an array of ``image_shape`` images, or a list of
        images of any sizes), ``(n, ...)`` float32.
    X : ndarray, list of ndarray or dask array
        The validated training images.
    random_state : RandomState
    batch_size : int
    image_shape : tuple
        The ``(H, W, C)`` of the images of an array ``X``.
    n_features : int
        Features of one image.
    feature_norm : 'auto', float or None

    Returns
    -------
    mean : ndarray of shape (n_features,), float32
    scale : float
    """
    n_images = X.shape[0] if _dask.is_dask_array(X) else len(X)
    if _dask.is_dask_array(X):
        X = _dask.sample_rows(X, random_state, max_rows=CENTER_SAMPLES)
    rows = np.arange(len(X))
    if len(X) > CENTER_SAMPLES:
        rows = np.sort(random_state.choice(len(X), CENTER_SAMPLES, replace=False))
    total = np.zeros(n_features)
    squares = 0.0
    for batch in gen_batches(len(rows), batch_size):
        if isinstance(X, list):
            images = [X[i] for i in rows[batch]]
        else:
            images = to_images(X[rows[batch]], image_shape)
        values = features(images).reshape(len(images), -1)
        for i in range(len(images)):
            total += values[i]
            row = values[i].astype(np.float64)
            squares += float(row @ row)
        del values  # before the next batch's are made: one batch at a time
    mean = total / len(rows)
    # The mean squared distance to the mean, E|f|^2 - |E f|^2, in float64.
    spread = math.sqrt(max(squares / len(rows) - float(mean @ mean), 0.0))
    norm = feature_norm
    if norm == "auto":
        norm = math.sqrt(AUTO_NORM / math.sqrt(n_images))
    finest = np.finfo(np.float32).eps * math.sqrt(max(squares / len(rows), 0.0))
    scale = norm / spread if norm is not None and spread > finest else 1.0
    return mean.astype(np.float32), scale
