"""All of GAN Compression in one resumable run folder: supernet -> search -> fine-tune -> export.

The pipeline is a staged run (:mod:`ganslim.engine.staged`) of four stages. ``run_pipeline(config)`` creates
``out_dir/NNNNN-gan-compression-NAME/`` holding::

    config.yaml                               the resolved PipelineConfig (read back by --resume)
    pipeline.json                             finished stages and their folders
    00000-gan-compression-supernet-NAME/      stage 1: supernet.pt, discriminator.pt, adapters.pt, checkpoints/
    00001-gan-compression-search-NAME/        stage 2: candidates.jsonl/.json/.csv, result.json
    00002-gan-compression-finetune-NAME/      stage 3: generator.pt (compact), checkpoints/best.pt, ...
    generator.pt                              stage 4: the compact student (what translate / profile take)
    summary.json                              teacher vs student: parameters, MACs, held-out / val metrics

The student family follows the teacher's signature (:mod:`.family`): mobile ResNet students for image-to-image
teachers, mobile SPADE students for label-map (SPADE) teachers; the stages and files are the same.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ganslim.archs import build_generator
from ganslim.atomic import atomic_write_text
from ganslim.compress.search import format_macs
from ganslim.config import TrainConfig, option
from ganslim.engine import distributed as ddp
from ganslim.engine import fit
from ganslim.engine.runs import run_label
from ganslim.engine.staged import Stage, StagedRun, run_stages
from ganslim.errors import GanslimError
from ganslim.methods.gan_compression import STAGES
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.export import export_student
from ganslim.methods.gan_compression.family import StudentFamily, family_of_run
from ganslim.methods.gan_compression.networks import GENERATOR_FILE, find_supernet, find_teacher_discriminator
from ganslim.methods.gan_compression.search import METHOD as SEARCH_METHOD
from ganslim.methods.gan_compression.search import SearchConfig, check_budget, read_result, run_search

METHOD = "gan-compression"
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
        s, t, size = self.comparison["student"], self.comparison.get("teacher", {}), self.comparison["size"]
        line = (f"{METHOD}: student {'_'.join(map(str, s['channels']))}: {s['params'] / 1e6:.3g}M params, "
                f"{format_macs(s['macs_published'])} MACs published at {self.comparison.get('input', f'{size}x{size}')}")
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
    family = family_of_run(config)
    pipeline = _Pipeline(family.resolve_defaults(config), family)
    staged = run_stages(pipeline.config, METHOD, [Stage(name, run) for name, run in zip(STAGES, pipeline.stages())],
                        resume=resume, stop_after=stop_after, progress=progress, check=pipeline.check)
    return PipelineResult(staged.run_dir, staged.done, staged.done.get("export", {}).get("summary"))


class _Pipeline:
    """The stages of one pipeline run, over its resolved config."""

    def __init__(self, config: PipelineConfig, family: StudentFamily) -> None:
        self.config, self.family = config, family

    def stages(self) -> list[Callable[[StagedRun], dict]]:
        """What each of ``STAGES`` runs, in order."""
        return [self._supernet, self._search, self._finetune, self._export]

    def check(self) -> None:
        """Refuse bad input before the run folder exists: data, images, supernet, discriminator and a budget even
        the smallest sub-network misses (on an untrained supernet of the same widths)."""
        config, family = self.config, self.family
        teacher = family.load_teacher(config, torch.device("cpu"))
        family.training_items(config, teacher.model)  # building a dataset decodes every file
        family.validation_items(config, teacher.model)
        if config.supernet:
            find_supernet(config.supernet)
        if not config.supernet or config.teacher_discriminator:  # a discriminator a stage would load
            discriminator = find_teacher_discriminator(config)
            if discriminator is not None:
                family.load_discriminator(config, discriminator, teacher.model)
        check_budget(config, build_generator(family.supernet_method.supernet_arch, **family.student_kwargs(config, teacher)))

    def _train(self, staged: StagedRun, method_cls: type, config: DistillConfig) -> str:
        """Fit a training stage, continuing its folder under the run if it has a checkpoint."""
        resume = staged.resumable(run_label(method_cls.name, config))
        return str(fit(config, method_cls, resume=resume, progress=staged.progress).run_dir)

    def _supernet(self, staged: StagedRun) -> dict:
        if self.config.supernet:
            return {"run_dir": str(find_supernet(self.config.supernet).parent), "reused": True}
        config = stage_config(self.config, DistillConfig, staged.run_dir)
        return {"run_dir": self._train(staged, self.family.supernet_method, config)}

    def _search(self, staged: StagedRun) -> dict:
        config = stage_config(self.config, SearchConfig, staged.run_dir, supernet=staged.done["supernet"]["run_dir"])
        started = staged.stage_dirs(run_label(SEARCH_METHOD, config))
        result = run_search(config, resume=started[-1] if started else None, progress=staged.progress)
        return {"run_dir": str(result.run_dir), "channels": result.best["channels"]}

    def _finetune(self, staged: StagedRun) -> dict:
        done = staged.done
        config = stage_config(self.config, DistillConfig, staged.run_dir, supernet=done["supernet"]["run_dir"],
                              fixed_channels=tuple(done["search"]["channels"]),
                              epochs=self.config.finetune_epochs, epochs_decay=self.config.finetune_epochs_decay)
        return {"run_dir": self._train(staged, self.family.finetune_method, config)}

    def _export(self, staged: StagedRun) -> dict:
        run_dir, done = staged.run_dir, staged.done

        def export() -> dict:
            summary = export_student(Path(done["finetune"]["run_dir"]) / GENERATOR_FILE, run_dir / GENERATOR_FILE,
                                     self.config, search_result=read_result(done["search"]["run_dir"]))
            atomic_write_text(json.dumps(summary, indent=1) + "\n", run_dir / SUMMARY_FILE)
            return summary

        return {"model": str(run_dir / GENERATOR_FILE), "summary": ddp.on_main(staged.info, export)}
