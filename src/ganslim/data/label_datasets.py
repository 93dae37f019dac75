"""Label-map -> image datasets (SPADE / GauGAN) in the layouts their data comes in.

Layouts (``split`` is train, val or test; :func:`detect_label_layout` tells them apart):

* ``cityscapes``: ``gtFine/<split>/<city>/*_labelIds.png`` and ``*_instanceIds.png``, photos
  ``leftImg8bit/<split>/<city>/*_leftImg8bit.png``, matched by their first three ``_`` fields (city, sequence, frame);
* ``ade20k``: ADEChallengeData2016's ``images/`` (``.jpg``) and ``annotations/`` (``.png``) anywhere under the root,
  the split read from the ``_train_`` / ``_val_`` in the names; no instance maps; label 0 is 'unknown' (dontcare);
* ``coco``: COCO-Stuff as SPADE prepares it: ``<split>_label/``, ``<split>_img/``, ``<split>_inst/``;
* ``folders``: ``[<split>/]labels/``, ``[<split>/]images/`` and optionally ``[<split>/]instances/`` (the split folder
  when it exists), matched by file stem; the built-in ``labels2scene`` data is in this layout.

Items: ``{"label_map": (channels, H, W) one-hot + edges, "image": (3, H, W) in [-1, 1], "label_path",
"image_path"}``, every file resized to ``size`` (nearest-neighbour for ids, bicubic for photos; NVlabs' 'fixed'
preprocessing) and, with ``flip``, mirrored together at random (seeded by seed, epoch and index).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ganslim.data.datasets import _SeededDataset
from ganslim.data.images import image_to_tensor, is_image_file, list_images, load_image
from ganslim.data.labels import LabelEncoding, encode_files
from ganslim.data.validate import image_sizes
from ganslim.errors import GanslimError

LABEL_LAYOUTS = ("cityscapes", "ade20k", "coco", "folders")
ADE20K_SPLITS = {"train": "_train_", "val": "_val_", "test": "_val_"}  # ADE20K publishes no test labels


@dataclass(frozen=True)
class LabelPair:
    """One scene: its label map, photo and instance map (None where the layout or the user has none)."""

    label: Path
    image: Path
    instance: Path | None


def detect_label_layout(root: str | os.PathLike) -> str:
    """The layout of the dataset folder ``root`` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise GanslimError(f"label-map dataset '{root}' not found: pass the dataset folder")
    if (root / "gtFine").is_dir() and (root / "leftImg8bit").is_dir():
        return "cityscapes"
    if any(root.glob("*_label")) and any(root.glob("*_img")):
        return "coco"
    if any((folder / "annotations").is_dir() and (folder / "images").is_dir() for folder in (root, *root.iterdir())):
        return "ade20k"  # ADEChallengeData2016, or the folder holding it
    if (root / "labels").is_dir() or any((root / split / "labels").is_dir() for split in ("train", "val", "test")):
        return "folders"
    raise GanslimError(f"'{root}' is in no label-map layout: expected gtFine/ + leftImg8bit/ (Cityscapes), "
                       f"<split>_label/ + <split>_img/ (COCO-Stuff), images/ + annotations/ (ADE20K) or labels/ + "
                       f"images/ [+ instances/]")


def find_label_pairs(root: str | os.PathLike, split: str, layout: str, instances: bool) -> list[LabelPair]:
    """The scenes of ``split`` in ``root`` (sorted by label path), with instance maps when ``instances``."""
    root = Path(root)
    if layout not in LABEL_LAYOUTS:
        raise GanslimError(f"unknown label-map layout '{layout}'; choose one of: {', '.join(LABEL_LAYOUTS)}")
    if layout == "cityscapes":
        labels = _files(root / "gtFine" / split, "_labelIds.png")
        photos = _files(root / "leftImg8bit" / split, "_leftImg8bit.png")
        masks = _files(root / "gtFine" / split, "_instanceIds.png") if instances else None
        key = _cityscapes_key
    elif layout == "ade20k":
        if instances:
            raise GanslimError("ADE20K has no instance maps: use a model without instance edges")
        names = [path for path in list_images(root) if ADE20K_SPLITS[split] in path.name]
        labels = [path for path in names if path.suffix.lower() == ".png"]
        photos = [path for path in names if path.suffix.lower() == ".jpg"]
        masks, key = None, _stem
    else:
        folder = root / split if layout == "folders" and (root / split).is_dir() else root
        kinds = ("labels", "images", "instances") if layout == "folders" else \
            (f"{split}_label", f"{split}_img", f"{split}_inst")
        labels, photos = list_images(folder / kinds[0]), list_images(folder / kinds[1])
        masks, key = (list_images(folder / kinds[2]) if instances else None), _stem
    return _match(labels, photos, masks, key, root)


