"""Searching a channel space under a budget, whatever scores the candidates: budgets, the candidate table and the
strategies over it (exhaustive, evolutionary), shared out across ranks.

A :class:`Budget` is MACs (in the ``published`` torchprofile convention or ``true`` multiply-adds, predicted without
running the model) and/or a latency in ms measured on this machine, possibly given as a speed-up over a teacher; a
candidate must meet every budget given. :class:`Search` keeps one row per candidate (its MACs, timing, metrics,
whether it fits) and runs a strategy over a :class:`~ganslim.compress.space.SearchSpace`: small spaces (after the
budget) exhaustively, larger ones by evolution (population, the best ``parents`` fraction kept, the rest made by
mutation and crossover of parents, over-budget children rejected), as in GAN Compression. Under a latency budget a
:class:`~ganslim.compress.latency.LatencyTable` predicts each proposal from its timed spans; only those predicted
within the budget are timed as whole models, and a candidate fits when its timing is within the budget too. A
timing more than ``DISAGREEMENT`` times off its prediction, or faster than the machine's fp32 peak allows for the
candidate's true MACs, is timed again (the second timing counts; both are kept). What scores and times a candidate
is passed in: a method (e.g. :mod:`ganslim.methods.gan_compression.search`) supplies it.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from ganslim.compress.latency import LatencyTable
from ganslim.compress.space import SearchSpace
from ganslim.engine import distributed as ddp
from ganslim.errors import GanslimError

LOWER_IS_BETTER = {"fid"}  # metrics a search minimises
DISAGREEMENT = 2.0  # a timing this many times off its prediction is timed again
_PROPOSALS_PER_SLOT = 200  # proposals drawn per wanted candidate before giving up (each check ~0.05 ms)
_ENUMERATE_LIMIT = 20_000  # spaces up to this size are enumerated (~0.1 ms each) to count what fits a MACs budget
_ROUND = 8  # candidates per rank between two writes of the progress file
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


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
    input_label: str = ""  # the input the budget is counted on when not size x size (a label map: e.g. 256x512)

    @property
    def input(self) -> str:
        """The input the budget is counted on, e.g. ``256x256``."""
        return self.input_label or f"{self.size}x{self.size}"

    @property
    def macs_label(self) -> str:
        return self.macs_text.strip() or format_macs(self.macs)

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
        return " and ".join(parts) + f" at {self.input}"


def config_key(channels: Sequence[int]) -> str:
    """``[16, 32, 64]`` -> ``"16_32_64"`` (a table key and CSV cell)."""
    return "_".join(str(int(c)) for c in channels)


def restart_bar(bar: tqdm, label: str, unit: str, total: int | None) -> None:
    """Restart ``bar`` for one stage of a search: ``label``, counting ``unit`` up to ``total`` (None: unknown)."""
    bar.reset(total=total)
    bar.unit = unit
    bar.set_description(label)


def extend_bar(bar: tqdm, count: int) -> None:
    """``count`` more to do in the bar's stage."""
    bar.total = (bar.total or 0) + count
    bar.refresh()



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
        self.sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
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
                    f"{self.budget.input} on {self.budget.threads or torch.get_num_threads()} "
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
        """Why the row's timing is not credible (None: it is): over ``DISAGREEMENT`` times off its prediction,
        or faster than the machine's fp32 peak allows for its true MACs."""
        ms, predicted = row["latency_ms"], row.get("latency_predicted_ms")
        if predicted is not None and max(ms / predicted, predicted / ms) > DISAGREEMENT:
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
