"""Projection: the W+ (and optionally the noise) under which a StyleGAN2 generator reconstructs a photo.

:func:`project` starts from the encoder's W+ (or the mean W broadcast to every layer) and optimises it with Adam on
the image MSE, plus a VGG16 perceptual term when given one (ganslim ships no LPIPS weights; the VGG16 term stands
in, as in Anycost training). With ``sub_generators`` each step also scores one sub-generator drawn at random (one of
the top 4 sides, Anycost's sandwich of channel configurations) against the photo downsampled: Anycost's trick, so
the previews of an edit stay faithful too. With ``optimize_noise`` the generator's noise images are optimised as
well (renormalised to zero mean and unit variance after every step, as StyleGAN2's projector).

:func:`project_folder` (``ganslim project``) projects every image of a folder and writes, per image, ``<stem>.npy``
(W+, float32, (num_ws, w_dim): ``ganslim generate --w`` takes it), ``<stem>.png`` (the reconstruction), with
``optimize_noise`` ``<stem>.noise.npz`` (the noise images ``noise_0`` ...), and ``results.json`` (rewritten after
every image) with each image's PSNR at the start and the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ganslim.apps.generate import stored_noise
from ganslim.archs.stylegan2 import StyleGAN2Generator
from ganslim.atomic import atomic_write, atomic_write_text
from ganslim.data import ImageFolderDataset, save_image
from ganslim.editing.encoder import Encoder, load_encoder
from ganslim.errors import GanslimError
from ganslim.methods.anycost.losses import ConsistencyLoss
from ganslim.methods.anycost.sampling import sample_channels, sample_sides, top_sides
from ganslim.metrics import psnr
from ganslim.nn.vgg import VGG16Features
from ganslim.outputs import check_output_folder

__all__ = ["FolderProjection", "Projection", "project", "project_folder", "projection_loss_name", "run_projection",
           "start_w_plus"]

RESULTS_FILE = "results.json"
SUB_GENERATOR_SIDES = 4  # Anycost's top 4 sides
DEFAULT_STEPS, DEFAULT_LR = 200, 0.01


@dataclass
class Projection:
    """What :func:`run_projection` found: ``w_plus`` (1, num_ws, w_dim), the optimised ``noise`` images (None when
    they were not optimised), the reconstruction (1, C, R, R) and the PSNR / loss before and after."""

    w_plus: Tensor
    noise: list[Tensor] | None
    image: Tensor
    psnr_start: float
    psnr: float
    loss_start: float
    loss: float


def start_w_plus(generator: StyleGAN2Generator, image: Tensor, encoder: Encoder | None = None) -> Tensor:
    """Where a projection starts: ``encoder(image)``, or the generator's mean W at every layer; (1, num_ws, w_dim)."""
    with torch.no_grad():
        if encoder is not None:
            return encoder(image).float()
        return generator.broadcast(generator.style.w_avg[None].float())


