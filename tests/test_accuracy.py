"""The defaults' accuracy bars: scikit-learn's digits (issue 5) and the handwriting stand-in
(issue 12)."""

import sys
import warnings
from pathlib import Path

import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_convfeat import ConvFeatureTransformer

# The level the defaults reached on the subsets below (issue 12): plain 0.9933, deformed
# 0.8520 with one BLAS thread and the CPU's own kernel; 0.9917 and 0.8503 with the forced
# Haswell kernel and two threads (LogisticRegression stops on another path). The bars leave
# 0.3 and 1.0 points below the first. The defaults of 27 Nov (no antialias, unbalanced
# levels) scored 0.9917 and 0.8297 (0.9894 and 0.8253), those before the issue 0.9861 and
# 0.7340.
HANDWRITING_BAR = 0.9903
DEFORMED_BAR = 0.8420


def test_defaults_reach_99_percent_on_digits_without_scaler_or_convergence_warning():
    X, y = load_digits(return_X_y=True)
    model = make_pipeline(ConvFeatureTransformer(random_state=0), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=cv, error_score="raise")
    assert scores.mean() >= 0.99


def _handwriting(deformed):
    """One drawing of each of the 1797 digits at 28x28 (the benchmark's handwriting stand-in,
    ``benchmarks/accuracy_datasets.py``: made offline from scikit-learn's digits)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        import accuracy_datasets
    finally:
        sys.path.pop(0)
    make = accuracy_datasets.handwriting_deformed if deformed else accuracy_datasets.handwriting
    X, y, _ = make(random_state=0, n_draws=1)
    return X, y


@pytest.mark.parametrize("deformed, bar", [(False, HANDWRITING_BAR), (True, DEFORMED_BAR)])
def test_defaults_hold_their_level_on_the_handwriting_stand_in(deformed, bar):
    """3-fold CV on one drawing of each digit (a cheap subset of the benchmark's sets, on which
    the defaults match or beat the scattering transform: benchmarks/ACCURACY.md)."""
    X, y = _handwriting(deformed)
    model = make_pipeline(ConvFeatureTransformer(random_state=0), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=cv, error_score="raise")
    assert scores.mean() >= bar
