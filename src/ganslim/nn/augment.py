"""DiffAugment (Zhao et al., NeurIPS 2020): differentiable augmentation of real and generated images alike, so a
discriminator trained on few images does not memorise them (mit-han-lab/data-efficient-gans, its arithmetic).

Operations, applied in the policy's order to (N, C, H, W) images in [-1, 1]:

* ``color``: brightness ``x + (u - 0.5)``, saturation ``(x - mean_c) * 2u + mean_c``, contrast
  ``(x - mean_chw) * (u + 0.5) + mean_chw``, ``u`` uniform in [0, 1) per sample;
* ``translation``: shift by up to 1/8 of each side (integer pixels, uniform per sample), zeros shifted in;
* ``cutout``: zero one square of half each side at a uniform position per sample (clipped at the borders).

Randomness is explicit: :meth:`DiffAugment.draw` returns the per-sample parameters (drawn from a ``torch.Generator``),
``augment(images, params)`` applies them, so a method can draw them for the whole step's batch and give each
process its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ganslim.errors import GanslimError

OPERATIONS = ("color", "translation", "cutout")
OFF = "none"
TRANSLATION_RATIO, CUTOUT_RATIO = 0.125, 0.5
Params = dict[str, Tensor]


@dataclass(frozen=True)
class DiffAugment:
    """The operations of a policy, in order (empty: no augmentation)."""

    operations: tuple[str, ...]

    @classmethod
    def parse(cls, policy: str) -> DiffAugment:
        """``"color,translation,cutout"`` (any of :data:`OPERATIONS`, comma-separated) or ``"none"``."""
        if policy.strip() in (OFF, ""):
            return cls(())
        operations = tuple(part.strip() for part in policy.split(","))
        unknown = [op for op in operations if op not in OPERATIONS]
        if unknown or len(set(operations)) != len(operations):
            problem = f"'{unknown[0]}' is no DiffAugment operation" if unknown else "an operation is repeated"
            raise GanslimError(f"augment policy '{policy}': {problem}; use {OFF} or a comma-separated list of "
                               f"{', '.join(OPERATIONS)} (e.g. color,translation,cutout)")
        return cls(operations)

    def __bool__(self) -> bool:
        return bool(self.operations)

    def draw(self, count: int, height: int, width: int, generator: torch.Generator | None = None) -> Params:
        """Per-sample parameters for ``count`` images of ``height`` x ``width`` (CPU tensors, ``count`` rows)."""
        params: Params = {}
        if "color" in self.operations:
            params["color"] = torch.rand(count, 3, generator=generator)
        if "translation" in self.operations:
            limits = torch.tensor([int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)])
            unit = torch.rand(count, 2, generator=generator)
            params["translation"] = (unit * (2 * limits + 1)).floor().long() - limits
        if "cutout" in self.operations:
            size = _cutout_size(height, width)
            extent = torch.tensor([height + 1 - size[0] % 2, width + 1 - size[1] % 2])
            params["cutout"] = (torch.rand(count, 2, generator=generator) * extent).floor().long()
        return params

    def __call__(self, images: Tensor, params: Params) -> Tensor:
        """(N, C, H, W) -> the same images augmented with ``params`` (from :meth:`draw`, N rows)."""
        for operation in self.operations:
            values = params[operation].to(images.device)
            if operation == "color":
                images = _color(images, values.to(images.dtype))
            elif operation == "translation":
                images = _translate(images, values)
            else:
                images = _cut_out(images, values)
        return images


def _cutout_size(height: int, width: int) -> tuple[int, int]:
    return int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)


def _color(x: Tensor, u: Tensor) -> Tensor:
    """Brightness, saturation, contrast with ``u`` (N, 3) uniform draws."""
    x = x + (u[:, 0] - 0.5).view(-1, 1, 1, 1)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (u[:, 1] * 2).view(-1, 1, 1, 1) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (u[:, 2] + 0.5).view(-1, 1, 1, 1) + mean


def _translate(x: Tensor, shift: Tensor) -> Tensor:
    """Pixel (i, j) of sample n reads (i + shift[n, 0], j + shift[n, 1]); outside the image reads 0."""
    n, _, height, width = x.shape
    rows = (torch.arange(height, device=x.device).view(1, -1, 1) + shift[:, 0].view(-1, 1, 1) + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=x.device).view(1, 1, -1) + shift[:, 1].view(-1, 1, 1) + 1).clamp(0, width + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    batch = torch.arange(n, device=x.device).view(-1, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def _cut_out(x: Tensor, offset: Tensor) -> Tensor:
    """Zero the (H/2, W/2) square centred at ``offset`` (N, 2) of each sample, clipped at the borders."""
    n, _, height, width = x.shape
    size = _cutout_size(height, width)
    rows = (torch.arange(size[0], device=x.device).view(1, -1, 1) + offset[:, 0].view(-1, 1, 1)
            - size[0] // 2).clamp(0, height - 1)
    cols = (torch.arange(size[1], device=x.device).view(1, 1, -1) + offset[:, 1].view(-1, 1, 1)
            - size[1] // 2).clamp(0, width - 1)
    mask = torch.ones(n, height, width, dtype=x.dtype, device=x.device)
    mask[torch.arange(n, device=x.device).view(-1, 1, 1), rows, cols] = 0
    return x * mask.unsqueeze(1)
