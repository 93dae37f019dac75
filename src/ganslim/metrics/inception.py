"""The FID InceptionV3 (TensorFlow "2015-12-05" graph as ported by pytorch-fid) and its feature extractor.

The module tree mirrors ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid, GAN Compression, torchmetrics)
so that file loads strictly: 94 conv + batch-norm units and a 1008-class ``fc``, 472 tensors. The port's
differences from a plain InceptionV3 are kept: the pooling branches of the A, C and first E blocks average
without counting padded zeros, and the last E block max-pools.

Nothing is downloaded: see :func:`load_inception` for where the weights file is looked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.errors import GanslimError
from ganslim.weights import WeightsFile, cache_path, find_weights_file, load_state_dict_strict

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILENAME}"
WEIGHTS_ENV_VAR = "GANSLIM_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS = WeightsFile(
    label="Inception", filename=WEIGHTS_FILENAME, url=WEIGHTS_URL, env_var=WEIGHTS_ENV_VAR, wanted=WEIGHTS_FILENAME,
    title=f"the FID Inception weights file {WEIGHTS_FILENAME}",
)
FEATURE_DIM = 2048
INPUT_SIZE = 299


class FrozenBatchNorm2d(nn.Module):
    """Inference-only batch norm holding exactly ``weight``, ``bias``, ``running_mean``, ``running_var``.

    ``nn.BatchNorm2d`` would add a ``num_batches_tracked`` buffer that the weights file does not have;
    the statistics are never updated, in train mode too.
    """

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        """(N,C,H,W) -> (N,C,H,W)."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class ConvBNReLU(nn.Module):
    """Bias-free conv, batch norm (eps 1e-3 as in the TF graph), ReLU; keys ``conv.*`` and ``bn.*``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = FrozenBatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: Tensor) -> Tensor:
    # TF's average pool divides by the number of real (unpadded) pixels.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled branches; out 224 + ``pool_channels``."""

    def __init__(self, in_channels: int, pool_channels: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, 64, 1)
        self.branch5x5_1 = ConvBNReLU(in_channels, 48, 1)
        self.branch5x5_2 = ConvBNReLU(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBNReLU(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBNReLU(96, 96, 3, padding=1)
        self.branch_pool = ConvBNReLU(in_channels, pool_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg_pool_3x3(x)),
            ],
            dim=1,
        )


