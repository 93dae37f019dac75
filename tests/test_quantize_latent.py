"""ganslim.export.quantize for latent generators: the synthesis graph of a stylegan2 or a mobile_stylegan (W+ in,
stored noise frozen, any batch, demodulation folded) in static int8, calibrated on W+ of mapped z by seed, that
really runs in int8, with its fidelity to eager PyTorch before and after; `ganslim quantize` without --data; bad
input as one line with nothing written."""

from __future__ import annotations

import json
import os

import pytest
import torch

from ganslim.apps.generate import seed_w_plus
from ganslim.cli import main
from ganslim.errors import GanslimError
from ganslim.export import load_exported
from ganslim.export.quantize import quantize_model, quantize_synthesis
from ganslim.metrics import psnr
from helpers import save_resnet, save_tiny_student, tiny_student, tiny_stylegan2

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STYLE_DIM = 16
# PSNR of int8 against fp32 on the 4 evaluation seeds, measured for these tiny random models (16 calibration seeds):
# student 40.4 dB (onnxruntime) / 35.9 dB (openvino), teacher 32.0 / 24.1 dB; other random weights (seeds 1, 2) gave
# 21-33 dB. The fp32 graphs match eager PyTorch to ~1e-6 (PSNR > 135 dB).
MIN_PSNR_INT8 = 20.0
# The compute layers ONNX Runtime runs in int8. The student: the style affines (Gemm) of conv1, the block's IDWT
# upsampling, its two convs and the last head, and as convs conv1, the block's depthwise + pointwise pairs and the
# last head (the first head only feeds the multi-scale losses: no part of the image graph). The teacher: 8 style
# affines, 5 demodulations (MatMul of the squared styles), 8 convs; its 4 transposed convs stay float.
ORT_INT8_LAYERS = {"student": {"QGemm": 5, "QLinearConv": 6},
                   "teacher": {"QGemm": 8, "QLinearMatMul": 5, "QLinearConv": 8}}
