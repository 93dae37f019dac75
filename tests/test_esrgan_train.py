"""`ganslim train esrgan`: BasicSR's VGG-style discriminator, the RaGAN loss, both stages' steps, their runs (exports,
resume), the --init checks and the command line."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from esrgan_reference import in_layout, random_state, reference_forward
from ganslim.archs import build_discriminator, build_generator
from ganslim.checkpoints import load_discriminator, load_generator, save_model
from ganslim.cli import main as cli_main
from ganslim.data import make_builtin
from ganslim.engine import fit
from ganslim.errors import GanslimError
from ganslim.losses import relativistic_average_loss
from ganslim.methods import METHODS, TRAIN
from ganslim.methods.esrgan import ESRGAN, ESRGANConfig, ESRGANPSNR, load_init, resolve_defaults
from ganslim.metrics import sr_psnr, sr_ssim
from ganslim.nn.vgg import VGG19Features
from ganslim.signature import UNIT
from helpers import assert_rebuilds_like_export, build_method, first_batch, interrupted_run, save_resnet, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARCH_SETS = dict(num_feat=8, num_block=1, num_grow_ch=4)
TINY = dict(ARCH_SETS, batch_size=2, epochs=1, epochs_decay=1, log_every=1, sample_every=0, val_every=0,
            ckpt_every=0, device="cpu")
METHOD_LOGGER = "ganslim.methods.esrgan.method"


@pytest.fixture(autouse=True)
def no_user_vgg19(monkeypatch, tmp_path):
    """No VGG19 file from this machine's cache or environment leaks into a test."""
    monkeypatch.delenv("GANSLIM_VGG19_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def hr32(tmp_path_factory):
    """photos2sr at 32 px: train/ 4 HR images, val/ and test/ 1 each (psnr stage, GT crops of 16)."""
    return make_builtin("photos2sr", tmp_path_factory.mktemp("data") / "hr32", size=32, count=4)


@pytest.fixture(scope="module")
def hr128(tmp_path_factory):
    """photos2sr at 128 px, train/ 2 images: the gan stage's discriminator takes 128-pixel crops only."""
    return make_builtin("photos2sr", tmp_path_factory.mktemp("data") / "hr128", size=128, count=2)


@pytest.fixture(scope="module")
def tiny_rrdbnet(tmp_path_factory):
    """A seeded tiny x4 RRDBNet in the ganslim format, the gan stage's init."""
    torch.manual_seed(3)
    kwargs = dict(ARCH_SETS, input_nc=3, output_nc=3, scale=4)
    return save_model(tmp_path_factory.mktemp("init") / "psnr.pt", build_generator("rrdbnet", **kwargs), "rrdbnet",
                      kwargs)


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory):
    """Random VGG19 weights in torchvision's key layout (features.N.weight / .bias of the 16 convs)."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for index, module in enumerate(VGG19Features().features):
        if isinstance(module, torch.nn.Conv2d):
            scale = (2 / (9 * module.in_channels)) ** 0.5  # keeps the activations O(1) through 16 convs
            state[f"features.{index}.weight"] = torch.randn(module.weight.shape, generator=generator) * scale
            state[f"features.{index}.bias"] = torch.zeros(module.out_channels)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path


def psnr_config(data, tmp_path, **overrides) -> ESRGANConfig:
    values = dict(TINY, data=str(data), out_dir=str(tmp_path / "runs"), gt_size=16)
    return resolve_defaults(ESRGANConfig(**{**values, **overrides}))


def gan_config(data, init, tmp_path, **overrides) -> ESRGANConfig:
    values = dict(TINY, data=str(data), out_dir=str(tmp_path / "runs"), stage="gan", init=str(init), ndf=4,
                  vgg19_weights="none")
    return resolve_defaults(ESRGANConfig(**{**values, **overrides}))


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


# ---------------------------------------------------------------------------------------------- discriminator


def reference_vgg_style(state: dict, image: torch.Tensor, training: bool) -> torch.Tensor:
    """BasicSR's VGGStyleDiscriminator.forward, written as functional calls on its state dict."""
    stages = 1 + max(int(key[4]) for key in state if key.startswith("conv"))
    lrelu = lambda x: F.leaky_relu(x, 0.2)  # noqa: E731
    x = lrelu(F.conv2d(image, state["conv0_0.weight"], state["conv0_0.bias"], padding=1))
    for stage in range(stages):
        for index, stride in ((0, 1), (1, 2)):
            if (stage, index) == (0, 0):
                continue
            x = F.conv2d(x, state[f"conv{stage}_{index}.weight"], stride=stride, padding=1)
            bn = f"bn{stage}_{index}"
            x = lrelu(F.batch_norm(x, state[f"{bn}.running_mean"].clone(), state[f"{bn}.running_var"].clone(),
                                   state[f"{bn}.weight"], state[f"{bn}.bias"], training=training))
    x = lrelu(F.linear(x.flatten(1), state["linear1.weight"], state["linear1.bias"]))
    return F.linear(x, state["linear2.weight"], state["linear2.bias"])


