"""AutoGAN-Distiller's supernets: every searched operator of a derived network replaced by a mixed operator.

A supernet is organised in *operator slots* (the derived network's operators, in order) and *width slots* (the
searched widths; each operator slot reads its input width from one width slot or the fixed base width, and writes
its output width to one or to the base). A forward runs one :class:`Sample`: for each operator slot the weights of
its operators (softmax of the architecture parameters, or a one-hot row), for each width slot a width, and
optionally the straight-through Gumbel gates of those widths (1 in the forward pass; through them gradients reach
the width logits). A mixed operator returns the weighted sum of its four operators at the sample's widths; its
operators are elastic (:mod:`ganslim.nn.elastic`), so every width runs the leading channels of one set of weights.

At a one-hot sample the supernet computes what the derived plain network computes with the leading slices of the
chosen operators' weights (:func:`extract_derived`).

* :class:`AGDTranslationSupernet` derives ``agd_translation``: 9 operator slots and 10 width slots, each cell
  reading the previous cell's width (the first the stem's 4 * ngf); the last width slot holds the stem's and head's
  width ratio (one of WIDTH_RATIOS, not channels), which sets the stem's and head's leading widths.
* :class:`AGDSRSupernet` derives ``agd_sr``: 5 cells x 5 operator slots, 4 width slots per cell (the inner widths;
  each cell starts from and returns to num_feat).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganslim.archs.agd import sr, translation
from ganslim.archs.agd.operators import OPERATORS, WIDTH_RATIOS, Operator, make_operator, width_choices
from ganslim.archs.sr.rrdbnet import _conv, _scaled_residual
from ganslim.archs.translation.super_mobile_resnet import ELASTIC_KIT
from ganslim.errors import GanslimError
from ganslim.nn.elastic import leading_slice
from ganslim.registry import GENERATORS

# A part of the fixed frame: how to build it (plain) and the shape of its input.
FramePart = tuple[Callable[[], nn.Module], tuple[int, ...]]


@dataclass(frozen=True)
class Sample:
    """The choices of one supernet forward.

    ``op_weights``: (operator slots, len(OPERATORS)), each row the weights of that slot's operators. ``widths``: the
    width of each width slot (channels, or a ratio for a slot whose candidates are ratios). ``gates``: None, or
    (width slots,) values multiplying each width slot's output (the straight-through one-hot entries at the chosen
    widths: 1 forward, the soft sample's gradient back).
    """

    op_weights: Tensor
    widths: tuple[float, ...]
    gates: Tensor | None = None


class MixedOperator(nn.Module):
    """The four operators, elastic, at their largest widths: ``forward(x, weights, out_channels)`` is
    ``sum_k weights[k] * op_k(x)`` with every op producing ``out_channels`` (None: its largest)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.choices = nn.ModuleDict({name: make_operator(name, in_channels, out_channels, norm, ELASTIC_KIT,
                                                          elastic=True) for name in OPERATORS})

    def forward(self, x: Tensor, weights: Tensor, out_channels: int | None) -> Tensor:
        """x: (N, C <= in, H, W); weights: (len(OPERATORS),) -> (N, out_channels, H, W)."""
        total: Tensor | None = None
        for weight, op in zip(weights, self.choices.values()):
            op.set_out_channels(out_channels)
            term = weight * op(x)
            total = term if total is None else total + term
        return total


