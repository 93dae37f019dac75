"""Projection onto a StyleGAN2 generator and `ganslim project`: the loss falls and the PSNR beats the mean-W start, the
encoder start, noise and sub-generator options, the files written (W+ .npy that `ganslim generate --w` renders back
exactly), and one-line refusals with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganslim.cli import main
from ganslim.data import image_to_tensor, save_image
from ganslim.editing import project
from ganslim.editing.encoder import encoder_for, save_encoder
from ganslim.editing.projection import run_projection, start_w_plus
from ganslim.errors import GanslimError
from helpers import TINY_ENCODER, TINY_STYLEGAN2, save_tiny_stylegan2, tiny_stylegan2

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_user_vgg")

NUM_WS, W_DIM = 6, TINY_STYLEGAN2["style_dim"]


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    return save_tiny_stylegan2(tmp_path_factory.mktemp("generator") / "generator.pt")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two of the generator's own images (seeds 5 and 6 mapped to W) as PNGs, one of them 32 px (resized to 16)."""
    folder = tmp_path_factory.mktemp("photos")
    generator = tiny_stylegan2()
    with torch.no_grad():
        images = generator(torch.randn(2, W_DIM, generator=torch.Generator().manual_seed(5)))
    save_image(images[0], folder / "a.png")
    save_image(torch.nn.functional.interpolate(images[1:], size=(32, 32), mode="nearest")[0], folder / "b.png")
    return folder


def target_image(seed: int = 3) -> torch.Tensor:
    generator = tiny_stylegan2()
    with torch.no_grad():
        return generator(torch.randn(1, W_DIM, generator=torch.Generator().manual_seed(seed))).clamp(-1, 1)


def test_projection_lowers_its_loss_and_beats_the_mean_w_start():
    generator = tiny_stylegan2()
    found = run_projection(generator, target_image(), steps=40, lr=0.05)
    assert found.w_plus.shape == (1, NUM_WS, W_DIM)
    assert found.loss < 0.5 * found.loss_start
    assert found.psnr > found.psnr_start + 3
    mean_start = generator.broadcast(generator.style.w_avg[None])
    with torch.no_grad():
        assert found.psnr_start == pytest.approx(
            float(10 * torch.log10(4 / (generator.synthesize(mean_start).clamp(-1, 1) - target_image()).pow(2).mean())),
            abs=1e-4)
    assert all(parameter.grad is None for parameter in generator.parameters())


def test_the_encoder_start_noise_and_sub_generators():
    generator = tiny_stylegan2()
    encoder = encoder_for(generator, **TINY_ENCODER)
    with torch.no_grad():
        encoder.offsets.bias.normal_()
    image = target_image()
    assert torch.equal(project(generator, image, 0, encoder), encoder(image))
    assert torch.equal(start_w_plus(generator, image), generator.style.w_avg.expand(1, NUM_WS, W_DIM))
    found = run_projection(generator, image, steps=10, lr=0.05, optimize_noise=True, sub_generators=True, seed=1)
    assert len(found.noise) == generator.num_noises
    for buffer, stored in zip(found.noise, generator.noises.constants()):
        assert buffer.shape == stored.shape and not torch.equal(buffer, stored)
        assert float(buffer.mean()) == pytest.approx(0, abs=1e-5) and float(buffer.std()) == pytest.approx(1, abs=1e-5)
    assert found.loss < found.loss_start
    assert generator.active_subnet.channels == tuple(generator.layer_channels)  # the full generator again
    generator.set_subnet(8, 0.5)  # a preview is active: projection still fits the full generator, then restores it
    assert run_projection(generator, image, steps=0).image.shape == (1, 3, 16, 16)
    assert generator.active_subnet.resolution == 8
    with pytest.raises(GanslimError, match=r"one image of shape \(1, 3, H, W\)"):
        project(generator, torch.zeros(2, 3, 16, 16), 1)


