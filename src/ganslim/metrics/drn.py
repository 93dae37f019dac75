"""DRN-D-105 with its segmentation head (fyu/drn's ``drn_d_105`` + ``DRNSeg``), the network GAN Compression scores
Cityscapes mIoU with, and the loader of its state dict (``drn-d-105_ms_cityscapes.pth``).

The module tree mirrors ``DRNSeg``'s keys: ``base.0`` … ``base.8`` are the DRN's layer0 … layer8 (its average pool
and classifier dropped), ``seg`` the 1x1 classifier, ``up`` the fixed depthwise x8 transposed conv. The channel
widths are read from the file, so a narrower network of the same depth (e.g. a test's) loads too.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ganslim.errors import GanslimError
from ganslim.weights import describe_mismatch, read_weights_only

DRN_D_105_BLOCKS = (1, 1, 3, 4, 23, 3, 1, 1)  # convs of layer1/2/7/8, bottlenecks of layer3 … layer6
DRN_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
CITYSCAPES_CLASSES = 19
DRN_FILE = "drn-d-105_ms_cityscapes.pth"
DRN_URL = "http://go.yf.io/drn-cityscapes-models"
EXPANSION = 4


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1,
                  kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, padding=dilation * (kernel // 2), dilation=dilation,
                      bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 x4 with a residual (projected by ``downsample`` when shapes change)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_channels = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        """(N, in, H, W) -> (N, 4 planes, H / stride, W / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _bottlenecks(in_channels: int, planes: int, count: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    # fyu/drn: a dilated stage's first block already uses the stage's dilation (new_level=False).
    blocks = [Bottleneck(in_channels, planes, stride, dilation)]
    blocks += [Bottleneck(planes * EXPANSION, planes, dilation=dilation) for _ in range(count - 1)]
    return nn.Sequential(*blocks)


class DRNSegmenter(nn.Module):
    """DRN-D-105 + DRNSeg: (N, 3, H, W) normalised RGB, H and W multiples of 8 -> (N, classes, H, W) class scores
    (log-softmax, as DRNSeg returns them)."""

    def __init__(self, classes: int = CITYSCAPES_CLASSES, channels: tuple[int, ...] = DRN_CHANNELS) -> None:
        super().__init__()
        c = channels
        n = DRN_D_105_BLOCKS
        self.base = nn.Sequential(
            nn.Sequential(*_conv_bn_relu(3, c[0], kernel=7)),
            nn.Sequential(*_conv_bn_relu(c[0], c[0])),
            nn.Sequential(*_conv_bn_relu(c[0], c[1], stride=2)),
            _bottlenecks(c[1], c[2], n[2], stride=2),
            _bottlenecks(c[2] * EXPANSION, c[3], n[3], stride=2),
            _bottlenecks(c[3] * EXPANSION, c[4], n[4], dilation=2),
            _bottlenecks(c[4] * EXPANSION, c[5], n[5], dilation=4),
            nn.Sequential(*_conv_bn_relu(c[5] * EXPANSION, c[6], dilation=2)),
            nn.Sequential(*_conv_bn_relu(c[6], c[7])),
        )
        self.seg = nn.Conv2d(c[7], classes, 1)
        self.up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, groups=classes, bias=False)

    def forward(self, image: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, classes, H, W)."""
        return torch.log_softmax(self.up(self.seg(self.base(image))), dim=1)


def _channels_of(state: dict[str, Tensor]) -> tuple[int, ...]:
    """The eight stage widths of a DRNSeg state dict, from its first conv of each stage."""
    firsts = ("base.0.0.weight", "base.2.0.weight", "base.3.0.conv1.weight",
              "base.4.0.conv1.weight", "base.5.0.conv1.weight", "base.6.0.conv1.weight", "base.7.0.weight",
              "base.8.0.weight")
    return tuple(state[key].shape[0] for key in firsts)


def load_drn_segmenter(path: str | os.PathLike) -> DRNSegmenter:
    """The DRN-D-105 segmenter of the state dict at ``path`` (read with ``weights_only=True``; a ``module.`` prefix,
    as ``nn.DataParallel`` saves, is dropped), in eval mode on the CPU.

    Raises:
        GanslimError: one line when the file is missing or unreadable, or is not a 19-class DRN-D-105 DRNSeg state
            dict (naming the first key or shape that differs).
    """
    path = Path(path)
    fix = f"pass the DRN-D-105 Cityscapes state dict ({DRN_FILE}, from {DRN_URL})"
    if not path.is_file():
        raise GanslimError(f"--drn-weights '{path}' not found: {fix}")
    state = read_weights_only(path, "the DRN segmentation model", fix)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise GanslimError(f"--drn-weights '{path}' is not a state dict of tensors: {fix}")
    state = {key.removeprefix("module."): value for key, value in state.items()
             if not key.endswith("num_batches_tracked")}
    try:
        channels, classes = _channels_of(state), state["seg.weight"].shape[0]
    except (KeyError, IndexError):
        channels, classes = DRN_CHANNELS, CITYSCAPES_CLASSES  # the mismatch below names what is missing
    if classes != CITYSCAPES_CLASSES:
        raise GanslimError(f"--drn-weights '{path}' segments {classes} classes, not Cityscapes' "
                           f"{CITYSCAPES_CLASSES} train ids: {fix}")
    with torch.device("meta"):
        expected = DRNSegmenter(classes, channels).state_dict()
    expected = {key: value for key, value in expected.items() if not key.endswith("num_batches_tracked")}
    problem = describe_mismatch(state, expected)
    if problem:
        raise GanslimError(f"--drn-weights '{path}' is not a DRN-D-105 DRNSeg state dict: {problem}; {fix}")
    model = DRNSegmenter(classes, channels)
    model.load_state_dict(state, strict=False)  # only the num_batches_tracked counters are left out
    return model.eval().requires_grad_(False)
