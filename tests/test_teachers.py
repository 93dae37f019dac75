"""pix2pix and CycleGAN teachers: losses, update order, image pool, exports, resume, and a short real run."""

from __future__ import annotations

import pytest
import torch

from ganslim.checkpoints import load_generator
from ganslim.data import AlignedDataset, make_builtin
from ganslim.engine import DistInfo, TrainContext, fit
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES, GANLoss
from ganslim.methods import COMPRESS, METHODS, TRAIN, methods_of
from ganslim.methods.teachers import CycleGAN, CycleGANConfig, ImagePool, Pix2Pix, Pix2PixConfig
from ganslim.metrics import psnr
from helpers import build_method, first_batch, interrupted_run, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(ngf=4, ndf=4, load_size=32, crop_size=32, batch_size=2, epochs=1, epochs_decay=1, log_every=2,
            sample_every=0, val_every=0, ckpt_every=0)


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    return make_builtin("shapes2render", tmp_path_factory.mktemp("data") / "shapes", size=32, count=16)


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    return make_builtin("flat2striped", tmp_path_factory.mktemp("data") / "stripes", size=32, count=8)


def pix2pix_config(data, tmp_path, **overrides) -> Pix2PixConfig:
    values = dict(TINY, data=str(data), out_dir=str(tmp_path / "runs"), generator="unet", num_downs=5)
    return Pix2PixConfig(**{**values, **overrides})


def cyclegan_config(data, tmp_path, **overrides) -> CycleGANConfig:
    values = dict(TINY, data=str(data), out_dir=str(tmp_path / "runs"), generator="resnet", n_blocks=1,
                  pool_size=3)
    return CycleGANConfig(**{**values, **overrides})


def changed(before: dict, module) -> bool:
    return any(not torch.equal(before[key], value) for key, value in module.state_dict().items()
               if value.is_floating_point())


def spy_generator_step(monkeypatch, ctx, discriminators):
    """Record, during the "G" update, whether every D is frozen and whether its gradients moved."""
    seen = {}
    original = ctx.step

    def step(name, loss):
        if name == "G":
            seen["frozen"] = all(not p.requires_grad for d in discriminators for p in d.parameters())
            grads = [None if p.grad is None else p.grad.clone() for d in discriminators for p in d.parameters()]
            original(name, loss)
            after = [p.grad for d in discriminators for p in d.parameters()]
            seen["d_grads_untouched"] = all((a is None and b is None) or (a is not None and b is not None and
                                                                           torch.equal(a, b))
                                            for a, b in zip(grads, after))
        else:
            original(name, loss)

    monkeypatch.setattr(ctx, "step", step)
    return seen


# ---------------------------------------------------------------------------------------------- losses


def test_gan_losses_match_their_formulas():
    logits = torch.tensor([[-1.0, 0.0], [2.0, 0.5]])
    assert GANLoss("vanilla")(torch.zeros(3), True) == pytest.approx(torch.log(torch.tensor(2.0)).item())
    expected_bce = torch.nn.functional.softplus(-logits).mean()
    assert GANLoss("vanilla")(logits, True) == pytest.approx(expected_bce.item())
    assert GANLoss("lsgan")(logits, True) == pytest.approx(((logits - 1) ** 2).mean().item())
    assert GANLoss("lsgan")(logits, False) == pytest.approx((logits**2).mean().item())
    hinge = GANLoss("hinge")
    assert hinge(logits, True) == pytest.approx(torch.relu(1 - logits).mean().item())
    assert hinge(logits, False) == pytest.approx(torch.relu(1 + logits).mean().item())
    assert hinge(logits, True, for_discriminator=False) == pytest.approx(-logits.mean().item())
    with pytest.raises(GanslimError, match="choose one of: vanilla, lsgan, hinge"):
        GANLoss("wgan")


# ---------------------------------------------------------------------------------------------- pix2pix


def test_pix2pix_defaults_are_the_reference_ones():
    config = Pix2PixConfig(data="x")
    assert (config.generator, config.discriminator, config.norm, config.dropout, config.gan_mode) == (
        "unet_256", "basic", "batch", True, "vanilla")
    assert (config.lambda_l1, config.lr, config.beta1, config.ngf, config.ndf) == (100.0, 2e-4, 0.5, 64, 64)
    assert (config.load_size, config.crop_size, config.batch_size, config.epochs, config.epochs_decay) == (
        286, 256, 1, 100, 100)
    assert methods_of(TRAIN).names() == ["cyclegan", "encoder", "esrgan", "pix2pix", "spade", "stylegan2"]
    assert METHODS.get("pix2pix").load().Config is Pix2PixConfig
    assert METHODS.get("cyclegan").load().Config is CycleGANConfig


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_loads_its_config_and_run(name):
    from ganslim.config import TrainConfig

    entry = METHODS.get(name)
    runner = entry.load()
    assert entry.command in (TRAIN, COMPRESS) and issubclass(runner.Config, TrainConfig) and callable(runner.run)
    assert name in methods_of(entry.command).names()