def _check_image(generator: StyleGAN2Generator, image: Tensor) -> Tensor:
    """``image`` (1, C, H, W), resized (bilinear, antialiased) to the generator's side."""
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] != generator.img_channels:
        raise GanslimError(f"projection takes one image of shape (1, {generator.img_channels}, H, W) in [-1, 1], "
                           f"got {tuple(image.shape)}")
    side = generator.img_resolution
    if image.shape[-2:] == (side, side):
        return image.float()
    return F.interpolate(image.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def _check_options(steps: int, lr: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise GanslimError(f"--steps {steps!r} must be a whole number of at least 0")
    if not lr > 0:
        raise GanslimError(f"--lr {lr!r} must be above 0")


def _loss(loss: ConsistencyLoss, image: Tensor, target: Tensor) -> Tensor:
    return loss(image, target)["consistency"]


def run_projection(generator: StyleGAN2Generator, image: Tensor, steps: int = DEFAULT_STEPS,
                   encoder: Encoder | None = None, *, lr: float = DEFAULT_LR, optimize_noise: bool = False,
                   sub_generators: bool = False, perceptual: VGG16Features | None = None, seed: int = 0,
                   progress: bool = False, label: str = "project") -> Projection:
    """Optimise W+ (and with ``optimize_noise`` the noise) so that ``generator``, as its full generator whatever
    sub-generator it runs as, reconstructs ``image`` (see the module docstring); the generator's weights get no
    gradient. ``progress`` shows a bar named ``label``."""
    _check_options(steps, lr)
    with generator.subnet():
        return _optimise(generator, image, steps, encoder, lr, optimize_noise, sub_generators, perceptual, seed,
                         progress, label)


def _optimise(generator: StyleGAN2Generator, image: Tensor, steps: int, encoder: Encoder | None, lr: float,
              optimize_noise: bool, sub_generators: bool, perceptual: VGG16Features | None, seed: int,
              progress: bool, label: str) -> Projection:
    target = _check_image(generator, image.to(generator.style.w_avg.device)).clamp(-1, 1)
    w_plus = start_w_plus(generator, target, encoder).clone().requires_grad_(True)
    noise = [buffer.clone().requires_grad_(True) for buffer in stored_noise(generator)] if optimize_noise else None
    variables = [w_plus] + (noise or [])
    optimizer = torch.optim.Adam(variables, lr=lr)
    loss_fn = ConsistencyLoss(1.0, perceptual)
    rng = torch.Generator().manual_seed(seed)
    sides = top_sides(generator.img_resolution, min(SUB_GENERATOR_SIDES, len(generator.channels)))

    def render() -> Tensor:
        return generator.synthesize(w_plus, noise=noise if noise is not None else "const").float()

    with torch.no_grad():
        start = render()
        loss_start, psnr_start = float(_loss(loss_fn, start, target)), float(psnr(start.clamp(-1, 1), target)[0])
    for _ in tqdm(range(steps), desc=label, unit="step", disable=not progress, leave=False):
        loss = _loss(loss_fn, render(), target)
        if sub_generators:
            side = sample_sides(rng, sides, 1)[0]
            with generator.subnet(side, list(sample_channels(rng, generator.layer_channels, "sandwich"))):
                loss = loss + _loss(loss_fn, render(), target)
        gradients = torch.autograd.grad(loss, variables)  # to W+ and noise only, never into the generator's .grad
        for variable, gradient in zip(variables, gradients):
            variable.grad = gradient
        optimizer.step()
        if noise is not None:
            with torch.no_grad():
                for buffer in noise:
                    buffer.sub_(buffer.mean()).div_(buffer.std())
    with torch.no_grad():
        final = render()
        loss_end, psnr_end = float(_loss(loss_fn, final, target)), float(psnr(final.clamp(-1, 1), target)[0])
    kept = None if noise is None else [buffer.detach() for buffer in noise]
    return Projection(w_plus.detach(), kept, final, psnr_start, psnr_end, loss_start, loss_end)


def project(generator: StyleGAN2Generator, image: Tensor, steps: int = DEFAULT_STEPS, encoder: Encoder | None = None,
            **options) -> Tensor:
    """image (1, C, H, W) in [-1, 1] -> W+ (1, num_ws, w_dim) under which ``generator`` reconstructs it;
    ``options`` as :func:`run_projection` (``lr``, ``optimize_noise``, ``sub_generators``, ``perceptual``, ...)."""
    return run_projection(generator, image, steps, encoder, **options).w_plus


def inversion(generator: StyleGAN2Generator, encoder: Encoder | None, steps: int
              ) -> Callable[[Tensor], Tensor] | None:
    """image (1, 3, R, R) in [-1, 1] -> W+ (1, num_ws, w_dim): ``encoder``'s W+, refined by ``steps`` steps of
    :func:`project` (from the mean W without an encoder); None with neither (nothing can invert an image)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise GanslimError(f"--project-steps {steps!r} must be 0 (the encoder's W+ as it is) or a number of projection "
                           f"steps such as 100")
    if steps == 0:
        return encoder
    return lambda image: project(generator, image, steps, encoder=encoder)



def load_inversion(generator: StyleGAN2Generator, encoder_path: str | os.PathLike | None, steps: int
                   ) -> Callable[[Tensor], Tensor] | None:
    """:func:`inversion` with the encoder saved at ``encoder_path`` (None: no encoder), as the CLIs take them."""
    encoder = load_encoder(encoder_path, generator) if encoder_path is not None else None
    return inversion(generator, encoder, steps)

@dataclass
class FolderProjection:
    """What :func:`project_folder` wrote: ``results.json`` and its content."""

    results: Path
    content: dict = field(default_factory=dict)

    @property
    def mean_psnr(self) -> tuple[float, float]:
        """(start, end) mean PSNR over the images."""
        images = self.content["images"]
        return (sum(entry["psnr_start"] for entry in images) / len(images),
                sum(entry["psnr"] for entry in images) / len(images))


def project_folder(generator: StyleGAN2Generator, input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                   steps: int = DEFAULT_STEPS, encoder: Encoder | None = None, *, lr: float = DEFAULT_LR,
                   optimize_noise: bool = False, sub_generators: bool = False,
                   perceptual: VGG16Features | None = None, seed: int = 0, progress: bool = True,
                   record: dict | None = None) -> FolderProjection:
    """Project every image under ``input_dir`` (centre-cropped and resized to the generator's side) and write the
    files of the module docstring to ``output_dir``; ``record`` goes into ``results.json`` as it is.

    Every image is decoded, and the output folder checked, before anything is written: an image that cannot be
    decoded refuses the whole folder in one line (nothing is skipped silently), as do an output folder inside the
    input folder and two images of one file stem.
    """
    _check_options(steps, lr)
    folder = check_output_folder(output_dir, "--output")
    images = _input_images(input_dir, folder, generator.img_resolution)
    stems = [Path(path).stem for path in images.paths]
    content = {**(record or {}), "steps": steps, "lr": lr, "optimize_noise": optimize_noise,
               "sub_generators": sub_generators, "images": []}
    results = folder / RESULTS_FILE
    bar = tqdm(total=len(images), desc="images", unit="img", disable=not progress)
    for index, stem in enumerate(stems):
        item = images[index]
        found = run_projection(generator, item["image"][None], steps, encoder, lr=lr, optimize_noise=optimize_noise,
                               sub_generators=sub_generators, perceptual=perceptual, seed=seed, progress=progress,
                               label=stem)
        content["images"].append({"input": item["path"], **_write_projection(folder, stem, found)})
        atomic_write_text(json.dumps(content, indent=1) + "\n", results)
        bar.update(1)
    bar.close()
    return FolderProjection(results, content)


def _input_images(input_dir: str | os.PathLike, output: Path, side: int) -> ImageFolderDataset:
    """The images under ``input_dir``, all decoded, refused in one line when the outputs could mix with them."""
    images = ImageFolderDataset(input_dir, side, resize=True, flip=False)
    root = Path(input_dir).resolve()
    if output.resolve() == root or root in output.resolve().parents:
        raise GanslimError(f"--output '{output}' is inside --input '{input_dir}': the reconstructions would mix with "
                           f"the photos: pass a folder outside it")
    seen: dict[str, Path] = {}
    for path in images.paths:
        if path.stem in seen:
            raise GanslimError(f"'{seen[path.stem]}' and '{path}' share the stem '{path.stem}', so both would write "
                               f"{path.stem}.npy: rename one")
        seen[path.stem] = path
    return images


def _write_projection(folder: Path, stem: str, found: Projection) -> dict:
    """Write one image's files; its ``results.json`` entry."""
    w_plus = found.w_plus[0].cpu().numpy().astype(np.float32)
    _save_numpy(folder / f"{stem}.npy", lambda handle: np.save(handle, w_plus))
    save_image(found.image[0].cpu(), folder / f"{stem}.png")
    entry = {"w_plus": f"{stem}.npy", "reconstruction": f"{stem}.png", "psnr_start": found.psnr_start,
             "psnr": found.psnr, "loss_start": found.loss_start, "loss": found.loss}
    if found.noise is not None:
        noise = {f"noise_{index}": buffer.cpu().numpy() for index, buffer in enumerate(found.noise)}
        _save_numpy(folder / f"{stem}.noise.npz", lambda handle: np.savez(handle, **noise))
        entry["noise"] = f"{stem}.noise.npz"
    return entry


def _save_numpy(path: Path, save: Callable[[BinaryIO], None]) -> None:
    """``save(file object)`` into ``path``, atomically (a file object: numpy would add .npy to a temporary name)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            save(handle)

    atomic_write(path, write)


def projection_loss_name(perceptual: VGG16Features | None) -> str:
    """How the loss is described in messages and ``results.json``."""
    return "mse + vgg16 perceptual" if perceptual is not None else "mse (no VGG16 weights)"
