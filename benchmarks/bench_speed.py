"""Speed of the transform against PyTorch at its best and the GEMM-bound limit, in one process.

For each configuration (``CONFIGS``) it times, on the same float32 inputs:

- ours: ``ConvFeatureTransformer.transform`` with the configuration's filters, activation and
  pooling (valid padding, no patch normalisation), ``n_jobs`` = ``--threads``;
- PyTorch CPU at its best: ``conv2d``, the activation and the pooling under ``no_grad``
  (``max_pool2d`` for windows, ``adaptive_max_pool2d`` / ``adaptive_avg_pool2d`` for a grid),
  over every batch size from 32 to 512 (smaller ones where a batch's maps would take more than
  ``TORCH_MAPS_BYTES``), every thread count from 1 to ``threads``, the input and the weight
  each contiguous or channels-last, made by ``.to(memory_format=...)`` or by
  ``.contiguous(memory_format=...)`` (with one channel they differ: the ambiguous format
  keeps other strides), and, for max pooling after relu, relu before or after the pooling
  (after is exact and faster). A first round on a quarter of the images picks the two fastest
  variants; each round then times both on all images, and torch's time is the faster; the
  table names the winner and its strides;
- the seed-style loop: ``scipy.signal.correlate2d`` per image, filter and channel, timed on a
  subset and scaled up;
- the GEMM-bound limit: the convolution's FLOPs divided by NumPy's float32 GEMM rate on a
  2048x2048 matrix with ``threads`` BLAS threads, measured in the same round.

Then how our time grows with the number of images (config A), ``n_jobs=2`` against ``n_jobs=1``
(configs A, B and C), and, for config F, each of our paths forced.

The machine may be shared: each of ``--repeats`` rounds times every contender once, one after
the other, so that a ratio compares times taken under the same load; the table gives the best
times and the median ratios over rounds.

The BLAS kernel: OpenBLAS picks the kernel of the CPU it runs on, unless ``OPENBLAS_CORETYPE``
forces one (and ``OPENBLAS_L2_SIZE`` the cache size it tunes for). This script measures what
a user's machine runs: if either variable is set, it restarts itself without them, and prints
the kernel that threadpoolctl reports. ``--keep-blas-env`` keeps them, to time a forced kernel.

Run from the repository root::

    pip install -r benchmarks/requirements.txt
    python benchmarks/bench_speed.py              # the full table, about 15 minutes
    python benchmarks/bench_speed.py --quick      # a smoke run on small inputs
    python benchmarks/bench_speed.py --crossover  # GEMM against FFT over filter sizes
    python benchmarks/bench_speed.py --first-call # where a fresh process's first call goes
    OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512 \\
        python benchmarks/bench_speed.py --keep-blas-env   # under a forced kernel
"""

import os
import sys

BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
UNSET_MARK = "CONVFEAT_BENCH_UNSET_BLAS"


def _restart_with_native_blas():
    """Restart this script without the variables that force an OpenBLAS kernel (read when
    OpenBLAS loads, so before NumPy is imported)."""
    forced = [name for name in BLAS_VARIABLES if name in os.environ]
    if not forced or "--keep-blas-env" in sys.argv:
        return
    env = {name: value for name, value in os.environ.items() if name not in BLAS_VARIABLES}
    env[UNSET_MARK] = " ".join(f"{name}={os.environ[name]}" for name in forced)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


if __name__ == "__main__":
    _restart_with_native_blas()

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402
from sklearn_convfeat._engine import pooled_features  # noqa: E402
from sklearn_convfeat._plan import choose_method, make_plan  # noqa: E402
from sklearn_convfeat._spec import FeatureSpec, parse_pooling  # noqa: E402


@dataclass(frozen=True)
class Config:
    description: str
    n_images: int
    image_shape: tuple
    n_filters: int
    filter_size: int
    activation: str = "relu"
    pooling: str = "max"
    pool_size: int | None = 4
    pool_grid: int | None = None


