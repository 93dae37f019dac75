"""Export generators for deployment (ONNX, OpenVINO IR, TorchScript) and quantize them to int8, with parity checks.

:func:`export_model` writes one deployable file set plus a JSON sidecar, then runs the exported model in its
runtime and compares it with eager PyTorch; above the tolerance it raises and leaves nothing behind.
:func:`export_parts` does the same for each graph of a latent generator (its mapping and synthesis,
:mod:`ganslim.export.parts`), all written or none. Both export a generator's deployable form
(:func:`ganslim.export.parts.deployable`: MobileStyleGAN's demodulation folded into its weights) and check it
against the generator as given.
:func:`quantize_model` (in ``ganslim.export.quantize``) makes a static int8 model calibrated on the user's
images and reports its quality drop, speed-up and the layers that stay float; :func:`quantize_synthesis` does
the same for a latent generator's synthesis graph, calibrated on W+ of mapped z. :func:`load_exported` runs any
exported file. Everything takes a plain ``nn.Module`` generator and reads what it takes and returns from its
signature (:mod:`ganslim.signature`): the graph's input name and free axes, the parity inputs, and the sidecar's
pixel mapping (``x / 127.5 - 1`` in and ``(y + 1) / 2 * 255`` out for [-1, 1], ``x / 255`` and
``round(clamp(y, 0, 1) * 255)`` for [0, 1], with the output's scale); the sidecar holds the signature itself
(``Signature.from_dict(sidecar["signature"])``). Runtimes (onnxruntime, openvino, nncf) are imported only when used.

Files appear complete or not at all: they are written into a hidden staging folder next to the target,
verified there, and only then renamed into place, the sidecar last.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ganslim import __version__
from ganslim.atomic import atomic_write_text
from ganslim.errors import GanslimError, first_line
from ganslim.export.onnx import EXPORTERS, OUTPUT_NAME, export_onnx, input_axes, output_axes
from ganslim.export.openvino import export_openvino
from ganslim.export.parts import PARTS, deployable, part_graphs
from ganslim.export.runtime import (
    PRECISIONS,
    TORCHSCRIPT_SUFFIXES,
    ExportedModel,
    format_of,
    load_exported,
)
from ganslim.export.torchscript import export_torchscript
from ganslim.measure.profile import eval_mode
from ganslim.outputs import check_output_file, check_output_folder, make_folder, write_error
from ganslim.signature import (
    IMAGE,
    LATENT,
    SIGNED,
    UNIT,
    ImageSides,
    InputSpec,
    Signature,
    image_to_image,
    input_channels,
    signature_of,
)

if TYPE_CHECKING:
    from ganslim.export.quantize import QuantizeResult, quantize_model, quantize_synthesis

__all__ = [
    "DEFAULT_TOLERANCE",
    "ExportResult",
    "ExportedModel",
    "FORMATS",
    "QuantizeResult",
    "export_model",
    "export_parts",
    "format_of",
    "load_exported",
    "quantize_model",
    "quantize_synthesis",
]

FORMATS = ("onnx", "openvino", "torchscript")
SIDECAR_FORMAT = "ganslim-export"
# 2: the model's signature, its input's name and kind, normalization from its value ranges; 3: every graph input
# (``inputs``), latent inputs and outputs, and ``part`` (the mapping or synthesis graph of a latent generator).
SIDECAR_VERSION = 3
# File names used when the output given is a folder; TorchScript avoids "generator.pt", a checkpoint's name.
DEFAULT_NAMES = {"onnx": "generator.onnx", "openvino": "generator.xml", "torchscript": "generator.torchscript.pt"}
SUFFIXES = {"onnx": (".onnx",), "openvino": (".xml",), "torchscript": TORCHSCRIPT_SUFFIXES}
# Max abs difference allowed between the exported and the eager output (images in [-1, 1] or [0, 1]) by precision:
# f32 runtimes agree to ~1e-6 (4e-5 for resnet_9blocks at 256 px), so 1e-3 only catches real export bugs.
# bf16 keeps 8 bits of mantissa: 0.02 on a tiny generator, 0.06 on resnet_9blocks at 256 px (measured with
# OpenVINO). An f16 hint gave the same numbers on a CPU without native f16 (OpenVINO ran bf16), so it gets the
# same allowance.
DEFAULT_TOLERANCE = {"f32": 1e-3, "bf16": 1e-1, "f16": 1e-1}
# 8-bit pixels x -> a value range, and outputs y -> 8-bit pixels, as each family's reference does it (pix2pix's
# tensor2im truncates; BasicSR's tensor2img clamps and rounds); ganslim.data.images does the same.
PIXELS_IN = {SIGNED: "x / 127.5 - 1", UNIT: "x / 255"}
PIXELS_OUT = {SIGNED: "(y + 1) / 2 * 255", UNIT: "round(clamp(y, 0, 1) * 255)"}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and measured.

    ``files`` are the model files (e.g. ``[generator.xml, generator.bin]``), ``sidecar`` the JSON next to
    them, ``max_abs_diff`` the largest |exported - eager| over ``checked_shapes`` (the first input's, e.g.
    (N, C, H, W)), ``runtime`` the runtime and version that ran the check, ``part`` the part of a latent
    generator (``mapping``, ``synthesis``; None for a whole model).
    """

    format: str
    files: list[Path]
    sidecar: Path
    max_abs_diff: float
    tolerance: float
    runtime: str
    checked_shapes: list[tuple[int, ...]] = field(default_factory=list)
    part: str | None = None


