"""MobileStyleGAN's generator (Belousov 2021): StyleGAN2's mapping network and a wavelet-domain synthesis.

Layout (R = image side; c = the channel table, one width per side 4, 8, ..., R/2: a StyleGAN2 teacher's table
without its last entry; C = image channels; parameter names MobileStyleGAN's, under ``synthesis.``)::

    style             the teacher's mapping network (MappingNetwork, with w_avg)
    input.input       (1, c[4], 4, 4) learned constant
    conv1             dense modulated 3x3 conv c[4] -> c[4] at 4 px, noise, bias, leaky ReLU 0.2
    to_img1           1x1 modulated conv without demodulation to 4C wavelet channels at 4 px (+ bias)
    layers.k          one block per side r = 8, 16, ..., R/2 (c_in = c[r/2], c_out = c[r]):
      .up             IDWT upsampling: style-scaled input, c_in/4 low + 3 c_in/4 high bands -> c_in/4 at r px
      .conv1, .conv2  depthwise-separable modulated 3x3 convs c_in/4 -> c_out -> c_out, each + noise, bias, leaky
                      ReLU 0.2 (no sqrt(2) gain)
      .to_img         1x1 modulated conv without demodulation to 4C wavelet channels at r px (+ bias)
    noises.noise_i    (1, 1, r, r) fixed noise, at the sides of the teacher's first 2*len(c) - 1 noise buffers

Every head predicts the Haar wavelets (:mod:`ganslim.nn.wavelets`) of the image at twice its side; the image is the
inverse DWT of the **last** head only (R x R, nominally in [-1, 1], not clamped); the earlier heads exist for the
multi-scale distillation losses (:meth:`MobileSynthesis.wavelets`). All convolutions demodulate with the fixed
``style_inv`` vectors (:mod:`ganslim.nn.separable`), so :meth:`MobileStyleGANGenerator.fold_demodulation` folds
them into the weights.

**Style indices** (:func:`style_index_map`): each layer reads the W+ entry of the teacher's (rosinality's) layer at
the same side and role: conv1 w[0], to_img1 w[1], block k's up and conv1 w[2k+1] (the teacher's x2 up conv at that
side), conv2 w[2k+2], to_img w[2k+3] (the teacher's to-RGB). The student reads ``num_ws = 2 * len(c)`` entries
(16 at 1024, where the teacher reads 18): a teacher's W+ ``[:, :num_ws]`` *is* the student's, so style mixing at
any crossover gives both the same styles layer by layer. (MobileStyleGAN's own code reads 23 entries in steps of 3,
which lines a mixed student W+ up with no teacher layer.)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.archs.stylegan2.channels import check_positive_int, check_positive_number, rosinality_channels
from ganslim.archs.stylegan2.generator import (
    ConstantInput,
    MappingNetwork,
    NoiseBuffers,
    NoiseInjection,
    StyleGAN2Generator,
    noise_inputs,
)
from ganslim.archs.stylegan2.latent import LatentGenerator, NoiseInput, check_w_plus
from ganslim.errors import GanslimError
from ganslim.nn.equalized import LEAKY_SLOPE
from ganslim.nn.kernels import fast_kernels_allowed
from ganslim.nn.separable import InputModulatedConv, ModulatedDenseConv2d, ModulatedSeparableConv2d
from ganslim.nn.wavelets import BANDS, IDWTUpsample, wavelets_to_image
from ganslim.registry import GENERATORS

ARCH = "mobile_stylegan"
KERNEL_SIZE = 3


def student_channels(size: int, channel_multiplier: int = 2, channels: Sequence[int] | None = None
                     ) -> tuple[int, ...]:
    """The student's table for sides 4, 8, ..., ``size``/2: ``channels`` when given, else rosinality's teacher
    table for ``channel_multiplier`` without its last entry ([512] x5 + [256, 128, 64] for config-f at 1024).

    Raises:
        GanslimError: ``size`` is not a power of two of at least 8, a width is not a positive integer, the table
            has the wrong length, or a width that feeds an IDWT upsampling (all but the last) is no multiple of 4.
    """
    check_positive_int("size", size, ARCH)
    if size < 8 or size & (size - 1):
        raise GanslimError(f"{ARCH} size {size} is not a power of two of at least 8: use e.g. 256")
    check_positive_int("channel_multiplier", channel_multiplier, ARCH)
    table = rosinality_channels(size, channel_multiplier)[:-1] if channels is None else tuple(channels)
    count = int(math.log2(size)) - 2
    if len(table) != count:
        raise GanslimError(f"{ARCH} channels {list(table)} has {len(table)} widths; a {size} px student takes {count} "
                           f"(one per side 4, 8, ..., {size // 2}: its teacher's table without the last entry)")
    for width in table:
        check_positive_int("channels", width, ARCH)
    for width in table[:-1]:
        if width % BANDS:
            raise GanslimError(f"{ARCH} channels {list(table)}: {width} is no multiple of 4, which the IDWT "
                               f"upsampling after it needs (a low and three high bands per output channel)")
    return table


def style_index_map(blocks: int) -> dict[str, int]:
    """Which W+ entry each modulated layer of a synthesis with ``blocks`` blocks reads, by module name under
    ``synthesis`` (see the module docstring): ``{"conv1": 0, "to_img1": 1, "layers.0.up": 1, "layers.0.conv1": 1,
    "layers.0.conv2": 2, "layers.0.to_img": 3, "layers.1.up": 3, ...}``."""
    index = {"conv1": 0, "to_img1": 1}
    for k in range(blocks):
        index.update({f"layers.{k}.up": 2 * k + 1, f"layers.{k}.conv1": 2 * k + 1,
                      f"layers.{k}.conv2": 2 * k + 2, f"layers.{k}.to_img": 2 * k + 3})
    return index


class StyledConv(nn.Module):
    """A modulated conv (``conv``, an :class:`~ganslim.nn.separable.InputModulatedConv`), noise, ``bias`` (1, out,
    1, 1) and leaky ReLU 0.2: (N, in, H, W) -> (N, out, H, W)."""

    def __init__(self, conv: InputModulatedConv) -> None:
        super().__init__()
        self.conv = conv
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(1, conv.out_channels, 1, 1))

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None) -> Tensor:
        return F.leaky_relu(self.noise(self.conv(x, style, self.bias.view(-1)), noise), LEAKY_SLOPE)


class WaveletHead(nn.Module):
    """A 1x1 modulated conv without demodulation, plus ``bias``: (N, in, H, W) -> wavelets (N, 4C, H, W) of an
    image (N, C, 2H, 2W)."""

    def __init__(self, in_channels: int, style_dim: int, image_channels: int) -> None:
        super().__init__()
        self.conv = ModulatedDenseConv2d(in_channels, BANDS * image_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, BANDS * image_channels, 1, 1))

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self.conv(x, style, self.bias.view(-1))


class MobileSynthesisBlock(nn.Module):
    """(N, in, r/2, r/2) -> features (N, out, r, r) and wavelets (N, 4C, r, r); styles (N, 3, w_dim) for the up
    and first conv, the second conv and the head."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, image_channels: int) -> None:
        super().__init__()
        self.up = IDWTUpsample(in_channels, style_dim)
        self.conv1 = StyledConv(ModulatedSeparableConv2d(in_channels // BANDS, out_channels, KERNEL_SIZE, style_dim))
        self.conv2 = StyledConv(ModulatedSeparableConv2d(out_channels, out_channels, KERNEL_SIZE, style_dim))
        self.to_img = WaveletHead(out_channels, style_dim, image_channels)

    def forward(self, x: Tensor, styles: Tensor, noises: Sequence[Tensor | None]) -> tuple[Tensor, Tensor]:
        x = self.conv1(self.up(x, styles[:, 0]), styles[:, 0], noises[0])
        x = self.conv2(x, styles[:, 1], noises[1])
        return x, self.to_img(x, styles[:, 2])


class MobileSynthesis(nn.Module):
    """W+ (N, num_ws, w_dim) -> image (N, C, R, R) for a channel table (one width per side 4 ... R/2); see the
    module docstring. Noise as StyleGAN2's: ``"const"``, ``"random"`` (from ``rng``), ``"none"``, or a list of
    ``num_noises`` tensors (N or 1, 1, r, r); :meth:`shared_noise` picks them from a teacher's list."""

    def __init__(self, channels: Sequence[int], style_dim: int, image_channels: int = 3) -> None:
        super().__init__()
        table = tuple(channels)
        self.num_ws, self.w_dim = 2 * len(table), style_dim
        self.img_resolution, self.img_channels = 2 ** (len(table) + 2), image_channels
        self.input = ConstantInput(table[0])
        self.conv1 = StyledConv(ModulatedDenseConv2d(table[0], table[0], KERNEL_SIZE, style_dim))
        self.to_img1 = WaveletHead(table[0], style_dim, image_channels)
        self.layers = nn.ModuleList(MobileSynthesisBlock(previous, width, style_dim, image_channels)
                                    for previous, width in zip(table, table[1:]))
        self.noises = NoiseBuffers([4] + [2**k for k in range(3, len(table) + 2) for _ in range(2)])

    @property
    def num_noises(self) -> int:
        return 1 + 2 * len(self.layers)

    def wavelets(self, w_plus: Tensor, noise: NoiseInput = "const", rng: torch.Generator | None = None
                 ) -> list[Tensor]:
        """Every head's wavelets, (N, 4C, r, r) for r = 4, 8, ..., R/2 (the last one's inverse DWT is the image)."""
        check_w_plus(w_plus, self.num_ws, self.w_dim)
        noises = noise_inputs(self.noises.constants(), noise, w_plus.shape[0], rng)
        x = self.input(w_plus.shape[0])
        if fast_kernels_allowed():  # channels-last activations: faster CPU convolutions, the same values
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.conv1(x, w_plus[:, 0], noises[0])
        heads = [self.to_img1(x, w_plus[:, 1])]
        for k, block in enumerate(self.layers):  # block k reads w[2k+1 : 2k+4] (style_index_map)
            x, head = block(x, w_plus[:, 2 * k + 1:2 * k + 4], noises[2 * k + 1:2 * k + 3])
            heads.append(head)
        return heads

    def forward(self, w_plus: Tensor, noise: NoiseInput = "const", rng: torch.Generator | None = None) -> Tensor:
        return wavelets_to_image(self.wavelets(w_plus, noise, rng)[-1])

    def shared_noise(self, teacher_noise: Sequence[Tensor]) -> list[Tensor]:
        """The noise inputs a StyleGAN2 teacher's list ``teacher_noise`` (one per teacher conv) gives this student:
        the first ``num_noises``, which its convs read at the same sides (the teacher's last side has no student
        conv)."""
        sides = [buffer.shape[-1] for buffer in self.noises.constants()]
        given = [noise.shape[-1] for noise in teacher_noise][:len(sides)]
        if given != sides:
            raise GanslimError(f"this student takes noise at sides {sides} (a teacher's first {len(sides)}), got a "
                               f"list at sides {[noise.shape[-1] for noise in teacher_noise]}")
        return list(teacher_noise[:len(sides)])


class MobileStyleGANGenerator(LatentGenerator):
    """z (N, z_dim) -> image (N, image_channels, size, size), nominally in [-1, 1] (see the module docstring).

    Args:
        size: image side, a power of two of at least 8 (the teacher's).
        style_dim: width of W and of the mapping layers (512 for config-f).
        n_mlp: mapping layers (8).
        channel_multiplier: the teacher's (2 for config-f); the student's table is its teacher's without the last
            entry (:func:`student_channels`).
        channels: any other student table, one width per side 4, 8, ..., size/2.
        lr_mlp: the mapping's learning-rate multiplier (0.01).
        z_dim: width of z (default ``style_dim``).
        image_channels: channels of the image (3; the heads predict 4x as many wavelet channels).

    The entry points are StyleGAN2's (:class:`~ganslim.archs.stylegan2.latent.LatentGenerator`: ``forward(z)``,
    ``map``, ``truncate``, ``broadcast``, ``mix``, ``synthesis(w_plus, noise=...)``, ``parts()``), with its own
    ``num_ws``; :meth:`from_teacher` builds one for a teacher, its mapping copied.
    """

    def __init__(self, size: int = 1024, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 channels: Sequence[int] | None = None, lr_mlp: float = 0.01, z_dim: int | None = None,
                 image_channels: int = 3) -> None:
        super().__init__()
        table = student_channels(size, channel_multiplier, channels)
        for name, value in (("style_dim", style_dim), ("n_mlp", n_mlp), ("image_channels", image_channels),
                            ("z_dim", style_dim if z_dim is None else z_dim)):
            check_positive_int(name, value, ARCH)
        check_positive_number("lr_mlp", lr_mlp, ARCH)
        self.z_dim, self.w_dim = style_dim if z_dim is None else z_dim, style_dim
        self.channels = {2**i: width for i, width in enumerate(table, start=2)}
        self.style = MappingNetwork(self.z_dim, style_dim, n_mlp, lr_mlp)
        self.synthesis = MobileSynthesis(table, style_dim, image_channels)
        self.num_ws, self.img_resolution, self.img_channels = self.synthesis.num_ws, size, image_channels

    @classmethod
    def from_teacher(cls, teacher: StyleGAN2Generator) -> MobileStyleGANGenerator:
        """A student for ``teacher``: its size, style and image widths, mapping layout, and channel table without
        the last entry; the mapping's weights and ``w_avg`` copied (not shared), and the teacher's constant noise
        at the sides the student's convs run at, so both render the same image noise with ``noise="const"``."""
        if not isinstance(teacher, StyleGAN2Generator):
            raise GanslimError(f"a {ARCH} student is built from a stylegan2 generator, got {type(teacher).__name__}")
        mapping = teacher.mapping
        student = cls(teacher.img_resolution, teacher.w_dim, n_mlp=len(mapping) - 1,
                      channels=list(teacher.channels.values())[:-1], lr_mlp=mapping[1].lr_mul, z_dim=teacher.z_dim,
                      image_channels=teacher.img_channels)
        student.style.load_state_dict(mapping.state_dict())
        with torch.no_grad():
            for buffer, noise in zip(student.synthesis.noises.constants(),
                                     student.synthesis.shared_noise(teacher.noises.constants())):
                buffer.copy_(noise)
        return student.to(teacher.style.w_avg.device)

    @property
    def num_noises(self) -> int:
        return self.synthesis.num_noises

    def synthesize(self, w_plus: Tensor, noise: NoiseInput = "const", rng: torch.Generator | None = None) -> Tensor:
        return self.synthesis(w_plus, noise, rng)

    def arch_kwargs(self) -> dict:
        """The ``mobile_stylegan`` kwargs that rebuild this generator (what its ``generator.pt`` records)."""
        return {"size": self.img_resolution, "style_dim": self.w_dim, "n_mlp": len(self.style) - 1,
                "channels": list(self.channels.values()), "lr_mlp": self.style[1].lr_mul, "z_dim": self.z_dim,
                "image_channels": self.img_channels}

    def fold_demodulation(self) -> MobileStyleGANGenerator:
        """A copy whose convs carry their demodulation in the weights (``demodulate`` off, no ``style_inv``): the
        same images to float rounding, for export."""
        folded = copy.deepcopy(self)
        for module in folded.modules():
            if isinstance(module, StyledConv):
                module.conv = module.conv.fold_demodulation()
        return folded


@GENERATORS.register(ARCH)
def mobile_stylegan(size: int = 1024, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                    channels: Sequence[int] | None = None, lr_mlp: float = 0.01, z_dim: int | None = None,
                    image_channels: int = 3) -> MobileStyleGANGenerator:
    """MobileStyleGAN for a config-f teacher at the defaults (1024: synthesis 8.85 M parameters and 7.47 G true
    MACs, against StyleGAN2's 28.27 M and 74.26 G; the mapping is the teacher's 2.10 M)."""
    return MobileStyleGANGenerator(size, style_dim, n_mlp, channel_multiplier, channels, lr_mlp, z_dim,
                                   image_channels)
