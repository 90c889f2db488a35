"""Write the intersphinx inventories that docs/conf.py reads, so that the build needs no network.

Usage: ``python docs/_inventories/make_inventories.py NAME=objects.inv ...``, with the
``objects.inv`` of each project's documentation (downloaded from its site, or from Debian's
``python3-doc``, ``python-scipy-doc`` and ``python-sklearn-doc`` packages, which install them
under ``/usr/share/doc``). Python's and SciPy's are cut to their Python objects, the only
entries our docstrings refer to; scikit-learn's is kept whole (its docstrings, which our API
pages inherit, refer to its glossary and user guide too).
"""

import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
WHOLE = {"sklearn"}


def prune(raw, keep_all):
    """The inventory ``raw`` (bytes), with only the ``py:`` entries unless ``keep_all``."""
    lines = raw.split(b"\n", 4)
    header, body = lines[:4], zlib.decompress(lines[4]).decode()
    entries = [
        line for line in body.splitlines() if keep_all or line.split(" ", 2)[1].startswith("py:")
    ]
    return b"\n".join(header) + b"\n" + zlib.compress("\n".join(entries).encode() + b"\n", 9)


def main(arguments):
    for argument in arguments:
        name, _, path = argument.partition("=")
        (HERE / f"{name}.inv").write_bytes(prune(Path(path).read_bytes(), name in WHOLE))


if __name__ == "__main__":
    main(sys.argv[1:])
