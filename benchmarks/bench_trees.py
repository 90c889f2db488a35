"""Before/after a change of the engine: our transform on bench_speed.py's configurations (a
quarter of their images, or ``1 / --divisor``) in two source trees, each in its own
subprocess, alternating, one BLAS thread per engine thread (``--n-jobs``) and the CPU's own
OpenBLAS kernel, best of 3 calls per round; prints both times and their ratio (wall and CPU).
Only ``ours()`` and ``CONFIGS`` of each tree's bench_speed.py are used, so an older tree runs
unchanged::

    git worktree add /tmp/base <commit>
    python benchmarks/bench_trees.py /tmp/base . --configs A,B,C,MOSAIKS,F --rounds 2
    python benchmarks/bench_trees.py /tmp/base . --configs A,B --n-jobs 2 --divisor 20
"""

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
sys.path.insert(0, "benchmarks")
from bench_speed import CONFIGS, make_data, ours
out = {}
n_jobs, divisor = int(sys.argv[2]), int(sys.argv[3])
for name in sys.argv[1].split(","):
    c = CONFIGS[name]
    images, filters = make_data(c, max(4, c.n_images // divisor))
    t = ours(c, filters, n_jobs).fit(images[:1]); t.transform(images[:8])
    best = []
    for _ in range(3):
        w, p = time.perf_counter(), time.process_time(); t.transform(images)
        best.append((time.perf_counter() - w, time.process_time() - p))
    out[name] = min(best)
print(json.dumps(out))
"""
parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("base", help="the tree before the change")
parser.add_argument("new", help="the tree after it")
parser.add_argument("--configs", default="A,B,C,MOSAIKS,F")
parser.add_argument("--rounds", type=int, default=2)
parser.add_argument("--n-jobs", type=int, default=1, help="our n_jobs")
parser.add_argument("--divisor", type=int, default=4, help="time 1 / divisor of the images")
args = parser.parse_args()
TREES = {"base": os.path.abspath(args.base), "new": os.path.abspath(args.new)}
configs = args.configs
env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
env["OPENBLAS_NUM_THREADS"] = "1"
rows = {t: [] for t in TREES}
for r in range(args.rounds):
    for tree, path in TREES.items() if r % 2 == 0 else reversed(TREES.items()):
        res = subprocess.run(
            [sys.executable, "-c", CHILD, configs, str(args.n_jobs), str(args.divisor)],
            cwd=path,
            env={**env, "PYTHONPATH": path},
            capture_output=True,
            text=True,
            check=True,
        )
        rows[tree].append(json.loads(res.stdout))
print(f"n_jobs={args.n_jobs}, 1/{args.divisor} of the images, best of {args.rounds} rounds")
for name in configs.split(","):
    b = min(x[name][0] for x in rows["base"])
    m = min(x[name][0] for x in rows["new"])
    bc = min(x[name][1] for x in rows["base"])
    mc = min(x[name][1] for x in rows["new"])
    print(f"{name:8} base {b:.3f} s new {m:.3f} s  new/base wall {m / b:.3f} cpu {mc / bc:.3f}")
