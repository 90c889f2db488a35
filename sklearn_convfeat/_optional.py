"""Lazy imports of the optional extras, with an error that says what to install."""

import importlib

# Module -> (distribution the user installs, extra of sklearn-convfeat that brings it).
_EXTRAS = {
    "PIL": ("Pillow", "images"),
    "matplotlib": ("matplotlib", "plot"),
    "skops": ("skops", "skops"),
}


def import_optional(name):
    """Import ``name`` (e.g. ``'PIL.Image'``), or raise an ImportError naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        package, extra = _EXTRAS[name.partition(".")[0]]
        raise ImportError(
            f"this feature needs {package}, which is not installed; install it with: "
            f'pip install "sklearn-convfeat[{extra}]"'
        ) from exc
