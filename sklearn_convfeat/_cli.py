"""The ``convfeat`` command line: classify folders of images with convolutional features.

The transformer options are derived from ``ConvFeatureTransformer`` when the parser is built
(``_cli_options``): one option per parameter, with the values its constraints allow, the
first paragraph of its docstring as help and its default. Left out: ``image_shape`` (the
images decide it), ``flatten`` (the classifier needs flat features) and ``n_jobs`` (that is
``--n-jobs``); ``random_state`` defaults to 0 here, so that runs are reproducible. The
estimator validates the options before any work.

Images are resized to one size (``--image-size 32``), or kept at their own sizes
(``--image-size native``, optionally shrunk to ``--max-side``) for a transformer that pools onto
a grid or a pyramid. A model file remembers which; ``predict`` and ``show`` read new images the
same way.

Every expected failure (a missing path, an unreadable image or model, an output that exists,
a value the estimator refuses) ends with one line on stderr and exit status 2. Outputs are
written to a temporary file in the target's folder, then renamed over it, so an interrupted
command leaves no partial file.
"""

import argparse
import csv
import importlib
import json
import os
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from . import __version__
from ._cli_options import (
    add_transformer_options,
    check_params,
    given_params,
    mentions_option,
    option_error,
)
from ._optional import import_optional
from ._spec import parse_pooling

# A model file is a dict tagged with its format. Format 1: images resized to "image_size".
# Format 2: also "image_size" None (each image at its own size) and "max_side". Models of a fixed
# size are still written as format 1, which older versions read; both formats are read.
MODEL_FORMAT = "sklearn-convfeat model 1"
NATIVE_MODEL_FORMAT = "sklearn-convfeat model 2"
MODEL_FORMATS = (MODEL_FORMAT, NATIVE_MODEL_FORMAT)

# Raw pixels need one size: with --image-size native, evaluate's raw-pixels row resizes to this.
RAW_PIXELS_SIZE = (32, 32)

# The default grid of `convfeat search`; keys without "__" are transformer parameters.
DEFAULT_GRID = {
    "filter_init": ["kmeans", "gabor"],
    "filter_size": [3, 5],
    "n_filters": [32, 64],
}

# Top-level packages whose classes a model file may hold.
TRUSTED_PACKAGES = ("sklearn", "sklearn_convfeat", "numpy")


