"""Benchmark generators side by side across runtimes, in one process (:mod:`.write` writes the files).

For every model x backend the bench reports parameters, MACs in both conventions (see ``ganslim.measure.profile``),
median / min / max latency of one example input of the model's signature (:meth:`ganslim.signature.Signature.
example_inputs`, (1, C, size, size); a super-resolution model's LR side; a latent generator's z (1, z_dim), image out
at its own resolution), throughput, achieved GFLOP/s (``2 * true MACs / median time``) and its share of the
machine's fp32 peak, and with ``data`` quality on a dataset split (models that take images):
PSNR and SSIM against the targets (paired data) and against the first model's outputs (the reference, usually
the teacher), through :func:`ganslim.measure.evaluate.score_models`, as ``ganslim eval`` scores them: image-to-image
models on ``size`` x ``size`` images, super-resolution models on whole images with BasicSR's metrics (their
exports are then dynamic in height and width). Models are benched together only when they share a scale (all
image-to-image, all x s super-resolution, or all latent generators): the columns compare runs of the same inputs.

How the timing is kept fair:

* all runners (plus an fp32 matmul that measures the peak, ``PEAK_RUNS`` times a round) are timed round-robin
  by :func:`ganslim.export.runtime.interleaved_times`: every round runs each of them once, so a slow phase of
  the machine hits all of them alike, and the order rotates every round; warm-up rounds come first. The peak
  is the fastest matmul run (another process only ever slows a run down), of a matmul of a size that fits
  the caches and runs in milliseconds (``ganslim.measure.profile.PEAK_MATMUL_SIZE``);
* every runtime gets the same thread count: ``torch.set_num_threads``, ONNX Runtime ``intra_op_num_threads``,
  OpenVINO ``INFERENCE_NUM_THREADS``;
* no runtime spins while another runs: ONNX Runtime sessions are created with spinning off
  (``ganslim.export.runtime.ort_session``); PyTorch's OpenMP threads wait passively only when
  ``OMP_WAIT_POLICY=PASSIVE`` is set before torch is imported (``ganslim bench`` does this; the result records
  the value it ran with);
* OpenVINO runs float layers in f32 (``INFERENCE_PRECISION_HINT=f32``), not the bf16 its CPU plugin would pick.

Backends: ``torch`` (eager fp32), ``onnxruntime`` and ``openvino`` (fp32 exports, checked for parity against
PyTorch by ``ganslim.export.export_model``), ``onnxruntime-int8`` and ``openvino-int8`` (static int8 from
``ganslim.export.quantize.quantize_model``, calibrated on the train split of ``data``); ``int8`` names both
int8 backends. A latent generator's int8 row runs z -> its fp32 mapping graph -> W broadcast to W+ -> its synthesis
in static int8 (``ganslim.export.quantize.quantize_synthesis``: calibrated on W+ of the mapped z of seeds 0 ..
``num_calibration - 1``, scored on the next :data:`LATENT_EVAL_SEEDS` seeds), both graphs on the row's runtime, its
fidelity int8 vs the fp32 synthesis graph in ``int8``. A backend whose runtime is not installed, or an image
model's int8 backend without data to calibrate on, is reported as skipped with the reason; one whose export fails
is reported as failed; neither stops the bench.

``bench.json`` (:meth:`BenchResult.to_dict`)::

    format "ganslim-bench", format_version 1, ganslim_version, command (when run from the CLI)
    settings  size (latent generators: the image side they make), batch, threads, repeats, warmup, interleaved,
              backends, data, split, direction, num_images,
              num_calibration, reference (the first model), omp_wait_policy, sr_scale (None: image-to-image),
              scoring (how quality was computed; None without data)
    machine   cpu, logical_cpus, platform, versions {python, torch, onnxruntime, openvino, nncf}
    peak      matmul_size, dtype, threads, runs, gflops (fastest run), gflops_median, note
    models[]  name, path, arch, params, macs, macs_published, input_shape ([1, C, size, size]; latent: [1, z_dim])
    results[] one per model x backend, in run order: model, backend, status (ok | skipped | failed), reason,
              runtime, latency_ms {median, min, max}, repeats, throughput_img_s, gflops, peak_share (of
              peak.gflops; an int8 row's can pass 1), quality {psnr, ssim (vs targets), psnr_ref, ssim_ref (vs
              the reference)}, parity_max_abs_diff (fp32 exports), int8 {int8_layers, float_layers, num_calibration}
              (int8 backends; a latent generator's also part "synthesis", mapping (its runtime, fp32), calibration,
              num_eval, psnr_vs_fp32, ssim_vs_fp32, max_abs_diff_vs_fp32 (int8 vs fp32 synthesis graph),
              psnr_vs_eager, ssim_vs_eager (int8 vs eager PyTorch))
    notes[]   caveats about the run (one explains an fp32 row's peak_share above 1)

Non-finite numbers are written as the strings ``"inf"`` / ``"-inf"`` (the reference's ``psnr_ref`` is ``"inf"``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ganslim import __version__
from ganslim.data.labels import LabelEncoding
from ganslim.errors import GanslimError, first_line
from ganslim.measure.compare import model_cost
from ganslim.measure.evaluate import (
    EvalData,
    Scoring,
    array_run,
    json_safe,
    open_eval_data,
    open_label_eval_data,
    open_sr_eval_data,
    score_models,
    scoring_for,
    sr_scale,
)
from ganslim.measure.profile import (
    PEAK_MATMUL_SIZE,
    LatencyStats,
    fp32_matmul,
    interleaved_times,
    matmul_gflops,
    num_threads,
)
from ganslim.signature import IMAGE, LABEL_MAP, LATENT, Signature, combined, common_side, signature_of

BACKENDS = ("torch", "onnxruntime", "openvino", "onnxruntime-int8", "openvino-int8")
DEFAULT_BACKENDS = ("torch", "onnxruntime", "openvino", "int8")
ALIASES = {"int8": ("onnxruntime-int8", "openvino-int8"), "ort": ("onnxruntime",), "ov": ("openvino",)}
# Python modules each backend needs, and how to get them.
_REQUIRES = {
    "torch": (),
    "onnxruntime": ("onnx", "onnxruntime"),
    "openvino": ("onnx", "openvino"),
    "onnxruntime-int8": ("onnx", "onnxruntime"),
    "openvino-int8": ("onnx", "openvino", "nncf"),
}
_INSTALL = {"onnx": "pip install onnx", "onnxruntime": "pip install onnxruntime",
            "openvino": "pip install 'ganslim[openvino]'", "nncf": "pip install 'ganslim[openvino]'"}
FORMAT_NAME, FORMAT_VERSION = "ganslim-bench", 1
_PEAK_KEY = "__peak_matmul__"
PEAK_RUNS = 3  # peak matmuls a round: more chances of a run that no other process interrupted
LATENT_EVAL_SEEDS = 4  # held-out latents a latent generator's int8 synthesis is scored on
LATENT_KIND = "a latent generator"  # what the bench calls a model driven by latents alone (no image input)
ABOVE_PEAK = "*"
ABOVE_PEAK_NOTE = (f"{ABOVE_PEAK} an fp32 row above 100% of the fp32 peak: the peak matmul ran slower than the "
                   "model's kernels in this run (a busy machine; re-run it), or the runtime does fewer "
                   "multiply-adds than counted (e.g. Winograd convolutions, or bf16 layers on a CPU with AMX)")

Runner = Callable[[np.ndarray], np.ndarray]


def parse_backends(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"torch,int8"`` -> ``("torch", "onnxruntime-int8", "openvino-int8")``; unknown names raise."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    expanded: list[str] = []
    for name in names:
        if name in ALIASES:
            expanded.extend(ALIASES[name])
        elif name in BACKENDS:
            expanded.append(name)
        else:
            raise GanslimError(f"unknown backend '{name}'; choose from {', '.join(BACKENDS)} (int8 = both int8 "
                               f"backends), comma-separated")
    if not expanded:
        raise GanslimError(f"no backend given: pass e.g. --backends {','.join(DEFAULT_BACKENDS)}")
    return tuple(dict.fromkeys(expanded))


def backend_unavailable(backend: str) -> str | None:
    """Why ``backend`` cannot run here (a runtime module is missing), or None when it can."""
    for module in _REQUIRES[backend]:
        try:
            importlib.import_module(module)
        except ImportError:
            return f"{module} is not installed ({_INSTALL[module]})"
    return None


@dataclass(frozen=True)
class BenchModel:
    """A generator to benchmark: ``name`` labels it in the tables; ``arch`` and ``path`` are recorded."""

    name: str
    module: nn.Module
    arch: str | None = None
    path: str | None = None


@dataclass
class BenchRow:
    """One model x backend: ``status`` is ``ok``, ``skipped`` (runtime missing, no data) or ``failed``."""

    model: str
    backend: str
    status: str
    reason: str | None = None
    runtime: str | None = None
    latency: LatencyStats | None = None
    quality: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult:
    """Everything the bench measured; :meth:`to_dict` gives ``bench.json`` (schema in the module docstring)."""

    models: list[dict[str, Any]]
    rows: list[BenchRow]
    settings: dict[str, Any]
    machine: dict[str, Any]
    peak: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``models``, ``results`` (one per model x backend), ``settings``, ``machine``, ``peak``,
        ``notes`` (the run's, and :data:`ABOVE_PEAK_NOTE` when an fp32 row passes the peak)."""
        macs = {m["name"]: m["macs"] for m in self.models}
        results = []
        for row in self.rows:
            entry: dict[str, Any] = {"model": row.model, "backend": row.backend, "status": row.status,
                                     "reason": row.reason, "runtime": row.runtime, "latency_ms": None,
                                     "repeats": None, "throughput_img_s": None, "gflops": None,
                                     "peak_share": None, "quality": dict(row.quality), **row.details}
            if row.latency is not None:
                seconds = row.latency.median_ms / 1e3
                gflops = 2 * macs[row.model] / seconds / 1e9
                entry.update(latency_ms={"median": row.latency.median_ms, "min": row.latency.min_ms,
                                         "max": row.latency.max_ms},
                             repeats=row.latency.repeats, throughput_img_s=self.settings["batch"] / seconds,
                             gflops=gflops, peak_share=gflops / self.peak["gflops"])
            results.append(entry)
        notes = self.notes + ([ABOVE_PEAK_NOTE] if any(above_peak(entry) for entry in results) else [])
        return json_safe({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "ganslim_version": __version__,
                          **self.info, "settings": self.settings, "machine": self.machine, "peak": self.peak,
                          "models": self.models, "results": results, "notes": notes})


