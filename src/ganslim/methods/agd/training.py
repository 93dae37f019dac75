"""AutoGAN-Distiller's three training stages as engine methods; the teacher's output is the only target.

* :class:`Warmup`: the supernet's weights, by the sandwich rule (the largest, the smallest and 2 random widths each
  step, their losses summed into one update). Every mixed operator runs its four operators at *uniform* weights, not
  a random one-hot operator: each operator then trains at every step, and this is what the search's first
  softmax(alpha) (every alpha 1e-3) computes, so the search starts from weights warmed at the mixture it runs.
  Exports ``supernet.pt``.
* :class:`Search`: per step a first-order alternating update on the two halves of the training images: the
  architecture step on the second half (Adam ``arch_lr``, betas 0.5 / 0.999; the objective's search preset plus
  the penalty weight x AGD's expected cost / budget; softmax over operators, straight-through Gumbel widths), then
  the weight step on the first (Adam ``weight_lr``, gradient norm clipped to ``weight_grad_clip``; a new Gumbel
  draw). Every ``eval_every`` steps it derives by argmax, predicts the derived cost from the table and adapts the
  penalty weight (halved under ``budget_floor`` of the way from the space's smallest cost to the budget, doubled
  over the budget); each evaluation is kept in the history, which a resumed run continues. Exports ``search.json``.
* :class:`Retrain`: the derived network from scratch, with the objective's retrain preset. Exports the student as
  ``generator.pt``.

Teacher outputs are computed online, each step, from the step's augmented crops (a cache of one output per image
would miss the crops and flips; the README has the timing of both on a tiny case). Every stage writes
``summary.json``: its objective's terms (and the search's history). Draws come from the step's shared generator, so
a resumed stage draws what the uninterrupted one drew.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.archs import build_generator
from ganslim.archs.agd import OPERATORS, AGDSupernet, Sample, one_hot_sample
from ganslim.atomic import atomic_torch_save, atomic_write_text
from ganslim.checkpoints import save_model
from ganslim.engine import MethodBase, TrainContext
from ganslim.engine.state import cpu_state_dict
from ganslim.errors import GanslimError
from ganslim.methods.agd.budget import budget_value, filled_table, penalty_floor, smallest_cost
from ganslim.methods.agd.config import GROUND_TRUTH, METHOD, SUPER_RESOLUTION, AGDStageConfig
from ganslim.methods.agd.cost import PenaltyWeight, agd_cost
from ganslim.methods.agd.space import ArchParameters, derived_choices, sandwich_widths, search_sample
from ganslim.methods.agd.task import RETRAIN, SEARCH, load_task
from ganslim.weights import read_weights_only

SUPERNET_FILE, SEARCH_FILE, SUMMARY_FILE, GENERATOR_FILE = "supernet.pt", "search.json", "summary.json", "generator.pt"
SUPERNET_FORMAT = "ganslim-agd-supernet"
WEIGHT_STEP, ARCH_STEP = 0, 1  # the shared generator's keys of a search step's two Gumbel draws


def save_supernet(path: Path, supernet: AGDSupernet, kwargs: dict) -> Path:
    """Write ``supernet``'s weights (atomically) with the kwargs that rebuild it."""
    return atomic_torch_save({"format": SUPERNET_FORMAT, "format_version": 1, "kwargs": kwargs,
                              "state_dict": cpu_state_dict(supernet)}, path)


def load_supernet_weights(path: Path, supernet: AGDSupernet, kwargs: dict) -> None:
    """Load a :func:`save_supernet` file into ``supernet``, which must be built from the same kwargs."""
    content = read_weights_only(path, "an AGD supernet file", "resume the run that wrote it")
    if not isinstance(content, dict) or content.get("format") != SUPERNET_FORMAT:
        raise GanslimError(f"'{path}' is not an AGD supernet file: resume the run that wrote it")
    if content["kwargs"] != kwargs:
        raise GanslimError(f"'{path}' holds a supernet of {content['kwargs']}, this run builds {kwargs}: resume "
                           f"without changing the teacher, student_width, cells or ops_per_cell")
    supernet.load_state_dict(content["state_dict"])


