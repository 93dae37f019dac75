"""`ganslim translate`: run a generator (ours or a reference checkpoint) over image files."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ganslim.checkpoints import LoadedModel

DEFAULT_TILE_PAD = 16  # ganslim.apps.tiling's, kept here so building the parser does not import torch


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("translate", help="translate images with a generator checkpoint")
    parser.add_argument("--ckpt", required=True,
                        help="generator checkpoint (ganslim .pt/.safetensors, or reference latest_net_G*.pth), "
                             "or a folder holding one")
    parser.add_argument("--input", required=True,
                        help="an image file or a folder of images (label maps for a SPADE model)")
    parser.add_argument("--instance", default=None,
                        help="SPADE: the folder of instance maps, named as the label maps (for models with "
                             "instance edges)")
    parser.add_argument("--output", required=True,
                        help="folder for the translated PNGs (not inside --input; input files are never overwritten)")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                        help="picks G_A/G_B in a CycleGAN folder and the input half with --aligned")
    parser.add_argument("--aligned", action="store_true", help="inputs are A|B pairs side by side")
    parser.add_argument("--size", type=int, default=None,
                        help="inputs are resized to SIZE x SIZE (default: the size the model was trained at, else "
                             "256); super-resolution models take each image at its own size")
    parser.add_argument("--tile", type=int, default=0,
                        help="super-resolution: run in TILE x TILE input tiles, bounding memory (default 0: whole)")
    parser.add_argument("--tile-pad", type=int, default=DEFAULT_TILE_PAD,
                        help=f"context pixels around each tile (default {DEFAULT_TILE_PAD})")
    parser.add_argument("--scale", type=int, default=None,
                        help="check that the model upscales by SCALE (e.g. 4) before running it")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    parser.add_argument("--arch", default=None, help="architecture of a reference checkpoint (default: inferred)")
    parser.add_argument("--ngf", type=int, default=None, help="width of a reference checkpoint (default: inferred)")
    parser.add_argument("--norm", default=None, choices=["instance", "batch", "none"],
                        help="norm of a reference checkpoint (default: inferred)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.apps.translate import check_scale, translate_files
    from ganslim.checkpoints import load_generator
    from ganslim.cli.sizing import choose_size
    from ganslim.devices import resolve_device
    from ganslim.errors import GanslimError
    from ganslim.signature import LABEL_MAP

    device = resolve_device(args.device)
    overrides = {key: value for key, value in (("ngf", args.ngf), ("norm", args.norm)) if value is not None}
    loaded = load_generator(args.ckpt, arch=args.arch, direction=args.direction, **overrides)
    check_scale(loaded.signature, args.scale, f"checkpoint '{loaded.path}'")
    if loaded.signature.image_input.kind == LABEL_MAP:
        translate_labels(args, loaded, device)
        return
    if args.instance is not None:
        raise GanslimError(f"--instance applies to label-map (SPADE) models; {loaded.arch} takes images: drop it")
    size = choose_size(args.size, [(loaded.path.name, loaded.trained_size)], [loaded.signature])
    written = translate_files(loaded.model, args.input, args.output, size=size, device=device,
                              aligned=args.aligned, direction=args.direction, batch_size=args.batch_size,
                              tile=args.tile, tile_pad=args.tile_pad)
    print(f"translated {len(written)} image(s) with {loaded.arch} ({loaded.source} checkpoint {loaded.path}) "
          f"on {device} -> {args.output}")


def translate_labels(args: argparse.Namespace, loaded: LoadedModel, device: torch.device) -> None:
    """The label-map branch of :func:`run`: SPADE models, at --size (square) or the size they are built for."""
    from ganslim.apps.translate import translate_label_maps
    from ganslim.errors import GanslimError

    if args.aligned or args.tile:
        raise GanslimError("--aligned and --tile apply to image models; a SPADE model takes label maps: drop them")
    size = None if args.size is None else (args.size, args.size)
    written = translate_label_maps(loaded.model, args.input, args.output, instances=args.instance, size=size,
                                   device=device, batch_size=args.batch_size)
    height, width = size or loaded.signature.image_input.size
    print(f"translated {len(written)} label map(s) at {height}x{width} with {loaded.arch} ({loaded.source} checkpoint "
          f"{loaded.path}) on {device} -> {args.output}")
