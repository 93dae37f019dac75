"""Distillation and perceptual losses against hand computations; gradients reach only students and adapters."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganslim.errors import GanslimError
from ganslim.losses import (
    ChannelDistillation,
    FeatureDistillation,
    FeatureTap,
    PerceptualDistillLoss,
    channel_distillation_loss,
    feature_loss,
    gram_matrix,
    ssim_loss,
    style_loss,
    total_variation,
)
from ganslim.losses import distill
from ganslim.metrics import ssim
from ganslim.nn.vgg import VGG16Features

LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
BN_EPS = 1e-5


def images(seed: int, shape=(2, 3, 16, 16)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---- Gram / style / feature ------------------------------------------------------------------------------


def test_gram_of_a_known_map():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    # <c0, c0> = 1+4+9+16 = 30, <c0, c1> = 2+4 = 6, <c1, c1> = 2; divided by C*H*W = 8.
    expected = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]) / 8
    torch.testing.assert_close(gram_matrix(features), expected)
    assert gram_matrix(torch.ones(3, 4, 5, 6)).shape == (3, 4, 4)
    assert gram_matrix(torch.ones(1, 2, 2, 2, dtype=torch.bfloat16)).dtype == torch.float32


def test_style_loss_sums_l1_of_grams_over_the_four_layers():
    # One channel, one pixel per layer: gram = value**2 / 1, so each layer adds |p**2 - t**2|.
    pred = {name: torch.full((1, 1, 1, 1), v) for name, v in zip(LAYERS, (1.0, 2.0, 3.0, 0.5))}
    target = {name: torch.full((1, 1, 1, 1), v) for name, v in zip(LAYERS, (2.0, 2.0, 1.0, 0.0))}
    assert style_loss(pred, target).item() == pytest.approx(3 + 0 + 8 + 0.25)
    # Two channels of 2x2 (C*H*W = 8) against zeros: one layer's gram is [[0.5, 0], [0, 0]], mean |.| over 4.
    pred = {name: torch.zeros(1, 2, 2, 2) for name in LAYERS}
    pred["relu3_3"][0, 0] = 1.0  # <c0, c0> = 4 -> gram[0, 0] = 0.5, the other entries 0
    target = {name: torch.zeros(1, 2, 2, 2) for name in LAYERS}
    assert style_loss(pred, target).item() == pytest.approx(0.5 / 4)
    assert style_loss(pred, target, layers=["relu1_2"]).item() == 0.0
    with pytest.raises(ValueError, match="'relu2_2' is missing"):
        style_loss({"relu1_2": torch.zeros(1, 1, 1, 1)}, {"relu1_2": torch.zeros(1, 1, 1, 1)})


def test_feature_loss_is_l1_on_relu2_2_only():
    pred = {name: torch.zeros(1, 2, 2, 2) for name in LAYERS}
    target = {name: torch.full((1, 2, 2, 2), 5.0) for name in LAYERS}
    target["relu2_2"] = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 4.0]]]])
    assert feature_loss(pred, target).item() == pytest.approx((1 + 1 + 2 + 4) / 8)


# ---- SSIM / TV --------------------------------------------------------------------------------------------


def test_ssim_loss():
    a, b = images(0), images(1)
    assert abs(ssim_loss(a, a.clone()).item()) < 1e-6
    torch.testing.assert_close(ssim_loss(a, b), 1 - ssim((a + 1) / 2, (b + 1) / 2, value_range=(0, 1)).mean())
    assert 0.5 < ssim_loss(a, b).item() < 1.5  # independent noise: SSIM near 0
    pred, target = a.clone().requires_grad_(), b.clone().requires_grad_()
    ssim_loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None


def test_ssim_loss_pulls_a_mean_of_the_wrong_sign_towards_the_target():
    """Flat images: the student at -0.5 where the target is +0.2 must move up, not further down."""
    target = torch.full((1, 1, 16, 16), 0.2)
    pred = torch.full((1, 1, 16, 16), -0.5, requires_grad=True)
    ssim_loss(pred, target).backward()
    assert pred.grad.sum() < 0  # gradient descent raises pred
    on_signed_values = torch.full((1, 1, 16, 16), -0.5, requires_grad=True)
    # Signed values taken as if they started at 0 would push it further down, to -1.
    (1 - ssim(on_signed_values, target, value_range=(0, 2)).mean()).backward()
    assert on_signed_values.grad.sum() > 0


def test_total_variation_of_ramps():
    ramp = torch.arange(4.0).expand(1, 1, 3, 4)  # x[i, j] = j: 3 rows x 3 steps of 1, no vertical change
    assert total_variation(ramp).item() == 9.0
    rows, cols = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    plane = (2 * rows - cols).view(1, 1, 3, 4)  # |d/dj| = 1 on 3x3 pairs, |d/di| = 2 on 2x4 pairs
    assert total_variation(plane).item() == 9.0 + 16.0
    # A sum, not a mean: two images of two channels are four times one.
    assert total_variation(plane.expand(2, 2, 3, 4)).item() == 4 * 25.0
    assert total_variation(torch.full((1, 3, 5, 5), 0.7)).item() == 0.0


# ---- channel distillation (OMGD) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("student", "teacher"),
    [((4,), (16,)), ((8, 8, 8, 8), (32, 32, 32, 32)), ((2, 8, 16, 4), (8, 32, 64, 16))],
)
def test_channel_distillation_shapes_and_exact_map(student, teacher):
    cd = ChannelDistillation(student, teacher, generator=torch.Generator().manual_seed(0))
    assert len(cd.adapters) == len(student)
    for adapter, s, t in zip(cd.adapters, student, teacher):
        conv, norm, relu = adapter
        assert conv.weight.shape == (t, s, 1, 1) and conv.bias is None
        assert isinstance(norm, nn.BatchNorm2d) and norm.num_features == t and isinstance(relu, nn.ReLU)
    sizes = [16 // 2**i for i in range(len(student))]
    student_features = [torch.randn(2, s, h, h) for s, h in zip(student, sizes)]
    teacher_features = [torch.randn(2, t, h, h) for t, h in zip(teacher, sizes)]
    loss = cd(student_features, teacher_features)
    assert loss.shape == () and loss.item() > 0

    cd.eval()  # batch norm on running statistics, so the adapter is a fixed map
    with torch.no_grad():
        exact = [adapter(f) for adapter, f in zip(cd.adapters, student_features)]
    assert cd(student_features, exact).item() == 0.0
    # Pooling removes space: a teacher map at another resolution with the same channel means also gives 0.
    upsampled = [F.interpolate(t, scale_factor=2, mode="nearest") for t in exact]
    assert cd(student_features, upsampled).item() == pytest.approx(0.0, abs=1e-12)


def test_channel_distillation_hand_value():
    cd = ChannelDistillation([1], [2]).eval()
    with torch.no_grad():
        cd.adapters[0][0].weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        cd.adapters[0][1].weight.fill_(1.0)
        cd.adapters[0][1].bias.zero_()
    student = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # mean 2.5
    teacher = torch.stack([torch.full((3, 3), 1.0), torch.full((3, 3), 2.0)]).unsqueeze(0)  # pooled (1, 2)
    # channel 0: relu(2x / sqrt(1 + eps)) -> mean 5 / sqrt(1 + eps); channel 1: relu(-x) = 0.
    s0 = 5 / math.sqrt(1 + BN_EPS)
    expected = ((s0 - 1) ** 2 + (0 - 2) ** 2) / 2
    assert cd([student], [teacher]).item() == pytest.approx(expected, rel=1e-6)
    # The functional form on already-adapted maps, summed over layers.
    a, t = torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 4, 4)
    assert channel_distillation_loss([a, 3 * a], [t, t]).item() == pytest.approx(1 + 9)


def test_channel_distillation_gradients_reach_student_and_adapters_only():
    cd = ChannelDistillation([4, 6], [8, 12])
    student = [torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 6, 4, 4, requires_grad=True)]
    teacher = [torch.randn(2, 8, 8, 8, requires_grad=True), torch.randn(2, 12, 4, 4, requires_grad=True)]
    cd(student, teacher).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    assert all(t.grad is None for t in teacher)
    assert all(p.grad is not None for p in cd.parameters())


def test_channel_distillation_errors():
    with pytest.raises(GanslimError, match="one student and one teacher width per layer"):
        ChannelDistillation([4, 4], [8])
    cd = ChannelDistillation([4], [8])
    with pytest.raises(GanslimError, match="1 adapters but got 2 student"):
        cd([torch.zeros(1, 4, 2, 2)] * 2, [torch.zeros(1, 8, 2, 2)] * 2)
    with pytest.raises(GanslimError, match="same N and C"):
        cd([torch.zeros(1, 4, 2, 2)], [torch.zeros(1, 16, 2, 2)])


# ---- feature distillation (GAN Compression) --------------------------------------------------------------


def test_feature_distillation_shapes_hand_value_and_gradients():
    fd = FeatureDistillation([2, 3], [4, 6], generator=torch.Generator().manual_seed(0))
    assert [tuple(a.weight.shape) for a in fd.adapters] == [(4, 2, 1, 1), (6, 3, 1, 1)]
    assert all(a.bias is not None and torch.all(a.bias == 0) for a in fd.adapters)
    student = [torch.randn(2, 2, 8, 8, requires_grad=True), torch.randn(2, 3, 4, 4, requires_grad=True)]
    with torch.no_grad():
        exact = [adapter(s) for adapter, s in zip(fd.adapters, student)]
    assert fd(student, exact).item() == 0.0

    teacher = [t.clone().requires_grad_() for t in exact]
    with torch.no_grad():
        teacher[1].add_(0.5)  # every element of layer 1 off by 0.5 -> MSE 0.25
    loss = fd(student, teacher)
    assert loss.item() == pytest.approx(0.25, rel=1e-5)
    loss.backward()
    assert all(t.grad is None for t in teacher)
    assert student[1].grad is not None and all(p.grad is not None for p in fd.parameters())

    single = FeatureDistillation([1], [1])
    with torch.no_grad():
        single.adapters[0].weight.fill_(3.0)
        single.adapters[0].bias.fill_(1.0)
    x = torch.tensor([[[[1.0, 2.0]]]])  # -> 3x + 1 = [4, 7]
    assert single([x], [torch.tensor([[[[0.0, 9.0]]]])]).item() == pytest.approx((16 + 4) / 2)
    with pytest.raises(GanslimError, match="same resolution"):
        single([x], [torch.zeros(1, 1, 2, 2)])


# ---- the OMGD mix ----------------------------------------------------------------------------------------


@pytest.fixture()
def reset_warning(monkeypatch):
    monkeypatch.setattr(distill, "_warned_no_vgg", False)


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    torch.manual_seed(0)
    return VGG16Features()  # random weights: the arithmetic is what is tested


def test_perceptual_distill_loss_with_vgg(vgg, reset_warning, caplog):
    loss = PerceptualDistillLoss(vgg)
    assert loss.terms == ("ssim", "style", "feature", "tv")
    student, teacher = images(2).requires_grad_(), images(3).requires_grad_()
    terms = loss(student, teacher)
    assert list(terms) == ["ssim", "style", "feature", "tv"]
    with torch.no_grad():
        fs, ft = vgg(student), vgg(teacher)
        torch.testing.assert_close(terms["ssim"], 10 * ssim_loss(student, teacher))
        torch.testing.assert_close(terms["style"], 1e4 * style_loss(fs, ft))
        torch.testing.assert_close(terms["feature"], 10 * feature_loss(fs, ft))
        torch.testing.assert_close(terms["tv"], 1e-5 * total_variation(student))
    sum(terms.values()).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    assert all(p.grad is None for p in vgg.parameters())
    assert not caplog.records  # weights present: no warning

    same = loss(teacher.detach(), teacher.detach())
    assert all(same[name].abs().item() < 1e-6 for name in ("ssim", "style", "feature"))

    custom = PerceptualDistillLoss(vgg, ssim_weight=1.0, style_weight=0.0, feature_weight=2.0, tv_weight=0.0)
    assert custom.terms == ("ssim", "feature")
    custom_terms = custom(student.detach(), teacher.detach())
    torch.testing.assert_close(custom_terms["feature"], terms["feature"].detach() / 5)
    with pytest.raises(GanslimError, match="negative tv"):
        PerceptualDistillLoss(vgg, tv_weight=-1.0)
    with pytest.raises(GanslimError, match="differ in shape"):
        loss(student, teacher[:, :, :12])
    with pytest.raises(ValueError, match="relu3_3"):
        PerceptualDistillLoss(VGG16Features(layers=["relu1_2", "relu2_2"]))


def test_float32_terms_under_bf16_autocast(vgg):
    loss = PerceptualDistillLoss(vgg)
    student, teacher = images(6), images(7)
    reference = loss(student, teacher)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(student, teacher)
        gram = gram_matrix(torch.randn(1, 4, 8, 8))
    assert gram.dtype == torch.float32
    assert all(value.dtype == torch.float32 for value in mixed.values())
    # SSIM and TV see the same float32 images, so autocast must not change them.
    torch.testing.assert_close(mixed["ssim"], reference["ssim"])
    torch.testing.assert_close(mixed["tv"], reference["tv"])


def test_without_vgg_only_ssim_and_tv_and_one_warning(reset_warning, caplog):
    caplog.set_level(logging.WARNING, logger="ganslim.losses.distill")
    loss = PerceptualDistillLoss(None)
    PerceptualDistillLoss(None)
    assert loss.terms == ("ssim", "tv")
    student, teacher = images(4), images(5)
    terms = loss(student, teacher)
    assert list(terms) == ["ssim", "tv"]
    torch.testing.assert_close(terms["ssim"], 10 * ssim_loss(student, teacher))
    torch.testing.assert_close(terms["tv"], 1e-5 * total_variation(student))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "style and feature" in message and "OFF" in message
    assert "GANSLIM_VGG16_WEIGHTS" in message and ".cache/ganslim/vgg16-397923af.pth" in message


def test_no_warning_when_the_vgg_terms_are_switched_off(reset_warning, caplog):
    loss = PerceptualDistillLoss(None, style_weight=0.0, feature_weight=0.0)
    assert loss.terms == ("ssim", "tv") and not caplog.records


def test_warning_printed_once_without_logging_setup(tmp_path):
    script = (
        "from ganslim.losses import PerceptualDistillLoss, load_perceptual_vgg\n"
        "for _ in range(3):\n"
        "    PerceptualDistillLoss(load_perceptual_vgg())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GANSLIM_VGG16_WEIGHTS"}
    env["HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "style and feature distillation terms are OFF" in lines[0]
    assert "GANSLIM_VGG16_WEIGHTS" in lines[0]


def test_the_feature_tap_returns_the_generators_activations_through_their_adapters():
    from ganslim.archs import build_generator

    torch.manual_seed(0)
    generator = build_generator("mobile_resnet", ngf=4, n_blocks=3).eval()
    layers = generator.distill_layers()
    adapters = ChannelDistillation([generator.feature_channels(i) for i in layers], [6] * len(layers))
    image = images(1)
    with torch.no_grad():
        expected, features = generator.forward_features(image, layers)
        output, adapted = FeatureTap(generator, layers, adapters.adapters)(image)
        plain, none = FeatureTap(generator, [])(image)
    assert torch.equal(output, expected) and torch.equal(plain, expected) and none == []
    assert [tuple(a.shape) for a in adapted] == [(2, 6, *f.shape[2:]) for f in features]
    assert all(torch.equal(a, adapter(f)) for a, adapter, f in zip(adapted, adapters.adapters, features))
