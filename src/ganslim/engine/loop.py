"""The training loop every method runs in: ``fit(config, MethodClass)``.

Per step the engine feeds one batch to ``method.train_step`` (which updates its optimizers through
``ctx.step``), updates the EMA, and on schedule logs losses, writes a sample grid, validates (rank 0; a better
score on the method's ``monitor`` metric writes ``best.pt``) and checkpoints. At the end it validates,
checkpoints, loads the best weights and calls ``method.export``.

The length is given in epochs, iterations or kimg (:class:`~ganslim.engine.length.RunLength`, which derives the
others); the learning rate follows the ``lr_schedule`` the config names (or a method's own, per optimizer), the
EMA a fixed decay or a half-life in kimg (:mod:`ganslim.engine.ema`).

Exact resume: the data order of an epoch is a pure function of (seed, epoch), augmentation of (seed, epoch,
index) (see ``ganslim.data``), the learning rate and the EMA decay of the step; a checkpoint holds weights,
optimizer and gradient-scaler state, every rank's RNG state and the method's extra state, and a resumed run skips
the batches of the current epoch already seen. A run stopped after the checkpoint of step k and resumed therefore
reaches the same weights as a run that never stopped. A run resumed with another number of processes (or batch
size) continues from the images it has seen (:func:`resumed_step`).

Safety: the image sizes the config fixes are checked against every network before a run folder exists; rank 0
holds the run folder's lock (:class:`~ganslim.engine.runs.RunLock`) while it runs; loss terms are checked at
every log step and, with the weights, before every checkpoint, so a non-finite value stops the run with the
last good ``latest.pt`` and ``best.pt`` kept; a failed write (disk full) stops it with one line, the previous
checkpoint intact; Ctrl-C raises :class:`~ganslim.errors.RunInterrupted` saying how to resume.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from ganslim.config import TrainConfig
from ganslim.engine import distributed as ddp
from ganslim.engine.context import TrainContext
from ganslim.engine.ema import EMA, half_life_decay
from ganslim.engine.length import RunLength, steps_per_epoch
from ganslim.engine.logging import RunLogger, format_duration, image_grid
from ganslim.engine.protocol import Method
from ganslim.engine.runs import (
    BEST,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LATEST,
    RunLock,
    error_reason,
    new_run_dir,
    resolve_resume,
    resume_folder,
    write_config,
)
from ganslim.engine.schedules import apply_lr_factor, remember_initial_lr, run_schedule
from ganslim.engine.seed import derive_seed, rng_state, seed_everything, set_rng_state
from ganslim.engine.state import cpu_state_dict, load_training_state, load_weights, save_best, save_latest
from ganslim.errors import GanslimError, RunInterrupted
from ganslim.signature import ImageSides, combined

_ORDER_STREAM = 0x0DE5  # separates the data-order seed from other seeds derived from the config seed
T = TypeVar("T")


@dataclass
class RunResult:
    """What a finished ``fit`` reports (the same object on every rank)."""

    method: str
    run_dir: Path
    step: int
    total_steps: int
    seconds: float
    best: dict | None = None  # {"metric", "value", "step"} of best.pt
    last_metrics: dict[str, float] = field(default_factory=dict)
    exported: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        """The one-line report printed at the end of ``ganslim train``."""
        parts = [f"{self.method}: {self.step} steps in {format_duration(self.seconds)}"]
        if self.best is not None:
            parts.append(f"best val {self.best['metric']} {self.best['value']:.4g} at step {self.best['step']} "
                         f"({CHECKPOINT_DIR}/{BEST})")
        elif self.last_metrics:
            parts.append("val " + ", ".join(f"{k} {v:.4g}" for k, v in self.last_metrics.items()))
        else:
            parts.append("no validation metric: the models are the final weights")
        parts.append(f"run folder {self.run_dir}")
        if self.exported:
            parts.append("models: " + ", ".join(_relative(path, self.run_dir) for path in self.exported.values()))
        return "; ".join(parts)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def resumed_step(step: int, num_items: int, saved: tuple[int, int], now: tuple[int, int]) -> tuple[int, int]:
    """Where a run checkpointed at ``step`` under ``saved = (batch size, processes)`` continues under ``now``.

    Steps count per process, so they mean other things under another world. Within an epoch the processes
    consume its shuffled order from the start, ``batch size x processes`` images per step (see
    :func:`epoch_batches`): the images seen are a prefix of the order. The run continues in the same epoch at the
    last step of the new world inside that prefix; the images after it (fewer than one new step's worth) are
    seen again, none is skipped.

    Returns:
        (step under ``now``, images of the current epoch seen twice).
    """
    saved_steps = steps_per_epoch(num_items, saved[0], ddp.DistInfo(world_size=saved[1]))
    epoch, done = divmod(step, saved_steps)
    new_done, repeated = divmod(done * saved[0] * saved[1], now[0] * now[1])
    return epoch * steps_per_epoch(num_items, now[0], ddp.DistInfo(world_size=now[1])) + new_done, repeated


def check_image_sides(networks: dict[str, nn.Module], sides: dict[str, int]) -> None:
    """Raise a one-line GanslimError if a configured image side (``{"crop_size": 256}``) is one a network with
    an ``image_sides`` rule (see :mod:`ganslim.signature`) cannot take."""
    rules = {name: net.image_sides for name, net in networks.items()
             if isinstance(getattr(net, "image_sides", None), ImageSides)}
    for key, side in sides.items():
        for name, rule in rules.items():
            if not rule.accepts(side):
                fits = " or ".join(f"{key}={fit}" for fit in combined(rules.values()).nearest(side))
                raise GanslimError(f"{key} {side} does not fit network '{name}' ({type(networks[name]).__name__}),"
                                   f" which takes image sides that are {rule.describe()}: set {fits} (or change the "
                                   f"architecture)")


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, info: ddp.DistInfo) -> list[list[int]]:
    """This rank's batches of dataset indices for ``epoch``: a (seed, epoch)-determined shuffle, sharded."""
    generator = torch.Generator().manual_seed(derive_seed(seed, _ORDER_STREAM, epoch))
    order = ddp.shard_indices(torch.randperm(num_items, generator=generator).tolist(), info)
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _shapes(item: dict) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in item.items() if isinstance(value, torch.Tensor)}


