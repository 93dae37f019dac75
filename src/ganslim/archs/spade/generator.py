"""NVlabs/SPADE's generator (GauGAN, Park et al. 2019), state-dict compatible with its ``latest_net_G.pth`` once
spectral norm is folded into the weights (:mod:`ganslim.checkpoints.spade`) and with GAN Compression's SPADE teachers.

Layout (nf = ngf; u = 5, 6 or 7 upsamplings for ``num_upsampling_layers`` normal / more / most; ``up`` = nearest x2;
every block a :class:`SPADEResnetBlock`)::

    fc           3x3 conv semantic_nc -> 16nf of the label map downsampled (nearest) to H/2^u x W/2^u,
                 or, with the VAE, Linear z_dim -> 16nf * sh * sw reshaped to (16nf, sh, sw)
    head_0 16nf;  up;  G_middle_0 16nf;  [up: more, most];  G_middle_1 16nf
    up; up_0 16nf -> 8nf;  up; up_1 -> 4nf;  up; up_2 -> 2nf;  up; up_3 -> nf;  [up; up_4 -> nf/2: most]
    leaky_relu 0.2;  conv_img 3x3 -> output_nc;  tanh

A block is ``shortcut(x) + conv_1(act(norm_1(conv_0(act(norm_0(x))))))``, its convs 3x3 to min(fin, fout) then fout,
the shortcut a bias-free 1x1 ``conv_s`` after ``norm_s`` when fin != fout. Each norm is :class:`SPADE`: a
parameter-free BatchNorm (or InstanceNorm) of x, modulated by gamma and beta convs of a shared conv + ReLU (``hidden``
wide) over the label map resized (nearest) to x: ``norm(x) * (1 + gamma) + beta``.

The label map is (N, semantic_nc, H, W): one-hot labels (label_nc, + 1 for a dontcare label) then, with instance
edges, the edge map (:mod:`ganslim.data.labels`). NVlabs fixes the latent at sw = crop_size / 2^u, sh =
round(sw / aspect_ratio); here it is H/2^u x W/2^u of the label map given, which is the same at the size the network
is built for (``size``: sh * 2^u x sw * 2^u, 256x512 for Cityscapes) and lets the network run at other sizes. The VAE
variant's fc fixes the latent, so it takes label maps of its size only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ganslim.errors import GanslimError
from ganslim.nn import InstanceNorm2d
from ganslim.registry import GENERATORS
from ganslim.signature import LABEL_MAP, LATENT, SIGNED, ImageSides, InputSpec, OutputSpec, Signature

UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}  # num_upsampling_layers -> nearest x2 steps after fc
PARAM_FREE_NORMS = ("batch", "instance")
LEAKY_SLOPE = 0.2
BLOCK_WIDTHS = (("head_0", 16, 16), ("G_middle_0", 16, 16), ("G_middle_1", 16, 16), ("up_0", 16, 8),
                ("up_1", 8, 4), ("up_2", 4, 2), ("up_3", 2, 1))  # (name, fin, fout) in multiples of ngf


def semantic_channels(label_nc: int, contain_dontcare_label: bool, instance_edges: bool) -> int:
    """Channels of SPADE's label-map input, as its ``opt.semantic_nc``: the labels, a dontcare label, an edge map."""
    return label_nc + int(contain_dontcare_label) + int(instance_edges)


