"""GAN Compression's own SPADE checkpoints: the compressed ``sub_mobile_spade`` students its export.py writes (convs
cut to ``config_str``, BatchNorm statistics at the supernet's widths) and the full ``mobile_spade`` teacher (spectral
norm on the blocks' convs), each against GAN Compression's forward recomputed in spade_reference."""

from __future__ import annotations

import json

import pytest
import torch

from ganslim.checkpoints import load_generator
from ganslim.cli import main
from ganslim.data.builtin import make_builtin
from ganslim.errors import GanslimError
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.spade.distill import SpadeSupernetDistillation
from helpers import build_method, first_batch
from spade_reference import (gc_mobile_forward, gc_mobile_shapes, nvlabs_options, nvlabs_shapes, one_hot_map,
                             random_nvlabs_state)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 3 labels + dontcare + instance edges = 5 channels; 'normal' at 64x64 (a 2x2 latent); the released Cityscapes
# student's layout at a tiny width: supernet ngf 4, config_str 2_3_1_2_3_2_4_1.
SEMANTIC_NC = 5
CONFIG = [2, 3, 1, 2, 3, 2, 4, 1]
OPTIONS = {"input_nc": 3, "contain_dontcare_label": True, "no_instance": False, "ngf": 4,
           "num_upsampling_layers": "normal", "crop_size": 64, "aspect_ratio": 1.0, "netG": "sub_mobile_spade",
           "norm_G": "spadesyncbatch3x3", "separable_conv_norm": "instance", "config_str": "2_3_1_2_3_2_4_1",
           "gpu_ids": "0", "model": "spade"}


def gc_options(**options: object) -> str:
    """An opt.txt as GAN Compression's print_options writes it (banners around the option lines)."""
    return ("----------------- Options ---------------\n" + nvlabs_options(**options)
            + "----------------- End -------------------\n")


