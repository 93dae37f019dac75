"""Edit directions in a StyleGAN2 generator's W space: found without labels (SeFa) or fitted to labels (linear
boundaries), saved as one small safetensors file, and applied to W+.

* **SeFa** (Shen & Zhou, CVPR 2021), closed form, no classifier: every modulated conv maps W to its input-channel
  styles through an affine ``A_l`` (C_l, w_dim); moving W along ``d`` changes those styles by ``A_l d``, most for the
  top eigenvectors of ``AᵀA``, ``A`` the rows of the chosen layers' ``A_l`` stacked, each row scaled to unit norm (as
  genforce/sefa does). The layers: the StyledConvs whose style is one of the W+ entries an edit moves
  (:func:`edited_layers`, Anycost's first 12 of 18), to-RGB layers left out as SeFa leaves them out.
* **Labels** (InterFaceGAN, the boundaries Anycost's demo ships): per attribute, a linear SVM separating the W of
  samples labelled with the larger of the attribute's two values from the others; the direction is the unit normal of
  its boundary, pointing to the larger value. :func:`fit_boundaries` takes the W's, so they may come from seeds
  (:func:`read_label_table`, ``seed,attr1,...``) or from real images inverted to W+ (:func:`image_boundaries`, a
  folder per attribute value, ``smile/0``, ``smile/1``).

The file (:func:`save_directions`) holds the tensor ``directions`` (K, w_dim) float32 and the metadata ``names`` (a
JSON list of K names), ``method`` (``sefa``, ``labels`` or ``images``) and ``generator`` (JSON: the generator's signature,
``w_dim`` and ``num_ws``), which :func:`load_directions` checks against the generator it is used with.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ganslim.archs.stylegan2 import LatentGenerator, StyleGAN2Generator
from ganslim.atomic import atomic_write
from ganslim.errors import GanslimError, first_line

METHODS = ("sefa", "labels", "images")
DIRECTIONS_KEY = "directions"
EDITED_FRACTION = 2 / 3  # Anycost's demo edits the first 12 of 18 W+ entries: coarse and middle styles, not colour
SVM_C = 1.0


def edited_layers(num_ws: int) -> int:
    """How many leading W+ entries an edit moves: two thirds of ``num_ws``, rounded (12 of 18 at 1024 px)."""
    return max(1, round(num_ws * EDITED_FRACTION))


# ----------------------------------------------------------------------------------------------------------
# Finding directions


def sefa_directions(generator: StyleGAN2Generator, count: int) -> Tensor:
    """The ``count`` SeFa directions (count, w_dim) float32 of ``generator`` (see the module docstring): orthonormal
    rows, by descending eigenvalue, each signed so that its largest-magnitude entry is positive (the same rows every
    run)."""
    if not isinstance(generator, StyleGAN2Generator):
        raise GanslimError(f"SeFa factorises a stylegan2 generator's modulation weights; this is a "
                           f"{type(generator).__name__}: fit directions from labels (--method labels) instead")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= generator.w_dim:
        raise GanslimError(f"--count {count!r} must be a number of directions from 1 to w_dim ({generator.w_dim})")
    convs = [generator.conv1, *generator.convs][:edited_layers(generator.num_ws)]
    with torch.no_grad():
        affine = torch.cat([conv.conv.modulation.weight for conv in convs]).double()  # (sum C_l, w_dim)
        affine = affine / affine.norm(dim=1, keepdim=True)
        eigenvalues, eigenvectors = torch.linalg.eigh(affine.T @ affine)  # ascending
    top = eigenvectors[:, eigenvalues.argsort(descending=True)[:count]].T
    return _signed(top).float()


def sefa_names(count: int) -> list[str]:
    """The names of ``count`` SeFa directions: ``sefa_0`` (the largest eigenvalue's), ``sefa_1``, ..."""
    return [f"sefa_{index}" for index in range(count)]


def fit_boundaries(w: Tensor, labels: Tensor, names: Sequence[str]) -> Tensor:
    """Unit normals (A, w_dim) float32 of linear boundaries fitted to W (N, w_dim) and ``labels`` (N, A): per
    attribute, a linear SVM separating the samples with that column's larger value from those with its smaller one
    (each column holds exactly two values); the normal points to the larger value."""
    from sklearn.svm import LinearSVC

    if w.dim() != 2 or labels.dim() != 2 or labels.shape != (w.shape[0], len(names)):
        raise GanslimError(f"labels {tuple(labels.shape)} do not pair with W {tuple(w.shape)} and {len(names)} "
                           f"attribute name(s): one row per W, one column per attribute")
    features = w.double().numpy()
    normals = []
    for name, column in zip(names, labels.double().numpy().T):
        values = np.unique(column)
        if len(values) != 2:
            raise GanslimError(f"attribute '{name}' has {len(values)} distinct value(s) "
                               f"({', '.join(f'{v:g}' for v in values[:5])}): label each sample with one of two "
                               f"values (e.g. 0 and 1)")
        svm = LinearSVC(C=SVM_C, random_state=0, max_iter=10_000)
        with warnings.catch_warnings():  # a boundary that has not fully converged still points the right way
            warnings.simplefilter("ignore")
            svm.fit(features, column == values[1])
        normal = torch.from_numpy(svm.coef_[0])
        normals.append(normal / normal.norm())
    return torch.stack(normals).float()


def _signed(rows: Tensor) -> Tensor:
    """``rows`` (K, D), each multiplied by the sign of its largest-magnitude entry."""
    largest = rows.gather(1, rows.abs().argmax(dim=1, keepdim=True))
    return rows * torch.sign(largest)


# ----------------------------------------------------------------------------------------------------------
# Labels of generated samples


@dataclass(frozen=True)
class LabelTable:
    """A CSV of labels for generated samples: each row's ``seed``, the attribute ``names`` and ``values`` (N, A)."""

    seeds: tuple[int, ...]
    names: tuple[str, ...]
    values: Tensor


def read_label_table(path: str | os.PathLike) -> LabelTable:
    """``seed,attr1,...`` with a header row and one row per generated sample (its seed as ``ganslim generate
    --seeds`` draws it, then a number per attribute); one line naming the row for anything else."""
    path = Path(path)
    fix = "write a header seed,attr1,... then one row per sample: its seed and a number per attribute"
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = [row for row in csv.reader(file) if row]
    except FileNotFoundError:
        raise GanslimError(f"--samples '{path}' not found: {fix}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise GanslimError(f"--samples '{path}' cannot be read as CSV ({first_line(error)}): {fix}") from None
    if not rows or rows[0][0].strip().lower() != "seed" or len(rows[0]) < 2:
        raise GanslimError(f"--samples '{path}' does not start with a header seed,attr1,...: {fix}")
    names = tuple(name.strip() for name in rows[0][1:])
    if len(rows) < 3:
        raise GanslimError(f"--samples '{path}' has {len(rows) - 1} sample row(s); a boundary needs at least 2")
    seeds, values, seen = [], [], set()
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(names) + 1:
            raise GanslimError(f"--samples '{path}' line {line} has {len(row)} fields; the header has "
                               f"{len(names) + 1}")
        seed = row[0].strip()
        if not (seed.isascii() and seed.isdigit()) or seed in seen:
            raise GanslimError(f"--samples '{path}' line {line}: seed '{seed}' is not a whole number not used before")
        seen.add(seed)
        try:
            values.append([float(field) for field in row[1:]])
        except ValueError:
            raise GanslimError(f"--samples '{path}' line {line} holds a label that is not a number: {fix}") from None
        seeds.append(int(seed))
    table = torch.tensor(values, dtype=torch.float64)
    if not torch.isfinite(table).all():
        raise GanslimError(f"--samples '{path}' holds NaN or infinite labels: {fix}")
    return LabelTable(tuple(seeds), names, table)


# ----------------------------------------------------------------------------------------------------------
# Folders of real images per attribute value


@dataclass(frozen=True)
class AttributeFolders:
    """``root/ATTRIBUTE/VALUE/`` folders of images: the attribute ``names`` and, per attribute, its two value
    folders, the larger value second (numbers by value, other names alphabetically)."""

    names: tuple[str, ...]
    folders: tuple[tuple[Path, Path], ...]


def read_attribute_folders(root: str | os.PathLike) -> AttributeFolders:
    """The attribute folders under ``root``; one line naming the folder that does not fit the layout."""
    root = Path(root)
    layout = "one folder per attribute, each holding two folders of images, one per value (e.g. smile/0, smile/1)"
    if not root.is_dir():
        raise GanslimError(f"--images '{root}' is not a folder: pass a folder holding {layout}")
    attributes = sorted(path for path in root.iterdir() if path.is_dir())
    if not attributes:
        raise GanslimError(f"--images '{root}' holds no folders: it should hold {layout}")
    pairs = []
    for attribute in attributes:
        values = sorted((path for path in attribute.iterdir() if path.is_dir()), key=_value_order)
        if len(values) != 2:
            listing = ", ".join(path.name for path in values) or "none"
            raise GanslimError(f"'{attribute}' holds {len(values)} value folder(s) ({listing}): an attribute needs "
                               f"exactly two, one per value (e.g. 0 and 1)")
        pairs.append((values[0], values[1]))
    return AttributeFolders(tuple(path.name for path in attributes), tuple(pairs))


def _value_order(path: Path) -> tuple[int, float, str]:
    """Numbers first, by value; then other names alphabetically."""
    try:
        return 0, float(path.name), path.name
    except ValueError:
        return 1, 0.0, path.name


def image_boundaries(generator: StyleGAN2Generator, attributes: AttributeFolders,
                     invert: Callable[[Tensor], Tensor], progress: bool = True) -> tuple[Tensor, int]:
    """(unit normals (A, w_dim), the number of images inverted): per attribute, the boundary (:func:`fit_boundaries`) between the W of its two value
    folders' images, each image centre-cropped and resized to the generator's side, inverted to W+ by ``invert``
    ((1, 3, R, R) -> (1, num_ws, w_dim)), and its W the mean of the W+ entries an edit moves."""
    from ganslim.data import ImageFolderDataset

    edited = edited_layers(generator.num_ws)
    normals, count = [], 0
    for name, folders in zip(attributes.names, attributes.folders):
        ws, labels = [], []
        for label, folder in enumerate(folders):
            images = ImageFolderDataset(folder, generator.img_resolution, resize=True, flip=False)
            for index in tqdm(range(len(images)), desc=f"{name}/{folder.name}", unit="img", disable=not progress):
                ws.append(invert(images[index]["image"][None]).detach()[0, :edited].mean(dim=0))
                labels.append(float(label))
        normals.append(fit_boundaries(torch.stack(ws).cpu(), torch.tensor(labels)[:, None], [name])[0])
        count += len(ws)
    return torch.stack(normals), count


# ----------------------------------------------------------------------------------------------------------
# The file


def generator_identity(generator: LatentGenerator) -> dict:
    """What a directions file records of its generator: the full generator's signature, ``w_dim`` and ``num_ws``."""
    signature = generator.signature.to_dict()
    signature["output"]["resolution"] = generator.img_resolution  # the full side, whatever sub-generator runs now
    return {"signature": signature, "w_dim": generator.w_dim, "num_ws": generator.num_ws}


def save_directions(path: str | os.PathLike, names: Sequence[str], directions: Tensor, method: str,
                    generator: LatentGenerator) -> Path:
    """Write ``directions`` (K, w_dim) named ``names`` (K distinct) as one safetensors file (module docstring),
    atomically."""
    from safetensors.torch import save

    names = list(names)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if directions.dim() != 2 or directions.shape != (len(names), generator.w_dim):
        raise ValueError(f"directions {tuple(directions.shape)} do not match {len(names)} names and w_dim "
                         f"{generator.w_dim}")
    if len(set(names)) != len(names):
        raise GanslimError(f"direction names {names} repeat a name: each direction needs its own")
    metadata = {"names": json.dumps(names), "method": method, "generator": json.dumps(generator_identity(generator))}
    data = save({DIRECTIONS_KEY: directions.detach().float().cpu().contiguous()}, metadata=metadata)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def load_directions(path: str | os.PathLike, generator: LatentGenerator | None = None) -> tuple[list[str], Tensor]:
    """The names and directions (K, w_dim) float32 of a file :func:`save_directions` wrote; with ``generator``, one
    line unless the file was made for a generator of its signature, ``w_dim`` and ``num_ws``."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    fix = "make one with ganslim directions --generator CKPT --output FILE.safetensors"
    if not path.is_file():
        raise GanslimError(f"directions file '{path}' not found: {fix}")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            directions = file.get_tensor(DIRECTIONS_KEY) if DIRECTIONS_KEY in file.keys() else None
    except (SafetensorError, OSError, ValueError) as error:
        raise GanslimError(f"directions file '{path}' is not a readable safetensors file ({first_line(error)}): "
                           f"{fix}") from None
    try:
        names = json.loads(metadata["names"])
        identity = json.loads(metadata["generator"])
    except (KeyError, json.JSONDecodeError):
        raise GanslimError(f"directions file '{path}' lacks the names or generator of its directions: {fix}") from None
    if metadata.get("method") not in METHODS:
        raise GanslimError(f"directions file '{path}' names no method ({', '.join(METHODS)}): {fix}")
    if directions is None or directions.dim() != 2 or not isinstance(names, list) or len(names) != len(directions):
        raise GanslimError(f"directions file '{path}' holds no (K, w_dim) tensor '{DIRECTIONS_KEY}' matching its "
                           f"{len(names) if isinstance(names, list) else 'unlisted'} names: {fix}")
    if generator is not None and identity != json.loads(json.dumps(generator_identity(generator))):
        raise GanslimError(f"directions file '{path}' was made for another generator (W of {identity.get('w_dim')} "
                           f"dims, {identity.get('num_ws')} W+ entries; this one: {generator.w_dim}, "
                           f"{generator.num_ws}, or another signature): {fix} for this generator")
    return [str(name) for name in names], directions.float()


# ----------------------------------------------------------------------------------------------------------
# Editing


def apply_edit(w_plus: Tensor, directions: Tensor, strengths: Tensor) -> Tensor:
    """W+ (N, num_ws, w_dim) moved by ``strengths`` (K,) times ``directions`` (K, w_dim) on its first
    :func:`edited_layers` entries; a new tensor."""
    if directions.dim() != 2 or strengths.shape != (directions.shape[0],) or w_plus.shape[-1] != directions.shape[1]:
        raise ValueError(f"cannot edit W+ {tuple(w_plus.shape)} by {tuple(strengths.shape)} strengths of directions "
                         f"{tuple(directions.shape)}")
    edited = w_plus.clone()
    edited[:, :edited_layers(w_plus.shape[1])] += strengths.to(w_plus) @ directions.to(w_plus)
    return edited