class SPADE(nn.Module):
    """Spatially-adaptive normalization of (N, channels, h, w) features by a (N, label_channels, H, W) label map."""

    def __init__(self, channels: int, label_channels: int, hidden: int, kernel_size: int, norm: str) -> None:
        super().__init__()
        self.param_free_norm = (nn.BatchNorm2d(channels, affine=False) if norm == "batch"
                                else InstanceNorm2d(channels, affine=False))
        padding = kernel_size // 2
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, kernel_size, padding=padding), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        features = self.mlp_shared(F.interpolate(label_map, size=x.shape[2:], mode="nearest"))
        return normalized * (1 + self.mlp_gamma(features)) + self.mlp_beta(features)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block: (N, fin, h, w) and the label map -> (N, fout, h, w)."""

    def __init__(self, fin: int, fout: int, label_channels: int, hidden: int, kernel_size: int, norm: str) -> None:
        super().__init__()
        middle = min(fin, fout)
        self.learned_shortcut, self.out_channels = fin != fout, fout
        self.conv_0 = nn.Conv2d(fin, middle, kernel_size=3, padding=1)
        self.conv_1 = nn.Conv2d(middle, fout, kernel_size=3, padding=1)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, kernel_size=1, bias=False)
        self.norm_0 = SPADE(fin, label_channels, hidden, kernel_size, norm)
        self.norm_1 = SPADE(middle, label_channels, hidden, kernel_size, norm)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_channels, hidden, kernel_size, norm)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, label_map)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label_map), LEAKY_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label_map), LEAKY_SLOPE))
        return shortcut + dx


class SPADELayout(nn.Module):
    """What GauGAN's generator and its mobile students share: the label-map input, the order of the blocks and the
    upsamplings between them, the signature. A subclass builds ``fc``, the blocks named in ``block_names`` and
    ``conv_img`` and sets the attributes read here (label encoding, ``upsamplings``, ``sw`` / ``sh``, ``use_vae``).
    """

    label_nc: int
    contain_dontcare_label: bool
    instance_edges: bool
    output_nc: int
    num_upsampling_layers: str
    upsamplings: int
    sw: int
    sh: int
    use_vae: bool = False
    z_dim: int = 0

    def _set_latent_size(self, num_upsampling_layers: str, crop_size: int, aspect_ratio: float) -> None:
        """``upsamplings``, ``sw`` and ``sh`` as NVlabs computes them, refusing a latent under 2x2."""
        self.upsamplings = UPSAMPLINGS[num_upsampling_layers]
        self.sw = crop_size // 2**self.upsamplings
        self.sh = round(self.sw / aspect_ratio)
        if self.sw < 2 or self.sh < 2:  # a norm of one value per channel fails in training
            smallest = 2**self.upsamplings * max(2, math.ceil(1.5 * aspect_ratio))
            raise GanslimError(f"{type(self).__name__} crop_size {crop_size} with aspect_ratio {aspect_ratio:g} "
                               f"leaves a {self.sh}x{self.sw} latent after {self.upsamplings} upsamplings, and "
                               f"SPADE's norms need at least 2x2: use a crop_size of at least {smallest}")

    @property
    def block_names(self) -> list[str]:
        """The SPADE residual blocks in forward order (``forward_features`` numbers them from 0)."""
        names = [name for name, _, _ in BLOCK_WIDTHS]
        return names + ["up_4"] if self.num_upsampling_layers == "most" else names

    def feature_channels(self, index: int) -> int:
        """Width of the output of block ``index`` of ``block_names``."""
        return self.get_submodule(self.block_names[index]).out_channels

    @property
    def input_nc(self) -> int:
        """The label map's channels (NVlabs' ``semantic_nc``)."""
        return semantic_channels(self.label_nc, self.contain_dontcare_label, self.instance_edges)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) the network is built for: NVlabs' output size."""
        return self.sh * 2**self.upsamplings, self.sw * 2**self.upsamplings

    @property
    def image_sides(self) -> ImageSides:
        """Multiples of 2^u, and a latent of at least 2 pixels (a norm of one value per channel fails in training)."""
        return ImageSides(multiple=2**self.upsamplings, minimum=2 * 2**self.upsamplings)

    @property
    def signature(self) -> Signature:
        inputs = (InputSpec("label_map", LABEL_MAP, self.input_nc, None, self.image_sides, size=self.size),)
        if self.use_vae:
            inputs += (InputSpec("z", LATENT, self.z_dim, None, None),)
        return Signature(inputs, OutputSpec(self.output_nc, SIGNED, scale=1.0))

    def forward(self, label_map: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """``label_map`` (N, semantic_nc, H, W), H and W multiples of 2^u; ``z`` (N, z_dim) for the VAE variant (which
        takes label maps of its ``size`` only) -> (N, output_nc, H, W)."""
        return self.forward_features(label_map, (), z)[0]

    def forward_features(self, label_map: torch.Tensor, layers: Sequence[int], z: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output and the outputs of blocks ``layers`` (indices into ``block_names``), each (N, C_l, h_l, w_l)."""
        x = self._latent(label_map, z)
        features, wanted = {}, set(layers)  # only the asked-for activations are kept (peak memory)
        for index, name in enumerate(self.block_names):
            # nearest x2 before every block but head_0, and before G_middle_1 only with 'more' / 'most'
            if index > 0 and (name != "G_middle_1" or self.num_upsampling_layers in ("more", "most")):
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self.get_submodule(name)(x, label_map)
            if index in wanted:
                features[index] = x
        image = torch.tanh(self.conv_img(F.leaky_relu(x, LEAKY_SLOPE)))
        return image, [features[index] for index in layers]

    def _latent(self, label_map: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """fc's output, (N, 16 ngf, H/2^u, W/2^u)."""
        if label_map.dim() != 4 or label_map.shape[1] != self.input_nc:
            raise GanslimError(f"{type(self).__name__} takes (N, {self.input_nc}, H, W) label maps, got shape "
                               f"{tuple(label_map.shape)}")
        height, width = label_map.shape[2:]
        if not self.use_vae:
            step = 2**self.upsamplings
            return self.fc(F.interpolate(label_map, size=(height // step, width // step), mode="nearest"))
        if z is None or tuple(z.shape) != (label_map.shape[0], self.z_dim):
            raise GanslimError(f"this spade generator (use_vae) takes a code z of shape (N, {self.z_dim}) beside the "
                               f"label map, got {None if z is None else tuple(z.shape)}")
        if (height, width) != self.size:
            raise GanslimError(f"this spade generator (use_vae) takes {self.size[0]}x{self.size[1]} label maps, got "
                               f"{height}x{width}: resize them to its size")
        return self.fc(z).view(-1, 16 * self.ngf, self.sh, self.sw)


class SPADEGenerator(SPADELayout):
    """GauGAN's generator: (N, semantic_nc, H, W) label map [, z (N, z_dim)] -> (N, output_nc, H, W) in [-1, 1].

    Args:
        label_nc: labels, without a dontcare label (Cityscapes 35, COCO-Stuff 182, ADE20K 150).
        contain_dontcare_label: one more one-hot channel for the dontcare label (id 255 in the files).
        instance_edges: one more channel, the edges of the instance map (NVlabs' ``not no_instance``).
        ngf: width; blocks are 16, 8, 4, 2, 1 (and 1/2) x ngf wide.
        num_upsampling_layers: ``normal`` (5 upsamplings), ``more`` (6) or ``most`` (7, adds ``up_4``).
        crop_size, aspect_ratio: the width and width / height the network is built for (Cityscapes 512, 2.0: 256x512).
        use_vae: fc is a Linear from z (N, z_dim), the VAE encoder's code, instead of a conv of the label map.
        z_dim: the VAE code's dimensions.
        spade_hidden: width of SPADE's shared conv; None: 2 x ngf (NVlabs' fixed 128 at ngf 64, and GAN
            Compression's rule at other widths).
        spade_kernel: kernel size of SPADE's convs (NVlabs' ``spade...3x3``).
        norm: SPADE's parameter-free norm: ``batch`` (NVlabs' SyncBatchNorm on one device; convert it with
            ``nn.SyncBatchNorm.convert_sync_batchnorm`` for several) or ``instance``.
        output_nc: image channels.
    """

    def __init__(self, label_nc: int = 182, contain_dontcare_label: bool = False, instance_edges: bool = True,
                 ngf: int = 64, num_upsampling_layers: str = "normal", crop_size: int = 256,
                 aspect_ratio: float = 1.0, use_vae: bool = False, z_dim: int = 256, spade_hidden: int | None = None,
                 spade_kernel: int = 3, norm: str = "batch", output_nc: int = 3) -> None:
        super().__init__()
        _check_options(label_nc, ngf, num_upsampling_layers, crop_size, aspect_ratio, z_dim, spade_hidden,
                       spade_kernel, norm, output_nc)
        self.label_nc, self.contain_dontcare_label = label_nc, contain_dontcare_label
        self.instance_edges, self.output_nc = instance_edges, output_nc
        self.ngf, self.num_upsampling_layers = ngf, num_upsampling_layers
        self.crop_size, self.aspect_ratio = crop_size, aspect_ratio
        self.use_vae, self.z_dim = use_vae, z_dim
        self.spade_hidden, self.spade_kernel, self.norm = spade_hidden, spade_kernel, norm
        self._set_latent_size(num_upsampling_layers, crop_size, aspect_ratio)
        label_channels = self.input_nc
        hidden = 2 * ngf if spade_hidden is None else spade_hidden
        self.fc = (nn.Linear(z_dim, 16 * ngf * self.sw * self.sh) if use_vae
                   else nn.Conv2d(label_channels, 16 * ngf, kernel_size=3, padding=1))
        for name, fin, fout in BLOCK_WIDTHS:
            self.add_module(name, SPADEResnetBlock(fin * ngf, fout * ngf, label_channels, hidden, spade_kernel, norm))
        final = ngf
        if num_upsampling_layers == "most":
            final = ngf // 2
            self.up_4 = SPADEResnetBlock(ngf, final, label_channels, hidden, spade_kernel, norm)
        self.conv_img = nn.Conv2d(final, output_nc, kernel_size=3, padding=1)

    def arch_kwargs(self) -> dict:
        """The ``spade`` builder's keyword arguments that rebuild this network (what a checkpoint records)."""
        return {"label_nc": self.label_nc, "contain_dontcare_label": self.contain_dontcare_label,
                "instance_edges": self.instance_edges, "ngf": self.ngf,
                "num_upsampling_layers": self.num_upsampling_layers, "crop_size": self.crop_size,
                "aspect_ratio": self.aspect_ratio, "use_vae": self.use_vae, "z_dim": self.z_dim,
                "spade_hidden": self.spade_hidden, "spade_kernel": self.spade_kernel, "norm": self.norm,
                "output_nc": self.output_nc}


def _check_options(label_nc: int, ngf: int, num_upsampling_layers: str, crop_size: int, aspect_ratio: float,
                   z_dim: int, spade_hidden: int | None, spade_kernel: int, norm: str, output_nc: int) -> None:
    """One line for an option the network cannot be built with."""
    counts = {"label_nc": label_nc, "ngf": ngf, "crop_size": crop_size, "z_dim": z_dim, "output_nc": output_nc,
              "spade_kernel": spade_kernel} | ({} if spade_hidden is None else {"spade_hidden": spade_hidden})
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GanslimError(f"spade {name}={value!r} is not a positive integer")
    if spade_kernel % 2 == 0:
        raise GanslimError(f"spade spade_kernel={spade_kernel} must be odd (3 as NVlabs' spade...3x3)")
    if num_upsampling_layers not in UPSAMPLINGS:
        raise GanslimError(f"spade num_upsampling_layers {num_upsampling_layers!r} is not one of "
                           f"{', '.join(UPSAMPLINGS)}")
    if norm not in PARAM_FREE_NORMS:
        raise GanslimError(f"spade norm {norm!r} is not one of {', '.join(PARAM_FREE_NORMS)} (NVlabs' syncbatch is "
                           f"batch here)")
    if not isinstance(aspect_ratio, (int, float)) or isinstance(aspect_ratio, bool) or aspect_ratio <= 0:
        raise GanslimError(f"spade aspect_ratio={aspect_ratio!r} is not a positive number (width / height)")
    if num_upsampling_layers == "most" and ngf < 2:
        raise GanslimError("spade with num_upsampling_layers 'most' needs ngf of at least 2 (up_4 is ngf/2 wide)")


@GENERATORS.register("spade")
def spade(label_nc: int = 182, contain_dontcare_label: bool = False, instance_edges: bool = True, ngf: int = 64,
          num_upsampling_layers: str = "normal", crop_size: int = 256, aspect_ratio: float = 1.0,
          use_vae: bool = False, z_dim: int = 256, spade_hidden: int | None = None, spade_kernel: int = 3,
          norm: str = "batch", output_nc: int = 3) -> SPADEGenerator:
    """NVlabs' SPADE generator with every option (see :class:`SPADEGenerator`)."""
    return SPADEGenerator(label_nc, contain_dontcare_label, instance_edges, ngf, num_upsampling_layers, crop_size,
                          aspect_ratio, use_vae, z_dim, spade_hidden, spade_kernel, norm, output_nc)


@GENERATORS.register("spade_cityscapes")
def spade_cityscapes(ngf: int = 64, use_vae: bool = False, z_dim: int = 256, spade_hidden: int | None = None,
                     norm: str = "batch") -> SPADEGenerator:
    """GauGAN on Cityscapes: 35 labels + instance edges (36 channels), 'more' upsampling, 256x512 (93.0 M params,
    281 G MACs at ngf 64)."""
    return SPADEGenerator(35, False, True, ngf, "more", 512, 2.0, use_vae, z_dim, spade_hidden, 3, norm)


@GENERATORS.register("spade_coco")
def spade_coco(ngf: int = 64, use_vae: bool = False, z_dim: int = 256, spade_hidden: int | None = None,
               norm: str = "batch") -> SPADEGenerator:
    """GauGAN on COCO-Stuff: 182 labels + dontcare + instance edges (184 channels), 'normal' upsampling, 256x256."""
    return SPADEGenerator(182, True, True, ngf, "normal", 256, 1.0, use_vae, z_dim, spade_hidden, 3, norm)
