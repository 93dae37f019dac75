"""What the engine hands a method: its device, DDP wrapping, autocast and one call per optimizer update."""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer

from ganslim.config import TrainConfig
from ganslim.engine.distributed import DistInfo
from ganslim.engine.seed import derive_seed


class TrainContext:
    """Services a method uses inside ``__init__`` and ``train_step``.

    * ``device``, ``dist`` (rank / world size), ``config``;
    * :meth:`wrap` a network that is trained (DistributedDataParallel under torchrun, itself otherwise);
    * :meth:`autocast` around forward passes and losses (float16 on CUDA with ``--amp``, else a no-op);
    * :meth:`step` to update one optimizer from a loss: zero grads, (scaled) backward, optional gradient
      clipping, optimizer step;
    * :meth:`frozen` to stop gradients into a network (e.g. the discriminator during the generator's update);
    * :meth:`seed_for` for a method's own random generators (e.g. an image pool).
    """

    def __init__(self, config: TrainConfig, device: torch.device, dist: DistInfo) -> None:
        self.config = config
        self.device = device
        self.dist = dist
        self.amp = bool(config.amp)
        self._optimizers: dict[str, Optimizer] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}

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

    def step(self, name: str, loss: torch.Tensor) -> None:
        """Update optimizer ``name`` from ``loss`` (a scalar): zero grads, backward, clip, step."""
        optimizer, scaler = self._optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.config.grad_clip > 0:
            scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        scaler.step(optimizer)
        scaler.update()

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