def same_shape_batches(batches: Iterable[dict], batch_size: int) -> Iterator[dict]:
    """Consecutive one-image ``batches`` joined into batches of up to ``batch_size`` whose tensors have the same
    shapes: validation images of different sizes (a super-resolution val split) are never stacked."""
    group: list[dict] = []
    for batch in batches:
        if group and (len(group) == batch_size or _shapes(batch) != _shapes(group[0])):
            yield _joined(group)
            group = []
        group.append(batch)
    if group:
        yield _joined(group)


def _joined(batches: list[dict]) -> dict:
    """Collated batches as one: tensors concatenated along the batch dimension, lists (e.g. paths) chained."""
    return {key: torch.cat([batch[key] for batch in batches]) if isinstance(value, torch.Tensor)
            else [entry for batch in batches for entry in batch[key]] for key, value in batches[0].items()}


def fit(config: TrainConfig, method_cls: type, *, resume: str | Path | None = None,
        progress: bool = True) -> RunResult:
    """Train ``method_cls`` (see :mod:`ganslim.engine.protocol`) with ``config``; new run or ``resume``.

    ``resume`` is a run folder or its ``checkpoints/latest.pt``; the run continues in that folder. Under
    ``torchrun`` every process calls ``fit`` and trains its shard; rank 0 logs and writes.
    """
    started = time.perf_counter()
    with ddp.distributed_session(config.device) as (info, device):
        return _Run(config, method_cls, info, device, progress).run(resume, started)


