"""Stage 4 of GAN Compression: the fine-tuned student written as a compact checkpoint, and teacher vs student.

:func:`export_student` checks the student's MACs against the search's prediction and, given the run's config
(data and teacher), scores both on the held-out and val images; :func:`summary_table` shows its summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from torch.utils.data import Dataset

from ganslim.archs import build_generator
from ganslim.checkpoints import load_generator, save_model
from ganslim.compress.extract import COMPACT_OF
from ganslim.compress.search import format_macs
from ganslim.errors import GanslimError
from ganslim.measure.compare import Cost
from ganslim.measure.profile import count_macs, count_params
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.data import image_metrics
from ganslim.methods.gan_compression.family import family_of_model

COMPACT_ARCHS = tuple(arch for _, arch in COMPACT_OF.values())  # mobile_resnet, mobile_spade


def summary_table(summary: dict) -> list[str]:
    """:func:`export_student`'s ``summary`` as lines of a teacher vs student table: params, MACs, quality."""
    s, t, size = summary["student"], summary.get("teacher", {}), summary.get("input", summary["size"])
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


def _cost_on_meta(arch: str, kwargs: dict, size: int) -> dict[str, int]:
    """Parameters and MACs (both conventions) of ``arch(**kwargs)`` on one input of a ``size`` budget (its family's
    :meth:`~ganslim.methods.gan_compression.family.StudentFamily.example_input`), without arithmetic."""
    with torch.device("meta"):
        model = build_generator(arch, **kwargs).eval()
        example = family_of_model(model).example_input(model, size)
    return Cost(count_params(model), count_macs(model, example)).to_dict()


def export_student(generator_file: str | os.PathLike, out: str | os.PathLike, config: DistillConfig | None = None,
                   search_result: dict | None = None, size: int | None = None) -> dict:
    """Write the compact student to ``out`` (ganslim format, ``mobile_resnet`` / ``mobile_spade`` + channels); return
    a summary (with ``input``, e.g. ``256x512``, for a label-map student).

    Its MACs are counted at ``size`` (default: the search's size, else 256) and must equal the search's
    prediction. With ``config`` (data and teacher), the summary also holds the teacher's figures and the
    held-out / val metrics of both (see ``image_metrics``).
    """
    loaded = load_generator(generator_file)
    if loaded.arch not in COMPACT_ARCHS:
        raise GanslimError(f"'{generator_file}' holds a {loaded.arch}, not a compact {' or '.join(COMPACT_ARCHS)} "
                           f"student: pass the generator.pt of a gan-compression-finetune run")
    student, family = loaded.model, family_of_model(loaded.model)
    size = size or (search_result or {}).get("size") or 256
    counted = _cost_on_meta(loaded.arch, loaded.arch_kwargs, size)
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
    if family.name == "spade":  # a label map size wide at the model's aspect ratio
        summary["input"] = family.size_label(student, size)
    if config is not None and config.teacher:
        config = family.resolve_defaults(config)
        device = torch.device("cpu")
        teacher = family.load_teacher(config, device)
        summary["teacher"] = {"file": str(config.teacher), "arch": teacher.arch}
        try:
            summary["teacher"].update(_cost_on_meta(teacher.arch, teacher.arch_kwargs, size))
        except GanslimError:  # e.g. a U-Net that takes no size x size image: no cost figures for it
            pass
        paired = family.paired(config)
        batches = _validation_batches(family.validation_items(config, teacher.model))
        # Unpaired data has no ground truth: only the student is scored (against the teacher).
        for name, model in (("student", student), ("teacher", teacher.model))[:2 if paired else 1]:
            metrics = image_metrics(model.eval(), teacher.model, batches, paired)
            if name == "teacher":
                metrics.pop("psnr_teacher")
            summary[name]["holdout"] = {k: v for k, v in metrics.items() if not k.startswith("val_")}
            summary[name]["val"] = {k[4:]: v for k, v in metrics.items() if k.startswith("val_")}
    return summary


def _validation_batches(dataset: Dataset, batch_size: int = 8) -> list[dict]:
    return [torch.utils.data.default_collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            for start in range(0, len(dataset), batch_size)]
