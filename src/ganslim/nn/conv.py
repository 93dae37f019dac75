"""The image-output convolution of the generators, with a faster CPU inference path.

A generator ends in a convolution from its last features to a few image channels (3 for RGB). oneDNN, which
runs CPU convolutions, computes 3 output channels about as slowly as 16: the final 7x7 conv of a compact
student (24 -> 3 channels at 256x256) took 17 ms on 2 threads, a quarter of the whole network. Splitting
the output into its four pixel phases (even/odd rows x even/odd columns) turns it into one stride-2
convolution with four times the output channels, whose results ``pixel_shuffle`` interleaves back: the same
sums of the same products, 2-2.5x faster (8 ms there).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ganslim.nn.kernels import fast_kernels_allowed

PHASE_MAX_OUT_CHANNELS = 4  # 4 phases x 4 channels = 16 outputs: oneDNN's block, so nothing is wasted


class OutputConv2d(nn.Conv2d):
    """``nn.Conv2d`` for a generator's output layer: (N, C, H, W) -> (N, out, H', W').

    The function, parameters and state dict are those of ``nn.Conv2d``; only the kernel differs. Inference on
    CPU (no gradients) of a plain convolution (stride 1, no dilation or groups, zero padding) with at most
    :data:`PHASE_MAX_OUT_CHANNELS` outputs and an even output size runs as :func:`phase_conv2d`. Training,
    other devices, traces, exports and MAC counting take the standard op (one ``Conv`` node in ONNX, see
    ``ganslim.nn.kernels``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not phase_conv_applies(self, x):
            return super().forward(x)
        return phase_conv2d(x, self.weight, self.bias, self.padding)


def phase_conv_applies(layer: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``layer(x)`` may run as :func:`phase_conv2d` (see :class:`OutputConv2d`)."""
    if (x.device.type != "cpu" or x.dim() != 4 or torch.is_grad_enabled() or not fast_kernels_allowed()
            or layer.out_channels > PHASE_MAX_OUT_CHANNELS or layer.groups != 1 or layer.padding_mode != "zeros"
            or not isinstance(layer.padding, tuple) or layer.stride != (1, 1) or layer.dilation != (1, 1)):
        return False
    sizes = (x.shape[2] + 2 * layer.padding[0] - layer.kernel_size[0] + 1,
             x.shape[3] + 2 * layer.padding[1] - layer.kernel_size[1] + 1)
    return all(size > 0 and size % 2 == 0 for size in sizes)


def phase_weight(weight: torch.Tensor) -> torch.Tensor:
    """(out, C, kh, kw) -> (4 * out, C, kh + 1, kw + 1): for output channel ``o`` and pixel phase (p, q) (row
    and column parity), channel ``4 * o + 2 * p + q`` holds ``weight[o]`` shifted by p rows and q columns."""
    phases = [F.pad(weight, (q, 1 - q, p, 1 - p)) for p in (0, 1) for q in (0, 1)]
    out, channels, height, width = weight.shape
    return torch.stack(phases, dim=1).reshape(4 * out, channels, height + 1, width + 1)


def phase_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 padding: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` (stride 1) computed phase by phase: one stride-2
    convolution with :func:`phase_weight`, then ``pixel_shuffle``. x: (N, C, H, W); the output (N, out, H', W')
    must have even H' and W'."""
    phase_bias = bias.repeat_interleave(4) if bias is not None else None
    phases = F.conv2d(x, phase_weight(weight), phase_bias, stride=2, padding=padding)
    return F.pixel_shuffle(phases, 2)
