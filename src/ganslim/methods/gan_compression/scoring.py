"""GAN Compression's scoring of candidates: each configuration is extracted from the supernet as a compact
``mobile_resnet`` (``mobile_spade``), its BatchNorm statistics are recalibrated on a few training batches (when the
norm is batch: the supernet's running statistics belong to no sub-network in particular), and it is scored on the
held-out *training* images (never the test split) with the task's metric:

* paired data (and a SPADE teacher's label maps with their photos): ``psnr`` (default) or ``ssim`` vs the ground
  truth;
* unpaired data: ``fid`` against the training B images when the Inception weights are available
  (``ganslim.metrics.load_inception``), otherwise ``psnr_teacher``, the fidelity to the teacher's output.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate

from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator
from ganslim.archs.spade import SuperMobileSPADEGenerator
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.compress import extract_subnet
from ganslim.errors import GanslimError
from ganslim.measure.evaluate import find_inception_weights
from ganslim.methods.gan_compression.data import image_metrics, train_split
from ganslim.methods.gan_compression.family import family_of_model
from ganslim.metrics import compute_fid_kid, extract_features, load_inception

if TYPE_CHECKING:
    from ganslim.methods.gan_compression.search import SearchConfig

logger = logging.getLogger(__name__)

METRICS = ("auto", "psnr", "ssim", "fid", "psnr_teacher")


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Recompute every BatchNorm's running statistics as the plain average over ``batches``; eval mode after.

    Only the BatchNorm layers run in training mode (dropout and the rest stay in eval mode); each layer's
    statistics are reset first and accumulated with ``momentum=None`` (a cumulative average), then its
    momentum is restored. ``batches`` are (N, C, H, W) inputs. Returns ``model``.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    model.eval()
    if not norms:
        return model
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        for images in batches:
            model(images)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return model


class CandidateScorer:
    """Extracts, recalibrates and scores sub-networks of a supernet on held-out training images.

    Args:
        supernet: the trained supernet (on ``device``, left unchanged).
        eval_batches: held-out batches ``{"A", "B", "split", "teacher"?}`` on ``device``.
        calibration: (N, C, H, W) training inputs for BatchNorm recalibration (unused without batch norm).
        paired: whether B is the ground truth of A.
        inception: FID feature extractor and ``real_features`` (N, 2048) of real B images, or None.
    """

    def __init__(self, supernet: SuperMobileResnetGenerator, eval_batches: list[dict],
                 calibration: list[torch.Tensor], paired: bool, inception: nn.Module | None = None,
                 real_features: np.ndarray | None = None) -> None:
        self.supernet, self.eval_batches, self.calibration = supernet, eval_batches, calibration
        self.paired, self.inception, self.real_features = paired, inception, real_features

    def compact(self, channels: Sequence[int]) -> MobileResnetGenerator:
        """The sub-network as a standalone model, BatchNorm recalibrated, in eval mode."""
        model = extract_subnet(self.supernet, channels)
        if self.supernet.norm == "batch":
            recalibrate_batchnorm(model, self.calibration)
        return model.eval()

    @torch.no_grad()
    def score(self, model: nn.Module) -> dict[str, float]:
        """The metrics of a compact model (see the module docstring)."""
        metrics = image_metrics(model, None, self.eval_batches, self.paired)
        metrics = {key: value for key, value in metrics.items() if not key.startswith("val_")}
        if not self.paired:
            metrics.pop("psnr", None)  # the same number as psnr_teacher for unpaired data
        if self.inception is not None:
            fakes = (model(batch["A"]).float() for batch in self.eval_batches)
            metrics["fid"] = compute_fid_kid(fakes, self.real_features, self.inception, kid=False).fid
        return metrics


def _batches(dataset, indices: Sequence[int], batch_size: int, device: torch.device) -> list[dict]:
    batches = []
    for start in range(0, len(indices), batch_size):
        batch = default_collate([dataset[i] for i in indices[start:start + batch_size]])
        batches.append({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
    return batches


def _resolve_metric(config: SearchConfig, paired: bool) -> tuple[str, nn.Module | None]:
    """The metric to optimise and, for FID, the Inception extractor."""
    metric = config.metric
    if metric == "auto":
        metric = "psnr" if paired else "fid"
    if paired and metric == "fid":
        raise GanslimError("metric fid is for unpaired data; paired data is scored against its ground truth: use "
                           "psnr or ssim")
    if not paired and metric in ("psnr", "ssim"):
        raise GanslimError(f"metric {metric} needs ground truth, which unpaired data lacks: use fid or psnr_teacher")
    if metric != "fid":
        return metric, None
    path, missing = find_inception_weights(config.inception_weights or None)
    if path is not None:
        return "fid", load_inception(path)
    if config.metric == "fid":
        raise GanslimError(f"metric fid needs the Inception network: {missing}")
    logger.warning("no FID (%s); scoring by fidelity to the teacher (psnr_teacher) instead", missing)
    return "psnr_teacher", None


def build_scorer(config: SearchConfig, supernet: SuperMobileResnetGenerator | SuperMobileSPADEGenerator,
                 device: torch.device) -> tuple[CandidateScorer, str]:
    """The scorer over the held-out training images and the metric it optimises."""
    family = family_of_model(supernet)
    paired = family.paired(config)
    metric, inception = _resolve_metric(config, paired)
    teacher = family.load_teacher(config, device).model if config.teacher else None
    if family.name == "spade" and teacher is None:
        raise GanslimError("a mobile SPADE supernet's label maps are read as its teacher encodes them: pass --teacher")
    holdout = family.holdout_items(config, teacher)
    count = len(holdout) if not config.eval_images else min(len(holdout), config.eval_images)
    eval_batches = _batches(holdout, range(count), config.batch_size, device)
    if teacher is not None:
        with torch.no_grad():
            for batch in eval_batches:
                batch["teacher"] = teacher(batch["A"]).float()
    elif not paired:
        raise GanslimError("unpaired data is scored against the teacher's outputs: pass --teacher")
    calibration: list[torch.Tensor] = []
    if supernet.norm == "batch":
        train = family.training_items(config, teacher)
        train.set_epoch(0)
        needed = min(len(train), config.recalibration_batches * config.batch_size)
        calibration = [batch["A"] for batch in _batches(train, range(needed), config.batch_size, device)]
    real_features = None
    if inception is not None:
        inception = inception.to(device)
        reals = train_split(config, train=False)
        reals.serial_batches = True  # item i holds B image i: each B image once
        count_b = len(reals.B_paths)
        reals_b = (default_collate([reals[i]["B"] for i in range(s, min(s + 16, count_b))]).to(device)
                   for s in range(0, count_b, 16))
        real_features = extract_features(reals_b, inception)
    return CandidateScorer(supernet, eval_batches, calibration, paired, inception, real_features), metric
