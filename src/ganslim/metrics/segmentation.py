"""Cityscapes mIoU of generated images, as GAN Compression scores GauGAN and pix2pix: a segmentation network
(:mod:`ganslim.metrics.drn`) labels each generated image, its class scores are resized (bilinear) to the label
map's own resolution, and the arg-max is compared with the label map's train ids.

Label maps hold Cityscapes ``labelIds`` (what ``gtFine/*_labelIds.png`` and SPADE's inputs hold); they become the
19 ``trainIds`` by the official table, every other id 255 (ignored). One confusion matrix is summed over all images;
mIoU is the mean over the classes that occur (in the labels or the predictions) of TP / (TP + FP + FN), x100.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_ID = 255
# cityscapesScripts' labels.py: labelId -> trainId of the 19 evaluated classes (road … bicycle).
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                        26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
# The Cityscapes RGB statistics DRNSeg was trained with (GAN Compression's SegList).
DRN_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
DRN_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """(H, W) Cityscapes labelIds -> (H, W) uint8 trainIds, 255 where the id is not one of the 19 classes."""
    table = np.full(256, IGNORE_ID, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        table[label_id] = train_id
    return table[np.clip(label_ids, 0, 255).astype(np.int64)]


def confusion_matrix(prediction: np.ndarray, train_ids: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) int64 counts, rows the true class, of the pixels whose train id is below ``classes``."""
    valid = train_ids < classes
    pairs = classes * train_ids[valid].astype(np.int64) + prediction[valid].astype(np.int64)
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def mean_iou(confusion: np.ndarray) -> float:
    """mIoU x100 over the classes present in ``confusion`` (rows: truth, columns: prediction); NaN if none is."""
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - hits
    present = union > 0
    return float((hits[present] / union[present]).mean() * 100) if present.any() else float("nan")


def segment(segmenter: nn.Module, images: Tensor, size: tuple[int, int]) -> np.ndarray:
    """Class per pixel of ``images`` (N, 3, h, w) in [-1, 1] at ``size`` = (H, W): uint8-quantised as a saved image
    (GAN Compression's ``tensor2im`` truncates), normalised with the Cityscapes statistics, scored, the scores
    resized (bilinear) to ``size``; -> (N, H, W) int64."""
    pixels = ((images.float().clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8).float() / 255
    mean = torch.tensor(DRN_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(DRN_STD, device=images.device).view(1, 3, 1, 1)
    scores = segmenter((pixels - mean) / std)
    if tuple(scores.shape[2:]) != tuple(size):
        scores = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
    return scores.argmax(1).cpu().numpy()
