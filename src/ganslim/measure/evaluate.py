"""Evaluate a generator on a dataset split: PSNR/SSIM against targets, FID/KID against real images, fidelity
to a teacher, all in one pass over the data.

Which metrics a split supports depends on its layout (see :func:`open_eval_data`):

* aligned (``root/{split}/`` of A|B pairs): PSNR and SSIM against the B halves, FID and KID against the
  same B halves (the real images of the target domain);
* unaligned (``root/{split}A/``, ``root/{split}B/``): FID and KID against ``{split}B`` (``BtoA``: ``{split}A``);
  no PSNR/SSIM, there is no ground truth;
* a folder of images: inputs only; FID needs cached real statistics (``real_stats``).

With a teacher every layout also gets ``psnr_teacher`` / ``ssim_teacher`` (student output against teacher
output on the same input). Images follow the reference test-time preprocessing: bicubic resize to ``size``
x ``size``, no crop, no flip, [-1, 1]. FID/KID use :mod:`ganslim.metrics` (uint8 quantisation, 299 px
bilinear resize, 2048-d pool features); without the Inception weights file they are reported as skipped with
the reason, and the other metrics are still computed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ganslim.data import AlignedDataset, SingleImageDataset, detect_layout
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
    ssim,
)
from ganslim.metrics.inception import WEIGHTS_FILENAME, WEIGHTS_URL
from ganslim.outputs import check_output_file
from ganslim.weights import weights_source

__all__ = [
    "METRICS",
    "EvalData",
    "EvalResult",
    "evaluate_generator",
    "find_inception_weights",
    "json_safe",
    "mean_ssim",
    "open_eval_data",
    "parse_metrics",
]

logger = logging.getLogger(__name__)

METRICS = ("fid", "kid", "psnr", "ssim")
SSIM_WINDOW = 11


# ----------------------------------------------------------------------------------------------------------
# Data


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

    ``inputs`` items hold ``"A"`` (input_nc, size, size) in [-1, 1], plus the target ``"B"`` when ``paired``.
    ``real`` items hold ``"B"``: real images of the target domain for FID/KID (None for a plain folder).
    """

    inputs: Dataset
    real: Dataset | None
    paired: bool
    layout: str
    root: Path
    split: str

    def describe(self) -> str:
        """e.g. ``aligned split 'test' of data/facades (106 pairs)``."""
        if self.layout == "single":
            return f"{len(self.inputs)} image(s) in {self.root}"
        what = "pairs" if self.paired else "inputs"
        return f"{self.layout} split '{self.split}' of {self.root} ({len(self.inputs)} {what})"


