"""Teacher training: pix2pix (paired) and CycleGAN (unpaired), with the reference implementation's defaults.

Both follow :mod:`ganslim.engine.protocol`. pix2pix (Isola et al. 2017): a conditional PatchGAN sees
(input, output) pairs; the generator minimises the GAN loss plus ``lambda_l1`` x L1 to the target; it is
validated on the ``val/`` split with PSNR and SSIM and ``best.pt`` is the checkpoint with the best val PSNR.
CycleGAN (Zhu et al. 2017): two generators (G_A: A->B, G_B: B->A) and two discriminators (D_A judges domain
B, D_B domain A, as in the reference), LSGAN, cycle-consistency and identity losses, and image pools of past
fakes for the discriminators. Unaligned data has no paired validation, so CycleGAN exports its last weights.

Exports (in the run folder): ``generator.pt`` / ``discriminator.pt`` (pix2pix) or ``generator_A.pt``,
``generator_B.pt``, ``discriminator_A.pt``, ``discriminator_B.pt`` (CycleGAN) in the ganslim checkpoint
format, and ``reference/latest_net_*.pth``: plain state_dicts laid out as the reference implementation saves
them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.archs import build_discriminator, build_generator, builder_parameters, init_weights
from ganslim.atomic import atomic_torch_save
from ganslim.checkpoints import save_model
from ganslim.compress import parse_channels
from ganslim.config import ImageTranslationConfig, option
from ganslim.data import AlignedDataset, UnalignedDataset
from ganslim.engine import TrainContext
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES, GANLoss
from ganslim.metrics import psnr, ssim
from ganslim.nn import INIT_TYPES, NORMS
from ganslim.registry import DISCRIMINATORS, GENERATORS

REFERENCE_DIR = "reference"


@dataclass(frozen=True)
class TeacherConfig(ImageTranslationConfig):
    """Networks and optimisation shared by the pix2pix and CycleGAN teachers."""

    generator: str = option("unet_256", "generator architecture", choices=GENERATORS.names)
    discriminator: str = option("basic", "discriminator architecture (basic = 70x70 PatchGAN)",
                                choices=DISCRIMINATORS.names)
    ngf: int = option(64, "generator width (channels of its first layer)", min=1)
    ndf: int = option(64, "discriminator width", min=1)
    norm: str = option("batch", "normalization layers of G and D", choices=NORMS)
    dropout: bool = option(True, "dropout in the generator")
    num_downs: int = option(8, "downsamplings of the 'unet' generator", min=5)
    n_blocks: int = option(9, "residual blocks of the 'resnet' generator", min=1)
    channels: str = option("", "per-layer widths of a 'mobile_resnet' generator, e.g. 16,16,32,16,16,16,16,16 "
                               "(empty: uniform from ngf)")
    n_layers_d: int = option(3, "conv layers of the 'n_layers' discriminator", min=1)
    init_type: str = option("normal", "weight initialisation", choices=INIT_TYPES)
    init_gain: float = option(0.02, "scale of the initialisation", min=0.0)
    gan_mode: str = option("vanilla", "adversarial loss", choices=GAN_MODES)
    lr: float = option(0.0002, "initial learning rate of every Adam optimizer", above=0.0)
    beta1: float = option(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=0.999999)

    def check(self) -> None:
        super().check()
        # (config key, builder parameter, architecture it applies to, how to pick one that takes it)
        for key, parameter, arch, fix in (("num_downs", "num_downs", self.generator, "generator=unet"),
                                          ("n_blocks", "n_blocks", self.generator, "generator=resnet"),
                                          ("channels", "channels", self.generator, "generator=mobile_resnet"),
                                          ("n_layers_d", "n_layers", self.discriminator, "discriminator=n_layers")):
            registry = DISCRIMINATORS if key == "n_layers_d" else GENERATORS
            default = next(item.default for item in dataclasses.fields(self) if item.name == key)
            if getattr(self, key) != default and parameter not in builder_parameters(registry, arch):
                raise GanslimError(f"{key} has no effect on the '{arch}' {registry.kind}: set {fix} or drop {key}")


@dataclass(frozen=True)
class Pix2PixConfig(TeacherConfig):
    """pix2pix: the reference defaults (unet_256, batch norm, dropout, vanilla GAN, lambda_L1 100)."""

    lambda_l1: float = option(100.0, "weight of the L1 loss to the target", min=0.0)


@dataclass(frozen=True)
class CycleGANConfig(TeacherConfig):
    """CycleGAN: the reference defaults (resnet_9blocks, instance norm, no dropout, LSGAN, pool 50)."""

    generator: str = option("resnet_9blocks", "generator architecture", choices=GENERATORS.names)
    norm: str = option("instance", "normalization layers of G and D", choices=NORMS)
    dropout: bool = option(False, "dropout in the generators")
    gan_mode: str = option("lsgan", "adversarial loss", choices=GAN_MODES)
    lambda_a: float = option(10.0, "weight of the cycle loss A -> B -> A", min=0.0)
    lambda_b: float = option(10.0, "weight of the cycle loss B -> A -> B", min=0.0)
    lambda_identity: float = option(0.5, "identity loss weight, relative to lambda_a / lambda_b", min=0.0)
    pool_size: int = option(50, "past fakes kept for the discriminators (0: none)", min=0)

    def check(self) -> None:
        super().check()
        if self.lambda_identity > 0 and self.input_nc != self.output_nc:
            raise GanslimError(f"the identity loss needs input_nc == output_nc (got {self.input_nc} and "
                               f"{self.output_nc}): set lambda_identity=0")


class ImagePool:
    """A buffer of past generated images (Shrivastava et al. 2017), as the CycleGAN reference keeps it.

    ``query(images)`` returns, per image, either the image itself or (with probability 1/2 once the pool is
    full) a stored older fake which the new image replaces. Draws come from the ``generator`` passed in.
    """

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size = size
        self.generator = generator
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        """(N, C, H, W) fakes -> (N, C, H, W) fakes for the discriminator (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        chosen = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                chosen.append(image)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                index = int(torch.randint(0, self.size, (), generator=self.generator))
                chosen.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                chosen.append(image)
        return torch.stack(chosen)

    def state_dict(self) -> dict:
        return {"images": [image.cpu() for image in self.images], "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.images = [image.to(device) for image in state["images"]]
        self.generator.set_state(state["generator"])


def generator_spec(config: TeacherConfig, input_nc: int, output_nc: int) -> tuple[str, dict]:
    """``(arch, arch_kwargs)`` of the configured generator mapping ``input_nc`` to ``output_nc`` channels."""
    kwargs = dict(input_nc=input_nc, output_nc=output_nc, ngf=config.ngf, norm=config.norm,
                  use_dropout=config.dropout)
    accepted = builder_parameters(GENERATORS, config.generator)
    kwargs.update({key: getattr(config, key) for key in ("num_downs", "n_blocks") if key in accepted})
    if config.channels:
        kwargs["channels"] = parse_channels(config.channels)
    return config.generator, kwargs


def discriminator_spec(config: TeacherConfig, input_nc: int) -> tuple[str, dict]:
    """``(arch, arch_kwargs)`` of the configured discriminator seeing ``input_nc`` channels."""
    kwargs = dict(input_nc=input_nc, ndf=config.ndf, norm=config.norm)
    if "n_layers" in builder_parameters(DISCRIMINATORS, config.discriminator):
        kwargs["n_layers"] = config.n_layers_d
    return config.discriminator, kwargs


class TeacherBase:
    """Network building, optimizers, data options and export shared by the teachers (and OMGD, which trains its
    teachers the same way). A subclass sets the :class:`ganslim.engine.Method` attributes, builds its networks in
    ``__init__`` with the hooks below and implements the rest of the protocol.

    Hooks for subclasses:

    * :meth:`add_network` builds, initialises and registers a network (``self.specs`` / ``nets`` / ``trained``);
    * :meth:`adam` makes the Adam optimizer of some networks from the config's ``lr`` and betas;
    * :meth:`dataset_kwargs` gives the dataset options for training or for validation;
    * :meth:`export_networks` saves networks in both layouts; :meth:`export_meta` is the ``meta`` it is given
      (override it to add keys).
    """

    ema_networks: tuple[str, ...] = ()

    def __init__(self, config: TeacherConfig, ctx: TrainContext) -> None:
        self.config, self.ctx = config, ctx
        self.gan_loss = GANLoss(config.gan_mode)
        self.specs: dict[str, tuple[str, str, dict]] = {}  # name -> (kind, arch, kwargs)
        self.nets: dict[str, nn.Module] = {}
        self.trained: dict[str, nn.Module] = {}  # DDP-wrapped (or the same) modules for updates

    def add_network(self, name: str, kind: str, spec: tuple[str, dict]) -> None:
        """Build ``kind`` ("generator" / "discriminator") ``spec = (arch, kwargs)`` as ``name``, initialised per
        the config, on ``ctx.device``; ``self.trained[name]`` is its ``ctx.wrap``-ped (DDP) version."""
        arch, kwargs = spec
        build = build_generator if kind == "generator" else build_discriminator
        net = init_weights(build(arch, **kwargs), self.config.init_type, self.config.init_gain).to(self.ctx.device)
        self.specs[name] = (kind, arch, kwargs)
        self.nets[name] = net
        self.trained[name] = self.ctx.wrap(net)

    def adam(self, *names: str, lr: float | None = None) -> torch.optim.Adam:
        """One Adam optimizer over the parameters of the networks ``names`` (``lr``, default the config's ``lr``;
        config ``beta1``, ``beta2``)."""
        params = [p for name in names for p in self.nets[name].parameters()]
        return torch.optim.Adam(params, lr=lr or self.config.lr, betas=(self.config.beta1, self.config.beta2))

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets)

    def lr_schedules(self) -> dict:
        """Every optimizer follows the run's schedule (``epochs`` then ``epochs_decay``)."""
        return {}

    def dataset_kwargs(self, train: bool) -> dict:
        """Keyword arguments of the datasets: training preprocessing (``train``) or evaluation preprocessing."""
        config = self.config
        return dict(direction=config.direction, preprocess=config.preprocess, input_nc=config.input_nc,
                    output_nc=config.output_nc, seed=config.seed,
                    load_size=config.load_size if train else config.crop_size, crop_size=config.crop_size,
                    flip=config.flip and train, max_items=(config.max_train_images or None) if train else None)

    def export_networks(self, run_dir: Path, files: dict[str, tuple[str, str]], meta: dict) -> dict[str, Path]:
        """Save each network ``name -> (ganslim file, reference file)`` in both layouts."""
        exported = {}
        for name, (ours, reference) in files.items():
            kind, arch, kwargs = self.specs[name]
            net = self.nets[name]
            exported[name] = save_model(run_dir / ours, net, arch, kwargs, kind=kind, meta=meta)
            state = {key: value.detach().cpu() for key, value in net.state_dict().items()}
            exported[f"reference_{name}"] = atomic_torch_save(state, run_dir / REFERENCE_DIR / reference)
        return exported

    def export_meta(self, method: str) -> dict:
        """The ``meta`` saved with exported networks: method, direction and preprocessing sizes."""
        config = self.config
        return {"method": method, "direction": config.direction, "load_size": config.load_size,
                "crop_size": config.crop_size, "preprocess": config.preprocess}

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


class Pix2Pix(TeacherBase):
    """pix2pix teacher: G maps A to B; D judges (A, B) pairs. See the module docstring."""

    name = "pix2pix"
    Config = Pix2PixConfig
    monitor = ("psnr", "max")
    ema_networks = ("G",)

    def __init__(self, config: Pix2PixConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        self.add_network("G", "generator", generator_spec(config, config.input_nc, config.output_nc))
        self.add_network("D", "discriminator", discriminator_spec(config, config.input_nc + config.output_nc))
        self._optimizers = {"G": self.adam("G"), "D": self.adam("D")}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def train_dataset(self) -> AlignedDataset:
        return AlignedDataset(self.config.data, "train", **self.dataset_kwargs(train=True))

    def val_dataset(self) -> AlignedDataset | None:
        if not (Path(self.config.data) / "val").is_dir():
            return None
        return AlignedDataset(self.config.data, "val", **self.dataset_kwargs(train=False))

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """D on (A, B) real vs (A, G(A)) fake, then G on GAN + lambda_l1 * L1 with D frozen."""
        ctx, real_a, real_b = self.ctx, batch["A"], batch["B"]
        with ctx.autocast():
            fake_b = self.trained["G"](real_a)
            pred_fake = self.trained["D"](torch.cat([real_a, fake_b.detach()], 1))
            pred_real = self.trained["D"](torch.cat([real_a, real_b], 1))
            loss_d_fake = self.gan_loss(pred_fake, False)
            loss_d_real = self.gan_loss(pred_real, True)
        ctx.step("D", 0.5 * (loss_d_fake + loss_d_real))
        # The frozen D runs unwrapped: it needs no gradient averaging, and DDP expects grads for its params.
        with ctx.frozen(self.nets["D"]):
            with ctx.autocast():
                loss_g_gan = self.gan_loss(self.nets["D"](torch.cat([real_a, fake_b], 1)), True,
                                           for_discriminator=False)
                loss_g_l1 = F.l1_loss(fake_b.float(), real_b) * self.config.lambda_l1
            ctx.step("G", loss_g_gan + loss_g_l1)
        return {"G_GAN": loss_g_gan.detach(), "G_L1": loss_g_l1.detach(), "D_real": loss_d_real.detach(),
                "D_fake": loss_d_fake.detach()}

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Mean per-image PSNR (dB) and SSIM of G(A) against B over the val split."""
        psnrs, ssims = [], []
        for batch in batches:
            fake_b = self.nets["G"](batch["A"]).float()
            psnrs.append(psnr(fake_b, batch["B"]))
            ssims.append(ssim(fake_b, batch["B"]))
        return {"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean())}

    def visuals(self, batch: dict) -> list[Tensor]:
        return [batch["A"], self.nets["G"](batch["A"]).float(), batch["B"]]

    def export(self, run_dir: Path) -> dict[str, Path]:
        files = {"G": ("generator.pt", "latest_net_G.pth"), "D": ("discriminator.pt", "latest_net_D.pth")}
        return self.export_networks(run_dir, files, self.export_meta(self.name))


class CycleGAN(TeacherBase):
    """CycleGAN teacher: G_A: A->B, G_B: B->A, D_A judges B images, D_B judges A images."""

    name = "cyclegan"
    Config = CycleGANConfig
    monitor = None
    ema_networks = ("G_A", "G_B")

    def __init__(self, config: CycleGANConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        self.add_network("G_A", "generator", generator_spec(config, config.input_nc, config.output_nc))
        self.add_network("G_B", "generator", generator_spec(config, config.output_nc, config.input_nc))
        self.add_network("D_A", "discriminator", discriminator_spec(config, config.output_nc))
        self.add_network("D_B", "discriminator", discriminator_spec(config, config.input_nc))
        self._optimizers = {"G": self.adam("G_A", "G_B"), "D": self.adam("D_A", "D_B")}
        self.pools = {"A": ImagePool(config.pool_size, torch.Generator().manual_seed(ctx.seed_for(1))),
                      "B": ImagePool(config.pool_size, torch.Generator().manual_seed(ctx.seed_for(2)))}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def train_dataset(self) -> UnalignedDataset:
        return UnalignedDataset(self.config.data, "train", **self.dataset_kwargs(train=True))

    def val_dataset(self) -> None:
        return None

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """Both generators on GAN + cycle + identity losses with the Ds frozen, then both Ds on pooled fakes."""
        ctx, config, real_a, real_b = self.ctx, self.config, batch["A"], batch["B"]
        g_a, g_b = self.trained["G_A"], self.trained["G_B"]
        losses: dict[str, Tensor] = {}
        with ctx.frozen(self.nets["D_A"], self.nets["D_B"]):
            with ctx.autocast():
                fake_b, fake_a = g_a(real_a), g_b(real_b)
                rec_a, rec_b = g_b(fake_b), g_a(fake_a)
                losses["G_A"] = self.gan_loss(self.nets["D_A"](fake_b), True, for_discriminator=False)
                losses["G_B"] = self.gan_loss(self.nets["D_B"](fake_a), True, for_discriminator=False)
                losses["cycle_A"] = F.l1_loss(rec_a.float(), real_a) * config.lambda_a
                losses["cycle_B"] = F.l1_loss(rec_b.float(), real_b) * config.lambda_b
                if config.lambda_identity > 0:
                    losses["idt_A"] = F.l1_loss(g_a(real_b).float(), real_b) * config.lambda_b * config.lambda_identity
                    losses["idt_B"] = F.l1_loss(g_b(real_a).float(), real_a) * config.lambda_a * config.lambda_identity
            ctx.step("G", sum(losses.values()))
        with ctx.autocast():
            losses["D_A"] = self._d_loss("D_A", real_b, self.pools["B"].query(fake_b))
            losses["D_B"] = self._d_loss("D_B", real_a, self.pools["A"].query(fake_a))
        ctx.step("D", losses["D_A"] + losses["D_B"])
        return {key: value.detach() for key, value in losses.items()}

    def _d_loss(self, name: str, real: Tensor, fake: Tensor) -> Tensor:
        net = self.trained[name]
        return 0.5 * (self.gan_loss(net(real), True) + self.gan_loss(net(fake), False))

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        return {}

    def visuals(self, batch: dict) -> list[Tensor]:
        """real_A | fake_B | rec_A | real_B | fake_A | rec_B."""
        fake_b, fake_a = self.nets["G_A"](batch["A"]).float(), self.nets["G_B"](batch["B"]).float()
        return [batch["A"], fake_b, self.nets["G_B"](fake_b).float(),
                batch["B"], fake_a, self.nets["G_A"](fake_a).float()]

    def extra_state(self) -> dict:
        return {"pools": {key: pool.state_dict() for key, pool in self.pools.items()}}

    def load_extra_state(self, state: dict) -> None:
        for key, pool in self.pools.items():
            pool.load_state_dict(state["pools"][key], self.ctx.device)

    def export(self, run_dir: Path) -> dict[str, Path]:
        files = {"G_A": ("generator_A.pt", "latest_net_G_A.pth"), "G_B": ("generator_B.pt", "latest_net_G_B.pth"),
                 "D_A": ("discriminator_A.pt", "latest_net_D_A.pth"),
                 "D_B": ("discriminator_B.pt", "latest_net_D_B.pth")}
        return self.export_networks(run_dir, files, self.export_meta(self.name))
