"""
========================================
What the filters are and what they see
========================================

:class:`~sklearn_convfeat.plotting.FilterBankDisplay` draws a fitted filter bank and
:class:`~sklearn_convfeat.plotting.FeatureMapsDisplay` draws one image next to its feature
maps: where each filter responds, after the activation and before pooling. Random Gaussian
filters look like noise; a Gabor bank is made of oriented edges and bars at a few scales,
and its maps light up on the strokes of the matching orientation.
"""

# %%
# Two filter banks
# ----------------
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits, load_sample_image

from sklearn_convfeat import ConvFeatureTransformer
from sklearn_convfeat.plotting import FeatureMapsDisplay, FilterBankDisplay

X, y = load_digits(return_X_y=True)

gaussian = ConvFeatureTransformer(n_filters=16, filter_size=5, random_state=0).fit(X)
gabor = ConvFeatureTransformer(
    n_filters=16, filter_size=5, filter_init="gabor", padding="same", random_state=0
).fit(X)

fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
FilterBankDisplay.from_estimator(gaussian, ax=left)
FilterBankDisplay.from_estimator(gabor, ax=right)
left.set_title("gaussian")
right.set_title("gabor")

# %%
# Feature maps of a digit
# -----------------------
# The first panel is the image; each other panel is one filter's map.
display = FeatureMapsDisplay.from_estimator(gabor, X[0], max_maps=8)
display.figure_.suptitle(f"A {y[0]} through the Gabor bank")

# %%
# Feature maps of a photo
# -----------------------
# Any image works: here a grey, downsampled crop of one of scikit-learn's sample photos,
# through larger Gabor filters.
photo = load_sample_image("china.jpg").mean(axis=2)[::4, ::4] / 255
photo_bank = ConvFeatureTransformer(
    n_filters=16, filter_size=9, filter_init="gabor", padding="same"
).fit(photo[None])
FeatureMapsDisplay.from_estimator(photo_bank, photo, max_maps=8, n_cols=3)
plt.show()
