"""Uploaded images for the editor: checked before anything is decoded, then cropped and resized to the generator's
side. Every refusal is a :class:`~ganslim.errors.GanslimError` whose one line the page shows."""

from __future__ import annotations

import io
import warnings

import torch
from PIL import Image, UnidentifiedImageError

from ganslim.data.images import image_to_tensor
from ganslim.errors import GanslimError

MAX_UPLOAD_BYTES = 10 * 2**20
MAX_UPLOAD_SIDE = 8192
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")


def decode_upload(data: bytes, side: int) -> torch.Tensor:
    """An uploaded file -> image (1, 3, side, side) in [-1, 1]: the largest centred square, resized (Lanczos).

    Refused with one line: more than :data:`MAX_UPLOAD_BYTES`, empty, not a PNG / JPEG / WebP / BMP, a side above
    :data:`MAX_UPLOAD_SIDE` (checked from the header, before decoding), or a file that does not decode in full
    (truncated, corrupt).
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise GanslimError(f"the upload is {len(data) / 2**20:.1f} MB, more than the {MAX_UPLOAD_BYTES // 2**20} MB "
                           f"limit: upload a smaller image")
    if not data:
        raise GanslimError("the upload is empty: choose an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as image:
                width, height = image.size
                if max(width, height) > MAX_UPLOAD_SIDE:
                    raise GanslimError(f"the upload is {width}x{height} pixels, more than {MAX_UPLOAD_SIDE} on a "
                                       f"side: upload a smaller image")
                rgb = image.convert("RGB")  # decodes the whole file: a truncated one fails here
    except UnidentifiedImageError:
        raise GanslimError(f"the upload is not an image this editor reads ({', '.join(UPLOAD_FORMATS)})") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise GanslimError("the upload could not be decoded (truncated or corrupt): upload the image again or "
                           "re-save it") from None
    return image_to_tensor(_centre_square(rgb).resize((side, side), Image.Resampling.LANCZOS)).unsqueeze(0)


def _centre_square(image: Image.Image) -> Image.Image:
    """The largest square centred in ``image``."""
    width, height = image.size
    crop = min(width, height)
    left, top = (width - crop) // 2, (height - crop) // 2
    return image.crop((left, top, left + crop, top + crop))
