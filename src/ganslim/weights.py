"""Pretrained weights files that ganslim reads but never downloads (FID Inception, VGG16): where to look for
one, and how to load it strictly with one-line errors. :func:`read_weights_only` is the one ``torch.load`` of
the checkpoint readers too.

A file is looked for in this order, and the first source that is set is used: the caller's argument, then the
path in an environment variable (when set and non-empty), then a default path (in ``~/.cache/ganslim``). A path
the user set that is not a file is an error, never a fall-through to the next source.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ganslim.errors import GanslimError, first_line

__all__ = ["WeightsFile", "cache_path", "describe_mismatch", "find_weights_file", "load_state_dict_strict",
           "read_weights_only", "weights_source"]

# What torch names in a refused pickle: "... Unsupported global: GLOBAL __main__.Payload was not an allowed ...".
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


@dataclass(frozen=True)
class WeightsFile:
    """A published weights file and the words the error messages use for it.

    Attributes:
        label: the network, as in "Inception weights not found at ...".
        filename: the file's published name, e.g. ``vgg16-397923af.pth``.
        url: where to download it.
        env_var: the environment variable that may hold its path.
        wanted: the file as "point it at ..." names it, e.g. "torchvision's vgg16-397923af.pth".
        title: the file as "PATH is not ..." names it, e.g. "torchvision's VGG16 weights file vgg16-397923af.pth".
    """

    label: str
    filename: str
    url: str
    env_var: str
    wanted: str
    title: str


def cache_path(filename: str) -> Path:
    """``~/.cache/ganslim/FILENAME``, the last place a weights file is looked for."""
    return Path.home() / ".cache" / "ganslim" / filename


def weights_source(argument: str | os.PathLike | None, env_var: str, default_path: Path,
                   argument_name: str = "the weights argument") -> tuple[Path, str | None]:
    """``(path, who set it)`` in lookup order: ``argument``, then ``$env_var``, then ``default_path`` (who: ``None``).

    The path is not checked; ``argument_name`` is how messages call the argument (e.g. ``--inception-weights``).
    """
    if argument is not None:
        return Path(argument).expanduser(), argument_name
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser(), f"${env_var}"
    return default_path, None


def find_weights_file(argument: str | os.PathLike | None, weights: WeightsFile, default_path: Path) -> Path | None:
    """The file to load, or ``None`` when nobody set a path and ``default_path`` does not exist.

    Raises:
        GanslimError: ``argument`` or ``$weights.env_var`` names a path that is not a file.
    """
    path, source = weights_source(argument, weights.env_var, default_path)
    if path.is_file():
        return path
    if source is None:
        return None
    raise GanslimError(f"{weights.label} weights not found at {path} (from {source}); point it at {weights.wanted} "
                       f"(from {weights.url})")


def read_weights_only(path: str | os.PathLike, what: str, fix: str, allowed: Sequence[type] = ()) -> object:
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors and plain containers, never code.

    ``allowed``: inert classes admitted by name as well (e.g. ``argparse.Namespace``, which rosinality's
    StyleGAN2 checkpoints hold); their instances are rebuilt from attributes, never by running the file's code.

    Raises:
        GanslimError: one line "cannot read WHAT 'PATH' as weights-only PyTorch data (why): FIX" for a missing,
            truncated or foreign file, or one holding other pickled objects (never torch's hint to unpickle it).
    """
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for foreign or truncated files
        raise GanslimError(f"cannot read {what} '{path}' as weights-only PyTorch data ({_load_failure(error)}): "
                           f"{fix}") from None


def _load_failure(error: Exception) -> str:
    """Why ``torch.load`` failed, in a few words; a refused pickle is named without torch's advice to trust it."""
    text = str(error)
    if "weights_only" in text or "Weights only" in text:
        found = _REFUSED_GLOBAL.search(text)
        return f"it holds pickled Python objects{f' ({found.group(1)})' if found else ''}, which are never unpickled"
    return first_line(error, limit=160)


def describe_mismatch(state: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> str | None:
    """How the keys and shapes of ``state`` differ from ``expected`` (count and first of each kind), or ``None``."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first '{missing[0]}')")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first '{unexpected[0]}')")
    if reshaped:
        k = reshaped[0]
        problems.append(
            f"{len(reshaped)} shape mismatches (first '{k}': file {tuple(state[k].shape)}, "
            f"expected {tuple(expected[k].shape)})"
        )
    return "; ".join(problems) or None


def load_state_dict_strict(model: nn.Module, path: Path, weights: WeightsFile,
                           ignore: Callable[[str], bool] = lambda key: False) -> None:
    """Read ``path`` with ``torch.load(weights_only=True)`` on the CPU and load it strictly into ``model``.

    Keys for which ``ignore`` is true (entries the file may carry but ``model`` does not have) are dropped first.

    Raises:
        GanslimError: the file is unreadable, is not a state dict of tensors, or its keys or shapes differ from
            ``model``'s (the message names the first difference of each kind).
    """
    state = read_weights_only(path, f"{weights.label} weights", f"use {weights.filename} from {weights.url}")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise GanslimError(
            f"{path} is not a state dict of tensors (got {type(state).__name__}); use {weights.filename}"
        )
    state = {k: v for k, v in state.items() if not ignore(k)}
    problem = describe_mismatch(state, model.state_dict())
    if problem:
        raise GanslimError(f"{path} is not {weights.title}: {problem}; use the file from {weights.url}")
    model.load_state_dict(state, strict=True)
