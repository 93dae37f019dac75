"""ganslim.export: parity of every registered generator in each runtime, sidecars, atomic failure, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import ganslim.archs  # noqa: F401 - registers the generators
from ganslim.archs import build_generator, builder_parameters
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.errors import GanslimError
from ganslim.export import DEFAULT_NAMES, export_model, load_exported
from ganslim.export import onnx as onnx_export
from ganslim.measure.profile import time_interleaved
from ganslim.registry import GENERATORS
from ganslim.signature import Signature
from helpers import image_network_names

# Exported outputs are images in [-1, 1]; f32 runtimes agree with eager PyTorch to ~3e-6 (measured on every
# registered generator), so 1e-4 leaves room for kernel differences while catching any real export bug.
PARITY = 1e-4
# U-Nets at their fixed depth need their full size, SPADE a latent of 2 pixels after 5 (6 for Cityscapes')
# upsamplings; everything else runs at 32 px.
SIZES = {"unet_256": 256, "unet_128": 128, "spade": 64, "spade_cityscapes": 128, "spade_coco": 64, "mobile_spade": 64,
         "super_mobile_spade": 64}
IMAGE_GENERATORS = image_network_names(GENERATORS)  # the ones an example image drives


def tiny_generator(name: str) -> tuple[nn.Module, dict, int]:
    """A registered generator at a tiny width with non-trivial BatchNorm statistics, its kwargs and size."""
    accepted = builder_parameters(GENERATORS, name)
    wanted = {"ngf": 2 if name == "unet_256" else 4, "num_downs": 5, "n_blocks": 2,
              "num_feat": 4, "num_block": 1, "num_grow_ch": 2,
              "norm": "batch" if name.startswith("unet") else "instance"}
    kwargs = {key: value for key, value in wanted.items() if key in accepted}
    torch.manual_seed(0)
    generator = build_generator(name, **kwargs)
    for module in generator.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return generator.eval(), kwargs, SIZES.get(name, 32)


def random_image(shape: tuple[int, ...], seed: int = 123) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def eager(generator: nn.Module, image: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return generator(image).numpy()


@pytest.mark.parametrize("name", IMAGE_GENERATORS)
def test_onnx_dynamic_parity_every_generator(tmp_path, name):
    generator, kwargs, size = tiny_generator(name)
    result = export_model(generator, tmp_path, "onnx", size=size, dynamic=True, arch=name, arch_kwargs=kwargs)
    assert result.files == [tmp_path / "generator.onnx"]
    assert result.max_abs_diff < PARITY
    assert result.checked_shapes == [(1, result.checked_shapes[0][1], size, size),
                                     (2, result.checked_shapes[0][1], size, 2 * size)]
    # A third shape, not used by the check, also runs and matches: the axes are really dynamic.
    exported = load_exported(result.files[0])
    image = random_image((3, result.checked_shapes[0][1], 2 * size, size))
    assert exported.runtime.startswith("onnxruntime")
    np.testing.assert_allclose(exported(image.numpy()), eager(generator, image), atol=PARITY)


@pytest.mark.parametrize("name", IMAGE_GENERATORS)
def test_torchscript_dynamic_parity_every_generator(tmp_path, name):
    generator, kwargs, size = tiny_generator(name)
    result = export_model(generator, tmp_path, "torchscript", size=size, dynamic=True)
    assert result.files == [tmp_path / "generator.torchscript.pt"]
    assert result.max_abs_diff < PARITY
    assert len(result.checked_shapes) == 2
    assert result.runtime.startswith("torchscript")


@pytest.mark.parametrize("name", IMAGE_GENERATORS)
def test_openvino_parity_every_generator(tmp_path, name):
    pytest.importorskip("openvino")
    generator, kwargs, size = tiny_generator(name)
    result = export_model(generator, tmp_path / "ov" / "model.xml", "openvino", size=size)
    assert result.files == [tmp_path / "ov" / "model.xml", tmp_path / "ov" / "model.bin"]
    assert result.max_abs_diff < PARITY
    assert result.runtime.startswith("openvino")
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["verification"]["precision"] == "f32"


def test_sidecar_contents(tmp_path):
    generator, kwargs, size = tiny_generator("resnet_6blocks")
    result = export_model(generator, tmp_path / "g.onnx", "onnx", size=size, dynamic=True, arch="resnet_6blocks",
                          arch_kwargs=kwargs, meta={"checkpoint": "ckpt.pt"})
    assert result.sidecar == tmp_path / "g.onnx.json"
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["format"] == "ganslim-export" and sidecar["model_format"] == "onnx"
    assert sidecar["ganslim_version"] == ganslim.__version__
    assert sidecar["files"] == ["g.onnx"]
    assert sidecar["arch"] == "resnet_6blocks" and sidecar["arch_kwargs"] == kwargs
    assert sidecar["format_version"] == 3
    assert Signature.from_dict(sidecar["signature"]) == generator.signature
    assert sidecar["input"]["name"] == "image" and sidecar["input"]["kind"] == "image"
    assert sidecar["input"]["shape"] == [1, 3, size, size]
    assert sidecar["input"]["dynamic_axes"] == {"0": "batch", "2": "height", "3": "width"}
    assert sidecar["output"]["shape"] == [1, 3, size, size]
    assert sidecar["output"]["dynamic_axes"] == {"0": "batch", "2": "height", "3": "width"}
    assert sidecar["normalization"]["input"] == "x / 127.5 - 1"
    assert sidecar["normalization"]["output"] == "(y + 1) / 2 * 255"
    assert sidecar["normalization"]["input_range"] == sidecar["normalization"]["output_range"] == [-1.0, 1.0]
    assert sidecar["normalization"]["scale"] == 1
    assert sidecar["verification"]["max_abs_diff"] == result.max_abs_diff
    assert sidecar["verification"]["tolerance"] == 1e-3
    assert sidecar["verification"]["runtime"].startswith("onnxruntime ")
    assert sidecar["verification"]["input_shapes"] == [[1, 3, size, size], [2, 3, size, 2 * size]]
    assert sidecar["export"]["onnx_exporter"] == "legacy"
    assert sidecar["meta"] == {"checkpoint": "ckpt.pt"}
    # Static export: no dynamic axes, one checked shape, and the file refuses another size.
    static = export_model(generator, tmp_path / "static", "onnx", size=size)
    assert json.loads(static.sidecar.read_text())["input"]["dynamic_axes"] == {}
    with pytest.raises(Exception):
        load_exported(static.files[0])(random_image((1, 3, 2 * size, 2 * size)).numpy())


@pytest.mark.parametrize("existing_folder", [False, True])
def test_failed_check_leaves_nothing_behind(tmp_path, existing_folder):
    generator, _, size = tiny_generator("resnet_6blocks")
    out = tmp_path / "exports"
    if existing_folder:
        out.mkdir()
        (out / "keep.txt").write_text("unrelated")
    # ONNX Runtime differs from eager PyTorch by ~1e-6, which a zero tolerance refuses.
    with pytest.raises(GanslimError, match="tolerance 0.*nothing was written"):
        export_model(generator, out, "onnx", size=size, tolerance=0.0)
    if existing_folder:
        assert sorted(os.listdir(out)) == ["keep.txt"]  # no model, no sidecar, no hidden staging folder
    else:
        assert not out.exists()


def test_output_names_and_user_errors(tmp_path):
    generator, _, size = tiny_generator("resnet_6blocks")
    assert DEFAULT_NAMES["torchscript"] != "generator.pt"  # never the name of a ganslim checkpoint
    with pytest.raises(GanslimError, match=r"not a --format openvino file name.*\.xml"):
        export_model(generator, tmp_path / "model.onnx", "openvino", size=size)
    with pytest.raises(GanslimError, match="unknown export format 'tflite'; choose one of: onnx, openvino"):
        export_model(generator, tmp_path, "tflite", size=size)
    with pytest.raises(GanslimError, match="precision 'bf16' applies to --format openvino only"):
        export_model(generator, tmp_path, "onnx", size=size, precision="bf16")
    checkpoint = save_model(tmp_path / "generator.pt", generator, "resnet_6blocks", {})
    with pytest.raises(GanslimError, match="cannot load .* as TorchScript.*a checkpoint is not one"):
        load_exported(checkpoint)
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(GanslimError, match="cannot tell the format of"):
        load_exported(tmp_path / "notes.json")
    unet, _, _ = tiny_generator("unet_256")
    with pytest.raises(GanslimError, match=r"32"):  # the generator's own message, or ours naming the shape
        export_model(unet, tmp_path / "u", "onnx", size=32)
    assert not (tmp_path / "u").exists()


def test_weights_above_the_protobuf_limit_go_to_one_data_file(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_THRESHOLD_BYTES", 0)
    generator, _, size = tiny_generator("resnet_6blocks")
    result = export_model(generator, tmp_path, "onnx", size=size)
    assert result.files == [tmp_path / "generator.onnx", tmp_path / "generator.onnx.data"]
    assert sorted(os.listdir(tmp_path)) == ["generator.onnx", "generator.onnx.data", "generator.onnx.json"]
    assert result.max_abs_diff < PARITY


class SlicedByInputWidth(nn.Module):
    """A depthwise conv taking its filters by ``x.shape[1]``, then an instance norm, as elastic supernet layers
    do: the legacy tracer loses the channel count and fails, so ``auto`` must fall back to the dynamo exporter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")  # the width of an intermediate tensor is not folded away
        channels = x.shape[1]
        y = F.conv2d(x, self.conv.weight[:channels], self.conv.bias[:channels], groups=channels)
        return torch.tanh(F.instance_norm(y))


