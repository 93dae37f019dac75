"""Learning-rate schedules, as pure functions of the epoch (so a resumed run needs no scheduler state).

The reference pix2pix/CycleGAN schedule keeps the initial rate for ``epochs`` epochs, then decays it linearly
over ``epochs_decay`` epochs towards zero. Here epoch ``e`` (counted from 0) trains at::

    factor(e) = 1                                               for e <  epochs
    factor(e) = 1 - (e - epochs + 1) / (epochs_decay + 1)       for e >= epochs

so the last epoch trains at ``1 / (epochs_decay + 1)`` of the initial rate, as in the reference. The rate
changes at epoch boundaries only; the engine applies it before every step from the step count.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.optim import Optimizer


@dataclass(frozen=True)
class ConstantThenLinearDecay:
    """Multiplier of the initial learning rate for each epoch (see the module docstring)."""

    epochs: int
    epochs_decay: int

    def factor(self, epoch: int) -> float:
        if epoch < self.epochs:
            return 1.0
        return max(0.0, 1.0 - (epoch - self.epochs + 1) / (self.epochs_decay + 1))

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay


def remember_initial_lr(optimizer: Optimizer) -> None:
    """Store each param group's starting rate as ``initial_lr`` (the key torch schedulers use)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])


def apply_lr_factor(optimizer: Optimizer, factor: float) -> None:
    """Set every param group's rate to ``initial_lr * factor``."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
