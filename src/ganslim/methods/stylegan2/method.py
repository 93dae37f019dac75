"""StyleGAN2 training as rosinality/stylegan2-pytorch's ``train.py`` does it, as an engine method.

**Data**: one folder of same-size square images (:class:`~ganslim.data.ImageFolderDataset`), the networks built
at their side (``size``, or ``resize``), mirrored at random.

**Per step** (rosinality's order; every phase's z, mixing, noise images and augmentation drawn from
``ctx.shared_generator`` for the whole step's batch, so N processes reproduce one process of N times the batch,
and a resumed run the uninterrupted one):

1. D: non-saturating logistic loss ``softplus(-D(x)) + softplus(D(G(z)))`` (``GANLoss("vanilla")``), fakes made
   without gradients;
2. every ``r1_every`` steps (step 0 included): ``r1_gamma / 2 * |dD(x)/dx|^2 * r1_every`` on the real images;
3. G: ``softplus(-D(G(z)))`` with D frozen;
4. every ``path_length_every`` steps: ``path_length_weight * path_length_every * (|J^T y| - a)^2`` on a batch shrunk
   by ``path_batch_shrink``, ``a`` the running mean length (over every process).

Lazy regularisation: an optimizer whose regulariser runs every ``k`` steps gets ``lr * c`` and ``betas ** c``,
``c = k / (k + 1)`` (:mod:`ganslim.engine.lazy`). Style mixing: with probability ``mixing`` a batch takes W from a
second z from a random layer on. With ``augment`` the discriminator sees DiffAugment'ed reals and fakes (and R1 is the
gradient through the augmentation to the real images, as StyleGAN2-ADA's). The engine averages G (``ema_kimg``
half-life, ``ema_rampup``).

**Validation**: FID of fixed-z EMA images against the training images when Inception weights are found; then
``best.pt`` is the lowest FID and its EMA generator is exported. Without them there is no validation and the last
step's EMA generator is exported (as rosinality keeps its last checkpoint). Sample grids: ``sample_images`` x
``sample_images`` fixed-z images of the EMA generator (const noise).

**Exports** (run folder): ``generator.pt`` (ganslim format, the EMA generator with its ``w_avg`` estimated from
10,000 z), ``discriminator.pt``, and ``reference/stylegan2.pt`` in rosinality's layout ``{"g_ema", "latent_avg",
"g", "d"}`` (what its ``generate.py`` and ``convert_weight.py`` files hold; ``g`` is the trained, not averaged
generator). ``generator=mobile_stylegan`` trains MobileStyleGAN's architecture with this recipe
(:mod:`.generators`; with ``mapping_from`` its copied mapping stays frozen and keeps its ``w_avg``) and exports no
rosinality layout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.archs import build_discriminator
from ganslim.archs.stylegan2 import LatentGenerator, estimate_w_avg
from ganslim.atomic import atomic_torch_save
from ganslim.checkpoints import save_model
from ganslim.data import ImageFolderDataset
from ganslim.engine import MethodBase, TrainContext, derive_seed, lazy_adam
from ganslim.errors import GanslimError
from ganslim.losses import GANLoss, path_length_penalty, path_lengths, r1_penalty
from ganslim.methods.stylegan2.config import ARCH, METHOD, StyleGAN2Config, discriminator_kwargs
from ganslim.methods.stylegan2.generators import trained_generator
from ganslim.nn.augment import DiffAugment

logger = logging.getLogger(__name__)

GENERATOR_FILE, DISCRIMINATOR_FILE, REFERENCE_FILE = "generator.pt", "discriminator.pt", "reference/stylegan2.pt"
W_AVG_SAMPLES = 10_000
INCEPTION_OFF = "none"
# Streams of the per-step shared draws (ctx.shared_generator), one per phase, so a phase's draws never shift another's.
D_PHASE, R1_PHASE, G_PHASE, PATH_PHASE = 1, 2, 3, 4
SAMPLE_STREAM, VAL_STREAM = 0x5A3, 0xF1D  # fixed z of the sample grids and of FID
Phase = dict[str, Tensor | int]


class MixingGenerator(nn.Module):
    """The trained view of a StyleGAN2 generator (the module DDP wraps): z (N, z_dim), a second z whose W the
    layers from ``crossover`` on take (``crossover == num_ws``: no mixing) and one noise image per StyledConv ->
    (images (N, C, R, R), the W+ codes (N, num_ws, w_dim) the synthesis read)."""

    def __init__(self, generator: LatentGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: Tensor, z_mix: Tensor, crossover: int, noise: list[Tensor]) -> tuple[Tensor, Tensor]:
        w_plus = mixed_w_plus(self.generator, z, z_mix, crossover)
        if torch.is_grad_enabled() and not w_plus.requires_grad:  # a frozen mapping: path lengths need dG/dW+
            w_plus.requires_grad_(True)
        return self.generator.synthesis(w_plus, noise=noise), w_plus


def mixed_w_plus(generator: StyleGAN2Generator, z: Tensor, z_mix: Tensor, crossover: int) -> Tensor:
    """W+ (N, num_ws, w_dim) of z (N, z_dim), the layers from ``crossover`` on taking z_mix's W (``crossover ==
    num_ws``: no mixing)."""
    w = generator.map(z)
    return generator.mix(w, generator.map(z_mix), crossover) if crossover < generator.num_ws else generator.broadcast(w)


def require_one_batch(dataset: ImageFolderDataset, folder: str, batch_size: int, world: int) -> ImageFolderDataset:
    """``dataset``, refused (one line) when it holds fewer images than one step's batch on ``world`` processes."""
    if len(dataset) < batch_size * world:
        processes = f" x {world} processes" if world > 1 else ""
        raise GanslimError(f"'{folder}' holds {len(dataset)} images, fewer than one batch of {batch_size}"
                           f"{processes}: add images or lower --batch-size")
    return dataset


