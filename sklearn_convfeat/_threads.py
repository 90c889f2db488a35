"""Threads: how many ``n_jobs`` asks for, and BLAS held to one thread while the engine runs.

The engine runs one matrix product per image, on ``n_jobs`` threads of its own. OpenBLAS
rounds a product differently when it splits it over several threads, so every product must run
on one BLAS thread, whichever thread calls ``transform``, or the features would depend on it.

OpenBLAS built with pthreads (NumPy's and SciPy's wheels) has one thread count for the whole
process, and threadpoolctl lets only one Python thread at a time change it: the first to try,
until it leaves its ``with threadpool_limits(...)`` block; while it holds it, the others' calls
silently do nothing. So the limit is set, and later restored, each time by a short-lived thread
of its own: it holds threadpoolctl's control only while it sets the count, and a thread that
has ended gives the control up. A reference count keeps the limit in place while any thread of
the process is inside :func:`single_threaded_blas`. If another thread holds the control (its
own ``threadpool_limits`` has not ended), the count cannot change: a RuntimeWarning says so.
"""

import threading
import warnings
from contextlib import contextmanager

from joblib import cpu_count
from threadpoolctl import ThreadpoolController


def thread_count(n_jobs):
    """Threads that ``n_jobs`` asks for: None means 1, -1 all CPUs, -2 all but one, ...

    Independent of any joblib backend in effect: the engine's threads write into one output
    array, so they must be threads of this process, whatever backend the caller chose for its
    own work (loky or dask inside ``parallel_backend``, for example).
    """
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, cpu_count() + 1 + n_jobs)
    return n_jobs


def _on_own_thread(function):
    """Call ``function`` on a new thread, wait for it, and return its result."""
    result = []
    worker = threading.Thread(target=lambda: result.append(function()), name="convfeat-blas")
    worker.start()
    worker.join()
    if not result:
        raise RuntimeError("could not limit the BLAS threads (see the traceback above)")
    return result[0]


_lock = threading.Lock()
_users = 0
_limiter = None
# Made at the first transform: finding the loaded libraries takes about a millisecond and 0.4 MB
# of Python objects, every time. The engine's products run on NumPy's BLAS, loaded by then.
_blas = None


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread while any thread of the process is inside this context."""
    global _users, _limiter, _blas
    with _lock:
        if _users == 0:
            if _blas is None:
                _blas = ThreadpoolController().select(user_api="blas")
            _limiter = _on_own_thread(lambda: _blas.limit(limits=1))
            held = {lib["num_threads"] for lib in _blas.info()} - {1}
            if held:
                warnings.warn(
                    f"BLAS could not be limited to one thread: another thread holds "
                    f"threadpoolctl's control of OpenBLAS (inside a threadpool_limits that has "
                    f"not ended), at {max(held)} threads. The matrix products then run on "
                    f"several BLAS threads: the features may differ in their last bits from "
                    f"other runs, and threads may compete for the cores.",
                    RuntimeWarning,
                    stacklevel=3,
                )
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _on_own_thread(_limiter.restore_original_limits)
                _limiter = None
