"""Training checkpoints: weights apart from training state, written so a killed run never corrupts them.

``checkpoints/`` of a run folder holds

* ``latest.pt``: ``{"format": "ganslim-train", "format_version", "step", "networks": {name: state_dict},
  "ema": {name: state_dict} | None, "models": {name: {"kind", "arch", "arch_kwargs"}}, "state_file"}`` - the
  weights, usable without the training state (``models`` describes the networks a user may load from it, so
  ``load_generator`` rebuilds one, its EMA weights when averaged; see :mod:`ganslim.checkpoints.training`);
* ``state_XXXXXXXX.pt`` (named by step): ``{"format": "ganslim-train-state", "format_version", "step",
  "optimizers", "scalers", "best", "world_size", "batch_size", "ranks": [{"rng", "method"} per rank]}``;
* ``best.pt``: the same layout as ``latest.pt`` (no ``state_file``) plus ``"metric"`` and ``"value"``.

Each file is written atomically (temporary file + rename). The state file of step k is written before
``latest.pt`` of step k, which names it, and older state files are removed only afterwards, so whenever a
run dies the ``latest.pt`` on disk and the state file it names are complete and belong together. Everything
is loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganslim.atomic import atomic_torch_save
from ganslim.errors import GanslimError
from ganslim.weights import read_weights_only

WEIGHTS_FORMAT = "ganslim-train"
STATE_FORMAT = "ganslim-train-state"
FORMAT_VERSION = 1


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module.state_dict()``."""
    return {key: value.detach().to("cpu", copy=True) for key, value in module.state_dict().items()}


def save_latest(checkpoint_dir: Path, step: int, networks: dict, ema: dict | None, state: dict,
                models: dict | None = None) -> Path:
    """Write the training state of ``step``, then ``latest.pt`` naming it, then drop older state files.

    If writing ``latest.pt`` fails (e.g. a full disk), the new state file is removed again and the previous pair
    stays as it was.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state_path = _new_state_path(checkpoint_dir, step)
    atomic_torch_save({"format": STATE_FORMAT, "format_version": FORMAT_VERSION, "step": step, **state}, state_path)
    try:
        latest = atomic_torch_save(_weights(step, networks, ema, models, state_file=state_path.name),
                                   checkpoint_dir / "latest.pt")
    except BaseException:
        state_path.unlink(missing_ok=True)
        raise
    for stale in checkpoint_dir.glob("state_*.pt"):
        if stale != state_path:
            stale.unlink(missing_ok=True)
    for leftover in checkpoint_dir.glob(".*.tmp"):  # temporary files of a run killed mid-write
        leftover.unlink(missing_ok=True)
    return latest


def save_best(checkpoint_dir: Path, step: int, networks: dict, ema: dict | None, metric: str,
              value: float, models: dict | None = None) -> Path:
    """Write ``best.pt``: the weights of ``step``, which scored ``value`` on validation ``metric``."""
    return atomic_torch_save({**_weights(step, networks, ema, models), "metric": metric, "value": value},
                             checkpoint_dir / "best.pt")


def load_weights(path: Path) -> dict[str, Any]:
    """Read a ``latest.pt`` / ``best.pt`` weights file (CPU tensors)."""
    content = _load(path)
    if not isinstance(content, dict) or content.get("format") != WEIGHTS_FORMAT:
        raise GanslimError(f"'{path}' is not a ganslim training checkpoint: pass a run folder or its "
                           f"checkpoints/latest.pt")
    _check_version(path, content)
    return content


def load_training_state(latest: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(weights, training state)`` of a ``latest.pt`` and the state file it names."""
    weights = load_weights(latest)
    state_path = latest.parent / str(weights.get("state_file"))
    if not state_path.is_file():
        raise GanslimError(f"'{state_path}' (training state of '{latest}') is missing: resume from a run "
                           f"folder whose checkpoints/ was copied whole")
    state = _load(state_path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("step") != weights["step"]:
        raise GanslimError(f"'{state_path}' does not belong to '{latest}': copy the checkpoints/ folder whole")
    _check_version(state_path, state)
    return weights, state


def _new_state_path(checkpoint_dir: Path, step: int) -> Path:
    """``state_XXXXXXXX.pt``, or ``state_XXXXXXXX-N.pt`` when that name is taken: a run resumed under another
    world size counts steps anew and can checkpoint a step number the current ``latest.pt`` already names."""
    path = checkpoint_dir / f"state_{step:08d}.pt"
    again = 0
    while path.exists():
        again += 1
        path = checkpoint_dir / f"state_{step:08d}-{again}.pt"
    return path


def _weights(step: int, networks: dict, ema: dict | None, models: dict | None, **extra: Any) -> dict[str, Any]:
    return {"format": WEIGHTS_FORMAT, "format_version": FORMAT_VERSION, "step": step, "networks": networks,
            "ema": ema, "models": models or {}, **extra}


def _load(path: Path) -> Any:
    if not path.is_file():
        raise GanslimError(f"checkpoint '{path}' not found: check the path")
    return read_weights_only(path, "checkpoint", "the file is damaged; resume from another run or start again")


def _check_version(path: Path, content: dict) -> None:
    version = content.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise GanslimError(f"checkpoint '{path}' has format version {version}; this ganslim reads up to "
                           f"{FORMAT_VERSION}: upgrade ganslim")
