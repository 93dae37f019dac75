"""CycleGAN (Zhu et al. 2017), with the reference implementation's defaults.

Two generators (G_A: A->B, G_B: B->A) and two discriminators (D_A judges domain B, D_B domain A, as in the
reference), LSGAN, cycle-consistency and identity losses, and image pools of past fakes for the discriminators.
Unaligned data has no paired validation, so CycleGAN exports its last weights: ``generator_A.pt``,
``generator_B.pt``, ``discriminator_A.pt``, ``discriminator_B.pt`` and ``reference/latest_net_*.pth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganslim.config import option
from ganslim.data import UnalignedDataset
from ganslim.engine import TrainContext
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES
from ganslim.methods.teachers.base import TeacherBase, TeacherConfig, discriminator_spec, generator_spec
from ganslim.nn import NORMS
from ganslim.registry import GENERATORS


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
