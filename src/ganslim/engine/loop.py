"""The training loop every method runs in: ``fit(config, MethodClass)``.

Per step the engine feeds one batch to ``method.train_step`` (which updates its optimizers through
``ctx.step``), updates the EMA, and on schedule logs losses, writes a sample grid, validates (rank 0; a better
score on the method's ``monitor`` metric writes ``best.pt``) and checkpoints. At the end it validates,
checkpoints, loads the best weights and calls ``method.export``.

Exact resume: the data order of an epoch is a pure function of (seed, epoch), augmentation of (seed, epoch,
index) (see ``ganslim.data``), the learning rate of the epoch; a checkpoint holds weights, optimizer and
gradient-scaler state, every rank's RNG state and the method's extra state, and a resumed run skips the
batches of the current epoch already seen. A run stopped after the checkpoint of step k and resumed therefore
reaches the same weights as a run that never stopped.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from ganslim.config import TrainConfig
from ganslim.engine import distributed as ddp
from ganslim.engine.context import TrainContext
from ganslim.engine.ema import EMA
from ganslim.engine.logging import RunLogger, image_grid
from ganslim.engine.protocol import Method
from ganslim.engine.runs import BEST, CHECKPOINT_DIR, LATEST, create_run_dir, resolve_resume, run_label, write_config
from ganslim.engine.schedules import ConstantThenLinearDecay, apply_lr_factor, remember_initial_lr
from ganslim.engine.seed import derive_seed, rng_state, seed_everything, set_rng_state
from ganslim.engine.state import cpu_state_dict, load_training_state, load_weights, save_best, save_latest
from ganslim.errors import GanslimError

_ORDER_STREAM = 0x0DE5  # separates the data-order seed from other seeds derived from the config seed


@dataclass
class RunResult:
    """What a finished ``fit`` reports (the same object on every rank; ``exported`` only on rank 0)."""

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
        minutes, seconds = divmod(int(round(self.seconds)), 60)
        parts = [f"{self.method}: {self.step} steps in {minutes}m{seconds:02d}s"]
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


def steps_per_epoch(num_items: int, batch_size: int, info: ddp.DistInfo) -> int:
    """Batches each rank runs per epoch (every rank runs the same number)."""
    per_rank = -(-num_items // info.world_size)
    return -(-per_rank // batch_size)


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, info: ddp.DistInfo) -> list[list[int]]:
    """This rank's batches of dataset indices for ``epoch``: a (seed, epoch)-determined shuffle, sharded."""
    generator = torch.Generator().manual_seed(derive_seed(seed, _ORDER_STREAM, epoch))
    order = ddp.shard_indices(torch.randperm(num_items, generator=generator).tolist(), info)
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def fit(config: TrainConfig, method_cls: type, *, resume: str | Path | None = None,
        progress: bool = True) -> RunResult:
    """Train ``method_cls`` (see :mod:`ganslim.engine.protocol`) with ``config``; new run or ``resume``.

    ``resume`` is a run folder or its ``checkpoints/latest.pt``; the run continues in that folder. Under
    ``torchrun`` every process calls ``fit`` and trains its shard; rank 0 logs and writes.
    """
    started = time.perf_counter()
    joined_here = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info, device = ddp.init_distributed(config.device)
    try:
        return _Run(config, method_cls, info, device, progress).run(resume, started)
    finally:
        if joined_here:
            ddp.shutdown_distributed()


