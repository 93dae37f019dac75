"""GAN Compression distillation (Li et al., CVPR 2020): the once-for-all supernet and the fine-tune stage.

Both methods follow :mod:`ganslim.engine.protocol` and share :class:`DistillConfig`. A frozen teacher (eval
mode, no gradients) is loaded from ``teacher``; the student is a mobile ResNet sized from it. The student's
generator loss is::

    lambda_gan * GAN(D(fake)) + lambda_recon * L1(fake, target) + lambda_distill * sum_l MSE(A_l(S_l), T_l)

with ``target`` the ground truth for paired (aligned) data and the teacher's output for unpaired data (one
loss for both), and ``A_l`` learned 1x1 convs mapping the student's activation at layer l to the teacher's
width. Distilled layers: the output of the second downsampling and of the last residual block of each
block group (blocks 3, 6, 9 of a 9-block ResNet teacher), as the paper. A U-Net teacher has no activations
aligned with the student's, so it is distilled at the output only (said once in the log). The paper's
defaults are taken from the data (``resolve_defaults``): paired lambda_recon 100, lambda_distill 1, hinge;
unpaired (CycleGAN data; G_A is compressed) lambda_recon 10, lambda_distill 0.01, LSGAN.

* ``gan-compression-supernet`` (:class:`SupernetDistillation`): the student is a
  ``super_mobile_resnet`` whose largest widths follow the teacher's ngf (or ``student_ngf``); every step
  trains one channel configuration drawn uniformly from the search space, or with ``sampling=sandwich``
  the largest, the smallest and a random one (their losses averaged in one update). Exports
  ``supernet.pt``, ``discriminator.pt`` and ``adapters.pt``.
* ``gan-compression-finetune`` (:class:`FinetuneDistillation`): plain distillation of the one configuration
  ``fixed_channels``, as a compact ``mobile_resnet`` started from the supernet's weights (``supernet``),
  adapters and discriminator. Exports the compact ``generator.pt`` (plus ``discriminator.pt``,
  ``adapters.pt``), which ``ganslim translate`` and ``ganslim profile`` take.

The discriminator starts from the teacher's (``teacher_discriminator``, or ``discriminator.pt`` /
``latest_net_D.pth`` / ``latest_net_D_A.pth`` next to the teacher file), else it is fresh. A part of the
*training* images (``holdout_images``) is held out: never trained on, it scores validation (``psnr``: vs
the ground truth for paired data, vs the teacher's output for unpaired) and the search. Paired data with a
``val/`` split also reports ``val_psnr`` / ``val_ssim`` there; the test split is never read.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.archs import ResnetGenerator, build_discriminator, build_generator, init_weights
from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator, channel_names, check_channels
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.atomic import atomic_torch_save
from ganslim.checkpoints import LoadedModel, load_discriminator, load_generator, resolve_generator_file, save_model
from ganslim.checkpoints.format import read_checkpoint
from ganslim.compress import SearchSpace, extract_subnet, parse_channels
from ganslim.config import ImageTranslationConfig, option
from ganslim.data import (
    AlignedDataset,
    IndexedSubset,
    UnalignedDataset,
    detect_layout,
    holdout_indices,
    without_holdout,
)
from ganslim.engine import TrainContext, check_image_sides, derive_seed
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES, FeatureDistillation, GANLoss
from ganslim.metrics import psnr, ssim
from ganslim.nn import NORMS
from ganslim.nn.elastic import ElasticConv2d, leading_slice
from ganslim.weights import read_weights_only

logger = logging.getLogger(__name__)

AUTO = -1.0  # lambda_recon / lambda_distill: the paper's value for the data
PAPER_DEFAULTS = {
    "paired": {"lambda_recon": 100.0, "lambda_distill": 1.0, "gan_mode": "hinge"},
    "unpaired": {"lambda_recon": 10.0, "lambda_distill": 0.01, "gan_mode": "lsgan"},
}
SUPERNET_FILE = "supernet.pt"
GENERATOR_FILE = "generator.pt"
DISCRIMINATOR_FILE = "discriminator.pt"
ADAPTERS_FILE = "adapters.pt"
ADAPTERS_FORMAT = "ganslim-adapters"
# Discriminators looked for next to a teacher file, by the side of the teacher ("" or "_A" vs "_B").
_TEACHER_DISCRIMINATORS = {
    "A": ("discriminator.pt", "discriminator_A.pt", "latest_net_D.pth", "latest_net_D_A.pth"),
    "B": ("discriminator.pt", "discriminator_B.pt", "latest_net_D.pth", "latest_net_D_B.pth"),
}
HOLDOUT_SPLIT, VAL_SPLIT = "holdout", "val"
_SEED_STREAM = 0x6A5C  # the stream of channel configurations drawn during supernet training


@dataclass(frozen=True)
class DistillConfig(ImageTranslationConfig):
    """Options of both GAN Compression training stages (see the module docstring)."""

    teacher: str = option("", "teacher generator: a ganslim .pt, a reference latest_net_G*.pth, or a run folder")
    teacher_discriminator: str = option(
        "", "discriminator to start from ('': the teacher's, found next to its file, else fresh; 'none': fresh)")
    student_ngf: int = option(0, "stem width of the largest student (0: the teacher's ngf)", min=0)
    student_norm: str = option("auto", "student norm layers (auto: the teacher's)", choices=("auto", *NORMS))
    student_blocks: int = option(0, "student residual blocks (0: the teacher's for a ResNet teacher, else 9)",
                                 min=0)
    ndf: int = option(64, "width of a fresh discriminator (unused when one is loaded)", min=1)
    gan_mode: str = option("auto", "adversarial loss (auto: hinge for paired data, lsgan for unpaired)",
                           choices=("auto", *GAN_MODES))
    lambda_gan: float = option(1.0, "weight of the GAN loss", min=0.0)
    lambda_recon: float = option(AUTO, "weight of the L1 reconstruction loss (-1: 100 paired, 10 unpaired)",
                                 min=AUTO)
    lambda_distill: float = option(AUTO, "weight of the feature distillation loss (-1: 1 paired, 0.01 unpaired)",
                                   min=AUTO)
    lr: float = option(0.0002, "initial learning rate of both Adam optimizers", above=0.0)
    beta1: float = option(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=0.999999)
    holdout_images: int = option(
        0, "training images held out for validation and search, never trained on (0: 10%, 1 to 100)", min=0)
    channel_ratios: str = option("1,0.75,0.5,0.375,0.25",
                                 "candidate widths per layer, as fractions of its largest width")
    channel_multiple: int = option(8, "candidate widths are rounded to multiples of this", min=1)
    candidates: str = option("", "explicit candidate widths: ';' between layers, ',' between widths "
                                 "(overrides channel_ratios)")
    sampling: str = option("uniform", "supernet: configurations per step (uniform: one random; sandwich: "
                                      "largest + smallest + random)", choices=("uniform", "sandwich"))
    fixed_channels: str = option("", "fine-tune: the widths of the sub-network, e.g. 16,32,64,32,48,64,32,16")
    supernet: str = option("", "fine-tune / search: supernet.pt (or its run folder) to start from; pipeline: "
                                 "reuse it instead of training stage 1")

    def check(self) -> None:
        super().check()
        for key in ("lambda_recon", "lambda_distill"):
            value = getattr(self, key)
            if value < 0 and value != AUTO:
                raise GanslimError(f"bad value for '{key}': {value} (use -1 for the paper's default or a weight >= 0)")
        parse_ratios(self.channel_ratios)
        if self.candidates:
            parse_candidates(self.candidates)
        if self.fixed_channels:
            parse_channels(self.fixed_channels)


# ------------------------------------------------------------------------------------------ config helpers


def parse_ratios(text: str) -> list[float]:
    """``"1,0.5"`` -> ``[1.0, 0.5]`` (each in (0, 1])."""
    try:
        ratios = [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        ratios = []
    if not ratios or not all(0 < r <= 1 for r in ratios):
        raise GanslimError(f"channel_ratios '{text}' must be comma-separated fractions in (0, 1], "
                           f"e.g. 1,0.75,0.5,0.375,0.25")
    return ratios


def parse_candidates(text: str) -> list[list[int]]:
    """``"16,8;32,16;..."`` -> one list of widths per position of a configuration."""
    positions = [parse_channels(part) for part in text.split(";")]
    if any(not widths for widths in positions):
        raise GanslimError(f"candidates '{text}' has an empty layer: write e.g. 64,48,32;128,96,64;...")
    return positions


def data_kind(data: str) -> str:
    """``"paired"`` for an aligned dataset folder, ``"unpaired"`` for an unaligned one."""
    if not data:
        raise GanslimError("no dataset given: pass --data DIR (train/ of paired A|B images, or trainA/ trainB/)")
    layout = detect_layout(data)
    if layout == "single":
        raise GanslimError(f"'{data}' is a folder of single images: GAN Compression needs train/ (paired A|B "
                           f"images) or trainA/ trainB/ (unpaired)")
    return "paired" if layout == "aligned" else "unpaired"


def resolve_defaults(config: DistillConfig) -> DistillConfig:
    """``config`` with ``auto`` / -1 values replaced by the paper's defaults for its data (paired/unpaired)."""
    defaults = PAPER_DEFAULTS[data_kind(config.data)]
    changes = {key: value for key, value in defaults.items()
               if getattr(config, key) == ("auto" if isinstance(value, str) else AUTO)}
    return dataclasses.replace(config, **changes) if changes else config


