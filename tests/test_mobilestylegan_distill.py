"""`ganslim compress mobilestylegan`: the multi-scale pixel / wavelet and perceptual terms against hand computations,
the teacher's W+ (mixing at layers the student reads) and noise shared with the student, the teacher and mapping
never trained, validation by fidelity (and KID), the exports, one-line refusals with nothing written, the non-finite
guard, exact resume, and two processes against one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import ganslim.methods.mobilestylegan.method as method_module
from ganslim.archs import build_generator
from ganslim.archs.stylegan2 import MobileStyleGANGenerator
from ganslim.checkpoints import load_generator, save_model
from ganslim.cli import main as cli_main
from ganslim.engine import fit
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_params
from ganslim.methods import COMPRESS, METHODS
from ganslim.methods.mobilestylegan import (
    MobileStyleGAN,
    MobileStyleGANConfig,
    PerceptualL1,
    ValidationLatents,
    multiscale_terms,
    teacher_target,
)
from ganslim.methods.mobilestylegan.config import teacher_label
from ganslim.metrics import psnr
from ganslim.nn.vgg import STYLE_LAYERS, VGG16Features
from helpers import (
    TINY_STYLEGAN2,
    assert_rebuilds_like_export,
    assert_same_tensors,
    build_method,
    interrupted_run,
    snapshot,
)
from stylegan2_reference import random_rosinality_state

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_user_vgg")

TINY = dict(batch_size=2, log_every=1, sample_every=0, val_every=0, ckpt_every=0, inception_weights="none",
            vgg_weights="none", val_images=4, sample_images=2, device="cpu")
TEACHER_32 = {"size": 32, "channels": [8, 8, 8, 4], "style_dim": 8, "n_mlp": 1}


def _save_teacher(path: Path, kwargs: dict, seed: int = 0, w_avg: bool = True) -> Path:
    generator = build_generator("stylegan2", **kwargs).eval()
    state = random_rosinality_state(**kwargs, seed=seed, w_avg=w_avg)
    generator.load_state_dict({**generator.state_dict(), **state})
    return save_model(path, generator, "stylegan2", kwargs)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A random 16 px StyleGAN2 (tests/helpers.py's TINY_STYLEGAN2: num_ws 6, noise sides 4 8 8 16 16)."""
    return _save_teacher(tmp_path_factory.mktemp("teacher") / "teacher.pt", TINY_STYLEGAN2)


@pytest.fixture(scope="module")
def teacher_32(tmp_path_factory) -> Path:
    """A random 32 px StyleGAN2 without a stored mean W (as rosinality's train.py files)."""
    return _save_teacher(tmp_path_factory.mktemp("teacher") / "teacher32.pt", TEACHER_32, seed=3, w_avg=False)


def tiny_config(teacher: Path, tmp_path: Path, **overrides) -> MobileStyleGANConfig:
    return MobileStyleGANConfig(**{"teacher": str(teacher), "out_dir": str(tmp_path / "runs"), "iterations": 4,
                                   **TINY, **overrides})


def latest(run_dir: Path) -> tuple[dict, dict]:
    weights = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    return weights, torch.load(run_dir / "checkpoints" / weights["state_file"], weights_only=True)


# ---------------------------------------------------------------------------------------------- losses


