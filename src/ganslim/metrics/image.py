"""Paired-image metrics: PSNR and SSIM on images in [-1, 1], a running mean for batched evaluation, and both means
over a validation's batches."""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganslim.errors import GanslimError


def _check_pair(pred: Tensor, target: Tensor, name: str) -> None:
    if pred.dim() != 4 or pred.shape != target.shape:
        raise GanslimError(
            f"{name}: pred and target must both be (N,C,H,W) with the same shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def psnr(pred: Tensor, target: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        pred: (N,C,H,W) images, [-1, 1] by default.
        target: (N,C,H,W) reference images, same shape.
        data_range: max minus min of the value range (2 for [-1, 1], 1 for [0, 1], 255 for uint8 values).

    Returns:
        (N,) ``10 * log10(data_range**2 / MSE)``, the MSE taken over C, H and W of each image (as
        ``skimage.metrics.peak_signal_noise_ratio``). Identical images give ``inf``.
    """
    _check_pair(pred, target, "psnr")
    dtype = torch.promote_types(pred.dtype, torch.float32)
    mse = (pred.to(dtype) - target.to(dtype)).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(window: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    coords = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    weights = torch.exp(-0.5 * (coords / sigma) ** 2)
    return (weights / weights.sum()).to(dtype=dtype, device=device)


def ssim(
    pred: Tensor,
    target: Tensor,
    value_range: tuple[float, float] = (-1.0, 1.0),
    window: int = 11,
    sigma: float = 1.5,
) -> Tensor:
    """Structural similarity per image with a Gaussian window (Wang et al. 2004); differentiable.

    SSIM is not shift-invariant: its luminance term assumes intensities that start at 0, as in [0, 1] or
    [0, 255] images. Images in ``value_range = (low, high)`` are therefore compared as ``x - low`` with data
    range ``high - low``, so images in [-1, 1] score exactly as the same images in [0, 1] (the published
    convention) would.

    Local statistics use a normalised ``window``-tap Gaussian of std ``sigma`` (separable), population
    (co)variances, K1 = 0.01 and K2 = 0.03. The SSIM map is averaged over the pixels whose window lies
    fully inside the image (a "valid" filter, no padding), then over channels. With the defaults this
    equals ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...)`` on ``(x + 1) / 2``: skimage filters with
    reflected borders but then crops ``(window - 1) // 2`` pixels on each side, so borders never count.

    Args:
        pred: (N,C,H,W) images in ``value_range``; H and W at least ``window``.
        target: (N,C,H,W) reference images, same shape.
        value_range: (low, high) of the images' intensities: (-1, 1) for ganslim's images, (0, 1) or
            (0, 255) for others.
        window: odd filter size in pixels.
        sigma: std of the Gaussian in pixels.

    Returns:
        (N,) mean SSIM of each image; 1 for identical images.
    """
    _check_pair(pred, target, "ssim")
    if window < 1 or window % 2 == 0:
        raise GanslimError(f"ssim: window must be a positive odd number of pixels, got {window}")
    if min(pred.shape[-2:]) < window:
        raise GanslimError(
            f"ssim: images of {tuple(pred.shape[-2:])} are smaller than the {window}-pixel window; "
            f"pass a smaller odd window"
        )
    low, high = value_range
    if not high > low:
        raise GanslimError(f"ssim: value_range must be (low, high) with high > low, got {value_range}")
    data_range = high - low
    n, c, h, w = pred.shape
    dtype = torch.promote_types(pred.dtype, torch.float32)
    x = (pred.to(dtype) - low).reshape(n * c, 1, h, w)
    y = (target.to(dtype) - low).reshape(n * c, 1, h, w)
    g = _gaussian_window(window, sigma, dtype, x.device)
    g_rows, g_cols = g.view(1, 1, window, 1), g.view(1, 1, 1, window)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, g_rows), g_cols)

    # One conv pass over the five stacked maps instead of five.
    stats = blur(torch.cat([x, y, x * x, y * y, x * y], dim=0)).chunk(5, dim=0)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return ssim_map.reshape(n, c, -1).mean(dim=2).mean(dim=1)


class RunningMean:
    """Mean of per-image values accumulated over batches (e.g. PSNR over a test set).

    ``update`` takes a (N,) tensor or a float; ``compute`` returns the mean of everything seen.
    A single ``inf`` (an exact PSNR match) makes the mean ``inf``, as it should.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, values: Tensor | float) -> None:
        """Add a (N,) tensor of per-image values, or one value."""
        if isinstance(values, Tensor):
            values = values.detach().to(torch.float64).flatten()
            self.total += float(values.sum())
            self.count += values.numel()
        else:
            self.total += float(values)
            self.count += 1

    def compute(self) -> float:
        """The mean so far; ``nan`` before any update."""
        return self.total / self.count if self.count else math.nan

    def reset(self) -> None:
        """Forget everything seen."""
        self.total = 0.0
        self.count = 0


def mean_psnr_ssim(pairs: Iterable[tuple[Tensor, Tensor]]) -> dict[str, float]:
    """``{"psnr", "ssim"}``: the means over every image of :func:`psnr` (dB) and :func:`ssim` of ``(output,
    target)`` pairs of (N, C, H, W) batches in [-1, 1] (a method's validation over its val batches)."""
    psnrs, ssims = RunningMean(), RunningMean()
    for output, target in pairs:
        psnrs.update(psnr(output, target))
        ssims.update(ssim(output, target))
    return {"psnr": psnrs.compute(), "ssim": ssims.compute()}
