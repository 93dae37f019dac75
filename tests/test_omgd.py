"""OMGD: teachers from the student spec, the student objective, isolation of the student, MACs, runs, resume."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch

from ganslim.archs import build_generator
from ganslim.archs.translation.mobile_resnet import MobileResnetBlock
from ganslim.archs.translation.deep import DeepMobileResnetGenerator, ExpansionResnetBlock
from ganslim.checkpoints import load_generator, save_model
from ganslim.cli import main as cli_main
from ganslim.cli import compress
from ganslim.data import make_builtin
from ganslim.engine import fit
from ganslim.errors import GanslimError
from ganslim.losses import PerceptualDistillLoss, channel_distillation_loss, feature_loss, ssim_loss, style_loss
from ganslim.losses import total_variation
from ganslim.methods.omgd import (
    OMGD,
    OMGDConfig,
    OMGDStudentLoss,
    OMGDUnpaired,
    load_omgd_vgg,
    omgd_method,
    resolve_defaults,
    student_spec,
)
from ganslim.methods.omgd.teachers import deep_teacher_spec, omgd_distill_layers, wide_teacher_spec
from ganslim.nn.vgg import VGG16Features
from ganslim.measure.profile import count_macs, count_params
from helpers import assert_rebuilds_like_export, build_method, first_batch, interrupted_run, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(base_ngf=4, ndf=8, load_size=32, crop_size=32, batch_size=2, epochs=1, epochs_decay=1, log_every=2,
            sample_every=0, val_every=0, ckpt_every=0, vgg_weights="none", device="cpu")
STUDENTS = {"mobile_resnet": dict(student="mobile_resnet", n_blocks=3), "unet": dict(student="unet", num_downs=5)}


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    return make_builtin("shapes2render", tmp_path_factory.mktemp("data") / "shapes", size=32, count=8)


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    return make_builtin("flat2striped", tmp_path_factory.mktemp("data") / "stripes", size=32, count=6)


def config(data, tmp_path, student="mobile_resnet", **overrides) -> OMGDConfig:
    return OMGDConfig(**{**TINY, **STUDENTS[student], "data": str(data), "out_dir": str(tmp_path / "runs"),
                         **overrides})


def build(config: OMGDConfig):
    return build_method(omgd_method(config), config)


def same(state: dict, module) -> bool:
    return all(torch.equal(state[key], value) for key, value in module.state_dict().items())


def images(seed: int, shape=(2, 3, 32, 32)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------------------------------------- teachers


def test_wide_teacher_is_the_student_4x_wider():
    student_arch, kwargs = "mobile_resnet", dict(ngf=4, norm="instance", n_blocks=3)
    arch, wide_kwargs = wide_teacher_spec(student_arch, kwargs)
    assert (arch, wide_kwargs) == ("mobile_resnet", dict(kwargs, ngf=16))
    assert wide_teacher_spec("unet", dict(ngf=12, num_downs=5), 4.0)[1]["ngf"] == 48
    assert wide_teacher_spec("mobile_resnet", dict(ngf=4, channels=[4, 8, 16, 8, 8, 8, 8, 4]))[1]["channels"] == [
        16, 32, 64, 32, 32, 32, 32, 16]
    student, wide = build_generator(student_arch, **kwargs), build_generator(arch, **wide_kwargs)
    # Same separable blocks, every distilled layer 4x wider, same image shape out.
    assert sum(isinstance(m, MobileResnetBlock) for m in wide.modules()) == 3
    layers = omgd_distill_layers(student)
    assert layers == [9, 15, 18] and omgd_distill_layers(wide) == layers  # ReLUs after down2, up1, up2
    assert [wide.feature_channels(i) for i in layers] == [4 * student.feature_channels(i) for i in layers] == [
        64, 32, 16]
    assert omgd_distill_layers(student, "omgd") == [9, 10, 11, 12] == omgd_distill_layers(wide, "omgd")
    image = images(0, (1, 3, 32, 32))
    assert wide(image).shape == student(image).shape == (1, 3, 32, 32)


def test_pooled_block_outputs_repeat_the_downsampling_under_instance_norm():
    """Why ganslim's channel distillation reads ReLU outputs: with non-affine instance norm every residual block adds
    a term whose spatial mean is 0, so OMGD's pooled block outputs equal the pooled second downsampling."""
    torch.manual_seed(0)
    generator = build_generator("mobile_resnet", ngf=4, norm="instance", n_blocks=3).eval()
    with torch.no_grad():
        _, omgd = generator.forward_features(images(1), omgd_distill_layers(generator, "omgd"))
        _, ours = generator.forward_features(images(1), omgd_distill_layers(generator))
    pooled = [feature.mean((2, 3)) for feature in omgd]
    for later in pooled[1:]:
        torch.testing.assert_close(later, pooled[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(ours[0].mean((2, 3)), pooled[0])  # the downsampling's ReLU is kept
    assert [feature.shape[1:] for feature in ours] == [(16, 8, 8), (8, 16, 16), (4, 32, 32)]


def test_deep_mobile_resnet_teacher_layout():
    arch, kwargs = deep_teacher_spec("mobile_resnet", dict(input_nc=3, output_nc=3, ngf=4, norm="instance",
                                                           use_dropout=False, n_blocks=3))
    assert arch == "mobile_resnet_deep" and kwargs["ngf"] == 4
    deep = build_generator(arch, **kwargs)
    assert isinstance(deep, DeepMobileResnetGenerator) and deep.arch_kwargs() == kwargs
    kinds = [type(layer).__name__ for layer in deep.model]
    down = ["Conv2d", "InstanceNorm2d", "ReLU", "ExpansionResnetBlock", "Conv2d", "InstanceNorm2d", "ReLU"]
    up = ["ConvTranspose2d", *down[1:]]
    # 1 mobile block (3 // 2), 2 expansion blocks in the middle, then 2 mobile blocks.
    middle = ["MobileResnetBlock", "ExpansionResnetBlock", "ExpansionResnetBlock", "MobileResnetBlock",
              "MobileResnetBlock"]
    assert kinds == ["ReflectionPad2d", "Conv2d", "InstanceNorm2d", "ReLU", *down, *down, *middle, *up, *up,
                     "ReflectionPad2d", "OutputConv2d", "Tanh"]
    widths = [layer.conv_block[0].in_channels for layer in deep.model if isinstance(layer, ExpansionResnetBlock)]
    assert widths == [8, 16, 16, 16, 8, 4]  # after down1, down2, middle x2, up1, up2
    block = next(layer for layer in deep.model if isinstance(layer, ExpansionResnetBlock))
    assert [block.conv_block[i].out_channels for i in (0, 4, 7, 12)] == [32, 32, 8, 8]  # 4x expansion
    student = build_generator("mobile_resnet", **kwargs)
    assert count_params(deep) > 3 * count_params(student)
    image = images(1, (1, 3, 32, 32))
    assert deep(image).shape == (1, 3, 32, 32)


def test_deep_unet_teacher_layout():
    arch, kwargs = deep_teacher_spec("unet", dict(input_nc=3, output_nc=3, ngf=4, norm="batch", use_dropout=False,
                                                  num_downs=5))
    assert (arch, kwargs["ngf"], kwargs["num_downs"]) == ("unet_deep", 4, 5)
    assert deep_teacher_spec("unet_256", dict(ngf=16, norm="batch"))[1]["num_downs"] == 8
    deep, plain = build_generator(arch, **kwargs), build_generator("unet", **kwargs)
    # Two expansion blocks after the down-conv and two after the up-conv of every level but the innermost.
    chain = deep.blocks()
    own_layers = [[layer for layer in level.model.children() if layer is not level.submodule] for level in chain]
    counts = [sum(isinstance(m, ExpansionResnetBlock) for layer in own for m in layer.modules()) for own in own_layers]
    assert counts == [4, 4, 4, 4, 0]
    outer = chain[0].model
    assert [type(m).__name__ for m in outer[0]] == ["Conv2d", "ExpansionResnetBlock", "ExpansionResnetBlock"]
    assert [type(m).__name__ for m in outer[2]] == ["ExpansionResnetBlock", "ExpansionResnetBlock", "ReLU"]
    assert [type(m).__name__ for m in chain[1].model[2]] == ["BatchNorm2d", "ExpansionResnetBlock",
                                                             "ExpansionResnetBlock"]
    assert chain[1].model[6][1].conv_block[0].in_channels == chain[1].outer_nc == 4
    # Depths, feature widths and shapes are the plain U-Net's.
    image = images(2, (2, 3, 32, 32))
    out, features = deep.forward_features(image, [1, 2, 3, 4])
    _, plain_features = plain.forward_features(image, [1, 2, 3, 4])
    assert out.shape == (2, 3, 32, 32)
    assert [f.shape for f in features] == [f.shape for f in plain_features]
    assert [deep.feature_channels(d) for d in (1, 2, 3, 4)] == [8, 16, 32, 64]  # 2, 4, 8, 16 x ngf


# ---------------------------------------------------------------------------------------------- students


@pytest.mark.parametrize(("student", "width", "ngf", "gmacs", "mparams"), [
    ("mobile_resnet", 1.0, 16, 1.408, 0.137), ("mobile_resnet", 0.75, 12, 0.858, 0.081),
    ("mobile_resnet", 0.5, 8, 0.440, 0.039), ("unet_256", 1.0, 16, 1.219, 3.404), ("unet_256", 0.5, 8, 0.333, 0.852)])
def test_students_profile_at_the_published_figures(student, width, ngf, gmacs, mparams):
    resolved = resolve_defaults(OMGDConfig(data="x", student=student, width=width), kind="paired")
    arch, kwargs = student_spec(resolved)
    norm = "instance" if student == "mobile_resnet" else "batch"
    assert (arch, kwargs["ngf"], kwargs["norm"]) == (student, ngf, norm)
    with torch.device("meta"):
        generator = build_generator(arch, **kwargs)
    macs = count_macs(generator, torch.empty(1, 3, 256, 256, device="meta"))
    assert round(macs.macs_published / 1e9, 3) == gmacs  # the published (torchprofile) convention
    assert round(count_params(generator) / 1e6, 3) == mparams


def test_defaults_follow_omgd():
    for kind, student, cd, gan, ndf in (("paired", "mobile_resnet", 100, "hinge", 128), ("paired", "unet_256", 10,
                                         "hinge", 128), ("unpaired", "mobile_resnet", 500, "lsgan", 64)):
        resolved = resolve_defaults(OMGDConfig(data="x", student=student), kind=kind)
        assert (resolved.lambda_cd, resolved.gan_mode, resolved.ndf) == (cd, gan, ndf)
    raw = OMGDConfig(data="x")
    assert (raw.ssim_weight, raw.style_weight, raw.feature_weight, raw.tv_weight, raw.lambda_l1) == (
        10, 1e4, 10, 1e-5, 100)
    assert (raw.wide_multiplier, raw.deep_multiplier, raw.batch_size) == (4, 1, 4)
    assert resolve_defaults(OMGDConfig(data="x", lambda_cd=7, gan_mode="vanilla"), "paired").lambda_cd == 7


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(student="mobile_resnet", num_downs=6), "num_downs has no effect"),
    (dict(student="unet_256", n_blocks=6), "n_blocks has no effect"),
    (dict(lambda_cd=-0.5), "lambda_cd")])
