"""Post-training static int8 quantization of a generator, calibrated on the user's images (a latent generator's
synthesis: on W+ of mapped random z), with a report.

Two backends, both calibrating activation ranges on images preprocessed exactly as at test time, in the value
range of the model's signature: an image-to-image model's inputs resized to ``size`` (``ganslim.apps.translate.
load_input``: bicubic, ``x / 127.5 - 1``); a super-resolution model's whole LR images, made from HR images at its
scale as ``ganslim eval`` makes them (:func:`ganslim.export.calibration.hr_item`), with an export dynamic in height
and width (SR never resizes its input). A latent generator (StyleGAN2, mobile_stylegan) takes no image: its
synthesis graph (W+ -> image, stored noise frozen, any batch, demodulation folded) calibrates on the W+ of fixed
seeds' z, mapped and broadcast (:func:`quantize_synthesis`).

* ``onnxruntime``: ``onnxruntime.quantization.quantize_static`` writes a QDQ model (QuantizeLinear /
  DequantizeLinear pairs around each op) with per-channel int8 weights and uint8 activations, MinMax
  calibration. ONNX Runtime's CPU provider fuses ``DQ -> Conv -> Q`` into ``QLinearConv`` at load time. It has
  no such int8 kernel for ``ConvTranspose``, which therefore dequantizes and runs in float.
* ``openvino``: NNCF ``nncf.quantize`` (``MIXED`` preset: symmetric int8 weights, asymmetric activations)
  inserts FakeQuantize ops into the OpenVINO model; the CPU plugin then picks int8 kernels where it has them.

Whether a layer *really* runs in int8 is read from the graph the runtime executes, never assumed: for ONNX
Runtime the optimized model it writes out (``QLinearConv`` and friends are int8, a remaining ``Conv`` or
``ConvTranspose`` is float), for OpenVINO the compiled model's ``runtimePrecision`` of each layer. The report
lists the float layers with the reason read from the quantized graph.

Quality: the fp32 and int8 models are scored by :func:`ganslim.measure.evaluate.score_models`, as ``ganslim eval``
scores them (image-to-image: PSNR on [-1, 1], SSIM on intensities; super-resolution: BasicSR's PSNR/SSIM, Y channel,
border = scale, uint8), int8 against fp32 and both against the targets (a latent generator's synthesis: against
eager PyTorch's images of the same latents and noise, so fidelity before and after quantization).

Quantization-aware fine-tuning (``qat``, :mod:`ganslim.export.qat`; image models): the generator is fake-quantized,
its ranges set on the calibration images, fine-tuned by distillation on them for ``qat.steps`` steps, and exported
as a QDQ model with the learned ranges instead of calibration; ONNX Runtime runs that file, OpenVINO reads it as
FakeQuantize ops. The plain PTQ model of the same backend, calibrated on the same images, is scored on the same
evaluation images beside it (:class:`QatComparison`) and discarded; the QAT model is the one written.

Timing: fp32 and int8 models run in the same process, interleaved, ONNX Runtime with thread spinning off
(see ``ganslim.export.runtime``), OpenVINO with ``INFERENCE_PRECISION_HINT=f32`` for its float parts, so the
speed-up is int8 against honest fp32 of the same runtime.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from ganslim.apps.generate import MAX_SEED, Latents, format_seeds, seed_w_plus
from ganslim.apps.translate import load_input
from ganslim.data.label_datasets import detect_label_layout, has_split
from ganslim.data.labels import LabelEncoding
from ganslim.data.validate import image_sizes
from ganslim.errors import GanslimError
from ganslim.export import (
    folding,
    input_channels_of,
    publish,
    resolve_output,
    sidecar_header,
    staging_folder,
)
from ganslim.export.calibration import FileItems, hr_item, image_files, select_images
from ganslim.export.onnx import export_onnx
from ganslim.export.parts import deployable, part_graphs
from ganslim.export.qat import QatLog, QatOptions, check_qat_options, export_qdq_onnx, finetune_qat
from ganslim.export.runtime import (
    openvino_compiled,
    openvino_version,
    ort_session,
    require_openvino,
)
from ganslim.measure.evaluate import (
    SR_NO_RESIZE,
    EvalData,
    Scoring,
    array_run,
    check_sr_inputs,
    json_safe,
    open_label_eval_data,
    rescale,
    score_models,
    scoring_for,
    sr_scale,
)
from ganslim.measure.profile import LatencyStats, eval_mode, time_interleaved
from ganslim.signature import LABEL_MAP, SIGNED, UNIT, Signature, parts_of, signature_of

__all__ = ["BACKENDS", "FloatLayer", "QatComparison", "QuantizeResult", "TaskMetrics", "quantize_model",
           "quantize_synthesis"]

BACKENDS = ("onnxruntime", "openvino")
DEFAULT_NAMES = {"onnxruntime": "generator.int8.onnx", "openvino": "generator.int8.xml"}
SUFFIXES = {"onnxruntime": (".onnx",), "openvino": (".xml",)}
LATENT_NAMES = {"onnxruntime": "generator.synthesis.int8.onnx", "openvino": "generator.synthesis.int8.xml"}
LATENT_SEED = 0  # the first calibration seed of a latent generator's synthesis
DEFAULT_SIZE = 256  # an image-to-image model's input side when none is given
FP32, INT8, PTQ = "the fp32 model", "the int8 model", "the PTQ int8 model"  # the models as the scoring names them

# Compute ops in the graph ONNX Runtime runs, by precision (contrib ops included).
ORT_INT8_OPS = frozenset({"QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm",
                          "QLinearConvTranspose", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention"})
ORT_FLOAT_OPS = frozenset({"Conv", "ConvTranspose", "FusedConv", "MatMul", "FusedMatMul", "Gemm", "FusedGemm",
                           "Einsum"})
# Compute layers in OpenVINO's compiled (runtime) model.
OV_COMPUTE_LAYERS = frozenset({"Convolution", "GroupConvolution", "Deconvolution", "GroupDeconvolution",
                               "FullyConnected", "MatMul"})
OV_INT8_PRECISIONS = frozenset({"u8", "i8"})
QAT_METHOD = ("quantization-aware fine-tuning (fake-quantized per-channel int8 weights, uint8 activations, EMA ranges, "
              "straight-through gradients), exported as QDQ with the learned ranges")


@dataclass(frozen=True)
class FloatLayer:
    """A compute layer (conv, transposed conv, matmul) that runs in float in the quantized model, and why."""

    name: str
    op_type: str
    reason: str


@dataclass(frozen=True)
class TaskMetrics:
    """Mean PSNR (dB) and SSIM against the dataset's targets (a latent generator's synthesis: eager PyTorch's images
    of the evaluation latents), for the fp32 and the int8 model (as :attr:`QuantizeResult.scoring` says)."""

    psnr_fp32: float
    psnr_int8: float
    ssim_fp32: float
    ssim_int8: float


@dataclass(frozen=True)
class QatComparison:
    """A quantization-aware fine-tuned model's run (``log``) and plain post-training quantization (PTQ) of the same
    backend, calibrated on the same images, scored on the same evaluation images: its PSNR (dB), SSIM and max abs
    difference against fp32, its task PSNR/SSIM against the targets (None without targets), the layers it runs in
    int8 and how it was made."""

    log: QatLog
    ptq_psnr_vs_fp32: float
    ptq_ssim_vs_fp32: float
    ptq_max_abs_diff_vs_fp32: float
    ptq_psnr_task: float | None
    ptq_ssim_task: float | None
    ptq_int8_layers: dict[str, int]
    ptq_method: str


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_model` (or :func:`quantize_synthesis`) wrote and measured.

    ``int8_layers`` counts the compute layers that run in int8 by op type, as the runtime executes them;
    ``float_layers`` lists the ones that stay float. ``psnr_vs_fp32`` (dB), ``ssim_vs_fp32`` and
    ``max_abs_diff_vs_fp32`` (in the model's output range, before clamping) compare int8 and fp32 outputs on the
    evaluation images, which are held out from calibration unless ``eval_held_out`` is False (a single image).
    ``task`` holds PSNR/SSIM against targets for aligned (and super-resolution) data, else None; ``scoring`` says
    how PSNR/SSIM were computed. Latencies are for one image of ``input_shape`` (the first evaluation image);
    ``dynamic``: the files take any batch and height and width (super-resolution models, which take whole images).
    ``part``: ``synthesis`` for a latent generator's synthesis graph (inputs W+ (1, num_ws, w_dim) of the
    evaluation latents, any batch; ``task`` against eager PyTorch), else None. ``qat``: with quantization-aware
    fine-tuning, its log and the plain PTQ model's scores beside it (everything else describes the QAT model).
    """

    backend: str
    runtime: str
    files: list[Path]
    sidecar: Path
    input_shape: tuple[int, ...]
    dynamic: bool
    num_calibration: int
    num_eval: int
    eval_held_out: bool
    int8_layers: dict[str, int]
    float_layers: list[FloatLayer]
    psnr_vs_fp32: float
    ssim_vs_fp32: float
    max_abs_diff_vs_fp32: float
    task: TaskMetrics | None
    scoring: str
    latency_fp32: LatencyStats
    latency_int8: LatencyStats
    part: str | None = None
    qat: QatComparison | None = None

    @property
    def speedup(self) -> float:
        """Median fp32 latency over median int8 latency."""
        return self.latency_fp32.median_ms / self.latency_int8.median_ms

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the report (paths as strings, latencies in ms, ``inf`` as ``"inf"``)."""
        report = asdict(self)
        report["files"] = [str(f) for f in self.files]
        report["sidecar"] = str(self.sidecar)
        report["input_shape"] = list(self.input_shape)
        report["speedup"] = self.speedup
        return json_safe(report)


def quantize_model(
    generator: nn.Module,
    calibration_images: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    backend: str = "onnxruntime",
    size: int | None = None,
    num_calibration: int = 32,
    eval_images: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    num_eval: int = 8,
    *,
    aligned: bool = False,
    direction: str = "AtoB",
    in_channels: int | None = None,
    arch: str | None = None,
    arch_kwargs: dict | None = None,
    meta: dict | None = None,
    threads: int | None = None,
    warmup: int = 2,
    repeats: int = 10,
    sr_metric: str | None = None,
    qat: QatOptions | None = None,
) -> QuantizeResult:
    """Quantize ``generator`` to static int8 for ``backend``, verify it runs in int8, and report.

    Args:
        generator: a CPU ``nn.Module`` with a signature (a plain module is taken as image-to-image in [-1, 1]).
        calibration_images: a folder (searched recursively) or a list of image files: the model's inputs, or
            for a super-resolution model HR images (the LR images made from them at its scale calibrate).
        out: the int8 model file (``.onnx`` for onnxruntime, ``.xml`` for openvino) or a folder, which gets
            ``generator.int8.onnx`` / ``generator.int8.xml`` + ``.bin``; the sidecar is ``<file>.json``.
        backend: ``onnxruntime`` (QDQ, per-channel) or ``openvino`` (NNCF).
        size: image-to-image models: images are resized to ``size`` x ``size`` (default 256), the model's input
            is (1, C, size, size). Super-resolution models take whole images: leave it None.
        num_calibration: calibration images used, spread evenly over the list.
        eval_images: held-out images for the report (HR images for super-resolution); None: ``num_eval`` of the
            calibration images are held out (not calibrated on), unless there is only one image, which then
            serves both.
        num_eval: evaluation images used, spread evenly.
        aligned: files are A|B pairs: the input half is calibrated on, the other half is the target of the
            task metrics (PSNR/SSIM vs target). Super-resolution evaluation images are their own targets.
        direction: ``AtoB`` (input left) or ``BtoA`` (input right) for aligned files.
        in_channels: input channels; default: the generator's (its signature's).
        arch: registered architecture name for the sidecar; arch_kwargs: its build arguments.
        meta: JSON-serialisable facts copied into the sidecar.
        threads: CPU threads of both runtimes' sessions; None keeps their defaults.
        warmup: untimed interleaved rounds; repeats: timed rounds.
        sr_metric: super-resolution PSNR/SSIM on ``y`` (default) or ``rgb``.
        qat: fine-tune the fake-quantized model on the calibration images first (see the module docstring) and
            write the int8 model with its learned ranges; its teacher must take and return what ``generator`` does.

    Returns:
        A :class:`QuantizeResult`. Raises GanslimError (and writes nothing) on bad inputs or when no layer
        ends up running in int8.
    """
    _check_backend(backend)
    signature = signature_of(generator, size or DEFAULT_SIZE)
    if not signature.takes_image:
        raise GanslimError(f"{type(generator).__name__} is a latent generator: it takes no images to calibrate on; "
                           f"quantize its synthesis with quantize_synthesis (ganslim quantize without --data)")
    scale = sr_scale(signature)
    if scale is not None and size is not None:
        raise GanslimError(SR_NO_RESIZE)
    if scale is not None and aligned:
        raise GanslimError("aligned A|B files are image-to-image data: a super-resolution model calibrates on HR "
                           "images (the LR images are made from them)")
    if scale is None and size is None:
        size = DEFAULT_SIZE
    _check_counts(num_calibration=num_calibration, num_eval=num_eval, **({"size": size} if scale is None else {}))
    if qat is not None:
        _check_qat(qat, generator, signature)
    scoring = scoring_for(signature, sr_metric)
    target = resolve_output(out, SUFFIXES[backend], DEFAULT_NAMES[backend], f"--backend {backend}")
    channels = input_channels_of(generator, in_channels)
    evaluation_files = None if eval_images is None else image_files(eval_images, "evaluation")
    calibration, evaluation, held_out = select_images(image_files(calibration_images, "calibration"),
                                                      evaluation_files, num_calibration, num_eval)
    if scale is None:
        evaluation_data = _translation_data(evaluation, size, channels, signature.output.channels, aligned,
                                            direction)
        calibration_data = _translation_data(calibration, size, channels, None, aligned, direction)
    else:
        evaluation_data, calibration_data = (_sr_data(files, signature) for files in (evaluation, calibration))
    calibration_arrays = [_model_input(calibration_data, index, signature) for index in range(len(calibration))]
    with eval_mode(generator):
        return _quantize_and_publish(
            generator, signature, target, backend, calibration_arrays, evaluation_data, scoring,
            _model_input(evaluation_data, 0, signature), dynamic=scale is not None, held_out=held_out,
            threads=threads, warmup=warmup, repeats=repeats, arch=arch, arch_kwargs=arch_kwargs, meta=meta, qat=qat)


def quantize_synthesis(
    generator: nn.Module,
    out: str | os.PathLike,
    backend: str = "onnxruntime",
    num_calibration: int = 32,
    num_eval: int = 8,
    *,
    seed: int = LATENT_SEED,
    arch: str | None = None,
    arch_kwargs: dict | None = None,
    meta: dict | None = None,
    threads: int | None = None,
    warmup: int = 2,
    repeats: int = 10,
) -> QuantizeResult:
    """Quantize a latent generator's synthesis graph to static int8 for ``backend``, calibrated on W+ of mapped random
    z (no images), verify it runs in int8, and report its fidelity.

    The graph is the one ``ganslim export --parts synthesis --w-plus`` writes: W+ (N, num_ws, w_dim) -> image (N, C,
    R, R), any batch, the stored noise frozen in, a mobile_stylegan's demodulation folded into its weights
    (:func:`ganslim.export.parts.deployable`). Its latents are the W+ of seeds ``seed`` .. ``seed +
    num_calibration - 1`` (calibration) and of the ``num_eval`` seeds after them (evaluation, held out): each
    seed's z as ``ganslim generate --seeds`` draws it, mapped without truncation, broadcast to every layer
    (:func:`ganslim.apps.generate.seed_w_plus`). Fidelity on the evaluation latents: ``task`` holds PSNR/SSIM of the
    fp32 and the int8 graph against eager PyTorch's images of the same latents and noise (before / after
    quantization), ``psnr_vs_fp32`` and the like int8 against fp32.

    Args:
        generator: a CPU latent generator with parts (stylegan2, mobile_stylegan).
        out: the int8 model file (``.onnx`` / ``.xml``) or a folder, which gets ``generator.synthesis.int8.onnx`` /
            ``.xml`` + ``.bin``; the sidecar is ``<file>.json``.
        backend, threads, warmup, repeats, arch, arch_kwargs, meta: as for :func:`quantize_model`.
        num_calibration, num_eval: calibration and evaluation latents.
        seed: the first seed.

    Returns:
        A :class:`QuantizeResult` with ``part`` ``synthesis``. Raises GanslimError (and writes nothing) for a
        model without parts, bad counts or seed, or when no layer ends up running in int8.
    """
    _check_backend(backend)
    _check_counts(num_calibration=num_calibration, num_eval=num_eval)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED - num_calibration - num_eval:
        raise GanslimError(f"seed={seed!r} must be a whole number from 0 (the first calibration seed)")
    if parts_of(generator) is None:
        raise GanslimError(f"{type(generator).__name__} has no synthesis part to quantize on latents: an image "
                           f"model calibrates on images (ganslim quantize --data DIR)")
    target = resolve_output(out, SUFFIXES[backend], LATENT_NAMES[backend], f"--backend {backend}")
    seeds = range(seed, seed + num_calibration + num_eval)
    with eval_mode(generator):
        deployed = deployable(generator)
        reference, graph = (part_graphs(model, ["synthesis"], w_plus=True)["synthesis"] for model in (generator,
                                                                                                     deployed))
        with torch.inference_mode():
            w_plus = seed_w_plus(generator, seeds).cpu()
            targets = reference(w_plus[num_calibration:]).clamp(*SIGNED)  # as saved, as the outputs are scored
        evaluation = EvalData(_LatentTargets(w_plus[num_calibration:], targets), None, paired=True, layout="latent",
                              root=Path(), split="", input_key="w_plus", target_key="image",
                              latents=Latents.from_seeds(seeds[num_calibration:]))
        calibration = [w_plus[index:index + 1].numpy() for index in range(num_calibration)]
        fields = {"part": "synthesis", "noise": "frozen", **folding(deployed, generator),
                  "calibration": f"W+ of seeds {format_seeds(seeds[:num_calibration])} (z mapped untruncated, "
                                 f"broadcast); evaluated on seeds {format_seeds(seeds[num_calibration:])}"}
        with eval_mode(graph):
            return _quantize_and_publish(
                graph, graph.signature, target, backend, calibration, evaluation, Scoring(),
                evaluation.inputs[0]["w_plus"][None].numpy(), dynamic=True, held_out=True, threads=threads,
                warmup=warmup, repeats=repeats, arch=arch, arch_kwargs=arch_kwargs, meta=meta, fields=fields)


def quantize_label_model(
    generator: nn.Module,
    data: str | os.PathLike,
    out: str | os.PathLike,
    backend: str = "onnxruntime",
    size: tuple[int, int] | None = None,
    num_calibration: int = 32,
    num_eval: int = 8,
    *,
    arch: str | None = None,
    arch_kwargs: dict | None = None,
    meta: dict | None = None,
    threads: int | None = None,
    warmup: int = 2,
    repeats: int = 10,
) -> QuantizeResult:
    """Quantize a label-map generator (SPADE) to static int8 for ``backend``, calibrated on the real one-hot label
    maps (+ instance edges) of the dataset at ``data``, and report.

    Calibration reads its ``train`` split (a ``folders`` dataset without split folders: all of it); evaluation its
    ``val`` (else ``test``) split against the paired photos, else ``num_eval`` training maps held out from
    calibration. ``size``: (height, width) the maps are resized to (nearest), default the one the model is built
    for. The other arguments are :func:`quantize_model`'s.
    """
    _check_backend(backend)
    signature = signature_of(generator)
    if not signature.takes_image or signature.image_input.kind != LABEL_MAP:
        raise GanslimError(f"{type(generator).__name__} takes {signature.describe()}, not a label map: quantize it "
                           f"with quantize_model")
    size = tuple(size or signature.image_input.size or ())
    if len(size) != 2:
        raise GanslimError(f"{type(generator).__name__} records no size it is built for: pass --size")
    _check_counts(num_calibration=num_calibration, num_eval=num_eval)
    target = resolve_output(out, SUFFIXES[backend], DEFAULT_NAMES[backend], f"--backend {backend}")
    calibration, evaluation, held_out = _label_splits(LabelEncoding.of(generator), data, size, num_calibration,
                                                      num_eval)
    arrays = [_model_input(calibration, index, signature) for index in range(len(calibration.inputs))]
    with eval_mode(generator):
        return _quantize_and_publish(
            generator, signature, target, backend, arrays, evaluation, scoring_for(signature),
            _model_input(evaluation, 0, signature), dynamic=False, held_out=held_out, threads=threads, warmup=warmup,
            repeats=repeats, arch=arch, arch_kwargs=arch_kwargs, meta=meta)


def _label_splits(encoding: LabelEncoding, data: str | os.PathLike, size: tuple[int, int], num_calibration: int,
                  num_eval: int) -> tuple[EvalData, EvalData, bool]:
    """(calibration, evaluation, held out?) label-map data, chosen as :func:`~ganslim.export.calibration.
    select_images` chooses image files (see :func:`quantize_label_model`)."""
    root = Path(data)
    layout = detect_label_layout(root)
    train = open_label_eval_data(encoding, root, "train", size)
    split = next((split for split in ("val", "test") if has_split(root, split, layout)), None)
    held = None if split is None else open_label_eval_data(encoding, root, split, size)
    calibration, evaluation, held_out = select_images(list(train.label_paths), held and list(held.label_paths),
                                                      num_calibration, num_eval)
    return _pick(train, calibration), _pick(held or train, evaluation), held_out


def _pick(data: EvalData, label_paths: list[Path]) -> EvalData:
    """The items of label-map ``data`` whose label files are ``label_paths``."""
    index = {path: position for position, path in enumerate(data.label_paths)}
    inputs = Subset(data.inputs, [index[path] for path in label_paths])
    return replace(data, inputs=inputs, real=inputs, label_paths=tuple(label_paths))


def _check_backend(backend: str) -> None:
    """One line for an unknown backend, or for openvino without OpenVINO or NNCF."""
    if backend not in BACKENDS:
        raise GanslimError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    if backend == "openvino":
        require_openvino()
        _require_nncf()


def _check_qat(qat: QatOptions, generator: nn.Module, signature: Signature) -> None:
    """One line for bad fine-tuning settings, or a teacher whose inputs or outputs differ from the generator's."""
    check_qat_options(qat)
    if qat.teacher is None:
        return
    theirs = signature_of(qat.teacher)
    mine, other = signature.image_input, theirs.image_input if theirs.takes_image else None
    if (other is None or (other.channels, other.value_range) != (mine.channels, mine.value_range)
            or (theirs.output.channels, theirs.output.value_range, theirs.output.scale)
            != (signature.output.channels, signature.output.value_range, signature.output.scale)):
        raise GanslimError(f"the QAT teacher {qat.teacher_name} ({theirs.describe()}) does not take and return what "
                           f"the model does ({signature.describe()}): pass a teacher of the same task")


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GanslimError(f"{name}={value!r} must be a positive integer")


