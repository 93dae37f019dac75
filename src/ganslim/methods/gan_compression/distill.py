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

A student family plugs in through the ``_resolve`` ... ``_channel_names`` hooks of ``_Distillation`` (the SPADE
family's: :mod:`ganslim.methods.gan_compression.spade.distill`).

The discriminator starts from the teacher's (``teacher_discriminator``, or ``discriminator.pt`` /
``latest_net_D.pth`` / ``latest_net_D_A.pth`` next to the teacher file), else it is fresh. A part of the
*training* images (``holdout_images``) is held out: never trained on, it scores validation (``psnr``: vs
the ground truth for paired data, vs the teacher's output for unpaired) and the search. Paired data with a
``val/`` split also reports ``val_psnr`` / ``val_ssim`` there; the test split is never read.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import ClassVar, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.archs import build_discriminator, build_generator, init_weights
from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator, channel_names, check_channels
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.atomic import atomic_torch_save
from ganslim.checkpoints import load_generator, save_model
from ganslim.checkpoints import LoadedModel
from ganslim.compress import extract_subnet
from ganslim.compress.extract import compact_arch
from ganslim.data import PAIRED, UNPAIRED, data_kind
from ganslim.engine import MethodBase, TrainContext, check_image_sides, derive_seed
from ganslim.errors import GanslimError
from ganslim.losses import FeatureTap, GANLoss
from ganslim.methods.gan_compression.config import TITLE, DistillConfig, resolve_defaults, search_space
from ganslim.methods.gan_compression.data import image_metrics, training_items, validation_items
from ganslim.methods.gan_compression.networks import (
    ADAPTERS_FILE,
    ADAPTERS_FORMAT,
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    SUPERNET_FILE,
    ElasticFeatureDistillation,
    discriminator_channels,
    distill_layers,
    find_supernet,
    find_teacher_discriminator,
    load_teacher,
    load_teacher_discriminator,
    slice_adapters,
    student_kwargs,
)
from ganslim.weights import read_weights_only

logger = logging.getLogger(__name__)

_SEED_STREAM = 0x6A5C  # the stream of channel configurations drawn during supernet training


class _ConfigurationTap(FeatureTap):
    """The student's :class:`~ganslim.losses.FeatureTap` run at each channel configuration given (None: the
    student as it is), returning ``[(output, features)]``.

    One forward call for all configurations of a step, so under DistributedDataParallel every shared
    weight is used inside a single forward/backward.
    """

    def forward(self, image: Tensor, configs: Sequence[Sequence[int] | None] = (None,)
                ) -> list[tuple[Tensor, list[Tensor]]]:
        results = []
        for channels in configs:
            if channels is not None:
                self.generator.configure(channels)
            results.append(super().forward(image))
        return results


class _Distillation(MethodBase):
    """Networks, losses, data and export shared by both stages; subclasses build the student."""

    ema_networks: ClassVar[tuple[str, ...]] = ()
    monitor: ClassVar[tuple[str, str] | None] = None

    def __init__(self, config: DistillConfig, ctx: TrainContext) -> None:
        config = self._resolve(config)
        self.config, self.ctx = config, ctx
        self.paired = self._is_paired()
        self.gan_loss = GANLoss(config.gan_mode)
        self.teacher_info = self._load_teacher()
        self.teacher = self.teacher_info.model
        self.student_arch, self.student = self._build_student(self._student_kwargs())
        self.student.to(ctx.device)
        self.layers = self._distill_layers() if config.lambda_distill > 0 else []
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
        self.tap = ctx.wrap(_ConfigurationTap(self.student, self.layers))
        self.teacher_tap = FeatureTap(self.teacher, self.layers)
        self.trained_adapters = ctx.wrap(self.adapters) if self.adapters is not None else None
        self.trained_discriminator = ctx.wrap(self.discriminator)
        (lr_g, lr_d), betas = self._learning_rates(), self._betas()
        self._optimizers = {"G": torch.optim.Adam(params, lr=lr_g, betas=betas),
                            "D": torch.optim.Adam(self.discriminator.parameters(), lr=lr_d, betas=betas)}

    # -------------------------------------------------------------- building (hooks of a student family)

    def _resolve(self, config: DistillConfig) -> DistillConfig:
        """``config`` with its ``auto`` values filled in (the paper's defaults for the data)."""
        return resolve_defaults(config)

    def _is_paired(self) -> bool:
        return data_kind(self.config.data, TITLE) == PAIRED

    def _load_teacher(self) -> LoadedModel:
        loaded = load_teacher(self.config, self.ctx.device)
        check_image_sides({"teacher": loaded.model}, self.config.fixed_image_sides())  # frozen: not in networks()
        return loaded

    def _student_kwargs(self) -> dict:
        return student_kwargs(self.config, self.teacher_info)

    def _distill_layers(self) -> list[int]:
        return distill_layers(self.teacher, self.student)

    def _learning_rates(self) -> tuple[float, float]:
        """(G, D) initial learning rates."""
        return self.config.lr, self.config.lr

    def _betas(self) -> tuple[float, float]:
        return self.config.beta1, self.config.beta2

    def _check_fixed_channels(self, channels: list[int], kwargs: dict) -> None:
        """Refuse (GanslimError) a fine-tune configuration the compact student cannot take."""
        check_channels(channels, kwargs["n_blocks"])

    def _channel_names(self) -> list[str]:
        return channel_names(self.student.n_blocks)

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
            teacher_out, teacher_features = self.teacher_tap(real_a)
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

    # -------------------------------------------------------------- export

    def _meta(self) -> dict:
        config = self.config
        return {"method": self.name, "teacher": str(config.teacher), "teacher_arch": self.teacher_info.arch,
                "direction": config.direction, "crop_size": config.crop_size, "load_size": config.load_size,
                "preprocess": config.preprocess, "data_kind": PAIRED if self.paired else UNPAIRED,
                "distill_layers": list(self.layers)}

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {"G": ("generator", self.student_arch, self.student.arch_kwargs()),
                "D": ("discriminator", self.discriminator_arch, self.discriminator_kwargs)}

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
    supernet_arch = "super_mobile_resnet"

    def __init__(self, config: DistillConfig, ctx: TrainContext) -> None:
        if config.fixed_channels:
            raise GanslimError("fixed_channels is set: a single configuration is trained by the fine-tune stage "
                               "(gan-compression-finetune), not the supernet")
        super().__init__(config, ctx)
        self.space = search_space(self.config, self.student)
        # The same draws on every rank (no rank in the seed): all processes train the same sub-network.
        self.rng = random.Random(derive_seed(self.config.seed, _SEED_STREAM))

    def _build_student(self, kwargs: dict) -> tuple[str, SuperMobileResnetGenerator]:
        return self.supernet_arch, init_weights(build_generator(self.supernet_arch, **kwargs))

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
    compact_arch = "mobile_resnet"

    def __init__(self, config: DistillConfig, ctx: TrainContext) -> None:
        if not config.fixed_channels:
            raise GanslimError("the fine-tune stage trains one sub-network: pass fixed_channels (e.g. "
                               "--channels 16,32,64,32,48,64,32,16 or the search's choice)")
        self.supernet_file = find_supernet(config.supernet) if config.supernet else None
        super().__init__(config, ctx)

    def _build_student(self, kwargs: dict) -> tuple[str, MobileResnetGenerator]:
        channels = list(self.config.fixed_channels)
        if self.supernet_file is None:
            self._check_fixed_channels(channels, kwargs)
            return self.compact_arch, init_weights(build_generator(self.compact_arch, **kwargs, channels=channels))
        supernet = load_generator(self.supernet_file).model
        if compact_arch(supernet) != self.compact_arch:
            raise GanslimError(f"'{self.supernet_file}' is not a supernet (it holds a {type(supernet).__name__}): "
                               f"pass the supernet.pt of a gan-compression-supernet run")
        wanted = {key: value for key, value in kwargs.items() if key not in ("ngf", "use_dropout")}
        found = {key: getattr(supernet, key) for key in wanted}
        if found != wanted:
            raise GanslimError(f"supernet '{self.supernet_file}' was built as {found}, this teacher and config give "
                               f"{wanted}: fine-tune with the teacher and options the supernet was trained with")
        return self.compact_arch, extract_subnet(supernet, channels).train()

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
        meta = {**self._meta(), "channels": list(self.student.channels), "channel_names": self._channel_names(),
                "supernet": str(self.supernet_file or "")}
        exported = {"generator": save_model(run_dir / GENERATOR_FILE, self.student, self.student_arch,
                                            self.student.arch_kwargs(), meta=meta)}
        return {**exported, **self._export_common(run_dir)}
