"""The transformer options of ``convfeat``, derived from ``ConvFeatureTransformer`` at run time.

Every parameter of the estimator is one option (``n_filters`` is ``--n-filters``), except those
in :data:`LEFT_OUT`: ``image_shape``, which the images decide (``--image-size``, ``--color``);
``flatten``, because the classifier after the transformer needs flat features; and ``n_jobs``,
which is the evaluation option ``--n-jobs``. ``random_state`` is ``--random-state`` with the
command line's own default, 0, so that runs are reproducible (:data:`COMMAND_LINE_DEFAULTS`).

Nothing here names a parameter's values. What an option accepts comes from the parameter's
``_parameter_constraints``: an ``Interval`` of integers or reals reads a number, a
``StrOptions`` one of its strings, ``"boolean"`` gives ``--name/--no-name``, ``None`` the word
``none``, ``tuple`` a pair ``HxW`` (``5x3``), ``list`` a comma-separated list (of grids,
``1,2,4`` or ``1x1,2x3``; of dilations, ``1,2,3``) when the docstring's type says "list of",
and ``"array-like"`` the path of a ``.npy`` file. The help is the first paragraph of the
parameter's description in the class docstring, the default is ``get_params()``'s. Bounds
and combinations are the estimator's business: :func:`check_params` builds it and runs its own
validation, and turns a failure into one line that names the options.
"""

import argparse
import inspect
import re
from contextlib import suppress
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._transformer import ConvFeatureTransformer

# Parameters that are not options, and why (``convfeat COMMAND --help`` says so too).
LEFT_OUT = {
    "image_shape": "the images decide it: --image-size, --color",
    "flatten": "the classifier needs flat features",
    "n_jobs": "that is --n-jobs",
}

# Options whose default is not the estimator's, and why.
COMMAND_LINE_DEFAULTS = {"random_state": (0, "for reproducible runs")}

# The dest of every transformer option: the name of the parameter in the pipeline.
PREFIX = "conv__"

# What each form of value looks like in a metavar, and in words in an error message.
_FORMS = {
    "none": "none",
    "N": "an int N",
    "X": "a number X",
    "HxW": "a pair HxW (e.g. 5x3)",
    "N,N,...": "a list of values N or HxW separated by commas (e.g. 1,2,4 or 1x1,2x3)",
    "FILE.npy": "a .npy file",
}
_PAIR = re.compile(r"\s*([+-]?\d+)\s*[xX]\s*([+-]?\d+)\s*")


def parameter_docs(docstring):
    """The "Parameters" section of a numpydoc docstring.

    Parameters
    ----------
    docstring : str
        A class or function docstring in numpydoc format.

    Returns
    -------
    docs : dict
        ``{name: (type, paragraphs)}``: the text after ``name :`` and the paragraphs of the
        description, each with its whitespace collapsed.
    """
    lines = inspect.cleandoc(docstring or "").splitlines()
    headers = [
        i for i in range(len(lines) - 1) if lines[i].strip() and set(lines[i + 1].strip()) == {"-"}
    ]
    start = next((i for i in headers if lines[i].strip() == "Parameters"), None)
    if start is None:
        return {}
    end = next((i for i in headers if i > start), len(lines))
    entries = []
    for line in lines[start + 2 : end]:
        if line and not line[0].isspace():
            names, _, kind = line.partition(":")
            entries.append((names, kind.strip(), []))
        elif entries:
            entries[-1][2].append(line.strip())
    docs = {}
    for names, kind, body in entries:
        paragraphs = [" ".join(p.split()) for p in "\n".join(body).split("\n\n") if p.strip()]
        for name in names.split(","):
            docs[name.strip()] = (kind, paragraphs)
    return docs


def _plain(text):
    """Docstring markup as plain text: ``x`` as x, :func:`a.f` as a.f, :class:`~a.B` as B."""
    text = re.sub(r":\w+:`~([^`]+)`", lambda m: m.group(1).rpartition(".")[2], text)
    text = re.sub(r":\w+:`([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _cli_text(value):
    """A value written as on the command line: none, 5x3, 1x1,2x2."""
    if value is None:
        return "none"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, Integral) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, (tuple, list)):
        return ",".join(_cli_text(tuple(v) if isinstance(v, list) else v) for v in value)
    return str(value)