def test_auto_exporter_falls_back_to_dynamo(tmp_path, capfd):
    torch.manual_seed(0)
    result = export_model(SlicedByInputWidth().eval(), tmp_path, "onnx", size=16)
    assert result.max_abs_diff < PARITY
    assert json.loads(result.sidecar.read_text())["export"]["onnx_exporter"] == "dynamo"
    assert "Torch IR graph" not in capfd.readouterr().out  # the failed tracer's dump is silenced
    with pytest.raises(GanslimError, match="onnx export of SlicedByInputWidth failed"):
        export_model(SlicedByInputWidth().eval(), tmp_path / "legacy", "onnx", size=16, onnx_exporter="legacy")
    assert not (tmp_path / "legacy").exists()


# ----------------------------------------------------------------------------------------------------------
# Super-resolution: the signature names the input and its axes, makes the parity inputs, and fills the sidecar

SR_KWARGS = {"num_feat": 4, "num_block": 1, "num_grow_ch": 2}


def tiny_esrgan() -> nn.Module:
    torch.manual_seed(0)
    return build_generator("rrdbnet", **SR_KWARGS).eval()


@pytest.mark.parametrize("model_format", ["onnx", "torchscript", "openvino"])
def test_an_sr_model_exports_with_dynamic_sides_checked_at_two_lr_sizes(tmp_path, model_format):
    if model_format == "openvino":
        pytest.importorskip("openvino")
    generator = tiny_esrgan()
    result = export_model(generator, tmp_path, model_format, size=12, dynamic=True, arch="rrdbnet",
                          arch_kwargs=SR_KWARGS)
    assert result.checked_shapes == [(1, 3, 12, 12), (2, 3, 12, 24)]
    assert result.max_abs_diff < PARITY
    exported = load_exported(result.files[0])
    for shape in [(1, 3, 9, 13), (1, 3, 20, 16)]:  # sizes the check did not use: the sides are really free
        image = torch.rand(shape, generator=torch.Generator().manual_seed(5))  # [0, 1], as the model takes
        actual = exported(image.numpy())
        assert actual.shape == (1, 3, 4 * shape[2], 4 * shape[3])
        np.testing.assert_allclose(actual, eager(generator, image), atol=PARITY)
    sidecar = json.loads(result.sidecar.read_text())
    assert Signature.from_dict(sidecar["signature"]) == generator.signature
    assert sidecar["signature_description"] == "image (3 ch, [0, 1], any size) -> image (3 ch, [0, 1], x4)"
    assert sidecar["normalization"]["input"] == "x / 255"
    assert sidecar["normalization"]["output"] == "round(clamp(y, 0, 1) * 255)"
    assert sidecar["normalization"]["scale"] == 4
    assert sidecar["output"]["shape"] == [1, 3, 48, 48]
    assert sidecar["output"]["dynamic_axes"] == {"0": "batch", "2": "out_height", "3": "out_width"}
    assert sidecar["verification"]["input"] == "the signature's example inputs, seeds 0..1"


