"""
=====================================================
Is it the pagoda or the flower? Classifying patches
=====================================================

The blog post this project grew from ends with "load cat.jpg, extract features, classify
it". Done properly, that needs labelled images, a held-out test set and a probability. Here
the labelled images are small patches of scikit-learn's two sample photos, ``china.jpg`` and
``flower.jpg``: the task is to tell which photo a patch comes from.

Patches of one photo overlap, so a random train/test split would test on pixels seen in
training. We train on patches of the left half of each photo and test on patches of the
right half, which the model never saw.
"""

# %%
# Patches from the two photos
# ---------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_sample_images
from sklearn.feature_extraction.image import extract_patches_2d
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_convfeat import ConvFeatureTransformer

photos = load_sample_images()
names = [name.rsplit("/", 1)[-1].removesuffix(".jpg") for name in photos.filenames]
patch_size = (24, 24)


def patches(half, n_patches, seed):
    """RGB patches in [0, 1] of one half of each photo, with the photo's index as label."""
    X, y = [], []
    for label, photo in enumerate(photos.images):
        middle = photo.shape[1] // 2
        region = photo[:, :middle] if half == "left" else photo[:, middle:]
        found = extract_patches_2d(region, patch_size, max_patches=n_patches, random_state=seed)
        X.append(found / 255)
        y.append(np.full(n_patches, label))
    return np.concatenate(X).astype(np.float32), np.concatenate(y)


X_train, y_train = patches("left", 300, seed=0)
X_test, y_test = patches("right", 200, seed=1)
print("training patches:", X_train.shape, "test patches:", X_test.shape)

# %%
# Features and classifier
# -----------------------
# The patches are colour images ``(n, 24, 24, 3)``, which the transformer takes as they are.
model = make_pipeline(
    ConvFeatureTransformer(n_filters=32, filter_size=5, random_state=0),
    StandardScaler(),
    LogisticRegression(max_iter=1000, C=0.1),
)
model.fit(X_train, y_train)
print(f"accuracy on patches of the unseen halves: {model.score(X_test, y_test):.3f}")

# %%
# New patches
# -----------
# Finally, the question of the blog post for single new images: for each photo, the most
# textured patch of its unseen half. The model gives a probability for each photo.
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for label, ax in enumerate(axes):
    candidates = X_test[y_test == label]
    new_patch = candidates[np.argmax(candidates.std(axis=(1, 2, 3)))]
    probabilities = model.predict_proba(new_patch[np.newaxis])[0]
    guess = names[np.argmax(probabilities)]
    print(
        f"a patch of {names[label]}: "
        + ", ".join(f"P({name}) = {p:.3f}" for name, p in zip(names, probabilities, strict=True))
    )
    ax.imshow(new_patch)
    ax.set_title(f"{guess}? {probabilities.max():.0%}")
    ax.set_axis_off()
plt.show()