class AGDSupernet(nn.Module):
    """What both supernets share: their slots, the sample check, a slot's forward and the derived architecture.

    Subclasses set ``derived_arch`` (the registered plain generator), ``norm``, ``base_width``, ``op_slots`` (for
    each operator slot its (input, output) width slot, None for the base width), ``width_candidates`` (per width
    slot), ``frame_slots`` (the width slots the frame's cost depends on) and ``mixed_ops``.
    """

    derived_arch: str
    norm: str
    base_width: int
    op_slots: list[tuple[int | None, int | None]]
    width_candidates: list[list[float]]
    frame_slots: tuple[int, ...]
    mixed_ops: list[MixedOperator]

    def check_sample(self, sample: Sample) -> None:
        """A one-line GanslimError when ``sample`` does not fit this supernet's slots."""
        expected = (len(self.op_slots), len(OPERATORS))
        if tuple(sample.op_weights.shape) != expected:
            raise GanslimError(f"a sample's op_weights must be {expected}, got {tuple(sample.op_weights.shape)}")
        if len(sample.widths) != len(self.width_candidates):
            raise GanslimError(f"a sample needs {len(self.width_candidates)} widths, got {len(sample.widths)}")
        for slot, (width, candidates) in enumerate(zip(sample.widths, self.width_candidates)):
            if width not in candidates:
                raise GanslimError(f"width slot {slot} cannot take {width}; choose one of {candidates}")
        if sample.gates is not None and tuple(sample.gates.shape) != (len(self.width_candidates),):
            raise GanslimError(f"a sample's gates must be ({len(self.width_candidates)},), got "
                               f"{tuple(sample.gates.shape)}")

    def slot_width(self, slot: int | None, widths: Sequence[float]) -> int:
        """The channels of width slot ``slot`` (an operator's) in ``widths`` (the base width for None)."""
        return self.base_width if slot is None else int(widths[slot])

    def run_slot(self, x: Tensor, slot: int, sample: Sample) -> Tensor:
        """Operator slot ``slot`` of ``sample`` on x: (N, C, H, W) -> (N, its output width, H, W)."""
        _, out_slot = self.op_slots[slot]
        out = self.mixed_ops[slot](x, sample.op_weights[slot],
                                   None if out_slot is None else sample.widths[out_slot])
        return out if out_slot is None or sample.gates is None else out * sample.gates[out_slot]

    def largest_widths(self) -> list[float]:
        return [candidates[-1] for candidates in self.width_candidates]

    def smallest_widths(self) -> list[float]:
        return [candidates[0] for candidates in self.width_candidates]

    def plain_operator(self, name: str, in_channels: int, out_channels: int) -> Operator:
        """The plain operator a derived network has in a slot of these widths."""
        return make_operator(name, in_channels, out_channels, self.norm)

    def cell_input_shape(self, size: int, channels: int) -> tuple[int, int, int, int]:
        """The input shape of an operator of ``channels`` input channels for a (1, C, size, size) image."""
        raise NotImplementedError

    def frame(self, size: int, frame_widths: Sequence[float]) -> list[FramePart]:
        """The parts around the cells for a (1, C, size, size) image, with ``frame_widths`` the widths of
        ``frame_slots``."""
        raise NotImplementedError

    def derived_kwargs(self, ops: Sequence[str], widths: Sequence[float]) -> dict:
        """``arch_kwargs`` of the ``derived_arch`` network with operator ``ops[s]`` in slot s and ``widths``."""
        raise NotImplementedError


