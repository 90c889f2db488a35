"""Speed of the transform, side by side in one process, on the same inputs.

For each configuration it times:

- ours: ``ConvFeatureTransformer.transform`` (conv -> relu -> max pool, float32 output);
- PyTorch CPU: ``conv2d -> relu -> max_pool2d`` under ``torch.no_grad()``, the best of batch
  sizes 128, 256 and 512, with ``torch.set_num_threads`` equal to our ``n_jobs``;
- the seed-style loop: ``scipy.signal.correlate2d`` per image, filter and channel, then relu
  and max pooling; timed on a subset and scaled up to the whole set;
- the GEMM-bound limit: the convolution's FLOPs divided by NumPy's float32 GEMM rate, measured
  in this run as ``a @ a`` on a 2048x2048 matrix with as many BLAS threads as our ``n_jobs``.

Then how our time grows from 1k to 10k to 50k images (config A), and n_jobs=2 against
n_jobs=1 (config B). Every time is the best of ``--repeats`` runs.

Run from the repository root::

    pip install -r benchmarks/requirements.txt
    python benchmarks/bench_speed.py            # the full table, a few minutes
    python benchmarks/bench_speed.py --quick    # a smoke run on small inputs
"""

import argparse
import os
import sys
import time

import numpy as np
import scipy.signal
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402
from sklearn_convfeat._engine import choose_method, transform_images  # noqa: E402

# name: (n_images, image (H, W, C), n_filters, filter size)
CONFIGS = {
    "A": (20_000, (28, 28, 1), 64, 5),
    "B": (5_000, (32, 32, 3), 128, 5),
    "C": (1_000, (64, 64, 1), 64, 21),
}
POOL = 4
TORCH_BATCH_SIZES = (128, 256, 512)


def best_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def make_data(n_images, image_shape, n_filters, size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, *image_shape), dtype=np.float32)
    filters = rng.standard_normal((n_filters, size, size, image_shape[2]), dtype=np.float32)
    return images, filters


def ours(filters, n_jobs):
    return ConvFeatureTransformer(
        n_filters=filters.shape[0],
        filter_init=filters,
        padding="valid",
        activation="relu",
        pooling="max",
        pool_size=POOL,
        flatten=False,
        n_jobs=n_jobs,
    )


def torch_time(images, filters, threads, repeats):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    # Layout conversion to NCHW is torch's input format, done once outside the timing.
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    w = torch.from_numpy(np.ascontiguousarray(filters.transpose(0, 3, 1, 2)))
    times = {}
    with torch.no_grad():
        for batch in TORCH_BATCH_SIZES:

            def run(batch=batch):
                return [
                    F.max_pool2d(F.relu(F.conv2d(x[i : i + batch], w)), POOL)
                    for i in range(0, len(x), batch)
                ]

            run()  # warm-up: oneDNN picks and caches its kernels
            times[batch] = best_time(run, repeats)
        check = F.max_pool2d(F.relu(F.conv2d(x[:8], w)), POOL).numpy().transpose(0, 2, 3, 1)
    return min(times.values()), min(times, key=times.get), check


