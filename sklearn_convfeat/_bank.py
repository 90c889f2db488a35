"""The filter bank of a fit: from a spec, the training images and a random state to the
filters, their biases and the patch normalisation's constants.

Pure functions; nothing here knows about estimators. The filters come from a named bank
(random or Gabor, :data:`~sklearn_convfeat._filters.FILTER_BANKS`; or learnt from patches,
:data:`~sklearn_convfeat._filters.PATCH_BANKS`) or are given; each group of filters of one
dilation (``spec.dilations``) is learnt, and normalised, on the patches of its own footprint.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from ._filters import FILTER_BANKS, PATCH_BANKS
from ._patches import (
    dilated_taps,
    fold_preprocessing,
    normalize_patches,
    patch_norm_eps,
    sample_patches,
    zca_whitening,
)
from ._shapes import footprint, smoothing_sigma


@dataclass(frozen=True)
class Bank:
    """A fitted bank: ``filters`` float32 ``(n_filters, h, w, C)``, applied to the raw (or,
    with ``spec.patch_norm``, patch-normalised) images; ``bias`` float32 ``(n_filters,)``;
    ``eps``, the variance added to each patch's, one per group of
    ``spec.dilations`` (None without ``spec.patch_norm``); ``dilations``, the
    ``((dilation, n_filters), ...)`` groups it holds: ``spec.dilations``, but for a bank
    with fewer filters to give than asked for (``'pca'``)."""

    filters: np.ndarray
    bias: np.ndarray
    eps: tuple | None
    dilations: tuple


def make_bank(spec, filter_init, n_channels, training_images, random_state, *, whiten, max_patches):
    """The :class:`Bank` of ``spec`` (a :class:`~sklearn_convfeat._spec.FeatureSpec`).

    Parameters
    ----------
    spec : FeatureSpec
    filter_init : str or ndarray
        A key of ``FILTER_BANKS`` or ``PATCH_BANKS``, or filters already checked
        (:func:`~sklearn_convfeat._filters.check_filter_array`).
    n_channels : int
    training_images : callable
        Returns the training images, ``(n, H, W, C)`` or a list of ``(H_i, W_i, C)``; called
        only when the bank reads patches (learnt banks, ``patch_norm``), after a random bank
        is drawn.
    random_state : RandomState
        Draws, in this order, a random bank, then each group's sample of patches and
        learnt filters.
    whiten, max_patches : bool, int
        As the estimator's parameters.
    """
    n_filters, filter_size = spec.n_filters, spec.filter_size
    learnt = isinstance(filter_init, str) and filter_init in PATCH_BANKS
    groups = spec.dilations
    filters = None
    if isinstance(filter_init, str) and filter_init in FILTER_BANKS:
        filters = FILTER_BANKS[filter_init](n_filters, filter_size, n_channels, random_state)
    elif not isinstance(filter_init, str):
        filters = filter_init
    bias = np.zeros(n_filters)
    eps = None
    if spec.patch_norm or learnt:
        images = training_images()
        eps, banks = [], []
        for dilation, count in spec.dilations:
            # Patches of the footprint, normalised as a whole (a local contrast normalisation
            # at the scale the filter sees), then the values under its taps.
            span = footprint(filter_size, dilation)
            sigma = smoothing_sigma(dilation) if spec.antialias else 0.0
            patches = sample_patches(images, span, max_patches, random_state, sigma)
            if spec.patch_norm:
                eps.append(patch_norm_eps(patches))
                patches = normalize_patches(patches, eps[-1])
            taps = dilated_taps(patches, span, dilation)
            if learnt:
                banks.append(learn_bank(filter_init, taps, count, random_state, whiten))
        eps = tuple(eps) if spec.patch_norm else None
        if learnt:
            filters = np.concatenate([bank for bank, _ in banks])
            filters = filters.reshape(-1, *filter_size, n_channels)
            bias = np.concatenate([bank_bias for _, bank_bias in banks])
            groups = held_groups(spec, filter_init, [len(bank) for bank, _ in banks])
    return Bank(np.asarray(filters, dtype=np.float32), bias.astype(np.float32), eps, groups)


def held_groups(spec, filter_init, counts):
    """``spec.dilations`` with the ``counts`` of filters that their learnt banks hold: fewer
    than asked when a bank has a natural maximum (``'pca'``), said by a warning."""
    held = tuple(
        (dilation, count) for (dilation, _), count in zip(spec.dilations, counts, strict=True)
    )
    if held != spec.dilations:
        n_filters = sum(counts)
        warnings.warn(
            f"filter_init={filter_init!r} gives at most one filter per value under a "
            f"filter's taps ({' x '.join(map(str, spec.filter_size))} x channels) and per "
            f"patch sampled, for each dilation: the bank holds {n_filters} filters "
            f"({', '.join(f'{n} at dilation {d}' for d, n in held)}) of the "
            f"n_filters={spec.n_filters} asked for, and n_filters_ says so. Set "
            f"n_filters={n_filters} (or fewer) for exactly this bank without this warning.",
            UserWarning,
            stacklevel=4,
        )
    return held


def learn_bank(filter_init, patches, n_filters, random_state, whiten):
    """``n_filters`` flat filters and their biases on raw images, for the bank
    ``PATCH_BANKS[filter_init]`` learnt on ``patches`` centred and, with ``whiten``,
    ZCA-whitened (folded into the filters: :func:`fold_preprocessing`)."""
    if whiten:
        mean, whitening = zca_whitening(patches)
        preprocessed = (patches - mean) @ whitening
    else:
        mean, whitening = patches.mean(axis=0), None
        preprocessed = patches - mean
    bank = PATCH_BANKS[filter_init](preprocessed, n_filters, random_state)
    return fold_preprocessing(bank, mean, whitening)
