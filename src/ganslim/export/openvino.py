"""Write a generator as an OpenVINO IR (``.xml`` graph + ``.bin`` weights), converted from its ONNX export.

Going through ONNX reuses the one exporter every format is checked with; ``ov.convert_model`` reads the
ONNX file directly. Weights are saved in f32: ``ov.save_model`` compresses them to f16 by default, which would
make the IR differ from the PyTorch model before any runtime precision is chosen.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganslim.export.onnx import OnnxExport, export_onnx
from ganslim.export.runtime import require_openvino
from ganslim.signature import Signature

__all__ = ["convert_onnx", "export_openvino", "save_ir"]


def convert_onnx(onnx_path: str | os.PathLike) -> Any:
    """An ``openvino.Model`` read from an ONNX file (shapes, dynamic axes included, as in the file)."""
    ov = require_openvino()
    return ov.convert_model(str(onnx_path))


def save_ir(model: Any, path: str | os.PathLike) -> list[Path]:
    """Save an ``openvino.Model`` as ``path`` (.xml) + the ``.bin`` next to it, weights uncompressed."""
    ov = require_openvino()
    path = Path(path)
    ov.save_model(model, str(path), compress_to_fp16=False)
    return [path, path.with_suffix(".bin")]


def export_openvino(generator: nn.Module, path: str | os.PathLike, example: torch.Tensor | Sequence[torch.Tensor],
                    dynamic: bool = False, exporter: str = "auto", signature: Signature | None = None) -> OnnxExport:
    """Export ``generator`` (already in eval mode) to the IR ``path`` (.xml); files ``[xml, bin]``.

    ``example`` (one tensor per input) fixes the static shapes; ``dynamic`` leaves the batch and sides free;
    ``exporter`` picks the ONNX exporter used on the way and ``signature`` names the inputs and their axes (see
    ``ganslim.export.onnx``); the result names the exporter that succeeded.
    """
    require_openvino()
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=path.parent) as scratch:
        onnx_path = Path(scratch) / "generator.onnx"
        used = export_onnx(generator, onnx_path, example, dynamic=dynamic, exporter=exporter,
                           signature=signature).exporter
        return OnnxExport(files=save_ir(convert_onnx(onnx_path), path), exporter=used)
