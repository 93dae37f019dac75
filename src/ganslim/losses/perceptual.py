"""Perceptual losses on VGG16 activations: style (Gram matrices) and feature (relu2_2) terms, and VGG lookup.

As in OMGD and AutoGAN-Distiller: the style loss is the L1 distance between Gram matrices normalised by
C·H·W, summed over relu1_2, relu2_2, relu3_3 and relu4_3; the feature loss is the L1 distance between relu2_2
activations. Features come from :class:`ganslim.nn.vgg.VGG16Features` as ``{layer name: (N, C, H, W)}``.
SPADE's perceptual loss (:func:`pyramid_vgg_loss`) is the weighted L1 over VGG19's relu1_1 ... relu5_1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ganslim.nn.vgg import (
    PYRAMID_LAYERS,
    STYLE_LAYERS,
    VGG16Features,
    VGG19ReLUFeatures,
    find_vgg16_weights,
    load_vgg16,
)

FEATURE_LAYER = "relu2_2"
PYRAMID_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # SPADE / pix2pixHD: relu1_1 ... relu5_1


def gram_matrix(features: Tensor) -> Tensor:
    """Channel-by-channel inner products of a feature map, normalised by its size.

    Args:
        features: (N, C, H, W).

    Returns:
        (N, C, C) float32 (or float64 for float64 input): ``G[n, i, j] = sum_hw F[n,i,h,w] F[n,j,h,w] / (C*H*W)``.
    """
    if features.dim() != 4:
        raise ValueError(f"gram_matrix takes (N, C, H, W) features, got {tuple(features.shape)}")
    n, c, h, w = features.shape
    # float32 at least, autocast off: bf16 sums over H*W would lose most of their digits.
    flat = features.to(torch.promote_types(features.dtype, torch.float32)).reshape(n, c, h * w)
    with torch.autocast(device_type=flat.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def _pair(pred: Mapping[str, Tensor], target: Mapping[str, Tensor], layer: str) -> tuple[Tensor, Tensor]:
    if layer not in pred or layer not in target:
        raise ValueError(
            f"layer '{layer}' is missing from the features (pred has {list(pred)}, target has {list(target)})"
        )
    if pred[layer].shape != target[layer].shape:
        raise ValueError(
            f"'{layer}' features differ in shape: pred {tuple(pred[layer].shape)}, "
            f"target {tuple(target[layer].shape)}"
        )
    return pred[layer], target[layer].detach()


def style_loss(
    pred_features: Mapping[str, Tensor],
    target_features: Mapping[str, Tensor],
    layers: Sequence[str] = STYLE_LAYERS,
    distance: Callable[[Tensor, Tensor], Tensor] = F.l1_loss,
) -> Tensor:
    """Sum over ``layers`` of the mean absolute difference between Gram matrices (OMGD's style term).

    Args:
        pred_features: ``{layer: (N, C, H, W)}`` of the image being trained (the student's output).
        target_features: the same layers of the target image (a teacher's output); treated as constant.
        layers: which layers to compare; default relu1_2, relu2_2, relu3_3, relu4_3.
        distance: ``(pred gram, target gram) -> ()``; default L1 (OMGD), ``F.mse_loss`` for AutoGAN-Distiller.

    Returns:
        () float32 tensor: ``sum_l mean |gram(pred_l) - gram(target_l)|``, the mean over N·C·C entries (with
        ``F.mse_loss``, the mean squared difference).
    """
    total = torch.zeros((), device=next(iter(pred_features.values())).device)
    for layer in layers:
        pred, target = _pair(pred_features, target_features, layer)
        total = total + distance(gram_matrix(pred), gram_matrix(target))
    return total


def feature_loss(
    pred_features: Mapping[str, Tensor],
    target_features: Mapping[str, Tensor],
    layer: str = FEATURE_LAYER,
) -> Tensor:
    """Mean absolute difference between the ``layer`` activations (default relu2_2; OMGD's feature term).

    Args:
        pred_features: ``{layer: (N, C, H, W)}`` of the image being trained.
        target_features: the same of the target image; treated as constant.

    Returns:
        () tensor: mean over N·C·H·W of ``|pred - target|``, in float32 at least.
    """
    pred, target = _pair(pred_features, target_features, layer)
    dtype = torch.promote_types(pred.dtype, torch.float32)
    return F.l1_loss(pred.to(dtype), target.to(dtype))


def pyramid_vgg_loss(vgg: VGG19ReLUFeatures, image: Tensor, target: Tensor) -> Tensor:
    """SPADE's (pix2pixHD's) perceptual loss: ``sum_l w_l mean|vgg_l(image) - vgg_l(target)|`` over relu1_1 ...
    relu5_1 with weights 1/32, 1/16, 1/8, 1/4, 1 (NVlabs' ``VGGLoss``, before ``lambda_vgg``).

    Args:
        vgg: a :class:`~ganslim.nn.vgg.VGG19ReLUFeatures` returning :data:`~ganslim.nn.vgg.PYRAMID_LAYERS`.
        image: (N, 3, H, W) in [-1, 1], the image being trained; target: the same shape, treated as constant.

    Returns:
        () float32 tensor.
    """
    if tuple(vgg.layers) != PYRAMID_LAYERS:
        raise ValueError(f"pyramid_vgg_loss needs the layers {PYRAMID_LAYERS}, the extractor returns {vgg.layers}")
    ours = vgg(image.float())
    with torch.no_grad():
        theirs = vgg(target.float())
    total = torch.zeros((), device=image.device)
    for weight, layer in zip(PYRAMID_WEIGHTS, PYRAMID_LAYERS):
        total = total + weight * F.l1_loss(ours[layer], theirs[layer])
    return total


def load_perceptual_vgg(weights: str | os.PathLike | None = None) -> VGG16Features | None:
    """The VGG16 for the style / feature losses (relu1_2 ... relu4_3), or ``None`` when no weights file is supplied.

    Looks for the file as :func:`ganslim.nn.vgg.find_vgg16_weights` does (``weights``, then
    ``$GANSLIM_VGG16_WEIGHTS``, then ``~/.cache/ganslim/vgg16-397923af.pth``). Returns ``None`` only when no
    source names a file; a named path that is missing, or a file with the wrong contents, is still an error.

    Raises:
        GanslimError: see :func:`ganslim.nn.vgg.load_vgg16`.
    """
    path = find_vgg16_weights(weights)
    if path is None:
        return None
    return load_vgg16(path)
