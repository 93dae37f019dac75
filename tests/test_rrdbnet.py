"""ESRGAN's RRDBNet: BasicSR's keys and arithmetic, the published size and cost, scales 4 / 2 / 1."""

from __future__ import annotations

import pytest
import torch

from esrgan_reference import conv_table, random_state, reference_forward
from ganslim.archs import build_generator
from ganslim.archs.sr import ResidualDenseBlock
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs, count_params
from ganslim.signature import UNIT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}


def test_esrgan_x4_has_the_published_size_and_cost_at_a_256_input():
    with torch.device("meta"):  # shapes only: the 1.17 TMAC forward is never computed
        generator = build_generator("rrdbnet")
        count = count_macs(generator, torch.empty(1, 3, 256, 256))
    assert count_params(generator) == 16_697_987
    assert f"{count_params(generator) / 1e6:.3f} M" == "16.698 M"
    # No transposed convs and no elementwise multiply (the residual scaling is part of the add): both agree.
    assert count.macs == count.macs_published == 1_174_853_910_528
    assert f"{count.macs / 1e9:.2f} G" == "1174.85 G"


def test_the_weights_carry_basicsr_key_names_in_order():
    generator = build_generator("rrdbnet", **TINY)
    expected = [f"{row[0]}.{leaf}" for row in conv_table(2) for leaf in ("weight", "bias")]
    assert list(generator.state_dict()) == expected


@pytest.mark.parametrize("scale, height, width", [(4, 7, 9), (2, 10, 6), (1, 12, 8)])
def test_forward_is_basicsr_arithmetic(scale, height, width):
    in_channels = 3 * {4: 1, 2: 4, 1: 16}[scale]
    state = random_state(8, 2, 4, in_channels, 3, seed=scale)
    generator = build_generator("rrdbnet", scale=scale, **TINY).eval()
    generator.load_state_dict(state, strict=True)
    image = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = generator(image)
        features = generator.forward_features(image)
    expected = reference_forward(state, image, scale)
    assert output.shape == (2, 3, scale * height, scale * width)
    assert torch.allclose(output, expected, atol=1e-5)
    assert expected.std() > 0.05  # not a comparison of two near-constant maps
    unshuffle = 4 // scale
    assert features.shape == (2, 8, height // unshuffle, width // unshuffle)


@pytest.mark.parametrize("scale, multiple", [(4, 1), (2, 2), (1, 4)])
def test_signature_unit_range_scale_and_the_sides_pixel_unshuffle_needs(scale, multiple):
    generator = build_generator("rrdbnet", scale=scale, num_feat=4, num_block=1, num_grow_ch=2)
    signature = generator.signature
    assert signature.image_input.value_range == UNIT and signature.output.value_range == UNIT
    assert signature.output.scale == scale and signature.image_input.sides.multiple == multiple
    assert signature.describe().endswith(f"-> image (3 ch, [0, 1], x{scale})")
    if multiple > 1:
        with pytest.raises(GanslimError, match=f"the input size 9 does not fit .* multiples of {multiple}"):
            signature.check_side(9)
        with pytest.raises(RuntimeError):
            generator(torch.rand(1, 3, 9, 9))


@pytest.mark.parametrize("scale", [3, 8, 0, True])
def test_an_unsupported_scale_is_one_line(scale):
    with pytest.raises(GanslimError, match=f"rrdbnet scale {scale!r} is not supported: use 4, 2 or 1"):
        build_generator("rrdbnet", scale=scale)


def test_dense_convs_start_as_basicsr_scaled_kaiming_init():
    torch.manual_seed(0)
    block = ResidualDenseBlock(num_feat=64, num_grow_ch=32)
    for conv in (block.conv1, block.conv5):
        fan_in = conv.weight[0].numel()
        assert torch.count_nonzero(conv.bias) == 0
        assert conv.weight.std().item() == pytest.approx(0.1 * (2 / fan_in) ** 0.5, rel=0.05)
