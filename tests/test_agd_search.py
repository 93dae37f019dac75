"""AutoGAN-Distiller's supernets and search building blocks: mixed operators, Gumbel widths, the sandwich rule,
derivation, the cost table and the penalty weight."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganslim.archs.agd import (
    OPERATORS,
    WIDTH_RATIOS,
    AGDSRSupernet,
    AGDTranslationSupernet,
    MixedOperator,
    Sample,
    extract_derived,
    one_hot_sample,
)
from ganslim.archs.agd.operators import make_operator
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs
from ganslim.methods.agd import (
    ArchParameters,
    CostTable,
    PenaltyWeight,
    agd_cost,
    derive,
    fixed_sample,
    gumbel_hard,
    latency_measure,
    mac_measure,
    sandwich_widths,
    search_sample,
)
from ganslim.methods.agd.space import GUMBEL_EPS
from ganslim.nn.elastic import leading_slice

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Cell widths, then the stem's and head's width ratio: 4/12 of ngf 8 runs them at (3, 8) channels, 1 at (8, 16).
TRANSLATION_CHOICE = (["residual", "dwsblock", "conv1x1"], [16, 24, 32, WIDTH_RATIOS[0]])
TRANSLATION_FULL_FRAME = (["conv3x3", "residual", "dwsblock"], [24, 16, 32, 1.0])
SR_CHOICE = (["residual", "dwsblock", "conv1x1", "conv3x3", "residual", "dwsblock"], [8, 16, 16, 8])


def translation_supernet() -> AGDTranslationSupernet:
    torch.manual_seed(0)
    return AGDTranslationSupernet(ngf=8, cells=3)  # base 32: widths [16, 16, 24, 24, 32], then WIDTH_RATIOS


def sr_supernet() -> AGDSRSupernet:
    torch.manual_seed(0)
    return AGDSRSupernet(num_feat=16, cells=2, ops_per_cell=3)  # widths [8, 8, 16, 16, 16], 2 per cell


SUPERNETS = [(translation_supernet, TRANSLATION_CHOICE, 16, (2, 3, 16, 16), -1.0),
             (translation_supernet, TRANSLATION_FULL_FRAME, 16, (2, 3, 16, 16), -1.0),
             (sr_supernet, SR_CHOICE, 8, (2, 3, 8, 8), 0.0)]


def random_image(shape: tuple[int, ...], low: float) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(3)) * (1 - low) + low


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_mixed_operator_is_the_weighted_sum_of_the_plain_operators_slices(norm):
    torch.manual_seed(0)
    mixed = MixedOperator(16, 16, norm)
    weights = F.softmax(torch.randn(len(OPERATORS)), dim=-1)
    x = torch.randn(2, 8, 6, 6)  # 8 of its 16 input channels; 12 of its 16 outputs below
    expected = 0
    for weight, (name, elastic) in zip(weights, mixed.choices.items()):
        plain = make_operator(name, 8, 12, norm)
        plain.load_state_dict({key: leading_slice(elastic.state_dict()[key], value.shape)
                               for key, value in plain.state_dict().items()})
        expected = expected + weight * plain(x)
    out = mixed(x, weights, 12)
    assert out.shape == (2, 12, 6, 6)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_straight_through_gumbel_is_one_hot_forward_and_soft_backward():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.1, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]], requires_grad=True)
    weights = torch.randn(2, 5, generator=torch.Generator().manual_seed(1))
    hard = gumbel_hard(logits, torch.Generator().manual_seed(7))
    assert set(hard.detach().flatten().tolist()) == {0.0, 1.0} and hard.detach().sum(dim=-1).tolist() == [1.0, 1.0]
    (hard * weights).sum().backward()
    # The same noise, drawn from the same seed, through the soft sample.
    soft_logits = logits.detach().clone().requires_grad_(True)
    uniform = torch.rand(logits.shape, generator=torch.Generator().manual_seed(7))
    soft = F.softmax(soft_logits - torch.log(-torch.log(uniform + GUMBEL_EPS) + GUMBEL_EPS), dim=-1)
    assert torch.equal(hard.detach().argmax(-1), soft.detach().argmax(-1))
    (soft * weights).sum().backward()
    torch.testing.assert_close(logits.grad, soft_logits.grad)
    assert logits.grad.abs().sum() > 0
    # A dominant logit is (nearly) always drawn.
    draws = gumbel_hard(torch.tensor([[0.0, 0.0, 30.0]]).expand(64, 3), torch.Generator().manual_seed(0))
    assert draws.argmax(-1).tolist() == [2] * 64


def test_search_sample_gates_are_one_and_carry_gradients_to_the_width_logits():
    supernet = translation_supernet()
    params = ArchParameters(supernet)
    assert params.alpha.shape == (3, 4) and params.width_logits.shape == (4, 5)
    assert torch.all(params.alpha == 1e-3) and torch.all(params.width_logits == 1e-3)
    sample = search_sample(supernet, params, torch.Generator().manual_seed(0))
    assert all(width in candidates for width, candidates in zip(sample.widths, supernet.width_candidates))
    assert sample.gates.tolist() == [1.0, 1.0, 1.0, 1.0] and sample.widths[3] in WIDTH_RATIOS
    supernet(random_image((1, 3, 16, 16), -1.0), sample).square().mean().backward()
    assert params.width_logits.grad.abs().sum(dim=-1).gt(0).all() and params.alpha.grad.abs().sum() > 0


def test_sandwich_widths_are_largest_smallest_and_reproducible_random_ones():
    supernet = sr_supernet()
    first = sandwich_widths(supernet, torch.Generator().manual_seed(5))
    assert len(first) == 4
    assert first[0] == [16] * 4 and first[1] == [8] * 4
    assert all(width in (8, 16) for widths in first[2:] for width in widths)
    assert sandwich_widths(supernet, torch.Generator().manual_seed(5)) == first
    assert len(sandwich_widths(supernet, torch.Generator(), random_count=0)) == 2


def test_every_width_trains_the_leading_slices_of_the_shared_weights():
    supernet = translation_supernet()
    params = ArchParameters(supernet)
    smallest = fixed_sample(params, supernet.smallest_widths())
    supernet(random_image((1, 3, 16, 16), -1.0), smallest).square().mean().backward()
    residual = supernet.cells[1].choices["residual"]  # 16 -> 16 channels of its 32 x 32 weights
    grad = residual.conv1.weight.grad
    assert grad[:16, :16].abs().sum() > 0 and grad[16:].abs().sum() == 0 and grad[:, 16:].abs().sum() == 0
    assert residual.shortcut[0].weight.grad is None  # equal widths: no shortcut, as in the derived network
    expand = supernet.cells[0].choices["dwsblock"].expand.weight.grad  # 32 in -> 4 x 32
    assert expand.abs().sum(dim=(1, 2, 3)).gt(0).all()
    assert supernet.head[0].weight.grad[16:].abs().sum() == 0  # the head reads the last cell's 16 channels
    stem = supernet.stem[0].weight.grad  # ratio 4/12: 3 of its 8 channels, then 8 of 16
    assert stem[:3].abs().sum() > 0 and stem[3:].abs().sum() == 0
    assert supernet.stem[3].weight.grad[8:].abs().sum() == 0 and supernet.head[3].weight.grad[:, 3:].abs().sum() == 0


@pytest.mark.parametrize("build, choice, side, shape, low", SUPERNETS)
def test_the_derived_network_computes_the_supernet_at_its_one_hot_sample(build, choice, side, shape, low):
    supernet = build()
    ops, widths = choice
    params = ArchParameters(supernet)
    with torch.no_grad():  # make the choice the argmax
        for slot, name in enumerate(ops):
            params.alpha[slot, OPERATORS.index(name)] = 1.0
        for slot, width in enumerate(widths):
            params.width_logits[slot, supernet.width_candidates[slot].index(width)] = 1.0
    arch, kwargs = derive(supernet, params)
    assert arch == supernet.derived_arch and kwargs == supernet.derived_kwargs(ops, widths)
    plain = extract_derived(supernet, ops, widths)
    assert plain.arch_kwargs() == kwargs
    image = random_image(shape, low)
    with torch.no_grad():
        torch.testing.assert_close(supernet(image, one_hot_sample(supernet, ops, widths)), plain(image),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("published", [False, True])
@pytest.mark.parametrize("build, choice, side, shape, low", SUPERNETS)
def test_cost_table_predicts_the_mac_counter_of_the_derived_network(build, choice, side, shape, low, published):
    supernet = build()
    ops, widths = choice
    table = CostTable(supernet, side, mac_measure(published))
    count = count_macs(extract_derived(supernet, ops, widths), torch.zeros(1, *shape[1:]))
    assert table.predict(ops, widths) == (count.macs_published if published else count.macs)
    sample = one_hot_sample(supernet, ops, widths)
    assert table.expected(sample.op_weights, widths).item() == pytest.approx(table.predict(ops, widths), rel=1e-6)


def test_cost_table_fill_measures_each_entry_once():
    supernet = translation_supernet()
    calls = []

    def measure(build, shape):
        calls.append(shape)
        return float(shape[1])

    table = CostTable(supernet, 16, measure)
    table.fill()
    # First cell from the stem's 32: 4 ops x 3 distinct widths; later cells 4 x 3 x 3 (the first's included);
    # the frame (stem + head) at each of 3 last widths x 5 ratios.
    assert len(table.entries) == 4 * 3 * 3 + 3 * 5 and len(calls) == 4 * 3 * 3 + 2 * 3 * 5
    table.fill()
    assert len(calls) == 4 * 3 * 3 + 2 * 3 * 5


def test_latency_table_times_the_plain_operators():
    supernet = AGDTranslationSupernet(ngf=2, cells=2)
    table = CostTable(supernet, 8, latency_measure(threads=1, repeats=2))
    assert table.operator("dwsblock", 8, 8) > 0 and table.frame((8, 1.0)) > 0
    assert table.predict(["conv1x1", "dwsblock"], [8, 8, 1.0]) > table.operator("dwsblock", 8, 8)


def test_agd_cost_is_a_quarter_at_largest_widths_and_three_quarters_at_the_sample():
    supernet = translation_supernet()
    params = ArchParameters(supernet)
    with torch.no_grad():
        params.alpha.copy_(torch.randn(params.alpha.shape, generator=torch.Generator().manual_seed(2)))
    table = CostTable(supernet, 16, mac_measure())
    sample = search_sample(supernet, params, torch.Generator().manual_seed(4))
    cost = agd_cost(table, params, sample)
    probabilities = params.op_weights().detach()
    largest = table.frame((32, 1.0)) + sum(float(probabilities[slot, k]) * table.operator(name, 32, 32)
                                    for slot in range(3) for k, name in enumerate(OPERATORS))
    ins = [32, *sample.widths[:2]]
    sampled = table.frame(sample.widths[2:]) + sum(table.operator(name, ins[slot], sample.widths[slot]) / 4
                                                   for slot in range(3) for name in OPERATORS)
    assert cost.item() == pytest.approx(0.25 * largest + 0.75 * sampled, rel=1e-5)
    cost.backward()
    assert params.alpha.grad.abs().sum() > 0 and params.width_logits.grad.abs().sum(dim=-1).gt(0).all()


def test_penalty_weight_halves_below_the_budget_and_doubles_above():
    weight = PenaltyWeight(1e-17, low=3e9, high=8e9)
    assert weight.update(5e9) == 1e-17
    assert weight.update(9e9) == 2e-17 and weight.update(9e9) == 4e-17
    assert weight.update(1e9) == 2e-17
    assert weight.penalty(torch.tensor(1e9)).item() == pytest.approx(2e-8)
    with pytest.raises(GanslimError, match="the penalty weight must be positive, got 0"):
        PenaltyWeight(0.0, 3e9, 8e9)
    with pytest.raises(GanslimError, match="low <= high, got low=8000000000.0, high=3000000000.0"):
        PenaltyWeight(1e-17, 8e9, 3e9)


def test_a_sample_that_does_not_fit_is_one_line():
    supernet = translation_supernet()
    rows = torch.full((3, 4), 0.25)
    image = torch.zeros(1, 3, 16, 16)
    with pytest.raises(GanslimError, match=r"width slot 1 cannot take 20; choose one of \[16, 16, 24, 24, 32\]"):
        supernet(image, Sample(rows, (16, 20, 32, 1.0)))
    with pytest.raises(GanslimError, match=r"op_weights must be \(3, 4\), got \(2, 4\)"):
        supernet(image, Sample(rows[:2], (16, 16, 32, 1.0)))
    with pytest.raises(GanslimError, match=r"width slot 3 cannot take 0.4; choose one of \[0.333"):
        supernet(image, Sample(rows, (16, 16, 32, 0.4)))
