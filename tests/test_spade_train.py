"""`ganslim train spade`: the multi-scale discriminator, hinge / feature-matching / VGG19 losses, TTUR, the config's
preset defaults, SyncBatchNorm conversion, a short run with its exports and exact resume, and one-line data errors."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F

from ganslim.archs import build_discriminator, build_generator
from ganslim.checkpoints import load_discriminator, load_generator
from ganslim.cli import main
from ganslim.data import make_builtin
from ganslim.engine import DistInfo, TrainContext, fit
from ganslim.errors import GanslimError
from ganslim.losses import GANLoss, feature_matching_loss, multiscale_gan_loss, pyramid_vgg_loss
from ganslim.methods.spade import (
    SPADEConfig,
    SPADETeacher,
    add_spectral_norm,
    generator_kwargs,
    parameter_free_norms,
    resolve_defaults,
)
from ganslim.nn.vgg import VGG19_LAYERS, VGG19ReLUFeatures
from helpers import build_method, first_batch, interrupted_run, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METHOD_LOGGER = "ganslim.methods.spade.method"
# 64 px scenes (6 labels + instance edges) at a 64x64 'normal' generator (2x2 latent), 4 train images, batch 2.
TINY = dict(label_nc=6, crop_size=64, ngf=4, ndf=4, batch_size=2, epochs=2, epochs_decay=0, log_every=1,
            sample_every=0, val_every=0, ckpt_every=3)


@pytest.fixture(autouse=True)
def no_user_vgg19(monkeypatch, tmp_path):
    """No VGG19 file (nor decode cache) from this machine leaks into a test."""
    monkeypatch.delenv("GANSLIM_VGG19_WEIGHTS", raising=False)
    monkeypatch.delenv("GANSLIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_builtin("labels2scene", tmp_path_factory.mktemp("data") / "scenes", size=64, count=4)


def spade_config(data, tmp_path, **overrides) -> SPADEConfig:
    return resolve_defaults(SPADEConfig(**{**TINY, "data": str(data), "out_dir": str(tmp_path / "runs"),
                                           **overrides}))


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


# ---------------------------------------------------------------------------------------------- networks


def test_multiscale_discriminator_has_nvlabs_keys_and_each_scales_shapes():
    torch.manual_seed(0)
    net = build_discriminator("multiscale", input_nc=10, ndf=4, n_layers=4, num_d=2).train()
    keys = list(net.state_dict())
    assert keys[:2] == ["discriminator_0.model0.0.weight", "discriminator_0.model0.0.bias"]
    assert {"discriminator_0.model1.0.0.weight_orig", "discriminator_0.model1.0.0.weight_u",
            "discriminator_0.model1.0.0.weight_v", "discriminator_1.model3.0.0.weight_orig",
            "discriminator_1.model4.0.weight", "discriminator_1.model4.0.bias"} <= set(keys)
    assert "discriminator_0.model1.0.0.bias" not in keys  # NVlabs drops the bias before the norm
    assert len(keys) == 2 * (2 + 3 * 3 + 2)  # per scale: first conv, 3 spectral convs (3 tensors each), last conv

    x = torch.randn(2, 10, 32, 40)
    outputs = net(x)
    # A side s becomes s // 2 + 1 at a stride-2 4x4 conv (padding 2), s + 1 at a stride-1 one.
    expected = [[(4, 17, 21), (8, 9, 11), (16, 5, 6), (32, 6, 7), (1, 7, 8)],
                [(4, 9, 11), (8, 5, 6), (16, 3, 4), (32, 4, 5), (1, 5, 6)]]  # scale 1 sees 16x20
    assert [[tuple(t.shape[1:]) for t in scale] for scale in outputs] == expected
    assert all(t.shape[0] == 2 for scale in outputs for t in scale)
    with torch.no_grad():
        pooled = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        net.eval()
        torch.testing.assert_close(net(x)[1][-1], net.discriminator_1(pooled)[-1])

    plain = build_discriminator("multiscale", input_nc=10, ndf=64, n_layers=5, num_d=1, spectral=False)
    widths = [plain.state_dict()[f"discriminator_0.model{i}.0.0.weight"].shape[0] for i in range(1, 5)]
    assert widths == [128, 256, 512, 512]  # doubled, capped at 512


def test_vgg19_pyramid_layers_are_nvlabs_slices_and_the_loss_is_their_weighted_l1():
    assert [VGG19_LAYERS[f"relu{block}_1"] for block in range(1, 6)] == [1, 6, 11, 20, 29]
    torch.manual_seed(0)
    vgg = VGG19ReLUFeatures()
    image, target = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        def taps(x):  # the raw [-1, 1] image through torchvision's features, as NVlabs' VGG19 slices
            found = []
            for index, layer in enumerate(vgg.features[:30]):
                x = layer(x)
                if index in (1, 6, 11, 20, 29):
                    found.append(x)
            return found

        expected = sum(w * F.l1_loss(a, b) for w, a, b in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1), taps(image),
                                                                  taps(target)))
        assert pyramid_vgg_loss(vgg, image, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_hinge_and_feature_matching_match_hand_computations():
    hinge = GANLoss("hinge")
    fake = [[torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0]]), torch.tensor([[0.5, -2.0]])],
            [torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0]]), torch.tensor([[3.0]])]]
    real_features = [[torch.tensor([[1.0, 4.0]]), torch.tensor([[3.0]]), torch.tensor([[9.0, 9.0]])],
                     [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0]]), torch.tensor([[-9.0]])]]
    # D on reals: scale 0 mean(relu(1 - [0.5, -2])) = (0.5 + 3) / 2, scale 1 relu(1 - 3) = 0; mean of the scales.
    assert multiscale_gan_loss(hinge, fake, True).item() == pytest.approx(0.875)
    # D on fakes: (relu(1.5) + relu(-1)) / 2 = 0.75 and relu(4) = 4.
    assert multiscale_gan_loss(hinge, fake, False).item() == pytest.approx(2.375)
    # G: -mean(scores) per scale: 0.75 and -3.
    assert multiscale_gan_loss(hinge, fake, True, for_discriminator=False).item() == pytest.approx(-1.125)
    # Feature matching, scores left out: scale 0 L1s 1 and 3, scale 1 L1s 2 and 0; summed, over 2 scales.
    real = [[tensor.clone().requires_grad_() for tensor in scale] for scale in real_features]
    fake = [[tensor.clone().requires_grad_() for tensor in scale] for scale in fake]
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx(3.0)
    loss.backward()
    assert all(tensor.grad is None for scale in real for tensor in scale)  # the real features are constants
    assert fake[0][0].grad is not None and fake[0][-1].grad is None


def test_presets_give_the_defaults_and_given_keys_win():
    cityscapes = generator_kwargs(SPADEConfig(arch="spade_cityscapes"))
    assert {key: cityscapes[key] for key in ("label_nc", "contain_dontcare_label", "instance_edges", "ngf",
                                             "num_upsampling_layers", "crop_size", "aspect_ratio")} == {
        "label_nc": 35, "contain_dontcare_label": False, "instance_edges": True, "ngf": 64,
        "num_upsampling_layers": "more", "crop_size": 512, "aspect_ratio": 2.0}
    smaller = resolve_defaults(SPADEConfig(arch="spade_cityscapes", crop_size=256, ngf=16, no_instance=True))
    assert (smaller.label_nc, smaller.crop_size, smaller.ngf, smaller.aspect_ratio, smaller.no_instance,
            smaller.num_upsampling_layers) == (35, 256, 16, 2.0, True, "more")
    with torch.device("meta"):
        assert build_generator("spade", **generator_kwargs(smaller)).size == (128, 256)
    coco = resolve_defaults(SPADEConfig(arch="spade_coco"))
    assert (coco.label_nc, coco.contain_dontcare_label, coco.crop_size) == (182, True, 256)
    assert generator_kwargs(SPADEConfig(contain_dontcare_label=True))["contain_dontcare_label"]
    with pytest.raises(GanslimError, match="spade keeps no average of the generator"):
        SPADEConfig(ema_decay=0.999)


def test_generator_norms_become_sync_batchnorm_only_for_several_cuda_processes(scenes, tmp_path, monkeypatch,
                                                                               caplog):
    generator = add_spectral_norm(build_generator("spade", label_nc=6, ngf=4, crop_size=64))
    keys = list(generator.state_dict())
    assert "head_0.conv_0.weight_orig" in keys and "up_0.conv_s.weight_v" in keys
    converted = parameter_free_norms(generator, sync=True)
    norms = [module for module in converted.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(module, torch.nn.SyncBatchNorm) for module in norms)
    assert list(converted.state_dict()) == keys and converted.head_0.conv_0.weight_orig.requires_grad

    method, _ = build_method(SPADETeacher, spade_config(scenes, tmp_path))
    assert not method.sync_batchnorm
    assert not any(isinstance(module, torch.nn.SyncBatchNorm) for module in method.nets["G"].modules())
    # Two CPU processes (gloo) cannot run SyncBatchNorm: plain BatchNorm per process, said once.
    monkeypatch.setattr(TrainContext, "wrap", lambda self, module: module)
    config = spade_config(scenes, tmp_path)
    with caplog.at_level(logging.WARNING, logger=METHOD_LOGGER):
        method = SPADETeacher(config, TrainContext(config, torch.device("cpu"), DistInfo(rank=0, world_size=2)))
    assert not method.sync_batchnorm
    assert [record.getMessage() for record in caplog.records if "SyncBatchNorm" in record.getMessage()] == [
        "SyncBatchNorm runs on CUDA only: each of the 2 CPU processes normalises the generator's features over "
        "its own batch"]


# ---------------------------------------------------------------------------------------------- training


def test_step_uses_ttur_updates_g_with_d_frozen_then_d(scenes, tmp_path, monkeypatch):
    method, ctx = build_method(SPADETeacher, spade_config(scenes, tmp_path, vgg19_weights="none"))
    optimizers = method.optimizers()
    assert [group["lr"] for group in optimizers["G"].param_groups] == [1e-4]
    assert [group["lr"] for group in optimizers["D"].param_groups] == [4e-4]
    assert optimizers["G"].defaults["betas"] == optimizers["D"].defaults["betas"] == (0.0, 0.9)
    order = []
    original = ctx.step

    def step(name, loss, *args, **kwargs):
        order.append((name, all(not p.requires_grad for p in method.nets["D"].parameters())))
        return original(name, loss, *args, **kwargs)

    monkeypatch.setattr(ctx, "step", step)
    before = {name: snapshot(net) for name, net in method.nets.items()}
    losses = method.train_step(first_batch(method))
    assert order == [("G", True), ("D", False)]
    assert set(losses) == {"G_GAN", "G_feat", "D_fake", "D_real"}  # no VGG19 weights: no perceptual term
    assert all(torch.isfinite(value) for value in losses.values())
    assert all(not same_weights(before[name], net.state_dict()) for name, net in method.nets.items())
    assert method.vgg_status == "off" and method.objective()["terms"] == {"gan": 1.0, "feature_matching": 10.0}


def test_short_run_exports_what_translate_and_the_importer_load_and_resumes_exactly(scenes, tmp_path, caplog,
                                                                                     capsys):
    config = spade_config(scenes, tmp_path)
    with caplog.at_level(logging.WARNING, logger=METHOD_LOGGER):
        straight = fit(config, SPADETeacher, progress=False)  # 4 images, batch 2: 2 steps per epoch, 4 steps
    notices = [record.getMessage() for record in caplog.records if record.name == METHOD_LOGGER]
    assert len(notices) == 1 and notices[0].startswith("perceptual term off (no VGG19 weights)")
    run = straight.run_dir
    assert straight.step == 4 and set(straight.last_metrics) == {"psnr", "ssim"}  # the val split is validated
    summary = json.loads((run / "summary.json").read_text())
    assert summary["objective"]["notice"] == notices[0] and summary["objective"]["vgg19"] == "absent"
    assert summary["objective"]["lr"] == {"G": 1e-4, "D": 4e-4} and summary["sync_batchnorm"] is False

    latest = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    trained = add_spectral_norm(build_generator("spade", **generator_kwargs(config)))
    trained.load_state_dict(latest["G"])
    exported = load_generator(run)  # the run folder's generator.pt: spectral norm folded, plain BatchNorm
    assert exported.path.name == "generator.pt" and "head_0.conv_0.weight" in exported.model.state_dict()
    imported = load_generator(run / "reference")  # NVlabs' layout and the opt.txt beside it
    assert imported.source == "reference" and imported.arch_kwargs["label_nc"] == 6
    label_map = first_batch(SPADETeacher(config, TrainContext(config, torch.device("cpu"), DistInfo())))["label_map"]
    with torch.no_grad():
        ours = exported.model(label_map)
        torch.testing.assert_close(ours, trained.eval()(label_map), rtol=0, atol=1e-5)
        torch.testing.assert_close(imported.model(label_map), ours, rtol=0, atol=1e-5)
        from_training = load_generator(run / "checkpoints" / "latest.pt")  # spectral norm folded on load
        torch.testing.assert_close(from_training.model(label_map), ours, rtol=0, atol=1e-5)
    assert load_discriminator(run / "discriminator.pt").model.state_dict().keys() == latest["D"].keys()

    out = tmp_path / "translated"
    assert main(["translate", "--ckpt", str(run), "--input", str(scenes / "val" / "labels"), "--instance",
                 str(scenes / "val" / "instances"), "--output", str(out)]) == 0
    assert "at 64x64 with spade" in capsys.readouterr().out and len(list(out.glob("*.png"))) == 1

    interrupted = interrupted_run(SPADETeacher, config, crash_on_call=4)  # last checkpoint: step 3
    fit(config, SPADETeacher, resume=interrupted, progress=False)
    resumed = torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    for name in ("G", "D"):  # spectral-norm vectors and BatchNorm statistics included
        assert same_weights(latest[name], resumed[name]), name


def test_student_channels_train_a_mobile_spade_from_scratch_with_the_same_objective(scenes, tmp_path):
    config = spade_config(scenes, tmp_path, student_channels=(4, 4, 2, 2, 4, 2, 2, 1), epochs=1)
    method, _ = build_method(SPADETeacher, config)
    generator = method.nets["G"]
    assert method.generator_arch == "mobile_spade" and generator.channels == [4, 4, 2, 2, 4, 2, 2, 1]
    assert generator.label_nc == 6 and generator.size == (64, 64) and generator.instance_edges
    assert generator.head_0.conv_0.weight_orig.shape == generator.head_0.conv_0.weight.shape  # spectral_g holds
    run = fit(config, SPADETeacher, progress=False).run_dir
    assert not (run / "reference").exists()  # NVlabs has no mobile SPADE layout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["generator"]["arch"] == "mobile_spade" and summary["objective"]["terms"] == {
        "gan": 1.0, "feature_matching": 10.0}
    exported = load_generator(run)
    assert exported.arch == "mobile_spade" and exported.arch_kwargs["channels"] == [4, 4, 2, 2, 4, 2, 2, 1]
    latest = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["networks"]["G"]
    trained = add_spectral_norm(build_generator("mobile_spade", **exported.arch_kwargs))
    trained.load_state_dict(latest)
    label_map = first_batch(method)["label_map"]
    with torch.no_grad():
        torch.testing.assert_close(exported.model(label_map), trained.eval()(label_map), rtol=0, atol=1e-5)
    with pytest.raises(GanslimError, match=r"a mobile SPADE configuration is 8 positive ints .* got \[4, 4\]"):
        generator_kwargs(spade_config(scenes, tmp_path, student_channels=(4, 4)))
    with pytest.raises(GanslimError, match="drop spade_hidden"):
        spade_config(scenes, tmp_path, student_channels=(4,) * 8, spade_hidden=8)


# ---------------------------------------------------------------------------------------------- mistakes


def test_missing_corrupt_and_mismatching_data_are_one_line(scenes, tmp_path, capsys):
    def error_line(*args: str) -> str:
        assert main(["train", "spade", "--out-dir", str(tmp_path / "runs"), "--no-progress", "--set", "crop_size=64",
                     "--set", "ngf=4", "--set", "ndf=4", "--set", "iterations=1", *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        errors = [line for line in lines if line.startswith("ganslim train: error: ")]
        assert errors == lines[-1:]  # one error line, after the run's start line where it had started
        return errors[0]

    assert "data folder 'nowhere' not found" in error_line("--data", "nowhere", "--set", "label_nc=6")
    broken = tmp_path / "broken"
    for split in ("train", "val"):
        for kind in ("labels", "instances", "images"):
            (broken / split / kind).mkdir(parents=True)
            for path in (scenes / split / kind).iterdir():
                (broken / split / kind / path.name).write_bytes(path.read_bytes())
    label = sorted((broken / "train" / "labels").iterdir())[0]
    label.write_bytes(label.read_bytes()[:60])  # truncated
    line = error_line("--data", str(broken), "--set", "label_nc=6")
    assert f"cannot read image '{label}'" in line and "replace or delete the corrupt file" in line
    (broken / "train" / "images" / label.name).unlink()
    assert f"label map '{label}' has no photo" in error_line("--data", str(broken), "--set", "label_nc=6")
    line = error_line("--data", str(scenes), "--set", "label_nc=3")  # found at the first step
    assert "holds label id" in line and "but the model takes ids 0..2: pass label maps of the model's 3" in line
    runs = sorted((tmp_path / "runs").iterdir())  # only the last mistake, found at its first step, made a folder
    assert len(runs) == 1 and not (runs[0] / "generator.pt").exists()


def test_the_vgg19_flag_belongs_to_esrgan_and_spade(scenes, tmp_path, capsys):
    assert main(["train", "pix2pix", "--data", str(scenes), "--vgg19-weights", "none", "--show-config"]) == 2
    assert ("--vgg19-weights is an option of 'ganslim train esrgan' and 'ganslim train spade', not of pix2pix: "
            "drop it") in capsys.readouterr().err
    assert main(["train", "spade", "--data", str(scenes), "--vgg19-weights", "none", "--arch", "spade_coco",
                 "--show-config"]) == 0
    shown = capsys.readouterr().out
    assert "vgg19_weights: none" in shown and "arch: spade_coco" in shown
