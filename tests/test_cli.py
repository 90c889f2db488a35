"""The convfeat command line, end to end as a subprocess on image folders made here."""

import csv
import fractions
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from image_folders import draw_shape, make_shapes_folder
from PIL import Image

from sklearn_convfeat import ConvFeatureTransformer, _limits
from sklearn_convfeat._cli import MODEL_FORMAT, NATIVE_MODEL_FORMAT, main
from sklearn_convfeat.datasets import load_images

REPO = Path(__file__).resolve().parents[1]
# Small images and a small bank keep every command under a few seconds.
TINY = ["--image-size", "12", "--n-filters", "4", "--filter-size", "3"]
SMALL = [*TINY, "--pool-size", "2"]


def run(*args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "sklearn_convfeat", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convfeat") and "error:" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


def listing(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_folder(tmp_path_factory.mktemp("shapes"), n_per_class=8)


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    """A model trained by the command line, with its folder."""
    work = tmp_path_factory.mktemp("model")
    result = run("train", "--data", shapes, "--out", "model.skops", *SMALL, cwd=work)
    assert result.returncode == 0, result.stderr
    assert "3 classes" in result.stdout
    return work / "model.skops"


def _table(stdout):
    """{model name: accuracy mean} from a results table."""
    rows = {}
    for line in stdout.splitlines():
        if "+/-" in line:
            name, _, rest = line.partition("  ")
            rows[name.strip()] = float(rest.split()[0])
    return rows


def test_no_arguments_runs_the_digits_comparison(tmp_path):
    result = run(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _table(result.stdout)
    assert set(rows) == {"raw pixels", "conv features"}
    assert all(0.5 < accuracy <= 1 for accuracy in rows.values())
    assert "5/5" in result.stderr  # the progress of the folds
    assert list(tmp_path.iterdir()) == []


def test_evaluate_prints_both_rows_and_progress(shapes, tmp_path):
    result = run("evaluate", "--data", shapes, "--cv", "2", "--color", "rgb", *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _table(result.stdout)
    assert set(rows) == {"raw pixels", "conv features"}
    assert all(0 <= accuracy <= 1 for accuracy in rows.values())
    assert "24 images in 3 classes" in result.stderr
    assert "conv features" in result.stderr and "2/2" in result.stderr


def test_search_with_a_json_grid_writes_cv_results(shapes, tmp_path):
    grid = json.dumps({"n_filters": [2, 4], "clf__C": [1.0]})
    result = run(
        "search",
        "--data",
        shapes,
        "--cv",
        "2",
        "--grid",
        grid,
        "--csv",
        "results.csv",
        *SMALL,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    ranked = [line for line in result.stdout.splitlines() if "+/-" in line]
    assert len(ranked) == 2
    assert "n_filters=" in ranked[0] and "clf__C=1.0" in ranked[0]
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["param_conv__n_filters"]) for r in rows) == [2, 4]
    assert sorted(int(r["rank_test_score"]) for r in rows)[0] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_search_with_a_list_of_grids_from_a_json_file(shapes, tmp_path):
    # JSON lists of pool_grid are pyramids: [1, 2] is 1x1 + 2x2.
    (tmp_path / "grid.json").write_text('[{"pool_size": [2, 3]}, {"pool_grid": [2, [1, 2]]}]')
    result = run(
        "search", "--data", shapes, "--cv", "2", "--grid", "grid.json", *TINY, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    ranked = [line for line in result.stdout.splitlines() if "+/-" in line]
    assert len(ranked) == 4
    assert sum("pool_grid=[1, 2]" in line for line in ranked) == 1


def test_search_default_grid(shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = run_main(
        ["search", "--data", shapes, "--cv", "2", "--top", "20", "--image-size", "12"], capsys
    )
    assert result.returncode == 0, result.stderr
    ranked = [line for line in result.stdout.splitlines() if "+/-" in line]
    assert len(ranked) == 8  # 2 banks x 2 filter sizes x 2 numbers of filters
    for line in ranked:
        assert "filter_init=" in line and "filter_size=" in line and "n_filters=" in line


def test_predict_matches_the_saved_pipeline(trained, shapes, tmp_path, capsys):
    files = [shapes / "circle" / "circle_000.jpg", shapes / "triangle" / "triangle_001.png"]
    result = run("predict", "--model", trained, *files, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)

    saved = sio.load(trained, trusted=sio.get_untrusted_types(file=trained))
    expected = saved["model"].predict_proba(
        load_images(files, image_size=12, color_mode="grayscale")
    )
    assert saved["target_names"] == ["circle", "square", "triangle"]
    for answer, file, proba in zip(answers, files, expected, strict=True):
        assert answer["file"] == str(file)
        assert answer["label"] == saved["target_names"][int(np.argmax(proba))]
        assert answer["probability"] == pytest.approx(proba.max(), rel=1e-6)
        assert list(answer["probabilities"]) == saved["target_names"]
        assert sum(answer["probabilities"].values()) == pytest.approx(1)

    text = run_main(["predict", "--model", trained, files[0]], capsys)
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip() == (
        f"{files[0]}: {answers[0]['label']} (probability {answers[0]['probability']:.2f})"
    )


def test_show_draws_filters(trained, tmp_path):
    result = run("show", "--model", trained, "--out", "filters.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "filters.png") as picture:
        assert picture.format == "PNG" and min(picture.size) > 50
    assert [p.name for p in tmp_path.iterdir()] == ["filters.png"]


def test_show_draws_feature_maps(trained, shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    image = shapes / "square" / "square_000.jpg"
    result = run_main(["show", "--model", trained, "--out", "maps.png", "--image", image], capsys)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "maps.png") as picture:
        assert picture.format == "PNG" and min(picture.size) > 50
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]


def _untrusted_model(path, payload):
    sio.dump({"format": MODEL_FORMAT, "model": payload}, path)
    return path


@pytest.fixture(scope="module")
def bad_folders(tmp_path_factory, shapes):
    root = tmp_path_factory.mktemp("bad")
    (root / "empty").mkdir()
    make_shapes_folder(root / "single", n_per_class=3, shapes=("circle",))
    corrupt = make_shapes_folder(root / "corrupt", n_per_class=3, shapes=("a", "b"))
    (corrupt / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    odd = make_shapes_folder(root / "unsupported", n_per_class=3, shapes=("a", "b"))
    (odd / "a" / "notes.txt").write_text("hello")
    few = make_shapes_folder(root / "few", n_per_class=2, shapes=("a", "b"))
    (root / "garbage.skops").write_bytes(b"PK\x03\x04 not a zip at all")
    _untrusted_model(root / "fraction.skops", fractions.Fraction(1, 3))
    _untrusted_model(root / "function.skops", np.save)
    sio.dump({"something": "else"}, root / "foreign.skops")
    (root / "empty.npy").write_bytes(b"")
    return root, {"few": few}


ERRORS = [
    (["evaluate", "--data", "{bad}/missing"], ["missing: no such folder"]),
    (["evaluate", "--data", "{bad}/empty"], ["no images found"]),
    (["train", "--data", "{bad}/single", "--out", "m.skops"], ["one class only", "'circle'"]),
    (["evaluate", "--data", "{bad}/corrupt"], ["broken.jpg: not a readable image"]),
    (["train", "--data", "{bad}/unsupported", "--out", "m.skops"], ["notes.txt", "unsupported"]),
    (["evaluate", "--data", "{bad}/few", "--cv", "3"], ["fewer than the 3 folds"]),
    (["predict", "--model", "{bad}/nope.skops", "{img}"], ["nope.skops: no such model file"]),
    (["predict", "--model", "{bad}/garbage.skops", "{img}"], ["not a readable model file"]),
    (["predict", "--model", "{bad}/fraction.skops", "{img}"], ["untrusted", "fractions.Fraction"]),
    (["show", "--model", "{bad}/function.skops", "--out", "f.png"], ["untrusted", "numpy"]),
    (["predict", "--model", "{bad}/foreign.skops", "{img}"], ["not a model saved by"]),
    (["predict", "--model", "{model}", "{bad}/garbage.skops"], ["garbage.skops: not a readable"]),
    (["predict", "--model", "{model}", "{bad}/nothing.png"], ["nothing.png: no such file"]),
    (["predict", "--model", "{model}", "{bad}"], ["is a folder, expected an image file"]),
    (["search", "--data", "{data}", "--grid", "{{oops"], ["--grid: not valid JSON"]),
    (["search", "--data", "{data}", "--grid", '{{"nope": [1]}}'], ["--grid", "nope"]),
    (["show", "--model", "{model}", "--out", "f.xyz"], ["unknown picture format 'xyz'"]),
    (["train", "--data", "{data}", "--out", "no/such/dir/m.skops"], ["no such folder"]),
    (["evaluate", "--data", "{data}", "--image-size", "900000"], ["would need", "image_size"]),
    (["evaluate"], ["--data"]),
    (["evaluate", "--data", "{data}", "--n-jobs", "0"], ["--n-jobs", "non-zero"]),
    (["evaluate", "--data", "{data}", "--image-size", "big"], ["--image-size"]),
    # Images at their own sizes: options that make no sense with them, checked before any work.
    (["evaluate", "--data", "{data}", "--max-side", "0"], ["--max-side", "positive int", "'0'"]),
    (
        ["evaluate", "--data", "{data}", "--image-size", "native", "--max-side", "-3"],
        ["--max-side", "positive int"],
    ),
    (["evaluate", "--data", "{data}", "--max-side", "64"], ["--max-side", "--image-size native"]),
    (
        [
            "train",
            "--data",
            "{data}",
            "--out",
            "m.skops",
            "--image-size",
            "native",
            "--pool-size",
            "2",
        ],
        ["--image-size native", "--pool-size", "grid or pyramid"],
    ),
    (
        ["search", "--data", "{data}", "--image-size", "native", "--grid", '{{"pool_size": [2]}}'],
        ["--grid", "pool_size=2", "--image-size native"],
    ),
    (["predict", "--model", "{model}", "{img}", "--image-size", "native"], ["unrecognized"]),
    (["frobnicate"], ["invalid choice"]),
    # Transformer options: the estimator checks them before any work (the folder is missing).
    (["evaluate", "--data", "{bad}/missing", "--pool-grid", "0"], ["--pool-grid:", "pool_grid"]),
    (["evaluate", "--data", "{bad}/missing", "--threshold", "-1"], ["--threshold:", "threshold"]),
    (["train", "--data", "{bad}/missing", "--out", "m.skops", "--n-filters", "0"], ["--n-filters"]),
    (["evaluate", "--data", "{bad}/missing", "--filter-size", "3x"], ["--filter-size", "HxW"]),
    (["evaluate", "--data", "{bad}/missing", "--pool-grid", "1,,2"], ["--pool-grid", "'1,,2'"]),
    (["evaluate", "--data", "{bad}/missing", "--pooling", "sum"], ["--pooling", "rms", "'sum'"]),
    (
        ["evaluate", "--data", "{data}", "--filter-init", "{bad}/no.npy"],
        ["--filter-init", "no such"],
    ),
    (["evaluate", "--data", "{data}", "--filter-init", "{bad}/empty.npy"], ["not a readable .npy"]),
    (
        ["search", "--data", "{bad}/missing", "--grid", '{{"pool_grid": [0]}}'],
        ["--grid", "pool_grid"],
    ),
]


def _format(args, bad_folders, trained, shapes):
    root, _ = bad_folders
    image = shapes / "circle" / "circle_000.jpg"
    return [a.format(bad=root, img=image, model=trained, data=shapes) for a in args]


def run_main(args, capsys):
    """``main`` in this process: the same code path as the console script, without start-up."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, captured.out, captured.err)


@pytest.mark.parametrize("args, fragments", ERRORS, ids=lambda v: " ".join(v)[:40])
def test_errors_are_one_line_and_status_2(
    args, fragments, bad_folders, trained, shapes, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    root, _ = bad_folders
    before = listing(root)
    assert_one_line_error(run_main(_format(args, bad_folders, trained, shapes), capsys), *fragments)
    assert listing(root) == before
    assert list(tmp_path.iterdir()) == []


def test_skip_errors_warns_and_goes_on(bad_folders, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root, _ = bad_folders
    args = ["evaluate", "--data", root / "corrupt", "--cv", "2", "--skip-errors", *SMALL]
    result = run_main(args, capsys)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "broken.jpg" in warnings[0]
    assert "6 images in 2 classes" in result.stderr
    assert set(_table(result.stdout)) == {"raw pixels", "conv features"}


# A missing folder, a corrupt image, an untrusted model and a usage error.
REAL_PROCESS_ERRORS = [ERRORS[0], ERRORS[3], ERRORS[8], (["evaluate"], ["--data"])]


@pytest.mark.parametrize("args, fragments", REAL_PROCESS_ERRORS, ids=lambda v: " ".join(v)[:40])
def test_errors_in_a_real_process(args, fragments, bad_folders, trained, shapes, tmp_path):
    assert_one_line_error(
        run(*_format(args, bad_folders, trained, shapes), cwd=tmp_path), *fragments
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "{data}", "--out", "{out}", *SMALL],
        ["search", "--data", "{data}", "--csv", "{out}", "--grid", '{{"n_filters": [2]}}'],
        ["show", "--model", "{model}", "--out", "{out}"],
    ],
    ids=["train", "search", "show"],
)
def test_existing_output_is_kept_without_force(
    command, trained, shapes, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "existing.png"
    out.write_bytes(b"precious")
    args = [a.format(data=shapes, model=trained, out=out) for a in command]
    assert_one_line_error(run_main(args, capsys), "existing.png exists", "--force")
    assert out.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [out]

    if command[0] == "show":
        result = run_main([*args, "--force"], capsys)
        assert result.returncode == 0, result.stderr
        assert out.read_bytes().startswith(b"\x89PNG")
        assert list(tmp_path.iterdir()) == [out]


def test_interrupted_save_leaves_no_partial_file(shapes, tmp_path, monkeypatch, capsys):
    def interrupted_dump(obj, file):
        Path(file).write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(sio, "dump", interrupted_dump)
    status = main(["train", "--data", str(shapes), "--out", str(tmp_path / "m.skops"), *SMALL])
    assert status == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# Values the old, hand-kept option table refused; each reaches the transformer.
TRANSFORMER_RUNS = [
    ["--filter-init", "kmeans", "--pooling", "rms"],
    ["--filter-init", "patches", "--pooling", "ppv", "--max-patches", "500"],
    ["--filter-init", "pca", "--no-whiten", "--pooling", "avg"],
    ["--pool-grid", "none", "--pool-size", "2"],
    ["--pool-grid", "1,2", "--no-patch-norm"],
    ["--activation", "two_sided", "--threshold", "0.1", "--pool-grid", "2x3"],
]


@pytest.mark.parametrize("options", TRANSFORMER_RUNS, ids=" ".join)
def test_evaluate_with_transformer_options(options, shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = run_main(["evaluate", "--data", shapes, "--cv", "2", *TINY, *options], capsys)
    assert result.returncode == 0, result.stderr
    assert set(_table(result.stdout)) == {"raw pixels", "conv features"}
    assert list(tmp_path.iterdir()) == []


def test_evaluate_with_pca_on_the_defaults(shapes, tmp_path, monkeypatch, capsys):
    """--filter-init pca alone (192 filters asked, 48 given at 4x4): it runs and says so."""
    monkeypatch.chdir(tmp_path)
    result = run_main(["evaluate", "--data", shapes, "--cv", "2", "--filter-init", "pca"], capsys)
    assert result.returncode == 0, result.stderr
    assert set(_table(result.stdout)) == {"raw pixels", "conv features"}
    assert "the bank holds 48 filters" in result.stderr


def test_evaluate_with_transformer_options_in_a_real_process(shapes, tmp_path):
    result = run(
        "evaluate", "--data", shapes, "--cv", "2", *TINY, *TRANSFORMER_RUNS[0], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert set(_table(result.stdout)) == {"raw pixels", "conv features"}


def test_train_fits_the_transformer_the_options_say(shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bank = np.random.default_rng(0).normal(size=(3, 2, 2)).astype(np.float32)
    np.save("bank.npy", bank)
    options = ["--filter-init", "bank.npy", "--n-filters", "3", "--pool-grid", "1,2x3"]
    options += ["--no-patch-norm", "--activation", "abs", "--pooling", "ppv", "--threshold", "0.5"]
    result = run_main(
        ["train", "--data", shapes, "--image-size", "12", "--out", "m.skops", *options], capsys
    )
    assert result.returncode == 0, result.stderr
    conv = sio.load("m.skops", trusted=sio.get_untrusted_types(file="m.skops"))["model"]["conv"]
    np.testing.assert_array_equal(conv.filters_[..., 0], bank)
    assert conv.pool_grid == [1, (2, 3)] and conv.output_shape_ == (1 + 6, 3)
    assert (conv.patch_norm, conv.activation, conv.pooling, conv.threshold) == (
        False,
        "abs",
        "ppv",
        0.5,
    )
    assert conv.random_state == 0  # the command line's default
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.npy", "m.skops"]


def test_pool_size_with_pool_grid_names_both_options(tmp_path, monkeypatch, capsys):
    try:
        ConvFeatureTransformer(pool_size=4, pool_grid=2)._check_params()
    except ValueError:
        pass
    else:
        pytest.skip("this ConvFeatureTransformer accepts both (pool_grid wins)")
    monkeypatch.chdir(tmp_path)
    result = run_main(
        ["evaluate", "--data", "missing", "--pool-size", "4", "--pool-grid", "2"], capsys
    )
    assert_one_line_error(result, "--pool-size, --pool-grid:")


def test_an_error_of_fit_names_the_options(shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.save("bank8.npy", np.random.default_rng(0).normal(size=(8, 3, 3)))
    args = ["train", "--data", shapes, "--out", "m.skops", *TINY, "--filter-init", "bank8.npy"]
    result = run_main(args, capsys)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("convfeat: error: --filter-init, --n-filters: ")
    assert "8 filters" in last
    assert [p.name for p in tmp_path.iterdir()] == ["bank8.npy"]


# Images kept at their own sizes (--image-size native). The shapes folder holds images of
# 32 to 72 pixels a side, of every aspect ratio in between.
NATIVE = ["--image-size", "native", "--n-filters", "4", "--filter-size", "3"]


def _size_range(files):
    """``'HxW to HxW'``: the smallest and the largest of ``files`` by number of pixels."""
    sizes = []
    for file in files:
        with Image.open(file) as image:
            sizes.append(image.size[::-1])
    sizes.sort(key=lambda size: size[0] * size[1])
    return f"{sizes[0][0]}x{sizes[0][1]} to {sizes[-1][0]}x{sizes[-1][1]}"


def test_evaluate_native_sizes_resizes_only_the_raw_pixels(shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = run_main(["evaluate", "--data", shapes, "--cv", "2", *NATIVE], capsys)
    assert result.returncode == 0, result.stderr
    assert set(_table(result.stdout)) == {"raw pixels (32x32)", "conv features"}
    assert "resized to 32x32" in result.stdout
    files = sorted(shapes.rglob("*.*"))
    assert f"kept at their own sizes (from {_size_range(files)}) grayscale" in result.stderr
    assert "resized to" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_evaluate_native_sizes_skips_an_unreadable_file_once(bad_folders, tmp_path, capsys):
    root, _ = bad_folders
    args = ["evaluate", "--data", root / "corrupt", "--cv", "2", "--skip-errors", *NATIVE]
    result = run_main(args, capsys)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "broken.jpg" in warnings[0]
    assert "6 images in 2 classes" in result.stderr


def test_search_native_sizes(shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grid = json.dumps({"pool_grid": [2, [1, 2]]})
    result = run_main(
        ["search", "--data", shapes, "--cv", "2", "--grid", grid, *NATIVE, "--max-side", "40"],
        capsys,
    )
    assert result.returncode == 0, result.stderr
    assert len([line for line in result.stdout.splitlines() if "+/-" in line]) == 2
    assert "kept at their own sizes, longer side at most 40 (from" in result.stderr


def test_native_sizes_that_do_not_fit_are_one_line(shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_limits, "available_memory", lambda: 10_000)
    result = run_main(["evaluate", "--data", shapes, *NATIVE], capsys)
    assert_one_line_error(result, "24 images at their own sizes", "would need", "max_side")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def trained_native(shapes, tmp_path_factory):
    """A model trained by the command line on images at their own sizes, at most 48 a side."""
    work = tmp_path_factory.mktemp("native_model")
    result = run(
        "train", "--data", shapes, "--out", "model.skops", *NATIVE, "--max-side", "48", cwd=work
    )
    assert result.returncode == 0, result.stderr
    assert "kept at their own sizes, longer side at most 48" in result.stderr
    return work / "model.skops"


def test_fixed_size_models_keep_the_first_format(trained):
    saved = sio.load(trained, trusted=sio.get_untrusted_types(file=trained))
    assert saved["format"] == MODEL_FORMAT
    assert saved["image_size"] == [12, 12] and "max_side" not in saved


def test_native_model_predicts_images_of_any_size(trained_native, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    files = []
    for shape, size in [("circle", (20, 90)), ("square", (300, 200)), ("triangle", (48, 48))]:
        files.append(tmp_path / f"{shape}.png")
        draw_shape(shape, rng, size=size).save(files[-1])
    result = run_main(["predict", "--model", trained_native, *files, "--json"], capsys)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)

    saved = sio.load(trained_native, trusted=sio.get_untrusted_types(file=trained_native))
    assert saved["format"] == NATIVE_MODEL_FORMAT
    assert saved["image_size"] is None and saved["max_side"] == 48
    images = load_images(files, image_size=None, max_side=48)
    assert [image.shape for image in images] == [(48, 11), (32, 48), (48, 48)]
    expected = saved["model"].predict_proba(images)
    for answer, proba in zip(answers, expected, strict=True):
        assert answer["label"] == saved["target_names"][int(np.argmax(proba))]
        assert answer["probability"] == pytest.approx(proba.max(), rel=1e-6)
    # One image alone gives the same answer as among others.
    alone = run_main(["predict", "--model", trained_native, files[1], "--json"], capsys)
    assert json.loads(alone.stdout)[0]["probability"] == pytest.approx(answers[1]["probability"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)


def test_native_model_shows_filters_and_feature_maps(trained_native, shapes, tmp_path, capsys):
    image = shapes / "square" / "square_000.jpg"
    for out, extra in [(tmp_path / "filters.png", []), (tmp_path / "maps.png", ["--image", image])]:
        result = run_main(["show", "--model", trained_native, "--out", out, *extra], capsys)
        assert result.returncode == 0, result.stderr
        with Image.open(out) as picture:
            assert picture.format == "PNG" and min(picture.size) > 50


def test_native_model_names_an_image_too_small_for_its_grid(
    trained_native, shapes, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((2, 40), dtype=np.uint8)).save("thin.png")
    fine = shapes / "circle" / "circle_000.jpg"
    result = run_main(["predict", "--model", trained_native, fine, "thin.png"], capsys)
    assert_one_line_error(result, "thin.png: ", "pool_grid")
    result = run_main(
        ["show", "--model", trained_native, "--out", "maps.png", "--image", "thin.png"], capsys
    )
    assert_one_line_error(result, "thin.png: ", "pool_grid")
    assert [p.name for p in tmp_path.iterdir()] == ["thin.png"]


def test_native_model_of_one_size_predicts_another(tmp_path, monkeypatch, capsys):
    # Photos of one camera all share a size; a new photo may not.
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(6)
    for shape in ("circle", "square"):
        (tmp_path / "same" / shape).mkdir(parents=True)
        for i in range(4):
            draw_shape(shape, rng, size=(40, 30)).save(tmp_path / "same" / shape / f"{i}.png")
    draw_shape("circle", rng, size=(50, 20)).save(tmp_path / "new.png")
    trained = run_main(["train", "--data", "same", "--out", "m.skops", *NATIVE], capsys)
    assert trained.returncode == 0, trained.stderr
    result = run_main(["predict", "--model", "m.skops", "new.png"], capsys)
    assert result.returncode == 0, result.stderr
