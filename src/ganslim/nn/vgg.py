"""VGG16 and VGG19 ``features`` in torchvision's exact layout, as frozen extractors of named activations.

The module tree is ``features.0`` ... ``features.30`` as in torchvision's ``vgg16().features`` (configuration
"D": 13 3×3 convolutions, each followed by a ReLU, and 5 max-pools), so the ImageNet weights file
``vgg16-397923af.pth`` loads strictly into it: keys ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight``
and ``.bias``; the file's ``classifier.*`` keys are ignored. Style and feature losses (OMGD, AutoGAN-Distiller)
read relu1_2, relu2_2, relu3_3 and relu4_3, and the forward pass stops after the deepest layer asked for.

VGG19 (configuration "E": 16 convolutions, ``features.0`` ... ``features.36``, weights ``vgg19-dcbb9e9d.pth`` with
keys ``features.{0,2,5,7,10,12,14,16,19,21,23,25,28,30,32,34}.*``) gives ESRGAN's perceptual features: conv5_4
*before* its ReLU, for [0, 1] images normalised with the ImageNet mean / std (:class:`VGG19Features`).

Nothing is downloaded: both files are looked for the same way (see :func:`find_vgg16_weights`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn

from ganslim.errors import GanslimError
from ganslim.weights import WeightsFile, cache_path, find_weights_file, load_state_dict_strict

V = TypeVar("V", bound=nn.Module)


def _torchvision_file(network: str, filename: str) -> WeightsFile:
    return WeightsFile(label=network, filename=filename, url=f"https://download.pytorch.org/models/{filename}",
                       env_var=f"GANSLIM_{network}_WEIGHTS", wanted=f"torchvision's {filename}",
                       title=f"torchvision's {network} weights file {filename}")


VGG16_WEIGHTS = _torchvision_file("VGG16", "vgg16-397923af.pth")
VGG19_WEIGHTS = _torchvision_file("VGG19", "vgg19-dcbb9e9d.pth")
WEIGHTS_FILENAME, WEIGHTS_URL, WEIGHTS_ENV_VAR = VGG16_WEIGHTS.filename, VGG16_WEIGHTS.url, VGG16_WEIGHTS.env_var

# torchvision's configurations "D" and "E": output channels of each 3×3 conv, "M" for a 2×2 max-pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
VGG19_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)


def _layer_indices(config: tuple[int | str, ...]) -> dict[str, int]:
    """``convB_K`` and ``reluB_K`` (block B, K-th conv of the block) -> index of that layer inside ``features``."""
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 0
    for item in config:
        if item == "M":
            index += 1
            block, conv = block + 1, 0
        else:
            conv += 1
            names[f"conv{block}_{conv}"], names[f"relu{block}_{conv}"] = index, index + 1
            index += 2
    return names


#: Every ReLU of ``features`` by name: relu1_1 -> 1, relu1_2 -> 3, relu2_2 -> 8, relu3_3 -> 15, relu4_3 -> 22, ...
VGG16_LAYERS: dict[str, int] = {name: index for name, index in _layer_indices(VGG16_CONFIG).items()
                                if name.startswith("relu")}
#: Every ReLU of VGG19's ``features``: relu1_1 -> 1, relu2_1 -> 6, relu3_1 -> 11, relu4_1 -> 20, relu5_1 -> 29, ...
VGG19_LAYERS: dict[str, int] = {name: index for name, index in _layer_indices(VGG19_CONFIG).items()
                                if name.startswith("relu")}
#: SPADE's (pix2pixHD's) perceptual layers: the first ReLU of every block.
PYRAMID_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: ESRGAN's perceptual layer: VGG19's last conv, before its ReLU (index 34 of ``features``).
PERCEPTUAL_LAYER = "conv5_4"
VGG19_PERCEPTUAL_INDEX = _layer_indices(VGG19_CONFIG)[PERCEPTUAL_LAYER]
#: The layers the OMGD / AutoGAN-Distiller style loss reads; relu2_2 is also the feature-loss layer.
STYLE_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

VGG19_OFF = "none"  # a --vgg19-weights value that turns the perceptual term off

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _make_features(config: tuple[int | str, ...]) -> nn.Sequential:
    """torchvision's ``features`` of a VGG configuration: a 3×3 conv and a ReLU per number, a max-pool per "M".

    VGG16: 31 modules, convs at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28; VGG19: 37 modules, convs at 0, 2, 5,
    7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34. (N, 3, H, W) -> (N, 512, H/32, W/32). Weights are left at
    PyTorch's default initialisation.
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
            # Not in-place: the activation handed out for a loss must not be overwritten by the next layer.
            layers.append(nn.ReLU(inplace=False))
            in_channels = item
    return nn.Sequential(*layers)


