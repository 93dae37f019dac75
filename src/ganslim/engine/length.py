"""How long a run is, in each unit: epochs, steps (iterations) and images shown (kimg), one given, the others derived.

The data order is epoch by epoch whatever the unit (see :func:`ganslim.engine.loop.epoch_batches`): each process
runs ``steps_per_epoch`` batches of its shard per epoch, the last one maybe smaller. The images shown after ``step``
steps are therefore a pure function of the step (:meth:`RunLength.images_seen`), so a resumed run needs no
counter; a run given in kimg ends at the first step that has shown that many images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ganslim.config import TrainConfig
from ganslim.engine.distributed import DistInfo


def steps_per_epoch(num_items: int, batch_size: int, info: DistInfo) -> int:
    """Batches each rank runs per epoch (every rank runs the same number)."""
    per_rank = -(-num_items // info.world_size)
    return -(-per_rank // batch_size)


@dataclass(frozen=True)
class RunLength:
    """A run's length over ``num_items`` training items, ``batch_size`` per step and process, ``world_size``
    processes; ``unit`` is how the config gives it (``"epochs"``, ``"iterations"`` or ``"kimg"``)."""

    unit: str
    num_items: int
    batch_size: int
    world_size: int
    total_steps: int
    epochs: int = 0  # an epochs run: constant and decay epochs
    epochs_decay: int = 0
    kimg: float = 0.0  # a kimg run: what the config asked for

    @classmethod
    def of(cls, config: TrainConfig, num_items: int, info: DistInfo) -> RunLength:
        """The length ``config`` gives, over ``num_items`` items and ``info.world_size`` processes."""
        base = cls(config.length_unit, num_items, config.batch_size, info.world_size, 0)
        if base.unit == "epochs":
            total = base.steps_per_epoch * (config.epochs + config.epochs_decay)
            return cls(base.unit, num_items, config.batch_size, info.world_size, total, config.epochs,
                       config.epochs_decay)
        if base.unit == "iterations":
            return cls(base.unit, num_items, config.batch_size, info.world_size, config.iterations)
        return cls(base.unit, num_items, config.batch_size, info.world_size, base.steps_for(config.kimg),
                   kimg=config.kimg)

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.num_items, self.batch_size, DistInfo(world_size=self.world_size))

    @property
    def _per_rank(self) -> int:
        return -(-self.num_items // self.world_size)

    def images_seen(self, step: int) -> int:
        """Images every process together has shown after ``step`` steps (partial last batches counted as they are)."""
        epoch, done = divmod(step, self.steps_per_epoch)
        return self.world_size * (epoch * self._per_rank + min(done * self.batch_size, self._per_rank))

    def steps_for(self, kimg: float) -> int:
        """The first step after which at least ``kimg`` thousand images have been shown (at least 1)."""
        target = math.ceil(kimg * 1000 - 1e-6)
        epochs, rest = divmod(target, self.world_size * self._per_rank)
        return max(1, epochs * self.steps_per_epoch + -(-rest // (self.world_size * self.batch_size)))

    def period(self, step: int) -> int:
        """What the learning-rate schedules count: the epoch of ``step`` in an epochs run, else the step."""
        return step // self.steps_per_epoch if self.unit == "epochs" else step

    @property
    def periods(self) -> int:
        return self.epochs + self.epochs_decay if self.unit == "epochs" else self.total_steps

    def describe(self) -> str:
        """The start line's account: ``"1 + 3 decay epochs x 4 steps = 16 steps"``, ``"25 kimg = 782 steps of 32
        images (25.02 epochs of 32 steps)"``, ``"500 iterations (16 kimg, 16.03 epochs of 32 steps)"``."""
        total = self.total_steps
        epochs = f"{total / self.steps_per_epoch:.4g} epochs of {self.steps_per_epoch:,} steps"
        if self.unit == "epochs":
            return f"{self.epochs} + {self.epochs_decay} decay epochs x {self.steps_per_epoch:,} steps = {total:,} steps"
        images = self.world_size * self.batch_size
        if self.unit == "kimg":
            return f"{self.kimg:g} kimg = {total:,} steps of {images:,} images ({epochs})"
        return f"{total:,} iterations of {images:,} images ({self.images_seen(total) / 1000:.4g} kimg, {epochs})"
