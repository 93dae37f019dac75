"""GAN Compression's mobile SPADE: the 8-entry configuration's widths, the separable modulation, the supernet whose
sub-networks equal their extracted students, the search space's MACs, and the blocks a distillation taps."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.compress import extract_subnet
from ganslim.compress.spade_space import SpadeSearchSpace
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 4 labels + instance edges (5 channels), 'normal' upsampling, 64x128 (aspect 2: a 2x4 latent).
TINY = dict(label_nc=4, ngf=4, crop_size=128, aspect_ratio=2.0)
CONFIG = [3, 2, 4, 1, 2, 3, 4, 2]  # fc, head_0, G_middle_0, G_middle_1, up_0, up_1, up_2, up_3


def label_map(batch: int = 2, height: int = 64, width: int = 128, seed: int = 0) -> torch.Tensor:
    labels = torch.randint(4, (batch, height, width), generator=torch.Generator().manual_seed(seed))
    edges = (torch.rand(batch, 1, height, width, generator=torch.Generator().manual_seed(seed + 1)) < 0.1).float()
    return torch.cat([F.one_hot(labels, 4).permute(0, 3, 1, 2).float(), edges], 1)


def randomize_batchnorm_(model: nn.Module) -> nn.Module:
    """Give every parameter-free BatchNorm running statistics that are not the identity."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.num_features, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


def test_block_widths_follow_gan_compressions_rule():
    model = build_generator("mobile_spade", **TINY, channels=CONFIG)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    # fc -> 16 c0 = 48 (the residual width of the 16-ngf stage); head_0 / G_middle_x: 48 -> 16 c_i -> 48.
    assert shapes["fc.weight"] == (48, 5, 3, 3)
    assert shapes["head_0.conv_0.weight"] == (32, 48, 3, 3) and shapes["head_0.conv_1.weight"] == (48, 32, 3, 3)
    assert shapes["G_middle_0.conv_0.weight"] == (64, 48, 3, 3) and shapes["G_middle_1.conv_0.weight"] == (16, 48, 3, 3)
    # up_0: 48 -> 8 c4 = 16 (with its 1x1 shortcut); up_1 -> 4 c5 = 12; up_2 -> 2 c6 = 8; up_3 -> c7 = 2.
    assert shapes["up_0.conv_0.weight"] == (16, 48, 3, 3) and shapes["up_0.conv_s.weight"] == (16, 48, 1, 1)
    assert shapes["up_1.conv_1.weight"] == (12, 12, 3, 3) and shapes["up_2.conv_s.weight"] == (8, 12, 1, 1)
    assert shapes["up_3.conv_0.weight"] == (2, 8, 3, 3) and shapes["conv_img.weight"] == (3, 2, 3, 3)
    # SPADE hidden = 2 x the block's entry; gamma / beta: depthwise k x k then pointwise 1x1 to the norm's width.
    assert shapes["head_0.norm_0.mlp_shared.0.weight"] == (4, 5, 3, 3)
    assert shapes["head_0.norm_0.mlp_gamma.conv.0.weight"] == (4, 1, 3, 3)
    assert shapes["head_0.norm_0.mlp_gamma.conv.2.weight"] == (48, 4, 1, 1)
    assert shapes["head_0.norm_1.mlp_beta.conv.2.weight"] == (32, 4, 1, 1)
    assert shapes["up_1.norm_s.mlp_shared.0.weight"] == (6, 5, 3, 3)
    assert shapes["up_1.norm_s.mlp_gamma.conv.2.weight"] == (16, 6, 1, 1)
    with torch.no_grad():
        assert model.eval()(label_map()).shape == (2, 3, 64, 128)


def test_the_unpruned_student_is_the_teacher_with_separable_gamma_and_beta():
    teacher = build_generator("spade", **TINY).state_dict()
    student = build_generator("mobile_spade", **TINY).state_dict()
    dense = {key: value.shape for key, value in teacher.items() if ".mlp_gamma." not in key and ".mlp_beta." not in key}
    assert {key: student[key].shape for key in dense} == dense  # every other tensor (and BN statistic) as GauGAN's
    separable = {key for key in student if key not in teacher}
    assert separable and all(".mlp_gamma.conv." in key or ".mlp_beta.conv." in key for key in separable)
    assert student["up_3.norm_1.mlp_gamma.conv.0.weight"].shape == (8, 1, 3, 3)  # hidden 2 ngf, depthwise


