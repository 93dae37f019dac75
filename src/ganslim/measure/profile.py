"""Profile a generator: parameters, MACs in two conventions, latency and peak memory; the machine's fp32 peak.

Everything here takes a plain ``nn.Module`` and an example input; the only ganslim imports are the error
type and the device resolver.

Two MAC conventions are reported, because papers and honest arithmetic disagree:

* ``macs`` (true): the multiply-adds of convolutions, matrix products and attention. A transposed
  convolution is counted at its *input* resolution, ``N*C_in*H_in*W_in * (C_out/groups) * k_h*k_w``, which
  is the work a real kernel does. Norms, activations, pooling and elementwise ops count 0.
* ``macs_published``: the convention of torchprofile (mit-han-lab/torchprofile), which produced the
  tables of GAN Compression, OMGD, CAT and their successors. Every convolution is counted as
  ``prod(output shape) * C_in' * k_h*k_w`` where ``C_in'`` is read from the weight as torchprofile reads
  it: ``weight.shape[1]`` when the output has ``weight.shape[0]`` channels (ordinary convolutions),
  ``weight.shape[0]`` otherwise (transposed convolutions, which are therefore counted at *output*
  resolution, zeros included). It also counts ``prod(output shape)`` for a norm with an affine weight,
  average pooling and means, out-of-place ``leaky_relu``, and elementwise ``mul``; ``4*prod(output)`` for
  bilinear upsampling; matrix products as in the true count. torchprofile has no rule for in-place
  ``leaky_relu_`` (nn.LeakyReLU(inplace=True)), so it counts 0 there, and so do we.

Ops are seen through a ``TorchDispatchMode``, so functional calls (``F.conv2d`` with a raw weight,
``torch.matmul``) are counted as well as modules. The forward runs under ``torch.no_grad`` (not inference
mode), where composite ops such as ``linear`` or ``instance_norm`` reach the mode already lowered to the
kernels that really run (``addmm``, ``native_batch_norm``); the rules are written for that level and give
the same totals torchprofile gets from the composite ops.
"""

from __future__ import annotations

import contextlib
import functools
import math
import statistics
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ganslim.devices import resolve_device
from ganslim.errors import GanslimError, first_line
from ganslim.nn.kernels import standard_kernels

__all__ = [
    "LatencyStats",
    "MacCount",
    "Profile",
    "count_macs",
    "count_params",
    "eval_mode",
    "format_profile",
    "fp32_matmul",
    "matmul_gflops",
    "measure_latency",
    "measure_peak_gflops",
    "measure_peak_memory",
    "num_threads",
    "profile_model",
]

Inputs = torch.Tensor | Sequence[torch.Tensor]
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


@dataclass(frozen=True)
class MacCount:
    """Multiply-accumulate counts of one forward pass in the two conventions (see the module docstring)."""

    macs: int
    macs_published: int


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
        return _memory_kind(self.device)

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


# ----------------------------------------------------------------------------------------------------------
# Parameters and MACs


