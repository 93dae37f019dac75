"""StyleGAN2's generator (Karras et al. 2020), state-dict compatible with rosinality/stylegan2-pytorch.

Layout (keys as rosinality's; R = image side, n_latent = num_ws = 2*log2(R) - 2, c[r] = channels at side r)::

    style          mapping: style.0 PixelNorm, style.1 .. style.n_mlp EqualLinear (lr_mul lr_mlp, fused lrelu),
                   and ganslim's buffer style.w_avg (the mean W that truncation pulls toward)
    input.input    (1, c[4], 4, 4) learned constant
    conv1          StyledConv c[4] -> c[4] at 4 px (style w[0]);  to_rgb1 (style w[1])
    convs.2k       StyledConv, x2 up (transposed conv + [1, 3, 3, 1] blur), style w[2k+1]
    convs.2k+1     StyledConv at the new side, style w[2k+2];  to_rgbs.k (style w[2k+3]) adds to the upsampled skip
    noises.noise_i (1, 1, r, r) fixed noise inputs, one per StyledConv (2*log2(R) - 3 of them)

The image is the sum of the to-RGB outputs (the skip architecture), nominally in [-1, 1] and not clamped.
Mapping and synthesis are separable: :attr:`StyleGAN2Generator.mapping` is the ``style`` module and
:attr:`StyleGAN2Generator.synthesis` a module over the remaining layers (the same parameters).

Every generator is elastic (Anycost GAN, :mod:`ganslim.archs.stylegan2.subnets`): :meth:`StyleGAN2Generator.set_subnet`
makes it (and its synthesis) stop at a lower resolution and/or run the first k channels of each layer, on the same
weights; ``ganslim.compress.extract_stylegan2_subnet`` copies a sub-generator out with real, smaller tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganslim.archs.stylegan2.channels import check_positive_int, check_positive_number, resolve_layer_channels
from ganslim.archs.stylegan2.latent import LatentGenerator, NoiseInput, check_w_plus
from ganslim.archs.stylegan2.subnets import ChannelsSpec, Subnet, resolve_subnet
from ganslim.errors import GanslimError
from ganslim.nn.elastic import ElasticModulatedConv2d
from ganslim.nn.equalized import EqualLinear, FusedLeakyReLU, fused_leaky_relu
from ganslim.nn.modulated import BLUR_TAPS
from ganslim.nn.upfirdn import Upsample
from ganslim.registry import GENERATORS

NOISE_MODES = ("const", "random", "none")
PIXEL_NORM_EPS = 1e-8


class PixelNorm(nn.Module):
    """Each vector scaled to unit root-mean-square: (N, D) -> (N, D)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)


class MappingNetwork(nn.Sequential):
    """z (N, z_dim) -> w (N, w_dim): PixelNorm, then ``n_mlp`` EqualLinear + fused leaky ReLU layers.

    ``w_avg`` (w_dim,) is the mean W truncation pulls toward; all NaN while unknown (see
    :func:`estimate_w_avg`).
    """

    def __init__(self, z_dim: int, w_dim: int, n_mlp: int, lr_mlp: float) -> None:
        widths = [z_dim] + [w_dim] * n_mlp
        super().__init__(PixelNorm(), *(EqualLinear(widths[i], widths[i + 1], lr_mul=lr_mlp, activate=True)
                                        for i in range(n_mlp)))
        self.z_dim, self.w_dim = z_dim, w_dim
        self.register_buffer("w_avg", torch.full((w_dim,), float("nan")))

    @property
    def has_w_avg(self) -> bool:
        return not bool(torch.isnan(self.w_avg).any())

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise GanslimError(f"the mapping network takes z of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        return super().forward(z)


class ConstantInput(nn.Module):
    """The learned (1, C, 4, 4) start of synthesis (parameter ``input``), repeated over the batch; its first
    ``active_channels`` channels only when set (a sub-generator's)."""

    def __init__(self, channels: int, side: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, side, side))
        self.active_channels: int | None = None

    def forward(self, batch: int) -> Tensor:
        return self.input[:, :self.active_channels].repeat(batch, 1, 1, 1)


