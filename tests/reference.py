"""An independent, slow reference: the seed's loop done right.

A plain ``scipy.signal.correlate2d`` per image, filter and channel (or, with a patch
normalisation, every patch cut out of the zero-padded image, normalised and multiplied with the
filters), then the bias, the activation and the pooling written out with Python loops. Shares
no code with the package.
"""

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import correlate2d


def _relu(v):
    return np.maximum(v, 0.0)


# Each activation of z, with the threshold t: a list of maps, concatenated along the maps axis.
REFERENCE_ACTIVATIONS = {
    "relu": lambda z, t: [_relu(z - t)],
    "abs": lambda z, t: [_relu(np.abs(z) - t)],
    "tanh": lambda z, t: [np.tanh(z - t)],
    "identity": lambda z, t: [z - t],
    "two_sided": lambda z, t: [_relu(z - t), _relu(-z - t)],
}

# Each pooling mode, over the values of one region: (n_values, n_maps) -> (n_maps,).
REFERENCE_POOLINGS = {
    "max": lambda r: r.max(axis=0),
    "avg": lambda r: r.mean(axis=0),
    "rms": lambda r: np.sqrt(np.mean(r**2, axis=0)),
    "ppv": lambda r: np.mean(r > 0, axis=0),
}


def _pad(image, size, padding):
    """Zero padding of scipy.signal.correlate2d's 'same' mode: (k - 1) // 2 before, k // 2 after."""
    if padding == "valid":
        return image
    (rows, cols) = size
    return np.pad(image, (((rows - 1) // 2, rows // 2), ((cols - 1) // 2, cols // 2), (0, 0)))


def _footprint_filters(filters, dilations):
    """Each filter at its dilation written out as a filter of the largest footprint: its taps
    ``dilation`` apart, zeros between them, centred as (F - 1) // 2 in a footprint of F."""
    n, rows, cols, channels = filters.shape
    largest = max(dilations)
    size = ((rows - 1) * largest + 1, (cols - 1) * largest + 1)
    out = np.zeros((n, *size, channels))
    for f, d in enumerate(dilations):
        spans = ((rows - 1) * d + 1, (cols - 1) * d + 1)
        top, left = (
            (whole - 1) // 2 - (span - 1) // 2 for whole, span in zip(size, spans, strict=True)
        )
        out[f, top : top + spans[0] : d, left : left + spans[1] : d] = filters[f]
    return out


def _images_read(image, dilations, antialias):
    """The image each filter reads: with ``antialias``, a filter at dilation d > 1 reads the
    whole image smoothed by a Gaussian of standard deviation d / 3, edges repeated."""
    if not antialias:
        return [image] * len(dilations)
    smoothed = {
        d: gaussian_filter(image, sigma=(d / 3, d / 3, 0), mode="nearest") if d > 1 else image
        for d in set(dilations)
    }
    return [smoothed[d] for d in dilations]


def reference_maps(
    image, filters, stride, padding, patch_norm_eps=None, dilations=None, antialias=False
):
    """Maps ``(rows, cols, n_filters)`` of one ``(H, W, C)`` image, in float64.

    With ``patch_norm_eps`` (one value, or one per filter), every patch is brought to zero mean
    and unit variance (over the rows, columns and channels of the filter's footprint, the
    pixels between a dilated filter's taps included; ``patch_norm_eps`` added to the variance)
    before it meets the filter. ``dilations`` (one
    per filter) spaces each filter's taps; all filters are centred on the positions of the
    most dilated one; with ``antialias``, the dilated ones read the image smoothed
    (:func:`_images_read`).
    """
    image = image.astype(np.float64)
    dilations = [1] * len(filters) if dilations is None else [int(d) for d in dilations]
    images = _images_read(image, dilations, antialias)
    taps = filters.astype(np.float64)
    filters = _footprint_filters(taps, dilations)
    if patch_norm_eps is None:
        maps = []
        for filt, image in zip(filters, images, strict=True):
            total = sum(
                correlate2d(image[:, :, c], filt[:, :, c], mode=padding)
                for c in range(image.shape[2])
            )
            maps.append(total[::stride, ::stride])
        return np.stack(maps, axis=-1)
    size = filters.shape[1:3]
    eps = np.broadcast_to(np.asarray(patch_norm_eps, dtype=np.float64), (len(filters),))
    padded = [_pad(image, size, padding) for image in images]
    rows = range(0, padded[0].shape[0] - size[0] + 1, stride)
    cols = range(0, padded[0].shape[1] - size[1] + 1, stride)
    maps = np.empty((len(rows), len(cols), len(filters)))
    for i, y in enumerate(rows):
        for j, x in enumerate(cols):
            for f in range(len(filters)):
                window = padded[f][y : y + size[0], x : x + size[1]]
                # The values under the filter's taps (the non-zero places of a dilated one).
                d = dilations[f]
                spans = [(t - 1) * d + 1 for t in taps.shape[1:3]]
                top, left = (
                    (whole - 1) // 2 - (span - 1) // 2
                    for whole, span in zip(size, spans, strict=True)
                )
                # Normalised over its whole footprint, then the values under its taps.
                patch = window[top : top + spans[0], left : left + spans[1]]
                patch = (patch - patch.mean()) / np.sqrt(patch.var() + eps[f])
                maps[i, j, f] = taps[f].ravel() @ patch[::d, ::d].ravel()
    return maps


def _regions(length, pool_size, grid):
    if grid is not None:
        n = min(grid, length)
        return [((i * length) // n, ((i + 1) * length) // n) for i in range(n)]
    size = min(pool_size, length)
    return [(i * size, (i + 1) * size) for i in range(length // size)]


def _pool(maps, pooling, pool_size, grid):
    """``(rows, cols, n_maps)`` maps pooled over windows of ``pool_size`` or onto ``grid``."""
    sizes = (None, None) if grid is not None else pool_size
    grid = (None, None) if grid is None else grid
    row_regions = _regions(maps.shape[0], sizes[0], grid[0])
    col_regions = _regions(maps.shape[1], sizes[1], grid[1])
    pooled = np.empty((len(row_regions), len(col_regions), maps.shape[2]))
    for i, (r0, r1) in enumerate(row_regions):
        for j, (c0, c1) in enumerate(col_regions):
            region = maps[r0:r1, c0:c1].reshape(-1, maps.shape[2])
            pooled[i, j] = REFERENCE_POOLINGS[pooling](region)
    return pooled


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
    bias=None,
    patch_norm_eps=None,
    threshold=0.0,
    dilations=None,
    antialias=False,
    balance_levels=False,
):
    """Features of ``(n, H, W, C)`` images, in float64.

    ``(n, out_rows, out_cols, n_maps)`` for windows of ``pool_size`` or one grid
    ``pool_grid=(rows, cols)``; ``(n, n_regions, n_maps)`` for a pyramid, a list of
    ``(rows, cols)`` grids whose regions are concatenated grid after grid. ``bias`` is added
    to each filter's map before the activation; ``dilations`` (one per filter) spaces each
    filter's taps and ``antialias`` smooths the image they read (:func:`reference_maps`).
    With ``balance_levels``, a pyramid's level of ``n`` of the ``N`` regions of ``L`` levels
    is multiplied by ``sqrt(N / (L * n))``: each level's squared features then sum ``N / L``
    times a region's share, the same for every level.
    """
    out = []
    for image in images:
        z = reference_maps(image, filters, stride, padding, patch_norm_eps, dilations, antialias)
        if bias is not None:
            z = z + np.asarray(bias, dtype=np.float64)
        maps = np.concatenate(REFERENCE_ACTIVATIONS[activation](z, threshold), axis=-1)
        if isinstance(pool_grid, list):
            levels = [
                _pool(maps, pooling, None, grid).reshape(-1, maps.shape[2]) for grid in pool_grid
            ]
            if balance_levels:
                total = sum(len(level) for level in levels)
                levels = [level * np.sqrt(total / (len(levels) * len(level))) for level in levels]
            out.append(np.concatenate(levels))
        else:
            out.append(_pool(maps, pooling, pool_size, pool_grid))
    return np.stack(out)
