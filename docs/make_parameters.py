"""The README's table of parameters, made from ConvFeatureTransformer itself: its signature's
defaults and its docstring's Parameters section (type line and first paragraph), so that it
cannot drift from the code.

Run from the repository root: ``python docs/make_parameters.py`` rewrites the table between
the README's markers; ``tests/test_readme.py`` checks that it is up to date.
"""

import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402
from sklearn_convfeat._cli_options import parameter_docs  # noqa: E402

README = ROOT / "README.md"
BEGIN = "<!-- parameters: made by docs/make_parameters.py -->"
END = "<!-- parameters: end -->"


def _markdown(text):
    """Docstring markup as Markdown: ``x`` as `x`, :func:`a.f` as `f`."""
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: f"`{m.group(1).rpartition('.')[2]}`", text)
    return " ".join(text.replace("``", "`").split())


def _description(paragraph):
    """The first paragraph, as one line of a table cell."""
    text = _markdown(paragraph).replace("|", "\\|")
    return text.removesuffix(":") + ("" if text.endswith(".") else ".")


def parameters_table(estimator_class=ConvFeatureTransformer):
    """The Markdown table: one row per parameter, in the order of the signature."""
    docs = parameter_docs(estimator_class.__doc__)
    rows = ["| parameter | values | default | what it does |", "|---|---|---|---|"]
    for name, parameter in inspect.signature(estimator_class).parameters.items():
        kind, paragraphs = docs[name]
        values = _markdown(re.sub(r",?\s*default=.*$", "", kind)).replace("|", "\\|")
        default = parameter.default
        rows.append(f"| `{name}` | {values} | `{default!r}` | {_description(paragraphs[0])} |")
    return "\n".join(rows)


def readme_with_table(text):
    """``text`` (the README) with the table between its markers made anew."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + parameters_table() + "\n" + text[end:]


def main():
    README.write_text(readme_with_table(README.read_text()))


if __name__ == "__main__":
    main()