class _Run:
    def __init__(self, config: TrainConfig, method_cls: type, info: ddp.DistInfo, device: torch.device,
                 progress: bool) -> None:
        if config.amp and device.type != "cuda":
            raise GanslimError(f"--amp needs a CUDA device but training runs on {device}: drop --amp")
        if getattr(method_cls, "needs_data", True):
            if not config.data:
                raise GanslimError("no dataset given: pass --data DIR (or data: in the --config file)")
            if not Path(config.data).exists():
                raise GanslimError(f"data folder '{config.data}' not found: pass an existing dataset folder to "
                                   f"--data")
        if config.accumulate > 1 and not getattr(method_cls, "accumulates", False):
            raise GanslimError(f"{method_cls.name} updates from whole batches, it cannot accumulate "
                               f"{config.accumulate} parts: set accumulate=1 (a smaller --batch-size saves memory)")
        self.config, self.info, self.device, self.progress = config, info, device, progress
        self.name = method_cls.name
        seed_everything(config.seed, info.rank)
        self.ctx = TrainContext(config, device, info)
        self.method: Method = method_cls(config, self.ctx)
        self.networks: dict[str, nn.Module] = self.method.networks()
        self.optimizers = self.method.optimizers()
        for optimizer in self.optimizers.values():
            remember_initial_lr(optimizer)
        self.ctx.bind_optimizers(self.optimizers)
        self.ema = None
        if (config.ema_decay > 0 or config.ema_kimg > 0) and method_cls.ema_networks:
            self.ema = EMA({key: self.networks[key] for key in method_cls.ema_networks},
                           config.ema_decay if config.ema_decay > 0 else None)
        self.ctx.ema = self.ema
        self.monitor = self.method.monitor
        self.train_set: Dataset = self.method.train_dataset()
        self.val_set: Dataset | None = self.method.val_dataset()
        if len(self.train_set) == 0:
            raise GanslimError(f"the training set under '{config.data}' is empty: add images")
        self.length = RunLength.of(config, len(self.train_set), info)
        self.schedule = run_schedule(config, self.length)
        self.schedules = self.method.lr_schedules()
        check_image_sides(self.networks, config.fixed_image_sides())
        self.steps_per_epoch = self.length.steps_per_epoch
        self.total_steps = self.length.total_steps
        self.step = 0
        self.checkpoint_step: int | None = None  # step of the latest.pt on disk
        self.best: dict | None = None
        self.last_metrics: dict[str, float] = {}
        self.notices: list[str] = []  # lines for the log once it exists (stale lock, resume conversion)
        self._sample_batch: dict | None = None

    # ------------------------------------------------------------------ phases

    def run(self, resume: str | Path | None, started: float) -> RunResult:
        if resume is None:
            self.run_dir, latest = Path(ddp.on_main(self.info, lambda: str(new_run_dir(self.config, self.name)))), None
        else:
            self.run_dir, latest = resolve_resume(resume)
        self.checkpoint_dir = self.run_dir / CHECKPOINT_DIR
        lock = RunLock(self.run_dir)
        try:
            ddp.on_main(self.info, lock.acquire)
            if lock.notice:
                self.notices.append(lock.notice)
            if latest is not None:
                self.step = self._restore(latest)
                ddp.on_main(self.info, lambda: self._write(f"'{self.run_dir / CONFIG_FILE}'", lambda: write_config(
                    self.run_dir, self.config, self.name)))
            return self._run_locked(resume is not None, started)
        except KeyboardInterrupt:
            checkpoint = (None if self.checkpoint_step is None
                          else (self.checkpoint_step, str(self.checkpoint_dir / LATEST)))
            raise RunInterrupted(self.step, str(self.run_dir), str(resume_folder(self.run_dir)), checkpoint) from None
        finally:
            lock.release()

    def _run_locked(self, resumed: bool, started: float) -> RunResult:
        step = self.step
        self.log = RunLogger(self.run_dir, self.info.is_main, self.total_steps, step, self.progress)
        try:
            items = getattr(self.train_set, "item_label", "training images")
            self.log.message(
                f"{self.name}: {len(self.train_set)} {items}; {self.length.describe()} on {self.device}"
                + (f" x {self.info.world_size} processes" if self.info.enabled else "")
                + (f", resumed at step {step:,}" if resumed else "") + f"; run folder {self.run_dir}")
            for line in self.notices:
                self.log.message(line)
            if self.monitor is not None and self.val_set is None:
                self.log.message(f"no validation split under '{self.config.data}': no best.pt is chosen, the "
                                 f"final weights are exported")
            start = step
            step = self._train(step)
            if step > start or self.checkpoint_step != step:
                self._finish(step)
            exported = ddp.on_main(self.info, lambda: self._write("the exported models", self._export))
        finally:
            self.log.close()
        best = ddp.broadcast_object(self.info, self.best)
        return RunResult(self.name, self.run_dir, step, self.total_steps, time.perf_counter() - started, best,
                         self.last_metrics, exported)

    def _train(self, step: int) -> int:
        config = self.config
        while step < self.total_steps:
            epoch, skip = divmod(step, self.steps_per_epoch)
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(epoch)
            batches = epoch_batches(len(self.train_set), config.batch_size, config.seed, epoch, self.info)[skip:]
            for batch in self._loader(self.train_set, batches):
                self._before_step(step)
                losses = self.method.train_step(batch)
                if self.ema is not None:
                    self.ema.update(self._ema_decay(step))
                step = self.step = step + 1
                self.log.track(losses)
                if step % config.log_every == 0 or step == self.total_steps:
                    self._check_finite(step)
                    lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
                    self.log.log_losses(step, lrs)
                if step % self.steps_per_epoch == 0:
                    self.log.log_epoch(step // self.steps_per_epoch, -(-self.total_steps // self.steps_per_epoch))
                if step == self.total_steps:
                    break
                if config.sample_every and step % config.sample_every == 0:
                    self._samples(step)
                if config.val_every and step % config.val_every == 0:
                    self._validate(step)
                if config.ckpt_every and step % config.ckpt_every == 0:
                    self._checkpoint(step)
        self._count(step)  # what the samples, validation and export at the end see
        return step

    def _before_step(self, step: int) -> None:
        """The learning rates of ``step``'s period, and the method's view of the steps and images done."""
        period = self.length.period(step)
        for name, optimizer in self.optimizers.items():
            apply_lr_factor(optimizer, self.schedules.get(name, self.schedule).factor(period))
        self._count(step)

    def _count(self, step: int) -> None:
        self.ctx.steps_done, self.ctx.images_seen = step, self.length.images_seen(step)

    def _ema_decay(self, step: int) -> float | None:
        """This step's decay of a half-life average (StyleGAN2-ADA's); None: the fixed ``ema_decay``."""
        config = self.config
        if config.ema_kimg <= 0:
            return None
        seen = self.length.images_seen(step)
        return half_life_decay(self.length.images_seen(step + 1) - seen, seen, config.ema_kimg, config.ema_rampup)

    def _finish(self, step: int) -> None:
        self._samples(step)
        self._validate(step)
        self._checkpoint(step)

    # ------------------------------------------------------------------ data

    def _loader(self, dataset: Dataset, batches: list[list[int]]) -> Iterator[dict]:
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=self.config.num_workers,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator())  # keeps the global RNG (saved for resume) untouched
        for batch in loader:
            yield self._to_device(batch)

    def _to_device(self, batch: dict) -> dict:
        return {key: value.to(self.device, non_blocking=True) if isinstance(value, torch.Tensor) else value
                for key, value in batch.items()}

    def _val_batches(self) -> Iterator[dict]:
        count = len(self.val_set) if not self.config.val_images else min(len(self.val_set), self.config.val_images)
        return same_shape_batches(self._loader(self.val_set, [[index] for index in range(count)]),
                                  self.config.batch_size)

    # ------------------------------------------------------------------ evaluation

    @contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode, no grad, EMA weights, and a forked RNG so evaluation never shifts training draws."""
        modes = {name: net.training for name, net in self.networks.items()}
        with ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            stack.enter_context(torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []))
            if self.ema is not None:
                stack.enter_context(self.ema.swapped_in())
            for net in self.networks.values():
                net.eval()
            try:
                yield
            finally:
                for name, net in self.networks.items():
                    net.train(modes[name])

    def _samples(self, step: int) -> None:
        ddp.on_main(self.info, lambda: self._samples_on_main(step))

    def _samples_on_main(self, step: int) -> None:
        if self._sample_batch is None:
            source = self.val_set if self.val_set is not None and len(self.val_set) else self.train_set
            items = [source[i] for i in range(min(self.config.sample_images, len(source)))]
            self._sample_batch = self._to_device(default_collate([item for item in items
                                                                  if _shapes(item) == _shapes(items[0])]))
        with self._evaluating():
            columns = self.method.visuals(self._sample_batch)
        self._write(f"the sample grid of step {step}", lambda: self.log.log_samples(step, image_grid(columns)))

    def _validate(self, step: int) -> None:
        if self.val_set is None or len(self.val_set) == 0:
            return
        self._check_finite(step, weights=True)
        ddp.on_main(self.info, lambda: self._validate_on_main(step))

    def _validate_on_main(self, step: int) -> None:
        with self._evaluating():
            metrics = {key: float(value) for key, value in self.method.validate(self._val_batches()).items()}
        self.last_metrics = metrics
        self.log.log_validation(step, metrics)
        if self.monitor is not None:
            self._update_best(step, metrics)

    def _update_best(self, step: int, metrics: dict[str, float]) -> None:
        metric, mode = self.monitor
        if metric not in metrics:
            raise RuntimeError(f"{self.name}.validate() returned no '{metric}' (its monitor metric)")
        value = metrics[metric]
        if not math.isfinite(value) or (self.best is not None and not (
                value > self.best["value"] if mode == "max" else value < self.best["value"])):
            return
        self.best = {"metric": metric, "value": value, "step": step}
        self._write(f"'{self.checkpoint_dir / BEST}'", lambda: save_best(
            self.checkpoint_dir, step, self._network_weights(), self._ema_weights(), metric, value,
            self._model_specs()))
        self.log.message(f"step {step}: new best val {metric} {value:.4g} -> {self.checkpoint_dir / BEST}")

    # ------------------------------------------------------------------ failures

    def _write(self, what: str, write: Callable[[], T]) -> T:
        """``write()``, with an OSError (disk full, a folder turned read-only) as one line saying what is kept."""
        try:
            return write()
        except OSError as error:
            raise GanslimError(self._stopped(f"cannot write {what} ({error_reason(error)})",
                                             "free disk space or make the folder writable")) from None

    def _check_finite(self, step: int, weights: bool = False) -> None:
        """Stop every rank alike if a loss term since the last log step, or (``weights``) a weight, is not finite,
        before anything non-finite reaches a checkpoint."""
        found = self.log.non_finite_loss()
        if found is None and weights:
            found = self._non_finite_weights(step)
        problems = [problem for problem in ddp.gather_objects(self.info, found) if problem is not None]
        if problems:
            bad_step, what = min(problems)
            raise GanslimError(self._stopped(f"{what} at step {bad_step}", "lower the learning rate (--set lr=...), "
                                             "clip gradients (--set grad_clip=1) or drop --amp"))

    def _non_finite_weights(self, step: int) -> tuple[int, str] | None:
        averaged = self.ema.shadow if self.ema is not None else {}
        groups = [(f"network '{name}'", net.state_dict()) for name, net in self.networks.items()]
        groups += [(f"the EMA of network '{name}'", shadow) for name, shadow in averaged.items()]
        for label, tensors in groups:
            floats = [tensor for tensor in tensors.values() if tensor.is_floating_point()]
            if floats and not bool(torch.stack([torch.isfinite(tensor).all() for tensor in floats]).all()):
                return step, f"{label} has non-finite weights"
        return None

    def _stopped(self, what: str, fix: str) -> str:
        """The line that stops the run: ``what`` happened, the last good checkpoint is kept, ``fix`` and resume."""
        if self.checkpoint_step is None:
            return (f"{what}: training stopped before its first checkpoint (run folder {self.run_dir}): {fix}, then "
                    f"start again")
        return (f"{what}: training stopped; the last good checkpoint, step {self.checkpoint_step}, is kept in "
                f"{self.checkpoint_dir / LATEST}: {fix}, then resume with --resume {resume_folder(self.run_dir)}")

    # ------------------------------------------------------------------ checkpoints

    def _network_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: cpu_state_dict(net) for name, net in self.networks.items()}

    def _ema_weights(self) -> dict | None:
        return self.ema.state_dict() if self.ema is not None else None

    def _model_specs(self) -> dict[str, dict]:
        """The method's loadable networks as plain dicts (methods outside MethodBase may lack the hook)."""
        specs = getattr(self.method, "model_specs", dict)()
        return {name: {"kind": kind, "arch": arch, "arch_kwargs": dict(kwargs)}
                for name, (kind, arch, kwargs) in specs.items() if name in self.networks}

    def _checkpoint(self, step: int) -> None:
        ddp.broadcast_buffers(self.info, self.networks.values())
        self._check_finite(step, weights=True)
        ddp.assert_in_sync(self.info, self.networks)
        ranks = ddp.gather_to_main(self.info, {"rng": rng_state(), "method": self.method.extra_state()})

        def save() -> None:
            state = {
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "scalers": {name: scaler.state_dict() for name, scaler in self.ctx.scalers.items()
                            if scaler.is_enabled()},
                "best": self.best,
                "world_size": self.info.world_size,
                "batch_size": self.config.batch_size,
                "ranks": ranks,
            }
            self._write(f"the checkpoint of step {step} to {self.checkpoint_dir}", lambda: save_latest(
                self.checkpoint_dir, step, self._network_weights(), self._ema_weights(), state, self._model_specs()))

        ddp.on_main(self.info, save)
        self.checkpoint_step = step

    def _restore(self, latest: Path) -> int:
        weights, state = load_training_state(latest)
        self._load_networks(latest, weights)
        for name, optimizer in self.optimizers.items():
            if name not in state["optimizers"]:
                raise GanslimError(f"'{latest}' has no optimizer '{name}': resume with the method and "
                                   f"config the run was started with")
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scaler in self.ctx.scalers.items():
            if scaler.is_enabled() and name in state["scalers"]:
                scaler.load_state_dict(state["scalers"][name])
        self.best = state.get("best")
        ranks = state["ranks"]
        self.checkpoint_step = step = int(weights["step"])
        if len(ranks) == self.info.world_size:
            set_rng_state(ranks[self.info.rank]["rng"])
            self.method.load_extra_state(ranks[self.info.rank]["method"])
        else:  # a different process count: data order still continues, random draws cannot
            seed_everything(derive_seed(self.config.seed, step), self.info.rank)
            self.method.load_extra_state(ranks[min(self.info.rank, len(ranks) - 1)]["method"])
        saved = (int(state.get("batch_size", self.config.batch_size)), int(state["world_size"]))
        now = (self.config.batch_size, self.info.world_size)
        if saved != now:
            step, repeated = resumed_step(step, len(self.train_set), saved, now)
            self.notices.append(
                f"the checkpoint of step {self.checkpoint_step} was written by {saved[1]} process(es) of batch "
                f"{saved[0]}; as {now[1]} of batch {now[0]} the run continues at step {step:,} of "
                f"{self.total_steps:,}" + (f" ({repeated} images of epoch {step // self.steps_per_epoch + 1} are "
                                           f"seen twice)" if repeated else ""))
        return step

    def _load_networks(self, path: Path, weights: dict) -> None:
        saved = weights.get("networks") or {}
        if set(saved) != set(self.networks):
            raise GanslimError(f"'{path}' holds networks {sorted(saved)}, this {self.name} run has "
                               f"{sorted(self.networks)}: resume with the method the run was started with")
        for name, net in self.networks.items():
            try:
                net.load_state_dict(saved[name])
            except RuntimeError:
                raise GanslimError(f"'{path}' network '{name}' does not fit the configured architecture: "
                                   f"resume without changing architecture options") from None
        if self.ema is not None:
            if weights.get("ema"):
                self.ema.load_state_dict(weights["ema"])
            else:
                self.ema = self.ctx.ema = EMA(self.ema.networks, self.ema.decay)

    def _export(self) -> dict[str, Path]:
        best_path = self.checkpoint_dir / BEST
        if self.monitor is not None and self.best is not None and best_path.is_file():
            self._load_networks(best_path, load_weights(best_path))
        with self._evaluating():
            exported = self.method.export(self.run_dir)
        return exported
