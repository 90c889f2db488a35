"""Load folders of labelled images, as scikit-learn's ``load_files`` loads folders of texts.

Images are resized to one size, or kept at their own sizes (``image_size=None``) for a
``ConvFeatureTransformer`` that pools onto a grid or a pyramid.

Needs Pillow (``pip install "sklearn-convfeat[images]"``), imported only when an image is read.
"""

import math
import os
import warnings
from contextlib import contextmanager
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ._limits import check_memory, format_bytes
from ._optional import import_optional

COLOR_MODES = {"grayscale": "L", "rgb": "RGB"}

# Reading one image holds Pillow's decoded image, its upright copy and its colour conversion at
# once, at up to 4 bytes a pixel each (Pillow stores RGB in 4 bytes).
_DECODING_BYTES_PER_PIXEL = 3 * 4


def _is_positive_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= 1


def _check_image_size(image_size):
    """``image_size`` as ``(height, width)``, or None (each image keeps its own size); an int
    means a square."""
    if image_size is None:
        return None
    if isinstance(image_size, Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = image_size
    except (TypeError, ValueError):
        raise ValueError(
            "image_size must be None (each image's own size), an int or a (height, width) "
            f"pair, got {image_size!r}."
        ) from None
    if not all(_is_positive_int(v) for v in (height, width)):
        raise ValueError(f"image_size must hold positive ints, got {image_size!r}.")
    return int(height), int(width)


def _check_max_side(max_side, image_size):
    if max_side is None:
        return None
    if not _is_positive_int(max_side):
        raise ValueError(f"max_side must be None or a positive int, got {max_side!r}.")
    if image_size is not None:
        raise ValueError(
            f"max_side={max_side!r} applies to images kept at their own sizes "
            f"(image_size=None); with image_size={image_size!r} every image is resized to "
            "that size."
        )
    return int(max_side)


def _check_color_mode(color_mode):
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be 'grayscale' or 'rgb', got {color_mode!r}.")
    return COLOR_MODES[color_mode]


@contextmanager
def _reading(filename):
    """Turn Pillow's failures to read ``filename`` into a ValueError that names it."""
    Image = import_optional("PIL.Image")
    try:
        yield
    except Image.UnidentifiedImageError as exc:
        raise ValueError(
            f"{filename}: not a readable image (unknown or unsupported format)"
        ) from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"{filename}: not a readable image ({reason})") from exc


def _read_image(filename, size, mode):
    """One image file as a float32 array in [0, 1] of shape (height, width[, 3])."""
    Image = import_optional("PIL.Image")
    ImageOps = import_optional("PIL.ImageOps")
    height, width = size
    with _reading(filename), Image.open(filename) as image:
        # JPEG decoding at a reduced scale is much faster for big photos.
        image.draft(mode, (width, height))
        image = ImageOps.exif_transpose(image).convert(mode)
        image = image.resize((width, height), Image.Resampling.LANCZOS)
        pixels = np.asarray(image, dtype=np.float32)
    return pixels / np.float32(255)


def _scaled_size(size, max_side):
    """``size`` with its longer side brought down to ``max_side`` (the aspect ratio kept, to
    the nearest pixel); unchanged if it is not longer, or if ``max_side`` is None."""
    if max_side is None or max(size) <= max_side:
        return tuple(size)
    scale = max_side / max(size)
    return tuple(max(1, round(side * scale)) for side in size)


def _native_bytes(filename, max_side, mode):
    """``(bytes of the image once read, bytes while decoding it)``, from the file's header:
    nothing is decoded."""
    Image = import_optional("PIL.Image")
    channels = 1 if mode == "L" else 3
    with _reading(filename), Image.open(filename) as image:
        # An EXIF quarter turn swaps height and width, which changes neither count.
        target = _scaled_size(image.size, max_side)
        if target != image.size:
            image.draft(mode, target)  # the reduced scale a JPEG will be decoded at
        return 4 * channels * math.prod(target), _DECODING_BYTES_PER_PIXEL * math.prod(image.size)