def export_model(
    generator: nn.Module,
    out: str | os.PathLike,
    format: str = "onnx",  # noqa: A002 - the word users know from --format
    size: int | tuple[int, int] = 256,
    dynamic: bool = False,
    meta: dict | None = None,
    *,
    arch: str | None = None,
    arch_kwargs: dict | None = None,
    tolerance: float | None = None,
    precision: str = "f32",
    onnx_exporter: str = "auto",
    seed: int = 0,
    reference: nn.Module | None = None,
) -> ExportResult:
    """Export ``generator`` to ``format``, verify it in its runtime against eager PyTorch, and write a sidecar.

    Args:
        generator: a CPU ``nn.Module`` taking one input, as its signature says (:func:`ganslim.signature.signature_of`:
            a plain module is taken for an image in [-1, 1]); exported in eval mode (its train/eval flags are
            restored afterwards).
        out: the model file (``.onnx``; ``.xml`` for OpenVINO; ``.pt``/``.ts``/``.torchscript`` for
            TorchScript) or a folder, which gets ``generator.onnx`` / ``generator.xml`` + ``.bin`` /
            ``generator.torchscript.pt``. The sidecar is ``<model file>.json``.
        format: ``onnx`` (checked in ONNX Runtime), ``openvino`` (OpenVINO, ``precision`` hint) or
            ``torchscript`` (traced; checked with ``torch.jit.load``).
        size: height and width of the export's image, (1, C, size, size), or (height, width) (a SPADE model's
            own size, e.g. Cityscapes' (256, 512)) (a super-resolution model's LR side;
            unused by a latent generator, whose z is (1, z_dim)).
        dynamic: make batch, height and width dynamic; parity is then also checked at (2, C, height, 2*width) (a
            latent generator: at batch 2).
        meta: JSON-serialisable facts copied into the sidecar (e.g. the checkpoint it came from).
        arch: registered architecture name, recorded in the sidecar (None for unregistered modules).
        arch_kwargs: its build arguments, recorded in the sidecar.
        tolerance: largest max-abs difference accepted; default ``DEFAULT_TOLERANCE[precision]`` (1e-3 f32).
        precision: OpenVINO float precision (``f32`` default, ``bf16``, ``f16``); other formats run f32 only.
        onnx_exporter: ``auto`` (default: legacy tracer, dynamo if tracing fails), ``legacy`` or ``dynamo``, for
            onnx and openvino (see ``ganslim.export.onnx``); the sidecar records the one used.
        seed: seed of the check inputs (the signature's example inputs: images uniform in their value range).
        reference: the eager model the export is checked against (default ``generator``), taking the same inputs:
            e.g. the sliced full generator (``ganslim.compress.SlicedSubGenerator``) a sub-generator was copied from.

    Returns:
        An :class:`ExportResult`. Raises GanslimError (and writes nothing) when the generator cannot run at
        ``size``, the export fails, or the exported output differs by more than ``tolerance``.
    """
    tolerance = _check_options(format, precision, onnx_exporter, tolerance)
    target = resolve_output(out, SUFFIXES[format], DEFAULT_NAMES[format], f"--format {format}")
    _check_size(size)
    reference = generator if reference is None else reference
    with eval_mode(generator), eval_mode(reference):  # a plain module's signature is probed with a forward
        signature = signature_of(generator, size if isinstance(size, int) else size[0])
        if len(signature.inputs) != 1:
            raise GanslimError(f"export takes generators of one input; this one takes {signature.describe()}")
        deployed = deployable(generator)
        graph = Graph(target.name, deployed, signature, _check_inputs(signature, size, dynamic, seed), reference,
                      fields=folding(deployed, generator))
        options = _Options(format, dynamic, tolerance, precision, onnx_exporter, seed)
        return _export_graphs([graph], target.parent, options, meta, arch, arch_kwargs)[0]


