"""GAN Compression for a SPADE teacher: the pipeline picks the mobile SPADE family from the teacher's signature,
distils head_0 / G_middle_1 / up_1 through 1x1 adapters with GauGAN's objective from the inherited discriminator
(ganslim's or NVlabs'), resumes an interrupted stage exactly, and searches (MACs or latency), fine-tunes, exports and
resumes through ``ganslim compress gan-compression`` and its stage commands."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from ganslim.archs import build_discriminator, build_generator
from ganslim.checkpoints import load_generator, save_model
from ganslim.cli import main
from ganslim.compress.spade_space import label_map_size
from ganslim.data import make_builtin
from ganslim.engine import fit
from ganslim.errors import GanslimError
from ganslim.losses import feature_matching_loss, multiscale_gan_loss, pyramid_vgg_loss
from ganslim.measure.profile import count_macs
from ganslim.methods.gan_compression import search as search_module
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.family import RESNET, SPADE, family_of_run
from ganslim.methods.gan_compression.networks import find_teacher_discriminator
from ganslim.methods.gan_compression.scoring import CandidateScorer
from ganslim.methods.gan_compression.spade.distill import SpadeSupernetDistillation
from ganslim.methods.spade.method import discriminate_pairs
from ganslim.nn.vgg import VGG19ReLUFeatures
from helpers import build_method, compress_cli, first_batch, interrupted_run, save_resnet

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_user_vgg")

TEACHER = dict(label_nc=6, ngf=4, crop_size=64)  # the built-in scenes' 6 labels + instance edges, 64x64
DISCRIMINATOR = dict(input_nc=7 + 3, ndf=4, n_layers=4, num_d=2, spectral=True)
CANDIDATES = ((4, 2), (4, 2), (4,), (4, 2), (4, 2), (4, 2), (4,), (4, 2))  # 64 sub-networks


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_builtin("labels2scene", tmp_path_factory.mktemp("data") / "scenes", size=64, count=6)


@pytest.fixture(scope="module")
def spade_teacher(tmp_path_factory):
    """A random tiny SPADE teacher's generator.pt with its multi-scale discriminator.pt beside it."""
    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    teacher = build_generator("spade", **TEACHER).eval()
    save_model(folder / "discriminator.pt", build_discriminator("multiscale", **DISCRIMINATOR), "multiscale",
               DISCRIMINATOR, kind="discriminator")
    return save_model(folder / "generator.pt", teacher, "spade", teacher.arch_kwargs())


def distill_config(scenes, teacher, tmp_path, **overrides) -> DistillConfig:
    return DistillConfig(**{"data": str(scenes), "teacher": str(teacher), "out_dir": str(tmp_path / "runs"),
                            "batch_size": 2, "epochs": 1, "epochs_decay": 0, "sample_every": 0,
                            "candidates": CANDIDATES, **overrides})


def test_the_family_follows_the_teachers_signature(scenes, spade_teacher, tmp_path):
    assert family_of_run(distill_config(scenes, spade_teacher, tmp_path)) is SPADE
    resnet = save_resnet(tmp_path / "resnet.pt", 4)
    assert family_of_run(distill_config(scenes, resnet, tmp_path)) is RESNET
    supernet_only = distill_config(scenes, "", tmp_path, supernet=str(tmp_path / "nowhere"))
    with pytest.raises(GanslimError, match="supernet '.*nowhere' not found"):
        family_of_run(supernet_only)


