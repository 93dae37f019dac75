"""Deploying SPADE generators: ONNX / OpenVINO export on one-hot label maps, int8 calibrated on real label maps,
eval (PSNR/SSIM, mIoU with a DRN-D-105 state dict, mIoU skipped without one) and bench on label-map data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.data import make_builtin
from ganslim.data.labels import LabelEncoding
from ganslim.errors import GanslimError
from ganslim.export.quantize import _label_splits
from ganslim.measure.bench import BenchModel, run_bench
from ganslim.metrics.drn import DRNSegmenter, load_drn_segmenter
from ganslim.metrics.segmentation import DRN_MEAN, DRN_STD, confusion_matrix, label_ids_to_train_ids, mean_iou

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_inception")

TINY_DRN = (2, 2, 2, 2, 2, 2, 2, 4)  # DRN-D-105's depth at a few channels per stage


def tiny_spade(arch: str = "spade", seed: int = 0, **kwargs) -> nn.Module:
    """A 64 px SPADE generator (6 labels + instance edges) with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = build_generator(arch, **{"label_nc": 6, "ngf": 4, "crop_size": 64, **kwargs})
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_builtin("labels2scene", tmp_path_factory.mktemp("data") / "scenes", size=64, count=4)


@pytest.fixture(scope="module")
def spade_ckpt(tmp_path_factory):
    model = tiny_spade()
    path = tmp_path_factory.mktemp("ckpt") / "spade.pt"
    return save_model(path, model, "spade", {"label_nc": 6, "ngf": 4, "crop_size": 64})


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- DRN and mIoU


def test_drn_d_105_has_drnseg_keys_and_shapes():
    with torch.device("meta"):
        model = DRNSegmenter()
    # fyu/drn's drn_d_105 without its 1000-class fc (54.8 M with it), plus the 19-class head.
    assert sum(p.numel() for p in model.parameters()) == 54_302_915
    params = {key: tuple(value.shape) for key, value in model.state_dict().items()
              if not key.endswith("num_batches_tracked")}
    assert len(params) == 543
    assert params["base.0.0.weight"] == (16, 3, 7, 7) and params["base.2.0.weight"] == (32, 16, 3, 3)
    assert params["base.3.0.downsample.0.weight"] == (256, 32, 1, 1)
    assert params["base.5.22.conv3.weight"] == (1024, 256, 1, 1) and "base.5.23.conv1.weight" not in params
    assert params["base.6.0.downsample.1.running_var"] == (2048,)
    assert params["base.7.0.weight"] == (512, 2048, 3, 3) and params["base.8.1.bias"] == (512,)
    assert params["seg.weight"] == (19, 512, 1, 1) and params["up.weight"] == (19, 1, 16, 16)


def test_train_ids_and_miou_match_a_hand_calculation():
    label_ids = np.array([[7, 7, 8, 8, 26, 0]])  # road, road, sidewalk, sidewalk, car, unlabeled
    train_ids = label_ids_to_train_ids(label_ids)
    assert train_ids.tolist() == [[0, 0, 1, 1, 13, 255]]
    prediction = np.array([[0, 1, 1, 1, 13, 5]])  # the ignored pixel's class 5 counts nowhere
    confusion = confusion_matrix(prediction, train_ids, 19)
    assert confusion.sum() == 5 and confusion[0, 1] == 1 and confusion[5].sum() + confusion[:, 5].sum() == 0
    # road 1 / (1 + 1), sidewalk 2 / (2 + 1), car 1 / 1
    assert mean_iou(confusion) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3 * 100)