def test_vgg_style_discriminator_has_basicsrs_keys_size_and_forward():
    full = build_discriminator("vgg_style")
    convs = ["conv0_0", "conv0_1", "bn0_1"] + [f"{kind}{s}_{i}" for s in range(1, 5) for i in (0, 1)
                                               for kind in ("conv", "bn")]
    modules = [key.rsplit(".", 1)[0] for key in full.state_dict()]
    assert list(dict.fromkeys(modules)) == [*convs, "linear1", "linear2"]
    assert sum(p.numel() for p in full.parameters()) == 14_499_401  # BasicSR's VGGStyleDiscriminator(3, 64)
    assert full.conv0_0.bias is not None and full.conv0_1.bias is None and full.linear1.in_features == 512 * 16

    torch.manual_seed(0)
    for input_size in (128, 256):
        net = build_discriminator("vgg_style", ndf=2, input_size=input_size)
        for module in net.modules():  # non-trivial running statistics for the eval-mode check
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        image = torch.rand(2, 3, input_size, input_size)
        state = {key: value.clone() for key, value in net.state_dict().items()}
        for training in (False, True):  # eval first: a training pass updates the running statistics
            with torch.no_grad():
                out = net.train(training)(image)
            assert out.shape == (2, 1)
            torch.testing.assert_close(out, reference_vgg_style(state, image, training), rtol=1e-4, atol=1e-5)
    assert "conv5_1.weight" in net.state_dict()  # the 256 input has a sixth stage
    with pytest.raises(GanslimError) as error:
        net(torch.zeros(1, 3, 128, 128))
    assert "takes (N, 3, 256, 256) images, got shape (1, 3, 128, 128)" in one_line(error)
    with pytest.raises(GanslimError, match="takes 128 or 256-pixel images, not 64"):
        build_discriminator("vgg_style", input_size=64)
    assert net.image_sides.describe() == "exactly 256 pixels" and net.image_sides.nearest(300) == [256]


def test_ragan_loss_is_esrgans_formula():
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[-1.0], [1.0]])  # means: real 1, fake 0

    def softplus(x: float) -> float:  # BCE with logits: -log(sigmoid(x)) = softplus(-x)
        return math.log1p(math.exp(x))

    # D: BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0), halved; the logits are [2, 0] and [-2, 0].
    d_loss = 0.5 * ((softplus(-2) + softplus(0)) / 2 + (softplus(-2) + softplus(0)) / 2)
    g_loss = 0.5 * ((softplus(2) + softplus(0)) / 2 + (softplus(2) + softplus(0)) / 2)  # the labels swapped
    assert relativistic_average_loss(real, fake).item() == pytest.approx(d_loss, rel=1e-6)
    assert relativistic_average_loss(real, fake, for_discriminator=False).item() == pytest.approx(g_loss, rel=1e-6)
    assert relativistic_average_loss(real.half(), fake.half()).dtype == torch.float32


# ---------------------------------------------------------------------------------------------- config


