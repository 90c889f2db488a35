"""bench_real.py's ``--cv``: rows cross-validated on the training split alone, each image
predicted once by a model that never saw it, image by image as scikit-learn's own
``cross_val_predict`` with the same folds."""

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        import bench_real
    finally:
        sys.path.pop(0)
    return bench_real


def flat(X):
    return X.reshape(len(X), -1).astype(np.float32)


@pytest.fixture
def memorising_row(bench, monkeypatch):
    """A row that recalls its training images exactly: 1-nearest neighbour on the pixels."""
    rows = {
        "memory": lambda threads: (FunctionTransformer(flat), KNeighborsClassifier(1)),
        "class 0": lambda threads: (
            FunctionTransformer(flat),
            DummyClassifier(strategy="constant", constant=0),
        ),
    }
    monkeypatch.setattr(bench, "ROWS", rows)
    return "memory"


def test_each_image_is_predicted_once_by_a_model_that_never_saw_it(bench, memorising_row):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (90, 6, 6)).astype(np.uint8)
    y = rng.permutation(np.arange(90) % 3)  # labels unrelated to the images
    result = bench.cross_validate_row(memorising_row, 1, X, y, n_folds=3)
    # Having seen an image, 1-NN would recall its label: a fold that leaked would score 1.
    assert result["accuracy"] < 0.6
    assert result["errors"] == result["wrong"].sum() == sum(result["fold_errors"])
    assert len(result["fold_errors"]) == 3
    assert result["accuracy"] == pytest.approx(1 - result["errors"] / len(y))
    reference = cross_val_predict(
        make_pipeline(FunctionTransformer(flat), KNeighborsClassifier(1)),
        X,
        y,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    np.testing.assert_array_equal(result["wrong"], reference != y)


def test_rows_are_compared_image_by_image_with_the_first(bench, memorising_row, capsys):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (60, 5, 5)).astype(np.uint8)
    y = np.arange(60) % 2
    results = bench.cross_validate_rows([memorising_row, memorising_row], 1, X, y, 3)
    table = capsys.readouterr().out.splitlines()
    errors = results[memorising_row]["errors"]
    # The second row is the first again: it fixes none of its errors and makes none anew.
    assert table[-1].startswith(f"| memory | {1 - errors / 60:.5f} | {errors} |")
    assert "| 0 / 0 |" in table[-1]
    assert "wrong" not in results[memorising_row]  # what is saved is plain numbers


def test_fixed_and_new_errors_are_counted_image_by_image(bench, memorising_row, capsys):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, (60, 5, 5)).astype(np.uint8)
    y = rng.permutation(np.arange(60) % 2)
    bench.cross_validate_rows([memorising_row, "class 0"], 1, X, y, 3)
    table = capsys.readouterr().out.splitlines()
    first = bench.cross_validate_row(memorising_row, 1, X, y, 3)["wrong"]
    second = y != 0  # the constant row is wrong exactly on the other class
    fixed, new = np.sum(first & ~second), np.sum(second & ~first)
    assert fixed > 0 and new > 0
    assert table[-1].startswith(f"| class 0 | {1 - second.mean():.5f} | {second.sum()} |")
    assert f"| {fixed} / {new} |" in table[-1]