def test_config_errors(overrides, message):
    with pytest.raises(GanslimError, match=message):
        OMGDConfig(data="x", **overrides)


def test_sizes_the_student_cannot_take_are_refused_before_a_run_folder(paired, tmp_path):
    with pytest.raises(GanslimError, match="crop_size 32 does not fit network '.*' .* multiples of 256: set crop_size=256"):
        fit(dataclasses.replace(config(paired, tmp_path), student="unet_256", n_blocks=9), OMGD, progress=False)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------- losses


def test_vgg_sees_unnormalised_images_as_omgd():
    torch.manual_seed(0)
    vgg = VGG16Features(layers=["relu1_2"], imagenet_norm=False)
    image = images(3, (1, 3, 16, 16))
    x = (image + 1) / 2  # OMGD: [0, 1], no ImageNet mean / std
    conv1, conv2 = vgg.features[0], vgg.features[2]
    expected = torch.relu(conv2(torch.relu(conv1(x))))
    torch.testing.assert_close(vgg(image)["relu1_2"], expected)
    normalised = VGG16Features(layers=["relu1_2"])
    normalised.load_state_dict(vgg.state_dict())
    assert not torch.allclose(normalised(image)["relu1_2"], expected)


def test_omgd_vgg_is_loaded_unnormalised(tmp_path):
    torch.manual_seed(0)
    state = {key: value.half() for key, value in VGG16Features().state_dict().items()}  # half: a smaller file
    torch.save(state, tmp_path / "vgg16.pth")
    vgg = load_omgd_vgg(OMGDConfig(data="x", vgg_weights=str(tmp_path / "vgg16.pth")))
    assert isinstance(vgg, VGG16Features) and vgg.imagenet_norm is False
    assert load_omgd_vgg(OMGDConfig(data="x", vgg_weights="none")) is None
    with pytest.raises(GanslimError, match="not found"):
        load_omgd_vgg(OMGDConfig(data="x", vgg_weights=str(tmp_path / "missing.pth")))


