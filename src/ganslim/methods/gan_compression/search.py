"""GAN Compression's search without retraining: score sub-networks of a trained supernet under a budget.

Every candidate configuration is extracted from the supernet as a compact ``mobile_resnet``, its BatchNorm
statistics are recalibrated on a few training batches (when the norm is batch: the supernet's running
statistics belong to no sub-network in particular), and it is scored on the held-out *training* images
(never the test split) with the task's metric:

* paired data: ``psnr`` (default) or ``ssim`` vs the ground truth;
* unpaired data: ``fid`` against the training B images when the Inception weights are available
  (``ganslim.metrics.load_inception``), otherwise ``psnr_teacher``, the fidelity to the teacher's output.

The budget is MACs (``budget_macs``, e.g. ``3G``, in the ``published`` torchprofile convention or ``true``
multiply-adds, predicted without running the model) and/or the measured latency of the compact model on this
machine (``budget_ms`` at ``size`` x ``size`` with ``threads`` CPU threads, and/or ``budget_speedup`` over the
teacher timed the same way, which spares the user a figure that depends on the machine); a candidate must meet
every budget given. Under a latency budget a :class:`~ganslim.compress.latency.LatencyTable` predicts each
proposal from its timed spans; only those predicted within the budget are timed as whole models, and a
candidate fits when its timing is within the budget too. A timing more than ``_DISAGREEMENT`` times off its
prediction, or faster than the machine's fp32 peak (measured at the start) allows for the candidate's true
MACs, is timed again with ``_RETIME_REPEATS`` times the repeats, and the second timing counts (both are kept).
A budget that even the smallest sub-network misses is refused before any work. Small spaces
(after the budget) are searched exhaustively; larger ones by evolution (population, the best ``parents``
fraction kept, the rest made by mutation and crossover of parents, over-budget children rejected), as in
the paper.

A search run folder holds ``config.yaml``, ``candidates.jsonl`` (one line per scored or measured
candidate, appended as the search goes: a restarted search reads it and skips those candidates),
``candidates.json`` / ``candidates.csv`` (the full table, best first; ``latency_first_ms`` and ``retimed``
hold a doubted first timing and the doubt) and ``result.json`` (the choice). The progress bar counts the spans
to time, then the candidates to evaluate in each stage (the exhaustive pass, each generation).
Under ``torchrun`` the candidates of each round are shared out across ranks and the rows gathered;
rank 0 writes the files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate
from tqdm import tqdm

from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.atomic import atomic_write_text
from ganslim.checkpoints import load_generator
from ganslim.compress import SearchSpace, extract_subnet
from ganslim.compress.latency import PROCESS_WARMUP_S, LatencyTable, LatencyTimer, span_timer
from ganslim.config import option
from ganslim.engine import distributed as ddp
from ganslim.engine.logging import RunLogger
from ganslim.engine.runs import CONFIG_FILE, create_run_dir, run_label, write_config
from ganslim.errors import GanslimError
from ganslim.measure.evaluate import find_inception_weights
from ganslim.metrics import compute_fid_kid, extract_features, load_inception
from ganslim.methods.gan_compression.distill import (
    DistillConfig,
    data_kind,
    find_supernet,
    holdout_items,
    image_metrics,
    load_teacher,
    resolve_defaults,
    search_space,
    train_split,
    training_items,
)
from ganslim.measure.profile import measure_peak_gflops

logger = logging.getLogger(__name__)

METHOD = "gan-compression-search"
PROGRESS_FILE = "candidates.jsonl"
TABLE_JSON = "candidates.json"
TABLE_CSV = "candidates.csv"
RESULT_FILE = "result.json"
METRICS = ("auto", "psnr", "ssim", "fid", "psnr_teacher")
_LOWER_IS_BETTER = {"fid"}
_PROPOSALS_PER_SLOT = 200  # proposals drawn per wanted candidate before giving up (each check ~0.05 ms)
_ENUMERATE_LIMIT = 20_000  # spaces up to this size are enumerated (~0.1 ms each) to count what fits a MACs budget
_ROUND = 8  # candidates per rank between two writes of the progress file
_DISAGREEMENT = 2.0  # a timing this many times off its prediction is timed again
_RETIME_REPEATS = 3  # a timing done again takes this many times the repeats
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


@dataclass(frozen=True)
class SearchConfig(DistillConfig):
    """Options of the search (plus the distillation options, which describe the supernet and its data)."""

    budget_macs: str = option("", "MACs budget of one size x size image, e.g. 3G or 500M ('': none)")
    macs_convention: str = option("published", "MACs convention of budget_macs: published (torchprofile, as "
                                                "the papers) or true multiply-adds", choices=("published", "true"))
    budget_ms: float = option(0.0, "latency budget in milliseconds, measured on this machine's CPU (0: none); "
                                   "a candidate must meet every budget given", min=0.0)
    budget_speedup: float = option(0.0, "latency budget as a speed-up over the teacher on this machine's CPU, "
                                        "e.g. 10; the teacher is timed like the candidates (0: none)", min=0.0)
    size: int = option(256, "image side for the MACs and latency budgets", min=8)
    threads: int = option(0, "CPU threads when measuring latency (0: torch's current count)", min=0)
    latency_repeats: int = option(10, "timed runs per latency measurement (the median is used)", min=1)
    metric: str = option("auto", "what to maximise (fid: minimise); auto: psnr for paired data, fid for "
                                 "unpaired with Inception weights, else psnr_teacher", choices=METRICS)
    inception_weights: str = option("", "FID Inception weights file ('': $GANSLIM_INCEPTION_WEIGHTS, then "
                                        "~/.cache/ganslim/pt_inception-2015-12-05-6726825d.pth)")
    strategy: str = option("auto", "auto: exhaustive when at most exhaustive_limit sub-networks fit the budget, "
                                   "else evolution", choices=("auto", "exhaustive", "evolution"))
    exhaustive_limit: int = option(500, "largest number of sub-networks searched exhaustively (auto)", min=1)
    population: int = option(100, "evolution: population size", min=2)
    parents: float = option(0.25, "evolution: fraction of the population kept as parents", above=0.0, max=1.0)
    mutation: float = option(0.5, "evolution: fraction of the population made by mutation (the rest of the "
                                  "children by crossover)", min=0.0, max=1.0)
    mutation_prob: float = option(0.2, "evolution: probability that a mutation redraws each width",
                                  above=0.0, max=1.0)
    generations: int = option(10, "evolution: generations after the initial population", min=0)
    recalibration_batches: int = option(10, "training batches that recalibrate BatchNorm statistics per "
                                            "candidate (batch norm only)", min=1)
    eval_images: int = option(0, "score candidates on at most this many held-out images (0: all)", min=0)

    def check(self) -> None:
        super().check()
        if self.budget_macs:
            parse_macs(self.budget_macs)


# ------------------------------------------------------------------------------------------ budgets


def parse_macs(text: str) -> int:
    """``"3G"`` -> 3_000_000_000; ``"500M"``, ``"1.5e9"``, ``"2.5g"`` likewise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*(?:MACs?)?\s*", str(text))
    if not match:
        raise GanslimError(f"budget '{text}' is not a MACs count: write e.g. 3G, 500M or 2.5e9")
    value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if value <= 0:
        raise GanslimError(f"budget '{text}' must be positive: write e.g. 3G")
    return int(value)


