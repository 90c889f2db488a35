"""The defaults' accuracy bar on scikit-learn's digits (issue 5)."""

import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_convfeat import ConvFeatureTransformer


def test_defaults_reach_99_percent_on_digits_without_scaler_or_convergence_warning():
    X, y = load_digits(return_X_y=True)
    model = make_pipeline(ConvFeatureTransformer(random_state=0), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=cv, error_score="raise")
    assert scores.mean() >= 0.99
