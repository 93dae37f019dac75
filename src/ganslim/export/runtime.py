"""Load and run exported generators in their runtimes: ONNX Runtime, OpenVINO, TorchScript.

Every runner takes float32 NumPy arrays, one per graph input in the order of the model's signature (an image
(N, C, H, W) in its value range, a latent (N, D), ...), and returns one float32 array (an image (N, C, H, W), or a
latent), so an exported file can be compared with eager PyTorch and timed against another one without caring which
runtime it uses.

Two traps are handled here once, for every caller:

* ONNX Runtime threads spin-wait between ops by default. In a process that also runs PyTorch (or a second
  session) the spinning threads starve the others and fp32 runs about 2x slower, so every session is created
  with ``session.intra_op.allow_spinning=0`` and ``session.inter_op.allow_spinning=0``.
* OpenVINO's CPU plugin runs float layers in bf16 on CPUs that have it (AVX512-BF16, AMX) unless told
  otherwise, which costs ~1e-2 of accuracy; models are compiled with ``INFERENCE_PRECISION_HINT=f32``
  unless another precision is asked for explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ganslim.errors import GanslimError, first_line
from ganslim.measure.profile import num_threads

__all__ = [
    "ExportedModel",
    "PRECISIONS",
    "RUNTIMES",
    "format_of",
    "load_exported",
    "openvino_compiled",
    "openvino_version",
    "ort_session",
    "require_openvino",
]

# Which runtime runs each export format; the format is read from the file name.
RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino", "torchscript": "torchscript"}
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")
# OpenVINO float precisions; the other runtimes run f32 only.
PRECISIONS = ("f32", "bf16", "f16")


def format_of(path: str | os.PathLike) -> str:
    """Export format of a file from its suffix: ``.onnx`` onnx, ``.xml`` openvino, ``.pt``/``.ts`` torchscript."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".xml":
        return "openvino"
    if suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    raise GanslimError(f"cannot tell the format of '{path}': pass a .onnx, OpenVINO .xml or TorchScript "
                       f"{'/'.join(TORCHSCRIPT_SUFFIXES)} file")


def require_openvino() -> ModuleType:
    """The ``openvino`` module, or a GanslimError telling how to install it."""
    try:
        import openvino
    except ImportError:
        raise GanslimError("OpenVINO is not installed: pip install 'ganslim[openvino]' "
                           "(or use --format onnx / --backend onnxruntime)") from None
    return openvino


