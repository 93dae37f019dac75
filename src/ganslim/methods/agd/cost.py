"""AutoGAN-Distiller's compute penalty: a per-operator cost table, expected costs and the penalty weight's rule.

:class:`CostTable` holds the cost of every operator at every (input, output) width a supernet's slots can take,
and of its fixed frame, at one image size, each measured once on the plain module in isolation
(:func:`mac_measure`: MACs counted on the meta device, in either convention; :func:`latency_measure`: CPU
milliseconds with ``ganslim.compress.latency``'s timing, the table the reference builds and never uses). A derived
network's cost is then a sum of look-ups: for MACs, exactly the figure the MAC counter gives for the plain network.

The penalty of one architecture step is AGD's (:func:`agd_cost`)::

    1/4 * expected cost (softmax(alpha), largest widths) + 3/4 * expected cost (uniform operators, sampled widths)

where an expected cost sums each slot's operator costs weighted by its operator weights, every term multiplied by
the gates of the widths it depends on: the first part steers the operators, the second the widths (uniform operator
weights there, as the reference's ``forward_flops(alpha=False, ratio=True)``). :class:`PenaltyWeight` scales it and
adapts after each evaluation: halved when the derived network costs less than the budget's lower bound, doubled above
its upper bound.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ganslim.archs.agd import OPERATORS, AGDSupernet, Sample
from ganslim.compress.latency import span_timer
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs
from ganslim.methods.agd.space import ArchParameters

# Measures a plain module, built by the callable, on an input of the given shape: MACs or ms.
Measure = Callable[[Callable[[], nn.Module], tuple[int, ...]], float]
OPERATOR_SHARE, WIDTH_SHARE = 0.25, 0.75


def mac_measure(published: bool = False) -> Measure:
    """MACs of one forward, counted on the meta device (nothing computed); ``published`` for torchprofile's
    convention (transposed convs at their output resolution), else the true count."""
    def measure(build: Callable[[], nn.Module], shape: tuple[int, ...]) -> float:
        with torch.device("meta"):
            module, example = build(), torch.zeros(shape)
        count = count_macs(module, example)
        return float(count.macs_published if published else count.macs)
    return measure


def latency_measure(threads: int | None = None, repeats: int = 10) -> Measure:
    """CPU latency in ms of one forward on a random input, the fastest of ``repeats`` rounds
    (``ganslim.compress.latency.span_timer``)."""
    time_span = span_timer(threads, repeats)

    def measure(build: Callable[[], nn.Module], shape: tuple[int, ...]) -> float:
        return float(time_span(build(), torch.randn(shape)))
    return measure


class CostTable:
    """The cost of each operator and of the frame of ``supernet`` at ``size`` x ``size`` input images.

    Entries are measured when first needed (:meth:`fill` measures all of them at once).

    Args:
        supernet: the search space (its slots, widths and frame).
        size: image side the costs are for (256 for AGD's translation budget).
        measure: :func:`mac_measure` or :func:`latency_measure`.
    """

    def __init__(self, supernet: AGDSupernet, size: int, measure: Measure) -> None:
        self.supernet, self.size, self.measure = supernet, size, measure
        self.entries: dict[tuple, float] = {}

    def operator(self, name: str, in_channels: int, out_channels: int) -> float:
        """Cost of the plain operator ``name`` from ``in_channels`` to ``out_channels``."""
        key = (name, in_channels, out_channels)
        if key not in self.entries:
            shape = self.supernet.cell_input_shape(self.size, in_channels)
            self.entries[key] = self.measure(lambda: self.supernet.plain_operator(*key), shape)
        return self.entries[key]

    def frame(self, frame_widths: Sequence[float]) -> float:
        """Cost of the parts around the cells at the widths of the supernet's ``frame_slots`` (translation: the last
        cell's width, read by the head, and the stem's and head's width ratio)."""
        key = ("frame", *frame_widths)
        if key not in self.entries:
            self.entries[key] = sum(self.measure(build, shape)
                                    for build, shape in self.supernet.frame(self.size, frame_widths))
        return self.entries[key]

    def fill(self) -> None:
        """Measure every entry the supernet's slots can need."""
        space = self.supernet
        for in_slot, out_slot in space.op_slots:
            ins = [space.base_width] if in_slot is None else space.width_candidates[in_slot]
            outs = [space.base_width] if out_slot is None else space.width_candidates[out_slot]
            for name, (in_width, out_width) in itertools.product(OPERATORS, itertools.product(ins, outs)):
                self.operator(name, in_width, out_width)
        for frame_widths in itertools.product(*(space.width_candidates[slot] for slot in space.frame_slots)):
            self.frame(frame_widths)

    def records(self) -> list[list]:
        """The measured entries as JSON-ready rows ``[*key, cost]`` (:meth:`add_records` reads them back)."""
        return [[*key, cost] for key, cost in self.entries.items()]

    def add_records(self, rows: Sequence[Sequence]) -> None:
        """Take the entries of :meth:`records` rows (a table measured before) instead of measuring them."""
        self.entries.update({tuple(row[:-1]): float(row[-1]) for row in rows})

    def extreme(self, widths: Sequence[float], pick: Callable = min) -> tuple[list[str], float]:
        """In each slot the operator that ``pick`` (``min`` or ``max``) chooses by cost at ``widths``, and the cost
        of that network: at the smallest widths with ``min``, the cheapest network of the space."""
        space = self.supernet
        ops = [pick(OPERATORS, key=lambda name: self.operator(name, space.slot_width(in_slot, widths),
                                                              space.slot_width(out_slot, widths)))
               for in_slot, out_slot in space.op_slots]
        return ops, self.predict(ops, widths)

    def _frame_widths(self, widths: Sequence[float]) -> tuple[float, ...]:
        return tuple(widths[slot] for slot in self.supernet.frame_slots)

    def predict(self, ops: Sequence[str], widths: Sequence[float]) -> float:
        """Cost of the derived network with operator ``ops[s]`` in slot s and ``widths``."""
        space = self.supernet
        cells = sum(self.operator(name, space.slot_width(in_slot, widths), space.slot_width(out_slot, widths))
                    for name, (in_slot, out_slot) in zip(ops, space.op_slots))
        return cells + self.frame(self._frame_widths(widths))

    def expected(self, op_weights: Tensor, widths: Sequence[float], gates: Tensor | None = None) -> Tensor:
        """Differentiable cost at ``widths``: for each slot, its operators' costs weighted by ``op_weights`` (operator
        slots, len(OPERATORS)), times the ``gates`` (width slots,) of the widths the term depends on; plus the
        frame. A 0-dim tensor; at one-hot weights and unit gates it is :meth:`predict`."""
        space = self.supernet

        def gated(term: Tensor, *slots: int | None) -> Tensor:
            for slot in slots:
                term = term if slot is None or gates is None else term * gates[slot]
            return term

        total = gated(op_weights.new_tensor(self.frame(self._frame_widths(widths))), *space.frame_slots)
        for slot, (in_slot, out_slot) in enumerate(space.op_slots):
            in_width, out_width = space.slot_width(in_slot, widths), space.slot_width(out_slot, widths)
            costs = op_weights.new_tensor([self.operator(name, in_width, out_width) for name in OPERATORS])
            total = total + gated((op_weights[slot] * costs).sum(), in_slot, out_slot)
        return total


def agd_cost(table: CostTable, params: ArchParameters, sample: Sample) -> Tensor:
    """AGD's penalty cost of one architecture step (see the module docstring); ``sample`` from
    ``search_sample``. A 0-dim tensor with gradients to alpha (first part) and to the width logits (second)."""
    largest = table.expected(params.op_weights(), table.supernet.largest_widths())
    uniform = torch.full_like(params.alpha, 1.0 / len(OPERATORS))
    return OPERATOR_SHARE * largest + WIDTH_SHARE * table.expected(uniform, sample.widths, sample.gates)


class PenaltyWeight:
    """The weight of the compute penalty, adapted to keep the derived network within ``[low, high]``.

    Args:
        value: the starting weight (AGD's translation search: 1e-17 per MAC), positive.
        low, high: the budget, in the cost table's unit (AGD's translation: 3e9 and 8e9 MACs at 256x256).
    """

    def __init__(self, value: float, low: float, high: float) -> None:
        if not value > 0:
            raise GanslimError(f"the penalty weight must be positive, got {value!r}: a zero weight switches the budget "
                               "off (the reference's super-resolution config does that by mistake)")
        if not 0 <= low <= high:
            raise GanslimError(f"the budget's bounds must satisfy 0 <= low <= high, got low={low!r}, high={high!r}")
        self.value, self.low, self.high = float(value), float(low), float(high)

    def update(self, derived_cost: float) -> float:
        """After an evaluation: halve the weight if ``derived_cost`` < low, double it if > high. Returns it."""
        if derived_cost < self.low:
            self.value /= 2
        elif derived_cost > self.high:
            self.value *= 2
        return self.value

    def penalty(self, cost: Tensor) -> Tensor:
        """The term added to the architecture loss."""
        return self.value * cost