def _haar(a: float, b: float, c: float, d: float) -> list[float]:
    """LL, LH, HL, HH of the block [[a, b], [c, d]] (pytorch_wavelets' db1)."""
    return [(a + b + c + d) / 2, (a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2]


def _inverse(ll: float, lh: float, hl: float, hh: float) -> list[float]:
    """The block a, b, c, d of the bands LL, LH, HL, HH."""
    return [(ll + lh + hl + hh) / 2, (ll + lh - hl - hh) / 2, (ll - lh + hl - hh) / 2, (ll - lh - hl + hh) / 2]


def _hand_terms(head: list[list[list[float]]], target: list[list[float]]) -> dict[str, float]:
    """The four distances of one grey head (4 bands of r x r, nested lists) to its 2r x 2r target, by hand."""
    side = len(head[0])
    image_diffs, wavelet_diffs = [], []
    for i in range(side):
        for j in range(side):
            block = [target[2 * i + di][2 * j + dj] for di in (0, 1) for dj in (0, 1)]  # a, b, c, d
            bands = [head[band][i][j] for band in range(4)]
            image_diffs += [p - t for p, t in zip(_inverse(*bands), block)]
            wavelet_diffs += [p - t for p, t in zip(bands, _haar(*block))]

    def mean(values):
        return sum(values) / len(values)
    return {"l1_image": mean([abs(d) for d in image_diffs]), "l2_image": mean([d * d for d in image_diffs]),
            "l1_wavelet": mean([abs(d) for d in wavelet_diffs]), "l2_wavelet": mean([d * d for d in wavelet_diffs])}


def test_multiscale_terms_are_the_pixel_and_wavelet_distances_at_every_scale():
    teacher = [[float(4 * row + column) for column in range(4)] for row in range(4)]  # 0 .. 15
    # align_corners=True from 4 to 2 px picks the corners
    assert teacher_target(torch.tensor(teacher).view(1, 1, 4, 4), 2).flatten().tolist() == [0, 3, 12, 15]
    small = [[[2.0]], [[1.0]], [[-0.5]], [[0.25]]]  # 1x1 head: the 2x2 image
    large = [[[1.0, 2.0], [0.5, -1.0]], [[0.0, 3.0], [1.0, 1.0]], [[2.0, -2.0], [0.0, 0.5]], [[1.0, 0.0], [-1.0, 4.0]]]
    heads = [torch.tensor(small).view(1, 4, 1, 1), torch.tensor(large).view(1, 4, 2, 2)]
    terms = multiscale_terms(heads, torch.tensor(teacher).view(1, 1, 4, 4))
    expected = {key: a + b for (key, a), b in zip(_hand_terms(small, [[0.0, 3.0], [12.0, 15.0]]).items(),
                                                  _hand_terms(large, teacher).values())}
    assert set(terms) == set(expected)
    for key, value in expected.items():
        assert float(terms[key]) == pytest.approx(value, rel=1e-6), key
    # the Haar transform is orthonormal: the two L2 distances agree (the reference counts that term twice)
    assert float(terms["l2_image"]) == pytest.approx(float(terms["l2_wavelet"]), rel=1e-6)


def test_multiscale_terms_train_the_heads_only():
    teacher = torch.randn(2, 3, 8, 8, requires_grad=True)
    heads = [torch.randn(2, 12, 2, 2, requires_grad=True), torch.randn(2, 12, 4, 4, requires_grad=True)]
    sum(multiscale_terms(heads, teacher).values()).backward()
    assert teacher.grad is None and all(float(head.grad.abs().sum()) > 0 for head in heads)


def test_vgg_sees_the_signed_image_as_it_is():
    torch.manual_seed(0)
    vgg = VGG16Features(layers=["relu1_2"], imagenet_norm=False, signed_input=True)
    image = torch.rand(1, 3, 8, 8) * 2 - 1
    conv1, conv2 = vgg.features[0], vgg.features[2]
    torch.testing.assert_close(vgg(image)["relu1_2"], F.relu(conv2(F.relu(conv1(image)))))
    with pytest.raises(ValueError, match="pass imagenet_norm=False"):
        VGG16Features(signed_input=True)


def test_perceptual_l1_sums_the_four_layers_at_up_to_its_size():
    torch.manual_seed(0)
    vgg = VGG16Features(imagenet_norm=False, signed_input=True)
    student = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    teacher = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)

    def by_hand(s, t):
        fs, ft = vgg(s), vgg(t)
        return sum((fs[layer] - ft[layer]).abs().mean() for layer in STYLE_LAYERS)

    resized = [F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False) for x in (student, teacher)]
    loss = PerceptualL1(vgg, size=8)(student, teacher)
    assert float(loss.detach()) == pytest.approx(float(by_hand(*resized).detach()), rel=1e-5)
    with torch.no_grad():  # 16 px: no resize
        assert float(PerceptualL1(vgg, size=256)(student, teacher)) == pytest.approx(
            float(by_hand(student, teacher)), rel=1e-5)
    loss.backward()
    assert teacher.grad is None and float(student.grad.abs().sum()) > 0


