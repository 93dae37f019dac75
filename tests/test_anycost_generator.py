"""Anycost GAN's elastic StyleGAN2: sub-generator configs against hand-written tables and Anycost's released figures,
early exit and first-k slicing against the functional reference on hand-sliced tensors, the standalone copy, the
MAC counts of both, and channel sorting."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganslim.archs import build_generator
from ganslim.archs.stylegan2 import (
    CHANNEL_RATIOS,
    flexible_choices,
    layer_sides,
    parse_channels,
    read_channel_configs,
    resolve_subnet,
    uniform_channels,
)
from ganslim.compress import channel_importance, extract_stylegan2_subnet, sort_stylegan2_channels
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs, count_params
from stylegan2_reference import random_rosinality_state, stored_noises, synthesize_rosinality

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, CHANNELS, STYLE_DIM, N_MLP = 32, [16, 16, 12, 8], 8, 2  # per side 4, 8, 16, 32
TINY = {"size": SIZE, "channels": CHANNELS, "style_dim": STYLE_DIM, "n_mlp": N_MLP}
TOLERANCE = 1e-5
CONFIG_F = (512,) * 10 + (256, 256, 128, 128, 64, 64, 32, 32)  # config-f 1024, per layer

# Figures from mit-han-lab/anycost-gan, assets/evolve_configs/anycost-ffhq-config-f-flexible.json (three entries).
ANYCOST_FLEXIBLE = {
    "101G": {"channels": [512] * 10 + [256, 256, 128, 96, 32, 64, 8, 8], "res": 1024, "macs": 100727199733},
    "58G": {"channels": [512] * 8 + [384, 384, 192, 192, 64, 64, 32, 32, 8, 16], "res": 1024, "macs": 57406441701},
    "15G": {"channels": [512] * 6 + [384, 384, 128, 256, 64, 64, 32, 128, 16, 32, 16, 8], "res": 256,
            "macs": 14901895481},
}


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_rosinality_state(SIZE, CHANNELS, STYLE_DIM, N_MLP, seed=0)


@pytest.fixture
def generator(state):
    generator = build_generator("stylegan2", **TINY).eval()
    generator.load_state_dict(state, strict=True)
    return generator


def _w_plus(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 8, STYLE_DIM, generator=torch.Generator().manual_seed(seed))


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    assert expected.std() > 0.1, "not a comparison of two near-constant images"
    return torch.allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE)


# ---------------------------------------------------------------- configurations


def test_layers_are_anycosts_18_at_1024():
    assert layer_sides(1024) == (4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024)
    with torch.device("meta"):
        generator = build_generator("stylegan2")
    assert generator.layer_channels == CONFIG_F and generator.num_ws == 18


@pytest.mark.parametrize("ratio, expected", [
    # min(512, {4: 4096, ..., 1024: 16} * 2 * ratio), taken per side and doubled (Anycost's official configs)
    (0.25, [512] * 6 + [256, 256, 128, 128, 64, 64, 32, 32, 16, 16, 8, 8]),
    (0.5, [512] * 8 + [256, 256, 128, 128, 64, 64, 32, 32, 16, 16]),  # the 4-32 px layers stay 512
    (0.75, [512] * 8 + [384, 384, 192, 192, 96, 96, 48, 48, 24, 24]),
    (1.0, list(CONFIG_F)),
])
def test_uniform_configs_of_config_f_are_anycosts(ratio, expected):
    assert list(uniform_channels(CONFIG_F, ratio)) == expected
    assert resolve_subnet(CONFIG_F, 256, ratio).channels == tuple(expected[:14])


def test_uniform_configs_of_a_tiny_table_follow_the_uncapped_widths():
    # per layer (16, 16, 16, 16, 12, 12, 8, 8); uncapped max(full, 8 * 32 / side): 64, 32, 16, 8
    full = (16, 16, 16, 16, 12, 12, 8, 8)
    assert uniform_channels(full, 0.5) == (16, 16, 16, 16, 8, 8, 4, 4)
    assert uniform_channels(full, 0.25) == (16, 16, 8, 8, 4, 4, 2, 2)
    assert uniform_channels(full, 1) == full


def test_flexible_choices_of_config_f():
    choices = flexible_choices(CONFIG_F)
    only_full = {1.0: 512}
    assert choices[:6] == (only_full,) * 6  # 4-16 px: the 0.25 config is already full
    assert choices[6] == choices[7] == {0.5: 256, 0.75: 384, 1.0: 512}
    assert choices[8] == {0.25: 128, 0.5: 256, 0.75: 384, 1.0: 512}
    assert choices[10] == {0.25: 64, 0.5: 128, 0.75: 192, 1.0: 256}
    assert choices[12] == {0.25: 32, 0.5: 64, 0.75: 96, 1.0: 128}
    assert choices[14] == {0.25: 16, 0.5: 32, 0.75: 48, 1.0: 64}
    assert choices[16] == choices[17] == {0.25: 8, 0.5: 16, 0.75: 24, 1.0: 32}
    for config in ANYCOST_FLEXIBLE.values():  # Anycost's searched configs lie in this space
        assert all(width in layer.values() for width, layer in zip(config["channels"], choices))


def test_flexible_choices_keep_at_least_8_channels_in_multiples_of_4():
    # full 20, 20, 12 per side; 0.25 floor (uncapped 48, 24, 12): 12, 6, 3
    choices = flexible_choices((20, 20, 20, 20, 12, 12))
    assert choices[0] == {0.75: 16, 1.0: 20}  # 0.25 and 0.5 fall below the floor; int(15) -> 16
    assert choices[2] == {0.5: 12, 0.75: 16, 1.0: 20}
    assert choices[4] == {0.25: 8, 0.5: 8, 0.75: 12, 1.0: 12}  # 3 and 6 raised to 8, 9 up to 12
    assert CHANNEL_RATIOS == (0.25, 0.5, 0.75, 1.0)


def test_channel_strings_and_config_files(tmp_path):
    assert parse_channels("0.5") == 0.5 and parse_channels("8,16,4") == (8, 16, 4)
    path = tmp_path / "configs.json"
    path.write_text(json.dumps({name: {**config, "dist": 0.1} for name, config in ANYCOST_FLEXIBLE.items()}))
    configs = read_channel_configs(path)
    assert list(configs) == ["101G", "58G", "15G"]
    assert configs["15G"].resolution == 256 and configs["15G"].macs == 14901895481
    assert configs["15G"].channels[-2:] == (16, 8)
    subnet = resolve_subnet(CONFIG_F, channels=f"{path}:15G")  # the file's resolution, its first 14 widths
    assert subnet.resolution == 256 and subnet.channels == tuple(ANYCOST_FLEXIBLE["15G"]["channels"][:14])
    assert resolve_subnet(CONFIG_F, 128, f"{path}:15G").channels == subnet.channels[:12]
    assert resolve_subnet(CONFIG_F, 64, "0.25").channels == (512,) * 6 + (256, 256, 128, 128)
    assert resolve_subnet(CONFIG_F).channels == CONFIG_F and resolve_subnet(CONFIG_F).resolution == 1024


@pytest.mark.parametrize("resolution, channels, words", [
    (None, [512] * 7, r"channels \[512, .*\] has 7 widths; this 1024 px generator takes 18 \(one per layer"),
    (256, [512] * 13, r"has 13 widths; this 1024 px generator takes 18 .* or 14 \(up to resolution 256\)"),
    (None, [*CONFIG_F[:17], 33], r"layer 17 \(1024 px\) width 33 is outside 1 .. 32, that layer's full width"),
    (None, [0, *CONFIG_F[1:]], r"layer 0 \(4 px\) width 0 is outside 1 .. 512"),
    (None, 1.5, r"channel ratio 1.5 is not in \(0, 1\]"),
    (None, "half", "channels 'half' is neither a ratio"),
    (48, None, "resolution 48 is not a power of two in 4 .. 1024"),
    (2048, None, "resolution 2048 is not a power of two in 4 .. 1024"),
    (None, "missing.json:101G", "channel config file 'missing.json' does not exist"),
])
def test_bad_subnets_are_one_line(resolution, channels, words):
    with pytest.raises(GanslimError, match=words):
        resolve_subnet(CONFIG_F, resolution, channels)


def test_bad_config_files_are_one_line(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "odd.json").write_text(json.dumps({"a": {"channels": [512]}}))
    (tmp_path / "ok.json").write_text(json.dumps({"a": {"channels": [512] * 18, "res": 1024}}))
    for spec, words in [("bad.json:a", "cannot be read"), ("odd.json:a", "config 'a' .* has no \"channels\" list"),
                        ("ok.json:b", "has no config 'b'; it has: a")]:
        with pytest.raises(GanslimError, match=words):
            resolve_subnet(CONFIG_F, channels=f"{tmp_path / spec}")


# ---------------------------------------------------------------- the elastic generator


def _sliced_state(state: dict[str, torch.Tensor], channels: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Anycost's sub-generator written as a plain state: the first widths of every tensor, the blocks up to the
    target, each modulated weight times sqrt(k / full) (the reference scales by its own, smaller, input width)."""
    blocks = len(channels) // 2 - 1
    keep = {"input", "conv1", "to_rgb1"} | {f"convs.{i}" for i in range(2 * blocks)} \
        | {f"to_rgbs.{k}" for k in range(blocks)}
    producers = ["conv1", *(f"convs.{i}" for i in range(2 * blocks))]
    width_in = {name: channels[i] for i, name in enumerate(producers)}  # StyledConv i reads tensor i
    width_in |= {"to_rgb1": channels[1], **{f"to_rgbs.{k}": channels[2 * k + 3] for k in range(blocks)}}
    width_out = {name: channels[i + 1] for i, name in enumerate(producers)}
    sliced = {"input.input": state["input.input"][:, :channels[0]]}
    for name in keep - {"input"}:
        weight = state[f"{name}.conv.weight"]
        k_in, out = width_in[name], width_out.get(name, weight.shape[1])
        sliced[f"{name}.conv.weight"] = weight[:, :out, :k_in] * math.sqrt(k_in / weight.shape[2])
        sliced[f"{name}.conv.modulation.weight"] = state[f"{name}.conv.modulation.weight"][:k_in]
        sliced[f"{name}.conv.modulation.bias"] = state[f"{name}.conv.modulation.bias"][:k_in]
        for suffix in ("noise.weight", "bias"):
            if f"{name}.{suffix}" in state:
                sliced[f"{name}.{suffix}"] = state[f"{name}.{suffix}"]
        if name in width_out:
            sliced[f"{name}.activate.bias"] = state[f"{name}.activate.bias"][:out]
    return sliced


