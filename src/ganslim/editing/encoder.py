"""An image -> W+ encoder for a StyleGAN2 generator (Anycost GAN's editing loop: encode, then project and edit).

:class:`Encoder` is a small ResNet: the image, resized to the encoder's ``side``, runs through a stem conv and one
stride-2 residual block per halving down to 4 x 4, then two linear layers predict W+ as offsets from the
generator's mean W (``w_avg``, a buffer copied from the generator; the last layer starts at zero, so a fresh
encoder returns the mean W for every image, the usual start of a projection).

An encoder checkpoint (``save_encoder``) is a ganslim model file of kind ``encoder`` whose ``meta["generator"]``
records the generator it was trained for: its architecture, arch kwargs and a SHA-256 of its weights.
:func:`load_encoder` refuses, in one line, to load it for another generator (other architecture or weights).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.archs.stylegan2 import StyleGAN2Generator, estimate_w_avg
from ganslim.checkpoints import load_generator
from ganslim.checkpoints.format import ModelCheckpoint, read_checkpoint, save_model
from ganslim.errors import GanslimError, first_line

ENCODER_ARCH, ENCODER_KIND, ENCODER_FILE = "resnet_encoder", "encoder", "encoder.pt"
MAX_SIDE = 256  # the default input side: Anycost's encoder reads 256 x 256
MIN_SIDE = 4  # the residual blocks halve the image down to 4 x 4
NORM_GROUPS = 8
LEAK = 0.2


class ResidualBlock(nn.Module):
    """(N, in, H, W) -> (N, out, H/2, W/2): two 3x3 convs (the first of stride 2) with group norm and leaky ReLU,
    plus an average-pooled 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        groups = math.gcd(NORM_GROUPS, out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.norm1(self.conv1(x)), LEAK)
        return F.leaky_relu(self.norm2(self.conv2(out)) + self.shortcut(x), LEAK)


