"""What the pix2pix and CycleGAN teachers share: their network and optimisation options (:class:`TeacherConfig`),
the networks those options describe, and :class:`TeacherBase` (building, optimizers, data options, export).

Exports (in the run folder) are in the ganslim checkpoint format and, in ``reference/latest_net_*.pth``, as plain
state_dicts laid out as the reference implementation saves them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ganslim.archs import build_discriminator, build_generator, builder_parameters, init_weights
from ganslim.atomic import atomic_torch_save
from ganslim.checkpoints import save_model
from ganslim.config import ImageTranslationConfig, option
from ganslim.engine import MethodBase, TrainContext
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES, GANLoss
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
    channels: tuple[int, ...] = option((), "per-layer widths of a 'mobile_resnet' generator, e.g. "
                                           "16,16,32,16,16,16,16,16 (empty: uniform from ngf)")
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


def generator_spec(config: TeacherConfig, input_nc: int, output_nc: int) -> tuple[str, dict]:
    """``(arch, arch_kwargs)`` of the configured generator mapping ``input_nc`` to ``output_nc`` channels."""
    kwargs = dict(input_nc=input_nc, output_nc=output_nc, ngf=config.ngf, norm=config.norm,
                  use_dropout=config.dropout)
    accepted = builder_parameters(GENERATORS, config.generator)
    kwargs.update({key: getattr(config, key) for key in ("num_downs", "n_blocks") if key in accepted})
    if config.channels:
        kwargs["channels"] = list(config.channels)
    return config.generator, kwargs


def discriminator_spec(config: TeacherConfig, input_nc: int) -> tuple[str, dict]:
    """``(arch, arch_kwargs)`` of the configured discriminator seeing ``input_nc`` channels."""
    kwargs = dict(input_nc=input_nc, ndf=config.ndf, norm=config.norm)
    if "n_layers" in builder_parameters(DISCRIMINATORS, config.discriminator):
        kwargs["n_layers"] = config.n_layers_d
    return config.discriminator, kwargs


class TeacherBase(MethodBase):
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

    def adam(self, *names: str, lr: float | None = None, own_lrs: dict[str, float] | None = None
             ) -> torch.optim.Adam:
        """One Adam optimizer over the parameters of the networks ``names`` at ``lr`` (default the config's ``lr``;
        config ``beta1``, ``beta2``). With ``own_lrs`` ({network: rate}) each network is a parameter group of its
        own, at its rate or ``lr``; without, one group (the layout runs started before ``own_lrs`` resume into)."""
        rate, betas = lr or self.config.lr, (self.config.beta1, self.config.beta2)
        if not own_lrs:
            return torch.optim.Adam([p for name in names for p in self.nets[name].parameters()], lr=rate, betas=betas)
        groups = [{"params": list(self.nets[name].parameters()), "lr": own_lrs.get(name, rate)} for name in names]
        return torch.optim.Adam(groups, lr=rate, betas=betas)

    def dataset_kwargs(self, train: bool) -> dict:
        """Keyword arguments of the datasets: training preprocessing (``train``) or evaluation preprocessing."""
        config = self.config
        return dict(direction=config.direction, preprocess=config.preprocess, input_nc=config.input_nc,
                    output_nc=config.output_nc, seed=config.seed,
                    load_size=config.load_size if train else config.crop_size, crop_size=config.crop_size,
                    flip=config.flip and train, max_items=(config.max_train_images or None) if train else None)

    def model_specs(self) -> dict[str, tuple[str, str, dict]]:
        return {name: self.specs[name] for name in self.nets if name in self.specs}

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