class NoiseInjection(nn.Module):
    """Adds ``weight`` (one learned scalar) times a (N or 1, 1, H, W) noise image; no noise adds nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None) -> Tensor:
        return x if noise is None else x + self.weight * noise


class StyledConv(nn.Module):
    """Modulated 3x3 conv, noise, bias + leaky ReLU * sqrt(2): (N, in, H, W) -> (N, out, H or 2H, W or 2W), or
    the first ``conv.active_out_channels`` of out (the bias's leading entries)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, upsample: bool = False,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv = ElasticModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels, clamp=conv_clamp)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None) -> Tensor:
        out = self.noise(self.conv(x, style), noise)
        return fused_leaky_relu(out, self.activate.bias[:out.shape[1]], self.activate.clamp)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation to image channels, plus ``bias`` (1, C, 1, 1); with a skip, the
    x2-upsampled previous image is added."""

    def __init__(self, in_channels: int, style_dim: int, image_channels: int, upsample: bool = True,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(BLUR_TAPS)
        self.conv = ElasticModulatedConv2d(in_channels, image_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, image_channels, 1, 1))
        self.clamp = conv_clamp

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp)
        return out if skip is None else out + self.upsample(skip)


class NoiseBuffers(nn.Module):
    """rosinality's ``noises``: buffers ``noise_0`` .. ``noise_{n-1}``, (1, 1, r, r) at each StyledConv's side."""

    def __init__(self, sides: Sequence[int]) -> None:
        super().__init__()
        for index, side in enumerate(sides):
            self.register_buffer(f"noise_{index}", torch.randn(1, 1, side, side))

    def constants(self) -> list[Tensor]:
        return list(self.buffers())


class SynthesisNetwork(nn.Module):
    """W+ (N, num_ws, w_dim) -> image (N, C, R, R): a generator's synthesis layers (the same modules, so the
    same parameters), for measuring, distilling or running them on their own."""

    def __init__(self, generator: StyleGAN2Generator) -> None:
        super().__init__()
        for name in _SYNTHESIS_LAYERS:
            setattr(self, name, getattr(generator, name))
        self.num_ws, self.w_dim, self.img_resolution = generator.num_ws, generator.w_dim, generator.img_resolution
        self.active = generator.active  # shared: the generator's set_subnet applies here too

    def forward(self, w_plus: Tensor, noise: NoiseInput = "const", rng: torch.Generator | None = None) -> Tensor:
        return _synthesize(self, w_plus, noise, rng)


_SYNTHESIS_LAYERS = ("input", "conv1", "to_rgb1", "convs", "to_rgbs", "noises")


@dataclass
class ActiveSubnet:
    """The sub-generator a generator runs as now (its SynthesisNetwork shares this object); change it only through
    :meth:`StyleGAN2Generator.set_subnet`, which also sets the layers' widths."""

    subnet: Subnet


