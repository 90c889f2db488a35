"""Images at their own sizes against resizing them, on a folder of photos of mixed sizes.

The photos: random crops, of varied size and aspect ratio (1:3 to 3:1), of eleven pictures that
scikit-learn and scikit-image ship (one class per picture: scikit-learn's two sample photos, six
photos and three textures of scikit-image), each rescaled by a random factor, so that the folder
holds JPEGs from a few dozen to 1500 pixels a side. They are made by this script, in a temporary
folder or in ``--folder``; nothing is downloaded.

Each row loads the folder with ``load_image_folder`` (grayscale, or ``--color rgb``) either
resized to one size or at the images' own sizes (``image_size=None``, with or without
``max_side``), then scores
``make_pipeline(ConvFeatureTransformer(random_state=0), LogisticRegression(max_iter=1000))``
by 5-fold stratified shuffled cross-validation (``random_state=0``). Columns: the mean and
standard deviation of the accuracy, the megapixels of the loaded images, the seconds to load
them, the seconds of one ``transform`` of all of them (fitted on all of them) in total and per
megapixel, and the seconds of the whole cross-validation. Last, one 3000x4000 photo: its
transform time and the peak of the memory NumPy allocates during it (``tracemalloc``).

    pip install . -r benchmarks/requirements.txt    # scikit-image for its pictures
    python benchmarks/bench_native.py                   # 30 photos per class, about 2 minutes
    python benchmarks/bench_native.py --per-class 10    # a quicker run
    python benchmarks/bench_native.py --seed 1 --color rgb   # other photos, in colour
    python benchmarks/bench_native.py --folder photos   # make the photos in photos/ and keep them

Timings are wall-clock seconds on whatever machine runs it, with BLAS as the environment sets
it (the write-up used ``OPENBLAS_NUM_THREADS=1``); compare rows, not machines.
"""

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402
from sklearn_convfeat.datasets import load_image_folder  # noqa: E402

# The classes: pictures of scikit-image (``skimage.data.<name>``), and scikit-learn's two
# sample photos.
SKIMAGE_SOURCES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
)
SKLEARN_SOURCES = ("china", "flower")

# (label, load_image_folder keywords) of the rows.
ROWS = [
    ("resized to 32x32", dict(image_size=32)),
    ("resized to 64x64", dict(image_size=64)),
    ("resized to 128x128", dict(image_size=128)),
    ("native, max_side=256", dict(image_size=None, max_side=256)),
    ("native, max_side=512", dict(image_size=None, max_side=512)),
    ("native", dict(image_size=None)),
]

LARGEST_SIDE = 1500
SMALLEST_SIDE = 24


def sources():
    """``{class name: RGB uint8 picture}``."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    pictures = dict(zip(SKLEARN_SOURCES, load_sample_images().images, strict=True))
    for name in SKIMAGE_SOURCES:
        picture = getattr(skimage.data, name)()
        pictures[name] = picture if picture.ndim == 3 else np.stack([picture] * 3, axis=-1)
    return pictures


def random_photo(picture, rng):
    """A crop of ``picture`` of 4% to 50% of its area and an aspect ratio of 1:3 to 3:1,
    rescaled by a factor of 0.4 to 2.5 (log-uniform), its sides kept within
    [SMALLEST_SIDE, LARGEST_SIDE]."""
    height, width = picture.shape[:2]
    area = rng.uniform(0.04, 0.5) * height * width
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3)))  # width / height
    rows = min(height, max(8, round(np.sqrt(area / aspect))))
    cols = min(width, max(8, round(np.sqrt(area * aspect))))
    top = rng.integers(0, height - rows + 1)
    left = rng.integers(0, width - cols + 1)
    crop = Image.fromarray(picture[top : top + rows, left : left + cols])
    scale = np.exp(rng.uniform(np.log(0.4), np.log(2.5)))
    scale = min(scale, LARGEST_SIDE / max(rows, cols))
    scale = max(scale, SMALLEST_SIDE / min(rows, cols))
    size = (round(cols * scale), round(rows * scale))
    return crop.resize(size, Image.Resampling.LANCZOS)


def make_photos(folder, per_class, seed=0):
    """Write ``per_class`` random photos of each source picture under ``folder/<name>/``."""
    rng = np.random.default_rng(seed)
    for name, picture in sources().items():
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            random_photo(picture, rng).save(folder / name / f"{i:03d}.jpg", quality=90)


def describe(folder):
    """A line about the photos' sizes: count, smallest, median and largest longer side."""
    sides = []
    for path in folder.rglob("*.jpg"):
        with Image.open(path) as image:
            sides.append(max(image.size))
    return (
        f"{len(sides)} photos, longer side from {min(sides)} to {max(sides)} px "
        f"(median {int(np.median(sides))}, {sum(s > 512 for s in sides)} over 512)"
    )


