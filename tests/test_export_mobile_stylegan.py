"""Export of mobile_stylegan: demodulation folded into the weights first (the same images within 1e-5, no rsqrt left
in the graph), mapping and synthesis graphs (W / W+, frozen or explicit noise, dynamic batch) in every runtime
against the eager *unfolded* model, never grey; the Haar wavelet ops (pixel (un)shuffles) in ONNX and OpenVINO;
and `ganslim export` of a saved student."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from ganslim.checkpoints import load_generator
from ganslim.cli import main
from ganslim.export import export_parts, load_exported
from ganslim.export.onnx import export_onnx
from ganslim.nn.wavelets import image_to_wavelets, wavelets_to_image
from ganslim.signature import ImageSides, image_to_image
from helpers import TINY_STUDENT, save_tiny_student, tiny_student

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NUM_WS, W_DIM, NOISE_SIDES = 4, TINY_STUDENT["style_dim"], [4, 8, 8]
PARITY = 1e-4  # images of std ~1: f32 runtimes agree to ~5e-6


@pytest.fixture(scope="module")
def student():
    return tiny_student()


def seeded(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def noise_images(batch: int, seed: int = 20) -> list[torch.Tensor]:
    return [seeded(batch, 1, side, side, seed=seed + i) for i, side in enumerate(NOISE_SIDES)]


def eager(student, w_plus: torch.Tensor, noise="const") -> np.ndarray:
    with torch.inference_mode():
        return student.synthesis(w_plus, noise=noise).numpy()


@torch.no_grad()
def test_folding_keeps_the_images_within_1e_5_and_leaves_the_student_as_it_was(student):
    folded = student.fold_demodulation()
    w_plus = seeded(3, NUM_WS, W_DIM)  # another style per layer
    for noise in ("const", "none", noise_images(3)):
        image = student.synthesis(w_plus, noise=noise)
        assert (folded.synthesis(w_plus, noise=noise) - image).abs().max() < 1e-5
        assert image.std() > 0.1
    # conv1 and the block's two convs demodulate (the heads never do); folded, none does, and the student still does.
    assert [conv.demodulate for conv in _input_modulated(student)] == [True, False, True, True, False]
    assert [conv.demodulate for conv in _input_modulated(folded)] == [False] * 5
    assert sum(key.endswith("style_inv") for key in student.state_dict()) == 3
    assert not any(key.endswith("style_inv") for key in folded.state_dict())


def _input_modulated(generator: nn.Module) -> list[nn.Module]:
    from ganslim.nn.separable import InputModulatedConv

    return [module for module in generator.modules() if isinstance(module, InputModulatedConv)]


def test_the_exported_synthesis_carries_the_folded_weights_and_no_demodulation(student, tmp_path):
    import onnx

    (result,) = export_parts(student, tmp_path, "onnx", ["synthesis"], w_plus=True)
    graph = onnx.load(str(result.files[0])).graph
    ops = {node.op_type for node in graph.node}
    assert not ops & {"ReduceSum", "Sqrt", "Pow"}, "the rsqrt(sum of squares) of demodulation is folded away"
    weights = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    name = "synthesis.layers.0.conv1.conv.weight_permute"
    folded = student.fold_demodulation().synthesis.layers[0].conv1.conv.weight_permute.detach().numpy()
    np.testing.assert_allclose(weights[name], folded, rtol=1e-6)
    assert np.abs(weights[name] - student.synthesis.layers[0].conv1.conv.weight_permute.detach().numpy()).max() > 0.01
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["demodulation"] == "folded into the weights"
    assert result.max_abs_diff < PARITY


@pytest.mark.parametrize("model_format", ["onnx", "openvino", "torchscript"])
@pytest.mark.parametrize("w_plus, noise", [(False, "frozen"), (True, "input")], ids=["w_frozen", "w_plus_input"])
def test_graphs_equal_the_eager_unfolded_student_at_batch_1_and_3(student, tmp_path, model_format, w_plus, noise):
    if model_format == "openvino":
        pytest.importorskip("openvino")
    mapping_result, synthesis_result = export_parts(student, tmp_path, model_format, w_plus=w_plus, noise=noise,
                                                    dynamic=True)
    assert mapping_result.max_abs_diff < PARITY and synthesis_result.max_abs_diff < PARITY
    mapping, synthesis = load_exported(mapping_result.files[0]), load_exported(synthesis_result.files[0])
    for batch in (1, 3):
        z = seeded(batch, W_DIM, seed=batch)
        w = mapping(z.numpy())
        with torch.inference_mode():
            np.testing.assert_allclose(w, student.mapping(z).numpy(), atol=PARITY)
        latent = seeded(batch, NUM_WS, W_DIM, seed=10 + batch) if w_plus else torch.from_numpy(w)
        w_all = latent if w_plus else student.broadcast(latent)
        noises = noise_images(batch) if noise == "input" else []
        image = synthesis(latent.numpy(), *(n.numpy() for n in noises))
        expected = eager(student, w_all, noises or "const")
        assert image.shape == (batch, 3, 16, 16)
        np.testing.assert_allclose(image, expected, atol=PARITY)
        assert image.std() > 0.1 and (batch == 1 or np.abs(image[0] - image[1]).max() > 0.1), "not grey"
    if noise == "input":  # the stored noise as inputs is the frozen graph; other noise, another image
        stored = [buffer.numpy() for buffer in student.synthesis.noises.constants()]
        np.testing.assert_allclose(synthesis(latent.numpy(), *stored), eager(student, w_all), atol=PARITY)
        assert np.abs(image - eager(student, w_all)).max() > 0.1


class _Wavelets(nn.Module):
    """Image (N, 3, 2h, 2w) -> wavelet channels (N, 12, h, w)."""

    signature = image_to_image(3, 12, ImageSides(multiple=2), scale=0.5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image_to_wavelets(image)


class _Image(nn.Module):
    """Wavelet channels (N, 12, h, w) -> image (N, 3, 2h, 2w)."""

    signature = image_to_image(12, 3, ImageSides(), scale=2)

    def forward(self, wavelets: torch.Tensor) -> torch.Tensor:
        return wavelets_to_image(wavelets)


@pytest.mark.parametrize("model_format", ["onnx", "openvino"])
def test_haar_wavelet_ops_trace_to_pixel_shuffles_with_free_batch_and_sides(tmp_path, model_format):
    import onnx

    if model_format == "openvino":
        pytest.importorskip("openvino")
        from ganslim.export.openvino import export_openvino as write
    else:
        write = export_onnx
    for module, channels in ((_Wavelets(), 3), (_Image(), 12)):
        path = tmp_path / f"{type(module).__name__}.{'xml' if model_format == 'openvino' else 'onnx'}"
        files = write(module, path, seeded(1, channels, 8, 8), dynamic=True).files
        if model_format == "onnx" and channels == 12:  # the inverse's pixel shuffle, in the mode (CRD) torch's is
            modes = [onnx.helper.get_attribute_value(attribute) for node in onnx.load(str(files[0])).graph.node
                     if node.op_type == "DepthToSpace" for attribute in node.attribute if attribute.name == "mode"]
            assert modes == [b"CRD"]
        exported = load_exported(files[0])
        for shape in ((1, channels, 8, 8), (2, channels, 6, 10)):  # another batch, non-square sides
            x = seeded(*shape, seed=shape[0])
            with torch.inference_mode():
                expected = module(x).numpy()
            np.testing.assert_allclose(exported(x.numpy()), expected, atol=1e-6)


def test_cli_exports_a_saved_student_folded_with_parity_to_the_loaded_one(tmp_path, capsys):
    checkpoint = save_tiny_student(tmp_path / "ckpt" / "student.pt")
    out = tmp_path / "deploy"
    assert main(["export", "--ckpt", str(checkpoint), "--format", "onnx", "--w-plus", "--noise", "input", "--dynamic",
                 "--output", f"{out}/", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["parts"]) == ["mapping", "synthesis"]
    assert all(part["max_abs_diff"] < PARITY for part in report["parts"].values())
    assert sorted(os.listdir(out)) == ["student.mapping.onnx", "student.mapping.onnx.json", "student.synthesis.onnx",
                                       "student.synthesis.onnx.json"]
    sidecar = json.loads((out / "student.synthesis.onnx.json").read_text())
    assert sidecar["arch"] == "mobile_stylegan" and sidecar["demodulation"] == "folded into the weights"
    assert [entry["name"] for entry in sidecar["inputs"]] == ["w_plus", "noise_0", "noise_1", "noise_2"]
    loaded = load_generator(checkpoint).model.eval()
    w_plus, noises = seeded(2, NUM_WS, W_DIM, seed=5), noise_images(2, seed=40)
    image = load_exported(out / "student.synthesis.onnx")(w_plus.numpy(), *(n.numpy() for n in noises))
    np.testing.assert_allclose(image, eager(loaded, w_plus, noises), atol=PARITY)
    assert sorted(os.listdir(checkpoint.parent)) == ["student.pt"], "the checkpoint stays unfolded, alone"
