"""Label maps as SPADE takes them: files of label ids (and instance ids) -> one-hot label maps with instance edges.

A label map file is a one-channel PNG of label ids (8-bit grayscale or palette); id 255 is the dontcare label,
which becomes label ``label_nc`` (NVlabs' ``label[label == 255] = label_nc``). An instance map is a one-channel PNG
(16-bit for Cityscapes' ``instanceIds``, or 8-bit) whose ids only matter by being equal or not. Both are resized
with nearest-neighbour to the model's (height, width).

The model input (:meth:`LabelEncoding.encode`) is SPADE's ``preprocess_input``: the one-hot of the ids over label_nc
(+ 1 with a dontcare label) channels, then, with instance edges, one channel that is 1 where a pixel's instance id
differs from a horizontal or vertical neighbour's (both pixels of such a pair), as its ``get_edges``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from ganslim.errors import GanslimError

DONTCARE_ID = 255
_ONE_CHANNEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")


@dataclass(frozen=True)
class LabelEncoding:
    """How label ids become a SPADE generator's input channels (its ``label_nc``, ``contain_dontcare_label``,
    ``instance_edges``)."""

    label_nc: int
    contain_dontcare_label: bool
    instance_edges: bool

    @classmethod
    def of(cls, model: nn.Module) -> LabelEncoding:
        """The encoding a label-map generator (``spade``) declares."""
        try:
            return cls(model.label_nc, model.contain_dontcare_label, model.instance_edges)
        except AttributeError:
            raise GanslimError(f"{type(model).__name__} declares no label encoding (label_nc, "
                               f"contain_dontcare_label, instance_edges): pass a SPADE generator") from None

    @property
    def label_channels(self) -> int:
        """One-hot channels: the labels, and the dontcare label if there is one."""
        return self.label_nc + int(self.contain_dontcare_label)

    @property
    def channels(self) -> int:
        """All input channels (SPADE's ``semantic_nc``)."""
        return self.label_channels + int(self.instance_edges)

    def encode(self, labels: torch.Tensor, instances: torch.Tensor | None = None, what: str = "the label map"
               ) -> torch.Tensor:
        """(N, H, W) integer label ids (dontcare already mapped to ``label_nc``) and, with instance edges, (N, H, W)
        instance ids -> (N, channels, H, W) float32."""
        if labels.dim() != 3:
            raise ValueError(f"labels must be (N, H, W), got shape {tuple(labels.shape)}")
        top = int(labels.max()) if labels.numel() else 0
        if int(labels.min()) < 0 or top >= self.label_channels:
            raise GanslimError(f"{what} holds label id {top if top >= self.label_channels else int(labels.min())}, "
                               f"but the model takes ids 0..{self.label_channels - 1}"
                               f"{' (255: dontcare)' if self.contain_dontcare_label else ''}: pass label maps of "
                               f"the model's {self.label_nc} labels")
        one_hot = torch.zeros(labels.shape[0], self.label_channels, *labels.shape[1:])
        one_hot.scatter_(1, labels.long().unsqueeze(1), 1.0)
        if not self.instance_edges:
            return one_hot
        if instances is None:
            raise GanslimError(f"the model takes instance edges, but {what} has no instance map: pass the instance "
                               f"maps (--instance FOLDER), named as the label maps")
        if instances.shape != labels.shape:
            raise GanslimError(f"{what}: its instance map is {tuple(instances.shape[1:])}, the label map "
                               f"{tuple(labels.shape[1:])}: pass the instance map of the same scene")
        return torch.cat([one_hot, instance_edges(instances)], dim=1)


def label_colors(label_map: torch.Tensor, encoding: LabelEncoding) -> torch.Tensor:
    """A model input (N, channels, H, W) -> (N, 3, H, W) in [-1, 1] for sample grids: one fixed colour per label (the
    argmax of the one-hot channels), white on the instance edges."""
    palette = torch.rand(encoding.label_channels, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = label_map[:, :encoding.label_channels].argmax(1)
    colors = palette.to(label_map.device)[labels].permute(0, 3, 1, 2)
    if encoding.instance_edges:
        colors = torch.where(label_map[:, -1:] > 0, torch.ones_like(colors), colors)
    return colors


def instance_edges(instances: torch.Tensor) -> torch.Tensor:
    """(N, H, W) instance ids -> (N, 1, H, W) float32: 1 on both pixels of every horizontally or vertically
    adjacent pair with different ids, else 0 (SPADE's ``get_edges``)."""
    edge = torch.zeros(instances.shape, dtype=torch.bool)
    horizontal = instances[:, :, 1:] != instances[:, :, :-1]
    vertical = instances[:, 1:, :] != instances[:, :-1, :]
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    return edge.float().unsqueeze(1)


def read_id_map(path: str | os.PathLike, size: tuple[int, int] | None, what: str) -> np.ndarray:
    """A one-channel PNG of ids as an (H, W) int64 array, resized (nearest-neighbour) to ``size`` = (height, width)
    unless None; ``what`` names the file's role in messages ("label map", "instance map")."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in _ONE_CHANNEL_MODES:
                raise GanslimError(f"{what} '{path}' is a {image.mode} image: a {what} holds one id per pixel "
                                   f"(a grayscale, palette or 16-bit PNG), not colours")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), resample=Image.NEAREST)
            return np.asarray(image).astype(np.int64)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise GanslimError(f"cannot read {what} '{path}' ({type(error).__name__}): replace or delete the corrupt "
                           f"file") from None


def read_labels(path: str | os.PathLike, size: tuple[int, int] | None, shift_ade20k: bool = False) -> torch.Tensor:
    """A label map file as (H, W) int64 label ids, the dontcare id still 255 (:func:`dontcare_to_label` maps it).
    ``shift_ade20k``: ADE20K stores 0 for 'unknown' and labels as 1..150, so ids move down by one and 0 becomes the
    dontcare id, as NVlabs' ADE20K loader does."""
    ids = read_id_map(path, size, "label map")
    if shift_ade20k:
        ids = np.where(ids == 0, DONTCARE_ID, ids - 1)
    return torch.from_numpy(ids)


def dontcare_to_label(labels: torch.Tensor, encoding: LabelEncoding) -> torch.Tensor:
    """``labels`` with the dontcare id 255 replaced by ``label_nc``, where the one-hot keeps its channel."""
    return torch.where(labels == DONTCARE_ID, encoding.label_nc, labels)


def encode_files(encoding: LabelEncoding, label_path: Path, instance_path: Path | None, size: tuple[int, int],
                 shift_ade20k: bool = False) -> torch.Tensor:
    """One label map file (and its instance map) -> the (channels, H, W) model input at ``size`` = (height, width)."""
    labels = dontcare_to_label(read_labels(label_path, size, shift_ade20k), encoding)
    instances = None
    if encoding.instance_edges and instance_path is not None:
        instances = torch.from_numpy(read_id_map(instance_path, size, "instance map"))[None]
    return encoding.encode(labels[None], instances, f"label map '{label_path}'")[0]
