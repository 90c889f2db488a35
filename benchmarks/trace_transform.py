"""What one default ``transform`` of the digits goes through: calls per function of the package,
how many of them compute shapes or sizes, and how often control passes between its modules.

Run from the repository root, on this checkout or on another one of the package::

    python benchmarks/trace_transform.py
    PYTHONPATH=/path/to/other/checkout python benchmarks/trace_transform.py

"Shape and size computations" are the calls, during ``transform``, of the functions that work
out shapes, regions, padding, methods, chunk sizes or memory: the plan's fields and methods in
this version, the functions of ``_shapes`` and the sizing functions of ``_engine`` in the
version before the plan.
"""

import collections
import os
import sys

if "PYTHONPATH" not in os.environ:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from sklearn.datasets import load_digits  # noqa: E402

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402

# Functions that work out shapes or sizes, by module (either version of the package).
SIZING = {
    "sklearn_convfeat._shapes": None,  # all of them
    "sklearn_convfeat._plan": None,
    "sklearn_convfeat._spec": None,
    "sklearn_convfeat._regions": None,
    "sklearn_convfeat._engine": {
        "choose_method",
        "chunk_size",
        "chunk_bytes_per_image",
        "auto_batch_size",
        "working_bytes",
        "_axis_plan",
        "_plan_length",
        "_region_starts",
        "_pyramid_steps",
        "_region_sizes",
    },
    "sklearn_convfeat._limits": {"feature_gain"},
}


def main():
    X, _ = load_digits(return_X_y=True)
    conv = ConvFeatureTransformer(random_state=0).fit(X)
    conv.transform(X[:10])
    calls = collections.Counter()
    transitions = 0

    def module_of(frame):
        name = frame.f_globals.get("__name__", "")
        return name if name.startswith("sklearn_convfeat") else None

    def profile(frame, event, arg):
        nonlocal transitions
        module = module_of(frame) if event == "call" else None
        if module is None:
            return
        calls[module, frame.f_code.co_name] += 1
        caller = frame.f_back
        while caller is not None and module_of(caller) is None:
            caller = caller.f_back
        if caller is not None and module_of(caller) != module:
            transitions += 1

    sys.setprofile(profile)
    conv.transform(X)
    sys.setprofile(None)
    sizing = {
        key: count
        for key, count in calls.items()
        if key[0] in SIZING and (SIZING[key[0]] is None or key[1] in SIZING[key[0]])
    }
    print(
        f"One default transform of the {len(X)} digits, {sys.modules['sklearn_convfeat'].__file__}"
    )
    print("Shape and size computations:")
    for (module, name), count in sorted(sizing.items(), key=lambda item: -item[1]):
        print(f"  {count:5d} {module.rpartition('.')[2]}.{name}")
    print(
        f"{sum(sizing.values())} shape and size computations; {len(calls)} functions, "
        f"{sum(calls.values())} calls; control passes between modules {transitions} times"
    )


if __name__ == "__main__":
    main()