class ValueReader:
    """Reads the text of one option as a value of its parameter, in the forms its constraints
    allow.

    Parameters
    ----------
    name : str
        The parameter.
    constraints : list
        Its entry of ``_parameter_constraints``.
    lists : bool
        Whether a ``list`` constraint means a list of grids (a comma-separated list) rather
        than a pair.
    """

    def __init__(self, name, constraints, lists=False):
        self.name = name
        self.forms, self.options = [], []
        self.boolean = False
        for constraint in constraints:
            self.forms += self._forms_of(constraint, lists)
        self.forms = list(dict.fromkeys(self.forms))

    def _forms_of(self, constraint, lists):
        if constraint is None:
            return ["none"]
        if constraint == "random_state":
            return ["N", "none"]
        if constraint == "boolean":
            self.boolean = True
            return []
        if constraint == "array-like":
            return ["FILE.npy"]
        if isinstance(constraint, StrOptions):
            self.options += sorted(constraint.options)  # deprecated ones too, not shown
            return sorted(constraint.options - constraint.deprecated)
        kind = constraint.type if isinstance(constraint, Interval) else constraint
        if kind is tuple:
            return ["HxW"]
        if kind is list:
            return ["N,N,..."] if lists else ["HxW"]
        if isinstance(kind, type) and issubclass(kind, Integral):
            return ["N"]
        if isinstance(kind, type) and issubclass(kind, Real):
            return ["X"]
        raise TypeError(
            f"The parameter {self.name!r} has a constraint, {constraint!r}, that the command "
            "line cannot read; teach sklearn_convfeat._cli_options.ValueReader its form."
        )

    @property
    def metavar(self):
        return self.forms[0] if len(self.forms) == 1 else "{" + ",".join(self.forms) + "}"

    def expected(self):
        """The accepted forms, in words."""
        words = [_FORMS.get(form, repr(form)) for form in self.forms if form not in self.options]
        shown = [form for form in self.forms if form in self.options]
        if shown:
            words.insert(0, "one of " + ", ".join(shown))
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]

    def __call__(self, text):
        if "none" in self.forms and text.strip().lower() == "none":
            return None
        if text in self.options:
            return text
        if "N" in self.forms:
            with suppress(ValueError):
                return int(text)
        if "X" in self.forms:
            with suppress(ValueError):
                return float(text)
        if "HxW" in self.forms and _PAIR.fullmatch(text):
            return self._pair(text)
        if "N,N,..." in self.forms and "," in text:
            return [self._grid(item, text) for item in text.split(",")]
        if "FILE.npy" in self.forms:
            return self._array(text)
        raise argparse.ArgumentTypeError(f"expected {self.expected()}, got {text!r}")

    def _pair(self, text):
        height, width = _PAIR.fullmatch(text).groups()
        return int(height), int(width)

    def _grid(self, item, text):
        if _PAIR.fullmatch(item):
            return self._pair(item)
        with suppress(ValueError):
            return int(item)
        raise argparse.ArgumentTypeError(
            f"expected {self.expected()}, got {text!r}, whose grid {item!r} is not N or HxW"
        )

    def _array(self, text):
        path = Path(text)
        if not path.is_file():
            raise argparse.ArgumentTypeError(
                f"expected {self.expected()}, got {text!r} (no such file)"
            )
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # any failure to parse the file means it is not a .npy file
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise argparse.ArgumentTypeError(
                f"{text}: not a readable .npy file ({message})"
            ) from None
        if not isinstance(array, np.ndarray):
            array.close()
            raise argparse.ArgumentTypeError(f"{text}: expected a .npy file of one array")
        return array


def _flag(name):
    return "--" + name.replace("_", "-")


def _help(owner, name, description, default, reader):
    if not description:
        raise ValueError(
            f"{owner}'s docstring has no description of {name!r} under Parameters; the command "
            "line takes its help from there."
        )
    # A first paragraph that ends with a colon introduces a list: --help keeps the paragraph.
    text = _plain(description[0]).removesuffix(":").removesuffix(".") + "."
    if reader.boolean:
        shown = _flag(name) if default else "--no-" + _flag(name)[2:]
    else:
        shown = _cli_text(default)
    if name in COMMAND_LINE_DEFAULTS:
        value, reason = COMMAND_LINE_DEFAULTS[name]
        text += f" (default: {_cli_text(value)}, {reason}; the estimator's: {shown})"
    else:
        text += f" (default: {shown})"
    return text.replace("%", "%%")