class Encoder(nn.Module):
    """images (N, image_channels, H, W) in [-1, 1] -> W+ (N, num_ws, w_dim) of a StyleGAN2 generator.

    Args:
        num_ws: W+ entries of the generator (its ``num_ws``, 2*log2(size) - 2).
        w_dim: width of W (the generator's ``w_dim``).
        side: the side images are resized to (bilinear, antialiased), a power of two of at least 4.
        channels: the stem's width; each block doubles it, up to ``max_channels``.
        max_channels: the widest block.
        head_channels: width of the hidden linear layer of the head.
        image_channels: channels of the images (3).
    """

    def __init__(self, num_ws: int, w_dim: int, side: int = MAX_SIDE, channels: int = 32, max_channels: int = 256,
                 head_channels: int = 512, image_channels: int = 3) -> None:
        super().__init__()
        for name, value in (("num_ws", num_ws), ("w_dim", w_dim), ("side", side), ("channels", channels),
                            ("max_channels", max_channels), ("head_channels", head_channels),
                            ("image_channels", image_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanslimError(f"encoder {name}={value!r} is not a positive integer")
        if side < MIN_SIDE or side & (side - 1):
            raise GanslimError(f"encoder side {side} is not a power of two of at least {MIN_SIDE}: use e.g. 256")
        self.num_ws, self.w_dim, self.side, self.image_channels = num_ws, w_dim, side, image_channels
        self.channels, self.max_channels, self.head_channels = channels, max_channels, head_channels
        self.stem = nn.Conv2d(image_channels, min(channels, max_channels), 3, padding=1)
        widths = [min(channels * 2**i, max_channels) for i in range(int(math.log2(side // MIN_SIDE)) + 1)]
        self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in zip(widths, widths[1:])))
        self.hidden = nn.Linear(widths[-1] * MIN_SIDE * MIN_SIDE, head_channels)
        self.offsets = nn.Linear(head_channels, num_ws * w_dim)
        nn.init.zeros_(self.offsets.weight)
        nn.init.zeros_(self.offsets.bias)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def arch_kwargs(self) -> dict:
        """The kwargs that rebuild this encoder."""
        return {"num_ws": self.num_ws, "w_dim": self.w_dim, "side": self.side, "channels": self.channels,
                "max_channels": self.max_channels, "head_channels": self.head_channels,
                "image_channels": self.image_channels}

    def forward(self, images: Tensor) -> Tensor:
        """(N, image_channels, H, W) in [-1, 1], any H and W (resized to ``side``) -> W+ (N, num_ws, w_dim)."""
        if images.dim() != 4 or images.shape[1] != self.image_channels:
            raise GanslimError(f"the encoder takes images of shape (N, {self.image_channels}, H, W), got "
                               f"{tuple(images.shape)}")
        if images.shape[-2:] != (self.side, self.side):
            images = F.interpolate(images, size=(self.side, self.side), mode="bilinear", align_corners=False,
                                   antialias=True)
        features = self.blocks(F.leaky_relu(self.stem(images), LEAK)).flatten(1)
        offsets = self.offsets(F.leaky_relu(self.hidden(features), LEAK))
        return self.w_avg + offsets.view(-1, self.num_ws, self.w_dim)


def load_stylegan2(path: str) -> tuple[StyleGAN2Generator, Path]:
    """The StyleGAN2 generator at ``path`` (file or run folder), frozen, eval mode, its mean W known (estimated from
    10,000 z of seed 0 when the file stores none); and the file it came from."""
    loaded = load_generator(path)
    generator = loaded.model
    if not isinstance(generator, StyleGAN2Generator):
        raise GanslimError(f"'{loaded.path}' holds a {loaded.arch} generator, not a stylegan2 one: the encoder and "
                           f"projection invert StyleGAN2 generators (pass a stylegan2 generator.pt, rosinality "
                           f"checkpoint or .pkl)")
    if not generator.style.has_w_avg:
        estimate_w_avg(generator)
    return generator.eval().requires_grad_(False), loaded.path


def default_side(generator: StyleGAN2Generator) -> int:
    """The encoder side for ``generator``: its image side, at most 256."""
    return min(generator.img_resolution, MAX_SIDE)


def encoder_for(generator: StyleGAN2Generator, side: int = 0, channels: int = 32, max_channels: int = 256,
                head_channels: int = 512) -> Encoder:
    """A fresh :class:`Encoder` for ``generator`` (side 0: :func:`default_side`), on the generator's device, its
    ``w_avg`` the generator's (which must be known)."""
    if not generator.style.has_w_avg:
        raise GanslimError("this generator stores no mean W: estimate it first "
                           "(ganslim.archs.stylegan2.estimate_w_avg)")
    encoder = Encoder(generator.num_ws, generator.w_dim, side or default_side(generator), channels, max_channels,
                      head_channels, generator.img_channels)
    encoder.w_avg.copy_(generator.style.w_avg.detach().cpu())
    return encoder.to(generator.style.w_avg.device)


def generator_identity(generator: StyleGAN2Generator) -> dict:
    """What an encoder checkpoint records of its generator: ``arch``, ``arch_kwargs`` and ``weights_sha256`` (over
    its state dict's names and float32 values, on the CPU, so the same on any device)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(generator.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return {"arch": "stylegan2", "arch_kwargs": generator.arch_kwargs(), "weights_sha256": digest.hexdigest()}


def save_encoder(path: str | os.PathLike, encoder: Encoder, generator: StyleGAN2Generator,
                 meta: dict | None = None) -> Path:
    """Write ``encoder`` (atomically) with the identity of the ``generator`` it inverts (see the module docstring)."""
    return save_model(path, encoder, ENCODER_ARCH, encoder.arch_kwargs(), kind=ENCODER_KIND,
                      meta={**(meta or {}), "generator": generator_identity(generator)})


def load_encoder(path: str | os.PathLike, generator: StyleGAN2Generator) -> Encoder:
    """The encoder saved at ``path`` (a file, or a ``train encoder`` run folder holding ``encoder.pt``), in eval mode on
    ``generator``'s device.

    Raises:
        GanslimError: a missing or damaged file, a file that is no encoder, or an encoder trained for another
            generator (another architecture, or the same one with other weights).
    """
    path = Path(path)
    if path.is_dir():
        path = path / ENCODER_FILE
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, ModelCheckpoint) or checkpoint.kind != ENCODER_KIND:
        raise GanslimError(f"'{path}' is not a ganslim encoder checkpoint: pass the encoder.pt that ganslim train "
                           f"encoder wrote")
    _check_generator(path, checkpoint.meta.get("generator"), generator)
    try:
        encoder = Encoder(**checkpoint.arch_kwargs)
        encoder.load_state_dict(checkpoint.state_dict, strict=True)
    except (GanslimError, TypeError, RuntimeError) as error:
        raise GanslimError(f"encoder checkpoint '{path}' cannot be rebuilt ({first_line(error)}): the file is "
                           f"damaged or from another ganslim version") from None
    return encoder.eval().to(generator.style.w_avg.device)



def _check_generator(path: Path, recorded: object, generator: StyleGAN2Generator) -> None:
    """One line unless ``recorded`` (an encoder's ``meta["generator"]``) is ``generator``'s identity."""
    if not isinstance(recorded, dict):
        raise GanslimError(f"encoder '{path}' records no generator: it is damaged; train it again")
    identity = generator_identity(generator)
    fix = "pass the generator it was trained for, or train an encoder for this one (ganslim train encoder)"
    if (recorded.get("arch"), recorded.get("arch_kwargs")) != (identity["arch"], identity["arch_kwargs"]):
        raise GanslimError(f"encoder '{path}' was trained for a {recorded.get('arch')} generator "
                           f"{recorded.get('arch_kwargs')}, not this {identity['arch']} {identity['arch_kwargs']}: "
                           f"{fix}")
    if recorded.get("weights_sha256") != identity["weights_sha256"]:
        raise GanslimError(f"encoder '{path}' was trained for another generator of this architecture (its weights "
                           f"differ): {fix}")