def _read_native(filename, max_side, mode):
    """One image file at its own size, upright, its longer side at most ``max_side``, as a
    float32 array in [0, 1] of shape (height, width[, 3])."""
    Image = import_optional("PIL.Image")
    ImageOps = import_optional("PIL.ImageOps")
    with _reading(filename), Image.open(filename) as image:
        target = _scaled_size(image.size, max_side)
        if target != image.size:
            # JPEG decoding at a reduced scale (1/2 to 1/8, at least the target) is much
            # faster for big photos. Drafting is only for shrinking: the exact pixels otherwise.
            image.draft(mode, target)
        decoded = image.size
        image = ImageOps.exif_transpose(image).convert(mode)
        if image.size != decoded:  # turned a quarter by its EXIF orientation
            target = target[::-1]
        if image.size != target:
            image = image.resize(target, Image.Resampling.LANCZOS)
        pixels = np.asarray(image, dtype=np.float32)
    pixels /= np.float32(255)
    return pixels


def _allocate(n_images, shape):
    """The float32 array of all the images, after checking that memory can hold it."""
    check_memory(
        4 * n_images * int(np.prod(shape)),
        f"{n_images} images of shape {shape}",
        "Use a smaller image_size, grayscale, or fewer images.",
    )
    return np.empty((n_images, *shape), dtype=np.float32)


def _read_all(filenames, size, max_side, mode, on_error):
    """The images of ``filenames`` (one array, or a list at their own sizes when ``size`` is
    None) and a boolean mask of the files read.

    A file that is not a readable image raises a ValueError or, with ``on_error='warn'``, is
    skipped with a warning. At their own sizes, every header is read first, so that the memory
    check counts the images as they will be, before any is decoded.
    """
    keep = np.ones(len(filenames), dtype=bool)

    def attempt(i, read, *args):
        try:
            return read(filenames[i], *args)
        except ValueError as exc:
            if on_error == "raise":
                raise
            # Points at the caller of load_image_folder: attempt, _read_all, the loader, it.
            warnings.warn(f"skipped {exc}", UserWarning, stacklevel=4)
            keep[i] = False
            return None

    if size is not None:
        images = _allocate(len(filenames), size if mode == "L" else (*size, 3))
        for i in range(len(filenames)):
            pixels = attempt(i, _read_image, size, mode)
            if pixels is not None:
                images[i] = pixels
        return (images if keep.all() else images[keep]), keep

    n_bytes = peak = n_images = 0
    for i in range(len(filenames)):
        counts = attempt(i, _native_bytes, max_side, mode)
        if counts is not None:
            n_bytes, peak, n_images = n_bytes + counts[0], max(peak, counts[1]), n_images + 1
    limit = "" if max_side is None else f", at most {max_side} pixels a side"
    check_memory(
        n_bytes + peak,
        f"{n_images} images at their own sizes{limit} ({format_bytes(n_bytes)} as float32, "
        f"and {format_bytes(peak)} to decode the largest)",
        "Shrink the large images with max_side, use grayscale, fewer images, or a fixed "
        "image_size.",
    )
    images = []
    for i in range(len(filenames)):
        pixels = attempt(i, _read_native, max_side, mode) if keep[i] else None
        if pixels is not None:
            images.append(pixels)
    return images, keep


def _size_range(images):
    """``'HxW to HxW'``: the smallest and the largest of ``images`` by number of pixels."""
    shapes = sorted((image.shape[:2] for image in images), key=math.prod)
    (h0, w0), (h1, w1) = shapes[0], shapes[-1]
    return f"{h0}x{w0} to {h1}x{w1}"


