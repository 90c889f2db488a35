"""The guide's table of parameters, made from ConvFeatureTransformer itself: its signature's
defaults and its docstring's Parameters section (type line and first paragraph), so that it
cannot drift from the code.

``docs/conf.py`` writes it into ``docs/_generated/parameters.md`` when the pages are built, for
``docs/guide/parameters.md``; ``python docs/make_parameters.py`` prints it.
"""

import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402
from sklearn_convfeat._cli_options import parameter_docs  # noqa: E402


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


if __name__ == "__main__":
    print(parameters_table())