def _quantize_and_publish(module: nn.Module, signature: Signature, target: Path, backend: str,
                          calibration: list[np.ndarray], evaluation: EvalData, scoring: Scoring, first: np.ndarray, *,
                          dynamic: bool, held_out: bool, threads: int | None, warmup: int, repeats: int,
                          arch: str | None, arch_kwargs: dict | None, meta: dict | None,
                          fields: dict[str, str] | None = None, qat: QatOptions | None = None) -> QuantizeResult:
    """Quantize ``module`` (in eval mode, of ``signature``) calibrated on ``calibration`` (its inputs), score fp32
    and int8 on ``evaluation``, time both on ``first`` and publish the int8 files at ``target`` with a sidecar
    (``fields`` added to it); ``dynamic``: the export's free axes (:func:`ganslim.export.onnx.input_axes`).
    With ``qat`` the int8 model is the fine-tuned one, and the plain one is scored beside it."""
    with staging_folder(target.parent) as stage:
        quantizer = _quantize_onnxruntime if backend == "onnxruntime" else _quantize_openvino
        example = torch.from_numpy(first)
        ptq_target = target if qat is None else stage / f"ptq{target.suffix}"
        ptq = quantizer(module, signature, example, dynamic, calibration, stage, ptq_target, threads)
        built, log = ptq, None
        if qat is not None:
            student, log = finetune_qat(module, [torch.from_numpy(array) for array in calibration], qat)
            exporter = _qat_onnxruntime if backend == "onnxruntime" else _qat_openvino
            built = exporter(student, signature, example, dynamic, stage, target, threads, ptq)
        if not built.int8_layers:
            raise GanslimError(f"no layer runs in int8 after {backend} quantization of {type(module).__name__}; "
                               f"nothing was written: keep the fp32 export")
        models = [(FP32, built.fp32), (INT8, built.int8)] + ([] if qat is None else [(PTQ, ptq.int8)])
        runs = {name: array_run(runner, signature, evaluation.value_range) for name, runner in models}
        scores = score_models(runs, evaluation, scoring, reference=FP32)
        latency = time_interleaved({"fp32": built.fp32, "int8": built.int8}, first, warmup, repeats)
        fp32, int8 = scores.metrics[FP32], scores.metrics[INT8]
        task = (TaskMetrics(psnr_fp32=fp32["psnr"], psnr_int8=int8["psnr"], ssim_fp32=fp32["ssim"],
                            ssim_int8=int8["ssim"]) if evaluation.paired else None)
        sidecar = sidecar_header(f"{backend}-int8", built.files, arch, arch_kwargs, first.shape,
                                 tuple(built.int8(first).shape), dynamic=dynamic, meta=meta, signature=signature)
        sidecar.update(fields or {})
        final_files = [target.parent / f.name for f in built.files]  # where publish() moves them
        result = QuantizeResult(
            backend=backend, runtime=built.runtime, files=final_files,
            sidecar=target.parent / f"{final_files[0].name}.json",
            input_shape=tuple(first.shape), dynamic=dynamic, num_calibration=len(calibration),
            num_eval=len(evaluation.inputs), eval_held_out=held_out, int8_layers=dict(built.int8_layers),
            float_layers=built.float_layers, psnr_vs_fp32=int8["psnr_ref"], ssim_vs_fp32=int8["ssim_ref"],
            max_abs_diff_vs_fp32=scores.max_abs_diff[INT8], task=task, scoring=scoring.describe(),
            latency_fp32=latency["fp32"], latency_int8=latency["int8"], part=(fields or {}).get("part"),
            qat=None if log is None else _comparison(log, ptq, scores.metrics[PTQ], scores.max_abs_diff[PTQ],
                                                     evaluation.paired))
        sidecar["quantization"] = {key: value for key, value in result.to_dict().items()
                                   if key not in ("files", "sidecar")}
        sidecar["quantization"]["method"] = built.method
        built.release()
        ptq.release()
        publish(stage, built.files, sidecar, target.parent)
    return result


