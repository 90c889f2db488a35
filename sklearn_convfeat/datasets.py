"""Load folders of labelled images, as scikit-learn's ``load_files`` loads folders of texts.

Needs Pillow (``pip install "sklearn-convfeat[images]"``), imported only when an image is read.
"""

import os
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ._limits import check_memory
from ._optional import import_optional

COLOR_MODES = {"grayscale": "L", "rgb": "RGB"}


def _check_image_size(image_size):
    """``image_size`` as ``(height, width)``; an int means a square."""
    if isinstance(image_size, Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = image_size
    except (TypeError, ValueError):
        raise ValueError(
            f"image_size must be an int or a (height, width) pair, got {image_size!r}."
        ) from None
    if not all(
        isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in (height, width)
    ):
        raise ValueError(f"image_size must hold positive ints, got {image_size!r}.")
    return int(height), int(width)


def _check_color_mode(color_mode):
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be 'grayscale' or 'rgb', got {color_mode!r}.")
    return COLOR_MODES[color_mode]


def _read_image(filename, size, mode):
    """One image file as a float32 array in [0, 1] of shape (height, width[, 3])."""
    Image = import_optional("PIL.Image")
    ImageOps = import_optional("PIL.ImageOps")
    height, width = size
    try:
        with Image.open(filename) as image:
            # JPEG decoding at a reduced scale is much faster for big photos.
            image.draft(mode, (width, height))
            image = ImageOps.exif_transpose(image).convert(mode)
            image = image.resize((width, height), Image.Resampling.LANCZOS)
            pixels = np.asarray(image, dtype=np.float32)
    except Image.UnidentifiedImageError as exc:
        raise ValueError(
            f"{filename}: not a readable image (unknown or unsupported format)"
        ) from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"{filename}: not a readable image ({reason})") from exc
    return pixels / np.float32(255)


def _allocate(n_images, shape):
    """The float32 array of all the images, after checking that memory can hold it."""
    check_memory(
        4 * n_images * int(np.prod(shape)),
        f"{n_images} images of shape {shape}",
        "Use a smaller image_size, grayscale, or fewer images.",
    )
    return np.empty((n_images, *shape), dtype=np.float32)


def load_images(filenames, *, image_size=(32, 32), color_mode="grayscale"):
    """Read image files into one array, resized to a common size.

    Parameters
    ----------
    filenames : iterable of str or path-like
        Image files in any format Pillow reads (PNG, JPEG, BMP, GIF, TIFF, WebP, ...).

    image_size : int or (int, int), default=(32, 32)
        ``(height, width)`` every image is resized to (stretched, not cropped; an int means a
        square).

    color_mode : {'grayscale', 'rgb'}, default='grayscale'
        Convert every image to one grey channel or to three RGB channels.

    Returns
    -------
    images : ndarray of shape (n_images, height, width) or (n_images, height, width, 3)
        float32 pixel values in [0, 1].

    Raises
    ------
    ValueError
        If a file cannot be read as an image; the message starts with its name.
    MemoryLimitError
        If the images would not fit in the available memory.
    """
    size = _check_image_size(image_size)
    mode = _check_color_mode(color_mode)
    shape = size if mode == "L" else (*size, 3)
    filenames = [os.fspath(f) for f in filenames]
    images = _allocate(len(filenames), shape)
    for i, filename in enumerate(filenames):
        images[i] = _read_image(filename, size, mode)
    return images


def _is_hidden(name):
    return name.startswith(".")


def load_image_folder(
    container_path, *, image_size=(32, 32), color_mode="grayscale", on_error="raise"
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
    after the sub-folders, in sorted order, and files are sorted within each class.

    Parameters
    ----------
    container_path : str or path-like
        The folder holding one sub-folder per class.

    image_size : int or (int, int), default=(32, 32)
        ``(height, width)`` every image is resized to (stretched, not cropped; an int means a
        square).

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

        data : ndarray of shape (n_images, height * width * channels), float32
            The flattened images, pixel values in [0, 1].
        images : ndarray of shape (n_images, height, width) or (n_images, height, width, 3)
            The same images, unflattened.
        target : ndarray of shape (n_images,)
            The class index of each image.
        target_names : list of str
            The class names (the sub-folders), indexed by ``target``.
        filenames : ndarray of shape (n_images,)
            The path of each image.
        image_shape : tuple of int
            ``(height, width, channels)`` of one image, as ``ConvFeatureTransformer`` names
            it (``image_shape=`` for flat ``data``).
        DESCR : str
            A description of what was loaded.

    Raises
    ------
    FileNotFoundError
        If ``container_path`` is not a folder.
    ValueError
        If it holds no class sub-folder with files, or (with ``on_error='raise'``) if a file
        is not a readable image.
    MemoryLimitError
        If the images, at ``image_size``, would not fit in the available memory.

    Examples
    --------
    >>> from sklearn_convfeat.datasets import load_image_folder
    >>> photos = load_image_folder("photos/", image_size=64)  # doctest: +SKIP
    >>> photos.images.shape, photos.target_names  # doctest: +SKIP
    ((300, 64, 64), ['cat', 'dog'])
    """
    size = _check_image_size(image_size)
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

    shape = size if mode == "L" else (*size, 3)
    images = _allocate(len(filenames), shape)
    keep = np.ones(len(filenames), dtype=bool)
    for i, filename in enumerate(filenames):
        try:
            images[i] = _read_image(filename, size, mode)
        except ValueError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"skipped {exc}", UserWarning, stacklevel=2)
            keep[i] = False
    if not keep.any():
        raise ValueError(f"{root}: none of the {len(filenames)} files is a readable image")

    images = images[keep]
    target = np.asarray(target, dtype=np.intp)[keep]
    # Classes whose every file was skipped disappear; renumber the others.
    present = np.unique(target)
    target_names = [target_names[k] for k in present]
    target = np.searchsorted(present, target)
    filenames = np.asarray(filenames, dtype=object)[keep]
    image_shape = (*size, 1 if mode == "L" else 3)
    descr = (
        f"{len(images)} images of {len(target_names)} classes from {root}, resized to "
        f"{size[0]}x{size[1]}, {color_mode}, pixel values in [0, 1]."
    )
    return Bunch(
        data=images.reshape(len(images), -1),
        images=images,
        target=target,
        target_names=target_names,
        filenames=filenames,
        image_shape=image_shape,
        DESCR=descr,
    )
