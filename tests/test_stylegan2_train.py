"""`ganslim train stylegan2`: rosinality's losses and regularisers against hand computations, lazy regularisation,
style mixing, DiffAugment, the image folder's one-line refusals, exact resume, accumulation, two processes against
one, and the exports (ganslim's and rosinality's layouts) loading back with equal outputs; MobileStyleGAN's
architecture trained as a plain GAN (generator=mobile_stylegan), with its own mapping or a teacher's frozen one."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganslim.archs.stylegan2 import MobileStyleGANGenerator
from ganslim.checkpoints import load_discriminator, load_generator
from ganslim.cli import main as cli_main
from ganslim.data import ImageFolderDataset, make_builtin
from ganslim.engine import fit
from ganslim.errors import GanslimError
from ganslim.losses import GANLoss, path_length_penalty, path_lengths, r1_penalty
from ganslim.methods import METHODS, TRAIN
from ganslim.methods.stylegan2 import StyleGAN2, StyleGAN2Config
from ganslim.nn.augment import DiffAugment
from helpers import (
    assert_same_tensors,
    build_method,
    interrupted_run,
    save_tiny_student,
    save_tiny_stylegan2,
    tiny_stylegan2,
)
from stylegan2_reference import map_rosinality, rosinality_shapes, stored_noises, synthesize_rosinality

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHANNELS = (8, 8, 4)  # sides 4, 8, 16
TINY = dict(size=16, resize=True, style_dim=8, n_mlp=1, channels=CHANNELS, batch_size=2, log_every=1,
            sample_every=0, val_every=0, ckpt_every=0, inception_weights="none", sample_images=2)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """The built-in faces, 8 images of 32 px (resized to 16 by the configs here)."""
    return make_builtin("faces", tmp_path_factory.mktemp("data") / "faces", size=32, count=8)


def tiny_config(faces: Path, tmp_path: Path, **overrides) -> StyleGAN2Config:
    return StyleGAN2Config(**{"data": str(faces), "out_dir": str(tmp_path / "runs"), "kimg": 0.016, **TINY,
                              **overrides})


def latest(run_dir: Path) -> tuple[dict, dict]:
    weights = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    return weights, torch.load(run_dir / "checkpoints" / weights["state_file"], weights_only=True)


def assert_resumes_bit_exactly(config: StyleGAN2Config, straight: Path, crash_on_call: int, resumed_from: int
                               ) -> None:
    """A run of ``config`` killed in its ``crash_on_call``-th step, resumed from its step-``resumed_from``
    checkpoint, ends with the weights, averages, optimizers and per-rank state (RNG streams, the running mean path
    length) of the uninterrupted run in ``straight``, bit for bit."""
    interrupted = interrupted_run(StyleGAN2, config, crash_on_call=crash_on_call)
    assert latest(interrupted)[0]["step"] == resumed_from
    fit(config, StyleGAN2, resume=interrupted, progress=False)
    (weights_a, state_a), (weights_b, state_b) = latest(straight), latest(interrupted)
    assert_same_tensors(weights_a["networks"], weights_b["networks"])
    assert_same_tensors(weights_a["ema"], weights_b["ema"])
    assert_same_tensors(state_a["optimizers"], state_b["optimizers"])
    assert_same_tensors(state_a["ranks"], state_b["ranks"])


def assert_close_weights(a: dict, b: dict, atol: float = 2e-5) -> None:
    for name in a:
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], atol=atol, rtol=1e-4, msg=f"{name}.{key}")


# ---------------------------------------------------------------------------------------------- losses


def test_non_saturating_logistic_loss_is_rosinalitys():
    real, fake = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    gan = GANLoss("vanilla")
    expected_d = (math.log(2) + math.log(1 + math.exp(-1))) / 2 + (math.log(1 + math.exp(2)) + math.log(
        1 + math.exp(-1))) / 2  # softplus(-D(x)).mean() + softplus(D(G(z))).mean()
    assert float(gan(real, True) + gan(fake, False)) == pytest.approx(expected_d, rel=1e-6)
    expected_g = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2  # softplus(-D(G(z))).mean()
    assert float(gan(fake, True, for_discriminator=False)) == pytest.approx(expected_g, rel=1e-6)


def test_r1_is_the_squared_norm_of_the_input_gradient():
    images = torch.tensor([[[[1.0, 2.0]]], [[[3.0, -1.0]]]], requires_grad=True)  # (2, 1, 1, 2)
    scores = 0.5 * images.pow(2).flatten(1).sum(1) + 3  # gradient: the image itself
    penalty = r1_penalty(scores, images)
    assert penalty.tolist() == pytest.approx([1 + 4, 9 + 1])
    penalty.sum().backward()  # create_graph: the penalty trains what made it
    assert images.grad.flatten().tolist() == pytest.approx([2, 4, 6, -2])


def test_path_length_of_a_tiny_synthesis_and_its_penalty():
    w_plus = torch.ones(2, 3, 4, requires_grad=True)  # N 2, num_ws 3, w_dim 4
    images = w_plus.pow(2).sum(dim=(1, 2)).view(2, 1, 1, 1).expand(2, 1, 2, 2)  # d image / d w = 2 w = 2
    direction = torch.tensor([1.0, 0.5, 0.0, 0.5]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    direction[1] *= -3
    lengths = path_lengths(images, w_plus, direction)
    # d sum(image * y) / d w = 2 * sum(y) in each of the 4 dims of each layer: |.| = 2 |sum(y)| sqrt(4)
    assert lengths.tolist() == pytest.approx([2 * 2 * 2, 2 * 6 * 2])
    penalty, mean = path_length_penalty(lengths, torch.tensor(1.0), decay=0.01)
    expected_mean = 1 + 0.01 * (16 - 1)  # running mean + decay * (batch mean - running mean)
    assert float(mean) == pytest.approx(expected_mean)
    assert float(penalty.detach()) == pytest.approx(((8 - expected_mean) ** 2 + (24 - expected_mean) ** 2) / 2)
    assert not mean.requires_grad
    penalty.backward()  # create_graph: the penalty trains what made the images
    assert w_plus.grad is not None and float(w_plus.grad.abs().sum()) > 0


# ---------------------------------------------------------------------------------------------- the method


def test_lazy_regularisation_scales_learning_rates_and_betas(faces, tmp_path):
    method, _ = build_method(StyleGAN2, tiny_config(faces, tmp_path))
    groups = {name: optimizer.param_groups[0] for name, optimizer in method.optimizers().items()}
    assert groups["D"]["lr"] == pytest.approx(0.002 * 16 / 17)  # R1 every 16 steps
    assert groups["D"]["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert groups["G"]["lr"] == pytest.approx(0.002 * 4 / 5)  # path length every 4
    assert groups["G"]["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    plain, _ = build_method(StyleGAN2, tiny_config(faces, tmp_path, path_length_weight=0.0, r1_gamma=0.0))
    for optimizer in plain.optimizers().values():  # no regulariser: no adjustment
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.002)
        assert optimizer.param_groups[0]["betas"] == (0.0, 0.99)


def test_regularisers_run_on_their_steps_only(faces, tmp_path):
    method, ctx = build_method(StyleGAN2, tiny_config(faces, tmp_path, r1_every=2, path_length_every=3))
    batch = {"image": torch.stack([method.train_dataset()[i]["image"] for i in range(2)])}
    seen = {}
    for step in range(4):
        ctx.steps_done = step
        seen[step] = set(method.train_step(batch))
    main = {"D", "D_real_score", "D_fake_score", "G"}
    path = {"path_length_penalty", "path_length", "mean_path_length"}
    assert seen == {0: main | {"R1"} | path, 1: main, 2: main | {"R1"}, 3: main | path}
    assert float(method.mean_path_length) > 0


def test_style_mixing_follows_its_probability(faces, tmp_path):
    for probability in (0.0, 1.0):
        method, ctx = build_method(StyleGAN2, tiny_config(faces, tmp_path, mixing=probability))
        crossovers = []
        for step in range(20):
            ctx.steps_done = step
            crossovers.append(method._latents(ctx.shared_generator(1), 2)["crossover"])
        num_ws = method.generator.num_ws  # 6 at 16 px: no mixing is crossover 6
        if probability == 0:
            assert set(crossovers) == {num_ws}
        else:
            assert set(crossovers) <= set(range(1, num_ws)) and len(set(crossovers)) > 2


def test_diffaugment_translates_cuts_out_and_recolours():
    images = torch.arange(1, 2 * 3 * 4 * 4 + 1, dtype=torch.float32).view(2, 3, 4, 4) / 100  # no zero pixel
    shifted = DiffAugment(("translation",))(images, {"translation": torch.tensor([[1, 0], [0, -1]])})
    assert torch.equal(shifted[0, :, :3], images[0, :, 1:]) and bool((shifted[0, :, 3] == 0).all())
    assert torch.equal(shifted[1, :, :, 1:], images[1, :, :, :3]) and bool((shifted[1, :, :, 0] == 0).all())
    cut = DiffAugment(("cutout",))(images, {"cutout": torch.tensor([[2, 2], [0, 0]])})
    assert bool((cut[0, :, 1:3, 1:3] == 0).all()) and int((cut[0, 0] == 0).sum()) == 4  # a 2x2 square, centred
    assert bool((cut[1, :, :1, :1] == 0).all()) and int((cut[1, 0] == 0).sum()) == 1  # clipped at the corner
    neutral = DiffAugment(("color",))(images, {"color": torch.full((2, 3), 0.5)})  # +0, x1, x1
    torch.testing.assert_close(neutral, images)
    brighter = DiffAugment(("color",))(images, {"color": torch.tensor([[1.0, 0.5, 0.5]] * 2)})
    torch.testing.assert_close(brighter, images + 0.5)
    policy = DiffAugment.parse("color,translation,cutout")
    params = policy.draw(64, 16, 16, torch.Generator().manual_seed(0))
    assert int(params["translation"].abs().max()) == 2  # 1/8 of 16 px
    assert set(params) == {"color", "translation", "cutout"} and DiffAugment.parse("none").operations == ()
    with pytest.raises(GanslimError, match="'flip' is no DiffAugment operation"):
        DiffAugment.parse("color,flip")


def _write_images(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    folder.mkdir(parents=True)
    for index, size in enumerate(sizes):
        Image.fromarray(np.full((size[1], size[0], 3), 40 * index, dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


@pytest.mark.parametrize("sizes, overrides, words", [
    ([(16, 16), (16, 16), (32, 32)], {}, "differ in size: '{d}/0.png' is 16x16, '{d}/2.png' is 32x32"),
    ([(16, 12), (16, 12)], {}, "'{d}/0.png' is 16x12, not square"),
    ([(16, 16)] * 3, {"size": 32}, "are 16x16, not 32x32: pass --size 16"),
    ([(24, 24)] * 3, {}, "are 24x24: StyleGAN2 trains at a power-of-two side (4, 8, ..., 1024): pass --size 16"),
    ([(16, 16)] * 3, {"batch_size": 4}, "holds 3 images, fewer than one batch of 4: add images or lower --batch-size"),
])
def test_a_bad_image_folder_is_one_line(tmp_path, sizes, overrides, words):
    folder = _write_images(tmp_path / "d", sizes)
    config = StyleGAN2Config(data=str(folder), out_dir=str(tmp_path / "runs"), **{**TINY, "resize": False,
                                                                                   "size": 0, **overrides})
    with pytest.raises(GanslimError) as error:
        fit(config, StyleGAN2, progress=False)
    assert "\n" not in str(error.value) and words.format(d=folder) in str(error.value)
    assert not (tmp_path / "runs").exists()


def test_a_folder_of_other_sizes_trains_resized(tmp_path):
    folder = _write_images(tmp_path / "d", [(20, 16), (40, 40)])
    dataset = ImageFolderDataset(folder, 8, resize=True, flip=False)
    assert [tuple(dataset[i]["image"].shape) for i in range(2)] == [(3, 8, 8), (3, 8, 8)]


# ---------------------------------------------------------------------------------------------- runs


def test_a_run_logs_kimg_and_resumes_bit_exactly(faces, tmp_path):
    # 8 images, batch 2: 4 steps per epoch; 0.024 kimg = 12 steps; checkpoints every 5, killed in step 8.
    config = tiny_config(faces, tmp_path, kimg=0.024, ckpt_every=5, r1_every=3, path_length_every=2,
                         augment="color,translation,cutout")
    straight = fit(config, StyleGAN2, progress=False)
    assert straight.step == 12
    log = (straight.run_dir / "logs" / "log.txt").read_text()
    assert "stylegan2: 8 training images; 0.024 kimg = 12 steps of 2 images (3 epochs of 4 steps) on cpu" in log
    events = EventAccumulator(str(straight.run_dir / "logs"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    assert {"loss/D", "loss/G", "loss/R1", "loss/path_length_penalty", "loss/path_length", "loss/mean_path_length",
            "lr/G", "lr/D"} <= set(events.Tags()["scalars"]) and events.Tags()["images"] == ["samples"]
    # logged every step: R1 on steps 0, 3, 6, 9 (logged after them), path length on every other step
    assert [event.step for event in events.Scalars("loss/R1")] == [1, 4, 7, 10]
    assert [event.step for event in events.Scalars("loss/path_length")] == [1, 3, 5, 7, 9, 11]
    assert_resumes_bit_exactly(config, straight.run_dir, crash_on_call=8, resumed_from=5)
    weights_a, state_a = latest(straight.run_dir)
    assert float(state_a["ranks"][0]["method"]["mean_path_length"]) > 0
    assert not torch.equal(weights_a["ema"]["G"]["style.1.weight"], weights_a["networks"]["G"]["style.1.weight"])


def test_accumulated_parts_match_the_whole_batch(faces, tmp_path):
    # Per-sample losses (minibatch stddev over groups of 1; a constant running path-length mean): two parts of 2
    # images add up to the gradient of the batch of 4.
    common = dict(batch_size=4, stddev_group=1, path_length_decay=0.0, r1_every=2, path_length_every=2,
                  augment="translation", kimg=0.016)
    whole = fit(tiny_config(faces, tmp_path / "whole", **common), StyleGAN2, progress=False)
    parts = fit(tiny_config(faces, tmp_path / "parts", accumulate=2, **common), StyleGAN2, progress=False)
    assert_close_weights(latest(whole.run_dir)[0]["networks"], latest(parts.run_dir)[0]["networks"])


def test_exports_load_back_in_both_layouts_with_equal_outputs(faces, tmp_path):
    # Without a ramp-up the 10 kimg half-life keeps the average near the initial weights: g_ema differs from g.
    result = fit(tiny_config(faces, tmp_path, kimg=0.004, ema_rampup=0.0), StyleGAN2, progress=False)
    assert set(result.exported) == {"generator", "discriminator", "reference"}
    ours = load_generator(result.run_dir / "generator.pt")
    assert ours.meta["w_avg"] == "estimated from 10000 z (seed 0)" and ours.model.style.has_w_avg
    assert ours.meta["weights"] == "ema" and ours.meta["kimg"] == pytest.approx(0.004)
    reference = torch.load(result.run_dir / "reference" / "stylegan2.pt", weights_only=True)
    assert set(reference) == {"g_ema", "latent_avg", "g", "d"}
    shapes = rosinality_shapes(16, list(CHANNELS), 8, 1)
    del shapes["style.w_avg"]
    assert list(reference["g_ema"]) == list(shapes)  # rosinality's Generator state dict, key for key, in order
    assert {key: tuple(value.shape) for key, value in reference["g_ema"].items()} == shapes
    assert not torch.equal(reference["g"]["style.1.weight"], reference["g_ema"]["style.1.weight"])
    torch.testing.assert_close(reference["latent_avg"], ours.model.style.w_avg)

    theirs = load_generator(result.run_dir / "reference" / "stylegan2.pt")
    assert theirs.meta["format"] == "rosinality convert_weight.py" and theirs.meta["w_avg"] == "stored"
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        image = ours.model(z, truncation_psi=0.7)
        torch.testing.assert_close(theirs.model(z, truncation_psi=0.7), image)
        w = map_rosinality(reference["g_ema"], z)
        w = reference["latent_avg"] + 0.7 * (w - reference["latent_avg"])
        rosinality = synthesize_rosinality(reference["g_ema"], w[:, None].repeat(1, 6, 1),
                                           stored_noises(reference["g_ema"], 3))
    torch.testing.assert_close(rosinality, image, atol=1e-4, rtol=1e-4)
    discriminator = load_discriminator(result.run_dir / "reference" / "stylegan2.pt")
    with torch.no_grad():
        torch.testing.assert_close(discriminator.model(image), load_discriminator(
            result.run_dir / "discriminator.pt").model(image))


def test_the_sample_grid_is_fixed_z_images(faces, tmp_path):
    result = fit(tiny_config(faces, tmp_path, kimg=0.004, sample_images=3), StyleGAN2, progress=False)
    with Image.open(result.run_dir / "samples" / "step_00000002.png") as grid:
        assert grid.size == (3 * 16 + 4 * 2, 3 * 16 + 4 * 2)  # 3 x 3 images of 16 px, 2 px apart


def test_the_method_is_registered_and_its_cli_trains_or_refuses_in_one_line(faces, tmp_path, capsys):
    assert METHODS.get("stylegan2").command == TRAIN and METHODS.get("stylegan2").load().Config is StyleGAN2Config
    sets = [arg for key, value in TINY.items() if key not in ("size", "batch_size")
            for arg in ("--set", f"{key}={','.join(map(str, value)) if isinstance(value, tuple) else value}")]
    out = tmp_path / "runs"
    common = ["--data", str(faces), "--out-dir", str(out), "--device", "cpu", "--no-progress", *sets]
    assert cli_main(["train", "stylegan2", *common, "--size", "16", "--batch-size", "2", "--iterations", "2",
                     "--augment", "color,cutout"]) == 0  # a length in steps replaces the default kimg
    printed = capsys.readouterr().out
    assert "ganslim train stylegan2: 2 steps in" in printed
    assert "models: generator.pt, discriminator.pt, reference/stylegan2.pt" in printed
    for argv, words in (
            (["--size", "16", "--kimg", "1", "--epochs", "2"], "the length is given twice (kimg=1 and epochs=2)"),
            (["--size", "48"], "size 48 is not a power of two"),
            (["--size", "16", "--augment", "colour"], "'colour' is no DiffAugment operation"),
            (["--size", "16", "--set", "ema_decay=0.999", "--set", "ema_kimg=5"], "ema_decay 0.999 and ema_kimg 5 "
                                                                                   "both set"),
    ):
        assert cli_main(["train", "stylegan2", *common, *argv]) == 2, argv
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and words in error, error
    assert len(list(out.iterdir())) == 1


def test_two_processes_match_one_process_with_the_combined_batch(faces, tmp_path):
    # Every draw is made for the whole step's batch and shared out by rank, the path-length mean is over both
    # processes, and minibatch-stddev groups of 2 are the rows each rank holds (samples r, r + 2 of a batch of 4).
    settings = {**TINY, "stddev_group": 2, "kimg": 0.016, "ckpt_every": 2, "r1_every": 2, "path_length_every": 2,
                "augment": "color,translation,cutout"}
    sets = [arg for key, value in settings.items()
            for arg in ("--set", f"{key}={','.join(map(str, value)) if isinstance(value, tuple) else value}")]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "ganslim.cli", "train", "stylegan2", "--data", str(faces), "--out-dir", str(tmp_path / "ddp"),
               "--no-progress", "--device", "cpu", *sets]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ,
                                                                                       "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "ddp" / "00000-stylegan2-faces"
    assert ("0.016 kimg = 4 steps of 4 images (2 epochs of 2 steps) on cpu x 2 processes"
            in (run_dir / "logs" / "log.txt").read_text())
    single = fit(StyleGAN2Config(data=str(faces), out_dir=str(tmp_path / "single"), **{**settings, "batch_size": 4}),
                 StyleGAN2, progress=False)
    (together, state), (alone, _) = latest(run_dir), latest(single.run_dir)
    assert state["world_size"] == 2
    assert_close_weights(together["networks"], alone["networks"])
    assert_close_weights(together["ema"], alone["ema"])
    means = [float(rank["method"]["mean_path_length"]) for rank in state["ranks"]]
    assert means[0] == means[1] > 0  # one running mean over both processes


# ---------------------------------------------------------------------------------------------- mobile_stylegan
def test_a_mobile_stylegan_trains_with_its_own_mapping_on_the_table_without_its_last_width(faces, tmp_path):
    result = fit(tiny_config(faces, tmp_path, kimg=0.008, generator="mobile_stylegan"), StyleGAN2, progress=False)
    assert result.step == 4 and set(result.exported) == {"generator", "discriminator"}  # no rosinality layout
    loaded = load_generator(result.run_dir / "generator.pt")
    assert loaded.arch == "mobile_stylegan" and isinstance(loaded.model, MobileStyleGANGenerator)
    assert loaded.model.channels == {4: 8, 8: 8} and loaded.model.w_dim == 8 and len(loaded.model.style) == 2
    assert loaded.meta["w_avg"] == "estimated from 10000 z (seed 0)" and "mapping" not in loaded.meta
    weights = latest(result.run_dir)[0]
    assert not torch.equal(weights["ema"]["G"]["style.1.weight"], weights["networks"]["G"]["style.1.weight"])
    with torch.no_grad():
        images = loaded.model(torch.randn(2, 8, generator=torch.Generator().manual_seed(1)))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


def test_mapping_from_copies_the_teachers_mapping_frozen_and_resumes_bit_exactly(faces, tmp_path):
    # 0.012 kimg = 6 steps of 2; checkpoints every 3, killed in step 5; path lengths (through W+) every other step.
    teacher_file = save_tiny_stylegan2(tmp_path / "teacher.pt")
    config = tiny_config(faces, tmp_path, kimg=0.012, generator="mobile_stylegan", ckpt_every=3, r1_every=2,
                         path_length_every=2, mapping_from=str(teacher_file), augment="translation")
    straight = fit(config, StyleGAN2, progress=False)
    teacher, twin = tiny_stylegan2(), load_generator(straight.run_dir / "generator.pt")
    assert twin.arch == "mobile_stylegan" and twin.arch_kwargs["channels"] == [8, 8]
    assert twin.arch_kwargs["style_dim"] == 16  # the teacher's widths, not the config's
    assert twin.meta["w_avg"] == f"the mapping_from teacher's ({teacher_file})"
    assert twin.meta["mapping"] == f"copied from {teacher_file}, frozen"
    assert_same_tensors(twin.model.style.state_dict(), teacher.mapping.state_dict())  # w_avg included
    assert_same_tensors(list(twin.model.synthesis.noises.constants()), list(teacher.noises.constants())[:3])
    weights, state = latest(straight.run_dir)
    assert weights["networks"]["G"]["synthesis.conv1.bias"].abs().sum() > 0  # the synthesis trained
    assert float(state["ranks"][0]["method"]["mean_path_length"]) > 0
    assert_resumes_bit_exactly(config, straight.run_dir, crash_on_call=5, resumed_from=3)


@pytest.mark.parametrize("case, words", [
    ("stylegan2", "mapping_from is for --set generator=mobile_stylegan"),
    ("student", "holds a MobileStyleGANGenerator, not a stylegan2 generator"),
    ("side", "makes 16 px images but the training images are 32 px: pass --size 16"),
])
def test_a_mapping_from_that_does_not_fit_is_one_line(faces, tmp_path, case, words):
    source = (save_tiny_student(tmp_path / "student.pt") if case == "student"
              else save_tiny_stylegan2(tmp_path / "teacher.pt"))
    overrides = {"generator": "stylegan2"} if case == "stylegan2" else {"size": 32} if case == "side" else {}
    with pytest.raises(GanslimError, match="^[^\n]*$") as error:
        config = {"generator": "mobile_stylegan", "mapping_from": str(source), **overrides}
        fit(tiny_config(faces, tmp_path, **config), StyleGAN2, progress=False)
    assert words in str(error.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
