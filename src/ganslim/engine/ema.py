"""Exponential moving average of network weights, swapped in for validation, samples and export.

The decay is fixed (``ema_decay``) or follows a half-life in images (``ema_kimg``, StyleGAN2-ADA's): a step that
shows ``batch`` images decays by ``0.5 ** (batch / half_life_images)``, so the average forgets half of what it held
every ``ema_kimg`` thousand images whatever the batch size; with ``ema_rampup`` the half-life is at most
``ema_rampup`` times the images shown so far, so early averages are not dominated by the initial weights
(:func:`half_life_decay`). Both are functions of the step, so a resumed run needs only the averaged weights.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


def half_life_decay(batch_images: int, images_seen: int, half_life_kimg: float, rampup: float = 0.0) -> float:
    """StyleGAN2-ADA's per-step decay: ``0.5 ** (batch / h)`` for a step of ``batch_images`` images, ``h`` the
    half-life in images, ``min(half_life_kimg * 1000, images_seen * rampup)`` with a ramp-up (``images_seen``:
    before this step; the first step of a ramped run copies the weights)."""
    half_life = half_life_kimg * 1000
    if rampup > 0:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch_images / max(half_life, 1e-8))


class EMA:
    """Shadow copies of ``networks``' floating-point parameters (averaged) and buffers (copied).

    After each step ``shadow = decay * shadow + (1 - decay) * weight``, ``decay`` fixed here or given to
    :meth:`update`. Buffers such as BatchNorm running statistics are copied as they are.
    """

    def __init__(self, networks: dict[str, nn.Module], decay: float | None = None) -> None:
        if decay is not None and not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.networks = networks
        self.decay = decay
        self.shadow = {name: {key: value.detach().clone() for key, value in net.state_dict().items()}
                       for name, net in networks.items()}
        self._trained: dict[str, dict[str, torch.Tensor]] | None = None  # the networks' own weights while swapped

    @torch.no_grad()
    def update(self, decay: float | None = None) -> None:
        """One step of the average, with this step's ``decay`` (default: the fixed one)."""
        decay = self.decay if decay is None else decay
        if decay is None or not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA update needs a decay in [0, 1), got {decay}")
        for name, net in self.networks.items():
            shadow = self.shadow[name]
            for key, value in net.state_dict().items():
                if value.is_floating_point():
                    shadow[key].lerp_(value, 1.0 - decay)
                else:
                    shadow[key].copy_(value)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Run the block with the averaged weights loaded, then put the training weights back exactly."""
        backup = {name: {key: value.detach().clone() for key, value in net.state_dict().items()}
                  for name, net in self.networks.items()}
        try:
            for name, net in self.networks.items():
                net.load_state_dict(self.shadow[name])
            self._trained = backup
            yield
        finally:
            self._trained = None
            for name, net in self.networks.items():
                net.load_state_dict(backup[name])

    def trained_weights(self, name: str) -> dict[str, torch.Tensor]:
        """Network ``name``'s own (not averaged) weights, also while the averages are swapped in (for an export
        that writes both, as rosinality's ``g`` and ``g_ema``)."""
        if self._trained is not None:
            return self._trained[name]
        return {key: value.detach() for key, value in self.networks[name].state_dict().items()}

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {key: value.detach().cpu() for key, value in shadow.items()}
                for name, shadow in self.shadow.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, shadow in self.shadow.items():
            for key, value in state[name].items():
                shadow[key].copy_(value)
