"""Shape handling: from scikit-learn's ``X`` to images, and the size of a convolution's output.

Pure functions over shapes and arrays; nothing here knows about estimators.
Images are always channels-last: ``(n_samples, height, width, channels)``.
"""

import math
import warnings

import numpy as np


def as_pair(value):
    """Return ``value`` as a ``(rows, cols)`` tuple of ints (an int means a square)."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    rows, cols = value
    return int(rows), int(cols)


def training_shapes(X, image_shape):
    """The shapes of the validated training images ``X``: ``(shapes, fit_shape,
    image_shape)``. For a list of images of several sizes, their distinct ``(H, W, C)``
    sorted, the smallest of each axis, and ``(None, None, C)``; for an array, None and its
    images' shape twice (:func:`resolve_image_shape`, ``image_shape`` the parameter)."""
    if isinstance(X, list):
        shapes = sorted({image.shape for image in X})
        fit_shape = tuple(min(shape[axis] for shape in shapes) for axis in range(3))
        return shapes, fit_shape, (None, None, fit_shape[2])
    shape = resolve_image_shape(X.shape, image_shape)
    return None, shape, shape


def resolve_image_shape(X_shape, image_shape):
    """Return the ``(height, width, channels)`` of the images held in an array of ``X_shape``.

    With ``image_shape=None`` the rule is:

    - a 3-D ``X`` of shape ``(n, H, W)`` holds grey images ``(H, W, 1)``;
    - a 4-D ``X`` of shape ``(n, H, W, C)`` holds ``(H, W, C)`` images;
    - a 2-D ``X`` of width ``d`` holds square grey images when ``d`` is a perfect square,
      otherwise one-row images ``(1, d, 1)`` (1-D signals). A warning is raised when ``d``
      looks like a flattened colour image (a square times 3 or 4).

    An explicit ``image_shape`` ``(H, W)`` or ``(H, W, C)`` must match the data.
    """
    sample_shape = tuple(int(s) for s in X_shape[1:])
    if image_shape is None:
        if len(sample_shape) == 3:
            return sample_shape
        if len(sample_shape) == 2:
            return sample_shape + (1,)
        (width,) = sample_shape
        side = math.isqrt(width)
        if side * side == width:
            return (side, side, 1)
        for channels in (3, 4):
            side = math.isqrt(width // channels)
            if side > 1 and side * side * channels == width:
                warnings.warn(
                    f"X has {width} features, which is not a perfect square but is "
                    f"{side}*{side}*{channels}: it may hold flattened {side}x{side} images with "
                    f"{channels} channels. They are treated as one-row images (1, {width}, 1); "
                    f"pass image_shape=({side}, {side}, {channels}) if they are colour images.",
                    UserWarning,
                    stacklevel=4,
                )
                break
        return (1, width, 1)

    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = shape + (1,)
    if len(sample_shape) == 1:
        if math.prod(shape) != sample_shape[0]:
            raise ValueError(
                f"image_shape={tuple(image_shape)} holds {math.prod(shape)} values per image, "
                f"but X has {sample_shape[0]} features per sample; image_shape must multiply "
                f"out to the number of features."
            )
        return shape
    given = sample_shape if len(sample_shape) == 3 else sample_shape + (1,)
    if given != shape:
        raise ValueError(
            f"image_shape={tuple(image_shape)} does not match the images in X, whose shape is "
            f"{sample_shape}; pass image_shape=None to take the shape from X."
        )
    return shape


def to_images(X, image_shape):
    """View ``X`` (flat, 3-D or 4-D) as ``(n_samples, H, W, C)`` images of ``image_shape``."""
    return X.reshape((X.shape[0],) + tuple(image_shape))


def check_sample_shape(sample_shape, image_shape, name):
    """Raise ValueError unless samples of ``sample_shape`` hold images of ``image_shape``.

    ``sample_shape`` is ``X.shape[1:]``: flat, ``(H, W)`` or ``(H, W, C)``; ``name`` is the
    estimator's, for the message.
    """
    sample_shape = tuple(sample_shape)
    if len(sample_shape) == 1:
        matches = sample_shape[0] == math.prod(image_shape)
    else:
        given = sample_shape if len(sample_shape) == 3 else sample_shape + (1,)
        matches = given == tuple(image_shape)
    if not matches:
        raise ValueError(
            f"X holds samples of shape {sample_shape}, but {name} was fitted on images of "
            f"shape {tuple(image_shape)} (height, width, channels); transform images of the "
            f"shape seen in fit."
        )


def clip_filter_size(filter_size, image_shape):
    """The filter size, clipped so that a filter never exceeds the image."""
    rows, cols = as_pair(filter_size)
    return min(rows, image_shape[0]), min(cols, image_shape[1])


def footprint(filter_size, dilation):
    """The ``(rows, cols)`` of image that a filter of ``filter_size`` spans at ``dilation``:
    ``(h - 1) * dilation + 1`` by ``(w - 1) * dilation + 1``."""
    return tuple((size - 1) * dilation + 1 for size in filter_size)


# How far the Gaussian of the anti-aliasing is computed, in standard deviations (SciPy's
# default), which sets the rows of image a band of map rows needs beyond its own.
SMOOTH_TRUNCATE = 4.0


def smoothing_sigma(dilation):
    """The standard deviation of the Gaussian that smooths the image a filter of ``dilation``
    reads, with ``antialias`` (0: none).

    ``dilation / 3``: the taps sample the image every ``dilation`` pixels, and this is
    scikit-image's rule for smoothing before sampling every ``downscale`` pixels
    (:func:`skimage.transform.pyramid_reduce`: a window of twice the step holds more than 99%
    of the Gaussian). Undilated filters read the image itself.
    """
    return dilation / 3 if dilation > 1 else 0.0


def smoothing_radius(sigma):
    """The pixels on each side that a Gaussian of ``sigma`` reads (SciPy's rule)."""
    return int(SMOOTH_TRUNCATE * sigma + 0.5)


def padding_widths(filter_size, padding):
    """Zero padding ``((top, bottom), (left, right))`` of a padding mode.

    ``'same'`` follows :func:`scipy.signal.correlate2d`: ``(size - 1) // 2`` before and
    ``size // 2`` after.
    """
    if padding == "valid":
        return (0, 0), (0, 0)
    return tuple(((size - 1) // 2, size // 2) for size in filter_size)


def conv_output_size(length, size, stride, padding):
    """Length of a convolution's output along one axis."""
    if padding == "same":
        return -(-length // stride)
    return (length - size) // stride + 1
