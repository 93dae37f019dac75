"""`ganslim export --ckpt FILE --format onnx|openvino|torchscript`: a deployable file set, checked for parity; a latent
generator's mapping and synthesis graphs (`--parts`, `--w-plus`, `--noise`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ganslim.cli.subnets import add_subnet_arguments, describe_subnet, extracted_subnet

if TYPE_CHECKING:
    from ganslim.checkpoints import LoadedModel

# Suffix of the default output, next to the checkpoint or in the --output folder: <checkpoint stem><suffix>.
DEFAULT_SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".torchscript.pt"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a generator to ONNX, OpenVINO or TorchScript, "
                                                  "verified against PyTorch")
    parser.add_argument("--ckpt", required=True,
                        help="generator checkpoint (ganslim .pt/.safetensors or reference latest_net_G*.pth), "
                             "or a folder holding one")
    parser.add_argument("--format", default="onnx", metavar="FORMAT",
                        help="onnx (checked in ONNX Runtime), openvino (.xml + .bin; needs ganslim[openvino]) "
                             "or torchscript (traced .pt) (default onnx)")
    parser.add_argument("--size", type=int, default=None,
                        help="input height and width, the low-resolution side for super-resolution (default 256, a "
                             "label-map model's own height x width; "
                             "latent generators take no image: their output size only)")
    parser.add_argument("--dynamic", action="store_true",
                        help="dynamic batch, height and width (parity also checked at 2 x C x SIZE x 2*SIZE; "
                             "latent generators: dynamic batch, checked at batch 1 and 2)")
    parser.add_argument("--parts", default=None, metavar="PARTS",
                        help="a latent generator's graphs: mapping,synthesis (its default: <stem>.mapping.onnx z -> "
                             "W, <stem>.synthesis.onnx W -> image), one of them, or whole (one z -> image graph)")
    parser.add_argument("--w-plus", action="store_true",
                        help="the synthesis graph takes W+ (N, num_ws, w_dim) instead of W (N, w_dim)")
    parser.add_argument("--noise", default="frozen", metavar="NOISE",
                        help="synthesis noise: frozen (the stored noise buffers baked in, default) or input (one "
                             "(N, 1, r, r) input per buffer, noise_0 ...)")
    parser.add_argument("--output", default=None,
                        help="model file, or a folder (existing, or ending in /) that gets <checkpoint stem>.onnx "
                             "(default: next to the checkpoint)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="largest max-abs difference to eager PyTorch accepted (default 1e-3 for f32)")
    parser.add_argument("--precision", default="f32", metavar="PRECISION",
                        help="OpenVINO float precision for the check: f32 (default), bf16 or f16")
    parser.add_argument("--onnx-exporter", default="auto", metavar="EXPORTER",
                        help="auto (default: legacy tracer, torch.export if tracing fails), legacy or dynamo")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                        help="which generator of a CycleGAN checkpoint folder (default AtoB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_subnet_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.checkpoints import load_generator, resolve_generator_file
    from ganslim.errors import GanslimError
    from ganslim.export import FORMATS, SUFFIXES, export_model, export_parts

    if args.format not in FORMATS:
        raise GanslimError(f"unknown --format '{args.format}'; choose one of: {', '.join(FORMATS)}")
    checkpoint = resolve_generator_file(args.ckpt, args.direction)
    output = output_file(args.output, checkpoint, DEFAULT_SUFFIXES[args.format], SUFFIXES[args.format],
                         f"--format {args.format}")
    loaded = load_generator(checkpoint, direction=args.direction)
    parts = chosen_parts(args.parts, loaded.model)
    model, subnet = extracted_subnet(loaded.model, args, f"checkpoint '{checkpoint}'")
    options = {"dynamic": args.dynamic, "meta": checkpoint_meta(loaded), "arch": loaded.arch,
               "arch_kwargs": loaded.arch_kwargs, "tolerance": args.tolerance, "precision": args.precision,
               "onnx_exporter": args.onnx_exporter}
    if subnet is not None:
        options |= sub_generator_options(loaded, model, subnet)
    if loaded.signature.takes_image:
        size = args.size or loaded.signature.image_input.size or 256  # a SPADE model's own (height, width)
    else:  # a latent generator makes images of one size, the only --size it takes
        size = loaded.signature.output.resolution
        if args.size is not None:
            loaded.signature.check_resolution(args.size)
    if parts is None:
        if args.w_plus or args.noise != "frozen":
            raise GanslimError("--w-plus and --noise are options of a latent generator's synthesis graph: pass "
                               "--parts synthesis (or mapping,synthesis), or drop them")
        results = [export_model(model, output, args.format, size=size, **options)]
    else:
        results = export_parts(model, output, args.format, parts, w_plus=args.w_plus, noise=args.noise, **options)
    if args.json:
        described = [_described(result) for result in results]
        print(json.dumps(described[0] if parts is None else
                         {"format": args.format, "parts": {r.part: d for r, d in zip(results, described)}}))
        return
    sub = "" if subnet is None else (f" as its {subnet.resolution} px sub-generator of channels "
                                     f"{','.join(map(str, subnet.channels))}")
    print(f"exported {loaded.arch} ({loaded.source} checkpoint {checkpoint}){sub} to {args.format}"
          + ("" if parts is None else f": {', '.join(parts)}"))
    for result in results:
        shapes = ", ".join("x".join(map(str, s)) for s in result.checked_shapes)
        if result.part is not None:
            print(f"  {result.part}")
        print(f"  files        : {', '.join(str(f) for f in result.files)}")
        print(f"  sidecar      : {result.sidecar}")
        print(f"  max abs diff : {result.max_abs_diff:.3g} vs eager PyTorch (tolerance {result.tolerance:g}; "
              f"{result.runtime}; inputs {shapes})")


def chosen_parts(text: str | None, model) -> list[str] | None:
    """The parts --parts names (None: the whole model); a latent generator's default is all of them."""
    from ganslim.export.parts import PARTS
    from ganslim.signature import parts_of

    if text is None:
        return list(PARTS) if parts_of(model) is not None else None
    if text.strip() == "whole":
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _described(result) -> dict:
    return {"format": result.format, "files": [str(f) for f in result.files], "sidecar": str(result.sidecar),
            "max_abs_diff": result.max_abs_diff, "tolerance": result.tolerance, "runtime": result.runtime,
            "checked_shapes": [list(s) for s in result.checked_shapes]}