def test_project_writes_w_plus_that_generate_renders_back(generator_file, photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["project", "--generator", str(generator_file), "--input", str(photos), "--output", str(out),
                 "--steps", "20", "--lr", "0.05", "--device", "cpu", "--no-progress"]) == 0
    line = capsys.readouterr().out
    assert "projected 2 image(s)" in line and "from the mean W" in line and "mse (no VGG16 weights)" in line
    results = json.loads((out / "results.json").read_text())
    assert [entry["w_plus"] for entry in results["images"]] == ["a.npy", "b.npy"]
    assert results["start"] == "the mean W" and results["steps"] == 20
    assert all(entry["psnr"] > entry["psnr_start"] for entry in results["images"])
    w_plus = np.load(out / "a.npy")
    assert w_plus.shape == (NUM_WS, W_DIM) and w_plus.dtype == np.float32
    assert main(["generate", "--ckpt", str(generator_file), "--w", str(out / "a.npy"), "--output",
                 str(tmp_path / "again"), "--save-array", "--device", "cpu"]) == 0
    assert sorted(path.name for path in (tmp_path / "again").glob("*.png")) == ["000000.png"]
    again = np.asarray(Image.open(tmp_path / "again" / "000000.png"))
    assert np.array_equal(again, np.asarray(Image.open(out / "a.png")))
    with torch.no_grad():
        rendered = tiny_stylegan2().synthesis(torch.from_numpy(w_plus)[None])
    assert torch.allclose(torch.from_numpy(np.load(tmp_path / "again" / "images.npy")), rendered, atol=1e-5)


def test_project_starts_from_the_encoder_and_writes_noise(generator_file, photos, tmp_path, capsys):
    generator = tiny_stylegan2()
    encoder_file = save_encoder(tmp_path / "encoder.pt", encoder_for(generator, **TINY_ENCODER), generator)
    out = tmp_path / "out"
    assert main(["project", "--generator", str(generator_file), "--encoder", str(encoder_file), "--input",
                 str(photos), "--output", str(out), "--steps", "2", "--noise", "--sub-generators", "--device", "cpu",
                 "--no-progress"]) == 0
    assert f"from encoder {encoder_file}" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["optimize_noise"] and results["sub_generators"]
    with np.load(out / results["images"][0]["noise"]) as noise:
        assert sorted(noise) == [f"noise_{index}" for index in range(generator.num_noises)]
    reconstruction = image_to_tensor(Image.open(out / "a.png").convert("RGB"))
    assert reconstruction.shape == (3, 16, 16)


def test_bad_input_is_one_line_and_nothing_written(generator_file, photos, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "good.png").write_bytes((photos / "a.png").read_bytes())
    (broken / "bad.png").write_bytes((photos / "a.png").read_bytes()[:40])
    (broken / "notes.txt").write_text("not an image")  # no image extension: ignored
    twins = tmp_path / "twins"
    (twins / "sub").mkdir(parents=True)
    (twins / "a.png").write_bytes((photos / "a.png").read_bytes())
    (twins / "sub" / "a.jpg").write_bytes((photos / "b.png").read_bytes())
    other = save_tiny_stylegan2(tmp_path / "other.pt", seed=1)
    generator = tiny_stylegan2(seed=1)
    foreign = save_encoder(tmp_path / "foreign.pt", encoder_for(generator, **TINY_ENCODER), generator)
    out = tmp_path / "out"
    cases = [
        (["--input", str(broken)], "cannot read image"),
        (["--input", str(twins)], "share the stem 'a'"),
        (["--input", str(tmp_path / "missing")], "does not exist"),
        (["--input", str(photos), "--encoder", str(foreign)], "trained for another generator"),
        (["--input", str(photos), "--steps", "-1"], "--steps -1 must be a whole number"),
    ]
    for flags, words in cases:
        assert main(["project", "--generator", str(generator_file), "--output", str(out), "--device", "cpu",
                     "--no-progress", *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ganslim project: error: ") and words in err[0], (words, err)
        assert not out.exists() or not any(out.iterdir())
    inside = photos / "out"
    assert main(["project", "--generator", str(other), "--input", str(photos), "--output", str(inside),
                 "--device", "cpu", "--no-progress"]) == 2
    assert "is inside --input" in capsys.readouterr().err
    assert not inside.exists()
