"""AutoGAN-Distiller's derived networks: layout, shapes, signatures, checkpoints and MACs by hand."""

from __future__ import annotations

import pytest
import torch

from ganslim.archs import build_generator
from ganslim.archs.agd import OPERATORS, WIDTH_RATIOS, make_divisible, width_choices
from ganslim.archs.agd.translation import frame_widths
from ganslim.checkpoints import load_generator, save_model
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRANSLATION = {"ngf": 8, "ops": ["conv1x1", "conv3x3", "residual", "dwsblock", "residual"],
               "widths": [16, 24, 24, 32, 16], "stem_ratio": 0.5}
SR = {"num_feat": 16, "ops": [["residual", "conv1x1", "dwsblock"], ["dwsblock", "conv3x3", "residual"]],
      "widths": [[8, 16], [16, 8]]}


def test_width_choices_are_the_reference_rounding():
    assert width_choices(256) == [88, 128, 168, 216, 256]
    assert width_choices(64) == [24, 32, 40, 56, 64]
    assert make_divisible(10.67) == 16  # rounding down to 8 would lose more than 10%
    assert OPERATORS == ("conv1x1", "conv3x3", "residual", "dwsblock")
    assert [frame_widths(64, ratio) for ratio in WIDTH_RATIOS] == [(24, 40), (32, 64), (40, 88), (56, 104), (64, 128)]
    assert frame_widths(2) == (2, 4)  # ratio 1 keeps any ngf as it is


def test_translation_layout_operators_and_shortcuts():
    generator = build_generator("agd_translation", **TRANSLATION)
    conv1x1, conv3x3, residual, dwsblock, narrowing = generator.cells
    # The reference's "skip" is a 1x1 conv with norm and ReLU, not an identity.
    assert conv1x1.conv.weight.shape == (16, 32, 1, 1) and conv3x3.conv.weight.shape == (24, 16, 3, 3)
    assert residual.shortcut is None  # 24 -> 24
    assert dwsblock.expand.weight.shape == (96, 24, 1, 1) and dwsblock.depthwise.weight.shape == (96, 1, 3, 3)
    assert dwsblock.shortcut[0].weight.shape == (32, 24, 1, 1)
    assert narrowing.shortcut[0].weight.shape == (16, 32, 1, 1)
    # stem_ratio 0.5 of ngf 8: (4, 8) rounded to multiples of 8 -> (8, 8) for the stem's and head's outer convs.
    assert [generator.stem[i].weight.shape for i in (0, 3, 6)] == [(8, 3, 7, 7), (8, 8, 3, 3), (32, 8, 3, 3)]
    assert generator.head[0].weight.shape == (16, 8, 3, 3)  # transposed: last cell's width in, s2 out
    assert generator.head[3].weight.shape == (8, 8, 3, 3) and generator.head[6].weight.shape == (3, 8, 7, 7)
    assert all(conv.bias is None for conv in generator.modules() if isinstance(conv, torch.nn.Conv2d))
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert norms and not any(norm.affine for norm in norms)


@pytest.mark.parametrize("name, kwargs, side, out_side, low", [
    ("agd_translation", TRANSLATION, 16, 16, -1.0), ("agd_sr", SR, 6, 24, 0.0)])
def test_forward_shape_range_and_signature(name, kwargs, side, out_side, low):
    generator = build_generator(name, **kwargs).eval()
    image = generator.signature.example_inputs(side, batch=2, generator=torch.Generator().manual_seed(0))[0]
    with torch.no_grad():
        out = generator(image)
    assert out.shape == (2, 3, out_side, out_side)
    assert low <= out.min() and out.max() <= 1.0


def test_signatures_describe_translation_and_x4_super_resolution():
    assert build_generator("agd_translation", **TRANSLATION).signature.describe() == (
        "image (3 ch, [-1, 1], multiples of 4 and at least 8 pixels) -> image (3 ch, [-1, 1], x1)")
    assert build_generator("agd_sr", **SR).signature.describe() == (
        "image (3 ch, [0, 1], any size) -> image (3 ch, [0, 1], x4)")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("name, kwargs, side", [("agd_translation", TRANSLATION, 16), ("agd_sr", SR, 8)])
def test_save_and_load_rebuild_the_same_network(tmp_path, suffix, name, kwargs, side):
    torch.manual_seed(0)
    generator = build_generator(name, **kwargs).eval()
    assert generator.arch_kwargs() == {**generator.arch_kwargs(), **kwargs}
    path = save_model(tmp_path / f"g{suffix}", generator, name, generator.arch_kwargs())
    loaded = load_generator(path)
    assert loaded.arch == name and loaded.arch_kwargs == generator.arch_kwargs()
    assert loaded.model.signature == generator.signature
    image = generator.signature.example_inputs(side, generator=torch.Generator().manual_seed(1))[0]
    with torch.no_grad():
        assert torch.equal(loaded.model(image), generator(image))


def _operator_macs(name: str, pixels: int, c_in: int, c_out: int) -> int:
    """True MACs of one operator by hand (a 1x1 shortcut when the widths differ)."""
    shortcut = pixels * c_in * c_out if c_in != c_out else 0
    if name == "conv1x1":
        return pixels * c_in * c_out
    if name == "conv3x3":
        return pixels * c_in * c_out * 9
    if name == "residual":
        return pixels * 9 * (c_in * c_out + c_out * c_out) + shortcut
    hidden = 4 * c_in
    return pixels * (c_in * hidden + hidden * 9 + hidden * c_out) + shortcut


