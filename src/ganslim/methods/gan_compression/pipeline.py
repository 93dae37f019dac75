"""All of GAN Compression in one resumable run folder: supernet -> search -> fine-tune -> export.

``run_pipeline(config)`` creates ``out_dir/NNNNN-gan-compression-NAME/`` holding::

    config.yaml                               the resolved PipelineConfig (read back by --resume)
    pipeline.json                             finished stages and their folders
    00000-gan-compression-supernet-NAME/      stage 1: supernet.pt, discriminator.pt, adapters.pt, checkpoints/
    00001-gan-compression-search-NAME/        stage 2: candidates.jsonl/.json/.csv, result.json
    00002-gan-compression-finetune-NAME/      stage 3: generator.pt (compact), checkpoints/best.pt, ...
    generator.pt                              stage 4: the compact student (what translate / profile take)
    summary.json                              teacher vs student: parameters, MACs, held-out / val metrics

With ``supernet`` set (a supernet run folder or its ``supernet.pt``), stage 1 is skipped and that supernet is
searched under this run's budget: train once, search as many budgets as needed without retraining.

``run_pipeline(config, resume=RUN)`` skips finished stages and continues the unfinished one (a training stage
from its last checkpoint, the search from its progress file); ``stop_after`` ends after a stage. The
training stages run under ``ganslim.engine.fit`` (progress bar, TensorBoard, checkpoints), so under
``torchrun`` every stage is shared across the processes; the export runs on rank 0.

Run as separate commands, a stage starts from the run folder of the stage before (see :mod:`.inherit`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ganslim.archs import build_generator
from ganslim.atomic import atomic_write_text
from ganslim.compress.search import format_macs
from ganslim.config import TrainConfig, option
from ganslim.data import data_kind
from ganslim.engine import distributed as ddp
from ganslim.engine import fit
from ganslim.engine.runs import CHECKPOINT_DIR, LATEST, RunLock, open_run_dir, run_label, write_config
from ganslim.errors import GanslimError
from ganslim.methods.gan_compression import STAGES
from ganslim.methods.gan_compression.config import TITLE, DistillConfig, resolve_defaults
from ganslim.methods.gan_compression.data import training_items, validation_items
from ganslim.methods.gan_compression.distill import FinetuneDistillation, SupernetDistillation
from ganslim.methods.gan_compression.export import export_student
from ganslim.methods.gan_compression.networks import (
    GENERATOR_FILE,
    find_supernet,
    find_teacher_discriminator,
    load_teacher,
    load_teacher_discriminator,
    student_kwargs,
)
from ganslim.methods.gan_compression.search import SearchConfig, check_budget, read_result, run_search

METHOD = "gan-compression"
STATE_FILE = "pipeline.json"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class PipelineConfig(SearchConfig):
    """Every option of the stages; ``epochs`` / ``epochs_decay`` are the supernet's training length."""

    finetune_epochs: int = option(100, "fine-tune: epochs at the initial learning rate", min=0)
    finetune_epochs_decay: int = option(100, "fine-tune: epochs of linear learning-rate decay to zero", min=0)

    def check(self) -> None:
        super().check()
        if self.finetune_epochs + self.finetune_epochs_decay < 1:
            raise GanslimError("finetune_epochs + finetune_epochs_decay is 0: fine-tune at least one epoch")
        if self.fixed_channels:
            raise GanslimError("fixed_channels is chosen by the search in the pipeline: drop it, or run the stages "
                               "separately (gan-compression-finetune --channels ...)")


def stage_config(config: PipelineConfig, cls: type[TrainConfig], run_dir: Path, **changes) -> TrainConfig:
    """The ``cls`` config of a stage: the pipeline's values for ``cls``'s keys, its folder, ``changes``."""
    names = {item.name for item in dataclasses.fields(cls)}
    values = {key: value for key, value in dataclasses.asdict(config).items() if key in names}
    return cls(**{**values, "out_dir": str(run_dir), **changes})


# ------------------------------------------------------------------------------------------ the pipeline


def _stage_dirs(run_dir: Path, label: str) -> list[Path]:
    pattern = re.compile(rf"^\d{{5,}}-{re.escape(label)}$")
    return sorted(entry for entry in run_dir.iterdir() if entry.is_dir() and pattern.match(entry.name))


def _read_state(run_dir: Path) -> dict:
    path = run_dir / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"stages": {}}


def _write_state(run_dir: Path, state: dict) -> None:
    atomic_write_text(json.dumps(state, indent=1) + "\n", run_dir / STATE_FILE)


@dataclass
class PipelineResult:
    """Where each stage left its output; ``comparison`` (teacher vs student, ``summary.json``) once exported."""

    run_dir: Path
    stages: dict
    comparison: dict | None = None

    def summary(self) -> str:
        """The one line ``ganslim compress gan-compression`` ends with."""
        if self.comparison is None:
            done = ", ".join(self.stages) or "none"
            return f"{METHOD}: stopped; finished stages: {done}; resume with --resume {self.run_dir}"
        s, t = self.comparison["student"], self.comparison.get("teacher", {})
        line = (f"{METHOD}: student {'_'.join(map(str, s['channels']))}: {s['params'] / 1e6:.3g}M params, "
                f"{format_macs(s['macs_published'])} MACs published at {self.comparison['size']}x{self.comparison['size']}")
        if "macs_published" in t:
            line += f" ({t['macs_published'] / s['macs_published']:.1f}x fewer than the teacher)"
        holdout, teacher_psnr = s.get("holdout", {}), t.get("holdout", {}).get("psnr")
        if teacher_psnr is not None:
            line += f"; held-out psnr {holdout['psnr']:.2f} dB (teacher {teacher_psnr:.2f} dB)"
        elif "psnr_teacher" in holdout:
            line += (f"; held-out psnr to the teacher's outputs {holdout['psnr_teacher']:.2f} dB (unpaired data: "
                     f"no ground truth to score the teacher)")
        return line + f"; model {self.run_dir / GENERATOR_FILE}"


