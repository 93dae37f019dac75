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

Run as separate commands, a stage starts from the run folder of the stage before: :func:`inherit_from_supernet`
and :func:`inherit_from_search` read its ``config.yaml`` (and a search's choice) into an :class:`Inherited`,
whose ``STAGE_KEYS`` (data, sizes, held-out images, teacher, widths) options may not contradict.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ganslim.archs import build_generator
from ganslim.atomic import atomic_write_text
from ganslim.checkpoints import load_generator, save_model
from ganslim.config import TrainConfig, option, read_config_file
from ganslim.engine import distributed as ddp
from ganslim.engine import fit
from ganslim.engine.runs import (CHECKPOINT_DIR, CONFIG_FILE, LATEST, RunLock, create_run_dir, require_run_folder,
                                 run_label, write_config)
from ganslim.errors import GanslimError
from ganslim.methods.gan_compression.distill import (
    GENERATOR_FILE,
    SUPERNET_FILE,
    DistillConfig,
    FinetuneDistillation,
    SupernetDistillation,
    data_kind,
    find_supernet,
    find_teacher_discriminator,
    image_metrics,
    load_teacher,
    load_teacher_discriminator,
    resolve_defaults,
    student_kwargs,
    training_items,
    validation_items,
)
from ganslim.methods.gan_compression.search import (
    SearchConfig,
    check_budget,
    format_macs,
    read_result,
    run_search,
)
from ganslim.measure.profile import count_macs, count_params

METHOD = "gan-compression"
STAGES = ("supernet", "search", "finetune", "export")
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


# ------------------------------------------------------------------------------------------ stage commands

# What a stage command takes from the stage before it (:class:`Inherited`). These keys say which images are
# trained on and held out, how they are sized, what the teacher is and which widths the supernet has: an option
# contradicting one of them is refused. Every other key of the earlier run is a default that options may change
# (batch size, seed, loss weights, ...), except OWN_KEYS, which each stage sets for itself.
STAGE_KEYS = ("data", "direction", "preprocess", "load_size", "crop_size", "input_nc", "output_nc",
              "max_train_images", "holdout_images", "teacher", "student_ngf", "student_norm", "student_blocks",
              "channel_ratios", "channel_multiple", "candidates")
OWN_KEYS = ("out_dir", "device", "epochs", "epochs_decay", "fixed_channels", "supernet")
_PATH_KEYS = ("data", "teacher", "supernet")


@dataclass(frozen=True)
class Inherited:
    """What a stage command takes from an earlier stage's run folder.

    ``defaults``: config values the new stage's config starts from; ``fixed``: the values among them that an
    option may not change (a recorded path that no longer exists may be pointed elsewhere).
    """

    source: str  # e.g. "the supernet run 'runs/00000-gan-compression-supernet-facades'"
    defaults: dict
    fixed: dict

    def defaults_for(self, cls: type[TrainConfig]) -> dict:
        """``defaults`` restricted to the keys of config class ``cls``."""
        names = {item.name for item in dataclasses.fields(cls)}
        return {key: value for key, value in self.defaults.items() if key in names}

    def check(self, config: DistillConfig) -> None:
        """Refuse (GanslimError) a ``config`` whose value of a fixed key differs from the recorded one."""
        for key, recorded in self.fixed.items():
            given = getattr(config, key)
            if key not in _PATH_KEYS or Path(recorded).exists():
                if _comparable(key, given) != _comparable(key, recorded):
                    raise GanslimError(f"{key}={given!r} contradicts {self.source} ({key}={recorded!r}): drop the "
                                       f"option; a stage keeps the data, image sizes, held-out images, teacher and "
                                       f"widths of the stage before")
            elif given == recorded:
                raise GanslimError(f"{key} '{recorded}' of {self.source} is not found from here (its config.yaml "
                                   f"holds the path as given then): pass --{key} with where it is now")


def _comparable(key: str, value: object) -> object:
    """``value`` of config key ``key`` as compared between stages: paths resolved, a supernet folder as its file."""
    if key not in _PATH_KEYS:
        return value
    path = Path(value)
    return (path / SUPERNET_FILE if key == "supernet" and path.is_dir() else path).resolve()


def _run_values(run_dir: Path) -> dict | None:
    """The config values in ``run_dir/config.yaml`` (without its ``method``); None when there is none."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    return {key: value for key, value in read_config_file(path).items() if key != "method"}


def _inherited(source: str, values: dict, **chosen) -> Inherited:
    defaults = {**{key: value for key, value in values.items() if key not in OWN_KEYS}, **chosen}
    return Inherited(source, defaults, {**{key: defaults[key] for key in STAGE_KEYS if key in defaults}, **chosen})


def inherit_from_supernet(supernet: str | os.PathLike) -> Inherited | None:
    """What a search or fine-tune of ``supernet`` (a supernet run folder or its supernet.pt) takes from that run;
    None when no config.yaml lies beside the supernet.pt."""
    run_dir = find_supernet(supernet).parent
    values = _run_values(run_dir)
    return None if values is None else _inherited(f"the supernet run '{run_dir}'", values)


def inherit_from_search(search: str | os.PathLike) -> Inherited:
    """What a fine-tune of a search's choice takes: that run's options, its supernet and the chosen widths."""
    result = read_result(search)
    run_dir = Path(search) if Path(search).is_dir() else Path(search).parent
    return _inherited(f"the search run '{run_dir}'", _run_values(run_dir) or {}, supernet=result["supernet"],
                      fixed_channels=",".join(map(str, result["channels"])))


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
    """Where each stage left its output; ``summary`` once exported."""

    run_dir: Path
    stages: dict
    summary: dict | None = None

    def report(self) -> str:
        if self.summary is None:
            done = ", ".join(self.stages) or "none"
            return f"{METHOD}: stopped; finished stages: {done}; resume with --resume {self.run_dir}"
        s, t = self.summary["student"], self.summary.get("teacher", {})
        line = (f"{METHOD}: student {'_'.join(map(str, s['channels']))}: {s['params'] / 1e6:.3g}M params, "
                f"{format_macs(s['macs_published'])} MACs published at {self.summary['size']}x{self.summary['size']}")
        if "macs_published" in t:
            line += f" ({t['macs_published'] / s['macs_published']:.1f}x fewer than the teacher)"
        holdout, teacher_psnr = s.get("holdout", {}), t.get("holdout", {}).get("psnr")
        if teacher_psnr is not None:
            line += f"; held-out psnr {holdout['psnr']:.2f} dB (teacher {teacher_psnr:.2f} dB)"
        elif "psnr_teacher" in holdout:
            line += (f"; held-out psnr to the teacher's outputs {holdout['psnr_teacher']:.2f} dB (unpaired data: "
                     f"no ground truth to score the teacher)")
        return line + f"; model {self.run_dir / GENERATOR_FILE}"


def summary_table(summary: dict) -> list[str]:
    """:func:`export_student`'s ``summary`` as lines of a teacher vs student table: params, MACs, quality."""
    s, t, size = summary["student"], summary.get("teacher", {}), summary["size"]
    Row = tuple[str, str, str, str]  # label, teacher, student, comparison

    def count(key: str, label: str, show: Callable[[float], str]) -> Row:
        if key not in t:
            return label, "-", show(s[key]), ""
        return label, show(t[key]), show(s[key]), f"{t[key] / s[key]:.1f}x fewer"

    def quality(split: str, key: str, label: str, unit: str, digits: int) -> Row | None:
        student, teacher = s.get(split, {}).get(key), t.get(split, {}).get(key)
        if student is None:
            return None
        if teacher is None:
            return label, "-", f"{student:.{digits}f}{unit}", ""
        return (label, f"{teacher:.{digits}f}{unit}", f"{student:.{digits}f}{unit}",
                f"{student - teacher:+.{digits}f}{unit}")

    paired = "psnr" in t.get("holdout", {})  # the teacher is scored against ground truth only
    rows = [count("params", "params", lambda n: f"{n / 1e6:.3f} M"),
            count("macs", f"MACs true @{size}", format_macs),
            count("macs_published", f"MACs published @{size}", format_macs),
            quality("holdout", "psnr", "held-out PSNR", " dB", 2) if paired else
            quality("holdout", "psnr_teacher", "held-out PSNR to the teacher", " dB", 2),
            quality("holdout", "ssim", "held-out SSIM", "", 3),
            quality("val", "psnr", "val PSNR", " dB", 2), quality("val", "ssim", "val SSIM", "", 3)]
    lines = ["teacher vs student" + (f" ({t['arch']} teacher)" if "arch" in t else "") + ":"]
    lines += [f"  {a:<32}{b:>12}{c:>12}   {d}".rstrip() for a, b, c, d in filter(None, rows)]
    if "holdout" in s and not paired:
        lines.append("  (unpaired data: no ground truth, the student is scored against the teacher's outputs)")
    return lines + [f"student: {s['file']}"]


def run_pipeline(config: PipelineConfig, *, resume: str | os.PathLike | None = None, stop_after: str | None = None,
                 progress: bool = True) -> PipelineResult:
    """Run (or continue) every stage of GAN Compression in one run folder; see the module docstring."""
    if stop_after is not None and stop_after not in STAGES:
        raise GanslimError(f"unknown stage '{stop_after}'; choose one of: {', '.join(STAGES)}")
    joined_here = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info, _ = ddp.init_distributed(config.device)
    try:
        return _Pipeline(config, info, progress).run(resume, stop_after)
    finally:
        if joined_here:
            ddp.shutdown_distributed()


class _Pipeline:
    def __init__(self, config: PipelineConfig, info: ddp.DistInfo, progress: bool) -> None:
        self.config = resolve_defaults(config)
        self.info, self.progress = info, progress
        data_kind(config.data)  # a bad data folder fails before anything trains
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
        if resume is not None:
            run_dir = require_run_folder(resume, f"'ganslim compress {METHOD}'")
            if not (run_dir / STATE_FILE).is_file():
                raise GanslimError(f"'{run_dir}' is not a {METHOD} run folder (no {STATE_FILE}): pass the folder "
                                   f"'ganslim compress {METHOD}' made")
        else:
            run_dir = Path(ddp.broadcast_object(self.info, create_run_dir(
                self.config.out_dir, run_label(METHOD, self.config)) if self.info.is_main else None))
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


# ------------------------------------------------------------------------------------------ export


def _macs_on_meta(arch: str, kwargs: dict, input_nc: int, size: int) -> dict[str, int]:
    """Parameters and MACs (both conventions) of ``arch(**kwargs)`` on one size x size image, without arithmetic."""
    with torch.device("meta"):
        model = build_generator(arch, **kwargs).eval()
        count = count_macs(model, torch.empty(1, input_nc, size, size))
    return {"params": count_params(model), "macs": count.macs, "macs_published": count.macs_published}


def export_student(generator_file: str | os.PathLike, out: str | os.PathLike, config: DistillConfig | None = None,
                   search_result: dict | None = None, size: int | None = None) -> dict:
    """Write the compact student to ``out`` (ganslim format, ``mobile_resnet`` + channels); return a summary.

    Its MACs are counted at ``size`` (default: the search's size, else 256) and must equal the search's
    prediction. With ``config`` (data and teacher), the summary also holds the teacher's figures and the
    held-out / val metrics of both (see ``image_metrics``).
    """
    loaded = load_generator(generator_file)
    if loaded.arch != "mobile_resnet":
        raise GanslimError(f"'{generator_file}' holds a {loaded.arch}, not a compact mobile_resnet student: pass the "
                           f"generator.pt of a gan-compression-finetune run")
    student = loaded.model
    size = size or (search_result or {}).get("size") or 256
    counted = _macs_on_meta("mobile_resnet", loaded.arch_kwargs, student.input_nc, size)
    if search_result is not None and search_result.get("size") == size:
        predicted = {key: search_result[key] for key in ("macs", "macs_published")}
        if predicted != {key: counted[key] for key in predicted}:
            raise RuntimeError(f"profiled MACs {counted} differ from the search's prediction {predicted}")
    meta = {**loaded.meta, "size": size, **{key: counted[key] for key in ("macs", "macs_published")}}
    if search_result is not None:
        meta["search"] = {key: search_result.get(key) for key in ("metric", "score", "metrics", "latency_ms",
                                                                  "strategy", "budget")}
    save_model(out, student, loaded.arch, loaded.arch_kwargs, meta=meta)
    summary = {"size": size, "student": {**counted, "channels": list(student.channels), "file": str(out)}}
    if config is not None and config.teacher:
        config = resolve_defaults(config)
        device = torch.device("cpu")
        teacher = load_teacher(config, device)
        summary["teacher"] = {"file": str(config.teacher), "arch": teacher.arch}
        try:
            summary["teacher"].update(_macs_on_meta(teacher.arch, teacher.arch_kwargs, student.input_nc, size))
        except GanslimError:  # e.g. a U-Net that takes no size x size image: no cost figures for it
            pass
        paired = data_kind(config.data) == "paired"
        batches = _validation_batches(config)
        # Unpaired data has no ground truth: only the student is scored (against the teacher).
        for name, model in (("student", student), ("teacher", teacher.model))[:2 if paired else 1]:
            metrics = image_metrics(model.eval(), teacher.model, batches, paired)
            if name == "teacher":
                metrics.pop("psnr_teacher")
            summary[name]["holdout"] = {k: v for k, v in metrics.items() if not k.startswith("val_")}
            summary[name]["val"] = {k[4:]: v for k, v in metrics.items() if k.startswith("val_")}
    return summary


def _validation_batches(config: DistillConfig, batch_size: int = 8) -> list[dict]:
    dataset = validation_items(config)
    return [torch.utils.data.default_collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            for start in range(0, len(dataset), batch_size)]
