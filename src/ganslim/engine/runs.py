"""Numbered run folders (``runs/00003-pix2pix-facades/``) and finding a run to resume.

A run folder holds::

    config.yaml            the resolved config (every key), readable by --config
    checkpoints/latest.pt  weights at the last checkpoint (+ state_XXXXXXXX.pt: optimizer/RNG/... state)
    checkpoints/best.pt    weights at the best validation score
    samples/               input | output | target PNG grids
    logs/                  TensorBoard event files and log.txt
    ...                    the method's exported models (e.g. generator.pt)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ganslim.atomic import atomic_write_text
from ganslim.config import TrainConfig, config_to_yaml, read_config_file
from ganslim.errors import GanslimError

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"
BEST = "best.pt"
_NUMBERED = re.compile(r"^(\d{5,})-")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_label(method: str, config: TrainConfig) -> str:
    """``pix2pix-facades``: the method and the run name (default: the dataset folder's name)."""
    suffix = config.name or Path(config.data.rstrip("/\\")).name or "data"
    return _UNSAFE.sub("_", f"{method}-{suffix}")


def create_run_dir(out_dir: str | os.PathLike, label: str) -> Path:
    """Create ``out_dir/NNNNN-label/`` with the next free number (safe against concurrent runs)."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanslimError(f"cannot create run folder root '{out_dir}' ({error.strerror}): "
                           f"pass a writable --out-dir") from None
    while True:
        numbers = [int(match.group(1)) for entry in out_dir.iterdir() if (match := _NUMBERED.match(entry.name))]
        run_dir = out_dir / f"{max(numbers, default=-1) + 1:05d}-{label}"
        try:
            run_dir.mkdir()
        except FileExistsError:  # another run took this number between listing and mkdir
            continue
        return run_dir


def write_config(run_dir: Path, config: TrainConfig, method: str) -> Path:
    """Write the resolved config as ``run_dir/config.yaml`` (atomically)."""
    return atomic_write_text(config_to_yaml(config, method), run_dir / CONFIG_FILE)


def resolve_resume(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(run_dir, latest checkpoint)`` for a run folder or its ``checkpoints/latest.pt``."""
    path = Path(path)
    if path.is_dir():
        run_dir = path.parent if path.name == CHECKPOINT_DIR else path
        checkpoint = run_dir / CHECKPOINT_DIR / LATEST
        if not checkpoint.is_file():
            raise GanslimError(f"run folder '{run_dir}' has no {CHECKPOINT_DIR}/{LATEST} yet: it stopped before "
                               f"its first checkpoint, start it again without --resume")
    elif path.is_file():
        if path.name != LATEST:
            raise GanslimError(f"'{path}' is not a resumable checkpoint: pass the run folder or its "
                               f"{CHECKPOINT_DIR}/{LATEST} ({BEST} holds weights only)")
        checkpoint, run_dir = path, path.parent.parent
    else:
        raise GanslimError(f"--resume '{path}' not found: pass a run folder such as runs/00003-pix2pix-facades")
    if not (run_dir / CONFIG_FILE).is_file():
        raise GanslimError(f"'{run_dir}' has no {CONFIG_FILE}: pass a run folder made by 'ganslim train'")
    return run_dir, checkpoint


def read_run_config(run_dir: Path) -> dict:
    """The resolved config mapping a run folder was started with (including its ``method`` key)."""
    return read_config_file(run_dir / CONFIG_FILE)
