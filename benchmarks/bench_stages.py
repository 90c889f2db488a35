"""Where the engine's time goes, per stage, on the configurations of ``bench_speed.py``.

A diagnostic, not a comparison: it wraps the methods of the engine's stages (gathering
the patches, the matrix product or the FFT, the activation, pooling) with timers, runs the
transform of each configuration, and prints each stage's time per image; "other" is the rest
(loading the images into the tiles' buffers, the bias and activation of pooled values, copying
the features out, and Python). The wrappers add about a microsecond per call. The GEMM-bound
limit per image and the product's own rate (its FLOPs over its time) say how far from the
machine's GEMM rate the products themselves run.

With ``--n-jobs 2`` the stages' times are summed over the engine's threads (thread-seconds per
image, to compare with one thread's), each as wall-clock and as the thread's own CPU time: a
stage whose wall-clock exceeds its CPU time waited, for the GIL mostly (waiting for memory
counts as CPU time). "other" is then ``n_jobs`` times the wall-clock less the stages, and
"idle" all the threads' time off the CPU, inside the stages or not.

Like ``bench_speed.py``, it restarts itself without ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` unless ``--keep-blas-env``. Run from the repository root::

    python benchmarks/bench_stages.py                 # every configuration
    python benchmarks/bench_stages.py --configs A,C --tile-budget 2.0   # tiles of 2 MiB
    python benchmarks/bench_stages.py --configs A,B --n-jobs 2          # on two threads
"""

import os
import sys
import threading
import time
from collections import defaultdict
from dataclasses import replace

sys.path.insert(0, os.path.dirname(__file__))

from bench_speed import _restart_with_native_blas  # noqa: E402

if __name__ == "__main__":
    _restart_with_native_blas()

import argparse  # noqa: E402

import numpy as np  # noqa: E402
from bench_speed import CONFIGS, blas_report, conv_flops, gemm_rate, make_data, plan_of  # noqa: E402

import sklearn_convfeat._engine as engine  # noqa: E402
import sklearn_convfeat._variants as variants  # noqa: E402
from sklearn_convfeat._convolution import (  # noqa: E402
    FftConvolution,
    GemmConvolution,
    PhasedGemmConvolution,
    PhaseReduction,
)
from sklearn_convfeat._pooling import (  # noqa: E402
    AxisReduction,
    Combine,
    MatMul,
    OnesSum,
    SumsCombiner,
)

IMAGES = {"A": 4_000, "B": 1_000, "C": 100, "MOSAIKS": 16, "F": 200}

TIMES = defaultdict(float)
CPU_TIMES = defaultdict(float)
_LOCK = threading.Lock()


def timer(stage, function):
    def timed(*args, **kwargs):
        start, cpu = time.perf_counter(), time.thread_time()
        result = function(*args, **kwargs)
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
        with _LOCK:
            TIMES[stage] += wall
            CPU_TIMES[stage] += cpu
        return result

    return timed


def instrument():
    """Wrap the methods of the engine's stages with timers (for this process only)."""
    for cls in (GemmConvolution, PhasedGemmConvolution, FftConvolution):
        for method, stage in (("gather", "gather"), ("multiply", "product")):
            if method in vars(cls):
                setattr(cls, method, timer(stage, vars(cls)[method]))
    for cls in (AxisReduction, OnesSum, Combine, PhaseReduction, MatMul, SumsCombiner):
        cls.run = timer("pool", cls.run)
    for name, activation in list(variants.ACTIVATIONS.items()):
        variants.ACTIVATIONS[name] = replace(
            activation, apply=timer("activation", activation.apply)
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile-budget", type=float, default=None, help="MiB (default: plan's)")
    parser.add_argument("--n-jobs", type=int, default=1, help="the engine's threads")
    parser.add_argument("--keep-blas-env", action="store_true")
    args = parser.parse_args()
    n_jobs = args.n_jobs
    print(blas_report())
    instrument()
    rate = gemm_rate(n_jobs, 3)
    print(f"NumPy float32 GEMM 2048x2048, {n_jobs} BLAS threads: {rate / 1e9:.1f} GFLOP/s")
    print(
        f"n_jobs={n_jobs}; thread-us per image (wall-clock / CPU when n_jobs > 1), best of "
        "rounds; the product's GFLOP/s (per thread); 'limit': the GEMM-bound limit on n_jobs cores"
    )
    for name in args.configs.split(","):
        config = CONFIGS[name]
        images, filters = make_data(config, IMAGES[name])
        budget = None if args.tile_budget is None else int(args.tile_budget * 2**20)
        plan = plan_of(config, tile_budget=budget)
        engine.pooled_features(images[:2], plan, filters, n_jobs=n_jobs)
        best = None
        for _ in range(args.repeats):
            TIMES.clear()
            CPU_TIMES.clear()
            start, cpu = time.perf_counter(), time.process_time()
            engine.pooled_features(images, plan, filters, n_jobs=n_jobs)
            total, cpu = time.perf_counter() - start, time.process_time() - cpu
            if best is None or total < best[0]:
                best = (total, cpu, dict(TIMES), dict(CPU_TIMES))
        total, cpu, stages, cpu_stages = best
        stages["other"] = n_jobs * total - sum(stages.values())
        cpu_stages["other"] = cpu - sum(cpu_stages.values())
        per_image = 1e6 / len(images)
        limit = conv_flops(config, 1) / rate * 1e6
        product_rate = conv_flops(config, len(images)) / stages.get("product", np.nan) / 1e9

        if n_jobs == 1:
            shown = [f"{stage} {seconds * per_image:.1f}" for stage, seconds in stages.items()]
            idle = ""
        else:
            shown = [
                f"{stage} {seconds * per_image:.1f}/{cpu_stages[stage] * per_image:.1f}"
                for stage, seconds in stages.items()
            ]
            idle = f", idle {(n_jobs * total - cpu) * per_image:.1f}"
        print(
            f"{name:<8} {plan.method} chunk {plan.chunk} bands {len(plan.bands)} block "
            f"{plan.block}: wall {total * per_image:.1f} (limit {limit:.1f}, "
            f"{limit / (total * per_image):.2f} of it); "
            f"thread-us {n_jobs * total * per_image:.1f}: "
            + ", ".join(shown)
            + idle
            + f"; product at {product_rate:.0f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
