"""FID and KID: Fréchet distance of feature Gaussians, polynomial-kernel MMD, and a batch-to-score helper.

Statistics files are ``.npz`` with float arrays ``mu`` (D,) and ``sigma`` (D,D), the format of pytorch-fid
and GAN Compression, so their precomputed real statistics can be used as they are.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Union

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from ganslim.atomic import atomic_write
from ganslim.errors import GanslimError, first_line

Statistics = tuple[np.ndarray, np.ndarray]
"""(mu (D,), sigma (D,D)) of a set of features."""

RealData = Union[str, os.PathLike, Statistics, np.ndarray, Iterable[Tensor]]


def _as_numpy(features: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(features, Tensor):
        return features.detach().cpu().numpy()
    return np.asarray(features)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, with the matrix square root from
    ``scipy.linalg.sqrtm``. As in pytorch-fid: when the product is singular enough that the root is not
    finite, ``eps`` is added to both diagonals and the root retaken; a complex root whose diagonal has
    imaginary parts below 1e-3 is replaced by its real part.

    Args:
        mu1, mu2: (D,) means. sigma1, sigma2: (D,D) covariances.

    Raises:
        GanslimError: shapes disagree, or the root keeps a large imaginary part (covariances estimated
            from far too few samples).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise GanslimError(
            f"frechet_distance: statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}; compute both with the same feature extractor"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.max(np.abs(np.diagonal(covmean).imag))
        if imaginary > 1e-3:
            raise GanslimError(
                f"frechet_distance: the covariance square root has an imaginary part of {imaginary:.3g}; "
                "use more images (well over the feature dimension) for both sets"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features: Tensor | np.ndarray) -> Statistics:
    """Mean and covariance of (N,D) features -> (mu (D,), sigma (D,D)) float64; sigma uses N - 1."""
    x = _as_numpy(features).astype(np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise GanslimError(f"feature_statistics needs (N,D) features with N >= 2, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def save_statistics(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray) -> Path:
    """Write ``mu`` (D,) and ``sigma`` (D,D) to ``path`` as ``.npz`` (keys ``mu``, ``sigma``), atomically.

    The file is written at exactly ``path``; no ``.npz`` suffix is added.
    """
    mu, sigma = np.asarray(mu), np.asarray(sigma)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise GanslimError(f"save_statistics: need mu (D,) and sigma (D,D), got {mu.shape} and {sigma.shape}")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma)

    return atomic_write(path, write)


def load_statistics(path: str | os.PathLike) -> Statistics:
    """Read ``(mu, sigma)`` from a ``.npz`` with keys ``mu`` (D,) and ``sigma`` (D,D), e.g. pytorch-fid's.

    Raises:
        GanslimError: the file is missing, is not an ``.npz`` (or is truncated / damaged), lacks a key, or has
            inconsistent shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise GanslimError(f"FID statistics file not found: {path}; compute it with save_statistics")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise GanslimError(f"cannot read FID statistics {path} as .npz ({first_line(exc)}): compute them again "
                           "(eval --save-real-stats)") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise GanslimError(f"{path} holds a single array, not an .npz with keys 'mu' and 'sigma'")
    with data:
        missing = [k for k in ("mu", "sigma") if k not in data.files]
        if missing:
            raise GanslimError(
                f"{path} lacks key(s) {missing} (has {sorted(data.files)}); FID statistics need 'mu' and 'sigma'"
            )
        try:
            mu, sigma = data["mu"], data["sigma"]
        except ValueError as exc:  # object arrays need pickle, which is never enabled here
            raise GanslimError(f"{path} stores 'mu'/'sigma' as pickled objects; save plain float arrays") from exc
        except (OSError, EOFError, zipfile.BadZipFile) as exc:  # a member cut short or with a bad checksum
            raise GanslimError(f"FID statistics {path} are damaged or truncated ({first_line(exc)}): compute them "
                               "again (eval --save-real-stats)") from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise GanslimError(f"{path} has mu {mu.shape} and sigma {sigma.shape}; expected (D,) and (D,D)")
    return mu, sigma


