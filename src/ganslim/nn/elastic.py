"""Elastic (sliceable) layers: one set of weights at the largest width, run with the first k channels.

A once-for-all supernet is built from these. Every layer reads its *input* width from the tensor it gets and
uses the leading input channels of its weight; convolutions that set a width take the *output* width from
``active_out_channels`` (None: all of them). So a sub-network at any widths runs the leading slices of the
shared weights, and a compact copy is those same slices (``leading_slice``). They subclass the plain layers,
so parameter names, ``init_weights`` and state dicts are those of the plain network at the largest width.
:class:`ElasticModulatedConv2d` does the same for StyleGAN2's modulated convolution (Anycost GAN's sub-generators).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ganslim.nn.modulated import DEMODULATION_EPS, ModulatedConv2d
from ganslim.nn.norms import InstanceNorm2d, check_norm, fast_instance_norm_applies, group_norm_per_channel


def leading_slice(tensor: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """The leading ``shape`` block of ``tensor`` (``tensor[:shape[0], :shape[1], ...]``), a view.

    This is what an elastic layer uses of a weight, bias or running statistic at smaller widths.
    """
    if len(shape) != tensor.dim() or any(want > have for want, have in zip(shape, tensor.shape)):
        raise ValueError(f"cannot take a {tuple(shape)} block from a tensor of shape {tuple(tensor.shape)}")
    return tensor[tuple(slice(0, size) for size in shape)]


def _head(tensor: torch.Tensor | None, size: int) -> torch.Tensor | None:
    return None if tensor is None else tensor[:size]


class _ElasticOut:
    """The output width an elastic conv runs at; None for all of its channels."""

    out_channels: int
    active_out_channels: int | None

    def set_out_channels(self, channels: int | None) -> None:
        """Run with the first ``channels`` output channels (None: all ``out_channels``)."""
        if channels is not None and not 1 <= channels <= self.out_channels:
            raise ValueError(f"{type(self).__name__} has {self.out_channels} output channels, asked for {channels}")
        self.active_out_channels = channels

    @property
    def current_out_channels(self) -> int:
        """The output width the layer runs at now."""
        return self.out_channels if self.active_out_channels is None else self.active_out_channels


class ElasticConv2d(_ElasticOut, nn.Conv2d):
    """Conv2d over the first C_in channels of its input, producing the first ``active_out_channels``.

    (N, C_in <= in_channels, H, W) -> (N, active out, H', W'). Either dense (groups 1) or depthwise
    (groups = in_channels = out_channels), whose output width always follows its input width. Zero padding
    only (pad with a separate layer for reflect).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.depthwise = self.groups > 1
        if self.depthwise and not self.groups == self.in_channels == self.out_channels:
            raise ValueError("ElasticConv2d supports groups == 1 or depthwise (groups == in == out channels)")
        if self.padding_mode != "zeros":
            raise ValueError("ElasticConv2d supports padding_mode='zeros' only")
        self.active_out_channels = None

    def set_out_channels(self, channels: int | None) -> None:
        if self.depthwise:
            raise ValueError("a depthwise ElasticConv2d takes its width from its input")
        super().set_out_channels(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_channels = x.shape[1]
        if self.depthwise:
            weight, out_channels, groups = self.weight[:in_channels], in_channels, in_channels
        else:
            out_channels, groups = self.current_out_channels, 1
            weight = self.weight[:out_channels, :in_channels]
        return F.conv2d(
            x, weight, _head(self.bias, out_channels), self.stride, self.padding, self.dilation, groups
        )


class ElasticConvTranspose2d(_ElasticOut, nn.ConvTranspose2d):
    """ConvTranspose2d (groups 1) over the first C_in input channels, producing ``active_out_channels``.

    (N, C_in <= in_channels, H, W) -> (N, active out, H', W'); the weight is [in, out, k, k].
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.groups != 1:
            raise ValueError("ElasticConvTranspose2d supports groups == 1 only")
        self.active_out_channels = None

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        out_channels = self.current_out_channels
        output_padding = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        return F.conv_transpose2d(
            x,
            self.weight[: x.shape[1], :out_channels],
            _head(self.bias, out_channels),
            self.stride,
            self.padding,
            output_padding,
            1,
            self.dilation,
        )


class ElasticModulatedConv2d(_ElasticOut, ModulatedConv2d):
    """ModulatedConv2d over the first C_in channels of its input, producing the first ``active_out_channels``:
    (N, C_in <= in_channels, H, W) and styles (N, style_dim) -> (N, active out, H or 2H, W or 2W).

    It uses the leading block of ``weight`` and the leading rows of ``modulation`` (only the styles it needs, where
    Anycost GAN's code computes all and drops the rest: the same values, and the MACs of the compact copy), and
    keeps the full width's equalised-lr scale 1/sqrt(in_channels*k*k), as Anycost does. At full widths it is
    ModulatedConv2d itself.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.active_out_channels = None

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, in_channels, height, width = x.shape
        out_channels, k = self.current_out_channels, self.kernel_size
        if (in_channels, out_channels) == (self.in_channels, self.out_channels):
            return super().forward(x, style)
        modulation = self.modulation
        styles = F.linear(style, modulation.weight[:in_channels] * modulation.scale,
                          modulation.bias[:in_channels] * modulation.lr_mul) * self.scale
        weight = self.weight[:, :out_channels, :in_channels] * styles.view(batch, 1, in_channels, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4], keepdim=True) + DEMODULATION_EPS)
        x = x.reshape(1, batch * in_channels, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_channels, out_channels, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=batch)
            return self.blur(out.view(batch, out_channels, *out.shape[2:]))
        out = F.conv2d(x, weight.reshape(batch * out_channels, in_channels, k, k), padding=self.padding,
                       groups=batch)
        return out.view(batch, out_channels, *out.shape[2:])


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the first C channels: affine weights and running statistics sliced alike.

    In training mode the batch statistics update the leading C entries of the shared running buffers.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        channels = x.shape[1]
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm2d
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep_buffers = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            _head(self.running_mean, channels) if keep_buffers else None,
            _head(self.running_var, channels) if keep_buffers else None,
            _head(self.weight, channels),
            _head(self.bias, channels),
            use_batch_stats,
            factor,
            self.eps,
        )


class ElasticInstanceNorm2d(InstanceNorm2d):
    """InstanceNorm2d over any C <= num_features channels (no warning when C differs; parameters sliced)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[-3]
        if fast_instance_norm_applies(self, x):
            return group_norm_per_channel(x, _head(self.weight, channels), _head(self.bias, channels), self.eps)
        return F.instance_norm(
            x,
            _head(self.running_mean, channels),
            _head(self.running_var, channels),
            _head(self.weight, channels),
            _head(self.bias, channels),
            self.training or not self.track_running_stats,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )


def make_elastic_norm(norm: str, channels: int) -> nn.Module:
    """The elastic twin of ``ganslim.nn.make_norm``: same parameters and buffers, any leading C channels."""
    check_norm(norm)
    if norm == "batch":
        return ElasticBatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":
        return ElasticInstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()