def open_eval_data(
    data: str | os.PathLike,
    split: str = "test",
    size: int = 256,
    direction: str = "AtoB",
    input_nc: int = 3,
    output_nc: int = 3,
    max_images: int | None = None,
) -> EvalData:
    """Open ``split`` of the dataset at ``data`` (layout detected by :func:`ganslim.data.detect_layout`).

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
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                   or max_images < 1):
        raise GanslimError(f"--max-images {max_images!r} must be a positive integer")
    root = Path(data)
    layout = detect_layout(root)
    if layout == "aligned":
        if not (root / split).is_dir():
            present = [s for s in ("train", "val", "test") if (root / s).is_dir()]
            raise GanslimError(f"aligned dataset '{root}' has no {split}/ split: pass --split "
                               f"{' or '.join(present)}")
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


def _first(dataset: Dataset, count: int | None) -> Dataset:
    return dataset if count is None or count >= len(dataset) else Subset(dataset, range(count))


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
# Evaluation


@dataclass
class EvalResult:
    """Scores of :func:`evaluate_generator`.

    ``metrics``: name -> value among ``psnr``, ``ssim`` (dB / [0, 1], mean over images, vs targets), ``fid``,
    ``kid``, ``kid_std``, ``psnr_teacher``, ``ssim_teacher``. ``skipped``: metric name -> why it was not
    computed. ``real_stats_saved``: the ``.npz`` written, if any.
    """

    metrics: dict[str, float]
    skipped: dict[str, str]
    num_images: int
    num_real: int | None
    paired: bool
    data: str
    real_stats_saved: Path | None = None
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
            **self.info,
        })

    def lines(self) -> list[str]:
        """Human-readable lines: one per metric, then one per skipped metric group."""
        names = {"psnr": "PSNR vs target", "ssim": "SSIM vs target", "fid": "FID", "kid": "KID",
                 "psnr_teacher": "PSNR vs teacher", "ssim_teacher": "SSIM vs teacher"}
        lines = [f"evaluated {self.num_images} image(s): {self.data}"]
        for key, label in names.items():
            if key not in self.metrics:
                continue
            value = self.metrics[key]
            if key == "kid" and "kid_std" in self.metrics:
                text = f"{value:.5f} ± {self.metrics['kid_std']:.5f}"
            elif key.startswith("psnr"):
                text = f"{value:.2f} dB"
            else:
                text = f"{value:.4f}"
            lines.append(f"  {label:<16} {text}")
        if self.real_stats_saved is not None:
            lines.append(f"  real statistics saved to {self.real_stats_saved}")
        for reason, names_skipped in _group(self.skipped).items():
            lines.append(f"{'/'.join(n.upper() for n in names_skipped)} skipped: {reason}")
        return lines


def _group(skipped: dict[str, str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        grouped.setdefault(reason, []).append(name)
    return grouped


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
) -> EvalResult:
    """Run ``generator`` over ``data`` once and score it.

    Args:
        generator: maps (N, input_nc, H, W) in [-1, 1] to (N, output_nc, H, W); run in eval mode. Outputs are
            clamped to [-1, 1] (what a saved image holds) before scoring.
        data: from :func:`open_eval_data`.
        metrics: any of ``fid``, ``kid``, ``psnr``, ``ssim``; those the data cannot support are skipped
            with the reason.
        teacher: adds ``psnr_teacher`` / ``ssim_teacher`` (generator output vs teacher output).
        inception_weights: the weights file (default: ``$GANSLIM_INCEPTION_WEIGHTS``, then the cache folder);
            when none is found there FID/KID are skipped with the reason; a given path that is missing raises.
        extractor: a ready feature extractor (uint8 (N,3,H,W) -> (N,D)) used instead of loading Inception.
        real_stats: ``.npz`` with ``mu``/``sigma`` of the real images (pytorch-fid format): FID uses it instead
            of extracting real features; KID, which needs the features themselves, is then skipped.
        save_real_stats: write the real images' ``mu``/``sigma`` there (``.npz``) for later ``real_stats``;
            checked to be writable before any image is read.
        batch_size: images per forward pass.
        device: where the generator, teacher and Inception run.
        kid_subsets, kid_subset_size, seed: see :func:`ganslim.metrics.kernel_inception_distance`.
    """
    wanted = parse_metrics(metrics)
    if real_stats is not None and save_real_stats is not None:
        raise GanslimError("--real-stats and --save-real-stats exclude each other: save once, then reuse")
    if save_real_stats is not None:
        check_output_file(save_real_stats, "--save-real-stats")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GanslimError(f"--batch-size {batch_size!r} must be a positive integer")
    device = torch.device(device)
    skipped: dict[str, str] = {}
    for name in ("psnr", "ssim"):
        if name in wanted and not data.paired:
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
                raise GanslimError(f"--save-real-stats: '{data.root}' holds no real target-domain images to compute "
                                   f"statistics from: pass a dataset root (test/ or testA/ testB/)")
            skipped.update({m: f"'{data.root}' holds no real target-domain images: pass --real-stats NPZ"
                            for m in distribution})
            distribution = []
        else:
            real = extract_features(_image_batches(data.real, "B", batch_size), extractor)
            num_real = real.shape[0]
    saved = None
    if save_real_stats is not None:
        saved = save_statistics(save_real_stats, *feature_statistics(real))
    if distribution and len(data.inputs) < 2:
        skipped.update({m: f"needs at least 2 images, the data has {len(data.inputs)}" for m in distribution})
        distribution = []

    sums = {name: RunningMean() for name in ("psnr", "ssim", "psnr_teacher", "ssim_teacher")}
    non_finite = 0
    generator = generator.to(device).eval()
    if teacher is not None:
        teacher = teacher.to(device).eval()

    def outputs() -> Iterator[Tensor]:
        nonlocal non_finite
        loader = DataLoader(data.inputs, batch_size=batch_size, shuffle=False)
        with tqdm(total=len(data.inputs), desc="eval", unit="img", disable=not progress) as bar, \
                torch.inference_mode():
            for batch in loader:
                inputs = batch["A"].to(device)
                fake = _run(generator, inputs, "the generator")
                non_finite += int((~torch.isfinite(fake)).flatten(1).any(1).sum())
                fake = fake.clamp(-1, 1)
                if data.paired:
                    target = batch["B"].to(device)
                    _check_target(fake, target)
                    if "psnr" in wanted:
                        sums["psnr"].update(psnr(fake, target))
                    if "ssim" in wanted:
                        sums["ssim"].update(mean_ssim(fake, target))
                if teacher is not None:
                    reference = _run(teacher, inputs, "the teacher").clamp(-1, 1)
                    sums["psnr_teacher"].update(psnr(fake, reference))
                    sums["ssim_teacher"].update(mean_ssim(fake, reference))
                bar.update(len(inputs))
                yield fake

    scores: dict[str, float] = {}
    if distribution:
        # From the metric primitives rather than compute_fid_kid, which always computes FID: KID alone skips the
        # 2048x2048 matrix square root (tens of seconds on a small CPU).
        fake = extract_features(outputs(), extractor)
        if "fid" in distribution:
            real_statistics = real if isinstance(real, tuple) else feature_statistics(real)
            scores["fid"] = frechet_distance(*feature_statistics(fake), *real_statistics)
        if "kid" in distribution:
            scores["kid"], scores["kid_std"] = kernel_inception_distance(
                fake, real, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    else:
        for _ in outputs():
            pass
    if non_finite:
        logger.warning("warning: the generator output NaN or infinite values for %d of %d image(s), so the scores "
                       "are not meaningful: the checkpoint may be damaged or its training diverged", non_finite,
                       len(data.inputs))
    for name, mean in sums.items():
        if mean.count:
            scores[name] = mean.compute()
    ordered = {k: scores[k] for k in ("psnr", "ssim", "fid", "kid", "kid_std", "psnr_teacher", "ssim_teacher")
               if k in scores}
    return EvalResult(metrics=ordered, skipped=skipped, num_images=len(data.inputs), num_real=num_real,
                      paired=data.paired, data=data.describe(), real_stats_saved=saved)


def _image_batches(dataset: Dataset, key: str, batch_size: int) -> Iterable[Tensor]:
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        yield batch[key]


def _run(model: nn.Module, inputs: Tensor, what: str) -> Tensor:
    try:
        return model(inputs).float()
    except RuntimeError as error:
        raise GanslimError(f"{what} fails on {'x'.join(map(str, inputs.shape))} inputs ({first_line(error)}): "
                           f"pick a --size its downsampling accepts (e.g. 256)") from None


def _check_target(fake: Tensor, target: Tensor) -> None:
    if fake.shape != target.shape:
        raise GanslimError(f"the generator returns {tuple(fake.shape[1:])} images but the targets are "
                           f"{tuple(target.shape[1:])}: check --size and the dataset's channels")