def is_int8(backend: str) -> bool:
    return backend.endswith("-int8")


def above_peak(result: dict[str, Any]) -> bool:
    """Whether an fp32 result's GFLOP/s pass the fp32 peak (which an int8 row may legitimately do)."""
    share = result.get("peak_share")
    return isinstance(share, (int, float)) and share > 1 and not is_int8(result["backend"])


def run_bench(
    models: Sequence[BenchModel],
    backends: str | Sequence[str] = DEFAULT_BACKENDS,
    *,
    size: int | None = 256,
    threads: int | None = 2,
    repeats: int = 10,
    warmup: int = 3,
    data: str | os.PathLike | None = None,
    split: str = "test",
    direction: str = "AtoB",
    num_images: int = 8,
    num_calibration: int = 16,
    peak_size: int = PEAK_MATMUL_SIZE,
    progress: bool = True,
    sr_metric: str | None = None,
) -> BenchResult:
    """Benchmark every model on every backend, interleaved, and score them on ``data``.

    Args:
        models: the generators (CPU ``nn.Module`` with a signature of one image, label-map or latent input, or plain
            modules taken as image-to-image in [-1, 1]), all image-to-image, all super-resolution of one scale or all
            latent generators (z -> image); the first is the quality reference.
        backends: names from :data:`BACKENDS` (or ``int8``), as a list or a comma-separated string.
        size: the timed input is (1, C, size, size), and image-to-image data is resized to it; exports are
            static at that shape (super-resolution: dynamic, for whole images). None: the (height, width)
            label-map models are all built for, else the smallest side of at least 64 that every model takes.
            Latent generators: the image side they all make, the only ``size``
            they take.
        threads: CPU threads of every runtime (None: torch's current count, runtimes' defaults).
        repeats: timed rounds; warmup: untimed rounds before them (each round runs every runner once).
        data: a dataset root or image folder (see :func:`ganslim.measure.evaluate.open_eval_data`; HR images for
            super-resolution: :func:`~ganslim.measure.evaluate.open_sr_eval_data`) for quality metrics and int8
            calibration (its train split); None: no quality, int8 backends skipped. Latent generators take none;
            label-map models (SPADE) a label-map dataset (:func:`~ganslim.measure.evaluate.open_label_eval_data`),
            timed on its first label map.
        split: the split scored for quality; direction: which side of the data is the input.
        num_images: images of ``split`` scored per model x backend.
        num_calibration: int8 calibration images.
        peak_size: side of the square fp32 matmul that measures the machine's peak.
        sr_metric: super-resolution PSNR/SSIM on ``y`` (default) or ``rgb`` (see
            :func:`ganslim.measure.evaluate.scoring_for`).
    """
    _positive(repeats=repeats, num_images=num_images, num_calibration=num_calibration,
              peak_size=peak_size)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise GanslimError(f"warmup must be a non-negative integer, got {warmup!r}")
    if threads is not None:
        _positive(threads=threads)
    if not models:
        raise GanslimError("no model given: pass one or more checkpoints")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise GanslimError(f"model names must be unique, got {names}")
    backends = parse_backends(backends)
    if size is not None:
        _positive(size=size)
    signatures = {m.name: _bench_signature(m) for m in models}
    scale = common_scale(models)
    latent = not signatures[models[0].name].takes_image
    if latent:
        side = _latent_side(signatures, size, data)
    else:
        side = size if size is not None else _built_size(signatures) or default_side(models)
        for name, signature in signatures.items():
            for one in {side} if isinstance(side, int) else set(side):
                signature.check_side(one, f"model '{name}': --size")
    scoring = scoring_for(signatures[models[0].name], sr_metric)
    labels = _takes_labels(signatures[models[0].name])

    def say(text: str) -> None:
        if progress:
            tqdm.write(text, file=sys.stderr)

    settings = {"size": side if isinstance(side, int) else list(side), "batch": 1, "threads": threads if threads is not None else torch.get_num_threads(),
                "repeats": repeats, "warmup": warmup, "interleaved": True, "backends": list(backends),
                "data": None if data is None else str(data), "split": split if data is not None else None,
                "direction": direction, "num_images": num_images if data is not None else 0,
                "num_calibration": num_calibration, "reference": models[0].name,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "sr_scale": scale,
                "scoring": None if data is None else scoring.describe()}
    notes = []
    if (os.environ.get("OMP_WAIT_POLICY") or "").upper() != "PASSIVE":
        notes.append("OMP_WAIT_POLICY was not PASSIVE: PyTorch's OpenMP threads may spin after each run and slow "
                     "the runtimes timed next (ganslim bench sets it before importing torch)")

    with num_threads(threads), tempfile.TemporaryDirectory(prefix="ganslim-bench-") as scratch:
        infos = [_model_info(model, signatures[model.name], side) for model in models]
        quality = None if data is None else _quality_data(models, list(signatures.values()), data, split, side,
                                                          direction, num_images)
        if quality is not None:
            settings["num_images"] = len(quality.inputs)
        calibration, no_calibration = None, "int8 calibrates on your images: pass --data DIR"
        if data is not None and any(is_int8(b) for b in backends) and labels:
            calibration = data  # the label-map dataset's train split calibrates (quantize_label_model)
        elif data is not None and any(is_int8(b) for b in backends):
            from ganslim.export.calibration import split_data

            try:
                calibration = split_data(data, direction, super_resolution=scale is not None)
            except GanslimError as error:
                no_calibration = f"no calibration images: {error}"

        rows: list[BenchRow] = []
        runners: dict[tuple[str, str], Runner] = {}
        for index, model in enumerate(models):
            for backend in backends:
                reason = backend_unavailable(backend)
                if reason is None and is_int8(backend) and calibration is None and not latent:
                    reason = no_calibration
                if reason is not None:
                    rows.append(BenchRow(model.name, backend, "skipped", reason=reason))
                    continue
                say(f"bench: preparing {model.name} on {backend}")
                try:
                    folder = Path(scratch) / str(index)
                    if latent and is_int8(backend):
                        runner, runtime, details = _build_latent_int8(backend, model.module, folder, threads,
                                                                      num_calibration)
                    else:
                        runner, runtime, details = _build(backend, model.module, folder, side, scale is not None,
                                                          threads, calibration, num_calibration, direction)
                except Exception as error:  # noqa: BLE001 - one backend failing must not stop the others
                    rows.append(BenchRow(model.name, backend, "failed", reason=first_line(error)))
                    continue
                runners[(model.name, backend)] = runner
                rows.append(BenchRow(model.name, backend, "ok", runtime=runtime, details=details))

        if quality is not None:
            _score(rows, runners, quality, scoring, signatures, reference_model=models[0].name)
        say(f"bench: timing {len(runners)} runner(s) + {PEAK_RUNS} {peak_size}x{peak_size} fp32 matmuls a round, "
            f"{warmup} warm-up + {repeats} timed rounds")
        examples = {name: _example(signature, side) for name, signature in signatures.items()}
        if labels and quality is not None:  # timed on the first real label map rather than random one-hots
            examples = dict.fromkeys(examples, quality.inputs[0][quality.input_key][None].numpy())
        latency, peak_ms = _time(runners, examples, peak_size, warmup, repeats, progress)
        runners.clear()  # release the sessions before their scratch files are deleted

    for row in rows:
        if row.status == "ok":
            row.latency = latency[row.model, row.backend]
    peak_stats = LatencyStats.of(peak_ms)
    peak = {"matmul_size": peak_size, "dtype": "float32", "threads": settings["threads"], "runs": len(peak_ms),
            "gflops": matmul_gflops(peak_size, peak_stats.min_ms),
            "gflops_median": matmul_gflops(peak_size, peak_stats.median_ms),
            "note": f"2*n^3 / fastest time of an n x n fp32 matmul run {PEAK_RUNS} times in each of the rounds "
                    "(gflops_median: median time); peak_share = achieved GFLOP/s at median latency / gflops"}
    return BenchResult(models=infos, rows=rows, settings=settings, machine=_machine(), peak=peak, notes=notes)


