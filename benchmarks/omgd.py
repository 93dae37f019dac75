"""OMGD benchmark: OMGD vs GAN Compression vs the teacher vs the from-scratch student, same task and steps.

    python benchmarks/gan_compression.py && python benchmarks/omgd.py [--work benchmarks/work]

Run after ``gan_compression.py`` with the same --work folder: it reuses that benchmark's resnet_9blocks
teacher, compressed student, from-scratch student (GAN Compression's architecture on its training images and
steps) and their wall-clock times, then trains OMGD (1.0x mobile
ResNet student, ngf 16, 1.408G published MACs at 256x256; wide and deep teachers trained online, no
pretrained teacher) for the same number of steps, once with the teachers updated every step and once every
third step (``n_dis`` 3), and measures them all side by side in one process.
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

VARIANTS = {"omgd": {}, "omgd_ndis3": {"n_dis": 3}}  # name -> OMGD options beyond the task's


def train_omgd(work: Path, data: Path, name: str, **options) -> Path:
    """Train OMGD once (a finished run of that name is reused); returns the student's ``generator.pt``."""
    finished = sorted((work / "runs").glob(f"*-omgd-{name}/generator.pt"))
    if finished:
        return finished[-1]
    overrides = {**{k: v for k, v in TRAINING.items() if k != "gan_mode"}, "data": str(data), "name": name,
                 "out_dir": str(work / "runs"), "device": "cpu", "student": "mobile_resnet", "width": 1.0,
                 "epochs": EPOCHS, "epochs_decay": EPOCHS_DECAY, **options}
    config = load_config(OMGDConfig, overrides=overrides, method="omgd")
    return Path(fit(config, omgd_method(config)).exported["student"])


def target_line(label: str, row: dict, seconds: float, teacher: dict, gc: dict, scratch: dict, gc_total: float
                ) -> str:
    return (f"{label}: {seconds / 60:.1f} min, ratio {seconds / gc_total:.2f} of the full GAN Compression pipeline "
            f"(target <= 0.5); {row['macs_ratio']:.1f}x fewer MACs (target >= 40x); val PSNR "
            f"{row['psnr'] - teacher['psnr']:+.2f} dB vs the teacher (target >= -0.5 dB; test "
            f"{row['test']['psnr'] - teacher['test']['psnr']:+.2f}), "
            f"{row['psnr'] - gc['psnr']:+.2f} dB vs GAN Compression, {row['psnr'] - scratch['psnr']:+.2f} dB vs "
            f"from scratch.")


def main() -> None:
    args = benchmark_arguments(__doc__)

    previous = json.loads((args.out / "gan_compression.json").read_text())
    data = prepare_data(args.work)
    reused = ("teacher", "gan_compression", "scratch")
    wall_clock = {name: previous["wall_clock_s"][name] for name in reused}
    paths = {name: Path(previous["models"][name]["checkpoint"]) for name in reused}
    for name, options in VARIANTS.items():
        paths[name] = train_omgd(args.work, data, name.replace("_", "-"), **options)
        wall_clock[name] = run_seconds(paths[name])
    table = measure(paths, data, reference="teacher", threads=args.threads)
    results = {"task": {**previous["task"], "vgg16_weights": str(find_vgg16_weights() or "absent"),
                        "omgd_variants": VARIANTS}, "models": table, "wall_clock_s": wall_clock}
    markdown = markdown_table(table, wall_clock)
    teacher, gc, scratch = (table[name] for name in reused)
    gc_total = wall_clock["teacher"] + wall_clock["gan_compression"]
    markdown += (f"\n\nWall-clock of the whole compression, teachers included: GAN Compression "
                 f"{wall_clock['gan_compression'] / 60:.1f} min after a {wall_clock['teacher'] / 60:.1f} min teacher "
                 f"({gc_total / 60:.1f} min in all). Every OMGD run trains {EPOCHS + EPOCHS_DECAY} epochs of 100 "
                 f"steps with the paper's loss weights; omgd updates the teachers and discriminator every step, "
                 f"omgd_ndis3 on one step in three (OMGD's n_dis 3), the student every step. VGG16 weights: "
                 f"{results['task']['vgg16_weights']}.\n\n"
                 + "\n".join(target_line(name, table[name], wall_clock[name], teacher, gc, scratch, gc_total)
                             for name in VARIANTS))
    write_results(args.out, "omgd", results, markdown)


if __name__ == "__main__":
    main()
