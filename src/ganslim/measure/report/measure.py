"""The report's own quick measurements: parameters and MACs, an interleaved CPU latency estimate, PSNR / SSIM and
the image grids on the first images of a split."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ganslim.errors import GanslimError, first_line
from ganslim.measure.compare import Cost, interleaved_model_times, model_cost
from ganslim.measure.profile import LatencyStats
from ganslim.measure.report.run import STUDENT, Grid, ReportRun

if TYPE_CHECKING:
    from ganslim.measure.evaluate import EvalData


@dataclass(frozen=True)
class Latency:
    """Eager CPU latency of each model on one (1, C, side, side) input, ``warmup`` + ``repeats`` rounds."""

    side: int
    threads: int
    warmup: int
    repeats: int
    stats: dict[str, LatencyStats]


@dataclass(frozen=True)
class Quality:
    """PSNR (dB) / SSIM per model label (keys as :func:`ganslim.measure.evaluate.evaluate_generator` names them)."""

    metrics: dict[str, dict[str, float]]
    data: str  # which images, in words


def model_costs(models: Mapping[str, nn.Module], size: int) -> dict[str, Cost]:
    """Parameters and MACs of each model on one (1, C, size, size) image."""
    costs = {}
    for label, model in models.items():
        try:
            costs[label] = model_cost(model, size)
        except (RuntimeError, GanslimError) as error:  # a generator checks its input shape itself, or fails
            raise GanslimError(f"the {label} cannot run on a {size}x{size} image ({first_line(error)}): pass a "
                               f"--size it accepts (e.g. 256)") from None
    return costs


def quick_latency(models: Mapping[str, nn.Module], side: int, repeats: int, warmup: int = 1,
                  threads: int = 1) -> Latency:
    """Time every model on the CPU on one seeded (1, C, side, side) image, the models interleaved round after
    round (see :func:`ganslim.measure.profile.timing.interleaved_times`). One thread by default: on a shared machine
    several OpenMP threads wait for each other and a quick estimate turns to noise (seen here, 2 threads on a
    busy 2-core VM: 397 vs 70 ms for one model)."""
    try:
        times = interleaved_model_times(models, side, threads, warmup, repeats)
    except (RuntimeError, GanslimError) as error:
        raise GanslimError(f"cannot time the models on a {side}x{side} image ({first_line(error)}): pass a "
                           f"--latency-size they accept (e.g. 256)") from None
    return Latency(side, threads, warmup, repeats, {label: LatencyStats.of(ms) for label, ms in times.items()})


def open_run_data(run: ReportRun, model: nn.Module, direction: str, max_images: int) -> EvalData:
    """The first ``max_images`` images of the run's split, with ``direction``'s side as the input of ``model``."""
    from ganslim.measure.evaluate import open_eval_data
    from ganslim.signature import input_channels, output_channels

    channels = input_channels(model)
    return open_eval_data(run.data, split=run.split or "test", size=run.size, direction=direction,
                          input_nc=channels, output_nc=output_channels(model, run.size),
                          max_images=max_images)


def quick_quality(run: ReportRun, models: Mapping[str, nn.Module], max_images: int,
                  device: torch.device) -> Quality:
    """PSNR / SSIM against the targets (paired data) of every model that takes the run's input side; each student
    also against the first teacher's outputs (``psnr_teacher`` / ``ssim_teacher``, unpaired data too)."""
    from ganslim.measure.evaluate import evaluate_generator

    direction = run.models[0].direction
    teacher = next((m for m in run.models if m.role != STUDENT and m.direction == direction), None)
    data = open_run_data(run, models[run.models[0].label], direction, max_images)
    # Unpaired data has no targets: only a student, against its teacher, has something to score.
    scored = [m for m in run.models if m.direction == direction
              and (data.paired or (m.role == STUDENT and teacher is not None))]
    metrics = {}
    for entry in scored:
        reference = models[teacher.label] if entry.role == STUDENT and teacher is not None else None
        result = evaluate_generator(models[entry.label], data, metrics=("psnr", "ssim"), teacher=reference,
                                    device=device, progress=False)
        metrics[entry.label] = dict(result.metrics)
    return Quality(metrics, data.describe())


def grid_images(run: ReportRun, grid: Grid, models: Mapping[str, nn.Module], num_images: int,
                device: torch.device) -> tuple[list[tuple[str, Tensor]], str]:
    """(column label, images (N, C, H, W) in [-1, 1] on the CPU) of ``grid``, the target last on paired data;
    and which images they are, in words."""
    first = next(column.chain[0] for column in grid.columns if column.chain)
    data = open_run_data(run, models[first], grid.direction, num_images)
    items = [data.inputs[i] for i in range(len(data.inputs))]
    inputs = torch.stack([item["A"] for item in items]).to(device)
    columns = []
    with torch.inference_mode():
        for column in grid.columns:
            images = inputs
            for label in column.chain:
                images = models[label](images)
            columns.append((column.label, images.float().cpu().clamp(-1, 1)))
    if data.paired:
        columns.append(("target", torch.stack([item["B"] for item in items])))
    return columns, data.describe()

