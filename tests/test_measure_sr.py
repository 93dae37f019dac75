"""`eval`, `bench` and `quantize` on super-resolution models: whole images, GT at the output size, BasicSR's metrics
(checked against ganslim.metrics.sr_psnr / sr_ssim computed here), and the one-line errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.data import HRFolderDataset, PairedSRDataset, make_builtin
from ganslim.data.sr import bicubic_downsample
from ganslim.errors import GanslimError
from ganslim.export import load_exported
from ganslim.export.calibration import split_data
from ganslim.export.quantize import quantize_model
from ganslim.measure.bench import BenchModel, run_bench
from ganslim.measure.evaluate import (
    Scoring,
    evaluate_generator,
    open_sr_eval_data,
    score_models,
)
from ganslim.measure.profile import count_macs
from ganslim.metrics import feature_statistics, frechet_distance, quantize_uint8, sr_psnr, sr_ssim
from ganslim.signature import Signature
from helpers import PooledColours

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
SCALE = 4


def near_identity_rrdbnet(seed: int, scale: int = SCALE) -> nn.Module:
    """A tiny rrdbnet that upsamples (nearest) plus a little seeded noise, so that its outputs stay in [0, 1] and
    its scores are neither perfect nor saturated: every conv passes channel c on (a 1 at the kernel's centre)
    over weights of std 0.01."""
    torch.manual_seed(seed)
    model = build_generator("rrdbnet", scale=scale, **TINY).eval()
    with torch.no_grad():
        for conv in model.modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.normal_(0, 0.01)
                conv.bias.zero_()
        for conv in (model.conv_first, model.conv_up1, model.conv_up2, model.conv_hr, model.conv_last):
            for channel in range(min(conv.in_channels, conv.out_channels)):
                conv.weight[channel, channel, 1, 1] += 1
    return model


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """photos2sr at 32 px: train/ 4 HR images, val/ and test/ 1 each."""
    return make_builtin("photos2sr", tmp_path_factory.mktemp("sr") / "photos", size=32, count=4)


@pytest.fixture(scope="module")
def sr_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sr_ckpt")
    return {name: save_model(folder / f"{name}.pt", near_identity_rrdbnet(seed), "rrdbnet", TINY)
            for name, seed in (("student", 1), ("teacher", 2))}


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """BasicSR GT / LQ folders of two pairs of different sizes (one LQ named DIV2K-style, ``bx4.png``)."""
    root = tmp_path_factory.mktemp("paired")
    rng = np.random.default_rng(0)
    for name, (width, height) in (("a", (32, 24)), ("b", (36, 28))):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        (root / "gt").mkdir(exist_ok=True)
        (root / "lq").mkdir(exist_ok=True)
        image.save(root / "gt" / f"{name}.png")
        bicubic_downsample(image, SCALE).save(root / "lq" / f"{name}{'x4' if name == 'b' else ''}.png")
    return root


def _load(path):
    from ganslim.checkpoints import load_generator

    return load_generator(path).model


def _direct(model: nn.Module, items, y_channel: bool = True) -> dict[str, float]:
    """Mean sr_psnr / sr_ssim of ``model`` on ``items`` ({"lq", "gt"}), one image at a time."""
    psnrs, ssims = [], []
    with torch.no_grad():
        for item in items:
            output = model(item["lq"][None]).clamp(0, 1)
            assert output.shape == item["gt"][None].shape
            psnrs.append(float(sr_psnr(output, item["gt"][None], SCALE, y_channel)))
            ssims.append(float(sr_ssim(output, item["gt"][None], SCALE, y_channel)))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ----------------------------------------------------------------------------------------------------------
# eval


@pytest.mark.parametrize("metric", ["y", "rgb"])
def test_eval_on_hr_images_scores_whole_images_as_sr_psnr_does(photos, sr_checkpoints, capsys, metric):
    argv = ["eval", "--ckpt", str(sr_checkpoints["student"]), "--data", str(photos), "--split", "train",
            "--metrics", "psnr,ssim", "--device", "cpu", "--json"] + (["--sr-metric", "rgb"] if metric == "rgb" else [])
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    items = HRFolderDataset(photos / "train", SCALE, train=False)
    expected = _direct(_load(sr_checkpoints["student"]), items, y_channel=metric == "y")
    assert 15 < expected["psnr"] < 40  # neither perfect nor saturated: the comparison means something
    assert report["metrics"]["psnr"] == pytest.approx(expected["psnr"], abs=1e-6)
    assert report["metrics"]["ssim"] == pytest.approx(expected["ssim"], abs=1e-6)
    assert report["num_images"] == 4 and report["scale"] == 4 and report["size"] is None
    channel = "the Y channel" if metric == "y" else "RGB"
    assert report["sr_metrics"] == f"PSNR/SSIM on {channel}, 4-pixel border cropped, uint8 (BasicSR)"


def test_eval_on_paired_folders_of_different_sizes_with_a_teacher(paired, sr_checkpoints, capsys):
    assert main(["eval", "--ckpt", str(sr_checkpoints["student"]), "--gt", str(paired / "gt"), "--lq",
                 str(paired / "lq"), "--teacher", str(sr_checkpoints["teacher"]), "--metrics", "psnr,ssim",
                 "--batch-size", "2", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    items = PairedSRDataset(paired / "gt", paired / "lq", SCALE, train=False)
    assert [items[i]["gt"].shape[1:] for i in range(2)] == [(24, 32), (28, 36)]  # run one at a time
    student, teacher = _load(sr_checkpoints["student"]), _load(sr_checkpoints["teacher"])
    expected = _direct(student, items)
    with torch.no_grad():
        pairs = [(student(item["lq"][None]).clamp(0, 1), teacher(item["lq"][None]).clamp(0, 1)) for item in items]
    vs_teacher = float(np.mean([float(sr_psnr(s, t, SCALE)) for s, t in pairs]))
    assert f"  PSNR vs target   {expected['psnr']:.2f} dB" in lines
    assert f"  SSIM vs target   {expected['ssim']:.4f}" in lines
    assert f"  PSNR vs teacher  {vs_teacher:.2f} dB" in lines
    assert f"evaluated 2 image(s): GT {paired / 'gt'}, LQ {paired / 'lq'} (2 pairs, x4)" in lines


def test_sr_fid_compares_outputs_with_the_gt_images(paired, sr_checkpoints):
    student = _load(sr_checkpoints["student"])
    data = open_sr_eval_data(student.signature, gt=paired / "gt", lq=paired / "lq")
    result = evaluate_generator(student, data, metrics=("fid",), extractor=PooledColours(), progress=False)
    with torch.no_grad():
        fake = [PooledColours()(quantize_uint8(student(item["lq"][None]), value_range=(0, 1))) for item in data.inputs]
    real = [PooledColours()(quantize_uint8(item["gt"][None], value_range=(0, 1))) for item in data.inputs]
    expected = frechet_distance(*feature_statistics(torch.cat(fake).numpy()),
                                *feature_statistics(torch.cat(real).numpy()))
    assert result.metrics["fid"] == pytest.approx(expected, rel=1e-5)


def test_an_output_of_another_size_than_its_target_is_one_line_naming_both(photos):
    data = open_sr_eval_data(near_identity_rrdbnet(0).signature, photos, "train")
    with pytest.raises(GanslimError) as error:
        score_models({"the x1 model": lambda images: images}, data, Scoring(crop_border=SCALE))
    message = str(error.value)
    assert message.startswith("the x1 model returns (3, 8, 8) images for (3, 8, 8) inputs but the targets are "
                              "(3, 32, 32):") and "\n" not in message


def _hr_folder(tmp_path, side: int):
    folder = tmp_path / "hr"
    folder.mkdir()
    Image.new("RGB", (side, side), (90, 120, 150)).save(folder / "odd.png")
    return folder


@pytest.mark.parametrize("case", ["size", "unpaired", "gt_alone", "data_and_gt", "odd_lr_side", "teacher_x2",
                                  "gt_for_translation", "sr_metric_for_translation"])
def test_eval_bad_input_is_one_line(case, paired, photos, sr_checkpoints, checkpoints, dataset, tmp_path, capsys):
    student = str(sr_checkpoints["student"])
    gt, lq = str(paired / "gt"), str(paired / "lq")
    argv = {
        "size": ["--ckpt", student, "--data", str(photos), "--size", "32"],
        "unpaired": ["--ckpt", student, "--gt", gt, "--lq", str(tmp_path / "lq")],
        "gt_alone": ["--ckpt", student, "--gt", gt],
        "data_and_gt": ["--ckpt", student, "--data", str(photos), "--gt", gt, "--lq", lq],
        "odd_lr_side": ["--ckpt", str(tmp_path / "x2.pt"), "--data", str(tmp_path / "hr")],
        "teacher_x2": ["--ckpt", student, "--data", str(photos), "--teacher", str(tmp_path / "x2.pt")],
        "gt_for_translation": ["--ckpt", str(checkpoints["student"]), "--gt", gt, "--lq", lq],
        "sr_metric_for_translation": ["--ckpt", str(checkpoints["student"]), "--data", str(dataset), "--size", "32",
                                      "--sr-metric", "rgb"],
    }[case]
    if case == "unpaired":
        (tmp_path / "lq").mkdir()
        for name in ("a", "bx4", "c"):
            Image.new("RGB", (8, 6)).save(tmp_path / "lq" / f"{name}.png")
    if case in ("odd_lr_side", "teacher_x2"):
        save_model(tmp_path / "x2.pt", near_identity_rrdbnet(0, scale=2), "rrdbnet", {**TINY, "scale": 2})
        _hr_folder(tmp_path, 30)
    assert main(["eval", *argv, "--metrics", "psnr", "--device", "cpu"]) == 2
    line = _one_error_line(capsys)
    expected = {
        "size": "SR models take whole images and never resize them: drop --size",
        "unpaired": f"LQ image '{tmp_path / 'lq' / 'c.png'}' has no GT image in '{gt}'",
        "gt_alone": "pass --data DIR (HR images), or both --gt DIR and --lq DIR (paired folders)",
        "data_and_gt": "--data and --gt/--lq exclude each other",
        "odd_lr_side": f"the LR image of HR image '{tmp_path / 'hr' / 'odd.png'}' is 15x15, but this model takes "
                       f"LR sides that are multiples of 2: crop the images to such sides",
        "teacher_x2": "the teacher is x2 super-resolution, but the data was opened for a x4 super-resolution model",
        "gt_for_translation": "--gt/--lq are the paired folders of super-resolution models; resnet_6blocks is "
                              "image-to-image: pass --data DIR",
        "sr_metric_for_translation": "--sr-metric applies to super-resolution models; this one is image-to-image",
    }[case]
    assert line.startswith("ganslim eval: error: ") and expected in line


# ----------------------------------------------------------------------------------------------------------
# bench


def test_bench_sr_models_on_their_example_input_and_whole_images(photos, sr_checkpoints):
    student, teacher = _load(sr_checkpoints["student"]), _load(sr_checkpoints["teacher"])
    models = [BenchModel("teacher", teacher), BenchModel("student", student)]
    result = run_bench(models, "torch,onnxruntime,onnxruntime-int8", size=None, threads=1, repeats=1, warmup=0,
                       data=photos, split="train", num_images=3, num_calibration=2, peak_size=64, progress=False)
    bench = result.to_dict()
    assert bench["settings"]["size"] == 64 and bench["settings"]["sr_scale"] == 4
    assert bench["settings"]["num_images"] == 3
    assert bench["settings"]["scoring"] == "PSNR/SSIM on the Y channel, 4-pixel border cropped, uint8 (BasicSR)"
    for info, model in zip(bench["models"], (teacher, student)):
        assert info["input_shape"] == [1, 3, 64, 64]  # LR: MACs at the input the model takes
        assert info["macs"] == count_macs(model, torch.rand(1, 3, 64, 64)).macs
    rows = {(r["model"], r["backend"]): r for r in bench["results"]}
    assert all(row["status"] == "ok" for row in rows.values()), rows
    items = [HRFolderDataset(photos / "train", SCALE, train=False)[i] for i in range(3)]
    expected = _direct(student, items)
    for backend in ("torch", "onnxruntime"):
        assert rows["student", backend]["quality"]["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)
        assert rows["student", backend]["quality"]["ssim"] == pytest.approx(expected["ssim"], abs=1e-4)
    assert rows["teacher", "torch"]["quality"]["psnr_ref"] == "inf"
    assert 25 < rows["student", "onnxruntime-int8"]["quality"]["psnr_ref"] < 100
    assert rows["student", "onnxruntime-int8"]["int8"]["int8_layers"]["QLinearConv"] > 0


def test_bench_refuses_sr_and_image_to_image_models_together(sr_checkpoints, checkpoints, tmp_path, capsys):
    assert main(["bench", str(sr_checkpoints["student"]), str(checkpoints["student"]), "--backends", "torch",
                 "--out", str(tmp_path / "bench")]) == 2
    assert _one_error_line(capsys) == (
        "ganslim bench: error: the bench compares models on the same inputs, but 'student' is x4 super-resolution, "
        "'student#2' is image-to-image: bench models of one scale together")
    assert not (tmp_path / "bench").exists()


def test_bench_a_model_whose_output_differs_from_the_targets_is_one_line(dataset):
    torch.manual_seed(0)
    rgb = build_generator("resnet_6blocks", ngf=4, norm="instance")
    gray = build_generator("resnet_6blocks", ngf=4, norm="instance", output_nc=1)
    with pytest.raises(GanslimError) as error:
        run_bench([BenchModel("rgb", rgb), BenchModel("gray", gray)], "torch", size=32, threads=1, repeats=1,
                  warmup=0, data=dataset, split="val", peak_size=64, progress=False)
    assert str(error.value).startswith("'gray' on torch returns (1, 32, 32) images for (3, 32, 32) inputs but the "
                                       "targets are (3, 32, 32)")


# ----------------------------------------------------------------------------------------------------------
# quantize


@pytest.fixture(scope="module")
def sr_int8(tmp_path_factory, photos):
    model = near_identity_rrdbnet(1)
    split = split_data(photos, super_resolution=True)
    out = tmp_path_factory.mktemp("sr_int8") / "rrdb.onnx"
    result = quantize_model(model, split.calibration, out, "onnxruntime", eval_images=split.evaluation,
                            arch="rrdbnet", arch_kwargs=TINY, warmup=0, repeats=2)
    return model, split, result


def test_quantize_sr_calibrates_on_lr_images_and_scores_like_eval(sr_int8, photos):
    model, split, result = sr_int8
    assert not split.aligned and len(split.calibration) == 4 and split.evaluation == [photos / "val" / "0000.png"]
    assert result.dynamic and result.input_shape == (1, 3, 8, 8) and result.num_calibration == 4
    assert result.int8_layers["QLinearConv"] == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    item = HRFolderDataset(photos / "val", SCALE, train=False)[0]
    int8 = torch.from_numpy(load_exported(result.files[0])(item["lq"][None].numpy()))
    with torch.no_grad():
        fp32 = model(item["lq"][None])
    assert result.task.psnr_int8 == pytest.approx(float(sr_psnr(int8.clamp(0, 1), item["gt"][None], SCALE)), abs=1e-6)
    assert result.task.ssim_int8 == pytest.approx(float(sr_ssim(int8.clamp(0, 1), item["gt"][None], SCALE)), abs=1e-6)
    assert result.task.psnr_fp32 == pytest.approx(_direct(model, [item])["psnr"], abs=0.05)
    assert result.psnr_vs_fp32 == pytest.approx(float(sr_psnr(int8.clamp(0, 1), fp32.clamp(0, 1), SCALE)), abs=0.5)
    assert 20 < result.psnr_vs_fp32 < 100 and 0 < result.max_abs_diff_vs_fp32 < 0.5
    assert result.scoring == "PSNR/SSIM on the Y channel, 4-pixel border cropped, uint8 (BasicSR)"
    # Whole images of any size: the int8 file takes another LR shape.
    assert load_exported(result.files[0])(np.random.rand(1, 3, 9, 13).astype(np.float32)).shape == (1, 3, 36, 52)
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["input"]["shape"] == [1, 3, 8, 8] and sidecar["output"]["shape"] == [1, 3, 32, 32]
    assert sidecar["input"]["dynamic_axes"] == {"0": "batch", "2": "height", "3": "width"}
    assert sidecar["quantization"]["task"]["psnr_int8"] == pytest.approx(result.task.psnr_int8)
    assert Signature.from_dict(sidecar["signature"]) == model.signature  # [0, 1] in and out, x4
    assert sidecar["normalization"]["input"] == "x / 255" and sidecar["signature"]["output"]["scale"] == SCALE


def test_openvino_int8_sr(photos, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    split = split_data(photos, super_resolution=True)
    result = quantize_model(near_identity_rrdbnet(1), split.calibration, tmp_path, "openvino",
                            eval_images=split.evaluation, warmup=0, repeats=1)
    assert result.files == [tmp_path / "generator.int8.xml", tmp_path / "generator.int8.bin"] and result.dynamic
    assert result.int8_layers["Convolution"] > 0
    item = HRFolderDataset(photos / "val", SCALE, train=False)[0]
    int8 = torch.from_numpy(load_exported(result.files[0])(item["lq"][None].numpy()))
    assert result.task.psnr_int8 == pytest.approx(float(sr_psnr(int8.clamp(0, 1), item["gt"][None], SCALE)), abs=1e-6)
    # NNCF keeps less of this tiny model than ONNX Runtime does: measured 15.0 dB vs fp32 here (ORT: 26.9 dB).
    assert 12 < result.psnr_vs_fp32 < 100


def test_cli_quantize_sr(photos, sr_checkpoints, tmp_path, capsys):
    out = tmp_path / "int8"
    assert main(["quantize", "--ckpt", str(sr_checkpoints["student"]), "--data", str(photos), "--output", f"{out}/",
                 "--num-calibration", "2", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "input 1x3x8x8 (any height and width)" in printed
    assert "metrics       : PSNR/SSIM on the Y channel, 4-pixel border cropped, uint8 (BasicSR)" in printed
    assert "vs targets    : PSNR " in printed
    assert sorted(os.listdir(out)) == ["student.int8.onnx", "student.int8.onnx.json"]


@pytest.mark.parametrize("case", ["size", "unaligned"])
def test_cli_quantize_sr_bad_input_is_one_line_and_writes_nothing(case, sr_checkpoints, photos, tmp_path, capsys):
    data = photos
    if case == "unaligned":
        data = tmp_path / "h2z"
        (data / "trainA").mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(data / "trainA" / "0.png")
    argv = ["quantize", "--ckpt", str(sr_checkpoints["student"]), "--data", str(data), "--output",
            str(tmp_path / "out.onnx")] + (["--size", "32"] if case == "size" else [])
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert {"size": "SR models take whole images and never resize them: drop --size",
            "unaligned": "is an unaligned (trainA/ testA/) dataset, but a super-resolution model calibrates on HR "
                         "images"}[case] in line
    assert not (tmp_path / "out.onnx").exists()
