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
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.archs import build_generator, init_weights
from ganslim.atomic import atomic_write_text
from ganslim.archs.translation.deep import deep_teacher_spec, omgd_distill_layers, wide_teacher_spec
from ganslim.checkpoints import load_generator, resolve_generator_file, save_model
from ganslim.config import ImageTranslationConfig, option
from ganslim.data import IndexedSubset, UnalignedDataset, detect_layout, holdout_indices, without_holdout
from ganslim.engine import TrainContext, steps_per_epoch
from ganslim.engine.schedules import ConstantThenLinearDecay
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES, ChannelDistillation, PerceptualDistillLoss, channel_distillation_loss
from ganslim.methods.teachers import CycleGAN, CycleGANConfig, Pix2Pix, TeacherBase
from ganslim.metrics import RunningMean, psnr, ssim
from ganslim.nn import INIT_TYPES, NORMS
from ganslim.nn.vgg import VGG16Features, find_vgg16_weights, load_vgg16
from ganslim.measure.profile import count_macs, count_params
from ganslim.registry import DISCRIMINATORS

METHOD = "omgd"
AUTO = -1.0
STUDENTS = ("mobile_resnet", "unet_256", "unet")
CD_LAYERS = ("activations", "omgd")
FALLBACK_L1_WEIGHT = 10.0  # student's L1 to each teacher's output when the VGG16 terms are off
PAIRED, UNPAIRED = "paired", "unpaired"
# OMGD's settings: GAN loss and discriminator width by data (its pix2pix / CycleGAN scripts), lambda_cd by
# (data, student family) (mobile ResNet pix2pix 1e2, U-Net pix2pix 1e1, CycleGAN 5e2).
PAPER_DEFAULTS = {PAIRED: {"gan_mode": "hinge", "ndf": 128}, UNPAIRED: {"gan_mode": "lsgan", "ndf": 64}}
PAPER_LAMBDA_CD = {(PAIRED, "mobile_resnet"): 100.0, (PAIRED, "unet"): 10.0,
                   (UNPAIRED, "mobile_resnet"): 500.0, (UNPAIRED, "unet"): 500.0}
GENERATOR_FILE = "generator.pt"
SUMMARY_FILE = "summary.json"
PROFILE_SIZE = 256  # MACs are reported at 256x256 (the published convention) besides the training size


