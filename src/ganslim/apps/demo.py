"""The built-in demo job (`make demo`): data -> teacher -> GAN Compression -> side-by-side comparison.

It runs on generated data only, sized for a 2-core CPU, and leaves everything it made under one output
folder: the dataset, the run folders (checkpoints, TensorBoard logs), translated test images and a grid of
input | teacher | student | target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ganslim.apps.translate import translate_files
from ganslim.checkpoints import load_generator
from ganslim.config import load_config
from ganslim.data import DEFAULT_BUILTIN, AlignedDataset, make_builtin, save_image
from ganslim.data.builtin import INFO_FILE
from ganslim.engine import fit, image_grid
from ganslim.measure.compare import image_quality
from ganslim.measure.profile import Profile, count_macs, profile_model
from ganslim.methods.gan_compression.pipeline import PipelineConfig, run_pipeline
from ganslim.methods.teachers import Pix2Pix, Pix2PixConfig
from ganslim.metrics import psnr

# Shared by both trainings: small images, batch 4, few logs; the learning rate schedules are per stage.
COMMON = {"batch_size": 4, "sample_every": 0, "log_every": 10, "preprocess": "resize_and_crop"}
# A small pix2pix teacher that learns the built-in task in a few CPU minutes.
TEACHER = {"generator": "resnet_6blocks", "ngf": 32, "ndf": 32, "norm": "instance", "dropout": False,
           "gan_mode": "lsgan", "lr": 0.0005}
# GAN Compression: a short supernet + fine-tune, and a small evolutionary search.
COMPRESSION = {"lr": 0.0005, "population": 16, "generations": 3, "threads": 2, "latency_repeats": 3}
MACS_REDUCTION = 8  # search under teacher MACs / 8 (published convention, at PROFILE_SIZE)
PROFILE_SIZE = 256


@dataclass
class ModelReport:
    """One generator, measured: where it is, its cost at PROFILE_SIZE and its val quality."""

    path: Path
    profile: Profile
    val_psnr: float
    val_ssim: float


@dataclass
class DemoReport:
    """What the demo measured and where it wrote things."""

    out_dir: Path
    identity_psnr: float
    teacher: ModelReport
    student: ModelReport
    translated_dir: Path
    grid_path: Path

    def lines(self) -> list[str]:
        t, s = self.teacher, self.student
        rows = [("", "teacher", "student", "ratio"),
                ("params", f"{t.profile.params / 1e6:.3f} M", f"{s.profile.params / 1e6:.3f} M",
                 f"{t.profile.params / s.profile.params:.1f}x fewer"),
                (f"MACs true @{PROFILE_SIZE}", f"{t.profile.macs / 1e9:.2f} G", f"{s.profile.macs / 1e9:.2f} G",
                 f"{t.profile.macs / s.profile.macs:.1f}x fewer"),
                (f"MACs published @{PROFILE_SIZE}", f"{t.profile.macs_published / 1e9:.2f} G",
                 f"{s.profile.macs_published / 1e9:.2f} G",
                 f"{t.profile.macs_published / s.profile.macs_published:.1f}x fewer"),
                (f"CPU latency @{PROFILE_SIZE} (median)", f"{t.profile.latency.median_ms:.1f} ms",
                 f"{s.profile.latency.median_ms:.1f} ms",
                 f"{t.profile.latency.median_ms / s.profile.latency.median_ms:.1f}x faster"),
                ("val PSNR", f"{t.val_psnr:.2f} dB", f"{s.val_psnr:.2f} dB", f"{s.val_psnr - t.val_psnr:+.2f} dB"),
                ("val SSIM", f"{t.val_ssim:.3f}", f"{s.val_ssim:.3f}", f"{s.val_ssim - t.val_ssim:+.3f}")]
        table = [f"  {a:<28}{b:>12}{c:>12}   {d}" for a, b, c, d in rows]
        return ["teacher vs compressed student (identity mapping: val PSNR "
                f"{self.identity_psnr:.2f} dB):", *table,
                f"teacher:     {t.path}", f"student:     {s.path}",
                f"translated:  {self.translated_dir} (test split, by the student)",
                f"grid:        {self.grid_path} (input | teacher | student | target)",
                f"TensorBoard: tensorboard --logdir {self.out_dir / 'runs'}"]


def run_demo(out_dir: str | os.PathLike = "demo_out", dataset: str = DEFAULT_BUILTIN, size: int = 64,
             epochs: int = 3, device: str = "auto", progress: bool = True) -> DemoReport:
    """Make ``dataset``, train a small pix2pix teacher, compress it with GAN Compression, compare both.

    ``epochs``: the teacher, the supernet and the fine-tuned student each train ``epochs`` epochs at the
    full learning rate and ``epochs`` more decaying to zero.
    """
    out_dir = Path(out_dir)
    data_dir = out_dir / "data" / dataset
    if not (data_dir / INFO_FILE).is_file():
        make_builtin(dataset, data_dir, size=size)
    common = {**COMMON, "data": str(data_dir), "out_dir": str(out_dir / "runs"), "device": device,
              "load_size": size, "crop_size": size}
    teacher_config = load_config(Pix2PixConfig, method=Pix2Pix.name,
                                 overrides={**common, **TEACHER, "epochs": epochs, "epochs_decay": epochs})
    teacher_path = fit(teacher_config, Pix2Pix, progress=progress).exported["G"]
    teacher = load_generator(teacher_path).model
    budget = count_macs(teacher, torch.zeros(1, 3, PROFILE_SIZE, PROFILE_SIZE)).macs_published / MACS_REDUCTION
    compression_config = load_config(PipelineConfig, method="gan-compression", overrides={
        **common, **COMPRESSION, "teacher": str(teacher_path), "budget_macs": f"{budget / 1e9:.3f}G",
        "size": PROFILE_SIZE, "epochs": epochs, "epochs_decay": epochs,
        "finetune_epochs": epochs, "finetune_epochs_decay": epochs})
    student_path = run_pipeline(compression_config, progress=progress).run_dir / "generator.pt"
    student = load_generator(student_path).model

    val = AlignedDataset(data_dir, split="val", load_size=size, crop_size=size, flip=False)
    inputs = torch.stack([val[i]["A"] for i in range(len(val))])
    targets = torch.stack([val[i]["B"] for i in range(len(val))])
    with torch.inference_mode():
        teacher_out, student_out = teacher(inputs), student(inputs)
    translated_dir = out_dir / "translated"
    translate_files(student, data_dir / "test", translated_dir, size=size, aligned=True, progress=progress)
    grid_path = out_dir / "grid.png"
    save_image(image_grid([inputs[:4], teacher_out[:4], student_out[:4], targets[:4]]), grid_path)

    def report(path: Path, model: torch.nn.Module, outputs: torch.Tensor) -> ModelReport:
        profile = profile_model(model, input_size=PROFILE_SIZE, repeats=5)
        quality = image_quality(outputs, targets)
        return ModelReport(path, profile, quality["psnr"], quality["ssim"])

    # Profiled back to back, after all training, so both see the same machine state.
    return DemoReport(out_dir=out_dir, identity_psnr=psnr(inputs, targets).mean().item(),
                      teacher=report(teacher_path, teacher, teacher_out),
                      student=report(student_path, student, student_out),
                      translated_dir=translated_dir, grid_path=grid_path)
