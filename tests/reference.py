"""An independent, slow reference: the seed's loop done right.

A plain ``scipy.signal.correlate2d`` per image, filter and channel, then the activation and the
pooling written out with Python loops. Shares no code with the package.
"""

import numpy as np
from scipy.signal import correlate2d

REFERENCE_ACTIVATIONS = {
    "relu": lambda v: np.maximum(v, 0.0),
    "abs": np.abs,
    "tanh": np.tanh,
    "identity": lambda v: v,
}


def reference_maps(image, filters, stride, padding):
    """Maps ``(rows, cols, n_filters)`` of one ``(H, W, C)`` image, in float64."""
    maps = []
    for filt in filters:
        total = sum(
            correlate2d(
                image[:, :, c].astype(np.float64), filt[:, :, c].astype(np.float64), mode=padding
            )
            for c in range(image.shape[2])
        )
        maps.append(total[::stride, ::stride])
    return np.stack(maps, axis=-1)


def _regions(length, pool_size, grid):
    if grid is not None:
        n = min(grid, length)
        return [((i * length) // n, ((i + 1) * length) // n) for i in range(n)]
    size = min(pool_size, length)
    return [(i * size, (i + 1) * size) for i in range(length // size)]


def reference_features(
    images,
    filters,
    *,
    stride=1,
    padding="valid",
    activation="relu",
    pooling="max",
    pool_size=(1, 1),
    pool_grid=None,
):
    """Features ``(n, out_rows, out_cols, n_filters)`` of ``(n, H, W, C)`` images."""
    grid = (None, None) if pool_grid is None else pool_grid
    out = []
    for image in images:
        maps = REFERENCE_ACTIVATIONS[activation](reference_maps(image, filters, stride, padding))
        row_regions = _regions(maps.shape[0], pool_size[0], grid[0])
        col_regions = _regions(maps.shape[1], pool_size[1], grid[1])
        pooled = np.empty((len(row_regions), len(col_regions), maps.shape[2]))
        for i, (r0, r1) in enumerate(row_regions):
            for j, (c0, c1) in enumerate(col_regions):
                region = maps[r0:r1, c0:c1]
                pooled[i, j] = (
                    region.max(axis=(0, 1)) if pooling == "max" else region.mean(axis=(0, 1))
                )
        out.append(pooled)
    return np.stack(out)
