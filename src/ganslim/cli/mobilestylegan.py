"""What `ganslim compress mobilestylegan` shows of MobileStyleGAN's distillation of a StyleGAN2 teacher.

``ganslim compress mobilestylegan --teacher CKPT --kimg 100`` distils the teacher into a ``mobile_stylegan`` student
from sampled z alone (no dataset) in one resumable run folder and exports the student as ``generator.pt``;
:mod:`ganslim.cli.compress` builds the command from :data:`COMMANDS`, with the config handling of every compress
method (:mod:`ganslim.cli.common`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganslim.cli.common import RUN_FLAGS, MethodCommand

TITLE = "MobileStyleGAN"
METHOD = "mobilestylegan"
DESCRIPTION = """\
mobilestylegan distils a StyleGAN2 generator into MobileStyleGAN's wavelet-domain student (Belousov 2021) from
sampled z alone: it needs no dataset."""
FLAGS = {
    "--teacher": ("teacher", "CKPT", "the StyleGAN2 teacher: a ganslim generator.pt or run folder, a rosinality "
                                     "checkpoint or an NVIDIA .pkl"),
    "--data": ("data", "none", "no dataset is read (z only): leave it out, or pass 'none'"),
    **RUN_FLAGS,
    "--kimg": ("kimg", "KIMG", "training length in thousands of latents (default 2000)"),
    "--iterations": ("iterations", "N", "training length in steps, instead of --kimg"),
    "--lr": ("lr", "LR", "Adam learning rate of the student and the discriminator (default 5e-4)"),
    "--mixing": ("mixing", "P", "style-mixing probability (default 0, as MobileStyleGAN)"),
    "--augment": ("augment", "POLICY", "DiffAugment policy of the discriminator (default translation,cutout; none)"),
    "--vgg-weights": ("vgg_weights", "FILE", "torchvision's vgg16-397923af.pth for the perceptual term ('none': off; "
                                             "default: $GANSLIM_VGG16_WEIGHTS, then ~/.cache/ganslim)"),
    "--inception-weights": ("inception_weights", "FILE", "Inception weights for KID, which then picks best.pt "
                                                         "('none': off, best.pt by PSNR to the teacher; default: "
                                                         "$GANSLIM_INCEPTION_WEIGHTS, then ~/.cache/ganslim)"),
}
NOTES = """\
The student (the teacher's channel table without its last entry, its mapping reused and frozen) learns, for the
teacher's W+ and noise: L1 + L2 to the teacher's image at every head's scale, in pixels and in wavelets, VGG16
perceptual L1 (without VGG16 weights: off, the other terms carry it), and a non-saturating GAN against the teacher's
images (DiffAugment, lazy R1). Gradient norms are clipped at 1 (--set grad_clip=0: off); every loss weight is a --set
key (--show-config lists them)."""
SET_EXAMPLE = "perceptual_weight=0.5"


def student_cost_lines(result: Any) -> list[str]:
    """The student's size line, from the run's ``summary.json``."""
    return [student_cost(result.exported["summary"])] if "summary" in result.exported else []


def student_cost(summary_file: Path) -> str:
    """``student mobile_stylegan at R px: synthesis P params, M MACs (M' published), N x fewer true MACs than the
    teacher's synthesis``, from the run's ``summary.json``."""
    summary = json.loads(summary_file.read_text())
    student = summary["student"]["parts"]["synthesis"]
    teacher = summary["teacher"]["parts"]["synthesis"]
    return (f"student {summary['student']['arch']} at {summary['resolution']} px: synthesis "
            f"{student['params'] / 1e6:.3f}M params, {student['macs'] / 1e9:.3f}G MACs "
            f"({student['macs_published'] / 1e9:.3f}G published convention), {teacher['macs'] / student['macs']:.1f}x "
            f"fewer true MACs than the teacher's synthesis")


COMMANDS = {METHOD: MethodCommand((FLAGS,), NOTES, SET_EXAMPLE, "continue a mobilestylegan run from its last "
                                                                 "checkpoint", report=student_cost_lines)}
OTHER_COMMANDS = ()  # subcommands that are no method
