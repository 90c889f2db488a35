"""Check the wheel and the sdist that ``python -m build`` wrote into a folder, or print the
README's quickstart.

``python .ci/check_dist.py DIST``: the wheel carries the licence text and the package, and the
sdist every tracked file of the checkout, so that a packager can run the tests and build the
documentation from it. ``python .ci/check_dist.py --quickstart``
prints the Python block of the README's Quickstart section.
"""

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart():
    section = ROOT.joinpath("README.md").read_text().split("\n## Quickstart\n", 1)[1]
    return re.search(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL).group(1)


def check(dist):
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(re.fullmatch(r"[^/]+\.dist-info/licenses/LICENSE", n) for n in names), names
    assert "sklearn_convfeat/__init__.py" in names, names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "examples/"))], names

    with tarfile.open(sdist) as archive:
        top = sdist.name.removesuffix(".tar.gz")
        shipped = {name.removeprefix(top + "/") for name in archive.getnames()}
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    missing = [name for name in tracked if name not in shipped]
    assert not missing, f"the sdist lacks {missing}"
    generated = [name for name in shipped if name.startswith(("docs/_build/", "docs/generated/"))]
    assert not generated, f"the sdist holds built files: {generated[:5]}"
    print(f"{wheel.name}: licence and package; {sdist.name}: {len(tracked)} tracked files")


if __name__ == "__main__":
    if sys.argv[1:] == ["--quickstart"]:
        print(quickstart())
    else:
        check(Path(sys.argv[1]))
