"""A search for Anycost GAN's flexible sub-generators of a StyleGAN2 generator under a budget (not in the reference
code, whose released configs came from an unreleased search).

The space (:class:`AnycostSpace`) is the flexible configurations at one resolution: per layer the sub-generator runs,
one of the widths :func:`~ganslim.archs.stylegan2.subnets.flexible_choices` allows (the ratios 0.25 .. 1 of the full
width, multiples of 4, at least the uniform 0.25 config). Costs are those of the whole sub-generator, z -> image
(mapping included, as Anycost's config files count them): MACs of the compact model built on the meta device, and
under a latency budget the CPU time of the extracted compact model, timed interleaved with the smallest one as GAN
Compression's search times (:class:`~ganslim.compress.latency.LatencyTimer`). Candidates are scored by fidelity
(:class:`Fidelity`): the PSNR of the sub-generator's images to the full generator's, downsampled to its side, on
fixed latents and the stored noise. The strategies are :class:`~ganslim.compress.search.Search`'s (exhaustive for a
small space, else GAN Compression's evolution). :func:`config_entry` writes the best one in Anycost's config format,
which ``--channels FILE.json:NAME`` reads back.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ganslim.apps.generate import seed_w_plus
from ganslim.archs.stylegan2 import StyleGAN2Generator
from ganslim.archs.stylegan2.subnets import flexible_choices, layer_count, resolve_subnet
from ganslim.compress.latency import LatencyTimer
from ganslim.compress.search import Budget, Search, extend_bar, restart_bar
from ganslim.compress.space import CandidateWidths
from ganslim.compress.stylegan2 import extract_stylegan2_subnet
from ganslim.errors import GanslimError
from ganslim.measure.profile import MacCount, count_macs
from ganslim.metrics.image import psnr

METRIC = "psnr"
RETIME_REPEATS = 3  # a doubted timing is done again with this many times the repeats


@dataclass(frozen=True)
class AnycostSpace(CandidateWidths):
    """The flexible sub-generators of a ``stylegan2`` (built by ``arch_kwargs``) that stop at ``resolution``:
    ``candidates`` holds, per layer run, its allowed widths in descending order. Walked by
    :class:`~ganslim.compress.search.Search` as a :class:`~ganslim.compress.space.SearchSpace` is (the smallest
    configuration has the fewest MACs)."""

    arch_kwargs: dict
    resolution: int
    candidates: tuple[tuple[int, ...], ...]
    _macs: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, generator: StyleGAN2Generator, resolution: int | None = None) -> AnycostSpace:
        """The space of ``generator`` at ``resolution`` (None: its full side; one line for a side it lacks)."""
        resolution = resolve_subnet(generator.layer_channels, resolution).resolution
        choices = flexible_choices(generator.layer_channels)[:layer_count(resolution)]
        return cls(generator.arch_kwargs(), resolution,
                   tuple(tuple(sorted(set(widths.values()), reverse=True)) for widths in choices))

    def predict_macs(self, channels: Sequence[int], size: int | None = None) -> MacCount:
        """MACs (both conventions) of the whole compact sub-generator at ``channels`` on one z, counted on the
        meta device (cached); ``size`` is the space's resolution, the only one it has."""
        key = tuple(channels)
        if key not in self._macs:
            with torch.device("meta"):
                compact = StyleGAN2Generator(**self.compact_kwargs(channels))
                self._macs[key] = count_macs(compact, (torch.zeros(1, compact.z_dim),))
        return self._macs[key]

    def compact_kwargs(self, channels: Sequence[int]) -> dict:
        """The ``stylegan2`` kwargs of the compact sub-generator at ``channels``."""
        return {**self.arch_kwargs, "size": self.resolution, "channels": list(channels)}


def downsampled(image: Tensor, side: int) -> Tensor:
    """(N, C, H, W) -> (N, C, side, side), bilinear with ``align_corners=True`` (Anycost's consistency target);
    ``image`` itself at its own side."""
    if image.shape[-1] == side:
        return image
    return F.interpolate(image, size=(side, side), mode="bilinear", align_corners=True)


class Fidelity:
    """``channels -> {"psnr": dB}``: the mean PSNR of the sub-generator's images at ``resolution`` to the full
    generator's images downsampled to that side, on the W+ of seeds ``seed .. seed + latents - 1`` (each seed's z
    as ``ganslim generate`` draws it) and the stored noise, in batches of ``batch``."""

    def __init__(self, generator: StyleGAN2Generator, resolution: int, latents: int = 16, seed: int = 0,
                 batch: int = 4) -> None:
        if isinstance(latents, bool) or not isinstance(latents, int) or latents < 1:
            raise GanslimError(f"--latents {latents!r} must be a positive number of latents to score on (e.g. 16)")
        self.generator, self.resolution = generator, resolution
        with torch.no_grad():
            self.w_plus = seed_w_plus(generator, range(seed, seed + latents)).split(batch)
            with generator.subnet():
                self.targets = [downsampled(generator.synthesis(w), resolution) for w in self.w_plus]

    def __call__(self, channels: Sequence[int]) -> dict[str, float]:
        with torch.no_grad(), self.generator.subnet(self.resolution, list(channels)):
            scores = torch.cat([psnr(self.generator.synthesis(w), target)
                                for w, target in zip(self.w_plus, self.targets)])
        return {METRIC: float(scores.mean())}


