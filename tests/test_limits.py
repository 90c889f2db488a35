"""Memory and float32-range limits, checked before anything large is allocated."""

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from settings import SIMPLE, simple

from sklearn_convfeat import (
    ConvFeatureTransformer,
    MemoryLimitError,
    _limits,
    _transformer,
)
from sklearn_convfeat._plan import make_plan
from sklearn_convfeat._variants import POOLINGS

PARAMS = SIMPLE
ROOT = Path(__file__).resolve().parents[1]


def make(**params):
    return ConvFeatureTransformer(**simple(**params))


def test_memory_limit_error_is_a_memory_error():
    assert issubclass(MemoryLimitError, MemoryError)


MiB = 2**20
NO_LIMIT = "9223372036854771712"  # cgroup v1's memory.limit_in_bytes without a limit


def fake_root(root, files):
    """A fake tree of ``/proc`` and cgroup files under ``root``: ``{path: text}``."""
    for path, text in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return str(root)


def mountinfo(*mounts):
    """``/proc/self/mountinfo`` lines of ``(root, mount point, fstype, super options)``."""
    return "".join(
        f"{30 + i} 23 0:{40 + i} {root} {point} rw,nosuid shared:{i} - {fstype} {fstype} {opts}\n"
        for i, (root, point, fstype, opts) in enumerate(mounts)
    )


