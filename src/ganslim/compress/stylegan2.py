"""Anycost GAN's surgery on a StyleGAN2 generator: copy a sub-generator out with real tensors, and sort every layer's
channels by importance so that the first k of each layer are the ones a narrower sub-generator should keep."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ganslim.archs.stylegan2.channels import check_positive_int
from ganslim.archs.stylegan2.generator import StyleGAN2Generator
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