def format_macs(value: float) -> str:
    """1_408_000_000 -> ``"1.41G"``; 500e6 -> ``"500M"``."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class Budget:
    """What a sub-network may cost: MACs in one convention and/or CPU latency in ms (None: no limit).

    A ``speedup`` over the teacher becomes a latency once the teacher is timed (:meth:`with_teacher`).
    """

    macs: int | None = None
    convention: str = "published"
    ms: float | None = None
    size: int = 256
    threads: int | None = None
    macs_text: str = ""  # the budget as the user wrote it (e.g. 0.5G), for messages
    speedup: float | None = None
    teacher_ms: float | None = None
    ms_given: float | None = None  # --budget-ms when a speed-up was given too (``ms`` is then the stricter)

    @property
    def macs_label(self) -> str:
        return self.macs_text.strip() or format_macs(self.macs)

    @classmethod
    def from_config(cls, config: SearchConfig) -> Budget:
        if not (config.budget_macs or config.budget_ms or config.budget_speedup):
            raise GanslimError("no budget given: pass --budget-macs (e.g. 3G), --budget-ms (e.g. 20) or "
                               "--budget-speedup (e.g. 10)")
        return cls(parse_macs(config.budget_macs) if config.budget_macs else None, config.macs_convention,
                   config.budget_ms or None, config.size, config.threads or None, config.budget_macs,
                   config.budget_speedup or None)

    def with_teacher(self, teacher_ms: float) -> Budget:
        """This budget with its speed-up over a teacher timed at ``teacher_ms`` turned into ``ms`` (with a
        ``ms`` budget as well, the stricter of the two: a candidate must meet both)."""
        ms = teacher_ms / self.speedup
        return dataclasses.replace(self, ms=ms if self.ms is None else min(self.ms, ms), teacher_ms=teacher_ms,
                                   ms_given=self.ms)

    @property
    def ms_label(self) -> str:
        if self.teacher_ms is None:
            return f"{self.ms:.3g} ms"
        relative = f"{self.speedup:g}x faster than the teacher's {self.teacher_ms:.3g} ms"
        if self.ms_given is None:
            return f"{self.ms:.3g} ms ({relative})"
        return (f"{self.ms:.3g} ms (the stricter of {self.ms_given:.3g} ms and {relative}, "
                f"{self.teacher_ms / self.speedup:.3g} ms)")

    def macs_of(self, row: dict) -> int:
        """The row's MACs in this budget's convention."""
        return row["macs_published"] if self.convention == "published" else row["macs"]

    def describe(self) -> str:
        parts = []
        if self.macs is not None:
            parts.append(f"{self.macs_label} MACs ({self.convention})")
        if self.ms is not None:
            parts.append(f"{self.ms_label} on {self.threads or torch.get_num_threads()} CPU thread(s)")
        return " and ".join(parts) + f" at {self.size}x{self.size}"


# ------------------------------------------------------------------------------------------ BatchNorm


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Recompute every BatchNorm's running statistics as the plain average over ``batches``; eval mode after.

    Only the BatchNorm layers run in training mode (dropout and the rest stay in eval mode); each layer's
    statistics are reset first and accumulated with ``momentum=None`` (a cumulative average), then its
    momentum is restored. ``batches`` are (N, C, H, W) inputs. Returns ``model``.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    model.eval()
    if not norms:
        return model
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        for images in batches:
            model(images)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return model


# ------------------------------------------------------------------------------------------ scoring


def config_key(channels: Sequence[int]) -> str:
    """``[16, 32, 64]`` -> ``"16_32_64"`` (a table key and CSV cell)."""
    return "_".join(str(int(c)) for c in channels)


class CandidateScorer:
    """Extracts, recalibrates and scores sub-networks of a supernet on held-out training images.

    Args:
        supernet: the trained supernet (on ``device``, left unchanged).
        eval_batches: held-out batches ``{"A", "B", "split", "teacher"?}`` on ``device``.
        calibration: (N, C, H, W) training inputs for BatchNorm recalibration (unused without batch norm).
        paired: whether B is the ground truth of A.
        inception: FID feature extractor and ``real_features`` (N, 2048) of real B images, or None.
    """

    def __init__(self, supernet: SuperMobileResnetGenerator, eval_batches: list[dict],
                 calibration: list[torch.Tensor], paired: bool, inception: nn.Module | None = None,
                 real_features: np.ndarray | None = None) -> None:
        self.supernet, self.eval_batches, self.calibration = supernet, eval_batches, calibration
        self.paired, self.inception, self.real_features = paired, inception, real_features

    def compact(self, channels: Sequence[int]) -> MobileResnetGenerator:
        """The sub-network as a standalone model, BatchNorm recalibrated, in eval mode."""
        model = extract_subnet(self.supernet, channels)
        if self.supernet.norm == "batch":
            recalibrate_batchnorm(model, self.calibration)
        return model.eval()

    @torch.no_grad()
    def score(self, model: nn.Module) -> dict[str, float]:
        """The metrics of a compact model (see the module docstring)."""
        metrics = image_metrics(model, None, self.eval_batches, self.paired)
        metrics = {key: value for key, value in metrics.items() if not key.startswith("val_")}
        if not self.paired:
            metrics.pop("psnr", None)  # the same number as psnr_teacher for unpaired data
        if self.inception is not None:
            fakes = (model(batch["A"]).float() for batch in self.eval_batches)
            metrics["fid"] = compute_fid_kid(fakes, self.real_features, self.inception, kid=False).fid
        return metrics


# ------------------------------------------------------------------------------------------ the search


@dataclass
class SearchResult:
    """What a finished search reports."""

    run_dir: Path
    best: dict
    strategy: str
    metric: str
    evaluated: int
    fitting: int
    rows: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        best = self.best
        cost = f"{format_macs(best['macs_published'])} MACs published ({format_macs(best['macs'])} true)"
        if best.get("latency_ms") is not None:
            cost += f", {best['latency_ms']:.2f} ms"
        return (f"{METHOD}: {self.strategy} over {self.evaluated} candidates ({self.fitting} within budget); best "
                f"{config_key(best['channels'])}: {self.metric} {best['score']:.4g}, {cost}; run folder {self.run_dir}")


class Search:
    """The candidate table and the strategies over it; see the module docstring.

    Args:
        space: the candidate widths.
        budget: the limit a candidate must meet.
        evaluate: ``channels -> metrics`` (scores a candidate known to fit the budget).
        latency: ``channels -> ms`` (only called for latency budgets).
        metric: the metric in ``evaluate``'s output to optimise (``fid`` is minimised).
        info: rank and world size; rows of a round are gathered from every rank.
        rows: rows already known (a resumed search), keyed by ``config_key``.
        on_rows: called with each round's new rows (rank 0 appends them to the progress file).
        predictor: latency predictions from timed spans (latency budgets).
        retime: ``channels -> ms``, a more careful timing for a doubted one (default: ``latency`` again).
        peak_gflops: the machine's fp32 peak; a timing that implies more is doubted.
        on_stage: called with a label when a stage of the search starts (the exhaustive pass, a generation).
        on_pending: called with the number of candidates about to be computed.
    """

    def __init__(self, space: SearchSpace, budget: Budget, evaluate: Callable[[list[int]], dict[str, float]],
                 latency: Callable[[list[int]], float] | None, metric: str, info: ddp.DistInfo = ddp.DistInfo(),
                 rows: dict[str, dict] | None = None, on_rows: Callable[[list[dict]], None] | None = None,
                 predictor: LatencyTable | None = None, *, retime: Callable[[list[int]], float] | None = None,
                 peak_gflops: float | None = None, on_stage: Callable[[str], None] | None = None,
                 on_pending: Callable[[int], None] | None = None) -> None:
        self.space, self.budget, self.evaluate_fn, self.latency_fn = space, budget, evaluate, latency
        self.predictor, self.retime_fn, self.peak_gflops = predictor, retime or latency, peak_gflops
        self.metric, self.info = metric, info
        self.on_rows = on_rows or (lambda rows: None)
        self.on_stage = on_stage or (lambda label: None)
        self.on_pending = on_pending or (lambda count: None)
        self.sign = -1.0 if metric in _LOWER_IS_BETTER else 1.0
        self.rows: dict[str, dict] = {}
        for key, row in (rows or {}).items():  # judged again: a resumed search may have another budget or metric
            if self.budget.ms is not None and row.get("latency_ms") is None:
                continue  # measured again
            fits = self._fits(row)
            if fits and self.metric not in (row.get("metrics") or {}):
                continue  # scored again
            self.rows[key] = {**row, "fits": fits, "score": row["metrics"][self.metric] if fits else None}

    # -------------------------------------------------------------- costs

    def macs(self, channels: Sequence[int]) -> dict[str, int]:
        count = self.space.predict_macs(channels, self.budget.size)
        return {"macs": count.macs, "macs_published": count.macs_published}

    def fits_macs(self, channels: Sequence[int]) -> bool:
        if self.budget.macs is None:
            return True
        return self.budget.macs_of(self.macs(channels)) <= self.budget.macs

    def may_fit(self, channels: Sequence[int]) -> bool:
        """The cheap check before measuring: the MACs budget, and the predicted latency (when predicted)."""
        if not self.fits_macs(channels):
            return False
        if self.budget.ms is None or self.predictor is None:
            return True
        return self.predictor.predict(channels) <= self.budget.ms

    def _fits(self, row: dict) -> bool:
        """Whether a row with MACs (and, for latency budgets, ``latency_ms``) meets the budget.

        Under a latency budget the prediction (when the row has one) must fit too: on a busy machine one
        timing can land in a quiet moment, and two independent estimates rarely err the same way.
        """
        macs_ok = self.budget.macs is None or self.budget.macs_of(row) <= self.budget.macs
        if self.budget.ms is None:
            return macs_ok
        predicted = row.get("latency_predicted_ms")
        return macs_ok and row["latency_ms"] <= self.budget.ms and (predicted is None or predicted <= self.budget.ms)

    def check_feasible(self) -> None:
        """Refuse a budget that even the smallest sub-network misses, naming what it costs."""
        smallest = self.space.smallest()
        if self.budget.macs is not None and not self.fits_macs(smallest):
            cost = self.budget.macs_of(self.macs(smallest))
            raise GanslimError(f"budget {self.budget.macs_label} MACs is below the smallest sub-network "
                               f"({format_macs(cost)} {self.budget.convention}): raise the budget")
        if self.budget.ms is not None:
            key = config_key(smallest)
            ms = self.rows[key]["latency_ms"] if key in self.rows else self.latency_fn(smallest)
            if self.predictor is not None:
                self.predictor.observe(smallest, ms)
            if ms > self.budget.ms:
                raise GanslimError(
                    f"budget {self.budget.ms_label} is below the smallest sub-network's latency ({ms:.3g} ms at "
                    f"{self.budget.size}x{self.budget.size} on {self.budget.threads or torch.get_num_threads()} "
                    f"CPU thread(s) of this machine): raise the budget")

    # -------------------------------------------------------------- evaluation

    def _row(self, channels: list[int]) -> dict:
        """Measure (latency budgets) and, when it fits, score one candidate."""
        row = {"channels": list(channels), **self.macs(channels), "latency_ms": None}
        if self.budget.ms is not None:
            self._time(row)
        row["fits"] = self._fits(row)
        row["metrics"] = self.evaluate_fn(channels) if row["fits"] else None
        row["score"] = row["metrics"][self.metric] if row["fits"] else None
        return row

    def _time(self, row: dict) -> None:
        """Set the row's ``latency_ms`` (and ``latency_predicted_ms``); a timing its prediction or the machine's
        peak doubts is timed again, and the second timing counts (the first is kept as ``latency_first_ms``,
        the doubt as ``retimed``)."""
        channels = row["channels"]
        row["latency_ms"] = float(self.latency_fn(channels))
        if self.predictor is not None:
            row["latency_predicted_ms"] = self.predictor.predict(channels)
        doubt = self._doubt(row)
        if doubt is not None:
            row.update(latency_first_ms=row["latency_ms"], latency_ms=float(self.retime_fn(channels)), retimed=doubt)
        if self.predictor is not None:
            self.predictor.observe(channels, row["latency_ms"])

    def _doubt(self, row: dict) -> str | None:
        """Why the row's timing is not credible (None: it is): over ``_DISAGREEMENT`` times off its prediction,
        or faster than the machine's fp32 peak allows for its true MACs."""
        ms, predicted = row["latency_ms"], row.get("latency_predicted_ms")
        if predicted is not None and max(ms / predicted, predicted / ms) > _DISAGREEMENT:
            return f"{ms:.3g} ms measured vs {predicted:.3g} ms predicted"
        gflops = 2 * row["macs"] / ms / 1e6
        if self.peak_gflops is not None and gflops > self.peak_gflops:
            return (f"{ms:.3g} ms is {gflops:.0f} GFLOP/s, above this machine's fp32 peak of "
                    f"{self.peak_gflops:.0f} GFLOP/s")
        return None

    def evaluate(self, candidates: Sequence[Sequence[int]]) -> list[dict]:
        """The rows of ``candidates`` (in order), computing the unknown ones across ranks, round by round."""
        pending, seen = [], set(self.rows)
        for channels in candidates:
            key = config_key(channels)
            if key not in seen:
                pending.append(list(channels))
                seen.add(key)
        if pending:
            self.on_pending(len(pending))
        per_round = _ROUND * self.info.world_size
        for start in range(0, len(pending), per_round):
            chunk = pending[start:start + per_round]
            mine = ddp.shard_indices(list(range(len(chunk))), self.info)
            local = [self._row(chunk[i]) for i in mine]
            new = {config_key(row["channels"]): row for rows in ddp.gather_objects(self.info, local) for row in rows}
            ordered = [new[config_key(c)] for c in chunk]
            self.rows.update((config_key(row["channels"]), row) for row in ordered)
            self.on_rows(ordered)
        return [self.rows[config_key(c)] for c in candidates]

    def better(self, row: dict) -> float:
        """Sort key: larger is better (fid negated)."""
        return self.sign * row["score"]

    def ranked(self) -> list[dict]:
        """Every row, the scored ones first from best to worst, then those over budget."""
        scored = [row for row in self.rows.values() if row["score"] is not None and not math.isnan(row["score"])]
        rest = [row for row in self.rows.values() if row["score"] is None or math.isnan(row["score"])]
        return sorted(scored, key=self.better, reverse=True) + rest

    def best(self) -> dict:
        ranked = self.ranked()
        if not ranked or ranked[0]["score"] is None or math.isnan(ranked[0]["score"]):
            raise GanslimError("no sub-network met the budget and scored a number: raise the budget")
        return ranked[0]

    # -------------------------------------------------------------- strategies

    def choose_strategy(self, requested: str, limit: int) -> tuple[str, list[list[int]] | None]:
        """``(strategy, candidates for an exhaustive search)``, as ``requested`` or decided by size."""
        size = self.space.size()
        if requested == "evolution":
            return "evolution", None
        if requested == "exhaustive" or size <= limit:
            return "exhaustive", [c for c in self.space.enumerate() if self.fits_macs(c)]
        if (self.budget.ms is None or self.predictor is not None) and size <= _ENUMERATE_LIMIT:
            fitting = [c for c in self.space.enumerate() if self.may_fit(c)]
            if len(fitting) <= limit:
                return "exhaustive", fitting
        return "evolution", None

    def exhaustive(self, candidates: list[list[int]]) -> dict:
        self.on_stage("exhaustive")
        self.evaluate(candidates)
        return self.best()

    def _fill(self, propose: Callable[[], list[int]], count: int, taken: set[str]) -> list[list[int]]:
        """Up to ``count`` new in-budget configurations from ``propose``, not in ``taken``.

        Candidates over a MACs budget, or predicted over a latency budget, are rejected unmeasured; the others
        over a latency budget after measuring. The proposals depend only on the random generator, so a
        restarted search replays the same ones.
        """
        chosen: list[list[int]] = []
        attempts, max_attempts = 0, _PROPOSALS_PER_SLOT * max(count, 1)
        while len(chosen) < count and attempts < max_attempts:
            proposals, keys = [], set()
            while len(proposals) < count - len(chosen) and attempts < max_attempts:
                channels = propose()
                attempts += 1
                key = config_key(channels)
                if key in taken or key in keys or not self.may_fit(channels):
                    continue
                proposals.append(channels)
                keys.add(key)
            for row in self.evaluate(proposals):
                if row["fits"]:
                    chosen.append(row["channels"])
                    taken.add(config_key(row["channels"]))
        return chosen

    def _mutate(self, rng: random.Random, parent: list[int], prob: float) -> list[int]:
        return [rng.choice(widths) if rng.random() < prob else width
                for width, widths in zip(parent, self.space.candidates)]

    @staticmethod
    def _crossover(rng: random.Random, first: list[int], second: list[int]) -> list[int]:
        return [a if rng.random() < 0.5 else b for a, b in zip(first, second)]

    def evolution(self, rng: random.Random, population: int, parents: float, mutation: float,
                  mutation_prob: float, generations: int) -> dict:
        """The paper's evolutionary search; returns the best row seen.

        A tight budget that few random configurations meet gets the rest of its first population from
        mutations of the smallest configuration (which met the budget in ``check_feasible``).
        """
        taken: set[str] = set()
        self.on_stage(f"generation 0/{generations}")
        current = self._fill(lambda: self.space.sample(rng), population, taken)
        if len(current) < population:
            smallest = self.space.smallest()
            current += self._fill(lambda: self._mutate(rng, smallest, mutation_prob), population - len(current),
                                  taken)
        if not current:
            raise GanslimError("no sub-network met the budget: raise the budget")
        keep = max(1, int(round(parents * population)))
        mutants = int(round(mutation * population))
        for generation in range(1, generations + 1):
            self.on_stage(f"generation {generation}/{generations}")
            ranked = sorted(current, key=lambda c: self.better(self.rows[config_key(c)]), reverse=True)
            elite = ranked[:keep]
            taken = {config_key(c) for c in elite}
            children = self._fill(lambda: self._mutate(rng, rng.choice(elite), mutation_prob),
                                  min(mutants, population - len(elite)), taken)
            children += self._fill(lambda: self._crossover(rng, rng.choice(elite), rng.choice(elite)),
                                   population - len(elite) - len(children), taken)
            current = elite + children
        return self.best()