def test_student_loss_sums_both_teachers_and_channel_distillation():
    torch.manual_seed(0)
    vgg = VGG16Features(imagenet_norm=False)
    loss = OMGDStudentLoss(PerceptualDistillLoss(vgg), lambda_cd=30.0)
    student = images(4).requires_grad_()
    wide, deep = images(5), images(6)
    adapted = [torch.randn(2, 8, 8, 8, requires_grad=True), torch.randn(2, 16, 4, 4, requires_grad=True)]
    teacher_features = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 2, 2)]
    terms = loss(student, adapted, {"wide": wide, "deep": deep}, teacher_features)
    assert list(terms) == [f"{term}_{name}" for name in ("wide", "deep") for term in ("ssim", "style", "feature",
                                                                                      "tv")] + ["cd"]
    with torch.no_grad():
        fs = vgg(student)
        for name, teacher in (("wide", wide), ("deep", deep)):
            ft = vgg(teacher)
            torch.testing.assert_close(terms[f"ssim_{name}"], 10 * ssim_loss(student, teacher))
            torch.testing.assert_close(terms[f"style_{name}"], 1e4 * style_loss(fs, ft))
            torch.testing.assert_close(terms[f"feature_{name}"], 10 * feature_loss(fs, ft))
            torch.testing.assert_close(terms[f"tv_{name}"], 1e-5 * total_variation(student))  # once per teacher
        pooled = [(a.mean((2, 3)) - t.mean((2, 3))).pow(2).mean() for a, t in zip(adapted, teacher_features)]
        torch.testing.assert_close(terms["cd"], 30 * sum(pooled))
        torch.testing.assert_close(terms["cd"], 30 * channel_distillation_loss(adapted, teacher_features))
    sum(terms.values()).backward()
    assert student.grad.abs().sum() > 0 and all(a.grad is not None for a in adapted)
    assert "cd" not in OMGDStudentLoss(PerceptualDistillLoss(None, style_weight=0, feature_weight=0), 0.0)(
        student, [], {"wide": wide}, [])


