"""Small image classification sets for the accuracy benchmark, all made offline.

Each function returns ``(X, y)`` or ``(X, y, groups)``, with ``X`` of shape ``(n, H, W)`` or
``(n, H, W, C)`` in the pixel scale such images usually come in (the defaults must not depend
on it). When there are ``groups`` (several images drawn from one source image), the
cross-validation must keep each group in one fold (``StratifiedGroupKFold``); :func:`load`
always returns the three, with ``groups=None`` for sets of independent images.

The first four sets are the ones today's defaults were chosen on:

- ``digits``: scikit-learn's 8x8 handwritten digits, values 0..16;
- ``digits28``: the same digits drawn at 28x28 like MNIST (20x20 digit, randomly placed),
  values 0..255: handwriting at 28x28 with translations;
- ``textures``: 24x24 noisy oriented gratings, 6 classes (3 orientations, 2 wavelengths) with
  random phase, contrast, brightness and orientation jitter, values 0..1;
- ``photos``: 16x16 colour patches of scikit-learn's two sample photos, 4 classes (top and
  bottom half of each photo), values 0..1.

The others (added for the handwriting issue) come from images that scikit-learn and
scikit-image ship (``scipy.datasets`` needs a download, so it is not used):

- ``handwriting``: a stand-in for MNIST: each of the 1797 8x8 digits redrawn as a 28x28
  stroke image (smooth upsampling of the ink density, then an anti-aliased stroke profile:
  strokes about 3 px wide with a 1 px ramp), its bounding box fitted into 20x20 and its
  centre of mass at the centre of the frame, as MNIST, values 0..255. Three drawings per
  digit (5391 images) with different stroke widths and sub-pixel placements; ``groups`` is
  the source digit, so that no digit is in training and test folds at once;
- ``handwriting_deformed``: the same, each drawing also rotated by up to 30 degrees, scaled
  by 0.85..1.15, shifted by up to 3 px and elastically deformed (Simard et al. 2003:
  smoothed random displacement fields, sigma 4 px, alpha 34), groups as above;
- ``faces``: scikit-image's ``lfw_subset``: 100 faces and 100 non-faces, 25x25, 0..1;
- ``real_textures``: 24x24 patches of scikit-image's brick, grass and gravel photos, and of
  brick turned by 90 degrees (4 classes, 300 each), every patch with a random gain and
  offset so that the mean grey level does not give the class away, values 0..255;
- ``grey_photos``: 24x24 patches of scikit-image's grey photos camera, coins, moon, cell,
  clock_motion and text (6 classes: the source photo), values 0..255;
- ``colour_photos``: 20x20 colour patches of scikit-image's astronaut, coffee, chelsea,
  rocket, motorcycle_left and ihc (6 classes), values 0..255.

Held-out variants, for checking that defaults were not tuned on the sets above (do not
choose on them): ``handwriting_deformed_b`` (other deformations: seed 1, rotations up to 20
degrees, scale 0.8..1.2, a stronger elastic field), ``real_textures_b`` (32x32 patches,
other positions and jitter), ``grey_photos_b`` (grey versions of astronaut, chelsea, coffee,
rocket, motorcycle_right and the Hubble deep field, 20x20) and ``colour_photos_b``
(16x16 colour patches of the Hubble deep field, retina, motorcycle_right, and of
scikit-learn's china and flower photos).

Photo and texture patches are cut from a grid of non-overlapping tiles (a random subset of
them), so that no two patches share a pixel and cross-validation does not leak.
"""

import os

import numpy as np
from scipy import ndimage
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


# --- Handwriting at 28x28, drawn from the 8x8 digits ------------------------------------------

_UP = 4  # drawings are made at 4x (112x112) and averaged down to 28x28: anti-aliasing