def transformer_options(estimator_class=ConvFeatureTransformer):
    """The options for the parameters of ``estimator_class``, in the order of its signature.

    Parameters
    ----------
    estimator_class : type, default=ConvFeatureTransformer
        A scikit-learn estimator with ``_parameter_constraints`` and a numpydoc docstring.

    Returns
    -------
    options : dict
        ``{parameter: (flag, argparse keywords)}`` for every parameter not in
        :data:`LEFT_OUT`.

    Raises
    ------
    ValueError
        If the docstring does not describe a parameter.
    TypeError
        If a parameter has a constraint that the command line cannot read.
    """
    owner = estimator_class.__name__
    defaults = estimator_class().get_params(deep=False)
    constraints = estimator_class._parameter_constraints
    docs = parameter_docs(estimator_class.__doc__)
    options = {}
    for name in inspect.signature(estimator_class).parameters:
        if name in LEFT_OUT:
            continue
        if name not in constraints:
            raise TypeError(f"{owner}._parameter_constraints has no entry for {name!r}.")
        kind, description = docs.get(name, ("", []))
        reader = ValueReader(
            name, constraints[name], lists=re.search(r"\blist of\b", kind) is not None
        )
        keywords = dict(
            dest=PREFIX + name,
            default=COMMAND_LINE_DEFAULTS.get(name, (argparse.SUPPRESS,))[0],
            help=_help(owner, name, description, defaults[name], reader),
        )
        if reader.boolean:
            if reader.forms:
                raise TypeError(f"{name!r}: a boolean that is also something else is not supported")
            keywords["action"] = argparse.BooleanOptionalAction
        else:
            keywords.update(type=reader, metavar=reader.metavar)
        options[name] = (_flag(name), keywords)
    return options


def add_transformer_options(parser, estimator_class=ConvFeatureTransformer):
    """Add a group of the transformer options to ``parser``; return the group."""
    left_out = ", ".join(f"{name} ({reason})" for name, reason in LEFT_OUT.items())
    own = ", ".join(
        f"{_flag(name)} {_cli_text(value)} ({reason})"
        for name, (value, reason) in COMMAND_LINE_DEFAULTS.items()
    )
    group = parser.add_argument_group(
        "transformer",
        f"Every parameter of {estimator_class.__name__} is an option, with the first paragraph "
        "of its docstring and its default; unset options keep the estimator's defaults, "
        f"except {own}. Left out: {left_out}.",
    )
    for flag, keywords in transformer_options(estimator_class).values():
        group.add_argument(flag, **keywords)
    return group


def given_params(args):
    """The transformer parameters in a parsed ``argparse.Namespace``: the options given, and
    those with a default of the command line's own."""
    return {
        name.removeprefix(PREFIX): value
        for name, value in vars(args).items()
        if name.startswith(PREFIX)
    }


def _validate(estimator_class, params):
    transformer = estimator_class(**params)
    transformer._validate_params()
    check = getattr(transformer, "_check_params", None)
    if check is not None:
        check()
    return transformer


def _fails(estimator_class, params):
    try:
        _validate(estimator_class, params)
    except (TypeError, ValueError):
        return True
    return False


def _mentions(message, names):
    """``{name: position}`` of the names that ``message`` mentions, as words."""
    found = {}
    for name in names:
        match = re.search(rf"(?<![\w-]){re.escape(name)}(?!\w)", message)
        if match:
            found[name] = match.start()
    return found


def _option_names(estimator_class):
    return [name for name in estimator_class().get_params(deep=False) if name not in LEFT_OUT]


def mentions_option(message, estimator_class=ConvFeatureTransformer):
    """Whether ``message`` names a parameter that is an option."""
    return bool(_mentions(message, _option_names(estimator_class)))


def option_error(exc, params, estimator_class=ConvFeatureTransformer):
    """One line for an error of the estimator, that names the options it is about.

    Those options are the given ones that the estimator refuses on their own (those the
    message names if any); otherwise the given ones that the message names; otherwise the
    options it names; otherwise all those given.

    Parameters
    ----------
    exc : Exception
        The error, raised by the estimator.
    params : dict
        The parameters given on the command line.
    estimator_class : type, default=ConvFeatureTransformer
        The estimator.

    Returns
    -------
    message : str
        ``--option[, --option...]: first line of the estimator's message``.
    """
    message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    named = _mentions(message, _option_names(estimator_class))
    failing = [name for name in params if _fails(estimator_class, {name: params[name]})]
    blamed = (
        [name for name in failing if name in named]
        or failing
        or [name for name in params if name in named]
        or list(named)
        or list(params)
    )
    blamed.sort(key=lambda name: named.get(name, len(message)))
    return f"{', '.join(_flag(name) for name in blamed)}: {message}"


def check_params(params, estimator_class=ConvFeatureTransformer):
    """The estimator made from ``params``, after its own validation of its parameters.

    Parameters
    ----------
    params : dict
        Parameters given on the command line.
    estimator_class : type, default=ConvFeatureTransformer
        The estimator.

    Returns
    -------
    estimator : estimator_class
        ``estimator_class(**params)``, unfitted.

    Raises
    ------
    ValueError
        With one line that names the options (see :func:`option_error`) if the estimator
        refuses them.
    """
    try:
        return _validate(estimator_class, params)
    except (TypeError, ValueError) as exc:
        raise ValueError(option_error(exc, params, estimator_class)) from None
