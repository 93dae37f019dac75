"""CPU latency of mobile ResNet configurations: a timer that holds on a busy machine, and a prediction from spans.

:class:`LatencyTimer` times a compact model interleaved with a fixed reference model and reports the ratio of
their fastest rounds, in the unit of the reference's fastest time when the timer started. On a shared machine
noise only adds time, and with several threads it adds a lot: one thread descheduled stalls the others at the
next barrier, so a 0.3 ms model's runs read 30-100 ms now and then. Measured on 2 cores shared with other
work, 2 threads, a 4-conv model against a 1-conv one (true ratio 4): the ratio of medians read up to 65, the
median of per-round ratios up to 61, the ratio of the fastest rounds 2.7-4.8. A fastest run that no other run
comes near, or a reference far slower than its baseline, asks for more rounds (:func:`fastest_ms`). The ratio
to a model run in the same moments still absorbs a slow phase (clock, a co-runner on every core) that slows
every run alike. A process's first seconds of CPU inference also run slow (caches, allocator, clocks), so the
first timing in a process follows a short warm-up.

A search under a latency budget also cannot time every proposal: in a large space most random configurations
are far over budget, and timing one compact model costs a dozen forward passes. :class:`LatencyTable` times each
span of the layout (stem, down1, down2, one residual block at (residual, hidden) widths, up1, up2, out; see
``ganslim.compress.space.channel_spans``) once, in isolation, on an input of its real shape, and predicts a
configuration as the sum of its spans times a calibration factor: the median ratio of measured to summed
latency over the whole models timed so far (1 before any). A space of 5 widths per position has about 130
spans, so the table fills in seconds and then predicts any configuration with a few look-ups.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator
from ganslim.compress.space import SearchSpace, channel_spans
from ganslim.measure.profile import interleaved_times, num_threads

SpanTimer = Callable[[nn.Module, Tensor], float]  # (span, its input (1, C, H, W)) -> ms
PROCESS_WARMUP_S = 2.0
SETTLE_ROUNDS = 3
MORE_ROUNDS = 3  # batches of rounds a timing may add while its fastest runs look interrupted
AGREEING = 1.25  # a run within this factor of the fastest one confirms it
_process = {"warm": False}


def warm_up_process(model: nn.Module, image: Tensor) -> None:
    """Run ``model`` on ``image`` for ``PROCESS_WARMUP_S`` seconds, once per process (later calls return)."""
    if _process["warm"]:
        return
    with torch.inference_mode():
        started = time.perf_counter()
        while time.perf_counter() - started < PROCESS_WARMUP_S:
            model(image)
    _process["warm"] = True


class LatencyTimer:
    """CPU latency in ms of a model on one (1, C, size, size) image, as a ratio to a reference model.

    Each call runs the model and ``reference`` in alternation (see :func:`fastest_ms`) and returns
    ``fastest(model) / fastest(reference) * baseline_ms`` over those rounds. ``baseline_ms`` is the reference's
    fastest of ``SETTLE_ROUNDS * repeats`` runs before the first call's, then fixed, so every model of one timer
    is expressed in the same unit; a budget relative to a model timed by the same timer (a speed-up over the
    teacher) does not depend on it at all.

    Args:
        reference: a model of the same input channels, e.g. the smallest sub-network of a search.
        size: image side.
        threads: torch CPU threads while timing (None: the current count).
        repeats: timed rounds per call (a call may ask for more).
        example: the input every model is timed on, for models that take no image (a latent generator's z);
            default a zero (1, C, size, size) image, C the reference's ``input_nc``.
    """

    def __init__(self, reference: nn.Module, size: int, threads: int | None, repeats: int,
                 example: Tensor | None = None) -> None:
        self.reference, self.size, self.threads, self.repeats = reference.eval(), size, threads, repeats
        self.example = example
        self.baseline_ms: float | None = None

    def __call__(self, model: nn.Module, repeats: int | None = None) -> float:
        baseline = self.settle()
        return self.ratio(model, repeats) * baseline

    def ratio(self, model: nn.Module, repeats: int | None = None) -> float:
        """Fastest time of ``model`` over the fastest of the reference, in the same interleaved rounds."""
        models = {"model": model.eval(), "reference": self.reference}
        expected = {} if self.baseline_ms is None else {"reference": self.baseline_ms}
        fastest = self._fastest(models, repeats or self.repeats, expected)
        return fastest["model"] / fastest["reference"]

    def settle(self) -> float:
        """``baseline_ms``, measured on the first call (after the process warm-up)."""
        if self.baseline_ms is None:
            self.baseline_ms = self._fastest({"reference": self.reference}, SETTLE_ROUNDS * self.repeats)["reference"]
        return self.baseline_ms

    def _fastest(self, models: dict[str, nn.Module], repeats: int, expected: dict[str, float] | None = None
                 ) -> dict[str, float]:
        image = self.example if self.example is not None else torch.zeros(1, self.reference.input_nc, self.size,
                                                                           self.size)
        with num_threads(self.threads or None), torch.inference_mode():
            warm_up_process(self.reference, image)
            return fastest_ms(models, image, repeats, expected)


def fastest_ms(models: Mapping[str, Callable[[Tensor], object]], image: Tensor, repeats: int,
               expected: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each model's fastest ms on ``image`` over interleaved rounds (:func:`interleaved_times`).

    ``repeats`` timed rounds after 3 untimed ones, then up to ``MORE_ROUNDS`` times as many again while a
    model's fastest run has no second one within ``AGREEING`` of it, or is over ``AGREEING`` times its
    ``expected`` ms (the reference's baseline): on a machine busy enough that a model's runs are nearly all
    interrupted, its fastest run can itself be an interrupted one.
    """
    expected = expected or {}
    times = interleaved_times(models, image, warmup=3, repeats=repeats)
    for _ in range(MORE_ROUNDS):
        if all(_settled(values, expected.get(name, math.inf)) for name, values in times.items()):
            break
        for name, values in interleaved_times(models, image, warmup=0, repeats=repeats).items():
            times[name] += values
    return {name: min(values) for name, values in times.items()}


def _settled(times: list[float], expected_ms: float) -> bool:
    """Whether the fastest of ``times`` is seen twice (within ``AGREEING``) and within ``AGREEING`` of
    ``expected_ms``."""
    fastest = min(times)
    return sum(value <= AGREEING * fastest for value in times) >= 2 and fastest <= AGREEING * expected_ms


def span_timer(threads: int | None, repeats: int) -> SpanTimer:
    """A :class:`LatencyTable` span timer: the fastest CPU ms of a span on its input with ``threads`` threads
    (:func:`fastest_ms`, for the reasons :class:`LatencyTimer` gives)."""
    def time_span(span: nn.Module, image: Tensor) -> float:
        with num_threads(threads or None), torch.inference_mode():
            return fastest_ms({"span": span.eval()}, image, repeats)["span"]
    return time_span


class LatencyTable:
    """Latency predictions for the configurations of ``space`` on one ``size`` x ``size`` image.

    Args:
        space: the search space (its architecture: blocks, channels in/out, norm).
        size: image side the latency is for.
        time_span: measures one span on its input, in ms (e.g. the median of a few CPU runs).
    """

    def __init__(self, space: SearchSpace, size: int, time_span: SpanTimer) -> None:
        self.space, self.size, self.time_span = space, size, time_span
        self.span_ms: dict[tuple, float] = {}
        self.ratios: list[float] = []

    def summed(self, channels: Sequence[int]) -> float:
        """Sum of the span latencies of ``channels`` in ms (spans not yet in the table are timed first)."""
        spans = channel_spans(channels, self.space.n_blocks)
        if any(key not in self.span_ms for key, _ in spans):
            self._time_missing(list(channels))
        return sum(self.span_ms[key] for key, _ in spans)

    def missing_spans(self) -> dict[tuple, list[int]]:
        """The spans of the space not yet timed, each with a configuration that holds it.

        A span touches at most two positions' widths, so the smallest configuration with any two positions
        changed holds every span of the space.
        """
        smallest, widths = self.space.smallest(), self.space.candidates
        missing: dict[tuple, list[int]] = {}
        for first, second in itertools.combinations(range(len(widths)), 2):
            for a, b in itertools.product(widths[first], widths[second]):
                channels = list(smallest)
                channels[first], channels[second] = a, b
                for key, _ in channel_spans(channels, self.space.n_blocks):
                    if key not in self.span_ms:
                        missing.setdefault(key, channels)
        return missing

    def fill(self, on_span: Callable[[], None] = lambda: None) -> None:
        """Time every span of the space not yet in the table; ``on_span()`` after each."""
        configurations = {tuple(channels): channels for channels in self.missing_spans().values()}
        for channels in configurations.values():
            self._time_missing(channels, on_span)

    def _time_missing(self, channels: list[int], on_span: Callable[[], None] = lambda: None) -> None:
        space = self.space
        model = MobileResnetGenerator(space.input_nc, space.output_nc, norm=space.norm, n_blocks=space.n_blocks,
                                      channels=channels).eval()
        x = torch.randn(1, space.input_nc, self.size, self.size)
        with torch.inference_mode():
            for key, span in channel_spans(channels, space.n_blocks):
                layers = model.model[span]
                if key not in self.span_ms:
                    self.span_ms[key] = float(self.time_span(layers, x))
                    on_span()
                x = layers(x)

    def calibration(self) -> float:
        """Median of measured / summed latency over the whole models observed (1.0 before any)."""
        return statistics.median(self.ratios) if self.ratios else 1.0

    def predict(self, channels: Sequence[int]) -> float:
        """Predicted latency of the compact model at ``channels`` in ms."""
        return self.summed(channels) * self.calibration()

    def observe(self, channels: Sequence[int], measured_ms: float) -> None:
        """Record a whole model's measured latency; later predictions are calibrated with it."""
        self.ratios.append(measured_ms / self.summed(channels))
