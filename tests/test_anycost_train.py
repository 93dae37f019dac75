"""`ganslim compress anycost`: the consistency loss and the reals' pyramid against hand computations, the per-step
draws (sides, configurations, codes) as a function of (seed, step), what each stage feeds G and D, the frozen
teacher, the exports, bit-exact resume within a stage and across the stage boundary, two processes against one,
and the one-line refusals that leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganslim.archs import build_discriminator, build_generator
from ganslim.archs.stylegan2 import MultiResolutionDiscriminator, StyleGAN2Generator
from ganslim.archs.stylegan2.subnets import flexible_choices, uniform_channels
from ganslim.checkpoints import load_generator, save_model
from ganslim.cli import main as cli_main
from ganslim.data import make_builtin
from ganslim.methods import COMPRESS, METHODS
from ganslim.methods.anycost.config import AdaptiveChannelsConfig, AnycostConfig
from ganslim.methods.anycost.losses import ConsistencyLoss, pyramid
from ganslim.methods.anycost.pipeline import run_anycost
from ganslim.methods.anycost.sampling import config_code, sample_channels, sample_sides
from ganslim.methods.anycost import training
from ganslim.methods.anycost.training import (
    G_PHASE,
    AdaptiveChannels,
    MultiResolution,
    SubGenerators,
    teacher_discriminator_file,
)
from ganslim.methods.stylegan2 import rosinality_state
from helpers import (
    Crash,
    assert_rebuilds_like_export,
    assert_same_tensors,
    build_method,
    first_batch,
    save_resnet,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TABLE = [32, 32, 16]  # sides 4, 8, 16; per layer (const, conv1, 8 px x2, 16 px x2): 32, 32, 32, 32, 16, 16
TEACHER = {"size": 16, "channels": TABLE, "style_dim": 8, "n_mlp": 1}
FULL = (32, 32, 32, 32, 16, 16)
TINY = dict(resize=True, batch_size=2, resolutions=3, sort_latents=64, fidelity_samples=4, sample_images=2,
            log_every=1, sample_every=0, val_every=0, ckpt_every=0, vgg_weights="none", device="cpu")


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """The built-in faces, 8 images of 32 px (resized to the teacher's 16 here)."""
    return make_builtin("faces", tmp_path_factory.mktemp("data") / "faces", size=32, count=8)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A 16 px stylegan2 teacher (generator.pt, seed 0) with its StyleGAN2 discriminator.pt beside it (minibatch
    stddev over groups of 2)."""
    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    generator = build_generator("stylegan2", **TEACHER)
    generator.style.w_avg.zero_()
    save_model(folder / "generator.pt", generator, "stylegan2", TEACHER)
    kwargs = {"size": 16, "channels": TABLE, "stddev_group": 2}
    save_model(folder / "discriminator.pt", build_discriminator("stylegan2", **kwargs), "stylegan2", kwargs,
               kind="discriminator")
    return folder / "generator.pt"


def tiny_config(faces: Path, teacher: Path, tmp_path: Path, cls: type = AnycostConfig, **overrides) -> AnycostConfig:
    return cls(**{"data": str(faces), "teacher": str(teacher), "out_dir": str(tmp_path / "runs"), "iterations": 2,
                  "channels_iterations": 2, **TINY, **overrides})


def stage_one_folder(teacher: Path, folder: Path) -> Path:
    """What the multi-resolution stage leaves for the next one: the teacher as generator.pt and a multi-resolution
    discriminator.pt (seed 1)."""
    save_model(folder / "generator.pt", load_generator(teacher).model, "stylegan2", TEACHER)
    torch.manual_seed(1)
    kwargs = {"size": 16, "channels": TABLE, "resolutions": 3, "stddev_group": 2}
    save_model(folder / "discriminator.pt", build_discriminator("anycost", **kwargs), "anycost", kwargs,
               kind="discriminator")
    return folder


def channels_config(faces: Path, teacher: Path, tmp_path: Path, **overrides) -> AdaptiveChannelsConfig:
    start = stage_one_folder(teacher, tmp_path / "stage1")
    return tiny_config(faces, teacher, tmp_path, AdaptiveChannelsConfig, multi_resolution=str(start), **overrides)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def latest(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)


# ---------------------------------------------------------------------------------------------- losses


def test_the_consistency_loss_is_twice_the_mse_to_the_bilinear_target_plus_the_perceptual_term():
    # A horizontal ramp 0..7 over 8 px: bilinear with align_corners=True samples it at 0, 7/3, 14/3, 7 at 4 px.
    ramp = torch.arange(8.0).expand(1, 3, 8, 8)
    image = torch.zeros(1, 3, 4, 4)
    expected = torch.tensor([0, 7 / 3, 14 / 3, 7]).pow(2).mean()
    terms = ConsistencyLoss(2.0, None)(image, ramp)
    assert set(terms) == {"mse", "consistency"}
    assert float(terms["mse"]) == pytest.approx(float(expected), rel=1e-6)
    assert float(terms["consistency"]) == pytest.approx(2 * float(expected), rel=1e-6)

    def features(batch):  # two "layers": the image and twice the image
        return {"a": batch, "b": 2 * batch}

    terms = ConsistencyLoss(2.0, features)(image, ramp)
    l1 = torch.tensor([0, 7 / 3, 14 / 3, 7]).mean()
    assert float(terms["perceptual"]) == pytest.approx(float(1.5 * l1), rel=1e-6)  # (|x| + |2x|) / 2 layers
    assert float(terms["consistency"]) == pytest.approx(2 * float(expected + 1.5 * l1), rel=1e-6)


def test_the_reals_are_a_bilinear_pyramid():
    ramp = torch.arange(8.0).expand(2, 3, 8, 8)
    levels = pyramid(ramp, (8, 4, 2))
    assert list(levels) == [8, 4, 2] and levels[8] is ramp
    torch.testing.assert_close(levels[4][0, 0, 0], torch.tensor([0, 7 / 3, 14 / 3, 7]))
    torch.testing.assert_close(levels[2][0, 0, 0], torch.tensor([0.0, 7.0]))


# ---------------------------------------------------------------------------------------------- draws


def test_sides_and_configurations_are_drawn_as_asked():
    def rng(seed):
        return torch.Generator().manual_seed(seed)

    drawn = [sample_sides(rng(seed), (16, 8, 4, 2), 2) for seed in range(60)]
    assert drawn == [sample_sides(rng(seed), (16, 8, 4, 2), 2) for seed in range(60)]  # a function of the seed
    assert all(len(set(sides)) == 2 and list(sides) == sorted(sides, reverse=True) for sides in drawn)
    assert len(set(drawn)) == 6  # every pair of the 4 sides turns up
    uniform = {uniform_channels(FULL, ratio) for ratio in (0.25, 0.5, 0.75, 1.0)}
    assert uniform == {(16, 16, 8, 8, 4, 4), (32, 32, 16, 16, 8, 8), (32, 32, 24, 24, 12, 12), FULL}
    assert {sample_channels(rng(seed), FULL, "uniform") for seed in range(60)} == uniform
    choices = flexible_choices(FULL)
    flexible = [sample_channels(rng(seed), FULL, "flexible") for seed in range(60)]
    assert all(width in layer.values() for config in flexible for width, layer in zip(config, choices))
    assert len(set(flexible)) > 30
    sandwich = [sample_channels(rng(seed), FULL, "sandwich") for seed in range(400)]
    largest, smallest = sandwich.count(FULL) / 400, sandwich.count((16, 16, 8, 8, 4, 4)) / 400
    assert 0.18 < largest < 0.33 and 0.18 < smallest < 0.33  # 25% each, plus the rare flexible draw of one


def test_the_discriminator_code_is_the_smallest_ratio_holding_each_width():
    # Flexible choices: 4 px layers {0.5: 16, 0.75: 24, 1: 32}; 8 px {8, 16, 24, 32}; 16 px {8, 8, 12, 16}.
    code = config_code(FULL, (16, 16, 8, 8, 4, 4))  # the uniform 0.25 config
    assert code.tolist() == [[0, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]
    assert config_code(FULL, FULL).tolist() == [[0, 0, 0, 1]] * 6
    assert config_code(FULL, (24, 32, 16, 24, 8, 12)).argmax(1).tolist() == [2, 3, 1, 2, 0, 2]


def test_each_steps_plan_is_a_function_of_seed_and_step(faces, teacher, tmp_path):
    for method_cls, config in ((MultiResolution, tiny_config(faces, teacher, tmp_path)),
                               (AdaptiveChannels, channels_config(faces, teacher, tmp_path))):
        plans = []
        for _ in range(2):
            method, ctx = build_method(method_cls, config)
            steps = []
            for step in range(8):
                ctx.steps_done = step
                steps.append(method.plan())
            plans.append(steps)
        assert plans[0] == plans[1]
        assert len({plan.sides for plan in plans[0]}) > 1
        if method_cls is MultiResolution:
            assert all(len(plan.sides) == 2 and plan.channels == plan.real_channels == FULL for plan in plans[0])
        else:
            assert all(len(plan.sides) == 1 for plan in plans[0]) and len({p.channels for p in plans[0]}) > 1


# ---------------------------------------------------------------------------------------------- steps


def record_discriminator_inputs(monkeypatch) -> list[tuple[int, object]]:
    """Patch the multi-resolution discriminator to record (image side, code or None) of every call."""
    calls = []
    original = MultiResolutionDiscriminator.forward

    def recording(self, image, config=None):
        calls.append((image.shape[-1], None if config is None else config.detach().clone()))
        return original(self, image, config)

    monkeypatch.setattr(MultiResolutionDiscriminator, "forward", recording)
    return calls


def test_stage_one_trains_g_and_d_at_the_drawn_sides_against_the_frozen_teacher(faces, teacher, tmp_path,
                                                                                monkeypatch):
    before = digest(teacher)
    method, ctx = build_method(MultiResolution, tiny_config(faces, teacher, tmp_path))
    assert isinstance(method.nets["D"], MultiResolutionDiscriminator) and not method.nets["D"].conditioned
    teacher_weights, start = snapshot(method.teacher), snapshot(method.generator)
    assert_same_tensors(teacher_weights, start)  # the generator starts as the teacher
    batch = first_batch(method)
    plan = method.plan()
    calls = record_discriminator_inputs(monkeypatch)
    terms = method.train_step(batch)
    big, small = plan.sides
    # D: reals then fakes at each side; R1 (step 0): reals at each side; G: fakes at each side; no codes
    assert [side for side, _ in calls] == [big, small, big, small, big, small, big, small]
    assert all(code is None for _, code in calls)
    assert set(terms) == {"D", "D_real_score", "D_fake_score", "R1", "G", "consistency"}
    # At step 0 the generator is the teacher: its consistency is 2 x the MSE of the teacher's early exits at the
    # drawn sides to its full image, downsampled, averaged over the sides.
    latents = method._latents(ctx.shared_generator(G_PHASE), 2)
    full = method._target(latents)
    early, _ = method._generate(SubGenerators(method.teacher), latents, plan.sides, FULL)
    expected = sum(2 * F.mse_loss(image, F.interpolate(full, size=(side, side), mode="bilinear", align_corners=True))
                   for image, side in zip(early, plan.sides)) / 2
    assert float(terms["consistency"]) == pytest.approx(float(expected), rel=1e-5)
    assert_same_tensors(snapshot(method.teacher), teacher_weights)  # the teacher never changes
    assert any(not torch.equal(start[key], value) for key, value in snapshot(method.generator).items())
    assert digest(teacher) == before


def test_stage_two_sorts_and_conditions_the_discriminator_on_the_drawn_configuration(faces, teacher, tmp_path,
                                                                                     monkeypatch):
    config = channels_config(faces, teacher, tmp_path)
    method, ctx = build_method(AdaptiveChannels, config)
    unsorted = load_generator(teacher).model
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(method.generator(z), unsorted(z), atol=1e-5, rtol=1e-5)  # sorted: same full images
    assert not torch.equal(method.generator.conv1.conv.weight, unsorted.conv1.conv.weight)
    assert method.nets["D"].conditioned
    batch = first_batch(method)
    plan = method.plan()
    calls = record_discriminator_inputs(monkeypatch)
    method.train_step(batch)
    (side,) = plan.sides
    fake, real = config_code(FULL, plan.channels), config_code(FULL, plan.real_channels)
    assert [s for s, _ in calls] == [side] * 4  # D real, D fake, R1 real, G fake
    for (_, code), expected in zip(calls, (real, fake, fake, fake)):  # R1 judges the reals under the fakes' code
        assert torch.equal(code, expected)


def test_stage_one_starts_its_discriminator_from_a_rosinality_teachers_d(faces, teacher, tmp_path):
    generator = load_generator(teacher).model
    torch.manual_seed(3)
    discriminator = build_discriminator("stylegan2", size=16, channels=TABLE)
    path = tmp_path / "rosinality.pt"
    torch.save({"g_ema": rosinality_state(generator.state_dict()), "d": rosinality_state(discriminator.state_dict()),
                "latent_avg": torch.zeros(8)}, path)
    config = tiny_config(faces, path, tmp_path)
    assert teacher_discriminator_file(config) == path
    method, _ = build_method(MultiResolution, config)
    multi = method.nets["D"]
    assert_same_tensors(snapshot(multi.blocks[0]), snapshot(discriminator.convs[1]))  # convs.k -> blocks.(k-1)
    assert_same_tensors(snapshot(multi.convs[0]), snapshot(discriminator.convs[0]))
    assert multi.stddev_group == 4 and multi.resolutions == (16, 8, 4)  # rosinality's group
    fresh = tiny_config(faces, path, tmp_path, teacher_discriminator="none")
    assert teacher_discriminator_file(fresh) is None


def test_each_stage_runs_its_own_length_in_kimg(faces, teacher, tmp_path):
    # batch 2: 0.004 kimg = 2 steps, 0.006 kimg = 3 steps
    config = tiny_config(faces, teacher, tmp_path, iterations=0, kimg=0.004, channels_iterations=0,
                         channels_kimg=0.006)
    run_dir = run_anycost(config, progress=False).run_dir
    assert latest(run_dir / "00000-anycost-multi-resolution-faces")["step"] == 2
    stage_two = run_dir / "00001-anycost-adaptive-channels-faces"
    assert latest(stage_two)["step"] == 3
    assert "0.006 kimg = 3 steps of 2 images" in (stage_two / "logs" / "log.txt").read_text()


# ---------------------------------------------------------------------------------------------- runs


def test_a_run_exports_a_plain_stylegan2_and_scores_each_sub_generator(faces, teacher, tmp_path, monkeypatch,
                                                                      caplog):
    monkeypatch.delenv("GANSLIM_VGG16_WEIGHTS", raising=False)  # no VGG16 weights anywhere
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(training, "_said_no_vgg", False)
    config = tiny_config(faces, teacher, tmp_path, sample_every=2, teacher_discriminator="none", vgg_weights="")
    with caplog.at_level(logging.WARNING):
        result = run_anycost(config, progress=False)
    said = [record for record in caplog.records if "no VGG16 weights" in record.getMessage()]
    assert len(said) == 1  # once for both stages
    run_dir = result.run_dir
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "00000-anycost-multi-resolution-faces", "00001-anycost-adaptive-channels-faces", "config.yaml",
        "generator.pt", "pipeline.json", "summary.json"]
    loaded = load_generator(run_dir / "generator.pt")
    assert loaded.arch == "stylegan2" and isinstance(loaded.model, StyleGAN2Generator)
    channels_stage = run_dir / "00001-anycost-adaptive-channels-faces"
    assert_rebuilds_like_export(channels_stage / "checkpoints" / "latest.pt", run_dir / "generator.pt")
    assert loaded.model.layer_channels == FULL and loaded.model.output_resolution == 16
    assert loaded.model(torch.randn(2, 8)).shape == (2, 3, 16, 16)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["consistency"] == "mse (no VGG16 weights)"
    assert summary["discriminator_start"] == "fresh (the teacher has none)"
    subs = summary["sub_generators"]
    assert [sub["label"] for sub in subs] == [f"{ratio}x_{side}px" for side in (16, 8) for ratio in
                                              ("0.25", "0.5", "0.75", "1")]
    assert subs[3]["channels"] == list(FULL) and subs[0]["channels"] == [16, 16, 8, 8, 4, 4]
    macs = [sub["synthesis_macs"] for sub in subs[:4]]
    assert macs == sorted(macs) and macs[0] < macs[3] and subs[4]["synthesis_macs"] < subs[3]["synthesis_macs"]
    assert set(subs[0]["fidelity"]) == {"psnr", "ssim"} and set(subs[4]["fidelity"]) == {"psnr"}  # 8 px: no SSIM
    assert subs[3]["fidelity"]["psnr"] > 30 > subs[0]["fidelity"]["psnr"]  # a few steps from the teacher
    assert "8 sub-generators scored; the cheapest (0.25x_8px)" in result.summary()
    events = EventAccumulator(str(run_dir / "00001-anycost-adaptive-channels-faces" / "logs"),
                              size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert events.Tags()["images"] == ["samples"]
    assert {"loss/consistency", "val/psnr_0.25x_16px", "val/ssim_1x_16px"} <= set(events.Tags()["scalars"])
    grid = events.Images("samples")[-1]
    assert (grid.width, grid.height) > (16 * 9, 16 * 2)  # the teacher and 8 sub-generators, 2 latents each


def test_a_run_resumes_bit_exactly_within_a_stage_and_across_the_stage_boundary(faces, teacher, tmp_path):
    config = tiny_config(faces, teacher, tmp_path / "straight", iterations=3, channels_iterations=4, ckpt_every=2)
    straight = run_anycost(config, progress=False).run_dir
    stage_two = "00001-anycost-adaptive-channels-faces"
    # Stopped after stage 1, then resumed; stage 2 killed in its 4th step (checkpoint at 2), then resumed.
    config = tiny_config(faces, teacher, tmp_path / "resumed", iterations=3, channels_iterations=4, ckpt_every=2)
    stopped = run_anycost(config, progress=False, stop_after="multi-resolution")
    assert stopped.summary_content is None and "resume with --resume" in stopped.summary()
    calls = {"n": 0}
    original = AdaptiveChannels.train_step

    def dying(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise Crash
        return original(self, batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AdaptiveChannels, "train_step", dying)
        with pytest.raises(Crash):
            run_anycost(config, resume=stopped.run_dir, progress=False)
    assert latest(stopped.run_dir / stage_two)["step"] == 2
    assert not (stopped.run_dir / "generator.pt").exists()
    run_anycost(config, resume=stopped.run_dir, progress=False)
    for stage in ("00000-anycost-multi-resolution-faces", stage_two):
        a, b = latest(straight / stage), latest(stopped.run_dir / stage)
        assert a["step"] == b["step"]
        assert_same_tensors(a["networks"], b["networks"])
        assert_same_tensors(a["ema"], b["ema"])
    assert_same_tensors(load_generator(straight / "generator.pt").model.state_dict(),
                        load_generator(stopped.run_dir / "generator.pt").model.state_dict())


def test_accumulated_parts_match_the_whole_batch(faces, teacher, tmp_path):
    # Per-sample losses (a discriminator with minibatch-stddev groups of 1): two parts of 2 images add up to the
    # gradient of the batch of 4, in both stages.
    kwargs = {"size": 16, "channels": TABLE, "stddev_group": 1}
    start = save_model(tmp_path / "d.pt", build_discriminator("stylegan2", **kwargs), "stylegan2", kwargs,
                       kind="discriminator")
    common = dict(batch_size=4, teacher_discriminator=str(start), iterations=2, channels_iterations=2)
    whole = run_anycost(tiny_config(faces, teacher, tmp_path / "whole", **common), progress=False).run_dir
    parts = run_anycost(tiny_config(faces, teacher, tmp_path / "parts", accumulate=2, **common),
                        progress=False).run_dir
    for stage in ("00000-anycost-multi-resolution-faces", "00001-anycost-adaptive-channels-faces"):
        a, b = latest(whole / stage)["networks"], latest(parts / stage)["networks"]
        for net in a:
            for key in a[net]:
                torch.testing.assert_close(a[net][key], b[net][key], atol=1e-4, rtol=1e-4, msg=f"{stage} {net}.{key}")


def test_two_processes_match_one_process_with_the_combined_batch(faces, teacher, tmp_path):
    # Every draw is for the whole step's batch, shared out by rank; minibatch-stddev groups of 2 (the teacher D's)
    # are the rows each rank holds. Tolerance 1e-4 (5% of one Adam step of 0.002): Adam's second step divides by
    # the root of the first squared gradient, so the rounding of near-zero gradients summed in another order shows.
    settings = {**TINY, "iterations": 2, "channels_iterations": 2, "ckpt_every": 2}
    sets = [arg for key, value in settings.items() if key not in ("device", "batch_size")
            for arg in ("--set", f"{key}={value}")]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "ganslim.cli", "compress", "anycost", "--data", str(faces), "--teacher", str(teacher), "--out-dir",
               str(tmp_path / "ddp"), "--no-progress", "--device", "cpu", "--batch-size", "2", *sets]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "ddp" / "00000-anycost-faces"
    assert ("ganslim compress anycost: 8 sub-generators scored; the cheapest (0.25x_8px) runs" in done.stdout
            and f"model {run_dir / 'generator.pt'}" in done.stdout), done.stdout
    single = run_anycost(tiny_config(faces, teacher, tmp_path / "single", **{**settings, "batch_size": 4}),
                         progress=False).run_dir
    for stage in ("00000-anycost-multi-resolution-faces", "00001-anycost-adaptive-channels-faces"):
        together, alone = latest(run_dir / stage), latest(single / stage)
        for name in ("networks", "ema"):
            for net in together[name]:
                for key in together[name][net]:
                    torch.testing.assert_close(together[name][net][key], alone[name][net][key], atol=1e-4,
                                               rtol=1e-4, msg=f"{stage} {name}.{net}.{key}")


def test_the_method_is_registered_and_bad_input_is_one_line_leaving_nothing(faces, teacher, tmp_path, capsys):
    entry = METHODS.get("anycost")
    assert entry.command == COMPRESS and entry.stages == ("multi-resolution", "adaptive-channels", "export")
    out = tmp_path / "runs"
    resnet = save_resnet(tmp_path / "resnet.pt", 4)
    common = ["--data", str(faces), "--out-dir", str(out), "--device", "cpu", "--no-progress", "--set",
              "resize=true", "--set", "resolutions=3", "--batch-size", "2", "--iterations", "1",
              "--channels-iterations", "1"]
    for argv, words in (
            (["--teacher", str(resnet)], "is a resnet_6blocks generator, not a stylegan2 one"),
            (["--teacher", str(teacher), "--set", "resolutions=4"], "resolutions 4: the 16 px teacher renders only "
                                                                    "3 sides (16, 8, 4)"),
            (["--teacher", str(teacher), "--set", "sampled_resolutions=3", "--set", "resolutions=2"],
             "sampled_resolutions 3 > resolutions 2"),
            (["--teacher", str(teacher), "--channel-sampling", "random"], "channel_sampling"),
            (["--teacher", str(teacher), "--set", "epochs=3"], "epochs"),
            (["--teacher", str(teacher), "--channels-kimg", "5"], "the adaptive-channel length is given twice"),
            (["--teacher", str(teacher), "--set", f"teacher_discriminator={resnet}"],
             "holds a generator, not a discriminator"),
            (["--teacher", str(teacher), "--batch-size", "16"], "holds 8 images, fewer than one batch of 16"),
            ([], "no teacher"),
    ):
        assert cli_main(["compress", "anycost", *common, *argv]) == 2, argv
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and words in error, error
    assert not out.exists() or list(out.iterdir()) == []
