"""Peak memory of one forward pass: CUDA's allocator peak, or on CPU the peak bytes of the live tensors (on the meta
device: the same count from shapes alone)."""

from __future__ import annotations

import functools
import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ganslim.measure.profile.running import (
    Inputs,
    as_args,
    lowered_ops,
    outside_inference,
    placed,
    resolve_profile_device,
)


class _TensorMemoryTracker(TorchDispatchMode):
    """Bytes of the distinct storages alive, updated as ops create them and as they are freed."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[weakref.ref, int]] = {}
        self.current = 0
        self.peak = 0

    def track(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor):
            return
        storage = tensor.untyped_storage()  # one Python object per storage while it lives, meta storages too
        nbytes = storage.nbytes()
        key = id(storage)
        if nbytes == 0 or key in self._live:
            return  # a view or an in-place result of a storage already counted
        self._live[key] = (weakref.ref(storage, functools.partial(self._release, key)), nbytes)
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def _release(self, key: int, _ref: weakref.ref) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            self.current -= entry[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            self.track(tensor)
        return out


def measure_peak_memory(model: nn.Module, example_input: Inputs, device: str | torch.device = "cpu") -> int:
    """Peak memory of one forward pass in bytes, parameters, buffers and input included.

    On CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak (caching-allocator bytes,
    workspaces included). On CPU: *peak tensor memory*, the largest total size of the distinct tensor
    storages alive at once, tracked op by op (storages counted when an op creates them, released when
    freed). Scratch memory inside kernels (im2col buffers, oneDNN workspaces) and allocator overhead are
    not tensors and are not seen, so this is below the process RSS growth. On the meta device (a model built
    under ``torch.device("meta")``, meta inputs) the same ops run on shapes alone and give the CPU figure without
    computing anything.

    The model is moved to ``device`` and put in eval mode for the measurement, then restored.
    """
    dev = torch.device("meta") if str(device) == "meta" else resolve_profile_device(device)
    with placed(model, dev), lowered_ops():
        args = outside_inference([t.to(dev) for t in as_args(example_input)])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            model(*args)
            torch.cuda.synchronize(dev)
            return int(torch.cuda.max_memory_allocated(dev))
        tracker = _TensorMemoryTracker()
        for tensor in (*model.parameters(), *model.buffers(), *args):
            tracker.track(tensor)
        with tracker:
            out = model(*args)
        del out
        return tracker.peak


def memory_kind(device: str) -> str:
    return "peak CUDA memory allocated" if device.startswith("cuda") else "peak tensor memory"
