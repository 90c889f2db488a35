"""Draw the README's pictures: docs/images/filter_bank.png and docs/images/feature_maps.png.

Run from the repository root: ``python docs/make_images.py`` (needs the ``all`` extra).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_sample_image  # noqa: E402

from sklearn_convfeat import ConvFeatureTransformer  # noqa: E402
from sklearn_convfeat.plotting import FeatureMapsDisplay, FilterBankDisplay  # noqa: E402

OUT = Path(__file__).resolve().parent / "images"

# A grey, downsampled photo; a Gabor bank large enough to show its orientations and scales.
photo = load_sample_image("china.jpg").mean(axis=2)[::4, ::4] / 255
bank = ConvFeatureTransformer(
    n_filters=32, filter_size=11, filter_init="gabor", activation="abs", padding="same"
).fit(photo[None])

display = FilterBankDisplay.from_estimator(bank, n_cols=8)
display.figure_.suptitle("A Gabor filter bank (filter_init='gabor', filter_size=11)")
display.figure_.savefig(OUT / "filter_bank.png", dpi=60)

display = FeatureMapsDisplay.from_estimator(bank, photo, max_maps=5, n_cols=3)
display.figure_.set_size_inches(7.5, 3.6)
display.figure_.suptitle("A photo and the maps of five filters (activation='abs')")
display.figure_.savefig(OUT / "feature_maps.png", dpi=70)
plt.close("all")
