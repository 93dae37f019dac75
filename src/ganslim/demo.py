"""The built-in demo job (`make demo`): data -> teacher training -> translation -> quality and profile.

It runs on generated data only, sized for a 2-core CPU (a few minutes), and leaves everything it made under
one output folder: the dataset, the run folder (checkpoints, TensorBoard logs, samples), translated test
images and a grid of input | output | target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ganslim.checkpoints import load_generator
from ganslim.config import load_config
from ganslim.data import AlignedDataset, DEFAULT_BUILTIN, make_builtin, save_image
from ganslim.data.builtin import INFO_FILE
from ganslim.engine import fit, image_grid
from ganslim.methods.teacher import Pix2Pix, Pix2PixConfig
from ganslim.metrics import psnr, ssim
from ganslim.profile import Profile, format_profile, profile_model
from ganslim.translate import translate_files

# A small pix2pix teacher that learns the built-in task in a few CPU minutes.
TEACHER_SETTINGS = {"generator": "resnet_6blocks", "ngf": 32, "ndf": 32, "norm": "instance", "dropout": False,
                    "gan_mode": "lsgan", "batch_size": 4, "lr": 0.0005, "preprocess": "resize_and_crop",
                    "sample_every": 0, "log_every": 10}


@dataclass
class DemoReport:
    """What the demo measured and where it wrote things."""

    out_dir: Path
    run_dir: Path
    generator_path: Path
    val_psnr: float
    val_ssim: float
    identity_psnr: float
    profile: Profile
    translated_dir: Path
    grid_path: Path

    def lines(self) -> list[str]:
        return [
            f"validation PSNR {self.val_psnr:.2f} dB, SSIM {self.val_ssim:.3f} "
            f"(identity mapping: PSNR {self.identity_psnr:.2f} dB)",
            format_profile(self.profile, self.generator_path.name),
            f"generator:   {self.generator_path}",
            f"run folder:  {self.run_dir} (TensorBoard: tensorboard --logdir {self.run_dir})",
            f"translated:  {self.translated_dir}",
            f"grid:        {self.grid_path} (input | output | target)",
        ]


def run_demo(out_dir: str | os.PathLike = "demo_out", dataset: str = DEFAULT_BUILTIN, size: int = 64,
             epochs: int = 4, epochs_decay: int = 4, device: str = "auto", progress: bool = True) -> DemoReport:
    """Make ``dataset`` under ``out_dir``, train a small pix2pix teacher on it, then measure and translate."""
    out_dir = Path(out_dir)
    data_dir = out_dir / "data" / dataset
    if not (data_dir / INFO_FILE).is_file():
        make_builtin(dataset, data_dir, size=size)
    overrides = {**TEACHER_SETTINGS, "data": str(data_dir), "out_dir": str(out_dir / "runs"), "device": device,
                 "load_size": size, "crop_size": size, "epochs": epochs, "epochs_decay": epochs_decay}
    result = fit(load_config(Pix2PixConfig, overrides=overrides, method=Pix2Pix.name), Pix2Pix, progress=progress)
    generator_path = result.exported["G"]
    generator = load_generator(generator_path).model

    val = AlignedDataset(data_dir, split="val", load_size=size, crop_size=size, flip=False)
    inputs = torch.stack([val[i]["A"] for i in range(len(val))])
    targets = torch.stack([val[i]["B"] for i in range(len(val))])
    with torch.inference_mode():
        outputs = generator(inputs)
    translated_dir = out_dir / "translated"
    translate_files(generator, data_dir / "test", translated_dir, size=size, aligned=True, progress=progress)
    grid_path = out_dir / "grid.png"
    save_image(image_grid([inputs[:4], outputs[:4], targets[:4]]), grid_path)
    return DemoReport(out_dir=out_dir, run_dir=result.run_dir, generator_path=generator_path,
                      val_psnr=psnr(outputs, targets).mean().item(), val_ssim=ssim(outputs, targets).mean().item(),
                      identity_psnr=psnr(inputs, targets).mean().item(),
                      profile=profile_model(generator, input_size=size, threads=None, repeats=10),
                      translated_dir=translated_dir, grid_path=grid_path)