class InceptionB(nn.Module):
    """35x35 -> 17x17 reduction; out 480 + ``in_channels``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBNReLU(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBNReLU(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBNReLU(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, kernel_size=3, stride=2),
            ],
            dim=1,
        )


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 branches of width ``mid_channels``; out 768."""

    def __init__(self, in_channels: int, mid_channels: int) -> None:
        super().__init__()
        c = mid_channels
        self.branch1x1 = ConvBNReLU(in_channels, 192, 1)
        self.branch7x7_1 = ConvBNReLU(in_channels, c, 1)
        self.branch7x7_2 = ConvBNReLU(c, c, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBNReLU(c, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBNReLU(in_channels, c, 1)
        self.branch7x7dbl_2 = ConvBNReLU(c, c, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBNReLU(c, c, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBNReLU(c, c, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBNReLU(c, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBNReLU(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            branch7x7dbl = layer(branch7x7dbl)
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(_avg_pool_3x3(x))], dim=1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 reduction; out 512 + ``in_channels``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBNReLU(in_channels, 192, 1)
        self.branch3x3_2 = ConvBNReLU(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBNReLU(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBNReLU(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBNReLU(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBNReLU(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat(
            [self.branch3x3_2(self.branch3x3_1(x)), branch7x7x3, F.max_pool2d(x, kernel_size=3, stride=2)],
            dim=1,
        )


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches; out 2048.

    ``max_pool`` selects the pooling of the pool branch: the TF graph max-pools in the last E block
    (``Mixed_7c``) and averages (without padded zeros) in the first (``Mixed_7b``).
    """

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBNReLU(in_channels, 320, 1)
        self.branch3x3_1 = ConvBNReLU(in_channels, 384, 1)
        self.branch3x3_2a = ConvBNReLU(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBNReLU(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBNReLU(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBNReLU(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBNReLU(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBNReLU(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(bd),
                self.branch3x3dbl_3b(bd),
                self.branch_pool(pooled),
            ],
            dim=1,
        )


class FIDInceptionV3(nn.Module):
    """InceptionV3 of the FID protocol; ``state_dict()`` has the keys and shapes of the weights file.

    ``forward`` maps (N,3,299,299) images in [-1, 1] to (N,2048) final average-pool features. ``fc``
    (2048 -> 1008 classes) is kept only so the file loads strictly; FID and KID do not use it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBNReLU(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBNReLU(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBNReLU(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBNReLU(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBNReLU(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_channels=32)
        self.Mixed_5c = InceptionA(256, pool_channels=64)
        self.Mixed_5d = InceptionA(288, pool_channels=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, mid_channels=128)
        self.Mixed_6c = InceptionC(768, mid_channels=160)
        self.Mixed_6d = InceptionC(768, mid_channels=160)
        self.Mixed_6e = InceptionC(768, mid_channels=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, 1008)

    def forward(self, x: Tensor) -> Tensor:
        """(N,3,299,299) in [-1, 1] -> (N,2048) pool features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return x.mean(dim=(2, 3))


class InceptionFeatures(nn.Module):
    """uint8 images -> 2048-d Inception pool features, preprocessed as pytorch-fid does.

    The images are scaled to [0, 1], resized to 299x299 (bilinear, ``align_corners=False``, no
    antialiasing; applied at every input size), mapped to [-1, 1] and run through ``inception``.
    Single-channel images are repeated to RGB. Inputs are moved to the network's device.
    """

    def __init__(self, inception: FIDInceptionV3) -> None:
        super().__init__()
        self.inception = inception

    def forward(self, images: Tensor) -> Tensor:
        """(N,3,H,W) or (N,1,H,W) uint8 -> (N,2048) float32."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise GanslimError(
                f"InceptionFeatures takes (N,3,H,W) uint8 images, got {images.dtype} {tuple(images.shape)}; "
                "quantise [-1, 1] images with ganslim.metrics.quantize_uint8 first"
            )
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        device = self.inception.fc.weight.device
        x = images.to(device=device, dtype=torch.float32) / 255
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.inception(2 * x - 1)


def default_weights_path() -> Path:
    """``~/.cache/ganslim/pt_inception-2015-12-05-6726825d.pth``, the last place :func:`load_inception` looks."""
    return cache_path(WEIGHTS_FILENAME)


def load_inception(weights: str | os.PathLike | None = None) -> InceptionFeatures:
    """Build the FID Inception feature extractor and load its weights; returned in eval mode, frozen, on CPU.

    The weights file is looked for, in this order:

    1. ``weights``, when given;
    2. the path in the environment variable ``GANSLIM_INCEPTION_WEIGHTS``, when set and non-empty;
    3. ``~/.cache/ganslim/pt_inception-2015-12-05-6726825d.pth``.

    The first source that is set is used (a set path that does not exist is an error, not a fall-through).
    Nothing is downloaded; get the file from pytorch-fid's release page. It is read with
    ``torch.load(weights_only=True)`` and loaded strictly; ``num_batches_tracked`` entries, which a copy
    re-saved from a torchvision-style model may carry, are ignored.

    Raises:
        GanslimError: the file is missing, unreadable, or has other keys or shapes (the message names them).
    """
    path = find_weights_file(weights, INCEPTION_WEIGHTS, default_weights_path())
    if path is None:
        raise GanslimError(
            f"Inception weights not found: put {WEIGHTS_FILENAME} (from {WEIGHTS_URL}) at {default_weights_path()}, "
            f"or set {WEIGHTS_ENV_VAR} or pass weights= to its path"
        )
    inception = FIDInceptionV3()
    load_state_dict_strict(inception, path, INCEPTION_WEIGHTS, ignore=lambda key: key.endswith(".num_batches_tracked"))
    inception.requires_grad_(False)
    return InceptionFeatures(inception).eval()