def count_params(model: nn.Module) -> int:
    """Number of parameter elements (a parameter shared by several modules counts once)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example_input: Inputs) -> MacCount:
    """Count MACs of one forward of ``model(*example_input)`` in both conventions.

    Args:
        model: any module; run in eval mode (its train/eval flags are restored afterwards).
        example_input: a tensor (N, C, H, W) or a sequence of positional tensors, on the model's device.
            Meta tensors work (with a model built on the meta device), which counts without computing.
    """
    counter = _MacCounter()
    with eval_mode(model), _lowered_ops(), standard_kernels():
        args = _outside_inference(example_input)
        with counter:
            model(*args)
    return MacCount(macs=counter.macs, macs_published=counter.macs_published)


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def _arg(func: torch._ops.OpOverload, args: tuple, kwargs: dict, index: int) -> Any:
    """Positional argument ``index`` of an aten call, wherever the caller put it."""
    if index < len(args):
        return args[index]
    schema_arg = func._schema.arguments[index]
    if schema_arg.name in kwargs:
        return kwargs[schema_arg.name]
    return schema_arg.default_value


def _first_tensor(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


# A rule maps (func, args, kwargs, out) to (true MACs, published MACs).
_Rule = Callable[[torch._ops.OpOverload, tuple, dict, Any], tuple[int, int]]


def _convolution(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    # aten.convolution / aten._convolution: (input, weight, bias, stride, padding, dilation, transposed, ...)
    x, weight = _arg(func, args, kwargs, 0), _arg(func, args, kwargs, 1)
    transposed = bool(_arg(func, args, kwargs, 6))
    kernel = _numel(weight.shape[2:])
    # Weight is [C_out, C_in/g, k..] for a convolution and [C_in, C_out/g, k..] when transposed.
    true = (x.numel() if transposed else out.numel()) * weight.shape[1] * kernel
    in_channels = weight.shape[1] if out.shape[1] == weight.shape[0] else weight.shape[0]
    return true, out.numel() * in_channels * kernel


def _contraction(index: int) -> _Rule:
    """Matrix products: output elements times the contracted size, read from argument ``index``."""

    def rule(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        operand = _arg(func, args, kwargs, index)
        macs = _first_tensor(out).numel() * operand.shape[-1]
        return macs, macs

    return rule


def _attention(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    # Q K^T then P V: query [..., L, E], key [..., S, E], value [..., S, Ev].
    query, key, value = (_arg(func, args, kwargs, i) for i in range(3))
    *batch, length, embed = query.shape
    macs = _numel(batch) * length * key.shape[-2] * (embed + value.shape[-1])
    return macs, macs


def _norm(weight_index: int) -> _Rule:
    def rule(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        affine = _arg(func, args, kwargs, weight_index) is not None
        return 0, _first_tensor(out).numel() if affine else 0

    return rule


def _published_per_output(factor: int) -> _Rule:
    def rule(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        return 0, factor * _first_tensor(out).numel()

    return rule


@functools.cache
def _rules() -> dict[Any, _Rule]:
    """Rules keyed by aten overload packet, for the ops seen under no_grad; ops not listed count 0.

    Names missing from this torch build are skipped.
    """
    by_name: dict[str, _Rule] = {
        "convolution": _convolution,
        "_convolution": _convolution,
        "mm": _contraction(0),
        "bmm": _contraction(0),
        "mv": _contraction(0),
        "dot": _contraction(0),
        "addmm": _contraction(1),
        "addmv": _contraction(1),
        "baddbmm": _contraction(1),
        "_scaled_dot_product_flash_attention": _attention,
        "_scaled_dot_product_flash_attention_for_cpu": _attention,
        "_scaled_dot_product_efficient_attention": _attention,
        "_scaled_dot_product_cudnn_attention": _attention,
        # batch_norm, instance_norm (weight repeated per sample), layer_norm and group_norm lower to these.
        "native_batch_norm": _norm(1),
        "_native_batch_norm_legit": _norm(1),
        "_native_batch_norm_legit_no_training": _norm(1),
        "_batch_norm_with_update": _norm(1),
        "_batch_norm_no_update": _norm(1),
        "cudnn_batch_norm": _norm(1),
        "miopen_batch_norm": _norm(1),
        "native_layer_norm": _norm(2),
        "native_group_norm": _norm(1),
        "mul": _published_per_output(1),
        "mul_": _published_per_output(1),
        "leaky_relu": _published_per_output(1),
        "upsample_bilinear2d": _published_per_output(4),
        # avg_pool1d and adaptive_avg_pool{1,2}d lower to these; the element count is unchanged.
        "mean": _published_per_output(1),
        "avg_pool2d": _published_per_output(1),
        "avg_pool3d": _published_per_output(1),
        "_adaptive_avg_pool2d": _published_per_output(1),
        "_adaptive_avg_pool3d": _published_per_output(1),
    }
    rules: dict[Any, _Rule] = {}
    for name, rule in by_name.items():
        packet = getattr(torch.ops.aten, name, None)
        if packet is not None:
            rules[packet] = rule
    return rules


@contextlib.contextmanager
def _lowered_ops() -> Iterator[None]:
    """Let dispatch modes see the kernels that run: in inference mode they would see composite ops whole."""
    with torch.inference_mode(False), torch.no_grad():
        yield


def _outside_inference(example_input: Inputs) -> tuple[torch.Tensor, ...]:
    """The inputs, with inference tensors (made under inference mode) copied so in-place ops stay legal."""
    return tuple(t.clone() if t.is_inference() else t for t in _as_args(example_input))


class _MacCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.macs_published = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = _rules().get(func.overloadpacket)
        if rule is not None:
            true, published = rule(func, args, kwargs, out)
            self.macs += int(true)
            self.macs_published += int(published)
        return out


# ----------------------------------------------------------------------------------------------------------
# Peak memory


class _TensorMemoryTracker(TorchDispatchMode):
    """Bytes of the distinct storages alive, updated as ops create them and as they are freed."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[weakref.ref, int]] = {}
        self.current = 0
        self.peak = 0

    def track(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        nbytes = storage.nbytes()
        key = storage.data_ptr()
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
    not tensors and are not seen, so this is below the process RSS growth.

    The model is moved to ``device`` and put in eval mode for the measurement, then restored.
    """
    dev = _resolve_device(device)
    with _placed(model, dev), _lowered_ops():
        args = _outside_inference([t.to(dev) for t in _as_args(example_input)])
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


# ----------------------------------------------------------------------------------------------------------
# Latency


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
    _check_count("warmup", warmup, minimum=0)
    _check_count("repeats", repeats, minimum=1)
    dev = _resolve_device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    times_ms: list[float] = []
    with _placed(model, dev), torch.inference_mode():
        args = tuple(t.to(dev) for t in _as_args(example_input))
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
    _check_count("runs", runs, minimum=1)
    run = fp32_matmul(n)
    times = []
    with num_threads(threads):
        run()
        for _ in range(runs):
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1e3)
    return matmul_gflops(n, min(times))


# ----------------------------------------------------------------------------------------------------------
# The whole profile


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
        in_channels: C; if None, read from the first Conv2d / ConvTranspose2d in ``model.modules()``.
        device: "cpu", "cuda[:i]" or "auto" (CUDA when present).
        threads: torch intra-op threads for the run (restored afterwards); None keeps the current count.
        warmup, repeats: untimed and timed forward passes for the latency.

    The model is moved to ``device`` and put in eval mode while profiled, then put back as it was.
    """
    height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    _check_count("input_size", height, minimum=1)
    _check_count("input_size", width, minimum=1)
    _check_count("batch", batch, minimum=1)
    _check_count("warmup", warmup, minimum=0)
    _check_count("repeats", repeats, minimum=1)
    if threads is not None:
        _check_count("threads", threads, minimum=1)
    if in_channels is None:
        in_channels = _infer_in_channels(model)
    _check_count("in_channels", in_channels, minimum=1)
    dev = _resolve_device(device)
    shape = (batch, in_channels, height, width)
    image = torch.randn(shape, generator=torch.Generator().manual_seed(0))  # values do not matter

    with num_threads(threads) as used_threads, _placed(model, dev):
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


# ----------------------------------------------------------------------------------------------------------
# Helpers


def _memory_kind(device: str) -> str:
    return "peak CUDA memory allocated" if device.startswith("cuda") else "peak tensor memory"


def _as_args(example_input: Inputs) -> tuple[torch.Tensor, ...]:
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    return tuple(example_input)


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GanslimError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _resolve_device(device: str | torch.device) -> torch.device:
    """The device ``resolve_device`` accepts ("auto", "cpu", "cuda[:i]"), with the CUDA index made explicit."""
    dev = resolve_device(str(device))
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev


def _infer_in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            return module.in_channels
    raise GanslimError(
        f"cannot infer in_channels: {type(model).__name__} has no Conv2d; pass in_channels explicitly"
    )


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
def _placed(model: nn.Module, device: torch.device) -> Iterator[None]:
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