def _built_size(signatures: dict[str, Signature]) -> tuple[int, int] | None:
    """The (height, width) label-map models (SPADE) are all built for, if they are and agree; else None."""
    sizes = {signature.image_input.size if _takes_labels(signature) else None for signature in signatures.values()}
    return tuple(sizes.pop()) if len(sizes) == 1 and None not in sizes else None


def default_side(models: Sequence[BenchModel]) -> int:
    """The input side the bench times when none is given: the smallest of at least 64 that every model takes."""
    return common_side(_bench_signature(model).image_input.sides for model in models)


def _latent_side(signatures: dict[str, Signature], size: int | None, data: str | os.PathLike | None) -> int:
    """The largest image side the latent generators make (``size``, if given, must be each one's); they may make
    different sides (Anycost's previews at lower resolutions are timed against the full generator). ``data`` (their
    quality is ``ganslim eval``'s) is a one-line GanslimError."""
    if data is not None:
        raise GanslimError("latent generators take no images to score: drop --data (ganslim eval scores them)")
    for signature in signatures.values():
        if size is not None:
            signature.check_resolution(size)
    return max(signature.output.resolution for signature in signatures.values())


def _bench_signature(model: BenchModel) -> Signature:
    """``model``'s signature, which must take one image or one latent (what the bench feeds)."""
    signature = signature_of(model.module.eval())
    if len(signature.inputs) != 1 or signature.inputs[0].kind not in (IMAGE, LABEL_MAP, LATENT):
        raise GanslimError(f"model '{model.name}' takes {signature.describe()}: the bench times models of one "
                           f"image, label-map or latent input")
    return signature


