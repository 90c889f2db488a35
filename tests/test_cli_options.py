"""The transformer options of convfeat follow ConvFeatureTransformer: every parameter and every
value its constraints allow, its docstring's help and its default.

The walk over the constraints goes through the command line as the commands use it: parse,
then build the pipeline (``_conv_model``), so that it checks what a command would fit.
"""

import inspect
import re
from numbers import Integral, Real

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat._cli import _conv_model, build_parser, main

# Parameters that are not options, as the module docstring of _cli_options and --help say.
LEFT_OUT = {"image_shape", "flatten", "n_jobs"}
CONSTRAINTS = ConvFeatureTransformer._parameter_constraints
DEFAULTS = ConvFeatureTransformer().get_params()
EXPOSED = [name for name in DEFAULTS if name not in LEFT_OUT]


def _flag(name):
    return "--" + name.replace("_", "-")


def _type_line(name):
    """The type of ``name`` in the "Parameters" section of the docstring."""
    match = re.search(rf"^{name} : (.*)$", inspect.cleandoc(ConvFeatureTransformer.__doc__), re.M)
    return match.group(1) if match else ""


def _interval_values(interval):
    """The lowest value in ``interval``, and a larger one, of its type."""
    integral = issubclass(interval.type, Integral)
    step = 3 if integral else 2.5
    if interval.left is None:
        low = (interval.right if interval.right is not None else 0) - 2 * step
    else:
        low = interval.left
        if interval.closed in ("right", "neither"):
            low += 1 if integral else 0.5
    high = low + step
    if interval.right is not None and high > interval.right:
        high = (low + interval.right) / 2 if not integral else low
    cast = int if integral else float
    return [cast(low), cast(high)]


def examples(name, tmp_path):
    """``[(argv, expected value)]``: one or more for every constraint of ``name``."""
    flag = _flag(name)
    found = []
    for constraint in CONSTRAINTS[name]:
        if constraint is None:
            found.append(([flag, "none"], None))
        elif constraint == "boolean":
            found += [([flag], True), (["--no-" + flag[2:]], False)]
        elif constraint == "random_state":
            found += [([flag, "0"], 0), ([flag, "12345"], 12345), ([flag, "none"], None)]
        elif constraint == "array-like":
            bank = np.random.default_rng(0).normal(size=(DEFAULTS["n_filters"], 3, 3))
            np.save(tmp_path / "bank.npy", bank)
            found.append(([flag, str(tmp_path / "bank.npy")], bank))
        elif isinstance(constraint, StrOptions):
            found += [([flag, option], option) for option in sorted(constraint.options)]
        elif isinstance(constraint, Interval):
            found += [([flag, str(value)], value) for value in _interval_values(constraint)]
        elif constraint is tuple or (constraint is list and "list of" not in _type_line(name)):
            found.append(([flag, "5x3"], (5, 3)))
        elif constraint is list and "list of int" in _type_line(name):  # dilations
            found.append(([flag, "1,2,4"], [1, 2, 4]))
        elif constraint is list:  # a list of grids, each an int or a pair
            found += [([flag, "1,2,4"], [1, 2, 4]), ([flag, "1x1,2x3"], [(1, 1), (2, 3)])]
        elif isinstance(constraint, type) and issubclass(constraint, (Integral, Real)):
            found.append(([flag, "3"], constraint(3)))
        else:
            pytest.fail(f"no example of {constraint!r} ({name}): teach the CLI and this test")
    return found


def _parse(argv, capsys):
    try:
        return build_parser().parse_args(["evaluate", "--data", "photos", *argv])
    except SystemExit:
        pytest.fail(f"convfeat refuses {' '.join(argv)}: {capsys.readouterr().err.strip()}")


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", EXPOSED)
def test_every_value_the_constraints_allow_reaches_the_transformer(name, tmp_path, capsys):
    for argv, expected in examples(name, tmp_path):
        conv = _conv_model(_parse(argv, capsys)).named_steps["conv"]
        conv._validate_params()
        conv._check_params()
        value = conv.get_params()[name]
        assert _same(value, expected), f"{' '.join(argv)} gave {name}={value!r}"


def test_unset_options_keep_the_estimators_defaults_but_random_state(capsys):
    conv = _conv_model(_parse([], capsys)).named_steps["conv"]
    expected = {**DEFAULTS, "random_state": 0}
    for name, value in conv.get_params().items():
        assert _same(value, expected[name]), name