CONFIGS = {
    "A": Config("grey 28x28, 64 filters 5x5, relu, max pool 4", 20_000, (28, 28, 1), 64, 5),
    "B": Config("colour 32x32x3, 128 filters 5x5, relu, max pool 4", 5_000, (32, 32, 3), 128, 5),
    "C": Config(
        "colour 32x32x3, 1,600 filters 6x6 (Coates & Ng), relu, max onto a 2x2 grid",
        1_000,
        (32, 32, 3),
        1_600,
        6,
        pool_size=None,
        pool_grid=2,
    ),
    "MOSAIKS": Config(
        "colour 64x64x3, 4,096 filters 3x3 (MOSAIKS), two_sided, mean onto one region",
        64,
        (64, 64, 3),
        4_096,
        3,
        activation="two_sided",
        pooling="avg",
        pool_size=None,
        pool_grid=1,
    ),
    "F": Config(
        "grey 64x64, 64 filters 21x21 (the FFT path), relu, max pool 4", 1_000, (64, 64, 1), 64, 21
    ),
}
N_JOBS_CONFIGS = ("A", "B", "C")
TORCH_BATCH_SIZES = (32, 64, 128, 256, 512)
# A batch's maps (float32) larger than this are not tried: MOSAIKS's take 63 MB an image.
TORCH_MAPS_BYTES = 2 * 2**30


def make_data(config, n_images, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, *config.image_shape), dtype=np.float32)
    size, channels = config.filter_size, config.image_shape[2]
    filters = rng.standard_normal((config.n_filters, size, size, channels), dtype=np.float32)
    return images, filters


# PyTorch's work: plain filters on the image as it is, features neither reweighed nor centred.
# These parameters of later versions are pinned where the installed version has them, so that
# older versions can be timed too.
PLAIN = {
    name: value
    for name, value in {
        "dilation": 1,
        "antialias": False,
        "balance_levels": False,
        "center": False,
    }.items()
    if name in ConvFeatureTransformer().get_params()
}


def ours(config, filters, n_jobs):
    return ConvFeatureTransformer(
        **PLAIN,
        n_filters=len(filters),
        filter_init=filters,
        padding="valid",
        activation=config.activation,
        pooling=config.pooling,
        pool_size=config.pool_size,
        pool_grid=config.pool_grid,
        patch_norm=False,
        flatten=False,
        n_jobs=n_jobs,
    )


def plan_of(config, method="auto", tile_budget=None):
    spec = FeatureSpec(
        n_filters=config.n_filters,
        filter_size=(config.filter_size,) * 2,
        activation=config.activation,
        pooling=config.pooling,
        layout=parse_pooling(config.pool_size, config.pool_grid, False),
        flatten=False,
    )
    return make_plan(spec, config.image_shape, method=method, tile_budget=tile_budget)


def timed(function):
    """Wall-clock and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_engine(images, plan, filters, threads):
    """Seconds of our engine on ``plan``, called directly (to force a path)."""
    return timed(lambda: pooled_features(images, plan, filters, n_jobs=threads))[0]


def map_bytes(config):
    rows, cols = (length - config.filter_size + 1 for length in config.image_shape[:2])
    return 4 * rows * cols * config.n_filters


def torch_batch_sizes(config):
    """Batch sizes from 32 to 512 whose maps fit TORCH_MAPS_BYTES, else the two largest that
    fit."""
    fits = [b for b in (4, 8, 16, *TORCH_BATCH_SIZES) if b * map_bytes(config) <= TORCH_MAPS_BYTES]
    return [b for b in fits if b >= TORCH_BATCH_SIZES[0]] or fits[-2:] or [1]


def torch_layouts(tensor, torch):
    """The layouts a user reaches for ``tensor``, by name, each once: contiguous, and
    channels-last made by ``.to(memory_format=...)`` and by ``.contiguous(memory_format=...)``.
    With one channel the format is ambiguous and the two give different strides (oneDNN's
    speed differs by up to 7x between them); with more they are the same tensor layout, kept
    once."""
    layouts = {
        "contiguous": tensor,
        "to(channels_last)": tensor.to(memory_format=torch.channels_last),
        "contiguous(channels_last)": tensor.contiguous(memory_format=torch.channels_last),
    }
    unique = {}
    for name, value in layouts.items():
        if value.stride() not in [other.stride() for other in unique.values()]:
            unique[name] = value
    return unique


@dataclass(frozen=True)
class TorchVariant:
    """One way of running torch's conv, activation and pooling over all images."""

    x: object
    w: object
    batch: int
    order: str
    threads: int

    def name(self, x_layout, w_layout):
        return (
            f"batch {self.batch}, x {x_layout}, w {w_layout}, {self.order}, "
            f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        )

    def strides(self):
        return f"x strides {tuple(self.x.stride())}, w strides {tuple(self.w.stride())}"


