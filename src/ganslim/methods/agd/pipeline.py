"""AutoGAN-Distiller in one resumable run folder: warm-up -> search -> derive -> retrain -> export.

``run_agd(config)`` is a staged run (:mod:`ganslim.engine.staged`) creating ``out_dir/NNNNN-agd-NAME/``::

    config.yaml                        the resolved AGDConfig (read back by --resume)
    pipeline.json                      finished stages and what each recorded
    00000-agd-warmup-NAME/             stage 1 (an engine run): supernet.pt, summary.json, logs/, checkpoints/
    cost_table.json                    the budget's per-operator costs (measured once; latency: on this machine)
    00001-agd-search-NAME/             stage 2: search.json (penalty-weight history, derived choices), summary.json
    derived.json                       stage 3: the derived architecture (arch, arch_kwargs), its MACs and cost
    00002-agd-retrain-NAME/            stage 4: generator.pt (the derived network, distilled from scratch)
    generator.pt                       stage 5: the student, what translate / profile / export / quantize take
    summary.json                       budget, penalty weights, derived choices and MACs, objective terms per stage

Before a run folder exists the teacher, the data and the budget are checked (one line each): a budget below the
smallest sub-network's cost, or not below the largest one's, is refused naming the achievable range. ``resume=RUN``
skips the finished stages and continues the unfinished one from its last checkpoint; ``stop_after`` ends after a
stage. The derive stage refuses, in one line, a search none of whose derived networks (the final argmax, and the
argmax of each evaluation) fits the budget.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ganslim.archs import build_generator
from ganslim.archs.agd import OPERATORS
from ganslim.atomic import atomic_write, atomic_write_text
from ganslim.compress.search import format_macs
from ganslim.engine import check_image_sides, fit, launched_by_torchrun
from ganslim.engine.runs import run_label
from ganslim.engine.staged import Stage, StagedRun, run_stages, stopped_summary
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs, count_params
from ganslim.methods import AGD_STAGES as STAGES
from ganslim.methods.agd.budget import budget_table, check_budget, format_cost, mac_table
from ganslim.methods.agd.config import GROUND_TRUTH, METHOD, TRANSLATION, AGDConfig, AGDStageConfig
from ganslim.methods.agd.task import Task, load_task
from ganslim.methods.agd.training import (
    GENERATOR_FILE,
    SEARCH_FILE,
    SUMMARY_FILE,
    SUPERNET_FILE,
    Retrain,
    Search,
    Warmup,
)

COST_TABLE_FILE, DERIVED_FILE = "cost_table.json", "derived.json"


@dataclass
class AGDResult:
    """The run folder, the finished stages' records and, once exported, the ``summary.json`` content."""

    run_dir: Path
    stages: dict
    summary_content: dict | None = None

    def summary(self) -> str:
        """The one line ``ganslim compress agd`` ends with."""
        if self.summary_content is None:
            return stopped_summary(METHOD, self.stages, self.run_dir)
        s = self.summary_content
        derived, teacher, budget = s["derived"], s["teacher"], s["budget"]
        convention = s["macs_convention"]
        student_macs, teacher_macs = derived["macs"][convention], teacher["macs"][convention]
        return (f"{METHOD}: {s['task']} student {derived['arch']}: {format_macs(student_macs)} MACs ({convention}) "
                f"at {budget['size']}x{budget['size']} (the teacher: {format_macs(teacher_macs)}, "
                f"{teacher_macs / student_macs:.1f}x), {derived['params'] / 1e6:.3g}M params; predicted "
                f"{format_cost(budget['kind'], derived['cost'])} within the budget of {budget['label']}; model "
                f"{self.run_dir / GENERATOR_FILE}")