# ---------------------------------------------------------------------------------------------- the method


def test_student_is_built_from_the_teacher_and_only_its_synthesis_trains(teacher, tmp_path):
    method, ctx = build_method(MobileStyleGAN, tiny_config(teacher, tmp_path))
    student, teacher_net = method.student, method.teacher
    assert isinstance(student, MobileStyleGANGenerator) and student.channels == {4: 8, 8: 8}
    assert (student.num_ws, teacher_net.num_ws, student.num_noises) == (4, 6, 3)
    assert not teacher_net.training and not any(p.requires_grad for p in teacher_net.parameters())
    assert not any(p.requires_grad for p in student.style.parameters())
    trained = {id(p) for group in method.optimizers()["student"].param_groups for p in group["params"]}
    assert trained == {id(p) for p in student.synthesis.parameters()}
    groups = {name: optimizer.param_groups[0] for name, optimizer in method.optimizers().items()}
    assert groups["student"]["lr"] == pytest.approx(5e-4) and groups["student"]["betas"] == (0.9, 0.999)
    assert groups["D"]["lr"] == pytest.approx(5e-4 * 16 / 17)  # R1 every 16 steps: rosinality's adjustment
    assert ctx.config.grad_clip == 1.0  # on by default

    teacher_before, student_before = snapshot(teacher_net), snapshot(student)
    for step in range(3):
        ctx.steps_done = step
        method.train_step({"z": torch.randn(2, 16)})
    assert_same_tensors(snapshot(teacher_net), teacher_before)
    assert all(p.grad is None for p in [*teacher_net.parameters(), *student.style.parameters()])
    after = snapshot(student)
    assert all(torch.equal(after[key], value) for key, value in student_before.items() if key.startswith("style."))
    assert all(torch.equal(after[key], value) for key, value in teacher_before.items()
               if key.startswith("style."))  # the student's mapping is the teacher's, still
    assert not torch.equal(after["synthesis.conv1.conv.weight"], student_before["synthesis.conv1.conv.weight"])


def test_the_logged_total_is_the_weighted_sum_and_r1_runs_on_its_steps(teacher, tmp_path):
    method, ctx = build_method(MobileStyleGAN, tiny_config(teacher, tmp_path, l1_weight=2.0, l2_weight=0.5,
                                                           gan_weight=0.25, r1_every=2))
    seen = {}
    for step in range(3):
        ctx.steps_done = step
        terms = method.train_step({"z": torch.randn(2, 16)})
        seen[step] = set(terms)
        expected = (2.0 * (terms["l1_image"] + terms["l1_wavelet"]) + 0.5 * (terms["l2_image"] + terms["l2_wavelet"])
                    + 0.25 * terms["G_gan"])
        assert float(terms["G"]) == pytest.approx(float(expected), rel=1e-5)
    main = {"l1_image", "l2_image", "l1_wavelet", "l2_wavelet", "G_gan", "G", "D", "D_real_score", "D_fake_score"}
    assert seen == {0: main | {"R1"}, 1: main, 2: main | {"R1"}}
    method, ctx = build_method(MobileStyleGAN, tiny_config(teacher, tmp_path, gan_weight=0.0))
    assert set(method.train_step({"z": torch.randn(2, 16)})) == {"l1_image", "l2_image", "l1_wavelet", "l2_wavelet",
                                                                 "G"}  # no GAN: no discriminator step


