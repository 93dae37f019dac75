"""OMGD benchmark: OMGD vs GAN Compression vs the teacher vs the from-scratch student, same task and steps.

    python benchmarks/gan_compression.py && python benchmarks/omgd.py [--work benchmarks/work]

Run after ``gan_compression.py`` with the same --work folder: it reuses that benchmark's resnet_9blocks
teacher, compressed student, from-scratch student and their wall-clock times, then trains OMGD (1.0x mobile
ResNet student, ngf 16, 1.408G published MACs at 256x256; wide and deep teachers trained online, no
pretrained teacher) for the same number of steps and measures all four side by side in one process.
Without VGG16 weights (see the README) OMGD runs with its SSIM, TV and channel-distillation terms only.
"""

from __future__ import annotations

import json
from pathlib import Path

from compression_task import (EPOCHS, EPOCHS_DECAY, TRAINING, benchmark_arguments, markdown_table, measure,
                              prepare_data, run_seconds, write_results)

from ganslim.config import load_config
from ganslim.engine import fit
from ganslim.methods.omgd import OMGDConfig, omgd_method
from ganslim.nn.vgg import find_vgg16_weights


def train_omgd(work: Path, data: Path) -> Path:
    """Train OMGD once (a finished run is reused); returns the student's ``generator.pt``."""
    finished = sorted((work / "runs").glob("*-omgd-omgd/generator.pt"))
    if finished:
        return finished[-1]
    overrides = {**{k: v for k, v in TRAINING.items() if k != "gan_mode"}, "data": str(data), "name": "omgd",
                 "out_dir": str(work / "runs"), "device": "cpu", "student": "mobile_resnet", "width": 1.0,
                 "epochs": EPOCHS, "epochs_decay": EPOCHS_DECAY}
    config = load_config(OMGDConfig, overrides=overrides, method="omgd")
    return Path(fit(config, omgd_method(config)).exported["student"])


def main() -> None:
    args = benchmark_arguments(__doc__)

    previous = json.loads((args.out / "gan_compression.json").read_text())
    data = prepare_data(args.work)
    wall_clock = {name: previous["wall_clock_s"][name] for name in ("teacher", "gan_compression", "scratch")}
    omgd = train_omgd(args.work, data)
    wall_clock["omgd"] = run_seconds(omgd)
    paths = {name: Path(previous["models"][name]["checkpoint"]) for name in ("teacher", "gan_compression", "scratch")}
    paths["omgd"] = omgd
    table = measure(paths, data, reference="teacher", threads=args.threads)
    results = {"task": {**previous["task"], "vgg16_weights": str(find_vgg16_weights() or "absent")},
               "models": table, "wall_clock_s": wall_clock}
    markdown = markdown_table(table, wall_clock)
    teacher, gc, scratch, student = (table[name] for name in ("teacher", "gan_compression", "scratch", "omgd"))
    gc_total = wall_clock["teacher"] + wall_clock["gan_compression"]
    markdown += (
        f"\n\nWall-clock: OMGD {wall_clock['omgd'] / 60:.1f} min (teachers included) vs GAN Compression "
        f"{wall_clock['gan_compression'] / 60:.1f} min after a {wall_clock['teacher'] / 60:.1f} min teacher "
        f"({gc_total / 60:.1f} min in all); ratio {wall_clock['omgd'] / gc_total:.2f} of the full pipeline "
        f"(target <= 0.5). OMGD: {student['macs_ratio']:.1f}x fewer MACs (target >= 40x), val PSNR "
        f"{student['psnr'] - teacher['psnr']:+.2f} dB vs the teacher (target >= -0.5 dB), "
        f"{student['psnr'] - gc['psnr']:+.2f} dB vs GAN Compression, {student['psnr'] - scratch['psnr']:+.2f} dB "
        f"vs from scratch. VGG16 weights: {results['task']['vgg16_weights']}.")
    write_results(args.out, "omgd", results, markdown)


if __name__ == "__main__":
    main()