class _Run:
    def __init__(self, config: TrainConfig, method_cls: type, info: ddp.DistInfo, device: torch.device,
                 progress: bool) -> None:
        if config.amp and device.type != "cuda":
            raise GanslimError(f"--amp needs a CUDA device but training runs on {device}: drop --amp")
        if not config.data:
            raise GanslimError("no dataset given: pass --data DIR (or data: in the --config file)")
        if not Path(config.data).exists():
            raise GanslimError(f"data folder '{config.data}' not found: pass an existing dataset folder to --data")
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
        if config.ema_decay > 0 and method_cls.ema_networks:
            self.ema = EMA({key: self.networks[key] for key in method_cls.ema_networks}, config.ema_decay)
        self.monitor = method_cls.monitor
        self.train_set: Dataset = self.method.train_dataset()
        self.val_set: Dataset | None = self.method.val_dataset()
        if len(self.train_set) == 0:
            raise GanslimError(f"the training set under '{config.data}' is empty: add images")
        self.schedule = ConstantThenLinearDecay(config.epochs, config.epochs_decay)
        self.schedules = self.method.lr_schedules()
        self.steps_per_epoch = steps_per_epoch(len(self.train_set), config.batch_size, info)
        self.total_steps = self.steps_per_epoch * self.schedule.total_epochs
        self.best: dict | None = None
        self.last_metrics: dict[str, float] = {}
        self._sample_batch: dict | None = None

    # ------------------------------------------------------------------ phases

    def run(self, resume: str | Path | None, started: float) -> RunResult:
        step = 0
        if resume is not None:
            run_dir, latest = resolve_resume(resume)
            step = self._restore(latest)
        else:
            run_dir = ddp.broadcast_object(self.info, create_run_dir(self.config.out_dir, run_label(
                self.name, self.config)) if self.info.is_main else None)
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / CHECKPOINT_DIR
        if self.info.is_main:
            write_config(self.run_dir, self.config, self.name)
        self.log = RunLogger(self.run_dir, self.info.is_main, self.total_steps, step, self.progress)
        try:
            self.log.message(
                f"{self.name}: {len(self.train_set)} training images, {self.steps_per_epoch} steps/epoch x "
                f"{self.schedule.total_epochs} epochs = {self.total_steps} steps on {self.device}"
                + (f" x {self.info.world_size} processes" if self.info.enabled else "")
                + (f", resumed at step {step}" if resume is not None else "") + f"; run folder {self.run_dir}")
            if self.monitor is not None and self.val_set is None:
                self.log.message(f"no validation split under '{self.config.data}': no best.pt is chosen, the "
                                 f"final weights are exported")
            start = step
            step = self._train(step)
            if step > start or not (self.checkpoint_dir / LATEST).is_file():
                self._finish(step)
            exported = self._export() if self.info.is_main else {}
            ddp.barrier(self.info)
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
            for name, optimizer in self.optimizers.items():
                apply_lr_factor(optimizer, self.schedules.get(name, self.schedule).factor(epoch))
            batches = epoch_batches(len(self.train_set), config.batch_size, config.seed, epoch, self.info)[skip:]
            for batch in self._loader(self.train_set, batches):
                losses = self.method.train_step(batch)
                if self.ema is not None:
                    self.ema.update()
                step += 1
                self.log.track(losses)
                if step % config.log_every == 0 or step == self.total_steps:
                    lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
                    self.log.log_losses(step, lrs)
                if step == self.total_steps:
                    break
                if config.sample_every and step % config.sample_every == 0:
                    self._samples(step)
                if config.val_every and step % config.val_every == 0:
                    self._validate(step)
                if config.ckpt_every and step % config.ckpt_every == 0:
                    self._checkpoint(step)
        return step

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
        indices = list(range(count))
        size = self.config.batch_size
        return self._loader(self.val_set, [indices[i:i + size] for i in range(0, count, size)])

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
        if not self.info.is_main:
            return
        if self._sample_batch is None:
            source = self.val_set if self.val_set is not None and len(self.val_set) else self.train_set
            count = min(self.config.sample_images, len(source))
            self._sample_batch = self._to_device(default_collate([source[i] for i in range(count)]))
        with self._evaluating():
            columns = self.method.visuals(self._sample_batch)
        self.log.log_samples(step, image_grid(columns))

    def _validate(self, step: int) -> None:
        if self.val_set is None or len(self.val_set) == 0:
            return
        if self.info.is_main:
            with self._evaluating():
                metrics = {key: float(value) for key, value in self.method.validate(self._val_batches()).items()}
            self.last_metrics = metrics
            self.log.log_validation(step, metrics)
            if self.monitor is not None:
                self._update_best(step, metrics)
        ddp.barrier(self.info)

    def _update_best(self, step: int, metrics: dict[str, float]) -> None:
        metric, mode = self.monitor
        if metric not in metrics:
            raise RuntimeError(f"{self.name}.validate() returned no '{metric}' (its monitor metric)")
        value = metrics[metric]
        if self.best is not None and not (value > self.best["value"] if mode == "max" else value < self.best["value"]):
            return
        self.best = {"metric": metric, "value": value, "step": step}
        save_best(self.checkpoint_dir, step, self._network_weights(), self._ema_weights(), metric, value)
        self.log.message(f"step {step}: new best val {metric} {value:.4g} -> {self.checkpoint_dir / BEST}")

    # ------------------------------------------------------------------ checkpoints

    def _network_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: cpu_state_dict(net) for name, net in self.networks.items()}

    def _ema_weights(self) -> dict | None:
        return self.ema.state_dict() if self.ema is not None else None

    def _checkpoint(self, step: int) -> None:
        ddp.broadcast_buffers(self.info, self.networks.values())
        ddp.assert_in_sync(self.info, self.networks)
        ranks = ddp.gather_to_main(self.info, {"rng": rng_state(), "method": self.method.extra_state()})
        if self.info.is_main:
            state = {
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "scalers": {name: scaler.state_dict() for name, scaler in self.ctx.scalers.items()
                            if scaler.is_enabled()},
                "best": self.best,
                "world_size": self.info.world_size,
                "ranks": ranks,
            }
            save_latest(self.checkpoint_dir, step, self._network_weights(), self._ema_weights(), state)
        ddp.barrier(self.info)

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
        step = int(weights["step"])
        if len(ranks) == self.info.world_size:
            set_rng_state(ranks[self.info.rank]["rng"])
            self.method.load_extra_state(ranks[self.info.rank]["method"])
        else:  # a different process count: data order still continues, random draws cannot
            seed_everything(derive_seed(self.config.seed, step), self.info.rank)
            self.method.load_extra_state(ranks[min(self.info.rank, len(ranks) - 1)]["method"])
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
                self.ema = EMA(self.ema.networks, self.ema.decay)

    def _export(self) -> dict[str, Path]:
        best_path = self.checkpoint_dir / BEST
        if self.monitor is not None and self.best is not None and best_path.is_file():
            self._load_networks(best_path, load_weights(best_path))
        with self._evaluating():
            exported = self.method.export(self.run_dir)
        return exported
