"""`ganslim compress omgd`: OMGD's one-stage online distillation into a compact student.

``ganslim compress omgd --data DIR --student mobile_resnet --width 1.0 [--teacher CKPT]`` trains the wide and
deep teachers (or, on unpaired data, a CycleGAN teacher pair) together with the student in one resumable run
folder and exports the student as ``generator.pt``. Wired into ``ganslim compress`` by
:func:`add_omgd_parser`, with the flags and config handling of every compress method (:mod:`ganslim.cli.common`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ganslim.cli.common import COMPRESS_FLAGS, add_compress_command, compress_config, print_main, show_config

METHOD = "omgd"
OMGD_FLAGS = {
    "--student": ("student", "ARCH", "student architecture: mobile_resnet (default), unet_256 or unet"),
    "--width": ("width", "W", "student width multiplier: 1.0 (ngf 16), 0.75 (ngf 12) or 0.5 (ngf 8)"),
    "--epochs": ("epochs", "N", "epochs at the initial learning rate"),
    "--epochs-decay": ("epochs_decay", "N", "epochs of linear learning-rate decay to zero"),
    "--lr": ("lr", "LR", "initial learning rate of the teachers and the discriminator"),
    "--student-lr": ("student_lr", "LR", "initial learning rate of the student (default 1e-3)"),
    "--vgg-weights": ("vgg_weights", "FILE", "torchvision's vgg16-397923af.pth for the style / feature terms "
                                             "('none': off; default: $GANSLIM_VGG16_WEIGHTS, then ~/.cache/ganslim)"),
}
TEXT = ("OMGD: train wide + deep teachers and the compact student together, in one stage (the student never "
        "sees the discriminator or the ground truth); exports the student as generator.pt")
NOTES = """\
Paired data: wide + deep teachers with a shared PatchGAN; unpaired data: a wide CycleGAN teacher pair. The student
learns from the teachers only (SSIM, VGG16 style / feature, total variation and channel distillation terms;
without VGG16 weights, L1 to the teachers' outputs instead of the VGG16 terms), with a learning rate of its own;
every loss weight is a --set key (--show-config lists them)."""
SET_EXAMPLE = "lambda_cd=50"

def add_omgd_parser(compress_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``omgd`` under ``ganslim compress``'s METHOD subcommands."""
    parser = add_compress_command(compress_subparsers, METHOD, TEXT, [COMPRESS_FLAGS, OMGD_FLAGS], NOTES,
                                  SET_EXAMPLE)
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an omgd run from its last checkpoint")
    parser.set_defaults(func=run_omgd_command)
    return parser


def run_omgd_command(args: argparse.Namespace) -> int:
    from ganslim.engine import fit
    from ganslim.methods.omgd import OMGDConfig, omgd_method

    config = compress_config(args, OMGDConfig, METHOD)
    if args.show_config:
        return show_config(config, METHOD)
    result = fit(config, omgd_method(config), resume=args.resume, progress=not args.no_progress)
    print_main(f"ganslim compress {result.summary()}")
    if "summary" in result.exported:
        print_main(student_cost(result.exported["summary"]))
    return 0


def student_cost(summary_file: Path) -> str:
    """``student ARCH ngf N: P params, MACs (published convention) M at 256x256, M' at SxS (training size)``,
    from the run's ``summary.json``."""
    summary = json.loads(summary_file.read_text())
    student, training = summary["student"], f"{summary['training_size']}x{summary['training_size']}"
    costs = [f"{cost['macs_published'] / 1e9:.3f}G at {size}" + (" (training size)" if size == training else "")
             for size, cost in sorted(student["cost"].items(), key=lambda item: item[0] == training)]
    return (f"student {student['arch']} ngf {student['arch_kwargs']['ngf']}: {student['params'] / 1e6:.3f}M params, "
            f"MACs (published convention) {', '.join(costs)}")