def torch_variants(config, images, filters, threads):
    """Torch's variants by name (every batch size, layout of the input and of the weight,
    order of activation and pooling, and thread count up to ``threads``), a function that
    runs one of them on the first images, and torch's features of the first images
    (``(n, rows, cols, maps)``, to check ours)."""
    import torch
    import torch.nn.functional as F

    # NCHW is torch's layout: converted once, outside the timing. A clone in the contiguous
    # format gives its canonical strides even along one channel, where NumPy keeps the
    # transpose's.
    x, w = (
        torch.from_numpy(array.transpose(0, 3, 1, 2)).clone(memory_format=torch.contiguous_format)
        for array in (images, filters)
    )
    size = config.pool_size

    def pool(maps):
        if config.pool_grid is None:
            return F.max_pool2d(maps, size)
        if config.pooling == "max":
            return F.adaptive_max_pool2d(maps, config.pool_grid)
        return F.adaptive_avg_pool2d(maps, config.pool_grid)

    def activate_then_pool(maps):
        if config.activation == "two_sided":
            negative = pool(F.relu(-maps))
            return torch.cat([pool(F.relu_(maps)), negative], dim=1)
        return pool(F.relu_(maps))

    orders = {"relu, pool": activate_then_pool}
    if config.activation == "relu" and config.pooling == "max":
        orders["pool, relu"] = lambda maps: F.relu_(pool(maps))

    variants = {}
    for batch in torch_batch_sizes(config):
        for x_name, x_layout in torch_layouts(x, torch).items():
            for w_name, w_layout in torch_layouts(w, torch).items():
                for order in orders:
                    for n in range(1, threads + 1):
                        variant = TorchVariant(x_layout, w_layout, batch, order, n)
                        variants[variant.name(x_name, w_name)] = variant

    def run(variant, n_images=None):
        x = variant.x if n_images is None else variant.x[:n_images]
        forward, batch = orders[variant.order], variant.batch

        def call():
            torch.set_num_threads(variant.threads)
            with torch.no_grad():
                return [
                    forward(F.conv2d(x[i : i + batch], variant.w)) for i in range(0, len(x), batch)
                ]

        return call

    with torch.no_grad():
        first = activate_then_pool(F.conv2d(x[:4], w)).numpy().transpose(0, 2, 3, 1)
    return variants, run, first


def seed_features(config, images, filters):
    """The seed's approach: correlate2d per image, filter and channel, then the activation and
    the pooling (over our regions) in NumPy. Also the reference that ours are checked
    against."""
    plan = plan_of(config)
    features = []
    for image in images:
        maps = np.stack(
            [
                sum(
                    scipy.signal.correlate2d(image[:, :, c], f[:, :, c], mode="valid")
                    for c in range(image.shape[2])
                )
                for f in filters
            ],
            axis=-1,
        )
        if config.activation == "two_sided":
            maps = np.concatenate([np.maximum(maps, 0), np.maximum(-maps, 0)], axis=-1)
        else:
            maps = np.maximum(maps, 0)
        level = plan.levels[0]
        reduce = np.max if config.pooling == "max" else np.mean
        rows, cols = (
            list(zip(regions.starts, (*regions.starts[1:], regions.stop), strict=True))
            for regions in (level.map_rows, level.map_cols)
        )
        features.append(
            [[reduce(maps[r0:r1, c0:c1], axis=(0, 1)) for c0, c1 in cols] for r0, r1 in rows]
        )
    return np.asarray(features, dtype=np.float32)


def gemm_rate(threads, repeats):
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ a
        return 2 * 2048**3 / min(timed(lambda: a @ a)[0] for _ in range(repeats))


def conv_flops(config, n_images):
    rows, cols = (length - config.filter_size + 1 for length in config.image_shape[:2])
    taps = config.filter_size**2 * config.image_shape[2]
    return 2 * n_images * rows * cols * config.n_filters * taps


