"""What a run folder holds, as the report sees it: its generators (teachers and students), data and image grids.

The generators are found by the files each method exports (see the ``method:`` line of ``config.yaml``):

=====================  ============================================================================
pix2pix               ``generator.pt``
cyclegan              ``generator_A.pt`` (G_A) and ``generator_B.pt`` (G_B), one grid per direction
omgd, paired          ``teacher_wide.pt``, ``teacher_deep.pt`` (teachers), ``generator.pt`` (student)
omgd, unpaired        ``teacher_snapshot.pt`` (teacher), ``generator.pt`` (student)
gan-compression and   the config's ``teacher`` (a checkpoint or a run folder), ``generator.pt`` (student);
its stages            a pipeline's ``pipeline.json`` lists its finished stages
=====================  ============================================================================
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ganslim.engine.staged import STATE_FILE
from ganslim.errors import GanslimError

TEACHER, STUDENT = "teacher", "student"
GENERATOR_FILE = "generator.pt"


@dataclass(frozen=True)
class RunModel:
    """One generator of the run: ``label`` heads its column, ``direction`` is the data side it takes as input."""

    label: str
    path: Path
    role: str  # TEACHER or STUDENT: each student is compared with the first teacher
    direction: str = "AtoB"


@dataclass(frozen=True)
class GridColumn:
    """A column of an image grid: the input passed through the models ``chain`` (labels, in order; () = input)."""

    label: str
    chain: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grid:
    """An image grid: rows of the data's ``direction`` inputs, these columns, then the target when paired."""

    title: str
    direction: str
    columns: tuple[GridColumn, ...]


@dataclass(frozen=True)
class ReportRun:
    """A run folder resolved: its models, the data they are shown on, and what is missing (``notes``)."""

    run_dir: Path
    method: str
    config: dict[str, Any]
    models: tuple[RunModel, ...]
    grids: tuple[Grid, ...]
    data: Path | None
    split: str | None
    size: int  # image side of the grids and quality
    macs_size: int  # image side MACs are counted at
    notes: tuple[str, ...] = ()
    stages: dict[str, str] | None = None  # a GAN Compression pipeline's finished stages -> their folders


def read_run(run_dir: str | os.PathLike, *, teacher: str | os.PathLike | None = None,
             student: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
             split: str | None = None, size: int | None = None, direction: str | None = None) -> ReportRun:
    """Resolve a run folder (it holds ``config.yaml``); explicit arguments override what the run names.

    ``teacher`` / ``student`` replace the checkpoint of the run's first teacher / its student, or add one.
    """
    from ganslim.config import read_config_file
    from ganslim.engine.runs import CONFIG_FILE

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        what = "not found" if not run_dir.exists() else f"is not a ganslim run folder (no {CONFIG_FILE})"
        raise GanslimError(f"run folder '{run_dir}' {what}: pass a folder made by ganslim train or ganslim compress")
    config = read_config_file(run_dir / CONFIG_FILE)
    method = str(config.get("method") or "")
    direction = direction or config.get("direction") or "AtoB"
    if direction not in ("AtoB", "BtoA"):
        raise GanslimError(f"direction '{direction}' is not valid: use AtoB or BtoA")
    side = size or config.get("crop_size") or 256
    # GAN Compression counts its MACs budget (and summary.json's figures) at its own `size`.
    macs_side = size or config.get("size") or side
    for value in (side, macs_side):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GanslimError(f"--size {value!r} must be a positive integer (e.g. 256)")
    models, notes = _run_models(run_dir, method, config, direction)
    for role, path in ((TEACHER, teacher), (STUDENT, student)):
        if path is not None:
            models = _override(models, role, Path(path), direction)
    models, missing = _present(models)
    notes += missing
    data_dir, data_note = _data(data, config)
    notes += [data_note] if data_note else []
    grids = _cyclegan_grids(direction) if method == "cyclegan" else _model_grid(models, direction)
    present = {m.label for m in models}
    grids = [g for g in grids if all(label in present for column in g.columns for label in column.chain)]
    stages = _pipeline_stages(run_dir)
    if stages is not None and "export" not in stages:
        notes.append(f"the pipeline finished {', '.join(stages) or 'no stage'}: continue it with ganslim compress "
                     f"gan-compression --resume {run_dir}")
    return ReportRun(run_dir=run_dir, method=method, config=config, models=tuple(models), grids=tuple(grids),
                     data=data_dir, split=split or (_default_split(data_dir) if data_dir else None), size=side,
                     macs_size=macs_side, notes=tuple(notes), stages=stages)