def test_the_onnx_graph_takes_the_signatures_input_name_and_axes(tmp_path):
    from ganslim.export.runtime import ort_session

    result = export_model(tiny_esrgan(), tmp_path, "onnx", size=8, dynamic=True)
    session = ort_session(result.files[0])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("image", ["batch", 3, "height", "width"])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("output", ["batch", 3, "out_height", "out_width"])]


def test_the_signature_round_trips_from_checkpoint_header_to_export_sidecar(tmp_path, capsys):
    from ganslim.checkpoints import load_generator
    from ganslim.checkpoints.format import read_checkpoint

    kwargs = {**SR_KWARGS, "scale": 2}
    checkpoint = save_model(tmp_path / "x2.pt", build_generator("rrdbnet", **kwargs), "rrdbnet", kwargs)
    header = Signature.from_dict(read_checkpoint(checkpoint).signature)
    assert header == load_generator(checkpoint).signature == build_generator("rrdbnet", **kwargs).signature
    assert main(["export", "--ckpt", str(checkpoint), "--size", "6", "--dynamic", "--json"]) == 0
    sidecar = json.loads(Path(json.loads(capsys.readouterr().out)["sidecar"]).read_text())
    assert Signature.from_dict(sidecar["signature"]) == header
    assert sidecar["normalization"]["scale"] == 2
    assert main(["export", "--ckpt", str(checkpoint), "--size", "7", "--output", str(tmp_path / "odd/")]) == 2
    assert capsys.readouterr().err.strip() == (
        "ganslim export: error: --size 7 does not fit this generator, which takes image sides that are multiples of "
        "2: use 6 or 8")
    assert not (tmp_path / "odd").exists()