def megapixels(images):
    return sum(image.shape[0] * image.shape[1] for image in images) / 1e6


def evaluate(folder, load_options, color_mode):
    """``(mean accuracy, std, megapixels, load s, transform s, cross-validation s, convergence
    warnings)``."""
    start = time.perf_counter()
    photos = load_image_folder(folder, color_mode=color_mode, **load_options)
    load_seconds = time.perf_counter() - start
    X, y = photos.images, photos.target
    conv = ConvFeatureTransformer(random_state=0).fit(X)
    start = time.perf_counter()
    conv.transform(X)
    transform_seconds = time.perf_counter() - start
    model = make_pipeline(ConvFeatureTransformer(random_state=0), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=cv)
    cv_seconds = time.perf_counter() - start
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    mp = megapixels(X)
    return scores.mean(), scores.std(), mp, load_seconds, transform_seconds, cv_seconds, n_warnings


def large_photo(folder):
    """Transform seconds and tracemalloc peak (MiB) of one 3000x4000 grey photo."""
    photos = load_image_folder(folder, image_size=None, max_side=256)
    conv = ConvFeatureTransformer(random_state=0).fit(photos.images)
    picture = sources()["hubble_deep_field"]
    photo = Image.fromarray(picture).convert("L").resize((4000, 3000), Image.Resampling.LANCZOS)
    image = np.asarray(photo, dtype=np.float32) / np.float32(255)
    tracemalloc.start()
    start = time.perf_counter()
    features = conv.transform([image])
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, features.shape, image.nbytes / 2**20


def run(folder, rows, color_mode):
    print(f"{describe(folder)}; {color_mode}")
    print()
    print(
        "| images | accuracy | megapixels | load (s) | transform (s) | transform (s/MP) "
        "| 5-fold CV (s) | convergence warnings |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, options in rows:
        mean, std, mp, load, transform, cv, n_warnings = evaluate(folder, options, color_mode)
        print(
            f"| {label} | {mean:.3f} +/- {std:.3f} | {mp:.2f} | {load:.1f} | {transform:.2f} "
            f"| {transform / mp:.3f} | {cv:.1f} | {n_warnings} |",
            flush=True,
        )
    seconds, peak, shape, input_mib = large_photo(folder)
    print()
    print(
        f"One 3000x4000 grey photo ({input_mib:.0f} MiB as float32): transform {seconds:.1f} s "
        f"({seconds / 12:.2f} s/MP), features {shape}, peak NumPy memory during the call "
        f"{peak:.1f} MiB (tracemalloc)."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=30, help="photos per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random photos")
    parser.add_argument("--color", choices=["grayscale", "rgb"], default="grayscale")
    parser.add_argument(
        "--folder",
        type=Path,
        help="make the photos in this folder (new or empty) and keep them; by default a "
        "temporary folder, removed at the end",
    )
    parser.add_argument(
        "--rows", nargs="+", choices=[label for label, _ in ROWS], help="only these rows"
    )
    args = parser.parse_args()
    rows = [row for row in ROWS if args.rows is None or row[0] in args.rows]
    if args.folder is None:
        with tempfile.TemporaryDirectory() as tmp:
            make_photos(Path(tmp), args.per_class, args.seed)
            run(Path(tmp), rows, args.color)
        return
    if args.folder.exists() and any(args.folder.iterdir()):
        parser.error(f"--folder {args.folder}: not empty; give a new or empty folder")
    make_photos(args.folder, args.per_class, args.seed)
    run(args.folder, rows, args.color)


if __name__ == "__main__":
    main()
