"""`ganslim eval --ckpt FILE --data DIR` (or, for super-resolution, `--gt DIR --lq DIR`; for latent generators,
`--real DIR` or `--real-stats NPZ`): PSNR/SSIM vs targets, FID/KID vs real images, fidelity to a teacher."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ganslim.cli.generate import NOISE_MODES

if TYPE_CHECKING:
    from ganslim.apps.generate import Sampling
    from ganslim.checkpoints import LoadedModel
    from ganslim.measure.evaluate import EvalData

DEFAULT_NUM_IMAGES = 50_000  # latent generators: the published protocol (FID-50k)
# The flags of one family of models (default None), each with the fix when given for the other family:
IMAGE_FLAGS = {"--data": "pass --real DIR", "--gt": "pass --real DIR", "--lq": "pass --real DIR",
               "--size": "drop --size", "--sr-metric": "drop --sr-metric", "--max-images": "pass --num-images N",
               "--drn-weights": "drop --drn-weights (mIoU scores label-map models)"}
LATENT_FLAGS = {flag: f"drop {flag}" for flag in ("--real", "--num-images", "--seeds", "--truncation", "--noise-mode")}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="score a generator on a dataset split: FID, KID, PSNR, SSIM (and fidelity to a teacher)",
        description="Run a generator over a dataset split and report FID/KID (vs the real target-domain images "
                    "or cached statistics), PSNR/SSIM (paired data) and, with --teacher, PSNR/SSIM against the "
                    "teacher's outputs. FID/KID need the Inception weights file pt_inception-2015-12-05-"
                    "6726825d.pth (pytorch-fid's) at ~/.cache/ganslim/, in $GANSLIM_INCEPTION_WEIGHTS or "
                    "given with --inception-weights; without it they are skipped and the rest is reported (a "
                    "--inception-weights path that does not exist is an error). Super-resolution models (e.g. "
                    "rrdbnet) run on whole images, never resized, compared with the GT at the output size as "
                    "BasicSR does: PSNR/SSIM on the Y channel with a border of the scale cropped, on uint8-"
                    "quantised outputs (--sr-metric rgb for RGB). Latent generators (StyleGAN2) draw one image per "
                    "seed (as ganslim generate does) and are scored against --real images or --real-stats "
                    "(FID/KID) and, with --teacher, against the teacher's images of the same z and noise "
                    "(PSNR/SSIM). Label-map models (SPADE) read a label-map dataset (Cityscapes, ADE20K, COCO-Stuff "
                    "or labels/ images/ [instances/]) at the size they are built for: PSNR/SSIM against the paired "
                    "photos, FID/KID against them, and mIoU with --drn-weights (else reported as skipped).")
    parser.add_argument("--ckpt", required=True,
                        help="generator checkpoint (ganslim .pt/.safetensors or reference latest_net_G*.pth), "
                             "or a folder holding one")
    parser.add_argument("--data", default=None,
                        help="dataset root (aligned train/ val/ test/ or unaligned testA/ testB/), or a folder "
                             "of input images (FID then needs --real-stats); super-resolution: HR images (train/ "
                             "val/ test/, e.g. ganslim data make photos2sr, or one folder), LR made at the model's "
                             "scale")
    parser.add_argument("--gt", default=None, metavar="DIR",
                        help="super-resolution: folder of GT (HR) images paired by name with --lq (BasicSR's "
                             "layout), instead of --data")
    parser.add_argument("--lq", default=None, metavar="DIR", help="super-resolution: folder of LQ (LR) images")
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
    parser.add_argument("--drn-weights", default=None, metavar="PATH",
                        help="label-map models: the DRN-D-105 Cityscapes segmentation state dict "
                             "(drn-d-105_ms_cityscapes.pth, as GAN Compression uses) for mIoU of the outputs against "
                             "the label maps (Cityscapes labelIds -> 19 train ids, 255 ignored)")
    parser.add_argument("--size", type=int, default=None,
                        help="images are resized to SIZE x SIZE (default: the size the model was trained at, else "
                             "256); not for super-resolution models, which take whole images")
    parser.add_argument("--sr-metric", default=None, choices=["y", "rgb"],
                        help="super-resolution PSNR/SSIM on the BT.601 Y channel (y, default, as SR papers "
                             "report) or on RGB")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                        help="input side of the data, and which generator of a CycleGAN folder (default AtoB)")
    latent = parser.add_argument_group("latent (unconditional) generators")
    latent.add_argument("--real", default=None, metavar="DIR",
                        help="a folder of real images for FID/KID, all of one size (resized to the generator's "
                             "resolution), at least one batch; or pass their statistics with --real-stats")
    latent.add_argument("--num-images", type=int, default=None, metavar="N",
                        help=f"draw N images, seeds 0 .. N-1 (default {DEFAULT_NUM_IMAGES})")
    latent.add_argument("--seeds", default=None, help="the seeds to draw instead, e.g. 0-999 (as ganslim generate)")
    latent.add_argument("--truncation", type=float, default=None, metavar="PSI",
                        help="truncation psi in [0, 1] (default 1: none); each model pulls toward its own mean W")
    latent.add_argument("--noise-mode", default=None, choices=NOISE_MODES,
                        help="const (each model's stored noise, the default), random (the same draws for both "
                             "models, from each seed) or none")
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
    from ganslim.devices import resolve_device
    from ganslim.errors import GanslimError
    from ganslim.measure.evaluate import evaluate_generator, parse_metrics, scoring_for, sr_scale
    from ganslim.metrics.drn import load_drn_segmenter
    from ganslim.signature import LABEL_MAP
    from ganslim.outputs import check_output_file

    metrics = parse_metrics(args.metrics)
    if args.out is not None:
        check_output_file(args.out, "--out")
    device = resolve_device(args.device)
    segmenter = None if args.drn_weights is None else load_drn_segmenter(args.drn_weights)  # a wrong file fails first
    loaded = load_generator(args.ckpt, direction=args.direction)
    teacher = load_generator(args.teacher, direction=args.direction) if args.teacher else None
    sampling = scale = None
    if loaded.signature.takes_image:
        _refuse_flags(args, LATENT_FLAGS, f"is for latent generators, and {loaded.arch} ({loaded.path}) is an "
                                          f"image model")
        scale = sr_scale(loaded.signature)
        scoring_for(loaded.signature, args.sr_metric)  # a wrong --sr-metric fails before any work
        if loaded.signature.image_input.kind == LABEL_MAP:
            data, size = _label_data(args, loaded)
        elif args.drn_weights is not None:
            raise GanslimError(f"--drn-weights scores mIoU of label-map models (SPADE), and {loaded.arch} takes "
                               f"images: drop --drn-weights")
        else:
            data, size = _sr_data(args, loaded) if scale is not None else _translation_data(args, loaded)
        sizes = {"size": size}
    else:
        _refuse_flags(args, IMAGE_FLAGS, f"is for image models, and {loaded.arch} ({loaded.path}) is a latent "
                                         f"generator")
        data, sampling = _latent_data(args, loaded, metrics)
        sizes = {"resolution": loaded.signature.output.resolution}
    result = evaluate_generator(
        loaded.model, data, metrics=metrics, teacher=None if teacher is None else teacher.model,
        inception_weights=args.inception_weights, real_stats=args.real_stats, save_real_stats=args.save_real_stats,
        batch_size=args.batch_size, device=device, progress=not args.json, sr_metric=args.sr_metric,
        sampling=sampling, segmenter=segmenter)
    result.info.update(checkpoint=str(loaded.path), arch=loaded.arch, **sizes,
                       teacher=None if teacher is None else str(teacher.path))
    if scale is not None:
        result.info["scale"] = scale
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


def _refuse_flags(args: argparse.Namespace, flags: dict[str, str], why: str) -> None:
    """One line for the first of ``flags`` (flag -> its fix) given: it ``why`` (e.g. is for image models)."""
    from ganslim.errors import GanslimError

    for flag, fix in flags.items():
        if getattr(args, flag.removeprefix("--").replace("-", "_")) is not None:
            raise GanslimError(f"{flag} {why}: {fix}")


def _latent_data(args: argparse.Namespace, loaded: LoadedModel,
                 metrics: tuple[str, ...]) -> tuple[EvalData, Sampling]:
    """A latent generator's seeds (``--seeds``, else 0 .. ``--num-images`` - 1) and real images (``--real``), and
    how it draws."""
    from ganslim.apps.generate import Sampling, parse_seeds
    from ganslim.errors import GanslimError
    from ganslim.measure.evaluate import open_latent_eval_data

    has_real = args.real is not None or args.real_stats is not None
    if args.teacher is None and (not has_real or not {"fid", "kid"} & set(metrics)):
        raise GanslimError("nothing to score: pass --real DIR or --real-stats NPZ for FID/KID (--metrics fid,kid) "
                           "and/or --teacher REF for PSNR/SSIM against a reference generator")
    if args.real is not None and args.real_stats is not None:
        raise GanslimError("--real and --real-stats exclude each other: pass the folder of real images or their "
                           "statistics")
    sampling = Sampling(1.0 if args.truncation is None else args.truncation, args.noise_mode or "const")
    if args.seeds is not None and args.num_images is not None:
        raise GanslimError("--seeds and --num-images exclude each other: --num-images N draws seeds 0 .. N-1")
    if args.num_images is not None and args.num_images < 1:
        raise GanslimError(f"--num-images {args.num_images} must be at least 1")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else range(args.num_images or DEFAULT_NUM_IMAGES)
    return open_latent_eval_data(loaded.signature, seeds, args.real, batch_size=args.batch_size), sampling


def _translation_data(args: argparse.Namespace, loaded: LoadedModel) -> tuple[EvalData, int]:
    """An image-to-image model's data: ``--data`` resized to ``--size`` (or the size it was trained at)."""
    from ganslim.cli.sizing import choose_size
    from ganslim.errors import GanslimError
    from ganslim.measure.evaluate import open_eval_data

    if args.gt is not None or args.lq is not None:
        raise GanslimError(f"--gt/--lq are the paired folders of super-resolution models; {loaded.arch} is "
                           f"image-to-image: pass --data DIR")
    if args.data is None:
        raise GanslimError("no data given: pass --data DIR (a dataset root or a folder of images)")
    size = choose_size(args.size, [(loaded.path.name, loaded.trained_size)])
    signature = loaded.signature
    data = open_eval_data(args.data, split=args.split, size=size, direction=args.direction,
                          input_nc=signature.image_input.channels, output_nc=signature.output.channels,
                          max_images=args.max_images)
    return data, size


