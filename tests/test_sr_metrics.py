"""SR metrics as BasicSR reports them: uint8-quantised, border-cropped, on the BT.601 Y channel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ganslim.errors import GanslimError
from ganslim.metrics import psnr, rgb_to_y, sr_psnr, sr_ssim

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rgb_to_y_is_bt601_on_the_0_255_scale():
    colors = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0],
                           [0.2, 0.4, 0.6]], dtype=torch.float64).T.reshape(1, 3, 1, 6)
    expected = [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966,
                16 + 65.481 * 0.2 + 128.553 * 0.4 + 24.966 * 0.6]
    assert rgb_to_y(colors).flatten().tolist() == pytest.approx(expected, abs=1e-9)


def test_y_psnr_by_hand():
    target = torch.zeros(1, 3, 2, 2)  # black: Y = 16 everywhere
    output = target.clone()
    output[0, :, 0, 0] = 10 / 255  # one pixel 10 levels up in R, G and B: its Y rises by 219 * 10 / 255
    output[0, 0, 1, 1] = 20 / 255  # another 20 levels up in R only: Y + 65.481 * 20 / 255
    mse = ((219 * 10 / 255) ** 2 + (65.481 * 20 / 255) ** 2) / 4
    assert sr_psnr(output, target, crop_border=0).item() == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    rgb_mse = (3 * 10**2 + 20**2) / 12  # over the 3 channels x 4 pixels
    assert sr_psnr(output, target, crop_border=0, y_channel=False).item() == pytest.approx(
        10 * math.log10(255**2 / rgb_mse), abs=1e-9)


def test_the_border_is_left_out():
    target = torch.full((2, 3, 8, 8), 0.5)
    output = target.clone()
    output[:, :, :2, :] = 0.0  # the top two rows differ
    assert sr_psnr(output, target, crop_border=2).tolist() == [math.inf, math.inf]
    output[:, :, 4, 4] = 1.0
    inside = sr_psnr(output, target, crop_border=2)
    delta = 219 * (255 - 128) / 255  # 0.5 quantises to 128; one pixel of the 4 x 4 left is at 255
    assert inside.tolist() == pytest.approx([10 * math.log10(255**2 / (delta**2 / 16))] * 2, abs=1e-9)
    assert (sr_psnr(output, target, crop_border=1) < inside).all()


def test_images_are_quantised_to_uint8_first():
    target = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0)).mul(255).round().div(255)
    below_half_a_level = target + 0.4 / 255
    assert psnr(below_half_a_level, target, data_range=1.0).item() < 60  # unquantised, they differ
    assert sr_psnr(below_half_a_level, target, crop_border=0).item() == math.inf
    assert sr_psnr(target + 0.6 / 255, target, crop_border=0).item() < math.inf  # a level up wherever room
    overshoot = target.clone()
    overshoot[0, :, 0, 0] = torch.tensor([1.3, -0.2, 1.0])  # the output is not clamped by RRDBNet: here it is
    target[0, :, 0, 0] = torch.tensor([1.0, 0.0, 1.0])
    assert sr_psnr(overshoot, target, crop_border=0).item() == math.inf


def numpy_y(images: torch.Tensor) -> np.ndarray:
    """BasicSR's pipeline, written out: round(clamp * 255) then Y of BT.601, float64, (N, H, W)."""
    pixels = np.round(np.clip(images.double().numpy(), 0, 1) * 255) / 255
    return 16 + 65.481 * pixels[:, 0] + 128.553 * pixels[:, 1] + 24.966 * pixels[:, 2]


@pytest.mark.parametrize("crop_border", [0, 4])
def test_y_ssim_is_skimage_matlab_style_ssim(crop_border):
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, 32, 28, generator=generator)
    output = (target + 0.15 * torch.randn(2, 3, 32, 28, generator=generator)).clamp(0, 1)
    expected = []
    for x, y in zip(numpy_y(output), numpy_y(target)):
        if crop_border:
            x, y = x[crop_border:-crop_border, crop_border:-crop_border], y[crop_border:-crop_border,
                                                                               crop_border:-crop_border]
        expected.append(structural_similarity(x, y, data_range=255, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False))
    got = sr_ssim(output, target, crop_border=crop_border)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-9)
    assert 0.2 < min(expected) < 0.9  # a real difference, not two identical images


def test_rgb_ssim_averages_the_channels():
    generator = torch.Generator().manual_seed(2)
    target = torch.rand(1, 3, 16, 16, generator=generator)
    output = (target + 0.1 * torch.randn(1, 3, 16, 16, generator=generator)).clamp(0, 1)
    pixels = [np.round(t.double().numpy()[0] * 255) for t in (output, target)]
    expected = np.mean([structural_similarity(pixels[0][c], pixels[1][c], data_range=255, gaussian_weights=True,
                                              sigma=1.5, use_sample_covariance=False) for c in range(3)])
    assert sr_ssim(output, target, crop_border=0, y_channel=False).item() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"crop_border": 4, "shape": (1, 3, 8, 8)}, "a border of 4 pixels leaves nothing of 8x8 images"),
    ({"crop_border": -1}, r"crop_border=-1 is not a non-negative integer \(use the scale\)"),
    ({"crop_border": 0, "shape": (1, 2, 8, 8)}, "the Y channel needs RGB .* these have 2 channels"),
])
def test_bad_arguments_are_one_line(kwargs, message):
    images = torch.rand(*kwargs.get("shape", (1, 3, 16, 16)))
    with pytest.raises(GanslimError, match=message):
        sr_psnr(images, images, crop_border=kwargs["crop_border"])
    with pytest.raises(GanslimError, match="output and target must both be"):
        sr_ssim(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 8), crop_border=0)