def run_pipeline(config: PipelineConfig, *, resume: str | os.PathLike | None = None, stop_after: str | None = None,
                 progress: bool = True) -> PipelineResult:
    """Run (or continue) every stage of GAN Compression in one run folder; see the module docstring."""
    if stop_after is not None and stop_after not in STAGES:
        raise GanslimError(f"unknown stage '{stop_after}'; choose one of: {', '.join(STAGES)}")
    with ddp.distributed_session(config.device) as (info, _):
        return _Pipeline(config, info, progress).run(resume, stop_after)


class _Pipeline:
    def __init__(self, config: PipelineConfig, info: ddp.DistInfo, progress: bool) -> None:
        self.config = resolve_defaults(config)
        self.info, self.progress = info, progress
        data_kind(config.data, TITLE)  # a bad data folder fails before anything trains
        training_items(self.config)  # so does a bad image (building a dataset decodes every file)
        validation_items(self.config)
        if config.supernet:
            find_supernet(config.supernet)  # and a bad supernet, before the run folder exists
        if not config.supernet or config.teacher_discriminator:  # and a bad discriminator a stage would load
            discriminator = find_teacher_discriminator(self.config)
            if discriminator is not None:
                load_teacher_discriminator(self.config, discriminator)

    def check_budget(self) -> None:
        """Refuse an impossible budget before training, on an untrained supernet of the same widths."""
        teacher = load_teacher(self.config, torch.device("cpu"))
        supernet = build_generator("super_mobile_resnet", **student_kwargs(self.config, teacher))
        check_budget(self.config, supernet)

    def run(self, resume: str | os.PathLike | None, stop_after: str | None) -> PipelineResult:
        self.check_budget()
        run_dir = open_run_dir(self.info, self.config, METHOD, resume, f"'ganslim compress {METHOD}'")
        if resume is not None and not (run_dir / STATE_FILE).is_file():
            raise GanslimError(f"'{run_dir}' is not a {METHOD} run folder (no {STATE_FILE}): pass the folder "
                               f"'ganslim compress {METHOD}' made")
        self.run_dir = run_dir
        lock = RunLock(run_dir)  # each stage's own folder is locked by its fit; this guards pipeline.json
        try:
            if self.info.is_main:
                lock.acquire()
            return self._run_stages(stop_after)
        finally:
            lock.release()

    def _run_stages(self, stop_after: str | None) -> PipelineResult:
        run_dir = self.run_dir
        state = ddp.broadcast_object(self.info, _read_state(run_dir) if self.info.is_main else None)
        if self.info.is_main:
            write_config(run_dir, self.config, METHOD)
            _write_state(run_dir, state)
        steps = {"supernet": self._supernet, "search": self._search, "finetune": self._finetune,
                 "export": self._export}
        for stage in STAGES:
            if stage not in state["stages"]:
                state["stages"][stage] = steps[stage](state["stages"])
                if self.info.is_main:
                    _write_state(run_dir, state)
                ddp.barrier(self.info)
            if stage == stop_after:
                break
        summary = state["stages"].get("export", {}).get("summary")
        return PipelineResult(run_dir, state["stages"], summary)

    # -------------------------------------------------------------- stages

    def _train(self, method_cls: type, config: DistillConfig) -> str:
        """Fit a training stage, continuing its folder under the run if it has a checkpoint."""
        label = run_label(method_cls.name, config)
        resumable = [d for d in _stage_dirs(self.run_dir, label) if (d / CHECKPOINT_DIR / LATEST).is_file()]
        result = fit(config, method_cls, resume=resumable[-1] if resumable else None, progress=self.progress)
        return str(result.run_dir)

    def _supernet(self, done: dict) -> dict:
        if self.config.supernet:
            return {"run_dir": str(find_supernet(self.config.supernet).parent), "reused": True}
        config = stage_config(self.config, DistillConfig, self.run_dir)
        return {"run_dir": self._train(SupernetDistillation, config)}

    def _search(self, done: dict) -> dict:
        config = stage_config(self.config, SearchConfig, self.run_dir, supernet=done["supernet"]["run_dir"])
        label = run_label("gan-compression-search", config)
        started = _stage_dirs(self.run_dir, label)
        result = run_search(config, resume=started[-1] if started else None, progress=self.progress)
        return {"run_dir": str(result.run_dir), "channels": result.best["channels"]}

    def _finetune(self, done: dict) -> dict:
        channels = ",".join(map(str, done["search"]["channels"]))
        config = stage_config(self.config, DistillConfig, self.run_dir, supernet=done["supernet"]["run_dir"],
                              fixed_channels=channels, epochs=self.config.finetune_epochs,
                              epochs_decay=self.config.finetune_epochs_decay)
        return {"run_dir": self._train(FinetuneDistillation, config)}

    def _export(self, done: dict) -> dict:
        summary = None
        if self.info.is_main:
            summary = export_student(Path(done["finetune"]["run_dir"]) / GENERATOR_FILE,
                                     self.run_dir / GENERATOR_FILE, self.config,
                                     search_result=read_result(done["search"]["run_dir"]))
            atomic_write_text(json.dumps(summary, indent=1) + "\n", self.run_dir / SUMMARY_FILE)
        summary = ddp.broadcast_object(self.info, summary)
        return {"model": str(self.run_dir / GENERATOR_FILE), "summary": summary}
