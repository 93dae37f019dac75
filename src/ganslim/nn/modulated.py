"""StyleGAN2's modulated convolution, state-dict compatible with rosinality's ``ModulatedConv2d``.

Each sample's style scales the weight's input channels; demodulation rescales every output filter to unit norm.
The per-sample weights run as one grouped convolution (groups = batch). The x2 up variant is a stride-2
transposed convolution followed by a FIR blur with rosinality's pads, so its keys and arithmetic are theirs.
Inside :func:`modulating_activations` the same function runs as NVIDIA's non-fused form instead: the styles scale
the input activations, one convolution with the stored weight follows, and the demodulation coefficients scale
its output.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.nn.equalized import EqualLinear
from ganslim.nn.upfirdn import Blur, make_blur_kernel

BLUR_TAPS = (1, 3, 3, 1)
DEMODULATION_EPS = 1e-8
_ACTIVATIONS = threading.local()


@contextlib.contextmanager
def modulating_activations() -> Iterator[None]:
    """For the block (on this thread), modulated convolutions scale activations instead of weights: one convolution
    with the stored weight for the whole batch, so a graph traced inside (ONNX, TorchScript) keeps its batch axis
    free, which a grouped convolution with groups = batch does not. Equal to the weight form to float rounding."""
    _ACTIVATIONS.depth = getattr(_ACTIVATIONS, "depth", 0) + 1
    try:
        yield
    finally:
        _ACTIVATIONS.depth -= 1


class ModulatedConv2d(nn.Module):
    """(N, in, H, W) and styles (N, style_dim) -> (N, out, H, W), or (N, out, 2H, 2W) with ``upsample``.

    Parameters (rosinality's names): ``weight`` (1, out, in, k, k), stored N(0, 1) and scaled by 1/sqrt(in*k*k)
    at run time; ``modulation`` (an EqualLinear style_dim -> in, bias initialised to 1); with ``upsample`` a
    ``blur`` whose buffer ``kernel`` is the FIR filter.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_taps: Sequence[float] = BLUR_TAPS) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:  # registered first, so the keys come in rosinality's order
            factor = 2
            excess = len(blur_taps) - factor - (kernel_size - 1)
            self.blur = Blur(make_blur_kernel(blur_taps, gain=factor**2),
                             pad=((excess + 1) // 2 + factor - 1, excess // 2 + 1))
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2

    def modulated_weight(self, style: Tensor) -> Tensor:
        """The per-sample weights (N, out, in, k, k) for styles (N, style_dim)."""
        batch = style.shape[0]
        weight = self.weight * (self.modulation(style) * self.scale).view(batch, 1, self.in_channels, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4], keepdim=True) + DEMODULATION_EPS)
        return weight

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        if getattr(_ACTIVATIONS, "depth", 0) > 0:
            return self._modulate_activations(x, style)
        batch, _, height, width = x.shape
        k = self.kernel_size
        weight = self.modulated_weight(style)
        x = x.reshape(1, batch * self.in_channels, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * self.in_channels, self.out_channels, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=batch)
            return self.blur(out.view(batch, self.out_channels, *out.shape[2:]))
        out = F.conv2d(x, weight.reshape(batch * self.out_channels, self.in_channels, k, k), padding=self.padding,
                       groups=batch)
        return out.view(batch, self.out_channels, *out.shape[2:])

    def _modulate_activations(self, x: Tensor, style: Tensor) -> Tensor:
        """The non-fused form of :meth:`forward` (see :func:`modulating_activations`)."""
        styles = self.modulation(style) * self.scale  # (N, in)
        weight = self.weight[0]  # (out, in, k, k)
        x = x * styles[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:  # the per-sample filter norms: sum over in and k of (weight * style)^2
            norms = styles.pow(2) @ weight.pow(2).sum([2, 3]).t()  # (N, out)
            out = out * torch.rsqrt(norms + DEMODULATION_EPS)[:, :, None, None]
        return out