def common_scale(models: Sequence[BenchModel]) -> int | None:
    """The models' super-resolution scale (None: image-to-image or latent generators); models of different
    scales, or latent generators with image models, are a one-line GanslimError (the bench compares outputs of
    the same inputs)."""
    kinds = {model.name: _kind(_bench_signature(model)) for model in models}
    if len(set(kinds.values())) > 1:
        listing = ", ".join(f"'{name}' is {kind}" for name, kind in kinds.items())
        advice = ("latent generators apart from image models" if LATENT_KIND in kinds.values()
                  else "models of one scale together")
        raise GanslimError(f"the bench compares models on the same inputs, but {listing}: bench {advice}")
    return sr_scale(_bench_signature(models[0]))


def _kind(signature: Signature) -> str:
    if not signature.takes_image:
        return LATENT_KIND
    if _takes_labels(signature):
        return "label-map -> image"
    scale = sr_scale(signature)
    return "image-to-image" if scale is None else f"x{scale} super-resolution"


def _example(signature: Signature, side: int) -> np.ndarray:
    """The seeded (1, C, side, side) input a model is timed on, in its signature's value range."""
    return signature.example_inputs(side, generator=torch.Generator().manual_seed(0))[0].numpy()


def _model_info(model: BenchModel, signature: Signature, side: int) -> dict[str, Any]:
    """Name, parameters and MACs (both conventions) of one forward of its (1, C, side, side) example input (a latent
    generator's (1, z_dim))."""
    shape = list(signature.example_inputs(side)[0].shape)
    try:
        cost = model_cost(model.module.eval(), side)
    except RuntimeError as error:
        raise GanslimError(f"model '{model.name}' cannot run on a {'x'.join(map(str, shape))} input "
                           f"({first_line(error)}): pick a --size its downsampling accepts") from None
    output = signature.output.resolution  # a latent generator's image side (None: it scales its input)
    return {"name": model.name, "path": model.path, "arch": model.arch, **cost.to_dict(), "input_shape": shape,
            **({"output_side": output} if output is not None else {})}


