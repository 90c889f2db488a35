"""Limits checked before computing: the memory a step needs and the float32 range of features.

Pure functions over sizes; nothing here allocates the arrays it reasons about.
"""

import math
import os
import re
from functools import lru_cache

import numpy as np

from ._variants import POOLINGS

FLOAT32_MAX = float(np.finfo(np.float32).max)

# A float64 bank is drawn, centred, normalised and cast: a few float64 copies at the peak.
_BANK_BYTES_PER_VALUE = 4 * 8


class MemoryLimitError(MemoryError):
    """Raised before allocating when a step would need more memory than is available.

    A subclass of :class:`MemoryError`, raised instead of swapping or being killed by the
    operating system. Its message states the size and how to reduce it.
    """


# cgroup v1 says "no limit" with PAGE_COUNTER_MAX rounded to pages, about 2**63; v2 says "max".
_NO_LIMIT = 2**60

# Where each cgroup version keeps the limit, the usage and, in memory.stat, the page cache the
# kernel can reclaim before it runs out (the usage includes it; docker stats subtracts it).
_CGROUP_FILES = {
    2: ("memory.max", "memory.current", "inactive_file"),
    1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
}


def available_memory(root="/"):
    """Bytes of memory that new allocations can use, or None when unknown.

    The smallest of what each limit on this process leaves, each source skipped when missing or
    unreadable:

    - the machine's: ``MemAvailable`` of ``/proc/meminfo`` (free memory plus reclaimable
      caches), or where that is unknown the physical memory;
    - the memory cgroup's (:func:`cgroup_available`): in a container or a batch job, its limit
      less its usage, for the process's own cgroup and each parent up to the root of the
      hierarchy it sees;
    - the resource limits' (:func:`rlimit_available`): ``RLIMIT_AS`` (``ulimit -v``) less the
      address space already mapped, ``RLIMIT_DATA`` less the data already mapped.

    Parameters
    ----------
    root : str, default="/"
        The directory that ``/proc`` and the cgroup mounts are read under (tests use a fake
        tree). The resource limits are always this process's own.
    """
    machine = _meminfo_available(root)
    if machine is None:
        try:
            machine = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            machine = None
    known = [
        n_bytes
        for n_bytes in (machine, cgroup_available(root), rlimit_available(root))
        if n_bytes is not None
    ]
    return min(known) if known else None


def _under(root, path):
    return os.path.join(root, path.lstrip("/"))


