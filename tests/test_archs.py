"""ganslim.archs against an independent re-implementation of the pix2pix / CycleGAN reference networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganslim.archs import (
    ResnetGenerator,
    UnetGenerator,
    build_discriminator,
    build_generator,
    init_weights,
)
from ganslim.errors import GanslimError
from ganslim.registry import DISCRIMINATORS, GENERATORS
from reference_impl import (
    NORM_NAMES,
    OUTPUT_TOLERANCE,
    TINY_DISCRIMINATORS,
    TINY_GENERATORS,
    image,
    randomize_,
    reference_discriminator,
    reference_generator,
)


def _assert_same_layout(ours: nn.Module, ref: nn.Module) -> None:
    ours_state, ref_state = ours.state_dict(), ref.state_dict()
    assert list(ours_state) == list(ref_state)
    assert {k: v.shape for k, v in ours_state.items()} == {k: v.shape for k, v in ref_state.items()}


def test_every_reference_arch_is_registered():
    assert set(TINY_GENERATORS) <= set(GENERATORS.names())
    assert {name for name, _, _ in TINY_DISCRIMINATORS} <= set(DISCRIMINATORS.names())


@pytest.mark.parametrize("use_dropout", [False, True], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("norm", NORM_NAMES)
@pytest.mark.parametrize("name", list(TINY_GENERATORS))
def test_generator_matches_reference(name, norm, use_dropout):
    kwargs, size = TINY_GENERATORS[name]
    ref = randomize_(reference_generator(name, norm=norm, use_dropout=use_dropout, **kwargs), seed=0).eval()
    ours = build_generator(name, norm=norm, use_dropout=use_dropout, **kwargs).eval()
    _assert_same_layout(ours, ref)
    ours.load_state_dict(ref.state_dict(), strict=True)

    x = image(1, kwargs.get("input_nc", 3), size)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == (1, kwargs.get("output_nc", 3), size, size)
    assert torch.allclose(got, expected, atol=OUTPUT_TOLERANCE)
    assert expected.std() > 0.1  # the comparison is not between two saturated tanh maps


@pytest.mark.parametrize("norm", NORM_NAMES)
@pytest.mark.parametrize(
    "name,kwargs,size", TINY_DISCRIMINATORS, ids=[f"{n}-{k.get('n_layers', '')}" for n, k, _ in TINY_DISCRIMINATORS]
)
def test_discriminator_matches_reference(name, kwargs, size, norm):
    ref = randomize_(reference_discriminator(name, norm=norm, **kwargs), seed=0).eval()
    ours = build_discriminator(name, norm=norm, **kwargs).eval()
    _assert_same_layout(ours, ref)
    ours.load_state_dict(ref.state_dict(), strict=True)

    x = image(2, kwargs.get("input_nc", 3), size)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    if name == "pixel":
        assert got.shape == (2, 1, size, size)
    else:
        n_layers = kwargs.get("n_layers", 3)
        assert got.shape == (2, 1, size // 2**n_layers - 2, size // 2**n_layers - 2)
    assert torch.allclose(got, expected, atol=1e-5)


def test_basic_discriminator_sees_70x70_patches_of_256_images():
    assert build_discriminator("basic", ndf=4)(image(1, 3, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize(
    "name,norm,millions", [("resnet_9blocks", "instance", 11.38), ("unet_256", "batch", 54.41)]
)
def test_full_size_parameter_counts_match_published(name, norm, millions):
    with torch.device("meta"):
        generator = build_generator(name, norm=norm)
    assert round(sum(p.numel() for p in generator.parameters()) / 1e6, 2) == millions


def _biased_convs(module: nn.Module) -> set[str]:
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    return {name for name, layer in module.named_modules() if isinstance(layer, convs) and layer.bias is not None}


def _all_convs(module: nn.Module) -> set[str]:
    return {name for name, layer in module.named_modules() if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))}


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_convs_have_bias_only_with_instance_norm_except_fixed_ends(norm):
    # The reference gives a bias only when norm is instance; with "none" the convs stay without one.
    assert _biased_convs(build_generator("resnet_6blocks", ngf=4, norm=norm)) == {"model.23"}
    assert _biased_convs(build_generator("unet_128", ngf=4, norm=norm)) == {"model.model.3"}
    assert _biased_convs(build_discriminator("basic", ndf=4, norm=norm)) == {"model.0", "model.11"}
    assert _biased_convs(build_discriminator("pixel", ndf=4, norm=norm)) == {"net.0"}
    for name in ("resnet_6blocks", "unet_128"):
        generator = build_generator(name, ngf=4, norm="instance")
        assert _biased_convs(generator) == _all_convs(generator)
    assert _biased_convs(build_discriminator("pixel", ndf=4, norm="instance")) == {"net.0", "net.2", "net.5"}


def test_norm_layers_and_their_state():
    batch = build_generator("resnet_6blocks", ngf=4, norm="batch")
    instance = build_generator("resnet_6blocks", ngf=4, norm="instance")
    none = build_generator("resnet_6blocks", ngf=4, norm="none")
    assert isinstance(batch.model[2], nn.BatchNorm2d) and batch.model[2].affine
    assert "model.2.running_mean" in batch.state_dict()
    assert isinstance(instance.model[2], nn.InstanceNorm2d)
    assert not instance.model[2].affine and not instance.model[2].track_running_stats
    assert not any("running" in key for key in instance.state_dict())
    assert isinstance(none.model[2], nn.Identity)
    assert len(batch.model) == len(instance.model) == len(none.model) == 6 + 19


def test_dropout_moves_the_second_block_conv():
    plain = build_generator("resnet_6blocks", ngf=4, norm="instance").state_dict()
    dropout = build_generator("resnet_6blocks", ngf=4, norm="instance", use_dropout=True).state_dict()
    assert "model.10.conv_block.5.weight" in plain and "model.10.conv_block.6.weight" not in plain
    assert "model.10.conv_block.6.weight" in dropout and "model.10.conv_block.5.weight" not in dropout
    unet = build_generator("unet_256", ngf=4, use_dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in unet.modules()) == 3  # the num_downs - 5 inner 8*ngf levels


def test_batch_norm_eval_uses_running_statistics():
    generator = randomize_(build_generator("resnet", ngf=4, n_blocks=1), seed=3).eval()
    x = image(2, 3, 32)
    before = generator(x)
    with torch.no_grad():
        generator.model[2].running_mean += 1.0
    assert not torch.allclose(generator(x), before)


def test_resnet_forward_features():
    generator = randomize_(build_generator("resnet_9blocks", ngf=8), seed=0).eval()
    assert isinstance(generator, ResnetGenerator)
    assert generator.block_indices == list(range(10, 19))
    x = image(2, 3, 64)
    indices = [9, 12, 2, 18, 15]
    output, features = generator.forward_features(x, indices)
    assert torch.allclose(output, generator(x))
    assert [tuple(f.shape) for f in features] == [(2, 32, 16, 16)] * 2 + [(2, 8, 64, 64)] + [(2, 32, 16, 16)] * 2
    assert [generator.feature_channels(i) for i in indices] == [32, 32, 8, 32, 32]
    for index, feature in zip(indices, features):
        assert torch.allclose(feature, generator.model[: index + 1](x), atol=1e-6)
    # index 2 is a batch norm followed by an in-place ReLU: the feature must keep its negative values
    assert features[2].min() < 0


def test_forward_features_keep_gradients():
    generator = build_generator("resnet", ngf=4, n_blocks=2)
    output, features = generator.forward_features(image(2, 3, 32), [2, 9])
    (output.mean() + sum(f.pow(2).mean() for f in features)).backward()
    assert generator.model[1].weight.grad is not None


def test_unet_forward_features():
    kwargs, size = TINY_GENERATORS["unet"]
    generator = randomize_(build_generator("unet", **kwargs), seed=0).eval()
    assert isinstance(generator, UnetGenerator)
    assert len(generator.blocks()) == kwargs["num_downs"]
    x = image(2, kwargs["input_nc"], size)
    depths = [1, 3, 5]
    output, features = generator.forward_features(x, depths)
    assert torch.allclose(output, generator(x))
    ngf = kwargs["ngf"]
    assert [tuple(f.shape) for f in features] == [(2, 2 * ngf, 32, 32), (2, 8 * ngf, 8, 8), (2, 16 * ngf, 2, 2)]
    assert [generator.feature_channels(d) for d in depths] == [2 * ngf, 8 * ngf, 16 * ngf]
    # depth 1 = cat([skip, decoded]). The skip is the outermost down-conv of the image after LeakyReLU: the
    # reference's in-place LeakyReLU at the start of the inner block rewrites the tensor it also concatenates.
    skip = nn.functional.leaky_relu(generator.model.model[0](x), 0.2)
    assert torch.allclose(features[0][:, :ngf], skip, atol=1e-6)
    # the decoded half ends in a batch norm; an in-place ReLU after the block must not have clipped it
    assert features[0][:, ngf:].min() < 0
    output.mean().backward()


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_generator("resnet_9blocks", norm="group"),
        lambda: build_generator("unet", num_downs=4),
        lambda: build_generator("resnet", n_blocks=-1),
        lambda: build_generator("transformer"),
        lambda: build_generator("resnet_9blocks", n_blocks=6),
        lambda: build_discriminator("n_layers", n_layers=0),
        lambda: build_discriminator("basic", n_layers=4),
        lambda: build_discriminator("pixel", norm="layer"),
    ],
    ids=["norm", "num_downs", "n_blocks", "unknown_generator", "fixed_depth", "n_layers", "basic_depth", "d_norm"],
)
def test_bad_arguments_raise_one_line_errors(build):
    with pytest.raises(GanslimError) as error:
        build()
    assert "\n" not in str(error.value)


def test_unknown_generator_lists_the_valid_names():
    with pytest.raises(GanslimError, match="resnet_9blocks"):
        build_generator("resnet_12blocks")


def test_bad_inputs_to_forward_raise():
    generator = build_generator("unet_128", ngf=4)
    with pytest.raises(GanslimError, match="multiples of 128"):
        generator(image(1, 3, 96))
    with pytest.raises(GanslimError, match="outside"):
        generator.forward_features(image(1, 3, 128), [0])
    with pytest.raises(GanslimError, match="outside"):
        build_generator("resnet", ngf=4, n_blocks=1).forward_features(image(1, 3, 32), [20])


def test_init_weights_normal_as_reference():
    generator = build_generator("resnet_6blocks", ngf=16, norm="batch")
    assert init_weights(generator, generator=torch.Generator().manual_seed(0)) is generator
    conv = generator.model[10].conv_block[1].weight
    assert abs(conv.std().item() - 0.02) < 0.001 and abs(conv.mean().item()) < 0.001
    bn = torch.cat([m.weight for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1.0) < 0.005 and abs(bn.std().item() - 0.02) < 0.005
    biases = [m.bias for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) and m.bias is not None]
    assert all(torch.all(b == 0) for b in biases)
    again = init_weights(build_generator("resnet_6blocks", ngf=16), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.model[10].conv_block[1].weight, conv)


@pytest.mark.parametrize("init_type", ["xavier", "kaiming", "orthogonal"])
def test_init_weights_other_types(init_type):
    layer = nn.Sequential(nn.Conv2d(64, 128, 3))
    init_weights(layer, init_type, gain=0.5, generator=torch.Generator().manual_seed(0))
    weight = layer[0].weight
    fan_in, fan_out = 64 * 9, 128 * 9
    if init_type == "xavier":
        assert abs(weight.std().item() - 0.5 * math.sqrt(2 / (fan_in + fan_out))) < 0.002
    elif init_type == "kaiming":
        assert abs(weight.std().item() - math.sqrt(2 / fan_in)) < 0.003
    else:
        flat = weight.reshape(128, -1)
        assert torch.allclose(flat @ flat.T, 0.25 * torch.eye(128), atol=1e-4)
    assert torch.all(layer[0].bias == 0)


def test_init_weights_rejects_unknown_type():
    with pytest.raises(GanslimError, match="orthogonal"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")