def test_defaults_follow_basicsr_per_stage():
    config = ESRGANConfig()
    assert (config.stage, config.scale, config.gt_size, config.batch_size) == ("psnr", 4, 128, 16)
    assert (config.num_feat, config.num_block, config.num_grow_ch, config.ndf) == (64, 23, 32, 64)
    assert (config.beta1, config.beta2) == (0.9, 0.99)
    assert (config.l1_weight, config.perceptual_weight, config.gan_weight) == (1e-2, 1.0, 5e-3)
    psnr = resolve_defaults(config)
    assert (psnr.lr, psnr.ema_decay) == (2e-4, 0.0)
    gan = resolve_defaults(ESRGANConfig(stage="gan", init="psnr.pt"))
    assert (gan.lr, gan.ema_decay) == (1e-4, 0.999)
    assert resolve_defaults(ESRGANConfig(stage="gan", init="psnr.pt", lr=5e-5, ema_decay=0)).lr == 5e-5
    assert resolve_defaults(ESRGANConfig(gt="hr", lq="lr")).data == "hr"  # names the run folder
    assert METHODS.get("esrgan").command == TRAIN and METHODS.get("esrgan").load().Config is ESRGANConfig
    with pytest.raises(ValueError, match="resolved config"):
        build_method(ESRGANPSNR, ESRGANConfig(data="d"))


@pytest.mark.parametrize("values, message", [
    ({"stage": "gan", "init": "g.pt", "gt_size": 64}, "gt_size 64 does not fit the gan stage's VGG-style "
                                                      "discriminator, which takes 128 or 256-pixel crops: set "
                                                      "gt_size=128"),
    ({"stage": "gan"}, "the gan stage starts from a PSNR-oriented generator: pass --init"),
    ({"gt": "hr"}, "gt is set but lq is not: paired data needs both folders"),
    ({"val_lq": "lr"}, "val_lq is set but val_gt is not"),
    ({"gt_size": 30}, "gt_size 30 is not a multiple of 4, so its LR crop (gt_size / 4) is no image the x4 RRDBNet "
                      "takes: set gt_size=28 or 32"),
    ({"gan_weight": 0.1}, "gan_weight only applies to the gan stage: set stage=gan or drop gan_weight"),
    ({"stage": "esrgan"}, "bad value for 'stage': 'esrgan'"),
])
def test_config_errors_are_one_line(values, message):
    with pytest.raises(GanslimError) as error:
        ESRGANConfig(**values)
    assert message in one_line(error)


def test_init_must_be_an_rrdbnet_of_the_configured_scale_and_sizes(hr32, tmp_path, tiny_rrdbnet):
    resnet = save_resnet(tmp_path / "resnet.pt", 4)
    with pytest.raises(GanslimError) as error:
        load_init(psnr_config(hr32, tmp_path, init=str(resnet)))
    assert "holds a resnet_6blocks generator, not an RRDBNet: pass an esrgan run folder" in one_line(error)
    with pytest.raises(GanslimError) as error:
        load_init(psnr_config(hr32, tmp_path, init=str(tiny_rrdbnet), scale=2))
    assert "is an x4 RRDBNet but this run trains x2: pass --scale 4 or an x2 generator" in one_line(error)
    with pytest.raises(GanslimError) as error:
        load_init(psnr_config(hr32, tmp_path, init=str(tiny_rrdbnet), num_feat=16, num_grow_ch=8))
    assert ("is an RRDBNet with num_feat 8, num_grow_ch 4, not num_feat 16, num_grow_ch 8 as configured: pass "
            "--set num_feat=8 --set num_grow_ch=4") in one_line(error)
    with pytest.raises(GanslimError, match="not found"):
        load_init(psnr_config(hr32, tmp_path, init=str(tmp_path / "missing.pth")))


def test_init_takes_any_importer_layout(hr32, tmp_path):
    weights = random_state(8, 1, 4, 3, 3, seed=4)
    old_arch = tmp_path / "RRDB_PSNR_old_arch.pth"
    torch.save(in_layout(weights, "old_arch", 1), old_arch)
    method, _ = build_method(ESRGANPSNR, psnr_config(hr32, tmp_path, init=str(old_arch)))
    assert same_weights(method.nets["G"].state_dict(), weights)


# ---------------------------------------------------------------------------------------------- psnr stage


