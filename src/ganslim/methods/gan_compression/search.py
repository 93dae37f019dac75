"""GAN Compression's search stage: score sub-networks of a trained supernet under a budget, without retraining.

The candidates are scored by :mod:`.scoring` (extracted, BatchNorm recalibrated, scored on held-out *training*
images) and searched by :class:`ganslim.compress.search.Search` under the budget (:func:`search_budget`): MACs
(``budget_macs``, e.g. ``3G``, in ``macs_convention``) and/or the latency of the compact model on this machine
(``budget_ms`` at ``size`` x ``size`` with ``threads`` CPU threads, and/or ``budget_speedup`` over the teacher timed
the same way, which spares the user a figure that depends on the machine). A timing the search doubts is timed again
with ``_RETIME_REPEATS`` times the repeats. A budget that even the smallest sub-network misses is refused before any
work.

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
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ganslim.archs.spade import SuperMobileSPADEGenerator
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.atomic import atomic_write_text
from ganslim.checkpoints import load_generator
from ganslim.compress import SearchSpace, extract_subnet
from ganslim.compress.latency import PROCESS_WARMUP_S, LatencyTable, LatencyTimer, span_timer
from ganslim.compress.search import (
    DISAGREEMENT,
    LOWER_IS_BETTER,
    Budget,
    Search,
    config_key,
    extend_bar,
    format_macs,
    parse_macs,
    restart_bar,
)
from ganslim.compress.spade_space import SpadeSearchSpace
from ganslim.config import option
from ganslim.engine import distributed as ddp
from ganslim.engine.logging import RunLogger
from ganslim.engine.runs import open_run_dir, write_config
from ganslim.errors import GanslimError
from ganslim.measure.profile import measure_peak_gflops
from ganslim.methods.gan_compression.config import DistillConfig, search_space
from ganslim.methods.gan_compression.family import StudentFamily, family_of_model
from ganslim.methods.gan_compression.networks import find_supernet
from ganslim.methods.gan_compression.scoring import METRICS, build_scorer

METHOD = "gan-compression-search"
PROGRESS_FILE = "candidates.jsonl"
TABLE_JSON = "candidates.json"
TABLE_CSV = "candidates.csv"
RESULT_FILE = "result.json"
_RETIME_REPEATS = 3  # a timing done again takes this many times the repeats
Supernet = SuperMobileResnetGenerator | SuperMobileSPADEGenerator


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



def search_budget(config: SearchConfig) -> Budget:
    """The budget ``config`` sets (``budget_macs``, ``budget_ms``, ``budget_speedup``); none given is an error."""
    if not (config.budget_macs or config.budget_ms or config.budget_speedup):
        raise GanslimError("no budget given: pass --budget-macs (e.g. 3G), --budget-ms (e.g. 20) or "
                           "--budget-speedup (e.g. 10)")
    return Budget(parse_macs(config.budget_macs) if config.budget_macs else None, config.macs_convention,
                  config.budget_ms or None, config.size, config.threads or None, config.budget_macs,
                  config.budget_speedup or None)


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


def check_budget(config: SearchConfig, supernet: Supernet, latency: Callable[[nn.Module], float] | None = None
                 ) -> None:
    """Refuse (GanslimError) a budget that the smallest sub-network of ``supernet``'s space misses.

    Only widths matter, so an untrained supernet built from the teacher checks a budget before training.
    """
    family = family_of_model(supernet)
    budget = dataclasses.replace(search_budget(config), input_label=family.size_label(supernet, config.size))
    measure = latency or _timer(config, budget, supernet)
    budget = _speedup_as_latency(config, budget, measure, family)
    Search(search_space(config, supernet), budget, lambda channels: {}, _compact_latency(supernet, measure),
           "psnr").check_feasible()


def _speedup_as_latency(config: SearchConfig, budget: Budget, measure: Callable[[nn.Module], float],
                        family: StudentFamily) -> Budget:
    """``budget`` with a speed-up over the teacher turned into ms, the teacher timed by ``measure``."""
    if budget.speedup is None:
        return budget
    if not config.teacher:
        raise GanslimError("--budget-speedup is relative to the teacher: pass --teacher (or use --budget-ms)")
    return budget.with_teacher(measure(family.load_teacher(config, torch.device("cpu")).model))


def _timer(config: SearchConfig, budget: Budget, supernet: Supernet) -> LatencyTimer:
    """The CPU timer of a search, referenced to the smallest sub-network of its space, on the family's input."""
    smallest = extract_subnet(supernet, search_space(config, supernet).smallest()).cpu()
    example = family_of_model(supernet).example_input(smallest, config.size)
    return LatencyTimer(smallest, config.size, budget.threads, config.latency_repeats, example=example)