def blas_report():
    """The BLAS libraries threadpoolctl finds, and where the kernel was chosen."""
    libraries = [
        f"{info['internal_api']} {info['version']} kernel {info.get('architecture')}"
        for info in threadpool_info()
        if info["user_api"] == "blas"
    ]
    forced = {name: os.environ.get(name) for name in BLAS_VARIABLES if os.environ.get(name)}
    if forced:
        origin = "forced by " + " ".join(f"{name}={value}" for name, value in forced.items())
    else:
        origin = "the CPU's own (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE unset"
        unset = os.environ.get(UNSET_MARK)
        origin += f"; this run removed {unset})" if unset else ")"
    return f"BLAS: {'; '.join(libraries)}. Kernel: {origin}."


def crossover(threads, repeats):
    """Time both paths over filter sizes: where the FFT starts to win, for ``choose_method``."""
    print(f"{'image':>10} {'filter':>7} {'gemm s':>8} {'fft s':>8} {'fft/gemm':>9} {'auto':>5}")
    for image_shape, sizes in [
        ((32, 32, 1), (7, 11, 15)),
        ((32, 32, 3), (5, 9, 11)),
        ((64, 64, 1), (11, 15, 17, 19, 21, 25)),
        ((96, 96, 1), (11, 15, 19, 23)),
    ]:
        n_images = max(8, 200_000 // (image_shape[0] * image_shape[1]))
        for size in sizes:
            config = Config("", n_images, image_shape, 64, size)
            images, filters = make_data(config, n_images)
            times = []
            for method in ("gemm", "fft"):
                plan = plan_of(config, method)
                pooled_features(images[:2], plan, filters)
                times.append(
                    min(time_engine(images, plan, filters, threads) for _ in range(repeats))
                )
            auto = choose_method(image_shape, (size, size), 1, "valid")
            print(
                f"{str(image_shape):>10} {size:>7} {times[0]:>8.3f} {times[1]:>8.3f} "
                f"{times[1] / times[0]:>9.2f} {auto:>5}"
            )


def compare(config, images, filters, threads, repeats, quick):
    """One configuration: the rounds of ours, torch and the GEMM; a row of the table."""
    n_images = len(images)
    transformer = ours(config, filters, threads).fit(images[:1])
    variants, run_torch, torch_first = torch_variants(config, images, filters, threads)
    expected = seed_features(config, images[:4], filters)
    got = transformer.transform(images[:4])
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale)
    if config.pool_grid is None or config.pooling == "avg":
        # torch pools the same regions (its adaptive max regions of a 2x2 grid of 27 overlap).
        np.testing.assert_allclose(got, torch_first, rtol=1e-4, atol=1e-5 * scale)
    # Screening: every torch variant on a quarter of the images; keep the two fastest.
    n_screen = max(1, n_images // 4)
    screen = {}
    for name, variant in variants.items():
        run = run_torch(variant, n_screen)
        run()  # warm-up: oneDNN picks and caches its kernels
        screen[name] = timed(run)[0]
    finalists = sorted(screen, key=screen.get)[:2]
    full = {name: run_torch(variants[name]) for name in finalists}
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    rows, winners = [], []
    for _ in range(repeats):
        # Ours: the better of two calls. The first large allocation after torch's run can wait
        # for the kernel to compact memory into huge pages (+0.3 to 0.6 s on config A, once).
        t_ours = min(timed(lambda: transformer.transform(images)) for _ in range(2))
        t_torch = {name: timed(full[name]) for name in finalists}
        best = min(t_torch, key=lambda name: t_torch[name][0])
        winners.append(best)
        with threadpool_limits(limits=threads, user_api="blas"):
            t_gemm = timed(lambda: a @ a)
        rows.append((*t_ours, *t_torch[best], *t_gemm))
    times = np.array(rows).reshape(repeats, 3, 2)  # rounds, (ours, torch, gemm), (wall, cpu)
    t_ours, t_torch, t_gemm = times[:, 0], times[:, 1], times[:, 2]
    t_limit = conv_flops(config, n_images) / (2 * 2048**3) * t_gemm
    subset_size = 1 if quick else max(1, n_images // 500)
    t_seed = timed(lambda: seed_features(config, images[:subset_size], filters))[0]
    t_seed *= n_images / subset_size
    winner = max(set(winners), key=winners.count)
    return dict(
        ours=t_ours[:, 0].min(),
        torch=t_torch[:, 0].min(),
        seed=t_seed,
        limit=t_limit[:, 0].min(),
        vs_torch=np.median(t_torch / t_ours, axis=0),
        vs_limit=np.median(t_limit / t_ours, axis=0),
        vs_seed=t_seed / t_ours[:, 0].min(),
        winner=winner,
        winner_strides=variants[winner].strides(),
        screen=screen,
    )


def n_jobs_speedup(config, images, filters, repeats):
    """n_jobs=2 against n_jobs=1 on the same images: median speed-up and cores used."""
    one = ours(config, filters, 1).fit(images[:1])
    two = ours(config, filters, 2).fit(images[:1])
    assert np.array_equal(one.transform(images[:16]), two.transform(images[:16]))
    rows = []
    for _ in range(repeats):
        t_one = timed(lambda: one.transform(images))[0]
        t_two, cpu_two = timed(lambda: two.transform(images))
        rows.append((t_one, t_two, cpu_two / t_two))
    t_one, t_two, busy = np.array(rows).T
    return t_one.min(), t_two.min(), np.median(t_one / t_two), np.median(busy)


FIRST_CALL = r"""
import sys, time
import numpy as np
from bench_speed import CONFIGS, make_data, ours
threads, touch = int(sys.argv[1]), sys.argv[2] == "touch"
config = CONFIGS["A"]
images, filters = make_data(config, config.n_images)
transformer = ours(config, filters, threads).fit(images[:10])
times = []
if touch:  # fresh memory of the output's size, touched once and freed
    n_values = len(images) * len(transformer.get_feature_names_out())
    start = time.perf_counter()
    fresh = np.empty(n_values, np.float32)
    fresh[...] = 0
    times.append(time.perf_counter() - start)
    del fresh
for n in (24, 24, len(images), len(images)):
    start = time.perf_counter()
    transformer.transform(images[:n])
    times.append(time.perf_counter() - start)
print(" ".join(map(str, times)))
"""


def first_call(threads, repeats):
    """Where the first transform of a fresh process goes, on config A: each run is a new
    process that fits, then transforms 24 images twice (the engine's own one-off setup), then
    all the images twice; and the same after touching, once, fresh memory of the output's
    size (the kernel's first mapping of that much memory)."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(here), here])}
    print(f"config A, n_jobs={threads}, {repeats} fresh processes each; seconds, medians")
    for touch in ("plain", "touch"):
        runs = np.array(
            [
                subprocess.run(
                    [sys.executable, "-c", FIRST_CALL, str(threads), touch],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                for _ in range(repeats)
            ],
            dtype=float,
        )
        median = np.median(runs, axis=0)
        touched = ""
        if touch == "touch":
            touched = f"fresh memory of the output's size touched first: {median[0]:.3f} s; "
            median = median[1:]
        print(
            f"  {touched}24 images: first {median[0] * 1e3:.1f} ms, second "
            f"{median[1] * 1e3:.1f} ms; all images: first {median[2]:.3f} s, second "
            f"{median[3]:.3f} s (first / second {median[2] / median[3]:.2f})"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, two rounds")
    parser.add_argument("--threads", type=int, default=1, help="our n_jobs = torch threads")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of measurements")
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS"
    )
    parser.add_argument(
        "--crossover", action="store_true", help="only time the GEMM and FFT paths per filter size"
    )
    parser.add_argument(
        "--first-call",
        action="store_true",
        help="only time a fresh process's first transforms (config A, --repeats processes)",
    )
    parser.add_argument(
        "--keep-blas-env",
        action="store_true",
        help="keep OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (time a forced kernel)",
    )
    args = parser.parse_args()
    print(blas_report())
    if args.crossover:
        crossover(args.threads, args.repeats)
        return
    if args.first_call:
        first_call(args.threads, args.repeats)
        return
    scale = 20 if args.quick else 1
    repeats = 2 if args.quick else args.repeats
    threads = args.threads
    names = args.configs.split(",")
    print(f"threads={threads} repeats={repeats} quick={args.quick}")
    print(f"NumPy float32 GEMM 2048x2048: {gemm_rate(threads, 3) / 1e9:.1f} GFLOP/s (best of 3)\n")

    results = {}
    for name in names:
        config = CONFIGS[name]
        n_images = max(4, config.n_images // scale)
        images, filters = make_data(config, n_images)
        results[name] = compare(config, images, filters, threads, repeats, args.quick)
        result = results[name]
        print(f"{name}: {n_images} images, {config.description}")
        print(
            f"  ours {result['ours']:.3f} s; torch {result['torch']:.3f} s at its best "
            f"({result['winner']}; {result['winner_strides']}); seed loop {result['seed']:.1f} s; "
            f"GEMM limit {result['limit']:.3f} s"
        )
        screen = sorted(result["screen"].items(), key=lambda item: item[1])
        print(
            "  torch variants on a quarter of the images, fastest first: "
            + "; ".join(f"{variant} {seconds:.3f} s" for variant, seconds in screen)
        )
        if name == "F":
            # Each path forced, to show that the automatic choice is the faster.
            for method in ("gemm", "fft"):
                plan = plan_of(config, method)
                t = min(time_engine(images, plan, filters, threads) for _ in range(repeats))
                print(f"  F with the {method} path forced: {t:.3f} s")

    print(f"\n{blas_report()}")
    print(
        f"{'config':<8}{'images':>7} {'path':>5} {'ours s':>8} {'torch s':>8} {'limit s':>8} "
        f"| {'torch/ours':>11} {'limit/ours':>11} {'seed/ours':>9}\n"
        f"{'':<48}| {'wall':>5} {'cpu':>5} {'wall':>5} {'cpu':>5}"
    )
    print("-" * 94)
    for name in names:
        config, result = CONFIGS[name], results[name]
        path = choose_method(config.image_shape, (config.filter_size,) * 2, 1, "valid")
        print(
            f"{name:<8}{max(4, config.n_images // scale):>7} {path:>5} {result['ours']:>8.3f} "
            f"{result['torch']:>8.3f} {result['limit']:>8.3f} | "
            + " ".join(f"{v:>5.2f}" for key in ("vs_torch", "vs_limit") for v in result[key])
            + f" {result['vs_seed']:>9.0f}"
        )
    print(
        "Times: best wall-clock over rounds. Ratios: median over rounds, of wall-clock and CPU "
        "time. torch/ours, seed/ours: how many times faster ours is (torch at its best: see "
        "the variants above); limit/ours: the fraction of the GEMM-bound limit reached (above "
        "1: fewer FLOPs than a direct convolution, the FFT path).\n"
    )

    if "A" in names:
        config = CONFIGS["A"]
        sizes = [1_000, 10_000, 50_000] if not args.quick else [500, 1_000, 5_000]
        images, filters = make_data(config, max(sizes), seed=1)
        transformer = ours(config, filters, threads).fit(images[:1])
        times = np.array(
            [
                [timed(lambda n=n: transformer.transform(images[:n]))[0] for n in sizes]
                for _ in range(repeats)
            ]
        )
        print("Scaling (config A):")
        for n, t in zip(sizes, times.T, strict=True):
            print(f"  {n:>6} images: best {t.min():7.3f} s  {t.min() / n * 1e6:6.1f} us/image")
        growth = np.median(times[:, 1] / times[:, 0]), np.median(times[:, 2] / times[:, 1])
        print(
            f"  time ratios: {growth[0]:.2f} for {sizes[1] / sizes[0]:.0f}x images, "
            f"{growth[1]:.2f} for {sizes[2] / sizes[1]:.0f}x images\n"
        )

    for name in (name for name in N_JOBS_CONFIGS if name in names):
        config = CONFIGS[name]
        images, filters = make_data(config, max(4, config.n_images // scale))
        t_one, t_two, speedup, busy = n_jobs_speedup(config, images, filters, repeats)
        print(
            f"n_jobs ({name}): 1 -> {t_one:.3f} s, 2 -> {t_two:.3f} s, speed-up {speedup:.2f} "
            f"(median); with n_jobs=2 the process used {busy:.2f} cores on average"
        )


if __name__ == "__main__":
    main()
