"""One large image through the default transform, by the least rows a band of its maps holds.

The diagnostic behind ``MIN_BAND_ROWS`` in ``sklearn_convfeat/_plan.py``: for each image shape
(random smooth pixels) and each value of ``--band-rows``, ``MIN_BAND_ROWS`` is set to it (1 gives
the tiling from before that floor: bands of one row for photos of several megapixels), and
``ConvFeatureTransformer(random_state=0)``, fitted on a 256x256 crop given as a list (so that
each image's plan is made for its own shape at transform time), transforms the image. Columns:
the plan's bands (their rows) and blocks of filters, a tile's bytes, the best seconds of
``--repeats`` calls on one BLAS thread, and the peak of the memory NumPy allocates during one
more call (``tracemalloc``, which slows the calls it watches). Like ``bench_speed.py``, it
restarts itself without ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unless
``--keep-blas-env``. Run from the repository root::

    python benchmarks/bench_large.py                       # 3000x4000 grey, 1500x2000x3
    python benchmarks/bench_large.py --shapes 600x8000 --band-rows 1 8 --antialias on
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from bench_speed import _restart_with_native_blas  # noqa: E402

if __name__ == "__main__":
    _restart_with_native_blas()

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
from bench_speed import blas_report  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import sklearn_convfeat._plan as plan_module  # noqa: E402
from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402


def image_of(shape):
    """Smooth random pixels of ``shape`` ``HxW`` or ``HxWxC``."""
    sizes = tuple(int(size) for size in shape.split("x"))
    pixels = np.random.default_rng(0).standard_normal(sizes).astype(np.float32)
    return gaussian_filter(pixels, (2, 2, 0)[: len(sizes)])


def run(image, antialias, band_rows, repeats):
    conv = ConvFeatureTransformer(random_state=0, antialias=antialias).fit([image[:256, :256]])
    for rows in band_rows:
        plan_module.MIN_BAND_ROWS = rows
        plan_module.make_plan.cache_clear()
        shape = image.shape if image.ndim == 3 else (*image.shape, 1)
        plan = plan_module.make_plan(conv.spec_, shape)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            conv.transform([image])
            seconds.append(time.perf_counter() - start)
        tracemalloc.start()
        conv.transform([image])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        heights = sorted({stop - start for start, stop in plan.bands})
        print(
            f"| {'x'.join(map(str, image.shape))} | {'on' if antialias else 'off'} | {rows} "
            f"| {len(plan.bands)} of {heights[-1]} rows | {len(plan.blocks)} "
            f"| {plan.tile_bytes_per_image / 2**20:.1f} | {min(seconds):.2f} "
            f"| {peak / 2**20:.1f} |",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["3000x4000", "1500x2000x3"])
    parser.add_argument("--band-rows", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--antialias", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep-blas-env", action="store_true")
    args = parser.parse_args()
    print(blas_report())
    print(f"Tile budget {plan_module.tile_bytes() / 2**20:.1f} MiB; one BLAS thread.")
    print()
    print("| image | antialias | MIN_BAND_ROWS | bands | blocks | tile MiB | seconds | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for shape in args.shapes:
            image = image_of(shape)
            for antialias in args.antialias:
                run(image, antialias == "on", args.band_rows, args.repeats)


if __name__ == "__main__":
    main()
