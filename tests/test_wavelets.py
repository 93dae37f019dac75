"""The Haar DWT / IDWT against hand-computed 2x2 blocks, its 12-channel layout and exact round trip, and the
style-modulated IDWT upsampling."""

from __future__ import annotations

import pytest
import torch

from ganslim.errors import GanslimError
from ganslim.nn.wavelets import IDWTUpsample, haar_dwt, haar_idwt, image_to_wavelets, wavelets_to_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# One 2x2 block [[a, b], [c, d]] per colour.
BLOCKS = {"R": [[1.0, 2.0], [3.0, 5.0]], "G": [[0.0, 4.0], [-2.0, 1.0]], "B": [[7.0, 7.0], [1.0, -1.0]]}
# By hand: LL (a+b+c+d)/2, LH (a+b-c-d)/2, HL (a-b+c-d)/2, HH (a-b-c+d)/2.
BANDS_BY_HAND = {"R": (5.5, -2.5, -1.5, 0.5), "G": (1.5, 2.5, -3.5, -0.5), "B": (7.0, 7.0, 1.0, -1.0)}


def _image() -> torch.Tensor:
    return torch.tensor([BLOCKS["R"], BLOCKS["G"], BLOCKS["B"]]).unsqueeze(0)  # (1, 3, 2, 2)


def test_dwt_of_a_2x2_block_is_the_hand_computed_bands():
    low, high = haar_dwt(_image())
    assert low.shape == (1, 3, 1, 1) and high.shape == (1, 3, 3, 1, 1)
    for index, colour in enumerate("RGB"):
        ll, lh, hl, hh = BANDS_BY_HAND[colour]
        assert low[0, index].item() == ll
        assert high[0, index].flatten().tolist() == [lh, hl, hh]


def test_wavelet_channels_are_colour_major_after_the_three_low_bands():
    # [LL_R, LL_G, LL_B, R_LH, R_HL, R_HH, G_LH, G_HL, G_HH, B_LH, B_HL, B_HH]
    expected = [BANDS_BY_HAND[c][0] for c in "RGB"] + [v for c in "RGB" for v in BANDS_BY_HAND[c][1:]]
    assert image_to_wavelets(_image()).flatten().tolist() == expected
    assert expected == [5.5, 1.5, 7.0, -2.5, -1.5, 0.5, 2.5, -3.5, -0.5, 7.0, 1.0, -1.0]


def test_idwt_of_the_hand_bands_is_the_block_and_each_block_lands_in_its_place():
    wavelets = torch.tensor([5.5, 1.5, 7.0, -2.5, -1.5, 0.5, 2.5, -3.5, -0.5, 7.0, 1.0, -1.0]).view(1, 12, 1, 1)
    assert torch.equal(wavelets_to_image(wavelets), _image())
    image = torch.zeros(1, 1, 4, 6)
    image[0, 0, 3, 5] = 2.0  # pixel d (bottom right) of block (1, 2)
    low, high = haar_dwt(image)
    assert low[0, 0].nonzero().tolist() == [[1, 2]] and low[0, 0, 1, 2] == 1.0
    assert high[0, 0, :, 1, 2].tolist() == [-1.0, -1.0, 1.0]  # LH, HL, HH: d enters -, -, +
    assert torch.equal(haar_idwt(low, high), image)


def test_round_trips_are_exact():
    image = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(wavelets_to_image(image_to_wavelets(image)), image, atol=1e-6)
    wavelets = torch.randn(2, 12, 4, 5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(image_to_wavelets(wavelets_to_image(wavelets)), wavelets, atol=1e-6)
    # Orthonormal: the energy is kept.
    assert torch.allclose(image_to_wavelets(image).pow(2).sum(), image.pow(2).sum(), rtol=1e-5)


def test_bad_shapes_are_one_line():
    with pytest.raises(GanslimError, match="even sides, got 3x4"):
        haar_dwt(torch.zeros(1, 3, 3, 4))
    with pytest.raises(GanslimError, match="come in fours .* got 6"):
        wavelets_to_image(torch.zeros(1, 6, 2, 2))
    with pytest.raises(GanslimError, match="multiple of 4 channels .* got 10"):
        IDWTUpsample(10, 8)


def test_idwt_upsample_scales_by_the_style_then_splits_low_and_high_bands():
    upsample = IDWTUpsample(8, style_dim=5)
    assert upsample.modulation.bias.tolist() == [1.0] * 8  # bias initialised to 1, as MobileStyleGAN's
    rng = torch.Generator().manual_seed(2)
    x, style = torch.randn(2, 8, 3, 3, generator=rng), torch.randn(2, 5, generator=rng)
    with torch.no_grad():
        out = upsample(x, style)
        scaled = x * (style @ upsample.modulation.weight.T + upsample.modulation.bias).view(2, 8, 1, 1)
    assert out.shape == (2, 2, 6, 6)
    # Channels 0-1 are the low bands of output channels 0-1, channels 2-4 and 5-7 their LH, HL, HH.
    expected = haar_idwt(scaled[:, :2], scaled[:, 2:].reshape(2, 2, 3, 3, 3))
    assert torch.allclose(out, expected, atol=1e-6)
    low_only = torch.zeros(1, 8, 1, 1)
    low_only[0, 1] = 4.0
    with torch.no_grad():
        upsample.modulation.weight.zero_()
        assert upsample(low_only, torch.zeros(1, 5)).flatten().tolist() == [0.0] * 4 + [2.0] * 4