# ------------------------------------------------------------------------------------------ files


def read_progress(path: Path) -> dict[str, dict]:
    """Rows of a progress file by ``config_key`` (a line cut short by a killed process is ignored)."""
    rows: dict[str, dict] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "channels" in row:
            rows[config_key(row["channels"])] = row
    return rows


def append_progress(path: Path, rows: list[dict]) -> None:
    """Append rows as JSON lines, flushed to disk."""
    if not rows:
        return
    with open(path, "a", encoding="utf-8") as handle:
        if handle.tell() and not path.read_bytes().endswith(b"\n"):
            handle.write("\n")  # after a line cut short by a killed process
        handle.write("".join(json.dumps(row) + "\n" for row in rows))
        handle.flush()
        os.fsync(handle.fileno())


def write_table(run_dir: Path, rows: list[dict], header: dict) -> None:
    """``candidates.json`` (header + rows) and ``candidates.csv`` (one row per candidate)."""
    atomic_write_text(json.dumps({**header, "rows": rows}, indent=1) + "\n", run_dir / TABLE_JSON)
    metric_names = sorted({key for row in rows for key in (row["metrics"] or {})})
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["rank", "channels", "fits", "score", "macs_published", "macs", "latency_ms",
                     "latency_predicted_ms", "latency_first_ms", "retimed", *metric_names])
    for rank, row in enumerate(rows, start=1):
        metrics = row["metrics"] or {}
        writer.writerow([rank, config_key(row["channels"]), row["fits"], _cell(row["score"]), row["macs_published"],
                         row["macs"], _cell(row["latency_ms"]), _cell(row.get("latency_predicted_ms")),
                         _cell(row.get("latency_first_ms")), row.get("retimed", ""),
                         *(_cell(metrics.get(name)) for name in metric_names)])
    atomic_write_text(text.getvalue(), run_dir / TABLE_CSV)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def read_result(path: str | os.PathLike) -> dict:
    """The ``result.json`` of a search run folder (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    if not path.is_file():
        raise GanslimError(f"search result '{path}' not found: pass a finished gan-compression-search run folder")
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ running it


def _batches(dataset, indices: Sequence[int], batch_size: int, device: torch.device) -> list[dict]:
    batches = []
    for start in range(0, len(indices), batch_size):
        batch = default_collate([dataset[i] for i in indices[start:start + batch_size]])
        batches.append({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
    return batches


def _resolve_metric(config: SearchConfig, paired: bool) -> tuple[str, nn.Module | None]:
    """The metric to optimise and, for FID, the Inception extractor."""
    metric = config.metric
    if metric == "auto":
        metric = "psnr" if paired else "fid"
    if paired and metric == "fid":
        raise GanslimError("metric fid is for unpaired data; paired data is scored against its ground truth: use "
                           "psnr or ssim")
    if not paired and metric in ("psnr", "ssim"):
        raise GanslimError(f"metric {metric} needs ground truth, which unpaired data lacks: use fid or psnr_teacher")
    if metric != "fid":
        return metric, None
    path, missing = find_inception_weights(config.inception_weights or None)
    if path is not None:
        return "fid", load_inception(path)
    if config.metric == "fid":
        raise GanslimError(f"metric fid needs the Inception network: {missing}")
    logger.warning("no FID (%s); scoring by fidelity to the teacher (psnr_teacher) instead", missing)
    return "psnr_teacher", None


def build_scorer(config: SearchConfig, supernet: SuperMobileResnetGenerator, device: torch.device
                 ) -> tuple[CandidateScorer, str]:
    """The scorer over the held-out training images and the metric it optimises."""
    paired = data_kind(config.data) == "paired"
    metric, inception = _resolve_metric(config, paired)
    holdout = holdout_items(config)
    count = len(holdout) if not config.eval_images else min(len(holdout), config.eval_images)
    eval_batches = _batches(holdout, range(count), config.batch_size, device)
    if config.teacher:
        teacher = load_teacher(config, device).model
        with torch.no_grad():
            for batch in eval_batches:
                batch["teacher"] = teacher(batch["A"]).float()
    elif not paired:
        raise GanslimError("unpaired data is scored against the teacher's outputs: pass --teacher")
    calibration: list[torch.Tensor] = []
    if supernet.norm == "batch":
        train = training_items(config)
        train.set_epoch(0)
        needed = min(len(train), config.recalibration_batches * config.batch_size)
        calibration = [batch["A"] for batch in _batches(train, range(needed), config.batch_size, device)]
    real_features = None
    if inception is not None:
        inception = inception.to(device)
        reals = train_split(config, train=False)
        reals.serial_batches = True  # item i holds B image i: each B image once
        count_b = len(reals.B_paths)
        reals_b = (default_collate([reals[i]["B"] for i in range(s, min(s + 16, count_b))]).to(device)
                   for s in range(0, count_b, 16))
        real_features = extract_features(reals_b, inception)
    return CandidateScorer(supernet, eval_batches, calibration, paired, inception, real_features), metric


def check_budget(config: SearchConfig, supernet: SuperMobileResnetGenerator,
                 latency: Callable[[nn.Module], float] | None = None) -> None:
    """Refuse (GanslimError) a budget that the smallest sub-network of ``supernet``'s space misses.

    Only widths matter, so an untrained supernet built from the teacher checks a budget before training.
    """
    budget = Budget.from_config(config)
    measure = latency or _timer(config, budget, supernet)
    budget = _speedup_as_latency(config, budget, measure)
    Search(search_space(config, supernet), budget, lambda channels: {}, _compact_latency(supernet, measure),
           "psnr").check_feasible()


def _speedup_as_latency(config: SearchConfig, budget: Budget, measure: Callable[[nn.Module], float]) -> Budget:
    """``budget`` with a speed-up over the teacher turned into ms, the teacher timed by ``measure``."""
    if budget.speedup is None:
        return budget
    if not config.teacher:
        raise GanslimError("--budget-speedup is relative to the teacher: pass --teacher (or use --budget-ms)")
    return budget.with_teacher(measure(load_teacher(config, torch.device("cpu")).model))


def _timer(config: SearchConfig, budget: Budget, supernet: SuperMobileResnetGenerator) -> LatencyTimer:
    """The CPU timer of a search, referenced to the smallest sub-network of its space."""
    smallest = extract_subnet(supernet, search_space(config, supernet).smallest()).cpu()
    return LatencyTimer(smallest, config.size, budget.threads, config.latency_repeats)


def _compact_latency(supernet: SuperMobileResnetGenerator, measure: Callable[[nn.Module], float]
                     ) -> Callable[[list[int]], float]:
    """``channels -> ms`` of the compact model extracted at ``channels``, on the CPU."""
    return lambda channels: measure(extract_subnet(supernet, channels).cpu().eval())


@dataclass(frozen=True)
class _Timing:
    """How a search times candidates: ``latency`` and ``retime`` (its more careful form), ``channels -> ms``;
    the span predictor and the machine's fp32 peak in GFLOP/s (None without a latency budget)."""

    latency: Callable[[list[int]], float]
    retime: Callable[[list[int]], float]
    predictor: LatencyTable | None = None
    peak_gflops: float | None = None


