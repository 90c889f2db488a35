"""Throughput of transform through a local Dask cluster against in-process, side by side.

200,000 synthetic 28x28 grey images, one filter bank. In-process: ``transform`` of the NumPy
array with ``n_jobs=-1``. Cluster: a ``LocalCluster`` with one single-threaded worker process
per core, the images already on the workers (persisted dask array, chunked along the samples),
``transform`` of the dask array, then either

- ``reduce``: the features summed over the samples on the workers (the out-of-core pattern:
  features are consumed where they are made), or
- ``gather``: every feature sent back to this process, as the in-process run has them.

Runs alternate (in-process, reduce, gather) ``--repeats`` times; ratios are of median
throughputs, cluster / in-process (above 1: the cluster is faster). Peak memory is each
worker process's peak resident set size over the whole benchmark (persisted images included),
and the process memory of the cluster sampled by ``distributed.diagnostics.MemorySampler``.

Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to return freed memory to
the OS sooner). Setting it switches off glibc's adaptive mmap threshold, so every large
temporary of a batch is a fresh ``mmap`` with its page faults. ``--glibc-malloc`` starts the
workers without it, to measure that cost.

Usage: ``python benchmarks/bench_dask.py [--n-images 200000] [--repeats 3] [--glibc-malloc]``
"""

import argparse
import os
import resource
import statistics
import time

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait
from distributed.diagnostics import MemorySampler

from sklearn_convfeat import ConvFeatureTransformer

MiB = 2**20


def peak_rss():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="images per dask block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--glibc-malloc", action="store_true", help="workers without MALLOC_TRIM_THRESHOLD_"
    )
    args = parser.parse_args()
    worker_environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    if args.glibc_malloc:
        worker_environ = {
            name: value
            for name, value in worker_environ.items()
            if name != "MALLOC_TRIM_THRESHOLD_"
        }
    n_workers = os.cpu_count()
    params = dict(
        n_filters=32,
        filter_size=5,
        filter_init="gaussian",
        stride=1,
        padding="valid",
        activation="relu",
        pooling="max",
        pool_size=4,
        pool_grid=None,
        patch_norm=False,
        flatten=True,
        random_state=0,
    )

    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ}),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            worker_dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        images = da.random.default_rng(0).random(
            (args.n_images, 28, 28), chunks=(args.chunk, 28, 28), dtype=np.float32
        )
        images = client.persist(images)
        wait(images)
        images_in_memory = images.compute()
        conv = ConvFeatureTransformer(**params, n_jobs=-1).fit(images_in_memory)
        features = conv.transform(images)
        sampler = MemorySampler()

        times = {"in-process": [], "reduce": [], "gather": []}
        for repeat in range(args.repeats):
            seconds, in_process = timed(lambda: conv.transform(images_in_memory))
            times["in-process"].append(seconds)
            with sampler.sample(f"reduce {repeat}", client=client, interval=0.1):
                seconds, total = timed(lambda: features.sum(axis=0, dtype=np.float64).compute())
            times["reduce"].append(seconds)
            np.testing.assert_allclose(total, in_process.sum(axis=0, dtype=np.float64), rtol=1e-6)
            del in_process
            with sampler.sample(f"gather {repeat}", client=client, interval=0.1):
                seconds, gathered = timed(features.compute)
            times["gather"].append(seconds)
            del gathered

        worker_peaks = client.run(peak_rss)
        sampled = sampler.to_pandas().max()

    medians = {name: statistics.median(values) for name, values in times.items()}
    throughput = {name: args.n_images / seconds for name, seconds in medians.items()}
    print(
        f"{args.n_images} images 28x28, blocks of {args.chunk}, {conv.filters_.shape[0]} "
        f"filters {conv.filters_.shape[1]}x{conv.filters_.shape[2]}, "
        f"{conv.transform(images_in_memory[:1]).shape[1]} features per image; "
        f"{n_workers} workers x 1 thread vs in-process n_jobs=-1; median of {args.repeats}; "
        f"worker environment {worker_environ}"
    )
    print()
    print("| run | seconds (each repeat) | median images/s | ratio cluster / in-process |")
    print("|---|---|---|---|")
    for name, values in times.items():
        ratio = throughput[name] / throughput["in-process"]
        seconds = ", ".join(f"{value:.1f}" for value in values)
        print(f"| {name} | {seconds} | {throughput[name]:,.0f} | {ratio:.2f} |")
    print()
    print(
        "worker peak RSS (MiB): "
        + ", ".join(f"{peak / MiB:.0f}" for peak in worker_peaks.values())
        + f"; persisted images per worker: {images.nbytes / n_workers / MiB:.0f} MiB"
    )
    print(
        "cluster process memory, sampled peak (MiB): "
        + ", ".join(f"{name}: {value / MiB:.0f}" for name, value in sampled.items())
    )
    print(f"this process's peak RSS (MiB): {peak_rss() / MiB:.0f}")


if __name__ == "__main__":
    main()