def test_mixing_crosses_over_at_a_layer_the_student_reads(teacher, tmp_path):
    for probability in (0.0, 1.0):
        method, ctx = build_method(MobileStyleGAN, tiny_config(teacher, tmp_path, mixing=probability))
        crossovers = set()
        for step in range(24):
            ctx.steps_done = step
            w_plus, _ = method._styles(torch.randn(2, 16))
            assert w_plus.shape == (2, 6, 16)
            changes = [k for k in range(1, 6) if not torch.equal(w_plus[:, k], w_plus[:, k - 1])]
            crossovers.update(changes)
            assert len(changes) <= 1
        assert crossovers == (set() if probability == 0 else {1, 2, 3})  # student.num_ws 4: crossover 1 .. 3


def test_teacher_and_student_get_the_same_noise_drawn_every_step(teacher, tmp_path):
    method, ctx = build_method(MobileStyleGAN, tiny_config(teacher, tmp_path))
    seen: dict[str, list] = {"teacher": [], "student": []}
    for role, net in (("teacher", method.teacher), ("student", method.student)):
        for name, module in net.named_modules():
            if name.endswith(".noise"):
                module.register_forward_pre_hook(lambda _, args, role=role: seen[role].append(args[1]))
    steps = []
    for step in range(2):
        ctx.steps_done = step
        seen["teacher"].clear(), seen["student"].clear()
        method.train_step({"z": torch.randn(2, 16)})
        assert [tuple(n.shape) for n in seen["teacher"]] == [(2, 1, 4, 4), (2, 1, 8, 8), (2, 1, 8, 8), (2, 1, 16, 16),
                                                            (2, 1, 16, 16)]
        assert len(seen["student"]) == 3 and all(s is t for s, t in zip(seen["student"], seen["teacher"]))
        steps.append(seen["teacher"][0].clone())
    assert not torch.equal(steps[0], steps[1])  # drawn anew every step, not the stored noise


def test_validation_is_the_fidelity_to_the_teacher_on_fixed_latents_and_noise(teacher, tmp_path):
    method, _ = build_method(MobileStyleGAN, tiny_config(teacher, tmp_path))
    latents = method.val_dataset()
    assert isinstance(latents, ValidationLatents) and len(latents) == 4
    assert_same_tensors(latents[3], ValidationLatents(4, 16, [4, 8, 8, 16, 16], seed=0)[3])  # fixed by the seed
    batch = torch.utils.data.default_collate([latents[i] for i in range(4)])
    with torch.no_grad():
        metrics = method.validate([batch])
        noise = [batch[f"noise_{k}"] for k in range(5)]
        w = method.teacher.style(batch["z"])
        teacher_image = method.teacher.synthesize(w[:, None].repeat(1, 6, 1), noise)
        student_image = method.student.synthesis(w[:, None].repeat(1, 4, 1), noise[:3])
        columns = method.visuals(batch)
    assert set(metrics) == {"psnr", "ssim"} and method.monitor == ("psnr", "max")
    assert metrics["psnr"] == pytest.approx(float(psnr(student_image, teacher_image).mean()), rel=1e-5)
    torch.testing.assert_close(columns[0], teacher_image)
    torch.testing.assert_close(columns[1], student_image)


def test_kid_picks_the_best_checkpoint_when_inception_weights_exist(teacher, tmp_path, inception_file):
    method, _ = build_method(MobileStyleGAN, tiny_config(teacher, tmp_path, inception_weights=str(inception_file)))
    assert method.monitor == ("kid", "min")
    batch = torch.utils.data.default_collate([method.val_dataset()[i] for i in range(4)])
    with torch.no_grad():
        metrics = method.validate([batch])
    assert set(metrics) == {"psnr", "ssim", "kid"} and metrics["kid"] == metrics["kid"]  # a number, not NaN


