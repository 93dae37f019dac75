"""Multi-process training under ``torchrun``: process group set-up, rank-0 helpers, sharding, sync checks.

A process started by ``torchrun --nproc_per_node=N`` finds ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its
environment; :func:`init_distributed` then joins the group (NCCL on CUDA, gloo on CPU). A plain
``python``/``ganslim`` process is a world of one and never touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ganslim.devices import resolve_device
from ganslim.errors import GanslimError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment holds a ``torchrun`` world larger than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the ``torchrun`` process group if there is one; return this process's place and device.

    Under torchrun a CUDA run uses ``cuda:LOCAL_RANK`` (one GPU per process) with NCCL, a CPU run gloo.
    """
    if not launched_by_torchrun():
        return DistInfo(), resolve_device(device)
    info = DistInfo(rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        if info.local_rank >= torch.cuda.device_count():
            raise GanslimError(f"torchrun started {info.local_rank + 1}+ processes on a machine with "
                               f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node at most that")
        chosen = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return info, chosen


def shutdown_distributed() -> None:
    """Leave the process group (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed_session(device: str = "auto") -> Iterator[tuple[DistInfo, torch.device]]:
    """``(this process's place, its device)`` for the block: the ``torchrun`` process group is joined (see
    :func:`init_distributed`) and left afterwards, unless a caller had joined it already (e.g. the staged run a
    stage belongs to), which then leaves it."""
    joined_here = not (dist.is_available() and dist.is_initialized())
    info, chosen = init_distributed(device)
    try:
        yield info, chosen
    finally:
        if joined_here:
            shutdown_distributed()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(info: DistInfo, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def on_main(info: DistInfo, work: Callable[[], T]) -> T:
    """Rank 0's ``work()`` on every rank (run on rank 0 only); a GanslimError it raises stops every rank with
    the same line, where the other ranks would otherwise wait for rank 0 forever. Doubles as a barrier."""
    outcome: tuple[str | None, T | None] = (None, None)
    if info.is_main:
        try:
            outcome = (None, work())
        except GanslimError as caught:
            outcome = (str(caught), None)
    error, result = broadcast_object(info, outcome)
    if error is not None:
        raise GanslimError(error)
    return result


def gather_objects(info: DistInfo, value: Any) -> list[Any]:
    """Every rank's ``value`` in rank order, on every rank."""
    if not info.enabled:
        return [value]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def gather_to_main(info: DistInfo, value: Any) -> list[Any] | None:
    """Every rank's ``value`` in rank order on rank 0; None on the other ranks."""
    if not info.enabled:
        return [value]
    gathered: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def shard_indices(indices: list[int], info: DistInfo) -> list[int]:
    """This rank's share of ``indices``, as ``DistributedSampler`` does it.

    The list is padded by repeating its start so every rank gets the same count (ranks must run the same
    number of steps), then rank r takes items r, r + world, r + 2·world, ...
    """
    if not info.enabled:
        return list(indices)
    per_rank = -(-len(indices) // info.world_size)
    padded = list(indices)
    while len(padded) < per_rank * info.world_size:
        padded += indices[: per_rank * info.world_size - len(padded)]
    return padded[info.rank::info.world_size]


def broadcast_buffers(info: DistInfo, modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every rank."""
    if not info.enabled:
        return
    for module in modules:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def assert_in_sync(info: DistInfo, modules: dict[str, nn.Module]) -> None:
    """Raise if any rank's parameters or buffers differ from rank 0's (a bug, never a user mistake)."""
    if not info.enabled:
        return
    fingerprints = {}
    for name, module in modules.items():
        tensors = list(module.parameters()) + list(module.buffers())
        fingerprints[name] = [float(t.detach().double().sum()) + float(t.detach().double().abs().sum()) * 1e-3
                              for t in tensors if t.numel()]
    every = gather_objects(info, fingerprints)
    for rank, other in enumerate(every[1:], start=1):
        differing = [name for name in fingerprints if other[name] != every[0][name]]
        if differing:
            raise RuntimeError(f"rank {rank} weights diverged from rank 0 in {', '.join(differing)}")
