"""Anycost GAN's surgery on a StyleGAN2 generator: copy a sub-generator out with real tensors (and run one on the full
generator's weights with the copy's interface, the reference its export is checked against), and sort every layer's
channels by importance so that the first k of each layer are the ones a narrower sub-generator should keep."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ganslim.archs.stylegan2.channels import check_positive_int
from ganslim.archs.stylegan2.generator import NoiseBuffers, StyleGAN2Generator
from ganslim.archs.stylegan2.latent import LatentGenerator, NoiseInput, check_w_plus
from ganslim.archs.stylegan2.subnets import ChannelsSpec, resolve_subnet
from ganslim.nn.elastic import leading_slice
from ganslim.nn.modulated import ModulatedConv2d

SORT_LATENTS = 100_000  # Anycost's sample of mapped latents for the mean |style|


def extract_stylegan2_subnet(generator: StyleGAN2Generator, resolution: int | None = None,
                             channels: ChannelsSpec | None = None) -> StyleGAN2Generator:
    """A standalone ``stylegan2`` of side ``resolution`` with one width per layer (``channels``, as
    :meth:`StyleGAN2Generator.set_subnet` takes them) holding copies of the leading slices of ``generator``'s
    tensors, so its images equal ``generator``'s while it runs as that sub-generator (to float rounding).

    The equalised-lr scale of a conv depends on its input width, so each modulated weight is multiplied by
    sqrt(k / full) for its k of ``full`` input channels: the compact conv then computes the sliced one's product.
    ``generator`` is left as it was; the copy is on its device and dtype, in its train/eval mode, and rebuilds from
    ``"stylegan2"`` + ``compact.arch_kwargs()``.
    """
    subnet = resolve_subnet(generator.layer_channels, resolution, channels)
    kwargs = {**generator.arch_kwargs(), "size": subnet.resolution, "channels": list(subnet.channels)}
    with torch.device("meta"):  # no point initialising weights that are overwritten next
        compact = StyleGAN2Generator(**kwargs)
    shared = generator.state_dict()
    full_convs = dict(generator.named_modules())
    with torch.no_grad():
        state = {name: leading_slice(shared[name], tensor.shape).clone()
                 for name, tensor in compact.state_dict().items()}
        for name, conv in compact.named_modules():
            if isinstance(conv, ModulatedConv2d):
                state[f"{name}.weight"] *= math.sqrt(conv.in_channels / full_convs[name].in_channels)
    compact.load_state_dict(state, strict=True, assign=True)
    return compact.train(generator.training)


class SlicedSubGenerator(LatentGenerator):
    """``generator`` run as one of its sub-generators on its own, sliced weights, with the interface of the compact
    copy :func:`extract_stylegan2_subnet` makes: z (N, z_dim) or W+ (N, num_ws, w_dim) of the sub-generator's
    ``num_ws`` layers only, and the noise buffers of those layers only (``noises``). The eager reference an exported
    sub-generator is checked against; ``generator`` is left running as it was (full unless set otherwise)."""

    def __init__(self, generator: StyleGAN2Generator, resolution: int | None = None,
                 channels: ChannelsSpec | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.subnet = resolve_subnet(generator.layer_channels, resolution, channels)
        self.style = generator.style
        self.z_dim, self.w_dim, self.img_channels = generator.z_dim, generator.w_dim, generator.img_channels
        self.num_ws, self.img_resolution = len(self.subnet.channels), self.subnet.resolution
        constants = generator.noises.constants()[:self.num_ws - 1]  # one StyledConv per layer after the constant
        self.noises = NoiseBuffers([int(constant.shape[-1]) for constant in constants])
        self.noises.load_state_dict({f"noise_{index}": c for index, c in enumerate(constants)})

    @property
    def synthesis(self) -> nn.Module:
        """W+ (N, num_ws, w_dim) -> image (N, C, resolution, resolution)."""
        return _SlicedSynthesis(self)

    def synthesize(self, w_plus: Tensor, noise: NoiseInput = "const", rng: torch.Generator | None = None) -> Tensor:
        check_w_plus(w_plus, self.num_ws, self.w_dim)
        full = self.generator
        unread = w_plus.new_zeros(w_plus.shape[0], full.num_ws - self.num_ws, self.w_dim)  # styles past the exit
        if isinstance(noise, str) and noise == "const":
            noise = self.noises.constants()
        if not isinstance(noise, str):  # the noise of the layers past the exit goes unread too
            noise = list(noise) + full.noises.constants()[len(noise):]
        with full.subnet(self.subnet.resolution, self.subnet.channels):
            return full.synthesize(torch.cat([w_plus, unread], dim=1), noise, rng)


class _SlicedSynthesis(nn.Module):
    """The synthesis part of a :class:`SlicedSubGenerator` (its ``noises`` are the part's noise buffers)."""

    def __init__(self, sliced: SlicedSubGenerator) -> None:
        super().__init__()
        self.sliced, self.noises = sliced, sliced.noises

    def forward(self, w_plus: Tensor, noise: NoiseInput = "const", rng: torch.Generator | None = None) -> Tensor:
        return self.sliced.synthesize(w_plus, noise, rng)


@torch.no_grad()
def sort_stylegan2_channels(generator: StyleGAN2Generator, n_latents: int = SORT_LATENTS, seed: int = 0,
                            batch: int = 10_000) -> StyleGAN2Generator:
    """Reorder ``generator``'s channels in place, most important first; its full images stay the same.

    Anycost GAN's rule: the channels of each layer's output are ranked by the layer that reads them next (the next
    StyledConv; the last to-RGB for the last layer), importance = sum of |weight| over (out, kh, kw) times the mean
    |modulation(w)| over ``n_latents`` mapped latents (z drawn with ``seed``). From the last layer back, each
    order permutes the producer's weight outputs and ``activate.bias`` (the constant input for the first) and
    every reader's weight inputs and modulation rows and bias. Returns ``generator``.
    """
    check_positive_int("n_latents", n_latents)
    check_positive_int("batch", batch)
    styled = [generator.conv1, *generator.convs]  # styled[j] reads tensor j (tensor 0: the constant)
    readers_to_rgb = {1: generator.to_rgb1, **{2 * k + 3: rgb for k, rgb in enumerate(generator.to_rgbs)}}
    last = len(generator.layer_channels) - 1
    rankers = [layer.conv for layer in styled] + [readers_to_rgb[last].conv]
    styles = _mean_abs_styles(generator, rankers, n_latents, seed, batch)
    for j in reversed(range(last + 1)):
        order = torch.argsort(channel_importance(rankers[j], styles[j]), descending=True)
        readers = ([styled[j].conv] if j < last else []) + ([readers_to_rgb[j].conv] if j in readers_to_rgb else [])
        for conv in readers:
            _permute_inputs(conv, order)
        if j == 0:
            generator.input.input.copy_(generator.input.input[:, order])
        else:
            producer = styled[j - 1]
            producer.conv.weight.copy_(producer.conv.weight[:, order])
            producer.activate.bias.copy_(producer.activate.bias[order])
    return generator


def channel_importance(conv: ModulatedConv2d, mean_abs_style: Tensor) -> Tensor:
    """(in,) importance of ``conv``'s input channels: sum of |weight| over (out, kh, kw) x the mean |style|."""
    return conv.weight.abs().sum(dim=(0, 1, 3, 4)) * mean_abs_style


def _mean_abs_styles(generator: StyleGAN2Generator, convs: list[ModulatedConv2d], n_latents: int, seed: int,
                     batch: int) -> list[Tensor]:
    """Per conv, the mean |modulation(w)| (in,) over ``n_latents`` latents w = mapping(z), z drawn with ``seed``."""
    rng = torch.Generator().manual_seed(seed)
    device = generator.style.w_avg.device
    totals = [torch.zeros(conv.in_channels, dtype=torch.float64, device=device) for conv in convs]
    for start in range(0, n_latents, batch):
        w = generator.style(torch.randn(min(batch, n_latents - start), generator.z_dim, generator=rng).to(device))
        for total, conv in zip(totals, convs):
            total += conv.modulation(w).abs().sum(dim=0, dtype=torch.float64)
    return [(total / n_latents).to(conv.weight.dtype) for total, conv in zip(totals, convs)]


def _permute_inputs(conv: ModulatedConv2d, order: Tensor) -> None:
    conv.weight.copy_(conv.weight[:, :, order])
    conv.modulation.weight.copy_(conv.modulation.weight[order])
    conv.modulation.bias.copy_(conv.modulation.bias[order])
