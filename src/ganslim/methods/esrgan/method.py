"""The two ESRGAN stages as engine methods: :class:`ESRGANPSNR` (L1) and :class:`ESRGAN` (adversarial).

**Data** (``data``, or the paired ``gt`` / ``lq`` folders): training items are ``gt_size`` GT crops with their LR
crops, BasicSR's flips and transpose (:mod:`ganslim.data.sr`); validation is on whole images (``val_gt`` /
``val_lq``, else the HR images of ``DATA/val/``) with BasicSR's PSNR and SSIM on the Y channel, ``scale`` pixels of
border cropped.

**psnr stage**: L1 between the RRDBNet's output and the GT; ``best.pt`` is the checkpoint of the best val PSNR.

**gan stage** (ESRGAN, from the ``init`` generator): per step, with the discriminator frozen, the generator
minimises ``l1_weight`` L1 + ``perceptual_weight`` L1 of VGG19 conv5_4 features (only with VGG19 weights) +
``gan_weight`` RaGAN, then the VGG-style discriminator minimises its RaGAN loss, as BasicSR's ``ESRGANModel``.
The exported generator is the EMA of the last step, as BasicSR keeps the last: picking by val PSNR would pick
the least adversarial, blurriest checkpoint.

**Exports** (run folder): ``generator.pt`` (ganslim format, what ``translate`` / ``eval`` / ``profile`` take;
``meta`` has the stage and scale), ``reference/net_g.pth`` (BasicSR's layout: ``{"params": ...}``, with an EMA
``{"params_ema": ..., "params": ...}``), the gan stage's ``discriminator.pt`` and ``reference/net_d.pth``, and
``summary.json`` (the generator and the objective as it ran, VGG19 status included).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.archs import build_discriminator, build_generator
from ganslim.atomic import atomic_torch_save, atomic_write_text
from ganslim.checkpoints import load_generator, save_model
from ganslim.checkpoints.esrgan import ARCH
from ganslim.data.sr import HRFolderDataset, PairedSRDataset
from ganslim.engine import MethodBase, TrainContext, fit
from ganslim.errors import GanslimError
from ganslim.losses import relativistic_average_loss
from ganslim.measure.profile import count_params
from ganslim.methods.esrgan.config import (
    GAN,
    METHOD,
    PSNR,
    ESRGANConfig,
    generator_kwargs,
    is_resolved,
    resolve_defaults,
)
from ganslim.metrics import sr_psnr, sr_ssim
from ganslim.nn.vgg import (
    PERCEPTUAL_LAYER,
    VGG19Features,
    load_vgg19,
    perceptual_vgg19_file,
    vgg19_absent_notice,
    vgg19_record,
)

logger = logging.getLogger(__name__)

GENERATOR_FILE, DISCRIMINATOR_FILE, SUMMARY_FILE = "generator.pt", "discriminator.pt", "summary.json"
REFERENCE_GENERATOR, REFERENCE_DISCRIMINATOR = "reference/net_g.pth", "reference/net_d.pth"
DISCRIMINATOR_ARCH = "vgg_style"
CHECKED_INIT_KEYS = ("input_nc", "output_nc", "num_feat", "num_block", "num_grow_ch")


def load_init(config: ESRGANConfig) -> dict[str, Tensor]:
    """The weights of the ``init`` generator, which must be an RRDBNet of the configured scale and sizes.

    Raises:
        GanslimError: a missing or foreign file, another architecture, scale or size (one line with the fix).
    """
    loaded = load_generator(config.init)
    if loaded.arch != ARCH:
        raise GanslimError(f"--init '{config.init}' holds a {loaded.arch} generator, not an RRDBNet: pass an esrgan "
                           f"run folder, its {GENERATOR_FILE} or an ESRGAN / BasicSR generator .pth")
    theirs, ours = loaded.arch_kwargs, generator_kwargs(config)
    if theirs["scale"] != ours["scale"]:
        raise GanslimError(f"--init '{config.init}' is an x{theirs['scale']} RRDBNet but this run trains "
                           f"x{ours['scale']}: pass --scale {theirs['scale']} or an x{ours['scale']} generator")
    differ = [key for key in CHECKED_INIT_KEYS if theirs[key] != ours[key]]
    if differ:
        found = ", ".join(f"{key} {theirs[key]}" for key in differ)
        wanted = ", ".join(f"{key} {ours[key]}" for key in differ)
        fix = " ".join(f"--set {key}={theirs[key]}" for key in differ if key in ("num_feat", "num_block",
                                                                                  "num_grow_ch"))
        raise GanslimError(f"--init '{config.init}' is an RRDBNet with {found}, not {wanted} as configured: pass "
                           f"{fix or 'an RGB generator'}")
    return loaded.model.state_dict()


class _ESRGANBase(MethodBase):
    """The generator, its optimizer, data, validation, sample grids and exports, shared by both stages."""

    name: ClassVar[str] = METHOD
    Config: ClassVar[type] = ESRGANConfig
    monitor: ClassVar[tuple[str, str] | None] = ("psnr", "max")
    ema_networks: ClassVar[tuple[str, ...]] = ("G",)
    stage: ClassVar[str]

    def __init__(self, config: ESRGANConfig, ctx: TrainContext) -> None:
        if config.stage != self.stage or not is_resolved(config):
            raise ValueError(f"{type(self).__name__} trains the {self.stage} stage of a resolved config: use "
                             f"run_esrgan(config) or esrgan_method(resolve_defaults(config))")
        self.config, self.ctx = config, ctx
        generator = build_generator(ARCH, **generator_kwargs(config))  # BasicSR's initialisation (x0.1 Kaiming)
        if config.init:
            generator.load_state_dict(load_init(config))
        self.nets: dict[str, nn.Module] = {"G": generator.to(ctx.device)}
        self.trained: dict[str, nn.Module] = {"G": ctx.wrap(self.nets["G"])}
        self._optimizers: dict[str, torch.optim.Optimizer] = {"G": self.adam("G")}

    def adam(self, name: str) -> torch.optim.Adam:
        return torch.optim.Adam(self.nets[name].parameters(), lr=self.config.lr,
                                betas=(self.config.beta1, self.config.beta2))

    def train_dataset(self) -> Dataset:
        config = self.config
        if config.gt:
            return PairedSRDataset(config.gt, config.lq, config.scale, config.gt_size, train=True, seed=config.seed)
        folder = Path(config.data) / "train"
        if not folder.is_dir():
            raise GanslimError(f"'{config.data}' has no train/ folder of HR images: pass --data DIR holding train/ "
                               f"(and val/), or paired folders with --gt DIR --lq DIR")
        return HRFolderDataset(folder, config.scale, config.gt_size, train=True, seed=config.seed)

    def val_dataset(self) -> Dataset | None:
        config = self.config
        if config.val_gt:
            return PairedSRDataset(config.val_gt, config.val_lq, config.scale, train=False)
        folder = Path(config.data) / "val"
        return HRFolderDataset(folder, config.scale, train=False) if folder.is_dir() else None

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Mean per-image PSNR (dB) and SSIM on the Y channel, ``scale`` border pixels cropped (BasicSR's)."""
        psnrs, ssims = [], []
        for batch in batches:
            output = self.nets["G"](batch["lq"]).float()
            psnrs.append(sr_psnr(output, batch["gt"], crop_border=self.config.scale))
            ssims.append(sr_ssim(output, batch["gt"], crop_border=self.config.scale))
        return {"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean())}

    def visuals(self, batch: dict) -> list[Tensor]:
        """LR (enlarged, nearest) | super-resolved | GT, mapped to [-1, 1]."""
        lq = F.interpolate(batch["lq"], scale_factor=self.config.scale, mode="nearest")
        output = self.nets["G"](batch["lq"]).float().clamp(0, 1)
        return [image * 2 - 1 for image in (lq, output, batch["gt"])]

    def objective(self) -> dict[str, Any]:
        """The loss terms and weights as they run (for ``summary.json``)."""
        return {"l1": 1.0}

    def export_meta(self) -> dict[str, Any]:
        config = self.config
        return {"method": METHOD, "stage": self.stage, "scale": config.scale, "gt_size": config.gt_size,
                "ema_decay": config.ema_decay, "init": config.init}

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {"G": ("generator", ARCH, generator_kwargs(self.config))}

    def export(self, run_dir: Path) -> dict[str, Path]:
        """``generator.pt``, ``reference/net_g.pth`` and ``summary.json`` (see the module docstring)."""
        meta = self.export_meta()
        generator = self.nets["G"]
        exported = {"generator": save_model(run_dir / GENERATOR_FILE, generator, ARCH, generator_kwargs(self.config),
                                            meta=meta)}
        weights = {key: value.detach().cpu() for key, value in generator.state_dict().items()}
        # With an EMA, BasicSR's own files hold params_ema; params too, since its loaders read 'params' unless
        # told param_key_g: params_ema (its users' "KeyError: 'params'"). Both are the exported weights.
        keys = ("params_ema", "params") if self.config.ema_decay > 0 else ("params",)
        exported["reference_generator"] = atomic_torch_save({key: weights for key in keys},
                                                            run_dir / REFERENCE_GENERATOR)
        summary = {**meta, "selected": "best val psnr" if self.monitor else "last step",
                   "generator": {"arch": ARCH, "arch_kwargs": generator_kwargs(self.config),
                                 "params": count_params(generator), "file": GENERATOR_FILE},
                   "objective": self.objective()}
        exported["summary"] = atomic_write_text(json.dumps(summary, indent=1) + "\n", run_dir / SUMMARY_FILE)
        return exported




class ESRGANPSNR(_ESRGANBase):
    """The PSNR-oriented RRDBNet: L1 to the GT (see the module docstring)."""

    stage = PSNR

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        with self.ctx.autocast():
            loss = F.l1_loss(self.trained["G"](batch["lq"]).float(), batch["gt"])
        self.ctx.step("G", loss)
        return {"L1": loss.detach()}


class ESRGAN(_ESRGANBase):
    """ESRGAN's adversarial stage (see the module docstring)."""

    stage = GAN
    monitor = None

    def __init__(self, config: ESRGANConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        self.nets["D"] = build_discriminator(DISCRIMINATOR_ARCH, input_nc=3, ndf=config.ndf,
                                             input_size=config.gt_size).to(ctx.device)
        self.trained["D"] = ctx.wrap(self.nets["D"])
        self._optimizers["D"] = self.adam("D")
        self.vgg_status, self.vgg = self._perceptual_network()
        if self.vgg_status == "absent" and ctx.dist.is_main:
            logger.warning("%s", self.notice)

    @property
    def notice(self) -> str:
        return vgg19_absent_notice()

    def _perceptual_network(self) -> tuple[str, VGG19Features | None]:
        """``("loaded", vgg)``, or ``("off", None)`` when asked (``vgg19_weights: none`` or weight 0), or
        ``("absent", None)`` when no weights file is found."""
        status, path = perceptual_vgg19_file(self.config.vgg19_weights, self.config.perceptual_weight)
        return status, None if path is None else load_vgg19(path).to(self.ctx.device)

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """G on L1 + perceptual + RaGAN with D frozen, then D on RaGAN (BasicSR's ESRGANModel order)."""
        ctx, config, lq, gt = self.ctx, self.config, batch["lq"], batch["gt"]
        discriminator = self.nets["D"]
        # The frozen D runs unwrapped: it needs no gradient averaging, and DDP expects grads for its params.
        with ctx.frozen(discriminator):
            with ctx.autocast():
                output = self.trained["G"](lq)
                fake_scores = discriminator(output)
                real_scores = discriminator(gt).detach()
            terms = {"G_L1": config.l1_weight * F.l1_loss(output.float(), gt),
                     "G_GAN": config.gan_weight * relativistic_average_loss(real_scores, fake_scores,
                                                                            for_discriminator=False)}
            if self.vgg is not None:
                with torch.no_grad():
                    target_features = self.vgg(gt)
                terms["G_perceptual"] = config.perceptual_weight * F.l1_loss(self.vgg(output.float()),
                                                                             target_features)
            ctx.step("G", sum(terms.values()))
        with ctx.autocast():
            real_scores = self.trained["D"](gt)
            fake_scores = self.trained["D"](output.detach())
        loss_d = relativistic_average_loss(real_scores, fake_scores, for_discriminator=True)
        ctx.step("D", loss_d)
        return {**{key: value.detach() for key, value in terms.items()}, "D": loss_d.detach(),
                "D_real_score": real_scores.detach().float().mean(),
                "D_fake_score": fake_scores.detach().float().mean()}

    def objective(self) -> dict[str, Any]:
        config = self.config
        terms = {"l1": config.l1_weight, "gan": config.gan_weight}
        if self.vgg is not None:
            terms["perceptual"] = config.perceptual_weight
        return {"terms": terms, "perceptual_layer": f"vgg19 {PERCEPTUAL_LAYER} (before ReLU)",
                **vgg19_record(self.vgg_status)}

    def export_meta(self) -> dict[str, Any]:
        return {**super().export_meta(), "vgg19": self.vgg_status}

    def export(self, run_dir: Path) -> dict[str, Path]:
        exported = super().export(run_dir)
        discriminator = self.nets["D"]
        kwargs = {"input_nc": 3, "ndf": self.config.ndf, "input_size": self.config.gt_size}
        exported["discriminator"] = save_model(run_dir / DISCRIMINATOR_FILE, discriminator, DISCRIMINATOR_ARCH,
                                               kwargs, kind="discriminator", meta=self.export_meta())
        weights = {key: value.detach().cpu() for key, value in discriminator.state_dict().items()}
        exported["reference_discriminator"] = atomic_torch_save({"params": weights},
                                                                run_dir / REFERENCE_DISCRIMINATOR)
        return exported


def esrgan_method(config: ESRGANConfig) -> type[_ESRGANBase]:
    """The method class of the config's stage."""
    return ESRGAN if config.stage == GAN else ESRGANPSNR


def run_esrgan(config: ESRGANConfig, *, resume: str | Path | None, progress: bool) -> Any:
    """Train the config's stage (its ``-1`` values resolved first) in a new run folder or ``resume``."""
    config = resolve_defaults(config)
    return fit(config, esrgan_method(config), resume=resume, progress=progress)