def seed_loop(images, filters):
    """The seed's approach: correlate2d per image, filter and channel, then relu and pooling."""
    features = []
    for image in images:
        maps = []
        for filt in filters:
            total = sum(
                scipy.signal.correlate2d(image[:, :, c], filt[:, :, c], mode="valid")
                for c in range(image.shape[2])
            )
            total = np.maximum(total, 0)
            rows, cols = (s // POOL * POOL for s in total.shape)
            pooled = total[:rows, :cols].reshape(rows // POOL, POOL, cols // POOL, POOL)
            maps.append(pooled.max(axis=(1, 3)))
        features.append(np.stack(maps, axis=-1))
    return np.stack(features)


def gemm_rate(threads, repeats):
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ a
        return 2 * 2048**3 / best_time(lambda: a @ a, repeats)


def conv_flops(n_images, image_shape, n_filters, size):
    out_rows, out_cols = image_shape[0] - size + 1, image_shape[1] - size + 1
    return 2 * n_images * out_rows * out_cols * n_filters * size * size * image_shape[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, one repeat")
    parser.add_argument("--threads", type=int, default=1, help="our n_jobs = torch threads")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scale = 20 if args.quick else 1
    repeats = 1 if args.quick else args.repeats
    threads = args.threads

    blas = [(i["internal_api"], i.get("architecture"), i["version"]) for i in threadpool_info()]
    print(f"threads={threads} repeats={repeats} quick={args.quick} BLAS={blas}")
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"{name}={os.environ.get(name, '(unset)')}")
    rate = gemm_rate(threads, max(repeats, 3))
    print(f"NumPy float32 GEMM 2048x2048: {rate / 1e9:.1f} GFLOP/s\n")

    header = (
        f"{'cfg':<4}{'n':>7} {'path':>5} {'ours s':>8} {'torch s':>8} {'bs':>4} "
        f"{'seed s':>9} {'limit s':>8} | {'torch/ours':>10} {'limit/ours':>10} "
        f"{'seed/ours':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, (n_images, image_shape, n_filters, size) in CONFIGS.items():
        n_images //= scale
        images, filters = make_data(n_images, image_shape, n_filters, size)
        transformer = ours(filters, threads).fit(images[:1])
        t_ours = best_time(lambda t=transformer, x=images: t.transform(x), repeats)
        features = transformer.transform(images[:8])
        t_torch, torch_batch, torch_check = torch_time(images, filters, threads, repeats)
        # Same features as torch, to float32 accuracy.
        np.testing.assert_allclose(features, torch_check, rtol=1e-4, atol=1e-3)
        subset = max(2, n_images // 500)
        t_seed = best_time(lambda x=images[:subset], f=filters: seed_loop(x, f), 1)
        t_seed *= n_images / subset
        t_limit = conv_flops(n_images, image_shape, n_filters, size) / rate
        path = choose_method(image_shape, filters.shape, 1, "valid")
        print(
            f"{name:<4}{n_images:>7} {path:>5} {t_ours:>8.3f} {t_torch:>8.3f} {torch_batch:>4} "
            f"{t_seed:>9.1f} {t_limit:>8.3f} | {t_torch / t_ours:>10.2f} "
            f"{t_limit / t_ours:>10.2f} {t_seed / t_ours:>9.0f}"
        )
        if name == "C":
            # The engine with each path forced, to show the automatic choice is the faster.
            for method in ("gemm", "fft"):
                t = best_time(
                    lambda m=method, x=images, f=filters: transform_images(
                        x, f, pool_size=(POOL, POOL), n_jobs=threads, method=m
                    ),
                    repeats,
                )
                print(f"    C with the {method} path forced: {t:.3f} s")
    print(
        "torch/ours and seed/ours: how many times faster ours is; limit/ours: the fraction of "
        "the GEMM-bound limit reached (above 1 is faster than any GEMM could be: the FFT path).\n"
    )

    n_images, image_shape, n_filters, size = CONFIGS["A"]
    sizes = [1_000, 10_000, 50_000] if not args.quick else [500, 1_000, 5_000]
    images, filters = make_data(max(sizes), image_shape, n_filters, size, seed=1)
    transformer = ours(filters, threads).fit(images[:1])
    times = [best_time(lambda n=n: transformer.transform(images[:n]), repeats) for n in sizes]
    print("Scaling (config A):")
    for n, t in zip(sizes, times, strict=True):
        print(f"  {n:>6} images: {t:7.3f} s  {t / n * 1e6:6.1f} us/image")
    print(
        f"  time ratios: {times[1] / times[0]:.2f} for {sizes[1] / sizes[0]:.0f}x images, "
        f"{times[2] / times[1]:.2f} for {sizes[2] / sizes[1]:.0f}x images\n"
    )

    n_images, image_shape, n_filters, size = CONFIGS["B"]
    images, filters = make_data(n_images // scale, image_shape, n_filters, size)
    one = ours(filters, 1).fit(images[:1])
    two = ours(filters, 2).fit(images[:1])
    t_one = best_time(lambda: one.transform(images), repeats)
    t_two = best_time(lambda: two.transform(images), repeats)
    assert np.array_equal(one.transform(images[:64]), two.transform(images[:64]))
    print(
        f"n_jobs (config B): 1 -> {t_one:.3f} s, 2 -> {t_two:.3f} s, speed-up {t_one / t_two:.2f}"
    )


if __name__ == "__main__":
    main()