@dataclass(frozen=True)
class OMGDConfig(ImageTranslationConfig):
    """Options of OMGD, paired and unpaired (see the module docstring); ``auto`` / -1 / 0 take OMGD's value."""

    student: str = option("mobile_resnet", "student architecture", choices=STUDENTS)
    width: float = option(1.0, "student width multiplier: ngf = round(base_ngf * width) (1.0/0.75/0.5 -> 16/12/8)",
                          above=0.0)
    base_ngf: int = option(16, "student ngf at width 1.0", min=1)
    n_blocks: int = option(9, "residual blocks of a mobile_resnet student (and its teachers)", min=1)
    num_downs: int = option(8, "downsamplings of a 'unet' student (unet_256 has 8)", min=5)
    norm: str = option("auto", "norm layers of all networks (auto: instance for mobile_resnet, batch for U-Nets)",
                       choices=("auto", *NORMS))
    wide_multiplier: float = option(4.0, "width of the wide teacher (unpaired: of G_A, G_B) over the student's",
                                    above=0.0)
    deep_multiplier: float = option(1.0, "width of the deep teacher over the student's (paired)", above=0.0)
    teacher: str = option("", "checkpoint initialising the wide teacher (unpaired: G_A, and G_B from a folder)")
    discriminator: str = option("basic", "discriminator architecture (basic = 70x70 PatchGAN)",
                                choices=DISCRIMINATORS.names)
    ndf: int = option(0, "discriminator width (0: 128 paired, as OMGD; 64 unpaired, as CycleGAN)", min=0)
    gan_mode: str = option("auto", "adversarial loss of the teachers (auto: hinge paired, lsgan unpaired)",
                           choices=("auto", *GAN_MODES))
    lambda_gan: float = option(1.0, "paired: weight of each teacher's GAN loss", min=0.0)
    lambda_l1: float = option(100.0, "paired: weight of each teacher's L1 loss to the ground truth", min=0.0)
    lambda_cycle: float = option(10.0, "unpaired: weight of both cycle losses", min=0.0)
    lambda_identity: float = option(0.5, "unpaired: identity loss weight, relative to lambda_cycle", min=0.0)
    pool_size: int = option(50, "unpaired: past fakes kept for the discriminators", min=0)
    ssim_weight: float = option(10.0, "student: weight of 1 - SSIM, per teacher", min=0.0)
    style_weight: float = option(1e4, "student: weight of the VGG16 Gram (style) loss, per teacher", min=0.0)
    feature_weight: float = option(10.0, "student: weight of the VGG16 relu2_2 feature loss, per teacher", min=0.0)
    tv_weight: float = option(1e-5, "student: weight of the total variation (a sum over pixels), per teacher",
                              min=0.0)
    lambda_cd: float = option(AUTO, "student: channel distillation weight (-1: 100 mobile_resnet / 10 U-Net "
                                    "paired, 500 unpaired; 0: off)", min=AUTO)
    cd_layers: str = option("activations", "student: mobile ResNet layers of channel distillation (activations: "
                                           "the ReLU outputs of the second downsampling and both upsamplings; "
                                           "omgd: OMGD's code, the second downsampling and blocks 3, 6, 9)",
                            choices=CD_LAYERS)
    l1_weight: float = option(AUTO, "student: weight of L1 to each teacher's output (-1: 10 when the VGG16 terms "
                                    "are off, ganslim's fallback; 0 with VGG16 weights, as OMGD)", min=AUTO)
    student_lr: float = option(0.001, "the student's (and its adapters') Adam learning rate; teachers and "
                                      "discriminator use lr", above=0.0)
    student_epochs_decay: int = option(-1, "epochs at the end of the run over which the student's learning rate "
                                           "decays linearly (-1: epochs_decay, as the teachers)", min=-1)
    vgg_weights: str = option("", "VGG16 ImageNet weights file ('': $GANSLIM_VGG16_WEIGHTS or "
                                  "~/.cache/ganslim/vgg16-397923af.pth; 'none': style/feature terms off)")
    init_type: str = option("normal", "weight initialisation", choices=INIT_TYPES)
    init_gain: float = option(0.02, "scale of the initialisation", min=0.0)
    lr: float = option(0.0002, "initial learning rate of every Adam optimizer", above=0.0)
    beta1: float = option(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=0.999999)
    batch_size: int = option(4, "images per optimisation step and process (OMGD: 4)", min=1)
    n_dis: int = option(1, "paired: student updates per teacher update (the discriminator and teachers train "
                           "every n_dis-th step, the student every step; OMGD: 1 edges2shoes, 3 cityscapes)", min=1)
    holdout_images: int = option(0, "unpaired: training A images held out for validation (0: 10%, 1 to 100)",
                                 min=0)
    snapshot_every: int = option(0, "unpaired: steps between teacher snapshots for the student (0: one epoch)",
                                 min=0)

    def check(self) -> None:
        super().check()
        for key in ("lambda_cd", "l1_weight"):
            value = getattr(self, key)
            if value < 0 and value != AUTO:
                raise GanslimError(f"bad value for '{key}': {value} (use -1 for the default or a weight >= 0)")
        if self.student_epochs_decay > self.epochs + self.epochs_decay:
            raise GanslimError(f"student_epochs_decay {self.student_epochs_decay} is longer than the run "
                               f"({self.epochs} + {self.epochs_decay} epochs): lower it or -1 for epochs_decay")
        if self.student != "unet" and self.num_downs != 8:
            raise GanslimError(f"num_downs has no effect on a '{self.student}' student: set student=unet or drop "
                               f"num_downs")
        if self.student != "mobile_resnet" and self.n_blocks != 9:
            raise GanslimError(f"n_blocks has no effect on a '{self.student}' student: set student=mobile_resnet "
                               f"or drop n_blocks")


# ------------------------------------------------------------------------------------------ config helpers


