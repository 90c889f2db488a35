"""Peak memory of the transform beyond its output: grey 28x28 images, 64 or 1,600 filters.

Two banks on the same images: config A's (64 filters 5x5, relu, max pool 4) and a bank the size
of config C's (1,600 filters 5x5, relu, max onto a 2x2 grid), each on 6,000 and on 60,000
images. Two measures of each ``ConvFeatureTransformer.transform`` call:

- ``tracemalloc``: the peak of the memory NumPy allocates during the call (NumPy reports its
  allocations to it), minus the output array;
- the process's peak resident set (``VmHWM``, reset just before the call through
  ``/proc/self/clear_refs`` on Linux), minus the resident set before the call and the output:
  this also counts what BLAS, threads and the interpreter allocate.

Run from the repository root: ``python benchmarks/bench_memory.py [--n-images 60000]``
(``--n-filters 64`` for config A's bank alone).
"""

import argparse
import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402

MB = 2**20


def status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss():
    """Reset VmHWM to the current resident set; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


# Plain filters, features not centred: pinned where the installed version has them.
PLAIN = {
    name: value
    for name, value in {"dilation": 1, "center": False}.items()
    if name in ConvFeatureTransformer().get_params()
}


def measure(images, n_filters, n_jobs):
    """Peak bytes beyond the output of one transform: (tracemalloc, resident set or None)."""
    filters = np.random.default_rng(0).standard_normal((n_filters, 5, 5, 1), dtype=np.float32)
    pooling = {"pool_size": 4, "pool_grid": None} if n_filters <= 64 else {"pool_grid": 2}
    transformer = ConvFeatureTransformer(
        **PLAIN,
        n_filters=n_filters,
        filter_init=filters,
        padding="valid",
        activation="relu",
        pooling="max",
        patch_norm=False,
        n_jobs=n_jobs,
        **pooling,
    ).fit(images[:1])
    transformer.transform(images[:100])  # load BLAS and warm the thread pool up

    output_bytes = len(images) * int(np.prod(transformer.output_shape_)) * 4
    rss_reset = reset_peak_rss()
    rss_before = status_kb("VmRSS") * 1024
    tracemalloc.start()
    features = transformer.transform(images)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = status_kb("VmHWM") * 1024
    assert features.nbytes == output_bytes
    rss = rss_peak - rss_before - output_bytes if rss_reset else None
    return traced_peak - output_bytes, rss, output_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=60_000)
    parser.add_argument("--n-filters", default="64,1600", help="comma-separated bank sizes")
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = np.empty((args.n_images, 28 * 28), dtype=np.float32)
    for start in range(0, args.n_images, 10_000):
        block = images[start : start + 10_000]
        block[...] = rng.random(block.shape, dtype=np.float32)
    images = images.reshape(-1, 28, 28)
    print(f"images 28x28, input {images.nbytes / MB:.1f} MB, n_jobs={args.n_jobs}")
    print(f"{'filters':>8} {'images':>7} {'output MB':>10} {'tracemalloc MB':>15} {'RSS MB':>7}")
    for n_filters in map(int, args.n_filters.split(",")):
        for n_images in sorted({max(1, args.n_images // 10), args.n_images}):
            traced, rss, output = measure(images[:n_images], n_filters, args.n_jobs)
            rss_text = "n/a" if rss is None else f"{rss / MB:.1f}"
            print(
                f"{n_filters:>8} {n_images:>7} {output / MB:>10.1f} {traced / MB:>15.1f} "
                f"{rss_text:>7}"
            )
    print(
        "tracemalloc, RSS: peak beyond the output, from NumPy's allocations and from the "
        "process's resident set (n/a where /proc/self/clear_refs is not writable); the pooling "
        "is max pool 4 for 64 filters, max onto a 2x2 grid for more."
    )


if __name__ == "__main__":
    main()
