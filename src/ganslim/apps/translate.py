"""Translate image files with a generator, pre- and post-processed as its signature says.

Each input is loaded with the model's input channels and its 8-bit pixels mapped to the model's input value range
([-1, 1] as the reference's ``(x / 255 - 0.5) / 0.5``, [0, 1] as ``x / 255``). An image-to-image translator takes it
resized to ``size`` x ``size`` (bicubic, as the reference at test time); a super-resolution model
(:attr:`ganslim.signature.Signature.super_resolution`) takes each image at its own size, never resized, in
overlapping tiles when ``tile`` is given (:mod:`ganslim.apps.tiling`). The output stays in the model's output range,
unclamped, until it is written as a PNG with the input's file stem (subfolders kept): [-1, 1] as the reference's
``tensor2im``, [0, 1] as BasicSR's ``tensor2img`` (see :func:`ganslim.data.images.tensor_to_image`).

A label-map generator (SPADE) takes label maps instead (:func:`translate_label_maps`): each map, and its instance
map where the model takes instance edges, resized with nearest-neighbour to the model's (height, width) and encoded
as :mod:`ganslim.data.labels` says.

Nothing is written until every input has decoded and fits the model, and an input file is never overwritten: an
output folder inside the input folder, or an output that would land on an input file, is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ganslim.apps.tiling import DEFAULT_TILE_PAD, Tiled, check_tileable, check_tiling
from ganslim.data.images import check_pair_size, image_to_tensor, is_image_file, list_images, load_image, save_image
from ganslim.data.label_datasets import instance_file, label_files
from ganslim.data.labels import LabelEncoding, encode_files
from ganslim.data.validate import image_sizes
from ganslim.errors import GanslimError
from ganslim.outputs import check_output_folder
from ganslim.signature import LATENT, SIGNED, Signature, signature_of

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


def load_input(path: Path, size: int | None, channels: int, aligned: bool, direction: str,
               value_range: tuple[float, float] = SIGNED) -> torch.Tensor:
    """One input file as a (C, H, W) tensor in ``value_range``, resized to ``size`` x ``size`` (bicubic) unless
    ``size`` is None; ``aligned`` takes one half of an A|B pair."""
    image = load_image(path, channels)
    if aligned:
        check_pair_size(path, image.size, _ALIGNED_FIX)
        height = image.size[1]
        left = 0 if direction == "AtoB" else height
        image = image.crop((left, 0, left + height, height))
    if size is not None:
        image = image.resize((size, size), resample=3)  # 3 = PIL bicubic, as the reference
    return image_to_tensor(image, value_range)


def check_no_resize(signature: Signature, size: int | None) -> None:
    """A one-line GanslimError when a size is asked of a super-resolution model, which never resizes its input."""
    if size is not None and signature.super_resolution:
        raise GanslimError(f"--size {size} does not apply: super-resolution models never resize their input (this "
                           f"x{signature.output.scale:g} model takes each image at its own size): drop --size")


def check_scale(signature: Signature, scale: int | None, what: str) -> None:
    """A one-line GanslimError when ``scale`` (asked by the user) is not the output scale of ``what``'s model."""
    if scale is not None and scale != signature.output.scale:
        actual = "a fixed-resolution" if signature.output.scale is None else f"an x{signature.output.scale:g}"
        raise GanslimError(f"--scale {scale} does not match {what}, {actual} model: drop --scale or pass the "
                           f"x{scale} model")


