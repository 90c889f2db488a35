"""Every command and every Python block of README.md and of the guide's pages (docs/index.md,
docs/guide/*.md) runs as written, page by page in reading order, in a folder that holds what a
reader would have: ``photos/`` (one sub-folder per class) and ``new.jpg``. Each must exit with
status 0 and write only the files it says it writes.

``pip install ...`` parts are not run (the tests run in an environment that has the package):
``pip install ".[all]" && convfeat`` runs ``convfeat``. The few blocks that cannot run as
written, or only after an earlier block of the same page, are listed below with the reason.
MyST directives (```` ```{include} ````, ```` ```{toctree} ````) are not code.
"""

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from image_folders import draw_shape, make_shapes_folder
from sklearn import linear_model

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCUMENTS = [README, REPO / "docs" / "index.md", *sorted((REPO / "docs" / "guide").glob("*.md"))]

# Blocks not run, by a line they hold, and why.
NOT_RUN = {
    "python -m pytest -q": (
        "the whole test suite, this test included; .ci/run runs exactly this command"
    ),
    "python -m sphinx": "the documentation's build; .ci/run runs exactly this command",
}

# Blocks that use names of an earlier block of their page, as in one Python session: {a line of
# the block: (a line of the earlier block, what of it runs first: "all" or its "imports")}.
# Each runs in a fresh process after that part of the earlier block.
PHOTOS_BLOCK = 'photos = load_image_folder("photos", image_size=32'
CONTINUES = {
    'photos = load_image_folder("photos", image_size=None': (PHOTOS_BLOCK, "all"),  # model
    "FilterBankDisplay.from_estimator(model)": (PHOTOS_BLOCK, "all"),  # model, photos
    'sio.dump(model, "model.skops")': (PHOTOS_BLOCK, "all"),  # model
}

# The files a Python block writes, by a line it holds (commands say theirs with --out, --csv).
PYTHON_WRITES = {'sio.dump(model, "model.skops")': {"model.skops"}}

OUTPUT_OPTIONS = ("--out", "--csv")


