"""`ganslim train METHOD`: train a model (pix2pix / CycleGAN teachers, ...) in a numbered run folder."""

from __future__ import annotations

import argparse
import os

# Typed flags for the common config keys: flag -> config key. Every other key goes through --set.
TYPED_FLAGS = {
    "--data": ("data", "DIR", "dataset folder (pix2pix: train/ val/ of A|B images; cyclegan: trainA/ trainB/)"),
    "--device": ("device", "DEV", "auto (default: CUDA if present), cpu, cuda or cuda:N"),
    "--seed": ("seed", "N", "random seed (default 0)"),
    "--batch-size": ("batch_size", "N", "images per step and process"),
    "--epochs": ("epochs", "N", "epochs at the initial learning rate"),
    "--epochs-decay": ("epochs_decay", "N", "epochs of linear learning-rate decay to zero"),
    "--lr": ("lr", "LR", "initial learning rate"),
    "--generator": ("generator", "ARCH", "generator architecture (unet_256, resnet_9blocks, ...)"),
    "--gan-mode": ("gan_mode", "MODE", "vanilla, lsgan or hinge"),
    "--out-dir": ("out_dir", "DIR", "where run folders are created (default runs/)"),
    "--name": ("name", "NAME", "run folder suffix (default: the dataset folder's name)"),
}

EPILOG = """\
Config precedence: method defaults < --config FILE < typed flags < --set KEY=VALUE.
Every key with its value: ganslim train METHOD --show-config.  Resume: --resume runs/00003-pix2pix-facades.
Several processes / GPUs: torchrun --nproc_per_node=N -m ganslim.cli train METHOD ... (same flags)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model (pix2pix, cyclegan) in a numbered run folder", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a model; writes runs/NNNNN-METHOD-DATA/ with config.yaml, checkpoints/, samples/, "
                    "logs/ (TensorBoard) and the exported model.")
    parser.add_argument("method", metavar="METHOD", help="pix2pix or cyclegan")
    for flag, (key, metavar, text) in TYPED_FLAGS.items():
        parser.add_argument(flag, dest=key, metavar=metavar, default=None, help=text)
    parser.add_argument("--amp", dest="amp", action="store_const", const="true", default=None,
                        help="mixed precision on CUDA")
    parser.add_argument("--config", metavar="FILE", help="YAML file of config keys")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                        help="set any config key, e.g. --set lambda_l1=50 (repeatable)")
    parser.add_argument("--resume", metavar="RUN_DIR_OR_CKPT",
                        help="continue a run from its folder or checkpoints/latest.pt")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ganslim.config import build_config, config_to_yaml, parse_overrides, read_config_file
    from ganslim.engine import fit, read_run_config, resolve_resume
    from ganslim.errors import GanslimError
    from ganslim.methods import METHODS

    method_cls = METHODS.get(args.method)
    flags = {key: getattr(args, key) for key, _, _ in TYPED_FLAGS.values() if getattr(args, key) is not None}
    if args.amp is not None:
        flags["amp"] = args.amp
    overrides = parse_overrides(args.overrides)
    if args.resume is not None:
        if args.config is not None:
            raise GanslimError("--config cannot be combined with --resume (the run's config.yaml is used): "
                               "pass changes with --set")
        base = read_run_config(resolve_resume(args.resume)[0])
    else:
        base = read_config_file(args.config) if args.config is not None else {}
    config = build_config(method_cls.Config, base, flags, overrides, method=method_cls.name)
    if args.show_config:
        print(config_to_yaml(config, method_cls.name), end="")
        return 0
    result = fit(config, method_cls, resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":
        print(f"ganslim train {result.summary()}")
    return 0
