"""Anycost GAN's discriminators: the multi-resolution one (Anycost's keys, one fromRGB per side into shared blocks,
initialised from a StyleGAN2 discriminator) and the generator-conditioned one (its code, its modulation)."""

from __future__ import annotations

import pytest
import torch

from ganslim.archs import build_discriminator
from ganslim.archs.stylegan2 import MultiResolutionDiscriminator, config_one_hot
from ganslim.errors import GanslimError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, CHANNELS = 32, [16, 16, 12, 8]  # per side 4, 8, 16, 32
TINY = {"size": SIZE, "channels": CHANNELS}
CODE_SHAPE = (8, 4)  # 2*log2(32) - 2 generator layers x 4 ratios


def _images(side: int, batch: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def _randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return module


def _anycost_keys(conditioned: bool) -> dict[str, tuple[int, ...]]:
    """Anycost's DiscriminatorMultiRes(32, n_res=3) state dict at widths c[32] 8, c[16] 12, c[8] 16, c[4] 16."""
    keys: dict[str, tuple[int, ...]] = {}
    for i, width in enumerate([8, 12, 16]):
        keys |= {f"convs.{i}.0.weight": (width, 3, 1, 1), f"convs.{i}.1.bias": (width,)}
    for j, (cin, cout) in enumerate([(8, 12), (12, 16), (16, 16)]):
        modulated = conditioned and j >= 1

        def mapping(name: str, channels: int) -> dict[str, tuple[int, ...]]:
            return {f"{name}.{kind}_mapping.{p}": (channels, 32) if p == "weight" else (channels,)
                    for kind in ("weight", "bias") for p in ("weight", "bias")} if modulated else {}

        block = f"blocks.{j}"
        keys[f"{block}.conv1.0.weight"] = (cin, cin, 3, 3)
        keys |= mapping(f"{block}.conv1.1", cin)
        keys[f"{block}.conv1.{2 if modulated else 1}.bias"] = (cin,)
        keys |= {f"{block}.conv2.0.kernel": (4, 4), f"{block}.conv2.1.weight": (cout, cin, 3, 3)}
        keys |= mapping(f"{block}.conv2.2", cout)
        keys[f"{block}.conv2.{3 if modulated else 2}.bias"] = (cout,)
        keys |= {f"{block}.skip.0.kernel": (4, 4), f"{block}.skip.1.weight": (cout, cin, 1, 1)}
        keys |= mapping(f"{block}.skip.2", cout)
    keys |= {"final_conv.0.weight": (16, 17, 3, 3), "final_conv.1.bias": (16,), "final_linear.0.weight": (16, 256),
             "final_linear.0.bias": (16,), "final_linear.1.weight": (1, 16), "final_linear.1.bias": (1,)}
    return keys


@pytest.mark.parametrize("conditioned", [False, True])
def test_keys_and_shapes_are_anycosts_in_order(conditioned):
    discriminator = build_discriminator("anycost", **TINY, resolutions=3, conditioned=conditioned)
    expected = _anycost_keys(conditioned)
    assert {key: tuple(t.shape) for key, t in discriminator.state_dict().items()} == expected
    assert list(discriminator.state_dict()) == list(expected)
    assert discriminator.resolutions == (32, 16, 8)


def test_every_resolution_enters_at_its_own_from_rgb():
    discriminator = _randomize_(build_discriminator("anycost", **TINY, resolutions=4)).eval()
    with torch.no_grad():
        outputs = {side: discriminator(_images(side)) for side in (32, 16, 8, 4)}
        assert all(out.shape == (4, 1) for out in outputs.values())
        assert len({round(float(out.sum()), 4) for out in outputs.values()}) == 4
        discriminator.convs[1][0].weight.mul_(2)  # the 16 px fromRGB only
        assert torch.equal(discriminator(_images(32)), outputs[32])
        assert not torch.allclose(discriminator(_images(16)), outputs[16])


def test_from_a_stylegan2_discriminator_judges_full_size_images_the_same():
    stylegan2 = _randomize_(build_discriminator("stylegan2", **TINY), seed=1).eval()
    multires = MultiResolutionDiscriminator.from_discriminator(stylegan2, resolutions=3).eval()
    state, source = multires.state_dict(), stylegan2.state_dict()
    assert torch.equal(state["blocks.0.conv1.0.weight"], source["convs.1.conv1.0.weight"])  # convs.k -> blocks.k-1
    assert torch.equal(state["blocks.2.skip.1.weight"], source["convs.3.skip.1.weight"])
    assert torch.equal(state["convs.0.0.weight"], source["convs.0.0.weight"])
    assert not torch.equal(state["convs.1.0.weight"][:8], source["convs.0.0.weight"])  # new fromRGBs: random
    images = _images(SIZE)
    assert torch.allclose(multires(images), stylegan2(images), atol=1e-6)
    stylegan2.convs[1].conv1[0].weight.data.zero_()
    assert not torch.equal(multires.blocks[0].conv1[0].weight, stylegan2.convs[1].conv1[0].weight)  # copies


def test_conditioned_from_multires_moves_the_biases_and_starts_from_its_random_modulation():
    multires = _randomize_(build_discriminator("anycost", **TINY, resolutions=3), seed=2).eval()
    conditioned = MultiResolutionDiscriminator.from_discriminator(multires, resolutions=3, conditioned=True).eval()
    state, source = conditioned.state_dict(), multires.state_dict()
    assert torch.equal(state["blocks.1.conv1.2.bias"], source["blocks.1.conv1.1.bias"])
    assert torch.equal(state["blocks.2.conv2.3.bias"], source["blocks.2.conv2.2.bias"])
    assert torch.equal(state["blocks.0.conv2.2.bias"], source["blocks.0.conv2.2.bias"])  # not conditioned
    code = config_one_hot([0.5] * 8)
    images = _images(16)
    assert not torch.allclose(conditioned(images, code), multires(images))
    with torch.no_grad():  # with zero mappings the modulation is the identity: the multi-resolution D's logits
        for name, parameter in conditioned.named_parameters():
            if "_mapping." in name:
                parameter.zero_()
    assert torch.allclose(conditioned(images, code), multires(images), atol=1e-6)


def test_the_configuration_changes_the_logits():
    # stddev group 1: no minibatch statistic, so a sample's logit depends on its own image and code only
    discriminator = _randomize_(build_discriminator("anycost", **TINY, conditioned=True, stddev_group=1), seed=3)
    images = _images(SIZE)
    small, full = config_one_hot([0.25] * 8), config_one_hot([1.0] * 8)
    mixed = config_one_hot([1.0, 1.0, 0.5, 0.75, 0.25, 0.25, 0.5, 1.0])
    logits = [discriminator(images, code) for code in (small, full, mixed)]
    assert logits[0].shape == (4, 1)
    assert not torch.allclose(logits[0], logits[1]) and not torch.allclose(logits[1], logits[2])
    per_sample = torch.stack([small, full, small, full])  # (N, n_layers, 4): each sample its own configuration
    batched = discriminator(images, per_sample)
    assert torch.allclose(batched[0::2], logits[0][0::2], atol=1e-6)
    assert torch.allclose(batched[1::2], logits[1][1::2], atol=1e-6)
    assert torch.allclose(discriminator(images[:1], small), logits[0][:1], atol=1e-6)  # a batch of one


def test_config_one_hot():
    code = config_one_hot([0.25, 1.0, 0.75])
    assert code.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    with pytest.raises(GanslimError, match=r"channel ratios \[0.3\] are not among 0.25, 0.5, 0.75, 1.0"):
        config_one_hot([0.3, 0.5])


@pytest.mark.parametrize("call, words", [
    (lambda d, c: d(_images(24)), r"takes \(N, 3, r, r\) images with r in 32, 16, 8, 4, got \(4, 3, 24, 24\)"),
    (lambda d, c: d(torch.zeros(2, 1, 32, 32)), r"takes \(N, 3, r, r\) images"),
    (lambda d, c: c(_images(32)), r"takes a configuration code of shape \(8, 4\) or \(4, 8, 4\) .*, got none"),
    (lambda d, c: c(_images(32), torch.zeros(18, 4)), r"got \(18, 4\)"),
    (lambda d, c: d(_images(32), config_one_hot([1.0] * 8)), "is not conditioned: pass no configuration"),
])
def test_bad_inputs_are_one_line(call, words):
    plain = build_discriminator("anycost", **TINY)
    conditioned = build_discriminator("anycost", **TINY, conditioned=True)
    with pytest.raises(GanslimError, match=words):
        call(plain, conditioned)


@pytest.mark.parametrize("kwargs, words", [
    ({"resolutions": 5}, "anycost resolutions=5: a 32 px discriminator judges at most 4 sides"),
    ({"resolutions": 0}, "anycost resolutions=0 is not a positive integer"),
    ({"channels": [8, 8]}, r"channels \[8, 8\] has 2 widths"),
])
def test_bad_arguments_are_one_line(kwargs, words):
    with pytest.raises(GanslimError, match=words):
        build_discriminator("anycost", **{**TINY, **kwargs})


def test_config_f_defaults_on_meta():
    with torch.device("meta"):
        discriminator = build_discriminator("anycost", conditioned=True)
    assert discriminator.resolutions == (1024, 512, 256, 128) and discriminator.code_shape == (18, 4)
    modulated = {name.split(".")[1] for name, _ in discriminator.named_parameters() if "_mapping." in name}
    assert modulated == {"6", "7"}  # the last two of the eight blocks (16 -> 8 and 8 -> 4 px)
    assert discriminator.blocks[7].conv1[1].weight_mapping.in_features == 72
