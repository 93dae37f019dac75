"""`ganslim eval` of latent (unconditional) generators: fidelity to a reference generator for the same z and noise,
FID/KID against a folder of real images or their statistics (a stand-in feature extractor, and random Inception
weights in the real file format), each checked against an independent recomputation from the state dicts, and bad
input as one line with nothing written."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ganslim.measure.evaluate
from ganslim.apps.generate import Sampling
from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.data import SingleImageDataset
from ganslim.errors import GanslimError
from ganslim.measure.evaluate import evaluate_generator, load_inception, mean_ssim, open_latent_eval_data
from ganslim.metrics import (
    extract_features,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    psnr,
)
from helpers import (
    TINY_STYLEGAN2,
    PooledColours,
    reference_seed_images,
    save_resnet,
    save_tiny_student,
    save_tiny_stylegan2,
    tiny_student,
    tiny_stylegan2,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, STYLE_DIM = TINY_STYLEGAN2["size"], TINY_STYLEGAN2["style_dim"]
SEEDS = range(4)
REAL_SIDE, NUM_REAL = 24, 8


def _save_random_images(folder, sizes) -> None:
    rng = np.random.default_rng(len(sizes))
    for index, (height, width) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{index}.png")


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """8 random real images of 24x24, another size than the generator's 16x16."""
    folder = tmp_path_factory.mktemp("real")
    _save_random_images(folder, [(REAL_SIDE, REAL_SIDE)] * NUM_REAL)
    return folder


def real_images(folder) -> torch.Tensor:
    """The real images of ``folder``, resized to the generator's side (N, 3, 16, 16) in [-1, 1]."""
    reals = SingleImageDataset(folder, load_size=SIZE)
    return torch.stack([reals[i]["image"] for i in range(len(reals))])


def perturbed(seed: int = 0) -> torch.nn.Module:
    """:func:`tiny_stylegan2` with its last to-RGB bias shifted: close to the original, not equal."""
    generator = tiny_stylegan2(seed)
    with torch.no_grad():
        generator.to_rgbs[-1].bias.add_(0.05)
    return generator


def latent_data(real=None):
    return open_latent_eval_data(tiny_stylegan2().signature, SEEDS, real)


def test_fidelity_of_a_generator_to_itself_is_perfect():
    result = evaluate_generator(tiny_stylegan2(), latent_data(), teacher=tiny_stylegan2(), metrics=("psnr", "ssim"),
                                sampling=Sampling(noise_mode="random"), batch_size=3, progress=False)
    assert result.metrics["psnr_teacher"] == math.inf
    assert result.metrics["ssim_teacher"] == pytest.approx(1.0, abs=1e-6)
    assert result.skipped == {} and result.num_images == 4
    assert result.info == {"seeds": "0-3", "truncation": 1.0, "noise_mode": "random"}


@pytest.mark.parametrize("noise", ["const", "random", "none"])
def test_fidelity_to_a_perturbed_copy_is_psnr_and_ssim_of_the_same_z_and_noise(noise):
    result = evaluate_generator(perturbed(), latent_data(), teacher=tiny_stylegan2(), metrics=("psnr", "ssim"),
                                sampling=Sampling(noise_mode=noise), batch_size=3, progress=False)
    student, teacher = (reference_seed_images(g, SEEDS, noise).clamp(-1, 1) for g in (perturbed(), tiny_stylegan2()))
    assert result.metrics["psnr_teacher"] == pytest.approx(float(psnr(student, teacher).mean()), rel=1e-4)
    assert result.metrics["ssim_teacher"] == pytest.approx(float(mean_ssim(student, teacher).mean()), rel=1e-4)
    assert 10 < result.metrics["psnr_teacher"] < 60
    assert result.metrics["ssim_teacher"] < 1


def test_truncation_pulls_each_model_toward_its_own_mean_w():
    estimated = tiny_stylegan2(w_avg=False)
    result = evaluate_generator(tiny_stylegan2(), latent_data(), teacher=estimated, metrics=("psnr",),
                                sampling=Sampling(truncation_psi=0.5), progress=False)
    assert result.info["truncation_mean"] == {
        "generator": "the w_avg stored in the generator",
        "teacher": "a mean W estimated from 10000 mapped z of seed 0"}
    assert estimated.style.has_w_avg, "the estimate is kept in the teacher's w_avg"
    student, teacher = (reference_seed_images(g, SEEDS, psi=0.5).clamp(-1, 1) for g in (tiny_stylegan2(), estimated))
    assert result.metrics["psnr_teacher"] == pytest.approx(float(psnr(student, teacher).mean()), rel=1e-4)
    assert result.metrics["psnr_teacher"] < 60, "the two means differ"