def _comparison(log: QatLog, ptq: _Built, metrics: dict[str, float], max_abs_diff: float,
                paired: bool) -> QatComparison:
    """The QAT run's log beside the PTQ model's scores (``metrics`` as :func:`score_models` gives them)."""
    return QatComparison(log=log, ptq_psnr_vs_fp32=metrics["psnr_ref"], ptq_ssim_vs_fp32=metrics["ssim_ref"],
                         ptq_max_abs_diff_vs_fp32=max_abs_diff, ptq_psnr_task=metrics["psnr"] if paired else None,
                         ptq_ssim_task=metrics["ssim"] if paired else None, ptq_int8_layers=dict(ptq.int8_layers),
                         ptq_method=ptq.method)


# ----------------------------------------------------------------------------------------------------------
# Data


def _translation_data(files: list[Path], size: int, channels: int, target_channels: int | None, aligned: bool,
                      direction: str) -> EvalData:
    """Image-to-image ``files`` as the scoring reads them: ``A`` (channels, size, size) in [-1, 1], and for
    aligned files and 1 or 3 ``target_channels`` (None: no targets) the other half as the target ``B``."""
    paired = aligned and target_channels in (1, 3)
    other_side = "BtoA" if direction == "AtoB" else "AtoB"

    def load(path: Path) -> dict[str, torch.Tensor]:
        item = {"A": load_input(path, size, channels, aligned, direction)}
        if paired:
            item["B"] = load_input(path, size, target_channels, aligned, other_side)
        return item

    return EvalData(FileItems(files, load), None, paired=paired, layout="files", root=files[0].parent, split="")


