"""A SPADE (GauGAN) teacher trained as NVlabs/SPADE's ``train.py`` trains it, as an engine method.

**Data**: label maps and their photos in any layout :mod:`ganslim.data.label_datasets` reads (Cityscapes, ADE20K,
COCO-Stuff, ``labels/ images/ [instances/]`` folders), resized to the generator's size and flipped together; the
``val`` split, when the dataset has one, is validated with PSNR and SSIM to the photos (logged; the exported
generator is the last one, as NVlabs keeps its latest).

**Networks**: the ``spade`` generator of the config (:mod:`.config`), its parameter-free norms BatchNorm, converted
to SyncBatchNorm when several CUDA processes train (``torchrun``; SyncBatchNorm runs on CUDA only, so CPU processes
keep per-process statistics, which the log says); spectral norm on its blocks' ``conv_0``, ``conv_1``, ``conv_s``
(``spectral_g``). The ``multiscale`` discriminator sees the label map and the image concatenated, fakes and reals in
one batch (NVlabs' ``discriminate``). Both initialised xavier(0.02).

**Per step** (NVlabs' order): G on ``gan`` (hinge: ``-D(fake)`` averaged over scales) + ``lambda_feat`` x
discriminator feature matching + ``lambda_vgg`` x VGG19 pyramid L1 (only with VGG19 weights), D frozen; then D on
``relu(1 - D(real)) + relu(1 + D(fake))`` over scales, the fakes made again, without gradients, by the updated G.
Adam (beta1 0, beta2 0.9) with TTUR: G at lr / 2, D at lr * 2 (1e-4 and 4e-4); the engine's linear decay after
``epochs`` (NVlabs' niter) over ``epochs_decay`` (niter_decay).

**Exports** (run folder): ``generator.pt`` (ganslim format, spectral norm folded, plain BatchNorm: what
``translate`` / ``profile`` take), ``discriminator.pt``, ``reference/latest_net_G.pth`` / ``latest_net_D.pth`` in
NVlabs' layout (spectral-norm vectors kept) with an ``opt.txt`` in its format (the importer reads it), and
``summary.json`` (networks, the objective as it ran, the VGG19 and SyncBatchNorm status).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

from ganslim.archs import build_discriminator, build_generator, init_weights
from ganslim.archs.spade import SPADEResnetBlock
from ganslim.archs.spade.mobile import MobileSPADEResnetBlock
from ganslim.atomic import atomic_torch_save, atomic_write_text
from ganslim.checkpoints import save_model
from ganslim.checkpoints.spade import OPTIONS_FILE, fold_spectral_norm, options_text
from ganslim.data.label_datasets import LabelMapDataset, detect_label_layout, has_split
from ganslim.data.labels import LabelEncoding, label_colors
from ganslim.engine import MethodBase, TrainContext, fit
from ganslim.losses import GANLoss, feature_matching_loss, multiscale_gan_loss, pyramid_vgg_loss
from ganslim.measure.profile import count_params
from ganslim.methods.spade.config import (
    ARCH,
    DISCRIMINATOR_ARCH,
    METHOD,
    SPADEConfig,
    discriminator_kwargs,
    generator_arch,
    generator_kwargs,
    resolve_defaults,
)
from ganslim.metrics import mean_psnr_ssim
from ganslim.nn.vgg import load_vgg19_relus, perceptual_vgg19_file, vgg19_absent_notice, vgg19_record

logger = logging.getLogger(__name__)

GENERATOR_FILE, DISCRIMINATOR_FILE, SUMMARY_FILE = "generator.pt", "discriminator.pt", "summary.json"
REFERENCE_GENERATOR, REFERENCE_DISCRIMINATOR = "reference/latest_net_G.pth", "reference/latest_net_D.pth"
SPECTRAL_CONVS = ("conv_0", "conv_1", "conv_s")


def add_spectral_norm(generator: nn.Module) -> nn.Module:
    """``generator`` with spectral norm on every SPADE block's ``conv_0``, ``conv_1`` and ``conv_s`` (NVlabs'
    ``spectral`` norm_G), in place; its state dict then holds their ``weight_orig`` / ``weight_u`` / ``weight_v``."""
    for block in generator.modules():
        if isinstance(block, (SPADEResnetBlock, MobileSPADEResnetBlock)):
            for name in SPECTRAL_CONVS:
                if hasattr(block, name):
                    spectral_norm(getattr(block, name))
    return generator


def parameter_free_norms(generator: nn.Module, sync: bool) -> nn.Module:
    """``generator`` with its BatchNorms as SyncBatchNorms when ``sync`` (several CUDA processes), else itself;
    the state dict keys stay the same."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(generator) if sync else generator


def split_outputs(outputs: list[list[Tensor]], count: int) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """A discriminator's outputs for a batch of ``count`` fakes followed by the reals -> (fake, real) outputs."""
    return ([[tensor[:count] for tensor in scale] for scale in outputs],
            [[tensor[count:] for tensor in scale] for scale in outputs])


