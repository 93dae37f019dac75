"""Profile a generator: parameters, MACs in two conventions (:mod:`.macs`), peak memory (:mod:`.memory`), latency
and the machine's fp32 peak (:mod:`.timing`), and all of them at once (:func:`profile_model`), with the parameters and
MACs of each part of a latent generator (:func:`profile_parts`: StyleGAN2's mapping and synthesis).

Everything here takes a plain ``nn.Module`` and an example input; the only ganslim imports are the error type, the
device resolver and the model signature (the example inputs of :func:`profile_model`: the image, label map or latent
the model declares, in its value range).
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
from ganslim.signature import Signature, parts_of, signature_of

__all__ = [
    "PEAK_MATMUL_SIZE",
    "LatencyStats",
    "MacCount",
    "PartProfile",
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
    "profile_parts",
    "time_interleaved",
]


@dataclass(frozen=True)
class PartProfile:
    """Parameters and MACs (both conventions) of one part of a latent generator on its example input."""

    params: int
    macs: MacCount
    input_shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "macs": self.macs.macs, "macs_published": self.macs.macs_published,
                "input_shape": list(self.input_shape)}


@dataclass(frozen=True)
class Profile:
    """What ``profile_model`` measured.

    ``peak_memory_bytes`` is ``torch.cuda.max_memory_allocated`` on CUDA and the peak bytes held by live
    tensors (parameters, buffers, input, activations) during one forward on CPU; see
    ``measure_peak_memory``. ``input_shape`` is the first input's, (N, C, H, W) for an image; ``signature`` what
    the model takes and returns; ``parts`` a latent generator's (:func:`profile_parts`), None for other models.
    """

    params: int
    macs: int
    macs_published: int
    latency: LatencyStats
    peak_memory_bytes: int
    device: str
    threads: int
    input_shape: tuple[int, ...]
    signature: Signature
    parts: dict[str, PartProfile] | None = None

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
            "signature": self.signature.to_dict(),
            "signature_description": self.signature.describe(),
            "parts": None if self.parts is None else {name: part.to_dict() for name, part in self.parts.items()},
        }


def profile_model(
    model: nn.Module,
    input_size: int | tuple[int, int] = 256,
    batch: int = 1,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 10,
) -> Profile:
    """Parameters, MACs (true and published), latency and peak memory of ``model`` on random inputs.

    Args:
        model: a generator; its inputs are the example inputs of its signature
            (:func:`ganslim.signature.signature_of`: images uniform in their value range, latents standard normal).
        input_size: H = W of its image (a super-resolution model's low-resolution input), or (H, W); unused by a
            latent generator, whose parts are profiled as well (:func:`profile_parts`).
        batch: N (the published tables use 1).
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
    dev = resolve_profile_device(device)
    with num_threads(threads) as used_threads, placed(model, dev):
        signature = signature_of(model, height)
        if signature.takes_image:
            for side in {height, width}:
                signature.check_side(side, "input_size")
        inputs = signature.example_inputs((height, width), batch, torch.Generator().manual_seed(0), dev)
        shape = tuple(inputs[0].shape)
        try:
            mac_count = count_macs(model, inputs)
        except RuntimeError as err:
            raise GanslimError(
                f"{type(model).__name__} failed on an input of shape {list(shape)}: {first_line(err, limit=None)}; "
                f"check input_size (the model takes {signature.describe()})"
            ) from err
        parts = profile_parts(model, batch)
        peak = measure_peak_memory(model, inputs, dev)
        latency = measure_latency(model, inputs, warmup=warmup, repeats=repeats, device=dev)

    return Profile(
        params=count_params(model),
        macs=mac_count.macs,
        macs_published=mac_count.macs_published,
        latency=latency,
        peak_memory_bytes=peak,
        device=str(dev),
        threads=used_threads,
        input_shape=shape,
        signature=signature,
        parts=parts,
    )


def profile_parts(model: nn.Module, batch: int = 1) -> dict[str, PartProfile] | None:
    """Parameters and MACs of each part of a latent generator (its ``parts()``, see
    :func:`ganslim.signature.parts_of`) on the part's example input of ``batch``, on the model's device (the meta
    device counts without arithmetic); None for a model without parts."""
    parts = parts_of(model, batch)
    if parts is None:
        return None
    return {name: PartProfile(count_params(module), count_macs(module, inputs), tuple(inputs[0].shape))
            for name, (module, inputs) in parts.items()}


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
    lines = [f"{name}  (input {shape}, {profile.device}, {profile.threads} threads)",
             f"  {profile.signature.describe()}"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    for name, part in (profile.parts or {}).items():
        lines.append(f"  part {name} (input {'x'.join(map(str, part.input_shape))}): {part.params / 1e6:.3f} M "
                     f"params, {part.macs.macs / 1e9:.2f} G MACs true, {part.macs.macs_published / 1e9:.2f} G "
                     f"published")
    return "\n".join(lines)
