"""
================================================
Tuning the filter settings with GridSearchCV
================================================

:class:`~sklearn_convfeat.ConvFeatureTransformer` is an ordinary scikit-learn estimator, so
its parameters can be searched like any other: here the filter size and the pooling grid,
inside a pipeline, with :class:`~sklearn.model_selection.GridSearchCV`. A heatmap of the
cross-validated accuracy shows how the two interact.
"""

# %%
# The search
# ----------
# Parameters of a pipeline step are addressed as ``<step>__<parameter>``.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_convfeat import ConvFeatureTransformer

X, y = load_digits(return_X_y=True)
X, y = X[:900], y[:900]  # half of the digits keeps the example quick

model = make_pipeline(
    ConvFeatureTransformer(n_filters=16, random_state=0),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
filter_sizes = [2, 3, 5]
# One 2x2 grid, one 4x4 grid, or the 1 + 2x2 + 4x4 pyramid (a list of grids).
pool_grids = [2, 4, [1, 2, 4]]
grid = {
    "convfeaturetransformer__filter_size": filter_sizes,
    "convfeaturetransformer__pool_grid": pool_grids,
}
search = GridSearchCV(model, grid, cv=StratifiedKFold(3, shuffle=True, random_state=0))
search.fit(X, y)
print("best:", search.best_params_, f"accuracy {search.best_score_:.3f}")

# %%
# The scores as a heatmap
# -----------------------
# ``cv_results_`` lists the candidates in the order of the grid: filter size, then pooling
# grid (the keys are sorted), so the scores reshape into a table.
scores = search.cv_results_["mean_test_score"].reshape(len(filter_sizes), len(pool_grids))

fig, ax = plt.subplots(figsize=(5, 4))
image = ax.imshow(scores, cmap="viridis")
ax.set_xticks(np.arange(len(pool_grids)), labels=[str(g) for g in pool_grids])
ax.set_yticks(np.arange(len(filter_sizes)), labels=filter_sizes)
ax.set_xlabel("pool_grid")
ax.set_ylabel("filter_size")
for (i, j), score in np.ndenumerate(scores):
    ax.text(j, i, f"{score:.3f}", ha="center", va="center", color="white")
fig.colorbar(image, ax=ax, label="mean accuracy")
ax.set_title("Cross-validated accuracy")
plt.show()
