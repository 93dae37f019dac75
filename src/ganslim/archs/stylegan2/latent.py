"""The entry points every StyleGAN2-family generator shares: z -> W (the mapping) -> W+ -> image (the synthesis).

A subclass sets ``style`` (a :class:`~ganslim.archs.stylegan2.generator.MappingNetwork`, holding ``w_avg``),
``z_dim``, ``w_dim``, ``num_ws`` (the W+ entries its synthesis reads), ``img_resolution`` and ``img_channels``, and
defines ``synthesis`` (a module W+ (N, num_ws, w_dim) -> image) and :meth:`LatentGenerator.synthesize`. Noise is
``"const"`` (the stored noise buffers, the default), ``"random"`` (drawn from ``rng``), ``"none"``, or a list of
tensors, one per noise input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganslim.errors import GanslimError
from ganslim.signature import LATENT, SIGNED, InputSpec, OutputSpec, Signature

NoiseInput = str | Sequence[Tensor]


class LatentGenerator(nn.Module):
    """z (N, z_dim) -> image (N, img_channels, img_resolution, img_resolution); see the module docstring."""

    style: nn.Module
    z_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    img_channels: int

    @property
    def mapping(self) -> nn.Module:
        """z (N, z_dim) -> w (N, w_dim); holds ``w_avg``."""
        return self.style

    @property
    def output_resolution(self) -> int:
        """The side of the images it returns now: ``img_resolution`` unless it runs as a smaller sub-generator."""
        return self.img_resolution

    @property
    def signature(self) -> Signature:
        return Signature((InputSpec("z", LATENT, self.z_dim, None, None),),
                         OutputSpec(self.img_channels, SIGNED, scale=None, resolution=self.output_resolution))

    def synthesize(self, w_plus: Tensor, noise: NoiseInput = "const", rng: torch.Generator | None = None) -> Tensor:
        """W+ (N, num_ws, w_dim) -> image, over this generator's layers."""
        raise NotImplementedError

    def map(self, z: Tensor, truncation_psi: float = 1.0) -> Tensor:
        """z (N, z_dim) -> W (N, w_dim), truncated toward ``w_avg`` when ``truncation_psi`` < 1."""
        return self.truncate(self.style(z), truncation_psi)

    def truncate(self, w: Tensor, truncation_psi: float) -> Tensor:
        """``w_avg + psi * (w - w_avg)`` for W (N, w_dim) or W+ (N, num_ws, w_dim); psi 1 returns ``w``."""
        if truncation_psi == 1:
            return w
        if not self.style.has_w_avg:
            raise GanslimError("this generator has no w_avg (its checkpoint stored none), so it cannot truncate: "
                               "estimate it first with ganslim.archs.stylegan2.estimate_w_avg(generator)")
        return torch.lerp(self.style.w_avg.to(w.dtype), w, truncation_psi)

    def broadcast(self, w: Tensor) -> Tensor:
        """W (N, w_dim) -> W+ (N, num_ws, w_dim), the same style at every layer."""
        self._check_w(w, "W", (w.shape[0], self.w_dim))
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def mix(self, w_first: Tensor, w_second: Tensor, crossover: int) -> Tensor:
        """Style mixing: W+ (N, num_ws, w_dim) taking layers [0, crossover) from W ``w_first`` (N, w_dim) and the
        rest from ``w_second`` (rosinality's ``inject_index``)."""
        if isinstance(crossover, bool) or not isinstance(crossover, int) or not 0 <= crossover <= self.num_ws:
            raise GanslimError(f"style-mixing crossover {crossover!r} is not a layer index in 0..{self.num_ws}")
        w_plus = self.broadcast(w_first)
        w_plus[:, crossover:] = self.broadcast(w_second)[:, crossover:]
        return w_plus

    def forward(self, z: Tensor, truncation_psi: float = 1.0, noise: NoiseInput = "const",
                rng: torch.Generator | None = None) -> Tensor:
        return self.synthesize(self.broadcast(self.map(z, truncation_psi)), noise, rng)

    def parts(self, batch: int = 1) -> dict[str, tuple[nn.Module, tuple[Tensor, ...]]]:
        """The separately measured parts and an example input for each, on the generator's device (the meta
        device too): ``mapping`` (z (batch, z_dim)) and ``synthesis`` (W+ (batch, num_ws, w_dim))."""
        device = self.style.w_avg.device
        return {"mapping": (self.mapping, (torch.randn(batch, self.z_dim, device=device),)),
                "synthesis": (self.synthesis, (torch.randn(batch, self.num_ws, self.w_dim, device=device),))}

    def _check_w(self, w: Tensor, what: str, shape: tuple[int, ...]) -> None:
        if tuple(w.shape) != shape:
            dims = ", ".join(["N", *map(str, shape[1:])])
            raise GanslimError(f"this generator takes {what} of shape ({dims}), got {tuple(w.shape)}")


def check_w_plus(w_plus: Tensor, num_ws: int, w_dim: int) -> None:
    """A one-line GanslimError unless ``w_plus`` is (N, num_ws, w_dim), what a synthesis network takes."""
    if w_plus.dim() != 3 or w_plus.shape[1:] != (num_ws, w_dim):
        raise GanslimError(f"synthesis takes W+ of shape (N, {num_ws}, {w_dim}), got {tuple(w_plus.shape)}")