MODELS = {"student": (tiny_student, 4), "teacher": (tiny_stylegan2, 6)}  # builder, num_ws


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("name", ["student", "teacher"])
def test_synthesis_int8_is_calibrated_on_mapped_z_and_stays_close_to_eager(tmp_path, name, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
        pytest.importorskip("nncf")
    build, num_ws = MODELS[name]
    generator = build()
    result = quantize_synthesis(generator, tmp_path, backend, num_calibration=16, num_eval=4, warmup=0, repeats=2,
                                arch=name)
    suffix = {"onnxruntime": ["onnx"], "openvino": ["xml", "bin"]}[backend]
    assert result.files == [tmp_path / f"generator.synthesis.int8.{s}" for s in suffix]
    assert sorted(os.listdir(tmp_path)) == sorted([f.name for f in result.files] + [result.sidecar.name])
    assert (result.part, result.input_shape, result.dynamic) == ("synthesis", (1, num_ws, STYLE_DIM), True)
    assert (result.num_calibration, result.num_eval, result.eval_held_out) == (16, 4, True)
    if backend == "onnxruntime":
        assert result.int8_layers == ORT_INT8_LAYERS[name]
    else:
        assert result.int8_layers["Convolution"] == ORT_INT8_LAYERS[name]["QLinearConv"]
    # Before: the fp32 graph is eager PyTorch; after: int8 is close, and not the fp32 graph in disguise.
    task = result.task
    assert task.psnr_fp32 > 100 and task.ssim_fp32 > 0.9999
    assert task.psnr_int8 == pytest.approx(result.psnr_vs_fp32, abs=0.01) and task.psnr_int8 > MIN_PSNR_INT8
    assert 0 < result.max_abs_diff_vs_fp32 < 4 and 0.5 < result.ssim_vs_fp32 < 1  # outputs unclamped, up to ~3
    # The published file alone, at another batch, on the evaluation seeds (16-19): close to eager, not grey.
    w_plus = seed_w_plus(generator, range(16, 19)).detach()
    with torch.inference_mode():
        expected = generator.synthesis(w_plus).clamp(-1, 1)
    image = torch.from_numpy(load_exported(result.files[0])(w_plus.numpy()))
    assert image.shape == (3, 3, 16, 16) and image.std() > 0.1
    assert float(psnr(image.clamp(-1, 1), expected).mean()) > MIN_PSNR_INT8
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["model_format"] == f"{backend}-int8" and sidecar["arch"] == name
    assert (sidecar["part"], sidecar["noise"]) == ("synthesis", "frozen")
    assert sidecar.get("demodulation") == ("folded into the weights" if name == "student" else None)
    assert sidecar["calibration"] == ("W+ of seeds 0-15 (z mapped untruncated, broadcast); evaluated on seeds "
                                      "16-19")
    assert sidecar["inputs"] == [{"name": "w_plus", "kind": "latent", "shape": [1, num_ws, STYLE_DIM],
                                  "dtype": "float32", "layout": "NLC", "dynamic_axes": {"0": "batch"}}]
    assert sidecar["quantization"]["part"] == "synthesis"
    assert sidecar["quantization"]["task"]["psnr_int8"] == pytest.approx(task.psnr_int8)


def test_library_errors_are_one_line_and_write_nothing(tmp_path):
    student, image_model = tiny_student(), torch.nn.Conv2d(3, 3, 1)
    cases = [
        (lambda: quantize_synthesis(image_model, tmp_path / "q"), "Conv2d has no synthesis part to quantize on latents"),
        (lambda: quantize_model(student, tmp_path, tmp_path / "q"), "MobileStyleGANGenerator is a latent generator: it "
                                                                    "takes no images .* quantize_synthesis"),
        (lambda: quantize_synthesis(student, tmp_path / "q", "tensorrt"), "unknown backend 'tensorrt'"),
        (lambda: quantize_synthesis(student, tmp_path / "q", num_eval=0), "num_eval=0 must be a positive integer"),
        (lambda: quantize_synthesis(student, tmp_path / "q", seed=-1), "seed=-1 must be a whole number from 0"),
        (lambda: quantize_synthesis(student, tmp_path / "q.xml"), "not a --backend onnxruntime file name"),
    ]
    for call, message in cases:
        with pytest.raises(GanslimError, match=message) as error:
            call()
        assert "\n" not in str(error.value)
    assert os.listdir(tmp_path) == []


# CLI


@pytest.fixture
def checkpoint(tmp_path):
    return save_tiny_student(tmp_path / "ckpt" / "student.pt")


def test_cli_quantizes_a_saved_students_synthesis_without_data(checkpoint, capsys):
    argv = ["quantize", "--ckpt", str(checkpoint), "--num-calibration", "8", "--num-eval", "2", "--repeats", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"int8 mobile_stylegan ({checkpoint}) synthesis with onnxruntime ")
    for label in ("latents       : W+ of 8 calibration, 2 evaluation seeds (held out from calibration), mapped z, "
                  "stored noise; input 1x4x16 (any batch)", "int8 layers   : QGemm x5, QLinearConv x6",
                  "int8 vs fp32  : PSNR", "vs eager      : PSNR 1", "latency       : fp32"):
        assert label in out
    assert sorted(os.listdir(checkpoint.parent)) == ["student.pt", "student.synthesis.int8.onnx",
                                                     "student.synthesis.int8.onnx.json"]
    assert main([*argv, "--output", f"{checkpoint.parent}/int8/", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == [str(checkpoint.parent / "int8" / "student.synthesis.int8.onnx")]
    assert report["part"] == "synthesis" and report["task"]["psnr_fp32"] > 100


@pytest.mark.parametrize("flags, message", [
    (["--data", "."], "--data is for image models, and mobile_stylegan is a latent generator"),
    (["--sr-metric", "y"], "--sr-metric is for image models"),
    (["--size", "32"], "--size 32 does not fit this generator, which makes 16x16 images from latents"),
    (["--num-calibration", "0"], "num_calibration=0 must be a positive integer"),
    (["--backend", "tflite"], "unknown --backend 'tflite'"),
], ids=["data", "sr_metric", "size", "count", "backend"])
def test_cli_latent_errors_are_one_line_and_write_nothing(checkpoint, capsys, flags, message):
    assert main(["quantize", "--ckpt", str(checkpoint), *flags]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganslim quantize: error: ") and message in lines[0]
    assert os.listdir(checkpoint.parent) == ["student.pt"]


def test_cli_an_image_model_still_needs_data(tmp_path, capsys):
    resnet = save_resnet(tmp_path / "resnet.pt", 4)
    assert main(["quantize", "--ckpt", str(resnet)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ganslim quantize: error: resnet_6blocks takes images: pass --data DIR, a dataset root or a folder "
                   "of its input images to calibrate on")
    assert os.listdir(tmp_path) == ["resnet.pt"]