def _timing(config: SearchConfig, budget: Budget, supernet: SuperMobileResnetGenerator, space: SearchSpace,
            latency: Callable[[nn.Module], float] | None, log: RunLogger) -> tuple[Budget, _Timing]:
    """The budget with its speed-up turned into ms, and the timing of the search; shows what it times.

    With ``latency`` (a stand-in timer) there is no warm-up, peak or re-timing with more repeats.
    """
    timer = None if latency else _timer(config, budget, supernet)
    measure = latency or timer
    retime = measure if timer is None else partial(timer, repeats=_RETIME_REPEATS * config.latency_repeats)
    peak = None
    if timer is not None and (budget.ms is not None or budget.speedup is not None):
        threads = budget.threads or torch.get_num_threads()
        log.message(f"{METHOD}: timing on {threads} CPU thread(s) at {config.size}x{config.size}, after a "
                    f"{PROCESS_WARMUP_S:g} s warm-up of the process")
        _stage(log.bar, "latency: warm-up", "timing", None)
        timer.settle()
        peak = measure_peak_gflops(threads=budget.threads)
        log.message(f"{METHOD}: this machine's fp32 peak is {peak:.0f} GFLOP/s on {threads} thread(s); a timing "
                    f"faster than a candidate's MACs allow, or {_DISAGREEMENT:g}x off its prediction, is timed "
                    f"again with {_RETIME_REPEATS}x the repeats")
    if budget.speedup is not None:
        _stage(log.bar, "latency: teacher", "timing", None)
    budget = _speedup_as_latency(config, budget, measure)
    predictor = None
    if budget.ms is not None:
        time_span = (lambda span, image: latency(span)) if latency else span_timer(budget.threads,
                                                                                     config.latency_repeats)
        predictor = LatencyTable(space, config.size, time_span)
    return budget, _Timing(_compact_latency(supernet, measure), _compact_latency(supernet, retime), predictor, peak)


