"""What a generator takes and returns: its *signature*, declared by its architecture and stored in its checkpoint.

Everything after training (profile, bench, export, quantize, eval, translate) reads a model's signature instead of
probing its first conv or assuming one square [-1, 1] image in and out (:func:`signature_of`, :func:`input_channels`
and :func:`output_channels` probe only a plain module that declares none):

* each **input** has a ``kind`` (``image``, ``label_map`` or ``latent``), ``channels`` (image channels, label count
  or latent dimensions), the ``value_range`` its values live in (images: (-1, 1) or (0, 1); label maps and latents:
  ``None``), and for images and label maps the ``sides`` it accepts (:class:`ImageSides`);
* the **output** is an image with ``channels``, a ``value_range`` and either a ``scale`` relative to the first
  spatial input (1 for image-to-image, 4 for x4 super-resolution) or a fixed ``resolution`` (latent inputs).

A signature round-trips through plain JSON (:meth:`Signature.to_dict` / :meth:`Signature.from_dict`), which is how
checkpoint headers and export sidecars carry it, and makes the example inputs profiling, export and parity checks
run on (:meth:`Signature.example_inputs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import Tensor, nn

from ganslim.errors import GanslimError, first_line

IMAGE, LABEL_MAP, LATENT = "image", "label_map", "latent"
INPUT_KINDS = (IMAGE, LABEL_MAP, LATENT)
SIGNED, UNIT = (-1.0, 1.0), (0.0, 1.0)  # the two image value ranges: tanh outputs, and [0, 1] intensities


@dataclass(frozen=True)
class ImageSides:
    """Image sides (height and width alike, in pixels) a network takes: multiples of ``multiple``, at least
    ``minimum`` (itself a multiple) and, for a network of one fixed input size such as BasicSR's VGG-style
    discriminator, at most ``maximum`` (None: no bound; generators have none)."""

    multiple: int = 1
    minimum: int = 1
    maximum: int | None = None

    def accepts(self, side: int) -> bool:
        return side >= self.minimum and side % self.multiple == 0 and (self.maximum is None or side <= self.maximum)

    def nearest(self, side: int) -> list[int]:
        """The accepted sides next to ``side``: the largest below it (if any) and the smallest above it."""
        if self.maximum is not None and side > self.maximum:
            return [self.maximum]
        below = side // self.multiple * self.multiple
        above = max(self.minimum, -(-side // self.multiple) * self.multiple)
        return [below, above] if self.minimum <= below < above else [above]

    def describe(self) -> str:
        """``"multiples of 4 and at least 8 pixels"``, ``"at least 24 pixels"``, ``"multiples of 256"``,
        ``"exactly 128 pixels"``."""
        if self.maximum == self.minimum:
            return f"exactly {self.minimum} pixels"
        parts = [f"multiples of {self.multiple}"] if self.multiple > 1 else []
        if self.minimum > self.multiple:
            parts.append(f"at least {self.minimum} pixels")
        if self.maximum is not None:
            parts.append(f"at most {self.maximum} pixels")
        return " and ".join(parts) or "any size"


def common_side(rules: Iterable[ImageSides], at_least: int = 64) -> int:
    """The smallest side of at least ``at_least`` pixels that every one of ``rules`` accepts."""
    return max(combined(rules).nearest(at_least))


def combined(rules: Iterable[ImageSides]) -> ImageSides:
    """The sides every one of ``rules`` accepts."""
    multiple, minimum, maxima = 1, 1, []
    for rule in rules:
        multiple = math.lcm(multiple, rule.multiple)
        minimum = max(minimum, rule.minimum)
        maxima += [rule.maximum] if rule.maximum is not None else []
    return ImageSides(multiple, -(-minimum // multiple) * multiple, min(maxima) if maxima else None)


@dataclass(frozen=True)
class InputSpec:
    """One input of a generator (see the module docstring)."""

    name: str
    kind: str
    channels: int
    value_range: tuple[float, float] | None = SIGNED
    sides: ImageSides | None = field(default_factory=ImageSides)

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        if (self.kind == LATENT) != (self.sides is None):
            raise ValueError("latent inputs have no sides; image and label-map inputs have them")

    @property
    def spatial(self) -> bool:
        return self.kind != LATENT


@dataclass(frozen=True)
class OutputSpec:
    """The image a generator returns: ``scale`` x the first spatial input's sides, or ``resolution`` x
    ``resolution`` pixels (exactly one of the two is set)."""

    channels: int
    value_range: tuple[float, float] = SIGNED
    scale: float | None = 1.0
    resolution: int | None = None

    def __post_init__(self) -> None:
        if (self.scale is None) == (self.resolution is None):
            raise ValueError("an output has either a scale or a fixed resolution")


@dataclass(frozen=True)
class Signature:
    """A generator's inputs and output; see the module docstring."""

    inputs: tuple[InputSpec, ...]
    output: OutputSpec

    @property
    def image_input(self) -> InputSpec:
        """The first spatial input (the image a translation or super-resolution model works on)."""
        for spec in self.inputs:
            if spec.spatial:
                return spec
        raise GanslimError("this generator takes no image: it is driven by latents alone")

    @property
    def takes_image(self) -> bool:
        return any(spec.spatial for spec in self.inputs)

    @property
    def super_resolution(self) -> bool:
        """True when the output is a scale other than 1 of the input: such a model takes each image at its own
        size (it is never resized to a training size) and may be run in tiles."""
        return self.output.scale is not None and self.output.scale != 1

    def output_side(self, side: int) -> int:
        """The output's side for an input side ``side`` (or the fixed resolution)."""
        if self.output.resolution is not None:
            return self.output.resolution
        return round(side * self.output.scale)

    def check_side(self, side: int, what: str = "the input size") -> None:
        """A one-line GanslimError when an image side of ``side`` pixels is one this generator cannot take."""
        sides = self.image_input.sides
        if not sides.accepts(side):
            raise GanslimError(f"{what} {side} does not fit this generator, which takes image sides that are "
                               f"{sides.describe()}: use {' or '.join(map(str, sides.nearest(side)))}")

    def example_inputs(self, side: int | tuple[int, int] | None = None, batch: int = 1,
                       generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> tuple[Tensor, ...]:
        """One random tensor per input: images uniform in their value range at ``side`` x ``side`` (or ``side`` =
        (height, width)), label maps one-hot, latents standard normal. ``side`` defaults to the smallest accepted
        side of at least 64."""
        tensors = []
        for spec in self.inputs:
            if spec.kind == LATENT:
                tensors.append(torch.randn(batch, spec.channels, generator=generator).to(device))
                continue
            default = max(spec.sides.nearest(64))
            height, width = (side, side) if isinstance(side, int) else side or (default, default)
            shape = (batch, spec.channels, height, width)
            if spec.kind == IMAGE:
                low, high = spec.value_range
                tensors.append((torch.rand(shape, generator=generator) * (high - low) + low).to(device))
            else:
                labels = torch.randint(spec.channels, (batch, height, width), generator=generator)
                tensors.append(torch.nn.functional.one_hot(labels, spec.channels).permute(0, 3, 1, 2).float()
                               .to(device))
        return tuple(tensors)

    def to_dict(self) -> dict:
        """Plain JSON (lists, numbers, strings) for checkpoint headers and export sidecars."""
        return {"inputs": [{"name": s.name, "kind": s.kind, "channels": s.channels,
                            "value_range": list(s.value_range) if s.value_range is not None else None,
                            "sides": None if s.sides is None else {"multiple": s.sides.multiple,
                                                                   "minimum": s.sides.minimum}}
                           for s in self.inputs],
                "output": {"channels": self.output.channels, "value_range": list(self.output.value_range),
                           "scale": self.output.scale, "resolution": self.output.resolution}}

    @classmethod
    def from_dict(cls, data: dict) -> Signature:
        """The inverse of :meth:`to_dict`; a malformed dict raises GanslimError."""
        try:
            inputs = tuple(InputSpec(name=str(s["name"]), kind=s["kind"], channels=int(s["channels"]),
                                     value_range=None if s["value_range"] is None else _range(s["value_range"]),
                                     sides=None if s["sides"] is None else ImageSides(int(s["sides"]["multiple"]),
                                                                                      int(s["sides"]["minimum"])))
                           for s in data["inputs"])
            out = data["output"]
            output = OutputSpec(channels=int(out["channels"]), value_range=_range(out["value_range"]),
                                scale=None if out["scale"] is None else float(out["scale"]),
                                resolution=None if out["resolution"] is None else int(out["resolution"]))
        except (KeyError, TypeError, ValueError) as error:
            raise GanslimError(f"malformed model signature ({type(error).__name__}: {error}): re-export the "
                               f"checkpoint with this ganslim") from None
        return cls(inputs, output)

    def describe(self) -> str:
        """One line, e.g. ``image (3 ch, [-1, 1], multiples of 4 and at least 8 pixels) -> image (3 ch, [-1, 1], x1)``."""
        def value_range(pair: tuple[float, float] | None) -> str:
            return "" if pair is None else f", [{pair[0]:g}, {pair[1]:g}]"

        parts = []
        for spec in self.inputs:
            where = f", {spec.sides.describe()}" if spec.sides is not None else ""
            unit = "dims" if spec.kind == LATENT else "labels" if spec.kind == LABEL_MAP else "ch"
            parts.append(f"{spec.name} ({spec.channels} {unit}{value_range(spec.value_range)}{where})")
        out = self.output
        size = f"x{out.scale:g}" if out.scale is not None else f"{out.resolution}x{out.resolution}"
        return f"{', '.join(parts)} -> image ({out.channels} ch{value_range(out.value_range)}, {size})"


def _range(pair: object) -> tuple[float, float]:
    low, high = pair  # type: ignore[misc]
    return float(low), float(high)


def image_to_image(input_nc: int, output_nc: int, sides: ImageSides, value_range: tuple[float, float] = SIGNED,
                   scale: float = 1.0) -> Signature:
    """The signature of a model mapping one image to another: translation (scale 1) or super-resolution."""
    return Signature((InputSpec("image", IMAGE, input_nc, value_range, sides),),
                     OutputSpec(output_nc, value_range, scale=scale))


class TranslatesImages:
    """Mixin of the image-to-image generators: one image in [-1, 1] -> an image of the same size in [-1, 1].

    The class sets ``input_nc``, ``output_nc`` and ``image_sides`` (a class attribute or a property)."""

    input_nc: int
    output_nc: int
    image_sides: ImageSides

    @property
    def signature(self) -> Signature:
        return image_to_image(self.input_nc, self.output_nc, self.image_sides)


def input_channels(model: nn.Module) -> int:
    """Channels of the image ``model`` takes: its signature's. A plain module that declares none (not a ganslim
    architecture) is probed: the input channels of its first convolution."""
    signature = getattr(model, "signature", None)
    if isinstance(signature, Signature):
        return signature.image_input.channels
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            return module.in_channels
    raise GanslimError(f"cannot tell the input channels of {type(model).__name__}: it declares no signature and "
                       f"has no convolution; pass in_channels")


def signature_of(model: nn.Module, side: int = 64) -> Signature:
    """``model``'s declared signature. A plain module that declares none is taken for what ganslim's translators
    are: one image in [-1, 1] -> an image in [-1, 1] of the same size, any side, its channels probed
    (:func:`input_channels`, and :func:`output_channels` at ``side``)."""
    signature = getattr(model, "signature", None)
    if isinstance(signature, Signature):
        return signature
    return image_to_image(input_channels(model), output_channels(model, side), ImageSides())


def output_channels(model: nn.Module, side: int) -> int:
    """Channels of the image ``model`` returns: its signature's. A plain module that declares none is probed: one
    forward of a (1, C, side, side) zero image, C its :func:`input_channels`."""
    signature = getattr(model, "signature", None)
    if isinstance(signature, Signature):
        return signature.output.channels
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    image = torch.zeros(1, input_channels(model), side, side, device=device)
    try:
        with torch.inference_mode():
            return int(model.eval()(image).shape[1])
    except RuntimeError as error:
        raise GanslimError(f"the generator fails on {'x'.join(map(str, image.shape))} inputs ({first_line(error)}): "
                           f"pick a --size its downsampling accepts (e.g. 256)") from None
