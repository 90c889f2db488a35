"""The documentation site: its API reference lists every public name, and the built pages show
every parameter, every command-line option and the gallery's figures.

The tests of the built site read ``docs/_build/html`` (or ``$CONVFEAT_DOCS_HTML``), made by the
README's docs command; they are skipped when it has not been built. ``.ci/run`` builds it after
the tests, then runs this file again.
"""

import ast
import inspect
import os
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

import sklearn_convfeat
from sklearn_convfeat import ConvFeatureTransformer, datasets, plotting
from sklearn_convfeat._cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
HTML = Path(os.environ.get("CONVFEAT_DOCS_HTML", DOCS / "_build" / "html"))
EXAMPLES = sorted((REPO / "examples").glob("plot_*.py"))


def public_names(module):
    """``module.__all__`` without ``__version__``, or else the classes and functions that
    ``module`` defines under names without a leading underscore."""
    if hasattr(module, "__all__"):
        return {f"{module.__name__}.{name}" for name in module.__all__ if name != "__version__"}
    return {
        f"{module.__name__}.{name}"
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


def api_entries(text):
    """The qualified names that the autosummary lists of ``api.rst`` document."""
    names, module, listing = set(), None, False
    for line in text.splitlines():
        if match := re.match(r"\.\. (?:current)?module:: (\S+)", line):
            module = match.group(1)
        elif line.startswith(".. autosummary::"):
            listing = True
        elif listing and line.strip() and not line.startswith(" "):
            listing = False
        elif listing and re.match(r"   [A-Za-z_]\w*$", line):
            names.add(f"{module}.{line.strip()}")
    return names


def test_the_api_reference_lists_every_public_name():
    documented = api_entries((DOCS / "api.rst").read_text())
    public = set().union(*(public_names(m) for m in (sklearn_convfeat, datasets, plotting)))
    assert "sklearn_convfeat.MemoryLimitError" in public
    assert documented == public


class _Page(HTMLParser):
    """The text, the ids, the terms of the definition lists (numpydoc's parameters) and the
    local image sources of an HTML page."""

    def __init__(self, path):
        super().__init__()
        self.text, self.ids, self.terms, self.images = [], set(), [], []
        self._term = None
        self.feed(path.read_text())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img" and not re.match(r"\w+:", attrs.get("src", "")):
            self.images.append(attrs["src"])
        if tag == "dt":
            self._term = []
        elif tag == "span" and attrs.get("class") == "classifier" and self._term is not None:
            self._term.append(" : ")

    def handle_endtag(self, tag):
        if tag == "dt" and self._term is not None:
            self.terms.append("".join(self._term))
            self._term = None

    def handle_data(self, data):
        self.text.append(data)
        if self._term is not None:
            self._term.append(data)


def _page(relative):
    if not (HTML / "index.html").exists():
        pytest.skip(f"the documentation is not built in {HTML}: run the README's docs command")
    path = HTML / relative
    assert path.exists(), f"{relative} is not in the built site"
    return path, _Page(path)


def _parameters():
    return list(inspect.signature(ConvFeatureTransformer).parameters)


def test_the_api_page_of_the_transformer_has_every_parameter_and_method():
    _, page = _page("generated/sklearn_convfeat.ConvFeatureTransformer.html")
    for name, parameter in inspect.signature(ConvFeatureTransformer).parameters.items():
        # numpydoc's field list: the name, then its type line, which gives the default.
        term = [term for term in page.terms if term.startswith(f"{name} : ")]
        assert len(term) == 1, (name, term)
        assert ast.literal_eval(term[0].rpartition("default=")[2]) == parameter.default, term
    for method in ("fit", "transform", "fit_transform", "get_feature_names_out", "set_output"):
        assert f"sklearn_convfeat.ConvFeatureTransformer.{method}" in page.ids, method


def test_the_guide_has_every_parameter_and_every_option():
    _, page = _page("guide/parameters.html")
    text = " ".join(page.text)
    for name in _parameters():
        assert name in text, name
    _, page = _page("guide/cli.html")
    text = " ".join(page.text)
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        assert f"convfeat {name}" in text
        for action in command._actions:
            for flag in action.option_strings:
                assert flag in text, (name, flag)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_has_a_gallery_page_with_its_figures(example):
    path, page = _page(f"auto_examples/{example.stem}.html")
    figures = [src for src in page.images if "sphx_glr_" + example.stem in src]
    draws = "plt." in example.read_text() or "Display" in example.read_text()
    assert bool(figures) == draws, figures
    for src in figures:
        png = (path.parent / src).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n", src
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
        assert width >= 200 and height >= 200, (src, width, height)


def test_every_image_of_every_page_exists():
    _page("index.html")
    missing = [
        (str(path.relative_to(HTML)), src)
        for path in HTML.rglob("*.html")
        for src in _Page(path).images
        if not (path.parent / src.split("#")[0]).exists()
    ]
    assert not missing