def ort_session(path: str | os.PathLike, threads: int | None = None,
                optimized_path: str | os.PathLike | None = None, basic_optimizations: bool = False) -> Any:
    """An ONNX Runtime CPU session on ``path`` with thread spinning disabled.

    Args:
        path: a ``.onnx`` file (external data next to it is found by ONNX Runtime).
        threads: intra-op threads; None keeps ONNX Runtime's default (one per physical core).
        optimized_path: if given, ONNX Runtime writes the graph it actually runs (after its own fusions,
            e.g. QDQ -> QLinearConv) there, for inspection.
        basic_optimizations: only ONNX Runtime's hardware-independent rewrites (constant folding and the like,
            standard ONNX ops only), so that ``optimized_path`` holds a graph any runtime can load.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: the optimized-model dump otherwise warns about NCHWc ops
    if threads is not None:
        options.intra_op_num_threads = threads
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    if basic_optimizations:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises its own exception types for unreadable models
        raise GanslimError(f"ONNX Runtime cannot load '{path}' ({first_line(error)}): re-export the model") from None


def openvino_version() -> str:
    """``openvino 2026.4.1``: the release, without the build hash."""
    return f"openvino {require_openvino().get_version().split('-')[0]}"


def openvino_compiled(model: Any, precision: str = "f32", threads: int | None = None) -> Any:
    """An OpenVINO CPU ``CompiledModel`` of ``model`` (an ``.xml``/``.onnx`` path or an ``ov.Model``).

    ``precision`` is the ``INFERENCE_PRECISION_HINT`` for float layers: ``f32`` (default, exact),
    ``bf16`` or ``f16``; int8 layers of a quantized model stay int8 whatever it says.
    """
    if precision not in PRECISIONS:
        raise GanslimError(f"unknown precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")
    ov = require_openvino()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    source = str(model) if isinstance(model, (str, os.PathLike)) else model
    return ov.Core().compile_model(source, "CPU", config)


@dataclass
class ExportedModel:
    """An exported generator loaded in its runtime; call it on float32 arrays, one per graph input (a generator of
    one image input: one (N, C, H, W) array in its input range).

    ``runtime`` names the runtime and its version (e.g. ``onnxruntime 1.31.1``); ``handle`` is the runtime's
    own object (``InferenceSession``, ``CompiledModel`` or ``ScriptModule``).
    """

    path: Path
    format: str
    runtime: str
    precision: str
    handle: Any
    input_names: tuple[str, ...]
    _run: Callable[[list[np.ndarray]], np.ndarray]

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        """One float32 array per graph input (e.g. an (N, C, H, W) image) -> the output array (e.g. (N, C_out,
        H_out, W_out))."""
        if len(inputs) != len(self.input_names):
            raise GanslimError(f"'{self.path.name}' takes {len(self.input_names)} input(s) "
                               f"({', '.join(self.input_names)}), got {len(inputs)}")
        return self._run([np.ascontiguousarray(array, dtype=np.float32) for array in inputs])


def load_exported(path: str | os.PathLike, precision: str = "f32", threads: int | None = None) -> ExportedModel:
    """Load an exported file in the runtime of its format (see :func:`format_of`).

    Args:
        path: ``.onnx`` (ONNX Runtime, CPU, spinning off), ``.xml`` (OpenVINO CPU), ``.pt``/``.ts``
            (TorchScript, CPU).
        precision: OpenVINO float precision hint (``f32`` unless asked otherwise); the other runtimes
            accept only ``f32``.
        threads: CPU threads for the runtime; None keeps its default.
    """
    path = Path(path)
    if not path.is_file():
        raise GanslimError(f"exported model '{path}' not found: check the path")
    kind = format_of(path)
    if kind != "openvino" and precision != "f32":
        raise GanslimError(f"precision '{precision}' applies to OpenVINO only; {kind} runs f32: drop the option")
    if kind == "onnx":
        import onnxruntime as ort

        session = ort_session(path, threads)
        names = tuple(graph_input.name for graph_input in session.get_inputs())
        return ExportedModel(path, kind, f"onnxruntime {ort.__version__}", "f32", session, names,
                             lambda arrays: session.run(None, dict(zip(names, arrays)))[0])
    if kind == "openvino":
        try:
            compiled = openvino_compiled(path, precision, threads)
        except RuntimeError as error:
            raise GanslimError(f"OpenVINO cannot load '{path}' ({first_line(error)}): check that the .bin file "
                               "sits next to it, or re-export") from None
        output = compiled.output(0)
        names = tuple(graph_input.get_any_name() for graph_input in compiled.inputs)
        return ExportedModel(path, kind, openvino_version(), precision, compiled, names,
                             lambda arrays: np.asarray(compiled(arrays)[output]))
    return _load_torchscript(path, threads)


def _load_torchscript(path: Path, threads: int | None) -> ExportedModel:
    import torch

    from ganslim.export.torchscript import quiet_torchscript

    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as error:
        raise GanslimError(f"cannot load '{path}' as TorchScript ({first_line(error)}): pass a file written by "
                           "`ganslim export --format torchscript` (a checkpoint is not one)") from None
    module.eval()

    def run(arrays: list[np.ndarray]) -> np.ndarray:
        with num_threads(threads), torch.inference_mode():
            return module(*map(torch.from_numpy, arrays)).float().numpy()

    # A traced module keeps its forward's argument names (the first is self).
    names = tuple(argument.name for argument in module.forward.schema.arguments[1:])
    return ExportedModel(path, "torchscript", f"torchscript (torch {torch.__version__})", "f32", module, names, run)
