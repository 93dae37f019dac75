"""OMGD (Ren et al., ICCV 2021): online multi-granularity distillation of a compact generator in one stage.

The teachers are trained from scratch *together with* the student, and the student never sees the
discriminator or the ground truth: it learns only from the teachers' (detached) outputs and activations.

**Paired data** (:class:`OMGD`, pix2pix layout ``train/ val/``). Three generators train every step:

* a *wide* teacher (the student's architecture, ``wide_multiplier`` x wider) and a *deep* teacher (the
  student's width, extra residual blocks; see :mod:`ganslim.archs.translation.deep`), each on ``lambda_gan`` x
  GAN + ``lambda_l1`` x L1 to the ground truth, against one *shared* discriminator that sees (A, B) pairs
  and is trained on both teachers' fakes (``D_real + (D_fake_wide + D_fake_deep) / 2``, as OMGD);
* the student, on :class:`OMGDStudentLoss`: per teacher ``ssim_weight (1 - SSIM) + style_weight style +
  feature_weight feature + tv_weight TV`` (:class:`~ganslim.losses.PerceptualDistillLoss`), plus
  ``lambda_cd`` x channel distillation towards the wide teacher at :func:`omgd_distill_layers` (adapter
  1x1 conv + BatchNorm + ReLU on the student's activation, global average pool, MSE to the teacher's pool).

Order per step, as OMGD: all three generators run once; the discriminator is updated, then the teachers
(discriminator frozen), then the student from the teachers' outputs of that same forward pass. With
``n_dis`` > 1 (OMGD's option) the discriminator and teachers update on one step in ``n_dis`` and the student
on every step, from the teachers' no-gradient outputs in between.
Validation on ``val/``: the student's PSNR / SSIM against the ground truth (``psnr`` picks ``best.pt``), and
the teachers' PSNR (``psnr_wide``, ``psnr_deep``).

**Unpaired data** (:class:`OMGDUnpaired`, CycleGAN layout ``trainA/ trainB/``), as OMGD's CycleGAN variant:
one teacher pair (G_A, G_B at the wide teacher's architecture, with D_A, D_B) trains with the CycleGAN
losses (:class:`~ganslim.methods.teachers.CycleGAN`: LSGAN, cycle ``lambda_cycle``, identity
``lambda_identity``, image pools). Every ``snapshot_every`` steps (default: one epoch) G_A is copied into
a frozen *teacher snapshot*; from the first snapshot on, every step also trains the student on A images
towards the snapshot's output (the same student objective, one teacher). OMGD alternates phases and picks
the snapshot as the best teacher by FID; here the snapshot is the latest G_A (no FID needed). Validation:
``holdout_images`` training A images are never trained on; ``psnr`` / ``ssim`` are the student's against
the snapshot's output there (against G_A's before the first snapshot) and pick ``best.pt``.

**VGG16**: the style and feature terms need torchvision's ImageNet weights file (``vgg_weights``, else
``$GANSLIM_VGG16_WEIGHTS``, else ``~/.cache/ganslim/vgg16-397923af.pth``); without it those terms are off and
one warning says how to turn them on. The VGG sees ``(x + 1) / 2`` *without* the ImageNet mean / std, as
OMGD feeds it: the paper's weights (style 1e4, feature 10) were tuned on that input.

**Exports** (run folder): the student as ``generator.pt`` (ganslim format: arch + kwargs, what ``ganslim
translate`` and ``ganslim profile`` take); paired: ``teacher_wide.pt``, ``teacher_deep.pt``,
``discriminator.pt``; unpaired: ``teacher_snapshot.pt`` and the CycleGAN teacher's files
(``generator_A.pt``, ``generator_B.pt``, ``discriminator_A.pt``, ``discriminator_B.pt`` and ``reference/``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.archs import build_generator, init_weights
from ganslim.atomic import atomic_write_text
from ganslim.checkpoints import resolve_generator_file, save_model
from ganslim.data import (
    PAIRED,
    UNPAIRED,
    IndexedSubset,
    UnalignedDataset,
    data_kind,
    holdout_indices,
    without_holdout,
)
from ganslim.engine import TrainContext, steps_per_epoch
from ganslim.engine.schedules import ConstantThenLinearDecay
from ganslim.errors import GanslimError
from ganslim.losses import ChannelDistillation, FeatureTap, PerceptualDistillLoss
from ganslim.measure.compare import model_cost
from ganslim.measure.profile import count_params
from ganslim.methods.omgd.config import AUTO, METHOD, TITLE, OMGDConfig, resolve_defaults, student_spec
from ganslim.methods.omgd.loss import OMGDStudentLoss, load_omgd_vgg, student_l1_weight
from ganslim.methods.omgd.teachers import (
    deep_teacher_spec,
    init_from_checkpoint,
    omgd_distill_layers,
    wide_teacher_spec,
)
from ganslim.methods.teachers import CycleGAN, CycleGANConfig, Pix2Pix, TeacherBase
from ganslim.metrics import RunningMean, psnr, ssim

GENERATOR_FILE = "generator.pt"
SUMMARY_FILE = "summary.json"
PROFILE_SIZE = 256  # MACs are reported at 256x256 (the published convention) besides the training size


class _OMGDBase(TeacherBase):
    """Student, adapters, student loss, its optimizer and the export shared by both variants."""

    name: ClassVar[str] = METHOD
    Config: ClassVar[type] = OMGDConfig
    monitor: ClassVar[tuple[str, str] | None] = ("psnr", "max")
    ema_networks: ClassVar[tuple[str, ...]] = ("student",)
    kind: ClassVar[str]

    def __init__(self, config: OMGDConfig, ctx: TrainContext) -> None:
        kind = data_kind(config.data, TITLE)
        if kind != self.kind:
            raise GanslimError(f"'{config.data}' holds {kind} data, {type(self).__name__} trains on {self.kind} "
                               f"data: use omgd_method(config) to pick the variant")
        super().__init__(resolve_defaults(config, kind), ctx)
        self.config: OMGDConfig
        self.taps: dict[str, nn.Module] = {}

    def _build(self, name: str, spec: tuple[str, dict]) -> nn.Module:
        """Build, initialise and register generator ``name`` unwrapped: it trains through a :class:`FeatureTap`."""
        arch, kwargs = spec
        net = build_generator(arch, **kwargs)
        self.nets[name] = init_weights(net, self.config.init_type, self.config.init_gain).to(self.ctx.device)
        self.specs[name] = ("generator", arch, kwargs)
        return self.nets[name]

    def _add_student(self, wide: str) -> None:
        """Build the student, its adapters towards the ``wide`` network, the student loss and its optimizer."""
        config = self.config
        student, teacher = self._build("student", student_spec(config)), self.nets[wide]
        layers = omgd_distill_layers(student, config.cd_layers) if config.lambda_cd > 0 else []
        adapters = None
        if layers:
            distillation = ChannelDistillation([student.feature_channels(i) for i in layers],
                                               [teacher.feature_channels(i) for i in layers]).to(self.ctx.device)
            self.nets["adapters"], adapters = distillation, distillation.adapters
        self.layers = layers
        self.taps["student"] = self.ctx.wrap(FeatureTap(student, layers, adapters))
        vgg = load_omgd_vgg(config)
        vgg_off = config.vgg_weights == "none"  # asked for: no warning that the VGG terms are off
        perceptual = PerceptualDistillLoss(vgg, ssim_weight=config.ssim_weight,
                                           style_weight=0.0 if vgg_off else config.style_weight,
                                           feature_weight=0.0 if vgg_off else config.feature_weight,
                                           tv_weight=config.tv_weight, l1_weight=student_l1_weight(config, vgg))
        self.student_loss = OMGDStudentLoss(perceptual, config.lambda_cd).to(self.ctx.device)
        trained = [name for name in ("student", "adapters") if name in self.nets]
        self._optimizers = {"student": self.adam(*trained, lr=config.student_lr)}

    def lr_schedules(self) -> dict[str, ConstantThenLinearDecay]:
        """The student's learning rate decays over its last ``student_epochs_decay`` epochs (-1: as the teachers)."""
        config = self.config
        if config.student_epochs_decay < 0:
            return {}
        total = config.epochs + config.epochs_decay
        return {"student": ConstantThenLinearDecay(total - config.student_epochs_decay, config.student_epochs_decay)}

    def objective(self) -> dict:
        """The student's objective as it runs: weighted terms per teacher, channel distillation, and the VGG16 status
        (written to ``summary.json``; without VGG16 weights the L1 term is ganslim's fallback, not OMGD's)."""
        perceptual = self.student_loss.perceptual
        terms = {term: perceptual.term_weights[term] for term in perceptual.terms}
        vgg = "loaded" if perceptual.vgg is not None else "off" if self.config.vgg_weights == "none" else "absent"
        summary = {"per_teacher": terms, "lambda_cd": self.student_loss.lambda_cd, "cd_layers": self.layers,
                   "vgg16": vgg, "student_lr": self.config.student_lr}
        if perceptual.vgg is None and "l1" in terms:
            summary["fallback"] = ("ganslim's: L1 to each teacher's output stands in for OMGD's VGG16 style and "
                                   "feature terms, which are off without VGG16 weights")
        return summary

    def _student_step(self, real_a: Tensor, teacher_images: Mapping[str, Tensor],
                      teacher_features: Sequence[Tensor]) -> dict[str, Tensor]:
        """One student update towards the teachers' outputs / activations (constants); terms prefixed ``S_``."""
        with self.ctx.autocast():
            student, adapted = self.taps["student"](real_a)
            terms = self.student_loss(student, adapted, teacher_images, teacher_features)
        self.ctx.step("student", sum(terms.values()))
        return {f"S_{key}": value for key, value in terms.items()}

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        specs = super().model_specs()
        return {"student": specs.pop("student"), **specs}  # the product first: what a training checkpoint loads

    def export_meta(self, method: str) -> dict:
        config = self.config
        return {**super().export_meta(method), "student": config.student, "width": config.width}

    def _export_own(self, run_dir: Path, files: dict[str, str]) -> dict[str, Path]:
        """Save networks ``name -> file`` (ganslim format), the student as ``generator.pt``, and ``summary.json``."""
        meta = self.export_meta(self.name)
        exported = {}
        for name, file in {"student": GENERATOR_FILE, **files}.items():
            kind, arch, kwargs = self.specs[name]
            exported[name] = save_model(run_dir / file, self.nets[name], arch, kwargs, kind=kind,
                                        meta={**meta, "role": name})
        exported["summary"] = atomic_write_text(json.dumps(self.summary(), indent=1) + "\n", run_dir / SUMMARY_FILE)
        return exported

    def summary(self) -> dict:
        """The student (architecture, parameters, MACs at 256x256 and at the training size) and its objective."""
        student = self.nets["student"]
        _, arch, kwargs = self.specs["student"]
        cost = {}
        for size in sorted({PROFILE_SIZE, self.config.crop_size}):
            try:
                count = model_cost(student, size).macs
            except GanslimError:  # a U-Net deeper than 8 downsamplings takes no 256x256 image
                continue
            cost[f"{size}x{size}"] = {"macs": count.macs, "macs_published": count.macs_published}
        return {"method": self.name, "kind": self.kind, "training_size": self.config.crop_size,
                "student": {"arch": arch, "arch_kwargs": kwargs, "params": count_params(student), "cost": cost,
                            "file": GENERATOR_FILE},
                "objective": self.objective()}


