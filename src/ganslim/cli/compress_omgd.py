"""`ganslim compress omgd`: OMGD's one-stage online distillation into a compact student.

``ganslim compress omgd --data DIR --student mobile_resnet --width 1.0 [--teacher CKPT]`` trains the wide and
deep teachers (or, on unpaired data, a CycleGAN teacher pair) together with the student in one resumable run
folder and exports the student as ``generator.pt``. Wired into ``ganslim compress`` by
:func:`add_omgd_parser`, with the flags and config handling of every compress method (:mod:`ganslim.cli.common`).
"""

from __future__ import annotations

import argparse

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


def add_omgd_parser(compress_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``omgd`` under ``ganslim compress``'s METHOD subcommands."""
    parser = add_compress_command(compress_subparsers, METHOD, TEXT, [COMPRESS_FLAGS, OMGD_FLAGS])
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an omgd run from its last checkpoint")
    parser.set_defaults(func=run_omgd_command)
    return parser


def run_omgd_command(args: argparse.Namespace) -> int:
    import torch

    from ganslim.archs import build_generator
    from ganslim.engine import fit
    from ganslim.methods.omgd import OMGDConfig, omgd_method, resolve_defaults, student_spec
    from ganslim.profile import count_macs, count_params

    config = compress_config(args, OMGDConfig, METHOD)
    if args.show_config:
        return show_config(config, METHOD)
    result = fit(config, omgd_method(config), resume=args.resume, progress=not args.no_progress)
    print_main(f"ganslim compress {result.summary()}")
    arch, kwargs = student_spec(resolve_defaults(config))
    with torch.device("meta"):
        student = build_generator(arch, **kwargs)
    size = config.crop_size
    macs = count_macs(student, torch.empty(1, config.input_nc, size, size, device="meta"))
    print_main(f"student {arch} ngf {kwargs['ngf']}: {count_params(student) / 1e6:.3f}M params, "
           f"{macs.macs_published / 1e9:.3f}G MACs (published convention) at {size}x{size}")
    return 0
