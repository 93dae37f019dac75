"""ganslim.export for latent generators: StyleGAN2's mapping and synthesis graphs (W and W+ inputs, frozen or
explicit noise, dynamic batch) in each runtime against eager PyTorch, their sidecars, the CLI and its errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.errors import GanslimError
from ganslim.export import export_model, export_parts, load_exported
from ganslim.nn.modulated import ModulatedConv2d, modulating_activations
from ganslim.signature import Signature

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KWARGS = {"size": 16, "channels": [16, 8, 8], "style_dim": 8, "n_mlp": 2}
NUM_WS, W_DIM, NOISE_SIDES = 6, 8, [4, 8, 8, 16, 16]
PARITY = 1e-4  # images of std ~1: f32 runtimes agree to ~3e-6
FORMATS = ["onnx", "openvino", "torchscript"]


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    generator = build_generator("stylegan2", **KWARGS).eval()
    with torch.no_grad():  # the noise strengths start at 0, which would hide the noise inputs
        for name, parameter in generator.named_parameters():
            if name.endswith("noise.weight"):
                parameter.fill_(0.5)
    return generator


def seeded(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def needs(model_format: str) -> None:
    if model_format == "openvino":
        pytest.importorskip("openvino")


def eager_synthesis(generator, w_plus: torch.Tensor, noise="const") -> np.ndarray:
    with torch.inference_mode():
        return generator.synthesis(w_plus, noise=noise).numpy()


def test_modulated_convolutions_scaling_activations_equal_the_weight_form():
    x, style = seeded(3, 8, 6, 6), seeded(3, 5, seed=2)
    for options in ({}, {"upsample": True}, {"demodulate": False}):
        torch.manual_seed(0)
        conv = ModulatedConv2d(8, 4, 3, 5, **options)
        with torch.no_grad():
            weights = conv(x, style)
            with modulating_activations():
                activations = conv(x, style)
        side = 12 if options.get("upsample") else 6
        assert activations.shape == weights.shape == (3, 4, side, side)
        torch.testing.assert_close(activations, weights, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_format", FORMATS)
@pytest.mark.parametrize("w_plus", [False, True], ids=["w", "w_plus"])
def test_mapping_and_synthesis_graphs_equal_eager_at_batch_1_and_3(generator, tmp_path, model_format, w_plus):
    needs(model_format)
    results = export_parts(generator, tmp_path / "out", model_format, w_plus=w_plus, dynamic=True)
    assert [result.part for result in results] == ["mapping", "synthesis"]
    assert all(result.max_abs_diff < PARITY for result in results)
    latent = (1, NUM_WS, W_DIM) if w_plus else (1, W_DIM)
    assert results[1].checked_shapes == [latent, (2, *latent[1:])]
    mapping, synthesis = (load_exported(result.files[0]) for result in results)
    for batch in (1, 3):
        z = seeded(batch, W_DIM, seed=batch)
        w = mapping(z.numpy())
        with torch.inference_mode():
            expected_w = generator.mapping(z)
        np.testing.assert_allclose(w, expected_w.numpy(), atol=PARITY)
        # W+ with a different style per layer, so a graph that used one layer's style everywhere would fail.
        w_in = seeded(batch, NUM_WS, W_DIM, seed=10 + batch) if w_plus else torch.from_numpy(w)
        image = synthesis(w_in.numpy())
        expected = eager_synthesis(generator, w_in if w_plus else generator.broadcast(w_in))
        assert image.shape == (batch, 3, 16, 16)
        np.testing.assert_allclose(image, expected, atol=PARITY)
        assert image.std() > 0.1 and (batch == 1 or np.abs(image[0] - image[1]).max() > 0.1)  # not grey
    w = torch.from_numpy(mapping(z.numpy()))  # the two graphs chained are the generator
    with torch.inference_mode():
        chained = synthesis((generator.broadcast(w) if w_plus else w).numpy())
        np.testing.assert_allclose(chained, generator(z).numpy(), atol=PARITY)


@pytest.mark.parametrize("model_format", ["onnx", "openvino"])
def test_noise_as_inputs_changes_the_image_and_frozen_noise_is_the_stored_buffers(generator, tmp_path, model_format):
    needs(model_format)
    (explicit,) = export_parts(generator, tmp_path / "input", model_format, ["synthesis"], w_plus=True,
                               noise="input", dynamic=True)
    (frozen,) = export_parts(generator, tmp_path / "frozen", model_format, ["synthesis"], w_plus=True,
                             dynamic=True)
    with_inputs, baked = load_exported(explicit.files[0]), load_exported(frozen.files[0])
    assert with_inputs.input_names == ("w_plus", *(f"noise_{i}" for i in range(len(NOISE_SIDES))))
    assert baked.input_names == ("w_plus",)
    w_plus = seeded(3, NUM_WS, W_DIM)
    noises = [seeded(3, 1, side, side, seed=20 + i) for i, side in enumerate(NOISE_SIDES)]
    image = with_inputs(w_plus.numpy(), *(noise.numpy() for noise in noises))
    np.testing.assert_allclose(image, eager_synthesis(generator, w_plus, noises), atol=PARITY)
    stored = [buffer.numpy() for buffer in generator.noises.buffers()]  # (1, 1, r, r): broadcast over the batch
    np.testing.assert_allclose(with_inputs(w_plus.numpy(), *stored), baked(w_plus.numpy()), atol=PARITY)
    np.testing.assert_allclose(baked(w_plus.numpy()), eager_synthesis(generator, w_plus), atol=PARITY)
    assert np.abs(image - baked(w_plus.numpy())).max() > 0.1  # other noise, another image
    with pytest.raises(GanslimError, match=r"takes 6 input\(s\) \(w_plus, noise_0, .*noise_4\), got 1"):
        with_inputs(w_plus.numpy())


def test_part_sidecars_describe_every_graph_input(generator, tmp_path):
    mapping, synthesis = export_parts(generator, tmp_path / "G.onnx", "onnx", noise="input", dynamic=True,
                                      arch="stylegan2", arch_kwargs=KWARGS, meta={"checkpoint": "g.pt"})
    assert mapping.files == [tmp_path / "G.mapping.onnx"] and synthesis.files == [tmp_path / "G.synthesis.onnx"]
    assert sorted(os.listdir(tmp_path)) == ["G.mapping.onnx", "G.mapping.onnx.json", "G.synthesis.onnx",
                                            "G.synthesis.onnx.json"]
    first, second = (json.loads(result.sidecar.read_text()) for result in (mapping, synthesis))
    assert first["format_version"] == second["format_version"] == 3
    assert first["part"] == "mapping" and "noise" not in first
    assert second["part"] == "synthesis" and second["noise"] == "input"
    assert first["arch"] == second["arch"] == "stylegan2" and first["arch_kwargs"] == KWARGS
    assert first["meta"] == {"checkpoint": "g.pt"}
    assert first["inputs"] == [first["input"]] and first["input"] == {
        "name": "z", "kind": "latent", "shape": [1, W_DIM], "dtype": "float32", "layout": "NC",
        "dynamic_axes": {"0": "batch"}}
    assert first["output"] == {"name": "output", "kind": "latent", "shape": [1, W_DIM], "dtype": "float32",
                               "layout": "NC", "dynamic_axes": {"0": "batch"}}
    assert first["normalization"]["input"] is None and first["normalization"]["output"] is None
    assert first["signature_description"] == "z (8 dims) -> latent (8 dims)"
    assert [(i["name"], i["kind"], i["shape"], i["layout"]) for i in second["inputs"]] == [
        ("w", "latent", [1, W_DIM], "NC"),
        *((f"noise_{i}", "noise", [1, 1, side, side], "NCHW") for i, side in enumerate(NOISE_SIDES))]
    assert all(entry["dynamic_axes"] == {"0": "batch"} for entry in second["inputs"])
    assert second["output"]["shape"] == [1, 3, 16, 16] and second["output"]["kind"] == "image"
    assert second["normalization"]["output"] == "(y + 1) / 2 * 255" and second["normalization"]["resolution"] == 16
    signature = Signature.from_dict(second["signature"])
    assert [spec.name for spec in signature.inputs] == [entry["name"] for entry in second["inputs"]]
    assert [tuple(t.shape) for t in signature.example_inputs(batch=2)] == [
        (2, W_DIM), *((2, 1, side, side) for side in NOISE_SIDES)]
    assert second["verification"]["input_shapes"] == [[1, W_DIM], [2, W_DIM]]


def test_a_whole_latent_generator_exports_z_to_image_with_a_dynamic_batch(generator, tmp_path):
    result = export_model(generator, tmp_path, "onnx", dynamic=True)
    assert result.checked_shapes == [(1, W_DIM), (2, W_DIM)] and result.max_abs_diff < PARITY
    z = seeded(3, W_DIM)
    with torch.inference_mode():
        np.testing.assert_allclose(load_exported(result.files[0])(z.numpy()), generator(z).numpy(), atol=PARITY)


def test_part_errors_are_one_line_and_write_nothing(generator, tmp_path):
    image_model = build_generator("resnet_6blocks", ngf=4)
    cases = [
        (image_model, {}, "ResnetGenerator has no mapping and synthesis parts .* export it whole"),
        (generator, {"parts": ["mapping", "style"]}, "parts style unknown: choose from mapping, synthesis"),
        (generator, {"parts": []}, r"parts \(none\) unknown"),
        (generator, {"parts": ["mapping"], "w_plus": True}, "options of the synthesis graph: add synthesis"),
        (generator, {"noise": "random"}, "noise 'random' is not one of frozen, input"),
        (generator, {"format": "tflite"}, "unknown export format 'tflite'"),
    ]
    for model, options, message in cases:
        with pytest.raises(GanslimError, match=message):
            export_parts(model, tmp_path / "out", **options)
    assert os.listdir(tmp_path) == []


# CLI


@pytest.fixture
def checkpoint(generator, tmp_path):
    return save_model(tmp_path / "ckpt" / "g.pt", generator, "stylegan2", KWARGS)


def test_cli_exports_the_parts_by_default_and_the_whole_generator_on_request(checkpoint, capsys):
    assert main(["export", "--ckpt", str(checkpoint), "--dynamic", "--w-plus", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "onnx" and list(report["parts"]) == ["mapping", "synthesis"]
    assert report["parts"]["synthesis"]["files"] == [str(checkpoint.with_name("g.synthesis.onnx"))]
    assert report["parts"]["synthesis"]["checked_shapes"] == [[1, NUM_WS, W_DIM], [2, NUM_WS, W_DIM]]
    assert all(part["max_abs_diff"] < PARITY for part in report["parts"].values())
    sidecar = json.loads(checkpoint.with_name("g.synthesis.onnx.json").read_text())
    assert sidecar["meta"]["checkpoint"] == str(checkpoint) and sidecar["input"]["name"] == "w_plus"

    assert main(["export", "--ckpt", str(checkpoint), "--parts", "whole", "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert f"files        : {checkpoint.with_name('g.onnx')}" in out and "inputs 1x8" in out
    assert main(["export", "--ckpt", str(checkpoint), "--parts", "synthesis", "--noise", "input",
                 "--output", str(checkpoint.parent / "ts") + "/", "--format", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("to torchscript: synthesis")
    assert sorted(os.listdir(checkpoint.parent / "ts")) == ["g.torchscript.synthesis.pt",
                                                           "g.torchscript.synthesis.pt.json"]


@pytest.mark.parametrize("argv_tail, message", [
    (["--size", "64"], "--size 64 does not fit this generator, which makes 16x16 images from latents: drop --size"),
    (["--parts", "mapping,synth"], "parts synth unknown: choose from mapping, synthesis"),
    (["--parts", "whole", "--w-plus"], "--w-plus and --noise are options of a latent generator's synthesis graph"),
    (["--noise", "fixed"], "noise 'fixed' is not one of frozen, input"),
], ids=["size", "part", "whole_w_plus", "noise"])
def test_cli_part_errors_are_one_line(checkpoint, capsys, argv_tail, message):
    assert main(["export", "--ckpt", str(checkpoint), *argv_tail]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganslim export: error: ") and message in lines[0]
    assert os.listdir(checkpoint.parent) == ["g.pt"]


def test_w_plus_on_an_image_model_is_one_line(tmp_path, capsys):
    model = build_generator("resnet_6blocks", ngf=4)
    checkpoint = save_model(tmp_path / "r.pt", model, "resnet_6blocks", {"ngf": 4})
    assert main(["export", "--ckpt", str(checkpoint), "--size", "32", "--w-plus"]) == 2
    assert "options of a latent generator's synthesis graph" in capsys.readouterr().err
    assert main(["export", "--ckpt", str(checkpoint), "--size", "32", "--parts", "mapping"]) == 2
    assert "has no mapping and synthesis parts" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["r.pt"]
