"""`ganslim train METHOD`: train a model from scratch in a numbered run folder, METHOD one of the training methods
registered in :data:`ganslim.methods.METHODS` (the pix2pix and CycleGAN teachers, ESRGAN, SPADE, StyleGAN2)."""

from __future__ import annotations

import argparse

from ganslim.cli import esrgan, spade, stylegan2
from ganslim.cli.common import RUN_FLAGS, add_config_arguments, config_from_args, print_main, show_config
from ganslim.errors import GanslimError
from ganslim.methods import TRAIN, methods_of

# Typed flags for the common config keys (see ganslim.cli.common); every other key goes through --set.
TYPED_FLAGS = {
    "--data": ("data", "DIR", "dataset folder (pix2pix: train/ val/ of A|B images; cyclegan: trainA/ trainB/; "
                              "esrgan: train/ val/ of HR images; spade: label maps and photos; stylegan2: images "
                              "of one size; encoder: optional real images to score)"),
    **RUN_FLAGS,
    "--epochs": ("epochs", "N", "epochs at the initial learning rate"),
    "--epochs-decay": ("epochs_decay", "N", "epochs of linear learning-rate decay to zero"),
    "--kimg": ("kimg", "K", "length in thousands of real images shown (replaces the default length)"),
    "--iterations": ("iterations", "N", "length in steps (replaces the default length)"),
    "--lr": ("lr", "LR", "initial learning rate"),
    "--generator": ("generator", "ARCH", "generator architecture (unet_256, resnet_9blocks, ...); encoder: the "
                                         "StyleGAN2 checkpoint it inverts"),
    "--gan-mode": ("gan_mode", "MODE", "vanilla, lsgan or hinge"),
}
# Flags only some methods take, each group shown under its methods' names.
METHOD_FLAGS = {(esrgan.METHOD,): esrgan.FLAGS, (spade.METHOD,): spade.FLAGS, (stylegan2.METHOD,): stylegan2.FLAGS,
                (esrgan.METHOD, spade.METHOD): esrgan.VGG19_FLAGS}

EPILOG = """\
Config precedence: method defaults < --config FILE < typed flags < --set KEY=VALUE.
Every key with its value: ganslim train METHOD --show-config.  Resume: --resume runs/00003-pix2pix-facades.
Several processes / GPUs: torchrun --nproc_per_node=N -m ganslim.cli train METHOD ... (same flags)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    registered = methods_of(TRAIN)
    parser = subparsers.add_parser(
        "train", help=f"train a model ({', '.join(registered.names())}) in a numbered run folder", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a model; writes runs/NNNNN-METHOD-DATA/ with config.yaml, checkpoints/, samples/, "
                    "logs/ (TensorBoard) and the exported model.")
    parser.add_argument("method", metavar="METHOD", help="; ".join(
        f"{name}: {registered.get(name).help}" for name in registered.names()))
    add_config_arguments(parser, [TYPED_FLAGS], set_example="lambda_l1=50")
    for methods, flags in METHOD_FLAGS.items():
        group = parser.add_argument_group(f"{' and '.join(methods)} options")
        for flag, (key, metavar, help_text) in flags.items():
            group.add_argument(flag, dest=key, metavar=metavar, default=None, help=help_text)
    parser.set_defaults(flag_keys=[key for group in (TYPED_FLAGS, *METHOD_FLAGS.values()) for key, _, _ in
                                   group.values()])
    parser.add_argument("--amp", dest="amp", action="store_const", const="true", default=None,
                        help="mixed precision on CUDA")
    parser.add_argument("--resume", metavar="RUN_DIR_OR_CKPT",
                        help="continue a run from its folder or checkpoints/latest.pt")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ganslim.engine import read_run_config, resolve_resume

    entry = methods_of(TRAIN).get(args.method)
    for methods, flags in METHOD_FLAGS.items():
        given = [flag for flag, (key, _, _) in flags.items() if getattr(args, key) is not None]
        if given and entry.name not in methods:
            owners = " and ".join(f"'ganslim train {method}'" for method in methods)
            raise GanslimError(f"{given[0]} is an option of {owners}, not of {entry.name}: drop it")
    runner = entry.load()
    extra = {"amp": args.amp} if args.amp is not None else {}
    config = config_from_args(args, runner.Config, entry.name,
                              lambda resume: read_run_config(resolve_resume(resume, "'ganslim train'")[0]), **extra)
    if args.show_config:
        return show_config(config, entry.name)
    result = runner.run(config, resume=args.resume, progress=not args.no_progress)
    print_main(f"ganslim train {result.summary()}")
    return 0