def search_space(config: DistillConfig, supernet: SuperMobileResnetGenerator) -> SearchSpace:
    """The channel search space of ``supernet`` that ``config`` describes (explicit candidates or ratios)."""
    if config.candidates:
        return SearchSpace.for_supernet(supernet, parse_candidates(config.candidates))
    return SearchSpace.for_supernet(supernet, ratios=parse_ratios(config.channel_ratios),
                                    multiple=config.channel_multiple)


# ------------------------------------------------------------------------------------------ networks


def load_teacher(config: DistillConfig, device: torch.device) -> LoadedModel:
    """The teacher generator, frozen, in eval mode, on ``device``; its channels must match the data's."""
    if not config.teacher:
        raise GanslimError("no teacher given: pass --teacher CKPT (a generator.pt, latest_net_G.pth or run folder)")
    loaded = load_generator(config.teacher, direction=config.direction)
    teacher = loaded.model
    in_nc, out_nc = loaded.arch_kwargs.get("input_nc", 3), loaded.arch_kwargs.get("output_nc", 3)
    if (in_nc, out_nc) != (config.input_nc, config.output_nc):
        raise GanslimError(f"the teacher maps {in_nc} to {out_nc} channels but input_nc={config.input_nc}, "
                           f"output_nc={config.output_nc}: set input_nc={in_nc} output_nc={out_nc}")
    teacher.to(device).eval().requires_grad_(False)
    return loaded


