"""Built-in demo datasets, generated offline and deterministically (the same PNG bytes on every run).

Image ``i`` of split ``s`` is drawn from ``numpy.random.default_rng([dataset_seed, s, i])``, so a build with
a smaller ``count`` is a prefix of a larger one. A dataset is built in a hidden folder next to ``out_dir``
and renamed into place when complete, so an interrupted build never looks like a finished dataset.

Layouts are the reference's: paired = ``train/ val/ test/`` of A|B images side by side; unpaired =
``trainA/ trainB/ testA/ testB/``; super-resolution (``sr``) = ``train/ val/ test/`` of HR images; label maps
(``labels``, for SPADE) = ``train/ val/ test/`` each of ``labels/`` (8-bit ids), ``instances/`` (16-bit ids) and
``images/`` (:mod:`ganslim.data.label_datasets`' ``folders`` layout).
Each split other than train holds ``count // 8`` images (at least 1). Unconditional data (``images``, for
latent-driven generators such as StyleGAN2) is one folder ``images/`` of ``count`` images, no splits.
"""

from __future__ import annotations

import colorsys
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from ganslim.errors import GanslimError
from ganslim.outputs import check_output_folder, make_folder, write_error
from ganslim.registry import Registry

DEFAULT_BUILTIN = "shapes2render"
DEFAULT_SIZE = 128
DEFAULT_COUNT = 400  # train images
SR_DEFAULT_COUNT = 64  # HR photo crops are larger files, and SR trains on random crops of them
INFO_FILE = "ganslim_dataset.json"
FORMAT_VERSION = 1

Builder = Callable[[Path, int, int], None]  # (folder, size, count) -> writes the splits into folder
PairMaker = Callable[[np.random.Generator, str], tuple[np.ndarray, np.ndarray]]  # (rng, split) -> (A, B)
BUILTIN_DATASETS: Registry[None] = Registry("built-in dataset")


@dataclass(frozen=True)
class _Spec:
    description: str
    layout: str  # "aligned", "unaligned", "sr" or "images"
    seed: int
    count: int = DEFAULT_COUNT
    size: int = DEFAULT_SIZE


_SPECS: dict[str, _Spec] = {}


def _builtin(name: str, description: str, layout: str, seed: int, count: int = DEFAULT_COUNT,
             size: int = DEFAULT_SIZE) -> Callable[[Builder], Builder]:
    """Register a builder under ``name`` with its one-line description (and its default train count and size)."""

    def decorator(builder: Builder) -> Builder:
        _SPECS[name] = _Spec(description, layout, seed, count, size)
        return BUILTIN_DATASETS.register(name)(builder)

    return decorator


