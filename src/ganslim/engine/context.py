"""What the engine hands a method: its device, DDP wrapping, autocast and one call per optimizer update."""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer

from ganslim.config import TrainConfig
from ganslim.engine.distributed import DistInfo
from ganslim.engine.ema import EMA
from ganslim.engine.seed import derive_seed

_SHARED_STREAM = 0x5EED  # separates the per-step shared draws from other seeds derived from the config seed


class TrainContext:
    """Services a method uses inside ``__init__`` and ``train_step``.

    * ``device``, ``dist`` (rank / world size), ``config``;
    * :meth:`wrap` a network that is trained (DistributedDataParallel under torchrun, itself otherwise);
    * :meth:`autocast` around forward passes and losses (float16 on CUDA with ``--amp``, else a no-op);
    * :meth:`step` to update one optimizer from a loss: zero grads, (scaled) backward, optional gradient
      clipping, optimizer step; with ``config.accumulate`` > 1 and a loss given as a function of a batch part,
      the gradients of the parts add up before the one optimizer step;
    * :meth:`frozen` to stop gradients into a network (e.g. the discriminator during the generator's update);
    * :meth:`seed_for` for a method's own random generators (e.g. an image pool);
    * ``steps_done`` and ``images_seen`` (steps finished before this one, and the images every process together
      showed in them), for schedules of a method's own; :meth:`due` for terms run every k steps (lazy
      regularisation, :mod:`ganslim.engine.lazy`);
    * :meth:`shared_generator`, :meth:`shared_randn`, :meth:`this_rank` and :meth:`mean_over_ranks` for draws over
      the whole step's
      batch: N processes then draw what one process with N times the batch draws, and a resumed run what the
      uninterrupted one drew;
    * ``ema``: the engine's :class:`~ganslim.engine.ema.EMA` (None without one).
    """

    def __init__(self, config: TrainConfig, device: torch.device, dist: DistInfo) -> None:
        self.config = config
        self.device = device
        self.dist = dist
        self.amp = bool(config.amp)
        self._optimizers: dict[str, Optimizer] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.steps_done = 0
        self.images_seen = 0
        self.ema: EMA | None = None

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` (already on ``device``) in DistributedDataParallel when several processes train.

        Keep the plain module too: checkpoints, validation and frozen forward passes use it. The wrapper
        averages gradients across ranks in ``backward``; every forward through it must reach the loss.
        """
        if not self.dist.enabled:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the block when ``--amp`` is on (CUDA float16), else nothing."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.float16)

    def bind_optimizers(self, optimizers: dict[str, Optimizer]) -> None:
        """Called by the engine once the method exists: one gradient scaler per optimizer."""
        self._optimizers = dict(optimizers)
        self.scalers = {name: torch.amp.GradScaler(self.device.type, enabled=self.amp) for name in optimizers}

    def step(self, name: str, loss: torch.Tensor | LossOfPart, batch: dict | None = None,
             grad_clip: float | None = None) -> torch.Tensor:
        """Update optimizer ``name``: zero grads, backward, clip, step. Returns the (detached) loss.

        ``grad_clip`` is this optimizer's gradient-norm clip (0: none) when it differs from ``config.grad_clip``
        (e.g. AGD clips its supernet's weights, not its architecture parameters).

        ``loss`` is a scalar tensor, or a function of a batch part returning one; then ``batch`` (a dict whose
        tensors hold the batch along dim 0) is split into ``config.accumulate`` parts, rows ``k, k + A, k + 2A, ...``
        (as the data is sharded over processes), and each part's loss, weighted by its share of the rows, adds its
        gradient. For losses that are means over samples this is the whole batch's gradient, one part in memory at
        a time.
        """
        optimizer, scaler = self._optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        if callable(loss):
            if batch is None:
                raise ValueError("ctx.step with a loss function needs the batch to split into parts")
            total = torch.zeros((), device=self.device)
            for part, share in split_batch(batch, self.config.accumulate):
                part_loss = loss(part) * share
                scaler.scale(part_loss).backward()
                total = total + part_loss.detach().float()
        else:
            total = loss.detach()
            scaler.scale(loss).backward()
        clip = self.config.grad_clip if grad_clip is None else grad_clip
        if clip > 0:
            scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, clip)
        scaler.step(optimizer)
        scaler.update()
        return total

    @staticmethod
    @contextmanager
    def frozen(*modules: nn.Module) -> Iterator[None]:
        """Turn off ``requires_grad`` of every parameter of ``modules`` for the block, then restore it."""
        params = [p for module in modules for p in module.parameters()]
        saved = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(params, saved):
                p.requires_grad_(flag)

    def seed_for(self, *keys: int) -> int:
        """A seed for a method-owned generator, distinct per (config seed, rank, keys)."""
        return derive_seed(self.config.seed, self.dist.rank, *keys)

    def due(self, every: int) -> bool:
        """Whether a term run every ``every`` steps runs in this step (steps 0, every, 2 * every, ...)."""
        return self.steps_done % every == 0

    def shared_generator(self, *keys: int) -> torch.Generator:
        """A CPU generator for this step's draws, the same on every rank: seeded by (config seed, step, keys)."""
        return torch.Generator().manual_seed(derive_seed(self.config.seed, _SHARED_STREAM, self.steps_done, *keys))

    def shared_randn(self, generator: torch.Generator, count: int, *shape: int) -> torch.Tensor:
        """This rank's ``count`` rows (count, *shape) of N(0, 1) draws from ``generator`` (a :meth:`shared_generator`)
        made for the whole step's batch of every process, on ``device``."""
        return self.this_rank(torch.randn(count * self.dist.world_size, *shape, generator=generator))

    def this_rank(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows ``rank, rank + N, ...`` of ``rows`` (drawn for the whole step's batch of N processes), on
        ``device``: the rows whose data this rank holds."""
        return rows[self.dist.rank::self.dist.world_size].to(self.device)

    def mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over the ranks, gradients flowing back to each rank's own (itself in one process)."""
        if not self.dist.enabled:
            return value
        from torch.distributed.nn.functional import all_reduce  # autograd-aware; loaded only by a DDP run

        return all_reduce(value) / self.dist.world_size


LossOfPart = Callable[[dict], torch.Tensor]


def split_batch(batch: dict, parts: int) -> list[tuple[dict, float]]:
    """``batch``'s tensors (and lists) split into up to ``parts`` parts of rows ``k, k + parts, ...``, each with its
    share of the rows: ``[(part, share), ...]``."""
    sizes = {len(value) for value in batch.values() if isinstance(value, (torch.Tensor, list))}
    if len(sizes) != 1:
        raise ValueError(f"the batch to split holds entries of different lengths {sorted(sizes)}")
    rows = sizes.pop()
    count = max(1, min(parts, rows))
    split = []
    for k in range(count):
        part = {key: value[k::count] if isinstance(value, (torch.Tensor, list)) else value
                for key, value in batch.items()}
        split.append((part, len(range(k, rows, count)) / rows))
    return split
