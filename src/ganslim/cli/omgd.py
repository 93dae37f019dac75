"""What `ganslim compress omgd` shows of OMGD's one-stage online distillation into a compact student.

``ganslim compress omgd --data DIR --student mobile_resnet --width 1.0 [--teacher CKPT]`` trains the wide and
deep teachers (or, on unpaired data, a CycleGAN teacher pair) together with the student in one resumable run
folder and exports the student as ``generator.pt``; :mod:`ganslim.cli.compress` builds the command from
:data:`COMMANDS`, with the flags and config handling of every compress method (:mod:`ganslim.cli.common`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganslim.cli.common import COMPRESS_FLAGS, MethodCommand

TITLE = "OMGD"
METHOD = "omgd"
DESCRIPTION = """\
omgd trains a wide and a deep teacher together with a discriminator-free student in one stage (OMGD, ICCV
2021); it needs no pretrained teacher."""
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
NOTES = """\
Paired data: wide + deep teachers with a shared PatchGAN; unpaired data: a wide CycleGAN teacher pair. The student
learns from the teachers only (SSIM, VGG16 style / feature, total variation and channel distillation terms;
without VGG16 weights, L1 to the teachers' outputs instead of the VGG16 terms), with a learning rate of its own;
every loss weight is a --set key (--show-config lists them)."""
SET_EXAMPLE = "lambda_cd=50"


def student_cost_lines(result: Any) -> list[str]:
    """The student's size line, from the run's ``summary.json``."""
    return [student_cost(result.exported["summary"])] if "summary" in result.exported else []


COMMANDS = {METHOD: MethodCommand((COMPRESS_FLAGS, OMGD_FLAGS), NOTES, SET_EXAMPLE,
                                  "continue an omgd run from its last checkpoint", report=student_cost_lines)}
OTHER_COMMANDS = ()  # subcommands that are no method


def student_cost(summary_file: Path) -> str:
    """``student ARCH ngf N: P params, MACs (published convention) M at 256x256, M' at SxS (training size)``,
    from the run's ``summary.json``."""
    summary = json.loads(summary_file.read_text())
    student, training = summary["student"], f"{summary['training_size']}x{summary['training_size']}"
    costs = [f"{cost['macs_published'] / 1e9:.3f}G at {size}" + (" (training size)" if size == training else "")
             for size, cost in sorted(student["cost"].items(), key=lambda item: item[0] == training)]
    return (f"student {student['arch']} ngf {student['arch_kwargs']['ngf']}: {student['params'] / 1e6:.3f}M params, "
            f"MACs (published convention) {', '.join(costs)}")
