"""`ganslim translate`: run a generator (ours or a reference checkpoint) over image files."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("translate", help="translate images with a generator checkpoint")
    parser.add_argument("--ckpt", required=True,
                        help="generator checkpoint (ganslim .pt/.safetensors, or reference latest_net_G*.pth), "
                             "or a folder holding one")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", required=True,
                        help="folder for the translated PNGs (not inside --input; input files are never overwritten)")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                        help="picks G_A/G_B in a CycleGAN folder and the input half with --aligned")
    parser.add_argument("--aligned", action="store_true", help="inputs are A|B pairs side by side")
    parser.add_argument("--size", type=int, default=None,
                        help="inputs are resized to SIZE x SIZE (default: the size the model was trained at, else 256)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    parser.add_argument("--arch", default=None, help="architecture of a reference checkpoint (default: inferred)")
    parser.add_argument("--ngf", type=int, default=None, help="width of a reference checkpoint (default: inferred)")
    parser.add_argument("--norm", default=None, choices=["instance", "batch", "none"],
                        help="norm of a reference checkpoint (default: inferred)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.apps.translate import translate_files
    from ganslim.checkpoints import load_generator
    from ganslim.cli.sizing import choose_size
    from ganslim.devices import resolve_device

    device = resolve_device(args.device)
    overrides = {key: value for key, value in (("ngf", args.ngf), ("norm", args.norm)) if value is not None}
    loaded = load_generator(args.ckpt, arch=args.arch, direction=args.direction, **overrides)
    size = choose_size(args.size, [(loaded.path.name, loaded.trained_size)])
    written = translate_files(loaded.model, args.input, args.output, size=size, device=device,
                              aligned=args.aligned, direction=args.direction, batch_size=args.batch_size)
    print(f"translated {len(written)} image(s) with {loaded.arch} ({loaded.source} checkpoint {loaded.path}) "
          f"on {device} -> {args.output}")
