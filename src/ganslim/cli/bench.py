"""`ganslim bench A.ckpt B.ckpt ...`: models x backends side by side, interleaved; Markdown + JSON + Pareto plot."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

PEAK_SIZE = 1024  # ganslim.measure.profile.PEAK_MATMUL_SIZE, written out: torch must not load before run() sets OMP_WAIT_POLICY


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmark generators across runtimes (latency, GFLOP/s, quality); Markdown, JSON, plot",
        description="Time every model on every backend in one process, round-robin so drift hits all alike, "
                    "next to an fp32 matmul that measures the machine's peak. Reports params, MACs (true and "
                    "published), median/min/max latency, img/s, GFLOP/s and share of peak, and with --data "
                    "PSNR/SSIM vs targets and vs the first model (super-resolution models: on whole images of "
                    "HR --data, BasicSR's Y-channel metrics, as ganslim eval). Writes bench.md, bench.json and "
                    "bench.png into --out.")
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="checkpoint file or folder, or a registered generator name (random weights: speed "
                             "only); LABEL=MODEL names its rows. The first model is the quality reference")
    parser.add_argument("--backends", default="torch,onnxruntime,openvino,int8",
                        help="comma-separated from torch, onnxruntime, openvino, onnxruntime-int8, openvino-int8; "
                             "int8 = both int8 backends (default torch,onnxruntime,openvino,int8)")
    parser.add_argument("--size", type=int, default=None,
                        help="input height and width (default: the size the models were trained at, else 256); "
                             "super-resolution models: the LR side timed (default 64), quality images are whole; "
                             "latent generators (z in, image out): their image side (a name is built at it)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every runtime (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--data", default=None,
                        help="dataset root or image folder: quality metrics on --split, int8 calibration on train/")
    parser.add_argument("--split", default="test", help="split scored for quality (default test)")
    parser.add_argument("--num-images", type=int, default=8, help="images scored per row (default 8)")
    parser.add_argument("--num-calibration", type=int, default=16,
                        help="int8 calibration images (latent generators: W+ of as many seeds; default 16)")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                        help="input side of the data, and which generator of a CycleGAN folder (default AtoB)")
    parser.add_argument("--sr-metric", default=None, choices=["y", "rgb"],
                        help="super-resolution PSNR/SSIM on the Y channel (y, default) or on RGB")
    parser.add_argument("--peak-size", type=int, default=PEAK_SIZE,
                        help=f"side of the fp32 matmul that measures the peak (default {PEAK_SIZE})")
    parser.add_argument("--out", default="bench_out", help="folder for bench.md/json/png (default bench_out)")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the Markdown table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    # OpenMP reads its wait policy when torch loads it: set it before the first torch import, so PyTorch's
    # threads sleep instead of spinning while another runtime runs. The bench records the value it ran with.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from ganslim.cli.sizing import choose_size
    from ganslim.measure.bench import common_scale, format_markdown, run_bench, write_bench
    from ganslim.signature import LABEL_MAP, signature_of
    from ganslim.outputs import check_output_folder

    check_output_folder(args.out, "--out")
    loaded = [_load(spec, args.direction, args.size) for spec in args.models]
    models = _unique_names([model for model, _ in loaded])
    common_scale(models)  # models of different scales or kinds are refused before anything runs
    signatures = [signature_of(model.module) for model in models]
    labels = signatures[0].takes_image and signatures[0].image_input.kind == LABEL_MAP
    if labels and args.size is None:  # label-map models: run_bench takes the (height, width) they are built for
        size = None
    elif signatures[0].takes_image:
        size = choose_size(args.size, [(model.name, trained) for model, trained in loaded], signatures,
                           resizes=False)
    else:  # latent generators make images of their own size, which run_bench checks --size against
        size = args.size
    result = run_bench(models, args.backends, size=size, threads=args.threads, repeats=args.repeats,
                       warmup=args.warmup, data=args.data, split=args.split, direction=args.direction,
                       num_images=args.num_images, num_calibration=args.num_calibration, peak_size=args.peak_size,
                       progress=not args.json, sr_metric=args.sr_metric)
    if labels and args.size is None:
        print(f"size {'x'.join(map(str, result.settings['size']))} (the size the models are built for)",
              file=sys.stderr)
    result.info["command"] = _command(args, result.settings["size"])
    bench = result.to_dict()
    files = write_bench(bench, args.out)
    if args.json:
        print(json.dumps(bench))
        return
    print(format_markdown(bench), end="")
    written = [files.markdown, files.json] + ([files.plot] if files.plot else [])
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    if files.plot_note:
        print(files.plot_note)


def _load(spec: str, direction: str, size: int | None):  # -> (BenchModel, the size it was trained at or None)
    import ganslim.archs  # noqa: F401 - registers the generators
    from ganslim.checkpoints import load_generator
    from ganslim.cli.profile import build_named_generator
    from ganslim.errors import GanslimError
    from ganslim.measure.bench import BenchModel
    from ganslim.registry import GENERATORS

    label, _, target = spec.partition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
    if Path(target).exists():
        loaded = load_generator(target, direction=direction)
        model = BenchModel(label or _default_label(loaded.path), loaded.model, loaded.arch, str(loaded.path))
        return model, loaded.trained_size
    if target in GENERATORS:
        return BenchModel(label or target, build_named_generator(target, None, None, size), target, None), None
    raise GanslimError(f"'{target}' is neither an existing checkpoint nor a generator name: pass a checkpoint "
                       f"path or one of {', '.join(GENERATORS.names())}")


def _default_label(path: Path) -> str:
    """``generator.pt`` in a run folder is named after the folder, any other file after its stem."""
    return path.parent.name if path.stem in ("generator", "latest_net_G", "best", "latest") else path.stem


def _unique_names(models: list) -> list:
    from dataclasses import replace

    seen: dict[str, int] = {}
    unique = []
    for model in models:
        count = seen.get(model.name, 0)
        seen[model.name] = count + 1
        unique.append(model if count == 0 else replace(model, name=f"{model.name}#{count + 1}"))
    return unique


def _command(args: argparse.Namespace, size: int | list[int]) -> str:
    """The command that reruns the bench; a label-map model's own (height, width) needs no --size."""
    sized = ["--size", str(size)] if isinstance(size, int) else []
    parts = ["ganslim", "bench", *args.models, "--backends", args.backends, *sized,
             "--threads", str(args.threads), "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    if args.data is not None:
        parts += ["--data", args.data, "--split", args.split, "--num-images", str(args.num_images),
                  "--num-calibration", str(args.num_calibration)]
    if args.direction != "AtoB":
        parts += ["--direction", args.direction]
    if args.sr_metric is not None:
        parts += ["--sr-metric", args.sr_metric]
    if args.peak_size != PEAK_SIZE:
        parts += ["--peak-size", str(args.peak_size)]
    return shlex.join(parts)