class _Stage(MethodBase):
    """What the stages share: the task, the training items, sample grids and the summary file."""

    Config: ClassVar[type] = AGDStageConfig
    monitor: ClassVar[tuple[str, str] | None] = None
    ema_networks: ClassVar[tuple[str, ...]] = ()
    phase: ClassVar[str] = SEARCH

    def __init__(self, config: AGDStageConfig, ctx: TrainContext) -> None:
        self.config, self.ctx = config, ctx
        self.task = load_task(config, ctx.device)
        self.objective = self.task.objective(config, self.phase).to(ctx.device)

    def train_dataset(self) -> Dataset:
        return self.task.training_items(self.config)

    def val_dataset(self) -> Dataset | None:
        return None

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        return {}

    def student(self, image: Tensor) -> Tensor:
        """What the sample grid shows as the stage's student output for ``image``."""
        raise NotImplementedError

    def visuals(self, batch: dict) -> list[Tensor]:
        """input | student | teacher, in [-1, 1] (a super-resolution input enlarged x4, nearest)."""
        image = batch["image"]
        columns = [image, self.student(image).float(), self.task.target(image)]
        if self.task.kind == SUPER_RESOLUTION:
            columns[0] = F.interpolate(image, scale_factor=4, mode="nearest")
            columns = [column.clamp(0, 1) * 2 - 1 for column in columns]
        return columns

    def distill(self, output: Tensor, image: Tensor) -> dict[str, Tensor]:
        """The objective's terms of ``output`` against the teacher's output on ``image``."""
        return self.objective(output, self.task.target(image))

    def write_summary(self, run_dir: Path, **content) -> Path:
        summary = {"objective": self.objective.summary(), "teacher_outputs": "computed online each step", **content}
        return atomic_write_text(json.dumps(summary, indent=1) + "\n", run_dir / SUMMARY_FILE)


