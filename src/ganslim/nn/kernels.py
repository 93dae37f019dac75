"""When layers may run their faster eager kernels (``InstanceNorm2d``, ``OutputConv2d``) instead of the standard op.

Traces, exports and compiled graphs must hold the standard op (one ``InstanceNormalization`` or ``Conv`` node
in ONNX), and MAC counting must see the function the layer computes, not the kernel that computes it.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch

_standard_only: ContextVar[bool] = ContextVar("ganslim_standard_kernels", default=False)


@contextmanager
def standard_kernels() -> Iterator[None]:
    """Inside, every layer runs its standard op (``ganslim.measure.profile.count_macs`` counts there)."""
    token = _standard_only.set(True)
    try:
        yield
    finally:
        _standard_only.reset(token)


def fast_kernels_allowed() -> bool:
    """False inside :func:`standard_kernels` and while the model is traced, scripted or compiled (ONNX /
    TorchScript export, torch.compile)."""
    return not (_standard_only.get() or torch.jit.is_tracing() or torch.jit.is_scripting()
                or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())
