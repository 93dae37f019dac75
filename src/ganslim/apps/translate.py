"""Translate image files with a generator, using the reference test-time pre/post-processing.

Each input is resized to ``size`` x ``size`` (bicubic), mapped to [-1, 1], passed through the generator in
eval mode, and written as ``(x + 1) / 2 * 255`` PNG with the input's file stem (subfolders kept).

Nothing is written until every input has decoded, and an input file is never overwritten: an output folder
inside the input folder, or an output that would land on an input file, is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ganslim.data.images import check_pair_size, image_to_tensor, is_image_file, list_images, load_image, save_image
from ganslim.data.validate import image_sizes
from ganslim.errors import GanslimError
from ganslim.outputs import check_output_folder
from ganslim.signature import input_channels

logger = logging.getLogger(__name__)

_ALIGNED_FIX = "drop --aligned or fix the file"


def find_inputs(path: str | os.PathLike) -> tuple[Path, list[Path]]:
    """(root, image files): ``path`` is one image file or a folder searched recursively."""
    path = Path(path)
    if path.is_file():
        if not is_image_file(path):
            raise GanslimError(f"input '{path}' is not an image file (png, jpg, ...): pass an image or a folder")
        return path.parent, [path]
    if not path.exists():
        raise GanslimError(f"input '{path}' not found: pass an image file or a folder of images")
    files = list_images(path)
    if not files:
        raise GanslimError(f"input folder '{path}' holds no images (png, jpg, ...): check the path")
    return path, files


def load_input(path: Path, size: int, channels: int, aligned: bool, direction: str) -> torch.Tensor:
    """One input file as a (C, size, size) tensor in [-1, 1]; ``aligned`` takes one half of an A|B pair."""
    image = load_image(path, channels)
    if aligned:
        check_pair_size(path, image.size, _ALIGNED_FIX)
        height = image.size[1]
        left = 0 if direction == "AtoB" else height
        image = image.crop((left, 0, left + height, height))
    return image_to_tensor(image.resize((size, size), resample=3))  # 3 = PIL bicubic, as the reference


@torch.inference_mode()
def translate_files(generator: nn.Module, inputs: str | os.PathLike, output_dir: str | os.PathLike,
                    size: int = 256, device: torch.device | str = "cpu", aligned: bool = False,
                    direction: str = "AtoB", batch_size: int = 1, progress: bool = True) -> list[Path]:
    """Translate every image under ``inputs`` and write ``output_dir/<relative path>/<stem>.png``."""
    if size < 4 or size % 4:
        raise GanslimError(f"--size {size} must be a positive multiple of 4 (e.g. 256)")
    if batch_size < 1:
        raise GanslimError(f"--batch-size {batch_size} must be at least 1")
    if direction not in ("AtoB", "BtoA"):
        raise GanslimError(f"direction '{direction}' is not valid: use AtoB or BtoA")
    root, files = find_inputs(inputs)
    output_dir = check_output_folder(output_dir, "--output")
    targets = [output_dir / source.relative_to(root).parent / f"{source.stem}.png" for source in files]
    _refuse_overwriting_inputs(Path(inputs), files, output_dir, targets)
    for source, image_size in zip(files, image_sizes(files)):  # every input decodes before anything is written
        if aligned:
            check_pair_size(source, image_size, _ALIGNED_FIX)
    generator = generator.to(device).eval()
    channels = input_channels(generator)
    written: list[Path] = []
    non_finite = 0
    with tqdm(total=len(files), desc="translate", unit="img", disable=not progress or len(files) == 1) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            batch = torch.stack([load_input(f, size, channels, aligned, direction) for f in chunk]).to(device)
            outputs = generator(batch).float().cpu()
            non_finite += int((~torch.isfinite(outputs)).flatten(1).any(1).sum())
            for output, target in zip(outputs, targets[start:start + batch_size]):
                written.append(save_image(output, target))
            bar.update(len(chunk))
    if non_finite:
        logger.warning("warning: the generator output NaN or infinite values for %d of %d image(s) (NaN pixels are "
                       "written black): the checkpoint may be damaged or its training diverged", non_finite, len(files))
    return written


def _refuse_overwriting_inputs(inputs: Path, files: list[Path], output_dir: Path, targets: list[Path]) -> None:
    """Raise when the output folder is (inside) the input folder, or a target is an input file or another target.

    Paths are compared resolved, so symlinks and relative spellings of the same place are caught.
    """
    folder = output_dir.resolve()
    if inputs.is_dir() and (folder == inputs.resolve() or inputs.resolve() in folder.parents):
        raise GanslimError(f"--output '{output_dir}' is inside --input '{inputs}': the outputs would mix with "
                           "(and could overwrite) the input images: pass a folder outside it")
    sources = {source.resolve(): source for source in files}
    seen: dict[Path, Path] = {}
    for source, target in zip(files, targets):
        resolved = target.resolve()
        if resolved in sources:
            raise GanslimError(f"translating '{source}' would overwrite the input '{sources[resolved]}': "
                               "pass another --output folder")
        if resolved in seen:
            raise GanslimError(f"'{seen[resolved]}' and '{source}' would both be written to '{target}': rename one "
                               "or translate them into separate folders")
        seen[resolved] = source
