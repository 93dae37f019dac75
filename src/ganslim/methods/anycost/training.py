"""Anycost GAN's two training stages as engine methods (each one stage of :mod:`.pipeline`'s staged run).

**Multi-resolution** (:class:`MultiResolution`): the generator starts as a copy of the StyleGAN2 teacher (the
teacher itself stays frozen: the consistency target and the fidelity reference); each step draws
``sampled_resolutions`` of the top ``resolutions`` sides, and G and the multi-resolution discriminator train at
each of them (the reals as a bilinear pyramid), the losses averaged over the sides. The discriminator starts from the
teacher's when it has one (:meth:`MultiResolutionDiscriminator.from_discriminator`), else fresh.

**Adaptive channels** (:class:`AdaptiveChannels`): starts from the multi-resolution stage's exported (EMA)
generator with its channels sorted by importance (:func:`~ganslim.compress.sort_stylegan2_channels`) and its
discriminator made generator-conditioned; each step draws one side and one channel configuration
(``channel_sampling``); the D judges the fakes under the code of their configuration, the reals under a random
(flexible) one, R1 under the fakes'.

**Per step** (every draw from ``ctx.shared_generator`` for the whole step's batch, so N processes reproduce one of
N times the batch, and a resumed run the uninterrupted one; the sides and configuration are a function of
(seed, step)):

1. D: non-saturating logistic loss on the reals and the (no-grad) fakes at each drawn side;
2. every ``r1_every`` steps: ``r1_gamma / 2 * |dD(x)/dx|^2 * r1_every`` on the reals at each side;
3. G: ``softplus(-D(G(z)))`` + the consistency loss (:mod:`.losses`, weight 2) of each output against the target's
   full image: the frozen teacher's, in both stages, as Anycost's train.py (its ``--teacher_ckpt``).

Style mixing 0.9; Adam (0, 0.99) without the lazy-regularisation adjustment (as Anycost's); the engine averages G
(EMA half-life ``ema_kimg``). **Validation**: fidelity (PSNR / SSIM) of a fixed set of sub-generators (every uniform
ratio at the full and half side) to the teacher's full image, downsampled, on fixed latents with the stored noise.
**Samples**: one column per sub-generator of that set after the teacher's. **Exports**: ``generator.pt`` (the EMA
generator, a plain ``stylegan2``, full config active) and ``discriminator.pt`` (``anycost``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.archs.stylegan2 import CHANNEL_RATIOS, MultiResolutionDiscriminator, StyleGAN2Generator, estimate_w_avg
from ganslim.archs.stylegan2.discriminator import StyleGAN2Discriminator
from ganslim.checkpoints import load_discriminator, load_generator, resolve_generator_file, save_model
from ganslim.checkpoints.format import read_checkpoint
from ganslim.checkpoints.stylegan2 import StyleGAN2File, read_nvidia_pickle
from ganslim.compress import sort_stylegan2_channels
from ganslim.data import ImageFolderDataset, LatentDataset
from ganslim.engine import MethodBase, TrainContext, derive_seed, lazy_adam
from ganslim.errors import GanslimError
from ganslim.losses import GANLoss, load_perceptual_vgg, r1_penalty
from ganslim.methods.anycost.config import METHOD, TEACHER_DISCRIMINATOR_OFF, AdaptiveChannelsConfig, AnycostConfig
from ganslim.methods.anycost.losses import ConsistencyLoss, downsample, pyramid
from ganslim.methods.anycost.sampling import config_code, sample_channels, sample_sides, top_sides
from ganslim.methods.stylegan2 import draw_latents, mixed_w_plus, require_one_batch
from ganslim.metrics import psnr, ssim
from ganslim.nn.vgg import vgg16_weights_hint

logger = logging.getLogger(__name__)

GENERATOR_FILE, DISCRIMINATOR_FILE = "generator.pt", "discriminator.pt"
# Streams of the per-step shared draws (ctx.shared_generator), one per phase.
PLAN_PHASE, D_PHASE, R1_PHASE, G_PHASE = 1, 2, 3, 4
VAL_STREAM = 0xF1D  # the fixed latents of the fidelity scores and the sample grids
SSIM_WINDOW = 11
Phase = dict[str, Tensor | int]
_said_no_vgg = False


@dataclass(frozen=True)
class StepPlan:
    """What one step trains: the sub-generators' ``sides`` (largest first), the fakes' configuration ``channels``
    and the one the reals are judged under (``real_channels``), one width per generator layer."""

    sides: tuple[int, ...]
    channels: tuple[int, ...]
    real_channels: tuple[int, ...]


@dataclass(frozen=True)
class FidelityProbe:
    """One sub-generator validation scores: a uniform channel ``ratio`` stopped at ``side``."""

    ratio: float
    side: int

    @property
    def label(self) -> str:
        return f"{self.ratio:g}x_{self.side}px"


def every_parameter(module: nn.Module) -> Tensor:
    """0 x one entry of every parameter of ``module``: added to a loss it makes every parameter take part in the
    backward pass, as DDP requires, though an early exit or an unused fromRGB leaves some out of the graph."""
    return sum(parameter.flatten()[0] for parameter in module.parameters()) * 0


class SubGenerators(nn.Module):
    """The trained view of the generator (the module DDP wraps): z (N, z_dim), the mixing z and crossover, one
    noise image per StyledConv, the sides and configuration -> (one image (N, C, r, r) per side, a zero that
    reaches every parameter)."""

    def __init__(self, generator: StyleGAN2Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: Tensor, z_mix: Tensor, crossover: int, noise: list[Tensor], sides: Sequence[int],
                channels: Sequence[int]) -> tuple[list[Tensor], Tensor]:
        g = self.generator
        w_plus = mixed_w_plus(g, z, z_mix, crossover)
        images = []
        for side in sides:
            with g.subnet(side, list(channels)):
                images.append(g.synthesize(w_plus, noise=noise))
        return images, every_parameter(self)


class Judge(nn.Module):
    """The trained view of the discriminator: images (N, C, r, r) and their codes (None unconditioned) ->
    (their logits (N, 1), a zero that reaches every parameter)."""

    def __init__(self, discriminator: MultiResolutionDiscriminator) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, images: Sequence[Tensor], codes: Sequence[Tensor | None]) -> tuple[list[Tensor], Tensor]:
        return [self.discriminator(image, code) for image, code in zip(images, codes)], every_parameter(self)


def load_teacher(path: str, device: torch.device, seed: int) -> StyleGAN2Generator:
    """The frozen StyleGAN2 teacher (eval mode, on ``device``); a mean W estimated from 10,000 z when the file
    stores none (rosinality's train.py files)."""
    loaded = load_generator(path)
    teacher = loaded.model
    if not isinstance(teacher, StyleGAN2Generator):
        raise GanslimError(f"teacher '{path}' is a {loaded.arch} generator, not a stylegan2 one: Anycost GAN "
                           f"fine-tunes a StyleGAN2 generator (pass a stylegan2 generator.pt or rosinality file)")
    if not torch.isfinite(teacher.style.w_avg).all():
        estimate_w_avg(teacher, seed=seed)
    return teacher.requires_grad_(False).to(device)


def teacher_discriminator_file(config: AnycostConfig) -> Path | None:
    """Where the multi-resolution discriminator starts from: ``teacher_discriminator``, else ``discriminator.pt``
    beside a ganslim teacher, else the teacher file itself when it holds one (rosinality's ``d``); None: fresh."""
    if config.teacher_discriminator == TEACHER_DISCRIMINATOR_OFF:
        return None
    if config.teacher_discriminator:
        return Path(config.teacher_discriminator)
    teacher = resolve_generator_file(config.teacher)
    beside = teacher.parent / DISCRIMINATOR_FILE
    if beside.is_file() and beside != teacher:
        return beside
    content = read_nvidia_pickle(teacher) if teacher.suffix == ".pkl" else read_checkpoint(teacher)
    return teacher if isinstance(content, StyleGAN2File) and content.discriminator is not None else None


def load_start_discriminator(path: Path, size: int, resolutions: int,
                             conditioned: bool) -> MultiResolutionDiscriminator:
    """A multi-resolution discriminator initialised from the StyleGAN2 or anycost discriminator at ``path``."""
    source = load_discriminator(path).model
    if not isinstance(source, (StyleGAN2Discriminator, MultiResolutionDiscriminator)):
        raise GanslimError(f"discriminator '{path}' is no StyleGAN2 or anycost discriminator: pass one, or "
                           f"--set teacher_discriminator=none for a fresh one")
    if source.img_resolution != size:
        raise GanslimError(f"discriminator '{path}' judges {source.img_resolution} px images, the teacher renders "
                           f"{size} px: pass the teacher's own discriminator (or teacher_discriminator=none)")
    return MultiResolutionDiscriminator.from_discriminator(source, resolutions, conditioned).train()


def fidelity_latents(config: AnycostConfig, z_dim: int) -> LatentDataset:
    """The fixed latents fidelity is scored on: ``fidelity_samples`` z, the same every validation, in the summary
    and in every run of this seed."""
    return LatentDataset(config.fidelity_samples, z_dim, seed=derive_seed(config.seed, VAL_STREAM))


def fidelity_probes(size: int, resolutions: int) -> list[FidelityProbe]:
    """Every uniform ratio at the full side and (with 2 resolutions or more) at half of it."""
    return [FidelityProbe(ratio, side) for side in top_sides(size, min(resolutions, 2)) for ratio in CHANNEL_RATIOS]


@torch.no_grad()
def fidelity(generator: StyleGAN2Generator, teacher: StyleGAN2Generator, latents: Iterable[Tensor],
             probes: Sequence[FidelityProbe]) -> dict[str, dict[str, float]]:
    """``{probe label: {"psnr": dB, "ssim": ...}}``: each sub-generator's images against the teacher's full images
    downsampled to its side, means over the batches of z (N, z_dim) in ``latents``, stored noise. SSIM only for
    sides of at least 11 px (its window)."""
    sums: dict[str, dict[str, float]] = {probe.label: {"psnr": 0.0, "ssim": 0.0} for probe in probes}
    count = 0
    for z in latents:
        target = teacher(z).float()
        for probe in probes:
            with generator.subnet(probe.side, probe.ratio):
                image = generator(z).float()
            reference = downsample(target, probe.side)
            sums[probe.label]["psnr"] += float(psnr(image, reference).clamp(max=100).sum())
            if probe.side >= SSIM_WINDOW:
                sums[probe.label]["ssim"] += float(ssim(image.clamp(-1, 1), reference.clamp(-1, 1)).sum())
        count += len(z)
    return {probe.label: {name: total / count for name, total in sums[probe.label].items()
                          if name == "psnr" or probe.side >= SSIM_WINDOW} for probe in probes}


def discriminator_kwargs(discriminator: MultiResolutionDiscriminator) -> dict:
    """The ``anycost`` kwargs that rebuild ``discriminator``."""
    return {"size": discriminator.img_resolution, "channels": list(discriminator.channels),
            "resolutions": len(discriminator.resolutions), "conditioned": discriminator.conditioned,
            "image_channels": discriminator.img_channels, "conv_clamp": discriminator.conv_clamp,
            "stddev_group": discriminator.stddev_group}


class _AnycostStage(MethodBase):
    """What both stages share (see the module docstring); a stage says where G and D start and draws its plans."""

    Config: ClassVar[type] = AnycostConfig
    monitor: ClassVar[tuple[str, str] | None] = None  # fidelity is reported, not optimised: the last EMA G exports
    ema_networks: ClassVar[tuple[str, ...]] = ("G",)
    accumulates: ClassVar[bool] = True
    conditioned: ClassVar[bool] = False

    def __init__(self, config: AnycostConfig, ctx: TrainContext) -> None:
        self.config, self.ctx = config, ctx
        self.teacher = load_teacher(config.teacher, ctx.device, config.seed)
        size = self.teacher.img_resolution
        self.dataset = require_one_batch(
            ImageFolderDataset(config.data, size, resize=config.resize, flip=config.flip, seed=config.seed),
            config.data, config.batch_size, ctx.dist.world_size)
        generator, discriminator = self._start_networks()
        self.nets: dict[str, nn.Module] = {"G": generator.to(ctx.device), "D": discriminator.to(ctx.device)}
        self.sub_generators = SubGenerators(self.nets["G"])
        self.trained = {"G": ctx.wrap(self.sub_generators), "D": ctx.wrap(Judge(self.nets["D"]))}
        betas = (config.beta1, config.beta2)
        self._optimizers = {name: lazy_adam(net.parameters(), config.lr, betas, None)  # Anycost: no adjustment
                            for name, net in self.nets.items()}
        self.gan = GANLoss("vanilla")
        self.consistency = ConsistencyLoss(config.consistency_weight, self._vgg())
        self.sides = top_sides(size, config.resolutions)
        self.probes = fidelity_probes(size, config.resolutions)

    @property
    def generator(self) -> StyleGAN2Generator:
        return self.nets["G"]

    def _start_networks(self) -> tuple[StyleGAN2Generator, MultiResolutionDiscriminator]:
        raise NotImplementedError

    def _vgg(self) -> nn.Module | None:
        """The perceptual term's VGG16, or None (said once) when no weights file is found."""
        global _said_no_vgg
        vgg = None if self.config.vgg_weights == "none" else load_perceptual_vgg(self.config.vgg_weights or None)
        if vgg is None and self.ctx.dist.is_main and self.config.vgg_weights != "none" and not _said_no_vgg:
            _said_no_vgg = True  # once per process, not once per stage
            logger.warning("no VGG16 weights: the consistency loss is MSE alone (Anycost adds LPIPS); to add the "
                           "VGG16 perceptual term, %s", vgg16_weights_hint())
        return vgg if vgg is None else vgg.to(self.ctx.device)

    def train_dataset(self) -> Dataset:
        return self.dataset

    def val_dataset(self) -> Dataset:
        return fidelity_latents(self.config, self.generator.z_dim)

    # ------------------------------------------------------------------ draws

    def plan(self) -> StepPlan:
        """This step's sides and configurations, drawn from the step's shared generator."""
        return self._draw_plan(self.ctx.shared_generator(PLAN_PHASE))

    def _draw_plan(self, rng: torch.Generator) -> StepPlan:
        raise NotImplementedError

    def _code(self, channels: tuple[int, ...]) -> Tensor | None:
        if not self.conditioned:
            return None
        return config_code(self.generator.layer_channels, channels).to(self.ctx.device)

    def _latents(self, rng: torch.Generator, count: int) -> Phase:
        return draw_latents(self.ctx, self.generator, rng, count, self.config.mixing)

    def _generate(self, module: nn.Module, part: Phase, sides: Sequence[int],
                  channels: Sequence[int]) -> tuple[list[Tensor], Tensor]:
        noise = [part[f"noise_{index}"] for index in range(self.generator.num_noises)]
        return module(part["z"], part["z_mix"], part["crossover"], noise, sides, channels)

    @torch.no_grad()
    def _target(self, part: Phase) -> Tensor:
        """The full image the sub-generators are made consistent with, for the latents of ``part``: the frozen
        teacher's, in both stages (Anycost's train.py distils from a fixed teacher; a target taken from the
        generator being trained chases itself: its sub-generators pull the shared weights after its full output,
        which then moves further, and the run diverged within 150 steps on the built-in faces)."""
        noise = [part[f"noise_{index}"] for index in range(self.teacher.num_noises)]
        w_plus = mixed_w_plus(self.teacher, part["z"], part["z_mix"], part["crossover"])
        return self.teacher.synthesize(w_plus, noise=noise)

    # ------------------------------------------------------------------ training

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """One step (see the module docstring)."""
        config, real, plan = self.config, batch["image"], self.plan()
        terms = self._discriminator_step(real, plan)
        if config.r1_gamma > 0 and self.ctx.due(config.r1_every):
            terms.update(self._r1_step(real, plan))
        terms.update(self._generator_step(len(real), plan))
        return terms

    def _discriminator_step(self, real: Tensor, plan: StepPlan) -> dict[str, Tensor]:
        ctx, count, sides = self.ctx, len(real), len(plan.sides)
        phase = {"real": real, **self._latents(ctx.shared_generator(D_PHASE), count)}
        codes = [self._code(plan.real_channels)] * sides + [self._code(plan.channels)] * sides
        scores = {"real": torch.zeros((), device=ctx.device), "fake": torch.zeros((), device=ctx.device)}

        def loss(part: Phase) -> Tensor:
            with torch.no_grad(), ctx.autocast():
                fakes, _ = self._generate(self.sub_generators, part, plan.sides, plan.channels)
            reals = list(pyramid(part["real"], plan.sides).values())
            with ctx.autocast():
                judged, zero = self.trained["D"](reals + fakes, codes)
            real_scores, fake_scores = judged[:sides], judged[sides:]
            scores["real"] += sum(s.detach().float().sum() for s in real_scores) / sides
            scores["fake"] += sum(s.detach().float().sum() for s in fake_scores) / sides
            losses = [self.gan(r, True) + self.gan(f, False) for r, f in zip(real_scores, fake_scores)]
            return sum(losses) / sides + zero

        loss_d = ctx.step("D", loss, phase)
        return {"D": loss_d, "D_real_score": scores["real"] / count, "D_fake_score": scores["fake"] / count}

    def _r1_step(self, real: Tensor, plan: StepPlan) -> dict[str, Tensor]:
        config, ctx, count, sides = self.config, self.ctx, len(real), len(plan.sides)
        codes = [self._code(plan.channels)] * sides  # R1 under the fakes' configuration, as Anycost's
        total = torch.zeros((), device=ctx.device)

        def loss(part: Phase) -> Tensor:
            images = [image.detach().requires_grad_(True) for image in pyramid(part["real"], plan.sides).values()]
            judged, zero = self.trained["D"](images, codes)
            penalties = [r1_penalty(scores, image) for scores, image in zip(judged, images)]
            total.add_(sum(penalty.detach().sum() for penalty in penalties) / sides)
            return config.r1_gamma / 2 * sum(p.mean() for p in penalties) / sides * config.r1_every + zero

        ctx.step("D", loss, {"real": real})
        return {"R1": total / count}

    def _generator_step(self, count: int, plan: StepPlan) -> dict[str, Tensor]:
        ctx, sides = self.ctx, len(plan.sides)
        phase = self._latents(ctx.shared_generator(G_PHASE), count)
        code = self._code(plan.channels)
        totals = {"consistency": torch.zeros((), device=ctx.device)}

        def loss(part: Phase) -> Tensor:
            target = self._target(part)
            with ctx.autocast():
                fakes, zero = self._generate(self.trained["G"], part, plan.sides, plan.channels)
                # The frozen D runs unwrapped: it needs no gradient averaging.
                adversarial = sum(self.gan(self.nets["D"](fake, code), True, for_discriminator=False)
                                  for fake in fakes) / sides
            consistency = sum(self.consistency(fake, target)["consistency"] for fake in fakes) / sides
            totals["consistency"] += consistency.detach() * len(part["z"])
            return adversarial + consistency + zero

        with ctx.frozen(self.nets["D"]):
            loss_g = ctx.step("G", loss, phase)
        return {"G": loss_g, "consistency": totals["consistency"] / count}

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def visuals(self, batch: dict) -> list[Tensor]:
        """The teacher's full images of the first fixed latents (``batch["z"]``, (N, z_dim)), then each fidelity
        sub-generator's (enlarged, nearest) as a column."""
        z = batch["z"]
        size = self.teacher.img_resolution
        columns = [self.teacher(z).float()]
        for probe in self.probes:
            with self.generator.subnet(probe.side, probe.ratio):
                columns.append(F.interpolate(self.generator(z).float(), size=(size, size), mode="nearest"))
        return columns

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """``psnr_RATIOx_SIDEpx`` / ``ssim_...`` of each fidelity sub-generator against the teacher."""
        scores = fidelity(self.generator, self.teacher, (batch["z"] for batch in batches), self.probes)
        return {f"{metric}_{label}": value for label, values in scores.items() for metric, value in values.items()}

    # ------------------------------------------------------------------ export

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {"G": ("generator", "stylegan2", self.generator.arch_kwargs())}

    def export(self, run_dir: Path) -> dict[str, Path]:
        """``generator.pt`` (the EMA generator, full config) and ``discriminator.pt`` (see the module docstring)."""
        generator, discriminator = self.generator, self.nets["D"]
        generator.set_subnet()
        meta = {"method": self.name, "kimg": self.ctx.images_seen / 1000,
                "steps": self.ctx.steps_done, "weights": "ema" if self.ctx.ema is not None else "trained"}
        return {"generator": save_model(run_dir / GENERATOR_FILE, generator, "stylegan2", generator.arch_kwargs(),
                                        meta=meta),
                "discriminator": save_model(run_dir / DISCRIMINATOR_FILE, discriminator, "anycost",
                                            discriminator_kwargs(discriminator), kind="discriminator", meta=meta)}


class MultiResolution(_AnycostStage):
    """Stage 1: ``sampled_resolutions`` sides a step, full widths, an unconditioned multi-resolution D."""

    name: ClassVar[str] = f"{METHOD}-multi-resolution"

    def _start_networks(self) -> tuple[StyleGAN2Generator, MultiResolutionDiscriminator]:
        generator = copy.deepcopy(self.teacher).requires_grad_(True).train()
        size, start = self.teacher.img_resolution, teacher_discriminator_file(self.config)
        if start is None:
            table = {"channels": list(self.teacher.channels.values())}
            return generator, MultiResolutionDiscriminator(size, resolutions=self.config.resolutions, **table)
        return generator, load_start_discriminator(start, size, self.config.resolutions, conditioned=False)

    def _draw_plan(self, rng: torch.Generator) -> StepPlan:
        full = tuple(self.generator.layer_channels)
        return StepPlan(sample_sides(rng, self.sides, self.config.sampled_resolutions), full, full)


class AdaptiveChannels(_AnycostStage):
    """Stage 2: one side and one configuration a step (``channel_sampling``), sorted channels, a conditioned D."""

    name: ClassVar[str] = f"{METHOD}-adaptive-channels"
    Config: ClassVar[type] = AdaptiveChannelsConfig
    conditioned: ClassVar[bool] = True

    def _start_networks(self) -> tuple[StyleGAN2Generator, MultiResolutionDiscriminator]:
        start = Path(self.config.multi_resolution)
        generator = load_generator(start / GENERATOR_FILE).model
        sort_stylegan2_channels(generator, n_latents=self.config.sort_latents, seed=self.config.seed)
        discriminator = load_start_discriminator(start / DISCRIMINATOR_FILE, self.teacher.img_resolution,
                                                 self.config.resolutions, conditioned=True)
        return generator.train(), discriminator

    def _draw_plan(self, rng: torch.Generator) -> StepPlan:
        full = self.generator.layer_channels
        sides = sample_sides(rng, self.sides, 1)
        channels = sample_channels(rng, full, self.config.channel_sampling)
        return StepPlan(sides, channels, sample_channels(rng, full, "flexible"))