@pytest.mark.parametrize("gan_mode", GAN_MODES)
def test_pix2pix_step_updates_both_players_with_d_frozen_for_g(paired, tmp_path, monkeypatch, gan_mode):
    method, ctx = build_method(Pix2Pix, pix2pix_config(paired, tmp_path, gan_mode=gan_mode))
    nets = method.networks()
    assert set(nets) == {"G", "D"} and nets["D"].model[0].in_channels == 6  # D sees (A, B) pairs
    before = {name: snapshot(net) for name, net in nets.items()}
    seen = spy_generator_step(monkeypatch, ctx, [nets["D"]])
    losses = method.train_step(first_batch(method))
    assert set(losses) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    assert all(torch.isfinite(torch.as_tensor(value)) for value in losses.values())
    assert seen == {"frozen": True, "d_grads_untouched": True}
    assert all(p.requires_grad for p in nets["D"].parameters())  # unfrozen again afterwards
    assert changed(before["G"], nets["G"]) and changed(before["D"], nets["D"])
    assert losses["G_L1"] > 1.0  # lambda_l1 = 100 times an L1 distance of an untrained G


def test_pix2pix_validation_reports_psnr_ssim(paired, tmp_path):
    method, _ = build_method(Pix2Pix, pix2pix_config(paired, tmp_path))
    val = method.val_dataset()
    assert len(val) == 2 and val.split == "val"
    batch = torch.utils.data.default_collate([val[i] for i in range(len(val))])
    method.networks()["G"].eval()
    with torch.no_grad():
        metrics = method.validate([batch])
        expected = psnr(method.networks()["G"](batch["A"]), batch["B"]).mean()
    assert set(metrics) == {"psnr", "ssim"} and metrics["psnr"] == pytest.approx(float(expected))
    assert -1.0 <= metrics["ssim"] <= 1.0


def test_teacher_config_errors(paired, tmp_path):
    with pytest.raises(GanslimError, match="crop_size 32 does not fit network 'G' .* multiples of 256"):
        fit(Pix2PixConfig(data=str(paired), crop_size=32, load_size=32, out_dir=str(tmp_path / "runs"),
                          device="cpu"), Pix2Pix, progress=False)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(GanslimError, match="no effect on the 'unet_256' generator"):
        Pix2PixConfig(data="x", n_blocks=3)
    with pytest.raises(GanslimError, match="did you mean 'resnet_9blocks'"):
        Pix2PixConfig(data="x", generator="resnet_9block")
    with pytest.raises(GanslimError, match="lambda_identity=0"):
        CycleGANConfig(data="x", input_nc=1)
    with pytest.raises(GanslimError, match="trainA"):  # an aligned folder given to CycleGAN
        fit(cyclegan_config(paired, tmp_path), CycleGAN, progress=False)


# ---------------------------------------------------------------------------------------------- CycleGAN


def test_cyclegan_defaults_are_the_reference_ones():
    config = CycleGANConfig(data="x")
    assert (config.generator, config.norm, config.dropout, config.gan_mode, config.pool_size) == (
        "resnet_9blocks", "instance", False, "lsgan", 50)
    assert (config.lambda_a, config.lambda_b, config.lambda_identity, config.lr, config.beta1) == (
        10.0, 10.0, 0.5, 2e-4, 0.5)


def test_cyclegan_step_updates_four_networks_with_ds_frozen_for_gs(unpaired, tmp_path, monkeypatch):
    method, ctx = build_method(CycleGAN, cyclegan_config(unpaired, tmp_path))
    nets = method.networks()
    before = {name: snapshot(net) for name, net in nets.items()}
    seen = spy_generator_step(monkeypatch, ctx, [nets["D_A"], nets["D_B"]])
    losses = method.train_step(first_batch(method))
    assert set(losses) == {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}
    assert all(torch.isfinite(value) for value in losses.values())
    assert seen == {"frozen": True, "d_grads_untouched": True}
    assert all(changed(before[name], net) for name, net in nets.items())
    assert [len(pool.images) for pool in method.pools.values()] == [2, 2]
    assert set(ctx.scalers) == {"G", "D"} and len(method.optimizers()["G"].param_groups[0]["params"]) == len(
        list(nets["G_A"].parameters())) + len(list(nets["G_B"].parameters()))