def _takes_labels(signature: Signature) -> bool:
    return signature.takes_image and signature.image_input.kind == LABEL_MAP


def _quality_data(models: Sequence[BenchModel], signatures: list[Signature], data: str | os.PathLike, split: str,
                  side: int, direction: str, num_images: int) -> EvalData:
    """The first ``num_images`` images of ``split`` for ``models`` of ``signatures`` (the reference first):
    resized to ``side`` for image-to-image models, whole images (of sides every model takes) for super-resolution,
    label maps and their photos at ``side`` x ``side`` for label-map models (which must share one encoding)."""
    reference = signatures[0]
    if _takes_labels(reference):
        encodings = {model.name: LabelEncoding.of(model.module) for model in models}
        if len(set(encodings.values())) > 1:
            listing = ", ".join(f"'{name}' takes {encoding.channels} channels" for name, encoding in encodings.items())
            raise GanslimError(f"the bench scores models on the same label maps, but {listing}: bench models of one "
                               f"label set together")
        sides = (side, side) if isinstance(side, int) else side
        return open_label_eval_data(encodings[models[0].name], data, split, sides, max_images=num_images)
    if sr_scale(reference) is not None:
        sides = combined(signature.image_input.sides for signature in signatures)
        every_model = replace(reference, inputs=(replace(reference.image_input, sides=sides),))
        return open_sr_eval_data(every_model, data, split, max_images=num_images)
    return open_eval_data(data, split=split, size=side, direction=direction, input_nc=reference.image_input.channels,
                          output_nc=reference.output.channels, max_images=num_images)