def load_images(filenames, *, image_size=(32, 32), max_side=None, color_mode="grayscale"):
    """Read image files, resized to a common size or each at its own size.

    Parameters
    ----------
    filenames : iterable of str or path-like
        Image files in any format Pillow reads (PNG, JPEG, BMP, GIF, TIFF, WebP, ...).

    image_size : int, (int, int) or None, default=(32, 32)
        ``(height, width)`` every image is resized to (stretched, not cropped; an int means a
        square). None keeps each image at its own size (turned upright by its EXIF
        orientation), for a ``ConvFeatureTransformer`` that pools onto a grid or a pyramid.

    max_side : int or None, default=None
        With ``image_size=None``: shrink any image whose longer side exceeds ``max_side``
        pixels to that length, keeping its aspect ratio; smaller images are never enlarged.
        None keeps every pixel. An error with an ``image_size``.

    color_mode : {'grayscale', 'rgb'}, default='grayscale'
        Convert every image to one grey channel or to three RGB channels.

    Returns
    -------
    images : ndarray of shape (n_images, height, width) or (n_images, height, width, 3), \
            or list of ndarray
        float32 pixel values in [0, 1]. With ``image_size=None``, a list of ``n_images``
        arrays of shape ``(height_i, width_i)`` or ``(height_i, width_i, 3)``.

    Raises
    ------
    ValueError
        If a file cannot be read as an image; the message starts with its name.
    MemoryLimitError
        If the images would not fit in the available memory (at their own sizes, counted
        from the files' headers before any image is decoded).

    Examples
    --------
    >>> from PIL import Image
    >>> from sklearn_convfeat.datasets import load_images
    >>> import os, tempfile
    >>> photo = os.path.join(tempfile.mkdtemp(), "photo.png")
    >>> Image.new("RGB", (640, 480), "orange").save(photo)
    >>> load_images([photo]).shape
    (1, 32, 32)
    >>> [image.shape for image in load_images([photo], image_size=None, max_side=100)]
    [(75, 100)]
    """
    size = _check_image_size(image_size)
    max_side = _check_max_side(max_side, image_size)
    mode = _check_color_mode(color_mode)
    filenames = [os.fspath(f) for f in filenames]
    images, _ = _read_all(filenames, size, max_side, mode, on_error="raise")
    return images


def _is_hidden(name):
    return name.startswith(".")


