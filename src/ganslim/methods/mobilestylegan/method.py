"""MobileStyleGAN distillation (Belousov 2021) as an engine method: ``ganslim compress mobilestylegan``.

**Networks**: the teacher, any StyleGAN2 :func:`~ganslim.checkpoints.load_generator` loads (ganslim's, rosinality's
``g_ema``, NVIDIA's ``.pkl``), frozen and in eval mode, never checkpointed; the student ``mobile_stylegan`` built by
:meth:`~ganslim.archs.stylegan2.mobile.MobileStyleGANGenerator.from_teacher` (the teacher's channel table without
its last entry, its mapping copied and frozen: only the synthesis trains); a ``stylegan2`` discriminator on the
teacher's channel table. No data: the training items are z (:class:`~ganslim.data.LatentDataset`).

**Per step** (every draw but z, which the engine shards, from ``ctx.shared_generator`` for the whole step's batch,
so N processes reproduce one process of N times the batch, and a resumed run the uninterrupted one):

1. z -> the teacher's mapping -> W, broadcast to the teacher's W+; with probability ``mixing`` the layers from a
   random crossover in 1 .. student.num_ws - 1 take a second z's W (a layer the student reads, so the student sees
   every style the teacher's image depends on). One random noise image per teacher conv; the teacher renders its
   image from W+ and that noise (no gradient). The student reads the first ``student.num_ws`` W+ entries (its
   layers are the teacher's at the same side and role, :func:`~ganslim.archs.stylegan2.style_index_map`) and the
   teacher's noise at its sides (:meth:`~ganslim.archs.stylegan2.MobileSynthesis.shared_noise`).
2. Student: ``l1_weight (l1_image + l1_wavelet) + l2_weight (l2_image + l2_wavelet)`` at every head's scale
   (:func:`~ganslim.methods.mobilestylegan.loss.multiscale_terms`) ``+ perceptual_weight perceptual``
   (:class:`~ganslim.methods.mobilestylegan.loss.PerceptualL1`) ``+ gan_weight softplus(-D(aug(student)))``, with
   D frozen;
3. D: ``softplus(-D(aug(teacher))) + softplus(D(aug(student)))``, the teacher's images being the reals and the
   student's those of step 2, detached (the reference's g-then-d order: one student forward per step);
4. every ``r1_every`` steps (step 0 included): ``r1_gamma / 2 * |dD(t)/dt|^2 * r1_every`` on the teacher's images,
   without augmentation (as the reference). Unlike the reference, which skips the logistic D loss on those steps,
   R1 is an extra D update, and D's Adam takes rosinality's lazy-regularisation adjustment (``lr * c``,
   ``betas ** c``, ``c = r1_every / (r1_every + 1)``).

``gan_weight`` 0 drops steps 3 and 4 (no discriminator training). Gradient norms are clipped at ``grad_clip`` (1 by
default: MobileStyleGAN's users saw the loss reach 3e4 and NaN without it); a non-finite loss or weight stops the
run with the last good checkpoint kept (the engine's guard).

**VGG16**: the perceptual term needs torchvision's ImageNet weights (``vgg_weights``, ``$GANSLIM_VGG16_WEIGHTS`` or
``~/.cache/ganslim/vgg16-397923af.pth``); without them it is off, said once, and recorded in ``summary.json``: the
pixel and wavelet terms carry the objective.

**Validation**: on ``val_images`` fixed latents and noise images (:class:`ValidationLatents`), the student's PSNR and
SSIM to the teacher for the same W and noise (``psnr``, ``ssim``), and with Inception weights the KID between their
images (``kid``, which then picks ``best.pt``, as the reference; else ``psnr`` does, said once). Sample grids:
teacher | student on the first ``sample_images`` validation latents.

**Exports** (run folder): ``generator.pt`` (the student, ganslim format: ``ganslim generate`` / ``eval`` / ``profile``
take it), ``discriminator.pt`` and ``summary.json`` (student and teacher parameters and MACs of mapping and
synthesis at the teacher's resolution, both conventions, and the objective as it ran, fallbacks included).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Iterable

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.archs import build_discriminator, build_generator
from ganslim.archs.stylegan2 import MobileStyleGANGenerator, StyleGAN2Generator, estimate_w_avg
from ganslim.atomic import atomic_write_text
from ganslim.checkpoints import LoadedModel, load_generator, save_model
from ganslim.data import LatentDataset
from ganslim.engine import MethodBase, TrainContext, derive_seed, lazy_adam
from ganslim.errors import GanslimError
from ganslim.losses import GANLoss, r1_penalty
from ganslim.measure.profile import count_params, profile_parts
from ganslim.methods.mobilestylegan.config import METHOD, OFF, MobileStyleGANConfig
from ganslim.methods.mobilestylegan.loss import PIXEL_TERMS, PerceptualL1, multiscale_terms
from ganslim.metrics import RunningMean, psnr
from ganslim.nn.augment import DiffAugment
from ganslim.nn.vgg import STYLE_LAYERS, find_vgg16_weights, load_vgg16, vgg16_weights_hint
from ganslim.nn.wavelets import wavelets_to_image

logger = logging.getLogger(__name__)

STUDENT_ARCH, DISCRIMINATOR_ARCH = "mobile_stylegan", "stylegan2"
GENERATOR_FILE, DISCRIMINATOR_FILE, SUMMARY_FILE = "generator.pt", "discriminator.pt", "summary.json"
W_AVG_SAMPLES = 10_000
# Streams of the per-step shared draws (ctx.shared_generator) and of the fixed validation latents.
LATENT_PHASE, G_PHASE, D_PHASE = 1, 2, 3
VAL_STREAM = 0xF1D
Phase = dict[str, Tensor | int]


def load_teacher(path: str) -> LoadedModel:
    """The StyleGAN2 teacher at ``path`` (a file or a run folder), frozen and in eval mode.

    Raises:
        GanslimError: no path, a file that does not load, or a generator that is not a StyleGAN2.
    """
    if not path:
        raise GanslimError(f"{METHOD} needs a teacher: pass --teacher CKPT (a StyleGAN2 generator: ganslim's "
                           f"generator.pt, a rosinality checkpoint or an NVIDIA .pkl)")
    loaded = load_generator(path)
    if not isinstance(loaded.model, StyleGAN2Generator):
        raise GanslimError(f"'{loaded.path}' holds a {loaded.arch} generator, not a stylegan2 one: {METHOD} distils "
                           f"a StyleGAN2 teacher (pass a StyleGAN2 generator.pt, rosinality checkpoint or .pkl)")
    loaded.model.eval().requires_grad_(False)
    return loaded


class StudentHeads(nn.Module):
    """The trained view of the student (the module DDP wraps): W+ (N, num_ws, w_dim) and one noise image per conv
    -> every head's wavelets, (N, 4C, r, r) for r = 4, 8, ..., R/2."""

    def __init__(self, student: MobileStyleGANGenerator) -> None:
        super().__init__()
        self.synthesis = student.synthesis

    def forward(self, w_plus: Tensor, noise: Sequence[Tensor]) -> list[Tensor]:
        return self.synthesis.wavelets(w_plus, noise)