def _read_text(path):
    """The file's text, or None if it cannot be read. (Plain system calls: a third of the
    cost of ``open``, for files read at every check.)"""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except (OSError, ValueError):
        return None
    try:
        chunks = []
        while chunk := os.read(descriptor, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(descriptor)


def _field(text, key, scale=1):
    """The integer of the ``key value`` or ``Key: value kB`` line of ``text``, or None."""
    match = re.search(rf"^{key}:?[ \t]+(\d+)", text or "", re.MULTILINE)
    return int(match[1]) * scale if match else None


def _meminfo_available(root):
    # The kernel always reports kB (KiB).
    return _field(_read_text(_under(root, "/proc/meminfo")), "MemAvailable", 1024)


def _read_bytes(path):
    """An integer file of a cgroup, or None if missing, unreadable or "max" (no limit)."""
    text = _read_text(path)
    text = text.strip() if text else ""
    return int(text) if text.isdigit() else None


def _unescape(field):
    # mountinfo writes spaces, tabs, newlines and backslashes in paths as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


def _cgroup_mounts(root):
    """``{version: (mount root, mount point)}`` of the memory cgroup hierarchies this process
    sees, from ``/proc/self/mountinfo`` (the usual mount points if it cannot be read)."""
    text = _read_text(_under(root, "/proc/self/mountinfo"))
    if text is None:
        return {2: ("/", "/sys/fs/cgroup"), 1: ("/", "/sys/fs/cgroup/memory")}
    mounts = {}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        fstype, options = fields[dash + 1], fields[dash + 3 : dash + 4] or [""]
        if fstype == "cgroup2":
            version = 2
        elif fstype == "cgroup" and "memory" in options[0].split(","):
            version = 1
        else:
            continue
        mounts.setdefault(version, (_unescape(fields[3]), _unescape(fields[4])))
    return mounts


@lru_cache(maxsize=8)
def _cgroup_directories(root):
    """``(version, directory)`` of the process's memory cgroup and its parents, innermost
    first, down to the root of each hierarchy it sees. Found once per process (a process
    does not change cgroups in practice); their limits and usage are read at every call."""
    directories = []
    mounts = _cgroup_mounts(root)
    for line in (_read_text(_under(root, "/proc/self/cgroup")) or "").splitlines():
        # hierarchy-ID:controller-list:cgroup-path; cgroup v2's is 0::path.
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        version = 2 if hierarchy == "0" and not controllers else 1
        if (version == 1 and "memory" not in controllers.split(",")) or version not in mounts:
            continue
        mount_root, mount_point = mounts[version]
        relative = os.path.relpath(path.strip() or "/", mount_root)
        # A cgroup outside the mount (a namespace's view): its root is the nearest one seen.
        parts = [] if relative == "." or relative.startswith("..") else relative.split("/")
        for depth in range(len(parts), -1, -1):
            directory = os.path.join(_under(root, mount_point), *parts[:depth])
            directories.append((version, directory))
    return tuple(directories)


def cgroup_available(root="/"):
    """Bytes that the memory cgroups of this process leave, or None if none limits it.

    For the process's own cgroup (named by ``/proc/self/cgroup``, found under its mount by
    ``/proc/self/mountinfo``) and each parent up to the root of the hierarchy the process sees
    (in a container, the container's own): the limit less the usage, the smallest of them. On
    cgroup v2 these are ``memory.max`` (``max``: no limit) and ``memory.current``; on cgroup v1
    ``memory.limit_in_bytes`` (a huge value: no limit) and ``memory.usage_in_bytes``. The usage
    counts the page cache the kernel would reclaim first (``inactive_file`` of ``memory.stat``,
    ``total_inactive_file`` on v1): that part counts as available, as ``docker stats`` and
    ``MemAvailable`` count it. A missing or unreadable file is skipped (a limit without its
    usage counts whole).

    Parameters
    ----------
    root : str, default="/"
        The directory that ``/proc`` and the cgroup mounts are read under.
    """
    best = None
    for version, directory in _cgroup_directories(root):
        limit_name, usage_name, reclaimable_name = _CGROUP_FILES[version]
        limit = _read_bytes(os.path.join(directory, limit_name))
        if limit is None or limit >= _NO_LIMIT:
            continue
        usage = _read_bytes(os.path.join(directory, usage_name)) or 0
        stat = _read_text(os.path.join(directory, "memory.stat"))
        usage = max(0, usage - (_field(stat, reclaimable_name) or 0))
        left = max(0, limit - usage)
        best = left if best is None else min(best, left)
    return best


def rlimit_available(root="/"):
    """Bytes that the soft resource limits of this process leave, or None if none is set.

    ``RLIMIT_AS`` less ``VmSize`` (the address space mapped) and ``RLIMIT_DATA`` less
    ``VmData`` (the private data mapped), both read from ``/proc/self/status``; a limit whose
    usage cannot be read counts whole. Allocations beyond them fail inside NumPy.

    Parameters
    ----------
    root : str, default="/"
        The directory that ``/proc`` is read under.
    """
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    limits = {}
    for name, used in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        try:
            limit = resource.getrlimit(getattr(resource, name))[0]
        except (AttributeError, ValueError, OSError):
            continue
        if limit != resource.RLIM_INFINITY and limit >= 0:
            limits[used] = limit
    if not limits:
        return None
    status = _read_text(_under(root, "/proc/self/status"))
    return min(max(0, limit - (_field(status, used, 1024) or 0)) for used, limit in limits.items())


def format_bytes(n_bytes):
    """``n_bytes`` in a human unit, e.g. ``'1.5 GiB'``."""
    if n_bytes < 1024:
        return f"{n_bytes} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n_bytes /= 1024
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.1f} {unit}"


def transform_bytes(n_samples, output_shape, working_bytes=0):
    """Bytes that a transform allocates: its float32 output and the engine's working memory.

    Parameters
    ----------
    n_samples : int
    output_shape : tuple of int
        The shape of the features of one image.
    working_bytes : int, default=0
        The engine's buffers beyond the output, from
        :meth:`~sklearn_convfeat._plan.Plan.working_bytes`.
    """
    return 4 * n_samples * math.prod(output_shape) + working_bytes


def check_transform_memory(groups, output_shape, batch_size, n_threads):
    """Raise :class:`MemoryLimitError` before allocating if the features of the ``groups`` of
    ``(plan, images)``, ``output_shape`` each, and the working memory of ``n_threads`` threads
    in batches of ``batch_size`` (None: the plans') cannot fit in memory."""
    n_samples = sum(len(images) for _, images in groups)
    working = max(
        plan.working_bytes(len(images), batch_size=batch_size, n_threads=n_threads)
        for plan, images in groups
    )
    per_sample = 4 * math.prod(output_shape)
    check_memory(
        transform_bytes(n_samples, output_shape, working),
        f"The features of {n_samples} images ({n_samples} x "
        f"{' x '.join(map(str, output_shape))} float32, {format_bytes(per_sample)} "
        f"per image) and {format_bytes(working)} of working memory",
        "Use fewer filters (n_filters), a larger pool_size, a small pool_grid or a larger "
        "stride, or transform X in chunks (sklearn.utils.gen_batches)"
        + ("." if batch_size is None else ", or a smaller batch_size or n_jobs."),
    )


def bank_bytes(n_filters, filter_size, n_channels):
    """Peak bytes needed to draw a random bank of ``n_filters`` filters."""
    return _BANK_BYTES_PER_VALUE * n_filters * math.prod(filter_size) * n_channels