def student_kwargs(config: DistillConfig, teacher: LoadedModel) -> dict:
    """Arguments of the largest student (``mobile_resnet`` / ``super_mobile_resnet``) for this teacher."""
    kwargs = teacher.arch_kwargs
    resnet_like = isinstance(teacher.model, (ResnetGenerator, MobileResnetGenerator))
    n_blocks = config.student_blocks or (teacher.model.n_blocks if resnet_like else 9)
    return {"input_nc": config.input_nc, "output_nc": config.output_nc,
            "ngf": config.student_ngf or int(kwargs.get("ngf", 64)),
            "norm": kwargs.get("norm", "instance") if config.student_norm == "auto" else config.student_norm,
            "use_dropout": False, "n_blocks": n_blocks}


def distill_layers(teacher: nn.Module, student: MobileResnetGenerator) -> list[int]:
    """Positions in both ``model`` sequences whose activations are distilled; [] when none line up.

    A ResNet (or mobile ResNet) teacher with as many blocks as the student shares its layout, so the
    student's ``distill_layers()`` (second downsampling, last block of each block group) name the same
    layers in both; any other teacher (a U-Net, another depth) is distilled at the output only.
    """
    if isinstance(teacher, (ResnetGenerator, MobileResnetGenerator)) and teacher.n_blocks == student.n_blocks:
        return student.distill_layers()
    return []


class ElasticFeatureDistillation(FeatureDistillation):
    """:class:`~ganslim.losses.FeatureDistillation` whose 1x1 adapters take any leading part of their input.

    Built at the student's largest widths; a sub-network's narrower activation uses the leading input
    channels of each adapter (GAN Compression's ``SuperConv2d`` adapters). A fine-tuned sub-network's
    adapters are the leading slices of these (:func:`slice_adapters`).
    """

    @staticmethod
    def make_adapter(student_channels: int, teacher_channels: int) -> nn.Module:
        return ElasticConv2d(student_channels, teacher_channels, kernel_size=1)