def test_supernet_stage_distils_three_blocks_from_the_inherited_discriminator(scenes, spade_teacher, tmp_path):
    method, ctx = build_method(SpadeSupernetDistillation, distill_config(scenes, spade_teacher, tmp_path))
    config = method.config
    assert (config.lambda_gan, config.lambda_feat, config.lambda_vgg, config.lambda_distill, config.lambda_recon,
            config.gan_mode) == (1.0, 10.0, 10.0, 10.0, 0.0, "hinge")  # GAN Compression's GauGAN settings
    assert method.student_arch == "super_mobile_spade" and method.student.channels == [4] * 8
    assert method.layers == [0, 2, 4]  # head_0, G_middle_1, up_1
    assert [a.in_channels for a in method.adapters.adapters] == [64, 64, 16]  # student widths at ngf 4
    assert [a.out_channels for a in method.adapters.adapters] == [64, 64, 16]
    assert all(a.kernel_size == (1, 1) for a in method.adapters.adapters)
    inherited = torch.load(spade_teacher.parent / "discriminator.pt", weights_only=True)
    state = method.discriminator.state_dict()
    assert all(torch.equal(state[key], value) for key, value in inherited["state_dict"].items())
    optimizers = method.optimizers()
    assert [g["lr"] for g in optimizers["G"].param_groups] == [1e-4]  # TTUR
    assert [g["lr"] for g in optimizers["D"].param_groups] == [4e-4]
    assert optimizers["G"].defaults["betas"] == optimizers["D"].defaults["betas"] == (0.0, 0.9)

    batch = first_batch(method)
    losses = method.train_step(batch)
    assert set(losses) == {"G_gan", "G_feat", "G_distill", "D_fake", "D_real"}  # no VGG19 weights: no VGG term
    assert all(torch.isfinite(value) for value in losses.values())

    # One configuration's terms, recomputed here: hinge + 10 FM + 10 VGG + 10 sum of MSE(1x1(student), teacher).
    method.vgg = VGG19ReLUFeatures().eval()
    method.discriminator.eval()  # spectral norm's power iteration would move between the two evaluations
    channels = [2, 4, 4, 2, 2, 4, 4, 2]
    label_map, real = batch["A"], batch["B"]
    with torch.no_grad():
        fake, features = method.student.configure(channels).forward_features(label_map, [0, 2, 4])
        _, teacher_features = method.teacher.forward_features(label_map, [0, 2, 4])
        terms = method._student_terms(label_map, real, fake, features, teacher_features)
        pred_fake, pred_real = discriminate_pairs(method.discriminator, label_map, fake, real)
        distill = sum(F.mse_loss(F.conv2d(s, a.weight[:, :s.shape[1]], a.bias), t)
                      for s, a, t in zip(features, method.adapters.adapters, teacher_features))
        expected = {"G_gan": multiscale_gan_loss(method.gan_loss, pred_fake, True, for_discriminator=False),
                    "G_feat": 10 * feature_matching_loss(pred_fake, pred_real),
                    "G_vgg": 10 * pyramid_vgg_loss(method.vgg, fake, real), "G_distill": 10 * distill}
    assert [features[i].shape[1] for i in range(3)] == [32, 32, 16]  # 16 c0, 16 c0, 4 c5: narrower than the adapters
    assert terms.keys() == expected.keys()
    assert all(torch.allclose(terms[key], expected[key]) for key in expected)


cli = compress_cli


