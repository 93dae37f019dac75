"""Write a generator as a traced TorchScript file (``torch.jit.trace`` + ``torch.jit.save``).

Tracing records the ops one forward runs, so Python control flow that depends on tensor values is frozen at
the example; convolutional generators have none, and the export is checked against eager PyTorch (at a
second shape when dynamic) afterwards. TorchScript is deprecated in PyTorch in favour of ``torch.export``;
its deprecation and tracer warnings are silenced because that parity check is what they ask for.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from ganslim.nn.modulated import modulating_activations

__all__ = ["export_torchscript", "quiet_torchscript"]


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence TorchScript's deprecation and tracer warnings for the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def export_torchscript(generator: nn.Module, path: str | os.PathLike,
                       example: torch.Tensor | Sequence[torch.Tensor]) -> list[Path]:
    """Trace ``generator`` (already in eval mode) on ``example`` (its input, or one tensor per input) and save it
    to ``path``; modulated convolutions are traced in their activation form, as for ONNX.

    Returns ``[path]``. The file loads with ``torch.jit.load(path)`` without ganslim installed.
    """
    path = Path(path)
    examples = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    with quiet_torchscript(), torch.no_grad(), modulating_activations():
        traced = torch.jit.trace(generator, examples, check_trace=False)
        torch.jit.save(traced, str(path))
    return [path]