def _ink(digit8, level):
    """The 8x8 ink density (0..16) as a 40x40 stroke image in [0, 1].

    Each 8x8 value counts the set pixels of a 4x4 block of a 32x32 bitmap, so a smooth (cubic,
    then Gaussian) upsampling by 4 gives back a density; a steep ramp around ``level`` turns it
    into a stroke with a soft edge (higher levels, thinner strokes).
    """
    density = ndimage.zoom(
        np.pad(digit8 / 16.0, 1), _UP, order=3, mode="grid-constant", grid_mode=True
    )
    density = ndimage.gaussian_filter(density, 1.2)
    return np.clip((density - level) / 0.12 + 0.5, 0.0, 1.0)


def _draw(digit8, rng, level, rotation, scale, shift, elastic):
    """One 28x28 drawing in [0, 1]: MNIST framing, then the given deformation.

    The digit's bounding box is fitted into 20x20 and its centre of mass put at the centre of
    the frame (as MNIST), then rotated by up to ``rotation`` degrees, scaled by a factor in
    ``scale``, shifted by up to ``shift`` pixels and displaced by a smooth random field
    (``elastic = (sigma, alpha)`` in 28x28 pixels, or None).
    """
    ink = _ink(digit8, level)
    rows, cols = np.nonzero(ink > 0.05)
    box = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    centre_of_mass = np.array(ndimage.center_of_mass(ink))
    size = 28 * _UP
    angle = np.deg2rad(rng.uniform(-rotation, rotation))
    factor = 20 * _UP / box * rng.uniform(*scale)
    offset = rng.uniform(-shift, shift, 2) * _UP
    grid = np.mgrid[:size, :size].astype(float) + 0.5
    if elastic is not None:
        sigma, alpha = elastic
        for axis in range(2):
            field = ndimage.gaussian_filter(rng.uniform(-1, 1, (28, 28)), sigma, mode="constant")
            field = ndimage.zoom(field * alpha, _UP, order=1, grid_mode=True, mode="nearest")
            grid[axis] += field * _UP
    relative = (grid - (size / 2 + offset)[:, None, None]) / factor
    cos, sin = np.cos(angle), np.sin(angle)
    source = np.stack(
        [cos * relative[0] - sin * relative[1], sin * relative[0] + cos * relative[1]]
    )
    source += centre_of_mass[:, None, None] - 0.5
    drawing = ndimage.map_coordinates(ink, source, order=1, cval=0.0)
    return drawing.reshape(28, _UP, 28, _UP).mean(axis=(1, 3))


def _handwriting(random_state, n_draws, rotation, scale, shift, elastic):
    rng = np.random.RandomState(random_state)
    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 8, 8)
    images, labels, groups = [], [], []
    for _ in range(n_draws):
        for index, digit in enumerate(X):
            level = rng.uniform(0.3, 0.5)
            images.append(_draw(digit, rng, level, rotation, scale, shift, elastic))
            labels.append(y[index])
            groups.append(index)
    return (np.asarray(images) * 255).round(), np.asarray(labels), np.asarray(groups)


def handwriting(random_state=0, n_draws=3):
    return _handwriting(random_state, n_draws, 0.0, (1.0, 1.0), 0.5, None)


def handwriting_deformed(random_state=0, n_draws=3):
    return _handwriting(random_state, n_draws, 30.0, (0.85, 1.15), 3.0, (4.0, 34.0))


def handwriting_deformed_b(random_state=1, n_draws=3):
    return _handwriting(random_state, n_draws, 20.0, (0.8, 1.2), 2.0, (4.0, 45.0))


# --- Faces, textures and photo patches from shipped images --------------------------------