def slice_adapters(state: dict[str, Tensor], adapters: nn.Module) -> dict[str, Tensor]:
    """The leading slices of a (wider) adapters ``state`` that fit ``adapters``'s tensors."""
    own = adapters.state_dict()
    if set(state) != set(own):
        raise GanslimError(f"adapters file holds {sorted(state)}, expected {sorted(own)}: it belongs to another "
                           f"teacher or student depth")
    return {key: leading_slice(state[key], own[key].shape).clone() for key in own}


class _FeatureTap(nn.Module):
    """Runs the student at each configuration given and returns ``[(output, features)]``.

    One forward call for all configurations of a step, so under DistributedDataParallel every shared
    weight is used inside a single forward/backward.
    """

    def __init__(self, generator: MobileResnetGenerator, layers: Sequence[int]) -> None:
        super().__init__()
        self.generator, self.layers = generator, list(layers)

    def forward(self, image: Tensor, configs: Sequence[Sequence[int] | None] = (None,)
                ) -> list[tuple[Tensor, list[Tensor]]]:
        results = []
        for channels in configs:
            if channels is not None:
                self.generator.configure(channels)
            if self.layers:
                results.append(self.generator.forward_features(image, self.layers))
            else:
                results.append((self.generator(image), []))
        return results


def find_teacher_discriminator(config: DistillConfig) -> Path | None:
    """The discriminator file to start from: ``teacher_discriminator``, else one next to the teacher file."""
    if config.teacher_discriminator == "none":
        return None
    if config.teacher_discriminator:
        path = Path(config.teacher_discriminator)
        if not path.is_file():
            raise GanslimError(f"teacher_discriminator '{path}' not found: pass the file, '' to look next to the "
                               f"teacher, or 'none' for a fresh discriminator")
        return path
    teacher_file = resolve_generator_file(config.teacher, config.direction)
    side = "B" if teacher_file.stem.endswith("_B") else "A"
    for name in _TEACHER_DISCRIMINATORS[side]:
        if (teacher_file.parent / name).is_file():
            return teacher_file.parent / name
    return None


def discriminator_channels(config: DistillConfig, paired: bool) -> int:
    """Input channels of the discriminator: it judges (input, output) pairs of paired data, else output images."""
    return config.input_nc + config.output_nc if paired else config.output_nc


def load_teacher_discriminator(config: DistillConfig, path: Path) -> LoadedModel:
    """The discriminator at ``path``, checked to take the images it judges on ``config.data``."""
    paired = data_kind(config.data) == "paired"
    loaded, expected = load_discriminator(path), discriminator_channels(config, paired)
    width = loaded.arch_kwargs.get("input_nc")
    if width != expected:
        what = "(input, output) pairs" if paired else "output images"
        raise GanslimError(f"discriminator '{path}' takes {width} channels but judges {what} of "
                           f"{expected} channels here: pass teacher_discriminator=none for a fresh one")
    return loaded


# ------------------------------------------------------------------------------------------ data


def _train_images(dataset: Dataset) -> int:
    """Number of distinct input images of a train dataset (A images of an unaligned one)."""
    return len(dataset.A_paths) if isinstance(dataset, UnalignedDataset) else len(dataset)


def train_split(config: DistillConfig, train: bool) -> Dataset:
    """The ``train/`` (or ``trainA/ trainB/``) dataset, with training (``train``) or evaluation preprocessing."""
    kwargs = dict(direction=config.direction, preprocess=config.preprocess if train else "resize_and_crop",
                  input_nc=config.input_nc, output_nc=config.output_nc, seed=config.seed,
                  load_size=config.load_size if train else config.crop_size, crop_size=config.crop_size,
                  flip=config.flip and train, max_items=config.max_train_images or None)
    if data_kind(config.data) == "paired":
        return AlignedDataset(config.data, "train", **kwargs)
    return UnalignedDataset(config.data, "train", **kwargs)


def training_items(config: DistillConfig) -> IndexedSubset:
    """The training images minus the held-out ones (training preprocessing)."""
    dataset = train_split(config, train=True)
    return without_holdout(dataset, _train_images(dataset), config.holdout_images)