def test_a_wrong_drn_state_dict_is_one_line(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(GanslimError, match=r"not a DRN-D-105 DRNSeg state dict: .*missing keys") as error:
        load_drn_segmenter(tmp_path / "other.pth")
    assert "\n" not in str(error.value)
    state = DRNSegmenter(19, TINY_DRN).state_dict()
    state["seg.weight"], state["seg.bias"] = torch.zeros(21, 4, 1, 1), torch.zeros(21)
    torch.save(state, tmp_path / "voc.pth")
    with pytest.raises(GanslimError, match="segments 21 classes"):
        load_drn_segmenter(tmp_path / "voc.pth")
    with pytest.raises(GanslimError, match="not found"):
        load_drn_segmenter(tmp_path / "missing.pth")


def test_a_dataparallel_state_dict_loads_with_its_weights(tmp_path):
    torch.manual_seed(1)
    model = DRNSegmenter(19, TINY_DRN)
    torch.save({f"module.{key}": value for key, value in model.state_dict().items()}, tmp_path / "drn.pth")
    loaded = load_drn_segmenter(tmp_path / "drn.pth")
    assert all(torch.equal(value, loaded.state_dict()[key]) for key, value in model.state_dict().items())


@pytest.fixture
def tiny_cityscapes(tmp_path):
    """One 64x128 Cityscapes val scene (labelIds of road, sidewalk, car, sky and unlabeled) and its photo."""
    rng = np.random.default_rng(0)
    ids = np.array([7, 8, 26, 23, 0], dtype=np.uint8)[rng.integers(0, 5, (8, 16))].repeat(8, 0).repeat(8, 1)
    name = "aachen_000000_000019"
    for folder, suffix, array in (("gtFine", "gtFine_labelIds", ids),
                                  ("leftImg8bit", "leftImg8bit", rng.integers(0, 256, (64, 128, 3), np.uint8))):
        (tmp_path / folder / "val" / "aachen").mkdir(parents=True)
        Image.fromarray(array).save(tmp_path / folder / "val" / "aachen" / f"{name}_{suffix}.png")
    return tmp_path, ids


def test_eval_reports_miou_of_the_drn_classes_against_the_label_maps(tmp_path, tiny_cityscapes, capsys):
    root, ids = tiny_cityscapes
    generator = tiny_spade(label_nc=35, instance_edges=False)
    ckpt = save_model(tmp_path / "g.pt", generator, "spade",
                      {"label_nc": 35, "instance_edges": False, "ngf": 4, "crop_size": 64})
    torch.manual_seed(2)
    segmenter = DRNSegmenter(19, TINY_DRN).eval()
    torch.save(segmenter.state_dict(), tmp_path / "drn.pth")

    result = run_json(capsys, "eval", "--ckpt", str(ckpt), "--data", str(root), "--split", "val", "--drn-weights",
                      str(tmp_path / "drn.pth"))

    # Recomputed here: the label map at 64x64 (nearest) one-hot, the output as a saved uint8 image, normalised,
    # class scores bilinear to the label file's 64x128, arg-max against the train ids.
    small = np.asarray(Image.fromarray(ids).resize((64, 64), Image.NEAREST)).astype(np.int64)
    one_hot = F.one_hot(torch.from_numpy(small), 35).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        image = generator(one_hot).clamp(-1, 1)
        pixels = ((image + 1) * 127.5).to(torch.uint8).float() / 255
        normalised = (pixels - torch.tensor(DRN_MEAN).view(1, 3, 1, 1)) / torch.tensor(DRN_STD).view(1, 3, 1, 1)
        scores = F.interpolate(segmenter(normalised), size=(64, 128), mode="bilinear", align_corners=False)
    prediction = scores.argmax(1)[0].numpy()
    truth = label_ids_to_train_ids(ids).astype(np.int64)
    ious = [((prediction == c) & (truth == c)).sum() / ((prediction == c) & (truth != 255) | (truth == c)).sum()
            for c in range(19) if ((prediction == c) & (truth != 255) | (truth == c)).any()]
    assert result["metrics"]["miou"] == pytest.approx(np.mean(ious) * 100)
    assert {"psnr", "ssim"} <= set(result["metrics"]) and "miou" not in result["skipped"]
    assert result["size"] == [64, 64] and result["num_images"] == 1


def test_eval_on_builtin_scenes_says_miou_and_fid_are_skipped(spade_ckpt, scenes, capsys):
    assert main(["eval", "--ckpt", str(spade_ckpt), "--data", str(scenes)]) == 0
    out = capsys.readouterr().out
    assert "PSNR vs target" in out and "SSIM vs target" in out
    assert sum("mIoU skipped: no segmentation model: pass --drn-weights" in line for line in out.splitlines()) == 1
    assert "FID/KID skipped: no Inception weights" in out
    result = run_json(capsys, "eval", "--ckpt", str(spade_ckpt), "--data", str(scenes), "--split", "train")
    assert result["skipped"]["miou"].startswith("no segmentation model") and result["num_images"] == 4
    assert result["data"].startswith("label maps (folders layout), split 'train'")


def test_eval_on_label_maps_computes_kid_when_inception_weights_exist(spade_ckpt, scenes, inception_file,
                                                                             capsys):
    # KID only: FID's 2048x2048 matrix square root alone takes many seconds on one thread; both read the same features.
    result = run_json(capsys, "eval", "--ckpt", str(spade_ckpt), "--data", str(scenes), "--split", "train",
                      "--metrics", "kid,psnr", "--inception-weights", str(inception_file))
    assert result["metrics"]["kid"] != 0 and result["num_real"] == 4 and "psnr" in result["metrics"]
    assert set(result["skipped"]) == {"miou"}


def test_drn_weights_on_an_image_model_is_one_line(tmp_path, capsys):
    from helpers import save_resnet

    ckpt = save_resnet(tmp_path / "resnet.pt", 4)
    torch.save(DRNSegmenter(19, TINY_DRN).state_dict(), tmp_path / "drn.pth")
    drn = str(tmp_path / "drn.pth")
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(tmp_path), "--drn-weights", drn]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "ganslim eval: error: --drn-weights scores mIoU of label-map models (SPADE), and resnet_6blocks takes images: "
        "drop --drn-weights")


