"""`ganslim eval --ckpt FILE --data DIR`: PSNR/SSIM vs targets, FID/KID vs real images, fidelity to a teacher."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="score a generator on a dataset split: FID, KID, PSNR, SSIM (and fidelity to a teacher)",
        description="Run a generator over a dataset split and report FID/KID (vs the real target-domain images "
                    "or cached statistics), PSNR/SSIM (paired data) and, with --teacher, PSNR/SSIM against the "
                    "teacher's outputs. FID/KID need the Inception weights file pt_inception-2015-12-05-"
                    "6726825d.pth (pytorch-fid's) at ~/.cache/ganslim/, in $GANSLIM_INCEPTION_WEIGHTS or "
                    "given with --inception-weights; without it they are skipped and the rest is reported (a "
                    "--inception-weights path that does not exist is an error).")
    parser.add_argument("--ckpt", required=True,
                        help="generator checkpoint (ganslim .pt/.safetensors or reference latest_net_G*.pth), "
                             "or a folder holding one")
    parser.add_argument("--data", required=True,
                        help="dataset root (aligned train/ val/ test/ or unaligned testA/ testB/), or a folder "
                             "of input images (FID then needs --real-stats)")
    parser.add_argument("--split", default="test", help="split to evaluate on (default test)")
    parser.add_argument("--metrics", default="fid,kid,psnr,ssim",
                        help="comma-separated, from fid,kid,psnr,ssim (default all)")
    parser.add_argument("--teacher", default=None, metavar="CKPT",
                        help="teacher checkpoint: adds PSNR/SSIM of the generator's outputs vs the teacher's")
    parser.add_argument("--inception-weights", default=None, metavar="PATH",
                        help="pt_inception-2015-12-05-6726825d.pth (default: $GANSLIM_INCEPTION_WEIGHTS, then "
                             "~/.cache/ganslim/)")
    parser.add_argument("--real-stats", default=None, metavar="NPZ",
                        help="cached real statistics (.npz with mu and sigma, pytorch-fid format) for FID; KID "
                             "is then skipped")
    parser.add_argument("--save-real-stats", default=None, metavar="NPZ",
                        help="write the real images' mu/sigma there for later --real-stats")
    parser.add_argument("--size", type=int, default=None,
                        help="images are resized to SIZE x SIZE (default: the size the model was trained at, else 256)")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                        help="input side of the data, and which generator of a CycleGAN folder (default AtoB)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--max-images", type=int, default=None, help="evaluate on the first N images only")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="write the JSON object --json prints to FILE, atomically (e.g. RUN/eval.json: "
                             "ganslim report shows it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.atomic import atomic_write_text
    from ganslim.checkpoints import load_generator
    from ganslim.cli.sizing import choose_size
    from ganslim.devices import resolve_device
    from ganslim.measure.evaluate import evaluate_generator, open_eval_data, parse_metrics
    from ganslim.outputs import check_output_file
    from ganslim.signature import input_channels, output_channels

    metrics = parse_metrics(args.metrics)
    if args.out is not None:
        check_output_file(args.out, "--out")
    device = resolve_device(args.device)
    loaded = load_generator(args.ckpt, direction=args.direction)
    teacher = load_generator(args.teacher, direction=args.direction) if args.teacher else None
    size = choose_size(args.size, [(loaded.path.name, loaded.trained_size)])
    input_nc = input_channels(loaded.model)
    data = open_eval_data(args.data, split=args.split, size=size, direction=args.direction,
                          input_nc=input_nc, output_nc=output_channels(loaded.model, size),
                          max_images=args.max_images)
    result = evaluate_generator(
        loaded.model, data, metrics=metrics, teacher=None if teacher is None else teacher.model,
        inception_weights=args.inception_weights, real_stats=args.real_stats, save_real_stats=args.save_real_stats,
        batch_size=args.batch_size, device=device, progress=not args.json)
    result.info.update(checkpoint=str(loaded.path), arch=loaded.arch, size=size,
                       teacher=None if teacher is None else str(teacher.path))
    if args.out is not None:
        atomic_write_text(json.dumps(result.to_dict()) + "\n", args.out)
    if args.json:
        for line in result.lines()[1:]:
            if " skipped: " in line:
                print(line, file=sys.stderr)
        print(json.dumps(result.to_dict()))
        return
    print(f"{loaded.arch} ({loaded.source} checkpoint {loaded.path}) on {device}")
    print("\n".join(result.lines()))
    if args.out is not None:
        print(f"wrote {args.out}")