@torch.inference_mode()
def translate_files(generator: nn.Module, inputs: str | os.PathLike, output_dir: str | os.PathLike,
                    size: int | None = None, device: torch.device | str = "cpu", aligned: bool = False,
                    direction: str = "AtoB", batch_size: int = 1, progress: bool = True, tile: int = 0,
                    tile_pad: int = DEFAULT_TILE_PAD) -> list[Path]:
    """Translate every image under ``inputs`` and write ``output_dir/<relative path>/<stem>.png``.

    ``size``: the side image-to-image models take their inputs resized to (required for them); None for
    super-resolution models, which take each image at its own size. ``tile`` > 0 runs a super-resolution model in
    ``tile``-pixel tiles with ``tile_pad`` pixels of context (:class:`ganslim.apps.tiling.Tiled`).
    """
    if batch_size < 1:
        raise GanslimError(f"--batch-size {batch_size} must be at least 1")
    if direction not in ("AtoB", "BtoA"):
        raise GanslimError(f"direction '{direction}' is not valid: use AtoB or BtoA")
    generator = generator.to(device).eval()
    signature = signature_of(generator, size or 64)
    _check_sizing(signature, size, tile, tile_pad)
    root, files = find_inputs(inputs)
    output_dir = check_output_folder(output_dir, "--output")
    targets = [output_dir / source.relative_to(root).parent / f"{source.stem}.png" for source in files]
    _refuse_overwriting_inputs(Path(inputs), files, output_dir, targets)
    # Every input decodes and fits the model before anything is written.
    shapes = [_model_input_shape(source, image_size, size, aligned, signature, tile_pad if tile else None)
              for source, image_size in zip(files, image_sizes(files))]
    model = Tiled(generator, tile, tile_pad) if tile else generator
    spec = signature.image_input
    written: list[Path] = []
    non_finite = 0
    with tqdm(total=len(files), desc="translate", unit="img", disable=not progress or len(files) == 1) as bar:
        for chunk in _batches(shapes, batch_size):
            batch = torch.stack([load_input(files[i], size, spec.channels, aligned, direction, spec.value_range)
                                 for i in chunk]).to(device)
            outputs = model(batch).float().cpu()
            non_finite += int((~torch.isfinite(outputs)).flatten(1).any(1).sum())
            for output, i in zip(outputs, chunk):
                written.append(save_image(output, targets[i], signature.output.value_range))
            bar.update(len(chunk))
    if non_finite:
        logger.warning("warning: the generator output NaN or infinite values for %d of %d image(s) (NaN pixels are "
                       "written black): the checkpoint may be damaged or its training diverged", non_finite, len(files))
    return written


@torch.inference_mode()
def translate_label_maps(generator: nn.Module, inputs: str | os.PathLike, output_dir: str | os.PathLike,
                         instances: str | os.PathLike | None = None, size: tuple[int, int] | None = None,
                         device: torch.device | str = "cpu", batch_size: int = 1, progress: bool = True) -> list[Path]:
    """Run a label-map generator over every label map under ``inputs`` (a file or a folder; in a Cityscapes folder
    the ``*_labelIds.png``) and write ``output_dir/<relative path>/<stem>.png``.

    ``instances``: the folder of instance maps (same relative paths and stems; Cityscapes' ``_instanceIds`` for
    ``_labelIds``), required by a model with instance edges and refused by one without. ``size``: (height, width)
    the maps are resized to (nearest-neighbour), default the model's. A VAE model's code z for the i-th map is drawn
    from a generator seeded with i.
    """
    if batch_size < 1:
        raise GanslimError(f"--batch-size {batch_size} must be at least 1")
    generator = generator.to(device).eval()
    signature = signature_of(generator)
    size = size or signature.image_input.size
    for side in set(size):
        signature.check_side(side, "--size")
    encoding = LabelEncoding.of(generator)
    instance_root = _instance_folder(instances, encoding)
    root = Path(inputs)
    if not root.exists():
        raise GanslimError(f"input '{root}' not found: pass a label map or a folder of label maps")
    files = label_files(root)
    if not files:
        raise GanslimError(f"input '{root}' holds no label maps (png files of label ids): check the path")
    output_dir = check_output_folder(output_dir, "--output")
    base = root if root.is_dir() else root.parent
    targets = [output_dir / source.relative_to(base).parent / f"{source.stem}.png" for source in files]
    _refuse_overwriting_inputs(root, files, output_dir, targets)
    masks = [instance_file(source, root, instance_root) if instance_root else None for source in files]
    if instance_root is not None:
        _refuse_overwriting_inputs(instance_root, masks, output_dir, targets, "--instance")
    for source, mask in zip(files, masks):  # every map decodes and fits the model before anything is written
        encode_files(encoding, source, mask, size)
    latent = next((spec for spec in signature.inputs if spec.kind == LATENT), None)
    written: list[Path] = []
    with tqdm(total=len(files), desc="translate", unit="map", disable=not progress or len(files) == 1) as bar:
        for start in range(0, len(files), batch_size):
            chunk = range(start, min(start + batch_size, len(files)))
            batch = torch.stack([encode_files(encoding, files[i], masks[i], size) for i in chunk]).to(device)
            codes = [] if latent is None else [torch.stack([
                torch.randn(latent.channels, generator=torch.Generator().manual_seed(i)) for i in chunk]).to(device)]
            outputs = generator(batch, *codes).float().cpu()
            for output, i in zip(outputs, chunk):
                written.append(save_image(output, targets[i], signature.output.value_range))
            bar.update(len(chunk))
    return written


