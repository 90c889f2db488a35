"""
==============================================
Convolutional features against raw pixels
==============================================

The digits bundled with scikit-learn are 8x8 grey images. A logistic regression on the raw
pixels is a strong baseline; the same classifier on the features of
:class:`~sklearn_convfeat.ConvFeatureTransformer` (random filters, ReLU, max pooling) sees
local strokes rather than single pixels. We compare both by cross-validation, then look at
where the convolutional model still errs with a confusion matrix.
"""

# %%
# Two pipelines, one classifier
# -----------------------------
# Both pipelines scale their inputs and end with the same logistic regression; they only
# differ by the convolutional features.
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_convfeat import ConvFeatureTransformer

X, y = load_digits(return_X_y=True)

raw_pixels = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
conv_features = make_pipeline(
    ConvFeatureTransformer(random_state=0), StandardScaler(), LogisticRegression(max_iter=1000)
)

cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
for name, model in [("raw pixels", raw_pixels), ("conv features", conv_features)]:
    scores = cross_val_score(model, X, y, cv=cv)
    print(f"{name:>14}: accuracy {scores.mean():.3f} +/- {scores.std():.3f}")

# %%
# Where the errors are
# --------------------
# A held-out quarter of the digits, predicted by the convolutional pipeline fitted on the
# rest. The diagonal holds the correct predictions.
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
conv_features.fit(X_train, y_train)

fig, ax = plt.subplots(figsize=(6, 6))
ConfusionMatrixDisplay.from_estimator(conv_features, X_test, y_test, ax=ax, colorbar=False)
ax.set_title(f"Convolutional features: {conv_features.score(X_test, y_test):.3f} accuracy")
plt.show()
