"""`ganslim project --generator CKPT [--encoder CKPT] --input DIR --output DIR`: the W+ of each photo under a StyleGAN2
generator (Anycost GAN's projection), written as .npy files `ganslim generate --w` takes, with reconstructions."""

from __future__ import annotations

import argparse

DEFAULT_STEPS, DEFAULT_LR = 200, 0.01  # ganslim.editing.projection's, kept here so the parser does not import torch


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "project", help="find the W+ of photos under a StyleGAN2 generator (encoder start, then optimisation)",
        description="Project every image of a folder (centre-cropped and resized to the generator's side) onto a "
                    "StyleGAN2 generator: start from the encoder's W+ (or the mean W), optimise W+ with Adam on the "
                    "image MSE (+ a VGG16 perceptual term with VGG16 weights). Writes OUTPUT/<stem>.npy (W+, "
                    "float32, (num_ws, w_dim): ganslim generate --w takes it), <stem>.png (the reconstruction) and "
                    "results.json (PSNR per image).")
    parser.add_argument("--generator", required=True,
                        help="StyleGAN2 generator checkpoint (ganslim .pt / run folder, rosinality .pt, NVIDIA .pkl)")
    parser.add_argument("--encoder", default=None, help="encoder.pt (or run folder) of ganslim train encoder for this "
                                                        "generator (default: start from the mean W)")
    parser.add_argument("--input", required=True, help="folder of photos (searched recursively)")
    parser.add_argument("--output", required=True, help="folder for the .npy, .png and results.json (created)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"optimisation steps per image (default {DEFAULT_STEPS}; 0: the start as it is)")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"Adam learning rate (default {DEFAULT_LR})")
    parser.add_argument("--noise", action="store_true",
                        help="also optimise the noise images (written as <stem>.noise.npz; generate --w renders "
                             "the stored noise)")
    parser.add_argument("--sub-generators", action="store_true",
                        help="each step also scores a random Anycost sub-generator against the downsampled photo")
    parser.add_argument("--vgg-weights", default="", metavar="FILE",
                        help="torchvision's vgg16-397923af.pth for the perceptual term ('none': off; default: "
                             "$GANSLIM_VGG16_WEIGHTS, then ~/.cache/ganslim)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sub-generator draws (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import logging

    from ganslim.devices import resolve_device
    from ganslim.editing.encoder import load_encoder, load_stylegan2
    from ganslim.editing.projection import project_folder, projection_loss_name
    from ganslim.losses import load_perceptual_vgg
    from ganslim.nn.vgg import vgg16_weights_hint

    device = resolve_device(args.device)
    generator, generator_path = load_stylegan2(args.generator)
    generator = generator.to(device)
    encoder = load_encoder(args.encoder, generator) if args.encoder else None
    vgg = None if args.vgg_weights == "none" else load_perceptual_vgg(args.vgg_weights or None)
    if vgg is None and args.vgg_weights != "none":
        logging.getLogger(__name__).warning("no VGG16 weights: the projection loss is the image MSE alone (Anycost "
                                            "adds LPIPS); to add the VGG16 perceptual term, %s", vgg16_weights_hint())
    start = f"encoder {args.encoder}" if encoder is not None else "the mean W"
    record = {"generator": str(generator_path), "encoder": args.encoder, "start": start,
              "loss": projection_loss_name(vgg)}
    done = project_folder(generator, args.input, args.output, args.steps, encoder, lr=args.lr,
                          optimize_noise=args.noise, sub_generators=args.sub_generators,
                          perceptual=None if vgg is None else vgg.to(device), seed=args.seed,
                          progress=not args.no_progress, record=record)
    before, after = done.mean_psnr
    print(f"projected {len(done.content['images'])} image(s) onto {generator_path} from {start}, {args.steps} steps "
          f"of {record['loss']} on {device}: mean PSNR {before:.2f} -> {after:.2f} dB; {done.results}")