V2_MOUNTS = mountinfo(
    ("/", "/proc", "proc", "rw"),
    ("/", "/sys/fs/cgroup", "cgroup2", "rw,nsdelegate"),
)
V1_MOUNTS = mountinfo(
    ("/", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
    ("/docker/abc", "/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
    ("/", "/sys/fs/cgroup/unified", "cgroup2", "rw"),
)


@pytest.fixture
def no_rlimits(monkeypatch):
    """This process's resource limits read as unlimited, whatever the shell set."""
    resource = pytest.importorskip("resource")
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    monkeypatch.setattr(resource, "getrlimit", lambda which: unlimited)


def test_available_memory_reads_mem_available(tmp_path, no_rlimits):
    meminfo = "MemTotal:  1000 kB\nMemFree:  10 kB\nMemAvailable:   12345 kB\n"
    root = fake_root(tmp_path, {"/proc/meminfo": meminfo})
    assert _limits.available_memory(root) == 12345 * 1024


def test_available_memory_falls_back_to_physical_memory_then_to_none(
    tmp_path, monkeypatch, no_rlimits
):
    missing = str(tmp_path / "missing")
    if hasattr(os, "sysconf"):
        monkeypatch.setattr(os, "sysconf", {"SC_PHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}.get)
        assert _limits.available_memory(missing) == 1000 * 4096

    def unknown(name):
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", unknown, raising=False)
    assert _limits.available_memory(missing) is None


def test_available_memory_of_this_machine_is_positive():
    available = _limits.available_memory()
    assert available is None or available > 0


def test_cgroup_v2_limit_of_the_own_cgroup_and_its_parents(tmp_path):
    """``memory.max`` less ``memory.current`` (its reclaimable page cache, inactive_file,
    counted as free) for the process's cgroup and every parent; the smallest wins."""
    job = "/sys/fs/cgroup/user.slice/job.scope"
    files = {
        "/proc/self/cgroup": "0::/user.slice/job.scope\n",
        "/proc/self/mountinfo": V2_MOUNTS,
        f"{job}/memory.max": f"{1024 * MiB}\n",
        f"{job}/memory.current": f"{300 * MiB}\n",
        f"{job}/memory.stat": f"anon {200 * MiB}\nfile {100 * MiB}\ninactive_file {100 * MiB}\n",
        "/sys/fs/cgroup/user.slice/memory.max": "max\n",
        "/sys/fs/cgroup/user.slice/memory.current": f"{5000 * MiB}\n",
    }
    root = fake_root(tmp_path, files)
    assert _limits.cgroup_available(root) == (1024 - 200) * MiB
    # A parent's limit, tighter than the job's own.
    fake_root(tmp_path, {"/sys/fs/cgroup/user.slice/memory.max": f"{5100 * MiB}\n"})
    assert _limits.cgroup_available(root) == 100 * MiB
    # "max" everywhere: no limit.
    fake_root(
        tmp_path,
        {f"{job}/memory.max": "max\n", "/sys/fs/cgroup/user.slice/memory.max": "max\n"},
    )
    assert _limits.cgroup_available(root) is None


def test_cgroup_v2_in_a_container_namespace(tmp_path):
    """A container with its own cgroup namespace sees its cgroup as the root ``0::/``, with
    its limit at the mount point; over its usage, nothing is left."""
    files = {
        "/proc/self/cgroup": "0::/\n",
        "/proc/self/mountinfo": V2_MOUNTS,
        "/sys/fs/cgroup/memory.max": f"{512 * MiB}\n",
        "/sys/fs/cgroup/memory.current": f"{600 * MiB}\n",
    }
    assert _limits.cgroup_available(fake_root(tmp_path, files)) == 0


def test_cgroup_v1_limit_under_its_mount(tmp_path):
    """A cgroup v1 container: the memory hierarchy mounted from the container's cgroup
    ``/docker/abc``, the other controllers and an empty cgroup2 beside it."""
    memory = "/sys/fs/cgroup/memory"
    files = {
        "/proc/self/cgroup": (
            "12:pids:/docker/abc\n4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n"
        ),
        "/proc/self/mountinfo": V1_MOUNTS,
        f"{memory}/memory.limit_in_bytes": f"{512 * MiB}\n",
        f"{memory}/memory.usage_in_bytes": f"{100 * MiB}\n",
        f"{memory}/memory.stat": f"cache {30 * MiB}\ntotal_inactive_file {20 * MiB}\n",
        "/sys/fs/cgroup/cpu,cpuacct/memory.limit_in_bytes": "1\n",  # not the memory's
    }
    root = fake_root(tmp_path, files)
    assert _limits.cgroup_available(root) == (512 - 80) * MiB
    fake_root(tmp_path, {f"{memory}/memory.limit_in_bytes": NO_LIMIT + "\n"})
    assert _limits.cgroup_available(root) is None


def test_cgroup_v1_hierarchy_without_a_namespace(tmp_path):
    """The whole v1 hierarchy mounted (a batch job's cgroup, seen from the host): the
    job's limit under its path, its parent's above it."""
    memory = "/sys/fs/cgroup/memory"
    files = {
        "/proc/self/cgroup": "4:memory:/batch/job7\n",
        "/proc/self/mountinfo": mountinfo(("/", memory, "cgroup", "rw,memory")),
        f"{memory}/batch/job7/memory.limit_in_bytes": f"{256 * MiB}\n",
        f"{memory}/batch/job7/memory.usage_in_bytes": f"{56 * MiB}\n",
        f"{memory}/batch/memory.limit_in_bytes": NO_LIMIT,
        f"{memory}/memory.limit_in_bytes": NO_LIMIT,
    }
    assert _limits.cgroup_available(fake_root(tmp_path, files)) == 200 * MiB


@pytest.mark.parametrize(
    "broken, expected",
    [
        ({}, None),  # no /proc at all: not Linux
        ({"/proc/self/cgroup": "garbage\n::\n4:memory\n"}, None),
        ({"/proc/self/cgroup": "0::/job\n", "/proc/self/mountinfo": "1 2 3\n- -\n"}, None),
        ({"/proc/self/cgroup": "0::/job\n", "/sys/fs/cgroup/job/memory.max": "lots\n"}, None),
        # No mountinfo: the usual mount point; no usage: the limit counts whole.
        ({"/proc/self/cgroup": "0::/job\n", "/sys/fs/cgroup/job/memory.max": "4096\n"}, 4096),
        # Unreadable: directories where files should be.
        ({"/proc/self/cgroup": "0::/job\n", "/sys/fs/cgroup/job/memory.max/x": ""}, None),
        ({"/proc/self/cgroup/x": "", "/proc/self/mountinfo/x": "", "/proc/meminfo/x": ""}, None),
    ],
    ids=["nothing", "garbled", "bad-mountinfo", "not-a-number", "no-usage", "dir", "dirs"],
)
def test_a_missing_or_unreadable_source_is_skipped(
    tmp_path, broken, expected, monkeypatch, no_rlimits
):
    root = fake_root(tmp_path, broken)
    assert _limits.cgroup_available(root) == expected
    # MemAvailable unknown too: the physical memory, or the cgroup's limit if smaller.
    monkeypatch.setattr(os, "sysconf", {"SC_PHYS_PAGES": 10, "SC_PAGE_SIZE": 4096}.get)
    assert _limits.available_memory(root) == min(40960, expected or 40960)


def test_available_memory_is_the_smallest_limit(tmp_path, monkeypatch):
    files = {
        "/proc/meminfo": f"MemAvailable: {4 * 2**20} kB\n",  # 4 GiB free on the machine
        "/proc/self/cgroup": "0::/job\n",
        "/proc/self/mountinfo": V2_MOUNTS,
        "/sys/fs/cgroup/job/memory.max": f"{2048 * MiB}",
        "/sys/fs/cgroup/job/memory.current": f"{48 * MiB}",
        "/proc/self/status": f"Name:\tpython\nVmSize:\t{1024 * 1024} kB\nVmData:\t 10 kB\n",
    }
    root = fake_root(tmp_path, files)
    resource = pytest.importorskip("resource")
    limits = {resource.RLIMIT_AS: resource.RLIM_INFINITY, resource.RLIMIT_DATA: 2**62}
    monkeypatch.setattr(resource, "getrlimit", lambda which: (limits.get(which, -1),) * 2)
    assert _limits.available_memory(root) == 2000 * MiB  # the cgroup's
    # ulimit -v of 1.5 GiB, 1 GiB of it mapped already.
    limits[resource.RLIMIT_AS] = 1536 * MiB
    assert _limits.rlimit_available(root) == 512 * MiB
    assert _limits.available_memory(root) == 512 * MiB


RLIMIT_SCRIPT = """
import resource, sys
import numpy as np
from sklearn_convfeat import ConvFeatureTransformer, MemoryLimitError, _limits

conv = ConvFeatureTransformer(
    n_filters=64, filter_init="gaussian", patch_norm=False, center=False, pool_size=1,
    dilation=1, random_state=0,
).fit(np.zeros((1, 64, 64)))
def mapped(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
name, field = sys.argv[1], sys.argv[2]
limit = mapped(field) + 256 * 2**20
resource.setrlimit(getattr(resource, name), (limit, resource.RLIM_INFINITY))
print(_limits.rlimit_available(), _limits.available_memory())
try:
    np.ones(300 * 2**20, dtype=np.uint8)  # the limit is real: NumPy cannot get 300 MiB
    print("allocated")
except MemoryError:
    print("numpy refused")
try:
    conv.transform(np.zeros((300, 64, 64)))  # 300 x 64 x 64 x 64 float32: 300 MiB
    print("transformed")
except MemoryLimitError as error:
    print("MemoryLimitError", error)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
@pytest.mark.parametrize("name, field", [("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")])
def test_resource_limits_set_in_a_process_bound_its_memory(name, field):
    """In a process whose RLIMIT_AS (ulimit -v) or RLIMIT_DATA leaves 256 MiB beyond what it
    maps, the memory check sees those 256 MiB (less what it mapped since), where NumPy fails,
    and refuses a transform of 300 MiB."""
    result = subprocess.run(
        [sys.executable, "-c", RLIMIT_SCRIPT, name, field],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    numbers, allocation, transform = result.stdout.strip().splitlines()
    left, available = map(int, numbers.split())
    # The process maps and unmaps a few pages between the limit, its check and the next.
    assert 200 * MiB < left <= 260 * MiB
    assert available <= left + 4 * MiB
    assert allocation == "numpy refused"
    assert transform.startswith("MemoryLimitError The features of 300 images")


def test_check_memory_raises_with_size_and_advice():
    with pytest.raises(MemoryLimitError, match=r"^Thing would need 3\.0 GiB, more than the "):
        _limits.check_memory(3 * 2**30, "Thing", "Use less.", available=2**30)
    _limits.check_memory(2**30, "Thing", "Use less.", available=2**30)


def test_check_memory_checks_nothing_when_memory_is_unknown(monkeypatch):
    monkeypatch.setattr(_limits, "available_memory", lambda: None)
    _limits.check_memory(2**80, "Thing", "Use less.")


@pytest.mark.parametrize(
    "n_bytes, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 2**40, "5.0 TiB")]
)
def test_format_bytes(n_bytes, text):
    assert _limits.format_bytes(n_bytes) == text


def test_transform_bytes_is_the_output_plus_the_working_memory():
    # 100 images with 14x14x16 float32 features each.
    assert _limits.transform_bytes(100, (14, 14, 16)) == 4 * 100 * 14 * 14 * 16
    assert _limits.transform_bytes(100, (14, 14, 16), 12345) == 4 * 100 * 14 * 14 * 16 + 12345


def test_transform_bytes_of_huge_inputs_is_exact_without_allocating():
    n_images, side, n_filters = 10**6, 10**4, 10**4
    n_bytes = _limits.transform_bytes(n_images, (side, side, n_filters))
    assert n_bytes == 4 * n_images * side * side * n_filters


def _working_bytes(conv, X):
    """The engine's working memory for ``conv.transform(X)`` (checked against tracemalloc's
    peak in test_engine.py)."""
    return make_plan(conv.spec_, conv.image_shape_).working_bytes(
        len(X),
        batch_size=None if conv.batch_size == "auto" else conv.batch_size,
    )


def test_transform_refuses_before_allocating_when_memory_is_short(monkeypatch):
    X = np.random.default_rng(0).random((50, 64))
    conv = make(n_filters=8).fit(X)
    # 30 images fit exactly; 50 images' 50 x 3 x 3 x 8 float32 features need 5760 B more.
    available = 30 * 288 + _working_bytes(conv, X[:30])
    assert 50 * 288 + _working_bytes(conv, X) > available
    monkeypatch.setattr(_limits, "available_memory", lambda: available)

    def engine_must_not_run(*args, **kwargs):
        raise AssertionError("the engine ran before the memory check")

    monkeypatch.setattr(_transformer, "pooled_features_of_groups", engine_must_not_run)
    message = (
        r"^The features of 50 images \(50 x 3 x 3 x 8 float32, 288 B per image\) and "
        r"[0-9.]+ [KM]iB of working memory would need [0-9.]+ [KM]iB, more than the "
        r"[0-9.]+ [KM]iB of memory available\. Use fewer filters \(n_filters\), a larger "
        r"pool_size, a small pool_grid or a larger stride, or transform X in chunks "
        r"\(sklearn\.utils\.gen_batches\)\.$"
    )
    with pytest.raises(MemoryLimitError, match=message):
        conv.transform(X)
    monkeypatch.undo()
    monkeypatch.setattr(_limits, "available_memory", lambda: available)
    assert conv.transform(X[:30]).shape == (30, 72)


def test_explicit_batch_size_counts_its_temporaries(monkeypatch):
    X = np.random.default_rng(0).random((50, 64))
    conv = make(n_filters=8, batch_size=50).fit(X)
    one_by_one = 50 * 288 + _working_bytes(conv.set_params(batch_size=1), X)
    all_at_once = 50 * 288 + _working_bytes(conv.set_params(batch_size=50), X)
    # A batch's float32 copy of its images (and, here, its maps) grows with batch_size.
    assert all_at_once > one_by_one
    monkeypatch.setattr(_limits, "available_memory", lambda: one_by_one)
    with pytest.raises(MemoryLimitError, match="working memory.*smaller batch_size or n_jobs"):
        conv.transform(X)
    conv.set_params(batch_size=1).fit(X).transform(X)


def test_huge_images_with_many_filters_fail_fast_before_allocating():
    """One 4000x4000 image, 100000 filters, no pooling: 6.4 TB of features."""
    X = np.broadcast_to(np.float32(0.5), (1, 4000 * 4000))
    conv = make(n_filters=100_000, image_shape=(4000, 4000), pool_size=1, padding="same")
    conv.fit(X)
    start = time.perf_counter()
    with pytest.raises(MemoryLimitError, match=r"\(1 x 4000 x 4000 x 100000 float32.*TiB"):
        conv.transform(X)
    # Generous: only validation of the input ran, not the convolution (which takes hours).
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("pooling", ["max", "avg", "rms"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool", [{"pool_size": 3}, {"pool_grid": 2}, {"pool_size": 1}], ids=str)
def test_the_overflow_bound_holds_for_the_features(pooling, padding, pool):
    """Maps are bounded by map_gain times the largest pixel (Cauchy-Schwarz, tight for an
    all-ones filter on all-ones images), and what a pooling mode accumulates by its bound."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (20, 12, 12, 2))
    # Filters far from unit norm and all-positive worst cases.
    filters = np.concatenate([rng.standard_normal((3, 4, 4, 2)) * 7, np.ones((1, 4, 4, 2))])
    conv = make(n_filters=4, filter_init=filters, padding=padding, pooling=pooling)
    conv.set_params(activation="abs", **{"pool_size": None, **pool}).fit(X)
    gain = _limits.map_gain(conv.filters_)
    assert gain >= 1
    area = make_plan(conv.spec_, conv.image_shape_).largest_region
    ones = np.ones_like(X)
    for images in (X, ones):
        magnitude = gain * np.abs(images).max()
        features = conv.transform(images)
        assert np.abs(features).max() <= magnitude * (1 + 1e-5)
        accumulated = {"max": features, "avg": features * area, "rms": features**2 * area}
        largest = POOLINGS[pooling].largest(magnitude, area)
        assert np.abs(accumulated[pooling]).max() <= largest * (1 + 1e-5)
    if pooling == "max":
        ones_filter_features = conv.transform(ones).reshape(len(X), -1, 4)[..., 3]
        assert ones_filter_features.max() == pytest.approx(math.prod(filters.shape[1:]))


def test_check_feature_range_names_the_sizes_and_the_fix():
    """An all-ones 4x4 filter (maps up to 16 times the pixels) averaged over 3x3 windows."""
    X = np.ones((2, 12, 12))
    conv = make(n_filters=1, filter_init=np.ones((1, 4, 4)), pooling="avg", pool_size=3).fit(X)
    _limits.check_feature_range(1e36, conv.filters_, make_plan(conv.spec_, conv.image_shape_))
    message = r"up to 2e\+36 in magnitude: the maps could reach 3\.2e\+37, and the sums of avg "
    message += r"pooling 2\.88e\+38, which could overflow float32.*Scale X down"
    with pytest.raises(ValueError, match=message):
        _limits.check_feature_range(2e36, conv.filters_, make_plan(conv.spec_, conv.image_shape_))


def test_the_check_counts_the_weights_of_the_pyramid_levels():
    """A 1x1 all-ones filter on constant images of 1e38 onto a 1 + 8x8 pyramid: the maxima are
    1e38, finite, but balance_levels multiplies the whole-image level by sqrt(65 / 2) = 5.7."""
    X = np.full((2, 16, 16), 1e38, dtype=np.float32)
    params = dict(
        n_filters=1,
        filter_init=np.ones((1, 1, 1)),
        patch_norm=False,
        center=False,
        dilation=1,
        pool_grid=[1, 8],
    )
    plain = ConvFeatureTransformer(balance_levels=False, **params).fit(X)
    assert np.isfinite(plain.transform(X)).all()
    balanced = ConvFeatureTransformer(balance_levels=True, **params).fit(X)
    message = r"max pooling times the largest weight of the pyramid's levels, 5\.7, 5\.7e\+38"
    with pytest.raises(ValueError, match=message + ".*overflow float32"):
        balanced.transform(X)


def test_rms_pooling_checks_the_sum_of_squares():
    """An all-ones filter on constant images m: maps 16 m, and rms pooling over 3x3 sums
    9 * (16 m)^2, which overflows float32 from m = 3.8e17 while 16 m is far from it."""
    ones = np.ones((2, 12, 12, 1), dtype=np.float32)
    conv = make(
        n_filters=1, filter_init=np.ones((1, 4, 4, 1)), activation="identity", pooling="rms"
    ).set_params(pool_size=3)
    conv.fit(ones)
    features = conv.transform(ones * np.float32(1e17))
    assert np.all(np.isfinite(features))
    assert features.max() == pytest.approx(16e17, rel=1e-5)
    with pytest.raises(ValueError, match=r"up to 1e\+18 .*sums of squares of rms.*overflow"):
        conv.transform(ones * np.float32(1e18))
