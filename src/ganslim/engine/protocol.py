"""The protocol a training method implements so :func:`ganslim.engine.fit` can run it.

The engine never imports a method; it is handed a method class. The class provides::

    name: str                          # "pix2pix": run folder label, ``method`` key of config.yaml
    Config: type[TrainConfig]          # its frozen config dataclass (defaults live there)
    monitor: tuple[str, str] | None    # ("psnr", "max"): validation metric that picks best.pt; None: no pick
                                       # (an instance may set its own in __init__, e.g. FID only with weights)
    ema_networks: tuple[str, ...]      # names in networks() averaged when config.ema_decay or ema_kimg > 0
    needs_data: bool                   # optional, default True: config.data must name an existing folder
                                       # (False: the method samples its training items, e.g. a LatentDataset)
    accumulates: bool                  # optional, default False: train_step gives ctx.step its losses as
                                       # functions of a batch part, so config.accumulate > 1 applies (else refused)

    __init__(config, ctx: TrainContext)   # build networks on ctx.device, ctx.wrap() the trained ones,
                                          # create optimizers (weights init draws from the seeded global RNG)
    networks() -> dict[str, nn.Module]    # plain modules whose weights are checkpointed, by stable name
    optimizers() -> dict[str, Optimizer]  # by name; ctx.step(name, loss) updates one
    lr_schedules() -> dict[str, Schedule] # optimizers with a schedule of their own, counting the run's periods
                                          # (epochs of an epochs run, else steps); others follow config.lr_schedule;
                                          # {} for none
    train_dataset() -> Dataset            # items are dicts of tensors (and strings); needs __len__ (images, or
                                          # sampled items such as ganslim.data.LatentDataset's z); an
                                          # ``item_label`` attribute names them in the start line
    val_dataset() -> Dataset | None       # the validation split (never test); None: no validation
    train_step(batch) -> dict[str, Tensor | float]   # one iteration (all its updates); loss terms to log
    validate(batches: Iterable[dict]) -> dict[str, float]  # metrics over val batches (eval mode, no grad)
    visuals(batch) -> list[Tensor]        # grid columns, each (N, C, H, W) in [-1, 1]: input | output | target
    extra_state() -> dict                 # anything else a resume needs (e.g. image pools, own generators)
    load_extra_state(state: dict) -> None
    export(run_dir: Path) -> dict[str, Path]  # final models (called once, with the best weights loaded)
    model_specs() -> dict[str, tuple[str, str, dict]]  # optional (default {}): networks() a user may load from a
                                          # training checkpoint, name -> (kind, arch, arch_kwargs); recorded in
                                          # latest.pt / best.pt so `generate --ckpt RUN/checkpoints/latest.pt` works

Batches arrive on ``ctx.device``. The engine owns everything else: data order and sharding, the run's length,
learning-rate schedule, EMA, eval/train mode switching around validation and samples, logging, checkpoints and
resume. Randomness a method draws inside ``train_step`` must come from the global torch generator (saved in the
checkpoint), from its own generators saved through ``extra_state``, or from ``ctx.shared_generator`` (a function
of the step). What varies per step within the method (lazy regularisation every k steps) asks ``ctx.due(k)``
or reads ``ctx.steps_done``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Iterable, Protocol

import torch
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import Dataset

from ganslim.config import TrainConfig
from ganslim.engine.schedules import Schedule


class Method(Protocol):
    """See the module docstring."""

    name: ClassVar[str]
    Config: ClassVar[type[TrainConfig]]
    monitor: ClassVar[tuple[str, str] | None]
    ema_networks: ClassVar[tuple[str, ...]]

    def networks(self) -> dict[str, nn.Module]: ...

    def optimizers(self) -> dict[str, Optimizer]: ...

    def lr_schedules(self) -> dict[str, Schedule]: ...

    def train_dataset(self) -> Dataset: ...

    def val_dataset(self) -> Dataset | None: ...

    def train_step(self, batch: dict) -> dict[str, torch.Tensor | float]: ...

    def validate(self, batches: Iterable[dict]) -> dict[str, float]: ...

    def visuals(self, batch: dict) -> list[torch.Tensor]: ...

    def extra_state(self) -> dict: ...

    def load_extra_state(self, state: dict) -> None: ...

    def export(self, run_dir: Path) -> dict[str, Path]: ...


class MethodBase:
    """The protocol's defaults, for a method to inherit: its networks are ``self.nets`` and its optimizers
    ``self._optimizers`` (both set in ``__init__``), every optimizer follows the run's schedule, and a resume needs
    nothing beyond weights, optimizers and RNG states. A method overrides what it does differently."""

    needs_data: ClassVar[bool] = True
    accumulates: ClassVar[bool] = False
    nets: dict[str, nn.Module]
    _optimizers: dict[str, Optimizer]

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets)

    def optimizers(self) -> dict[str, Optimizer]:
        return self._optimizers

    def lr_schedules(self) -> dict[str, Schedule]:
        return {}

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {}