class AGDTranslationSupernet(AGDSupernet):
    """Supernet of ``agd_translation``: (image (N, input_nc, H, W) in [-1, 1], sample) -> (N, output_nc, H, W).

    Args:
        input_nc, output_nc, ngf: as ``agd_translation``'s.
        cells: searched cells (9 in AGD).
    """

    derived_arch = "agd_translation"
    norm = translation.NORM

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64,
                 cells: int = translation.DEFAULT_CELLS) -> None:
        super().__init__()
        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf
        self.base_width = 4 * ngf
        self.op_slots = [(None if i == 0 else i - 1, i) for i in range(cells)]
        self.ratio_slot = cells
        self.width_candidates = [*(width_choices(self.base_width) for _ in range(cells)), list(WIDTH_RATIOS)]
        self.frame_slots = (cells - 1, self.ratio_slot)
        largest = translation.frame_widths(ngf)
        self.stem = translation.stem(input_nc, ngf, largest, ELASTIC_KIT)
        self.cells = nn.ModuleList(MixedOperator(self.base_width, self.base_width, self.norm) for _ in range(cells))
        self.head = translation.head(self.base_width, output_nc, largest, ELASTIC_KIT)

    @property
    def mixed_ops(self) -> list[MixedOperator]:
        return list(self.cells)

    def forward(self, image: Tensor, sample: Sample) -> Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, H, W), values in [-1, 1]."""
        self.check_sample(sample)
        self._set_frame_widths(translation.frame_widths(self.ngf, sample.widths[self.ratio_slot]))
        features = self.stem(image)
        if sample.gates is not None:
            features = features * sample.gates[self.ratio_slot]
        for slot in range(len(self.cells)):
            features = self.run_slot(features, slot, sample)
        return self.head(features)

    def _set_frame_widths(self, widths: tuple[int, int]) -> None:
        """Run the stem's first two convs and the head's two transposed convs at (s1, s2) = ``widths``."""
        first, second = widths
        for conv, channels in ((self.stem[0], first), (self.stem[3], second), (self.head[0], second),
                               (self.head[3], first)):
            conv.set_out_channels(channels)

    def cell_input_shape(self, size: int, channels: int) -> tuple[int, int, int, int]:
        return 1, channels, size // 4, size // 4

    def frame(self, size: int, frame_widths: Sequence[float]) -> list[FramePart]:
        last_width, ratio = int(frame_widths[0]), frame_widths[1]
        widths = translation.frame_widths(self.ngf, ratio)
        return [(lambda: translation.stem(self.input_nc, self.ngf, widths), (1, self.input_nc, size, size)),
                (lambda: translation.head(last_width, self.output_nc, widths),
                 self.cell_input_shape(size, last_width))]

    def derived_kwargs(self, ops: Sequence[str], widths: Sequence[float]) -> dict:
        return {"input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf, "ops": list(ops),
                "widths": [int(width) for width in widths[:self.ratio_slot]],
                "stem_ratio": float(widths[self.ratio_slot])}


class _SupernetCell(nn.Module):
    """A super-resolution cell's mixed operators (``ops``), for the derived cell's key names."""

    def __init__(self, num_feat: int, count: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(MixedOperator(num_feat, num_feat, sr.NORM) for _ in range(count))


class AGDSRSupernet(AGDSupernet):
    """Supernet of ``agd_sr``: (image (N, input_nc, H, W) in [0, 1], sample) -> (N, output_nc, 4H, 4W).

    Args:
        input_nc, output_nc, num_feat: as ``agd_sr``'s.
        cells, ops_per_cell: the trunk's cells and the operators of each (5 and 5 in AGD).
    """

    derived_arch = "agd_sr"
    norm = sr.NORM

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_feat: int = 64, cells: int = sr.DEFAULT_CELLS,
                 ops_per_cell: int = sr.DEFAULT_OPS_PER_CELL) -> None:
        super().__init__()
        if ops_per_cell < 2:
            raise GanslimError(f"agd_sr supernet needs at least 2 operators per cell, got {ops_per_cell}")
        self.input_nc, self.output_nc, self.num_feat = input_nc, output_nc, num_feat
        self.ops_per_cell, self.base_width = ops_per_cell, num_feat
        inner = ops_per_cell - 1
        self.op_slots = [(None if j == 0 else c * inner + j - 1, None if j == inner else c * inner + j)
                         for c in range(cells) for j in range(ops_per_cell)]
        self.width_candidates = [width_choices(num_feat) for _ in range(cells * inner)]
        self.frame_slots = ()
        self.conv_first = _conv(input_nc, num_feat)
        self.body = nn.ModuleList(_SupernetCell(num_feat, ops_per_cell) for _ in range(cells))
        self.conv_body = _conv(num_feat, num_feat)
        self.upsampler = sr.Upsampler(num_feat, output_nc)

    @property
    def mixed_ops(self) -> list[MixedOperator]:
        return [op for cell in self.body for op in cell.ops]

    def forward(self, image: Tensor, sample: Sample) -> Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, 4H, 4W), values in [0, 1]."""
        self.check_sample(sample)
        features = x = self.conv_first(image)
        for c in range(len(self.body)):
            out = x
            for j in range(self.ops_per_cell):
                out = self.run_slot(out, c * self.ops_per_cell + j, sample)
            x = _scaled_residual(x, out)
        return self.upsampler(features + self.conv_body(x))

    def cell_input_shape(self, size: int, channels: int) -> tuple[int, int, int, int]:
        return 1, channels, size, size

    def frame(self, size: int, frame_widths: Sequence[float]) -> list[FramePart]:
        trunk = self.cell_input_shape(size, self.num_feat)
        return [(lambda: _conv(self.input_nc, self.num_feat), (1, self.input_nc, size, size)),
                (lambda: _conv(self.num_feat, self.num_feat), trunk),
                (lambda: sr.Upsampler(self.num_feat, self.output_nc), trunk)]

    def derived_kwargs(self, ops: Sequence[str], widths: Sequence[float]) -> dict:
        per, inner = self.ops_per_cell, self.ops_per_cell - 1
        return {"input_nc": self.input_nc, "output_nc": self.output_nc, "num_feat": self.num_feat,
                "ops": [list(ops[c * per:(c + 1) * per]) for c in range(len(self.body))],
                "widths": [list(widths[c * inner:(c + 1) * inner]) for c in range(len(self.body))]}


def extract_derived(supernet: AGDSupernet, ops: Sequence[str], widths: Sequence[float]) -> nn.Module:
    """The derived plain network with operator ``ops[s]`` in slot s and ``widths``, its weights the leading slices
    of the supernet's (frame, and each slot's chosen operator): at the one-hot sample of these choices both compute
    the same."""
    plain = GENERATORS.build(supernet.derived_arch, **supernet.derived_kwargs(ops, widths))
    plain_names = {id(module): name for name, module in plain.named_modules()}
    super_names = {id(module): name for name, module in supernet.named_modules()}
    renames = {f"{plain_names[id(op)]}.": f"{super_names[id(mixed)]}.choices.{name}."
               for op, mixed, name in zip(plain.operators(), supernet.mixed_ops, ops)}
    source = supernet.state_dict()
    state = {}
    for key, tensor in plain.state_dict().items():
        prefix = next((p for p in renames if key.startswith(p)), "")
        source_key = renames[prefix] + key[len(prefix):] if prefix else key
        state[key] = leading_slice(source[source_key], tensor.shape).clone()
    plain.load_state_dict(state, strict=True)
    return plain.eval()


def one_hot_sample(supernet: AGDSupernet, ops: Sequence[str], widths: Sequence[float]) -> Sample:
    """The sample that runs operator ``ops[s]`` in slot s at ``widths``, without gates."""
    rows = torch.zeros(len(supernet.op_slots), len(OPERATORS))
    for slot, name in enumerate(ops):
        rows[slot, OPERATORS.index(name)] = 1.0
    return Sample(rows, tuple(widths))