def holdout_items(config: DistillConfig) -> IndexedSubset:
    """The held-out training images (evaluation preprocessing), tagged ``"split": "holdout"``."""
    dataset = train_split(config, train=False)
    return IndexedSubset(dataset, holdout_indices(_train_images(dataset), config.holdout_images), HOLDOUT_SPLIT)


def validation_items(config: DistillConfig) -> Dataset:
    """Held-out training images, then the ``val/`` split of paired data if there is one."""
    holdout = holdout_items(config)
    if data_kind(config.data) != "paired" or not (Path(config.data) / "val").is_dir():
        return holdout
    val = AlignedDataset(config.data, "val", direction=config.direction, load_size=config.crop_size,
                         crop_size=config.crop_size, flip=False, input_nc=config.input_nc,
                         output_nc=config.output_nc, seed=config.seed)
    return torch.utils.data.ConcatDataset([holdout, IndexedSubset(val, range(len(val)), VAL_SPLIT)])


# ------------------------------------------------------------------------------------------ metrics


@torch.no_grad()
def image_metrics(generator: nn.Module, teacher: nn.Module | None, batches: Iterable[dict], paired: bool
                  ) -> dict[str, float]:
    """Validation metrics of ``generator`` over batches tagged with ``"split"`` (see the module docstring).

    Held-out images: ``psnr`` (vs the ground truth if ``paired``, else vs the teacher's output),
    ``psnr_teacher``, and ``ssim`` if paired; ``val/`` images: ``val_psnr``, ``val_ssim``. A batch may
    carry the teacher's outputs as ``"teacher"`` (N, C, H, W), saving the teacher's forward; without either
    (``teacher`` None), paired data gets no ``psnr_teacher``.
    """
    sums: dict[str, list[float]] = {}

    def add(name: str, values: Tensor) -> None:
        entry = sums.setdefault(name, [0.0, 0])
        entry[0] += float(values.double().sum())
        entry[1] += values.numel()

    for batch in batches:
        real_a, real_b = batch["A"], batch["B"]
        fake = generator(real_a).float()
        splits = batch.get("split") or [HOLDOUT_SPLIT] * len(real_a)
        holdout = torch.tensor([s == HOLDOUT_SPLIT for s in splits], device=real_a.device)
        if holdout.any():
            target = batch["teacher"] if "teacher" in batch else teacher(real_a) if teacher is not None else None
            if target is not None:
                add("psnr_teacher", psnr(fake[holdout], target[holdout].float()))
            if paired:
                add("psnr", psnr(fake[holdout], real_b[holdout]))
                add("ssim", ssim(fake[holdout], real_b[holdout]))
            else:
                add("psnr", psnr(fake[holdout], target[holdout].float()))
        if (~holdout).any():
            add("val_psnr", psnr(fake[~holdout], real_b[~holdout]))
            add("val_ssim", ssim(fake[~holdout], real_b[~holdout]))
    return {name: total / count for name, (total, count) in sums.items()}


# ------------------------------------------------------------------------------------------ methods