def test_a_sidecar_written_without_a_signature_describes_a_signed_image_model():
    """The int8 writer's sidecar before it passes its model's signature: the [-1, 1] image model of its shapes."""
    from ganslim.export import sidecar_header

    sidecar = sidecar_header("onnxruntime-int8", [Path("g.onnx")], "resnet_6blocks", {}, (1, 3, 16, 16),
                             (1, 1, 16, 16), dynamic=False, meta=None)
    assert Signature.from_dict(sidecar["signature"]).describe() == (
        "image (3 ch, [-1, 1], any size) -> image (1 ch, [-1, 1], x1)")
    assert sidecar["normalization"]["input"] == "x / 127.5 - 1"


# ----------------------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def checkpoint(tmp_path):
    generator, kwargs, _ = tiny_generator("resnet_6blocks")
    return save_model(tmp_path / "ckpt" / "generator.pt", generator, "resnet_6blocks", kwargs)


def test_cli_export_prints_files_sidecar_and_diff(checkpoint, capsys):
    assert main(["export", "--ckpt", str(checkpoint), "--format", "onnx", "--size", "32", "--dynamic"]) == 0
    out = capsys.readouterr().out
    model = checkpoint.with_name("generator.onnx")
    assert model.is_file() and f"files        : {model}" in out
    assert f"sidecar      : {model}.json" in out
    assert "max abs diff :" in out and "vs eager PyTorch" in out
    sidecar = json.loads(model.with_name("generator.onnx.json").read_text())
    assert sidecar["arch"] == "resnet_6blocks"
    assert sidecar["meta"]["checkpoint"] == str(checkpoint)
    assert main(["export", "--ckpt", str(checkpoint), "--format", "torchscript", "--size", "32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == [str(checkpoint.with_name("generator.torchscript.pt"))]
    assert report["max_abs_diff"] < PARITY


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--ckpt", "{missing}"], "checkpoint '{missing}' not found: check the path"),
        (["--ckpt", "{ckpt}", "--format", "tflite"], "unknown --format 'tflite'; choose one of: onnx, openvino, "
                                                     "torchscript"),
        (["--ckpt", "{ckpt}", "--format", "torchscript", "--output", "{ckpt}"], "is the checkpoint itself"),
    ],
    ids=["missing_ckpt", "bad_format", "overwrite_ckpt"],
)
def test_cli_export_errors_are_one_line(checkpoint, capsys, argv_tail, message):
    fill = {"missing": str(checkpoint.parent / "nope.pt"), "ckpt": str(checkpoint)}
    assert main(["export", *(arg.format(**fill) for arg in argv_tail), "--size", "32"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganslim export: error: ")
    assert message.format(**fill) in lines[0]
    assert sorted(os.listdir(checkpoint.parent)) == ["generator.pt"]


def test_interleaved_timing_rotates_the_order_every_round():
    calls: list[str] = []
    runners = {name: (lambda _, name=name: calls.append(name)) for name in ("a", "b", "c")}
    stats = time_interleaved(runners, np.zeros((1, 3, 4, 4), np.float32), warmup=1, repeats=3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert set(stats) == {"a", "b", "c"} and all(stat.repeats == 3 for stat in stats.values())
    assert all(0 <= stat.min_ms <= stat.median_ms <= stat.max_ms for stat in stats.values())


@pytest.mark.parametrize("output, existing", [("out/", False), ("out", True), ("out", False)])
def test_cli_export_into_a_folder_names_the_file_after_the_checkpoint(tmp_path, capsys, output, existing):
    generator, kwargs, _ = tiny_generator("resnet_6blocks")
    checkpoint = save_model(tmp_path / "student.pt", generator, "resnet_6blocks", kwargs)
    if existing:
        (tmp_path / "out").mkdir()
    assert main(["export", "--ckpt", str(checkpoint), "--output", str(tmp_path) + "/" + output, "--size", "32",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == [str(tmp_path / "out" / "student.onnx")]
    assert sorted(os.listdir(tmp_path / "out")) == ["student.onnx", "student.onnx.json"]


@pytest.mark.parametrize("output, message", [
    ("x.txt", "output '{tmp}/x.txt' is not a --format onnx file name: end it in .onnx, or pass a folder "
              "(e.g. '{tmp}/x/')"),
    ("notes", "--output '{tmp}/notes' is a file, not a folder"),
    ("notes/m.onnx", "--output '{tmp}/notes/m.onnx' cannot be created: '{tmp}/notes' is a file"),
    ("locked/m.onnx", "--output '{tmp}/locked/m.onnx' cannot be written: '{tmp}/locked' is read-only"),
])
def test_cli_export_unusable_outputs_are_one_line_and_create_nothing(tmp_path, capsys, monkeypatch, output, message):
    generator, kwargs, _ = tiny_generator("resnet_6blocks")
    checkpoint = save_model(tmp_path / "student.pt", generator, "resnet_6blocks", kwargs)
    (tmp_path / "notes").write_text("mine")
    (tmp_path / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: "locked" not in str(path) and real_access(path, mode))
    before = sorted(os.listdir(tmp_path))
    assert main(["export", "--ckpt", str(checkpoint), "--output", str(tmp_path / output), "--size", "32"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message.format(tmp=tmp_path) in lines[0]
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(tmp_path / "locked") == []


def test_a_full_disk_during_export_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import ganslim.export

    def disk_fills_up(generator, path, *args, **kwargs):
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ganslim.export, "export_onnx", disk_fills_up)
    generator, _, size = tiny_generator("resnet_6blocks")
    with pytest.raises(GanslimError, match=r"cannot write '.*/out/generator.onnx' \(No space left on device\)"):
        export_model(generator, tmp_path / "out", "onnx", size=size)
    assert not (tmp_path / "out").exists()


def test_a_plain_module_in_training_mode_is_exported_in_eval_mode_and_left_training(tmp_path):
    """Its signature is probed with a forward (it declares none): that too runs in eval mode, then flags return."""
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 1)).train()
    result = export_model(module, tmp_path, "onnx", size=8)
    assert module.training and all(child.training for child in module)
    assert result.max_abs_diff < PARITY  # eager ran with the running statistics, as the export does
    assert json.loads(result.sidecar.read_text())["signature_description"] == (
        "image (3 ch, [-1, 1], any size) -> image (3 ch, [-1, 1], x1)")