def _instance_folder(instances: str | os.PathLike | None, encoding: LabelEncoding) -> Path | None:
    """The --instance folder, checked against whether the model takes instance edges."""
    if instances is None:
        if encoding.instance_edges:
            raise GanslimError("the model takes instance edges: pass --instance FOLDER with the instance maps "
                               "(named as the label maps)")
        return None
    if not encoding.instance_edges:
        raise GanslimError("the model takes no instance edges: drop --instance")
    folder = Path(instances)
    if not folder.is_dir():
        raise GanslimError(f"--instance '{folder}' is not a folder: pass the folder of instance maps")
    return folder


def _check_sizing(signature: Signature, size: int | None, tile: int, tile_pad: int) -> None:
    """One line unless ``size`` suits the model (a side for a translator, None for super-resolution) and so do
    the tiles, if ``tile`` is set."""
    check_no_resize(signature, size)
    if not signature.super_resolution:
        if size is None:
            raise GanslimError("an image-to-image model takes its inputs resized: pass a size (e.g. 256)")
        signature.check_side(size, "--size")
    if tile:
        check_tiling(signature, tile, tile_pad)


def _model_input_shape(source: Path, image_size: tuple[int, int], size: int | None, aligned: bool,
                       signature: Signature, tile_pad: int | None) -> tuple[int, int]:
    """(height, width) ``source`` reaches the model at, checked to fit it (and the tiles, if ``tile_pad`` is set)."""
    if aligned:
        check_pair_size(source, image_size, _ALIGNED_FIX)
    if size is not None:
        return size, size
    width, height = image_size
    if aligned:
        width = height
    for side in {height, width}:
        signature.check_side(side, f"image '{source}': its side")
    if tile_pad is not None:
        check_tileable(f"image '{source}'", height, width, tile_pad)
    return height, width


def _batches(shapes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices of consecutive inputs of one shape, at most ``batch_size`` together."""
    batches: list[list[int]] = []
    for index, shape in enumerate(shapes):
        if batches and len(batches[-1]) < batch_size and shapes[batches[-1][0]] == shape:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def _refuse_overwriting_inputs(inputs: Path, files: list[Path], output_dir: Path, targets: list[Path],
                               flag: str = "--input") -> None:
    """Raise when the output folder is (inside) the input folder, or a target is an input file or another target.

    Paths are compared resolved, so symlinks and relative spellings of the same place are caught; ``flag`` is the
    option that named the input folder (``--instance`` for SPADE's instance maps).
    """
    folder = output_dir.resolve()
    if inputs.is_dir() and (folder == inputs.resolve() or inputs.resolve() in folder.parents):
        raise GanslimError(f"--output '{output_dir}' is inside {flag} '{inputs}': the outputs would mix with "
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
