"""Learning-rate schedules, as pure functions of the run's position (so a resumed run needs no scheduler state).

A schedule maps a *period* to a multiplier of the initial rate: the period is the epoch (counted from 0) when the
run's length is given in epochs, and the step when it is given in iterations or kimg (see
:class:`ganslim.engine.length.RunLength`). The rate changes at period boundaries only; the engine applies it
before every step.

The reference pix2pix/CycleGAN schedule keeps the initial rate for ``epochs`` epochs, then decays it linearly
over ``epochs_decay`` epochs towards zero. Here period ``e`` trains at::

    factor(e) = 1                                               for e <  epochs
    factor(e) = 1 - (e - epochs + 1) / (epochs_decay + 1)       for e >= epochs

so the last epoch trains at ``1 / (epochs_decay + 1)`` of the initial rate, as in the reference.

:data:`LR_SCHEDULES` holds the schedules the ``lr_schedule`` option names, each built from the config and the run
length: ``linear_decay`` (the one above; a run of iterations or kimg decays over its second half, as the reference's
100 + 100 epochs), ``constant`` and ``cosine`` (``(1 + cos(pi * period / periods)) / 2``, from 1 towards 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from torch.optim import Optimizer

from ganslim.registry import Registry

if TYPE_CHECKING:
    from ganslim.config import TrainConfig
    from ganslim.engine.length import RunLength


class Schedule(Protocol):
    """Multiplier of the initial learning rate for each period (see the module docstring)."""

    def factor(self, period: int) -> float: ...


@dataclass(frozen=True)
class ConstantThenLinearDecay:
    """Constant for ``epochs`` periods, then linear towards zero over ``epochs_decay`` (see the module docstring)."""

    epochs: int
    epochs_decay: int

    def factor(self, epoch: int) -> float:
        if epoch < self.epochs:
            return 1.0
        return max(0.0, 1.0 - (epoch - self.epochs + 1) / (self.epochs_decay + 1))

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay


@dataclass(frozen=True)
class Constant:
    """The initial rate throughout."""

    def factor(self, period: int) -> float:
        return 1.0


@dataclass(frozen=True)
class Cosine:
    """Half a cosine from 1 at period 0 towards 0 after ``periods`` periods."""

    periods: int

    def factor(self, period: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(period, self.periods) / self.periods))


LR_SCHEDULES: Registry[Schedule] = Registry("learning-rate schedule")  # builders (config, length) -> Schedule


@LR_SCHEDULES.register("linear_decay")
def _linear_decay(config: TrainConfig, length: RunLength) -> Schedule:
    if length.unit == "epochs":
        return ConstantThenLinearDecay(config.epochs, config.epochs_decay)
    half = length.periods // 2
    return ConstantThenLinearDecay(length.periods - half, half)


@LR_SCHEDULES.register("constant")
def _constant(config: TrainConfig, length: RunLength) -> Schedule:
    return Constant()


@LR_SCHEDULES.register("cosine")
def _cosine(config: TrainConfig, length: RunLength) -> Schedule:
    return Cosine(length.periods)


def run_schedule(config: TrainConfig, length: RunLength) -> Schedule:
    """The schedule ``config.lr_schedule`` names, over ``length``."""
    return LR_SCHEDULES.get(config.lr_schedule)(config, length)


def remember_initial_lr(optimizer: Optimizer) -> None:
    """Store each param group's starting rate as ``initial_lr`` (the key torch schedulers use)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])


def apply_lr_factor(optimizer: Optimizer, factor: float) -> None:
    """Set every param group's rate to ``initial_lr * factor``."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