def test_a_run_exports_a_student_that_loads_and_a_summary(teacher_32, tmp_path):
    result = fit(tiny_config(teacher_32, tmp_path, val_every=2, sample_every=2), MobileStyleGAN, progress=False)
    assert set(result.exported) == {"generator", "discriminator", "summary"} and result.best["metric"] == "psnr"
    loaded = load_generator(result.run_dir / "generator.pt")
    assert loaded.arch == "mobile_stylegan" and isinstance(loaded.model, MobileStyleGANGenerator)
    assert loaded.meta["w_avg"] == "estimated from 10000 z (seed 0)" and loaded.model.style.has_w_avg
    best = torch.load(result.run_dir / "checkpoints" / "best.pt", weights_only=True)["networks"]["student"]
    assert_same_tensors(loaded.model.state_dict(), best)
    assert_rebuilds_like_export(result.run_dir / "checkpoints" / "best.pt", result.run_dir / "generator.pt")
    teacher = load_generator(teacher_32).model
    z = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.map(z), teacher.map(z))  # the teacher's mapping, untouched
        assert loaded.model(z).shape == (2, 3, 32, 32)

    summary = json.loads((result.run_dir / "summary.json").read_text())
    student, synthesis = summary["student"], summary["student"]["parts"]["synthesis"]
    assert summary["resolution"] == 32 and student["params"] == count_params(loaded.model)
    assert student["arch_kwargs"]["channels"] == [8, 8, 8]
    assert synthesis["params"] == count_params(loaded.model.synthesis)
    assert 0 < synthesis["macs"] < summary["teacher"]["parts"]["synthesis"]["macs"]
    assert synthesis["macs"] <= synthesis["macs_published"]
    assert summary["objective"]["weights"] == {"l1": 1.0, "l2": 1.0, "perceptual": 0.0, "gan": 0.5}
    assert summary["objective"]["perceptual"]["vgg16"] == "off" and summary["objective"]["best_by"] == "psnr"

    events = EventAccumulator(str(result.run_dir / "logs"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    assert {"loss/l1_image", "loss/l2_image", "loss/l1_wavelet", "loss/l2_wavelet", "loss/G_gan", "loss/G", "loss/D",
            "loss/R1", "val/psnr", "val/ssim"} <= set(events.Tags()["scalars"])
    assert events.Tags()["images"] == ["samples"]
    grid = events.Images("samples")[-1]
    assert (grid.width, grid.height) == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)  # teacher | student, 2 latents each


def test_without_vgg16_and_inception_weights_each_is_said_once_and_recorded(teacher, tmp_path, caplog, no_inception):
    with caplog.at_level("WARNING"):
        result = fit(tiny_config(teacher, tmp_path, vgg_weights="", inception_weights="", iterations=2, val_every=1),
                     MobileStyleGAN, progress=False)
    said = [record.message for record in caplog.records if "VGG16" in record.message]
    assert len(said) == 1 and "perceptual term is OFF" in said[0] and "GANSLIM_VGG16_WEIGHTS" in said[0]
    said = [record.message for record in caplog.records if "KID" in record.message]
    assert len(said) == 1 and "best.pt is the best PSNR to the teacher instead" in said[0]
    assert result.best["metric"] == "psnr"
    objective = json.loads((result.run_dir / "summary.json").read_text())["objective"]
    assert objective["perceptual"]["vgg16"] == "absent" and objective["weights"]["perceptual"] == 0.0
    assert "pixel and wavelet" in objective["fallback"]
    assert (objective["kid"], objective["best_by"]) == ("absent", "psnr")


def test_with_vgg16_weights_the_perceptual_term_trains(teacher, tmp_path):
    state = {key: value.half() for key, value in VGG16Features().state_dict().items()}  # half: a smaller file
    torch.save(state, tmp_path / "vgg16.pth")
    method, ctx = build_method(MobileStyleGAN, tiny_config(teacher, tmp_path, vgg_weights=str(tmp_path / "vgg16.pth")))
    assert method.perceptual.vgg.signed_input and method.objective()["perceptual"]["vgg16"] == "loaded"
    terms = method.train_step({"z": torch.randn(2, 16)})
    expected = (terms["l1_image"] + terms["l1_wavelet"] + terms["l2_image"] + terms["l2_wavelet"]
                + terms["perceptual"] + 0.5 * terms["G_gan"])
    assert float(terms["perceptual"]) > 0 and float(terms["G"]) == pytest.approx(float(expected), rel=1e-5)


# ---------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("which, words", [
    ("", "mobilestylegan needs a teacher: pass --teacher CKPT"),
    ("missing", "missing.pt' not found: check the path"),
    ("resnet", "holds a resnet_6blocks generator, not a stylegan2 one"),
    ("student", "holds a mobile_stylegan generator, not a stylegan2 one"),
    ("small", "mobile_stylegan size 4 is not a power of two of at least 8"),
])
def test_a_bad_teacher_is_one_line_and_nothing_is_written(tmp_path, which, words):
    tiny = {"style_dim": 8, "n_mlp": 1}
    files = {"": "", "missing": tmp_path / "missing.pt"}
    for name, arch, kwargs in (("resnet", "resnet_6blocks", {"ngf": 4}),
                               ("student", "mobile_stylegan", {"size": 16, "channels": [8, 8], **tiny}),
                               ("small", "stylegan2", {"size": 4, "channels": [8], **tiny})):
        files[name] = save_model(tmp_path / f"{name}.pt", build_generator(arch, **kwargs), arch, kwargs)
    with pytest.raises(GanslimError) as error:
        fit(tiny_config(files[which], tmp_path), MobileStyleGAN, progress=False)
    assert "\n" not in str(error.value) and words in str(error.value), str(error.value)
    assert not (tmp_path / "runs").exists()


