"""`ganslim generate --ckpt CKPT (--seeds 0-99 | --latents z.npy | --w w.npy) --output DIR`: images from a latent
generator (StyleGAN2, mobile_stylegan), by seed or from saved z / W / W+."""

from __future__ import annotations

import argparse

from ganslim.cli.subnets import add_subnet_arguments, set_subnet

# ganslim.archs.stylegan2's, kept here so that building the parser does not import torch:
NOISE_MODES = ("const", "random", "none")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="draw images from a StyleGAN2 / mobile_stylegan generator, by seed or from saved latents",
        description="Draw images from a latent generator (StyleGAN2 checkpoints: ganslim, rosinality, NVIDIA .pkl; "
                    "ganslim mobile_stylegan students) "
                    "and write them as PNGs named by seed (seed0000.png) or by row (000000.png). The z of seed s is "
                    "torch.randn(1, z_dim) from torch.Generator().manual_seed(s); to reproduce another tool's images, "
                    "save its z as .npy and pass --latents.")
    parser.add_argument("--ckpt", required=True, help="generator checkpoint (ganslim .pt/.safetensors, rosinality "
                                                      ".pt, NVIDIA .pkl), or a folder holding one")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--seeds", metavar="SEEDS", help="seeds such as 0-99, 0,5,7 or 3 (one image each)")
    source.add_argument("--latents", metavar="Z.npy", help="z of shape (N, z_dim), float, one image per row")
    source.add_argument("--w", metavar="W.npy",
                        help="W (N, w_dim) or W+ (N, num_ws, w_dim), one image per row (e.g. projected images)")
    parser.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                        help="pull W toward the mean W by PSI in [0, 1] (default 1: no truncation; 0.7 is common)")
    parser.add_argument("--truncation-mean", metavar="W.npy", default=None,
                        help="the mean W (w_dim,) truncation pulls toward (default: the checkpoint's, else estimated "
                             "from 10000 mapped z of seed 0)")
    parser.add_argument("--noise-mode", default="const", choices=NOISE_MODES,
                        help="const: the checkpoint's stored noise images (default); random: drawn from each image's "
                             "seed (reproducible); none: no noise")
    parser.add_argument("--output", required=True, help="folder for the PNGs (created if missing)")
    parser.add_argument("--save-array", action="store_true",
                        help="also write OUTPUT/images.npy: (N, 3, H, W) float32, the generator's output unclamped")
    parser.add_argument("--grid", nargs="?", const="auto", default=None, metavar="ROWSxCOLS",
                        help="also write OUTPUT/grid.png of all images: --grid alone lays them out about square")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    add_subnet_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.apps.generate import (
        Latents,
        Sampling,
        generate_images,
        latent_generator,
        load_latents,
        load_truncation_mean,
        parse_grid,
        parse_seeds,
    )
    from ganslim.checkpoints import load_generator
    from ganslim.devices import resolve_device

    sampling = Sampling(args.truncation, args.noise_mode)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    device = resolve_device(args.device)
    loaded = load_generator(args.ckpt)
    what = f"checkpoint '{loaded.path}'"
    generator = latent_generator(loaded.model, what)
    subnet = set_subnet(generator, args, what)
    if seeds is not None:
        latents = Latents.from_seeds(seeds)
    else:
        latents = load_latents(args.latents or args.w, "z" if args.latents else "w", generator)
    mean = load_truncation_mean(args.truncation_mean, generator) if args.truncation_mean else None
    grid = parse_grid(args.grid, len(latents)) if args.grid is not None else None
    inputs = [loaded.path] + [path for path in (args.latents, args.w, args.truncation_mean) if path]
    generated = generate_images(generator, latents, args.output, sampling, truncation_mean=mean,
                                batch_size=args.batch_size, save_array=args.save_array, grid=grid, device=device,
                                inputs=inputs, what=what)
    truncation = "" if generated.w_avg_source is None else (f", truncation {args.truncation:g} toward "
                                                            f"{generated.w_avg_source}")
    sub = "" if subnet is None else (f" as its {subnet.resolution} px sub-generator of channels "
                                     f"{','.join(map(str, subnet.channels))}")
    print(f"generated {len(generated.images)} image(s) with {loaded.arch} ({loaded.source} checkpoint {loaded.path})"
          f"{sub} on {device}, noise {args.noise_mode}{truncation} -> {args.output}")
    for path in (generated.array, generated.grid):
        if path is not None:
            print(f"wrote {path}")
