"""Helpers of the editor's server and browser tests: a tiny editor, PNG pixels."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from ganslim.apps.generate import seed_w_plus
from ganslim.editing.directions import sefa_directions, sefa_names
from ganslim.editing.web import Editor
from ganslim.editing.web.editor import Invert
from helpers import tiny_stylegan2

DIRECTIONS = 3


def tiny_editor(invert: Invert | None = None) -> Editor:
    """An :class:`Editor` of :func:`tiny_stylegan2` (16 px) with its first 3 SeFa directions, timed once."""
    generator = tiny_stylegan2()
    return Editor(generator, sefa_names(DIRECTIONS), sefa_directions(generator, DIRECTIONS), invert,
                  timing_repeats=1)


def mean_inversion(image: torch.Tensor) -> torch.Tensor:
    """A stand-in encoder: the W+ of seed 0 shifted by the image's mean."""
    return seed_w_plus(tiny_stylegan2(), [0]) + image.mean()


def edited(editor, w_plus: torch.Tensor, strengths: dict[str, float]) -> torch.Tensor:
    """The W+ an edit should give, computed apart from the editor: each strength times its direction's spread along
    it, on the first 4 of the 6 W+ entries."""
    shift = sum(strengths.get(name, 0.0) * editor.spreads[k] * editor.directions[k]
                for k, name in enumerate(editor.names))
    out = w_plus.clone()
    out[:, :4] += shift
    return out


def png_bytes(image: Image.Image, format: str = "PNG") -> bytes:
    """``image`` encoded as a file of ``format``."""
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def png_pixels(data: bytes | str) -> torch.Tensor:
    """A PNG (bytes or a ``data:image/png;base64,`` URL) -> (3, H, W) float64 in [0, 1]."""
    if isinstance(data, str):
        data = base64.b64decode(data.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        array = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def unit_pixels(image: torch.Tensor) -> torch.Tensor:
    """A generator's image (1, 3, H, W) in [-1, 1] -> (3, H, W) float64 in [0, 1], clamped."""
    return ((image[0].double().clamp(-1, 1) + 1) / 2).detach()