# ---------------------------------------------------------------------------------------------- export, int8, bench


@pytest.mark.parametrize("arch", ["spade", "mobile_spade"])
def test_onnx_export_of_a_label_map_model_is_dynamic_at_its_own_size(tmp_path, capsys, arch):
    model = tiny_spade(arch)
    ckpt = save_model(tmp_path / f"{arch}.pt", model, arch, {"label_nc": 6, "ngf": 4, "crop_size": 64})
    result = run_json(capsys, "export", "--ckpt", str(ckpt), "--format", "onnx", "--dynamic")
    assert result["checked_shapes"] == [[1, 7, 64, 64], [2, 7, 64, 128]] and result["max_abs_diff"] < 1e-4


def test_openvino_export_of_spade_matches_eager(spade_ckpt, tmp_path, capsys):
    pytest.importorskip("openvino")
    result = run_json(capsys, "export", "--ckpt", str(spade_ckpt), "--format", "openvino", "--output",
                      str(tmp_path / "g.xml"))
    assert result["checked_shapes"] == [[1, 7, 64, 64]] and result["max_abs_diff"] < 1e-4


def test_int8_calibrates_on_the_datasets_label_maps(spade_ckpt, scenes, tmp_path, capsys):
    encoding = LabelEncoding(6, False, True)
    calibration, evaluation, held_out = _label_splits(encoding, scenes, (64, 64), 3, 8)
    assert held_out and [p.parent.parent.name for p in evaluation.label_paths] == ["val"]
    assert [p.name for p in calibration.label_paths] == ["0000.png", "0002.png", "0003.png"]  # 3 of 4, spread
    label_map = calibration.inputs[0]["label_map"]
    assert label_map[:6].sum(0).eq(1).all() and label_map[6].unique().tolist() == [0.0, 1.0]  # one-hot + edges

    result = run_json(capsys, "quantize", "--ckpt", str(spade_ckpt), "--data", str(scenes), "--output",
                      str(tmp_path / "g.int8.onnx"), "--repeats", "1")
    assert result["num_calibration"] == 4 and result["num_eval"] == 1 and result["input_shape"] == [1, 7, 64, 64]
    assert sum(result["int8_layers"].values()) > 0 and result["psnr_vs_fp32"] > 30
    assert abs(result["task"]["psnr_int8"] - result["task"]["psnr_fp32"]) < 1


def test_bench_scores_every_backend_on_real_label_maps(spade_ckpt, scenes):
    from ganslim.checkpoints import load_generator

    loaded = load_generator(spade_ckpt)
    result = run_bench([BenchModel("spade", loaded.model, "spade", None)], "torch,onnxruntime,onnxruntime-int8",
                       size=64, threads=1, repeats=1, warmup=0, data=scenes, split="train", num_images=2,
                       num_calibration=2, progress=False, peak_size=64)
    rows = {row.backend: row for row in result.rows}
    assert all(row.status == "ok" for row in rows.values()) and result.settings["num_images"] == 2
    assert rows["onnxruntime"].quality["psnr"] == pytest.approx(rows["torch"].quality["psnr"], abs=1e-3)
    assert abs(rows["onnxruntime-int8"].quality["psnr"] - rows["torch"].quality["psnr"]) < 1
    assert rows["onnxruntime-int8"].details["int8"]["num_calibration"] == 2


def test_bench_refuses_label_map_and_image_models_together(spade_ckpt, tmp_path):
    from ganslim.checkpoints import load_generator
    from helpers import save_resnet

    models = [BenchModel(name, load_generator(path).model, "", None)
              for name, path in (("spade", spade_ckpt), ("resnet", save_resnet(tmp_path / "r.pt", 4)))]
    with pytest.raises(GanslimError, match="'spade' is label-map -> image, 'resnet' is image-to-image"):
        run_bench(models, "torch", size=64, progress=False)


def test_bench_runs_a_wide_label_map_model_at_its_own_height_and_width(tmp_path, scenes, capsys):
    kwargs = {"label_nc": 6, "ngf": 4, "crop_size": 128, "aspect_ratio": 2.0}
    ckpt = save_model(tmp_path / "wide.pt", tiny_spade(**kwargs), "spade", kwargs)
    bench = run_json(capsys, "bench", str(ckpt), "--data", str(scenes), "--backends", "torch,onnxruntime",
                     "--repeats", "1", "--warmup", "0", "--threads", "1", "--peak-size", "64", "--out",
                     str(tmp_path / "bench"))
    assert bench["settings"]["size"] == [64, 128] and bench["models"][0]["input_shape"] == [1, 7, 64, 128]
    assert "--size" not in bench["command"] and all(row["status"] == "ok" for row in bench["results"])
    torch_row, onnx_row = bench["results"]
    assert onnx_row["quality"]["psnr"] == pytest.approx(torch_row["quality"]["psnr"], abs=1e-3)
