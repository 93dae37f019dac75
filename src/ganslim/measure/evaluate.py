"""Evaluate a generator on a dataset split: PSNR/SSIM against targets, FID/KID against real images, fidelity
to a teacher, all in one pass over the data.

A model is fed in its signature's value range (:mod:`ganslim.signature`) and its outputs are mapped back to the
data's range before scoring. Three families are told apart by the signature (:func:`sr_scale`, ``takes_image``):

* **image-to-image** models (output scale 1), on the layouts :func:`open_eval_data` reads:

  - aligned (``root/{split}/`` of A|B pairs): PSNR and SSIM against the B halves, FID and KID against the
    same B halves (the real images of the target domain);
  - unaligned (``root/{split}A/``, ``root/{split}B/``): FID and KID against ``{split}B`` (``BtoA``:
    ``{split}A``); no PSNR/SSIM, there is no ground truth;
  - a folder of images: inputs only; FID needs cached real statistics (``real_stats``).

  Images follow the reference test-time preprocessing: bicubic resize to ``size`` x ``size``, no crop, no
  flip, [-1, 1]. PSNR on [-1, 1] (data range 2), SSIM on the intensities (:class:`Scoring`).
* **super-resolution** models (output scale s > 1), on :func:`open_sr_eval_data`: whole images, never resized,
  in [0, 1]: HR images with their LR made on the fly at the model's scale, or BasicSR's GT / LQ folders; the
  outputs are compared with the GT at the output size as BasicSR computes it (uint8-quantised, s pixels
  cropped per side, BT.601 Y channel or RGB: :mod:`ganslim.metrics.sr`); FID/KID against the GT images.
* **label-map** models (SPADE: a one-hot label map in, scale 1), on :func:`open_label_eval_data`: the label maps of
  any layout :mod:`ganslim.data.label_datasets` reads at the model's (height, width), PSNR/SSIM and FID/KID
  against their paired photos, and with a segmentation network mIoU against the label maps' Cityscapes train ids
  (:class:`_Segmentation`); without one, mIoU is reported as skipped.
* **latent** (unconditional) generators (StyleGAN2, mobile_stylegan: z in, an output of fixed ``resolution``),
  on :func:`open_latent_eval_data`: one image per seed, drawn as :mod:`ganslim.apps.generate` draws it (truncation,
  noise mode: :class:`~ganslim.apps.generate.Sampling`); FID/KID against a folder of real images, each resized
  (bicubic) to the generator's resolution, or cached statistics. No targets: PSNR/SSIM only against a teacher.

With a teacher every layout also gets ``psnr_teacher`` / ``ssim_teacher`` (student output against teacher
output on the same input; for latent generators, the same z and the same noise: see :func:`evaluate_generator`).
FID/KID use :mod:`ganslim.metrics` (uint8 quantisation, 299 px bilinear resize, 2048-d pool features); without
the Inception weights file they are reported as skipped with the reason, and the other metrics are still
computed.

:func:`score_models` is the one loop that runs models over an :class:`EvalData` and scores them; ``eval``
(:func:`evaluate_generator`, which adds FID/KID), ``bench`` and ``quantize`` all go through it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ganslim.apps.generate import (
    Latents,
    Sampling,
    format_seeds,
    latent_generator,
    prepare_truncation,
    stored_noise,
    synthesize,
)
from ganslim.archs.stylegan2 import LatentGenerator
from ganslim.data import AlignedDataset, HRFolderDataset, PairedSRDataset, SingleImageDataset, detect_layout
from ganslim.data.label_datasets import LabelMapDataset, detect_label_layout, has_split
from ganslim.data.labels import LabelEncoding, read_id_map
from ganslim.data.validate import image_sizes
from ganslim.errors import GanslimError, first_line
from ganslim.metrics import (
    WEIGHTS_ENV_VAR,
    RunningMean,
    default_weights_path,
    extract_features,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    load_inception,
    load_statistics,
    psnr,
    save_statistics,
    sr_psnr,
    sr_ssim,
    ssim,
)
from ganslim.metrics.drn import CITYSCAPES_CLASSES, DRN_FILE, DRN_URL
from ganslim.metrics.inception import WEIGHTS_FILENAME, WEIGHTS_URL
from ganslim.metrics.segmentation import confusion_matrix, label_ids_to_train_ids, mean_iou, segment
from ganslim.outputs import check_output_file
from ganslim.signature import SIGNED, UNIT, Signature, signature_of
from ganslim.weights import weights_source

__all__ = [
    "METRICS",
    "SR_METRICS",
    "SR_NO_RESIZE",
    "EvalData",
    "EvalResult",
    "Run",
    "Scores",
    "Scoring",
    "array_run",
    "check_sr_inputs",
    "evaluate_generator",
    "find_inception_weights",
    "json_safe",
    "latent_run",
    "mean_ssim",
    "module_run",
    "open_eval_data",
    "open_label_eval_data",
    "open_latent_eval_data",
    "open_sr_eval_data",
    "parse_metrics",
    "rescale",
    "score_models",
    "scoring_for",
    "sr_scale",
]

logger = logging.getLogger(__name__)

METRICS = ("fid", "kid", "psnr", "ssim")
SR_METRICS = ("y", "rgb")  # super-resolution PSNR/SSIM on the BT.601 luma (as papers report) or on RGB
SSIM_WINDOW = 11
SR_NO_RESIZE = "SR models take whole images and never resize them: drop --size"
MIOU_SKIPPED = (f"no segmentation model: pass --drn-weights {DRN_FILE} (DRN-D-105 for Cityscapes, from {DRN_URL}) "
                f"to score the outputs against the label maps")

# A model as the scoring loop runs it: (N, C, h, w) inputs in the data's value range -> outputs in that range (a
# latent generator: (N,) row numbers of its latents -> images, :func:`latent_run`).
Run = Callable[[Tensor], Tensor]


# ----------------------------------------------------------------------------------------------------------
# Signatures: what a model takes, and how to feed it


def sr_scale(signature: Signature) -> int | None:
    """The upscaling factor of a super-resolution model (an image in, an output ``scale`` > 1), else None
    (image-to-image models, and outputs of a fixed resolution)."""
    scale = signature.output.scale
    if not signature.takes_image or scale is None or scale == 1:
        return None
    if not float(scale).is_integer():
        raise GanslimError(f"an output scale of {scale:g} is not supported: super-resolution scales are whole "
                           f"numbers (2, 3, 4, ...)")
    return int(scale)


def _scale_name(signature: Signature) -> str:
    if not signature.takes_image:
        return "a latent generator"
    scale = sr_scale(signature)
    return "image-to-image" if scale is None else f"x{scale} super-resolution"


def rescale(images: Tensor, source: tuple[float, float], target: tuple[float, float] | None) -> Tensor:
    """``images`` in the value range ``source`` mapped linearly onto ``target``; the very tensor when they agree, or
    when ``target`` is None (a label map, which has no value range: its one-hot channels go in as they are)."""
    if target is None or tuple(source) == tuple(target):
        return images
    (low, high), (new_low, new_high) = source, target
    return (images - low) * ((new_high - new_low) / (high - low)) + new_low


def module_run(model: nn.Module, data_range: tuple[float, float], what: str = "the generator") -> Run:
    """``model`` as :func:`score_models` runs it: inputs mapped from ``data_range`` to its signature's input range,
    outputs (float32) back from its output range; a shape it cannot take is a one-line GanslimError."""
    signature = signature_of(model)
    hint = "" if sr_scale(signature) else ": pick a --size its downsampling accepts (e.g. 256)"

    def run(inputs: Tensor) -> Tensor:
        try:
            outputs = model(rescale(inputs, data_range, signature.image_input.value_range))
        except RuntimeError as error:
            raise GanslimError(f"{what} fails on {'x'.join(map(str, inputs.shape))} inputs "
                               f"({first_line(error)}){hint}") from None
        return rescale(outputs.float(), signature.output.value_range, data_range)

    return run


def array_run(runner: Callable[[np.ndarray], np.ndarray], signature: Signature,
              data_range: tuple[float, float]) -> Run:
    """A runtime's ``runner`` (float32 arrays in and out, in the model's value ranges, e.g. an ONNX Runtime
    session) as :func:`score_models` runs it, on CPU tensors: images in ``data_range``, or latents (a synthesis
    graph's W+) as they are; outputs back in ``data_range``."""
    def run(inputs: Tensor) -> Tensor:
        if signature.takes_image:
            inputs = rescale(inputs, data_range, signature.image_input.value_range)
        array = inputs.cpu().numpy()
        outputs = runner(np.ascontiguousarray(array, dtype=np.float32))
        return rescale(torch.from_numpy(np.asarray(outputs)).float(), signature.output.value_range, data_range)

    return run


def latent_run(generator: LatentGenerator, latents: Latents, sampling: Sampling,
               device: str | torch.device = "cpu") -> Run:
    """A latent generator as :func:`score_models` runs it: (B,) row numbers of ``latents`` -> images (B, C, R, R)
    float32 in [-1, 1], drawn as :func:`ganslim.apps.generate.synthesize` draws them."""
    value_range = signature_of(generator).output.value_range

    def run(rows: Tensor) -> Tensor:
        return rescale(synthesize(generator, latents, rows.tolist(), sampling, device).float(), value_range, SIGNED)

    return run


# ----------------------------------------------------------------------------------------------------------
# Data


class _Rows(Dataset):
    """The row numbers 0 .. count-1 of a :class:`~ganslim.apps.generate.Latents` as ``{"row": (), int64}`` items."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"row": torch.tensor(index)}


class _Keyed(Dataset):
    """Items of a :class:`SingleImageDataset` as ``{key: image, key + "_path": path}``."""

    def __init__(self, images: Dataset, key: str) -> None:
        self.images = images
        self.key = key

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        item = self.images[index]
        return {self.key: item["image"], f"{self.key}_path": item["path"]}


@dataclass(frozen=True)
class EvalData:
    """One split of a dataset, ready to evaluate on.

    ``inputs`` items hold ``input_key`` (C, h, w) in ``value_range``, plus the target ``target_key`` (C, h * scale,
    w * scale) when ``paired``. ``real`` items hold ``target_key``: real images of the target domain for FID/KID
    (None for a plain folder). Image-to-image data (:func:`open_eval_data`): keys ``A`` / ``B``, [-1, 1], every
    image ``size`` x ``size``. Super-resolution data (:func:`open_sr_eval_data`): ``lq`` / ``gt``, [0, 1], whole
    images; ``same_size`` is False when their sizes differ (they then run one at a time).
    ``layout``: ``aligned``, ``unaligned``, ``single`` (a folder of images), ``hr`` (HR images, LR made from
    them), ``gt-lq`` (paired GT / LQ folders: ``root`` and ``lq_root``), ``files`` (a list of files) or ``latent``
    (:func:`open_latent_eval_data`: ``inputs`` are row numbers of ``latents``, ``real`` the folder ``root``, if any).
    Label-map data (:func:`open_label_eval_data`): keys ``label_map`` (one-hot + edges) / ``image`` ([-1, 1]),
    ``layout`` the label layout (``cityscapes``, ``folders``, ...), ``label_paths`` the label files in input order.
    """

    inputs: Dataset
    real: Dataset | None
    paired: bool
    layout: str
    root: Path
    split: str
    input_key: str = "A"
    target_key: str = "B"
    value_range: tuple[float, float] = SIGNED
    same_size: bool = True
    scale: int = 1
    lq_root: Path | None = None
    latents: Latents | None = None
    label_paths: tuple[Path, ...] | None = None

    def describe(self) -> str:
        """e.g. ``aligned split 'test' of data/facades (106 pairs)``."""
        count = len(self.inputs)
        if self.layout == "latent":
            real = "" if self.real is None else f"; real images: {self.root} ({len(self.real)})"
            return f"{count} image(s) drawn from seeds {format_seeds(self.latents.streams)}{real}"
        if self.layout in ("single", "files"):
            return f"{count} image(s) in {self.root}"
        if self.layout == "hr":
            where = f"split '{self.split}' of {self.root}" if self.split else str(self.root)
            return f"HR images: {where} ({count} images, LR made at x{self.scale})"
        if self.layout == "gt-lq":
            return f"GT {self.root}, LQ {self.lq_root} ({count} pairs, x{self.scale})"
        what = "pairs" if self.paired else "inputs"
        if self.label_paths is not None:
            return f"label maps ({self.layout} layout), split '{self.split}' of {self.root} ({count} {what})"
        return f"{self.layout} split '{self.split}' of {self.root} ({count} {what})"


def _check_max_images(max_images: int | None) -> None:
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                   or max_images < 1):
        raise GanslimError(f"--max-images {max_images!r} must be a positive integer")


def open_eval_data(
    data: str | os.PathLike,
    split: str = "test",
    size: int = 256,
    direction: str = "AtoB",
    input_nc: int = 3,
    output_nc: int = 3,
    max_images: int | None = None,
) -> EvalData:
    """Open ``split`` of the image-to-image dataset at ``data`` (layout detected by
    :func:`ganslim.data.detect_layout`).

    Args:
        data: an aligned or unaligned dataset root, a folder of images, or one image file.
        split: ``train``, ``val`` or ``test`` (aligned), ``train`` or ``test`` (unaligned); ignored for a folder.
        size: every image is resized (bicubic) to ``size`` x ``size``.
        direction: ``AtoB`` (A is the input) or ``BtoA``.
        input_nc, output_nc: channels of the inputs and of the targets / real images (1 or 3).
        max_images: use only the first ``max_images`` inputs (and real images).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise GanslimError(f"--size {size!r} must be a positive integer (e.g. 256)")
    _check_max_images(max_images)
    root = Path(data)
    layout = detect_layout(root)
    if layout == "aligned":
        if not (root / split).is_dir():
            raise GanslimError(f"aligned dataset '{root}' has no {split}/ split: pass --split {_splits(root)}")
        pairs = AlignedDataset(root, split, direction=direction, load_size=size, crop_size=size, flip=False,
                               input_nc=input_nc, output_nc=output_nc, max_items=max_images)
        return EvalData(pairs, pairs, paired=True, layout=layout, root=root, split=split)
    if layout == "unaligned":
        source, target = ("A", "B") if direction == "AtoB" else ("B", "A")
        folders = {side: root / f"{split}{side}" for side in (source, target)}
        missing = [str(f) for f in folders.values() if not f.is_dir()]
        if missing:
            raise GanslimError(f"unaligned dataset '{root}' has no {', '.join(missing)}: pass a --split with "
                               f"both {split}A/ and {split}B/ (e.g. test)")
        inputs = _Keyed(SingleImageDataset(folders[source], load_size=size, input_nc=input_nc), "A")
        real = _Keyed(SingleImageDataset(folders[target], load_size=size, input_nc=output_nc), "B")
        return EvalData(_first(inputs, max_images), _first(real, max_images), paired=False, layout=layout,
                        root=root, split=split)
    inputs = _Keyed(SingleImageDataset(root, load_size=size, input_nc=input_nc), "A")
    return EvalData(_first(inputs, max_images), None, paired=False, layout=layout, root=root, split=split)


def open_label_eval_data(encoding: LabelEncoding, data: str | os.PathLike, split: str = "test",
                         size: tuple[int, int] = (256, 256), max_images: int | None = None) -> EvalData:
    """Open ``split`` of the label-map dataset at ``data`` (any layout :mod:`ganslim.data.label_datasets` reads; a
    ``folders`` dataset without split folders is read whole) for a SPADE generator of ``encoding``: label maps
    resized (nearest) to ``size`` = (height, width) and encoded, their photos (bicubic) as the paired targets and
    the real images of FID/KID; no flip."""
    _check_max_images(max_images)
    root = Path(data)
    layout = detect_label_layout(root)
    if layout != "folders" and not has_split(root, split, layout):
        raise GanslimError(f"{layout} dataset '{root}' has no '{split}' split: pass --split train, val or test "
                           f"(one it has)")
    pairs = LabelMapDataset(root, encoding, size, split=split, layout=layout, flip=False)
    count = len(pairs) if max_images is None else min(max_images, len(pairs))
    inputs = _first(pairs, count)
    return EvalData(inputs, inputs, paired=True, layout=layout, root=root, split=split, input_key="label_map",
                    target_key="image", label_paths=tuple(pair.label for pair in pairs.pairs[:count]))


def _splits(root: Path) -> str:
    return " or ".join(s for s in ("train", "val", "test") if (root / s).is_dir())


def _first(dataset: Dataset, count: int | None) -> Dataset:
    return dataset if count is None or count >= len(dataset) else Subset(dataset, range(count))


def open_sr_eval_data(
    signature: Signature,
    data: str | os.PathLike | None = None,
    split: str = "test",
    *,
    gt: str | os.PathLike | None = None,
    lq: str | os.PathLike | None = None,
    max_images: int | None = None,
) -> EvalData:
    """Whole images, never resized, for the super-resolution model of ``signature`` (its scale and input sides).

    Args:
        signature: the model's; a scale of s makes the LR image of each HR image, and every LR image must have
            sides the model takes.
        data: HR images (:class:`ganslim.data.HRFolderDataset`, LR made on the fly): a root with ``split/``
            (as ``ganslim data make photos2sr`` writes), or one folder of HR images (``split`` then unused).
        gt, lq: BasicSR's paired GT / LQ folders (:class:`ganslim.data.PairedSRDataset`), instead of ``data``.
        max_images: use only the first ``max_images`` images.
    """
    scale = sr_scale(signature)
    if scale is None:
        raise GanslimError(f"this model is {_scale_name(signature)}: open its data with open_eval_data")
    _check_max_images(max_images)
    if data is not None and (gt is not None or lq is not None):
        raise GanslimError("--data and --gt/--lq exclude each other: pass HR images (--data) or the paired GT and "
                           "LQ folders (--gt, --lq)")
    if data is not None:
        root = Path(data)
        folder, split = _hr_folder(root, split)
        dataset: Dataset = HRFolderDataset(folder, scale, train=False, max_items=max_images)
        lr_sizes = [(width // scale, height // scale) for width, height in image_sizes(dataset.paths)]
        same_size = check_sr_inputs(dataset.paths, lr_sizes, signature, "the LR image of HR image")
        return EvalData(dataset, dataset, paired=True, layout="hr", root=root, split=split, input_key="lq",
                        target_key="gt", value_range=UNIT, same_size=same_size, scale=scale)
    if gt is None or lq is None:
        raise GanslimError("pass --data DIR (HR images), or both --gt DIR and --lq DIR (paired folders)")
    dataset = PairedSRDataset(gt, lq, scale, train=False, max_items=max_images)
    same_size = check_sr_inputs(dataset.lq_paths, image_sizes(dataset.lq_paths), signature, "LQ image")
    return EvalData(dataset, dataset, paired=True, layout="gt-lq", root=Path(gt), split="", input_key="lq",
                    target_key="gt", value_range=UNIT, same_size=same_size, scale=scale, lq_root=Path(lq))


def open_latent_eval_data(signature: Signature, seeds: Sequence[int], real: str | os.PathLike | None = None, *,
                          batch_size: int = 1) -> EvalData:
    """The ``seeds`` a latent generator (of ``signature``) draws one image each from, and for FID/KID the real
    images under the folder ``real`` (searched recursively): at least 2 and one batch of ``batch_size``, all of one
    size; of another size than the generator's resolution, they are resized (bicubic) to it, with a note on
    stderr. One line for too few images or a folder of mixed sizes (two are named)."""
    resolution = signature.output.resolution
    if signature.takes_image or resolution is None:
        raise GanslimError(f"this model is {_scale_name(signature)}: open its data with open_eval_data")
    if not seeds:
        raise GanslimError("no seeds given: pass at least one seed (e.g. --seeds 0-999 or --num-images 1000)")
    real_images = None
    root = Path(real) if real is not None else Path()
    if real is not None:
        images = SingleImageDataset(root, load_size=resolution, input_nc=signature.output.channels)
        _check_real_count(root, len(images), batch_size)
        _check_one_size(root, images.paths, resolution)
        real_images = _Keyed(images, "B")
    latents = Latents.from_seeds(seeds)
    return EvalData(_Rows(len(latents)), real_images, paired=False, layout="latent", root=root, split="",
                    input_key="row", latents=latents)


def _check_real_count(root: Path, count: int, batch_size: int) -> None:
    """One line when the ``count`` real images are fewer than one batch, or than 2."""
    if count < max(2, batch_size):
        raise GanslimError(f"--real '{root}' holds {count} image(s): FID and KID compare the distributions of real "
                           f"and generated images and need at least 2 and one batch (--batch-size {batch_size}) of "
                           f"real images (published figures use thousands): pass a folder of more real images, or "
                           f"a smaller --batch-size")


def _check_one_size(root: Path, paths: Sequence[Path], resolution: int) -> None:
    """One line unless the real images ``paths`` are all of one size; a note when it is not the resolution."""
    sizes = image_sizes(paths)
    first_of_size: dict[tuple[int, int], Path] = {}
    for path, size in zip(paths, sizes):
        first_of_size.setdefault(size, path)
    if len(first_of_size) > 1:
        (one, one_path), (other, other_path) = list(first_of_size.items())[:2]
        raise GanslimError(f"--real '{root}' holds images of {len(first_of_size)} sizes ('{one_path}' is "
                           f"{one[0]}x{one[1]}, '{other_path}' {other[0]}x{other[1]}), but FID/KID reference images "
                           f"are of one size: resize them all to one (e.g. the generator's {resolution}x{resolution})")
    (width, height), = first_of_size
    if (width, height) != (resolution, resolution):
        logger.warning("note: the %d real images in '%s' are %dx%d: they are resized (bicubic) to the generator's "
                       "%dx%d", len(paths), root, width, height, resolution, resolution)


def _hr_folder(root: Path, split: str) -> tuple[Path, str]:
    """(folder of HR images, the split it is, or "" for a plain folder) of the HR data at ``root``."""
    layout = detect_layout(root)
    if layout == "aligned":
        if not (root / split).is_dir():
            raise GanslimError(f"HR dataset '{root}' has no {split}/ split: pass --split {_splits(root)}")
        return root / split, split
    if layout == "unaligned":
        raise GanslimError(f"'{root}' is an unaligned (trainA/ testA/) dataset, but a super-resolution model takes "
                           f"HR images: pass a folder with {split}/ of HR images (e.g. ganslim data make photos2sr "
                           f"DIR), or --gt and --lq")
    if root.is_file():
        raise GanslimError(f"'{root}' is one image: pass a folder of HR images")
    return root, ""


def check_sr_inputs(paths: Sequence[Path], lr_sizes: Sequence[tuple[int, int]], signature: Signature,
                    what: str) -> bool:
    """Whether the LR images (``lr_sizes``: (width, height) of each of ``paths``) all share one size; a side the
    model of ``signature`` cannot take is a one-line GanslimError naming the first such file."""
    sides = signature.image_input.sides
    for path, (width, height) in zip(paths, lr_sizes):
        if not (sides.accepts(width) and sides.accepts(height)):
            raise GanslimError(f"{what} '{path}' is {width}x{height}, but this model takes LR sides that are "
                               f"{sides.describe()}: crop the images to such sides")
    return len(set(lr_sizes)) <= 1


# ----------------------------------------------------------------------------------------------------------
# Small helpers shared with bench and report


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"fid,kid"`` -> ``("fid", "kid")``; unknown names raise listing the valid ones."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise GanslimError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}: choose from "
                           f"{', '.join(METRICS)}, comma-separated")
    return tuple(dict.fromkeys(names))


def mean_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image SSIM (N,) with the standard 11-pixel window, or the largest odd window a tiny image holds."""
    window = min(SSIM_WINDOW, (min(pred.shape[-2:]) - 1) // 2 * 2 + 1)
    return ssim(pred, target, window=max(window, 1))


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats made JSON-portable: ``inf`` -> ``"inf"``, ``-inf`` -> ``"-inf"``,
    ``nan`` -> None (strict JSON has no Infinity; an identical image has PSNR inf)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def find_inception_weights(weights: str | os.PathLike | None = None) -> tuple[Path | None, str | None]:
    """(path, None) when the Inception weights file exists, else (None, one-line reason saying where to put it).

    Looks where :func:`ganslim.metrics.load_inception` looks: ``weights``, then ``$GANSLIM_INCEPTION_WEIGHTS``,
    then ``~/.cache/ganslim/pt_inception-2015-12-05-6726825d.pth``.

    Raises:
        GanslimError: ``weights`` was given but is not a file (asked for FID/KID explicitly: no silent skip).
    """
    path, source = weights_source(weights, WEIGHTS_ENV_VAR, default_weights_path(), "--inception-weights")
    if path.is_file():
        return path, None
    if weights is not None:
        raise GanslimError(f"--inception-weights '{path}' not found: point it at {WEIGHTS_FILENAME} "
                           f"(from {WEIGHTS_URL}), or drop it to skip FID/KID")
    if source is None:
        return None, (f"no Inception weights at {path}: download {WEIGHTS_URL} to that path, or point "
                      f"${WEIGHTS_ENV_VAR} (or --inception-weights) at the file")
    return None, (f"no Inception weights at {path} (from {source}): download {WEIGHTS_URL} there, or to "
                  f"{default_weights_path()}")


# ----------------------------------------------------------------------------------------------------------
# Scoring: how outputs are compared, and the one loop that runs models over data and scores them


@dataclass(frozen=True)
class Scoring:
    """How outputs are compared with targets (or other outputs), both in the data's value range.

    ``crop_border`` None: image-to-image metrics on [-1, 1] images (PSNR with data range 2, SSIM on the
    intensities with an 11-pixel Gaussian window: :func:`mean_ssim`). An int: super-resolution metrics on [0, 1]
    images as BasicSR computes them (:func:`ganslim.metrics.sr_psnr` / :func:`~ganslim.metrics.sr_ssim`:
    uint8-quantised, ``crop_border`` pixels dropped per side, the BT.601 Y channel unless ``y_channel`` False).
    """

    crop_border: int | None = None
    y_channel: bool = True

    def psnr(self, outputs: Tensor, references: Tensor) -> Tensor:
        """(N,) PSNR in dB of ``outputs`` against ``references`` (N, C, H, W)."""
        if self.crop_border is None:
            return psnr(outputs, references)
        return sr_psnr(outputs, references, self.crop_border, self.y_channel)

    def ssim(self, outputs: Tensor, references: Tensor) -> Tensor:
        """(N,) SSIM of ``outputs`` against ``references`` (N, C, H, W)."""
        if self.crop_border is None:
            return mean_ssim(outputs, references)
        return sr_ssim(outputs, references, self.crop_border, self.y_channel)

    def describe(self) -> str:
        """e.g. ``PSNR/SSIM on the Y channel, 4-pixel border cropped, uint8 (BasicSR)``."""
        if self.crop_border is None:
            return "PSNR on [-1, 1], SSIM on [0, 1] intensities"
        channel = "the Y channel" if self.y_channel else "RGB"
        return f"PSNR/SSIM on {channel}, {self.crop_border}-pixel border cropped, uint8 (BasicSR)"


def scoring_for(signature: Signature, sr_metric: str | None = None) -> Scoring:
    """The :class:`Scoring` of a model: image-to-image metrics, or SR metrics with a border crop of the model's
    scale on the Y channel (``sr_metric`` ``y``, the default) or on RGB (``rgb``)."""
    scale = sr_scale(signature)
    if sr_metric is not None and sr_metric not in SR_METRICS:
        raise GanslimError(f"--sr-metric {sr_metric!r} is unknown: choose {' or '.join(SR_METRICS)}")
    if scale is None:
        if sr_metric is not None:
            raise GanslimError(f"--sr-metric applies to super-resolution models; this one is "
                               f"{_scale_name(signature)}: drop it")
        return Scoring()
    return Scoring(crop_border=scale, y_channel=sr_metric != "rgb")


@dataclass
class Scores:
    """What :func:`score_models` measured, by run name.

    ``metrics[name]``: ``psnr`` / ``ssim`` (means over the images, against the targets of paired data) and
    ``psnr_ref`` / ``ssim_ref`` (against the reference run's outputs); ``max_abs_diff[name]``: the largest
    |output - reference output| before clamping; ``non_finite[name]``: images whose output held NaN or inf.
    """

    metrics: dict[Hashable, dict[str, float]]
    max_abs_diff: dict[Hashable, float]
    non_finite: dict[Hashable, int]
    num_images: int


def score_models(
    runs: Mapping[Hashable, Run],
    data: EvalData,
    scoring: Scoring,
    *,
    reference: Hashable | None = None,
    metrics: Sequence[str] = ("psnr", "ssim"),
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    on_outputs: Callable[[Hashable, Tensor], None] | None = None,
    progress: bool = False,
) -> Scores:
    """Run every model of ``runs`` over ``data`` once, batch by batch, and score its outputs.

    Outputs are clamped to the data's value range (what a saved image holds) before scoring.

    Args:
        runs: name -> a model as :func:`module_run` or :func:`array_run` make it.
        data: from :func:`open_eval_data` or :func:`open_sr_eval_data`.
        scoring: how outputs are compared (:func:`scoring_for`).
        reference: the name of the run every run (itself included) is also compared with.
        metrics: which of ``psnr``, ``ssim`` to compute against the targets.
        batch_size: images per run; 1 when the data's images differ in size.
        device: where the inputs go.
        on_outputs: called with ``(name, clamped outputs)`` of every run and batch (e.g. for FID features).

    Raises:
        GanslimError: an output's shape differs from its target's or the reference's (both named).
    """
    low, high = data.value_range
    sums: dict[tuple[Hashable, str], RunningMean] = {}
    max_abs_diff = {name: 0.0 for name in runs} if reference is not None else {}
    non_finite = dict.fromkeys(runs, 0)

    def add(name: Hashable, key: str, values: Tensor) -> None:
        sums.setdefault((name, key), RunningMean()).update(values)

    loader = DataLoader(data.inputs, batch_size=batch_size if data.same_size else 1, shuffle=False)
    with tqdm(total=len(data.inputs), desc="eval", unit="img", disable=not progress) as bar, torch.inference_mode():
        for batch in loader:
            inputs = batch[data.input_key].to(device)
            target = batch[data.target_key].to(device) if data.paired else None
            outputs = {}
            for name, run in runs.items():
                outputs[name] = run(inputs)
                non_finite[name] += int((~torch.isfinite(outputs[name])).flatten(1).any(1).sum())
                if target is not None:
                    _check_shape(name, inputs, outputs[name], target, "the targets are")
            raw_reference = outputs.get(reference)
            clamped_reference = None if raw_reference is None else raw_reference.clamp(low, high)
            for name, raw in outputs.items():
                output = raw.clamp(low, high)
                if target is not None:
                    for key in ("psnr", "ssim"):
                        if key in metrics:
                            add(name, key, getattr(scoring, key)(output, target))
                if clamped_reference is not None:
                    _check_shape(name, inputs, raw, raw_reference, f"{_named(reference)} returns")
                    add(name, "psnr_ref", scoring.psnr(output, clamped_reference))
                    add(name, "ssim_ref", scoring.ssim(output, clamped_reference))
                    max_abs_diff[name] = max(max_abs_diff[name], float((raw - raw_reference).abs().max()))
                if on_outputs is not None:
                    on_outputs(name, output)
            bar.update(len(inputs))
    scores: dict[Hashable, dict[str, float]] = {name: {} for name in runs}
    for (name, key), mean in sums.items():
        scores[name][key] = mean.compute()
    return Scores(scores, max_abs_diff, non_finite, len(data.inputs))


def _named(name: Hashable) -> str:
    """A run name in a message: the name itself (``the generator``), or ``'student' on onnxruntime`` for a
    (model, backend) key."""
    return f"'{name[0]}' on {name[1]}" if isinstance(name, tuple) else str(name)


def _check_shape(name: Hashable, inputs: Tensor, output: Tensor, expected: Tensor, what: str) -> None:
    if output.shape != expected.shape:
        raise GanslimError(f"{_named(name)} returns {tuple(output.shape[1:])} images for "
                           f"{tuple(inputs.shape[1:])} inputs but {what} {tuple(expected.shape[1:])}: check the "
                           f"model's scale and channels against the data (and --size)")


# ----------------------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class EvalResult:
    """Scores of :func:`evaluate_generator`.

    ``metrics``: name -> value among ``psnr``, ``ssim`` (dB / [0, 1], mean over images, vs targets), ``fid``,
    ``kid``, ``kid_std``, ``psnr_teacher``, ``ssim_teacher``. ``skipped``: metric name -> why it was not
    computed. ``real_stats_saved``: the ``.npz`` written, if any. ``sr_metrics``: how a super-resolution
    model's PSNR/SSIM were computed (None for image-to-image models).
    """

    metrics: dict[str, float]
    skipped: dict[str, str]
    num_images: int
    num_real: int | None
    paired: bool
    data: str
    real_stats_saved: Path | None = None
    sr_metrics: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (see :func:`json_safe` for ``inf``)."""
        return json_safe({
            "data": self.data,
            "paired": self.paired,
            "num_images": self.num_images,
            "num_real": self.num_real,
            "metrics": dict(self.metrics),
            "skipped": dict(self.skipped),
            "real_stats_saved": None if self.real_stats_saved is None else str(self.real_stats_saved),
            **({"sr_metrics": self.sr_metrics} if self.sr_metrics else {}),
            **self.info,
        })

    def lines(self) -> list[str]:
        """Human-readable lines: one per metric, then one per skipped metric group."""
        names = {"psnr": "PSNR vs target", "ssim": "SSIM vs target", "fid": "FID", "kid": "KID",
                 "miou": "mIoU (DRN)", "psnr_teacher": "PSNR vs teacher", "ssim_teacher": "SSIM vs teacher"}
        lines = [f"evaluated {self.num_images} image(s): {self.data}"]
        if self.sr_metrics:
            lines.append(f"  {self.sr_metrics}")
        for key, label in names.items():
            if key not in self.metrics:
                continue
            value = self.metrics[key]
            if key == "kid" and "kid_std" in self.metrics:
                text = f"{value:.5f} ± {self.metrics['kid_std']:.5f}"
            elif key.startswith("psnr"):
                text = f"{value:.2f} dB"
            elif key == "miou":
                text = f"{value:.2f}"
            else:
                text = f"{value:.4f}"
            lines.append(f"  {label:<16} {text}")
        if self.real_stats_saved is not None:
            lines.append(f"  real statistics saved to {self.real_stats_saved}")
        for reason, names_skipped in _group(self.skipped).items():
            lines.append(f"{'/'.join('mIoU' if n == 'miou' else n.upper() for n in names_skipped)} skipped: {reason}")
        return lines


def _group(skipped: dict[str, str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        grouped.setdefault(reason, []).append(name)
    return grouped


def _check_scale(signature: Signature, data: EvalData, what: str) -> None:
    """The data must have been opened for the model's family and scale."""
    if signature.takes_image == (data.layout == "latent"):
        opened = "seeds for a latent generator" if data.layout == "latent" else "images for an image model"
        raise GanslimError(f"{what} is {_scale_name(signature)}, but the data holds {opened}: evaluate models of "
                           f"one kind on it")
    if (sr_scale(signature) or 1) != data.scale:
        opened = f"a x{data.scale} super-resolution model" if data.scale != 1 else "an image-to-image model"
        raise GanslimError(f"{what} is {_scale_name(signature)}, but the data was opened for {opened}: "
                           f"evaluate models of one scale on it")


def evaluate_generator(
    generator: nn.Module,
    data: EvalData,
    *,
    metrics: Sequence[str] = METRICS,
    teacher: nn.Module | None = None,
    inception_weights: str | os.PathLike | None = None,
    extractor: nn.Module | None = None,
    real_stats: str | os.PathLike | None = None,
    save_real_stats: str | os.PathLike | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    sr_metric: str | None = None,
    sampling: Sampling | None = None,
    segmenter: nn.Module | None = None,
) -> EvalResult:
    """Run ``generator`` over ``data`` once and score it.

    Args:
        generator: a model with a signature (or a plain module mapping (N, C, H, W) in [-1, 1] to the same
            size); run in eval mode, fed in its signature's value range. Outputs are clamped to the data's value
            range (what a saved image holds) before scoring.
        data: from :func:`open_eval_data` (image-to-image), :func:`open_sr_eval_data` (super-resolution) or
            :func:`open_latent_eval_data` (latent generators), opened for this generator's family and scale.
        metrics: any of ``fid``, ``kid``, ``psnr``, ``ssim``; those the data cannot support are skipped
            with the reason.
        teacher: adds ``psnr_teacher`` / ``ssim_teacher`` (generator output vs teacher output); of the same scale.
            Latent generators: a StyleGAN2 (or mobile_stylegan) of the same resolution and z size, fed the same z
            (each through its own mapping, broadcast to its own number of W+ entries, and truncated toward its own
            mean W) and the same noise: with ``random`` noise the same draws (two StyleGAN2 of one resolution have
            the same noise inputs, one at 4 px and two at every larger side; a mobile_stylegan student's are its
            teacher's first ones, so it gets the teacher's first draws), with ``const`` each its stored noise images
            (a note on stderr says when those differ where both have one), or ``none``.
        inception_weights: the weights file (default: ``$GANSLIM_INCEPTION_WEIGHTS``, then the cache folder);
            when none is found there FID/KID are skipped with the reason; a given path that is missing raises.
        extractor: a ready feature extractor (uint8 (N,3,H,W) -> (N,D)) used instead of loading Inception.
        real_stats: ``.npz`` with ``mu``/``sigma`` of the real images (pytorch-fid format): FID uses it instead
            of extracting real features; KID, which needs the features themselves, is then skipped.
        save_real_stats: write the real images' ``mu``/``sigma`` there (``.npz``) for later ``real_stats``;
            checked to be writable before any image is read.
        batch_size: images per forward pass (1 when the images differ in size).
        device: where the generator, teacher and Inception run.
        kid_subsets, kid_subset_size, seed: see :func:`ganslim.metrics.kernel_inception_distance`.
        sr_metric: super-resolution PSNR/SSIM on ``y`` (the default) or ``rgb`` (see :func:`scoring_for`).
        sampling: how a latent generator draws its images (truncation, noise mode; default
            :class:`~ganslim.apps.generate.Sampling`'s); only for latent generators. With truncation, a model
            that stores no mean W gets one estimated into its ``w_avg`` (:func:`~ganslim.apps.generate.
            prepare_truncation`).
        segmenter: label-map data only: a Cityscapes segmentation network (:func:`ganslim.metrics.drn.
            load_drn_segmenter`) that adds ``miou`` of the outputs against the label maps' train ids
            (:mod:`ganslim.metrics.segmentation`); without it label-map data reports mIoU as skipped.
    """
    wanted = parse_metrics(metrics)
    if real_stats is not None and save_real_stats is not None:
        raise GanslimError("--real-stats and --save-real-stats exclude each other: save once, then reuse")
    if save_real_stats is not None:
        check_output_file(save_real_stats, "--save-real-stats")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GanslimError(f"--batch-size {batch_size!r} must be a positive integer")
    signature = signature_of(generator)
    _check_scale(signature, data, "the generator")
    if teacher is not None:
        _check_scale(signature_of(teacher), data, "the teacher")
    scoring = scoring_for(signature, sr_metric)
    device = torch.device(device)
    latent = data.layout == "latent"
    if latent:
        sampling = sampling or Sampling()
        models = _latent_models(generator, teacher, sampling)
    elif sampling is not None:
        raise GanslimError("truncation and noise modes apply to latent generators; this one is "
                           f"{_scale_name(signature)}: drop them")
    skipped: dict[str, str] = {}
    if segmenter is not None and data.label_paths is None:
        raise GanslimError("mIoU (--drn-weights) scores a label-map model's outputs against its label maps, and "
                           "this data holds no label maps: drop --drn-weights")
    if data.label_paths is not None and segmenter is None:
        skipped["miou"] = MIOU_SKIPPED
    for name in ("psnr", "ssim"):
        if name in wanted and latent and teacher is None:
            skipped[name] = ("an unconditional generator has no targets: pass --teacher REF for PSNR/SSIM against "
                             "a reference generator's images of the same z and noise")
        elif name in wanted and not data.paired and not latent:
            what = "unaligned (unpaired) data" if data.layout == "unaligned" else "a folder of images"
            skipped[name] = f"{what} has no paired targets (PSNR/SSIM need aligned A|B images)"

    distribution = [m for m in ("fid", "kid") if m in wanted]
    needs_features = bool(distribution) or save_real_stats is not None
    if needs_features and extractor is None:
        path, reason = find_inception_weights(inception_weights)
        if path is None:
            if save_real_stats is not None:
                raise GanslimError(f"--save-real-stats needs the Inception network: {reason}")
            skipped.update({m: reason for m in distribution})
            distribution = []
        else:
            extractor = load_inception(path)
    if extractor is not None:
        extractor = extractor.to(device)

    real: Any = None
    num_real = None
    if distribution or save_real_stats is not None:
        if real_stats is not None:
            real = load_statistics(real_stats)
            if "kid" in distribution:
                skipped["kid"] = "KID needs the real images' features, not the cached mu/sigma of --real-stats"
                distribution.remove("kid")
        elif data.real is None:
            if save_real_stats is not None:
                where = ("no real images are given: pass --real DIR" if latent else
                         f"'{data.root}' holds no real target-domain images to compute statistics from: pass a "
                         f"dataset root (test/ or testA/ testB/)")
                raise GanslimError(f"--save-real-stats: {where}")
            reason = ("no real images are given: pass --real DIR (or its statistics, an .npz)" if latent else
                      f"'{data.root}' holds no real target-domain images: pass --real-stats NPZ")
            skipped.update({m: reason for m in distribution})
            distribution = []
        else:
            real = extract_features(_real_batches(data, batch_size), extractor)
            num_real = real.shape[0]
    saved = None
    if save_real_stats is not None:
        saved = save_statistics(save_real_stats, *feature_statistics(real))
    if distribution and len(data.inputs) < 2:
        skipped.update({m: f"needs at least 2 images, the data has {len(data.inputs)}" for m in distribution})
        distribution = []

    if latent and not distribution and teacher is None:  # nothing left to measure: draw nothing
        return EvalResult(metrics={}, skipped=skipped, num_images=0, num_real=num_real, paired=False,
                          data=data.describe(), real_stats_saved=saved)
    info: dict[str, Any] = {}
    if latent:
        runs, info = _latent_runs(models, data, sampling, device)
    else:
        runs = {"the generator": module_run(generator.to(device).eval(), data.value_range)}
        if teacher is not None:
            runs["the teacher"] = module_run(teacher.to(device).eval(), data.value_range, "the teacher")
    fake_features: list[np.ndarray] = []
    segmentation = None if segmenter is None else _Segmentation(segmenter.to(device).eval(), data.label_paths)

    def keep_features(name: Hashable, outputs: Tensor) -> None:
        # From the metric primitives rather than compute_fid_kid, which always computes FID: KID alone skips the
        # 2048x2048 matrix square root (tens of seconds on a small CPU).
        if name != "the generator":
            return
        if distribution:
            fake_features.append(extract_features([rescale(outputs, data.value_range, SIGNED)], extractor))
        if segmentation is not None:
            segmentation.add(outputs)

    scored = score_models(runs, data, scoring, reference="the teacher" if teacher is not None else None,
                          metrics=wanted, batch_size=batch_size, device=device,
                          on_outputs=keep_features if distribution or segmentation else None, progress=progress)
    scores: dict[str, float] = dict(scored.metrics["the generator"])
    if segmentation is not None:
        miou = mean_iou(segmentation.confusion)
        if math.isnan(miou):
            skipped["miou"] = ("no pixel of the label maps is one of the 19 Cityscapes classes: mIoU needs "
                               "Cityscapes labelIds")
        else:
            scores["miou"] = miou
    scores.update({key.replace("_ref", "_teacher"): value for key, value in scores.items() if key.endswith("_ref")})
    if distribution:
        fake = np.concatenate(fake_features)
        if "fid" in distribution:
            real_statistics = real if isinstance(real, tuple) else feature_statistics(real)
            scores["fid"] = frechet_distance(*feature_statistics(fake), *real_statistics)
        if "kid" in distribution:
            scores["kid"], scores["kid_std"] = kernel_inception_distance(
                fake, real, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    non_finite = scored.non_finite["the generator"]
    if non_finite:
        logger.warning("warning: the generator output NaN or infinite values for %d of %d image(s), so the scores "
                       "are not meaningful: the checkpoint may be damaged or its training diverged", non_finite,
                       len(data.inputs))
    ordered = {k: scores[k] for k in ("psnr", "ssim", "fid", "kid", "kid_std", "miou", "psnr_teacher", "ssim_teacher")
               if k in scores}
    return EvalResult(metrics=ordered, skipped=skipped, num_images=len(data.inputs), num_real=num_real,
                      paired=data.paired, data=data.describe(), real_stats_saved=saved,
                      sr_metrics=None if scoring.crop_border is None else scoring.describe(), info=info)


def _latent_models(generator: nn.Module, teacher: nn.Module | None,
                   sampling: Sampling) -> dict[str, LatentGenerator]:
    """``{"the generator": ..., "the teacher": ...}`` (the teacher if any), once checked comparable: the teacher
    takes z of the generator's size and draws images of its shape; a note when const noise differs between them."""
    models = {"the generator": latent_generator(generator, "the generator")}
    if teacher is None:
        return models
    student = models["the generator"]
    reference = models["the teacher"] = latent_generator(teacher, "the teacher")
    if student.z_dim != reference.z_dim:
        raise GanslimError(f"the generator takes z of {student.z_dim} values but the teacher {reference.z_dim}: "
                           f"fidelity compares the images of the same z: pass a teacher of the same z size")
    shapes = [(model.img_channels, model.img_resolution) for model in (student, reference)]
    if shapes[0] != shapes[1]:
        (channels, side), (teacher_channels, teacher_side) = shapes
        raise GanslimError(f"the generator draws {channels}x{side}x{side} images but the teacher "
                           f"{teacher_channels}x{teacher_side}x{teacher_side}: compare generators of one resolution")
    stored = zip(stored_noise(student), stored_noise(reference))  # a student's are its teacher's first ones
    if sampling.noise_mode == "const" and not all(torch.equal(own, theirs.to(own.device)) for own, theirs in stored):
        logger.warning("note: the generator's stored noise images differ from the teacher's, so with --noise-mode "
                       "const the fidelity also counts that difference: pass --noise-mode random or none to feed both "
                       "the same noise")
    return models


def _latent_runs(models: dict[str, LatentGenerator], data: EvalData, sampling: Sampling,
                 device: torch.device) -> tuple[dict[str, Run], dict[str, Any]]:
    """The runs of :func:`_latent_models` over ``data``'s seeds, each truncated toward its own mean W, and what the
    result records of how they drew."""
    info: dict[str, Any] = {"seeds": format_seeds(data.latents.streams), "truncation": sampling.truncation_psi,
                            "noise_mode": sampling.noise_mode}
    means = {name: prepare_truncation(model.to(device).eval(), sampling.truncation_psi, what=name)
             for name, model in models.items()}
    if sampling.truncation_psi != 1:
        info["truncation_mean"] = {name.removeprefix("the "): source for name, source in means.items()}
    return {name: latent_run(model, data.latents, sampling, device) for name, model in models.items()}, info


class _Segmentation:
    """The confusion matrix of ``segmenter``'s classes of the generated images, in data order, against the train
    ids of ``label_paths`` at each label map's own resolution."""

    def __init__(self, segmenter: nn.Module, label_paths: Sequence[Path]) -> None:
        self.segmenter, self.label_paths, self.seen = segmenter, label_paths, 0
        self.confusion = np.zeros((CITYSCAPES_CLASSES, CITYSCAPES_CLASSES), dtype=np.int64)

    def add(self, images: Tensor) -> None:
        """(N, 3, h, w) generated images in [-1, 1], the next N of the data."""
        for image in images:
            train_ids = label_ids_to_train_ids(read_id_map(self.label_paths[self.seen], None, "label map"))
            prediction = segment(self.segmenter, image[None], train_ids.shape)[0]
            self.confusion += confusion_matrix(prediction, train_ids, CITYSCAPES_CLASSES)
            self.seen += 1


def _real_batches(data: EvalData, batch_size: int) -> Iterable[Tensor]:
    """The real images of ``data`` in batches, in [-1, 1] (what :func:`ganslim.metrics.extract_features` takes)."""
    loader = DataLoader(data.real, batch_size=batch_size if data.same_size else 1, shuffle=False)
    for batch in loader:
        yield rescale(batch[data.target_key], data.value_range, SIGNED)
