"""Image files: listing, loading, and tensor <-> image conversion.

Behaviour follows the pix2pix/CycleGAN reference (``data/image_folder.py`` and ``util.tensor2im``): folders
are walked recursively, images are opened as RGB, pixels map to [-1, 1] as ``(x / 255 - 0.5) / 0.5`` and
back as ``(x + 1) / 2 * 255`` truncated to uint8. Images of a [0, 1] model (ESRGAN's) map as BasicSR's
``img2tensor`` / ``tensor2img`` do: ``x / 255``, and back as ``round(clamp(y, 0, 1) * 255)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ganslim.atomic import atomic_write
from ganslim.errors import GanslimError
from ganslim.metrics.fid import quantize_uint8
from ganslim.signature import SIGNED

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name ends with a supported image extension (case-insensitive)."""
    return str(path).lower().endswith(IMG_EXTENSIONS)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under ``folder`` and its subfolders, sorted by path.

    Raises GanslimError if ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GanslimError(f"image folder '{folder}' not found: create it or pass the right path")
    found = [Path(root) / name for root, _, names in os.walk(folder) for name in names if is_image_file(name)]
    return sorted(found)


def load_image(path: str | os.PathLike, channels: int = 3) -> Image.Image:
    """Open an image file as RGB (``channels=3``) or grayscale 'L' (``channels=1``), fully decoded.

    Raises GanslimError naming the file if it cannot be read or decoded.
    """
    if channels not in (1, 3):
        raise GanslimError(f"channels={channels} is not supported: use 1 (grayscale) or 3 (RGB)")
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")  # convert() decodes the whole file, so truncation shows up here
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise GanslimError(
            f"cannot read image '{path}' ({type(error).__name__}): replace or delete the corrupt file"
        ) from None
    # Grayscale like torchvision's Grayscale(1): PIL 'L' = 0.299 R + 0.587 G + 0.114 B.
    return rgb.convert("L") if channels == 1 else rgb


def check_pair_size(path: str | os.PathLike, size: tuple[int, int], fix: str = "fix or remove it") -> None:
    """Raise naming ``path`` unless ``size`` = (width, height) is that of an A|B pair: twice as wide as high."""
    width, height = size
    if width != 2 * height:
        raise GanslimError(f"aligned image '{path}' is {width}x{height}: an A|B pair must be twice as wide as high "
                           f"(A and B side by side): {fix}")


def image_to_tensor(image: Image.Image, value_range: tuple[float, float] = SIGNED) -> torch.Tensor:
    """PIL image (RGB or L) -> (C, H, W) float32 tensor in [-1, 1], as ``(x / 255 - 0.5) / 0.5``; or in another
    ``value_range`` (low, high), as ``low + x / 255 * (high - low)`` (``x / 255`` for [0, 1])."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    low, high = value_range
    array = (array - 0.5) / 0.5 if value_range == SIGNED else low + array * (high - low)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def tensor_to_image(tensor: torch.Tensor, value_range: tuple[float, float] = SIGNED) -> Image.Image:
    """(C, H, W) or (1, C, H, W) tensor in [-1, 1] (or ``value_range``) -> RGB PIL image.

    Like the reference ``tensor2im``: ``(x + 1) / 2 * 255`` then truncation to uint8 (not rounding); a
    1-channel image is repeated to RGB. Values outside [-1, 1] are clamped first; NaN becomes black. Another
    ``value_range`` (ESRGAN's [0, 1]) is rounded instead, as BasicSR's ``tensor2img``.
    """
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"tensor_to_image takes one image, got a batch of shape {tuple(tensor.shape)}")
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"tensor_to_image expects (C, H, W) with C in (1, 3), got {tuple(tensor.shape)}")
    tensor = tensor.detach().to("cpu", torch.float32)
    if tensor.shape[0] == 1:
        tensor = tensor.repeat(3, 1, 1)
    if value_range != SIGNED:
        pixels = quantize_uint8(torch.nan_to_num(tensor, nan=value_range[0]), value_range)
        return Image.fromarray(np.ascontiguousarray(pixels.numpy().transpose(1, 2, 0)))
    array = (tensor.numpy().transpose(1, 2, 0) + 1.0) / 2.0 * 255.0
    return Image.fromarray(np.clip(np.nan_to_num(array, nan=0.0), 0.0, 255.0).astype(np.uint8))


def save_image(tensor: torch.Tensor, path: str | os.PathLike,
               value_range: tuple[float, float] = SIGNED) -> Path:
    """Write a (C, H, W) or (1, C, H, W) tensor in [-1, 1] (or ``value_range``, see :func:`tensor_to_image`) as an
    image file, atomically.

    The format comes from the extension (``.png``, ``.jpg``, ...).
    """
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise GanslimError(f"cannot save '{path}': use an image extension such as .png or .jpg")
    image = tensor_to_image(tensor, value_range)
    return atomic_write(path, lambda tmp: image.save(tmp, format=image_format))