def _time(runners: dict[tuple[str, str], Runner], examples: dict[str, np.ndarray], peak_size: int, warmup: int,
          repeats: int, progress: bool) -> tuple[dict[tuple[str, str], LatencyStats], list[float]]:
    """Latency of every runner on its model's example input, and the ms of every peak matmul run
    (``PEAK_RUNS`` a round), all interleaved."""
    # Keys are strings for interleaved_times.
    keys = {f"{name}\t{backend}": (name, backend) for name, backend in runners}
    timed = {text: _fixed_input(runners[key], examples[key[0]]) for text, key in keys.items()}
    matmul = fp32_matmul(peak_size)
    peak_keys = [f"{_PEAK_KEY}{index}" for index in range(PEAK_RUNS)]
    timed.update((key, matmul) for key in peak_keys)
    unused_input = next(iter(examples.values()))
    with _round_bar(timed, peak_keys[0], warmup + repeats, progress):
        times = interleaved_times(timed, unused_input, warmup=warmup, repeats=repeats)
    latency = {key: LatencyStats.of(times[text]) for text, key in keys.items()}
    return latency, [ms for key in peak_keys for ms in times[key]]


def _positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GanslimError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")


def _build(backend: str, module: nn.Module, folder: Path, size: int, whole_images: bool, threads: int | None,
           calibration: Any, num_calibration: int, direction: str) -> tuple[Runner, str, dict[str, Any]]:
    """(runner on float32 (1, C, size, size) arrays in the model's value range, runtime name, extra JSON fields)
    for one backend; ``whole_images``: exports take any height and width (super-resolution quality)."""
    if backend == "torch":
        def run_torch(image: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(image)).float().numpy()

        return run_torch, f"torch {torch.__version__} eager", {}

    from ganslim.export import export_model, load_exported

    folder.mkdir(parents=True, exist_ok=True)
    if backend in ("onnxruntime", "openvino"):
        export = export_model(module, folder / backend, "onnx" if backend == "onnxruntime" else "openvino",
                              size=size, dynamic=whole_images)
        exported = load_exported(export.files[0], threads=threads)
        return exported, exported.runtime, {"parity_max_abs_diff": export.max_abs_diff}

    from ganslim.export.quantize import quantize_label_model, quantize_model

    runtime = backend.removesuffix("-int8")
    if _takes_labels(signature_of(module)):
        sides = (size, size) if isinstance(size, int) else size
        result = quantize_label_model(module, calibration, folder / backend, backend=runtime, size=sides,
                                      num_calibration=num_calibration, num_eval=1, threads=threads, warmup=0,
                                      repeats=1)
        exported = load_exported(result.files[0], threads=threads)
        return exported, exported.runtime, _int8_details(result)
    # The quantizer's own report is not used here: one eval image and one timed run keep its cost small.
    result = quantize_model(module, calibration.calibration, folder / backend, backend=runtime,
                            size=None if whole_images else size,
                            num_calibration=num_calibration, eval_images=calibration.evaluation, num_eval=1,
                            aligned=calibration.aligned, direction=direction, threads=threads, warmup=0,
                            repeats=1)
    exported = load_exported(result.files[0], threads=threads)
    return exported, exported.runtime, _int8_details(result)