def output_file(output: str | None, checkpoint: Path, suffix: str, suffixes: tuple[str, ...], what: str) -> Path:
    """The model file to write, checked to be writable: ``output`` (a file name, or a folder that gets
    ``<checkpoint stem><suffix>``), by default ``<checkpoint stem><suffix>`` next to the checkpoint."""
    from ganslim.errors import GanslimError
    from ganslim.export import resolve_output

    name = checkpoint.stem + suffix
    path = resolve_output(output or checkpoint.with_name(name), suffixes, name, what)
    if path.resolve() == checkpoint.resolve():
        raise GanslimError(f"--output '{path}' is the checkpoint itself: pass another file name or a folder")
    return path


def sub_generator_options(loaded: LoadedModel, compact, subnet) -> dict:
    """The export options of a sub-generator copied out of ``loaded`` (``compact``, a ``stylegan2``): its own
    build arguments, checked against the sliced full generator, and the sidecar's record of which one it is."""
    from ganslim.compress import SlicedSubGenerator

    record = describe_subnet(subnet) | {"of": {"arch": loaded.arch, "arch_kwargs": loaded.arch_kwargs}}
    return {"arch_kwargs": compact.arch_kwargs(), "meta": checkpoint_meta(loaded) | {"subnet": record},
            "reference": SlicedSubGenerator(loaded.model, subnet.resolution, subnet.channels)}


def checkpoint_meta(loaded: LoadedModel) -> dict:
    """Where an exported model came from, for its sidecar."""
    return {"checkpoint": str(loaded.path), "checkpoint_source": loaded.source, "checkpoint_meta": loaded.meta}
