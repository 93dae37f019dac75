"""How profiled models run: on one device and in eval mode for the measurement, then put back as they were; inputs
as positional tensors, made outside inference mode where a dispatch mode must see the kernels that run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ganslim.devices import resolve_device
from ganslim.errors import GanslimError

Inputs = torch.Tensor | Sequence[torch.Tensor]


def as_args(example_input: Inputs) -> tuple[torch.Tensor, ...]:
    """A forward's positional inputs: ``example_input`` itself if it is one tensor."""
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    return tuple(example_input)


def check_count(name: str, value: Any, minimum: int) -> None:
    """A one-line GanslimError unless ``value`` is an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GanslimError(f"{name} must be an integer >= {minimum}, got {value!r}")


def resolve_profile_device(device: str | torch.device) -> torch.device:
    """The device ``resolve_device`` accepts ("auto", "cpu", "cuda[:i]"), with the CUDA index made explicit."""
    dev = resolve_device(str(device))
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block; every submodule's own train/eval flag is restored afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


@contextlib.contextmanager
def placed(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Model on ``device`` and in eval mode for the block, then back where and as it was."""
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    if len(devices) > 1:
        names = ", ".join(sorted(str(d) for d in devices))
        raise GanslimError(f"model spans several devices ({names}); move it to one device before profiling")
    home = devices.pop() if devices else device
    if home != device:
        model.to(device)
    try:
        with eval_mode(model):
            yield
    finally:
        if home != device:
            model.to(home)


@contextlib.contextmanager
def lowered_ops() -> Iterator[None]:
    """Let dispatch modes see the kernels that run: in inference mode they would see composite ops whole."""
    with torch.inference_mode(False), torch.no_grad():
        yield


def outside_inference(example_input: Inputs) -> tuple[torch.Tensor, ...]:
    """The inputs, with inference tensors (made under inference mode) copied so in-place ops stay legal."""
    return tuple(t.clone() if t.is_inference() else t for t in as_args(example_input))