def _int8_details(result: Any) -> dict[str, Any]:
    """The JSON fields of an int8 row: its layers' precisions and calibration count (a ``QuantizeResult``)."""
    return {"int8": {"int8_layers": dict(result.int8_layers), "float_layers": _count_ops(result.float_layers),
                     "num_calibration": result.num_calibration}}


def _build_latent_int8(backend: str, generator: nn.Module, folder: Path, threads: int | None,
                       num_calibration: int) -> tuple[Runner, str, dict[str, Any]]:
    """(runner on z (1, z_dim), runtime name, the ``int8`` JSON field) for a latent generator's int8 backend: its
    fp32 mapping graph, W broadcast to W+, its synthesis graph in static int8 (see the module docstring)."""
    from ganslim.apps.generate import format_seeds
    from ganslim.export import export_parts, load_exported
    from ganslim.export.quantize import LATENT_SEED, quantize_synthesis

    runtime, seeds = backend.removesuffix("-int8"), range(LATENT_SEED, LATENT_SEED + num_calibration)
    folder.mkdir(parents=True, exist_ok=True)
    result = quantize_synthesis(generator, folder / backend, backend=runtime, num_calibration=num_calibration,
                                num_eval=LATENT_EVAL_SEEDS, threads=threads, warmup=0, repeats=1)
    (mapping_export,) = export_parts(generator, folder / f"{backend}-mapping", "onnx" if runtime == "onnxruntime"
                                     else "openvino", parts=["mapping"])
    mapping, synthesis = (load_exported(path, threads=threads) for path in (mapping_export.files[0],
                                                                            result.files[0]))
    num_ws = generator.num_ws

    def run_latent(z: np.ndarray) -> np.ndarray:
        w = mapping(z)
        return synthesis(np.ascontiguousarray(np.repeat(w[:, None], num_ws, axis=1)))

    report = result.to_dict()
    details = {"int8": {"part": "synthesis", "mapping": f"{mapping.runtime}, fp32",
                        "int8_layers": dict(result.int8_layers), "float_layers": _count_ops(result.float_layers),
                        "num_calibration": result.num_calibration, "calibration": f"W+ of seeds {format_seeds(seeds)}",
                        "num_eval": result.num_eval, "psnr_vs_fp32": report["psnr_vs_fp32"],
                        "ssim_vs_fp32": report["ssim_vs_fp32"],
                        "max_abs_diff_vs_fp32": report["max_abs_diff_vs_fp32"],
                        "psnr_vs_eager": report["task"]["psnr_int8"], "ssim_vs_eager": report["task"]["ssim_int8"]}}
    return run_latent, synthesis.runtime, details


