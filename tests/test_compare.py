"""ganslim.measure.compare: the figures every teacher-vs-student comparison is made of."""

from __future__ import annotations

import pytest
import torch

from ganslim.archs import build_generator
from ganslim.measure.compare import image_quality, interleaved_model_times, model_cost
from ganslim.measure.profile import count_macs, count_params
from ganslim.metrics import psnr, ssim

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_model_cost_counts_on_the_device_of_the_weights_the_meta_device_too():
    kwargs = {"input_nc": 1, "ngf": 4, "n_blocks": 3}
    model = build_generator("mobile_resnet", **kwargs)
    with torch.device("meta"):
        on_meta = model_cost(build_generator("mobile_resnet", **kwargs), 32)
    counted = count_macs(model, torch.zeros(1, 1, 32, 32))
    assert model_cost(model, 32) == on_meta
    assert on_meta.to_dict() == {"params": count_params(model), "macs": counted.macs,
                                 "macs_published": counted.macs_published}


def test_image_quality_is_the_mean_psnr_and_ssim():
    generator = torch.Generator().manual_seed(0)
    outputs, targets = (torch.rand(3, 3, 16, 16, generator=generator) * 2 - 1 for _ in range(2))
    quality = image_quality(outputs, targets)
    assert quality == pytest.approx({"psnr": psnr(outputs, targets).mean().item(),
                                     "ssim": ssim(outputs, targets).mean().item()})


def test_models_are_timed_in_the_same_rounds():
    models = {name: build_generator("mobile_resnet", ngf=ngf, n_blocks=3).eval() for name, ngf in (("a", 4), ("b", 8))}
    times = interleaved_model_times(models, 16, threads=1, warmup=1, repeats=3)
    assert set(times) == {"a", "b"} and all(len(ms) == 3 and min(ms) > 0 for ms in times.values())
