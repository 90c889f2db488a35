"""Sphinx configuration of the sklearn-convfeat documentation.

Build from the repository root with the README's command; everything the pages show that the
code already states (the API, the table of parameters, the command line's options, the
gallery's figures) is generated from the code at build time, never copied.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document the checkout this file belongs to, installed or not.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))

import make_cli_reference  # noqa: E402
import make_parameters  # noqa: E402

import sklearn_convfeat  # noqa: E402

project = "sklearn-convfeat"
author = "the sklearn-convfeat developers"
copyright = f"%Y, {author}"
release = sklearn_convfeat.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
default_role = "literal"
# Values in docstrings and tables are code: 'kmeans' stays as typed, not curled.
smartquotes = False
# The page contents list methods as fit(), not ConvFeatureTransformer.fit().
toc_object_entries_show_parents = "hide"
exclude_patterns = [
    "_build",
    "_inventories",
    "_generated/*.md",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
]
templates_path = ["_templates"]
nitpicky = True
# Types in the numpydoc "Parameters" lines stay plain text (numpydoc_xref_param_type is off),
# so nitpicky applies to the references the prose makes.
nitpick_ignore = [
    # Targets of the docstrings of scikit-learn's mixins (set_output, get_metadata_routing),
    # which the API pages inherit, newer than the scikit-learn 1.2 inventory we ship.
    ("ref", "metadata_routing"),
    ("ref", "df_output_transform"),
    ("py:class", "sklearn.utils.metadata_routing.MetadataRequest"),
]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- API reference --------------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()


# -- Cross-links to scikit-learn, NumPy, SciPy and Python, offline -------------------------
# The inventories are read from docs/_inventories (see its README), never downloaded, so a
# build without a network links to the same pages as one with it.
INVENTORIES = DOCS / "_inventories"
intersphinx_mapping = {
    name: (url, str(INVENTORIES / f"{name}.inv"))
    for name, url in {
        "python": "https://docs.python.org/3/",
        "numpy": "https://numpy.org/doc/stable/",
        "scipy": "https://docs.scipy.org/doc/scipy/",
        "sklearn": "https://scikit-learn.org/stable/",
    }.items()
    if (INVENTORIES / f"{name}.inv").exists()
}

# -- The gallery, from examples/ -------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("sklearn_convfeat",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"sklearn_convfeat": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
}

# -- HTML -------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-convfeat {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    # The guide's pages and the examples have a few sections and wide code and tables: they
    # get the width of the right-hand sidebar; the API and the benchmarks keep their contents.
    "secondary_sidebar_items": {
        "guide/*": [],
        "auto_examples/*": [],
        "api": ["page-toc"],
        "generated/*": ["page-toc"],
        "benchmarks/*": ["page-toc"],
        "changelog": ["page-toc"],
    },
}
html_sidebars = {"index": [], "changelog": []}


def _write_generated(app):
    """The pages' parts made from the code: the table of parameters, the command line."""
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    for name, text in [
        ("parameters.md", make_parameters.parameters_table()),
        ("cli.md", make_cli_reference.cli_reference()),
    ]:
        # Rewritten only when changed, so that Sphinx rebuilds only the pages that changed.
        target = out / name
        if not target.exists() or target.read_text() != text + "\n":
            target.write_text(text + "\n")


def setup(app):
    app.connect("builder-inited", _write_generated)