def list_builtin() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in dataset, sorted by name."""
    return [(name, _SPECS[name].description) for name in BUILTIN_DATASETS.names()]


def make_builtin(
    name: str, out_dir: str | os.PathLike, size: int | None = None, count: int | None = None
) -> Path:
    """Generate built-in dataset ``name`` into ``out_dir`` (which must not exist or be empty).

    ``size``: image side in pixels (a multiple of 4, at least 32; default: the dataset's, 128 for most);
    ``count``: train images (default: the dataset's, 400 for most; val/test get ``count // 8``). Returns ``out_dir``.
    """
    build = BUILTIN_DATASETS.get(name)
    size = _SPECS[name].size if size is None else size
    count = _SPECS[name].count if count is None else count
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 4:
        raise GanslimError(f"size={size!r} is not supported: use a multiple of 4 of at least 32, e.g. 128")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise GanslimError(f"count={count!r} is not a positive integer: pass the number of train images")
    out = check_output_folder(Path(out_dir).absolute(), "dataset folder")  # absolute: a usable parent even for '.'
    if out.exists() and any(out.iterdir()):
        raise GanslimError(f"'{out}' already exists and is not empty: pass a new folder or delete it first")
    make_folder(out.parent)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        partial.mkdir()
        build(partial, size, count)
        spec = _SPECS[name]
        info = {"format_version": FORMAT_VERSION, "name": name, "layout": spec.layout, "size": size,
                "splits": {split.name: _split_count(split, spec.layout) for split in sorted(partial.iterdir())}}
        (partial / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    except OSError as error:  # full disk, read-only folder: nothing half-written stays
        raise write_error(out, error) from None
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return out


# ---------------------------------------------------------------- writing splits


def _split_count(split: Path, layout: str) -> int:
    """Items in a split folder: its files, or its label maps in the ``labels`` layout."""
    return len(list((split / "labels" if layout == "labels" else split).iterdir()))


def _eval_count(count: int) -> int:
    return max(1, count // 8)


def _rng(name: str, split: int, index: int) -> np.random.Generator:
    return np.random.default_rng([_SPECS[name].seed, split, index])


def _write_aligned(folder: Path, name: str, count: int, make_pair: PairMaker) -> None:
    """train/ val/ test/ of A|B PNGs; ``make_pair(rng, split) -> (A, B)`` as (H, W, 3) uint8 arrays."""
    _write_splits(folder, name, count, lambda rng, split: np.concatenate(make_pair(rng, split), axis=1))


def _write_splits(folder: Path, name: str, count: int,
                  make_image: Callable[[np.random.Generator, str], np.ndarray]) -> None:
    """train/ val/ test/ of PNGs; ``make_image(rng, split)`` -> (H, W, 3) uint8."""
    for split_id, (split, n) in enumerate((("train", count), ("val", _eval_count(count)),
                                           ("test", _eval_count(count)))):
        (folder / split).mkdir()
        for index in range(n):
            _save_png(make_image(_rng(name, split_id, index), split), folder / split / _file_name(index, n))


def _write_images(folder: Path, name: str, count: int, make_image: Callable[[np.random.Generator, int], np.ndarray]
                  ) -> None:
    """images/ of ``count`` PNGs; ``make_image(rng, index)`` -> (H, W, 3) uint8."""
    (folder / "images").mkdir()
    for index in range(count):
        _save_png(make_image(_rng(name, 0, index), index), folder / "images" / _file_name(index, count))


def _write_unaligned(folder: Path, name: str, count: int,
                     make_a: Callable[[np.random.Generator], np.ndarray],
                     make_b: Callable[[np.random.Generator], np.ndarray]) -> None:
    """trainA/ trainB/ testA/ testB/ PNGs; A and B come from disjoint random streams."""
    for split_id, (split, n) in enumerate((("train", count), ("test", _eval_count(count)))):
        for side_id, (side, make) in enumerate((("A", make_a), ("B", make_b))):
            (folder / f"{split}{side}").mkdir()
            for index in range(n):
                image = make(_rng(name, 2 * split_id + side_id, index))
                _save_png(image, folder / f"{split}{side}" / _file_name(index, n))


def _file_name(index: int, total: int) -> str:
    """Zero-padded so that sorting by name keeps generation order (0000.png, 0001.png, ...)."""
    return f"{index:0{max(4, len(str(total - 1)))}d}.png"


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG")


# ---------------------------------------------------------------- procedural shapes

SHAPE_KINDS = ("circle", "triangle", "square")
KIND_COLORS = {"circle": (220, 50, 40), "triangle": (40, 170, 60), "square": (40, 80, 220)}
WHITE = 255


@dataclass(frozen=True)
class _Shape:
    kind: str
    x: float
    y: float
    radius: float
    angle: float


def _random_shapes(rng: np.random.Generator, size: int, max_shapes: int = 4) -> list[_Shape]:
    """1..max_shapes shapes of random kind, size, position and rotation that do not touch each other."""
    wanted = int(rng.integers(1, max_shapes + 1))
    shapes: list[_Shape] = []
    for _ in range(40 * wanted):
        if len(shapes) == wanted:
            break
        radius = rng.uniform(0.12, 0.26) * size
        x, y = rng.uniform(radius + 2, size - radius - 2, size=2)
        if all(np.hypot(x - s.x, y - s.y) > radius + s.radius + 4 for s in shapes):
            shapes.append(_Shape(str(rng.choice(SHAPE_KINDS)), x, y, radius, rng.uniform(0, 2 * np.pi)))
    return shapes


def _label_map(shapes: list[_Shape], size: int) -> np.ndarray:
    """(size, size) uint8: 0 background, i + 1 inside shape i."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for label, shape in enumerate(shapes, start=1):
        if shape.kind == "circle":
            r = shape.radius
            draw.ellipse((shape.x - r, shape.y - r, shape.x + r, shape.y + r), fill=label)
        else:
            corners = 3 if shape.kind == "triangle" else 4
            angles = shape.angle + 2 * np.pi * np.arange(corners) / corners
            draw.polygon([(shape.x + shape.radius * np.cos(t), shape.y + shape.radius * np.sin(t))
                          for t in angles], fill=label)
    return np.asarray(canvas)


def _outlines(labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: black lines (2 px: both sides of every label boundary) on white."""
    edge = np.zeros(labels.shape, dtype=bool)
    horizontal = labels[:, 1:] != labels[:, :-1]
    vertical = labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    return np.repeat(np.where(edge, 0, WHITE).astype(np.uint8)[:, :, None], 3, axis=2)


def _shade(mask: np.ndarray) -> np.ndarray:
    """Per-pixel brightness in [0.35, 1] inside ``mask``: rises with distance to the shape's edge
    (normalised by the shape's largest inscribed radius), like a soft pillow lit from the front."""
    distance = ndimage.distance_transform_edt(mask)
    return 0.35 + 0.65 * np.sqrt(distance / max(distance.max(), 1.0))


def _render_shaded(labels: np.ndarray, shapes: list[_Shape]) -> np.ndarray:
    """(H, W, 3) uint8: shapes filled with their kind's color, shaded by geometry, on white."""
    image = np.full(labels.shape + (3,), float(WHITE))
    for label, shape in enumerate(shapes, start=1):
        mask = labels == label
        image[mask] = _shade(mask)[mask, None] * np.array(KIND_COLORS[shape.kind], dtype=float)
    return np.round(image).astype(np.uint8)


@_builtin("shapes2render", "paired: outlines of circles/triangles/squares -> shapes filled with their kind's "
          "color and shaded by distance to the edge (edges2shoes-like; the default demo)", "aligned", seed=1001)
def _shapes2render(folder: Path, size: int, count: int) -> None:
    def make_pair(rng: np.random.Generator, split: str) -> tuple[np.ndarray, np.ndarray]:
        shapes = _random_shapes(rng, size)
        labels = _label_map(shapes, size)
        return _outlines(labels), _render_shaded(labels, shapes)

    _write_aligned(folder, "shapes2render", count, make_pair)


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """A saturated, mid-bright RGB color as floats in [0, 255]."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.55, 0.9), rng.uniform(0.6, 0.95)
    return 255.0 * np.array(colorsys.hsv_to_rgb(hue, saturation, value))


def _paint_shapes(rng: np.random.Generator, size: int, striped: bool) -> np.ndarray:
    """(size, size, 3) uint8: random shapes on light gray, flat-colored or with random stripes."""
    shapes = _random_shapes(rng, size)
    labels = _label_map(shapes, size)
    image = np.full((size, size, 3), 235.0)
    rows, cols = np.mgrid[0:size, 0:size]
    for label in range(1, len(shapes) + 1):
        mask = labels == label
        color = _random_color(rng)
        if striped:
            angle, period = rng.uniform(0, np.pi), max(4.0, rng.uniform(5, 9) * size / 128)
            phase = (cols * np.cos(angle) + rows * np.sin(angle)) % period
            dark = (phase < period / 2)[mask]
            image[mask] = np.where(dark[:, None], 0.4 * color, color)
        else:
            image[mask] = color
    return np.round(image).astype(np.uint8)


@_builtin("flat2striped", "unpaired: shapes with flat colors (A) vs shapes with random stripes (B), "
          "disjoint random draws (CycleGAN-style)", "unaligned", seed=1003)
def _flat2striped(folder: Path, size: int, count: int) -> None:
    _write_unaligned(folder, "flat2striped", count,
                     lambda rng: _paint_shapes(rng, size, striped=False),
                     lambda rng: _paint_shapes(rng, size, striped=True))


# ---------------------------------------------------------------- real photos

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "stereo_motorcycle",
          "hubble_deep_field")
# Splits take disjoint regions of every photo, as (left, top, right, bottom) fractions, so val/test crops
# never overlap training crops.
PHOTO_REGIONS = {"train": (0.0, 0.0, 0.7, 1.0), "val": (0.7, 0.0, 1.0, 0.5), "test": (0.7, 0.5, 1.0, 1.0)}


def _load_photos() -> list[Image.Image]:
    """RGB photos bundled with scikit-image (no download)."""
    import skimage.data  # imported here: loading scikit-image is slow and only this dataset needs it

    photos = []
    for name in PHOTOS:
        array = getattr(skimage.data, name)()
        if isinstance(array, tuple):  # stereo_motorcycle -> (left, right, disparity)
            array = array[0]
        photos.append(Image.fromarray(array[:, :, :3]).convert("RGB"))
    return photos


def _degrade(image: Image.Image, size: int) -> Image.Image:
    """Grayscale, then Gaussian blur (radius 1.5 px at 128 px), kept as 3 equal channels."""
    return image.convert("L").filter(ImageFilter.GaussianBlur(1.5 * size / 128)).convert("RGB")


def _photo_region(photo: Image.Image, split: str) -> tuple[int, int, int, int]:
    """Pixel box (left, top, right, bottom) of ``photo`` that ``split`` may crop from."""
    width, height = photo.size
    left, top, right, bottom = PHOTO_REGIONS[split]
    return int(left * width), int(top * height), int(right * width), int(bottom * height)


@_builtin("degraded2photo", "paired: blurred grayscale -> clean color crops of scikit-image's bundled photos "
          "(restoration; splits use disjoint photo regions)", "aligned", seed=1002)
def _degraded2photo(folder: Path, size: int, count: int) -> None:
    photos = _load_photos()

    def make_pair(rng: np.random.Generator, split: str) -> tuple[np.ndarray, np.ndarray]:
        photo = photos[int(rng.integers(len(photos)))]
        left, top, right, bottom = _photo_region(photo, split)
        # Crops of 1-2x the output size (capped by the region), resized down to ``size``.
        side = int(min(right - left, bottom - top, rng.uniform(1.0, 2.0) * size))
        x = int(rng.integers(left, right - side + 1))
        y = int(rng.integers(top, bottom - side + 1))
        clean = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BICUBIC)
        if rng.random() > 0.5:
            clean = clean.transpose(Image.FLIP_LEFT_RIGHT)
        return np.asarray(_degrade(clean, size)), np.asarray(clean)

    _write_aligned(folder, "degraded2photo", count, make_pair)


@_builtin("photos2sr", "super-resolution: HR crops of scikit-image's bundled photos at their native resolution in "
          "train/ val/ test/ (LR is made on the fly; splits use disjoint photo regions)", "sr", seed=1004,
          count=SR_DEFAULT_COUNT)
def _photos2sr(folder: Path, size: int, count: int) -> None:
    photos = _load_photos()

    def make_hr(rng: np.random.Generator, split: str) -> np.ndarray:
        # Native pixels (no resizing), so LR made from them degrades real photo detail.
        regions = [_photo_region(photo, split) for photo in photos]
        fitting = [(photo, region) for photo, region in zip(photos, regions)
                   if min(region[2] - region[0], region[3] - region[1]) >= size]
        if not fitting:
            largest = max(min(right - left, bottom - top) for left, top, right, bottom in regions)
            raise GanslimError(f"size {size} is larger than every {split} region of the photos: photos2sr takes "
                               f"sizes up to {largest // 4 * 4}")
        photo, (left, top, right, bottom) = fitting[int(rng.integers(len(fitting)))]
        x = int(rng.integers(left, right - size + 1))
        y = int(rng.integers(top, bottom - size + 1))
        return np.asarray(photo.crop((x, y, x + size, y + size)))

    _write_splits(folder, "photos2sr", count, make_hr)


# ---------------------------------------------------------------- unconditional (StyleGAN2-style) data

UNCONDITIONAL_SIZE, UNCONDITIONAL_COUNT = 64, 1000


@_builtin("faces", "unconditional: the 200 LFW faces scikit-image bundles (25 px grayscale), bicubic-upscaled, "
          "zoomed, shifted and flipped at random, in images/", "images", seed=1005, count=UNCONDITIONAL_COUNT,
          size=UNCONDITIONAL_SIZE)
def _faces(folder: Path, size: int, count: int) -> None:
    import skimage.data  # imported here: loading scikit-image is slow and only the photo datasets need it

    faces = np.round(skimage.data.lfw_subset() * 255).astype(np.uint8)  # (200, 25, 25) in [0, 1]

    def make_image(rng: np.random.Generator, index: int) -> np.ndarray:
        # Face ``index % 200``: every face appears as often as any other; zoom up to 15 %, then a random crop.
        zoomed = round(size * rng.uniform(1.0, 1.15))
        face = Image.fromarray(faces[index % len(faces)]).resize((zoomed, zoomed), Image.BICUBIC)
        x, y = (int(offset) for offset in rng.integers(0, zoomed - size + 1, size=2))
        face = face.crop((x, y, x + size, y + size))
        if rng.random() < 0.5:
            face = face.transpose(Image.FLIP_LEFT_RIGHT)
        return np.asarray(face.convert("RGB"))

    _write_images(folder, "faces", count, make_image)


def _blobs_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: 2-5 soft, shaded ellipses of random colours on a two-colour linear gradient."""
    rows, cols = (np.mgrid[0:size, 0:size] + 0.5) / size
    angle = rng.uniform(0, 2 * np.pi)
    along = np.clip((cols - 0.5) * np.cos(angle) + (rows - 0.5) * np.sin(angle) + 0.5, 0, 1)[..., None]
    image = (1 - along) * _random_color(rng) + along * _random_color(rng)
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0.15, 0.85, size=2)
        rx, ry = rng.uniform(0.08, 0.25, size=2)
        tilt = rng.uniform(0, np.pi)
        dx, dy = cols - cx, rows - cy
        u, v = dx * np.cos(tilt) + dy * np.sin(tilt), -dx * np.sin(tilt) + dy * np.cos(tilt)
        distance = (u / rx) ** 2 + (v / ry) ** 2  # 1 on the ellipse's edge
        alpha = (1 / (1 + np.exp(np.minimum(12 * (distance - 1), 50))))[..., None]  # a soft edge, no overflow
        shade = (0.7 + 0.3 * np.clip(1 - distance, 0, 1))[..., None]  # brighter toward the centre
        image = (1 - alpha) * image + alpha * shade * _random_color(rng)
    return np.round(np.clip(image, 0, 255)).astype(np.uint8)


@_builtin("blobs", "unconditional: soft shaded ellipses of random colours on two-colour gradients (procedural), in "
          "images/", "images", seed=1006, count=UNCONDITIONAL_COUNT, size=UNCONDITIONAL_SIZE)
def _blobs(folder: Path, size: int, count: int) -> None:
    _write_images(folder, "blobs", count, lambda rng, index: _blobs_image(rng, size))


# ---------------------------------------------------------------- label maps -> scenes (SPADE)

SCENE_LABELS = ("sky", "grass", "water", "road", "tree", "building")  # ids 0..5
SCENE_COLORS = {"sky": (120, 170, 235), "grass": (70, 150, 60), "water": (40, 90, 170), "road": (110, 110, 115),
                "tree": (30, 90, 35), "building": (170, 120, 90)}
INSTANCE_STEP = 1000  # instance id = label * 1000 + object index, as Cityscapes' instanceIds


def _scene_labels(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, instances), (size, size) uint8 and uint16: sky above a wavy horizon of grass, a lake or a road
    across the ground, then buildings (rectangles) and trees (discs), each object its own instance."""
    rows, cols = np.mgrid[0:size, 0:size]
    horizon = size * rng.uniform(0.35, 0.55) + size * 0.04 * np.sin(cols / size * rng.uniform(3, 9) + rng.uniform(0, 6))
    labels = np.where(rows < horizon, 0, 1).astype(np.uint8)
    ground = labels == 1
    band = rng.uniform(0.6, 0.85) * size + size * 0.05 * np.sin(cols / size * 4 + rng.uniform(0, 6))
    labels[ground & (np.abs(rows - band) < size * rng.uniform(0.05, 0.12))] = 2 if rng.random() < 0.5 else 3
    instances = labels.astype(np.uint16) * INSTANCE_STEP
    for index in range(int(rng.integers(0, 3))):
        width, height = rng.uniform(0.1, 0.25, size=2) * size
        left, base = rng.uniform(0, size - width), float(np.interp(rng.uniform(0, size), cols[0], horizon[0]))
        box = (cols >= left) & (cols < left + width) & (rows >= base - height) & (rows < base + 2)
        labels[box], instances[box] = 5, 5 * INSTANCE_STEP + index + 1
    for index in range(int(rng.integers(1, 4))):
        radius = rng.uniform(0.05, 0.1) * size
        x = rng.uniform(radius, size - radius)
        y = float(np.interp(x, cols[0], horizon[0])) - radius * rng.uniform(0.3, 1.0)
        disc = (cols - x) ** 2 + (rows - y) ** 2 < radius**2
        labels[disc], instances[disc] = 4, 4 * INSTANCE_STEP + index + 1
    return labels, instances


def _render_scene(rng: np.random.Generator, labels: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: each label's texture (a sky gradient, grass noise, water ripples, road grain, shaded trees,
    buildings with windows), every instance darkened or lightened a little, so the edges matter."""
    size = labels.shape[0]
    rows, cols = np.mgrid[0:size, 0:size] / size
    noise = rng.normal(0, 1, labels.shape)
    shades = {
        "sky": 1.15 - 0.4 * rows,
        "grass": 0.9 + 0.12 * noise,
        "water": 0.9 + 0.15 * np.sin(rows * 90 + 0.5 * np.sin(cols * 25)),
        "road": 0.95 + 0.05 * noise,
        "tree": 0.8 + 0.2 * np.cos(cols * 60) * np.cos(rows * 60),
        "building": np.where((np.sin(cols * 80) > 0.3) & (np.sin(rows * 80) > 0.3), 0.55, 1.0),
    }
    image = np.zeros(labels.shape + (3,))
    for label, name in enumerate(SCENE_LABELS):
        mask = labels == label
        image[mask] = shades[name][mask, None] * np.array(SCENE_COLORS[name], dtype=float)
    for instance in np.unique(instances[instances % INSTANCE_STEP > 0]):
        image[instances == instance] *= rng.uniform(0.8, 1.2)
    return np.round(np.clip(image, 0, 255)).astype(np.uint8)


@_builtin("labels2scene", f"label maps: procedural scenes of {len(SCENE_LABELS)} labels ({', '.join(SCENE_LABELS)}) "
          "with 16-bit instance maps -> their textured renderings, in train/ val/ test/ of labels/ instances/ "
          "images/ (SPADE)", "labels", seed=1007)
def _labels2scene(folder: Path, size: int, count: int) -> None:
    for split_id, (split, n) in enumerate((("train", count), ("val", _eval_count(count)),
                                           ("test", _eval_count(count)))):
        for kind in ("labels", "instances", "images"):
            (folder / split / kind).mkdir(parents=True)
        for index in range(n):
            rng = _rng("labels2scene", split_id, index)
            labels, instances = _scene_labels(rng, size)
            name = _file_name(index, n)
            _save_png(labels, folder / split / "labels" / name)
            _save_png(instances, folder / split / "instances" / name)
            _save_png(_render_scene(rng, labels, instances), folder / split / "images" / name)