def test_the_run_is_named_after_the_teacher():
    assert [teacher_label(path) for path in ("runs/00003-stylegan2-faces/generator.pt", "runs/00003-stylegan2-faces",
                                             "ffhq/stylegan2-ffhq-config-f.pt", "ffhq.pkl")] == [
        "00003-stylegan2-faces", "00003-stylegan2-faces", "stylegan2-ffhq-config-f", "ffhq"]
    assert MobileStyleGANConfig(teacher="ffhq.pkl", name="mine").name == "mine"


def test_the_cli_distils_or_refuses_impossible_options_in_one_line(teacher, tmp_path, capsys):
    entry = METHODS.get("mobilestylegan")
    assert entry.command == COMPRESS and entry.load().Config is MobileStyleGANConfig
    out = tmp_path / "runs"
    common = ["--teacher", str(teacher), "--out-dir", str(out), "--device", "cpu", "--no-progress",
              "--set", "val_images=2", "--set", "sample_images=2", "--set", "inception_weights=none",
              "--set", "vgg_weights=none", "--set", "val_every=0", "--set", "sample_every=0"]
    assert cli_main(["compress", "mobilestylegan", *common, "--data", "none", "--iterations", "2"]) == 0
    printed = capsys.readouterr().out
    assert "ganslim compress mobilestylegan: 2 steps in" in printed
    assert "models: generator.pt, discriminator.pt, summary.json" in printed
    assert "student mobile_stylegan at 16 px: synthesis 0.002M params" in printed
    assert "x fewer true MACs than the teacher's synthesis" in printed
    for argv, words in (
            (["--data", str(tmp_path)], f"mobilestylegan reads no dataset (it distils from sampled z only), got "
                                        f"--data '{tmp_path}': drop --data or pass --data none"),
            (["--kimg", "1", "--iterations", "2"], "the length is given twice (kimg=1 and iterations=2)"),
            (["--augment", "flip"], "'flip' is no DiffAugment operation"),
            (["--mixing", "1.5"], "bad value for 'mixing': 1.5 is above the maximum 1.0"),
            (["--set", "sample_images=4"], "sample_images 4 is more than val_images 2"),
    ):
        assert cli_main(["compress", "mobilestylegan", *common, *argv]) == 2, argv
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and words in error, error
    assert [folder.name for folder in out.iterdir()] == ["00000-mobilestylegan-teacher"]  # named after teacher.pt


