"""Staged runs: several stages in one resumable run folder, each stage's work in a numbered folder of its own inside.

A staged run folder holds::

    config.yaml            the resolved config of the whole run (read back by --resume)
    pipeline.json          the finished stages, in order, and what each recorded (JSON)
    00000-STAGE-LABEL/     a stage's own run folder (a stage that trains is an ordinary engine run)
    ...                    whatever the stages write into the run folder itself
    .lock                  while a process runs it (see :class:`~ganslim.engine.runs.RunLock`)

:func:`run_stages` joins the ``torchrun`` session for the whole run, runs the checks that must pass before a run
folder exists, opens the folder (a new numbered one, or ``resume``, which must hold ``pipeline.json``), holds its
lock on rank 0 and runs the unfinished stages in order, recording each as it ends; ``stop_after`` ends the run
after that stage and ``--resume`` continues it. An unfinished stage starts again from its own folder
(:meth:`StagedRun.resumable`: a training stage from its last checkpoint). GAN Compression's pipeline is a list
of stages over this; every multi-stage method is.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ganslim.atomic import atomic_write_text
from ganslim.config import TrainConfig
from ganslim.engine import distributed as ddp
from ganslim.engine.runs import CHECKPOINT_DIR, LATEST, RunLock, open_run_dir, write_config
from ganslim.errors import GanslimError

STATE_FILE = "pipeline.json"


@dataclass
class StagedRun:
    """A staged run as its stages see it: its folder, this process's place, and what the finished stages recorded
    (stage name -> record, in the order they ran)."""

    run_dir: Path
    info: ddp.DistInfo
    progress: bool
    done: dict[str, dict] = field(default_factory=dict)

    def stage_dirs(self, label: str) -> list[Path]:
        """The numbered folders ``NNNNN-label`` inside the run (a stage's attempts so far), oldest first."""
        pattern = re.compile(rf"^\d{{5,}}-{re.escape(label)}$")
        return sorted(entry for entry in self.run_dir.iterdir() if entry.is_dir() and pattern.match(entry.name))

    def resumable(self, label: str) -> Path | None:
        """The latest ``NNNNN-label`` folder holding a checkpoint (``checkpoints/latest.pt``): where an unfinished
        training stage continues; None when it has none."""
        started = [d for d in self.stage_dirs(label) if (d / CHECKPOINT_DIR / LATEST).is_file()]
        return started[-1] if started else None


@dataclass(frozen=True)
class Stage:
    """One stage: ``run(staged)`` does its work (every rank calls it) and returns what to record, a JSON-ready dict
    the same on every rank."""

    name: str
    run: Callable[[StagedRun], dict]


def run_stages(config: TrainConfig, method: str, stages: Sequence[Stage], *,
               resume: str | os.PathLike | None = None, stop_after: str | None = None, progress: bool = True,
               check: Callable[[], None] | None = None) -> StagedRun:
    """Run (or continue) ``stages`` of ``method`` in one run folder; see the module docstring.

    ``config`` is the resolved config written to the folder (its ``device``, ``out_dir`` and run name are the
    run's); ``check`` refuses bad input (one GanslimError line) before the run folder exists.
    """
    names = [stage.name for stage in stages]
    if stop_after is not None and stop_after not in names:
        raise GanslimError(f"unknown stage '{stop_after}'; choose one of: {', '.join(names)}")
    with ddp.distributed_session(config.device) as (info, _):
        if check is not None:
            check()
        made_by = f"'ganslim compress {method}'"
        run_dir = open_run_dir(info, config, method, resume, made_by)
        if resume is not None and not (run_dir / STATE_FILE).is_file():
            raise GanslimError(f"'{run_dir}' is not a {method} run folder (no {STATE_FILE}): pass the folder "
                               f"{made_by} made")
        lock = RunLock(run_dir)  # a training stage's own folder is locked by its fit; this guards pipeline.json
        try:
            ddp.on_main(info, lock.acquire)
            done = ddp.broadcast_object(info, _read_state(run_dir) if info.is_main else None)
            staged = StagedRun(run_dir, info, progress, done)
            ddp.on_main(info, lambda: _start(staged, config, method, resumed=resume is not None))
            for stage in stages:
                if stage.name not in staged.done:
                    staged.done[stage.name] = stage.run(staged)
                    ddp.on_main(info, lambda: _write_state(run_dir, staged.done))
                if stage.name == stop_after:
                    break
            return staged
        finally:
            lock.release()


def stopped_summary(method: str, done: dict, run_dir: Path) -> str:
    """The line a staged run ends with when it stopped before its last stage (``stop_after``)."""
    return f"{method}: stopped; finished stages: {', '.join(done) or 'none'}; resume with --resume {run_dir}"


def _start(staged: StagedRun, config: TrainConfig, method: str, resumed: bool) -> None:
    """Rank 0 records the run's config (a resumed run's may have changed) and the stages finished so far."""
    if resumed:
        write_config(staged.run_dir, config, method)
    _write_state(staged.run_dir, staged.done)


def _read_state(run_dir: Path) -> dict[str, dict]:
    path = run_dir / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8"))["stages"] if path.is_file() else {}


def _write_state(run_dir: Path, done: dict[str, dict]) -> None:
    atomic_write_text(json.dumps({"stages": done}, indent=1) + "\n", run_dir / STATE_FILE)