def _sr_data(files: list[Path], signature: Signature) -> EvalData:
    """HR image ``files`` as the scoring reads them: ``lq`` / ``gt`` pairs in [0, 1] at the model's scale (every LR
    image checked to have sides the model takes)."""
    scale = sr_scale(signature)
    lr_sizes = [(width // scale, height // scale) for width, height in image_sizes(files)]
    same_size = check_sr_inputs(files, lr_sizes, signature, "the LR image of HR image")
    return EvalData(FileItems(files, lambda path: hr_item(path, scale)), None, paired=True, layout="files",
                    root=files[0].parent, split="", input_key="lq", target_key="gt", value_range=UNIT,
                    same_size=same_size, scale=scale)


def _model_input(data: EvalData, index: int, signature: Signature) -> np.ndarray:
    """Input ``index`` of ``data`` as the model takes it: a float32 (1, C, h, w) array in its input range."""
    image = data.inputs[index][data.input_key][None]
    return np.ascontiguousarray(rescale(image, data.value_range, signature.image_input.value_range).numpy())


class _LatentTargets(Dataset):
    """W+ rows (N, num_ws, w_dim) and eager PyTorch's images of them (N, C, R, R) as ``{"w_plus", "image"}``
    items."""

    def __init__(self, w_plus: torch.Tensor, images: torch.Tensor) -> None:
        self.w_plus, self.images = w_plus, images

    def __len__(self) -> int:
        return len(self.w_plus)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"w_plus": self.w_plus[index], "image": self.images[index]}


# ----------------------------------------------------------------------------------------------------------
# Backends


@dataclass
class _Built:
    """A quantized model staged on disk, runners for it and its fp32 twin, and what runs in int8."""

    files: list[Path]
    runtime: str
    method: str
    fp32: Callable[[np.ndarray], np.ndarray]
    int8: Callable[[np.ndarray], np.ndarray]
    int8_layers: Counter
    float_layers: list[FloatLayer]
    release: Callable[[], None]


@contextlib.contextmanager
def _quiet_quantizers() -> Iterator[None]:
    """Mute the quantizers' chatter: onnxruntime.quantization logs per-tensor warnings on the root logger,
    NNCF logs INFO lines and draws progress bars on stdout."""
    loggers = [logging.getLogger(), logging.getLogger("nncf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _quantize_onnxruntime(generator: nn.Module, signature: Signature, example: torch.Tensor, dynamic: bool,
                          calibration: list[np.ndarray], stage: Path, target: Path, threads: int | None) -> _Built:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {name: batch}

    name = signature.inputs[0].name
    fp32_path, prepared = stage / "fp32.onnx", stage / "fp32.prepared.onnx"
    export_onnx(generator, fp32_path, example, dynamic=dynamic, signature=signature)
    with _quiet_quantizers():
        try:
            # Shape inference and ORT's graph fusions first, as onnxruntime.quantization recommends.
            quant_pre_process(str(fp32_path), str(prepared))
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation; quantize the raw export instead
            prepared = fp32_path
        quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    optimized = stage / "int8.optimized.onnx"
    fp32_session = ort_session(prepared, threads)
    int8_session = ort_session(target, threads, optimized_path=optimized)
    int8_layers, float_layers = _ort_precisions(onnx.load(str(target)), onnx.load(str(optimized)))
    sessions = [fp32_session, int8_session]

    def runner(index: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda inputs: sessions[index].run(None, {name: inputs})[0]

    return _Built(files=[target], runtime=f"onnxruntime {ort.__version__}",
                  method="onnxruntime quantize_static: QDQ, per-channel int8 weights, uint8 activations, MinMax",
                  fp32=runner(0), int8=runner(1), int8_layers=int8_layers, float_layers=float_layers,
                  release=sessions.clear)


def _qat_onnxruntime(student: nn.Module, signature: Signature, example: torch.Tensor, dynamic: bool, stage: Path,
                     target: Path, threads: int | None, ptq: _Built) -> _Built:
    """The fine-tuned fake-quantized ``student`` as the QDQ file ``target``, run by ONNX Runtime (fp32: ``ptq``'s)."""
    import onnx
    import onnxruntime as ort

    export_qdq_onnx(student, target, example, signature, dynamic, stage)
    optimized = stage / "qat.optimized.onnx"
    sessions = [ort_session(target, threads, optimized_path=optimized)]
    int8_layers, float_layers = _ort_precisions(onnx.load(str(target)), onnx.load(str(optimized)))
    name = signature.inputs[0].name
    return _Built(files=[target], runtime=f"onnxruntime {ort.__version__}", method=QAT_METHOD, fp32=ptq.fp32,
                  int8=lambda inputs: sessions[0].run(None, {name: inputs})[0], int8_layers=int8_layers,
                  float_layers=float_layers, release=sessions.clear)


def _ort_precisions(quantized: Any, optimized: Any) -> tuple[Counter, list[FloatLayer]]:
    """Int8 compute ops by type, and the float ones with the reason, from the QDQ and the executed graph."""
    int8 = Counter(node.op_type for node in optimized.graph.node if node.op_type in ORT_INT8_OPS)
    producer = {output: node.op_type for node in quantized.graph.node for output in node.output}
    by_name = {node.name: node for node in quantized.graph.node}
    float_layers = []
    for node in optimized.graph.node:
        if node.op_type not in ORT_FLOAT_OPS:
            continue
        original = by_name.get(node.name)
        if original is None:
            reason = "created by ONNX Runtime's graph optimizer in float"
        elif len(original.input) > 1 and producer.get(original.input[1]) == "DequantizeLinear":
            reason = (f"its weights are int8 in the QDQ model, but ONNX Runtime's CPU provider has no int8 "
                      f"{node.op_type} kernel to fuse DequantizeLinear -> {node.op_type} -> QuantizeLinear into, "
                      f"so it dequantizes and runs in float")
        else:
            reason = "onnxruntime.quantization left it unquantized (no QDQ pair around it)"
        float_layers.append(FloatLayer(node.name, node.op_type, reason))
    return int8, float_layers


def _require_nncf() -> Any:
    try:
        import nncf
    except ImportError:
        raise GanslimError("NNCF is not installed: pip install 'ganslim[openvino]' (or use "
                           "--backend onnxruntime)") from None
    return nncf


def _quantize_openvino(generator: nn.Module, signature: Signature, example: torch.Tensor, dynamic: bool,
                       calibration: list[np.ndarray], stage: Path, target: Path, threads: int | None) -> _Built:
    from ganslim.export.openvino import convert_onnx, save_ir

    nncf = _require_nncf()
    fp32_path = stage / "fp32.onnx"
    export_onnx(generator, fp32_path, example, dynamic=dynamic, signature=signature)
    fp32_model = convert_onnx(fp32_path)
    # NNCF's fast bias correction takes a synthesis graph's frozen noise (a (1, 1, r, r) constant added right after a
    # conv) for that conv's bias and fails to reshape its per-channel correction into it: latent graphs go without.
    advanced = nncf.AdvancedQuantizationParameters(disable_bias_correction=not signature.takes_image)
    with _quiet_quantizers():
        int8_model = nncf.quantize(fp32_model, nncf.Dataset(calibration), subset_size=len(calibration),
                                   preset=nncf.QuantizationPreset.MIXED, advanced_parameters=advanced)
    files = save_ir(int8_model, target)
    compiled = [openvino_compiled(fp32_model, "f32", threads), openvino_compiled(target, "f32", threads)]
    int8_layers, float_layers = _openvino_precisions(compiled[1].get_runtime_model(), int8_model)

    def runner(index: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda image: np.asarray(compiled[index](image)[compiled[index].output(0)])

    return _Built(files=files, runtime=openvino_version(),
                  method="NNCF quantize, MIXED preset (symmetric int8 weights, asymmetric activations)",
                  fp32=runner(0), int8=runner(1), int8_layers=int8_layers, float_layers=float_layers,
                  release=compiled.clear)


def _qat_openvino(student: nn.Module, signature: Signature, example: torch.Tensor, dynamic: bool, stage: Path,
                  target: Path, threads: int | None, ptq: _Built) -> _Built:
    """The fine-tuned fake-quantized ``student``'s QDQ graph read by OpenVINO (FakeQuantize ops) and saved as the IR
    ``target`` (fp32: ``ptq``'s)."""
    from ganslim.export.openvino import convert_onnx, save_ir

    qdq = stage / "qat.qdq.onnx"
    export_qdq_onnx(student, qdq, example, signature, dynamic, stage)
    int8_model = convert_onnx(qdq)
    files = save_ir(int8_model, target)
    compiled = [openvino_compiled(target, "f32", threads)]
    int8_layers, float_layers = _openvino_precisions(compiled[0].get_runtime_model(), int8_model)
    return _Built(files=files, runtime=openvino_version(), method=QAT_METHOD, fp32=ptq.fp32,
                  int8=lambda image: np.asarray(compiled[0](image)[compiled[0].output(0)]), int8_layers=int8_layers,
                  float_layers=float_layers, release=compiled.clear)


def _openvino_precisions(runtime_model: Any, quantized: Any) -> tuple[Counter, list[FloatLayer]]:
    """Int8 compute layers by type, and the float ones with the reason, from the compiled model."""
    ops = {op.get_friendly_name(): op for op in quantized.get_ops()}
    int8: Counter = Counter()
    float_layers = []
    for op in runtime_model.get_ordered_ops():
        info = op.get_rt_info()
        layer_type = info["layerType"].astype(str)
        if layer_type not in OV_COMPUTE_LAYERS:
            continue
        precision = info["runtimePrecision"].astype(str)
        if precision in OV_INT8_PRECISIONS:
            int8[layer_type] += 1
            continue
        names = info["originalLayersNames"].astype(str).split(",") if "originalLayersNames" in info else []
        original = next((ops[n] for n in names if n in ops), None)
        shown = next((n for n in names if n.startswith("/")), op.get_friendly_name())
        float_layers.append(FloatLayer(shown, layer_type, _openvino_reason(original, precision)))
    return int8, float_layers


def _openvino_reason(original: Any, precision: str) -> str:
    if original is None:
        return f"created by the OpenVINO CPU plugin in {precision}"
    source = original.input_value(0).get_node()
    if source.get_type_name() != "FakeQuantize":
        return f"its input is not quantized (no FakeQuantize), so it runs in {precision}"
    low = float(np.min(source.input_value(3).get_node().get_data()))
    signed = "signed" if low < 0 else "unsigned"
    return (f"its input is quantized ({signed} range), but the OpenVINO CPU plugin compiled it in {precision} "
            f"(it has no int8 kernel it chose for this layer)")