def export_parts(
    generator: nn.Module,
    out: str | os.PathLike,
    format: str = "onnx",  # noqa: A002 - the word users know from --format
    parts: Sequence[str] = PARTS,
    *,
    w_plus: bool = False,
    noise: str = "frozen",
    dynamic: bool = False,
    meta: dict | None = None,
    arch: str | None = None,
    arch_kwargs: dict | None = None,
    tolerance: float | None = None,
    precision: str = "f32",
    onnx_exporter: str = "auto",
    seed: int = 0,
    reference: nn.Module | None = None,
) -> list[ExportResult]:
    """Export a latent generator's ``parts`` as separate graphs (:mod:`ganslim.export.parts`), each verified in its
    runtime against eager PyTorch, with a sidecar each; all are written or none.

    Args:
        generator: a latent generator with ``parts()`` (:mod:`ganslim.export.parts`; StyleGAN2's), on the CPU.
        out: a model file (``G.onnx``, ``G.xml``, ``G.pt``), whose stem names the parts' files (``G.mapping.onnx``,
            ``G.synthesis.onnx``), or a folder (``generator.mapping.onnx``, ...).
        format: ``onnx``, ``openvino`` or ``torchscript``, as for :func:`export_model`.
        parts: names from :data:`ganslim.export.parts.PARTS`: ``mapping`` (z (N, z_dim) -> W (N, w_dim)) and
            ``synthesis`` (W (N, w_dim), the same style for every layer, or W+ (N, num_ws, w_dim) -> image).
        w_plus: the synthesis graph takes W+ rather than W.
        noise: ``frozen`` bakes the stored noise buffers into the synthesis graph; ``input`` makes each an input
            (N or 1, 1, r, r) named as the buffer (``noise_0``, ...).
        dynamic: a free batch axis, checked at batch 1 and 2 (else batch 1 only).
        meta, arch, arch_kwargs, tolerance, precision, onnx_exporter, seed: as for :func:`export_model`.
        reference: the eager model the graphs are checked against (default ``generator``), with parts of the same
            inputs: e.g. the sliced full generator (``ganslim.compress.SlicedSubGenerator``) a sub-generator was
            copied from.
    """
    tolerance = _check_options(format, precision, onnx_exporter, tolerance)
    target = resolve_output(out, SUFFIXES[format], DEFAULT_NAMES[format], f"--format {format}")
    reference = generator if reference is None else reference
    with eval_mode(generator), eval_mode(reference):
        deployed = deployable(generator)
        modules = part_graphs(deployed, parts, w_plus, noise)
        graphs = []
        for part, eager in part_graphs(reference, parts, w_plus, noise).items():
            name = f"{Path(target.name).stem}.{part}{target.suffix}"  # G.onnx -> G.mapping.onnx
            checks = _check_inputs(eager.signature, 1, dynamic, seed)
            fields = {"part": part} | ({"noise": noise} | folding(deployed, generator) if part == "synthesis" else {})
            graphs.append(Graph(name, modules[part], eager.signature, checks, eager, part, fields))
        options = _Options(format, dynamic, tolerance, precision, onnx_exporter, seed)
        return _export_graphs(graphs, target.parent, options, meta, arch, arch_kwargs)


