"""Models side by side, figure by figure: parameters and MACs on one image, image quality against targets (or
against another model's outputs), and latency timed interleaved. The run summaries of GAN Compression and OMGD,
the report, the bench and the demo compare their teachers and students through these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganslim.measure.evaluate import Scoring
from ganslim.measure.profile import MacCount, count_macs, count_params, interleaved_times, num_threads
from ganslim.signature import signature_of


@dataclass(frozen=True)
class Cost:
    """Parameters and MACs (both conventions) of one (1, C, side, side) forward."""

    params: int
    macs: MacCount

    def to_dict(self) -> dict[str, int]:
        """``{"params", "macs", "macs_published"}``, as run summaries record them."""
        return {"params": self.params, "macs": self.macs.macs, "macs_published": self.macs.macs_published}


def model_cost(model: nn.Module, side: int) -> Cost:
    """``model``'s parameters and MACs on one example input of its signature at ``side`` x ``side`` (a
    super-resolution model's LR side), made on the device of its weights (a model on the meta device is counted
    without arithmetic)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return Cost(count_params(model), count_macs(model, signature_of(model, side).example_inputs(side,
                                                                                                   device=device)))


def image_quality(outputs: Tensor, references: Tensor, scoring: Scoring = Scoring()) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of ``outputs`` (N, C, H, W) against ``references`` (same shape), compared as
    ``scoring`` says (default: image-to-image images in [-1, 1])."""
    return {"psnr": float(scoring.psnr(outputs, references).mean()),
            "ssim": float(scoring.ssim(outputs, references).mean())}


def interleaved_model_times(models: Mapping[str, nn.Module], side: int, threads: int | None, warmup: int,
                            repeats: int) -> dict[str, list[float]]:
    """Milliseconds of each model in each of ``repeats`` rounds (after ``warmup``) on one seeded example
    input of the first model's signature at ``side`` x ``side`` (images uniform in their value range), eager, in
    inference mode on ``threads`` CPU threads (None: torch's count). Every round runs each model once, the order
    rotating (:func:`ganslim.measure.profile.timing.interleaved_times`), so round ``i`` of every list is the same
    round."""
    first = next(iter(models.values()))
    image = signature_of(first, side).example_inputs(side, generator=torch.Generator().manual_seed(0))[0]
    with torch.inference_mode(), num_threads(threads):
        return interleaved_times(models, image, warmup=warmup, repeats=repeats)