def _fill_spans(predictor: LatencyTable, log: RunLogger) -> None:
    """Time every span of the space not yet in ``predictor``'s table, counting them on the bar."""
    missing = predictor.missing_spans()
    _stage(log.bar, "latency: spans", "span", len(missing))
    predictor.fill(on_span=lambda: log.bar.update(1))


def _stage(bar: tqdm, label: str, unit: str, total: int | None) -> None:
    """Restart ``bar`` for one stage of the search: ``label``, counting ``unit`` up to ``total`` (None: unknown)."""
    bar.reset(total=total)
    bar.unit = unit
    bar.set_description(label)


def _extend(bar: tqdm, count: int) -> None:
    """``count`` more to do in the bar's stage."""
    bar.total = (bar.total or 0) + count
    bar.refresh()


def run_search(config: SearchConfig, *, resume: str | os.PathLike | None = None, progress: bool = True,
               latency: Callable[[nn.Module], float] | None = None) -> SearchResult:
    """Search ``config.supernet`` under the configured budget; a new run folder or ``resume`` one.

    ``latency`` (compact model -> ms) replaces the CPU measurement (tests, or another device's timer).
    """
    started = time.perf_counter()
    joined_here = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info, device = ddp.init_distributed(config.device)
    try:
        return _run(config, resume, progress, latency, info, device, started)
    finally:
        if joined_here:
            ddp.shutdown_distributed()