class StyleGAN2Generator(LatentGenerator):
    """z (N, z_dim) -> image (N, image_channels, size, size), nominally in [-1, 1] (see the module docstring).

    Args:
        size: image side, a power of two of at least 4 (rosinality trains 256 / 512 / 1024).
        style_dim: width of W (``w_dim``) and of the mapping layers (512 for config-f).
        n_mlp: mapping layers (8).
        channel_multiplier: scales the table from 64 px up (2 for config-f); see :func:`rosinality_channels`.
        channels: any other table (replaces the multiplier's): one width per side 4, 8, ..., size, or one per layer
            (Anycost's layout, :func:`~ganslim.archs.stylegan2.channels.layer_sides`: a sub-generator's widths).
        lr_mlp: the mapping's learning-rate multiplier (0.01).
        z_dim: width of z (default ``style_dim``, as rosinality's; NVIDIA's may differ).
        image_channels: channels of the image (3).
        conv_clamp: clamp every conv's activation to +- this (NVIDIA's ``conv_clamp``, 256 in their
            stylegan2-ada training); None (rosinality's) clamps nothing.

    Entry points: ``forward(z)`` (mapping, optional truncation, synthesis), :meth:`map` (z -> W),
    :meth:`truncate`, :meth:`broadcast` (W -> W+), :meth:`mix` (style mixing) and ``synthesis(w_plus)``.
    Noise: ``"const"`` (the stored ``noises.noise_i``, the default: a fixed image per z), ``"random"`` (drawn from
    ``rng``), ``"none"``, or a list of ``num_noises`` tensors (N or 1, 1, r, r).
    Sub-generators: :meth:`set_subnet` / :meth:`subnet` (W+ keeps ``num_ws`` entries; the later ones go unread).
    """

    def __init__(self, size: int = 1024, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 channels: Sequence[int] | None = None, lr_mlp: float = 0.01, z_dim: int | None = None,
                 image_channels: int = 3, conv_clamp: float | None = None) -> None:
        super().__init__()
        layers = resolve_layer_channels(size, channel_multiplier, channels)
        for name, value in (("style_dim", style_dim), ("n_mlp", n_mlp), ("image_channels", image_channels),
                            ("z_dim", style_dim if z_dim is None else z_dim)):
            check_positive_int(name, value)
        check_positive_number("lr_mlp", lr_mlp)
        if conv_clamp is not None:
            check_positive_number("conv_clamp", conv_clamp)
        self.img_resolution, self.img_channels = size, image_channels
        self.z_dim, self.w_dim = style_dim if z_dim is None else z_dim, style_dim
        self.num_ws = len(layers)
        self.layer_channels = layers
        self.channels = {2**i: width for i, width in enumerate(layers[1::2], start=2)}  # each side's to-RGB input

        self.style = MappingNetwork(self.z_dim, style_dim, n_mlp, lr_mlp)
        self.input = ConstantInput(layers[0])
        self.conv1 = StyledConv(layers[0], layers[1], style_dim, conv_clamp=conv_clamp)
        self.to_rgb1 = ToRGB(layers[1], style_dim, image_channels, upsample=False, conv_clamp=conv_clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for k in range(len(layers) // 2 - 1):
            previous, middle, width = layers[2 * k + 1:2 * k + 4]
            self.convs.append(StyledConv(previous, middle, style_dim, upsample=True, conv_clamp=conv_clamp))
            self.convs.append(StyledConv(middle, width, style_dim, conv_clamp=conv_clamp))
            self.to_rgbs.append(ToRGB(width, style_dim, image_channels, conv_clamp=conv_clamp))
        self.noises = NoiseBuffers([4] + [side for side in self.channels if side > 4 for _ in range(2)])
        self.active = ActiveSubnet(Subnet(size, layers))

    @property
    def num_noises(self) -> int:
        return 1 + len(self.convs)

    @property
    def synthesis(self) -> SynthesisNetwork:
        """W+ (N, num_ws, w_dim) -> image, over this generator's layers."""
        return SynthesisNetwork(self)

    def synthesize(self, w_plus: Tensor, noise: NoiseInput = "const", rng: torch.Generator | None = None) -> Tensor:
        return _synthesize(self, w_plus, noise, rng)

    def arch_kwargs(self) -> dict:
        """The ``stylegan2`` kwargs that rebuild this generator (the channels per layer)."""
        return {"size": self.img_resolution, "style_dim": self.w_dim, "n_mlp": len(self.style) - 1,
                "channels": list(self.layer_channels), "lr_mlp": self.style[1].lr_mul, "z_dim": self.z_dim,
                "image_channels": self.img_channels, "conv_clamp": self.to_rgb1.clamp}

    @property
    def output_resolution(self) -> int:
        return self.active.subnet.resolution

    @property
    def active_subnet(self) -> Subnet:
        """The sub-generator this generator runs as (its full size and widths unless :meth:`set_subnet` said)."""
        return self.active.subnet

    def set_subnet(self, resolution: int | None = None, channels: ChannelsSpec | None = None) -> Subnet:
        """Run from now on (forward, synthesis, parts) as the sub-generator stopping at ``resolution`` (None: the
        full side) with ``channels`` (None: full widths; a ratio; per-layer widths; a string; see
        :func:`~ganslim.archs.stylegan2.subnets.resolve_subnet`), on these weights. Returns the resolved one;
        ``set_subnet()`` restores the full generator.
        """
        subnet = resolve_subnet(self.layer_channels, resolution, channels)
        widths = subnet.channels + self.layer_channels[len(subnet.channels):]  # layers past the exit go unrun
        self.input.active_channels = widths[0]
        for layer, width in zip([self.conv1, *self.convs], widths[1:]):
            layer.conv.set_out_channels(width)
        self.active.subnet = subnet
        return subnet

    @contextlib.contextmanager
    def subnet(self, resolution: int | None = None, channels: ChannelsSpec | None = None) -> Iterator[Subnet]:
        """:meth:`set_subnet` for the ``with`` block, then back to the sub-generator active before."""
        previous = self.active_subnet
        try:
            yield self.set_subnet(resolution, channels)
        finally:
            self.set_subnet(previous.resolution, previous.channels)


def _synthesize(layers: StyleGAN2Generator | SynthesisNetwork, w_plus: Tensor, noise: NoiseInput,
                rng: torch.Generator | None) -> Tensor:
    """The synthesis pass over ``layers`` (a generator or its SynthesisNetwork), as its active sub-generator:
    W+ -> image."""
    check_w_plus(w_plus, layers.num_ws, layers.w_dim)
    noises = noise_inputs(layers.noises.constants(), noise, w_plus.shape[0], rng)
    out = layers.conv1(layers.input(w_plus.shape[0]), w_plus[:, 0], noises[0])
    skip = layers.to_rgb1(out, w_plus[:, 1])
    blocks = len(layers.active.subnet.channels) // 2 - 1  # early exit: the skip image at the active resolution
    for k, to_rgb in enumerate(layers.to_rgbs[:blocks]):
        out = layers.convs[2 * k](out, w_plus[:, 2 * k + 1], noises[2 * k + 1])
        out = layers.convs[2 * k + 1](out, w_plus[:, 2 * k + 2], noises[2 * k + 2])
        skip = to_rgb(out, w_plus[:, 2 * k + 3], skip)
    return skip


def noise_inputs(constants: list[Tensor], noise: NoiseInput, batch: int,
                 rng: torch.Generator | None) -> list[Tensor | None]:
    """One noise image (or None) per StyledConv for the noise mode or explicit tensors ``noise``."""
    if isinstance(noise, str):
        if noise not in NOISE_MODES:
            raise GanslimError(f"noise mode '{noise}' is not one of {', '.join(NOISE_MODES)}; or pass a list of "
                               f"{len(constants)} tensors")
        if noise == "const":
            return list(constants)
        if noise == "none":
            return [None] * len(constants)
        return [torch.randn(batch, 1, *c.shape[2:], generator=rng, device=c.device, dtype=c.dtype)
                for c in constants]
    noise = list(noise)
    if len(noise) != len(constants):
        raise GanslimError(f"this generator takes {len(constants)} noise tensors, got {len(noise)}")
    for index, (given, constant) in enumerate(zip(noise, constants)):
        side = constant.shape[-1]
        if given.dim() != 4 or given.shape[0] not in (1, batch) or given.shape[1:] != (1, side, side):
            raise GanslimError(f"noise {index} must have shape ({batch} or 1, 1, {side}, {side}), got "
                               f"{tuple(given.shape)}")
    return noise


@GENERATORS.register("stylegan2")
def stylegan2(size: int = 1024, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
              channels: Sequence[int] | None = None, lr_mlp: float = 0.01, z_dim: int | None = None,
              image_channels: int = 3, conv_clamp: float | None = None) -> StyleGAN2Generator:
    """StyleGAN2 config-f at the defaults (30.37 M parameters at 1024: mapping 2.10 M, synthesis 28.27 M)."""
    return StyleGAN2Generator(size, style_dim, n_mlp, channel_multiplier, channels, lr_mlp, z_dim, image_channels,
                              conv_clamp)


@torch.no_grad()
def estimate_w_avg(generator: LatentGenerator, n: int = 10_000, seed: int = 0, batch: int = 1000) -> Tensor:
    """Set ``generator``'s ``w_avg`` to the mean W of ``n`` z drawn with ``seed`` (the same every time), and
    return it (w_dim,). For checkpoints that store no average (rosinality's train.py files)."""
    rng = torch.Generator().manual_seed(seed)
    device = generator.style.w_avg.device
    total = torch.zeros(generator.w_dim, dtype=torch.float64, device=device)
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), generator.z_dim, generator=rng).to(device)
        total += generator.style(z).sum(dim=0, dtype=torch.float64)
    generator.style.w_avg.copy_(total / n)
    return generator.style.w_avg
