"""An independent, deliberately plain re-implementation of the pix2pix / CycleGAN reference networks.

Written from the semantics of junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py`` (norm chosen as a
layer factory, conv bias decided by "is the factory InstanceNorm2d", Sequentials built as flat lists), used
only by the tests to check that ``ganslim.archs`` matches it key for key and output for output. It shares no
code with ganslim on purpose.
"""

from __future__ import annotations

import functools

import torch
from torch import nn


class _Identity(nn.Module):
    def forward(self, x):
        return x


def norm_factory(norm_type: str, instance_tracks_stats: bool = False):
    """The layer factory the reference builds from a norm name.

    ``instance_tracks_stats=True`` mimics files written before PyTorch 0.4, whose InstanceNorm layers saved
    running statistics.
    """
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=instance_tracks_stats)
    if norm_type == "none":
        return lambda channels: _Identity()
    raise ValueError(norm_type)


def _bias_for(norm_layer) -> bool:
    if isinstance(norm_layer, functools.partial):
        return norm_layer.func == nn.InstanceNorm2d
    return norm_layer == nn.InstanceNorm2d


class RefResnetBlock(nn.Module):
    def __init__(self, dim, norm_layer, use_dropout, use_bias):
        super().__init__()
        seq = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias), norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            seq.append(nn.Dropout(0.5))
        seq += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*seq)

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks):
        super().__init__()
        use_bias = _bias_for(norm_layer)
        seq = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=use_bias), norm_layer(ngf),
               nn.ReLU(True)]
        seq += [nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1, bias=use_bias), norm_layer(ngf * 2), nn.ReLU(True)]
        seq += [nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1, bias=use_bias), norm_layer(ngf * 4), nn.ReLU(True)]
        for _ in range(n_blocks):
            seq.append(RefResnetBlock(ngf * 4, norm_layer, use_dropout, use_bias))
        seq += [
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias),
            norm_layer(ngf * 2),
            nn.ReLU(True),
        ]
        seq += [
            nn.ConvTranspose2d(ngf * 2, ngf, 3, stride=2, padding=1, output_padding=1, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        seq += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


class RefUnetBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm_layer=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        use_bias = _bias_for(norm_layer)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            seq = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            seq = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            seq = [nn.LeakyReLU(0.2, True), downconv, norm_layer(inner_nc), submodule,
                   nn.ReLU(True), upconv, norm_layer(outer_nc)]
            if use_dropout:
                seq.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf, norm_layer, use_dropout):
        super().__init__()
        block = RefUnetBlock(ngf * 8, ngf * 8, norm_layer=norm_layer, innermost=True)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(ngf * 8, ngf * 8, submodule=block, norm_layer=norm_layer, use_dropout=use_dropout)
        block = RefUnetBlock(ngf * 4, ngf * 8, submodule=block, norm_layer=norm_layer)
        block = RefUnetBlock(ngf * 2, ngf * 4, submodule=block, norm_layer=norm_layer)
        block = RefUnetBlock(ngf, ngf * 2, submodule=block, norm_layer=norm_layer)
        self.model = RefUnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                  norm_layer=norm_layer)

    def forward(self, x):
        return self.model(x)


class RefNLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf, n_layers, norm_layer):
        super().__init__()
        use_bias = _bias_for(norm_layer)
        seq = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=use_bias),
                    norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=use_bias),
                norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


class RefPixelDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf, norm_layer):
        super().__init__()
        use_bias = _bias_for(norm_layer)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1, stride=1, padding=0),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, stride=1, padding=0, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, stride=1, padding=0, bias=use_bias),
        )

    def forward(self, x):
        return self.net(x)


_GENERATOR_DEPTHS = {
    "resnet_9blocks": ("resnet", 9),
    "resnet_6blocks": ("resnet", 6),
    "unet_256": ("unet", 8),
    "unet_128": ("unet", 7),
}


def reference_generator(name: str, input_nc=3, output_nc=3, ngf=64, norm="batch", use_dropout=False,
                        n_blocks=None, num_downs=None, instance_tracks_stats=False) -> nn.Module:
    """The reference's ``define_G`` (without init), plus the generic depths ``resnet`` / ``unet``."""
    family, depth = _GENERATOR_DEPTHS.get(name, (name, None))
    norm_layer = norm_factory(norm, instance_tracks_stats)
    if family == "resnet":
        return RefResnetGenerator(input_nc, output_nc, ngf, norm_layer, use_dropout, depth or n_blocks)
    if family == "unet":
        return RefUnetGenerator(input_nc, output_nc, depth or num_downs, ngf, norm_layer, use_dropout)
    raise ValueError(name)


def reference_discriminator(name: str, input_nc=3, ndf=64, norm="batch", n_layers=3,
                            instance_tracks_stats=False) -> nn.Module:
    """The reference's ``define_D`` (without init)."""
    norm_layer = norm_factory(norm, instance_tracks_stats)
    if name == "basic":
        return RefNLayerDiscriminator(input_nc, ndf, 3, norm_layer)
    if name == "n_layers":
        return RefNLayerDiscriminator(input_nc, ndf, n_layers, norm_layer)
    if name == "pixel":
        return RefPixelDiscriminator(input_nc, ndf, norm_layer)
    raise ValueError(name)


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Fill every parameter and float buffer (incl. batch-norm running statistics) with seeded random values.

    Running variances stay positive; the scale keeps activations in a range where outputs differ visibly.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif tensor.dim() == 1 and name.endswith("weight"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
    return module


# Tiny configurations for every reference architecture: name -> (kwargs, image size). The generic names use
# a non-standard depth and non-RGB channels so that inference cannot lean on the defaults.
TINY_GENERATORS: dict[str, tuple[dict, int]] = {
    "resnet_9blocks": ({"ngf": 8}, 64),
    "resnet_6blocks": ({"ngf": 8}, 64),
    "resnet": ({"ngf": 8, "n_blocks": 3, "input_nc": 1, "output_nc": 2}, 64),
    "unet_256": ({"ngf": 4}, 256),
    "unet_128": ({"ngf": 4}, 128),
    "unet": ({"ngf": 4, "num_downs": 6, "input_nc": 1, "output_nc": 2}, 64),
}
# (name, kwargs, image size); n_layers 5 reaches the 8 * ndf width cap.
TINY_DISCRIMINATORS: list[tuple[str, dict, int]] = [
    ("basic", {"ndf": 8, "input_nc": 6}, 64),
    ("n_layers", {"ndf": 8, "n_layers": 2}, 64),
    ("n_layers", {"ndf": 4, "n_layers": 5}, 128),
    ("pixel", {"ndf": 8, "input_nc": 6}, 32),
]
NORM_NAMES = ("batch", "instance", "none")
# How close our networks' outputs are to the reference's on the same weights. Not exact: our instance norm
# runs PyTorch's group_norm kernel (ganslim.nn.InstanceNorm2d), the reference its batch_norm one; the two
# round differently in float32, by about 3e-6 after nine residual blocks.
OUTPUT_TOLERANCE = 1e-5


def image(batch: int, channels: int, size: int, seed: int = 1) -> torch.Tensor:
    """A seeded (batch, channels, size, size) input in [-1, 1]."""
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
