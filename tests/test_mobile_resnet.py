"""The mobile ResNet student of GAN Compression: published size, layout, channel configurations, features."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganslim.archs import build_generator
from ganslim.archs.translation.mobile_resnet import (
    MobileResnetGenerator,
    block_groups,
    channel_names,
    uniform_channels,
)
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs, count_params
from reference_impl import image, randomize_


def test_published_student_size_and_macs():
    # OMGD / GAN Compression mobile student: ngf 16, instance norm -> 0.137M params, 1.408G MACs at 256x256.
    with torch.device("meta"):
        student = build_generator("mobile_resnet", ngf=16, norm="instance")
        example = torch.empty(1, 3, 256, 256)
    assert count_params(student) == 137_347
    assert round(count_params(student) / 1e6, 3) == 0.137
    macs = count_macs(student, example)
    assert macs.macs_published == 1_407_713_280  # 1.408G, torchprofile convention
    assert round(macs.macs_published / 1e9, 3) == 1.408
    # The transposed convs counted at input resolution (the true count) save 2 x 3/4 x 302M.
    assert macs.macs == 954_728_448


def test_reference_key_layout():
    student = build_generator("mobile_resnet", ngf=4, n_blocks=3)
    state = student.state_dict()
    assert state["model.1.weight"].shape == (4, 3, 7, 7)
    assert state["model.10.conv_block.1.conv.0.weight"].shape == (16, 1, 3, 3)  # depthwise
    assert state["model.10.conv_block.1.conv.2.weight"].shape == (16, 16, 1, 1)  # pointwise
    assert state["model.12.conv_block.6.conv.2.weight"].shape == (16, 16, 1, 1)
    assert state["model.13.weight"].shape == (16, 8, 3, 3)  # ConvTranspose2d [in, out, k, k]
    assert state["model.20.weight"].shape == (3, 4, 7, 7) and len(student.model) == 3 + 19
    dropout = build_generator("mobile_resnet", ngf=4, n_blocks=3, use_dropout=True)
    assert list(dropout.state_dict()) == list(state)  # Dropout takes the place of an Identity
    assert isinstance(dropout.model[10].conv_block[4], nn.Dropout)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_norms_and_biases_follow_the_teacher(norm):
    student = build_generator("mobile_resnet", ngf=4, n_blocks=2, norm=norm)
    convs = {name: m for name, m in student.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}
    biased = {name for name, conv in convs.items() if conv.bias is not None}
    assert biased == (set(convs) if norm == "instance" else {"model.19"})
    # Between depthwise and pointwise conv there is always a non-affine InstanceNorm, as in the reference.
    inner = student.model[10].conv_block[1].conv[1]
    assert isinstance(inner, nn.InstanceNorm2d) and not inner.affine
    expected = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d, "none": nn.Identity}[norm]
    assert isinstance(student.model[2], expected) and isinstance(student.model[10].conv_block[7], expected)


@pytest.mark.parametrize(
    "n_blocks,groups,distill",
    [
        (9, [[0, 1, 2], [3, 4, 5], [6, 7, 8]], [9, 12, 15, 18]),
        (6, [[0, 1], [2, 3], [4, 5]], [9, 11, 13, 15]),
        (4, [[0], [1], [2, 3]], [9, 10, 11, 13]),
        (2, [[0], [1]], [9, 10, 11]),
        (0, [], [9]),
    ],
)
def test_block_groups_and_distill_layers(n_blocks, groups, distill):
    assert [list(g) for g in block_groups(n_blocks)] == groups
    assert len(channel_names(n_blocks)) == 5 + len(groups)
    assert len(uniform_channels(8, n_blocks)) == 5 + len(groups)
    student = build_generator("mobile_resnet", ngf=2, n_blocks=n_blocks)
    assert student.distill_layers() == distill
    assert student.block_indices == list(range(10, 10 + n_blocks))


def test_channel_names_for_nine_blocks():
    assert channel_names(9) == [
        "stem", "down1", "down2", "hidden[1-3]", "hidden[4-6]", "hidden[7-9]", "up1", "up2"
    ]
    assert uniform_channels(16, 9) == [16, 32, 64, 64, 64, 64, 32, 16]


def test_channel_configuration_sets_every_width():
    channels = [3, 5, 6, 2, 7, 4, 9, 5]
    student = randomize_(build_generator("mobile_resnet", channels=channels), seed=0).eval()
    assert student.channels == channels and student.arch_kwargs()["channels"] == channels
    assert student.model[1].out_channels == 3 and student.model[4].out_channels == 5
    assert student.model[7].out_channels == 6
    hidden = [student.model[i].separable_convs[0].pointwise.out_channels for i in student.block_indices]
    assert hidden == [2, 2, 2, 7, 7, 7, 4, 4, 4]
    assert student.model[19].out_channels == 9 and student.model[22].out_channels == 5
    x = image(2, 3, 16)
    indices = list(range(len(student.model)))
    with torch.no_grad():
        output, features = student.forward_features(x, indices)
        assert torch.equal(output, student(x))
    assert output.shape == (2, 3, 16, 16) and output.std() > 0.05
    assert [f.shape[1] for f in features] == [student.feature_channels(i) for i in indices]
    assert [features[i].shape[-1] for i in (0, 3, 6, 9, 18, 21, 24, 27)] == [22, 16, 8, 4, 4, 8, 16, 16]


def test_forward_features_keep_the_graph_and_the_inplace_relu_does_not_leak():
    student = build_generator("mobile_resnet", ngf=2, n_blocks=3)
    x = image(1, 3, 16)
    output, (down, block) = student.forward_features(x, [9, 12])
    assert down.requires_grad and block.requires_grad
    assert torch.equal(output, student(x))
    (down.sum() + block.sum() + output.sum()).backward()
    assert student.model[1].weight.grad is not None


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"channels": [8, 8, 8]}, "channels has 3 entries; 9 blocks need 8"),
        ({"channels": [8, 8, 8, 0, 8, 8, 8, 8]}, r"channels\[3\] \(hidden\[1-3\]\) must be a positive int"),
        ({"channels": [8, 8, 8, 8.0, 8, 8, 8, 8]}, r"channels\[3\]"),
        ({"channels": "8,8,8"}, "channels must be a list of 8 ints"),
        ({"n_blocks": -1}, "n_blocks >= 0"),
        ({"norm": "group"}, "unknown norm"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs, message):
    with pytest.raises(GanslimError, match=message) as error:
        build_generator("mobile_resnet", **kwargs)
    assert "\n" not in str(error.value)


def test_feature_channels_rejects_bad_indices():
    with pytest.raises(GanslimError, match="outside"):
        MobileResnetGenerator(ngf=2, n_blocks=1).feature_channels(20)
