"""SPADE / GauGAN: the architecture and its presets' figures, NVlabs' and GAN Compression's checkpoints, label maps,
their layouts and the built-in data, and translate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganslim.archs import build_generator
from ganslim.checkpoints import load_generator, save_model
from ganslim.checkpoints.spade import fold_spectral_norm, read_options_file, spade_kwargs_from_options
from ganslim.cli import main
from ganslim.cli.profile import build_named_generator, profile_size
from ganslim.data.builtin import make_builtin
from ganslim.data.label_datasets import (LabelMapDataset, detect_label_layout, find_label_pairs, instance_file,
                                         label_files)
from ganslim.data.labels import LabelEncoding, instance_edges
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs, count_params
from ganslim.signature import Signature
from spade_reference import nvlabs_forward, nvlabs_options, nvlabs_shapes, one_hot_map, random_nvlabs_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A tiny Cityscapes-like model: 3 labels + dontcare + instance edges, 'more' (6 upsamplings), 128x256 (aspect 2).
TINY = {"label_nc": 3, "contain_dontcare_label": True, "instance_edges": True, "ngf": 2,
        "num_upsampling_layers": "more", "crop_size": 256, "aspect_ratio": 2.0}
TINY_OPTIONS = {"label_nc": 3, "contain_dontcare_label": True, "no_instance": False, "ngf": 2,
                "num_upsampling_layers": "more", "crop_size": 256, "aspect_ratio": 2.0, "netG": "spade",
                "norm_G": "spectralspadesyncbatch3x3", "use_vae": False, "name": "tiny", "gpu_ids": "0"}


def write_nvlabs_run(folder, shapes, seed=0, options=TINY_OPTIONS):
    """A SPADE checkpoints folder: latest_net_G.pth (random weights of ``shapes``) and opt.txt; the weights."""
    folder.mkdir(parents=True, exist_ok=True)
    state = random_nvlabs_state(shapes, seed)
    torch.save(state, folder / "latest_net_G.pth")
    if options is not None:
        (folder / "opt.txt").write_text(nvlabs_options(**options))
    return state


# ---------------------------------------------------------------- architecture and profile figures


@pytest.mark.parametrize("name, params_m, macs_g", [("spade_cityscapes", 93.0, 281), ("spade_coco", 97.5, 191)])
def test_presets_have_the_published_params_and_macs_in_both_conventions(name, params_m, macs_g):
    with torch.device("meta"):
        generator = build_generator(name)
    signature = generator.signature
    size = profile_size(None, signature)
    assert size == {"spade_cityscapes": (256, 512), "spade_coco": (256, 256)}[name]
    inputs = signature.example_inputs(size, device="meta")
    counted = count_macs(generator, inputs)
    assert round(count_params(generator) / 1e6, 1) == params_m
    # No transposed convs: the conventions differ only by the modulation's multiplies and the leaky ReLUs (0.05 %).
    assert round(counted.macs / 1e9) == round(counted.macs_published / 1e9) == macs_g
    assert 0 < counted.macs_published - counted.macs < 0.001 * counted.macs


def test_profile_builds_a_named_spade_with_its_own_batch_norm(capsys):
    assert build_named_generator("spade", ngf=2, norm=None).norm == "batch"  # not the pix2pix families' instance
    assert main(["profile", "spade", "--ngf", "2", "--size", "64", "--repeats", "1", "--warmup", "0", "--json"]) in (
        0, None)
    profiled = json.loads(capsys.readouterr().out)
    assert profiled["input_shape"] == [1, 183, 64, 64] and 0 < profiled["macs"] < profiled["macs_published"]


def test_signature_declares_label_maps_the_built_size_and_the_vae_code():
    generator = build_generator("spade", **TINY)
    signature = generator.signature
    assert signature.describe() == ("label_map (5 labels, multiples of 64 and at least 128 pixels, built for "
                                    "128x256) -> image (3 ch, [-1, 1], x1)")
    assert Signature.from_dict(json.loads(json.dumps(signature.to_dict()))) == signature
    assert generator.eval()(*signature.example_inputs()).shape == (1, 3, 128, 256)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(build_generator("spade", **TINY))  # for torchrun, as SyncBN
    assert isinstance(synced.head_0.norm_0.param_free_norm, nn.SyncBatchNorm)
    assert list(synced.state_dict()) == list(generator.state_dict())
    vae = build_generator("spade", **TINY, use_vae=True, z_dim=8).eval()
    assert [spec.kind for spec in vae.signature.inputs] == ["label_map", "latent"]
    assert tuple(vae.fc.weight.shape) == (32 * 4 * 2, 8)  # 16 ngf x sw 4 x sh 2
    assert vae(*vae.signature.example_inputs()).shape == (1, 3, 128, 256)
    with pytest.raises(GanslimError, match="takes 128x256 label maps, got 128x128"):
        vae(one_hot_map(5, 128, 128), torch.zeros(1, 8))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_upsampling_layers": "many"}, "num_upsampling_layers 'many' is not one of normal, more, most"),
    ({"norm": "syncbatch"}, "norm 'syncbatch' is not one of batch, instance"),
    ({"crop_size": 32}, "crop_size 32 with aspect_ratio 1 leaves a 1x1 latent after 5 upsamplings, and SPADE's "
                        "norms need at least 2x2: use a crop_size of at least 64"),
    ({"crop_size": 256, "aspect_ratio": 4.0, "num_upsampling_layers": "more"}, "use a crop_size of at least 384"),
    ({"label_nc": 0}, "label_nc=0 is not a positive integer"),
])
def test_impossible_options_are_one_line(kwargs, message):
    with pytest.raises(GanslimError, match=message):
        build_generator("spade", **{"ngf": 2, **kwargs})


# ---------------------------------------------------------------- spectral norm and the importers


def test_folding_matches_torch_spectral_norm_in_eval():
    torch.manual_seed(0)
    conv = nn.utils.spectral_norm(nn.Conv2d(6, 5, 3, padding=1))
    x = torch.randn(2, 6, 8, 8)
    for _ in range(3):  # training steps move u and v by power iteration
        conv(x)
    conv.eval()
    state = {f"conv.{key}": value for key, value in conv.state_dict().items()}
    folded, count = fold_spectral_norm(state, "test")
    assert count == 1 and sorted(folded) == ["conv.bias", "conv.weight"]
    plain = nn.Conv2d(6, 5, 3, padding=1)
    plain.load_state_dict({key[len("conv."):]: value for key, value in folded.items()})
    with torch.no_grad():
        torch.testing.assert_close(plain(x), conv(x), rtol=1e-5, atol=1e-6)


def test_nvlabs_checkpoint_folder_with_opt_txt_matches_the_reference_forward(tmp_path):
    shapes = nvlabs_shapes(ngf=2, semantic_nc=5, mode="more")
    state = write_nvlabs_run(tmp_path / "checkpoints" / "tiny", shapes)
    loaded = load_generator(tmp_path / "checkpoints" / "tiny")
    assert loaded.arch == "spade" and loaded.source == "reference"
    assert loaded.arch_kwargs == {**TINY, "use_vae": False, "z_dim": 256, "spade_hidden": 128, "spade_kernel": 3,
                                  "norm": "batch", "output_nc": 3}
    assert loaded.meta["spectral_norms_folded"] == sum(key.endswith("weight_orig") for key in shapes) == 18
    labels = one_hot_map(5, 128, 256)
    with torch.no_grad():
        expected = nvlabs_forward(state, labels, ngf=2, mode="more")
        torch.testing.assert_close(loaded.model(labels), expected, rtol=1e-4, atol=1e-5)
    assert expected.std() > 0.1  # not two saturated tanh maps
    assert torch.equal(loaded.model.head_0.norm_0.param_free_norm.running_var,
                       state["head_0.norm_0.param_free_norm.running_var"])  # SyncBN statistics kept


def test_gan_compression_plain_weights_load_with_a_preset_or_options(tmp_path):
    shapes = nvlabs_shapes(ngf=2, semantic_nc=36, mode="more", hidden=4, spectral=False)
    shapes = {key: shape for key, shape in shapes.items() if not key.endswith("num_batches_tracked")}  # PyTorch < 0.4.1
    state = write_nvlabs_run(tmp_path, shapes, options=None)
    loaded = load_generator(tmp_path / "latest_net_G.pth", arch="spade_cityscapes")
    assert loaded.meta["spectral_norms_folded"] == 0
    assert (loaded.model.label_nc, loaded.model.size, loaded.model.ngf) == (35, (256, 512), 2)
    labels = one_hot_map(36, 128, 256)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(labels), nvlabs_forward(state, labels, 2, "more"), rtol=1e-4,
                                   atol=1e-5)
    options = {"label_nc": 34, "contain_dontcare_label": True, "instance_edges": True, "num_upsampling_layers": "more",
               "crop_size": 256, "aspect_ratio": 1.0}
    assert load_generator(tmp_path, **options).model.size == (256, 256)
    with pytest.raises(GanslimError, match=r"has no opt.txt beside it and nothing gives its label_nc, "
                                           r"contain_dontcare_label, .*: put SPADE's opt.txt beside it, or pass "
                                           r"--arch spade_cityscapes / spade_coco"):
        load_generator(tmp_path)


def test_opt_txt_is_parsed_as_nvlabs_and_gan_compression_write_it(tmp_path):
    path = tmp_path / "opt.txt"
    path.write_text("----------------- Options ---------------\n" + nvlabs_options(**TINY_OPTIONS)
                    + "----------------- End -------------------\n")
    options = read_options_file(path)
    assert options["crop_size"] == "256" and options["norm_G"] == "spectralspadesyncbatch3x3"
    assert spade_kwargs_from_options(options, "opt") == {**TINY, "use_vae": False, "norm": "batch",
                                                         "spade_kernel": 3}
    gan_compression = {"input_nc": "35", "no_instance": "True", "norm_G": "spadeinstance3x3", "netG": "spade"}
    assert spade_kwargs_from_options(gan_compression, "opt") == {"label_nc": 35, "instance_edges": False,
                                                                 "norm": "instance", "spade_kernel": 3}
    with pytest.raises(GanslimError, match="says netG pix2pixhd: only SPADE generators"):
        spade_kwargs_from_options({"netG": "pix2pixhd"}, "opt")
    with pytest.raises(GanslimError, match="opt: crop_size 'big' is not a whole number: fix the file or pass crop_size"):
        spade_kwargs_from_options({"crop_size": "big"}, "opt")


def test_mismatching_checkpoints_are_one_line(tmp_path):
    shapes = nvlabs_shapes(ngf=2, semantic_nc=5, mode="more")
    write_nvlabs_run(tmp_path / "wrong_labels", shapes, options={**TINY_OPTIONS, "label_nc": 4})
    with pytest.raises(GanslimError, match=r"its options give 4 labels \+ a dontcare label \+ instance edges = 6 "
                                           r"label-map channels, but head_0.norm_0.mlp_shared.0.weight takes 5"):
        load_generator(tmp_path / "wrong_labels")
    state = write_nvlabs_run(tmp_path / "damaged", shapes)
    del state["up_1.conv_s.weight_v"]
    torch.save(state, tmp_path / "damaged" / "latest_net_G.pth")
    with pytest.raises(GanslimError, match=r"'up_1.conv_s.weight_orig' \(8, 16, 1, 1\) has no spectral-norm vectors"):
        load_generator(tmp_path / "damaged")
    write_nvlabs_run(tmp_path / "wide", shapes, options={**TINY_OPTIONS, "ngf": 4})
    with pytest.raises(GanslimError, match=r"does not fit spade \(label_nc 3, .*ngf 4, .*\): 143 shape mismatches "
                                           r"\(first 'fc.weight': file \(32, 5, 3, 3\), expected \(64, 5, 3, 3\)\); "
                                           r"fix the options \(opt.txt, --arch\) or check the file"):
        load_generator(tmp_path / "wide")
    with pytest.raises(GanslimError, match="holds a SPADE generator, not a resnet_9blocks"):
        load_generator(tmp_path / "wide", arch="resnet_9blocks")
    # Options given win over opt.txt; opt.pkl, a pickle, is never opened.
    (tmp_path / "wrong_labels" / "opt.pkl").write_bytes(b"not a pickle anyone reads")
    assert load_generator(tmp_path / "wrong_labels", label_nc=3).model.label_nc == 3


# ---------------------------------------------------------------- label maps and layouts


def test_one_hot_and_instance_edges_match_a_hand_computation():
    encoding = LabelEncoding(label_nc=2, contain_dontcare_label=True, instance_edges=True)
    labels = torch.tensor([[[0, 1, 2]]])  # 2 = label_nc: the dontcare label's channel
    instances = torch.tensor([[[5, 5, 9]]])
    encoded = encoding.encode(labels, instances)
    assert encoded.shape == (1, 4, 1, 3)
    assert encoded[0, :, 0].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]]
    square = torch.tensor([[[1, 1, 1], [1, 2, 1], [1, 1, 1]]])
    assert instance_edges(square)[0, 0].tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    with pytest.raises(GanslimError, match=r"holds label id 3, but the model takes ids 0..2 \(255: dontcare\)"):
        encoding.encode(torch.tensor([[[3]]]), instances[:, :, :1])
    with pytest.raises(GanslimError, match=r"has no instance map: pass the instance maps \(--instance FOLDER\)"):
        encoding.encode(labels)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path)


def test_every_layout_pairs_labels_photos_and_instances(tmp_path):
    ids, photo, inst = np.full((4, 8), 1, np.uint8), np.zeros((4, 8, 3), np.uint8), np.full((4, 8), 7, np.uint16)
    city = tmp_path / "cityscapes"
    _png(city / "gtFine/val/ulm/ulm_000000_000019_gtFine_labelIds.png", ids)
    _png(city / "gtFine/val/ulm/ulm_000000_000019_gtFine_instanceIds.png", inst)
    _png(city / "gtFine/val/ulm/ulm_000000_000019_gtFine_color.png", photo)
    _png(city / "leftImg8bit/val/ulm/ulm_000000_000019_leftImg8bit.png", photo)
    coco = tmp_path / "coco"
    for folder, array in (("val_label", ids), ("val_img", photo), ("val_inst", inst)):
        _png(coco / folder / "000000000139.png", array)
    ade = tmp_path / "ade"
    _png(ade / "annotations/validation/ADE_val_00000001.png", ids)
    Image.fromarray(photo).save(tmp_path / "ade.jpg")
    (ade / "images/validation").mkdir(parents=True)
    (tmp_path / "ade.jpg").rename(ade / "images/validation/ADE_val_00000001.jpg")
    folders = tmp_path / "folders"
    for folder, array in (("labels", ids), ("images", photo), ("instances", inst)):
        _png(folders / "val" / folder / "a.png", array)
    for root, layout, instances in ((city, "cityscapes", True), (coco, "coco", True), (ade, "ade20k", False),
                                    (folders, "folders", True)):
        assert detect_label_layout(root) == layout
        (pair,) = find_label_pairs(root, "val", layout, instances)
        assert pair.label.suffix == ".png" and pair.image.exists() and (pair.instance is not None) == instances
    (pair,) = find_label_pairs(city, "val", "cityscapes", True)
    assert pair.instance.name.endswith("_instanceIds.png") and pair.image.name.endswith("_leftImg8bit.png")
    ade_item = LabelMapDataset(ade, LabelEncoding(150, True, False), (4, 8), split="val", flip=False)[0]
    assert ade_item["label_map"].shape == (151, 4, 8) and ade_item["label_map"][0].sum() == 32  # id 1 -> label 0
    (coco / "val_img" / "000000000139.png").unlink()
    with pytest.raises(GanslimError, match=r"label map '.*000000000139.png' has no photo"):
        find_label_pairs(coco, "val", "coco", True)
    with pytest.raises(GanslimError, match="is in no label-map layout"):
        detect_label_layout(tmp_path / "folders" / "val" / "images")


def test_builtin_label_data_loads_as_a_dataset(tmp_path):
    root = make_builtin("labels2scene", tmp_path / "scenes", size=64, count=3)
    info = json.loads((root / "ganslim_dataset.json").read_text())
    assert info["layout"] == "labels" and info["splits"] == {"train": 3, "val": 1, "test": 1}
    assert Image.open(root / "train" / "instances" / "0000.png").mode.startswith("I")
    dataset = LabelMapDataset(root, LabelEncoding(6, False, True), (64, 64), split="train", flip=False)
    item = dataset[0]
    assert len(dataset) == 3 and item["label_map"].shape == (7, 64, 64) and item["image"].shape == (3, 64, 64)
    assert torch.equal(item["label_map"][:6].sum(0), torch.ones(64, 64))  # one label per pixel
    assert 0 < item["label_map"][6].mean() < 0.5  # the instance edges are thin lines
    assert make_builtin("labels2scene", tmp_path / "again", size=64, count=3) and all(
        (tmp_path / "again" / path.relative_to(root)).read_bytes() == path.read_bytes()
        for path in root.rglob("*.png"))


def test_translate_finds_cityscapes_label_and_instance_maps_in_one_folder(tmp_path):
    folder = tmp_path / "gtFine" / "val" / "ulm"
    for kind in ("labelIds", "instanceIds", "color"):
        _png(folder / f"ulm_000000_000019_gtFine_{kind}.png", np.zeros((4, 8), np.uint8))
    (label,) = label_files(tmp_path / "gtFine" / "val")
    assert label.name == "ulm_000000_000019_gtFine_labelIds.png"
    root = tmp_path / "gtFine" / "val"
    assert instance_file(label, root, root) == folder / "ulm_000000_000019_gtFine_instanceIds.png"
    with pytest.raises(GanslimError, match=r"has no instance map '.*elsewhere/ulm/ulm_000000_000019_gtFine_instanceIds"
                                           r".png' under --instance"):
        instance_file(label, root, tmp_path / "elsewhere")


# ---------------------------------------------------------------- translate


def test_translate_writes_one_image_per_label_map_at_the_model_size(tmp_path, capsys):
    root = make_builtin("labels2scene", tmp_path / "scenes", size=64, count=2)
    kwargs = {**TINY, "label_nc": 6, "contain_dontcare_label": False}
    torch.manual_seed(0)
    save_model(tmp_path / "model" / "generator.pt", build_generator("spade", **kwargs).eval(), "spade", kwargs)
    out = tmp_path / "out"
    code = main(["translate", "--ckpt", str(tmp_path / "model"), "--input", str(root / "train" / "labels"),
                 "--instance", str(root / "train" / "instances"), "--output", str(out), "--device", "cpu"])
    assert code in (0, None)
    assert sorted(path.name for path in out.iterdir()) == ["0000.png", "0001.png"]
    assert Image.open(out / "0000.png").size == (256, 128)  # resized (nearest) to the model's 128x256
    assert "translated 2 label map(s) at 128x256 with spade" in capsys.readouterr().out
    code = main(["translate", "--ckpt", str(tmp_path / "model"), "--input", str(root / "train" / "labels"),
                 "--output", str(tmp_path / "none"), "--device", "cpu"])
    assert code == 2 and not (tmp_path / "none").exists()
    assert "error: the model takes instance edges: pass --instance FOLDER" in capsys.readouterr().err
    _png(tmp_path / "rgb" / "0000.png", np.zeros((8, 8, 3), np.uint8))
    code = main(["translate", "--ckpt", str(tmp_path / "model"), "--input", str(tmp_path / "rgb"), "--instance",
                 str(root / "train" / "instances"), "--output", str(tmp_path / "none"), "--device", "cpu"])
    assert code == 2 and not (tmp_path / "none").exists()
    assert "label map '" in (err := capsys.readouterr().err) and "is a RGB image: a label map holds one id" in err
    instances = root / "train" / "instances"
    before = {path: path.read_bytes() for path in instances.iterdir()}
    code = main(["translate", "--ckpt", str(tmp_path / "model"), "--input", str(root / "train" / "labels"),
                 "--instance", str(instances), "--output", str(instances), "--device", "cpu"])
    assert code == 2 and {path: path.read_bytes() for path in instances.iterdir()} == before
    assert f"--output '{instances}' is inside --instance '{instances}'" in capsys.readouterr().err
