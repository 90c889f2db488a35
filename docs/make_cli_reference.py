"""The command line's reference page, made from ``convfeat``'s own argparse parser.

``cli_reference()`` gives Markdown (MyST): for each command its description, its usage and
every option with its help, which for the transformer options is the estimator's docstring
(see ``sklearn_convfeat._cli_options``). ``docs/conf.py`` writes it into ``docs/_generated``
when the pages are built, so the page cannot drift from ``convfeat --help``.
"""

import argparse
import functools
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn_convfeat._cli import build_parser  # noqa: E402

# Every ASCII punctuation character can be backslash-escaped in CommonMark: help text then
# shows as written, whatever Markdown or MyST syntax it happens to contain.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


USAGE_WIDTH = 68


def _text(text):
    return _PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def _term(action):
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        return ", ".join(f"`{flag}`" for flag in action.option_strings)
    metavar = action.metavar or action.dest.upper()
    return ", ".join(f"`{flag} {metavar}`" for flag in action.option_strings)


def _command(parser, heading):
    lines = [heading, ""]
    if parser.description:
        lines += [_text(parser.description), ""]
    # As narrow as the page's code blocks, so that the usage needs no scrolling.
    parser.formatter_class = functools.partial(parser.formatter_class, width=USAGE_WIDTH)
    usage = parser.format_usage().strip()
    lines += ["```text", usage, "```", ""]
    formatter = parser._get_formatter()
    for group in parser._action_groups:
        actions = [
            action
            for action in group._group_actions
            if action.help is not argparse.SUPPRESS
            and not isinstance(action, argparse._SubParsersAction)
        ]
        if not actions:
            continue
        lines += [f"**{_text(group.title)}**", ""]
        if group.description:
            lines += [_text(group.description), ""]
        for action in actions:
            lines += [_term(action), f": {_text(formatter._expand_help(action))}", ""]
    return lines


def cli_reference(parser=None):
    """The reference of every command of ``parser`` (by default ``convfeat``'s), as MyST."""
    parser = parser or build_parser()
    lines = _command(parser, f"### {parser.prog}")
    commands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    for name, command in commands.choices.items():
        lines += _command(command, f"### {parser.prog} {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(cli_reference())
