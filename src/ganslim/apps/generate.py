"""Draw images from a latent generator (StyleGAN2, mobile_stylegan): by seed, or from saved z, W or W+, with truncation
and a noise mode; written as PNGs, and optionally as one float32 array and a grid image.

Seeds are torch's: the z of seed ``s`` is ``torch.randn(1, z_dim, generator=torch.Generator().manual_seed(s))``,
as rosinality's scripts draw with torch (NVIDIA's draw numpy's ``RandomState(s).randn(1, z_dim)``, other numbers:
save such z as ``.npy`` and pass them as z rows). With ``noise_mode="random"`` the noise of an image is drawn from
the same stream right after its z, one (1, 1, r, r) image per noise input in order, so it depends on the seed alone
(not on the batch or the device); the rows of a z / W file take their row number as the seed of their stream, so
the z of seeds 0 .. N-1 saved as a file reproduce those images in every noise mode.

Truncation pulls W toward a mean W (:func:`prepare_truncation`): the one given, else the checkpoint's ``w_avg``,
else one estimated from 10k mapped z with a fixed seed (announced on stderr). The images stay in the generator's
[-1, 1] range, unclamped, until written as PNGs (``(x + 1) / 2 * 255``, as every ganslim image).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from ganslim.archs.stylegan2 import NOISE_MODES, LatentGenerator, estimate_w_avg
from ganslim.atomic import atomic_write
from ganslim.data.images import save_image
from ganslim.engine import image_grid
from ganslim.errors import GanslimError, first_line
from ganslim.outputs import check_output_folder
from ganslim.signature import signature_of

__all__ = ["ARRAY_FILE", "GRID_FILE", "W_AVG_SAMPLES", "W_AVG_SEED", "Generated", "Latents", "Sampling",
           "check_truncation", "format_seeds", "generate_images", "latent_generator", "load_latents",
           "load_truncation_mean", "noise_sides", "parse_grid", "parse_seeds", "prepare_truncation", "seed_w_plus",
           "stored_noise", "synthesize"]

logger = logging.getLogger(__name__)

ARRAY_FILE, GRID_FILE = "images.npy", "grid.png"
W_AVG_SAMPLES, W_AVG_SEED = 10_000, 0  # the mean W of a checkpoint that stores none: 10k mapped z of seed 0
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed's range


# ----------------------------------------------------------------------------------------------------------
# What to draw from


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-99"``, ``"0,5,7"``, ``"3"`` or a mix (``"0-3,10"``) -> the seeds, in order; one line for a range that
    runs down, a seed that is no whole number in [0, 2**64), an empty list, or a repeated seed."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        bounds = [_seed(first, text)] + ([_seed(last, text)] if dash else [])
        if bounds[-1] < bounds[0]:
            raise GanslimError(f"--seeds '{text}': the range {part.strip()} runs downward: write it low to high "
                               f"({bounds[1]}-{bounds[0]})")
        seeds.extend(range(bounds[0], bounds[-1] + 1))
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise GanslimError(f"--seeds '{text}' names seed {seed} more than once: each seed is one image")
        seen.add(seed)
    return tuple(seeds)


def _seed(word: str, text: str) -> int:
    word = word.strip()
    if not (word.isascii() and word.isdigit()) or int(word) > MAX_SEED:
        raise GanslimError(f"--seeds '{text}': '{word}' is not a seed (a whole number from 0 to 2**64 - 1): write "
                           f"seeds as 0-99, 0,5,7 or 3")
    return int(word)


def format_seeds(seeds: Sequence[int]) -> str:
    """The seeds as :func:`parse_seeds` reads them, consecutive runs joined: ``(0, 1, 2, 7)`` -> ``"0-2,7"``."""
    runs: list[list[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ",".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


@dataclass(frozen=True)
class Latents:
    """What images are drawn from: seeds (their z drawn from each seed's stream), or the rows of a z, W or W+ array.

    ``kind``: ``seeds``, ``z`` ((N, z_dim) ``values``), ``w`` ((N, w_dim)) or ``w+`` ((N, num_ws, w_dim)).
    ``streams``: each image's random stream (its seed, or its row number: see the module docstring).
    """

    kind: str
    streams: tuple[int, ...]
    values: Tensor | None = None

    @classmethod
    def from_seeds(cls, seeds: Sequence[int]) -> Latents:
        return cls("seeds", tuple(seeds))

    @classmethod
    def from_rows(cls, kind: str, values: Tensor) -> Latents:
        return cls(kind, tuple(range(len(values))), values)

    def __len__(self) -> int:
        return len(self.streams)

    def names(self) -> list[str]:
        """The PNG stem of each image: ``seed0042`` by seed, ``000042`` by row."""
        if self.kind == "seeds":
            return [f"seed{seed:04d}" for seed in self.streams]
        return [f"{row:06d}" for row in self.streams]


def load_latents(path: str | os.PathLike, kind: str, generator: LatentGenerator) -> Latents:
    """The rows of a ``.npy`` file: ``kind`` ``z`` takes (N, z_dim); ``w`` takes W (N, w_dim) or W+ (N, num_ws,
    w_dim), or one W+ (num_ws, w_dim) as ``ganslim project`` writes it (so num_ws rows of W must be saved as W+,
    each row repeated). A file of another shape, not a float array, or with NaN / infinite values is one line that
    says the expected shape."""
    flag = "--latents" if kind == "z" else "--w"
    if kind == "z":
        shapes, expected = [(generator.z_dim,)], f"z of shape (N, {generator.z_dim})"
    else:
        shapes = [(generator.w_dim,), (generator.num_ws, generator.w_dim)]
        expected = (f"W of shape (N, {generator.w_dim}) or W+ of shape (N, {generator.num_ws}, {generator.w_dim}) "
                    f"or ({generator.num_ws}, {generator.w_dim})")
    array = _read_array(path, flag, expected)
    if kind == "w" and array.shape == (generator.num_ws, generator.w_dim):
        array = array[None]  # one image's W+, as ganslim project writes it
    if array.ndim < 2 or array.shape[1:] not in shapes or array.shape[0] == 0:
        raise GanslimError(f"{flag} '{path}' holds an array of shape {array.shape}, but this generator takes "
                           f"{expected}, N at least 1")
    values = torch.from_numpy(array)
    return Latents.from_rows("w+" if values.dim() == 3 else kind, values)


def load_truncation_mean(path: str | os.PathLike, generator: LatentGenerator) -> Tensor:
    """The mean W (w_dim,) of a ``.npy`` file holding (w_dim,) or (1, w_dim)."""
    expected = f"a mean W of shape ({generator.w_dim},) or (1, {generator.w_dim})"
    array = _read_array(path, "--truncation-mean", expected)
    if array.shape not in ((generator.w_dim,), (1, generator.w_dim)):
        raise GanslimError(f"--truncation-mean '{path}' holds an array of shape {array.shape}, but this generator "
                           f"takes {expected}")
    return torch.from_numpy(array).reshape(generator.w_dim)


def _read_array(path: str | os.PathLike, flag: str, expected: str) -> np.ndarray:
    """A finite float array from a ``.npy`` file, as float32; one line for anything else."""
    path = Path(path)
    if not path.is_file():
        raise GanslimError(f"{flag} '{path}' not found: pass a .npy file of {expected}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise GanslimError(f"{flag} '{path}' is not a readable .npy array ({first_line(error)}): save "
                           f"{expected} with numpy.save") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise GanslimError(f"{flag} '{path}' is an .npz archive of several arrays: save one array of {expected} "
                           f"with numpy.save")
    if not np.issubdtype(array.dtype, np.floating):
        raise GanslimError(f"{flag} '{path}' holds {array.dtype} values: it takes {expected} as floats")
    if not np.isfinite(array).all():
        raise GanslimError(f"{flag} '{path}' holds NaN or infinite values: it takes {expected}, all finite")
    return np.ascontiguousarray(array, dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------
# How to draw


@dataclass(frozen=True)
class Sampling:
    """How images are drawn: ``truncation_psi`` in [0, 1] (1: none) and the noise mode (``const``: the generator's
    stored noise images, ``random``: drawn from each image's stream, ``none``)."""

    truncation_psi: float = 1.0
    noise_mode: str = "const"

    def __post_init__(self) -> None:
        check_truncation(self.truncation_psi)
        if self.noise_mode not in NOISE_MODES:
            raise GanslimError(f"--noise-mode '{self.noise_mode}' is not one of {', '.join(NOISE_MODES)}")


def check_truncation(psi: float) -> None:
    """One line unless ``psi`` is a number in [0, 1]."""
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not 0 <= psi <= 1:
        raise GanslimError(f"--truncation {psi!r} is outside [0, 1]: 1 draws without truncation, smaller values pull "
                           f"W toward the mean W (0.7 is common)")


def latent_generator(model: nn.Module, what: str) -> LatentGenerator:
    """``model`` when it is a latent generator of the StyleGAN2 family (stylegan2, mobile_stylegan); one line for an
    image-to-image model (pointing to ``ganslim translate``) or another kind."""
    signature = signature_of(model)
    if signature.takes_image:
        raise GanslimError(f"{what} is an image-to-image model ({signature.describe()}), not a latent generator: "
                           f"run it on images with ganslim translate --ckpt CKPT --input DIR --output DIR")
    if not isinstance(model, LatentGenerator):
        raise GanslimError(f"{what} is a {type(model).__name__}: images are drawn from latent generators of the "
                           f"StyleGAN2 family only (stylegan2, mobile_stylegan)")
    return model


def prepare_truncation(generator: LatentGenerator, psi: float, mean: Tensor | None = None,
                       what: str = "the checkpoint") -> str | None:
    """Set the mean W that truncation by ``psi`` < 1 pulls toward and say where it came from: ``mean`` when given,
    else the generator's ``w_avg``, else :func:`~ganslim.archs.stylegan2.estimate_w_avg` from 10k z of seed 0
    (announced on stderr). None when ``psi`` is 1 (no mean is needed, none is estimated)."""
    check_truncation(psi)
    if psi == 1:
        if mean is not None:
            raise GanslimError("--truncation-mean is the mean W that --truncation pulls toward: pass --truncation "
                               "below 1 with it, or drop it")
        return None
    if mean is not None:
        generator.style.w_avg.copy_(mean)
        return "the mean W of --truncation-mean"
    if generator.style.has_w_avg:
        return f"the w_avg stored in {what}"
    estimate_w_avg(generator, n=W_AVG_SAMPLES, seed=W_AVG_SEED)
    source = f"a mean W estimated from {W_AVG_SAMPLES} mapped z of seed {W_AVG_SEED}"
    logger.warning("note: %s stores no mean W to truncate toward: using %s", what, source)
    return source


def stored_noise(generator: LatentGenerator) -> list[Tensor]:
    """The generator's stored noise images (1, 1, r, r), one per noise input, in order (its synthesis's buffers)."""
    return generator.synthesis.noises.constants()


def noise_sides(generator: LatentGenerator) -> list[int]:
    """The side r of each of the generator's (1, 1, r, r) noise inputs, in order."""
    return [int(constant.shape[-1]) for constant in stored_noise(generator)]


def synthesize(generator: LatentGenerator, latents: Latents, rows: Sequence[int], sampling: Sampling,
               device: torch.device | str = "cpu") -> Tensor:
    """Images (len(rows), C, R, R) of ``latents[rows]``, unclamped, on ``device`` (the generator's)."""
    sides = noise_sides(generator) if sampling.noise_mode == "random" else []
    needs_draws = latents.kind == "seeds" or bool(sides)
    drawn = [_draw(latents.streams[row], generator.z_dim, sides) for row in rows] if needs_draws else []
    noise: str | list[Tensor] = sampling.noise_mode
    if sides:
        noise = [torch.cat(layer).to(device) for layer in zip(*(noises for _, noises in drawn))]
    if latents.kind == "seeds":
        values = torch.cat([z for z, _ in drawn])
    else:
        values = latents.values[list(rows)]
    values = values.to(device)
    psi = sampling.truncation_psi
    if latents.kind in ("seeds", "z"):
        w_plus = generator.broadcast(generator.map(values, psi))
    elif latents.kind == "w":
        w_plus = generator.broadcast(generator.truncate(values, psi))
    else:
        w_plus = generator.truncate(values, psi)
    return generator.synthesis(w_plus, noise=noise)


def seed_w_plus(generator: LatentGenerator, seeds: Sequence[int]) -> Tensor:
    """W+ (len(seeds), num_ws, w_dim) of ``seeds``, on the generator's device: each seed's z, drawn as
    :func:`synthesize` draws it, mapped without truncation and broadcast to every layer."""
    z = torch.cat([_draw(seed, generator.z_dim, ())[0] for seed in seeds])
    return generator.broadcast(generator.map(z.to(generator.style.w_avg.device)))


def _draw(stream: int, z_dim: int, sides: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
    """z (1, z_dim) of the random stream ``stream`` and the noise images (1, 1, r, r) that follow it."""
    rng = torch.Generator().manual_seed(stream)
    z = torch.randn(1, z_dim, generator=rng)
    return z, [torch.randn(1, 1, side, side, generator=rng) for side in sides]


# ----------------------------------------------------------------------------------------------------------
# Writing


def parse_grid(text: str, count: int) -> tuple[int, int]:
    """(rows, columns) of a grid of ``count`` images: ``"auto"`` (about square: ceil(sqrt(count)) columns) or
    ``"ROWSxCOLS"``, which must hold them all."""
    if text == "auto":
        columns = math.ceil(math.sqrt(count))
        return math.ceil(count / columns), columns
    rows, x, columns = text.lower().partition("x")
    if not (x and rows.isdigit() and columns.isdigit() and int(rows) > 0 and int(columns) > 0):
        raise GanslimError(f"--grid '{text}' is not ROWSxCOLS (e.g. 4x8): pass that, or --grid alone for a square one")
    if int(rows) * int(columns) < count:
        raise GanslimError(f"--grid {text} holds {int(rows) * int(columns)} images, but {count} are drawn: pass a "
                           f"larger grid, or --grid alone to fit them")
    return int(rows), int(columns)


@dataclass
class Generated:
    """What :func:`generate_images` wrote: the PNGs (in order), ``images.npy`` and ``grid.png`` when asked, and
    where the truncation's mean W came from (None without truncation)."""

    images: list[Path]
    array: Path | None
    grid: Path | None
    w_avg_source: str | None


@torch.inference_mode()
def generate_images(
    generator: nn.Module,
    latents: Latents,
    output_dir: str | os.PathLike,
    sampling: Sampling = Sampling(),
    *,
    truncation_mean: Tensor | None = None,
    batch_size: int = 8,
    save_array: bool = False,
    grid: tuple[int, int] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    inputs: Sequence[str | os.PathLike] = (),
    what: str = "the checkpoint",
) -> Generated:
    """Draw one image per row of ``latents`` and write ``output_dir/<name>.png`` (:meth:`Latents.names`).

    Args:
        generator: a latent generator (StyleGAN2, mobile_stylegan; an image-to-image model is refused, pointing to
            ``ganslim translate``).
        sampling: truncation and noise mode; ``truncation_mean`` (w_dim,) overrides the mean W it pulls toward.
        save_array: also write ``images.npy``, (N, C, R, R) float32, the generator's output unclamped.
        grid: (rows, columns) of a ``grid.png`` of the images (:func:`parse_grid`), row by row.
        inputs: the files the command read (checkpoint, latents): an output landing on one is refused.
        what: names the generator in messages.

    Every check (output folder, overwriting an input) runs before anything is drawn; ``images.npy`` and each PNG
    are written atomically. Truncation sets the generator's ``w_avg`` (:func:`prepare_truncation`).
    """
    generator = latent_generator(generator, what).to(device).eval()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GanslimError(f"--batch-size {batch_size!r} must be a positive integer")
    if grid is not None and grid[0] * grid[1] < len(latents):
        raise GanslimError(f"a {grid[0]}x{grid[1]} grid cannot hold {len(latents)} images")
    folder = check_output_folder(output_dir, "--output")
    targets = [folder / f"{name}.png" for name in latents.names()]
    array_path = folder / ARRAY_FILE if save_array else None
    grid_path = folder / GRID_FILE if grid is not None else None
    _refuse_overwriting_inputs(targets + [p for p in (array_path, grid_path) if p is not None], inputs)
    source = prepare_truncation(generator, sampling.truncation_psi, truncation_mean, what)
    batches = _image_batches(generator, latents, sampling, batch_size, device, progress)
    writer = _Writer(targets, keep=grid is not None)
    if array_path is None:
        writer.write(batches)
    else:
        shape = (len(latents), generator.img_channels, generator.output_resolution, generator.output_resolution)
        atomic_write(array_path, lambda tmp: writer.write_with_array(batches, tmp, shape))
    if grid_path is not None:
        save_image(_grid(writer.kept, *grid), grid_path)
    if writer.non_finite:
        logger.warning("warning: the generator output NaN or infinite values for %d of %d image(s) (NaN pixels are "
                       "written black): the checkpoint may be damaged or its training diverged", writer.non_finite,
                       len(latents))
    return Generated(targets, array_path, grid_path, source)


def _image_batches(generator: LatentGenerator, latents: Latents, sampling: Sampling, batch_size: int,
                   device: torch.device | str, progress: bool) -> Iterator[tuple[range, Tensor]]:
    """(rows, images (B, C, R, R) float32 on the CPU) batch after batch, under a progress bar."""
    with tqdm(total=len(latents), desc="generate", unit="img", disable=not progress) as bar:
        for start in range(0, len(latents), batch_size):
            rows = range(start, min(start + batch_size, len(latents)))
            yield rows, synthesize(generator, latents, rows, sampling, device).float().cpu()
            bar.update(len(rows))


class _Writer:
    """Writes each image as its PNG (and into an ``.npy`` file), keeping the images for a grid when asked, and
    counts the images holding NaN or infinite values."""

    def __init__(self, targets: list[Path], keep: bool) -> None:
        self.targets = targets
        self.kept: list[Tensor] | None = [] if keep else None
        self.non_finite = 0

    def write(self, batches: Iterator[tuple[range, Tensor]], array: np.ndarray | None = None) -> None:
        for rows, images in batches:
            self.non_finite += int((~torch.isfinite(images)).flatten(1).any(1).sum())
            if array is not None:
                array[rows.start:rows.stop] = images.numpy()
            if self.kept is not None:
                self.kept.extend(images)
            for row, image in zip(rows, images):
                save_image(image, self.targets[row])

    def write_with_array(self, batches: Iterator[tuple[range, Tensor]], tmp: Path, shape: tuple[int, ...]) -> None:
        """:meth:`write`, filling the ``.npy`` file ``tmp`` ((N, C, R, R) float32) as the images come."""
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        try:
            self.write(batches, array)
        finally:
            array.flush()
            del array


def _grid(images: list[Tensor], rows: int, columns: int) -> Tensor:
    """(3, H', W') grid of ``images`` (C, R, R) laid out row by row, empty cells white."""
    blank = torch.ones_like(images[0])
    cells = images + [blank] * (rows * columns - len(images))
    return image_grid([torch.stack(cells[column::columns]) for column in range(columns)])


def _refuse_overwriting_inputs(targets: list[Path], inputs: Sequence[str | os.PathLike]) -> None:
    """One line when an output would land on a file the command reads (compared resolved: symlinks too)."""
    read = {Path(path).resolve(): Path(path) for path in inputs}
    for target in targets:
        if target.resolve() in read:
            raise GanslimError(f"writing '{target}' would overwrite the input '{read[target.resolve()]}': pass "
                               f"another --output folder")
