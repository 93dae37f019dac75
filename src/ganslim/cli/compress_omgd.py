"""`ganslim compress omgd`: OMGD's one-stage online distillation into a compact student.

``ganslim compress omgd --data DIR --student mobile_resnet --width 1.0 [--teacher CKPT]`` trains the wide and
deep teachers (or, on unpaired data, a CycleGAN teacher pair) together with the student in one resumable run
folder and exports the student as ``generator.pt``. Wired into ``ganslim compress`` by
:func:`add_omgd_parser`, with the flags and config handling of every compress method (:mod:`ganslim.cli.common`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ganslim.cli.common import COMPRESS_FLAGS, add_compress_command, compress_config, print_main, show_config

METHOD = "omgd"
OMGD_FLAGS = {
    "--student": ("student", "ARCH", "student architecture: mobile_resnet (default), unet_256 or unet"),
    "--width": ("width", "W", "student width multiplier: 1.0 (ngf 16), 0.75 (ngf 12) or 0.5 (ngf 8)"),
    "--epochs": ("epochs", "N", "epochs at the initial learning rate"),
    "--epochs-decay": ("epochs_decay", "N", "epochs of linear learning-rate decay to zero"),
    "--lr": ("lr", "LR", "initial learning rate of every optimizer"),
    "--vgg-weights": ("vgg_weights", "FILE", "torchvision's vgg16-397923af.pth for the style / feature terms "
                                             "('none': off; default: $GANSLIM_VGG16_WEIGHTS, then ~/.cache/ganslim)"),
}
TEXT = ("OMGD: train wide + deep teachers and the compact student together, in one stage (the student never "
        "sees the discriminator or the ground truth); exports the student as generator.pt")
NOTES = """\
Paired data: wide + deep teachers with a shared PatchGAN; unpaired data: a wide CycleGAN teacher pair. The student
learns from the teachers only (SSIM, VGG16 style / feature, total variation and channel distillation terms);
every loss weight is a --set key (--show-config lists them)."""
SET_EXAMPLE = "lambda_cd=50"
PROFILE_SIZE = 256  # the side every other command reports MACs at

if TYPE_CHECKING:
    from ganslim.methods.omgd import OMGDConfig


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
    print_main(student_cost(config))
    return 0


def student_cost(config: OMGDConfig) -> str:
    """``student ARCH ngf N: P params, M MACs published at 256x256 (and at the training size)``."""
    import torch

    from ganslim.archs import build_generator
    from ganslim.errors import GanslimError
    from ganslim.methods.omgd import resolve_defaults, student_spec
    from ganslim.profile import count_macs, count_params

    arch, kwargs = student_spec(resolve_defaults(config))
    with torch.device("meta"):
        student = build_generator(arch, **kwargs)
    costs = []
    for size in sorted({PROFILE_SIZE, config.crop_size}, key=lambda side: side != PROFILE_SIZE):
        try:
            macs = count_macs(student, torch.empty(1, config.input_nc, size, size, device="meta"))
        except GanslimError:  # a U-Net deeper than 8 downsamplings takes no 256x256 image
            continue
        label = " (training size)" if size == config.crop_size else ""
        costs.append(f"{macs.macs_published / 1e9:.3f}G at {size}x{size}{label}")
    return (f"student {arch} ngf {kwargs['ngf']}: {count_params(student) / 1e6:.3f}M params, MACs (published "
            f"convention) {', '.join(costs)}")
