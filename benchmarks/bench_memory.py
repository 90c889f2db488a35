"""Peak memory of the transform beyond its output: 60,000 grey 28x28 images, config A's filters.

Two measures of the same ``ConvFeatureTransformer.transform`` call:

- ``tracemalloc``: the peak of the memory NumPy allocates during the call (NumPy reports its
  allocations to it), minus the output array;
- the process's peak resident set (``VmHWM``, reset just before the call through
  ``/proc/self/clear_refs`` on Linux), minus the resident set before the call and the output:
  this also counts what BLAS, threads and the interpreter allocate.

Run from the repository root: ``python benchmarks/bench_memory.py [--n-images 60000]``.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=60_000)
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = np.empty((args.n_images, 28 * 28), dtype=np.float32)
    for start in range(0, args.n_images, 10_000):
        block = images[start : start + 10_000]
        block[...] = rng.random(block.shape, dtype=np.float32)
    filters = rng.standard_normal((64, 5, 5, 1), dtype=np.float32)
    transformer = ConvFeatureTransformer(
        n_filters=64,
        filter_init=filters,
        padding="valid",
        activation="relu",
        pooling="max",
        pool_size=4,
        n_jobs=args.n_jobs,
    ).fit(images[:1])
    transformer.transform(images[:100])  # load BLAS and warm the thread pool up

    output_bytes = args.n_images * int(np.prod(transformer.output_shape_)) * 4
    rss_reset = reset_peak_rss()
    rss_before = status_kb("VmRSS") * 1024
    tracemalloc.start()
    features = transformer.transform(images)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = status_kb("VmHWM") * 1024

    print(f"{args.n_images} images 28x28, 64 filters 5x5, relu, max pool 4, n_jobs={args.n_jobs}")
    print(f"input {images.nbytes / MB:.1f} MB, output {features.nbytes / MB:.1f} MB")
    assert features.nbytes == output_bytes
    print(f"tracemalloc peak beyond the output: {(traced_peak - output_bytes) / MB:.1f} MB")
    if rss_reset:
        beyond = rss_peak - rss_before - output_bytes
        print(f"peak RSS beyond the output:         {beyond / MB:.1f} MB")
    else:
        print("peak RSS: /proc/self/clear_refs not writable here, not measured")


if __name__ == "__main__":
    main()
