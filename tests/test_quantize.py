"""ganslim.export.quantize: static int8 that really runs in int8, with bounded error and a complete report."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from ganslim.apps.translate import load_input
from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.errors import GanslimError
from ganslim.export import load_exported
from ganslim.export.calibration import split_data
from ganslim.export.quantize import quantize_model

SIZE = 32
# PSNR of the int8 output against the fp32 output of the same runtime, on held-out images. Measured for this
# tiny random-init resnet_6blocks (ngf 8, 32 px, shapes2render, seeds 0-4): 34.2-35.7 dB with ONNX Runtime,
# 34.3-36.7 dB with OpenVINO + NNCF. The same model calibrated on flat gray images (activation ranges far too
# narrow, so real images clip) gives 14.2 / 14.5 dB. 25 dB separates the two with ~9 dB to spare.
MIN_PSNR_VS_FP32 = 25.0


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return build_generator("resnet_6blocks", ngf=8, norm="instance").eval()


@pytest.fixture(scope="module")
def ort_result(tmp_path_factory, dataset, generator):
    split = split_data(dataset)
    out = tmp_path_factory.mktemp("int8") / "model.onnx"
    return quantize_model(generator, split.calibration, out, "onnxruntime", size=SIZE, num_calibration=8,
                          eval_images=split.evaluation, aligned=split.aligned, arch="resnet_6blocks",
                          arch_kwargs={"ngf": 8, "norm": "instance"}, warmup=1, repeats=3)


def count_layers(generator: nn.Module) -> Counter:
    """Conv2d (OutputConv2d included) and ConvTranspose2d layers of ``generator``."""
    return Counter("ConvTranspose2d" if isinstance(m, nn.ConvTranspose2d) else "Conv2d"
                   for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def test_onnxruntime_int8_graph_runs_convs_in_int8(ort_result, generator):
    import onnx

    layers = count_layers(generator)
    # Read back from the graph ONNX Runtime executes: every Conv2d became a QLinearConv ...
    assert ort_result.int8_layers == {"QLinearConv": layers["Conv2d"]}
    # ... and the transposed convs stay float, named, with the reason read from the QDQ graph.
    assert [layer.op_type for layer in ort_result.float_layers] == ["ConvTranspose"] * layers["ConvTranspose2d"]
    assert all("no int8 ConvTranspose kernel" in layer.reason for layer in ort_result.float_layers)
    assert all(layer.name.endswith("/ConvTranspose") for layer in ort_result.float_layers)
    # The file itself is a QDQ model: int8 weights dequantized into every Conv and ConvTranspose.
    model = onnx.load(str(ort_result.files[0]))
    producer = {output: node for node in model.graph.node for output in node.output}
    initializers = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            dequantize = producer[node.input[1]]
            assert dequantize.op_type == "DequantizeLinear"
            assert initializers[dequantize.input[0]].data_type == onnx.TensorProto.INT8


def test_onnxruntime_int8_error_is_bounded(ort_result, generator, dataset):
    assert ort_result.psnr_vs_fp32 > MIN_PSNR_VS_FP32
    assert 0 < ort_result.max_abs_diff_vs_fp32 < 1.0
    # The published file, run on its own, stays as close to eager PyTorch as the report says.
    int8 = load_exported(ort_result.files[0])
    image = load_input(split_data(dataset).evaluation[0], SIZE, 3, True, "AtoB")[None]
    with torch.inference_mode():
        expected = generator(image)
    actual = torch.from_numpy(int8(image.numpy()))
    mse = float((actual - expected).pow(2).mean())
    assert 10 * np.log10(4 / mse) > MIN_PSNR_VS_FP32


def test_quantize_report_fields(ort_result):
    assert ort_result.backend == "onnxruntime" and ort_result.runtime.startswith("onnxruntime ")
    assert ort_result.input_shape == (1, 3, SIZE, SIZE)
    assert (ort_result.num_calibration, ort_result.num_eval, ort_result.eval_held_out) == (8, 2, True)
    task = ort_result.task
    assert task is not None and all(np.isfinite([task.psnr_fp32, task.psnr_int8, task.ssim_fp32, task.ssim_int8]))
    assert -1 <= task.ssim_int8 <= 1 and task.psnr_int8 > 0
    assert abs(task.psnr_int8 - task.psnr_fp32) < 3.0  # the task metric barely moves
    fp32, int8 = ort_result.latency_fp32, ort_result.latency_int8
    assert fp32.repeats == int8.repeats == 3 and 0 < fp32.min_ms <= fp32.median_ms <= fp32.max_ms
    assert ort_result.speedup == pytest.approx(fp32.median_ms / int8.median_ms)
    report = ort_result.to_dict()
    assert report["speedup"] == ort_result.speedup and report["float_layers"][0]["op_type"] == "ConvTranspose"
    sidecar = json.loads(ort_result.sidecar.read_text())
    assert ort_result.sidecar == ort_result.files[0].with_name("model.onnx.json")
    assert sidecar["model_format"] == "onnxruntime-int8" and sidecar["arch"] == "resnet_6blocks"
    assert sidecar["normalization"]["input"] == "x / 127.5 - 1"
    assert sidecar["quantization"]["int8_layers"] == ort_result.int8_layers
    assert sidecar["quantization"]["psnr_vs_fp32"] == pytest.approx(ort_result.psnr_vs_fp32)
    assert "QDQ" in sidecar["quantization"]["method"]
    assert sorted(os.listdir(ort_result.files[0].parent)) == ["model.onnx", "model.onnx.json"]


def test_openvino_int8(tmp_path, dataset, generator):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    split = split_data(dataset)
    result = quantize_model(generator, split.calibration, tmp_path, "openvino", size=SIZE, num_calibration=8,
                            eval_images=split.evaluation, aligned=True, warmup=1, repeats=3)
    assert result.files == [tmp_path / "generator.int8.xml", tmp_path / "generator.int8.bin"]
    assert result.int8_layers["Convolution"] == count_layers(generator)["Conv2d"]
    assert all(layer.op_type == "Deconvolution" for layer in result.float_layers)
    assert result.psnr_vs_fp32 > MIN_PSNR_VS_FP32
    assert result.task is not None and result.latency_int8.median_ms > 0


def test_split_data_layouts(tmp_path, dataset):
    aligned = split_data(dataset)
    assert aligned.aligned and len(aligned.calibration) == 16 and len(aligned.evaluation) == 2
    assert all(p.parent.name == "train" for p in aligned.calibration)
    assert all(p.parent.name == "val" for p in aligned.evaluation)
    folder = split_data(dataset / "train")
    assert not folder.aligned and folder.evaluation is None and len(folder.calibration) == 16


def test_held_out_images_are_not_calibrated_on(tmp_path, dataset, generator):
    images = split_data(dataset / "val").calibration + split_data(dataset / "train").calibration[:6]
    result = quantize_model(generator, images, tmp_path / "q.onnx", size=SIZE, num_eval=2, warmup=0, repeats=1)
    assert (result.num_calibration, result.num_eval, result.eval_held_out) == (6, 2, True)
    assert result.task is None  # plain images: no targets
    single = quantize_model(generator, images[:1], tmp_path / "one.onnx", size=SIZE, warmup=0, repeats=1)
    assert (single.num_calibration, single.num_eval, single.eval_held_out) == (1, 1, False)


def test_user_errors(tmp_path, generator, dataset):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanslimError, match="calibration folder .*empty' holds no images"):
        quantize_model(generator, tmp_path / "empty", tmp_path / "out", size=SIZE)
    with pytest.raises(GanslimError, match="unknown backend 'tensorrt'; choose one of: onnxruntime, openvino"):
        quantize_model(generator, dataset / "train", tmp_path / "out", backend="tensorrt", size=SIZE)
    with pytest.raises(GanslimError, match="not a --backend onnxruntime file name"):
        quantize_model(generator, dataset / "train", tmp_path / "model.xml", size=SIZE)
    assert sorted(os.listdir(tmp_path)) == ["empty"]


# ----------------------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def checkpoint(tmp_path, generator):
    return save_model(tmp_path / "ckpt" / "latest.pt", generator, "resnet_6blocks", {"ngf": 8, "norm": "instance"})


def test_cli_quantize_aligned_dataset(checkpoint, dataset, capsys):
    argv = ["quantize", "--ckpt", str(checkpoint), "--data", str(dataset), "--size", str(SIZE),
            "--num-calibration", "4", "--repeats", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    model = checkpoint.with_name("latest.int8.onnx")
    assert model.is_file() and model.with_name("latest.int8.onnx.json").is_file()
    for label in ("int8 layers   : QLinearConv x", "float layers  : ", "ConvTranspose: its weights are int8",
                  "int8 vs fp32  : PSNR", "vs targets    : PSNR", "latency       : fp32"):
        assert label in out
    assert "4 calibration, 2 evaluation (held out from calibration)" in out


@pytest.mark.parametrize("case", ["missing_ckpt", "empty_data", "bad_backend"])
def test_cli_quantize_errors_are_one_line(checkpoint, dataset, tmp_path, capsys, case):
    (tmp_path / "empty").mkdir()
    ckpt = str(tmp_path / "nope.pt") if case == "missing_ckpt" else str(checkpoint)
    data = str(tmp_path / "empty") if case == "empty_data" else str(dataset)
    backend = "tensorrt" if case == "bad_backend" else "onnxruntime"
    assert main(["quantize", "--ckpt", ckpt, "--data", data, "--backend", backend, "--size", str(SIZE)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganslim quantize: error: ")
    expected = {"missing_ckpt": "nope.pt' not found", "empty_data": "empty'",
                "bad_backend": "unknown --backend 'tensorrt'"}[case]
    assert expected in lines[0]
    assert sorted(os.listdir(checkpoint.parent)) == ["latest.pt"]


def test_cli_quantize_into_a_folder_at_the_checkpoints_size(tmp_path, generator, dataset, capsys):
    checkpoint = save_model(tmp_path / "student.pt", generator, "resnet_6blocks", {"ngf": 8, "norm": "instance"},
                            meta={"crop_size": SIZE})
    assert main(["quantize", "--ckpt", str(checkpoint), "--data", str(dataset), "--output", f"{tmp_path}/int8/",
                 "--num-calibration", "2", "--num-eval", "1", "--repeats", "1", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["files"] == [str(tmp_path / "int8" / "student.int8.onnx")]
    assert report["input_shape"] == [1, 3, SIZE, SIZE]
    assert f"size {SIZE}x{SIZE} (the size student.pt was trained at)" in captured.err


def test_cli_quantize_output_x_txt_creates_no_folder(checkpoint, dataset, tmp_path, capsys):
    assert main(["quantize", "--ckpt", str(checkpoint), "--data", str(dataset), "--output",
                 str(tmp_path / "x.txt"), "--size", str(SIZE)]) == 2
    assert "is not a --backend onnxruntime file name" in capsys.readouterr().err
    assert not (tmp_path / "x.txt").exists()
