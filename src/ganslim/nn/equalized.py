"""StyleGAN2's equalised-learning-rate layers and its fused bias + leaky ReLU, rosinality's parameter names.

Equalised learning rate (Karras et al.): weights are stored as N(0, 1) / ``lr_mul`` and scaled at run time by
``lr_mul / sqrt(fan_in)``, so every layer learns at the same speed whatever its fan-in; the bias is scaled by
``lr_mul``. The activation is ``leaky_relu(x + bias, 0.2) * sqrt(2)``, optionally clamped to +-``clamp`` (NVIDIA's
``conv_clamp``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2)  # keeps the activations' second moment through the leaky ReLU


def fused_leaky_relu(x: Tensor, bias: Tensor | None, clamp: float | None = None) -> Tensor:
    """``leaky_relu(x + bias, 0.2) * sqrt(2)``, clamped to +-``clamp`` when set; ``bias`` (C,) is added along
    dimension 1 of ``x`` (N, C, ...)."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    x = F.leaky_relu(x, LEAKY_SLOPE) * LEAKY_GAIN
    return x if clamp is None else x.clamp(-clamp, clamp)


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU * sqrt(2) (+ clamp) over ``channels``; rosinality's ``activate`` (parameter ``bias``)."""

    def __init__(self, channels: int, bias: bool = True, clamp: float | None = None) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.clamp = clamp

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias, self.clamp)


class EqualLinear(nn.Module):
    """(N, in_dim) -> (N, out_dim) with equalised learning rate; ``activate`` adds the fused leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """A convolution with equalised learning rate: (N, in, H, W) -> (N, out, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)