class _Distillation:
    """Networks, losses, data and export shared by both stages; subclasses build the student."""

    ema_networks: ClassVar[tuple[str, ...]] = ()
    monitor: ClassVar[tuple[str, str] | None] = None

    def __init__(self, config: DistillConfig, ctx: TrainContext) -> None:
        config = resolve_defaults(config)
        self.config, self.ctx = config, ctx
        self.paired = data_kind(config.data) == "paired"
        self.gan_loss = GANLoss(config.gan_mode)
        self.teacher_info = load_teacher(config, ctx.device)
        self.teacher = self.teacher_info.model
        check_image_sides({"teacher": self.teacher}, config.fixed_image_sides())  # frozen: not in networks()
        self.student_arch, self.student = self._build_student(student_kwargs(config, self.teacher_info))
        self.student.to(ctx.device)
        self.layers = distill_layers(self.teacher, self.student) if config.lambda_distill > 0 else []
        if config.lambda_distill > 0 and not self.layers:
            logger.warning("teacher %s has no activations aligned with the mobile ResNet student: distilling at "
                           "the output only (reconstruction and GAN losses, no feature distillation)",
                           self.teacher_info.arch)
        self.nets: dict[str, nn.Module] = {"G": self.student}
        params = list(self.student.parameters())
        self.adapters: ElasticFeatureDistillation | None = None
        if self.layers:
            teacher_widths = [self.teacher.feature_channels(i) for i in self.layers]
            student_widths = [self.student.feature_channels(i) for i in self.layers]
            self.adapters = ElasticFeatureDistillation(student_widths, teacher_widths).to(ctx.device)
            self._init_adapters(self.adapters)
            self.nets["A"] = self.adapters
            params += list(self.adapters.parameters())
        self.discriminator_arch, self.discriminator_kwargs, self.discriminator = self._build_discriminator()
        self.nets["D"] = self.discriminator.to(ctx.device)
        self.tap = ctx.wrap(_FeatureTap(self.student, self.layers))
        self.trained_adapters = ctx.wrap(self.adapters) if self.adapters is not None else None
        self.trained_discriminator = ctx.wrap(self.discriminator)
        betas = (config.beta1, config.beta2)
        self._optimizers = {"G": torch.optim.Adam(params, lr=config.lr, betas=betas),
                            "D": torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)}

    # -------------------------------------------------------------- building

    def _build_student(self, kwargs: dict) -> tuple[str, MobileResnetGenerator]:
        raise NotImplementedError

    def _init_adapters(self, adapters: ElasticFeatureDistillation) -> None:
        """Hook: load adapters from an earlier stage (the fine-tune does)."""

    def _discriminator_source(self) -> Path | None:
        return find_teacher_discriminator(self.config)

    def _build_discriminator(self) -> tuple[str, dict, nn.Module]:
        """The teacher's discriminator if found (its input must fit the data), else a fresh PatchGAN."""
        config = self.config
        path = self._discriminator_source()
        if path is not None:
            loaded = load_teacher_discriminator(config, path)
            logger.info("discriminator starts from %s", path)
            return loaded.arch, dict(loaded.arch_kwargs), loaded.model.train()
        kwargs = {"input_nc": discriminator_channels(config, self.paired), "ndf": config.ndf,
                  "norm": self.student.norm if self.student.norm != "none" else "instance"}
        return "basic", kwargs, init_weights(build_discriminator("basic", **kwargs))

    # -------------------------------------------------------------- protocol

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def lr_schedules(self) -> dict:
        """Every optimizer follows the run's schedule (``epochs`` then ``epochs_decay``)."""
        return {}

    def train_dataset(self) -> Dataset:
        return training_items(self.config)

    def val_dataset(self) -> Dataset:
        return validation_items(self.config)

    def _step_configs(self) -> list[list[int] | None]:
        """Channel configurations trained this step (None: the student as it is)."""
        return [None]

    def _judge(self, discriminator: nn.Module, real_a: Tensor, image: Tensor) -> Tensor:
        """``discriminator``'s logits for ``image`` (conditioned on the input for paired data)."""
        return discriminator(torch.cat([real_a, image], 1) if self.paired else image)

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """One G update over this step's configurations (losses averaged), then one D update on their fakes."""
        ctx, config = self.ctx, self.config
        real_a, real_b = batch["A"], batch["B"]
        configs = self._step_configs()
        with torch.no_grad(), ctx.autocast():
            if self.layers:
                teacher_out, teacher_features = self.teacher.forward_features(real_a, self.layers)
            else:
                teacher_out, teacher_features = self.teacher(real_a), []
        target = real_b if self.paired else teacher_out.float()
        terms: dict[str, Tensor] = {}
        with ctx.frozen(self.discriminator):
            with ctx.autocast():
                results = self.tap(real_a, configs)
                for fake, features in results:
                    # The plain D: frozen here, so it stays out of DDP's gradient synchronisation.
                    step_terms = {
                        "G_gan": config.lambda_gan * self.gan_loss(self._judge(self.discriminator, real_a, fake),
                                                               True, for_discriminator=False),
                        "G_recon": config.lambda_recon * F.l1_loss(fake.float(), target),
                    }
                    if self.trained_adapters is not None:
                        step_terms["G_distill"] = config.lambda_distill * self.trained_adapters(
                            features, teacher_features)
                    for key, value in step_terms.items():
                        terms[key] = terms.get(key, 0.0) + value / len(results)
            ctx.step("G", sum(terms.values()))
        with ctx.autocast():
            judge = self.trained_discriminator
            real = self.gan_loss(self._judge(judge, real_a, real_b), True)
            fakes = [self.gan_loss(self._judge(judge, real_a, fake.detach()), False) for fake, _ in results]
            terms["D_real"], terms["D_fake"] = real, sum(fakes) / len(fakes)
        ctx.step("D", 0.5 * (terms["D_real"] + terms["D_fake"]))
        return {key: value.detach() for key, value in terms.items()}

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        return image_metrics(self.student, self.teacher, batches, self.paired)

    def visuals(self, batch: dict) -> list[Tensor]:
        """input | student | teacher (| ground truth for paired data)."""
        columns = [batch["A"], self.student(batch["A"]).float(), self.teacher(batch["A"]).float()]
        return columns + [batch["B"]] if self.paired else columns

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # -------------------------------------------------------------- export

    def _meta(self) -> dict:
        config = self.config
        return {"method": self.name, "teacher": str(config.teacher), "teacher_arch": self.teacher_info.arch,
                "direction": config.direction, "crop_size": config.crop_size, "load_size": config.load_size,
                "preprocess": config.preprocess, "data_kind": "paired" if self.paired else "unpaired",
                "distill_layers": list(self.layers)}

    def _export_common(self, run_dir: Path) -> dict[str, Path]:
        exported = {"discriminator": save_model(run_dir / DISCRIMINATOR_FILE, self.discriminator,
                                                self.discriminator_arch, self.discriminator_kwargs,
                                                kind="discriminator", meta=self._meta())}
        if self.adapters is not None:
            state = {key: value.detach().cpu() for key, value in self.adapters.state_dict().items()}
            exported["adapters"] = atomic_torch_save(
                {"format": ADAPTERS_FORMAT, "format_version": 1, "layers": list(self.layers), "state_dict": state},
                run_dir / ADAPTERS_FILE)
        return exported