def test_supernet_subnetworks_equal_their_extracted_students():
    torch.manual_seed(0)
    supernet = randomize_batchnorm_(build_generator("super_mobile_spade", **TINY)).eval()
    assert supernet.state_dict().keys() == build_generator("mobile_spade", **TINY).state_dict().keys()
    x = label_map()
    for channels in (CONFIG, [1] * 8, [4, 4, 1, 4, 1, 4, 1, 4]):
        student = extract_subnet(supernet, channels).eval()
        assert student.channels == channels and type(student).__name__ == "MobileSPADEGenerator"
        rebuilt = build_generator("mobile_spade", **student.arch_kwargs())
        rebuilt.load_state_dict(student.state_dict(), strict=True)  # a checkpoint's arch + arch_kwargs rebuild it
        with torch.no_grad():
            expected = supernet.configure(channels)(x)
            assert torch.equal(student(x), expected) and torch.equal(rebuilt.eval()(x), expected)
    with torch.no_grad():
        full = supernet.configure(None)(x)
        assert torch.equal(extract_subnet(supernet, [4] * 8).eval()(x), full)
        assert not torch.allclose(supernet.configure(CONFIG)(x), full)  # the configuration changes the network
    supernet.configure(CONFIG).train()  # batch statistics in training mode agree too
    student = extract_subnet(supernet, CONFIG)
    assert student.training and torch.allclose(student(x), supernet(x), atol=1e-6)


def test_bad_configurations_are_one_line():
    supernet = build_generator("super_mobile_spade", **TINY)
    with pytest.raises(GanslimError, match=r"8 positive ints \(fc, head_0, G_middle_0, G_middle_1, up_0, up_1, up_2, "
                                           r"up_3\), got \[4, 4\]"):
        supernet.configure([4, 4])
    with pytest.raises(GanslimError, match=r"channels\[5\] \(up_1\) = 8 exceeds the supernet's 4"):
        extract_subnet(supernet, [4, 4, 4, 4, 4, 8, 4, 4])
    with pytest.raises(GanslimError, match="mobile_spade has no up_4"):
        build_generator("mobile_spade", num_upsampling_layers="most", crop_size=256)


def test_search_space_predicts_the_extracted_students_macs_on_label_maps_of_its_aspect():
    supernet = build_generator("super_mobile_spade", **TINY).eval()
    space = SpadeSearchSpace.for_supernet(supernet, [(4, 2)] * 8)
    assert space.size() == 256 and space.largest() == [4] * 8 and space.smallest() == [2] * 8
    for channels in (space.largest(), [2, 4, 2, 4, 2, 4, 2, 4]):
        counted = count_macs(extract_subnet(supernet, channels).eval(), label_map(1))  # 64x128: width 128
        assert space.predict_macs(channels, 128) == counted
    assert space.predict_macs(space.smallest(), 256).macs > 3.9 * space.predict_macs(space.smallest(), 128).macs
    with pytest.raises(GanslimError, match=r"size 96 does not fit this MobileSPADEGenerator \(label maps width x 2/4 "
                                           r"high, sides multiples of 32, a latent of at least 2x2\): use size 128"):
        space.predict_macs(space.smallest(), 96)
    with pytest.raises(GanslimError, match="use size 256"):
        space.predict_macs(space.smallest(), 250)
    with pytest.raises(GanslimError, match=r"channels\[0\] \(fc\) = 3 is not a candidate; choose one of 4, 2"):
        space.validate([3, 2, 2, 2, 2, 2, 2, 2])
    with pytest.raises(GanslimError, match=r"exceeds the supernet's 4"):
        SpadeSearchSpace.for_supernet(supernet, [(8, 4)] * 8)
    assert SpadeSearchSpace.for_supernet(build_generator("super_mobile_spade", ngf=48, crop_size=256)).candidates[0] \
        == (48, 32, 24, 16)


def test_forward_features_are_the_block_outputs_the_distillation_taps():
    torch.manual_seed(0)
    teacher = build_generator("spade", **TINY).eval()
    student = build_generator("mobile_spade", **TINY, channels=CONFIG).eval()
    x = label_map()
    for model in (teacher, student):
        recorded = {}
        hooks = [model.get_submodule(name).register_forward_hook(
            lambda module, args, out, name=name: recorded.__setitem__(name, out)) for name in model.block_names]
        with torch.no_grad():
            image, features = model.forward_features(x, [0, 2, 4])
            assert torch.equal(image, model(x))
        for hook in hooks:
            hook.remove()
        assert [torch.equal(f, recorded[n]) for f, n in zip(features, ("head_0", "G_middle_1", "up_1"))] == [True] * 3
    assert [teacher.feature_channels(i) for i in (0, 2, 4)] == [64, 64, 16]
    assert [student.feature_channels(i) for i in (0, 2, 4)] == [48, 48, 12]


def test_profile_takes_the_arch_by_name_and_a_compact_student_checkpoint(tmp_path, capsys):
    assert main(["profile", "mobile_spade", "--ngf", "2", "--size", "64", "--repeats", "1", "--warmup", "0",
                 "--json"]) in (0, None)
    assert json.loads(capsys.readouterr().out)["input_shape"] == [1, 183, 64, 64]  # the defaults: 182 labels + edges
    student = extract_subnet(build_generator("super_mobile_spade", **TINY), CONFIG).eval()
    path = save_model(tmp_path / "student.pt", student, "mobile_spade", student.arch_kwargs())
    assert main(["profile", str(path), "--repeats", "1", "--warmup", "0", "--json"]) in (0, None)
    profiled = json.loads(capsys.readouterr().out)
    assert profiled["input_shape"] == [1, 5, 64, 128]  # the size it is built for
    assert profiled["macs"] == count_macs(student, label_map(1)).macs