@pytest.mark.parametrize("stem_ratio, s1, s2", [(1.0, 64, 128), (4 / 12, 24, 40)])
def test_translation_macs_by_hand_at_256(stem_ratio, s1, s2):
    ops = ["conv1x1", "conv3x3", "residual", "dwsblock", "residual", "conv3x3", "dwsblock", "conv1x1", "residual"]
    widths = [88, 128, 168, 216, 256, 256, 128, 88, 168]
    side, ngf = 256, 64
    quarter = (side // 4) ** 2
    stem = side**2 * 3 * s1 * 49 + (side // 2) ** 2 * s1 * s2 * 9 + quarter * s2 * 4 * ngf * 9
    cells = sum(_operator_macs(name, quarter, c_in, c_out)
                for name, c_in, c_out in zip(ops, [4 * ngf, *widths[:-1]], widths))
    head_true = quarter * widths[-1] * s2 * 9 + (side // 2) ** 2 * s2 * s1 * 9 + side**2 * s1 * 3 * 49
    with torch.device("meta"):
        generator = build_generator("agd_translation", ops=ops, widths=widths, stem_ratio=stem_ratio)
        count = count_macs(generator, torch.zeros(1, 3, side, side))
    assert count.macs == stem + cells + head_true
    # torchprofile counts the transposed convs at their output resolution: 4x their true MACs.
    transposed = quarter * widths[-1] * s2 * 9 + (side // 2) ** 2 * s2 * s1 * 9
    assert count.macs_published == count.macs + 3 * transposed


def test_sr_macs_by_hand_at_64():
    ops = [["conv1x1", "conv3x3", "residual", "dwsblock", "residual"]] * 4 + [["dwsblock"] * 5]
    widths = [[24, 32, 40, 56], [64, 64, 24, 24], [40, 40, 40, 40], [56, 24, 64, 32], [24, 24, 24, 24]]
    side, nf = 64, 64
    pixels = side**2
    cells = 0
    for names, inner in zip(ops, widths):
        bounds = [nf, *inner, nf]
        cells += sum(_operator_macs(name, pixels, bounds[i], bounds[i + 1]) for i, name in enumerate(names))
    frame = (pixels * 3 * nf * 9 + pixels * nf * nf * 9 + 4 * pixels * nf * nf * 9 + 2 * 16 * pixels * nf * nf * 9
             + 16 * pixels * nf * 3 * 9)
    with torch.device("meta"):
        generator = build_generator("agd_sr", ops=ops, widths=widths)
        count = count_macs(generator, torch.zeros(1, 3, side, side))
    assert count.macs == count.macs_published == frame + cells


def test_the_default_translation_network_costs_resnet_9blocks():
    """Nine residual cells at 256 channels: the teacher's arithmetic (zero instead of reflect padding)."""
    with torch.device("meta"):
        default = count_macs(build_generator("agd_translation"), torch.zeros(1, 3, 256, 256))
        teacher = count_macs(build_generator("resnet_9blocks", norm="instance"), torch.zeros(1, 3, 256, 256))
    assert default == teacher
    assert default.macs == 49_551_507_456


def test_the_searched_stem_ratio_reaches_8x_below_resnet_9blocks():
    """At stem_ratio 1 the frame alone is 6.06 G true / 13.31 G published MACs; at 4/12 depthwise cells fit 8x."""
    side = torch.zeros(1, 3, 256, 256)
    with torch.device("meta"):
        teacher = count_macs(build_generator("resnet_9blocks", norm="instance"), side)
        small = count_macs(build_generator("agd_translation", ops=["dwsblock"] * 9, widths=[88] * 9,
                                           stem_ratio=WIDTH_RATIOS[0]), side)
        smallest = count_macs(build_generator("agd_translation", ops=["conv1x1"] * 9, widths=[88] * 9,
                                              stem_ratio=WIDTH_RATIOS[0]), side)
    assert 8 * small.macs <= teacher.macs and 8 * small.macs_published <= teacher.macs_published
    assert (smallest.macs, smallest.macs_published) == (1_598_816_256, 2_412_773_376)


@pytest.mark.parametrize("name, kwargs, message", [
    ("agd_translation", {"ops": ["conv3x3", "skip"]}, r"agd_translation ops\[1\] is 'skip', not an operator"),
    ("agd_translation", {"ops": ["conv3x3"] * 2, "widths": [8]}, "agd_translation widths must be a list of 2"),
    ("agd_translation", {"ngf": 0}, "agd_translation ngf=0 is not a positive integer"),
    ("agd_translation", {"stem_ratio": 0}, r"agd_translation stem_ratio=0 is not a ratio in \(0, 1\]"),
    ("agd_translation", {"stem_ratio": 1.5}, r"agd_translation stem_ratio=1.5 is not a ratio in \(0, 1\]"),
    ("agd_translation", {"stem_ratio": "1/3"}, r"agd_translation stem_ratio='1/3' is not a ratio"),
    ("agd_sr", {"ops": [["conv3x3", "conv1x1"]], "widths": [[8, 8]]}, r"agd_sr widths\[0\] must be a list of 1"),
    ("agd_sr", {"ops": "conv3x3"}, "agd_sr ops must be a non-empty list of cells"),
])
def test_bad_choices_are_one_line_errors(name, kwargs, message):
    with pytest.raises(GanslimError, match=message):
        build_generator(name, **kwargs)