def data_kind(data: str) -> str:
    """``"paired"`` for an aligned dataset folder (train/ val/), ``"unpaired"`` for an unaligned one."""
    if not data:
        raise GanslimError("no dataset given: pass --data DIR (train/ val/ of A|B images, or trainA/ trainB/)")
    layout = detect_layout(data)
    if layout == "single":
        raise GanslimError(f"'{data}' is a folder of single images: OMGD needs train/ (paired A|B images) or "
                           f"trainA/ trainB/ (unpaired)")
    return PAIRED if layout == "aligned" else UNPAIRED


def _family(student: str) -> str:
    return "mobile_resnet" if student == "mobile_resnet" else "unet"


def resolve_defaults(config: OMGDConfig, kind: str | None = None) -> OMGDConfig:
    """``config`` with ``auto`` / -1 / 0 values replaced by OMGD's for its data (``kind``: detected if None)."""
    kind = kind or data_kind(config.data)
    changes: dict = {key: value for key, value in PAPER_DEFAULTS[kind].items()
                     if getattr(config, key) in ("auto", 0)}
    if config.norm == "auto":
        changes["norm"] = "instance" if config.student == "mobile_resnet" else "batch"
    if config.lambda_cd == AUTO:
        changes["lambda_cd"] = PAPER_LAMBDA_CD[(kind, _family(config.student))]
    return dataclasses.replace(config, **changes) if changes else config


def student_ngf(config: OMGDConfig) -> int:
    """The student's ngf: ``round(base_ngf * width)``, at least 1."""
    return max(1, round(config.base_ngf * config.width))


def student_spec(config: OMGDConfig) -> tuple[str, dict]:
    """``(arch, arch_kwargs)`` of the student a config describes (its ``norm`` must be resolved)."""
    if config.norm == "auto":
        raise ValueError("resolve the config first (resolve_defaults)")
    kwargs = dict(input_nc=config.input_nc, output_nc=config.output_nc, ngf=student_ngf(config), norm=config.norm,
                  use_dropout=False)
    if config.student == "mobile_resnet":
        kwargs["n_blocks"] = config.n_blocks
    elif config.student == "unet":
        kwargs["num_downs"] = config.num_downs
    return config.student, kwargs


def init_from_checkpoint(net: nn.Module, arch: str, kwargs: dict, path: str | Path, role: str) -> None:
    """Load a generator checkpoint into ``net`` (built as ``arch`` + ``kwargs``) if it has the same layers.

    Dropout may differ (it has no weights). Raises GanslimError saying in one line what differs
    (``ngf 64 vs 16``, the architecture, the first mismatching layer) and how to fix it.
    """
    loaded = load_generator(path)
    theirs, ours = loaded.model.state_dict(), net.state_dict()
    differing = [f"{key} {loaded.arch_kwargs[key]} vs {kwargs[key]}"
                 for key in ("input_nc", "output_nc", "ngf", "norm", "n_blocks", "num_downs")
                 if key in loaded.arch_kwargs and key in kwargs and loaded.arch_kwargs[key] != kwargs[key]]
    missing = [key for key in ours if key not in theirs]
    reshaped = [key for key in ours if key in theirs and theirs[key].shape != ours[key].shape]
    extra = sorted(set(theirs) - set(ours))
    if not differing and (missing or reshaped or extra):
        differing = [f"architecture {loaded.arch} vs {arch}"] if loaded.arch != arch else []
        first = (missing or reshaped or extra)[0]
        differing.append(f"layer '{first}' " + ("missing" if missing else "differs" if reshaped else "unexpected"))
    if differing:
        raise GanslimError(f"--teacher {loaded.path} cannot initialise the {role} ({arch}, ngf {kwargs['ngf']}): "
                           f"{'; '.join(differing)}; pass a checkpoint of that architecture or drop --teacher")
    net.load_state_dict(theirs)


def student_l1_weight(config: OMGDConfig, vgg: VGG16Features | None) -> float:
    """The student's L1 weight: ``l1_weight``, or with -1 ganslim's fallback 10 when the VGG16 terms are off (0 when
    they run, as OMGD)."""
    if config.l1_weight != AUTO:
        return config.l1_weight
    return FALLBACK_L1_WEIGHT if vgg is None else 0.0