@pytest.mark.parametrize("resolution, channels", [
    (32, None), (16, None), (8, None), (4, None), (32, 0.5), (16, 0.25), (32, (8, 12, 16, 8, 12, 4, 8, 4)),
    (16, (4, 16, 8, 12, 12, 8)),
])
def test_sub_generator_is_the_reference_on_the_sliced_tensors(generator, state, resolution, channels):
    w_plus = _w_plus()
    with generator.subnet(resolution, channels) as subnet:
        got = generator.synthesis(w_plus)
    expected_channels = resolve_subnet(generator.layer_channels, resolution, channels).channels
    assert subnet.channels == expected_channels and len(subnet.channels) == 2 * math.log2(resolution) - 2
    expected = synthesize_rosinality(_sliced_state(state, subnet.channels), w_plus, stored_noises(state, 3))
    assert got.shape == (3, 3, resolution, resolution)
    assert _close(got, expected)


def test_early_exit_returns_the_full_generators_skip_image_at_that_side(generator):
    skips = []
    hooks = [rgb.register_forward_hook(lambda module, args, out: skips.append(out))
             for rgb in [generator.to_rgb1, *generator.to_rgbs]]
    w_plus = _w_plus()
    with torch.no_grad():
        full = generator.synthesis(w_plus)
    for hook in hooks:
        hook.remove()
    assert torch.equal(skips[-1], full)
    for side, skip in zip([4, 8, 16], skips):
        with generator.subnet(side), torch.no_grad():
            assert torch.equal(generator.synthesis(w_plus), skip)