def test_psnr_step_is_l1_to_the_gt_and_validation_is_basicsrs_y_psnr(hr32, tmp_path):
    method, _ = build_method(ESRGANPSNR, psnr_config(hr32, tmp_path))
    batch = first_batch(method)
    assert batch["lq"].shape == (2, 3, 4, 4) and batch["gt"].shape == (2, 3, 16, 16)
    before = copy.deepcopy(method.nets["G"])
    with torch.no_grad():
        expected = F.l1_loss(before(batch["lq"]), batch["gt"])
    losses = method.train_step(batch)
    assert set(losses) == {"L1"} and losses["L1"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert not same_weights(before.state_dict(), method.nets["G"].state_dict())

    val = torch.utils.data.default_collate([method.val_dataset()[0]])
    assert val["gt"].shape == (1, 3, 32, 32)  # whole val images
    with torch.no_grad():
        metrics = method.validate([val])
        output = method.nets["G"](val["lq"])
    assert metrics["psnr"] == pytest.approx(sr_psnr(output, val["gt"], crop_border=4, y_channel=True).item())
    assert metrics["ssim"] == pytest.approx(sr_ssim(output, val["gt"], crop_border=4, y_channel=True).item())
    columns = method.visuals(val)
    assert [tuple(c.shape) for c in columns] == [(1, 3, 32, 32)] * 3 and min(c.min() for c in columns) >= -1


def test_psnr_run_exports_both_layouts_keeps_the_best_and_resumes_exactly(hr32, tmp_path):
    config = psnr_config(hr32, tmp_path, epochs=2, ckpt_every=2, val_every=2, sample_every=2)
    straight = fit(config, ESRGANPSNR, progress=False)  # 4 images, batch 2: 2 steps/epoch, 6 steps
    run = straight.run_dir
    assert straight.step == 6 and straight.best["metric"] == "psnr"
    assert (run / "samples" / "step_00000002.png").is_file() and list((run / "logs").glob("events.out.tfevents*"))

    generator = load_generator(run / "generator.pt")
    assert_rebuilds_like_export(run / "checkpoints" / "latest.pt", run / "generator.pt")
    kwargs = dict(ARCH_SETS, input_nc=3, output_nc=3, scale=4)
    assert (generator.arch, generator.arch_kwargs, generator.meta["stage"], generator.meta["scale"]) == (
        "rrdbnet", kwargs, "psnr", 4)
    assert generator.signature.output.scale == 4 and generator.signature.image_input.value_range == UNIT
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["networks"]["G"]
    assert same_weights(generator.model.state_dict(), best)

    reference = torch.load(run / "reference" / "net_g.pth", weights_only=True)
    assert set(reference) == {"params"} and same_weights(reference["params"], best)
    imported = load_generator(run / "reference" / "net_g.pth")
    assert imported.source == "reference" and imported.arch_kwargs == kwargs
    image = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = generator.model(image)
        torch.testing.assert_close(imported.model(image), ours, rtol=0, atol=0)
        torch.testing.assert_close(reference_forward(reference["params"], image, 4), ours, rtol=1e-5, atol=1e-6)
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["stage"], summary["selected"], summary["objective"]) == ("psnr", "best val psnr", {"l1": 1.0})
    assert summary["generator"]["params"] == sum(p.numel() for p in generator.model.parameters())

    interrupted = interrupted_run(ESRGANPSNR, config, crash_on_call=4)  # last checkpoint: step 2
    fit(config, ESRGANPSNR, resume=interrupted, progress=False)
    a = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    b = torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    assert same_weights(a["G"], b["G"])


def test_val_images_of_different_sizes_are_validated_and_paired_folders_train(hr32, tmp_path):
    data = tmp_path / "mixed"
    shutil.copytree(hr32, data)
    Image.fromarray(np.full((36, 44, 3), 128, np.uint8)).save(data / "val" / "0001.png")
    lq = tmp_path / "lq"
    lq.mkdir()
    for path in sorted((data / "train").iterdir()):  # BasicSR's paired layout: LQ files named like their GT
        Image.open(path).resize((8, 8), Image.BICUBIC).save(lq / f"{path.stem}x4.png")
    config = psnr_config(data, tmp_path, gt=str(data / "train"), lq=str(lq))
    result = fit(config, ESRGANPSNR, progress=False)
    assert result.step == 4 and math.isfinite(result.best["value"])
    with torch.no_grad():
        method, _ = build_method(ESRGANPSNR, config)
        method.nets["G"].load_state_dict(load_generator(result.run_dir / "generator.pt").model.state_dict())
        items = [method.val_dataset()[i] for i in range(2)]
        scores = [sr_psnr(method.nets["G"](item["lq"][None]), item["gt"][None], crop_border=4).item()
                  for item in items]
    assert [tuple(item["gt"].shape) for item in items] == [(3, 32, 32), (3, 36, 44)]
    assert result.best["value"] == pytest.approx(sum(scores) / 2, rel=1e-6)


