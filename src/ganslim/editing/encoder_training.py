"""``ganslim train encoder --generator CKPT``: an :class:`~ganslim.editing.encoder.Encoder` trained on its generator's
own samples, as an engine method (a resumable, logged run folder like every ``train`` run).

**Per step**: z (the engine's :class:`~ganslim.data.LatentDataset`) -> W, broadcast to W+ (with probability
``mixing``, the layers from a random crossover take a second z's W) -> the frozen generator's image with its stored
noise; the encoder maps that image back to W+, and the generator renders the prediction. Loss::

    latent_weight * MSE(W+ predicted, W+) + image_weight * MSE(image rendered, image)
        + perceptual_weight * VGG16 perceptual (with VGG16 weights, at most 256 px; ganslim ships no LPIPS)

and with ``sub_generators`` the same image terms for a sub-generator drawn each step (one of the top 4 sides,
Anycost's sandwich of channel configurations) rendering the prediction, against the image downsampled, so an
inversion stays consistent across previews. Without VGG16 weights the perceptual term is off, said once and
recorded in ``summary.json``. The generator never trains (its weights are no part of the checkpoints).

**Validation**: reconstruction PSNR (clamped to [-1, 1]) of held-out generated samples (``val_samples`` fixed z of
a stream training never draws: ``psnr``, which picks ``best.pt``) and, with ``--data``, of up to ``val_real`` real
images centre-cropped and resized to the generator's side (``psnr_real``). Samples: image | reconstruction.

**Exports**: ``encoder.pt`` (recording its generator, see :mod:`ganslim.editing.encoder`) and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, Dataset, Subset, default_collate

from ganslim.atomic import atomic_write_text
from ganslim.config import TrainConfig, lr_schedule_names, option
from ganslim.data import ImageFolderDataset, LatentDataset
from ganslim.editing.encoder import (
    ENCODER_FILE,
    Encoder,
    encoder_for,
    generator_identity,
    load_stylegan2,
    save_encoder,
)
from ganslim.engine import MethodBase, TrainContext, derive_seed
from ganslim.engine.loop import same_shape_batches
from ganslim.errors import GanslimError
from ganslim.losses import load_perceptual_vgg
from ganslim.measure.profile import count_params
from ganslim.methods.anycost.losses import ConsistencyLoss
from ganslim.methods.anycost.sampling import sample_channels, sample_sides, top_sides
from ganslim.methods.mobilestylegan.config import teacher_label
from ganslim.methods.stylegan2 import mixed_w_plus
from ganslim.metrics import RunningMean, psnr
from ganslim.nn.vgg import vgg16_weights_hint

logger = logging.getLogger(__name__)

METHOD = "encoder"
OFF = "none"
SUMMARY_FILE = "summary.json"
SUB_GENERATOR_SIDES = 4  # Anycost trains (and previews) the top 4 sides
MIX_PHASE, SUB_PHASE = 1, 2  # streams of the per-step shared draws
VAL_STREAM = 0xE2C


@dataclass(frozen=True)
class EncoderConfig(TrainConfig):
    """Everything ``ganslim train encoder`` reads; the length is in kimg (thousands of generated samples)."""

    generator: str = option("", "the StyleGAN2 generator to invert: a ganslim generator.pt or run folder, a rosinality "
                                "checkpoint or an NVIDIA .pkl")
    data: str = option("", "optional folder of real images: validation also reports their reconstruction PSNR "
                           "(centre-cropped and resized to the generator's side); training reads none")
    name: str = option("", "suffix of the run folder name (default: the generator's file or run folder name)")
    side: int = option(0, "the encoder's input side, images resized to it (0: the generator's side, at most 256)",
                       min=0)
    channels: int = option(32, "width of the encoder's stem; each residual block doubles it up to max_channels",
                           min=1)
    max_channels: int = option(256, "width of the encoder's widest residual block", min=1)
    head_channels: int = option(512, "width of the hidden layer of the encoder's head", min=1)
    latent_weight: float = option(1.0, "weight of the MSE between the predicted and the true W+", min=0.0)
    image_weight: float = option(1.0, "weight of the MSE between the rendered prediction and the image", min=0.0)
    perceptual_weight: float = option(1.0, "weight of the VGG16 perceptual term (with VGG16 weights)", min=0.0)
    vgg_weights: str = option("", "VGG16 ImageNet weights file ('': $GANSLIM_VGG16_WEIGHTS, then "
                                  "~/.cache/ganslim/vgg16-397923af.pth; 'none': no perceptual term)")
    mixing: float = option(0.5, "probability that a sample mixes two styles at a random layer (W+ beyond W)",
                           min=0.0, max=1.0)
    sub_generators: bool = option(False, "also the image terms of a sub-generator drawn each step (Anycost's top "
                                         "4 sides, sandwich channel configurations) rendering the prediction")
    lr: float = option(5e-4, "Adam learning rate of the encoder", above=0.0)
    beta1: float = option(0.9, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=0.999999)
    batch_size: int = option(8, "samples per step and process", min=1)
    kimg: float = option(200.0, "training length in thousands of generated samples", min=0.0)
    epochs: int = option(0, "epochs of train_latents (a length in epochs replaces the default kimg)", min=0)
    epochs_decay: int = option(0, "epochs of linear learning-rate decay (with lr_schedule linear_decay)", min=0)
    lr_schedule: str = option("constant", "learning-rate schedule: constant, linear_decay or cosine",
                              choices=lambda: lr_schedule_names())
    train_latents: int = option(10_000, "latents per epoch (the epoch only sets the draws, not the length)", min=1)
    val_samples: int = option(64, "held-out generated samples whose reconstruction PSNR validation reports", min=1)
    val_real: int = option(64, "with --data: at most this many real images validation reconstructs", min=1)

    def check(self) -> None:
        super().check()
        if not self.generator:
            raise GanslimError("no generator: pass --generator CKPT (the StyleGAN2 generator the encoder inverts)")
        if not self.name:  # the dataset folder is optional: the run is named after the generator
            object.__setattr__(self, "name", teacher_label(self.generator))
        if self.sample_images > self.val_samples:
            raise GanslimError(f"sample_images {self.sample_images} is more than val_samples {self.val_samples}: the "
                               f"sample grid shows held-out samples, lower sample_images or raise val_samples")


class EncoderTraining(MethodBase):
    """Trains an encoder for a frozen StyleGAN2 generator (see the module docstring)."""

    name: ClassVar[str] = METHOD
    Config: ClassVar[type] = EncoderConfig
    monitor: ClassVar[tuple[str, str] | None] = ("psnr", "max")
    ema_networks: ClassVar[tuple[str, ...]] = ()
    needs_data: ClassVar[bool] = False

    def __init__(self, config: EncoderConfig, ctx: TrainContext) -> None:
        self.config, self.ctx = config, ctx
        generator, self.generator_path = load_stylegan2(config.generator)
        self.generator = generator.to(ctx.device)
        self.real = self._real_images()
        encoder = encoder_for(self.generator, config.side, config.channels, config.max_channels,
                              config.head_channels)
        self.nets: dict[str, nn.Module] = {"encoder": encoder}
        self.trained = ctx.wrap(encoder)
        self._optimizers = {"encoder": torch.optim.Adam(encoder.parameters(), lr=config.lr,
                                                        betas=(config.beta1, config.beta2))}
        self.vgg_status, vgg = self._vgg()
        self.image_loss = ConsistencyLoss(1.0, vgg)
        self.sides = top_sides(self.generator.img_resolution, min(SUB_GENERATOR_SIDES, len(self.generator.channels)))

    @property
    def encoder(self) -> Encoder:
        return self.nets["encoder"]

    def _vgg(self) -> tuple[str, nn.Module | None]:
        """The perceptual term's status (``loaded``, ``off`` as asked, ``absent``: said once) and its VGG16."""
        config = self.config
        if config.vgg_weights == OFF or config.perceptual_weight == 0:
            return "off", None
        vgg = load_perceptual_vgg(config.vgg_weights or None)
        if vgg is None:
            if self.ctx.dist.is_main:
                logger.warning("no VGG16 weights, so the perceptual term is OFF (the latent and image MSE train the "
                               "encoder; Anycost adds LPIPS); to turn it on, %s", vgg16_weights_hint())
            return "absent", None
        return "loaded", vgg.to(self.ctx.device)

    def _real_images(self) -> Dataset | None:
        """Up to ``val_real`` images of ``--data`` (all decoded now), or None without it."""
        config = self.config
        if config.data in ("", OFF):
            return None
        images = ImageFolderDataset(config.data, self.generator.img_resolution, resize=True, flip=False)
        return Subset(images, range(min(len(images), config.val_real)))

    # ------------------------------------------------------------------ data

    def train_dataset(self) -> Dataset:
        return LatentDataset(self.config.train_latents, self.generator.z_dim, seed=self.config.seed)

    def val_dataset(self) -> Dataset:
        """The held-out z (``{"z"}`` items), then the real images (``{"image", "path"}``), batched apart."""
        held_out = LatentDataset(self.config.val_samples, self.generator.z_dim,
                                 seed=derive_seed(self.config.seed, VAL_STREAM))
        return held_out if self.real is None else ConcatDataset([held_out, self.real])

    # ------------------------------------------------------------------ training

    def _w_plus(self, z: Tensor) -> Tensor:
        """W+ (N, num_ws, w_dim) of z (N, z_dim), mixed with probability ``mixing`` (draws shared by the ranks)."""
        generator, ctx = self.generator, self.ctx
        rng = ctx.shared_generator(MIX_PHASE)
        z_mix = ctx.shared_randn(rng, len(z), generator.z_dim)
        mixes = float(torch.rand((), generator=rng)) < self.config.mixing
        crossover = int(torch.randint(1, max(generator.num_ws, 2), (), generator=rng))
        return mixed_w_plus(generator, z, z_mix, crossover if mixes else generator.num_ws)

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """One encoder update (see the module docstring)."""
        config, generator = self.config, self.generator
        with torch.no_grad():
            w_plus = self._w_plus(batch["z"])
            image = generator.synthesize(w_plus).float()
        predicted = self.trained(image)
        terms = {"latent": F.mse_loss(predicted, w_plus)}
        loss = config.latent_weight * terms["latent"] + self._image_loss(generator.synthesize(predicted), image,
                                                                         terms, "")
        if config.sub_generators:
            rng = self.ctx.shared_generator(SUB_PHASE)
            side = sample_sides(rng, self.sides, 1)[0]
            with generator.subnet(side, list(sample_channels(rng, generator.layer_channels, "sandwich"))):
                preview = generator.synthesize(predicted)
            loss = loss + self._image_loss(preview, image, terms, "sub_")
        terms["encoder"] = self.ctx.step("encoder", loss)
        return {key: value.detach() for key, value in terms.items()}

    def _image_loss(self, rendered: Tensor, image: Tensor, terms: dict[str, Tensor], prefix: str) -> Tensor:
        """The weighted image terms of ``rendered`` against ``image`` (downsampled to its side), each also put in
        ``terms`` under ``prefix`` + its name (:class:`~ganslim.methods.anycost.losses.ConsistencyLoss` computes them,
        at weight 1)."""
        found = self.image_loss(rendered, image)
        found.pop("consistency")
        terms.update({prefix + name: value for name, value in found.items()})
        loss = self.config.image_weight * found["mse"]
        if "perceptual" in found:
            loss = loss + self.config.perceptual_weight * found["perceptual"]
        return loss

    # ------------------------------------------------------------------ evaluation

    def reconstruct(self, images: Tensor) -> Tensor:
        """images (N, C, R, R) -> the generator's render (N, C, R, R) of their encoded W+."""
        return self.generator.synthesize(self.encoder(images)).float()

    def _targets(self, batch: dict) -> Tensor:
        """The images of a validation batch: the generator's for held-out z, else the real ones."""
        if "z" in batch:
            return self.generator(batch["z"]).float()
        return batch["image"]

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """``psnr`` of the held-out samples' reconstructions and, with ``--data``, ``psnr_real`` of the real ones."""
        means = {"psnr": RunningMean(), "psnr_real": RunningMean()}
        for batch in batches:
            target = self._targets(batch).clamp(-1, 1)
            means["psnr" if "z" in batch else "psnr_real"].update(psnr(self.reconstruct(target).clamp(-1, 1),
                                                                       target))
        return {key: mean.compute() for key, mean in means.items() if mean.count}

    def visuals(self, batch: dict) -> list[Tensor]:
        """image | reconstruction, for the first held-out samples."""
        target = self._targets(batch)
        return [target, self.reconstruct(target)]

    # ------------------------------------------------------------------ export

    def _final_scores(self) -> dict[str, float]:
        """:meth:`validate` over the whole validation set with the exported weights."""
        dataset = self.val_dataset()
        items = (default_collate([dataset[index]]) for index in range(len(dataset)))
        batches = ({key: value.to(self.ctx.device) if isinstance(value, Tensor) else value
                    for key, value in batch.items()} for batch in same_shape_batches(items, self.config.batch_size))
        return self.validate(batches)

    def summary(self) -> dict:
        """What ``summary.json`` holds: the generator, the encoder, the objective as it ran and the final PSNRs."""
        config, scores = self.config, self._final_scores()
        objective = {"latent_weight": config.latent_weight, "image_weight": config.image_weight,
                     "perceptual_weight": config.perceptual_weight if self.vgg_status == "loaded" else 0.0,
                     "perceptual": {"vgg16": self.vgg_status}, "mixing": config.mixing,
                     "sub_generators": config.sub_generators}
        if self.vgg_status == "absent":
            objective["fallback"] = "without VGG16 weights the perceptual term is off: latent and image MSE only"
        real = None if self.real is None else {"folder": config.data, "images": len(self.real),
                                               "psnr": scores.get("psnr_real")}
        return {"method": METHOD, "generator": {"path": str(self.generator_path),
                                                **generator_identity(self.generator)},
                "encoder": {"file": ENCODER_FILE, "arch_kwargs": self.encoder.arch_kwargs(),
                            "params": count_params(self.encoder)},
                "objective": objective, "steps": self.ctx.steps_done, "kimg": self.ctx.images_seen / 1000,
                "held_out": {"samples": config.val_samples, "psnr": scores["psnr"]}, "real": real}

    def export(self, run_dir: Path) -> dict[str, Path]:
        """``encoder.pt`` and ``summary.json`` (see the module docstring)."""
        meta = {"method": METHOD, "steps": self.ctx.steps_done, "kimg": self.ctx.images_seen / 1000}
        return {"encoder": save_encoder(run_dir / ENCODER_FILE, self.encoder, self.generator, meta),
                "summary": atomic_write_text(json.dumps(self.summary(), indent=1) + "\n", run_dir / SUMMARY_FILE)}