def load_omgd_vgg(config: OMGDConfig) -> VGG16Features | None:
    """The VGG16 of the style / feature terms, fed [0, 1] images without ImageNet normalisation (as OMGD)."""
    if config.vgg_weights == "none" or (config.style_weight == 0 and config.feature_weight == 0):
        return None
    path = find_vgg16_weights(config.vgg_weights or None)
    return load_vgg16(path, imagenet_norm=False) if path is not None else None


# ------------------------------------------------------------------------------------------ modules


class FeatureTap(nn.Module):
    """A generator that also returns its activations at ``layers``, optionally through per-layer adapters.

    One module, so DistributedDataParallel sees the generator and its adapters in a single forward.
    ``forward(image)`` -> ``(output (N, C, H, W), [per layer (N, C_l, H_l, W_l)])``; no layers: ``[]``.
    """

    def __init__(self, generator: nn.Module, layers: Sequence[int], adapters: ChannelDistillation | None = None
                 ) -> None:
        super().__init__()
        self.generator, self.layers, self.adapters = generator, list(layers), adapters

    def forward(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        if not self.layers:
            return self.generator(image), []
        output, features = self.generator.forward_features(image, self.layers)
        if self.adapters is not None:
            features = [adapter(feature) for adapter, feature in zip(self.adapters.adapters, features)]
        return output, features


class OMGDStudentLoss(nn.Module):
    """The student's objective; it takes no ground truth and no discriminator, by construction.

    ``sum over teachers of PerceptualDistillLoss(student, teacher) + lambda_cd * channel_distillation``.

    Args:
        perceptual: the per-teacher image terms (its VGG may be None: SSIM and TV only).
        lambda_cd: weight of the channel distillation term (0: off).
    """

    def __init__(self, perceptual: PerceptualDistillLoss, lambda_cd: float) -> None:
        super().__init__()
        self.perceptual, self.lambda_cd = perceptual, lambda_cd

    def forward(self, student_image: Tensor, adapted_features: Sequence[Tensor], teacher_images: Mapping[str, Tensor],
                teacher_features: Sequence[Tensor]) -> dict[str, Tensor]:
        """Weighted terms ``{term_teacher: ()}`` (e.g. ``ssim_wide``, ``style_deep``) and ``cd``; sum them.

        Args:
            student_image: (N, C, H, W) in [-1, 1]; gradients flow to it.
            adapted_features: per distilled layer (N, C_l, H_l, W_l), the student's activation through its
                adapter (at the teacher's width ``C_l``); may be empty when ``lambda_cd`` is 0.
            teacher_images: name -> (N, C, H, W) teacher output; treated as constant.
            teacher_features: per layer (N, C_l, H'_l, W'_l) activations of the wide teacher; constant.
        """
        terms: dict[str, Tensor] = {}
        for name, image in teacher_images.items():
            for term, value in self.perceptual(student_image, image.detach()).items():
                terms[f"{term}_{name}"] = value
        if self.lambda_cd > 0:
            terms["cd"] = self.lambda_cd * channel_distillation_loss(adapted_features, teacher_features)
        return terms


# ------------------------------------------------------------------------------------------ methods


class _OMGDBase(TeacherBase):
    """Student, adapters, student loss, its optimizer and the export shared by both variants."""

    name: ClassVar[str] = METHOD
    Config: ClassVar[type] = OMGDConfig
    monitor: ClassVar[tuple[str, str] | None] = ("psnr", "max")
    ema_networks: ClassVar[tuple[str, ...]] = ("student",)
    kind: ClassVar[str]

    def __init__(self, config: OMGDConfig, ctx: TrainContext) -> None:
        kind = data_kind(config.data)
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
            adapters = ChannelDistillation([student.feature_channels(i) for i in layers],
                                           [teacher.feature_channels(i) for i in layers]).to(self.ctx.device)
            self.nets["adapters"] = adapters
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

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

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
                count = count_macs(student, torch.zeros(1, self.config.input_nc, size, size, device=self.ctx.device))
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
        self._optimizers.update(teachers=self.adam("teacher_wide", "teacher_deep"), D=self.adam("discriminator"))
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
    return OMGD if data_kind(config.data) == PAIRED else OMGDUnpaired
