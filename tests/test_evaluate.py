"""ganslim.measure.evaluate and `ganslim eval`: metrics against direct calls, skipped FID/KID, real-statistics caching."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ganslim.measure.evaluate
import ganslim.outputs
from ganslim.cli import main
from ganslim.data import AlignedDataset
from ganslim.errors import GanslimError
from ganslim.measure.evaluate import evaluate_generator, open_eval_data, parse_metrics
from ganslim.metrics import (
    extract_features,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    load_inception,
    load_statistics,
    psnr,
    quantize_uint8,
    ssim,
)
from helpers import PooledColours

SIZE = 32


def _pairs(root, split):
    pairs = AlignedDataset(root, split, load_size=SIZE, crop_size=SIZE, flip=False)
    return (torch.stack([pairs[i]["A"] for i in range(len(pairs))]),
            torch.stack([pairs[i]["B"] for i in range(len(pairs))]))


def _load(path):
    from ganslim.checkpoints import load_generator

    return load_generator(path).model


class Identity1x1(nn.Module):
    """A generator that returns its input exactly: a 1x1 convolution with identity weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(x)


def test_identity_generator_scores_perfectly(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "test").mkdir()
    for index in range(3):
        half = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([half, half], axis=1)).save(tmp_path / "test" / f"{index}.png")
    data = open_eval_data(tmp_path, split="test", size=SIZE)
    result = evaluate_generator(Identity1x1(), data, metrics=("psnr", "ssim"), teacher=Identity1x1(),
                                batch_size=2, progress=False)
    assert result.num_images == 3 and result.paired
    assert result.metrics["psnr"] == math.inf and result.metrics["psnr_teacher"] == math.inf
    assert result.metrics["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert result.metrics["ssim_teacher"] == pytest.approx(1.0, abs=1e-6)
    assert result.skipped == {}
    encoded = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # strict JSON: inf becomes "inf"
    assert encoded["metrics"]["psnr"] == "inf"


def test_cli_eval_matches_direct_metrics_and_skips_fid_kid_in_one_line(dataset, checkpoints, no_inception, capsys):
    code = main(["eval", "--ckpt", str(checkpoints["student"]), "--data", str(dataset), "--split",
                 "val", "--size", str(SIZE), "--teacher", str(checkpoints["teacher"]), "--device", "cpu"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    skipped = [line for line in lines if "skipped" in line]
    assert len(skipped) == 1
    assert skipped[0].startswith("FID/KID skipped:")
    assert str(no_inception) in skipped[0] and "GANSLIM_INCEPTION_WEIGHTS" in skipped[0]

    inputs, targets = _pairs(dataset, "val")
    with torch.no_grad():
        fake = _load(checkpoints["student"])(inputs).clamp(-1, 1)
        reference = _load(checkpoints["teacher"])(inputs).clamp(-1, 1)
    expected = {"PSNR vs target": f"{psnr(fake, targets).mean():.2f} dB",
                "SSIM vs target": f"{ssim(fake, targets).mean():.4f}",
                "PSNR vs teacher": f"{psnr(fake, reference).mean():.2f} dB",
                "SSIM vs teacher": f"{ssim(fake, reference).mean():.4f}"}
    for label, value in expected.items():
        assert any(line.split() and line.strip().startswith(label) and line.strip().endswith(value)
                   for line in lines), (label, value, lines)


def test_cli_kid_with_random_inception_and_saved_real_statistics(dataset, checkpoints, inception_file, tmp_path,
                                                                 capsys):
    stats = tmp_path / "real.npz"
    # FID itself is left to the library test below: the 2048x2048 matrix square root of so few images would
    # take most of this file's time budget.
    code = main(["eval", "--ckpt", str(checkpoints["student"]), "--data", str(dataset), "--split", "val",
                 "--size", str(SIZE), "--metrics", "kid,psnr", "--inception-weights", str(inception_file),
                 "--save-real-stats", str(stats), "--device", "cpu", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_images"] == 2 and report["num_real"] == 2 and report["skipped"] == {}
    assert report["real_stats_saved"] == str(stats)
    assert set(report["metrics"]) == {"psnr", "kid", "kid_std"}

    extractor = load_inception(inception_file)
    inputs, targets = _pairs(dataset, "val")
    with torch.no_grad():
        fake = _load(checkpoints["student"])(inputs).clamp(-1, 1)
    fake_features = extract_features([fake], extractor)
    real_features = extract_features([targets], extractor)
    assert np.ptp(real_features, axis=0).max() > 0  # the features are not degenerate
    kid, kid_std = kernel_inception_distance(fake_features, real_features)
    assert report["metrics"]["kid"] == pytest.approx(kid, rel=1e-4, abs=1e-9)
    assert report["metrics"]["kid_std"] == pytest.approx(kid_std, rel=1e-4, abs=1e-9)

    mu, sigma = load_statistics(stats)
    expected_mu, expected_sigma = feature_statistics(real_features)
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
    np.testing.assert_allclose(mu, expected_mu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-4, atol=1e-8)


def test_fid_from_cached_statistics_equals_fid_from_images(dataset, checkpoints, tmp_path):
    generator = _load(checkpoints["student"])
    data = open_eval_data(dataset, split="train", size=SIZE)
    stats = tmp_path / "stats" / "real.npz"
    fresh = evaluate_generator(generator, data, metrics=("fid", "kid"), extractor=PooledColours(),
                               save_real_stats=stats, kid_subsets=10, progress=False)
    cached = evaluate_generator(generator, data, metrics=("fid", "kid"), extractor=PooledColours(),
                                real_stats=stats, progress=False)

    inputs, targets = _pairs(dataset, "train")
    with torch.no_grad():
        fake = generator(inputs).clamp(-1, 1)
    expected = frechet_distance(*feature_statistics(PooledColours()(quantize_uint8(fake))),
                                *feature_statistics(PooledColours()(quantize_uint8(targets))))
    assert fresh.metrics["fid"] == pytest.approx(expected, rel=1e-6)
    assert cached.metrics["fid"] == pytest.approx(expected, rel=1e-6)
    assert "kid" in fresh.metrics and "kid" not in cached.metrics
    assert "real-stats" in cached.skipped["kid"]
    assert fresh.real_stats_saved == stats and stats.is_file()


def test_unpaired_and_folder_data_skip_what_they_cannot_support(tmp_path):
    rng = np.random.default_rng(1)
    for folder in ("testA", "testB"):
        (tmp_path / "unaligned" / folder).mkdir(parents=True)
        for index in range(2):
            pixels = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "unaligned" / folder / f"{index}.png")
    unpaired = open_eval_data(tmp_path / "unaligned", split="test", size=SIZE)
    assert not unpaired.paired and len(unpaired.real) == 2
    result = evaluate_generator(Identity1x1(), unpaired, metrics=("psnr", "ssim", "fid"), extractor=PooledColours(),
                                progress=False)
    assert set(result.skipped) == {"psnr", "ssim"} and "fid" in result.metrics

    images = open_eval_data(tmp_path / "unaligned" / "testA", size=SIZE)
    result = evaluate_generator(Identity1x1(), images, metrics=("fid",), extractor=PooledColours(), progress=False)
    assert "--real-stats" in result.skipped["fid"] and result.metrics == {}


def test_bad_options_are_user_errors(dataset):
    with pytest.raises(GanslimError, match="unknown metric"):
        parse_metrics("fid,lpips")
    with pytest.raises(GanslimError, match="no val2/ split"):
        open_eval_data(dataset, split="val2", size=SIZE)
    data = open_eval_data(dataset, split="val", size=SIZE)
    with pytest.raises(GanslimError, match="exclude each other"):
        evaluate_generator(Identity1x1(), data, real_stats="a.npz", save_real_stats="b.npz", progress=False)


def _eval(*argv: str) -> list[str]:
    return ["eval", *argv, "--device", "cpu"]


def test_an_explicit_missing_inception_weights_path_is_an_error_not_a_skip(dataset, checkpoints, tmp_path, capsys):
    missing = tmp_path / "nowhere.pth"
    assert main(_eval("--ckpt", str(checkpoints["student"]), "--data", str(dataset), "--split", "val", "--size",
                      str(SIZE), "--inception-weights", str(missing))) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"size {SIZE}x{SIZE} (--size)",
        f"ganslim eval: error: --inception-weights '{missing}' not found: point it at "
        "pt_inception-2015-12-05-6726825d.pth (from https://github.com/mseitzer/pytorch-fid/releases/download/"
        "fid_weights/pt_inception-2015-12-05-6726825d.pth), or drop it to skip FID/KID"]


def test_save_real_stats_into_a_folder_or_read_only_place_fails_before_any_work(dataset, tmp_path, monkeypatch):
    data = open_eval_data(dataset, split="val", size=SIZE)
    monkeypatch.setattr(ganslim.measure.evaluate, "extract_features", lambda *a, **k: pytest.fail("worked before checking"))
    (tmp_path / "stats").mkdir()
    with pytest.raises(GanslimError, match="--save-real-stats '.*stats' is a folder: pass a file name"):
        evaluate_generator(Identity1x1(), data, extractor=PooledColours(), save_real_stats=tmp_path / "stats",
                           progress=False)
    monkeypatch.setattr(ganslim.outputs.os, "access", lambda path, mode: False)
    with pytest.raises(GanslimError, match="is read-only"):
        evaluate_generator(Identity1x1(), data, extractor=PooledColours(), save_real_stats=tmp_path / "s.npz",
                           progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats"]


def test_a_truncated_real_stats_file_is_one_line(dataset, tmp_path):
    stats = tmp_path / "real.npz"
    data = open_eval_data(dataset, split="val", size=SIZE)
    evaluate_generator(Identity1x1(), data, metrics=("fid",), extractor=PooledColours(), save_real_stats=stats,
                       progress=False)
    stats.write_bytes(stats.read_bytes()[:200])
    with pytest.raises(GanslimError) as error:
        evaluate_generator(Identity1x1(), data, metrics=("fid",), extractor=PooledColours(), real_stats=stats,
                           progress=False)
    message = str(error.value)
    assert f"cannot read FID statistics {stats} as .npz" in message and "\n" not in message


class HalfNaN(Identity1x1):
    """Identity, except that the first image of every batch comes out as NaN."""

    def forward(self, x):
        y = super().forward(x).clone()
        y[0] = float("nan")
        return y


def test_non_finite_outputs_are_warned_about(dataset, caplog):
    data = open_eval_data(dataset, split="train", size=SIZE)
    with caplog.at_level("WARNING", logger="ganslim.measure.evaluate"):
        evaluate_generator(HalfNaN(), data, metrics=("psnr",), batch_size=4, progress=False)
    warnings = [r.getMessage() for r in caplog.records if "NaN" in r.getMessage()]
    assert len(warnings) == 1 and f"for 4 of {len(data.inputs)} image(s)" in warnings[0]


def test_eval_runs_at_the_size_the_checkpoint_was_trained_at(dataset, tmp_path, capsys):
    from ganslim.archs import build_generator
    from ganslim.checkpoints import save_model

    kwargs = {"ngf": 4, "norm": "instance"}
    ckpt = save_model(tmp_path / "student.pt", build_generator("resnet_6blocks", **kwargs), "resnet_6blocks",
                      kwargs, meta={"crop_size": SIZE})
    assert main(_eval("--ckpt", str(ckpt), "--data", str(dataset), "--split", "val", "--metrics", "psnr",
                      "--json")) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["size"] == SIZE
    assert f"size {SIZE}x{SIZE} (the size student.pt was trained at)" in captured.err