def fenced_blocks(text):
    """``[(language, code)]`` of the fenced blocks of a Markdown text, indented ones too; the
    language of a MyST directive is its name in braces, e.g. ``{include}``."""
    pattern = re.compile(r"^( *)```(\S*)[^\n]*\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
    return [(m.group(2), textwrap.dedent(m.group(3))) for m in pattern.finditer(text)]


def _block_with(blocks, line):
    """The one block that holds ``line``."""
    found = [code for _, code in blocks if line in code]
    assert len(found) == 1, f"{len(found)} blocks of a page hold {line!r}; update this test"
    return found[0]


def _in_blocks(blocks, lines):
    """The entries of ``lines`` (a dict by line) that some block of the page holds."""
    return {line: value for line, value in lines.items() if any(line in c for _, c in blocks)}


def _steps(document):
    """``[(id, kind, what, writes)]`` of a page, in its order: ``kind`` is "command" (``what``
    is its argv) or "python" (``what`` is its code)."""
    blocks = fenced_blocks(document.read_text())
    skipped = {_block_with(blocks, line) for line in _in_blocks(blocks, NOT_RUN)}
    earlier = {
        _block_with(blocks, line): _part(_block_with(blocks, first), part)
        for line, (first, part) in _in_blocks(blocks, CONTINUES).items()
    }
    writes = {
        _block_with(blocks, line): files
        for line, files in _in_blocks(blocks, PYTHON_WRITES).items()
    }
    steps = []
    for language, code in blocks:
        if code in skipped or language.startswith("{"):
            continue
        if language == "python":
            lines = [line for line in code.splitlines() if line and "import" not in line]
            name = "python: " + lines[0][:50]
            session = earlier.get(code, "") + "\n" + code
            steps.append((name, "python", session, writes.get(code, set())))
        elif language == "bash":
            for line in code.splitlines():
                for argv in _commands(shlex.split(line, comments=True)):
                    files = {
                        argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in OUTPUT_OPTIONS
                    }
                    steps.append((" ".join(argv), "command", argv, files))
    return steps


def _part(code, part):
    if part == "imports":
        return "\n".join(line for line in code.splitlines() if re.match(r"(from|import) ", line))
    return code


def _commands(tokens):
    """The commands of a line split at ``&&``, but for ``pip``'s."""
    commands = [[]]
    for token in tokens:
        if token == "&&":
            commands.append([])
        else:
            commands[-1].append(token)
    return [argv for argv in commands if argv and argv[0] != "pip"]


STEPS = {document: _steps(document) for document in DOCUMENTS}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_block_is_bash_python_plain_text_or_a_directive(document):
    languages = {language for language, _ in fenced_blocks(document.read_text())}
    languages = {language for language in languages if not language.startswith("{")}
    assert languages <= {"bash", "python", "text", ""}, "teach this test to run the new kind"


def test_the_commands_are_found():
    steps = [step for steps in STEPS.values() for step in steps]
    commands = [what for _, kind, what, _ in steps if kind == "command"]
    assert ["convfeat"] in commands  # the main job, without arguments
    for command in ("evaluate", "search", "train", "predict", "show"):
        assert ["convfeat", command] in [argv[:2] for argv in commands]
    assert sum(kind == "python" for _, kind, _, _ in steps) >= 4


def _ci_script():
    return (REPO / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize("command", ["python -m pytest", "python -m sphinx"])
def test_ci_runs_exactly_the_readme_command(command):
    """.ci/run runs the README's test command and its docs command as written."""
    blocks = fenced_blocks(README.read_text())
    (line,) = [line for line in _block_with(blocks, command).splitlines() if command in line]
    (readme_command,) = [part.strip() for part in line.split("&&") if command in part]
    assert readme_command in [line.strip() for line in _ci_script()]


def _files(folder):
    """``{relative path: bytes}`` of every file under ``folder``."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


class Session:
    """A reader's folder, in which the steps of a page run in its order, each at most once."""

    def __init__(self, steps, folder, scripts):
        self.steps, self.folder, self.scripts, self.done = steps, folder, scripts, 0
        make_shapes_folder(folder / "photos", n_per_class=6, shapes=("cat", "dog"))
        draw_shape("circle", np.random.default_rng(1)).save(folder / "new.jpg")

    def run_through(self, index):
        """Run every step up to ``index`` not run yet; return the last one's result."""
        result = None
        while self.done <= index:
            if result is not None:
                status = result[0]
                assert status.returncode == 0, f"{self.steps[self.done - 1][0]}: {status.stderr}"
            result = self._run(*self.steps[self.done])
            self.done += 1
        return result

    def _run(self, name, kind, what, writes):
        # One BLAS thread: the results do not depend on it, and on a shared machine BLAS threads
        # that wait for a core made the Quickstart's LogisticRegression 40 times slower.
        env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        if kind == "python":
            script = self.scripts / f"step_{self.done}.py"
            script.write_text(what)
            argv = [sys.executable, str(script)]
        elif what[0] == "convfeat":
            argv = [sys.executable, "-m", "sklearn_convfeat", *what[1:]]
        elif what[0] == "python":
            argv = [sys.executable, *what[1:]]
        else:
            pytest.fail(f"README runs {what[0]!r}; teach this test how to run it")
        before = _files(self.folder)
        result = subprocess.run(
            argv, cwd=self.folder, env=env, capture_output=True, text=True, timeout=300
        )
        after = _files(self.folder)
        changed = {path for path in after if before.get(path) != after[path]}
        return result, changed, set(before) - set(after), writes


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """One reader's folder per page, made when its first step runs."""
    made = {}

    def session(document):
        if document not in made:
            made[document] = Session(
                STEPS[document], tmp_path_factory.mktemp("reader"), tmp_path_factory.mktemp("py")
            )
        return made[document]

    return session


@pytest.mark.parametrize(
    ("document", "index"),
    [(document, index) for document, steps in STEPS.items() for index in range(len(steps))],
    ids=[
        f"{document.relative_to(REPO)}: {step[0]}"
        for document, steps in STEPS.items()
        for step in steps
    ],
)
def test_step_runs_and_writes_only_what_it_says(document, index, sessions):
    result, changed, removed, writes = sessions(document).run_through(index)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert changed == writes
    assert not removed


def _readme_object(line, name):
    """``name`` as the README's Python block that holds ``line`` defines it."""
    namespace = {}
    exec(_block_with(fenced_blocks(README.read_text()), line), namespace)
    return namespace[name]


def _options(estimator, ignore=("n_jobs", "random_state")):
    """Every option of ``estimator`` and of the steps inside it, each step by its type (the
    lists of steps are left out: each step is a key of its own)."""
    ignore = (*ignore, "steps", "transformer_list")
    return {
        key: type(value) if hasattr(value, "get_params") else value
        for key, value in estimator.get_params(deep=True).items()
        if key.rsplit("__", 1)[-1] not in ignore
    }


def test_bench_real_measures_the_readme_pipelines():
    """The accuracy section's figures come from bench_real.py's rows: its quickstart classifier
    and its accurate recipe are the README's."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_real
    finally:
        sys.path.pop(0)
    source = README.read_text()
    quickstart = re.search(r"make_pipeline\(ConvFeatureTransformer\([^)]*\), (.*)\)\n", source)
    classifier = eval(quickstart.group(1), vars(linear_model))
    assert _options(classifier) == _options(bench_real.QUICKSTART_CLASSIFIER)
    accurate = _readme_object("accurate = make_pipeline(", "accurate")
    measured = bench_real.accurate_recipe()
    assert list(_options(accurate).items()) == list(_options(measured).items())  # in order
