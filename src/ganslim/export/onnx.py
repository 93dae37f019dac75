"""Write a generator as one ONNX file (plus one ``.data`` file only above protobuf's 2 GiB limit).

Exporter choice. ``auto`` (the default) tries the legacy TorchScript-tracing exporter
(``torch.onnx.export(dynamo=False)``) first and falls back to the ``torch.export``-based ``dynamo`` exporter
only if tracing fails. For the convolutional generators ganslim makes the legacy exporter is the reliable
one: it handles reflection padding, instance norm, transposed convs and U-Net skip concatenations with
dynamic batch and spatial axes in 0.05-1.5 s, matching eager PyTorch to ~1e-6, in one self-contained file.
The dynamo exporter gives the same parity but takes 3-8 s per model, logs about missing torchvision ops and
writes weights to a separate ``.onnx.data`` unless told not to; it is needed where tracing loses a static
size, e.g. elastic supernet layers that slice weights by ``x.shape[1]``, whose instance norm then has an
unknown channel count. The legacy exporter is deprecated in PyTorch; its deprecation and tracer warnings are
silenced here because every export is checked against eager PyTorch afterwards, which is the check those
warnings ask for.

Modulated convolutions (StyleGAN2) are traced in their activation form (``ganslim.nn.modulated.
modulating_activations``): their per-sample weights run as a grouped convolution with groups = batch, which
neither exporter can give a free batch axis.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ganslim.errors import GanslimError
from ganslim.nn.modulated import modulating_activations
from ganslim.signature import LATENT, PICTURE_KINDS, InputSpec, Signature, signature_of

__all__ = ["DYNAMIC_AXES", "EXPORTERS", "INPUT_NAME", "OPSET", "OUTPUT_NAME", "OnnxExport", "export_onnx",
           "input_axes", "output_axes", "quiet_export"]

EXPORTERS = ("auto", "legacy", "dynamo")
OPSET = 17
INPUT_NAME = "image"  # the name image-to-image signatures give their input (the graph's input takes the signature's)
OUTPUT_NAME = "output"
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}
# Above this many bytes of weights the model is written with its tensors in one external ``.data`` file:
# a single protobuf cannot exceed 2 GiB, and the graph itself needs some room.
EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence the exporters' deprecation / tracer warnings, log lines and progress prints for the block."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def input_axes(spec: InputSpec) -> dict[int, str]:
    """The axes of an input that a dynamic export leaves free, by name: an image's or label map's batch, height and
    width (``DYNAMIC_AXES``); a latent's or a noise image's batch."""
    return dict(DYNAMIC_AXES) if spec.kind in PICTURE_KINDS else {0: "batch"}


def output_axes(signature: Signature) -> dict[int, str]:
    """The output's free axes: its batch, and its sides under the input's names at scale 1, as ``out_height`` /
    ``out_width`` at another scale (none at a fixed resolution, and a latent has none)."""
    out = signature.output
    if out.kind == LATENT or out.resolution is not None:
        return {0: "batch"}
    if out.scale == 1:
        return dict(DYNAMIC_AXES)
    return {0: "batch", 2: "out_height", 3: "out_width"}


@dataclass(frozen=True)
class OnnxExport:
    """The files an ONNX export wrote (the model first) and the exporter that wrote them."""

    files: list[Path]
    exporter: str


def export_onnx(generator: nn.Module, path: str | os.PathLike, example: torch.Tensor | Sequence[torch.Tensor],
                dynamic: bool = False, exporter: str = "auto", opset: int = OPSET,
                signature: Signature | None = None) -> OnnxExport:
    """Export ``generator`` (already in eval mode) to ``path`` and return the files written.

    Args:
        generator: maps ``example`` (its input, e.g. an (N, C, H, W) image, or one tensor per input of its
            signature) to one output batch.
        path: the ``.onnx`` file; its folder must exist.
        example: the input(s) that fix the static shapes (and trace the graph).
        dynamic: leave the batch and sides free (:func:`input_axes`, :func:`output_axes`).
        signature: the generator's (default :func:`ganslim.signature.signature_of`); it names the graph's inputs
            and their free axes.
        exporter: ``auto`` (default: ``legacy``, then ``dynamo`` if the tracer fails), ``legacy`` or ``dynamo``;
            see the module docstring.
        opset: ONNX opset of the legacy exporter (the dynamo exporter picks its own, 18 or later).
    Returns:
        The files, ``[path]`` or ``[path, path + ".data"]`` when the weights exceed the 2 GiB protobuf
        limit, and the exporter that succeeded.
    """
    if exporter not in EXPORTERS:
        raise GanslimError(f"unknown ONNX exporter '{exporter}'; choose one of: {', '.join(EXPORTERS)}")
    path = Path(path)
    examples = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    if signature is None:
        signature = signature_of(generator, examples[0].shape[-1])
    if len(examples) != len(signature.inputs):
        raise GanslimError(f"{len(examples)} example input(s) for a generator that takes {signature.describe()}")
    too_big = _weight_bytes(generator) > EXTERNAL_DATA_THRESHOLD_BYTES
    existing = set(path.parent.iterdir())
    if exporter == "auto":
        try:
            # A failing legacy export prints its whole TorchScript graph from C++; the dynamo exporter is
            # tried next, so that dump would only bury the outcome.
            with _native_output_silenced():
                used = _export(generator, path, examples, signature, dynamic, "legacy", opset, too_big)
        except Exception:  # noqa: BLE001 - any tracer failure means: let torch.export try
            for stray in set(path.parent.iterdir()) - existing:
                stray.unlink()
            used = _export(generator, path, examples, signature, dynamic, "dynamo", opset, too_big)
    else:
        used = _export(generator, path, examples, signature, dynamic, exporter, opset, too_big)
    files = [path]
    if too_big:
        _gather_external_data(path, keep=existing)
        files.append(_data_path(path))
    return OnnxExport(files=files, exporter=used)


def _export(generator: nn.Module, path: Path, examples: tuple[torch.Tensor, ...], signature: Signature,
            dynamic: bool, exporter: str, opset: int, external_data: bool) -> str:
    names = [spec.name for spec in signature.inputs]
    with quiet_export(), torch.no_grad(), modulating_activations():
        if exporter == "legacy":
            axes = None
            if dynamic:
                axes = {spec.name: input_axes(spec) for spec in signature.inputs}
                axes[OUTPUT_NAME] = output_axes(signature)
            torch.onnx.export(generator, examples, str(path), dynamo=False, opset_version=opset,
                              input_names=names, output_names=[OUTPUT_NAME], dynamic_axes=axes,
                              do_constant_folding=True)
        else:
            shapes = None
            if dynamic:
                shapes = tuple({axis: torch.export.Dim.DYNAMIC for axis in input_axes(spec)}
                               for spec in signature.inputs)
            torch.onnx.export(generator, examples, str(path), dynamo=True, external_data=external_data,
                              input_names=names, output_names=[OUTPUT_NAME], dynamic_shapes=shapes,
                              verbose=False)
    return exporter


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Send file descriptors 1 and 2 (where C++ code prints) to /dev/null for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _weight_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _data_path(path: Path) -> Path:
    return path.with_name(path.name + ".data")


def _gather_external_data(path: Path, keep: set[Path]) -> None:
    """Rewrite ``path`` so all its weights live in one ``<name>.data`` file next to it.

    Exporters write external tensors as one file per tensor or under names of their own: every file that
    appeared in the folder during the export (not in ``keep``) other than ``path`` is one of those.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    for stray in set(path.parent.iterdir()) - keep - {path}:
        stray.unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=_data_path(path).name, size_threshold=1024)