def discriminate_pairs(discriminator: nn.Module, label_map: Tensor, fake: Tensor, real: Tensor
                       ) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """D's (fake, real) outputs for (label map, image) pairs, fakes and reals judged in one batch as NVlabs does."""
    pairs = torch.cat([torch.cat([label_map, fake], 1), torch.cat([label_map, real], 1)], 0)
    return split_outputs(discriminator(pairs), fake.shape[0])


class SPADETeacher(MethodBase):
    """SPADE teacher: G maps label maps to images; D judges (label map, image) pairs at several scales. See the
    module docstring."""

    name = METHOD
    Config = SPADEConfig
    monitor = None
    ema_networks = ()

    def __init__(self, config: SPADEConfig, ctx: TrainContext) -> None:
        self.config, self.ctx = config, ctx
        self.generator_arch, self.generator_kwargs = generator_arch(config), generator_kwargs(config)
        generator = init_weights(build_generator(self.generator_arch, **self.generator_kwargs), config.init_type,
                                 config.init_gain)
        if config.spectral_g:
            add_spectral_norm(generator)
        self.sync_batchnorm = ctx.dist.enabled and ctx.device.type == "cuda"
        generator = parameter_free_norms(generator, self.sync_batchnorm).to(ctx.device)
        self.encoding = LabelEncoding.of(generator)
        self.size: tuple[int, int] = generator.size
        self.discriminator_kwargs = discriminator_kwargs(config, self.encoding.channels)
        discriminator = init_weights(build_discriminator(DISCRIMINATOR_ARCH, **self.discriminator_kwargs),
                                     config.init_type, config.init_gain).to(ctx.device)
        self.nets: dict[str, nn.Module] = {"G": generator, "D": discriminator}
        self.trained: dict[str, nn.Module] = {name: ctx.wrap(net) for name, net in self.nets.items()}
        betas = (config.beta1, config.beta2)
        self._optimizers = {"G": torch.optim.Adam(generator.parameters(), lr=config.lr / 2, betas=betas),
                            "D": torch.optim.Adam(discriminator.parameters(), lr=config.lr * 2, betas=betas)}
        self.gan_loss = GANLoss(config.gan_mode)
        self.vgg_status, vgg_file = perceptual_vgg19_file(config.vgg19_weights, config.lambda_vgg)
        self.vgg = None if vgg_file is None else load_vgg19_relus(vgg_file).to(ctx.device)
        if ctx.dist.is_main:
            if self.vgg_status == "absent":
                logger.warning("%s", vgg19_absent_notice())
            if ctx.dist.enabled and not self.sync_batchnorm:
                logger.warning("%s", self.batchnorm_notice)
        self.layout = config.layout or detect_label_layout(config.data)

    @property
    def batchnorm_notice(self) -> str:
        return (f"SyncBatchNorm runs on CUDA only: each of the {self.ctx.dist.world_size} CPU processes normalises "
                f"the generator's features over its own batch")

    def _dataset(self, split: str, train: bool) -> LabelMapDataset:
        return LabelMapDataset(self.config.data, self.encoding, self.size, split, self.layout,
                               flip=self.config.flip and train, seed=self.config.seed)

    def train_dataset(self) -> LabelMapDataset:
        return self._dataset("train", train=True)

    def val_dataset(self) -> LabelMapDataset | None:
        return self._dataset("val", train=False) if has_split(self.config.data, "val", self.layout) else None

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """G with D frozen, then D on the updated G's fakes (see the module docstring)."""
        ctx, config, label_map, real = self.ctx, self.config, batch["label_map"], batch["image"]
        discriminator = self.nets["D"]
        # The frozen D runs unwrapped: it needs no gradient averaging, and DDP expects grads for its params.
        with ctx.frozen(discriminator):
            with ctx.autocast():
                fake = self.trained["G"](label_map)
                pred_fake, pred_real = discriminate_pairs(discriminator, label_map, fake, real)
            terms = {"G_GAN": multiscale_gan_loss(self.gan_loss, pred_fake, True, for_discriminator=False)}
            if config.lambda_feat > 0:
                terms["G_feat"] = config.lambda_feat * feature_matching_loss(pred_fake, pred_real)
            if self.vgg is not None:
                terms["G_VGG"] = config.lambda_vgg * pyramid_vgg_loss(self.vgg, fake, real)
            ctx.step("G", sum(terms.values()))
        with torch.no_grad():
            fake = self.nets["G"](label_map)
        with ctx.autocast():
            pred_fake, pred_real = discriminate_pairs(self.trained["D"], label_map, fake, real)
            d_fake = multiscale_gan_loss(self.gan_loss, pred_fake, False)
            d_real = multiscale_gan_loss(self.gan_loss, pred_real, True)
        ctx.step("D", d_fake + d_real)
        return {**{key: value.detach() for key, value in terms.items()}, "D_fake": d_fake.detach(),
                "D_real": d_real.detach()}

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Mean per-image PSNR (dB) and SSIM of G(label map) against the photo over the val split."""
        return mean_psnr_ssim((self.nets["G"](batch["label_map"]).float(), batch["image"]) for batch in batches)

    def visuals(self, batch: dict) -> list[Tensor]:
        """Label map (a colour per label, edges white) | generated | photo."""
        label_map = batch["label_map"]
        return [label_colors(label_map, self.encoding), self.nets["G"](label_map).float(), batch["image"]]

    def plain_generator(self) -> nn.Module:
        """The trained generator with spectral norm folded (W / sigma from its stored vectors, as in eval) and plain
        BatchNorm: a :attr:`generator_arch` of :attr:`generator_kwargs`, in eval mode, on the CPU."""
        state = {key: value.detach().cpu() for key, value in self.nets["G"].state_dict().items()}
        folded, _ = fold_spectral_norm(state, "the trained generator")
        generator = build_generator(self.generator_arch, **self.generator_kwargs)
        generator.load_state_dict(folded)
        return generator.eval()

    def objective(self) -> dict[str, Any]:
        """The loss terms and weights as they run (for ``summary.json``)."""
        config = self.config
        terms = {"gan": 1.0, "feature_matching": config.lambda_feat}
        if self.vgg is not None:
            terms["vgg"] = config.lambda_vgg
        return {"gan_mode": config.gan_mode, "terms": terms, "vgg_layers": "vgg19 relu1_1..relu5_1, weights 1/32..1",
                "lr": {"G": config.lr / 2, "D": config.lr * 2}, **vgg19_record(self.vgg_status)}

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {"G": ("generator", self.generator_arch, self.generator_kwargs),  # its spectral norms folded on load
                "D": ("discriminator", DISCRIMINATOR_ARCH, self.discriminator_kwargs)}

    def export_meta(self) -> dict[str, Any]:
        return {"method": METHOD, "preset": self.config.arch, "size": list(self.size), "vgg19": self.vgg_status,
                "sync_batchnorm": self.sync_batchnorm, "spectral_g": self.config.spectral_g}

    def export(self, run_dir: Path) -> dict[str, Path]:
        """``generator.pt``, ``discriminator.pt``, NVlabs' layout under ``reference/`` (for a ``spade`` generator;
        NVlabs has no mobile SPADE) and ``summary.json``."""
        meta = self.export_meta()
        generator, discriminator = self.plain_generator(), self.nets["D"]
        exported = {
            "generator": save_model(run_dir / GENERATOR_FILE, generator, self.generator_arch, self.generator_kwargs,
                                    meta=meta),
            "discriminator": save_model(run_dir / DISCRIMINATOR_FILE, discriminator, DISCRIMINATOR_ARCH,
                                        self.discriminator_kwargs, kind="discriminator", meta=meta)}
        if self.generator_arch == ARCH:
            exported.update(self.export_reference(run_dir))
        summary = {**meta, "selected": "last step",
                   "generator": {"arch": self.generator_arch, "arch_kwargs": self.generator_kwargs,
                                 "params": count_params(generator), "file": GENERATOR_FILE},
                   "discriminator": {"arch": DISCRIMINATOR_ARCH, "arch_kwargs": self.discriminator_kwargs,
                                     "params": count_params(discriminator), "file": DISCRIMINATOR_FILE},
                   "objective": self.objective()}
        exported["summary"] = atomic_write_text(json.dumps(summary, indent=1) + "\n", run_dir / SUMMARY_FILE)
        return exported

    def export_reference(self, run_dir: Path) -> dict[str, Path]:
        """``reference/latest_net_G.pth`` / ``latest_net_D.pth`` (spectral-norm vectors kept) and its ``opt.txt``."""
        config, exported = self.config, {}
        for key, name, path in (("reference_generator", "G", REFERENCE_GENERATOR),
                                ("reference_discriminator", "D", REFERENCE_DISCRIMINATOR)):
            weights = {tensor_key: value.detach().cpu() for tensor_key, value in self.nets[name].state_dict().items()}
            exported[key] = atomic_torch_save(weights, run_dir / path)
        norm_g = f"{'spectral' if config.spectral_g else ''}spade{'syncbatch' if self.sync_batchnorm else 'batch'}3x3"
        options = {"norm_G": norm_g, "netD": DISCRIMINATOR_ARCH, "ndf": config.ndf, "n_layers_D": config.n_layers_d,
                   "num_D": config.num_d, "norm_D": "spectralinstance" if config.spectral_d else "instance",
                   "gan_mode": config.gan_mode, "lambda_feat": config.lambda_feat, "lambda_vgg": config.lambda_vgg,
                   "no_vgg_loss": self.vgg is None, "lr": config.lr, "beta1": config.beta1, "beta2": config.beta2}
        exported["reference_options"] = atomic_write_text(options_text(self.generator_kwargs, options),
                                                          run_dir / "reference" / OPTIONS_FILE)
        return exported


def run_spade(config: SPADEConfig, *, resume: str | Path | None, progress: bool) -> Any:
    """Train the config (the arch's values filled in first) in a new run folder or ``resume``."""
    return fit(resolve_defaults(config), SPADETeacher, resume=resume, progress=progress)
