"""What a generator takes and returns: its *signature*, declared by its architecture and stored in its checkpoint.

Everything after training (profile, bench, export, quantize, eval, translate) reads a model's signature instead of
probing its first conv or assuming one square [-1, 1] image in and out (:func:`signature_of`, :func:`input_channels`
and :func:`output_channels` probe only a plain module that declares none):

* each **input** has a ``kind`` (``image``, ``label_map``, ``latent`` or ``noise``), ``channels`` (image channels,
  label count, latent dimensions or noise channels), the ``value_range`` its values live in (images: (-1, 1) or
  (0, 1); label maps, latents and noise: ``None``), and for images, label maps and noise the ``sides`` it accepts
  (:class:`ImageSides`; a noise image has one fixed side, :func:`noise_input`), and for an image or label map built
  for one (height, width) its ``size`` (SPADE's crop size and aspect ratio: what translate resizes to and profile
  measures at by default). A latent of ``layers`` vectors is (N, layers, channels), as StyleGAN2's W+
  (N, num_ws, w_dim); other latents are (N, channels);
* the **output** is an image with ``channels``, a ``value_range`` and either a ``scale`` relative to the first
  image input (1 for image-to-image, 4 for x4 super-resolution) or a fixed ``resolution`` (latent inputs); or, of
  ``kind`` ``latent``, a (N, channels) latent (StyleGAN2's mapping network: z -> W).

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

IMAGE, LABEL_MAP, LATENT, NOISE = "image", "label_map", "latent", "noise"
INPUT_KINDS = (IMAGE, LABEL_MAP, LATENT, NOISE)
PICTURE_KINDS = (IMAGE, LABEL_MAP)  # the inputs a model works on at a side the caller picks
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
    layers: int | None = None
    size: tuple[int, int] | None = None  # (height, width) the network is built for, if it has one

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        if (self.kind == LATENT) != (self.sides is None):
            raise ValueError("latent inputs have no sides; image, label-map and noise inputs have them")
        if self.layers is not None and self.kind != LATENT:
            raise ValueError("only latent inputs have layers")
        if self.kind == NOISE and self.sides.maximum != self.sides.minimum:
            raise ValueError("a noise input has one fixed side (see noise_input)")
        if self.size is not None and (self.kind not in PICTURE_KINDS or not all(map(self.sides.accepts, self.size))):
            raise ValueError("only image and label-map inputs have a size, and it must be of sides they accept")

    @property
    def spatial(self) -> bool:
        return self.kind != LATENT


@dataclass(frozen=True)
class OutputSpec:
    """What a generator returns: an image ``scale`` x the first image input's sides, or ``resolution`` x
    ``resolution`` pixels (exactly one of the two is set); or, of ``kind`` ``latent``, a (N, channels) latent with
    neither and no value range."""

    channels: int
    value_range: tuple[float, float] | None = SIGNED
    scale: float | None = 1.0
    resolution: int | None = None
    kind: str = IMAGE

    def __post_init__(self) -> None:
        if self.kind == LATENT:
            if (self.scale, self.resolution, self.value_range) != (None, None, None):
                raise ValueError("a latent output has no scale, resolution or value range")
        elif self.kind != IMAGE:
            raise ValueError(f"output kind must be {IMAGE!r} or {LATENT!r}, got {self.kind!r}")
        elif (self.scale is None) == (self.resolution is None):
            raise ValueError("an output has either a scale or a fixed resolution")


@dataclass(frozen=True)
class Signature:
    """A generator's inputs and output; see the module docstring."""

    inputs: tuple[InputSpec, ...]
    output: OutputSpec

    @property
    def image_input(self) -> InputSpec:
        """The first image or label-map input (what a translation or super-resolution model works on)."""
        for spec in self.inputs:
            if spec.kind in PICTURE_KINDS:
                return spec
        raise GanslimError("this generator takes no image: it is driven by latents alone")

    @property
    def takes_image(self) -> bool:
        return any(spec.kind in PICTURE_KINDS for spec in self.inputs)

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

    def check_resolution(self, size: int, what: str = "--size") -> None:
        """A one-line GanslimError when ``size`` is asked of a latent generator (of a fixed output resolution) whose
        resolution it is not: such a model takes no image, so a size can only be the one it makes."""
        resolution = self.output.resolution
        if size != resolution:
            raise GanslimError(f"{what} {size} does not fit this generator, which makes {resolution}x{resolution} "
                               f"images from latents: drop {what} (a latent generator has one output size)")

    def example_inputs(self, side: int | tuple[int, int] | None = None, batch: int = 1,
                       generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> tuple[Tensor, ...]:
        """One random tensor per input: images uniform in their value range at ``side`` x ``side`` (or ``side`` =
        (height, width)), label maps one-hot, latents (N, channels) or (N, layers, channels) and noise images
        (N, channels, r, r) at their own side r standard normal. ``side`` defaults to the input's ``size``, else
        the smallest accepted side of at least 64."""
        tensors = []
        for spec in self.inputs:
            if spec.kind in (LATENT, NOISE):
                tensors.append(torch.randn(batch, *_normal_shape(spec), generator=generator).to(device))
                continue
            default = spec.size or (max(spec.sides.nearest(64)),) * 2
            height, width = (side, side) if isinstance(side, int) else side or default
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
        # Keys of the later additions (layers, a side's maximum, a latent output's kind) only where they are set, so
        # the signatures of earlier checkpoints and sidecars read back equal.
        inputs = []
        for s in self.inputs:
            entry = {"name": s.name, "kind": s.kind, "channels": s.channels,
                     "value_range": list(s.value_range) if s.value_range is not None else None,
                     "sides": None if s.sides is None else {"multiple": s.sides.multiple, "minimum": s.sides.minimum}}
            if s.sides is not None and s.sides.maximum is not None:
                entry["sides"]["maximum"] = s.sides.maximum
            inputs.append(entry | ({"layers": s.layers} if s.layers is not None else {})
                          | ({"size": list(s.size)} if s.size is not None else {}))
        out = self.output
        output = {"channels": out.channels, "value_range": None if out.value_range is None else list(out.value_range),
                  "scale": out.scale, "resolution": out.resolution}
        return {"inputs": inputs, "output": output | ({"kind": out.kind} if out.kind != IMAGE else {})}

    @classmethod
    def from_dict(cls, data: dict) -> Signature:
        """The inverse of :meth:`to_dict`; a malformed dict raises GanslimError."""
        try:
            inputs = tuple(InputSpec(name=str(s["name"]), kind=s["kind"], channels=int(s["channels"]),
                                     value_range=None if s["value_range"] is None else _range(s["value_range"]),
                                     sides=None if s["sides"] is None else _sides(s["sides"]),
                                     layers=_optional_int(s.get("layers")),
                                     size=None if s.get("size") is None else _pair(s["size"]))
                           for s in data["inputs"])
            out = data["output"]
            output = OutputSpec(channels=int(out["channels"]),
                                value_range=None if out["value_range"] is None else _range(out["value_range"]),
                                scale=None if out["scale"] is None else float(out["scale"]),
                                resolution=_optional_int(out["resolution"]), kind=out.get("kind", IMAGE))
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
            where += f", built for {spec.size[0]}x{spec.size[1]}" if spec.size is not None else ""
            unit = "dims" if spec.kind == LATENT else "labels" if spec.kind == LABEL_MAP else "ch"
            count = f"{spec.layers}x{spec.channels}" if spec.layers is not None else str(spec.channels)
            parts.append(f"{spec.name} ({count} {unit}{value_range(spec.value_range)}{where})")
        out = self.output
        if out.kind == LATENT:
            return f"{', '.join(parts)} -> latent ({out.channels} dims)"
        size = f"x{out.scale:g}" if out.scale is not None else f"{out.resolution}x{out.resolution}"
        return f"{', '.join(parts)} -> image ({out.channels} ch{value_range(out.value_range)}, {size})"


def _range(pair: object) -> tuple[float, float]:
    low, high = pair  # type: ignore[misc]
    return float(low), float(high)


def _pair(pair: object) -> tuple[int, int]:
    height, width = pair  # type: ignore[misc]
    return int(height), int(width)


def _normal_shape(spec: InputSpec) -> tuple[int, ...]:
    """A latent's or noise image's shape after the batch: (channels), (layers, channels) or (channels, r, r)."""
    if spec.kind == NOISE:
        return spec.channels, spec.sides.minimum, spec.sides.minimum
    return (spec.channels,) if spec.layers is None else (spec.layers, spec.channels)


def _sides(data: dict) -> ImageSides:
    return ImageSides(int(data["multiple"]), int(data["minimum"]), _optional_int(data.get("maximum")))


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def noise_input(name: str, side: int, channels: int = 1) -> InputSpec:
    """A noise input: (N, ``channels``, ``side``, ``side``) standard-normal images, of that side only (StyleGAN2's
    per-layer noise)."""
    return InputSpec(name, NOISE, channels, None, ImageSides(1, side, side))


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


def parts_of(model: nn.Module, batch: int = 1) -> dict[str, tuple[nn.Module, tuple[Tensor, ...]]] | None:
    """A latent generator's separately measured and deployed parts, each with an example input of ``batch``: its
    ``parts()`` (StyleGAN2's: ``mapping`` with z (N, z_dim), ``synthesis`` with W+ (N, num_ws, w_dim)); None for a
    model without parts."""
    parts = getattr(model, "parts", None)
    return parts(batch) if callable(parts) else None


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
