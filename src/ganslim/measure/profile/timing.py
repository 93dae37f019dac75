"""Timing: latency of one forward pass, several runners timed interleaved round by round, and the machine's fp32
peak (the fastest of several seeded matmuls)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ganslim.errors import GanslimError
from ganslim.measure.profile.running import Inputs, as_args, check_count, placed, resolve_profile_device

# Side of the square fp32 matmul that measures the peak. Measured on a 2-core Xeon (AVX-512, 1 thread): 1024
# reaches 154 GFLOP/s in 14 ms a run, 2048 only 106 (its 16 MB operands leave the caches) in 160 ms, long
# enough that another process interrupts every run on a busy machine.
PEAK_MATMUL_SIZE = 1024


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock time of one forward pass, in milliseconds, over ``repeats`` timed runs."""

    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> LatencyStats:
        """Median / min / max of the timed runs ``times_ms``."""
        return cls(median_ms=statistics.median(times_ms), min_ms=min(times_ms), max_ms=max(times_ms),
                   repeats=len(times_ms))


def measure_latency(
    model: nn.Module,
    example_input: Inputs,
    warmup: int = 3,
    repeats: int = 10,
    device: str | torch.device = "cpu",
) -> LatencyStats:
    """Time ``repeats`` forward passes after ``warmup`` untimed ones, in eval and inference mode.

    The model and input are moved to ``device`` for the run and the model is restored afterwards. On
    CUDA the device is synchronized around every timed pass. Uses the current torch thread count; use
    ``profile_model(threads=...)`` to pin it.
    """
    check_count("warmup", warmup, minimum=0)
    check_count("repeats", repeats, minimum=1)
    dev = resolve_profile_device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    times_ms: list[float] = []
    with placed(model, dev), torch.inference_mode():
        args = tuple(t.to(dev) for t in as_args(example_input))
        for _ in range(warmup):
            model(*args)
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            model(*args)
            sync()
            times_ms.append((time.perf_counter() - start) * 1e3)
    return LatencyStats.of(times_ms)


def fp32_matmul(n: int = PEAK_MATMUL_SIZE) -> Callable[[Any], torch.Tensor]:
    """A runner of one (n, n) x (n, n) fp32 matmul, ``2 * n**3`` FLOPs a call (its argument is ignored)."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)
    out = torch.empty(n, n)
    return lambda _ignored=None: torch.mm(a, b, out=out)


def matmul_gflops(n: int, ms: float) -> float:
    """GFLOP/s of an (n, n) x (n, n) matmul that took ``ms`` milliseconds."""
    return 2 * n**3 / (ms / 1e3) / 1e9


def measure_peak_gflops(n: int = PEAK_MATMUL_SIZE, runs: int = 10, threads: int | None = None) -> float:
    """The machine's fp32 GFLOP/s with ``threads`` CPU threads: the fastest of ``runs`` (n, n) matmuls.

    The fastest, because on a shared machine another process only ever slows a run down.
    """
    check_count("runs", runs, minimum=1)
    run = fp32_matmul(n)
    times = []
    with num_threads(threads):
        run()
        for _ in range(runs):
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1e3)
    return matmul_gflops(n, min(times))


def time_interleaved(runners: Mapping[str, Callable[[np.ndarray], Any]], image: np.ndarray,
                     warmup: int = 2, repeats: int = 10) -> dict[str, LatencyStats]:
    """Latency of several runners on the same input, measured in one process with their runs interleaved
    (see :func:`interleaved_times`).

    Args:
        runners: name -> callable on a float32 (N, C, H, W) array.
        image: the input array.
        warmup: untimed rounds first.
        repeats: timed rounds.
    Returns:
        name -> median / min / max milliseconds over ``repeats`` runs.
    """
    times = interleaved_times(runners, image, warmup, repeats)
    return {name: LatencyStats.of(values) for name, values in times.items()}


def interleaved_times(runners: Mapping[str, Callable[[Any], Any]], image: Any, warmup: int = 2,
                      repeats: int = 10) -> dict[str, list[float]]:
    """Milliseconds of each runner on ``image`` in each of ``repeats`` timed rounds (after ``warmup`` untimed).

    Each round runs every runner once, so a slow phase of the machine (another process, frequency scaling)
    hits all of them alike instead of biasing whichever was timed then. The order rotates by one runner every
    round, so none always follows the same one. Measured here: two students of one architecture, one always
    timed right after a large teacher, read 9-13% apart; with the order rotating, 2%. Round ``i`` of every
    list is the same round, for per-round ratios.
    """
    if repeats < 1 or warmup < 0:
        raise GanslimError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        shift = round_index % max(len(names), 1)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runners[name](image)
            elapsed = (time.perf_counter() - start) * 1000.0
            if round_index >= warmup:
                times[name].append(elapsed)
    return times


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count for the block (None: leave it) and restore it; yields the count."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