def load_image_folder(
    container_path,
    *,
    image_size=(32, 32),
    max_side=None,
    color_mode="grayscale",
    on_error="raise",
):
    """Load labelled images from a folder with one sub-folder per class.

    The layout is that of :func:`sklearn.datasets.load_files`::

        container_path/
            cat/
                1.jpg
                2.png ...
            dog/
                a.jpeg ...

    Every file under a class sub-folder (at any depth) is read as an image of that class;
    hidden files and folders (whose names start with a dot) are ignored. Classes are named
    after the sub-folders, in sorted order, and files are sorted within each class. Images
    are turned upright by their EXIF orientation.

    Parameters
    ----------
    container_path : str or path-like
        The folder holding one sub-folder per class.

    image_size : int, (int, int) or None, default=(32, 32)
        ``(height, width)`` every image is resized to (stretched, not cropped; an int means a
        square). None keeps each image at its own size: photos of any size and aspect ratio,
        for a ``ConvFeatureTransformer`` that pools onto a grid or a pyramid (its default),
        which gives the same number of features whatever the size.

    max_side : int or None, default=None
        With ``image_size=None``: shrink any image whose longer side exceeds ``max_side``
        pixels to that length, keeping its aspect ratio; smaller images are never enlarged.
        None keeps every pixel. An error with an ``image_size``.

    color_mode : {'grayscale', 'rgb'}, default='grayscale'
        Convert every image to one grey channel or to three RGB channels.

    on_error : {'raise', 'warn'}, default='raise'
        What to do with a file that is not a readable image (corrupt, truncated, or in a
        format Pillow does not read): ``'raise'`` a ValueError that names it, or ``'warn'``
        and skip it.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (n_images, height * width * channels), float32, or list
            The flattened images, pixel values in [0, 1]. With ``image_size=None`` images of
            different sizes have no common flat layout: ``data`` is then the list ``images``
            itself (as ``load_files`` gives texts of any length as a list), what a
            ``ConvFeatureTransformer`` takes.
        images : ndarray of shape (n_images, height, width) or (n_images, height, width, 3), \
                or list of ndarray
            The same images, unflattened. With ``image_size=None``, a list of float32 arrays
            of shape ``(height_i, width_i)`` or ``(height_i, width_i, 3)``.
        target : ndarray of shape (n_images,)
            The class index of each image.
        target_names : list of str
            The class names (the sub-folders), indexed by ``target``.
        filenames : ndarray of shape (n_images,)
            The path of each image.
        image_shape : tuple
            ``(height, width, channels)`` of one image, as ``ConvFeatureTransformer`` names
            it (``image_shape=`` for flat ``data``). With ``image_size=None``,
            ``(None, None, channels)``: the height and width vary.
        DESCR : str
            A description of what was loaded, with the smallest and the largest image when
            they keep their own sizes.

    Raises
    ------
    FileNotFoundError
        If ``container_path`` is not a folder.
    ValueError
        If it holds no class sub-folder with files, if ``max_side`` is given with an
        ``image_size``, or (with ``on_error='raise'``) if a file is not a readable image.
    MemoryLimitError
        If the images would not fit in the available memory: at ``image_size``, or at their
        own sizes as the files' headers give them, checked before any image is decoded.

    Examples
    --------
    >>> from sklearn_convfeat.datasets import load_image_folder
    >>> photos = load_image_folder("photos/", image_size=64)  # doctest: +SKIP
    >>> photos.images.shape, photos.target_names  # doctest: +SKIP
    ((300, 64, 64), ['cat', 'dog'])
    >>> photos = load_image_folder("photos/", image_size=None, max_side=512)  # doctest: +SKIP
    >>> len(photos.images), photos.images[0].shape, photos.image_shape  # doctest: +SKIP
    (300, (384, 512), (None, None, 1))
    """
    size = _check_image_size(image_size)
    max_side = _check_max_side(max_side, image_size)
    mode = _check_color_mode(color_mode)
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}.")
    root = Path(container_path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")

    target_names, filenames, target = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name)):
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and not any(_is_hidden(part) for part in p.relative_to(folder).parts)
        )
        if not files:
            continue
        filenames.extend(str(p) for p in files)
        target.extend([len(target_names)] * len(files))
        target_names.append(folder.name)
    if not filenames:
        raise ValueError(
            f"{root}: no images found; expected one sub-folder per class, each holding images"
        )

    images, keep = _read_all(filenames, size, max_side, mode, on_error)
    if not keep.any():
        raise ValueError(f"{root}: none of the {len(filenames)} files is a readable image")

    target = np.asarray(target, dtype=np.intp)[keep]
    # Classes whose every file was skipped disappear; renumber the others.
    present = np.unique(target)
    target_names = [target_names[k] for k in present]
    target = np.searchsorted(present, target)
    filenames = np.asarray(filenames, dtype=object)[keep]
    channels = 1 if mode == "L" else 3
    if size is None:
        data = images
        image_shape = (None, None, channels)
        limit = "" if max_side is None else f", at most {max_side} pixels a side"
        sizes = f"kept at their own sizes{limit} (from {_size_range(images)})"
    else:
        data = images.reshape(len(images), -1)
        image_shape = (*size, channels)
        sizes = f"resized to {size[0]}x{size[1]}"
    descr = (
        f"{len(images)} images of {len(target_names)} classes from {root}, {sizes}, "
        f"{color_mode}, pixel values in [0, 1]."
    )
    return Bunch(
        data=data,
        images=images,
        target=target,
        target_names=target_names,
        filenames=filenames,
        image_shape=image_shape,
        DESCR=descr,
    )
