"""`ganslim quantize --ckpt FILE --data DIR --backend onnxruntime|openvino`: static int8 with a report; a latent
generator's synthesis graph calibrates on W+ of mapped z by seed (no --data); --qat-steps N fine-tunes an image model
quantization-aware first."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from ganslim.checkpoints import LoadedModel
    from ganslim.export.qat import QatOptions
    from ganslim.export.quantize import QuantizeResult

DEFAULT_SUFFIXES = {"onnxruntime": ".int8.onnx", "openvino": ".int8.xml"}
SYNTHESIS_SUFFIXES = {"onnxruntime": ".synthesis.int8.onnx", "openvino": ".synthesis.int8.xml"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("quantize", help="post-training static int8 quantization calibrated on your "
                                                    "images (a latent generator's synthesis: on mapped z), with "
                                                    "quality drop and speed-up")
    parser.add_argument("--ckpt", required=True,
                        help="generator checkpoint (ganslim .pt/.safetensors or reference latest_net_G*.pth), "
                             "or a folder holding one")
    parser.add_argument("--data", default=None,
                        help="a folder of input images, or a dataset root: aligned (train/ calibrates, val/ or "
                             "test/ evaluates against targets) or unaligned (trainA/, testA/); super-resolution: HR "
                             "images (train/ val/ test/ or one folder), LR made at the model's scale. Not for latent "
                             "generators (stylegan2, mobile_stylegan): their synthesis graph (W+ in) calibrates on "
                             "the W+ of seeds 0 .. N-1 (z mapped, broadcast) and is scored on the next seeds against "
                             "eager PyTorch")
    parser.add_argument("--backend", default="onnxruntime", metavar="BACKEND",
                        help="onnxruntime (QDQ int8, default) or openvino (NNCF; needs ganslim[openvino])")
    parser.add_argument("--size", type=int, default=None,
                        help="images are resized to SIZE x SIZE (default: the size the model was trained at, else "
                             "256); not for super-resolution models, which take whole images (dynamic H, W)")
    parser.add_argument("--output", default=None,
                        help="int8 model file, or a folder (existing, or ending in /) that gets <checkpoint stem>"
                             ".int8.onnx (latent generators: <stem>.synthesis.int8.onnx; default: next to the "
                             "checkpoint)")
    parser.add_argument("--num-calibration", type=int, default=32,
                        help="calibration images, or a latent generator's calibration seeds (default 32)")
    parser.add_argument("--num-eval", type=int, default=8,
                        help="evaluation images, or a latent generator's evaluation seeds (default 8)")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                        help="input side of A|B pairs and which generator of a CycleGAN folder (default AtoB)")
    parser.add_argument("--sr-metric", default=None, choices=["y", "rgb"],
                        help="super-resolution PSNR/SSIM on the Y channel (y, default) or on RGB")
    parser.add_argument("--qat-steps", type=int, default=None, metavar="N",
                        help="quantization-aware fine-tuning first: N steps distilling the fp32 model (or --teacher) "
                             "into its fake-quantized copy on the calibration images, then int8 with the learned "
                             "ranges, reported beside plain PTQ on the same images (image models)")
    parser.add_argument("--qat-lr", type=float, default=None,
                        help="Adam learning rate of --qat-steps (default 1e-5)")
    parser.add_argument("--qat-batch", type=int, default=None, metavar="B",
                        help="calibration images per --qat-steps step (default 1; 1 where their sizes differ)")
    parser.add_argument("--teacher", default=None, metavar="CKPT",
                        help="the generator --qat-steps distills from (default: the fp32 model itself); it takes and "
                             "returns what the model does")
    parser.add_argument("--threads", type=int, default=None, help="runtime CPU threads (default: its own)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of each model (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.checkpoints import load_generator, resolve_generator_file
    from ganslim.cli.export import checkpoint_meta, output_file
    from ganslim.cli.sizing import choose_size
    from ganslim.errors import GanslimError
    from ganslim.export.calibration import split_data
    from ganslim.export.quantize import BACKENDS, SUFFIXES, quantize_model
    from ganslim.measure.evaluate import SR_NO_RESIZE, sr_scale
    from ganslim.signature import LABEL_MAP

    if args.backend not in BACKENDS:
        raise GanslimError(f"unknown --backend '{args.backend}'; choose one of: {', '.join(BACKENDS)}")
    checkpoint = resolve_generator_file(args.ckpt, args.direction)
    loaded = load_generator(checkpoint, direction=args.direction)
    latent = not loaded.signature.takes_image
    qat = _qat_options(args, loaded.arch, latent)
    suffix = (SYNTHESIS_SUFFIXES if latent else DEFAULT_SUFFIXES)[args.backend]
    output = output_file(args.output, checkpoint, suffix, SUFFIXES[args.backend], f"--backend {args.backend}")
    if latent:
        result = _quantize_synthesis(args, loaded, output)
    elif loaded.signature.image_input.kind == LABEL_MAP:
        result = _quantize_labels(args, loaded, output)
    else:
        if args.data is None:
            raise GanslimError(f"{loaded.arch} takes images: pass --data DIR, a dataset root or a folder of its "
                               f"input images to calibrate on")
        super_resolution = sr_scale(loaded.signature) is not None
        if super_resolution and args.size is not None:
            raise GanslimError(SR_NO_RESIZE)
        split = split_data(args.data, args.direction, super_resolution=super_resolution)
        size = None if super_resolution else choose_size(args.size, [(checkpoint.name, loaded.trained_size)])
        result = quantize_model(
            loaded.model, split.calibration, output, backend=args.backend, size=size,
            num_calibration=args.num_calibration, eval_images=split.evaluation, num_eval=args.num_eval,
            aligned=split.aligned, direction=args.direction, arch=loaded.arch, arch_kwargs=loaded.arch_kwargs,
            meta=checkpoint_meta(loaded), threads=args.threads, repeats=args.repeats, sr_metric=args.sr_metric,
            qat=qat)
    if args.json:
        print(json.dumps(result.to_dict()))
        return
    print(format_report(result, f"{loaded.arch} ({checkpoint})"))


def _qat_options(args: argparse.Namespace, arch: str, latent: bool) -> QatOptions | None:
    """--qat-steps, --qat-lr, --qat-batch and --teacher as QAT options (the teacher loaded); None without
    --qat-steps."""
    from ganslim.checkpoints import load_generator, resolve_generator_file
    from ganslim.errors import GanslimError
    from ganslim.export.qat import DEFAULT_BATCH_SIZE, DEFAULT_LR, QatOptions, check_qat_options

    if args.qat_steps is None:
        given = [flag for flag, value in (("--qat-lr", args.qat_lr), ("--qat-batch", args.qat_batch),
                                          ("--teacher", args.teacher)) if value is not None]
        if given:
            raise GanslimError(f"{given[0]} sets quantization-aware fine-tuning: add --qat-steps N, or drop it")
        return None
    options = QatOptions(steps=args.qat_steps, lr=DEFAULT_LR if args.qat_lr is None else args.qat_lr,
                         batch_size=DEFAULT_BATCH_SIZE if args.qat_batch is None else args.qat_batch)
    check_qat_options(options)
    if latent:
        raise GanslimError(f"--qat-steps fine-tunes image models, and {arch} is a latent generator: quantize its "
                           f"synthesis without --qat-steps")
    if args.teacher is None:
        teacher, name = None, "the fp32 model itself"
    else:
        teacher_file = resolve_generator_file(args.teacher, args.direction)
        teacher, name = load_generator(teacher_file, direction=args.direction).model.eval(), str(teacher_file)
    return QatOptions(steps=options.steps, lr=options.lr, batch_size=options.batch_size, teacher=teacher,
                      teacher_name=name)


def _quantize_labels(args: argparse.Namespace, loaded: LoadedModel, output: Path) -> QuantizeResult:
    """A label-map model (SPADE), int8, calibrated on the one-hot label maps of --data's train split."""
    from ganslim.cli.export import checkpoint_meta
    from ganslim.errors import GanslimError
    from ganslim.export.quantize import quantize_label_model

    if args.data is None:
        raise GanslimError(f"{loaded.arch} takes label maps: pass --data DIR, a label-map dataset (labels/ images/ "
                           f"[instances/], Cityscapes, ...) whose train split calibrates")
    if args.qat_steps is not None or args.sr_metric is not None:
        raise GanslimError(f"--qat-steps and --sr-metric are for image models; {loaded.arch} takes label maps: drop "
                           f"them")
    return quantize_label_model(
        loaded.model, args.data, output, backend=args.backend, size=None if args.size is None else (args.size,) * 2,
        num_calibration=args.num_calibration, num_eval=args.num_eval, arch=loaded.arch,
        arch_kwargs=loaded.arch_kwargs, meta=checkpoint_meta(loaded), threads=args.threads, repeats=args.repeats)


