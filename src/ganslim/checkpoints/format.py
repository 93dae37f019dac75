"""The ganslim model checkpoint: a versioned plain dict (``.pt``/``.pth``) or safetensors + JSON metadata.

A model is rebuilt from ``arch`` + ``arch_kwargs`` through the registries and its weights loaded strictly;
nothing is ever unpickled (``torch.load(weights_only=True)``). Training state lives in separate files
(see ``ganslim.engine``), so a model checkpoint stays small and deployable.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ganslim.atomic import atomic_torch_save, atomic_write
from ganslim.errors import GanslimError, first_line
from ganslim.weights import read_weights_only

if TYPE_CHECKING:
    from ganslim.checkpoints.stylegan2 import StyleGAN2File

FORMAT_NAME = "ganslim"
FORMAT_VERSION = 1
KINDS = ("generator", "discriminator", "encoder")


@dataclass
class ModelCheckpoint:
    """A model description plus weights, as stored on disk."""

    kind: str
    arch: str
    arch_kwargs: dict
    state_dict: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)
    signature: dict | None = None  # what a generator takes and returns (ganslim.signature), from its header


def save_model(
    path: str | os.PathLike,
    model: nn.Module,
    arch: str,
    arch_kwargs: dict,
    kind: str = "generator",
    meta: dict | None = None,
) -> Path:
    """Write ``model``'s weights with the description needed to rebuild it (and a generator's signature, which
    loaders check against the rebuilt model); ``.safetensors`` or torch file."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    state_dict = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": kind, "arch": arch,
              "arch_kwargs": dict(arch_kwargs), "meta": dict(meta or {})}
    if hasattr(model, "signature"):
        header["signature"] = model.signature.to_dict()
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        # Serialised in memory first, so a full disk surfaces as the OSError that atomic_write reports.
        data = save(state_dict, metadata={key: json.dumps(value) for key, value in header.items()})
        return atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return atomic_torch_save({**header, "state_dict": state_dict}, path)


def read_checkpoint(path: str | os.PathLike, kind: str = "generator",
                    direction: str = "AtoB") -> ModelCheckpoint | dict[str, torch.Tensor] | StyleGAN2File:
    """Read a file: a ``ModelCheckpoint`` for ganslim files (for a run's training checkpoint, its network of
    ``kind`` and ``direction``), a ``StyleGAN2File`` for rosinality's StyleGAN2 checkpoints (``g_ema``, ``d``, ...),
    else the raw state dict it holds (for a BasicSR ``{"params_ema": ...}`` file, the weights inside)."""
    path = Path(path)
    if not path.is_file():
        raise GanslimError(f"checkpoint '{path}' not found: check the path")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    content = read_weights_only(path, "checkpoint", "pass a ganslim or reference state_dict file",
                                allowed=(argparse.Namespace,))
    if isinstance(content, dict) and content.get("format") == FORMAT_NAME:
        return _checkpoint_from_header(path, content, content.get("state_dict"))
    if isinstance(content, dict) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
        return content
    from ganslim.checkpoints.esrgan import unwrap_basicsr  # here: they import the architectures
    from ganslim.checkpoints.stylegan2 import unwrap_rosinality
    from ganslim.checkpoints.training import is_training_checkpoint, model_from_training

    if is_training_checkpoint(content):
        return model_from_training(path, content, kind, direction)

    if (weights := unwrap_basicsr(content, path)) is not None:
        return weights
    if (networks := unwrap_rosinality(content)) is not None:
        return networks
    raise GanslimError(f"'{path}' is neither a ganslim checkpoint nor a state_dict of tensors: "
                       "pass the generator's weights file (e.g. latest_net_G.pth)")


def _read_safetensors(path: Path) -> ModelCheckpoint | dict[str, torch.Tensor]:
    """A ganslim checkpoint when the metadata says ``format: "ganslim"``, else (e.g. ``{"format": "pt"}``, as most
    tools write) the plain state dict."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # noqa: BLE001
        raise GanslimError(f"cannot read '{path}' as safetensors ({first_line(error)}): check the file") from None
    if metadata.get("format") != json.dumps(FORMAT_NAME):
        return state_dict
    header = {}
    for key, value in metadata.items():
        try:
            header[key] = json.loads(value)
        except json.JSONDecodeError as error:
            raise GanslimError(f"checkpoint '{path}' has a damaged ganslim header ({key!r} is not JSON: "
                               f"{error.msg}): re-export it") from None
    return _checkpoint_from_header(path, header, state_dict)


def _checkpoint_from_header(path: Path, header: dict, state_dict: object) -> ModelCheckpoint:
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise GanslimError(f"checkpoint '{path}' has format_version {version!r}, not a version number: the file "
                           "is damaged or was not written by ganslim; re-export it")
    if version > FORMAT_VERSION:
        raise GanslimError(f"checkpoint '{path}' has format version {version}; this ganslim reads up to "
                           f"{FORMAT_VERSION}: upgrade ganslim")
    missing = [key for key in ("kind", "arch", "arch_kwargs") if key not in header]
    if missing or not isinstance(state_dict, dict):
        raise GanslimError(f"checkpoint '{path}' is damaged (missing {', '.join(missing) or 'weights'}): "
                           "re-export it")
    valid = {"kind": header["kind"] in KINDS, "arch": isinstance(header["arch"], str),
             "arch_kwargs": _is_keyword_dict(header["arch_kwargs"]), "meta": isinstance(header.get("meta") or {}, dict)}
    damaged = [key for key, fine in valid.items() if not fine]
    if damaged:
        key = damaged[0]
        raise GanslimError(f"checkpoint '{path}' is damaged ({key} is {repr(header[key])[:80]}): re-export it")
    return ModelCheckpoint(kind=header["kind"], arch=header["arch"], arch_kwargs=dict(header["arch_kwargs"]),
                           state_dict=state_dict, meta=dict(header.get("meta") or {}),
                           signature=header.get("signature"))


def _is_keyword_dict(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)