def test_set_subnet_applies_to_forward_synthesis_parts_and_signature(generator):
    z = torch.randn(2, STYLE_DIM, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = generator(z)
        synthesis = generator.synthesis  # made before the switch: it shares the active sub-generator
        subnet = generator.set_subnet(16, 0.5)
        assert subnet.resolution == 16 and generator.active_subnet == subnet
        assert generator(z).shape == (2, 3, 16, 16) and synthesis(generator.broadcast(generator.map(z))).shape[-1] == 16
        part, inputs = generator.parts()["synthesis"]
        assert part(*inputs).shape == (1, 3, 16, 16)
        assert generator.signature.output.resolution == 16 and generator.output_resolution == 16
        with generator.subnet(8, None):
            assert generator(z).shape == (2, 3, 8, 8)
        assert generator.active_subnet == subnet  # the with block restores the one before it
        generator.set_subnet()
        assert torch.equal(generator(z), full) and generator.signature.output.resolution == SIZE


def test_sub_generator_trains_its_leading_slices_only(generator):
    generator.train()
    with generator.subnet(16, 0.5):
        generator.synthesis(_w_plus()).square().mean().backward()
    grad = generator.convs[2].conv.weight.grad  # the x2 up conv to 16 px: 8 of its 12 outputs
    assert grad[:, :8].abs().sum() > 0 and grad[:, 8:].abs().sum() == 0
    assert generator.convs[4].conv.weight.grad is None  # past the exit


def test_a_plain_rosinality_file_loads_strictly_and_its_full_generator_is_unchanged(state):
    generator = build_generator("stylegan2", **TINY).eval()
    generator.load_state_dict(state, strict=True)
    w_plus = _w_plus()
    expected = synthesize_rosinality(state, w_plus, stored_noises(state, 3))
    assert _close(generator.synthesis(w_plus), expected)
    assert list(generator.state_dict()) == list(state)


# ---------------------------------------------------------------- the standalone copy


@pytest.mark.parametrize("resolution, channels", [(32, 0.5), (16, (8, 12, 16, 8, 12, 4)), (8, None), (32, None)])
def test_extracted_sub_generator_equals_the_sliced_one(generator, resolution, channels):
    compact = extract_stylegan2_subnet(generator, resolution, channels)
    z = torch.randn(3, STYLE_DIM, generator=torch.Generator().manual_seed(4))
    with generator.subnet(resolution, channels) as subnet, torch.no_grad():
        assert _close(compact(z), generator(z))
        sliced_macs = count_macs(*generator.parts()["synthesis"])
    assert generator.active_subnet.resolution == SIZE  # the source is left as it was
    assert compact.layer_channels == subnet.channels and compact.img_resolution == resolution
    assert count_macs(*compact.parts()["synthesis"]) == sliced_macs  # both conventions
    rebuilt = build_generator("stylegan2", **compact.arch_kwargs())
    rebuilt.load_state_dict(compact.state_dict(), strict=True)
    assert count_params(compact) == count_params(rebuilt)
    if channels is not None:
        assert count_params(compact) < count_params(generator)


def test_per_layer_channel_tables_build_rosinality_keys_with_those_widths():
    generator = build_generator("stylegan2", size=16, channels=[8, 4, 12, 8, 4, 4], style_dim=8, n_mlp=1)
    shapes = {key: tuple(t.shape) for key, t in generator.state_dict().items()}
    assert shapes["input.input"] == (1, 8, 4, 4) and shapes["conv1.conv.weight"] == (1, 4, 8, 3, 3)
    assert shapes["convs.0.conv.weight"] == (1, 12, 4, 3, 3) and shapes["convs.1.conv.weight"] == (1, 8, 12, 3, 3)
    assert shapes["to_rgb1.conv.weight"] == (1, 3, 4, 1, 1) and shapes["to_rgbs.0.conv.weight"] == (1, 3, 8, 1, 1)
    assert shapes["convs.3.activate.bias"] == (4,) and generator.channels == {4: 4, 8: 8, 16: 4}


# ---------------------------------------------------------------- cost


def _published_offset(channels: list[int], resolution: int) -> int:
    """Our published-convention MACs minus Anycost's figure for a config, term by term (batch 1, mapping included).

    Each term is an implementation detail of an op the two generators compute alike: ours runs the leaky ReLU out of
    place (torchprofile counts it; Anycost's in-place one counts 0); ours multiplies the style by the scale where
    Anycost scales the weight (out*in*k*k muls); ours computes only the styles a sub-generator reads (Anycost all,
    1025 MACs per dropped row: the 512-wide affine, its weight scaling and its bias scaling); our x2 skip upsampling is
    one 4x4 transposed conv counted at its (2h+2)^2 output where Anycost zero-inserts with a 2x2 one and then blurs
    (4 + 16 at (2h)^2); and Anycost's traced graph counts 2 integer muls of shape arithmetic per modulated conv.
    """
    n = 2 * int(math.log2(resolution)) - 2
    width, full, sides = channels[:n], CONFIG_F[:n], layer_sides(resolution)
    leaky = 8 * 512 + sum(c * s * s for c, s in zip(width[1:], sides[1:]))
    styled = [(width[max(i - 1, 0)], full[max(i - 1, 0)], width[i], 3) for i in range(1, n)]  # (in, full in, out, k)
    to_rgbs = [(width[i], full[i], 3, 1) for i in range(1, n, 2)]
    weight_scaling = sum(out * c_in * k * k - c_in for c_in, _, out, k in styled + to_rgbs)
    dropped_styles = sum(1025 * (full_in - c_in) for c_in, full_in, _, _ in styled + to_rgbs)
    upsampling = sum(3 * 16 * (2 * h + 2) ** 2 - 3 * 20 * (2 * h) ** 2 for h in sides[1:-1:2])
    return leaky - weight_scaling - dropped_styles + upsampling - 2 * len(styled + to_rgbs)


@pytest.mark.parametrize("name", list(ANYCOST_FLEXIBLE))
def test_released_flexible_configs_cost_anycosts_published_macs(name):
    config = ANYCOST_FLEXIBLE[name]
    with torch.device("meta"):
        generator = build_generator("stylegan2")
        generator.set_subnet(config["res"], config["channels"])
        counted = count_macs(generator, (torch.zeros(1, 512),))
    assert counted.macs_published == config["macs"] + _published_offset(config["channels"], config["res"])
    assert counted.macs_published == pytest.approx(config["macs"], rel=5e-4)  # within 0.05 %


@pytest.mark.parametrize("ratio", CHANNEL_RATIOS)
@pytest.mark.parametrize("resolution", [1024, 256])
def test_uniform_configs_true_macs(ratio, resolution):
    with torch.device("meta"):
        generator = build_generator("stylegan2")
        generator.set_subnet(resolution, ratio)
        counted = count_macs(*generator.parts()["synthesis"])
    c = uniform_channels(CONFIG_F, ratio)[:2 * int(math.log2(resolution)) - 2]
    sides = layer_sides(resolution)
    convs = c[0] * c[1] * 9 * 16 + sum(c[i - 1] * c[i] * 9 * s * s for i, s in enumerate(sides) if i >= 3 and i % 2)
    transposed = sum(c[i - 1] * c[i] * 9 * (s // 2) ** 2 for i, s in enumerate(sides) if i >= 2 and i % 2 == 0)
    to_rgb = sum(3 * c[i] * sides[i] ** 2 for i in range(1, len(c), 2))
    styles = 512 * (c[0] + sum(c[1:-1]) + sum(c[1::2]))  # each modulated conv's affine over its input width
    assert counted.macs == convs + transposed + to_rgb + styles


# ---------------------------------------------------------------- sorting


def test_sorting_keeps_the_full_image_and_orders_channels_by_importance(generator):
    z = torch.randn(3, STYLE_DIM, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before = generator(z)
        with generator.subnet(SIZE, 0.5):
            narrow_before = generator(z)
    sort_stylegan2_channels(generator, n_latents=2000, seed=0, batch=2000)
    with torch.no_grad():
        assert _close(generator(z), before)
        with generator.subnet(SIZE, 0.5):
            assert not torch.allclose(generator(z), narrow_before, atol=1e-3)  # other channels come first now
        w = generator.style(torch.randn(2000, STYLE_DIM, generator=torch.Generator().manual_seed(0)))
    rankers = [layer.conv for layer in [generator.conv1, *generator.convs]] + [generator.to_rgbs[-1].conv]
    for conv in rankers:  # each layer's output order is its reader's importance, descending
        importance = channel_importance(conv, conv.modulation(w).abs().mean(dim=0))
        assert torch.all(importance[:-1] >= importance[1:] - 1e-5 * importance.max())
        assert not torch.allclose(importance, importance.flip(0))


def test_sorting_is_reproducible_and_permutes_the_tensors_together(generator, state):
    sort_stylegan2_channels(generator, n_latents=500, seed=7, batch=128)
    first = {key: tensor.clone() for key, tensor in generator.state_dict().items()}
    again = build_generator("stylegan2", **TINY)
    again.load_state_dict(state)
    sort_stylegan2_channels(again, n_latents=500, seed=7, batch=128)
    assert all(torch.equal(first[key], tensor) for key, tensor in again.state_dict().items())
    # the constant and conv1's inputs were permuted by one order: rows of the modulation and columns of the weight
    order = [int((state["input.input"][0, :, 0, 0] == value).nonzero()) for value in first["input.input"][0, :, 0, 0]]
    assert torch.equal(first["conv1.conv.modulation.bias"], state["conv1.conv.modulation.bias"][order])
    assert torch.equal(first["conv1.conv.modulation.weight"], state["conv1.conv.modulation.weight"][order])
    column_mass = state["conv1.conv.weight"].abs().sum(dim=(0, 1, 3, 4))  # the outputs were permuted as well
    assert torch.allclose(first["conv1.conv.weight"].abs().sum(dim=(0, 1, 3, 4)), column_mass[order])
    assert sorted(order) == list(range(CHANNELS[0])) and order != list(range(CHANNELS[0]))
