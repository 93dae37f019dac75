"""Upsample, FIR-filter, downsample (``upfirdn2d``) in plain PyTorch: the same ops on CPU, CUDA and meta.

``upfirdn2d(x, kernel, up, down, pad)`` is what StyleGAN2's CUDA kernel computes: insert ``up - 1`` zeros after
every pixel, pad ``pad = (before, after)`` on both axes (negative values crop), convolve with ``kernel`` (a true
convolution: the kernel is flipped) and keep every ``down``-th pixel. Upsampling runs as a depthwise transposed
convolution (no zeros are materialised), filtering and downsampling as a depthwise strided convolution.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


_FILTERING = threading.local()


@contextlib.contextmanager
def fixed_filtering() -> Iterator[None]:
    """Marks the convolutions run inside as a fixed resampling filter, not a learned layer (the true MAC count of
    :mod:`ganslim.measure.profile` leaves them out, the published convention counts them, as torchprofile does)."""
    _FILTERING.depth = getattr(_FILTERING, "depth", 0) + 1
    try:
        yield
    finally:
        _FILTERING.depth -= 1


def in_fixed_filtering() -> bool:
    """True inside :func:`fixed_filtering` (on this thread)."""
    return getattr(_FILTERING, "depth", 0) > 0


def make_blur_kernel(taps: Sequence[float], gain: float = 1.0) -> Tensor:
    """The separable 2D FIR kernel of the 1D ``taps`` (e.g. ``[1, 3, 3, 1]``), normalised to sum to ``gain``:
    (len(taps), len(taps)) float32."""
    tap = torch.tensor(taps, dtype=torch.float32)
    kernel = tap[None, :] * tap[:, None]
    return kernel / kernel.sum() * gain


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Zero-insert by ``up``, pad by ``pad``, convolve with ``kernel`` (kh, kw), keep every ``down``-th pixel.

    x (N, C, H, W) -> (N, C, (H*up + pad[0] + pad[1] - kh) // down + 1, same for W). One of ``up`` and ``down``
    must be 1 (StyleGAN2 needs no resampling filter that does both).
    """
    if up != 1 and down != 1:
        raise ValueError(f"upfirdn2d resamples one way at a time, got up={up} and down={down}")
    with fixed_filtering():
        return _upfirdn2d(x, kernel, up, down, pad)


def _upfirdn2d(x: Tensor, kernel: Tensor, up: int, down: int, pad: tuple[int, int]) -> Tensor:
    channels = int(x.shape[1])  # a constant of a traced graph (fixed per layer), so its filter has a known shape
    kh, kw = kernel.shape
    before, after = pad
    if up > 1:
        # A transposed convolution with the kernel itself computes the zero-inserted signal convolved with it,
        # starting kh - 1 pixels before the first input pixel; shift that window to the one ``pad`` asks for.
        weight = kernel.to(x.dtype).expand(channels, 1, kh, kw)
        full = F.conv_transpose2d(x, weight, stride=up, groups=channels)
        length_h, length_w = x.shape[2] * up + before + after - kh + 1, x.shape[3] * up + before + after - kw + 1
        start_h, start_w = kh - 1 - before, kw - 1 - before
        return F.pad(full, [-start_w, length_w + start_w - full.shape[3], -start_h, length_h + start_h - full.shape[2]])
    padded = F.pad(x, [before, after, before, after])
    weight = kernel.flip([0, 1]).to(x.dtype).expand(channels, 1, kh, kw)
    return F.conv2d(padded, weight, stride=down, groups=channels)


class Blur(nn.Module):
    """FIR filter without resampling (buffer ``kernel``, rosinality's name): pads ``pad``, then convolves."""

    def __init__(self, kernel: Tensor, pad: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("kernel", kernel)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """x2 upsampling through the FIR ``taps``: (N, C, H, W) -> (N, C, 2H, 2W) (buffer ``kernel``, gain 4 so the
    zero-inserted signal keeps its brightness)."""

    def __init__(self, taps: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(taps, gain=factor**2))
        self.factor = factor
        excess = len(taps) - factor
        self.pad = ((excess + 1) // 2 + factor - 1, excess // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)
