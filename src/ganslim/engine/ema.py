"""Exponential moving average of network weights, swapped in for validation, samples and export."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


class EMA:
    """Shadow copies of ``networks``' floating-point parameters (averaged) and buffers (copied).

    After each step ``shadow = decay * shadow + (1 - decay) * weight``. Buffers such as BatchNorm
    running statistics are copied as they are.
    """

    def __init__(self, networks: dict[str, nn.Module], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.networks = networks
        self.decay = decay
        self.shadow = {name: {key: value.detach().clone() for key, value in net.state_dict().items()}
                       for name, net in networks.items()}

    @torch.no_grad()
    def update(self) -> None:
        for name, net in self.networks.items():
            shadow = self.shadow[name]
            for key, value in net.state_dict().items():
                if value.is_floating_point():
                    shadow[key].lerp_(value, 1.0 - self.decay)
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
            yield
        finally:
            for name, net in self.networks.items():
                net.load_state_dict(backup[name])

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {key: value.detach().cpu() for key, value in shadow.items()}
                for name, shadow in self.shadow.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, shadow in self.shadow.items():
            for key, value in state[name].items():
                shadow[key].copy_(value)
