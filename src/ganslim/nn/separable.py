"""MobileStyleGAN's modulated convolutions: the style scales the input activations, the convolution is shared by the
batch, and demodulation does not depend on the style, so it folds into the weights.

StyleGAN2 modulates and demodulates the *weights* per sample (:mod:`ganslim.nn.modulated`). Here the per-sample
style multiplies the input channels instead (the same product, by linearity), so one ordinary convolution serves the
whole batch; and the demodulation, ``rsqrt(sum_{in,k} (scale * style_inv[in] * W[out, in, k])^2)`` per output channel,
reads a fixed vector ``style_inv`` (a buffer drawn once from N(0, 1) at construction, saved in the state dict and
never drawn again on load) instead of the style. It is then a constant per output channel, which
:meth:`InputModulatedConv.fold_demodulation` multiplies into the last convolution's weights for export.

Eager runs (:func:`ganslim.nn.kernels.fast_kernels_allowed`) compute the same function with fewer passes over the
activations, which at high resolution are memory-bound on a CPU: the style goes into a per-sample copy of the first
kernel (a grouped convolution over the batch), the demodulation and a bias into the last one. Traces and exports
keep the plain form (input scaling, one convolution shared by a dynamic batch), which MAC counting also sees.
Parameter names are MobileStyleGAN's (``weight``; ``weight_dw`` / ``weight_permute``; ``modulation``; ``style_inv``).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.nn.kernels import fast_kernels_allowed

DEMODULATION_EPS = 1e-8


class InputModulatedConv(nn.Module):
    """x (N, in, H, W) and styles (N, style_dim) -> (N, out, H, W): ``x * modulation(style) * scale``, a
    convolution, then (with ``demodulate``) the style-independent demodulation (see the module docstring).

    ``modulation`` is a plain Linear (bias initialised to 1); ``scale`` is 1/sqrt(in * k * k), as StyleGAN2's weight
    scale (no equalised learning rate on the weights). Subclasses define the convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.style_dim, self.demodulate = style_dim, demodulate
        self.modulation = nn.Linear(style_dim, in_channels)
        nn.init.ones_(self.modulation.bias)
        if demodulate:
            self.register_buffer("style_inv", torch.randn(1, 1, in_channels, 1, 1))
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2

    def combined_weight(self) -> Tensor:
        """The dense kernel (out, in, k, k) the convolution amounts to."""
        raise NotImplementedError

    def convolve(self, x: Tensor) -> Tensor:
        """The convolution on modulated input: (N, in, H, W) -> (N, out, H, W)."""
        raise NotImplementedError

    def scale_outputs_(self, factors: Tensor) -> None:
        """Multiply output channel ``o`` of the convolution by ``factors[o]`` (out,), in the weights."""
        raise NotImplementedError

    def convolve_folded(self, x: Tensor, modulation: Tensor, factors: Tensor | None, bias: Tensor | None) -> Tensor:
        """The eager form: x (N, in, H, W), ``modulation`` (N, in) folded into per-sample kernels, output channel o
        times ``factors[o]`` (None: 1) plus ``bias[o]`` (None: 0), in the weights -> (N, out, H, W)."""
        raise NotImplementedError

    def demodulation(self) -> Tensor:
        """The per-output-channel factors (out,): rsqrt(sum over in, k, k of (scale * style_inv * W)^2 + 1e-8)."""
        weight = self.combined_weight() * self.style_inv.view(1, self.in_channels, 1, 1) * self.scale
        return torch.rsqrt(weight.pow(2).sum(dim=(1, 2, 3)) + DEMODULATION_EPS)

    def forward(self, x: Tensor, style: Tensor, bias: Tensor | None = None) -> Tensor:
        """x (N, in, H, W), style (N, style_dim), ``bias`` (out,) added last -> (N, out, H, W)."""
        modulation = self.modulation(style).view(x.shape[0], self.in_channels) * self.scale
        factors = self.demodulation() if self.demodulate else None
        if fast_kernels_allowed():
            return self.convolve_folded(x, modulation, factors, bias)
        out = self.convolve(x * modulation.view(*modulation.shape, 1, 1))
        out = out * factors.view(1, -1, 1, 1) if factors is not None else out
        return out + bias.view(1, -1, 1, 1) if bias is not None else out

    @torch.no_grad()
    def fold_demodulation(self) -> InputModulatedConv:
        """A copy without demodulation whose last weights carry it: the same outputs (to float rounding), one
        multiplication fewer per output. A module without demodulation is copied as it is."""
        folded = copy.deepcopy(self)
        if self.demodulate:
            folded.scale_outputs_(self.demodulation())
            folded.demodulate = False
            del folded.style_inv
        return folded


class ModulatedDenseConv2d(InputModulatedConv):
    """A dense k x k modulated convolution (weight (out, in, k, k), N(0, 1)); see :class:`InputModulatedConv`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, style_dim, demodulate)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))

    def combined_weight(self) -> Tensor:
        return self.weight

    def convolve(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, padding=self.padding)

    def scale_outputs_(self, factors: Tensor) -> None:
        self.weight.mul_(factors.view(-1, 1, 1, 1))

    def convolve_folded(self, x: Tensor, modulation: Tensor, factors: Tensor | None, bias: Tensor | None) -> Tensor:
        batch, _, height, width = x.shape
        weight = self.weight if factors is None else self.weight * factors.view(-1, 1, 1, 1)
        weight = (weight.unsqueeze(0) * modulation.view(batch, 1, -1, 1, 1)).flatten(0, 1)  # (N * out, in, k, k)
        out = F.conv2d(x.reshape(1, -1, height, width), weight, None if bias is None else bias.repeat(batch),
                       padding=self.padding, groups=batch)
        return out.view(batch, self.out_channels, height, width)


class ModulatedSeparableConv2d(InputModulatedConv):
    """A depthwise k x k (``weight_dw`` (in, 1, k, k)) then pointwise 1x1 (``weight_permute`` (out, in, 1, 1))
    modulated convolution, with no non-linearity between; see :class:`InputModulatedConv`. The demodulation is
    computed from the dense kernel the two amount to, ``weight_permute[o, i] * weight_dw[i]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, style_dim, demodulate)
        self.weight_dw = nn.Parameter(torch.randn(in_channels, 1, kernel_size, kernel_size))
        self.weight_permute = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))

    def combined_weight(self) -> Tensor:
        return self.weight_permute * self.weight_dw.transpose(0, 1)

    def convolve(self, x: Tensor) -> Tensor:
        depthwise = F.conv2d(x, self.weight_dw, padding=self.padding, groups=self.in_channels)
        return F.conv2d(depthwise, self.weight_permute)

    def scale_outputs_(self, factors: Tensor) -> None:
        self.weight_permute.mul_(factors.view(-1, 1, 1, 1))

    def convolve_folded(self, x: Tensor, modulation: Tensor, factors: Tensor | None, bias: Tensor | None) -> Tensor:
        batch, _, height, width = x.shape
        depthwise = (self.weight_dw.unsqueeze(0) * modulation.view(batch, -1, 1, 1, 1)).flatten(0, 1)  # (N * in, ..)
        hidden = F.conv2d(x.reshape(1, -1, height, width), depthwise, padding=self.padding, groups=depthwise.shape[0])
        pointwise = self.weight_permute if factors is None else self.weight_permute * factors.view(-1, 1, 1, 1)
        return F.conv2d(hidden.view(batch, self.in_channels, height, width), pointwise, bias)