def _count_ops(layers: Sequence[Any]) -> dict[str, int]:
    """Layers by ``op_type``: ``{"Conv": 2, ...}``."""
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer.op_type] = counts.get(layer.op_type, 0) + 1
    return counts


def _fixed_input(runner: Runner, image: np.ndarray) -> Runner:
    """``runner`` on its own input, whatever it is called with (models may differ in input channels)."""
    return lambda _ignored: runner(image)


@contextlib.contextmanager
def _round_bar(timed: dict[str, Runner], key: str, rounds: int, progress: bool) -> Iterator[None]:
    """A progress bar advanced once per round (by ``timed[key]``, run once per round, before its timing)."""
    if not progress:
        yield
        return
    runner = timed[key]
    with tqdm(total=rounds, desc="bench", unit="round") as bar:
        def advance(image: np.ndarray) -> np.ndarray:
            bar.update(1)
            return runner(image)

        timed[key] = advance
        try:
            yield
        finally:
            timed[key] = runner


def _score(rows: list[BenchRow], runners: dict[tuple[str, str], Runner], data: EvalData, scoring: Scoring,
           signatures: dict[str, Signature], *, reference_model: str) -> None:
    """Quality of every runner on ``data`` (:func:`ganslim.measure.evaluate.score_models`): vs the targets and vs
    the reference model's first backend."""
    runs = {key: array_run(runner, signatures[key[0]], data.value_range) for key, runner in runners.items()}
    reference = next((key for key in runs if key[0] == reference_model), None)
    scores = score_models(runs, data, scoring, reference=reference)
    for row in rows:
        row.quality.update(scores.metrics.get((row.model, row.backend), {}))


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for module in ("onnxruntime", "openvino", "nncf"):
        with contextlib.suppress(ImportError):
            imported = importlib.import_module(module)
            versions[module] = imported.__version__.split("-")[0]  # openvino appends its build tag
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "platform": platform.platform(), "versions": versions}
