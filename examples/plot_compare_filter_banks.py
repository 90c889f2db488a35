"""
=========================================
Comparing filter banks: accuracy and time
=========================================

A :class:`~sklearn_convfeat.ConvFeatureTransformer` followed by a logistic regression, on
scikit-learn's 8x8 handwritten digits, with each filter bank: random (``'gaussian'``,
``'uniform'``), hand-made (``'gabor'``) and learnt from the images' patches (``'patches'``,
``'kmeans'``, ``'pca'``). Everything else stays at the transformer's defaults, and raw pixels
give the baseline. Each bank is scored by 3-fold cross-validation, and we plot the accuracy
against the time of one fit and transform of the whole set.
"""

# %%
# Score each bank
# ---------------
import time

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_convfeat import ConvFeatureTransformer

X, y = load_digits(return_X_y=True)
cv = StratifiedKFold(3, shuffle=True, random_state=0)

# PCA gives at most one filter per pixel of a patch (16 for the default 4x4 filters), and
# whitening would leave it no direction to prefer.
banks = {
    "gaussian": {},
    "uniform": {},
    "gabor": {},
    "patches": {},
    "kmeans": {},
    "pca": {"n_filters": 16, "whiten": False},
}
results = {}
for bank, params in banks.items():
    conv = ConvFeatureTransformer(filter_init=bank, random_state=0, **params)
    start = time.perf_counter()
    conv.fit(X).transform(X)
    seconds = time.perf_counter() - start
    model = make_pipeline(conv, LogisticRegression(max_iter=1000))
    results[bank] = (cross_val_score(model, X, y, cv=cv).mean(), seconds)
    print(f"{bank:>9}: accuracy {results[bank][0]:.4f}, fit + transform {seconds:.2f} s")

raw_pixels = cross_val_score(LogisticRegression(max_iter=1000), X / 16, y, cv=cv).mean()
print(f"raw pixels: accuracy {raw_pixels:.4f}")

# %%
# Accuracy against time
# ---------------------
fig, ax = plt.subplots(figsize=(6, 4))
for bank, (accuracy, seconds) in results.items():
    ax.scatter(seconds, accuracy)
    ax.annotate(bank, (seconds, accuracy), textcoords="offset points", xytext=(5, 5))
ax.axhline(raw_pixels, color="gray", linestyle="--", label="raw pixels")
ax.set_xlabel("fit + transform of the 1797 digits (s)")
ax.set_ylabel("3-fold accuracy")
ax.set_title("Filter banks on the digits")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
