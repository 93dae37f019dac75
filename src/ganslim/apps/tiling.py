"""Run a super-resolution model over overlapping tiles, so memory is bounded by the tile rather than the image.

As Real-ESRGAN's ``tile_process``: the input is cut into ``tile`` x ``tile`` tiles (the last of a row or column
smaller), each widened by up to ``pad`` pixels of context on every side where the image goes on, run through the
model, and the widened part cut off the output before it is placed in the whole output (``scale`` x the input's
sides). A pixel's context is then at least ``pad`` input pixels, which is less than a deep model's receptive field
(ESRGAN's reaches about 350 input pixels), so pixels next to a seam differ slightly from the untiled output; the
farther from a seam, the less, and where the context covers the receptive field the result is the same.

Only super-resolution models (:attr:`ganslim.signature.Signature.super_resolution`) are tiled: they take images at
their own size, and their convolutions see a bounded neighbourhood. Image-to-image translators are refused: their
instance norms normalise by the statistics of the whole image, which a tile's differ from, and they run on images
resized to their training size anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from ganslim.errors import GanslimError
from ganslim.signature import Signature, signature_of

DEFAULT_TILE_PAD = 16


def check_tiling(signature: Signature, tile: int, pad: int) -> None:
    """A one-line GanslimError unless a model of ``signature`` can run in ``tile``-pixel tiles with ``pad`` context."""
    if not signature.super_resolution:
        raise GanslimError("--tile applies to super-resolution models only: this image-to-image model normalises "
                           "by whole-image statistics (a tile's differ) and runs on images resized to --size: drop "
                           "--tile")
    if signature.output.scale != round(signature.output.scale):
        raise GanslimError(f"--tile needs an integer scale; this model's is x{signature.output.scale:g}: drop --tile")
    for flag, value, minimum in (("--tile", tile, 1), ("--tile-pad", pad, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise GanslimError(f"{flag} {value!r} must be an integer of at least {minimum}")
    sides = signature.image_input.sides
    for flag, value in (("--tile", tile), ("--tile-pad", pad)):
        if value % sides.multiple:
            raise GanslimError(f"{flag} {value} does not fit this x{signature.output.scale:g} model, which takes "
                               f"image sides that are {sides.describe()}: pass a multiple of {sides.multiple}")
    if tile < sides.minimum:
        raise GanslimError(f"--tile {tile} is below the {sides.minimum} pixels this model takes: pass a larger one")


def check_tileable(what: str, height: int, width: int, pad: int) -> None:
    """A one-line GanslimError when an input of ``height`` x ``width`` pixels is smaller than the tile pad."""
    if min(height, width) < pad:
        raise GanslimError(f"{what} is {width}x{height} pixels, smaller than --tile-pad {pad}: it needs no tiles; "
                           f"translate it without --tile, or pass --tile-pad {min(height, width)} or less")


class Tiled(nn.Module):
    """``model`` run tile by tile (see the module docstring): (N, C, H, W) -> (N, C_out, scale*H, scale*W).

    ``model`` must be a super-resolution model (its signature says so); ``tile`` and ``pad`` are in input pixels.
    """

    def __init__(self, model: nn.Module, tile: int, pad: int = DEFAULT_TILE_PAD) -> None:
        super().__init__()
        check_tiling(signature_of(model), tile, pad)
        self.model, self.tile, self.pad = model, tile, pad

    @property
    def signature(self) -> Signature:
        return self.model.signature

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        scale = round(self.signature.output.scale)
        height, width = image.shape[2:]
        output = None
        for top in range(0, height, self.tile):
            for left in range(0, width, self.tile):
                bottom, right = min(top + self.tile, height), min(left + self.tile, width)
                y0, x0 = max(top - self.pad, 0), max(left - self.pad, 0)
                result = self.model(image[:, :, y0:min(bottom + self.pad, height), x0:min(right + self.pad, width)])
                if output is None:
                    output = result.new_empty(image.shape[0], result.shape[1], height * scale, width * scale)
                output[:, :, top * scale:bottom * scale, left * scale:right * scale] = result[
                    :, :, (top - y0) * scale:(bottom - y0) * scale, (left - x0) * scale:(right - x0) * scale]
                del result  # the next tile's activations need the room
        return output
