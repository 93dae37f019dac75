"""`ganslim directions --generator CKPT --output FILE.safetensors (--method sefa --count K | --method labels --samples
CSV | --method images --images DIR [--encoder CKPT] [--project-steps N])`: edit directions in a StyleGAN2 generator's
W space (:mod:`ganslim.editing.directions`)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_COUNT = 5


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "directions", help="find edit directions in a StyleGAN2 generator's W space (SeFa, or from labels)",
        description="Find edit directions in W and save them, named, in one small safetensors file for ganslim edit. "
                    "sefa: the top eigenvectors of the first (coarse and middle) modulation weights, no labels "
                    "needed; labels: linear boundaries (linear SVMs) fitted to labelled generated samples; images: "
                    "the same fitted to real images per attribute value, inverted to W+.")
    parser.add_argument("--generator", required=True, help="StyleGAN2 generator checkpoint, or a folder holding one")
    parser.add_argument("--output", required=True, metavar="FILE.safetensors", help="the directions file to write")
    parser.add_argument("--method", choices=("sefa", "labels", "images"), default="sefa",
                        help="sefa (default): closed-form factorisation; labels: boundaries fitted to --samples; "
                             "images: boundaries fitted to the inverted images of --images")
    parser.add_argument("--count", type=int, default=None,
                        help=f"sefa: how many directions, by descending eigenvalue (default {DEFAULT_COUNT})")
    parser.add_argument("--samples", metavar="CSV", default=None,
                        help="labels: a CSV with a header seed,attr1,... and one row per generated sample (seeds as "
                             "ganslim generate --seeds draws them), each attribute labelled with one of two values")
    parser.add_argument("--images", metavar="DIR", default=None,
                        help="images: a folder per attribute, each holding two folders of images, one per value "
                             "(e.g. smile/0, smile/1; the direction points to the larger value)")
    parser.add_argument("--encoder", default=None,
                        help="images: the encoder (ganslim train encoder) that inverts them to W+")
    parser.add_argument("--project-steps", type=int, default=0, metavar="N",
                        help="images: refine each W+ by N steps of ganslim project (from the encoder's W+, or without "
                             "--encoder from the mean W); default 0")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import torch

    from ganslim.apps.generate import latent_generator, seed_w_plus
    from ganslim.checkpoints import load_generator
    from ganslim.editing.directions import (
        fit_boundaries,
        image_boundaries,
        read_attribute_folders,
        read_label_table,
        save_directions,
        sefa_directions,
        sefa_names,
    )
    from ganslim.editing.projection import load_inversion
    from ganslim.errors import GanslimError

    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise GanslimError(f"--output '{output}' must end in .safetensors (the directions file's format)")
    if output.is_dir():
        raise GanslimError(f"--output '{output}' is a folder: pass a file name such as directions.safetensors")
    if args.method != "labels" and args.samples is not None:
        raise GanslimError("--samples is for --method labels: drop it, or pass --method labels")
    if args.method != "images" and (args.images, args.encoder, args.project_steps) != (None, None, 0):
        raise GanslimError("--images, --encoder and --project-steps are for --method images: drop them, or pass "
                           "--method images")
    if args.method == "images" and (args.images is None or args.count is not None):
        raise GanslimError("--method images fits one direction per attribute folder of --images DIR: pass --images, "
                           "without --count")
    if args.method == "labels" and (args.samples is None or args.count is not None):
        raise GanslimError("--method labels fits one direction per attribute of --samples CSV: pass --samples, "
                           "without --count")
    inputs = [Path(path).resolve() for path in (args.generator, args.samples, args.encoder) if path is not None]
    if output.resolve() in inputs:
        raise GanslimError(f"--output '{output}' is one of the inputs: pass another file name")
    loaded = load_generator(args.generator)
    generator = latent_generator(loaded.model, f"checkpoint '{loaded.path}'")
    if args.method == "sefa":
        count = DEFAULT_COUNT if args.count is None else args.count
        directions = sefa_directions(generator, count)
        names = sefa_names(count)
        source = f"the top {count} eigenvectors of its modulation weights"
    elif args.method == "images":
        invert = load_inversion(generator, args.encoder, args.project_steps)
        if invert is None:
            raise GanslimError("--method images inverts each image to W+: pass --encoder CKPT and/or --project-steps N "
                               "(e.g. 200)")
        attributes = read_attribute_folders(args.images)
        directions, count = image_boundaries(generator, attributes, invert)
        names = list(attributes.names)
        source = f"boundaries fitted to {count} inverted images of {args.images}"
    else:
        table = read_label_table(args.samples)
        with torch.no_grad():
            w = seed_w_plus(generator, table.seeds)[:, 0]
        directions = fit_boundaries(w, table.values, table.names)
        names = list(table.names)
        source = f"boundaries fitted to {len(table.seeds)} labelled samples of {args.samples}"
    save_directions(output, names, directions, args.method, generator)
    print(f"wrote {len(names)} direction(s) of {loaded.arch} ({loaded.path}), {source}: {', '.join(names)} -> "
          f"{output}")
