"""Small image classification sets for the accuracy benchmark, all made offline.

Each function returns ``(X, y)`` with ``X`` of shape ``(n, H, W)`` or ``(n, H, W, C)`` in the
pixel scale such images usually come in (the defaults must not depend on it):

- ``digits``: scikit-learn's 8x8 handwritten digits, values 0..16;
- ``digits28``: the same digits drawn at 28x28 like MNIST (20x20 digit, randomly placed),
  values 0..255: handwriting at 28x28 with translations;
- ``textures``: 24x24 noisy oriented gratings, 6 classes (3 orientations, 2 wavelengths) with
  random phase, contrast, brightness and orientation jitter, values 0..1;
- ``photos``: 16x16 colour patches of scikit-learn's two sample photos, 4 classes (top and
  bottom half of each photo), values 0..1.
"""

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits, load_sample_images


def digits():
    X, y = load_digits(return_X_y=True)
    return X.reshape(-1, 8, 8), y


def digits28(random_state=0):
    rng = np.random.RandomState(random_state)
    X, y = load_digits(return_X_y=True)
    small = zoom(X.reshape(-1, 8, 8), (1, 2.5, 2.5), order=1).clip(0, 16)
    out = np.zeros((len(X), 28, 28))
    offsets = rng.randint(0, 9, size=(len(X), 2))
    for image, digit, (top, left) in zip(out, small, offsets, strict=True):
        image[top : top + 20, left : left + 20] = digit * (255 / 16)
    return out.round(), y


def textures(n_per_class=200, size=24, random_state=0):
    rng = np.random.RandomState(random_state)
    yy, xx = np.mgrid[:size, :size].astype(float)
    images, labels = [], []
    for label, (angle, wavelength) in enumerate(
        (a, w) for a in (0.0, np.pi / 3, 2 * np.pi / 3) for w in (4.0, 8.0)
    ):
        for _ in range(n_per_class):
            theta = angle + rng.uniform(-0.2, 0.2)
            along = xx * np.cos(theta) + yy * np.sin(theta)
            wave = np.sin(2 * np.pi * along / wavelength + rng.uniform(0, 2 * np.pi))
            image = rng.uniform(0.2, 1.0) * wave + rng.normal(scale=1.0, size=wave.shape)
            images.append(0.5 + 0.15 * image + rng.uniform(-0.2, 0.2))
            labels.append(label)
    return np.clip(images, 0, 1), np.asarray(labels)


def photos(n_per_class=250, size=16, random_state=0):
    rng = np.random.RandomState(random_state)
    images, labels = [], []
    for index, photo in enumerate(load_sample_images().images):
        photo = photo / 255.0
        half = photo.shape[0] // 2
        for part, region in enumerate((photo[:half], photo[half:])):
            rows = rng.randint(0, region.shape[0] - size, n_per_class)
            cols = rng.randint(0, region.shape[1] - size, n_per_class)
            images += [region[r : r + size, c : c + size] for r, c in zip(rows, cols, strict=True)]
            labels += [2 * index + part] * n_per_class
    return np.asarray(images), np.asarray(labels)


DATASETS = {"digits": digits, "digits28": digits28, "textures": textures, "photos": photos}