@dataclass(frozen=True)
class Graph:
    """One file set to export: ``module`` (in eval mode) with its ``signature``, written as ``file_name``, checked
    on ``checks`` (tuples of inputs, one tensor per signature input) against eager ``reference`` (the module the
    user gave, of which ``module`` is the deployable form); ``part`` names a latent generator's part and
    ``fields`` are added to its sidecar."""

    file_name: str
    module: nn.Module
    signature: Signature
    checks: list[tuple[torch.Tensor, ...]]
    reference: nn.Module
    part: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def folding(deployed: nn.Module, generator: nn.Module) -> dict[str, str]:
    """The sidecar field saying the graph's demodulation is folded, when ``deployed`` (:func:`deployable`) is
    ``generator`` folded."""
    return {} if deployed is generator else {"demodulation": "folded into the weights"}


@dataclass(frozen=True)
class _Options:
    format: str
    dynamic: bool
    tolerance: float
    precision: str
    onnx_exporter: str
    seed: int


def _check_options(format: str, precision: str, onnx_exporter: str, tolerance: float | None) -> float:  # noqa: A002
    """The tolerance to check with (one line for an unknown format, precision or exporter, or a bad tolerance)."""
    if format not in FORMATS:
        raise GanslimError(f"unknown export format '{format}'; choose one of: {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise GanslimError(f"unknown precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")
    if format != "openvino" and precision != "f32":
        raise GanslimError(f"precision '{precision}' applies to --format openvino only; {format} runs f32")
    if onnx_exporter not in EXPORTERS:
        raise GanslimError(f"unknown ONNX exporter '{onnx_exporter}'; choose one of: {', '.join(EXPORTERS)}")
    tolerance = DEFAULT_TOLERANCE[precision] if tolerance is None else float(tolerance)
    if not tolerance >= 0:
        raise GanslimError(f"tolerance {tolerance} must be a non-negative number (e.g. 1e-3)")
    return tolerance


def _export_graphs(graphs: Sequence[Graph], folder: Path, options: _Options, meta: dict | None, arch: str | None,
                  arch_kwargs: dict | None) -> list[ExportResult]:
    """Export every graph into ``folder``, each checked against eager PyTorch, and publish them only when all
    passed (each model file set, then its sidecar)."""
    expected = [[run_eager(graph.reference, inputs) for inputs in graph.checks] for graph in graphs]
    with staging_folder(folder) as stage:
        staged = [_export_checked(graph, outputs, stage, options, meta, arch, arch_kwargs)
                  for graph, outputs in zip(graphs, expected)]
        results = []
        for graph, (files, sidecar) in zip(graphs, staged):
            published, sidecar_path = publish(stage, files, sidecar, folder)
            check = sidecar["verification"]
            results.append(ExportResult(format=options.format, files=published, sidecar=sidecar_path,
                                        max_abs_diff=check["max_abs_diff"], tolerance=options.tolerance,
                                        runtime=check["runtime"], part=graph.part,
                                        checked_shapes=[tuple(inputs[0].shape) for inputs in graph.checks]))
    return results


def _export_checked(graph: Graph, expected: list[np.ndarray], stage: Path, options: _Options, meta: dict | None,
                    arch: str | None, arch_kwargs: dict | None) -> tuple[list[Path], dict[str, Any]]:
    """Write ``graph`` into ``stage`` and check it in its runtime against the eager ``expected`` outputs: its files
    and sidecar; above the tolerance a GanslimError."""
    fmt, precision, tolerance = options.format, options.precision, options.tolerance
    with eval_mode(graph.module):  # a part's wrapper module is made in train mode, as every new module
        files, exporter_used = _write_format(fmt, graph.module, stage / graph.file_name, graph.checks[0],
                                             options.dynamic, options.onnx_exporter, graph.signature)
    exported = load_exported(files[0], precision=precision)
    diff = max(_max_abs_diff(exported, inputs, reference) for inputs, reference in zip(graph.checks, expected))
    runtime = exported.runtime
    del exported  # release the runtime's hold on the staged files before they move
    what = f"{graph.part} graph of the {fmt} export" if graph.part else f"{fmt} export"
    if not diff <= tolerance:
        raise GanslimError(
            f"the {what} differs from eager PyTorch by max abs {diff:.3g} > tolerance {tolerance:g} ({runtime}, "
            f"{precision}); nothing was written: pass a larger --tolerance if that is expected, else report the model")
    shapes = [[list(tensor.shape) for tensor in inputs] for inputs in graph.checks]
    sidecar = sidecar_header(fmt, files, arch, arch_kwargs, shapes[0][0], tuple(expected[0].shape), options.dynamic,
                             meta, signature=graph.signature, input_shapes=shapes[0])
    sidecar.update(graph.fields)
    sidecar["export"] = {"onnx_exporter": exporter_used, "torch_version": torch.__version__}
    sidecar["verification"] = {
        "runtime": runtime, "precision": precision, "max_abs_diff": diff, "tolerance": tolerance,
        "input_shapes": [first for first, *_ in shapes],
        "input": f"the signature's example inputs, seeds {options.seed}..{options.seed + len(shapes) - 1}",
    }
    return files, sidecar


def _check_inputs(signature: Signature, size: int | tuple[int, int], dynamic: bool,
                  seed: int) -> list[tuple[torch.Tensor, ...]]:
    """The signature's example inputs the export is checked on: batch 1 at ``size`` x ``size`` (or ``size`` =
    (height, width)), and when ``dynamic`` batch 2 at twice the width (latent generators: batch 1, and 2 when
    dynamic); one line if the generator cannot take them."""
    height, width = (size, size) if isinstance(size, int) else size
    if signature.takes_image:
        for side in {height, width}:
            signature.check_side(side, "--size")
    checks = [(1, (height, width))] + ([(2, (height, 2 * width))] if dynamic else [])
    return [signature.example_inputs(sides, batch, torch.Generator().manual_seed(seed + index))
            for index, (batch, sides) in enumerate(checks)]


def _write_format(format: str, generator: nn.Module, path: Path, example: tuple[torch.Tensor, ...],  # noqa: A002
                  dynamic: bool, onnx_exporter: str, signature: Signature) -> tuple[list[Path], str | None]:
    """Write ``format`` at ``path``: (files, ONNX exporter used; None for TorchScript)."""
    try:
        if format == "torchscript":
            return export_torchscript(generator, path, example), None
        write = export_onnx if format == "onnx" else export_openvino
        written = write(generator, path, example, dynamic=dynamic, exporter=onnx_exporter, signature=signature)
        return written.files, written.exporter
    except GanslimError:
        raise
    except OSError as error:  # e.g. a full disk; named at the place it was to be published, not the staging one
        raise write_error(path.parent.parent / path.name, error) from None
    except Exception as error:  # noqa: BLE001 - exporters raise many types; the user needs one line
        raise GanslimError(f"{format} export of {type(generator).__name__} failed ({first_line(error)}); "
                           f"nothing was written: try another --format") from error


# ----------------------------------------------------------------------------------------------------------
# Helpers shared with ganslim.export.quantize


def resolve_output(out: str | os.PathLike, suffixes: Sequence[str], default_name: str, what: str) -> Path:
    """The model file for ``out``, checked to be writable: ``out`` itself if it ends in one of ``suffixes``, else
    ``out/default_name`` when ``out`` is a folder (an existing one, one written with a trailing slash, or a name
    without a suffix). Any other name (``x.txt``, ``model.xml`` for ONNX) is refused rather than made a folder."""
    folder = Path(out).is_dir() or os.fspath(out).endswith(("/", os.sep))
    out = Path(out)
    if not folder and out.suffix.lower() in suffixes:
        return check_output_file(out, "--output")
    if not folder and out.suffix:
        raise GanslimError(f"output '{out}' is not a {what} file name: end it in {' or '.join(suffixes)}, "
                           f"or pass a folder (e.g. '{out.parent / out.stem}/')")
    return check_output_folder(out, "--output") / default_name


def input_channels_of(generator: nn.Module, in_channels: int | None) -> int:
    """``in_channels`` if given (checked), else the generator's (:func:`ganslim.signature.input_channels`)."""
    if in_channels is None:
        return input_channels(generator)
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise GanslimError(f"in_channels={in_channels!r} must be a positive integer (3 for RGB)")
    return in_channels


def _check_size(size: int | tuple[int, int]) -> None:
    sides = size if isinstance(size, (tuple, list)) and len(size) == 2 else (size,)
    if any(isinstance(side, bool) or not isinstance(side, int) or side < 1 for side in sides):
        raise GanslimError(f"--size {size!r} must be a positive integer (e.g. 256)")


def seeded_image(shape: Sequence[int], seed: int) -> torch.Tensor:
    """A reproducible float32 batch of ``shape`` (N, C, H, W), uniform in [-1, 1] like images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(tuple(shape), generator=generator) * 2 - 1


def run_eager(generator: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> np.ndarray:
    """``generator(*inputs)`` on CPU as a float32 array; a generator that cannot take the shape is a user error."""
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else inputs
    device = {t.device for t in (*generator.parameters(), *generator.buffers())}
    if device - {torch.device("cpu")}:
        raise GanslimError("the generator is not on the CPU: call generator.cpu() before exporting")
    try:
        with torch.inference_mode():
            return generator(*inputs).float().numpy()
    except RuntimeError as error:
        raise GanslimError(f"{type(generator).__name__} cannot run on a {'x'.join(map(str, inputs[0].shape))} "
                           f"input ({first_line(error)}): pick a --size its downsampling accepts "
                           f"(e.g. 256)") from None


def _max_abs_diff(exported: ExportedModel, inputs: tuple[torch.Tensor, ...], expected: np.ndarray) -> float:
    try:
        actual = exported(*(tensor.numpy() for tensor in inputs))
    except Exception as error:  # noqa: BLE001 - runtimes raise their own types for shape problems
        raise GanslimError(f"the exported model fails on a {'x'.join(map(str, inputs[0].shape))} input in "
                           f"{exported.runtime} ({first_line(error)}); nothing was written") from None
    if actual.shape != expected.shape:
        raise GanslimError(f"the exported model returns {actual.shape} where PyTorch returns {expected.shape}; "
                           "nothing was written")
    diff = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    return diff if math.isfinite(diff) else math.inf


@contextlib.contextmanager
def staging_folder(folder: Path) -> Iterator[Path]:
    """A hidden temporary folder inside ``folder`` (created if needed), removed with whatever it still holds.

    ``folder`` itself is removed again if this created it and it is still empty, so a failed export leaves
    nothing behind.
    """
    created = not folder.exists()
    make_folder(folder)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".ganslim-export-", dir=folder))
    except OSError as error:
        raise write_error(folder, error) from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()


def sidecar_header(model_format: str, files: Sequence[Path], arch: str | None, arch_kwargs: dict | None,
                   input_shape: Sequence[int], output_shape: Sequence[int], dynamic: bool,
                   meta: dict | None, signature: Signature | None = None,
                   input_shapes: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """The sidecar fields every exported model has: what it is, its signature, its inputs/output and how pixels map.

    ``signature`` is the exported generator's; without it the model is taken for an image-to-image one in [-1, 1]
    with the channels of ``input_shape`` and ``output_shape`` (N, C, H, W). ``input_shapes``: every graph input's
    shape, in the signature's order (default: ``input_shape`` alone); ``input`` is the first of ``inputs``.
    """
    if signature is None:
        signature = image_to_image(input_shape[1], output_shape[1], ImageSides())
    inputs = [_graph_input(spec, shape, dynamic)
              for spec, shape in zip(signature.inputs, input_shapes or [input_shape], strict=True)]
    out = signature.output
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "ganslim_version": __version__,
        "model_format": model_format,
        "files": [f.name for f in files],
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "signature": signature.to_dict(),
        "signature_description": signature.describe(),
        "input": inputs[0],
        "inputs": inputs,
        "output": {"name": OUTPUT_NAME, "kind": out.kind, "shape": list(output_shape), "dtype": "float32",
                   "layout": "NC" if out.kind == LATENT else "NCHW",
                   "dynamic_axes": _named(output_axes(signature) if dynamic else {})},
        "normalization": normalization(signature),
        "meta": dict(meta or {}),
    }


def _graph_input(spec: InputSpec, shape: Sequence[int], dynamic: bool) -> dict[str, Any]:
    layout = "NCHW" if spec.spatial else "NC" if spec.layers is None else "NLC"  # L: W+'s layers
    return {"name": spec.name, "kind": spec.kind, "shape": list(shape), "dtype": "float32", "layout": layout,
            "dynamic_axes": _named(input_axes(spec) if dynamic else {})}


def _named(axes: dict[int, str]) -> dict[str, str]:
    return {str(axis): name for axis, name in axes.items()}


def normalization(signature: Signature) -> dict[str, Any]:
    """How 8-bit pixels x reach the model's image input and how its outputs y become pixels again, from the
    signature's value ranges, with the output's size (``scale`` x the input's sides, or a fixed ``resolution``);
    None where an input or the output is no image (a latent)."""
    spec, out = signature.inputs[0], signature.output
    pixels_in = _pixels_in(spec.value_range) if spec.kind == IMAGE else None
    source = (f"uint8 RGB (L for 1 channel) pixels x map to [{spec.value_range[0]:g}, {spec.value_range[1]:g}]"
              if pixels_in else f"the input is a {spec.kind.replace('_', ' ')}, not pixels")
    if out.kind == LATENT:
        target = f"the output is a latent ({out.channels} dims), not pixels"
    else:
        size = f"{out.scale:g}x the input's sides" if out.scale is not None else f"{out.resolution} pixels square"
        target = f"outputs y in [{out.value_range[0]:g}, {out.value_range[1]:g}] map back to uint8 at {size}"
    return {
        "input": pixels_in,
        "input_range": list(spec.value_range) if pixels_in else None,
        "output": None if out.kind == LATENT else _pixels_out(out.value_range),
        "output_range": None if out.value_range is None else list(out.value_range),
        "scale": out.scale,
        "resolution": out.resolution,
        "note": f"{source}; {target}",
    }


def _pixels_in(value_range: tuple[float, float]) -> str:
    low, high = value_range
    return PIXELS_IN.get(value_range, f"x / 255 * {high - low:g} + {low:g}")


def _pixels_out(value_range: tuple[float, float]) -> str:
    low, high = value_range
    return PIXELS_OUT.get(value_range, f"round((clamp(y, {low:g}, {high:g}) - {low:g}) / {high - low:g} * 255)")


def publish(stage: Path, files: Sequence[Path], sidecar: dict, folder: Path) -> tuple[list[Path], Path]:
    """Move the staged ``files`` into ``folder``, then write the sidecar ``<first file>.json`` there last."""
    published = []
    for staged in files:
        published.append(folder / staged.name)
        try:
            os.replace(staged, published[-1])
        except OSError as error:  # e.g. a folder of that name is in the way
            raise write_error(published[-1], error) from None
    sidecar_path = folder / f"{files[0].name}.json"
    atomic_write_text(json.dumps(sidecar, indent=2, default=str) + "\n", sidecar_path)
    return published, sidecar_path


def __getattr__(name: str) -> Any:
    # quantize_model imports this module's helpers, so it is loaded on first use rather than at import.
    if name in ("quantize_model", "quantize_synthesis", "QuantizeResult"):
        from ganslim.export import quantize

        return getattr(quantize, name)
    raise AttributeError(f"module 'ganslim.export' has no attribute '{name}'")