def _label_data(args: argparse.Namespace, loaded: LoadedModel) -> tuple[EvalData, list[int]]:
    """A label-map model's data: ``--data`` at ``--size`` (square) or the (height, width) it is built for."""
    from ganslim.data.labels import LabelEncoding
    from ganslim.errors import GanslimError
    from ganslim.measure.evaluate import open_label_eval_data

    if args.data is None:
        raise GanslimError("no data given: pass --data DIR, a label-map dataset (labels/ images/ [instances/], "
                           "Cityscapes, ADE20K or COCO-Stuff)")
    if args.gt is not None or args.lq is not None or args.sr_metric is not None:
        raise GanslimError(f"--gt/--lq/--sr-metric are for super-resolution models; {loaded.arch} takes label maps: "
                           f"pass --data DIR")
    size = (args.size, args.size) if args.size is not None else loaded.signature.image_input.size
    if size is None:
        raise GanslimError(f"{loaded.arch} records no size it is built for: pass --size")
    for side in size:
        loaded.signature.check_side(side, "--size")
    data = open_label_eval_data(LabelEncoding.of(loaded.model), args.data, split=args.split, size=size,
                                max_images=args.max_images)
    return data, list(size)


def _sr_data(args: argparse.Namespace, loaded: LoadedModel) -> tuple[EvalData, None]:
    """A super-resolution model's data: whole HR images (``--data``) or GT / LQ folders, never resized."""
    from ganslim.errors import GanslimError
    from ganslim.measure.evaluate import SR_NO_RESIZE, open_sr_eval_data

    if args.size is not None:
        raise GanslimError(SR_NO_RESIZE)
    data = open_sr_eval_data(loaded.signature, args.data, args.split, gt=args.gt, lq=args.lq,
                             max_images=args.max_images)
    return data, None