def test_cyclegan_without_identity_loss(unpaired, tmp_path):
    method, _ = build_method(CycleGAN, cyclegan_config(unpaired, tmp_path, lambda_identity=0.0))
    assert set(method.train_step(first_batch(method))) == {"G_A", "G_B", "cycle_A", "cycle_B", "D_A", "D_B"}


def test_image_pool_mixes_old_fakes_and_round_trips():
    pool = ImagePool(3, torch.Generator().manual_seed(0))
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool.images) == 3  # filling: returned as given
    state = pool.state_dict()
    newer = torch.arange(10.0, 110.0).view(100, 1, 1, 1)
    out = pool.query(newer)
    from_pool = [v for v in out.flatten().tolist() if v < 10]
    assert 0 < len(from_pool) <= 3 and 25 < (out.flatten() >= 10).sum() < 100  # about half come from the pool
    assert sorted(t.item() for t in pool.images) != [0.0, 1.0, 2.0]
    replay = ImagePool(3, torch.Generator())
    replay.load_state_dict(state, torch.device("cpu"))
    assert torch.equal(replay.query(newer), out)
    assert torch.equal(ImagePool(0, torch.Generator()).query(first), first)


def test_cyclegan_run_exports_both_layouts_and_resumes_exactly(unpaired, tmp_path):
    config = cyclegan_config(unpaired, tmp_path, ckpt_every=3, sample_every=4)
    straight = fit(config, CycleGAN, progress=False)  # 8 images, batch 2: 4 steps/epoch, 8 steps
    run = straight.run_dir
    assert straight.best is None and straight.step == 8
    assert "; no validation metric: the models are the final weights; run folder" in straight.summary()
    for name in ("generator_A.pt", "generator_B.pt", "discriminator_A.pt", "discriminator_B.pt"):
        assert (run / name).is_file()
    sample = torch.rand(1, 3, 32, 32) * 2 - 1
    for side in "AB":
        ours = load_generator(run / f"generator_{side}.pt")
        reference_file = run / "reference" / f"latest_net_G_{side}.pth"
        plain = torch.load(reference_file, weights_only=True)
        assert all(isinstance(value, torch.Tensor) for value in plain.values())
        reference = load_generator(reference_file, arch="resnet", n_blocks=1, ngf=4, norm="instance")
        assert reference.source == "reference" and ours.arch == "resnet"
        with torch.no_grad():
            assert torch.equal(ours.model(sample), reference.model(sample))
    for side in "AB":
        plain = torch.load(run / "reference" / f"latest_net_D_{side}.pth", weights_only=True)
        assert plain.keys() == CycleGAN(config, TrainContext(config, torch.device("cpu"), DistInfo())
                                        ).networks()[f"D_{side}"].state_dict().keys()
    assert (run / "samples" / "step_00000004.png").is_file()

    interrupted = interrupted_run(CycleGAN, config, crash_on_call=5)  # last checkpoint: step 3
    fit(config, CycleGAN, resume=interrupted, progress=False)
    a = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    b = torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)


# ---------------------------------------------------------------------------------------------- a short real run


@pytest.mark.slow
def test_pix2pix_short_run_beats_identity_and_a_tiny_generator_on_val_psnr(paired, tmp_path):
    def train(ngf: int):  # 16 images / batch 4 = 4 steps per epoch, 36 steps
        config = pix2pix_config(paired, tmp_path, ngf=ngf, ndf=8, batch_size=4, lr=1e-3, epochs=8,
                                epochs_decay=1, val_every=16)
        return fit(config, Pix2Pix, progress=False)

    teacher, tiny = train(ngf=16), train(ngf=2)
    val = AlignedDataset(paired, "val", load_size=32, crop_size=32, flip=False)
    batch = torch.utils.data.default_collate([val[i] for i in range(len(val))])
    identity = float(psnr(batch["A"], batch["B"]).mean())
    assert teacher.best["metric"] == "psnr" and teacher.best["value"] > identity + 1.5  # measured: 12.8 vs 9.2 dB
    assert teacher.best["value"] > tiny.best["value"] + 0.5  # measured: 12.8 vs 11.1 dB
    # the exported generator is the best checkpoint, and reproduces its score
    loaded = load_generator(teacher.run_dir / "generator.pt")
    assert loaded.arch == "unet" and loaded.arch_kwargs["ngf"] == 16
    with torch.no_grad():
        score = float(psnr(loaded.model(batch["A"]), batch["B"]).mean())
    assert score == pytest.approx(teacher.best["value"], abs=1e-4)
    assert (teacher.run_dir / "reference" / "latest_net_G.pth").is_file()