class CommandError(Exception):
    """An expected failure, reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _image_size(text):
    """``'32'`` or ``'32x48'`` (height x width) as a pair of ints; ``'native'`` as None."""
    if text.strip().lower() == "native":
        return None
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE, HEIGHTxWIDTH or 'native', got {text!r}")
    return size


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def _n_jobs(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a non-zero int (-1: all cores), got {text!r}")
    return value


def _parent_parsers():
    data = argparse.ArgumentParser(add_help=False)
    group = data.add_argument_group("images")
    group.add_argument(
        "--data", required=True, metavar="DIR", help="folder with one sub-folder per class"
    )
    group.add_argument(
        "--image-size",
        type=_image_size,
        default=(32, 32),
        metavar="SIZE",
        help=(
            "resize every image to SIZE or HEIGHTxWIDTH pixels, or 'native' to keep each "
            "image at its own size (needs a pooling grid or pyramid, the default) "
            "(default: 32)"
        ),
    )
    group.add_argument(
        "--max-side",
        type=_positive_int,
        default=None,
        metavar="N",
        help=(
            "with --image-size native: shrink any image whose longer side exceeds N pixels, "
            "keeping its aspect ratio (default: no limit)"
        ),
    )
    group.add_argument(
        "--color",
        choices=["grayscale", "rgb"],
        default="grayscale",
        help="colour mode of the images (default: grayscale)",
    )
    group.add_argument(
        "--skip-errors",
        action="store_true",
        help="skip unreadable image files with a warning instead of stopping",
    )

    transformer = argparse.ArgumentParser(add_help=False)
    add_transformer_options(transformer)

    cv = argparse.ArgumentParser(add_help=False)
    group = cv.add_argument_group("evaluation")
    group.add_argument(
        "--cv", type=_positive_int, default=5, metavar="K", help="number of folds (default: 5)"
    )
    group.add_argument(
        "--n-jobs",
        type=_n_jobs,
        default=None,
        metavar="N",
        help="cores to use, -1 for all (default: 1)",
    )

    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--force", action="store_true", help="overwrite an existing output")
    return data, transformer, cv, output


def build_parser():
    """The ``convfeat`` argument parser."""
    parser = _Parser(
        prog="convfeat",
        description=(
            "Classify images with convolutional features and scikit-learn. Without a "
            "command, cross-validate raw pixels against convolutional features on the "
            "digits bundled with scikit-learn."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    data, transformer, cv, output = _parent_parsers()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    commands.add_parser(
        "digits",
        parents=[transformer, cv],
        help="raw pixels vs convolutional features on scikit-learn's digits (the default)",
        description="Cross-validate raw pixels and convolutional features on the digits.",
    )
    commands.add_parser(
        "evaluate",
        parents=[data, transformer, cv],
        help="cross-validate on a folder of images",
        description="Cross-validated accuracy and times, raw pixels vs convolutional features.",
    )
    search = commands.add_parser(
        "search",
        parents=[data, transformer, cv, output],
        help="grid search of the filter settings",
        description=(
            "GridSearchCV over the filter settings. The default grid is "
            f"{json.dumps(DEFAULT_GRID)}. Keys without '__' are ConvFeatureTransformer "
            "parameters; 'clf__C' and the like reach the LogisticRegression."
        ),
    )
    search.add_argument("--grid", metavar="JSON", help="the grid, as JSON text or a JSON file")
    search.add_argument(
        "--top",
        type=_positive_int,
        default=5,
        metavar="N",
        help="configurations to print (default: 5)",
    )
    search.add_argument("--csv", metavar="FILE", help="write cv_results_ to this CSV file")

    train = commands.add_parser(
        "train",
        parents=[data, transformer, output],
        help="fit on a folder of images and save the model",
        description="Fit the pipeline on all the images and save it with skops.",
    )
    train.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    train.add_argument(
        "--n-jobs", type=_n_jobs, default=None, metavar="N", help="cores to use, -1 for all"
    )

    predict = commands.add_parser(
        "predict",
        help="classify images with a saved model",
        description="Print the predicted label and its probability for each image.",
    )
    predict.add_argument("--model", required=True, metavar="MODEL", help="a model from train")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")

    show = commands.add_parser(
        "show",
        parents=[output],
        help="draw the filters of a saved model",
        description=(
            "Draw the filter bank of a saved model, or with --image the feature maps of one image."
        ),
    )
    show.add_argument("--model", required=True, metavar="MODEL", help="a model from train")
    show.add_argument("--out", required=True, metavar="FILE", help="picture to write (.png, ...)")
    show.add_argument("--image", metavar="IMAGE", help="draw this image's feature maps instead")
    return parser


def _stderr(message):
    print(f"convfeat: {message}", file=sys.stderr, flush=True)


class _Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, label, total, width=20):
        self.label, self.total, self.width, self.done = label, total, width, 0
        self.tty = sys.stderr.isatty()

    def step(self):
        self.done += 1
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self.label:<22} [{bar}] {self.done}/{self.total}"
        if self.tty:
            end = "\n" if self.done == self.total else ""
            print(f"\r{line}", end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def _transformer(args, n_jobs=None):
    """The transformer of the options in ``args``, validated by the estimator."""
    try:
        return check_params(given_params(args)).set_params(n_jobs=n_jobs)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


@contextmanager
def _fitting(args):
    """Report an error of the estimator found in fit (a filter file unlike the images) as one
    line naming its options."""
    try:
        yield
    except ValueError as exc:
        if not mentions_option(str(exc)):
            raise
        raise CommandError(option_error(exc, given_params(args))) from None


def make_model(features=None):
    """The pipeline: ``features`` (or nothing: raw pixels), scaling, logistic regression."""
    steps = [] if features is None else [("conv", features)]
    steps += [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]
    return Pipeline(steps)


def _conv_model(args, n_jobs=None):
    return make_model(_transformer(args, n_jobs))


def _check_output(path, force):
    """Fail before any work if ``path`` cannot or must not be written."""
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{path}: is a folder, expected a file name")
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such folder for the output {path.name}")
    if path.exists() and not force:
        raise CommandError(f"{path} exists; pass --force to overwrite it")


@contextmanager
def _atomic_output(path):
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    # mkstemp makes the file private; give it the permissions of any new file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _optional(name):
    try:
        return import_optional(name)
    except ImportError as exc:
        raise CommandError(str(exc)) from None


def _load_folder(args, min_per_class=1):
    from .datasets import load_image_folder

    _optional("PIL.Image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            bunch = load_image_folder(
                args.data,
                image_size=args.image_size,
                max_side=args.max_side,
                color_mode=args.color,
                on_error="warn" if args.skip_errors else "raise",
            )
        except (FileNotFoundError, ValueError) as exc:
            hint = "" if args.skip_errors else " (--skip-errors skips such files)"
            is_image_error = isinstance(exc, ValueError) and "not a readable image" in str(exc)
            raise CommandError(f"{exc}{hint if is_image_error else ''}") from None
    for warning in caught:
        _stderr(f"warning: {warning.message}")
    counts = np.bincount(bunch.target, minlength=len(bunch.target_names))
    if len(bunch.target_names) < 2:
        raise CommandError(
            f"{args.data}: found images of one class only ({bunch.target_names[0]!r}); "
            "classification needs at least two sub-folders with images"
        )
    smallest = int(np.argmin(counts))
    if counts[smallest] < min_per_class:
        raise CommandError(
            f"{args.data}: class {bunch.target_names[smallest]!r} has {counts[smallest]} "
            f"image(s), fewer than the {min_per_class} folds; add images or lower --cv"
        )
    _stderr(
        f"{len(bunch.target)} images in {len(counts)} classes ("
        + ", ".join(f"{name}: {n}" for name, n in zip(bunch.target_names, counts, strict=True))
        + f"), {_sizes(args, bunch.images)} {args.color}"
    )
    return bunch


def _sizes(args, images):
    """How the images were sized, for the summary line."""
    from .datasets import _size_range

    if args.image_size is not None:
        height, width = args.image_size
        return f"resized to {height}x{width}"
    limit = "" if args.max_side is None else f", longer side at most {args.max_side}"
    return f"kept at their own sizes{limit} (from {_size_range(images)})"


def _check_image_options(args):
    """Fail before any work if the image options make no sense together, or with the
    pooling: images of their own sizes need features of one length whatever the size."""
    if args.image_size is not None:
        if args.max_side is not None:
            raise CommandError(
                "--max-side: applies only with --image-size native (a fixed --image-size "
                "resizes every image to it)"
            )
        return
    conv = _transformer(args)
    if parse_pooling(conv.pool_size, conv.pool_grid, conv.flatten).windows is not None:
        raise CommandError(
            "--image-size native: needs a pooling grid or pyramid (--pool-grid, or the "
            "default without --pool-size), whose number of features does not depend on the "
            "image size; --pool-size pools over windows, whose number does"
        )


def _take(X, indices):
    """The samples of ``X`` (an array, or a list of images of their own sizes) at ``indices``."""
    return X[indices] if isinstance(X, np.ndarray) else [X[i] for i in indices]


def _cross_validate(models, y, cv):
    """Accuracy, fit time and transform time per fold of each ``(name, model, X)``.

    The transform time is that of every step before the classifier on the held-out fold.
    """
    folds = list(StratifiedKFold(n_splits=cv, shuffle=True, random_state=0).split(y, y))
    rows = []
    for name, model, X in models:
        progress = _Progress(name, len(folds))
        scores, fit_times, transform_times = [], [], []
        for train, test in folds:
            start = time.perf_counter()
            model.fit(_take(X, train), y[train])
            fit_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            features = model[:-1].transform(_take(X, test))
            transform_times.append(time.perf_counter() - start)
            scores.append(model[-1].score(features, y[test]))
            progress.step()
        rows.append(
            (name, np.mean(scores), np.std(scores), np.mean(fit_times), np.mean(transform_times))
        )
    return rows


def _print_table(rows):
    print(f"{'model':<22} {'accuracy':>17} {'fit (s)':>9} {'transform (s)':>14}")
    for name, mean, std, fit_time, transform_time in rows:
        accuracy = f"{mean:.3f} +/- {std:.3f}"
        print(f"{name:<22} {accuracy:>17} {fit_time:>9.3f} {transform_time:>14.3f}")
    print("Mean over folds; transform = computing the features of the held-out fold.")


def cmd_digits(args):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    print(f"Digits: {len(y)} images of 8x8 pixels, 10 classes; {args.cv}-fold cross-validation.")
    with _fitting(args):
        rows = _cross_validate(
            [
                ("raw pixels", make_model(), X),
                ("conv features", _conv_model(args, args.n_jobs), X),
            ],
            y,
            args.cv,
        )
    _print_table(rows)


def _raw_pixels(args, bunch):
    """The name of the raw-pixels row and its flat pixels: the images as loaded, or, when they
    keep their own sizes, resized to :data:`RAW_PIXELS_SIZE` (raw pixels need one size)."""
    if args.image_size is not None:
        return "raw pixels", bunch.data
    from .datasets import load_images

    height, width = RAW_PIXELS_SIZE
    try:
        images = load_images(bunch.filenames, image_size=RAW_PIXELS_SIZE, color_mode=args.color)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"Raw pixels need one size: their row uses the images resized to {height}x{width}; "
        "conv features use them at their own sizes."
    )
    return f"raw pixels ({height}x{width})", images.reshape(len(images), -1)


def cmd_evaluate(args):
    bunch = _load_folder(args, min_per_class=args.cv)
    print(
        f"{args.data}: {len(bunch.target)} images, {len(bunch.target_names)} classes; "
        f"{args.cv}-fold cross-validation."
    )
    raw_name, raw_pixels = _raw_pixels(args, bunch)
    with _fitting(args):
        rows = _cross_validate(
            [
                (raw_name, make_model(), raw_pixels),
                ("conv features", _conv_model(args, args.n_jobs), bunch.images),
            ],
            bunch.target,
            args.cv,
        )
    _print_table(rows)


def _read_grid(text):
    """The search grid from JSON text or a JSON file, with pipeline parameter names."""
    if text is None:
        grid = DEFAULT_GRID
    else:
        source = Path(text)
        try:
            is_file = source.is_file()
        except OSError:
            is_file = False
        try:
            grid = json.loads(source.read_text() if is_file else text)
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"--grid: not valid JSON text or a JSON file ({exc})") from None
    grids = grid if isinstance(grid, list) else [grid]
    if not grids or not all(
        isinstance(g, dict) and g and all(isinstance(v, list) and v for v in g.values())
        for g in grids
    ):
        raise CommandError(
            '--grid: expected an object of non-empty lists, e.g. {"n_filters": [16, 32]}'
        )
    return [{(k if "__" in k else f"conv__{k}"): v for k, v in g.items()} for g in grids]


def _check_grid(model, grid, native):
    """Fail before any work if the estimator refuses a configuration of the grid, or if it
    pools over windows the images kept at their own sizes (``native``)."""
    for candidate in ParameterGrid(grid):
        try:
            conv = clone(model).set_params(**candidate).named_steps["conv"]
            conv._validate_params()
            conv._check_params()
        except (TypeError, ValueError) as exc:
            raise CommandError(f"--grid: {exc}".splitlines()[0]) from None
        if native and parse_pooling(conv.pool_size, conv.pool_grid, conv.flatten).windows:
            raise CommandError(
                f"--grid: pool_size={conv.pool_size!r} pools over windows, whose number of "
                "features depends on the image size; with --image-size native, search "
                "pool_grid instead"
            )


def cmd_search(args):
    grid = _read_grid(args.grid)
    if args.csv:
        _check_output(args.csv, args.force)
    model = _conv_model(args)
    _check_grid(model, grid, native=args.image_size is None)
    bunch = _load_folder(args, min_per_class=args.cv)
    cv = StratifiedKFold(n_splits=args.cv, shuffle=True, random_state=0)
    search = GridSearchCV(model, grid, cv=cv, n_jobs=args.n_jobs, error_score="raise")
    n_candidates = sum(int(np.prod([len(v) for v in g.values()])) for g in grid)
    _stderr(f"searching {n_candidates} configurations x {args.cv} folds ...")
    try:
        search.fit(bunch.images, bunch.target)
    except ValueError as exc:
        raise CommandError(f"--grid: {exc}".splitlines()[0]) from None
    results = search.cv_results_
    order = np.argsort(results["rank_test_score"], kind="stable")[: args.top]
    print(f"{'rank':>4} {'accuracy':>17} {'fit (s)':>9}  parameters")
    for i in order:
        accuracy = f"{results['mean_test_score'][i]:.3f} +/- {results['std_test_score'][i]:.3f}"
        params = ", ".join(
            f"{k.removeprefix('conv__')}={v!r}" for k, v in results["params"][i].items()
        )
        print(
            f"{results['rank_test_score'][i]:>4} {accuracy:>17} "
            f"{results['mean_fit_time'][i]:>9.3f}  {params}"
        )
    if args.csv:
        keys = [k for k in results if k != "params"]
        with _atomic_output(args.csv) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(keys)
            for i in range(len(results["params"])):
                writer.writerow([results[k][i] for k in keys])
        _stderr(f"wrote {args.csv}")


def cmd_train(args):
    sio = _optional("skops.io")
    _check_output(args.out, args.force)
    bunch = _load_folder(args)
    with _fitting(args):
        model = _conv_model(args, args.n_jobs).fit(bunch.images, bunch.target)
    saved = {
        "format": MODEL_FORMAT,
        "version": __version__,
        "model": model,
        "target_names": list(bunch.target_names),
        "image_size": list(args.image_size) if args.image_size is not None else None,
        "color_mode": args.color,
    }
    if args.image_size is None:
        saved.update(format=NATIVE_MODEL_FORMAT, max_side=args.max_side)
    with _atomic_output(args.out) as tmp:
        sio.dump(saved, tmp)
    print(f"Saved a model of {len(bunch.target_names)} classes to {args.out}")


def _is_trusted_type(name):
    """Whether ``name`` is a class (not a function) of scikit-learn, this package or NumPy."""
    module_name, _, attribute = name.rpartition(".")
    if module_name.partition(".")[0] not in TRUSTED_PACKAGES:
        return False
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type)


def load_model(path):
    """Load a model file written by ``convfeat train``, trusting only known classes."""
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"{path}: no such model file")
    sio = _optional("skops.io")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # any failure to parse the file means it is not a model
        raise CommandError(f"{path}: not a readable model file ({type(exc).__name__})") from None
    refused = [name for name in untrusted if not _is_trusted_type(name)]
    if refused:
        raise CommandError(
            f"{path}: refusing to load untrusted type(s) {', '.join(refused)}; only "
            "scikit-learn, sklearn-convfeat and NumPy classes are trusted"
        )
    try:
        saved = sio.load(path, trusted=untrusted)
    except Exception as exc:  # as above: a damaged file
        raise CommandError(f"{path}: not a readable model file ({type(exc).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") not in MODEL_FORMATS:
        raise CommandError(f"{path}: not a model saved by 'convfeat train'")
    return saved


def _load_images(saved, filenames):
    from .datasets import load_images

    _optional("PIL.Image")
    _check_inputs(filenames)
    image_size = saved["image_size"]
    try:
        return load_images(
            filenames,
            image_size=None if image_size is None else tuple(image_size),
            max_side=saved.get("max_side"),
            color_mode=saved["color_mode"],
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _check_inputs(filenames):
    for filename in filenames:
        if Path(filename).is_dir():
            raise CommandError(f"{filename}: is a folder, expected an image file")
        if not Path(filename).is_file():
            raise CommandError(f"{filename}: no such file")


def _predict_proba(model, images, filenames):
    """The model's probabilities for ``images``. An image the model refuses (at its own size,
    one too small for the pooling grid) is a one-line error that names its file."""
    try:
        return model.predict_proba(images)
    except ValueError as exc:
        for filename, image in zip(filenames, images, strict=True):
            try:
                model.predict_proba([image])
            except ValueError as own:
                raise CommandError(f"{filename}: {own}".splitlines()[0]) from None
        raise CommandError(str(exc).splitlines()[0]) from None


def cmd_predict(args):
    _check_inputs(args.images)
    saved = load_model(args.model)
    images = _load_images(saved, args.images)
    model, names = saved["model"], saved["target_names"]
    probabilities = _predict_proba(model, images, args.images)
    results = []
    for filename, proba in zip(args.images, probabilities, strict=True):
        best = int(np.argmax(proba))
        results.append(
            {
                "file": filename,
                "label": names[model.classes_[best]],
                "probability": float(proba[best]),
                "probabilities": {
                    names[k]: float(p) for k, p in zip(model.classes_, proba, strict=True)
                },
            }
        )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['file']}: {r['label']} (probability {r['probability']:.2f})")


def cmd_show(args):
    _optional("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import FeatureMapsDisplay, FilterBankDisplay

    _check_output(args.out, args.force)
    if args.image is not None:
        _check_inputs([args.image])
    out_format = Path(args.out).suffix.lstrip(".").lower()
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if out_format not in supported:
        raise CommandError(
            f"{args.out}: unknown picture format {out_format!r}; use one of "
            + ", ".join(sorted(supported))
        )
    saved = load_model(args.model)
    if args.image is None:
        display = FilterBankDisplay.from_estimator(saved["model"])
        display.figure_.suptitle("filters")
    else:
        image = _load_images(saved, [args.image])[0]
        try:
            display = FeatureMapsDisplay.from_estimator(saved["model"], image)
        except ValueError as exc:
            raise CommandError(f"{args.image}: {exc}".splitlines()[0]) from None
    with _atomic_output(args.out) as tmp:
        display.figure_.savefig(tmp, format=out_format, dpi=100)
    plt.close(display.figure_)
    print(f"Wrote {args.out}")


COMMANDS = {
    None: cmd_digits,
    "digits": cmd_digits,
    "evaluate": cmd_evaluate,
    "search": cmd_search,
    "train": cmd_train,
    "predict": cmd_predict,
    "show": cmd_show,
}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    _stderr(f"warning: {category.__name__}: {message}")


def main(argv=None):
    """Run ``convfeat`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # The main job: the digits with every option at its default.
        args = parser.parse_args(["digits"])
    try:
        if given_params(args):
            _transformer(args)  # the estimator checks the options before any work
        if hasattr(args, "image_size"):
            _check_image_options(args)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            COMMANDS[args.command](args)
    except CommandError as exc:
        _stderr(f"error: {exc}")
        return 2
    except MemoryError as exc:
        # MemoryLimitError says what was too big before anything was allocated.
        _stderr(f"error: {exc or 'out of memory'}")
        return 2
    except KeyboardInterrupt:
        _stderr("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (``convfeat predict ... | head``): stop quietly, and
        # keep Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
