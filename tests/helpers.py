"""Plain helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganslim.archs import build_discriminator, build_generator
from ganslim.archs.stylegan2 import MobileStyleGANGenerator
from ganslim.checkpoints import save_model
from ganslim.engine import DistInfo, TrainContext, fit
from ganslim.registry import GENERATORS, Registry
from stylegan2_reference import map_rosinality, random_rosinality_state, stored_noises, synthesize_rosinality


def image_network_names(registry: Registry) -> list[str]:
    """The registered networks that take images of sides they declare (``image_sides``): every one but the
    latent-driven StyleGAN2 generators and the fixed-size StyleGAN2 discriminator, which tests/test_stylegan2.py and
    tests/test_mobile_stylegan.py cover."""
    build = build_generator if registry is GENERATORS else build_discriminator
    with torch.device("meta"):  # the defaults, without their weights
        return [name for name in registry.names() if hasattr(build(name), "image_sides")]


def save_resnet(path: Path, ngf: int) -> Path:
    """Save a random resnet_6blocks (instance norm, width ``ngf``, seeded with ``ngf``) at ``path``; the path."""
    torch.manual_seed(ngf)
    kwargs = {"ngf": ngf, "norm": "instance"}
    return save_model(path, build_generator("resnet_6blocks", **kwargs).eval(), "resnet_6blocks", kwargs)


TINY_STYLEGAN2 = {"size": 16, "channels": [8, 8, 4], "style_dim": 16, "n_mlp": 2}  # num_ws 6, noise sides 4 8 8 16 16


def tiny_stylegan2(seed: int = 0, w_avg: bool = True) -> nn.Module:
    """A :data:`TINY_STYLEGAN2` generator (eval mode) with random rosinality-layout weights of ``seed``: non-zero
    noise strengths, and a stored ``w_avg`` unless ``w_avg`` is False (then NaN, as train.py files load)."""
    generator = build_generator("stylegan2", **TINY_STYLEGAN2).eval()
    state = random_rosinality_state(**TINY_STYLEGAN2, seed=seed, w_avg=w_avg)
    generator.load_state_dict({**generator.state_dict(), **state}, strict=True)
    return generator


# A small encoder for TINY_STYLEGAN2 (``ganslim.editing.encoder.encoder_for`` options).
TINY_ENCODER = dict(channels=8, max_channels=16, head_channels=32)


def save_tiny_stylegan2(path: Path, seed: int = 0, w_avg: bool = True) -> Path:
    """Save :func:`tiny_stylegan2` as a ganslim checkpoint at ``path``; the path."""
    return save_model(path, tiny_stylegan2(seed, w_avg), "stylegan2", TINY_STYLEGAN2)


# The mobile_stylegan student of TINY_STYLEGAN2 (the teacher's table without its last entry): num_ws 4, noise sides
# 4 8 8 (the teacher's first three).
TINY_STUDENT = {"size": 16, "channels": [8, 8], "style_dim": 16, "n_mlp": 2}


def tiny_student(teacher_seed: int = 0, seed: int = 0) -> nn.Module:
    """The :data:`TINY_STUDENT` of :func:`tiny_stylegan2` ``(teacher_seed)`` (eval mode), built by ``from_teacher``
    (the teacher's mapping, ``w_avg`` and first noise buffers), its synthesis drawn after ``torch.manual_seed(seed)``,
    noise strengths 0.5 (they start at 0, which would hide the noise)."""
    teacher = tiny_stylegan2(teacher_seed)
    torch.manual_seed(seed)
    student = MobileStyleGANGenerator.from_teacher(teacher).eval()
    with torch.no_grad():
        for name, parameter in student.named_parameters():
            if name.endswith("noise.weight"):
                parameter.fill_(0.5)
    return student


def save_tiny_student(path: Path, teacher_seed: int = 0, seed: int = 0) -> Path:
    """Save :func:`tiny_student` as a ganslim checkpoint at ``path``; the path."""
    return save_model(path, tiny_student(teacher_seed, seed), "mobile_stylegan", TINY_STUDENT)


def reference_seed_images(generator: nn.Module, seeds, noise: str = "const", psi: float = 1.0) -> torch.Tensor:
    """The images (N, C, R, R) of ``seeds`` recomputed from ``generator``'s state dict by the functional reference
    (not ganslim's code): z drawn from each seed's torch stream, then (``noise="random"``) one noise image per
    input from the same stream; ``psi`` < 1 truncates toward the stored ``style.w_avg``."""
    state = {key: value.detach().cpu() for key, value in generator.state_dict().items()}
    zs, drawn = [], []
    for seed in seeds:
        rng = torch.Generator().manual_seed(seed)
        zs.append(torch.randn(1, state["style.1.weight"].shape[1], generator=rng))
        drawn.append([torch.randn(noise_image.shape, generator=rng) for noise_image in stored_noises(state, 1)])
    w = map_rosinality(state, torch.cat(zs))
    if psi != 1:
        w = torch.lerp(state["style.w_avg"], w, psi)
    num_ws = 2 * sum(1 for key in state if key.startswith("to_rgbs.") and key.endswith(".conv.weight")) + 2
    noises = {"const": stored_noises(state, len(zs)), "none": [None] * len(drawn[0]),
              "random": [torch.cat(layer) for layer in zip(*drawn)]}[noise]
    return synthesize_rosinality(state, w[:, None].expand(-1, num_ws, -1), noises)


def compress_cli(*argv: str) -> int:
    """``ganslim compress ARGV`` with its errors raised (``ganslim.cli.main`` prints them as one line)."""
    from ganslim.cli import compress

    parser = argparse.ArgumentParser()
    compress.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compress", *argv])
    return args.func(args)


def build_method(method_cls, config):
    """``(method, ctx)``: ``method_cls`` built on the CPU from seed 0, its optimizers bound to ``ctx``."""
    torch.manual_seed(0)
    ctx = TrainContext(config, torch.device("cpu"), DistInfo())
    method = method_cls(config, ctx)
    ctx.bind_optimizers(method.optimizers())
    return method, ctx


def first_batch(method, size: int = 2) -> dict:
    """The first ``size`` items of the method's training dataset, collated."""
    dataset = method.train_dataset()
    return torch.utils.data.default_collate([dataset[i] for i in range(size)])


def snapshot(module: nn.Module) -> dict:
    """A detached copy of ``module``'s state dict."""
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def assert_same_tensors(a, b) -> None:
    """``a`` and ``b`` (nested dicts, lists and tuples of tensors and plain values) are equal, tensors bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tensors(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tensors(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def assert_rebuilds_like_export(training_checkpoint: Path, exported: Path) -> None:
    """The generator of a run's ``training_checkpoint`` (latest.pt / best.pt) is rebuilt as the architecture the run
    exported to ``exported``, with the same weight names and shapes."""
    from ganslim.checkpoints import load_generator

    ours, theirs = load_generator(training_checkpoint), load_generator(exported)
    assert (ours.arch, ours.arch_kwargs) == (theirs.arch, theirs.arch_kwargs)
    shapes = [{key: value.shape for key, value in loaded.model.state_dict().items()} for loaded in (ours, theirs)]
    assert shapes[0] == shapes[1]


class Crash(Exception):
    """What a killed process would leave: raised in the middle of a step or a save."""


@contextmanager
def dying_at(method_cls, crash_on_call: int) -> Iterator[None]:
    """Within the block, ``method_cls.train_step`` raises :class:`Crash` at its ``crash_on_call``-th call (as a killed
    process would), and the block must end with that Crash."""
    calls = {"n": 0}
    original = method_cls.train_step

    def dying(self, batch):
        calls["n"] += 1
        if calls["n"] == crash_on_call:
            raise Crash
        return original(self, batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(method_cls, "train_step", dying)
        with pytest.raises(Crash):
            yield


def interrupted_run(method_cls, config, crash_on_call: int) -> Path:
    """Run ``fit`` until its ``crash_on_call``-th train_step dies (as a killed process would); its run folder."""
    with dying_at(method_cls, crash_on_call):
        fit(config, method_cls, progress=False)
    return sorted(Path(config.out_dir).iterdir())[-1]


class PooledColours(nn.Module):
    """A 3-d feature extractor (mean colour), cheap enough for FID's matrix square root in a test."""

    def forward(self, images):
        return F.adaptive_avg_pool2d(images.float(), 1).flatten(1)