def _quantize_synthesis(args: argparse.Namespace, loaded: LoadedModel, output: Path) -> QuantizeResult:
    """A latent generator's synthesis graph, int8, calibrated on W+ of seeds 0 .. --num-calibration - 1."""
    from ganslim.cli.export import checkpoint_meta
    from ganslim.errors import GanslimError
    from ganslim.export.quantize import quantize_synthesis

    given = [flag for flag, value in (("--data", args.data), ("--sr-metric", args.sr_metric)) if value is not None]
    if given:
        raise GanslimError(f"{given[0]} is for image models, and {loaded.arch} is a latent generator: its synthesis "
                           f"calibrates on the W+ of mapped z by seed, with no images: drop {given[0]}")
    if args.size is not None:
        loaded.signature.check_resolution(args.size)
    return quantize_synthesis(loaded.model, output, args.backend, args.num_calibration, args.num_eval,
                              arch=loaded.arch, arch_kwargs=loaded.arch_kwargs, meta=checkpoint_meta(loaded),
                              threads=args.threads, repeats=args.repeats)


def format_report(result: QuantizeResult, name: str) -> str:
    """The quantization report as aligned text lines."""
    fp32, int8 = result.latency_fp32, result.latency_int8
    held = "held out from calibration" if result.eval_held_out else "the calibration image itself"
    dynamic = " (any height and width)" if result.dynamic else ""
    shape = "x".join(map(str, result.input_shape))
    if result.part is None:
        inputs = (f"  images        : {result.num_calibration} calibration, {result.num_eval} evaluation ({held}), "
                  f"input {shape}{dynamic}")
    else:
        inputs = (f"  latents       : W+ of {result.num_calibration} calibration, {result.num_eval} evaluation seeds "
                  f"({held}), mapped z, stored noise; input {shape} (any batch)")
    lines = [
        f"int8 {name}{'' if result.part is None else ' ' + result.part} with {result.runtime}",
        f"  files         : {', '.join(str(f) for f in result.files)}",
        f"  sidecar       : {result.sidecar}",
        inputs,
        f"  int8 layers   : {', '.join(f'{op} x{n}' for op, n in sorted(result.int8_layers.items()))}",
        f"  float layers  : {', '.join(layer.name for layer in result.float_layers) or 'none'}",
    ]
    for reason in dict.fromkeys(layer.reason for layer in result.float_layers):
        ops = sorted({layer.op_type for layer in result.float_layers if layer.reason == reason})
        lines.append(f"    {'/'.join(ops)}: {reason}")
    lines.append(f"  metrics       : {result.scoring}")
    lines.append(f"  int8 vs fp32  : PSNR {result.psnr_vs_fp32:.2f} dB, SSIM {result.ssim_vs_fp32:.4f}, max abs diff "
                 f"{result.max_abs_diff_vs_fp32:.3g}")
    if result.task is not None:
        task = result.task
        label = "vs targets    " if result.part is None else "vs eager      "
        lines.append(f"  {label}: PSNR {task.psnr_fp32:.2f} -> {task.psnr_int8:.2f} dB, "
                     f"SSIM {task.ssim_fp32:.4f} -> {task.ssim_int8:.4f} (fp32 -> int8)")
    if result.qat is not None:
        lines.extend(_qat_lines(result))
    lines.append(f"  latency       : fp32 {fp32.median_ms:.1f} ms, int8 {int8.median_ms:.1f} ms (median of "
                 f"{int8.repeats}, interleaved) -> {result.speedup:.2f}x")
    return "\n".join(lines)


def _qat_lines(result: QuantizeResult) -> list[str]:
    """The fine-tuning run and plain PTQ on the same images, beside the QAT model's figures above."""
    qat, log = result.qat, result.qat.log
    lines = [f"  QAT           : {log.steps} steps of {log.batch_size}, lr {log.lr:g}, distilled from {log.teacher}, "
             f"{log.fake_quantized_layers} layers fake-quantized, L1 {log.loss_first:.4g} -> {log.loss_last:.4g} "
             f"({log.seconds:.1f} s)",
             f"  PTQ, same data: int8 vs fp32 PSNR {qat.ptq_psnr_vs_fp32:.2f} dB, SSIM {qat.ptq_ssim_vs_fp32:.4f}, "
             f"max abs diff {qat.ptq_max_abs_diff_vs_fp32:.3g} (QAT: {result.psnr_vs_fp32:.2f} dB)"]
    if qat.ptq_psnr_task is not None:
        lines.append(f"  PTQ vs targets: PSNR {qat.ptq_psnr_task:.2f} dB, SSIM {qat.ptq_ssim_task:.4f} "
                     f"(QAT: {result.task.psnr_int8:.2f} dB, {result.task.ssim_int8:.4f})")
    return lines
