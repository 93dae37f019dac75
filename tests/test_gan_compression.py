"""GAN Compression distillation and the all-stages pipeline: paired / unpaired losses, distilled layers, the
teacher's discriminator, sandwich sampling, fine-tune parity with the supernet, and resume between stages."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganslim.apps.translate import translate_files
from ganslim.archs import ResnetGenerator, build_discriminator, build_generator, init_weights
from ganslim.checkpoints import load_generator, save_model
from ganslim.compress.search import format_macs
from ganslim.config import read_config_file
from ganslim.data import holdout_indices, make_builtin
from ganslim.engine import DistInfo, RunLock, TrainContext, fit
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs
from ganslim.methods.gan_compression import scoring
from ganslim.methods.gan_compression import search as search_module
from ganslim.methods.gan_compression.config import DistillConfig, resolve_defaults
from ganslim.methods.gan_compression.data import training_items, validation_items
from ganslim.methods.gan_compression.distill import FinetuneDistillation, SupernetDistillation
from ganslim.methods.gan_compression.export import summary_table
from ganslim.methods.gan_compression.inherit import Inherited
from ganslim.methods.gan_compression.networks import distill_layers, load_teacher, student_kwargs
from ganslim.methods.gan_compression.pipeline import PipelineResult
from ganslim.methods.gan_compression.scoring import CandidateScorer
from ganslim.methods.gan_compression.search import SearchConfig, run_search
from ganslim.metrics import WEIGHTS_ENV_VAR
from helpers import assert_rebuilds_like_export, compress_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(load_size=32, crop_size=32, batch_size=2, epochs=1, epochs_decay=0, log_every=1, sample_every=0,
            val_every=0, ckpt_every=0)
TEACHER = dict(input_nc=3, output_nc=3, ngf=8, n_blocks=9)


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    return make_builtin("shapes2render", tmp_path_factory.mktemp("data") / "shapes", size=32, count=10)


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    return make_builtin("flat2striped", tmp_path_factory.mktemp("data") / "stripes", size=32, count=6)


@pytest.fixture(scope="module")
def pix2pix_teacher(tmp_path_factory):
    """An (untrained) batch-norm ResNet teacher and its conditional discriminator, as ganslim files."""
    folder = tmp_path_factory.mktemp("pix2pix_teacher")
    torch.manual_seed(1)
    kwargs = dict(TEACHER, norm="batch")
    save_model(folder / "generator.pt", init_weights(build_generator("resnet", **kwargs)), "resnet", kwargs)
    d_kwargs = dict(input_nc=6, ndf=8, norm="batch")
    save_model(folder / "discriminator.pt", init_weights(build_discriminator("basic", **d_kwargs)), "basic",
               d_kwargs, kind="discriminator")
    return folder / "generator.pt"


@pytest.fixture(scope="module")
def cyclegan_teacher(tmp_path_factory):
    """An instance-norm ResNet G_A and D_A saved as the reference CycleGAN saves them (plain state dicts)."""
    folder = tmp_path_factory.mktemp("cyclegan_teacher")
    torch.manual_seed(2)
    generator = init_weights(build_generator("resnet", **TEACHER, norm="instance"))
    discriminator = init_weights(build_discriminator("basic", input_nc=3, ndf=8, norm="instance"))
    torch.save(generator.state_dict(), folder / "latest_net_G_A.pth")
    torch.save(discriminator.state_dict(), folder / "latest_net_D_A.pth")
    return folder / "latest_net_G_A.pth"


@pytest.fixture(scope="module")
def unet_teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unet_teacher")
    torch.manual_seed(3)
    kwargs = dict(input_nc=3, output_nc=3, ngf=8, num_downs=5, norm="batch")
    return save_model(folder / "generator.pt", init_weights(build_generator("unet", **kwargs)), "unet", kwargs)


def distill_config(data, teacher, tmp_path, **overrides) -> DistillConfig:
    return DistillConfig(**{**TINY, "data": str(data), "teacher": str(teacher), "out_dir": str(tmp_path / "runs"),
                            **overrides})


def build(method_cls, config):
    torch.manual_seed(0)
    ctx = TrainContext(config, torch.device("cpu"), DistInfo())
    method = method_cls(config, ctx)
    ctx.bind_optimizers(method.optimizers())
    return method


def first_batch(method, size=2) -> dict:
    dataset = method.train_dataset()
    return torch.utils.data.default_collate([dataset[i] for i in range(size)])


def record_tap(method) -> list:
    """Capture each student forward of a step: (configs, [(fake, features)]) with adapters as they were."""
    seen = []
    tap = method.tap

    def spy(image, configs=(None,)):
        adapters = copy.deepcopy(method.adapters)
        results = tap(image, configs)
        seen.append((list(configs), [(fake.detach(), [f.detach() for f in feats]) for fake, feats in results],
                     adapters))
        return results

    method.tap = spy
    return seen


# ---------------------------------------------------------------------------------------------- configuration


def test_paper_defaults_follow_the_data(paired, unpaired):
    pix2pix = resolve_defaults(DistillConfig(data=str(paired)))
    assert (pix2pix.lambda_recon, pix2pix.lambda_distill, pix2pix.gan_mode) == (100.0, 1.0, "hinge")
    cyclegan = resolve_defaults(DistillConfig(data=str(unpaired)))
    assert (cyclegan.lambda_recon, cyclegan.lambda_distill, cyclegan.gan_mode) == (10.0, 0.01, "lsgan")
    chosen = resolve_defaults(DistillConfig(data=str(paired), lambda_recon=5.0, gan_mode="vanilla"))
    assert (chosen.lambda_recon, chosen.lambda_distill, chosen.gan_mode) == (5.0, 1.0, "vanilla")
    with pytest.raises(GanslimError, match="lambda_recon"):
        DistillConfig(lambda_recon=-0.5)
    with pytest.raises(GanslimError, match="channel_ratios"):
        DistillConfig(channel_ratios="1,2")


def test_held_out_training_images_are_never_trained_on(paired, unpaired, tmp_path):
    assert holdout_indices(10) == [0] and holdout_indices(40) == [0, 10, 20, 30]
    assert holdout_indices(1000, 0)[:3] == [0, 10, 20] and len(holdout_indices(5000)) == 100
    assert holdout_indices(3, 5) == [0, 1]  # at least one image is left to train on
    config = distill_config(paired, "x", tmp_path, holdout_images=3)
    train, val = training_items(config), validation_items(config)
    held = {val.datasets[0][i]["A_path"] for i in range(3)}
    assert len(train) == 7 and held.isdisjoint(train.dataset.paths[i] for i in train.indices)
    assert [val[i]["split"] for i in range(len(val))] == ["holdout"] * 3 + ["val"]  # then the val/ split
    unpaired_train = training_items(distill_config(unpaired, "x", tmp_path))
    assert len(unpaired_train) == 5 and 0 not in unpaired_train.indices


def test_distilled_layers_are_the_papers_or_none():
    student = build_generator("super_mobile_resnet", ngf=8, n_blocks=9)
    assert distill_layers(ResnetGenerator(ngf=8, n_blocks=9), student) == [9, 12, 15, 18]  # blocks 3, 6, 9
    six = build_generator("super_mobile_resnet", ngf=8, n_blocks=6)
    assert distill_layers(ResnetGenerator(ngf=8, n_blocks=6), six) == [9, 11, 13, 15]  # blocks 2, 4, 6
    assert distill_layers(ResnetGenerator(ngf=8, n_blocks=6), student) == []
    assert distill_layers(build_generator("unet", ngf=8, num_downs=5), student) == []


# ---------------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("kind", ["paired", "unpaired"])
def test_loss_terms_reconstruct_the_ground_truth_or_the_teacher(kind, paired, unpaired, pix2pix_teacher,
                                                                 cyclegan_teacher, tmp_path):
    data, teacher = (paired, pix2pix_teacher) if kind == "paired" else (unpaired, cyclegan_teacher)
    method = build(SupernetDistillation, distill_config(data, teacher, tmp_path))
    config = method.config
    assert method.layers == [9, 12, 15, 18] and set(method.networks()) == {"G", "A", "D"}
    teacher_before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    seen = record_tap(method)
    batch = first_batch(method)
    losses = method.train_step(batch)
    assert set(losses) == {"G_gan", "G_recon", "G_distill", "D_real", "D_fake"}

    (configs, [(fake, features)], adapters), = seen
    assert len(configs) == 1 and method.space.validate(configs[0]) == configs[0]
    with torch.no_grad():
        teacher_out, teacher_features = method.teacher.forward_features(batch["A"], method.layers)
        ground_truth = config.lambda_recon * F.l1_loss(fake, batch["B"])
        fidelity = config.lambda_recon * F.l1_loss(fake, teacher_out)
        distill = config.lambda_distill * adapters(features, teacher_features)
    expected, other = (ground_truth, fidelity) if kind == "paired" else (fidelity, ground_truth)
    assert float(losses["G_recon"]) == pytest.approx(float(expected), rel=1e-5)
    assert abs(float(losses["G_recon"]) - float(other)) > 1e-3
    assert float(losses["G_distill"]) == pytest.approx(float(distill), rel=1e-5) and float(distill) > 0
    # the teacher is frozen: eval mode, no gradients, unchanged weights
    assert not method.teacher.training and not any(p.requires_grad for p in method.teacher.parameters())
    assert all(torch.equal(teacher_before[k], v) for k, v in method.teacher.state_dict().items())


def test_a_unet_teacher_is_distilled_at_the_output_only(paired, unet_teacher, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        method = build(SupernetDistillation, distill_config(paired, unet_teacher, tmp_path, student_ngf=8))
    assert method.layers == [] and method.adapters is None and set(method.networks()) == {"G", "D"}
    assert method.student.n_blocks == 9 and method.student.channels[0] == 8
    warnings = [r for r in caplog.records if "output only" in r.getMessage()]
    assert len(warnings) == 1 and "unet" in warnings[0].getMessage()
    assert set(method.train_step(first_batch(method))) == {"G_gan", "G_recon", "D_real", "D_fake"}


def test_the_discriminator_starts_from_the_teachers(paired, unpaired, pix2pix_teacher, cyclegan_teacher, tmp_path):
    for data, teacher, reference in ((paired, pix2pix_teacher, "discriminator.pt"),
                                     (unpaired, cyclegan_teacher, "latest_net_D_A.pth")):
        from ganslim.checkpoints import load_discriminator

        expected = load_discriminator(teacher.parent / reference).model.state_dict()
        method = build(SupernetDistillation, distill_config(data, teacher, tmp_path))
        got = method.networks()["D"].state_dict()
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
        fresh = build(SupernetDistillation, distill_config(data, teacher, tmp_path, teacher_discriminator="none"))
        weights = fresh.networks()["D"].state_dict()
        assert not torch.equal(weights["model.0.weight"], expected["model.0.weight"])
    with pytest.raises(GanslimError, match="takes 3 channels but judges .* of 6 channels"):
        build(SupernetDistillation, distill_config(paired, pix2pix_teacher, tmp_path,
                                                   teacher_discriminator=str(cyclegan_teacher.parent /
                                                                             "latest_net_D_A.pth")))


def test_sandwich_sampling_trains_largest_smallest_and_a_random_one(paired, pix2pix_teacher, tmp_path):
    method = build(SupernetDistillation, distill_config(paired, pix2pix_teacher, tmp_path, sampling="sandwich"))
    twin = build(SupernetDistillation, distill_config(paired, pix2pix_teacher, tmp_path, sampling="sandwich"))
    seen = record_tap(method)
    losses = method.train_step(first_batch(method))
    (configs, results, _), = seen
    space = method.space
    assert configs[:2] == [space.largest(), space.smallest()] and space.validate(configs[2]) == configs[2]
    assert len(results) == 3 and all(torch.isfinite(v) for v in losses.values())
    assert twin._step_configs() == configs  # the same draws in every process (no rank in the seed)
    state = method.extra_state()
    draws = [method._step_configs() for _ in range(3)]
    twin.load_extra_state(state)
    assert [twin._step_configs() for _ in range(3)] == draws  # the draw stream resumes exactly
    assert method.student.active_channels == configs[2]


# ---------------------------------------------------------------------------------------------- stages


def test_supernet_then_finetune_from_its_weights(paired, pix2pix_teacher, tmp_path):
    supernet_run = fit(distill_config(paired, pix2pix_teacher, tmp_path), SupernetDistillation, progress=False)
    run = supernet_run.run_dir
    assert {"supernet", "discriminator", "adapters"} <= set(supernet_run.exported)
    supernet = load_generator(run / "supernet.pt").model
    assert supernet.channels == [8, 16, 32, 32, 32, 32, 16, 8]
    channels = [8, 8, 16, 24, 16, 32, 8, 8]
    config = distill_config(paired, pix2pix_teacher, tmp_path, fixed_channels=channels, supernet=str(run))
    method = build(FinetuneDistillation, config)
    student = method.networks()["G"]
    assert type(student).__name__ == "MobileResnetGenerator" and student.channels == channels
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = supernet.eval().configure(channels)(image)
        assert torch.allclose(student.eval()(image), expected, atol=1e-5)  # starts as the supernet's sub-network
    supernet_adapters = torch.load(run / "adapters.pt", weights_only=True)["state_dict"]
    weight = method.networks()["A"].state_dict()["adapters.0.weight"]
    assert torch.equal(weight, supernet_adapters["adapters.0.weight"][:, : weight.shape[1]])
    # the discriminator continues from the supernet run's, not the teacher's
    d_file = torch.load(run / "discriminator.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(method.networks()["D"].state_dict()[k], d_file[k]) for k in d_file)
    with pytest.raises(GanslimError, match="exceeds the supernet"):
        build(FinetuneDistillation, distill_config(paired, pix2pix_teacher, tmp_path, supernet=str(run),
                                                   fixed_channels=(16, 16, 32, 32, 32, 32, 16, 8)))

    finetuned = fit(config, FinetuneDistillation, progress=False)
    assert finetuned.best["metric"] == "psnr"
    loaded = load_generator(finetuned.run_dir / "generator.pt")
    assert loaded.arch == "mobile_resnet" and loaded.arch_kwargs["channels"] == channels
    assert_rebuilds_like_export(finetuned.run_dir / "checkpoints" / "best.pt", finetuned.run_dir / "generator.pt")
    assert loaded.meta["channels"] == channels and loaded.meta["method"] == "gan-compression-finetune"


def test_unpaired_search_falls_back_to_fidelity_to_the_teacher(unpaired, cyclegan_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(tmp_path / "no-inception.pth"))
    supernet = fit(distill_config(unpaired, cyclegan_teacher, tmp_path), SupernetDistillation, progress=False)
    config = SearchConfig(**{**TINY, "data": str(unpaired), "teacher": str(cyclegan_teacher),
                             "supernet": str(supernet.run_dir), "out_dir": str(tmp_path / "runs"),
                             "budget_macs": "10M", "size": 32, "candidates": "8;16,8;32,16;32,16;32,16;32,16;16;8"})
    result = run_search(config, progress=False)
    assert result.metric == "psnr_teacher" and result.strategy == "exhaustive"
    assert set(result.best["metrics"]) == {"psnr_teacher"} and result.best["score"] > 0


cli = compress_cli


def test_pipeline_stops_after_search_resumes_to_export_and_refuses_impossible_budgets(
        paired, pix2pix_teacher, tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    common = ["--data", str(paired), "--teacher", str(pix2pix_teacher), "--out-dir", str(out), "--batch-size", "2",
              "--epochs", "1", "--epochs-decay", "0", "--finetune-epochs", "1", "--finetune-epochs-decay", "0",
              "--size", "32", "--no-progress", "--set", "load_size=32", "--set", "crop_size=32",
              "--set", "sample_every=0", "--set", "candidates=8;16,8;32,16;32,16;32,16;32,16;16,8;8"]
    with pytest.raises(GanslimError, match=r"budget 1M MACs is below the smallest sub-network \(4.02M published\)"):
        cli("gan-compression", *common, "--budget-macs", "1M")
    assert not out.exists() or not any(out.iterdir())  # refused before anything was created

    assert cli("gan-compression", *common, "--budget-macs", "5M", "--stop-after", "search") == 0
    run = out / "00000-gan-compression-shapes"
    state = json.loads((run / "pipeline.json").read_text())
    assert list(state["stages"]) == ["supernet", "search"] and not (run / "generator.pt").exists()
    assert "resume with --resume" in capsys.readouterr().out

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(SupernetDistillation, "train_step", must_not_run)
    monkeypatch.setattr(CandidateScorer, "score", must_not_run)
    with RunLock(run):  # another process resuming the same run holds its lock
        with pytest.raises(GanslimError, match=f"run folder '{run}' is in use by pid {os.getpid()}"):
            cli("gan-compression", "--resume", str(run), "--no-progress")
    assert json.loads((run / "pipeline.json").read_text()) == state  # nothing was written by the refused one
    with pytest.raises(GanslimError, match=f"'{paired}' is not a run folder \\(no config.yaml\\): pass a folder "
                                           "that 'ganslim compress gan-compression' made"):
        cli("gan-compression", "--resume", str(paired), "--no-progress")
    assert cli("gan-compression", "--resume", str(run), "--no-progress") == 0
    state = json.loads((run / "pipeline.json").read_text())
    assert list(state["stages"]) == ["supernet", "search", "finetune", "export"]
    assert sorted(p.name for p in run.iterdir() if p.name[0].isdigit()) == [
        "00000-gan-compression-supernet-shapes", "00001-gan-compression-search-shapes",
        "00002-gan-compression-finetune-shapes"]

    chosen = search_module.read_result(state["stages"]["search"]["run_dir"])
    student = load_generator(run)  # the run folder's generator.pt, as translate / profile find it
    assert student.arch == "mobile_resnet" and student.model.channels == chosen["channels"]
    macs = count_macs(student.model, torch.zeros(1, 3, 32, 32))
    assert (macs.macs, macs.macs_published) == (chosen["macs"], chosen["macs_published"]) and macs.macs_published <= 5e6
    summary = json.loads((run / "summary.json").read_text())
    assert summary["student"]["macs_published"] == chosen["macs_published"]
    assert summary["teacher"]["macs_published"] > summary["student"]["macs_published"]
    assert {"psnr", "ssim", "psnr_teacher"} <= set(summary["student"]["holdout"])
    assert "psnr" in summary["teacher"]["val"]
    assert "student 8_" in capsys.readouterr().out
    written = translate_files(student.model, paired / "val", tmp_path / "translated", size=32, aligned=True,
                              progress=False)
    assert len(written) == 1 and written[0].is_file()

    # Train once, search again: --supernet reuses the trained supernet under a tighter budget (train_step and
    # the scorer's old results are off limits: the stage is skipped and the new run scores its own candidates).
    monkeypatch.undo()
    monkeypatch.setattr(SupernetDistillation, "train_step", must_not_run)
    supernet_run = state["stages"]["supernet"]["run_dir"]
    with pytest.raises(GanslimError, match="supernet '.*nowhere' not found"):
        cli("gan-compression", *common, "--budget-macs", "4.5M", "--supernet", str(tmp_path / "nowhere"))
    assert sorted(p.name for p in out.iterdir()) == ["00000-gan-compression-shapes"]  # nothing half-written
    # The reused supernet's run gives the data, teacher, sizes and candidates (a pipeline made it, in its folder).
    assert cli("gan-compression", "--supernet", supernet_run, "--out-dir", str(out), "--size", "32",
               "--budget-macs", "4.5M", "--stop-after", "search", "--no-progress") == 0
    again = out / "00001-gan-compression-shapes"
    stages = json.loads((again / "pipeline.json").read_text())["stages"]
    assert stages["supernet"] == {"run_dir": supernet_run, "reused": True}
    assert not any("supernet" in p.name for p in again.iterdir())
    assert search_module.read_result(stages["search"]["run_dir"])["macs_published"] <= 4.5e6


def test_each_stage_command_starts_from_the_stage_before_and_refuses_contradicting_options(
        paired, pix2pix_teacher, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the stages' run folders go to runs/ here: no --out-dir to repeat
    supernet_flags = ["--data", str(paired), "--teacher", str(pix2pix_teacher), "--batch-size", "2", "--no-progress",
                      "--set", "load_size=36", "--set", "crop_size=32", "--set", "sample_every=0",
                      "--set", "holdout_images=3", "--set", "candidates=8;16,8;32,16;32,16;32,16;32,16;16,8;8"]
    assert cli("gan-compression", *supernet_flags, "--budget-ms", "20", "--show-config") == 0
    shown = capsys.readouterr().out
    assert shown.startswith("method: gan-compression\n") and "budget_ms: 20.0" in shown and "finetune_epochs:" in shown
    training = ["--epochs", "1", "--epochs-decay", "0"]
    cli("gan-compression-train", *supernet_flags, *training)  # the supernet stage's alias
    supernet_run = Path("runs/00000-gan-compression-supernet-shapes")

    # Options that contradict the supernet run are refused before anything is made; others may change.
    search = ["gan-compression-search", "--supernet", str(supernet_run), "--budget-macs", "5M", "--size", "32",
              "--no-progress"]
    with pytest.raises(GanslimError, match=r"crop_size=16 contradicts the supernet run '.*' \(crop_size=32\)"):
        cli(*search, "--set", "crop_size=16")
    other = tmp_path / "other"
    shutil.copytree(paired, other)
    with pytest.raises(GanslimError, match=rf"data='{other}' contradicts the supernet run '.*' \(data='{paired}'\)"):
        cli(*search, "--data", str(other))
    with pytest.raises(GanslimError, match="holdout_images=5 contradicts"):
        cli(*search, "--set", "holdout_images=5")
    assert sorted(p.name for p in Path("runs").iterdir()) == [supernet_run.name]
    assert cli(*search, "--data", f"{paired}/", "--batch-size", "1", "--show-config") == 0  # the same folder
    assert "batch_size: 1  #" in capsys.readouterr().out

    # Search with nothing but the supernet run and a budget: data, sizes, held-out images, teacher, widths and
    # batch size all come from its config.yaml.
    cli(*search)
    search_run = Path("runs/00001-gan-compression-search-shapes")
    searched = read_config_file(search_run / "config.yaml")
    assert {key: searched[key] for key in ("data", "teacher", "load_size", "crop_size", "holdout_images",
                                           "batch_size", "candidates")} == {
        "data": str(paired), "teacher": str(pix2pix_teacher), "load_size": 36, "crop_size": 32, "holdout_images": 3,
        "batch_size": 2, "candidates": [[8], [16, 8], [32, 16], [32, 16], [32, 16], [32, 16], [16, 8], [8]]}
    assert searched["out_dir"] == "runs" and searched["supernet"] == str(supernet_run)
    chosen = search_module.read_result(search_run)

    # Fine-tune with nothing but the search run (and a training length, which is each stage's own).
    with pytest.raises(GanslimError, match=r"fixed_channels=\(8, 8, 8, 8, 8, 8, 8, 8\) contradicts the search run"):
        cli("gan-compression-finetune", "--search", str(search_run), "--set", "fixed_channels=8,8,8,8,8,8,8,8")
    cli("gan-compression-finetune", "--search", str(search_run), *training, "--no-progress")
    finetune_run = Path("runs/00002-gan-compression-finetune-shapes")
    tuned = read_config_file(finetune_run / "config.yaml")
    assert (tuned["crop_size"], tuned["holdout_images"], tuned["teacher"]) == (32, 3, str(pix2pix_teacher))
    assert tuned["fixed_channels"] == chosen["channels"] and tuned["supernet"] == chosen["supernet"]
    assert load_generator(finetune_run).model.channels == chosen["channels"]

    capsys.readouterr()
    cli("gan-compression-export", "--finetune", str(finetune_run), "--search", str(search_run),
        "--out", str(tmp_path / "student.pt"))
    lines = capsys.readouterr().out.splitlines()
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip()) for line in lines[1:-1])}
    teacher_params = sum(p.numel() for p in load_generator(pix2pix_teacher).model.parameters())
    assert lines[0] == "teacher vs student (resnet teacher):" and lines[-1] == f"student: {tmp_path / 'student.pt'}"
    assert list(rows) == ["params", "MACs true @32", "MACs published @32", "held-out PSNR", "held-out SSIM",
                          "val PSNR", "val SSIM"]
    assert rows["params"][0] == f"{teacher_params / 1e6:.3f} M"
    assert rows["MACs published @32"][1] == format_macs(chosen["macs_published"])
    assert rows["held-out PSNR"][1].endswith(" dB") and rows["held-out PSNR"][2].startswith(("+", "-"))
    cli("gan-compression-export", "--finetune", str(finetune_run), "--search", str(search_run),
        "--out", str(tmp_path / "student.pt"), "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["student"]["macs_published"] == chosen["macs_published"] and summary["size"] == 32
    assert load_generator(tmp_path / "student.pt").meta["search"]["score"] == chosen["score"]
    with pytest.raises(GanslimError, match="either --channels or --search"):
        cli("gan-compression-finetune", "--search", str(search_run), "--channels", "8,8,16,16,16,16,8,8")


def test_a_recorded_path_that_moved_must_be_given_again(paired, tmp_path):
    inherited = Inherited("the supernet run 'r'", {}, {"data": "gone/shapes", "crop_size": 32})
    with pytest.raises(GanslimError, match=r"data 'gone/shapes' of the supernet run 'r' is not found from here.*"
                                           r"pass --data"):
        inherited.check(SearchConfig(data="gone/shapes", crop_size=32))
    inherited.check(SearchConfig(data=str(paired), crop_size=32))  # where it lives now: accepted
    with pytest.raises(GanslimError, match=r"crop_size=16 contradicts the supernet run 'r' \(crop_size=32\)"):
        inherited.check(SearchConfig(data=str(paired), crop_size=16))


def test_a_supernet_without_its_run_folder_needs_the_data_named(tmp_path, pix2pix_teacher):
    net = init_weights(build_generator("super_mobile_resnet", ngf=8, norm="batch", n_blocks=9))
    lone = save_model(tmp_path / "copied" / "supernet.pt", net, "super_mobile_resnet", net.arch_kwargs())
    with pytest.raises(GanslimError, match=r"^no dataset given: pass --data DIR"):
        cli("gan-compression-search", "--supernet", str(lone), "--teacher", str(pix2pix_teacher), "--budget-macs",
            "5M", "--no-progress")


def test_unpaired_summary_says_the_student_is_scored_against_the_teacher():
    summary = {"size": 256,
               "student": {"params": 91_000, "macs": 1.0e9, "macs_published": 1.25e9, "channels": [8] * 8,
                           "file": "student.pt", "holdout": {"psnr_teacher": 30.0, "psnr": 30.0}, "val": {}},
               "teacher": {"file": "latest_net_G_A.pth", "arch": "resnet", "params": 11_378_000, "macs": 49.55e9,
                           "macs_published": 56.8e9}}
    line = PipelineResult(Path("runs/00004-gan-compression-h2z"), {}, summary).summary()
    assert "nan" not in line and ("held-out psnr to the teacher's outputs 30.00 dB (unpaired data: no ground truth "
                                  "to score the teacher)") in line
    lines = summary_table(summary)
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip()) for line in lines[1:-2])}
    assert rows == {"params": ["11.378 M", "0.091 M", "125.0x fewer"],
                    "MACs true @256": ["49.5G", "1G", "49.5x fewer"],
                    "MACs published @256": ["56.8G", "1.25G", "45.4x fewer"],
                    "held-out PSNR to the teacher": ["-", "30.00 dB"]}
    assert lines[-2].startswith("  (unpaired data: no ground truth")


def test_unpaired_candidates_are_scored_by_fid_when_inception_is_available(unpaired, cyclegan_teacher, tmp_path,
                                                                           monkeypatch):
    class MeanColour(torch.nn.Module):  # a stand-in feature extractor: uint8 (N, 3, H, W) -> (N, 3)
        def forward(self, images):
            return images.float().mean(dim=(2, 3)) + torch.arange(3.0)

    monkeypatch.setattr(scoring, "load_inception", lambda path: MeanColour())
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"stands in for the weights file, which the stand-in extractor does not read")
    net = init_weights(build_generator("super_mobile_resnet", ngf=8, norm="instance", n_blocks=9))
    config = SearchConfig(**{**TINY, "data": str(unpaired), "teacher": str(cyclegan_teacher), "budget_macs": "10M",
                             "holdout_images": 2, "inception_weights": str(weights)})
    scorer, metric = scoring.build_scorer(config, net, torch.device("cpu"))
    assert metric == "fid" and scorer.real_features.shape == (6, 3)  # every training B image once
    metrics = scorer.score(scorer.compact([8, 8, 16, 16, 16, 16, 8, 8]))
    assert set(metrics) == {"psnr_teacher", "fid"} and metrics["fid"] >= 0
    missing = dataclasses.replace(config, inception_weights=str(tmp_path / "nowhere.pth"), metric="fid")
    with pytest.raises(GanslimError, match=r"^--inception-weights '.*nowhere.pth' not found: point it at "):
        scoring.build_scorer(missing, net, torch.device("cpu"))
    with pytest.raises(GanslimError, match="needs ground truth"):
        scoring.build_scorer(SearchConfig(**{**TINY, "data": str(unpaired), "metric": "psnr"}), net,
                             torch.device("cpu"))


@pytest.mark.parametrize("content", [b"PK\x03\x04 cut short", "pickled object"])
def test_a_corrupt_adapters_file_in_the_supernet_folder_is_one_line(paired, pix2pix_teacher, tmp_path, content):
    config = distill_config(paired, pix2pix_teacher, tmp_path)
    teacher = load_teacher(config, torch.device("cpu"))
    folder = tmp_path / "supernet_run"
    supernet = build_generator("super_mobile_resnet", **student_kwargs(config, teacher))
    save_model(folder / "supernet.pt", supernet, "super_mobile_resnet", supernet.arch_kwargs())
    if isinstance(content, bytes):
        (folder / "adapters.pt").write_bytes(content)
    else:
        torch.save({"format": "ganslim-adapters", "layers": argparse.Namespace()}, folder / "adapters.pt")
    finetune = distill_config(paired, pix2pix_teacher, tmp_path, supernet=str(folder),
                              fixed_channels=(8, 8, 16, 16, 16, 16, 8, 8))
    with pytest.raises(GanslimError) as error:
        build(FinetuneDistillation, finetune)
    message = str(error.value)
    assert str(folder / "adapters.pt") in message and "\n" not in message and "weights_only" not in message


def test_pipeline_checks_images_and_teacher_discriminator_before_creating_its_run_folder(
        paired, pix2pix_teacher, tmp_path):
    out = tmp_path / "runs"
    common = ["--teacher", str(pix2pix_teacher), "--out-dir", str(out), "--budget-macs", "5M", "--no-progress",
              "--set", "load_size=32", "--set", "crop_size=32"]
    damaged = tmp_path / "damaged"
    shutil.copytree(paired, damaged)
    (damaged / "train" / "0003.png").write_bytes(b"not an image")
    with pytest.raises(GanslimError, match="0003.png"):
        cli("gan-compression", "--data", str(damaged), *common)
    three_channels = tmp_path / "d3.pt"
    save_model(three_channels, build_discriminator("basic", input_nc=3, ndf=8), "basic", {"input_nc": 3, "ndf": 8},
               kind="discriminator")
    (tmp_path / "garbage.pt").write_bytes(b"garbage")
    for discriminator, words in ((tmp_path / "missing.pt", "not found"), (tmp_path / "garbage.pt", "cannot read"),
                                 (three_channels, "takes 3 channels")):
        with pytest.raises(GanslimError, match=words):
            cli("gan-compression", "--data", str(paired), *common, "--teacher-discriminator", str(discriminator))
    assert not out.exists(), "nothing may be created before the checks"


def test_a_size_the_frozen_teacher_cannot_take_is_refused_before_a_run_folder(paired, unet_teacher, tmp_path):
    config = distill_config(paired, unet_teacher, tmp_path, load_size=48, crop_size=48)  # unet 5 downs: x32
    with pytest.raises(GanslimError, match="crop_size 48 does not fit network 'teacher' .* multiples of 32"):
        fit(config, SupernetDistillation, progress=False)
    assert not (tmp_path / "runs").exists()