# Fixed allowance of a fit beyond the arrays it counts: plans, banks, the sample's indices.
FIT_CALL_BYTES = 4 * 2**20

# MiniBatchKMeans draws its initial centroids from 3 batches of 1024 patches: its buffers hold
# that many patches and their distances to the centroids.
_KMEANS_INIT = 3 * 1024

# The features that centring computes at once, at most: bounds fit's memory whatever the
# output's size, and costs nothing on the usual ones (1,000 images of 14 x 192 features are
# 10 MiB, one batch).
CENTER_BATCH_BYTES = 64 * 2**20


def patch_bytes(n_patches, footprint_values, tap_values, n_filters=0, smoothed_values=0):
    """Peak bytes of sampling patches and learning a bank from them, for one dilation.

    Sampling reads ``n_patches`` patches of ``footprint_values`` values (float64) from images
    of which ``smoothed_values`` values are smoothed at once, then normalises them: at most
    three copies of the patches, and three of the smoothed images. Learning ``n_filters``
    filters (0: none) reads the ``tap_values`` values under the taps of each patch, whitens
    them (a covariance and its eigenvectors) and runs the bank's algorithm on them, while
    the patches are still held: the patches, four copies of the taps, a few square matrices
    and banks, and k-means' initial sample with its distances. Checked against tracemalloc's
    peak in ``tests/test_limits.py``.
    """
    n, s, t, k = n_patches, footprint_values, tap_values, n_filters
    sampling = 3 * n * s + 3 * smoothed_values
    learning = n * s + 4 * n * t + 4 * t * t + 4 * k * t + min(n, _KMEANS_INIT) * (k + t)
    learning *= bool(k)
    return 8 * max(sampling, learning) + FIT_CALL_BYTES


def center_batch(image_bytes, n_samples, fixed_bytes=0, available=None):
    """Images whose features centring computes at once: as many as
    :data:`CENTER_BATCH_BYTES` hold, and half the memory that the ``available`` bytes leave
    beyond ``fixed_bytes``; at most ``n_samples``, at least one.

    ``image_bytes`` is what centring allocates per image (its features and its copy),
    ``fixed_bytes`` what it allocates once (the mean, the engine's working memory).
    """
    budget = CENTER_BATCH_BYTES
    if available is not None:
        budget = min(budget, (available - fixed_bytes) // 2)
    return max(1, min(n_samples, budget // max(1, image_bytes)))


def check_memory(n_bytes, what, advice, available=None):
    """Raise :class:`MemoryLimitError` if ``n_bytes`` exceed the ``available`` memory.

    Parameters
    ----------
    n_bytes : int
        Size of the planned allocation.
    what : str
        What would be allocated, for the message.
    advice : str
        How to need less, for the message.
    available : int or None, default=None
        Bytes available; None reads them with :func:`available_memory` (and checks nothing
        when they are unknown).
    """
    if available is None:
        available = available_memory()
    if available is not None and n_bytes > available:
        raise MemoryLimitError(
            f"{what} would need {format_bytes(n_bytes)}, more than the "
            f"{format_bytes(available)} of memory available. {advice}"
        )


def map_gain(filters):
    """An upper bound on ``max |map| / max |pixel|`` for these filters (at least 1).

    A map value is a dot product of a filter with a patch, so Cauchy-Schwarz bounds it by the
    filter's norm times the patch's norm, at most ``sqrt(h * w * c) * max |pixel|``.
    """
    norms = np.sqrt(np.sum(np.square(filters, dtype=np.float64), axis=(1, 2, 3)))
    return max(math.sqrt(math.prod(filters.shape[1:])) * float(norms.max()), 1.0)


def check_feature_range(max_abs, filters, plan):
    """Raise ValueError if inputs up to ``max_abs`` could give features beyond float32's range.

    The maps are bounded by :func:`map_gain`; the activations do not increase magnitudes; the
    pooling mode says how large its sums over the plan's largest region can get (the sum of
    squares, for 'rms'); the largest of the levels' weights scales the pooled values.
    """
    magnitude = max_abs * map_gain(filters)
    pooling = POOLINGS[plan.pooling]
    weight = max(1.0, *plan.level_weights)
    largest = max(magnitude, pooling.largest(magnitude, plan.largest_region)) * weight
    weighted = f" times the largest weight of the pyramid's levels, {weight:.3g}," * (weight > 1)
    # A factor 2 absorbs float32 rounding in the sums.
    if 2 * largest > FLOAT32_MAX:
        raise ValueError(
            f"X holds values up to {max_abs:.3g} in magnitude: the maps could reach "
            f"{magnitude:.3g}, and the {pooling.reduces} of {pooling.name} pooling{weighted} "
            f"{largest:.3g}, which could overflow float32 (max {FLOAT32_MAX:.3g}). Scale X "
            f"down, for example to [0, 1] (divide by 255) or with "
            f"sklearn.preprocessing.StandardScaler."
        )