def _command_options(command="evaluate"):
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    parser = subparsers.choices[command]
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_every_parameter_is_an_option_but_those_left_out():
    options = _command_options()
    missing = [name for name in EXPOSED if _flag(name) not in options]
    assert not missing, f"parameters that are not options: {missing}"
    # --n-jobs is the evaluation option, for the cross-validation's transformer.
    assert "--image-shape" not in options and "--flatten" not in options


def test_left_out_parameters_are_the_documented_ones(capsys):
    from sklearn_convfeat import _cli_options

    assert set(_cli_options.LEFT_OUT) == LEFT_OUT
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, reason in _cli_options.LEFT_OUT.items():
        assert f"{name} ({reason})" in text
    assert "--random-state 0 (for reproducible runs)" in text
    for name in LEFT_OUT:
        assert name in _cli_options.__doc__


def _description(name):
    """The first paragraph of the description of ``name`` in the docstring, read simply."""
    doc = inspect.cleandoc(ConvFeatureTransformer.__doc__)
    body = re.search(rf"^{name} : .*\n((?:    .*\n)+?)(?:\n|\S)", doc + "\n\n", re.M)
    assert body, f"the docstring does not describe {name}"
    return " ".join(body.group(1).split()).replace("``", "")


def test_help_is_the_docstring_and_shows_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in EXPOSED:
        words = " ".join(_description(name).split()[:6]).rstrip(".:,")
        assert words in text, f"{_flag(name)}: no help from the docstring"
    first_words = " ".join(_description("n_filters").split()[:4])
    assert f"--n-filters N {first_words}" in text  # each help next to its option
    assert f"(default: {DEFAULTS['n_filters']})" in text
    assert f"(default: {DEFAULTS['padding']})" in text
    assert "(default: --whiten)" in text and "(default: --patch-norm)" in text


def test_pool_grid_metavar_says_the_accepted_forms():
    assert _command_options()["--pool-grid"].metavar == "{none,N,HxW,N,N,...}"


def test_a_parameter_without_description_fails_loudly():
    from sklearn_convfeat._cli_options import transformer_options

    class Undocumented(BaseEstimator):
        """An estimator.

        Parameters
        ----------
        width : int, default=3
            How wide.

        depth : int, default=2
        """

        _parameter_constraints = {
            "width": [Interval(Integral, 1, None, closed="left")],
            "depth": [Interval(Integral, 1, None, closed="left")],
        }

        def __init__(self, width=3, depth=2):
            self.width = width
            self.depth = depth

    with pytest.raises(ValueError, match="no description of 'depth'"):
        transformer_options(Undocumented)


def test_a_new_parameter_becomes_an_option():
    from sklearn_convfeat._cli_options import transformer_options

    class Dilated(BaseEstimator):
        """An estimator.

        Parameters
        ----------
        dilation : int or (int, int), default=1
            Spacing between the filter's taps. More text.

            A second paragraph.
        """

        _parameter_constraints = {"dilation": [Interval(Integral, 1, None, closed="left"), tuple]}

        def __init__(self, dilation=1):
            self.dilation = dilation

    flag, keywords = transformer_options(Dilated)["dilation"]
    assert flag == "--dilation" and keywords["metavar"] == "{N,HxW}"
    assert keywords["help"] == "Spacing between the filter's taps. More text. (default: 1)"
    assert keywords["type"]("2x3") == (2, 3) and keywords["type"]("2") == 2


def test_a_constraint_the_cli_cannot_read_fails_loudly():
    from sklearn_convfeat._cli_options import ValueReader

    with pytest.raises(TypeError, match="'callback'.*cannot read"):
        ValueReader("callback", [callable])


def test_parameter_docs_reads_numpydoc():
    from sklearn_convfeat._cli_options import parameter_docs

    docs = parameter_docs(
        """Title.

        Parameters
        ----------
        a, b : int, default=1
            First line
            continued.

            Second paragraph.
        c : {'x', 'y'}
            C.

        Returns
        -------
        out : int
            Not a parameter.
        """
    )
    assert docs == {
        "a": ("int, default=1", ["First line continued.", "Second paragraph."]),
        "b": ("int, default=1", ["First line continued.", "Second paragraph."]),
        "c": ("{'x', 'y'}", ["C."]),
    }