# ---------------------------------------------------------------------------------------------- gan stage


def test_gan_step_updates_g_with_d_frozen_then_d_on_ragan(hr128, tiny_rrdbnet, tmp_path, monkeypatch):
    method, ctx = build_method(ESRGAN, gan_config(hr128, tiny_rrdbnet, tmp_path))
    assert same_weights(method.nets["G"].state_dict(), load_generator(tiny_rrdbnet).model.state_dict())
    batch = first_batch(method)
    assert batch["gt"].shape == (2, 3, 128, 128)
    g, d = copy.deepcopy(method.nets["G"]), copy.deepcopy(method.nets["D"])
    with torch.no_grad():  # what the step computes, on copies in the same (train) mode
        output = g(batch["lq"])
        real, fake = d(batch["gt"]), d(output)
        expected = {"G_L1": 1e-2 * F.l1_loss(output, batch["gt"]),
                    "G_GAN": 5e-3 * relativistic_average_loss(real, fake, for_discriminator=False)}
    frozen = {}
    original = ctx.step

    def step(name, loss):
        frozen[name] = not any(p.requires_grad for p in method.nets["D"].parameters())
        original(name, loss)

    monkeypatch.setattr(ctx, "step", step)
    before = {name: snapshot(net) for name, net in method.nets.items()}
    losses = method.train_step(batch)
    assert frozen == {"G": True, "D": False}
    assert set(losses) == {"G_L1", "G_GAN", "D", "D_real_score", "D_fake_score"}  # no VGG19: no perceptual term
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value.item(), rel=1e-5), key
    assert all(not same_weights(before[name], method.nets[name].state_dict()) for name in ("G", "D"))
    assert method.vgg_status == "off" and method.objective()["terms"] == {"l1": 1e-2, "gan": 5e-3}


def test_perceptual_term_is_vgg19_conv5_4_l1(hr128, tiny_rrdbnet, tmp_path, vgg19_file):
    method, _ = build_method(ESRGAN, gan_config(hr128, tiny_rrdbnet, tmp_path, vgg19_weights=str(vgg19_file),
                                                batch_size=1))
    assert method.vgg_status == "loaded" and method.objective()["terms"]["perceptual"] == 1.0
    batch = first_batch(method, size=1)
    vgg = VGG19Features()
    vgg.load_state_dict(torch.load(vgg19_file, weights_only=True))
    with torch.no_grad():
        expected = F.l1_loss(vgg(method.nets["G"](batch["lq"])), vgg(batch["gt"]))
    assert method.train_step(batch)["G_perceptual"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_gan_run_says_once_that_the_perceptual_term_is_off_exports_the_ema_and_resumes_exactly(
        hr128, tiny_rrdbnet, tmp_path, caplog):
    config = gan_config(hr128, tiny_rrdbnet, tmp_path, vgg19_weights="", epochs=2, ckpt_every=1, val_every=1)
    with caplog.at_level(logging.WARNING, logger=METHOD_LOGGER):
        straight = fit(config, ESRGAN, progress=False)  # 2 images, batch 2: 3 steps
    notices = [record.getMessage() for record in caplog.records if record.name == METHOD_LOGGER]
    assert len(notices) == 1 and notices[0].startswith("perceptual term off (no VGG19 weights): put torchvision's "
                                                       "vgg19-dcbb9e9d.pth")
    assert "GANSLIM_VGG19_WEIGHTS" in notices[0] and notices[0].endswith("or pass --vgg19-weights FILE")
    run = straight.run_dir
    assert straight.step == 3 and straight.best is None and set(straight.last_metrics) == {"psnr", "ssim"}
    assert not (run / "checkpoints" / "best.pt").exists()  # the last step is exported, as BasicSR keeps it

    latest = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    generator = load_generator(run / "generator.pt")
    assert same_weights(generator.model.state_dict(), latest["ema"]["G"])
    assert not same_weights(latest["ema"]["G"], latest["networks"]["G"])
    assert (generator.meta["stage"], generator.meta["vgg19"], generator.meta["ema_decay"]) == ("gan", "absent", 0.999)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["objective"]["notice"] == notices[0] and summary["selected"] == "last step"
    reference = torch.load(run / "reference" / "net_g.pth", weights_only=True)
    assert set(reference) == {"params_ema", "params"}
    assert same_weights(reference["params_ema"], latest["ema"]["G"]) and same_weights(reference["params"],
                                                                                     latest["ema"]["G"])
    imported = load_generator(run / "reference" / "net_g.pth")
    image = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(imported.model(image), generator.model(image), rtol=0, atol=0)
    discriminator = load_discriminator(run / "discriminator.pt")
    assert (discriminator.arch, discriminator.arch_kwargs) == ("vgg_style", {"input_nc": 3, "ndf": 4,
                                                                            "input_size": 128})
    net_d = torch.load(run / "reference" / "net_d.pth", weights_only=True)
    assert same_weights(net_d["params"], latest["networks"]["D"])

    interrupted = interrupted_run(ESRGAN, config, crash_on_call=3)  # last checkpoint: step 2
    fit(config, ESRGAN, resume=interrupted, progress=False)
    resumed = torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)
    for name in ("G", "D"):
        assert same_weights(latest["networks"][name], resumed["networks"][name]), name
    assert same_weights(latest["ema"]["G"], resumed["ema"]["G"])