class SupernetDistillation(_Distillation):
    """Once-for-all training of a ``super_mobile_resnet`` student (stage 1 of GAN Compression)."""

    name = "gan-compression-supernet"
    Config = DistillConfig

    def __init__(self, config: DistillConfig, ctx: TrainContext) -> None:
        if config.fixed_channels:
            raise GanslimError("fixed_channels is set: a single configuration is trained by the fine-tune stage "
                               "(gan-compression-finetune), not the supernet")
        super().__init__(config, ctx)
        self.space = search_space(self.config, self.student)
        # The same draws on every rank (no rank in the seed): all processes train the same sub-network.
        self.rng = random.Random(derive_seed(self.config.seed, _SEED_STREAM))

    def _build_student(self, kwargs: dict) -> tuple[str, SuperMobileResnetGenerator]:
        return "super_mobile_resnet", init_weights(build_generator("super_mobile_resnet", **kwargs))

    def _step_configs(self) -> list[list[int]]:
        if self.config.sampling == "sandwich":
            return self.space.sandwich(self.rng)
        return [self.space.sample(self.rng)]

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Metrics of the largest and the smallest sub-network (``psnr_largest``, ``psnr_smallest``, ...)."""
        batches = list(batches)
        metrics = {}
        for label, channels in (("largest", self.space.largest()), ("smallest", self.space.smallest())):
            self.student.configure(channels)
            metrics.update({f"{key}_{label}": value
                            for key, value in image_metrics(self.student, self.teacher, batches, self.paired).items()})
        self.student.configure(None)
        return metrics

    def visuals(self, batch: dict) -> list[Tensor]:
        """input | largest | smallest sub-network | teacher (| ground truth)."""
        real_a = batch["A"]
        largest = self.student.configure(None)(real_a).float()
        smallest = self.student.configure(self.space.smallest())(real_a).float()
        self.student.configure(None)
        columns = [real_a, largest, smallest, self.teacher(real_a).float()]
        return columns + [batch["B"]] if self.paired else columns

    def extra_state(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {"config_rng": [version, list(internal), gauss]}

    def load_extra_state(self, state: dict) -> None:
        version, internal, gauss = state["config_rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    def export(self, run_dir: Path) -> dict[str, Path]:
        self.student.configure(None)
        meta = {**self._meta(), "candidates": [list(widths) for widths in self.space.candidates]}
        exported = {"supernet": save_model(run_dir / SUPERNET_FILE, self.student, self.student_arch,
                                           self.student.arch_kwargs(), meta=meta)}
        return {**exported, **self._export_common(run_dir)}


class FinetuneDistillation(_Distillation):
    """Distillation of one sub-network as a compact ``mobile_resnet`` (stage 3 of GAN Compression).

    Starts from the supernet's weights (``supernet``) when given, else from a fresh initialisation;
    ``best.pt`` is the checkpoint with the best held-out ``psnr``.
    """

    name = "gan-compression-finetune"
    Config = DistillConfig
    monitor = ("psnr", "max")
    ema_networks = ("G",)

    def __init__(self, config: DistillConfig, ctx: TrainContext) -> None:
        if not config.fixed_channels:
            raise GanslimError("the fine-tune stage trains one sub-network: pass fixed_channels (e.g. "
                               "--channels 16,32,64,32,48,64,32,16 or the search's choice)")
        self.supernet_file = find_supernet(config.supernet) if config.supernet else None
        super().__init__(config, ctx)

    def _build_student(self, kwargs: dict) -> tuple[str, MobileResnetGenerator]:
        channels = parse_channels(self.config.fixed_channels)
        if self.supernet_file is None:
            check_channels(channels, kwargs["n_blocks"])
            return "mobile_resnet", init_weights(build_generator("mobile_resnet", **kwargs, channels=channels))
        supernet = load_generator(self.supernet_file).model
        if not isinstance(supernet, SuperMobileResnetGenerator):
            raise GanslimError(f"'{self.supernet_file}' is not a supernet (it holds a {type(supernet).__name__}): "
                               f"pass the supernet.pt of a gan-compression-supernet run")
        wanted = {key: value for key, value in kwargs.items() if key not in ("ngf", "use_dropout")}
        found = {key: getattr(supernet, key) for key in wanted}
        if found != wanted:
            raise GanslimError(f"supernet '{self.supernet_file}' was built as {found}, this teacher and config give "
                               f"{wanted}: fine-tune with the teacher and options the supernet was trained with")
        return "mobile_resnet", extract_subnet(supernet, channels).train()

    def _init_adapters(self, adapters: ElasticFeatureDistillation) -> None:
        path = None if self.supernet_file is None else self.supernet_file.parent / ADAPTERS_FILE
        if path is None or not path.is_file():
            return
        content = read_weights_only(path, "adapters", "re-run the supernet stage, or move the file away to start "
                                                      "from fresh adapters")
        if not isinstance(content, dict) or content.get("format") != ADAPTERS_FORMAT:
            raise GanslimError(f"'{path}' is not a ganslim adapters file: re-export the supernet run")
        if list(content["layers"]) != self.layers:
            raise GanslimError(f"'{path}' distils layers {content['layers']}, this student {self.layers}: use the "
                               f"supernet trained with this teacher")
        adapters.load_state_dict(slice_adapters(content["state_dict"], adapters))

    def _discriminator_source(self) -> Path | None:
        if self.config.teacher_discriminator == "" and self.supernet_file is not None:
            candidate = self.supernet_file.parent / DISCRIMINATOR_FILE
            if candidate.is_file():
                return candidate
        return super()._discriminator_source()

    def export(self, run_dir: Path) -> dict[str, Path]:
        meta = {**self._meta(), "channels": list(self.student.channels), "channel_names":
                channel_names(self.student.n_blocks), "supernet": str(self.supernet_file or "")}
        exported = {"generator": save_model(run_dir / GENERATOR_FILE, self.student, self.student_arch,
                                            self.student.arch_kwargs(), meta=meta)}
        return {**exported, **self._export_common(run_dir)}


def find_supernet(path: str | Path) -> Path:
    """``supernet.pt`` itself, or inside a supernet run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / SUPERNET_FILE
    if not path.is_file():
        raise GanslimError(f"supernet '{path}' not found: pass the supernet.pt of a gan-compression-supernet run "
                           f"(or its run folder)")
    content = read_checkpoint(path)
    if getattr(content, "arch", None) != "super_mobile_resnet":
        raise GanslimError(f"'{path}' is not a super_mobile_resnet checkpoint: pass a supernet.pt")
    return path
