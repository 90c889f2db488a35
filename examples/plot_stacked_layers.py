"""
========================================
Stacking two convolutional layers
========================================

With ``flatten=False``, :class:`~sklearn_convfeat.ConvFeatureTransformer` returns its
features as images ``(n_samples, rows, cols, n_filters)``, so another transformer can follow
it in a pipeline: its filters then span every map of the first layer. The second layer sees
combinations of the first layer's responses over a wider area of the image.
"""

# %%
# One layer and two layers
# ------------------------
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat.plotting import FilterBankDisplay

X, y = load_digits(return_X_y=True)
cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)

one_layer = make_pipeline(
    ConvFeatureTransformer(n_filters=16, filter_size=3, pool_size=2, random_state=0),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
two_layers = make_pipeline(
    ConvFeatureTransformer(
        n_filters=16, filter_size=3, padding="same", pool_size=1, flatten=False, random_state=0
    ),
    ConvFeatureTransformer(n_filters=32, filter_size=3, pool_size=2, random_state=1),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
for name, model in [("one layer", one_layer), ("two layers", two_layers)]:
    scores = cross_val_score(model, X, y, cv=cv)
    print(f"{name:>10}: accuracy {scores.mean():.3f} +/- {scores.std():.3f}")

# %%
# The shapes through the layers
# -----------------------------
two_layers.fit(X, y)
first, second = two_layers[0], two_layers[1]
print("first layer:  images", first.image_shape_, "-> maps", first.output_shape_)
print("second layer: images", second.image_shape_, "-> features", second.output_shape_)

# %%
# The second layer's filters have one channel per filter of the first layer; the display
# shows their first three channels as colours.
FilterBankDisplay.from_estimator(second, max_filters=16)
plt.show()