def run_agd(config: AGDConfig, *, resume: str | os.PathLike | None = None, stop_after: str | None = None,
            progress: bool = True) -> AGDResult:
    """Run (or continue) every stage of AGD in one run folder; see the module docstring."""
    pipeline = _Pipeline(config)
    stages = [Stage(name, run) for name, run in zip(STAGES, pipeline.stages())]
    staged = run_stages(config, METHOD, stages, resume=resume, stop_after=stop_after, progress=progress,
                        check=pipeline.check)
    return AGDResult(staged.run_dir, staged.done, staged.done.get("export", {}).get("summary"))


def stage_config(config: AGDConfig, run_dir: Path, epochs: int, iterations: int, **changes) -> AGDStageConfig:
    """A training stage's config: the run's, in ``run_dir``, ``iterations`` steps long if given, else ``epochs``."""
    length = {"iterations": iterations, "epochs": 0} if iterations else {"iterations": 0, "epochs": epochs}
    return AGDStageConfig(**{**dataclasses.asdict(config), "out_dir": str(run_dir), "epochs_decay": 0, "kimg": 0.0,
                             **length, **changes})


class _Pipeline:
    """The stages of one run, over its config."""

    def __init__(self, config: AGDConfig) -> None:
        self.config = config
        self.budget: dict | None = None

    def stages(self) -> list:
        """What each of ``STAGES`` runs, in order."""
        return [self._warmup, self._search, self._derive, self._retrain, self._export]

    def check(self) -> None:
        """Refuse bad input in one line before anything is written: the teacher, the data (decoded), the image
        sides and the budget."""
        config = self.config
        if launched_by_torchrun():
            raise GanslimError("agd runs in one process (the search updates its architecture parameters outside "
                               "DistributedDataParallel): run it without torchrun")
        task = load_task(config, torch.device("cpu"))
        task.search_items(config)  # builds the dataset (every file decoded) and needs 2 images
        if config.retrain_target == GROUND_TRUTH:
            task.check_ground_truth(config)  # unpaired data has none: one line, nothing written
        with torch.device("meta"):
            supernet = task.supernet(config)
            largest = build_generator(supernet.derived_arch,
                                      **supernet.derived_kwargs([OPERATORS[0]] * len(supernet.op_slots),
                                                                supernet.largest_widths()))
        if task.kind == TRANSLATION:
            check_image_sides({"teacher": task.teacher.model, "student": largest},
                              {**config.fixed_image_sides(), "size": config.size})
        self.budget = check_budget(config, budget_table(config, supernet))  # the table builds what it measures

    def _train(self, staged: StagedRun, method_cls: type, config: AGDStageConfig) -> str:
        """Fit a training stage, continuing its folder under the run if it has a checkpoint."""
        resume = staged.resumable(run_label(method_cls.name, config))
        return str(fit(config, method_cls, resume=resume, progress=staged.progress).run_dir)

    def _record(self, run_dir: str) -> dict:
        return {"run_dir": run_dir, **json.loads((Path(run_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))}

    def _warmup(self, staged: StagedRun) -> dict:
        config = stage_config(self.config, staged.run_dir, self.config.warmup_epochs, self.config.warmup_iterations,
                              lr_schedule="constant", grad_clip=0.0)
        return self._record(self._train(staged, Warmup, config))

    def _search(self, staged: StagedRun) -> dict:
        config = stage_config(self.config, staged.run_dir, self.config.search_epochs, self.config.search_iterations,
                              lr_schedule="constant", grad_clip=0.0,
                              supernet=str(Path(staged.done["warmup"]["run_dir"]) / SUPERNET_FILE),
                              cost_table=str(staged.run_dir / COST_TABLE_FILE))
        return self._record(self._train(staged, Search, config))

    def _derive(self, staged: StagedRun) -> dict:
        config, budget = self.config, self.budget
        search = json.loads((Path(staged.done["search"]["run_dir"]) / SEARCH_FILE).read_text(encoding="utf-8"))
        candidates = [{**search["final"], "from": "the final argmax"},
                      *({**entry, "from": f"the argmax of the evaluation at step {entry['step']}"}
                        for entry in reversed(search["history"]))]
        fitting = [entry for entry in candidates if entry["cost"] <= budget["high"]]
        if not fitting:
            cheapest = min(entry["cost"] for entry in candidates)
            kind = budget["kind"]
            raise GanslimError(f"no derived network of the search fits the budget of {budget['label']} (the final "
                               f"one costs {format_cost(kind, search['final']['cost'])}, the cheapest of the "
                               f"{len(candidates)} it derived {format_cost(kind, cheapest)}): start again with a "
                               f"higher penalty_weight or a longer search (search_epochs)")
        chosen = fitting[0]
        task = load_task(config, torch.device("cpu"))
        with torch.device("meta"):
            supernet = task.supernet(config)
        macs_table = mac_table(config, supernet)
        predicted = macs_table.predict(chosen["ops"], chosen["widths"])
        derived = {"arch": supernet.derived_arch,
                   "arch_kwargs": supernet.derived_kwargs(chosen["ops"], chosen["widths"]),
                   "ops": chosen["ops"], "widths": chosen["widths"], "from": chosen["from"], "cost": chosen["cost"],
                   "predicted_macs": predicted, **_student_size(task, config, supernet.derived_arch,
                                                                 supernet.derived_kwargs(chosen["ops"],
                                                                                         chosen["widths"]))}
        counted = derived["macs"][config.macs_convention]
        if counted != predicted:
            raise RuntimeError(f"the derived {derived['arch']} counts {counted} MACs but the table predicts "
                               f"{predicted}: the cost table does not model this network")
        derived["macs_match"] = True
        atomic_write_text(json.dumps(derived, indent=1) + "\n", staged.run_dir / DERIVED_FILE)
        return derived

    def _retrain(self, staged: StagedRun) -> dict:
        config = AGDStageConfig(**{**dataclasses.asdict(self.config), "out_dir": str(staged.run_dir),
                                   "derived": str(staged.run_dir / DERIVED_FILE)})  # the run's own length
        return self._record(self._train(staged, Retrain, config))

    def _export(self, staged: StagedRun) -> dict:
        run_dir, done, config = staged.run_dir, staged.done, self.config
        source = Path(done["retrain"]["run_dir"]) / GENERATOR_FILE
        atomic_write(run_dir / GENERATOR_FILE, lambda path: shutil.copyfile(source, path))
        task = load_task(config, torch.device("cpu"))
        search = json.loads((Path(done["search"]["run_dir"]) / SEARCH_FILE).read_text(encoding="utf-8"))
        teacher = task.teacher
        summary = {
            "method": METHOD, "task": task.kind, "macs_convention": config.macs_convention,
            "teacher": {"path": config.teacher, "arch": teacher.arch,
                        **_student_size(task, config, teacher.arch, teacher.arch_kwargs)},
            "budget": self.budget,
            "penalty_weight": {"start": search["start_penalty_weight"], "final": search["final"]["penalty_weight"],
                               "history": [{key: entry[key] for key in ("step", "cost", "penalty_weight")}
                                           for entry in search["history"]]},
            "derived": {key: value for key, value in done["derive"].items()},
            "objectives": {stage: done[stage]["objective"] for stage in ("warmup", "search", "retrain")},
            "teacher_outputs": done["retrain"]["teacher_outputs"],
            "stages": {stage: done[stage]["run_dir"] for stage in ("warmup", "search", "retrain")},
        }
        atomic_write_text(json.dumps(summary, indent=1) + "\n", run_dir / SUMMARY_FILE)
        return {"model": str(run_dir / GENERATOR_FILE), "summary": summary}


def _student_size(task: Task, config: AGDConfig, arch: str, kwargs: dict) -> dict:
    """Params and MACs (both conventions) of ``arch`` built from ``kwargs``, at the budget's input (meta device)."""
    with torch.device("meta"):
        model, example = build_generator(arch, **kwargs), torch.zeros(task.input_shape(config))
    count = count_macs(model, example)
    return {"params": count_params(model), "macs": {"true": count.macs, "published": count.macs_published}}