class _FrozenVGG(nn.Module):
    """torchvision's ``features`` of a VGG ``config``, frozen, with the ImageNet mean / std as non-persistent
    buffers (they follow ``.to(device)`` without entering the state dict, which holds exactly torchvision's
    ``features.*`` keys). Parameters have ``requires_grad=False``; gradients still flow to the input image."""

    def __init__(self, config: tuple[int | str, ...]) -> None:
        super().__init__()
        self.features = _make_features(config)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> _FrozenVGG:
        """Stay in eval mode: a loss network inside a method's ``.train()`` call is still frozen."""
        return super().train(False)


class _ReLUFeatures(_FrozenVGG):
    """A frozen VGG of ``config`` returning the activations of named ReLU layers (``table``: name -> index in
    ``features``) for images in [-1, 1]; ``label`` ("VGG16", "VGG19") names it in messages. See
    :class:`VGG16Features` for ``imagenet_norm`` and ``signed_input``."""

    def __init__(self, config: tuple[int | str, ...], table: dict[str, int], label: str, layers: Sequence[str],
                 imagenet_norm: bool, signed_input: bool) -> None:
        super().__init__(config)
        if signed_input and imagenet_norm:
            raise ValueError(f"{label}Features: signed_input feeds the image unnormalised; pass imagenet_norm=False")
        unknown = [name for name in layers if name not in table]
        if unknown or not layers:
            raise GanslimError(
                f"unknown {label} layer(s) {unknown or '(none given)'}; choose from: {', '.join(table)}"
            )
        self.table, self.label = table, label
        # Shallow to deep, so the forward pass can hand out each one as it passes and stop at the last.
        self.layers: tuple[str, ...] = tuple(sorted(dict.fromkeys(layers), key=table.__getitem__))
        self.imagenet_norm, self.signed_input = imagenet_norm, signed_input

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Activations of :attr:`layers` for ``image``.

        Args:
            image: (N, 3, H, W) or (N, 1, H, W) in [-1, 1]; grey images are repeated to 3 channels. It is mapped
                to [0, 1] and then (with ``imagenet_norm``) normalised with the ImageNet mean / std, unless
                ``signed_input``.

        Returns:
            ``{name: (N, C, H / 2**(block-1), W / 2**(block-1))}`` in :attr:`layers` order (shallow to deep),
            e.g. relu1_2 (N, 64, H, W), relu2_2 (N, 128, H/2, W/2), relu3_3 (N, 256, H/4, W/4),
            relu4_3 (N, 512, H/8, W/8); pooled sizes round down.
        """
        if image.dim() != 4 or image.shape[1] not in (1, 3):
            raise GanslimError(
                f"{self.label} features take (N,3,H,W) or (N,1,H,W) images in [-1, 1], got {tuple(image.shape)}"
            )
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        x = image if self.signed_input else (image + 1) / 2
        if self.imagenet_norm:
            x = (x - self.mean) / self.std
        wanted = {self.table[name]: name for name in self.layers}
        last = self.table[self.layers[-1]]
        out: dict[str, Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
            if index == last:
                break
        return out


class VGG16Features(_ReLUFeatures):
    """Frozen VGG16 returning the activations of named ReLU layers for images in [-1, 1] (see :class:`_FrozenVGG`).

    Args:
        layers: names from :data:`VGG16_LAYERS` (default :data:`STYLE_LAYERS`).
        imagenet_norm: after mapping [-1, 1] to [0, 1], normalise with the ImageNet mean / std as
            torchvision's weights expect (default). ``False`` feeds the [0, 1] image as it is, as OMGD and
            AutoGAN-Distiller do: their loss weights (style 1e4, feature 10) were tuned on that input, whose
            scale is about 4x below the normalised one (1 / std is 4.4), and Gram matrices grow quadratically.
        signed_input: feed the [-1, 1] image as it is, neither mapped to [0, 1] nor normalised, as MobileStyleGAN's
            perceptual loss does (its weight 1 was tuned on that input); needs ``imagenet_norm`` False.
    """

    def __init__(self, layers: Sequence[str] = STYLE_LAYERS, imagenet_norm: bool = True,
                 signed_input: bool = False) -> None:
        super().__init__(VGG16_CONFIG, VGG16_LAYERS, "VGG16", layers, imagenet_norm, signed_input)


class VGG19ReLUFeatures(_ReLUFeatures):
    """Frozen VGG19 returning the activations of named ReLU layers (:data:`VGG19_LAYERS`), as
    :class:`VGG16Features` does for VGG16. Default: SPADE's (pix2pixHD's) perceptual layers relu1_1 ... relu5_1 of
    the [-1, 1] image fed as it is (NVlabs' ``VGG19`` runs on the generator's output, unnormalised)."""

    def __init__(self, layers: Sequence[str] = PYRAMID_LAYERS, imagenet_norm: bool = False,
                 signed_input: bool = True) -> None:
        super().__init__(VGG19_CONFIG, VGG19_LAYERS, "VGG19", layers, imagenet_norm, signed_input)


def default_vgg16_weights_path() -> Path:
    """``~/.cache/ganslim/vgg16-397923af.pth``, the last place :func:`find_vgg16_weights` looks."""
    return cache_path(VGG16_WEIGHTS.filename)


def default_vgg19_weights_path() -> Path:
    """``~/.cache/ganslim/vgg19-dcbb9e9d.pth``, the last place :func:`find_vgg19_weights` looks."""
    return cache_path(VGG19_WEIGHTS.filename)


def find_vgg16_weights(weights: str | os.PathLike | None = None) -> Path | None:
    """Where the VGG16 ImageNet weights file is, or ``None`` when nobody named one and the cache has none.

    Looked for, in this order (the first source that is set is used):

    1. ``weights``, when given;
    2. the path in the environment variable ``GANSLIM_VGG16_WEIGHTS``, when set and non-empty;
    3. ``~/.cache/ganslim/vgg16-397923af.pth``, when that file exists.

    Raises:
        GanslimError: ``weights`` or the environment variable names a path that is not a file (a path the user
            set is never silently skipped).
    """
    return find_weights_file(weights, VGG16_WEIGHTS, default_vgg16_weights_path())


def find_vgg19_weights(weights: str | os.PathLike | None = None) -> Path | None:
    """Where the VGG19 ImageNet weights file is: as :func:`find_vgg16_weights`, with ``GANSLIM_VGG19_WEIGHTS``
    and ``~/.cache/ganslim/vgg19-dcbb9e9d.pth``."""
    return find_weights_file(weights, VGG19_WEIGHTS, default_vgg19_weights_path())


def _weights_hint(weights: WeightsFile) -> str:
    return (f"put {weights.wanted} (from {weights.url}) at {cache_path(weights.filename)}, or set {weights.env_var} "
            f"to its path")


def vgg16_weights_hint() -> str:
    """How a user supplies the VGG16 weights file, for error and warning messages (one line)."""
    return _weights_hint(VGG16_WEIGHTS)


def vgg19_weights_hint() -> str:
    """How a user supplies the VGG19 weights file, for error and warning messages (one line)."""
    return _weights_hint(VGG19_WEIGHTS)


def load_vgg16(weights: str | os.PathLike | None = None, layers: Sequence[str] = STYLE_LAYERS,
               imagenet_norm: bool = True, signed_input: bool = False) -> VGG16Features:
    """Build :class:`VGG16Features` and load the ImageNet weights; returned frozen, in eval mode, on the CPU.

    The file is found by :func:`find_vgg16_weights` (argument, then ``$GANSLIM_VGG16_WEIGHTS``, then
    ``~/.cache/ganslim/vgg16-397923af.pth``), read with ``torch.load(weights_only=True)`` and loaded strictly
    into ``features.*``; ``classifier.*`` keys (present in torchvision's file) are ignored. Nothing is
    downloaded.

    Args:
        weights: path of the weights file, or ``None`` to look it up.
        layers: the ReLU layers the extractor returns (see :class:`VGG16Features`).
        imagenet_norm: normalise inputs with the ImageNet mean / std (see :class:`VGG16Features`).
        signed_input: feed the [-1, 1] image as it is (see :class:`VGG16Features`).

    Raises:
        GanslimError: no file found, the file is unreadable, or its keys or shapes differ (the message names
            the first difference of each kind).
    """
    return _load_weights(VGG16Features(layers, imagenet_norm, signed_input), weights, VGG16_WEIGHTS)


def _load_weights(vgg: V, weights: str | os.PathLike | None, file: WeightsFile) -> V:
    """``vgg`` with torchvision's ``file`` found (argument, environment variable, cache) and loaded strictly into
    its ``features.*``; the file's ``classifier.*`` keys are ignored."""
    path = find_weights_file(weights, file, cache_path(file.filename))
    if path is None:
        raise GanslimError(f"{file.label} weights not found: {_weights_hint(file)}, or pass weights= to its path")
    load_state_dict_strict(vgg, path, file, ignore=lambda key: key.startswith("classifier."))
    return vgg


class VGG19Features(_FrozenVGG):
    """Frozen VGG19 returning ESRGAN's perceptual features: conv5_4 before its ReLU, for images in [0, 1].

    As BasicSR's ``VGGFeatureExtractor(vgg_type="vgg19", use_input_norm=True, range_norm=False)``: the image is
    normalised with the ImageNet mean / std and run through torchvision's ``vgg19().features`` up to index 34
    (see :class:`_FrozenVGG`; the state dict holds the 16 convs' ``features.*`` keys).
    """

    def __init__(self) -> None:
        super().__init__(VGG19_CONFIG)

    def forward(self, image: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 1] -> conv5_4 features (N, 512, H/16, W/16) (sides rounded down at each pool)."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise GanslimError(f"VGG19 features take (N, 3, H, W) images in [0, 1], got {tuple(image.shape)}")
        x = (image - self.mean) / self.std
        for layer in self.features[:VGG19_PERCEPTUAL_INDEX + 1]:
            x = layer(x)
        return x


def load_vgg19_relus(weights: str | os.PathLike | None = None, layers: Sequence[str] = PYRAMID_LAYERS,
                     imagenet_norm: bool = False, signed_input: bool = True) -> VGG19ReLUFeatures:
    """:class:`VGG19ReLUFeatures` with the ImageNet weights (found and loaded as :func:`load_vgg19`), frozen, in eval
    mode, on the CPU.

    Raises:
        GanslimError: no file found, the file is unreadable, or its keys or shapes differ.
    """
    return _load_weights(VGG19ReLUFeatures(layers, imagenet_norm, signed_input), weights, VGG19_WEIGHTS)


def perceptual_vgg19_file(weights: str, weight: float) -> tuple[str, Path | None]:
    """How a perceptual term on VGG19 runs: ``("off", None)`` when asked (``weights`` is ``"none"`` or the term's
    ``weight`` 0), ``("absent", None)`` when no file is found (:func:`find_vgg19_weights`, ``""`` meaning look it
    up), else ``("loaded", path)``."""
    if weights == VGG19_OFF or weight == 0:
        return "off", None
    path = find_vgg19_weights(weights or None)
    return ("absent", None) if path is None else ("loaded", path)


def vgg19_absent_notice() -> str:
    """The line a run without VGG19 weights says once (and records) about its perceptual term."""
    return f"perceptual term off (no VGG19 weights): {vgg19_weights_hint()}, or pass --vgg19-weights FILE"


def vgg19_record(status: str) -> dict[str, str]:
    """How a run's summary records its VGG19 term: ``{"vgg19": status}``, with the notice when it was ``absent``."""
    return {"vgg19": status, **({"notice": vgg19_absent_notice()} if status == "absent" else {})}


def load_vgg19(weights: str | os.PathLike | None = None) -> VGG19Features:
    """:class:`VGG19Features` with the ImageNet weights, frozen, in eval mode, on the CPU.

    The file is found by :func:`find_vgg19_weights` (argument, ``$GANSLIM_VGG19_WEIGHTS``,
    ``~/.cache/ganslim/vgg19-dcbb9e9d.pth``) and loaded as :func:`load_vgg16` loads its file.

    Raises:
        GanslimError: no file found, the file is unreadable, or its keys or shapes differ.
    """
    return _load_weights(VGG19Features(), weights, VGG19_WEIGHTS)