class ValidationLatents(Dataset):
    """``count`` fixed latents: item ``i`` is ``{"z": (z_dim,), "noise_k": (1, r_k, r_k) for each noise side}``,
    N(0, 1) drawn from (seed, i), the same in every validation and every run of that seed."""

    def __init__(self, count: int, z_dim: int, noise_sides: Sequence[int], seed: int) -> None:
        self.count, self.z_dim, self.noise_sides, self.seed = count, z_dim, tuple(noise_sides), seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = torch.Generator().manual_seed(derive_seed(self.seed, VAL_STREAM, index))
        item = {"z": torch.randn(self.z_dim, generator=rng)}
        for k, side in enumerate(self.noise_sides):
            item[f"noise_{k}"] = torch.randn(1, side, side, generator=rng)
        return item


class MobileStyleGAN(MethodBase):
    """MobileStyleGAN's distillation of a StyleGAN2 teacher (see the module docstring)."""

    name: ClassVar[str] = METHOD
    Config: ClassVar[type] = MobileStyleGANConfig
    monitor: tuple[str, str] | None = ("psnr", "max")  # ("kid", "min") once Inception weights are found
    ema_networks: ClassVar[tuple[str, ...]] = ("student",)
    needs_data: ClassVar[bool] = False

    def __init__(self, config: MobileStyleGANConfig, ctx: TrainContext) -> None:
        self.config, self.ctx = config, ctx
        self.loaded_teacher = load_teacher(config.teacher)
        self.teacher: StyleGAN2Generator = self.loaded_teacher.model.to(ctx.device)
        student = MobileStyleGANGenerator.from_teacher(self.teacher)
        self.w_avg_source = "the teacher's"
        if not student.style.has_w_avg:  # NaN would fail the engine's finiteness checks, and truncation needs it
            estimate_w_avg(student, n=W_AVG_SAMPLES, seed=config.seed)
            self.w_avg_source = f"estimated from {W_AVG_SAMPLES} z (seed {config.seed})"
        student.style.requires_grad_(False)
        discriminator = build_discriminator(DISCRIMINATOR_ARCH, **self._discriminator_kwargs()).to(ctx.device)
        self.nets: dict[str, nn.Module] = {"student": student, "D": discriminator}
        self.trained = {"student": ctx.wrap(StudentHeads(student)), "D": ctx.wrap(discriminator)}
        betas = (config.beta1, config.beta2)
        self._optimizers = {
            "student": torch.optim.Adam(student.synthesis.parameters(), lr=config.lr, betas=betas),
            "D": lazy_adam(discriminator.parameters(), config.lr, betas,
                           config.r1_every if config.r1_gamma > 0 else None)}
        self.gan = GANLoss("vanilla")  # the non-saturating logistic loss
        self.augment = DiffAugment.parse(config.augment)
        self.perceptual, self.vgg_status = self._perceptual()
        self.inception, self.kid_status = self._inception()
        self.monitor = ("kid", "min") if self.inception is not None else ("psnr", "max")
        self._teacher_features: np.ndarray | None = None

    @property
    def student(self) -> MobileStyleGANGenerator:
        return self.nets["student"]

    def _discriminator_kwargs(self) -> dict:
        teacher = self.teacher
        return {"size": teacher.img_resolution, "channels": list(teacher.channels.values()),
                "image_channels": teacher.img_channels, "stddev_group": self.config.stddev_group}

    def _perceptual(self) -> tuple[PerceptualL1 | None, str]:
        """The perceptual term and its status: ``loaded``, ``off`` (asked for) or ``absent`` (said once)."""
        config = self.config
        if config.vgg_weights == OFF or config.perceptual_weight == 0:
            return None, "off"
        path = find_vgg16_weights(config.vgg_weights or None)
        if path is None:
            if self.ctx.dist.is_main:
                logger.warning("no VGG16 weights, so the perceptual term is OFF (the pixel and wavelet terms carry "
                               "the distillation); to turn it on, %s", vgg16_weights_hint())
            return None, "absent"
        vgg = load_vgg16(path, imagenet_norm=False, signed_input=True)
        return PerceptualL1(vgg, config.perceptual_size).to(self.ctx.device), "loaded"

    def _inception(self) -> tuple[nn.Module | None, str]:
        """KID's feature extractor and its status: ``loaded``, ``off`` (asked for) or ``absent`` (said once)."""
        from ganslim.measure.evaluate import find_inception_weights  # imported late: it loads the measure stack
        from ganslim.metrics import load_inception

        if self.config.inception_weights == OFF:
            return None, "off"
        path, missing = find_inception_weights(self.config.inception_weights or None)
        if path is None:
            if self.ctx.dist.is_main:
                logger.warning("no KID during training (%s): best.pt is the best PSNR to the teacher instead", missing)
            return None, "absent"
        return load_inception(path).to(self.ctx.device), "loaded"

    # ------------------------------------------------------------------ data

    def train_dataset(self) -> Dataset:
        return LatentDataset(self.config.train_latents, self.teacher.z_dim, seed=self.config.seed)

    def val_dataset(self) -> Dataset:
        sides = [noise.shape[-1] for noise in self.teacher.noises.constants()]
        return ValidationLatents(self.config.val_images, self.teacher.z_dim, sides, self.config.seed)

    # ------------------------------------------------------------------ draws

    def _augmentation(self, generator: torch.Generator, count: int) -> dict[str, Tensor]:
        side = self.teacher.img_resolution
        drawn = self.augment.draw(count * self.ctx.dist.world_size, side, side, generator)
        return {name: self.ctx.this_rank(values) for name, values in drawn.items()}

    def _augmented(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        return self.augment(images, params) if self.augment else images

    def _styles(self, z: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The teacher's W+ (N, teacher.num_ws, w_dim) for ``z`` (N, z_dim), mixed or not, and one random noise image
        per teacher conv (N, 1, r, r)."""
        teacher, rng, count = self.teacher, self.ctx.shared_generator(LATENT_PHASE), len(z)
        z_mix = self.ctx.shared_randn(rng, count, teacher.z_dim)
        mixes = float(torch.rand((), generator=rng)) < self.config.mixing
        crossover = int(torch.randint(1, max(self.student.num_ws, 2), (), generator=rng))
        noise = [self.ctx.shared_randn(rng, count, 1, *buffer.shape[2:]) for buffer in teacher.noises.constants()]
        w = teacher.map(z)
        w_plus = teacher.mix(w, teacher.map(z_mix), crossover) if mixes else teacher.broadcast(w)
        return w_plus, noise

    def _render(self, w_plus: Tensor, noise: list[Tensor], student: nn.Module) -> tuple[Tensor, list[Tensor]]:
        """The teacher's image (N, C, R, R), without gradients, and ``student``'s heads (its trained view or
        :class:`StudentHeads`) for the teacher's W+ ``w_plus`` and noise ``noise``."""
        with torch.no_grad(), self.ctx.autocast():
            teacher_image = self.teacher.synthesize(w_plus, noise).float()
        with self.ctx.autocast():
            heads = student(w_plus[:, :self.student.num_ws], self.student.synthesis.shared_noise(noise))
        return teacher_image, heads

    # ------------------------------------------------------------------ training

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """One step (see the module docstring): student, then D, then R1 when due."""
        config = self.config
        with torch.no_grad():
            w_plus, noise = self._styles(batch["z"])
        teacher_image, terms, student_image = self._student_step(w_plus, noise)
        if config.gan_weight > 0:
            terms.update(self._discriminator_step(teacher_image, student_image))
            if config.r1_gamma > 0 and self.ctx.due(config.r1_every):
                terms.update(self._r1_step(teacher_image))
        return terms

    def _student_step(self, w_plus: Tensor, noise: list[Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Update the student's synthesis; the teacher's image, the logged terms and the student's image (detached)."""
        config, ctx = self.config, self.ctx
        augmentation = self._augmentation(ctx.shared_generator(G_PHASE), len(w_plus))
        with ctx.frozen(self.nets["D"]):
            teacher_image, heads = self._render(w_plus, noise, self.trained["student"])
            image = wavelets_to_image(heads[-1]).float()
            terms = multiscale_terms(heads, teacher_image)
            loss = (config.l1_weight * (terms["l1_image"] + terms["l1_wavelet"])
                    + config.l2_weight * (terms["l2_image"] + terms["l2_wavelet"]))
            if self.perceptual is not None:
                terms["perceptual"] = self.perceptual(image, teacher_image)
                loss = loss + config.perceptual_weight * terms["perceptual"]
            if config.gan_weight > 0:
                # The frozen D runs unwrapped: it needs no gradient averaging, and DDP expects grads for its params.
                with ctx.autocast():
                    scores = self.nets["D"](self._augmented(image, augmentation))
                terms["G_gan"] = self.gan(scores, True, for_discriminator=False)
                loss = loss + config.gan_weight * terms["G_gan"]
            terms["G"] = ctx.step("student", loss)
        return teacher_image, {key: value.detach() for key, value in terms.items()}, image.detach()

    def _discriminator_step(self, teacher_image: Tensor, student_image: Tensor) -> dict[str, Tensor]:
        ctx, rng, count = self.ctx, self.ctx.shared_generator(D_PHASE), len(teacher_image)
        real_params, fake_params = self._augmentation(rng, count), self._augmentation(rng, count)
        with ctx.autocast():
            real_scores = self.trained["D"](self._augmented(teacher_image, real_params))
            fake_scores = self.trained["D"](self._augmented(student_image, fake_params))
        loss = self.gan(real_scores, True) + self.gan(fake_scores, False)
        return {"D": ctx.step("D", loss), "D_real_score": real_scores.detach().float().mean(),
                "D_fake_score": fake_scores.detach().float().mean()}

    def _r1_step(self, teacher_image: Tensor) -> dict[str, Tensor]:
        config = self.config
        images = teacher_image.detach().requires_grad_(True)
        scores = self.trained["D"](images)
        penalty = r1_penalty(scores, images)
        # 0 x scores: every parameter takes part in the backward pass (the last bias has no input gradient)
        self.ctx.step("D", config.r1_gamma / 2 * penalty.mean() * config.r1_every + 0 * scores.sum())
        return {"R1": penalty.detach().mean()}

    # ------------------------------------------------------------------ evaluation

    def _pair(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Teacher and student images (N, C, R, R) of a batch of validation latents (W broadcast, its noise)."""
        noise = [batch[f"noise_{k}"] for k in range(self.teacher.num_noises)]
        w_plus = self.teacher.broadcast(self.teacher.map(batch["z"]))
        teacher_image, heads = self._render(w_plus, noise, StudentHeads(self.student))
        return teacher_image, wavelets_to_image(heads[-1]).float()

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """PSNR / SSIM of the student to the teacher on the validation latents, and KID with Inception weights."""
        from ganslim.measure.evaluate import mean_ssim  # imported late: it loads the measure stack
        from ganslim.metrics import extract_features, kernel_inception_distance

        means = {"psnr": RunningMean(), "ssim": RunningMean()}
        teachers, students = [], []
        for batch in batches:
            teacher_image, student_image = self._pair(batch)
            means["psnr"].update(psnr(student_image, teacher_image))
            means["ssim"].update(mean_ssim(student_image, teacher_image))
            teachers.append(teacher_image)
            students.append(student_image)
        metrics = {key: mean.compute() for key, mean in means.items()}
        if self.inception is not None:
            if self._teacher_features is None:  # the teacher and the latents are fixed: computed once
                self._teacher_features = extract_features(teachers, self.inception)
            student_features = extract_features(students, self.inception)
            metrics["kid"] = kernel_inception_distance(student_features, self._teacher_features,
                                                       seed=self.config.seed)[0]
        return metrics

    def visuals(self, batch: dict) -> list[Tensor]:
        """teacher | student, for the first validation latents."""
        return list(self._pair(batch))

    # ------------------------------------------------------------------ export

    def objective(self) -> dict:
        """The student's objective as it ran (``summary.json``), with what stood in for a missing term."""
        config = self.config
        weights = {"l1": config.l1_weight, "l2": config.l2_weight,
                   "perceptual": config.perceptual_weight if self.perceptual is not None else 0.0,
                   "gan": config.gan_weight}
        summary = {"weights": weights, "pixel_terms": list(PIXEL_TERMS), "scales": self.student.num_ws // 2,
                   "perceptual": {"vgg16": self.vgg_status, "layers": list(STYLE_LAYERS),
                                  "size": min(config.perceptual_size, self.student.img_resolution)},
                   "gan": {"augment": config.augment, "r1_gamma": config.r1_gamma, "r1_every": config.r1_every},
                   "mixing": config.mixing, "lr": config.lr, "grad_clip": config.grad_clip,
                   "best_by": self.monitor[0], "kid": self.kid_status}
        if self.vgg_status == "absent":
            summary["fallback"] = ("ganslim's: without VGG16 weights the perceptual term is off and the pixel and "
                                   "wavelet L1 + L2 terms carry the distillation")
        return summary

    def summary(self) -> dict:
        """Parameters and MACs (both conventions) of the student's and the teacher's parts at the teacher's
        resolution, and the objective."""
        teacher, student = self.loaded_teacher, self.student
        return {"method": METHOD, "resolution": student.img_resolution,
                "teacher": {"path": str(teacher.path), "arch": teacher.arch, "params": count_params(teacher.model),
                            "parts": _part_costs(teacher.arch, teacher.arch_kwargs)},
                "student": {"arch": STUDENT_ARCH, "arch_kwargs": student.arch_kwargs(),
                            "params": count_params(student), "parts": _part_costs(STUDENT_ARCH,
                                                                                   student.arch_kwargs()),
                            "file": GENERATOR_FILE},
                "objective": self.objective()}

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {"student": ("generator", STUDENT_ARCH, self.student.arch_kwargs()),
                "D": ("discriminator", DISCRIMINATOR_ARCH, self._discriminator_kwargs())}

    def export(self, run_dir: Path) -> dict[str, Path]:
        """``generator.pt`` (the student), ``discriminator.pt`` and ``summary.json`` (see the module docstring)."""
        ctx = self.ctx
        meta = {"method": METHOD, "teacher": str(self.loaded_teacher.path), "size": self.student.img_resolution,
                "kimg": ctx.images_seen / 1000, "steps": ctx.steps_done,
                "weights": "ema" if ctx.ema is not None else "trained", "w_avg": self.w_avg_source}
        return {
            "generator": save_model(run_dir / GENERATOR_FILE, self.student, STUDENT_ARCH, self.student.arch_kwargs(),
                                    meta=meta),
            "discriminator": save_model(run_dir / DISCRIMINATOR_FILE, self.nets["D"], DISCRIMINATOR_ARCH,
                                        self._discriminator_kwargs(), kind="discriminator", meta=meta),
            "summary": atomic_write_text(json.dumps(self.summary(), indent=1) + "\n", run_dir / SUMMARY_FILE)}


def _part_costs(arch: str, kwargs: dict) -> dict[str, dict[str, int]]:
    """``{"mapping": {...}, "synthesis": {"params", "macs", "macs_published"}}`` of generator ``arch``, counted on the
    meta device (no weights, no arithmetic)."""
    with torch.device("meta"):
        parts = profile_parts(build_generator(arch, **kwargs))
    return {name: {"params": part.params, "macs": part.macs.macs, "macs_published": part.macs.macs_published}
            for name, part in parts.items()}