def write_gc_file(path, shapes, options=None, seed=0):
    """``torch.save`` a state dict of random tensors of ``shapes`` at ``path`` (an opt.txt in ``path``'s folder
    from ``options``); the tensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = random_nvlabs_state(shapes, seed)
    torch.save(state, path)
    if options is not None:
        (path.parent / "opt.txt").write_text(gc_options(**options))
    return state


def test_compressed_student_loads_with_statistics_sliced_to_its_config(tmp_path):
    shapes = gc_mobile_shapes(ngf=4, semantic_nc=SEMANTIC_NC, mode="normal", channels=CONFIG)
    assert shapes["head_0.norm_0.param_free_norm.running_mean"] == (64,)  # export.py keeps the supernet's widths
    assert shapes["head_0.conv_0.weight"] == (48, 32, 3, 3)
    state = write_gc_file(tmp_path / "compressed" / "latest_net_G.pth", shapes, OPTIONS)
    loaded = load_generator(tmp_path / "compressed")
    assert (loaded.arch, loaded.source) == ("mobile_spade", "reference")
    assert loaded.arch_kwargs == {"label_nc": 3, "contain_dontcare_label": True, "instance_edges": True, "ngf": 4,
                                  "num_upsampling_layers": "normal", "crop_size": 64, "aspect_ratio": 1.0,
                                  "spade_kernel": 3, "norm": "batch", "output_nc": 3, "channels": CONFIG}
    wider = [key for key in shapes if key.endswith("running_mean")
             and shapes[key][0] > loaded.model.state_dict()[key].shape[0]]
    assert loaded.meta["statistics_sliced"] == 2 * len(wider) > 0 and loaded.meta["spectral_norms_folded"] == 0
    torch.testing.assert_close(loaded.model.up_0.norm_1.param_free_norm.running_var,
                               state["up_0.norm_1.param_free_norm.running_var"][:24])
    labels = one_hot_map(SEMANTIC_NC, 64, 64)
    with torch.no_grad():
        expected = gc_mobile_forward(state, labels, "normal")
        torch.testing.assert_close(loaded.model(labels), expected, rtol=1e-4, atol=1e-5)
    assert expected.std() > 0.1  # not a saturated tanh map
    # Without config_str the tensors give the same sub-network; channels given must agree with them.
    no_config = {key: value for key, value in OPTIONS.items() if key != "config_str"}
    write_gc_file(tmp_path / "plain" / "latest_net_G.pth", shapes, no_config)
    assert load_generator(tmp_path / "plain", channels=CONFIG).model.channels == CONFIG
    assert load_generator(tmp_path / "plain").arch_kwargs["channels"] == CONFIG


@pytest.mark.parametrize("norm_G", ["spectralspadesyncbatch3x3", "spectralspadeinstance3x3"])
def test_mobile_teacher_folds_spectral_norm_with_opt_txt_above_checkpoints(tmp_path, norm_G):
    norm = "batch" if "batch" in norm_G else "instance"
    shapes = gc_mobile_shapes(ngf=2, semantic_nc=SEMANTIC_NC, mode="more", spectral=True, norm=norm)
    options = {**OPTIONS, "netG": "mobile_spade", "ngf": 2, "norm_G": norm_G, "num_upsampling_layers": "more",
               "crop_size": 256, "aspect_ratio": 2.0, "config_str": "None"}
    run = tmp_path / "logs" / "mobile"
    run.mkdir(parents=True)
    (run / "opt.txt").write_text(gc_options(**options))  # train.py writes it in the log folder
    state = write_gc_file(run / "checkpoints" / "latest_net_G.pth", shapes)
    loaded = load_generator(run / "checkpoints")
    assert loaded.arch_kwargs["channels"] == [2] * 8 and loaded.arch_kwargs["norm"] == norm
    assert loaded.model.size == (128, 256)
    assert loaded.meta["spectral_norms_folded"] == sum(key.endswith("weight_orig") for key in shapes) == 18
    assert loaded.meta["statistics_sliced"] == 0
    labels = one_hot_map(SEMANTIC_NC, 128, 256)
    with torch.no_grad():
        expected = gc_mobile_forward(state, labels, "more")
        torch.testing.assert_close(loaded.model(labels), expected, rtol=1e-4, atol=1e-5)
    assert expected.std() > 0.1


def test_a_preset_gives_the_label_maps_of_a_file_without_opt_txt(tmp_path):
    shapes = gc_mobile_shapes(ngf=2, semantic_nc=36, mode="more", channels=[1, 2, 2, 1, 2, 1, 1, 1])
    write_gc_file(tmp_path / "latest_net_G.pth", shapes)
    loaded = load_generator(tmp_path / "latest_net_G.pth", arch="spade_cityscapes")
    assert (loaded.arch, loaded.model.label_nc, loaded.model.size, loaded.model.ngf) == ("mobile_spade", 35,
                                                                                          (256, 512), 2)
    with pytest.raises(GanslimError, match=r"has no opt.txt beside it and nothing gives its label_nc, .*: put GAN "
                                           r"Compression's opt.txt beside it, or pass --arch spade_cityscapes"):
        load_generator(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"config_str": "2_3_1_2_3_2_4_2"}, r"config_str 2_3_1_2_3_2_4_2 in '.*opt.txt' does not match its tensors, "
                                        r"which hold the sub-network 2_3_1_2_3_2_4_1: fix it or drop it"),
    ({"config_str": "2_3_1"}, r"config_str '2_3_1' is not 8 positive whole numbers joined by _"),
    ({"separable_conv_norm": "none"}, r"says separable_conv_norm none: ganslim's mobile_spade runs an InstanceNorm"),
    ({"netG": "spade"}, r"says netG spade, but the checkpoint holds mobile_spade / sub_mobile_spade tensors"),
    ({"netG": "munit"}, r"says netG munit: only SPADE generators \(netG spade, mobile_spade, sub_mobile_spade\)"),
])
def test_options_that_do_not_fit_the_file_are_one_line(tmp_path, change, message):
    shapes = gc_mobile_shapes(ngf=4, semantic_nc=SEMANTIC_NC, mode="normal", channels=CONFIG)
    write_gc_file(tmp_path / "latest_net_G.pth", shapes, {**OPTIONS, **change})
    with pytest.raises(GanslimError, match=message):
        load_generator(tmp_path)


def test_files_ganslim_cannot_run_exactly_are_one_line(tmp_path):
    batch = gc_mobile_shapes(ngf=2, semantic_nc=SEMANTIC_NC, mode="normal", separable_norm="batch")
    write_gc_file(tmp_path / "batch" / "latest_net_G.pth", batch, {**OPTIONS, "netG": "mobile_spade", "ngf": 2})
    with pytest.raises(GanslimError, match=r"holds 'head_0.norm_0.mlp_gamma.conv.1.weight': a BatchNorm inside the "
                                           r"separable convs \(separable_conv_norm batch\)"):
        load_generator(tmp_path / "batch")
    write_gc_file(tmp_path / "channels" / "latest_net_G.pth", gc_mobile_shapes(4, SEMANTIC_NC, "normal", CONFIG),
                  OPTIONS)
    with pytest.raises(GanslimError, match=r"channels \[2, 3, 1, 2, 3, 2, 4, 4\] does not match its tensors"):
        load_generator(tmp_path / "channels", channels=[2, 3, 1, 2, 3, 2, 4, 4])
    most = gc_mobile_shapes(2, SEMANTIC_NC, "normal")
    most.update({key.replace("up_3.", "up_4.", 1): shape for key, shape in most.items() if key.startswith("up_3.")})
    write_gc_file(tmp_path / "most" / "latest_net_G.pth", most, {**OPTIONS, "netG": "mobile_spade", "ngf": 2})
    with pytest.raises(GanslimError, match=r"has an up_4 \('most' upsampling\), which ganslim's mobile_spade lacks"):
        load_generator(tmp_path / "most")
    nvlabs = nvlabs_shapes(ngf=2, semantic_nc=SEMANTIC_NC, mode="normal", hidden=4, spectral=False)
    write_gc_file(tmp_path / "full" / "latest_net_G.pth", nvlabs, {**OPTIONS, "ngf": 2})
    with pytest.raises(GanslimError, match=r"says netG sub_mobile_spade, but the checkpoint holds spade tensors"):
        load_generator(tmp_path / "full")


def test_translate_and_profile_run_a_compressed_student_from_its_file(tmp_path, capsys):
    root = make_builtin("labels2scene", tmp_path / "scenes", size=64, count=2)  # 6 labels + instance edges
    options = {**OPTIONS, "input_nc": 6, "contain_dontcare_label": False}
    checkpoint = tmp_path / "compressed" / "latest_net_G.pth"
    write_gc_file(checkpoint, gc_mobile_shapes(4, 7, "normal", CONFIG), options)
    out = tmp_path / "out"
    assert main(["translate", "--ckpt", str(checkpoint), "--input", str(root / "train" / "labels"), "--instance",
                 str(root / "train" / "instances"), "--output", str(out), "--device", "cpu"]) in (0, None)
    assert sorted(path.name for path in out.iterdir()) == ["0000.png", "0001.png"]
    assert "translated 2 label map(s) at 64x64 with mobile_spade" in capsys.readouterr().out
    assert main(["profile", str(checkpoint), "--repeats", "1", "--warmup", "0", "--json"]) in (0, None)
    profiled = json.loads(capsys.readouterr().out)
    expected = sum(parameter.numel() for parameter in load_generator(checkpoint).model.parameters())
    assert profiled["input_shape"] == [1, 7, 64, 64] and profiled["params"] == expected


@pytest.mark.usefixtures("no_user_vgg")
def test_a_mobile_teacher_file_is_a_gan_compression_teacher(tmp_path):
    root = make_builtin("labels2scene", tmp_path / "scenes", size=64, count=6)  # a part is held out
    options = {**OPTIONS, "netG": "mobile_spade", "input_nc": 6, "contain_dontcare_label": False,
               "config_str": "None"}
    checkpoint = tmp_path / "mobile" / "latest_net_G.pth"
    state = write_gc_file(checkpoint, gc_mobile_shapes(4, 7, "normal", spectral=True), options)
    config = DistillConfig(data=str(root), teacher=str(checkpoint), out_dir=str(tmp_path / "runs"), batch_size=2,
                           epochs=1, epochs_decay=0, sample_every=0)
    method, _ = build_method(SpadeSupernetDistillation, config)
    assert type(method.teacher).__name__ == "MobileSPADEGenerator" and method.teacher.channels == [4] * 8
    assert method.student.channels == [4] * 8  # the student's ngf defaults to the teacher's
    assert [a.out_channels for a in method.adapters.adapters] == [64, 64, 16]  # head_0, G_middle_1, up_1
    batch = first_batch(method)
    with torch.no_grad():
        torch.testing.assert_close(method.teacher(batch["A"]), gc_mobile_forward(state, batch["A"], "normal"),
                                   rtol=1e-4, atol=1e-5)
    assert all(torch.isfinite(value) for value in method.train_step(batch).values())