# ---------------------------------------------------------------------------------------------- runs


def test_a_non_finite_loss_stops_the_run_keeping_the_last_good_checkpoint(teacher, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = method_module.multiscale_terms

    def diverging(heads, teacher_image):
        calls["n"] += 1
        terms = original(heads, teacher_image)
        if calls["n"] == 4:  # step 3
            terms["l1_image"] = terms["l1_image"] * float("nan")
        return terms

    monkeypatch.setattr(method_module, "multiscale_terms", diverging)
    config = tiny_config(teacher, tmp_path, iterations=6, ckpt_every=2)
    with pytest.raises(GanslimError) as error:
        fit(config, MobileStyleGAN, progress=False)
    message = str(error.value)
    assert "\n" not in message and "at step 4" in message, message  # logged after step 3, as step 4
    assert "the last good checkpoint, step 2, is kept" in message and "--resume" in message
    weights, _ = latest(next((tmp_path / "runs").iterdir()))
    assert weights["step"] == 2
    assert all(bool(torch.isfinite(value).all()) for value in weights["networks"]["student"].values()
               if value.is_floating_point())


def test_a_run_resumes_bit_exactly(teacher, tmp_path):
    config = tiny_config(teacher, tmp_path, iterations=7, ckpt_every=3, r1_every=2, mixing=0.5,
                         augment="color,translation,cutout", ema_kimg=0.01)
    straight = fit(config, MobileStyleGAN, progress=False)
    interrupted = interrupted_run(MobileStyleGAN, config, crash_on_call=5)
    assert latest(interrupted)[0]["step"] == 3
    fit(config, MobileStyleGAN, resume=interrupted, progress=False)
    (weights_a, state_a), (weights_b, state_b) = latest(straight.run_dir), latest(interrupted)
    assert weights_a["step"] == weights_b["step"] == 7
    assert_same_tensors(weights_a["networks"], weights_b["networks"])
    assert_same_tensors(weights_a["ema"], weights_b["ema"])
    assert_same_tensors(state_a["optimizers"], state_b["optimizers"])
    assert_same_tensors(state_a["ranks"], state_b["ranks"])
    assert_same_tensors(load_generator(straight.run_dir / "generator.pt").model.state_dict(),
                        load_generator(interrupted / "generator.pt").model.state_dict())


def test_two_processes_match_one_process_with_the_combined_batch(teacher, tmp_path):
    # z is sharded by the engine, every other draw made for the whole batch and shared out by rank; minibatch-stddev
    # groups of 2 are the rows each rank holds (samples r, r + 2 of a batch of 4).
    settings = {**TINY, "stddev_group": 2, "iterations": 4, "ckpt_every": 2, "r1_every": 2, "mixing": 0.5,
                "augment": "color,translation,cutout"}
    del settings["device"]
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "ganslim.cli", "compress", "mobilestylegan", "--teacher", str(teacher), "--out-dir",
               str(tmp_path / "ddp"), "--no-progress", "--device", "cpu", *sets]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ,
                                                                                       "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "ddp" / "00000-mobilestylegan-teacher"  # named after the teacher: there is no data folder
    assert "4 iterations of 4 images (0.016 kimg" in (run_dir / "logs" / "log.txt").read_text()
    assert "on cpu x 2 processes" in (run_dir / "logs" / "log.txt").read_text()
    single = fit(tiny_config(teacher, tmp_path / "single", **{**settings, "batch_size": 4}), MobileStyleGAN,
                 progress=False)
    (together, state), (alone, _) = latest(run_dir), latest(single.run_dir)
    assert state["world_size"] == 2
    for name in ("student", "D"):
        for key, value in alone["networks"][name].items():
            torch.testing.assert_close(together["networks"][name][key], value, atol=2e-5, rtol=1e-4,
                                       msg=f"{name}.{key}")