@dataclass(frozen=True)
class Evolution:
    """How the space is searched: ``strategy`` auto (exhaustive when at most ``exhaustive_limit`` configurations
    fit a MACs budget, else evolution), exhaustive or evolution, and GAN Compression's evolution parameters."""

    strategy: str = "auto"
    exhaustive_limit: int = 500
    population: int = 32
    parents: float = 0.25
    mutation: float = 0.5
    mutation_prob: float = 0.2
    generations: int = 8
    seed: int = 0


@dataclass(frozen=True)
class AnycostSearchResult:
    """The best configuration's row (``channels`` of the layers run, ``macs``, ``macs_published``, ``latency_ms``,
    ``score``: its PSNR), how it was searched and how many configurations were measured / fitted."""

    best: dict
    space: AnycostSpace
    budget: Budget
    strategy: str
    evaluated: int
    fitting: int


def search_anycost(generator: StyleGAN2Generator, budget: Budget, *, fidelity: Fidelity,
                   evolution: Evolution = Evolution(), latency_repeats: int = 10,
                   latency: Callable[[nn.Module], float] | None = None, progress: bool = True) -> AnycostSearchResult:
    """The best flexible sub-generator of ``generator`` at ``fidelity.resolution`` within ``budget`` (its ``size``
    is that resolution), scored by ``fidelity``.

    A latency budget times each candidate's compact model (z -> image) on this machine's CPU; ``latency``
    (compact model -> ms) replaces that timing (tests, another timer). A budget the smallest sub-generator misses
    is one line before the search.
    """
    space = AnycostSpace.of(generator, fidelity.resolution)
    measure = None if budget.ms is None else (latency or _timer(generator, space, budget, latency_repeats))
    retime = measure if latency is not None or measure is None else partial(
        measure, repeats=RETIME_REPEATS * latency_repeats)
    search = Search(space, budget, fidelity, None if measure is None else _compact_latency(generator, space, measure),
                    METRIC, retime=None if retime is None else _compact_latency(generator, space, retime))
    search.check_feasible()  # before the bar starts, so that an impossible budget is one line
    bar = tqdm(total=0, unit="candidate", disable=not progress, leave=False)
    search.on_stage = lambda label: restart_bar(bar, label, "candidate", 0)
    search.on_pending = lambda count: extend_bar(bar, count)
    try:
        strategy, candidates = search.choose_strategy(evolution.strategy, evolution.exhaustive_limit)
        if candidates is not None:
            best = search.exhaustive(candidates)
        else:
            best = search.evolution(random.Random(evolution.seed), evolution.population, evolution.parents,
                                    evolution.mutation, evolution.mutation_prob, evolution.generations)
    finally:
        bar.close()
    rows = search.ranked()
    return AnycostSearchResult(best, space, budget, strategy, len(rows), sum(1 for row in rows if row["fits"]))


def _timer(generator: StyleGAN2Generator, space: AnycostSpace, budget: Budget, repeats: int) -> LatencyTimer:
    """The CPU timer of a search: compact models on a zero z, referenced to the smallest sub-generator."""
    smallest = _compact(generator, space, space.smallest())
    return LatencyTimer(smallest, space.resolution, budget.threads, repeats, example=torch.zeros(1, smallest.z_dim))


def _compact(generator: StyleGAN2Generator, space: AnycostSpace, channels: Sequence[int]) -> StyleGAN2Generator:
    return extract_stylegan2_subnet(generator, space.resolution, list(channels)).cpu().eval()


def _compact_latency(generator: StyleGAN2Generator, space: AnycostSpace, measure: Callable[[nn.Module], float]
                     ) -> Callable[[list[int]], float]:
    """``channels -> ms`` of the compact sub-generator at ``channels``, on the CPU."""
    return lambda channels: measure(_compact(generator, space, channels))


def config_entry(generator: StyleGAN2Generator, result: AnycostSearchResult) -> dict:
    """The best configuration as an entry of Anycost's config files: ``channels`` for every layer of the full
    generator (those past the resolution, which do not run, at full width), ``res``, ``macs`` (published
    convention, the whole generator, as Anycost's), and what the search measured."""
    best = result.best
    channels = list(best["channels"]) + list(generator.layer_channels[len(best["channels"]):])
    score = best["score"]
    entry = {"channels": channels, "res": result.space.resolution, "macs": best["macs_published"],
             "macs_true": best["macs"], "psnr": round(score, 3) if math.isfinite(score) else None}
    if best.get("latency_ms") is not None:
        entry["latency_ms"] = round(best["latency_ms"], 3)
    return entry