def test_differing_stored_noise_is_noted(caplog):
    with caplog.at_level(logging.WARNING):
        evaluate_generator(tiny_stylegan2(0), latent_data(), teacher=tiny_stylegan2(1), progress=False)
    assert any("stored noise images differ from the teacher's" in r.getMessage() for r in caplog.records)


def student_and_teacher_images(noise: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The clamped images of :func:`tiny_student` and its teacher :func:`tiny_stylegan2` for :data:`SEEDS`, drawn here
    by hand: each seed's z, then (``random``) the teacher's five noise images from the same stream, of which the
    student reads the first three (sides 4, 8, 8); each maps z and broadcasts W to its own W+ (4 and 6 entries)."""
    student, teacher = tiny_student(), tiny_stylegan2()
    images: tuple[list, list] = ([], [])
    for seed in SEEDS:
        rng = torch.Generator().manual_seed(seed)
        z = torch.randn(1, STYLE_DIM, generator=rng)
        draws = [torch.randn(1, 1, side, side, generator=rng) for side in (4, 8, 8, 16, 16)]
        with torch.no_grad():
            images[0].append(student(z, noise=draws[:3] if noise == "random" else noise))
            images[1].append(teacher(z, noise=draws if noise == "random" else noise))
    return torch.cat(images[0]).clamp(-1, 1), torch.cat(images[1]).clamp(-1, 1)


@pytest.mark.parametrize("noise", ["const", "random", "none"])
def test_fidelity_of_a_mobile_stylegan_student_to_its_teacher_uses_the_same_z_and_noise(noise, caplog):
    with caplog.at_level(logging.WARNING):
        result = evaluate_generator(tiny_student(), latent_data(), teacher=tiny_stylegan2(), metrics=("psnr", "ssim"),
                                    sampling=Sampling(noise_mode=noise), batch_size=3, progress=False)
    assert not caplog.records, "the student's stored noise is its teacher's first: nothing differs"
    student, teacher = student_and_teacher_images(noise)
    assert result.metrics["psnr_teacher"] == pytest.approx(float(psnr(student, teacher).mean()), rel=1e-4)
    assert result.metrics["ssim_teacher"] == pytest.approx(float(mean_ssim(student, teacher).mean()), rel=1e-4)
    assert 3 < result.metrics["psnr_teacher"] < 40 and result.num_images == 4


def test_a_student_of_another_teacher_has_other_stored_noise_and_is_noted(caplog):
    with caplog.at_level(logging.WARNING):
        evaluate_generator(tiny_student(teacher_seed=1), latent_data(), teacher=tiny_stylegan2(0), progress=False)
    assert any("stored noise images differ from the teacher's" in r.getMessage() for r in caplog.records)


def test_cli_fidelity_of_a_saved_student_to_its_teacher(tmp_path, no_inception, capsys):
    student, teacher = save_tiny_student(tmp_path / "student.pt"), save_tiny_stylegan2(tmp_path / "teacher.pt")
    code, out, _ = _eval(capsys, "--ckpt", student, "--teacher", teacher, "--seeds", "0-3", "--noise-mode", "random",
                         "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["arch"], report["resolution"], report["num_images"]) == ("mobile_stylegan", SIZE, 4)
    images = student_and_teacher_images("random")
    assert report["metrics"]["psnr_teacher"] == pytest.approx(float(psnr(*images).mean()), rel=1e-4)


def test_fid_and_kid_against_a_real_folder_of_another_size(real_folder, caplog):
    with caplog.at_level(logging.WARNING):
        data = latent_data(real_folder)
    assert [r.getMessage() for r in caplog.records] == [
        f"note: the 8 real images in '{real_folder}' are 24x24: they are resized (bicubic) to the generator's 16x16"]
    result = evaluate_generator(tiny_stylegan2(), data, metrics=("fid", "kid"), extractor=PooledColours(),
                                kid_subsets=10, progress=False)
    real_features = extract_features([real_images(real_folder)], PooledColours())
    fake_features = extract_features([reference_seed_images(tiny_stylegan2(), SEEDS).clamp(-1, 1)], PooledColours())
    expected = frechet_distance(*feature_statistics(fake_features), *feature_statistics(real_features))
    assert result.metrics["fid"] == pytest.approx(expected, rel=1e-4)
    assert "kid" in result.metrics and result.num_real == NUM_REAL
    assert result.data == f"4 image(s) drawn from seeds 0-3; real images: {real_folder} (8)"


def test_cached_real_statistics_give_the_same_fid(real_folder, tmp_path):
    stats = tmp_path / "real.npz"
    fresh = evaluate_generator(tiny_stylegan2(), latent_data(real_folder), metrics=("fid",),
                               extractor=PooledColours(), save_real_stats=stats, progress=False)
    cached = evaluate_generator(tiny_stylegan2(), latent_data(), metrics=("fid", "kid"), extractor=PooledColours(),
                                real_stats=stats, progress=False)
    assert cached.metrics["fid"] == pytest.approx(fresh.metrics["fid"], rel=1e-6)
    assert "real images' features" in cached.skipped["kid"]


def _eval(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["eval", "--device", "cpu", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_fidelity_json_and_fid_skipped_without_inception(tmp_path, real_folder, no_inception, capsys):
    generator = save_model(tmp_path / "student.pt", perturbed(), "stylegan2", TINY_STYLEGAN2)
    teacher = save_tiny_stylegan2(tmp_path / "teacher.pt")
    code, out, err = _eval(capsys, "--ckpt", generator, "--teacher", teacher, "--real", real_folder,
                           "--seeds", "0-3", "--noise-mode", "random", "--json", "--out", tmp_path / "eval.json")
    assert code == 0
    report = json.loads(out)
    student, reference = (reference_seed_images(g, SEEDS, "random").clamp(-1, 1) for g in (perturbed(),
                                                                                            tiny_stylegan2()))
    assert report["metrics"]["psnr_teacher"] == pytest.approx(float(psnr(student, reference).mean()), rel=1e-4)
    assert set(report["skipped"]) == {"fid", "kid"} and str(no_inception) in report["skipped"]["fid"]
    assert [line for line in err.splitlines() if "skipped" in line] == [f"FID/KID skipped: {report['skipped']['fid']}"]
    assert (report["seeds"], report["noise_mode"], report["resolution"]) == ("0-3", "random", SIZE)
    assert json.loads((tmp_path / "eval.json").read_text()) == report


def test_cli_kid_with_random_inception_then_fid_from_the_saved_statistics(tmp_path, inception_file, monkeypatch,
                                                                         capsys):
    ckpt, stats, real_folder = save_tiny_stylegan2(tmp_path / "g.pt"), tmp_path / "real.npz", tmp_path / "real"
    real_folder.mkdir()
    _save_random_images(real_folder, [(REAL_SIDE, REAL_SIDE)] * 4)  # few: Inception runs at 299 px on the CPU
    code, out, _ = _eval(capsys, "--ckpt", ckpt, "--real", real_folder, "--num-images", "4", "--metrics", "kid",
                         "--inception-weights", inception_file, "--save-real-stats", stats, "--batch-size", "4",
                         "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["num_images"], report["num_real"], report["skipped"]) == (4, 4, {})
    extractor = load_inception(inception_file)
    fake_features = extract_features([reference_seed_images(tiny_stylegan2(), SEEDS).clamp(-1, 1)], extractor)
    real_features = extract_features([real_images(real_folder)], extractor)
    assert np.ptp(real_features, axis=0).max() > 0, "the features are not degenerate"
    kid, kid_std = kernel_inception_distance(fake_features, real_features)
    assert report["metrics"]["kid"] == pytest.approx(kid, rel=1e-4, abs=1e-9)
    assert report["metrics"]["kid_std"] == pytest.approx(kid_std, rel=1e-4, abs=1e-9)
    with np.load(stats) as saved:  # pytorch-fid's format
        mu, sigma = saved["mu"], saved["sigma"]
    np.testing.assert_allclose(mu, feature_statistics(real_features)[0], rtol=1e-5, atol=1e-7)

    # The 2048x2048 matrix square root of FID takes tens of seconds here: record what it is given instead.
    calls = []
    monkeypatch.setattr(ganslim.measure.evaluate, "frechet_distance", lambda *stats: calls.append(stats) or 1.5)
    code, out, _ = _eval(capsys, "--ckpt", ckpt, "--real-stats", stats, "--num-images", "4", "--metrics", "fid",
                         "--inception-weights", inception_file, "--batch-size", "4", "--json")
    assert code == 0 and json.loads(out)["metrics"] == {"fid": 1.5}
    (fake_mu, fake_sigma, real_mu, real_sigma), = calls
    np.testing.assert_allclose(fake_mu, feature_statistics(fake_features)[0], rtol=1e-4, atol=1e-6)
    assert np.array_equal(real_mu, mu) and np.array_equal(real_sigma, sigma)


def test_cli_bad_input_is_one_line_with_nothing_written(tmp_path, real_folder, inception_file, capsys):
    ckpt = save_tiny_stylegan2(tmp_path / "g.pt")
    resnet = save_resnet(tmp_path / "resnet.pt", 4)
    small_kwargs = {"size": 8, "channels": [8, 8], "style_dim": STYLE_DIM, "n_mlp": 2}
    small = save_model(tmp_path / "small.pt", build_generator("stylegan2", **small_kwargs), "stylegan2", small_kwargs)
    wide_kwargs = {**TINY_STYLEGAN2, "style_dim": 8}
    wide = save_model(tmp_path / "z8.pt", build_generator("stylegan2", **wide_kwargs), "stylegan2", wide_kwargs)
    few, mixed = tmp_path / "few", tmp_path / "mixed"
    few.mkdir()
    mixed.mkdir()
    _save_random_images(few, [(REAL_SIDE, REAL_SIDE)] * 3)  # of another size: the note would be a second line
    _save_random_images(mixed, [(SIZE, SIZE)] * 3 + [(20, 12)] + [(SIZE, SIZE)] * 4)
    stats, out = tmp_path / "stats.npz", tmp_path / "eval.json"
    cases = [
        (("--ckpt", ckpt, "--real", few, "--num-images", "2"), f"--real '{few}' holds 3 image(s)", "(--batch-size 8)"),
        (("--ckpt", ckpt, "--real", mixed), f"--real '{mixed}' holds images of 2 sizes", "3.png' 12x20"),
        (("--ckpt", ckpt, "--real", real_folder, "--real-stats", stats), "--real and --real-stats exclude"),
        (("--ckpt", ckpt, "--data", real_folder), "--data is for image models, and stylegan2"),
        (("--ckpt", ckpt, "--real", real_folder, "--max-images", "2"), "pass --num-images N"),
        (("--ckpt", ckpt), "nothing to score: pass --real DIR or --real-stats NPZ"),
        (("--ckpt", ckpt, "--teacher", small, "--real", real_folder), "draws 3x16x16 images but the teacher 3x8x8"),
        (("--ckpt", ckpt, "--teacher", wide, "--real", real_folder), "takes z of 16 values but the teacher 8"),
        (("--ckpt", ckpt, "--teacher", resnet, "--num-images", "2"), "the teacher is image-to-image"),
        (("--ckpt", ckpt, "--teacher", ckpt, "--seeds", "0-3", "--num-images", "4"), "exclude each other"),
        (("--ckpt", ckpt, "--teacher", ckpt, "--seeds", "5-2"), "runs downward"),
        (("--ckpt", ckpt, "--teacher", ckpt, "--truncation", "2"), "--truncation 2.0 is outside [0, 1]"),
        (("--ckpt", resnet, "--data", real_folder, "--real", real_folder), "--real is for latent generators"),
        (("--ckpt", resnet, "--data", real_folder, "--seeds", "0-3"), "--seeds is for latent generators"),
    ]
    for argv, *words in cases:
        code, _, err = _eval(capsys, *argv, "--inception-weights", inception_file, "--save-real-stats", stats,
                             "--out", out)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("ganslim eval: error: "), (argv, err)
        assert all(word in lines[0] for word in words), (words, lines[0])
        assert not stats.exists() and not out.exists(), argv


def test_library_checks_the_data_against_the_model(real_folder):
    with pytest.raises(GanslimError, match="image-to-image, but the data holds seeds for a latent generator"):
        evaluate_generator(torch.nn.Conv2d(3, 3, 1), latent_data(), progress=False)
    with pytest.raises(GanslimError, match="no seeds given"):
        open_latent_eval_data(tiny_stylegan2().signature, [])
    with pytest.raises(GanslimError, match=r"holds 8 image\(s\): .* \(--batch-size 9\)"):
        open_latent_eval_data(tiny_stylegan2().signature, SEEDS, real_folder, batch_size=9)