def has_split(root: str | os.PathLike, split: str, layout: str) -> bool:
    """Whether ``root`` (a dataset of ``layout``) holds a ``split`` of its own; a ``folders`` dataset without split
    folders is one training split."""
    root = Path(root)
    if layout == "cityscapes":
        return (root / "gtFine" / split).is_dir()
    if layout == "coco":
        return (root / f"{split}_label").is_dir()
    if layout == "ade20k":
        return any(ADE20K_SPLITS[split] in path.name for path in list_images(root))
    return (root / split / "labels").is_dir()


def _files(folder: Path, suffix: str) -> list[Path]:
    return [path for path in list_images(folder) if path.name.endswith(suffix)]


def _stem(path: Path) -> str:
    return path.stem


def _cityscapes_key(path: Path) -> str:
    return "_".join(path.name.split("_")[:3])


def _match(labels: list[Path], photos: list[Path], masks: list[Path] | None, key, root: Path) -> list[LabelPair]:
    """Pair every label map with the photo (and instance map) of its key; one line names the first one missing."""
    if not labels:
        raise GanslimError(f"no label maps found in '{root}': check the folder and the layout")
    by_key = {kind: {key(path): path for path in paths} for kind, paths in (("photo", photos), ("instance map",
                                                                                               masks or []))}
    pairs = []
    for label in labels:
        photo, mask = by_key["photo"].get(key(label)), by_key["instance map"].get(key(label))
        missing = "photo" if photo is None else "instance map" if masks is not None and mask is None else None
        if missing:
            raise GanslimError(f"label map '{label}' has no {missing} (looked for '{key(label)}'): add it, or "
                               f"remove the label map")
        pairs.append(LabelPair(label, photo, mask))
    return pairs


class LabelMapDataset(_SeededDataset):
    """Label maps and their photos for a SPADE generator of ``encoding``, at ``size`` = (height, width)."""

    def __init__(self, root: str | os.PathLike, encoding: LabelEncoding, size: tuple[int, int],
                 split: str = "train", layout: str | None = None, flip: bool = True, seed: int = 0) -> None:
        super().__init__(seed)
        self.root, self.encoding, self.size, self.flip = Path(root), encoding, tuple(size), flip
        self.layout = layout or detect_label_layout(root)
        if self.layout == "ade20k" and not encoding.contain_dontcare_label:
            raise GanslimError("ADE20K's label 0 is 'unknown': use a model with a dontcare label "
                               "(contain_dontcare_label)")
        self.pairs = find_label_pairs(root, split, self.layout, encoding.instance_edges)
        # Every file decoded now (and remembered), so a corrupt one is one line before any work starts.
        image_sizes([path for pair in self.pairs for path in (pair.label, pair.image, pair.instance) if path])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        index = self._index(index)
        pair = self.pairs[index]
        height, width = self.size
        label_map = encode_files(self.encoding, pair.label, pair.instance, self.size, self.layout == "ade20k")
        photo = load_image(pair.image, channels=3).resize((width, height), resample=Image.BICUBIC)
        image = image_to_tensor(photo)
        if self.flip and self._rng(index).random() < 0.5:
            label_map, image = label_map.flip(-1), image.flip(-1)
        return {"label_map": label_map, "image": image, "label_path": str(pair.label), "image_path": str(pair.image)}


def label_files(folder: str | os.PathLike) -> list[Path]:
    """The label maps under ``folder`` for translation: every image file, or only the ``*_labelIds.png`` where
    there are any (a Cityscapes ``gtFine`` folder, which also holds colour and instance PNGs)."""
    files = list_images(folder) if Path(folder).is_dir() else [Path(folder)] if is_image_file(folder) else []
    cityscapes = [path for path in files if path.name.endswith("_labelIds.png")]
    return cityscapes or files


def instance_file(label: Path, label_root: Path, instance_root: Path) -> Path:
    """The instance map of ``label`` (found under the folder ``label_root``, or the file itself): the same relative
    path under the folder ``instance_root``, any image extension, Cityscapes' ``_labelIds`` read as ``_instanceIds``."""
    relative = label.relative_to(label_root) if label_root.is_dir() else Path(label.name)
    stem = relative.stem.replace("_labelIds", "_instanceIds")
    folder = instance_root / relative.parent
    found = sorted(path for path in folder.glob(f"{stem}.*") if is_image_file(path)) if folder.is_dir() else []
    if not found:
        raise GanslimError(f"label map '{label}' has no instance map '{folder / stem}.png' under --instance "
                           f"'{instance_root}': add it, or pass the folder the instance maps are in")
    return found[0]