class OMGD(_OMGDBase):
    """OMGD on paired data: wide + deep teachers with a shared discriminator, and the student (module docstring)."""

    kind = PAIRED

    def __init__(self, config: OMGDConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        config = self.config
        student = student_spec(config)
        wide = self._build("teacher_wide", wide_teacher_spec(*student, config.wide_multiplier))
        self.add_network("teacher_deep", "generator", deep_teacher_spec(*student, config.deep_multiplier))
        self.add_network("discriminator", "discriminator", (config.discriminator, dict(
            input_nc=config.input_nc + config.output_nc, ndf=config.ndf, norm=config.norm)))
        if config.teacher:
            _, arch, kwargs = self.specs["teacher_wide"]
            init_from_checkpoint(wide, arch, kwargs, resolve_generator_file(config.teacher, config.direction),
                                 "wide teacher")
        self._add_student("teacher_wide")
        self.taps["teacher_wide"] = self.ctx.wrap(FeatureTap(wide, self.layers))
        deep_lr = {"teacher_deep": config.deep_lr} if config.deep_lr != AUTO else {}
        self._optimizers.update(teachers=self.adam("teacher_wide", "teacher_deep", own_lrs=deep_lr),
                                D=self.adam("discriminator"))
        self.steps = 0

    # pix2pix's data: train/ with training preprocessing, val/ (if present) resized to crop_size.
    train_dataset = Pix2Pix.train_dataset
    val_dataset = Pix2Pix.val_dataset

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """Shared D, then both teachers (D frozen), then the student from the same forward's teacher outputs.

        With ``n_dis`` > 1 the discriminator and teachers update on the first of every ``n_dis`` steps only;
        on the others the teachers run without gradients and only the student learns.
        """
        ctx, real_a = self.ctx, batch["A"]
        update_teachers = self.steps % self.config.n_dis == 0
        self.steps += 1
        if update_teachers:
            teachers, wide_features, losses = self._teacher_step(real_a, batch["B"])
        else:
            with torch.no_grad(), ctx.autocast():
                wide, wide_features = self.taps["teacher_wide"](real_a)
                teachers, losses = {"wide": wide, "deep": self.nets["teacher_deep"](real_a)}, {}
        losses.update(self._student_step(real_a, teachers, wide_features))
        return {key: value.detach() for key, value in losses.items()}

    def _teacher_step(self, real_a: Tensor, real_b: Tensor) -> tuple[dict[str, Tensor], list[Tensor], dict]:
        """Update D, then both teachers; returns their outputs, the wide teacher's features and the losses."""
        ctx, config = self.ctx, self.config
        with ctx.autocast():
            wide, wide_features = self.taps["teacher_wide"](real_a)
            teachers = {"wide": wide, "deep": self.trained["teacher_deep"](real_a)}
        losses: dict[str, Tensor] = {}
        with ctx.autocast():
            judge = self.trained["discriminator"]
            losses["D_real"] = self.gan_loss(judge(torch.cat([real_a, real_b], 1)), True)
            for name, image in teachers.items():
                losses[f"D_fake_{name}"] = self.gan_loss(judge(torch.cat([real_a, image.detach()], 1)), False)
        ctx.step("D", losses["D_real"] + 0.5 * (losses["D_fake_wide"] + losses["D_fake_deep"]))
        with ctx.frozen(self.nets["discriminator"]):
            with ctx.autocast():
                for name, image in teachers.items():
                    pred = self.nets["discriminator"](torch.cat([real_a, image], 1))
                    losses[f"T_GAN_{name}"] = config.lambda_gan * self.gan_loss(pred, True, for_discriminator=False)
                    losses[f"T_L1_{name}"] = config.lambda_l1 * F.l1_loss(image.float(), real_b)
            ctx.step("teachers", sum(value for key, value in losses.items() if key.startswith("T_")))
        return teachers, wide_features, losses

    def extra_state(self) -> dict:
        return {"steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        self.steps = int(state["steps"])

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Student PSNR (dB) / SSIM against the ground truth of ``val/``; teachers' PSNR for comparison."""
        means = {key: RunningMean() for key in ("psnr", "ssim", "psnr_wide", "psnr_deep")}
        for batch in batches:
            student = self.nets["student"](batch["A"]).float()
            means["psnr"].update(psnr(student, batch["B"]))
            means["ssim"].update(ssim(student, batch["B"]))
            for name in ("wide", "deep"):
                means[f"psnr_{name}"].update(psnr(self.nets[f"teacher_{name}"](batch["A"]).float(), batch["B"]))
        return {key: mean.compute() for key, mean in means.items()}

    def visuals(self, batch: dict) -> list[Tensor]:
        """input | student | wide teacher | deep teacher | ground truth."""
        real_a = batch["A"]
        return [real_a, *(self.nets[name](real_a).float() for name in ("student", "teacher_wide", "teacher_deep")),
                batch["B"]]

    def export(self, run_dir: Path) -> dict[str, Path]:
        return self._export_own(run_dir, {"teacher_wide": "teacher_wide.pt", "teacher_deep": "teacher_deep.pt",
                                          "discriminator": "discriminator.pt"})


class OMGDUnpaired(_OMGDBase):
    """OMGD on unpaired data: a CycleGAN teacher pair, a G_A snapshot, and the student (module docstring)."""

    kind = UNPAIRED

    def __init__(self, config: OMGDConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        config = self.config
        arch, kwargs = wide_teacher_spec(*student_spec(config), config.wide_multiplier)
        teacher_config = CycleGANConfig(**{
            **{key: getattr(config, key) for key in _shared_fields(CycleGANConfig, OMGDConfig)},
            "generator": arch, "ngf": kwargs["ngf"], "dropout": False,
            **{key: kwargs[key] for key in ("n_blocks", "num_downs") if key in kwargs},
            "lambda_a": config.lambda_cycle, "lambda_b": config.lambda_cycle})
        self.teacher_pair = CycleGAN(teacher_config, ctx)
        self.specs.update(self.teacher_pair.specs)
        self.nets.update(self.teacher_pair.nets)
        if config.teacher:
            self._init_teacher_pair(config.teacher)
        _, arch, kwargs = self.specs["G_A"]
        snapshot = build_generator(arch, **kwargs).to(ctx.device).eval().requires_grad_(False)
        snapshot.load_state_dict(self.nets["G_A"].state_dict())
        self.specs["teacher_snapshot"], self.nets["teacher_snapshot"] = ("generator", arch, kwargs), snapshot
        self._add_student("G_A")
        self.snapshot_tap = FeatureTap(snapshot, self.layers)
        self._optimizers.update(self.teacher_pair.optimizers())
        self.snapshot_every = config.snapshot_every or steps_per_epoch(len(self.train_dataset()), config.batch_size,
                                                                        ctx.dist)
        self.steps = 0

    def _init_teacher_pair(self, path: str) -> None:
        """G_A from ``path`` (a file, or the A->B generator in a folder); G_B too from a folder holding one."""
        direction = self.config.direction
        sides = {"G_A": resolve_generator_file(path, direction)}
        if Path(path).is_dir():
            other = resolve_generator_file(path, "BtoA" if direction == "AtoB" else "AtoB")
            if other != sides["G_A"]:
                sides["G_B"] = other
        for name, file in sides.items():
            _, arch, kwargs = self.specs[name]
            init_from_checkpoint(self.nets[name], arch, kwargs, file, f"teacher {name}")

    def train_dataset(self) -> IndexedSubset:
        """Training items whose A image is not held out (teachers and student never see those)."""
        dataset = UnalignedDataset(self.config.data, "train", **self.dataset_kwargs(train=True))
        return without_holdout(dataset, len(dataset.A_paths), self.config.holdout_images)

    def val_dataset(self) -> IndexedSubset:
        """The held-out A images (evaluation preprocessing)."""
        dataset = UnalignedDataset(self.config.data, "train", **self.dataset_kwargs(train=False))
        return IndexedSubset(dataset, holdout_indices(len(dataset.A_paths), self.config.holdout_images))

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """The CycleGAN teacher step; every ``snapshot_every`` steps a new snapshot; then (once there is one)
        the student step on the A images towards the snapshot's output."""
        losses = self.teacher_pair.train_step(batch)
        self.steps += 1
        if self.steps % self.snapshot_every == 0:
            self.nets["teacher_snapshot"].load_state_dict(self.nets["G_A"].state_dict())
        if self.steps >= self.snapshot_every:
            with torch.no_grad(), self.ctx.autocast():
                target, target_features = self.snapshot_tap(batch["A"])
            losses.update(self._student_step(batch["A"], {"teacher": target}, target_features))
        return {key: value.detach() for key, value in losses.items()}

    def _target(self) -> nn.Module:
        return self.nets["teacher_snapshot"] if self.steps >= self.snapshot_every else self.nets["G_A"]

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Student PSNR (dB) / SSIM against the teacher snapshot's output (G_A's before the first snapshot)."""
        means = {key: RunningMean() for key in ("psnr", "ssim")}
        target = self._target()
        for batch in batches:
            student, teacher = self.nets["student"](batch["A"]).float(), target(batch["A"]).float()
            means["psnr"].update(psnr(student, teacher))
            means["ssim"].update(ssim(student, teacher))
        return {key: mean.compute() for key, mean in means.items()}

    def visuals(self, batch: dict) -> list[Tensor]:
        """input A | student | teacher snapshot | G_A now | real B."""
        real_a = batch["A"]
        return [real_a, *(self.nets[name](real_a).float() for name in ("student", "teacher_snapshot", "G_A")),
                batch["B"]]

    def extra_state(self) -> dict:
        return {"steps": self.steps, "teacher_pair": self.teacher_pair.extra_state()}

    def load_extra_state(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.teacher_pair.load_extra_state(state["teacher_pair"])

    def export(self, run_dir: Path) -> dict[str, Path]:
        exported = self.teacher_pair.export(run_dir)
        exported.update(self._export_own(run_dir, {"teacher_snapshot": "teacher_snapshot.pt"}))
        return exported


def _shared_fields(target: type, source: type) -> list[str]:
    """Names of the fields two config classes both declare."""
    names = {item.name for item in dataclasses.fields(source)}
    return [item.name for item in dataclasses.fields(target) if item.name in names]


def omgd_method(config: OMGDConfig) -> type[_OMGDBase]:
    """The OMGD variant for the config's data: :class:`OMGD` (paired) or :class:`OMGDUnpaired`."""
    return OMGD if data_kind(config.data, TITLE) == PAIRED else OMGDUnpaired