def _run_models(run_dir: Path, method: str, config: dict[str, Any],
                direction: str) -> tuple[list[RunModel], list[str]]:
    """The models a run of ``method`` exports (some perhaps not written yet), and notes on what is unknown."""
    other = "BtoA" if direction == "AtoB" else "AtoB"
    if method == "pix2pix":
        return [RunModel("generator", run_dir / GENERATOR_FILE, TEACHER, direction)], []
    if method == "cyclegan":
        return [RunModel("G_A", run_dir / "generator_A.pt", TEACHER, direction),
                RunModel("G_B", run_dir / "generator_B.pt", TEACHER, other)], []
    student = RunModel(STUDENT, run_dir / GENERATOR_FILE, STUDENT, direction)
    if method == "omgd":
        if (run_dir / "teacher_snapshot.pt").is_file():
            return [RunModel("teacher (snapshot)", run_dir / "teacher_snapshot.pt", TEACHER, direction), student], []
        return [RunModel("wide teacher", run_dir / "teacher_wide.pt", TEACHER, direction),
                RunModel("deep teacher", run_dir / "teacher_deep.pt", TEACHER, direction), student], []
    if not config.get("teacher"):
        return [student], ["config.yaml names no teacher: pass --teacher CKPT to compare with one"]
    from ganslim.checkpoints import resolve_generator_file

    teacher = resolve_generator_file(Path(config["teacher"]).expanduser(), direction)
    return [RunModel(TEACHER, teacher, TEACHER, direction), student], []


def _override(models: list[RunModel], role: str, path: Path, direction: str) -> list[RunModel]:
    """``models`` with the first model of ``role`` loaded from ``path`` instead, or with one added."""
    from ganslim.checkpoints import resolve_generator_file

    path = resolve_generator_file(path, direction)
    if not path.is_file():
        raise GanslimError(f"--{role} checkpoint '{path}' not found: check the path")
    for index, model in enumerate(models):
        if model.role == role:
            return [*models[:index], replace(model, path=path), *models[index + 1:]]
    added = RunModel(role, path, role, direction)
    return [added, *models] if role == TEACHER else [*models, added]


def _present(models: list[RunModel]) -> tuple[list[RunModel], list[str]]:
    """The models whose checkpoint exists, and a note for each missing one."""
    notes = [f"no {m.label}: '{m.path}' not found (the run has not exported it yet, or it was moved: pass "
             f"--{m.role} CKPT)" for m in models if not m.path.is_file()]
    return [m for m in models if m.path.is_file()], notes


def _data(explicit: str | os.PathLike | None, config: dict[str, Any]) -> tuple[Path | None, str | None]:
    """The dataset folder the images and quality come from, or None and why."""
    if explicit is not None:
        if not Path(explicit).exists():
            raise GanslimError(f"--data '{explicit}' not found: pass the dataset folder")
        return Path(explicit), None
    if not config.get("data"):
        return None, "config.yaml names no data: pass --data DIR for the image grid and the quality figures"
    path = Path(str(config["data"])).expanduser()
    if not path.exists():
        return None, (f"the run's data folder '{path}' is not here: pass --data DIR for the image grid and the "
                      f"quality figures")
    return path, None


def _default_split(data: Path) -> str:
    """val if the dataset has one (aligned ``val/`` or unaligned ``valA/``), else test."""
    return "val" if (data / "val").is_dir() or (data / "valA").is_dir() else "test"


def _model_grid(models: list[RunModel], direction: str) -> list[Grid]:
    """input | every model, teachers first | target."""
    columns = (GridColumn("input"), *(GridColumn(m.label, (m.label,)) for m in models))
    return [Grid("", direction, columns)] if models else []


def _cyclegan_grids(direction: str) -> list[Grid]:
    """Per generator: input | translated | translated back (the cycle reconstruction)."""
    source, target = direction[0], direction[-1]
    other = f"{target}to{source}"
    return [Grid(f"{source} → {target} (G_A)", direction, (
                GridColumn(f"input {source}"), GridColumn(f"G_A: fake {target}", ("G_A",)),
                GridColumn(f"G_B(G_A): back to {source}", ("G_A", "G_B")))),
            Grid(f"{target} → {source} (G_B)", other, (
                GridColumn(f"input {target}"), GridColumn(f"G_B: fake {source}", ("G_B",)),
                GridColumn(f"G_A(G_B): back to {target}", ("G_B", "G_A"))))]


def _pipeline_stages(run_dir: Path) -> dict[str, str] | None:
    """stage -> folder of a staged run's finished stages (a GAN Compression pipeline); None for other runs."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        stages = json.loads(path.read_text(encoding="utf-8"))["stages"]
        return {name: str(stage.get("run_dir") or stage.get("model") or "") for name, stage in stages.items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise GanslimError(f"cannot read {path} (a GAN Compression pipeline state): fix or delete it") from None