def kernel_inception_distance(
    feats1: Tensor | np.ndarray,
    feats2: Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: unbiased MMD² with the kernel ``k(x, y) = (gamma * x·y + coef0) ** degree``, over random subsets.

    Each of ``subsets`` rounds draws, without replacement, ``min(subset_size, N1)`` rows of ``feats1``
    and ``min(subset_size, N2)`` rows of ``feats2`` (numpy ``default_rng(seed)``) and computes
    ``mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)``.

    Args:
        feats1: (N1,D) features. feats2: (N2,D) features.
        gamma: defaults to 1 / D.

    Returns:
        (mean, std) of the per-subset estimates (population std).
    """
    x_all = _as_numpy(feats1).astype(np.float64)
    y_all = _as_numpy(feats2).astype(np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise GanslimError(
            f"kernel_inception_distance needs (N,D) features of one D, got {x_all.shape} and {y_all.shape}"
        )
    m1, m2 = min(subset_size, x_all.shape[0]), min(subset_size, y_all.shape[0])
    if min(m1, m2) < 2 or subsets < 1:
        raise GanslimError(
            f"kernel_inception_distance needs at least 2 samples per set and subset and 1 subset, "
            f"got {x_all.shape[0]} and {y_all.shape[0]} samples, subset_size {subset_size}, subsets {subsets}"
        )
    gamma = 1.0 / x_all.shape[1] if gamma is None else gamma
    rng = np.random.default_rng(seed)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (gamma * (a @ b.T) + coef0) ** degree

    estimates = np.empty(subsets)
    for s in range(subsets):
        x = x_all[rng.choice(x_all.shape[0], m1, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m2, replace=False)]
        k_xx, k_yy = kernel(x, x), kernel(y, y)
        within_x = (k_xx.sum() - np.trace(k_xx)) / (m1 * (m1 - 1))
        within_y = (k_yy.sum() - np.trace(k_yy)) / (m2 * (m2 - 1))
        estimates[s] = within_x + within_y - 2 * kernel(x, y).mean()
    return float(estimates.mean()), float(estimates.std())


def quantize_uint8(images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Images in [-1, 1] (or ``value_range``, e.g. (0, 1)) -> uint8 in [0, 255], rounded to nearest, as saving an
    8-bit PNG does.

    ``floor((clamp(x, -1, 1) + 1) / 2 * 255 + 0.5)`` in float32. Rounding rather than the truncation of
    pix2pix's ``tensor2im`` because it inverts the usual ``x / 127.5 - 1`` loading exactly (truncation
    loses a level on 63 of the 256 values), so real images given as [-1, 1] tensors keep their pixels;
    for generated images the two differ by at most one level. Real and fake images both pass through here.

    Args:
        images: (N,C,H,W) float images.

    Returns:
        (N,C,H,W) uint8.
    """
    low, high = value_range
    scaled = (images.detach().float().clamp(low, high) - low) / (high - low) * 255
    return (scaled + 0.5).floor().to(torch.uint8)


def extract_features(
    batches: Iterable[Tensor], extractor: Callable[[Tensor], Tensor], max_images: int | None = None
) -> np.ndarray:
    """Quantise each (B,C,H,W) batch in [-1, 1] with :func:`quantize_uint8`, run ``extractor`` -> (N,D) float32.

    ``extractor`` maps uint8 (B,C,H,W) to (B,D), e.g. :class:`~ganslim.metrics.inception.InceptionFeatures`.
    Batches are consumed until exhausted or ``max_images`` rows are collected (the last batch is cut).
    """
    chunks: list[np.ndarray] = []
    count = 0
    with torch.no_grad():
        for batch in batches:
            if max_images is not None and count >= max_images:
                break
            if max_images is not None:
                batch = batch[: max_images - count]
            features = extractor(quantize_uint8(batch))
            chunks.append(features.detach().float().cpu().numpy())
            count += chunks[-1].shape[0]
    if not chunks:
        raise GanslimError("extract_features got no images: the batch iterable was empty")
    return np.concatenate(chunks, axis=0)


@dataclass(frozen=True)
class FidKidResult:
    """Scores of :func:`compute_fid_kid`; ``kid``/``kid_std`` are None when KID was not computed."""

    fid: float
    kid: float | None
    kid_std: float | None
    num_fake: int
    num_real: int | None


def _is_statistics(real: object) -> bool:
    return (
        isinstance(real, tuple)
        and len(real) == 2
        and all(isinstance(a, np.ndarray) for a in real)
        and real[0].ndim == 1
        and real[1].ndim == 2
    )


def compute_fid_kid(
    generate_batches: Iterable[Tensor],
    real_stats_or_batches: RealData,
    extractor: Callable[[Tensor], Tensor],
    *,
    max_images: int | None = None,
    kid: bool = True,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> FidKidResult:
    """FID (and KID when real features are available) of generated images against real data.

    Args:
        generate_batches: iterable of (B,3,H,W) generated images in [-1, 1], e.g. a generator
            expression over a test loader; consumed once.
        real_stats_or_batches: one of
            - a path to an ``.npz`` with ``mu``/``sigma`` (FID only),
            - a ``(mu, sigma)`` tuple of numpy arrays (FID only),
            - a (N,D) numpy array of real features (FID and KID),
            - an iterable of (B,3,H,W) real images in [-1, 1] (FID and KID).
        extractor: uint8 (B,3,H,W) -> (B,D) features, e.g. ``load_inception()``.
        max_images: cap on generated images (and on real images when given as batches).
        kid: compute KID when real features are available.
        kid_subsets, kid_subset_size, seed: see :func:`kernel_inception_distance`.

    Both image sets are quantised by :func:`quantize_uint8` before the extractor.
    """
    fake = extract_features(generate_batches, extractor, max_images)
    real_features: np.ndarray | None = None
    if isinstance(real_stats_or_batches, (str, os.PathLike)):
        real_stats = load_statistics(real_stats_or_batches)
    elif _is_statistics(real_stats_or_batches):
        real_stats = real_stats_or_batches  # type: ignore[assignment]
    else:
        if isinstance(real_stats_or_batches, np.ndarray):
            real_features = real_stats_or_batches
        else:
            real_features = extract_features(real_stats_or_batches, extractor, max_images)  # type: ignore[arg-type]
        real_stats = feature_statistics(real_features)
    fid = frechet_distance(*feature_statistics(fake), *real_stats)
    kid_mean = kid_std = None
    if kid and real_features is not None:
        kid_mean, kid_std = kernel_inception_distance(
            fake, real_features, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
        )
    return FidKidResult(
        fid=fid,
        kid=kid_mean,
        kid_std=kid_std,
        num_fake=fake.shape[0],
        num_real=None if real_features is None else real_features.shape[0],
    )
