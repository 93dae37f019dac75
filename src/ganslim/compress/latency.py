"""CPU latency of mobile ResNet configurations: a steadied timer, and a prediction from timed spans.

:class:`LatencyTimer` times a compact model interleaved with a fixed reference model and scales the result by
the reference's quiet-moment timing over its timing now: a shared machine's speed drifts by tens of percent over
seconds, so absolute timings wander while the ratio to a model run in the same moments holds. A process's
first seconds of CPU inference also run slow (caches, allocator, clocks), so the first timing in a process
follows a short warm-up.

A search under a latency budget also cannot time every proposal: in a large space most random configurations
are far over budget, and timing one compact model costs a dozen forward passes. :class:`LatencyTable` times each
span of the layout (stem, down1, down2, one residual block at (residual, hidden) widths, up1, up2, out; see
``ganslim.compress.space.channel_spans``) once, in isolation, on an input of its real shape, and predicts a
configuration as the sum of its spans times a calibration factor: the median ratio of measured to summed
latency over the whole models timed so far (1 before any). A space of 5 widths per position has about 130
spans, so the table fills in seconds and then predicts any configuration with a few look-ups.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ganslim.archs.mobile_resnet import MobileResnetGenerator
from ganslim.compress.space import SearchSpace, channel_spans
from ganslim.export.runtime import interleaved_times
from ganslim.profile import measure_latency, num_threads

SpanTimer = Callable[[nn.Module, Tensor], float]  # (span, its input (1, C, H, W)) -> ms
PROCESS_WARMUP_S = 2.0
SETTLE_ROUNDS = 3
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
    """Median CPU latency in ms of a model on one (1, C, size, size) image, steadied by a reference model.

    Each call runs the model and ``reference`` in alternation (``repeats`` timed rounds after 3 untimed ones)
    and returns ``model_median * settled / reference_median``. ``settled`` is the reference's time in a quiet
    moment: the lowest of ``SETTLE_ROUNDS`` timings of the reference before the first call's, then fixed, so
    every model of one timer is expressed in the same unit (a running minimum would drift down over a search
    and flatter its later candidates).

    Args:
        reference: a model of the same input channels, e.g. the smallest sub-network of a search.
        size: image side.
        threads: torch CPU threads while timing (None: the current count).
        repeats: timed rounds per call.
    """

    def __init__(self, reference: nn.Module, size: int, threads: int | None, repeats: int) -> None:
        self.reference, self.size, self.threads, self.repeats = reference.eval(), size, threads, repeats
        self.settled_ms: float | None = None

    def __call__(self, model: nn.Module) -> float:
        if self.settled_ms is None:
            self.settled_ms = min(self._medians(self.reference)[1] for _ in range(SETTLE_ROUNDS))
        model_ms, reference_ms = self._medians(model.eval())
        return model_ms * self.settled_ms / reference_ms

    def _medians(self, model: nn.Module) -> tuple[float, float]:
        """Median ms of ``model`` and of the reference over the same interleaved rounds."""
        image = torch.zeros(1, model.input_nc, self.size, self.size)
        with num_threads(self.threads or None), torch.inference_mode():
            warm_up_process(model, image)
            times = interleaved_times({"model": model, "reference": self.reference}, image, warmup=3,
                                      repeats=self.repeats)
        return statistics.median(times["model"]), statistics.median(times["reference"])


def span_timer(threads: int | None, repeats: int) -> SpanTimer:
    """A :class:`LatencyTable` span timer: median CPU ms of a span on its input with ``threads`` threads."""
    def time_span(span: nn.Module, image: Tensor) -> float:
        with num_threads(threads or None):
            return measure_latency(span, image, warmup=3, repeats=repeats, device="cpu").median_ms
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
            self._time_missing(list(channels), spans)
        return sum(self.span_ms[key] for key, _ in spans)

    def _time_missing(self, channels: list[int], spans: list[tuple[tuple, slice]]) -> None:
        space = self.space
        model = MobileResnetGenerator(space.input_nc, space.output_nc, norm=space.norm, n_blocks=space.n_blocks,
                                      channels=channels).eval()
        x = torch.randn(1, space.input_nc, self.size, self.size)
        with torch.inference_mode():
            for key, span in spans:
                layers = model.model[span]
                if key not in self.span_ms:
                    self.span_ms[key] = float(self.time_span(layers, x))
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