def faces():
    from skimage.data import lfw_subset

    X = lfw_subset()
    return X, np.repeat([1, 0], len(X) // 2)


def _skimage(name):
    """A picture scikit-image ships (no download), as float64 0..255, RGBA cut to RGB."""
    import skimage.data
    import skimage.io

    folder = os.path.dirname(skimage.data.__file__)
    files = [f for f in os.listdir(folder) if f.rsplit(".", 1)[0] == name]
    image = np.asarray(skimage.io.imread(os.path.join(folder, files[0])), dtype=np.float64)
    return image[..., :3] if image.ndim == 3 else image


def _sklearn_photo(name):
    images = load_sample_images()
    index = [os.path.basename(f) for f in images.filenames].index(name + ".jpg")
    return np.asarray(images.images[index], dtype=np.float64)


def _grey(image):
    return image if image.ndim == 2 else image @ np.array([0.2125, 0.7154, 0.0721])


def _tiles(image, size, n, rng):
    """``n`` random tiles of a grid of non-overlapping ``size x size`` tiles (all if fewer)."""
    top = rng.randint(0, image.shape[0] % size + 1)
    left = rng.randint(0, image.shape[1] % size + 1)
    rows, cols = (image.shape[0] - top) // size, (image.shape[1] - left) // size
    chosen = rng.permutation(rows * cols)[:n]
    return [
        image[top + r * size : top + (r + 1) * size, left + c * size : left + (c + 1) * size]
        for r, c in zip(*np.divmod(chosen, cols), strict=True)
    ]


def _patch_set(pictures, size, n_per_class, random_state, jitter=False):
    rng = np.random.RandomState(random_state)
    images, labels = [], []
    for label, picture in enumerate(pictures):
        tiles = _tiles(picture, size, n_per_class, rng)
        if jitter:  # a random gain and offset: the texture, not the grey level, is the class
            tiles = [
                np.clip(128 + rng.uniform(0.6, 1.4) * (t - t.mean()) + rng.uniform(-40, 40), 0, 255)
                for t in tiles
            ]
        images += tiles
        labels += [label] * len(tiles)
    return np.asarray(images).round(), np.asarray(labels)


def _textures(size, n_per_class, random_state):
    brick, grass, gravel = (_skimage(name) for name in ("brick", "grass", "gravel"))
    return _patch_set(
        [brick, np.rot90(brick), grass, gravel], size, n_per_class, random_state, True
    )


def real_textures(random_state=0):
    return _textures(24, 300, random_state)


def real_textures_b(random_state=1):
    return _textures(32, 200, random_state)


def grey_photos(random_state=0):
    names = ("camera", "coins", "moon", "cell", "clock_motion", "text")
    return _patch_set([_skimage(n) for n in names], 24, 200, random_state)


def grey_photos_b(random_state=1):
    names = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_right", "hubble_deep_field")
    return _patch_set([_grey(_skimage(n)) for n in names], 20, 200, random_state)


def colour_photos(random_state=0):
    names = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "ihc")
    return _patch_set([_skimage(n) for n in names], 20, 200, random_state)


def colour_photos_b(random_state=1):
    pictures = [_skimage(n) for n in ("hubble_deep_field", "motorcycle_right")]
    pictures.append(_skimage("retina")[300:1100, 300:1100])  # the eye, not the black border
    pictures += [_sklearn_photo("china"), _sklearn_photo("flower")]
    return _patch_set(pictures, 16, 200, random_state)


DATASETS = {
    "digits": digits,
    "digits28": digits28,
    "textures": textures,
    "photos": photos,
    "handwriting": handwriting,
    "handwriting_deformed": handwriting_deformed,
    "faces": faces,
    "real_textures": real_textures,
    "grey_photos": grey_photos,
    "colour_photos": colour_photos,
}

# Not for choosing defaults: run them at the end, to see whether a choice generalises.
HELD_OUT = {
    "handwriting_deformed_b": handwriting_deformed_b,
    "real_textures_b": real_textures_b,
    "grey_photos_b": grey_photos_b,
    "colour_photos_b": colour_photos_b,
}

ALL_DATASETS = {**DATASETS, **HELD_OUT}


def load(name):
    """``(X, y, groups)`` of a set by name; ``groups`` is None for independent images."""
    data = ALL_DATASETS[name]()
    return data if len(data) == 3 else (*data, None)