def _run(config: SearchConfig, resume, progress: bool, latency, info: ddp.DistInfo, device: torch.device,
         started: float) -> SearchResult:
    config = resolve_defaults(config)
    budget = Budget.from_config(config)
    supernet_file = find_supernet(config.supernet)
    supernet = load_generator(supernet_file).model.to(device).eval()
    space = search_space(config, supernet)
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / CONFIG_FILE).is_file():
            raise GanslimError(f"'{run_dir}' is not a search run folder (no {CONFIG_FILE}): pass the folder a "
                               f"gan-compression-search run made")
    else:
        run_dir = ddp.broadcast_object(info, create_run_dir(config.out_dir, run_label(METHOD, config))
                                       if info.is_main else None)
    run_dir = Path(run_dir)
    if info.is_main:
        write_config(run_dir, config, METHOD)
    known = ddp.broadcast_object(info, read_progress(run_dir / PROGRESS_FILE) if info.is_main else None)
    scorer, metric = build_scorer(config, supernet, device)
    log = RunLogger(run_dir, info.is_main, 0, 0, progress)
    rows_done = {"n": 0}

    def on_rows(rows: list[dict]) -> None:
        if info.is_main:
            append_progress(run_dir / PROGRESS_FILE, rows)
        for row in rows:
            rows_done["n"] += 1
            log.bar.update(1)
            if log.writer is not None and row["score"] is not None:
                log.writer.add_scalar(f"search/{metric}", row["score"], rows_done["n"])

    def evaluate(channels: list[int]) -> dict[str, float]:
        return scorer.score(scorer.compact(channels))

    try:
        budget, timing = _timing(config, budget, supernet, space, latency, log)
        search = Search(space, budget, evaluate, timing.latency, metric, info, known, on_rows, timing.predictor,
                        retime=timing.retime, peak_gflops=timing.peak_gflops,
                        on_stage=lambda label: _stage(log.bar, label, "candidate", 0),
                        on_pending=lambda count: _extend(log.bar, count))
        if budget.ms is not None:
            _stage(log.bar, "latency: smallest sub-network", "timing", None)
        search.check_feasible()
        if timing.predictor is not None:
            _fill_spans(timing.predictor, log)
        strategy, candidates = search.choose_strategy(config.strategy, config.exhaustive_limit)
        log.message(f"{METHOD}: {strategy} search of {space.size()} sub-networks of {supernet_file} under "
                    f"{budget.describe()}, scored by {metric} on {len(scorer.eval_batches)} batches of held-out "
                    f"training images" + (f"; {len(known)} candidates already done" if known else "")
                    + f"; run folder {run_dir}")
        if candidates is not None:
            best = search.exhaustive(candidates)
        else:
            rng = random.Random(config.seed)
            best = search.evolution(rng, config.population, config.parents, config.mutation, config.mutation_prob,
                                    config.generations)
        rows = search.ranked()
        fitting = sum(1 for row in rows if row["fits"])
        header = {"method": METHOD, "supernet": str(supernet_file), "budget": dataclasses.asdict(budget),
                  "metric": metric, "maximize": metric not in _LOWER_IS_BETTER, "strategy": strategy, "size": config.size,
                  "space": [list(w) for w in space.candidates], "space_size": space.size()}
        result = {**best, "metric": metric, "strategy": strategy, "supernet": str(supernet_file),
                  "budget": dataclasses.asdict(budget), "size": config.size, "seconds": time.perf_counter() - started}
        if info.is_main:
            write_table(run_dir, rows, header)
            atomic_write_text(json.dumps(result, indent=1) + "\n", run_dir / RESULT_FILE)
        ddp.barrier(info)
        found = SearchResult(run_dir, best, strategy, metric, len(rows), fitting, rows)
        log.message(found.summary())
        return found
    finally:
        log.close()
