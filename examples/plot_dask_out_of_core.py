"""
=========================================
Out-of-core training on a Dask cluster
=========================================

When the images, or their features, do not fit in memory, keep them lazy: a dask array of
images, chunked along the samples, goes through
:class:`~sklearn_convfeat.ConvFeatureTransformer` as it is and comes out as a lazy dask array
of features, computed block by block on the workers. A linear model that learns incrementally,
here :class:`~sklearn.linear_model.SGDClassifier` with ``partial_fit``, then trains on one block
of features at a time: this process never holds more than a couple of blocks.

The images here are made on the workers, block by block, so that they never exist in full
anywhere: each is a short bar, horizontal, vertical or on one of the two diagonals (the class),
at a random place, in noise.

Install the extra with ``pip install "sklearn-convfeat[dask]"``.
"""

# %%
# Images made block by block
# --------------------------
# A block is a pure function of its seed, so any worker can make any block, and the labels come
# from the same call as the images.
import time

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster
from sklearn.linear_model import SGDClassifier

from sklearn_convfeat import ConvFeatureTransformer

SIDE = 28
NOISE = 0.3
BLOCK_SIZE = 2_000
N_TRAIN_BLOCKS = 16
N_TEST_BLOCKS = 2


def make_block(seed, n_images=BLOCK_SIZE, side=SIDE, bar=9):
    """``n_images`` noisy images of bars and their orientation (0: -, 1: |, 2: \\, 3: /)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n_images)
    images = rng.normal(0.0, NOISE, size=(n_images, side, side)).astype(np.float32)
    steps = np.arange(bar)
    row_steps = np.array([0, 1, 1, 1])[labels][:, None] * steps
    col_steps = np.array([1, 0, 1, -1])[labels][:, None] * steps
    top = rng.integers(0, side - bar, size=n_images)[:, None]
    left = rng.integers(bar, side - bar, size=n_images)[:, None]
    images[np.arange(n_images)[:, None], top + row_steps, left + col_steps] += 1.0
    return images, labels


def lazy_dataset(seeds):
    """Images ``(n, SIDE, SIDE)`` and labels ``(n,)`` as dask arrays, one chunk per seed."""
    blocks = [dask.delayed(make_block, nout=2)(seed) for seed in seeds]
    images = da.concatenate(
        [da.from_delayed(b[0], (BLOCK_SIZE, SIDE, SIDE), dtype=np.float32) for b in blocks]
    )
    labels = da.concatenate([da.from_delayed(b[1], (BLOCK_SIZE,), dtype=np.int64) for b in blocks])
    return images, labels


# %%
# Features on the cluster, a model trained block by block
# -------------------------------------------------------
# ``fit`` with a random filter bank reads only the shape of the dask array, and ``transform``
# only builds the graph. Blocks of features are computed on the workers a few at a time (the
# next blocks are computed while the model learns from the current one), and each is dropped
# once the model has seen it.
#
# Each block is computed with ``optimize_graph=False``: its tasks keep the keys of the whole
# arrays. Optimised one by one, the graphs of successive blocks got fused tasks with clashing
# keys (dask 2026.8), which the scheduler cannot tell apart.


def train_block_by_block(client, conv, images, labels, classes, n_epochs=2, lookahead=2):
    features = conv.transform(images)
    model = SGDClassifier(loss="log_loss", alpha=1e-4, random_state=0)
    n_blocks = features.numblocks[0]
    order = [block for _ in range(n_epochs) for block in range(n_blocks)]

    def submit(block):
        return client.compute([features.blocks[block], labels.blocks[block]], optimize_graph=False)

    pending = [submit(block) for block in order[:lookahead]]
    for position in range(len(order)):
        X_block, y_block = client.gather(pending.pop(0))
        if position + lookahead < len(order):
            pending.append(submit(order[position + lookahead]))
        model.partial_fit(X_block, y_block, classes=classes)
    return model


def score_block_by_block(client, conv, model, images, labels):
    features = conv.transform(images)
    n_correct = 0
    for block in range(features.numblocks[0]):
        X_block, y_block = client.gather(
            client.compute([features.blocks[block], labels.blocks[block]], optimize_graph=False)
        )
        n_correct += int(np.sum(model.predict(X_block) == y_block))
    return n_correct / labels.shape[0]


# %%
# Run it on a local cluster
# -------------------------
# Two worker processes here; the same code runs on any Dask cluster. The ``__main__`` guard
# lets the worker processes start this file without starting clusters of their own.

if __name__ == "__main__":
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        train_images, train_labels = lazy_dataset(range(N_TRAIN_BLOCKS))
        test_images, test_labels = lazy_dataset(
            range(N_TRAIN_BLOCKS, N_TRAIN_BLOCKS + N_TEST_BLOCKS)
        )
        conv = ConvFeatureTransformer(
            n_filters=16,
            filter_size=7,
            filter_init="gabor",
            activation="abs",
            pooling="max",
            pool_grid=2,
            random_state=0,
        ).fit(train_images)
        start = time.perf_counter()
        model = train_block_by_block(client, conv, train_images, train_labels, np.arange(4))
        seconds = time.perf_counter() - start
        accuracy = score_block_by_block(client, conv, model, test_images, test_labels)
        print(
            f"{train_images.shape[0]} training images ({train_images.nbytes / 2**20:.0f} MiB), "
            f"{conv.transform(train_images).shape[1]} features each, 2 epochs in "
            f"{seconds:.1f} s; test accuracy {accuracy:.3f}"
        )
