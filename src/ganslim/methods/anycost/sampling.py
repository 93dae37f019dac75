"""What Anycost GAN draws each step: the sides the sub-generators stop at and the channel configuration (one width
per generator layer) they run, from a ``torch.Generator`` (the engine's per-step shared one, so the draws are a
function of (seed, step) on every process), and the code a conditioned discriminator reads for a configuration."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ganslim.archs.stylegan2 import config_one_hot
from ganslim.archs.stylegan2.subnets import CHANNEL_RATIOS, flexible_choices, uniform_channels

SANDWICH_FULL, SANDWICH_SMALLEST = 0.25, 0.5  # a draw below 0.25: the full widths; below 0.5: the 0.25 config


def top_sides(size: int, count: int) -> tuple[int, ...]:
    """The ``count`` largest sides a generator of side ``size`` renders: size, size/2, ..."""
    return tuple(size >> i for i in range(count))


def sample_sides(rng: torch.Generator, sides: Sequence[int], count: int) -> tuple[int, ...]:
    """``count`` distinct entries of ``sides``, largest first."""
    picks = torch.randperm(len(sides), generator=rng)[:count].tolist()
    return tuple(sorted((sides[index] for index in picks), reverse=True))


def _index(rng: torch.Generator, count: int) -> int:
    return int(torch.randint(count, (), generator=rng))


def sample_channels(rng: torch.Generator, full: Sequence[int], mode: str) -> tuple[int, ...]:
    """A configuration (one width per layer of a generator of widths ``full``) drawn as ``mode`` says: ``uniform``
    (one ratio of :data:`CHANNEL_RATIOS` for every layer, Anycost's uniform config), ``flexible`` (each layer one of
    its :func:`flexible_choices`) or ``sandwich`` (25% full, 25% the uniform 0.25 config, 50% flexible)."""
    if mode == "sandwich":
        draw = float(torch.rand((), generator=rng))
        if draw < SANDWICH_FULL:
            return tuple(full)
        if draw < SANDWICH_SMALLEST:
            return uniform_channels(full, CHANNEL_RATIOS[0])
        mode = "flexible"
    if mode == "uniform":
        return uniform_channels(full, CHANNEL_RATIOS[_index(rng, len(CHANNEL_RATIOS))])
    return tuple(list(choices.values())[_index(rng, len(choices))] for choices in flexible_choices(full))


def config_code(full: Sequence[int], channels: Sequence[int]) -> Tensor:
    """The conditioned discriminator's code (n_layers, 4) of a configuration: per layer, the one-hot of the smallest
    ratio whose flexible width holds the layer's width (so a width that several ratios give, such as a capped
    layer's, has one code whichever way it was drawn)."""
    ratios = [min(ratio for ratio, most in choices.items() if most >= width)
              for choices, width in zip(flexible_choices(full), channels)]
    return config_one_hot(ratios)