# ---------------------------------------------------------------------------------------------- command line


def test_cli_trains_both_stages_and_refuses_mistakes_up_front(hr32, hr128, tmp_path, capsys):
    out = tmp_path / "runs"
    sets = [f"--set={key}={value}" for key, value in ARCH_SETS.items()]
    common = ["--batch-size", "2", "--epochs", "1", "--epochs-decay", "0", "--device", "cpu", "--no-progress",
              "--out-dir", str(out), *sets]
    assert cli_main(["train", "esrgan", "--data", str(hr32), "--set", "gt_size=16", *common]) == 0
    printed = capsys.readouterr().out
    assert "ganslim train esrgan: 2 steps in" in printed and "best val psnr" in printed
    psnr_run = next(out.iterdir())
    assert cli_main(["train", "esrgan", "--stage", "gan", "--init", str(psnr_run), "--data", str(hr128),
                     "--vgg19-weights", "none", "--set", "ndf=4", *common]) == 0
    printed = capsys.readouterr().out
    assert "ganslim train esrgan: 1 steps in" in printed and "models: generator.pt, reference/net_g.pth" in printed
    gan_run = sorted(out.iterdir())[-1]
    assert load_generator(gan_run).meta["init"] == str(psnr_run)
    assert cli_main(["train", "esrgan", "--resume", str(gan_run), "--no-progress"]) == 0  # finished: re-exports

    assert cli_main(["train", "esrgan", "--data", str(hr128), "--stage", "gan", "--init", str(psnr_run),
                     "--show-config"]) == 0
    shown = capsys.readouterr().out
    assert "method: esrgan" in shown and "stage: gan" in shown and "lr: -1.0" in shown
    runs_before = sorted(out.iterdir())
    for argv, message in (
            (["train", "pix2pix", "--data", str(hr32), "--init", "g.pt"],
             "--init is an option of 'ganslim train esrgan', not of pix2pix: drop it"),
            (["train", "esrgan", "--data", str(hr128), "--stage", "gan", "--init", str(psnr_run), *common,
              "--scale", "2"], "is an x4 RRDBNet but this run trains x2"),
            (["train", "esrgan", "--data", str(hr32), "--stage", "gan", "--init", str(psnr_run), *common,
              "--set", "gt_size=16"], "gt_size 16 does not fit the gan stage's VGG-style discriminator"),
            (["train", "esrgan", "--data", str(hr32), "--stage", "gan", "--init", str(psnr_run), *common],
             "is 32x32, smaller than gt_size 128"),
    ):
        assert cli_main(argv) == 2, argv
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and message in error, error
    assert sorted(out.iterdir()) == runs_before  # nothing half-made


def test_scale_2_trains_and_exports_an_x2_generator(hr32, tmp_path):
    result = fit(dataclasses.replace(psnr_config(hr32, tmp_path), scale=2), ESRGANPSNR, progress=False)
    generator = load_generator(result.run_dir / "generator.pt")
    assert generator.arch_kwargs["scale"] == 2 and generator.meta["scale"] == 2
    with torch.no_grad():
        assert generator.model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