def draw_latents(ctx: TrainContext, generator: StyleGAN2Generator, rng: torch.Generator, count: int,
                 mixing: float) -> Phase:
    """This rank's rows of a step's z, mixing z and noise images for ``count`` samples per process, and the crossover
    layer (num_ws: no mixing, with probability 1 - ``mixing``), all drawn from ``rng`` for the whole step's batch."""
    def rows(*shape: int) -> Tensor:
        return ctx.shared_randn(rng, count, *shape)

    latents: Phase = {"z": rows(generator.z_dim), "z_mix": rows(generator.z_dim)}
    mixes = float(torch.rand((), generator=rng)) < mixing
    crossover = int(torch.randint(1, max(generator.num_ws, 2), (), generator=rng))
    latents["crossover"] = crossover if mixes and generator.num_ws > 1 else generator.num_ws
    for index, constant in enumerate(generator.synthesis.noises.constants()):
        latents[f"noise_{index}"] = rows(1, *constant.shape[2:])
    return latents


class StyleGAN2(MethodBase):
    """StyleGAN2 with rosinality's recipe (see the module docstring)."""

    name: ClassVar[str] = METHOD
    Config: ClassVar[type] = StyleGAN2Config
    monitor: tuple[str, str] | None = None  # ("fid", "min") once Inception weights are found
    ema_networks: ClassVar[tuple[str, ...]] = ("G",)
    accumulates: ClassVar[bool] = True

    def __init__(self, config: StyleGAN2Config, ctx: TrainContext) -> None:
        self.config, self.ctx = config, ctx
        self.dataset = self._training_images()
        side = self.dataset.resolution
        self.built = trained_generator(config, side)  # w_avg finite: NaN would fail the engine's finiteness checks
        generator = self.built.module
        discriminator = build_discriminator(ARCH, **discriminator_kwargs(config, side))
        self.nets: dict[str, nn.Module] = {"G": generator.to(ctx.device), "D": discriminator.to(ctx.device)}
        self.mixing = MixingGenerator(self.nets["G"])
        self.trained = {"G": ctx.wrap(self.mixing), "D": ctx.wrap(self.nets["D"])}
        betas = (config.beta1, config.beta2)
        self._optimizers = {
            "G": lazy_adam([p for p in generator.parameters() if p.requires_grad], config.lr, betas,
                           config.path_length_every if config.path_length_weight > 0 else None),
            "D": lazy_adam(discriminator.parameters(), config.lr, betas,
                           config.r1_every if config.r1_gamma > 0 else None)}
        self.gan = GANLoss("vanilla")  # StyleGAN2's non-saturating logistic loss
        self.augment = DiffAugment.parse(config.augment)
        self.mean_path_length = torch.zeros((), device=ctx.device)
        self.inception = self._inception()
        self.monitor = ("fid", "min") if self.inception is not None else None
        self._real_features = None

    @property
    def generator(self) -> LatentGenerator:
        return self.nets["G"]

    # ------------------------------------------------------------------ data

    def _training_images(self) -> ImageFolderDataset:
        config, world = self.config, self.ctx.dist.world_size
        dataset = ImageFolderDataset(config.data, config.size or None, resize=config.resize, flip=config.flip,
                                     seed=config.seed)
        side = dataset.resolution
        if side < 4 or side & (side - 1):
            below = 1 << (side.bit_length() - 1)
            raise GanslimError(f"the images under '{config.data}' are {side}x{side}: StyleGAN2 trains at a power-of-"
                               f"two side (4, 8, ..., 1024): pass --size {max(below, 4)} --set resize=true")
        return require_one_batch(dataset, config.data, config.batch_size, world)

    def train_dataset(self) -> Dataset:
        return self.dataset

    def val_dataset(self) -> Dataset | None:
        if self.inception is None:
            return None
        return ImageFolderDataset(self.config.data, self.dataset.resolution, resize=self.config.resize, flip=False)

    def _inception(self) -> nn.Module | None:
        """The FID feature extractor, or None (said once) when there are no Inception weights."""
        from ganslim.measure.evaluate import find_inception_weights  # imported late: it loads the measure stack
        from ganslim.metrics import load_inception

        if self.config.inception_weights == INCEPTION_OFF:
            return None
        path, missing = find_inception_weights(self.config.inception_weights or None)
        if path is None:
            if self.ctx.dist.is_main:
                logger.warning("no FID during training (%s): no best.pt is chosen, the last step's EMA generator is "
                               "exported", missing)
            return None
        return load_inception(path).to(self.ctx.device)

    # ------------------------------------------------------------------ draws

    def _latents(self, generator: torch.Generator, count: int) -> Phase:
        """z, the mixing z, the crossover layer (num_ws: no mixing) and noise images for ``count`` samples."""
        return draw_latents(self.ctx, self.generator, generator, count, self.config.mixing)

    def _augmentation(self, generator: torch.Generator, count: int, key: str) -> Phase:
        side = self.dataset.resolution
        drawn = self.augment.draw(count * self.ctx.dist.world_size, side, side, generator)
        return {f"{key}.{name}": self.ctx.this_rank(values) for name, values in drawn.items()}

    def _augmented(self, images: Tensor, part: Phase, key: str) -> Tensor:
        if not self.augment:
            return images
        return self.augment(images, {name: part[f"{key}.{name}"] for name in self.augment.operations})

    def _generate(self, module: nn.Module, part: Phase) -> tuple[Tensor, Tensor]:
        noise = [part[f"noise_{index}"] for index in range(self.generator.num_noises)]
        return module(part["z"], part["z_mix"], part["crossover"], noise)

    # ------------------------------------------------------------------ training

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """One step of rosinality's ``train.py`` (see the module docstring)."""
        config, real = self.config, batch["image"]
        terms = self._discriminator_step(real)
        if config.r1_gamma > 0 and self.ctx.due(config.r1_every):
            terms.update(self._r1_step(real))
        terms.update(self._generator_step(len(real)))
        if config.path_length_weight > 0 and self.ctx.due(config.path_length_every):
            terms.update(self._path_length_step(len(real)))
        return terms

    def _discriminator_step(self, real: Tensor) -> dict[str, Tensor]:
        ctx, rng, count = self.ctx, self.ctx.shared_generator(D_PHASE), len(real)
        phase = {"real": real, **self._latents(rng, count), **self._augmentation(rng, count, "real"),
                 **self._augmentation(rng, count, "fake")}
        scores = {"real": torch.zeros((), device=ctx.device), "fake": torch.zeros((), device=ctx.device)}

        def loss(part: Phase) -> Tensor:
            with torch.no_grad(), ctx.autocast():
                fake, _ = self._generate(self.mixing, part)
            with ctx.autocast():
                real_scores = self.trained["D"](self._augmented(part["real"], part, "real"))
                fake_scores = self.trained["D"](self._augmented(fake, part, "fake"))
            scores["real"] += real_scores.detach().float().sum()
            scores["fake"] += fake_scores.detach().float().sum()
            return self.gan(real_scores, True) + self.gan(fake_scores, False)

        loss_d = ctx.step("D", loss, phase)
        return {"D": loss_d, "D_real_score": scores["real"] / count, "D_fake_score": scores["fake"] / count}

    def _r1_step(self, real: Tensor) -> dict[str, Tensor]:
        config, ctx, rng, count = self.config, self.ctx, self.ctx.shared_generator(R1_PHASE), len(real)
        phase = {"real": real, **self._augmentation(rng, count, "real")}
        total = torch.zeros((), device=ctx.device)

        def loss(part: Phase) -> Tensor:
            images = part["real"].detach().requires_grad_(True)
            scores = self.trained["D"](self._augmented(images, part, "real"))
            penalty = r1_penalty(scores, images)
            total.add_(penalty.detach().sum())
            # 0 x scores: every parameter takes part in the backward pass (the last bias has no input gradient)
            return config.r1_gamma / 2 * penalty.mean() * config.r1_every + 0 * scores.sum()

        ctx.step("D", loss, phase)
        return {"R1": total / count}

    def _generator_step(self, count: int) -> dict[str, Tensor]:
        ctx, rng = self.ctx, self.ctx.shared_generator(G_PHASE)
        phase = {**self._latents(rng, count), **self._augmentation(rng, count, "fake")}

        def loss(part: Phase) -> Tensor:
            # The frozen D runs unwrapped: it needs no gradient averaging, and DDP expects grads for its params.
            with ctx.autocast():
                fake, _ = self._generate(self.trained["G"], part)
                scores = self.nets["D"](self._augmented(fake, part, "fake"))
            return self.gan(scores, True, for_discriminator=False)

        with ctx.frozen(self.nets["D"]):
            return {"G": ctx.step("G", loss, phase)}

    def _path_length_step(self, count: int) -> dict[str, Tensor]:
        config, ctx, rng = self.config, self.ctx, self.ctx.shared_generator(PATH_PHASE)
        count = max(1, count // config.path_batch_shrink)
        side, channels = self.dataset.resolution, self.generator.img_channels
        # rosinality's random image: N(0, 1) / sqrt(H * W)
        phase = {**self._latents(rng, count),
                 "direction": ctx.shared_randn(rng, count, channels, side, side) / side}
        sums = {"penalty": torch.zeros((), device=ctx.device), "lengths": torch.zeros((), device=ctx.device)}

        def loss(part: Phase) -> Tensor:
            fake, w_plus = self._generate(self.trained["G"], part)
            lengths = path_lengths(fake, w_plus, part["direction"])
            penalty, self.mean_path_length = path_length_penalty(
                lengths, self.mean_path_length, config.path_length_decay, ctx.mean_over_ranks(lengths.mean()))
            sums["penalty"] += penalty.detach() * len(lengths)
            sums["lengths"] += lengths.detach().sum()
            # 0 x fake: every parameter takes part (the last to-RGB bias has no gradient with respect to W+)
            return config.path_length_weight * config.path_length_every * penalty + 0 * fake[0, 0, 0, 0]

        ctx.step("G", loss, phase)
        return {"path_length_penalty": sums["penalty"] / count, "path_length": sums["lengths"] / count,
                "mean_path_length": self.mean_path_length.clone()}

    def extra_state(self) -> dict:
        return {"mean_path_length": self.mean_path_length.detach().cpu()}

    def load_extra_state(self, state: dict) -> None:
        self.mean_path_length = state["mean_path_length"].to(self.ctx.device)

    # ------------------------------------------------------------------ evaluation

    def _fixed_images(self, count: int, stream: int) -> Iterator[Tensor]:
        """``count`` images of the (EMA) generator from z fixed by (seed, stream), const noise, in batches."""
        generator = self.generator
        rng = torch.Generator().manual_seed(derive_seed(self.config.seed, stream))
        z = torch.randn(count, generator.z_dim, generator=rng)
        for start in range(0, count, self.config.batch_size):
            yield generator(z[start:start + self.config.batch_size].to(self.ctx.device)).float()

    def visuals(self, batch: dict) -> list[Tensor]:
        """A square grid of fixed-z images: as many columns as the rows the engine asks for."""
        rows = len(batch["image"])
        images = torch.cat(list(self._fixed_images(rows * rows, SAMPLE_STREAM)))
        return [images[column * rows:(column + 1) * rows] for column in range(rows)]

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """FID of as many fixed-z images as validation images, against those (their features computed once)."""
        from ganslim.metrics import compute_fid_kid, extract_features

        if self._real_features is None:
            self._real_features = extract_features((batch["image"] for batch in batches), self.inception)
        fakes = self._fixed_images(len(self._real_features), VAL_STREAM)
        return {"fid": compute_fid_kid(fakes, self._real_features, self.inception, kid=False).fid}

    # ------------------------------------------------------------------ export

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {"G": ("generator", self.built.arch, self.built.kwargs),
                "D": ("discriminator", ARCH, discriminator_kwargs(self.config, self.dataset.resolution))}

    def export(self, run_dir: Path) -> dict[str, Path]:
        """``generator.pt``, ``discriminator.pt`` and, for a stylegan2 generator, ``reference/stylegan2.pt`` (see
        the module docstring)."""
        config, generator, discriminator, built = self.config, self.generator, self.nets["D"], self.built
        side = self.dataset.resolution
        w_avg_source = built.w_avg_source or f"estimated from {W_AVG_SAMPLES} z (seed {config.seed})"
        w_avg = generator.style.w_avg if built.w_avg_source else estimate_w_avg(generator, n=W_AVG_SAMPLES,
                                                                                seed=config.seed)
        meta = {"method": METHOD, "size": side, "kimg": self.ctx.images_seen / 1000, "steps": self.ctx.steps_done,
                "augment": config.augment, "weights": "ema" if self.ctx.ema is not None else "trained",
                "w_avg": w_avg_source}
        if config.mapping_from:
            meta["mapping"] = f"copied from {config.mapping_from}, frozen"
        exported = {
            "generator": save_model(run_dir / GENERATOR_FILE, generator, built.arch, built.kwargs, meta=meta),
            "discriminator": save_model(run_dir / DISCRIMINATOR_FILE, discriminator, ARCH,
                                        discriminator_kwargs(config, side), kind="discriminator", meta=meta)}
        if built.arch != ARCH:  # rosinality's layout holds its own Generator only
            return exported
        trained = self.ctx.ema.trained_weights("G") if self.ctx.ema is not None else generator.state_dict()
        reference = {"g_ema": rosinality_state(generator.state_dict()), "latent_avg": w_avg.detach().cpu().clone(),
                     "g": rosinality_state(trained), "d": rosinality_state(discriminator.state_dict())}
        exported["reference"] = atomic_torch_save(reference, run_dir / REFERENCE_FILE)
        return exported


def rosinality_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A generator's or discriminator's state dict as rosinality's modules hold it: CPU copies, without ganslim's
    ``style.w_avg`` (rosinality keeps the mean W apart, as ``latent_avg``)."""
    return {key: value.detach().cpu().clone() for key, value in state.items() if key != "style.w_avg"}