def test_pipeline_compresses_a_spade_teacher_resumes_and_exports_what_translate_takes(
        scenes, spade_teacher, tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    common = ["--data", str(scenes), "--teacher", str(spade_teacher), "--out-dir", str(out), "--batch-size", "2",
              "--epochs", "1", "--epochs-decay", "0", "--finetune-epochs", "1", "--finetune-epochs-decay", "0",
              "--size", "64", "--no-progress", "--set", "sample_every=0",
              "--set", "candidates=4,2;4;4;4,2;4;4,2;4;4,2"]
    with pytest.raises(GanslimError, match=r"budget 1M MACs is below the smallest sub-network \(13.2M published\)"):
        cli("gan-compression", *common, "--budget-macs", "1M")
    with pytest.raises(GanslimError, match=r"size 48 does not fit this SuperMobileSPADEGenerator .*: use size 64"):
        cli("gan-compression", *common, "--budget-macs", "20M", "--size", "48")  # --size is the label map's width
    assert not out.exists() or not any(out.iterdir())  # refused before anything was created

    assert cli("gan-compression", *common, "--budget-macs", "20M", "--stop-after", "search") == 0
    run = out / "00000-gan-compression-scenes"
    assert list(json.loads((run / "pipeline.json").read_text())["stages"]) == ["supernet", "search"]
    assert load_generator(run / "00000-gan-compression-supernet-scenes" / "supernet.pt").arch == "super_mobile_spade"

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(SpadeSupernetDistillation, "train_step", must_not_run)
    monkeypatch.setattr(CandidateScorer, "score", must_not_run)
    assert cli("gan-compression", "--resume", str(run), "--no-progress") == 0
    stages = json.loads((run / "pipeline.json").read_text())["stages"]
    assert list(stages) == ["supernet", "search", "finetune", "export"]

    chosen = search_module.read_result(stages["search"]["run_dir"])
    student = load_generator(run)
    assert student.arch == "mobile_spade" and student.model.channels == chosen["channels"]
    assert label_map_size(student.model, 64) == (64, 64)
    macs = count_macs(student.model, torch.zeros(1, 7, 64, 64))
    assert (macs.macs, macs.macs_published) == (chosen["macs"], chosen["macs_published"]) and macs.macs_published <= 2e7
    summary = json.loads((run / "summary.json").read_text())
    assert summary["input"] == "64x64" and summary["teacher"]["arch"] == "spade"
    assert summary["teacher"]["macs_published"] > summary["student"]["macs_published"]
    assert {"psnr", "ssim", "psnr_teacher"} <= set(summary["student"]["holdout"]) and "psnr" in summary["teacher"]["val"]
    assert "MACs published at 64x64" in capsys.readouterr().out

    translated = tmp_path / "translated"
    assert main(["translate", "--ckpt", str(run), "--input", str(scenes / "val" / "labels"), "--instance",
                 str(scenes / "val" / "instances"), "--output", str(translated)]) == 0
    assert sorted(p.name for p in translated.iterdir()) == ["0000.png"]


def test_each_stage_command_takes_the_spade_family_from_the_teacher(scenes, spade_teacher, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("gan-compression-supernet", "--data", str(scenes), "--teacher", str(spade_teacher), "--batch-size", "2",
               "--epochs", "1", "--epochs-decay", "0", "--no-progress", "--set", "sample_every=0",
               "--set", "candidates=4,2;4;4;4,2;4;4,2;4;4,2") == 0
    supernet_run = tmp_path / "runs" / "00000-gan-compression-supernet-scenes"
    assert load_generator(supernet_run / "supernet.pt").arch == "super_mobile_spade"
    assert cli("gan-compression-search", "--supernet", str(supernet_run), "--budget-macs", "15M", "--size", "64",
               "--no-progress") == 0
    search_run = tmp_path / "runs" / "00001-gan-compression-search-scenes"
    chosen = search_module.read_result(search_run)
    assert chosen["macs_published"] <= 15e6

    # A latency budget times each candidate whole (the span predictor is the mobile ResNet's); a stand-in timer.
    def kilo_params(model):
        return sum(p.numel() for p in model.parameters()) / 1e3

    timed = search_module.run_search(search_module.SearchConfig(
        data=str(scenes), teacher=str(spade_teacher), supernet=str(supernet_run), out_dir=str(tmp_path / "timed"),
        batch_size=2, budget_ms=200.0, size=64, candidates=((4, 2), (4,), (4,), (4, 2), (4,), (4, 2), (4,), (4, 2))),
        progress=False, latency=kilo_params)
    assert 1 <= timed.fitting < len(timed.rows) and all(row["latency_ms"] is not None for row in timed.rows)
    assert all("latency_predicted_ms" not in row for row in timed.rows)
    assert all(row["fits"] == (row["latency_ms"] <= 200.0) for row in timed.rows) and timed.best["latency_ms"] <= 200
    assert cli("gan-compression-finetune", "--search", str(search_run), "--epochs", "1", "--epochs-decay", "0",
               "--no-progress") == 0
    finetune_run = tmp_path / "runs" / "00002-gan-compression-finetune-scenes"
    finetuned = load_generator(finetune_run / "generator.pt")
    assert finetuned.arch == "mobile_spade" and finetuned.model.channels == chosen["channels"]
    assert cli("gan-compression-export", "--finetune", str(finetune_run), "--out", "student.pt", "--search",
               str(search_run), "--json") == 0
    assert load_generator(tmp_path / "student.pt").model.channels == chosen["channels"]


def test_an_nvlabs_discriminator_beside_the_teacher_is_inherited_and_a_mismatch_is_one_line(scenes, tmp_path):
    torch.manual_seed(0)
    teacher = build_generator("spade", **TEACHER).eval()
    generator = save_model(tmp_path / "teacher" / "generator.pt", teacher, "spade", teacher.arch_kwargs())
    nvlabs = build_discriminator("multiscale", input_nc=10, ndf=4, n_layers=3, num_d=1, spectral=True)
    torch.save(nvlabs.state_dict(), tmp_path / "teacher" / "latest_net_D.pth")  # NVlabs' layout: a bare state dict
    config = distill_config(scenes, generator, tmp_path)
    path = find_teacher_discriminator(config)
    assert path == tmp_path / "teacher" / "latest_net_D.pth"
    loaded = SPADE.load_discriminator(config, path, teacher)
    assert (loaded.arch, loaded.arch_kwargs) == ("multiscale", {"input_nc": 10, "ndf": 4, "n_layers": 3, "num_d": 1,
                                                                "spectral": True})
    state = loaded.model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in nvlabs.state_dict().items())
    other = build_discriminator("multiscale", input_nc=6, ndf=4)
    torch.save(other.state_dict(), tmp_path / "other_D.pth")
    with pytest.raises(GanslimError, match=r"discriminator '.*other_D.pth' is a multiscale taking 6 channels; a SPADE "
                                           r"teacher's is a multiscale taking 10 \(label map \+ image\)"):
        SPADE.load_discriminator(config, tmp_path / "other_D.pth", teacher)


def test_an_interrupted_supernet_stage_resumes_exactly(scenes, spade_teacher, tmp_path):
    # 5 training images, batch 2: 3 steps per epoch, 6 steps; a checkpoint every 2 steps.
    config = distill_config(scenes, spade_teacher, tmp_path, epochs=2, ckpt_every=2, val_every=0, log_every=1)
    straight = fit(config, SpadeSupernetDistillation, progress=False)
    latest = torch.load(straight.run_dir / "checkpoints" / "latest.pt", weights_only=True)
    interrupted = interrupted_run(SpadeSupernetDistillation, config, crash_on_call=6)  # last checkpoint: step 4
    fit(config, SpadeSupernetDistillation, resume=interrupted, progress=False)
    resumed = torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)
    assert latest["step"] == resumed["step"] == 6
    for name in ("G", "A", "D"):  # supernet, adapters, discriminator (its spectral-norm vectors included)
        assert latest["networks"][name].keys() == resumed["networks"][name].keys()
        assert all(torch.equal(value, resumed["networks"][name][key])
                   for key, value in latest["networks"][name].items()), name