class Warmup(_Stage):
    """Supernet warm-up by the sandwich rule (see the module docstring)."""

    name: ClassVar[str] = f"{METHOD}-warmup"

    def __init__(self, config: AGDStageConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        self.supernet_kwargs = self.task.supernet_kwargs(config)
        self.supernet = self.task.supernet(config).to(ctx.device)
        self.nets: dict[str, nn.Module] = {"supernet": self.supernet}
        self._optimizers = {"supernet": torch.optim.Adam(self.supernet.parameters(), lr=config.weight_lr)}
        self.uniform = torch.full((len(self.supernet.op_slots), len(OPERATORS)), 1 / len(OPERATORS),
                                  device=ctx.device)

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        image, target = batch["image"], self.task.target(batch["image"])
        losses = {}
        for label, widths in zip(("largest", "smallest", "random1", "random2"),
                                 sandwich_widths(self.supernet, self.ctx.shared_generator())):
            output = self.supernet(image, Sample(self.uniform, tuple(widths)))
            losses[label] = self.objective(output, target)["total"]
        total = self.ctx.step("supernet", sum(losses.values()), grad_clip=self.config.weight_grad_clip)
        return {**{key: value.detach() for key, value in losses.items()}, "total": total}

    def student(self, image: Tensor) -> Tensor:
        return self.supernet(image, Sample(self.uniform, tuple(self.supernet.largest_widths())))

    def export(self, run_dir: Path) -> dict[str, Path]:
        return {"supernet": save_supernet(run_dir / SUPERNET_FILE, self.supernet, self.supernet_kwargs),
                "summary": self.write_summary(run_dir)}


class Search(_Stage):
    """First-order differentiable search under the compute penalty (see the module docstring)."""

    name: ClassVar[str] = f"{METHOD}-search"

    def __init__(self, config: AGDStageConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        kwargs = self.task.supernet_kwargs(config)
        self.supernet = self.task.supernet(config)
        load_supernet_weights(Path(config.supernet), self.supernet, kwargs)
        self.supernet.to(ctx.device)
        self.arch = ArchParameters(self.supernet).to(ctx.device)
        self.nets: dict[str, nn.Module] = {"supernet": self.supernet, "arch": self.arch}
        self._optimizers = {"weights": torch.optim.Adam(self.supernet.parameters(), lr=config.weight_lr),
                            "arch": torch.optim.Adam(self.arch.parameters(), lr=config.arch_lr, betas=(0.5, 0.999))}
        self.table = filled_table(config, self.supernet, Path(config.cost_table))
        self.budget = budget_value(config)
        self.penalty_weight = PenaltyWeight(config.penalty_weight, penalty_floor(config, smallest_cost(self.table)),
                                            self.budget)
        self.history: list[dict] = []

    def train_dataset(self) -> Dataset:
        return self.task.search_items(self.config)

    def train_step(self, batch: dict) -> dict[str, Tensor | float]:
        ctx, supernet = self.ctx, self.supernet
        with ctx.frozen(supernet):
            sample = search_sample(supernet, self.arch, ctx.shared_generator(ARCH_STEP))
            arch_terms = self.distill(supernet(batch["arch_image"], sample), batch["arch_image"])
            penalty = self.penalty_weight.penalty(agd_cost(self.table, self.arch, sample) / self.budget)
            ctx.step("arch", arch_terms["total"] + penalty, grad_clip=0.0)
        with ctx.frozen(self.arch):
            sample = search_sample(supernet, self.arch, ctx.shared_generator(WEIGHT_STEP))
            weight_loss = self.distill(supernet(batch["image"], sample), batch["image"])["total"]
            ctx.step("weights", weight_loss, grad_clip=self.config.weight_grad_clip)
        if (ctx.steps_done + 1) % self.config.eval_every == 0:
            self.evaluate(ctx.steps_done + 1)
        return {"arch": arch_terms["total"].detach(), "penalty": penalty.detach(), "weights": weight_loss.detach(),
                "penalty_weight": self.penalty_weight.value}

    def derived(self) -> dict:
        """The argmax architecture and its predicted cost."""
        ops, widths = derived_choices(self.supernet, self.arch)
        return {"ops": ops, "widths": widths, "cost": self.table.predict(ops, widths)}

    def evaluate(self, step: int) -> None:
        """Derive, predict, adapt the penalty weight; kept in the history."""
        entry = {"step": step, **self.derived()}
        entry["penalty_weight"] = self.penalty_weight.update(entry["cost"])
        self.history.append(entry)

    def student(self, image: Tensor) -> Tensor:
        derived = self.derived()
        return self.supernet(image, one_hot_sample(self.supernet, derived["ops"], derived["widths"]))

    def extra_state(self) -> dict:
        return {"penalty_weight": self.penalty_weight.value, "history": self.history}

    def load_extra_state(self, state: dict) -> None:
        self.penalty_weight.value = float(state["penalty_weight"])
        self.history = list(state["history"])

    def export(self, run_dir: Path) -> dict[str, Path]:
        final = {"step": self.ctx.steps_done, **self.derived(), "penalty_weight": self.penalty_weight.value}
        probabilities = {"op_weights": self.arch.op_weights().tolist(),
                         "width_probabilities": F.softmax(self.arch.width_logits, dim=-1).tolist()}
        content = {"start_penalty_weight": self.config.penalty_weight, "final": final, "history": self.history,
                   **probabilities}
        path = atomic_write_text(json.dumps(content, indent=1) + "\n", run_dir / SEARCH_FILE)
        return {"search": path, "summary": self.write_summary(run_dir)}


class Retrain(_Stage):
    """The derived network from scratch, by distillation (see the module docstring)."""

    name: ClassVar[str] = f"{METHOD}-retrain"
    phase = RETRAIN

    def __init__(self, config: AGDStageConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        derived = json.loads(Path(config.derived).read_text(encoding="utf-8"))
        self.arch_name, self.arch_kwargs = derived["arch"], derived["arch_kwargs"]
        self.generator = build_generator(self.arch_name, **self.arch_kwargs).to(ctx.device)
        self.nets: dict[str, nn.Module] = {"G": self.generator}
        self._optimizers = {"G": torch.optim.Adam(self.generator.parameters(), lr=config.lr,
                                                  betas=(config.beta1, config.beta2))}

    def train_dataset(self) -> Dataset:
        return self.task.training_items(self.config, with_ground_truth=self.on_ground_truth)

    @property
    def on_ground_truth(self) -> bool:
        """The from-scratch control: the ground truth replaces the teacher's output as the target."""
        return self.config.retrain_target == GROUND_TRUTH

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        output = self.generator(batch["image"])
        terms = (self.objective(output, batch["target"]) if self.on_ground_truth
                 else self.distill(output, batch["image"]))
        self.ctx.step("G", terms["total"])
        return {key: value.detach() for key, value in terms.items()}

    def student(self, image: Tensor) -> Tensor:
        return self.generator(image)

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {"G": ("generator", self.arch_name, self.arch_kwargs)}

    def export(self, run_dir: Path) -> dict[str, Path]:
        meta = {"method": METHOD, "task": self.task.kind, "teacher": self.config.teacher,
                "target": self.config.retrain_target}
        if self.task.kind != SUPER_RESOLUTION:
            meta["crop_size"] = self.config.crop_size
        return {"generator": save_model(run_dir / GENERATOR_FILE, self.generator, self.arch_name, self.arch_kwargs,
                                        meta=meta),
                "summary": self.write_summary(run_dir)}
