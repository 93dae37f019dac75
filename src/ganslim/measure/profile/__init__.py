"""Profile a generator: parameters, MACs in two conventions (:mod:`.macs`), peak memory (:mod:`.memory`), latency
and the machine's fp32 peak (:mod:`.timing`), and all of them at once (:func:`profile_model`).

Everything here takes a plain ``nn.Module`` and an example input; the only ganslim imports are the error type, the
device resolver and the model signature (the input channels of :func:`profile_model`'s image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganslim.errors import GanslimError, first_line
from ganslim.measure.profile.macs import MacCount, count_macs, count_params
from ganslim.measure.profile.memory import measure_peak_memory, memory_kind
from ganslim.measure.profile.running import check_count, eval_mode, placed, resolve_profile_device
from ganslim.measure.profile.timing import (
    PEAK_MATMUL_SIZE,
    LatencyStats,
    fp32_matmul,
    interleaved_times,
    matmul_gflops,
    measure_latency,
    measure_peak_gflops,
    num_threads,
    time_interleaved,
)
from ganslim.signature import input_channels

__all__ = [
    "PEAK_MATMUL_SIZE",
    "LatencyStats",
    "MacCount",
    "Profile",
    "count_macs",
    "count_params",
    "eval_mode",
    "format_profile",
    "fp32_matmul",
    "interleaved_times",
    "matmul_gflops",
    "measure_latency",
    "measure_peak_gflops",
    "measure_peak_memory",
    "num_threads",
    "profile_model",
    "time_interleaved",
]


@dataclass(frozen=True)
class Profile:
    """What ``profile_model`` measured.

    ``peak_memory_bytes`` is ``torch.cuda.max_memory_allocated`` on CUDA and the peak bytes held by live
    tensors (parameters, buffers, input, activations) during one forward on CPU; see
    ``measure_peak_memory``. ``input_shape`` is (N, C, H, W).
    """

    params: int
    macs: int
    macs_published: int
    latency: LatencyStats
    peak_memory_bytes: int
    device: str
    threads: int
    input_shape: tuple[int, ...]

    @property
    def peak_memory_kind(self) -> str:
        """What ``peak_memory_bytes`` measures, in words."""
        return memory_kind(self.device)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the figures (counts as ints, times in ms, memory in bytes)."""
        return {
            "params": self.params,
            "macs": self.macs,
            "macs_published": self.macs_published,
            "macs_published_convention": "torchprofile",
            "latency_ms": {
                "median": self.latency.median_ms,
                "min": self.latency.min_ms,
                "max": self.latency.max_ms,
            },
            "latency_repeats": self.latency.repeats,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_kind": self.peak_memory_kind,
            "device": self.device,
            "threads": self.threads,
            "input_shape": list(self.input_shape),
        }


def profile_model(
    model: nn.Module,
    input_size: int | tuple[int, int] = 256,
    batch: int = 1,
    in_channels: int | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 10,
) -> Profile:
    """Parameters, MACs (true and published), latency and peak memory of ``model`` on a random image.

    Args:
        model: an image-to-image module taking one (N, C, H, W) tensor.
        input_size: H = W, or (H, W).
        batch: N (the published tables use 1).
        in_channels: C; if None, the model's (:func:`ganslim.signature.input_channels`).
        device: "cpu", "cuda[:i]" or "auto" (CUDA when present).
        threads: torch intra-op threads for the run (restored afterwards); None keeps the current count.
        warmup, repeats: untimed and timed forward passes for the latency.

    The model is moved to ``device`` and put in eval mode while profiled, then put back as it was.
    """
    height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    check_count("input_size", height, minimum=1)
    check_count("input_size", width, minimum=1)
    check_count("batch", batch, minimum=1)
    check_count("warmup", warmup, minimum=0)
    check_count("repeats", repeats, minimum=1)
    if threads is not None:
        check_count("threads", threads, minimum=1)
    if in_channels is None:
        in_channels = input_channels(model)
    check_count("in_channels", in_channels, minimum=1)
    dev = resolve_profile_device(device)
    shape = (batch, in_channels, height, width)
    image = torch.randn(shape, generator=torch.Generator().manual_seed(0))  # values do not matter

    with num_threads(threads) as used_threads, placed(model, dev):
        image = image.to(dev)
        try:
            mac_count = count_macs(model, image)
        except RuntimeError as err:
            raise GanslimError(
                f"{type(model).__name__} failed on an input of shape {list(shape)}: {first_line(err, limit=None)}; "
                "check in_channels and input_size"
            ) from err
        peak = measure_peak_memory(model, image, dev)
        latency = measure_latency(model, image, warmup=warmup, repeats=repeats, device=dev)

    return Profile(
        params=count_params(model),
        macs=mac_count.macs,
        macs_published=mac_count.macs_published,
        latency=latency,
        peak_memory_bytes=peak,
        device=str(dev),
        threads=used_threads,
        input_shape=shape,
    )


def format_profile(profile: Profile, name: str) -> str:
    """A short human-readable table of ``profile`` headed by ``name``."""
    shape = "x".join(str(s) for s in profile.input_shape)
    lat = profile.latency
    rows = [
        ("params", f"{profile.params / 1e6:.3f} M"),
        ("MACs, true", f"{profile.macs / 1e9:.2f} G"),
        ("MACs, published (torchprofile convention)", f"{profile.macs_published / 1e9:.2f} G"),
        (
            f"latency median / min / max ({lat.repeats} runs)",
            f"{lat.median_ms:.1f} / {lat.min_ms:.1f} / {lat.max_ms:.1f} ms",
        ),
        (profile.peak_memory_kind, f"{profile.peak_memory_bytes / 2**20:.1f} MiB"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{name}  (input {shape}, {profile.device}, {profile.threads} threads)"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines)