def test_configured_weights_reach_the_student_loss(paired, tmp_path):
    method, _ = build(config(paired, tmp_path, ssim_weight=2.0, tv_weight=0.5, lambda_cd=40.0))
    assert method.student_loss.perceptual.term_weights == {"ssim": 2.0, "style": 0.0, "feature": 0.0, "tv": 0.5,
                                                           "l1": 10.0}
    assert method.student_loss.lambda_cd == 40.0


def test_the_student_has_its_own_learning_rate_and_schedule(paired, tmp_path):
    method, _ = build(config(paired, tmp_path, lr=3e-4, student_lr=2e-3, epochs=3, epochs_decay=2,
                             student_epochs_decay=4))
    optimizers = method.optimizers()
    assert [group["lr"] for group in optimizers["student"].param_groups] == [2e-3]
    assert {optimizers[name].param_groups[0]["lr"] for name in ("teachers", "D")} == {3e-4}
    trained = {id(p) for p in optimizers["student"].param_groups[0]["params"]}
    assert trained == {id(p) for name in ("student", "adapters") for p in method.nets[name].parameters()}
    own, _ = build(config(paired, tmp_path, lr=3e-4, deep_lr=1e-3))
    deep = own.optimizers()["teachers"].param_groups
    assert [group["lr"] for group in deep] == [3e-4, 1e-3]  # wide at lr, deep at its own
    assert {id(p) for p in deep[1]["params"]} == {id(p) for p in own.nets["teacher_deep"].parameters()}
    schedule = method.lr_schedules()["student"]
    assert [schedule.factor(epoch) for epoch in range(5)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert build(config(paired, tmp_path))[0].lr_schedules() == {}  # -1: the run's schedule
    with pytest.raises(GanslimError, match="student_epochs_decay 9 is longer than the run"):
        config(paired, tmp_path, student_epochs_decay=9).check()


def test_the_engine_applies_the_students_schedule(paired, tmp_path, monkeypatch):
    seen = []
    original = OMGD.train_step

    def record(self, batch):
        seen.append({name: opt.param_groups[0]["lr"] for name, opt in self.optimizers().items()})
        return original(self, batch)

    monkeypatch.setattr(OMGD, "train_step", record)
    fit(config(paired, tmp_path, lr=1e-4, student_lr=1e-3, epochs=1, epochs_decay=1, student_epochs_decay=2),
        OMGD, progress=False)
    per_epoch = [seen[0], seen[-1]]  # 4 steps an epoch, 2 epochs
    assert [round(lrs["student"], 12) for lrs in per_epoch] == [round(1e-3 / 3 * 2, 12), round(1e-3 / 3, 12)]
    assert [round(lrs["teachers"], 12) for lrs in per_epoch] == [1e-4, round(1e-4 / 2, 12)]


@pytest.mark.parametrize("with_vgg", [False, True])
def test_without_vgg_weights_l1_to_the_teachers_is_the_fallback(paired, tmp_path, with_vgg):
    overrides = {}
    if with_vgg:
        torch.manual_seed(0)
        torch.save({k: v.half() for k, v in VGG16Features().state_dict().items()}, tmp_path / "vgg16.pth")
        overrides["vgg_weights"] = str(tmp_path / "vgg16.pth")
    method, _ = build(config(paired, tmp_path, **overrides))
    weights = method.student_loss.perceptual.term_weights
    assert weights["l1"] == (0.0 if with_vgg else 10.0)
    objective = method.objective()
    assert objective["vgg16"] == ("loaded" if with_vgg else "off")
    assert ("fallback" in objective) is not with_vgg
    assert build(config(paired, tmp_path, l1_weight=3.0, **overrides))[0].student_loss.perceptual.term_weights[
        "l1"] == 3.0


@pytest.mark.parametrize("student", list(STUDENTS))
def test_channel_distillation_adapters_map_student_to_wide_teacher_widths(paired, tmp_path, student):
    method, _ = build(config(paired, tmp_path, student=student))
    nets = method.networks()
    assert set(nets) == {"student", "adapters", "teacher_wide", "teacher_deep", "discriminator"}
    student_net, wide = nets["student"], nets["teacher_wide"]
    layers = omgd_distill_layers(student_net)
    widths = [student_net.feature_channels(i) for i in layers]
    assert [wide.feature_channels(i) for i in layers] == [4 * w for w in widths]
    assert widths == ([16, 8, 4] if student == "mobile_resnet" else [8, 16, 32, 64])
    for adapter, width in zip(nets["adapters"].adapters, widths):
        assert adapter[0].weight.shape == (4 * width, width, 1, 1)
    real_a = first_batch(method)["A"]
    _, adapted = method.taps["student"](real_a)
    _, teacher_features = method.taps["teacher_wide"](real_a)
    assert [a.shape[:2] for a in adapted] == [t.shape[:2] for t in teacher_features]
    assert [a.shape[2:] for a in adapted] == [t.shape[2:] for t in teacher_features]


def test_teachers_and_shared_discriminator_losses(paired, tmp_path, monkeypatch):
    method, ctx = build(config(paired, tmp_path, lambda_l1=50.0, lambda_gan=2.0))  # gan_mode auto: hinge
    batch = first_batch(method)
    real_a, real_b = batch["A"], batch["B"]
    judge = method.nets["discriminator"]
    with torch.no_grad():  # instance norm, no dropout: the step's forward gives the same outputs
        outputs = {name: method.nets[f"teacher_{name}"](real_a) for name in ("wide", "deep")}
        fake = {name: torch.relu(1 + judge(torch.cat([real_a, out], 1))).mean() for name, out in outputs.items()}
        expected_d = torch.relu(1 - judge(torch.cat([real_a, real_b], 1))).mean() + 0.5 * sum(fake.values())
    seen = {}
    original = ctx.step

    def step(name, loss):
        if name == "teachers":  # the discriminator has been updated by now
            with torch.no_grad():
                seen["gan"] = {n: -2.0 * judge(torch.cat([real_a, out], 1)).mean() for n, out in outputs.items()}
        seen[name] = loss.detach()
        original(name, loss)

    monkeypatch.setattr(ctx, "step", step)
    losses = method.train_step(batch)
    torch.testing.assert_close(seen["D"], expected_d)
    for name, out in outputs.items():
        torch.testing.assert_close(losses[f"T_L1_{name}"], 50 * (out - real_b).abs().mean())
        torch.testing.assert_close(losses[f"T_GAN_{name}"], seen["gan"][name])
    torch.testing.assert_close(seen["teachers"], sum(v for k, v in losses.items() if k.startswith("T_")))
    torch.testing.assert_close(seen["student"], sum(v for k, v in losses.items() if k.startswith("S_")))


# ---------------------------------------------------------------------------------------------- isolation


def test_student_update_reaches_neither_discriminator_nor_teachers(paired, tmp_path, monkeypatch):
    method, ctx = build(config(paired, tmp_path))
    others = [p for name in ("discriminator", "teacher_wide", "teacher_deep") for p in method.nets[name].parameters()]
    seen = {}
    original = ctx.step

    def step(name, loss):
        if name == "student":
            for p in others:
                p.grad = None
            original(name, loss)
            seen["untouched"] = all(p.grad is None for p in others)
        else:
            original(name, loss)

    monkeypatch.setattr(ctx, "step", step)
    losses = method.train_step(first_batch(method))
    assert seen["untouched"]
    assert {f"S_{term}_{name}" for term in ("ssim", "tv", "l1") for name in ("wide", "deep")} | {"S_cd"} == {
        k for k in losses if k[:2] == "S_"}


def test_with_n_dis_the_teachers_update_once_every_n_dis_steps_and_the_student_every_step(paired, tmp_path):
    method, _ = build(config(paired, tmp_path, n_dis=2))
    batch = first_batch(method)
    teachers = ("discriminator", "teacher_wide", "teacher_deep")
    for step in range(4):
        before = {name: snapshot(method.nets[name]) for name in (*teachers, "student")}
        losses = method.train_step(batch)
        changed = {name: not same(before[name], method.nets[name]) for name in before}
        assert changed["student"] and any(key.startswith("S_") for key in losses)
        teachers_learn = step % 2 == 0
        assert all(changed[name] == teachers_learn for name in teachers), step
        assert any(key.startswith("T_") for key in losses) == teachers_learn
    assert method.extra_state() == {"steps": 4}


def test_student_does_not_depend_on_the_ground_truth(paired, tmp_path):
    runs = {}
    for label in ("truth", "noise"):
        method, _ = build(config(paired, tmp_path))
        batch = first_batch(method)
        if label == "noise":
            batch["B"] = images(7, tuple(batch["B"].shape))
        losses = method.train_step(batch)
        runs[label] = (losses, {name: snapshot(net) for name, net in method.networks().items()})
    (truth_losses, truth), (noise_losses, noise) = runs["truth"], runs["noise"]
    for key in (k for k in truth_losses if k.startswith("S_")):
        assert torch.equal(truth_losses[key], noise_losses[key]), key
    for name in ("student", "adapters"):
        assert all(torch.equal(truth[name][k], noise[name][k]) for k in truth[name]), name
    # ... while the teachers and the discriminator did learn from it.
    for name in ("teacher_wide", "teacher_deep", "discriminator"):
        assert any(not torch.equal(truth[name][k], noise[name][k]) for k in truth[name]), name


# ---------------------------------------------------------------------------------------------- teacher init


def test_teacher_checkpoint_initialises_the_wide_teacher(paired, tmp_path):
    torch.manual_seed(3)
    kwargs = dict(input_nc=3, output_nc=3, ngf=16, norm="instance", use_dropout=False, n_blocks=3)
    teacher = build_generator("mobile_resnet", **kwargs)
    path = save_model(tmp_path / "teacher.pt", teacher, "mobile_resnet", kwargs)
    method, _ = build(config(paired, tmp_path, teacher=str(path)))
    assert same(teacher.state_dict(), method.nets["teacher_wide"])

    narrow = save_model(tmp_path / "narrow.pt", build_generator("mobile_resnet", **dict(kwargs, ngf=8)),
                        "mobile_resnet", dict(kwargs, ngf=8))
    with pytest.raises(GanslimError, match=r"the wide teacher \(mobile_resnet, ngf 16\): ngf 8 vs 16"):
        build(config(paired, tmp_path, teacher=str(narrow)))
    resnet_kwargs = dict(kwargs)
    other = save_model(tmp_path / "resnet.pt", build_generator("resnet", **resnet_kwargs), "resnet", resnet_kwargs)
    with pytest.raises(GanslimError, match="architecture resnet vs mobile_resnet; layer .* missing"):
        build(config(paired, tmp_path, teacher=str(other)))


# ---------------------------------------------------------------------------------------------- runs


def test_paired_run_exports_and_resumes_exactly(paired, tmp_path, capsys):
    cfg = config(paired, tmp_path, ckpt_every=3, n_dis=2)  # the resume must know step 4 updates no teacher
    straight = fit(cfg, OMGD, progress=False)  # 8 images, batch 2: 4 steps/epoch, 8 steps
    run = straight.run_dir
    assert straight.step == 8 and straight.best["metric"] == "psnr"
    assert set(straight.last_metrics) == {"psnr", "ssim", "psnr_wide", "psnr_deep"}

    student = load_generator(run / "generator.pt")
    assert (student.arch, student.arch_kwargs["ngf"], student.meta["method"]) == ("mobile_resnet", 4, "omgd")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["student"]["params"] == count_params(student.model)
    assert set(summary["student"]["cost"]) == {"32x32", "256x256"}
    big = count_macs(student.model, torch.zeros(1, 3, 256, 256))
    assert summary["student"]["cost"]["256x256"] == {"macs": big.macs, "macs_published": big.macs_published}
    assert summary["objective"]["per_teacher"] == {"ssim": 10.0, "tv": 1e-5, "l1": 10.0}
    assert summary["objective"]["vgg16"] == "off" and "fallback" in summary["objective"]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["networks"]
    assert all(torch.equal(best["student"][k], v) for k, v in student.model.state_dict().items())
    for name, arch in (("teacher_wide", "mobile_resnet"), ("teacher_deep", "mobile_resnet_deep")):
        assert load_generator(run / f"{name}.pt").arch == arch
    assert cli_main(["profile", str(run), "--size", "32", "--repeats", "1", "--warmup", "0", "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["params"] == count_params(student.model)
    out = tmp_path / "translated"
    assert cli_main(["translate", "--ckpt", str(run), "--input", str(paired / "test"), "--output", str(out),
                     "--aligned", "--size", "32", "--device", "cpu"]) == 0
    assert len(list(out.glob("*.png"))) == len(list((paired / "test").iterdir()))

    interrupted = interrupted_run(OMGD, cfg, crash_on_call=5)  # last checkpoint: step 3
    fit(cfg, OMGD, resume=interrupted, progress=False)
    a = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    b = torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)


def test_unet_student_runs(paired, tmp_path):
    result = fit(config(paired, tmp_path, student="unet", epochs_decay=0), OMGD, progress=False)
    student = load_generator(result.run_dir / "generator.pt")
    assert (student.arch, student.arch_kwargs["num_downs"], student.arch_kwargs["norm"]) == ("unet", 5, "batch")
    assert_rebuilds_like_export(result.run_dir / "checkpoints" / "latest.pt", result.run_dir / "generator.pt")
    assert load_generator(result.run_dir / "teacher_deep.pt").arch == "unet_deep"


def test_unpaired_student_waits_for_the_first_snapshot(unpaired, tmp_path):
    method, _ = build(config(unpaired, tmp_path, snapshot_every=2))
    assert isinstance(method, OMGDUnpaired)
    assert len(method.train_dataset()) == 5 and len(method.val_dataset()) == 1  # one A image held out
    start = snapshot(method.nets["student"])
    losses = method.train_step(first_batch(method))
    assert same(start, method.nets["student"]) and not any(k.startswith("S_") for k in losses)
    assert not same(snapshot(method.nets["G_A"]), method.nets["teacher_snapshot"])
    losses = method.train_step(first_batch(method))
    assert same(snapshot(method.nets["G_A"]), method.nets["teacher_snapshot"])  # refreshed at step 2
    assert not same(start, method.nets["student"]) and "S_cd" in losses and "S_ssim_teacher" in losses
    held_out = torch.utils.data.default_collate([method.val_dataset()[0]])
    with torch.no_grad():
        assert set(method.validate([held_out])) == {"psnr", "ssim"}


def test_unpaired_run_exports_and_resumes_exactly(unpaired, tmp_path):
    cfg = config(unpaired, tmp_path, ckpt_every=2)  # 5 training items, batch 2: 3 steps/epoch = snapshot period
    straight = fit(cfg, OMGDUnpaired, progress=False)
    run = straight.run_dir
    assert straight.step == 6 and straight.best["metric"] == "psnr"
    for name in ("generator.pt", "teacher_snapshot.pt", "generator_A.pt", "generator_B.pt", "discriminator_A.pt"):
        assert (run / name).is_file()
    assert load_generator(run).arch == "mobile_resnet" and load_generator(run).arch_kwargs["ngf"] == 4
    latest = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    assert all(torch.equal(latest["teacher_snapshot"][k], v) for k, v in latest["G_A"].items())  # step 6 refresh

    interrupted = interrupted_run(OMGDUnpaired, cfg, crash_on_call=4)  # last checkpoint: step 2
    fit(cfg, OMGDUnpaired, resume=interrupted, progress=False)
    b = torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    for name in latest:
        for key in latest[name]:
            assert torch.equal(latest[name][key], b[name][key]), (name, key)


# ---------------------------------------------------------------------------------------------- CLI


def omgd_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ganslim")
    compress.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compress", "omgd", *argv])
    return args.func(args)


def test_cli_flags_show_config_and_run(paired, tmp_path, capsys):
    assert omgd_cli(["--data", str(paired), "--student", "unet_256", "--width", "0.5", "--show-config"]) == 0
    shown = capsys.readouterr().out
    assert "method: omgd" in shown and "student: unet_256" in shown and "width: 0.5" in shown
    sets = [f"--set={key}={value}" for key, value in dict(TINY, n_blocks=3, epochs_decay=0, base_ngf=8).items()
            if key != "vgg_weights"]
    assert omgd_cli(["--data", str(paired), "--width", "0.5", "--vgg-weights", "none", "--no-progress",
                     "--out-dir", str(tmp_path / "runs"), *sets]) == 0
    printed = capsys.readouterr().out
    assert "ganslim compress omgd: 4 steps" in printed
    assert "student mobile_resnet ngf 4:" in printed and "MACs (published convention) 0.134G at 256x256, " in printed
    assert "G at 32x32 (training size)" in printed
    run = next((tmp_path / "runs").iterdir())
    assert load_generator(run).arch_kwargs["ngf"] == 4
    assert omgd_cli(["--resume", str(run), "--no-progress"]) == 0  # a finished run: re-exports, trains nothing
    resumed = capsys.readouterr().out
    assert "ganslim compress omgd: 4 steps in" in resumed and f"run folder {run}" in resumed


def test_data_errors(tmp_path, paired):
    with pytest.raises(GanslimError, match="OMGD needs train/"):
        omgd_method(dataclasses.replace(config(paired, tmp_path), data=str(paired / "test")))
    with pytest.raises(GanslimError, match="no dataset given: pass --data DIR"):
        omgd_cli([])
