"""Pick the torch device the user asked for, or the best one present."""

from __future__ import annotations

import torch

from ganslim.errors import GanslimError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cpu', 'cuda', 'cuda:N' as given (refused if absent)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GanslimError(f"device '{name}' is not valid: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GanslimError(f"device '{name}' requested but CUDA is not available: use --device cpu, "
                               "or install a CUDA build of torch (make install TORCH=...)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GanslimError(f"device '{name}' does not exist: this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise GanslimError(f"device '{name}' is not supported: use auto, cpu or cuda")
    return device