def _compact_latency(supernet: Supernet, measure: Callable[[nn.Module], float]
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


def _timing(config: SearchConfig, budget: Budget, supernet: Supernet, space: SearchSpace | SpadeSearchSpace,
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
        log.message(f"{METHOD}: timing on {threads} CPU thread(s) at {budget.input}, after a "
                    f"{PROCESS_WARMUP_S:g} s warm-up of the process")
        restart_bar(log.bar, "latency: warm-up", "timing", None)
        timer.settle()
        peak = measure_peak_gflops(threads=budget.threads)
        log.message(f"{METHOD}: this machine's fp32 peak is {peak:.0f} GFLOP/s on {threads} thread(s); a timing "
                    f"faster than a candidate's MACs allow, or {DISAGREEMENT:g}x off its prediction, is timed "
                    f"again with {_RETIME_REPEATS}x the repeats")
    if budget.speedup is not None:
        restart_bar(log.bar, "latency: teacher", "timing", None)
    budget = _speedup_as_latency(config, budget, measure, family_of_model(supernet))
    predictor = None
    if budget.ms is not None and isinstance(space, SearchSpace):  # spans of a mobile ResNet; SPADE: timed whole
        time_span = (lambda span, image: latency(span)) if latency else span_timer(budget.threads,
                                                                                     config.latency_repeats)
        predictor = LatencyTable(space, config.size, time_span)
    return budget, _Timing(_compact_latency(supernet, measure), _compact_latency(supernet, retime), predictor, peak)


def _fill_spans(predictor: LatencyTable, log: RunLogger) -> None:
    """Time every span of the space not yet in ``predictor``'s table, counting them on the bar."""
    missing = predictor.missing_spans()
    restart_bar(log.bar, "latency: spans", "span", len(missing))
    predictor.fill(on_span=lambda: log.bar.update(1))


def run_search(config: SearchConfig, *, resume: str | os.PathLike | None = None, progress: bool = True,
               latency: Callable[[nn.Module], float] | None = None) -> SearchResult:
    """Search ``config.supernet`` under the configured budget; a new run folder or ``resume`` one.

    ``latency`` (compact model -> ms) replaces the CPU measurement (tests, or another device's timer).
    """
    started = time.perf_counter()
    with ddp.distributed_session(config.device) as (info, device):
        return _run(config, resume, progress, latency, info, device, started)


def _run(config: SearchConfig, resume, progress: bool, latency, info: ddp.DistInfo, device: torch.device,
         started: float) -> SearchResult:
    supernet_file = find_supernet(config.supernet)
    supernet = load_generator(supernet_file).model.to(device).eval()
    family = family_of_model(supernet)
    config = family.resolve_defaults(config)
    budget = dataclasses.replace(search_budget(config), input_label=family.size_label(supernet, config.size))
    space = search_space(config, supernet)
    run_dir = open_run_dir(info, config, METHOD, resume, f"'ganslim compress {METHOD}'")
    if info.is_main and resume is not None:
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
                        on_stage=lambda label: restart_bar(log.bar, label, "candidate", 0),
                        on_pending=lambda count: extend_bar(log.bar, count))
        if budget.ms is not None:
            restart_bar(log.bar, "latency: smallest sub-network", "timing", None)
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
                  "metric": metric, "maximize": metric not in LOWER_IS_BETTER, "strategy": strategy,
                  "size": config.size, "space": [list(w) for w in space.candidates], "space_size": space.size()}
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
