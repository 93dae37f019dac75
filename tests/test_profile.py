"""Tests for ganslim.measure.profile: MAC conventions, reference figures, memory, latency, the profile and errors."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganslim.archs import build_generator
from ganslim.cli import main
from ganslim.errors import GanslimError
from ganslim.measure.profile import (
    LatencyStats,
    MacCount,
    Profile,
    count_macs,
    count_params,
    format_profile,
    fp32_matmul,
    matmul_gflops,
    measure_latency,
    measure_peak_gflops,
    measure_peak_memory,
    profile_model,
)
from ganslim.measure.profile import timing
from ganslim.signature import UNIT, ImageSides, Signature, image_to_image
from reference_impl import reference_generator

# name -> (M params, published GMACs, true GMACs) at 256x256, batch 1, to the digits METHODS.md gives.
REFERENCE_FIGURES = {
    "resnet_9blocks": ("11.378", "56.80", "49.55"),
    "unet_256": ("54.41", "18.14", "6.05"),
}
REFERENCE_NORMS = {"resnet_9blocks": "instance", "unet_256": "batch"}


def _build(source: str, name: str) -> nn.Module:
    """The generator from ganslim.archs, or from the tests' independent re-implementation of the reference."""
    if source == "ganslim.archs":
        return build_generator(name, norm=REFERENCE_NORMS[name])
    return reference_generator(name, norm=REFERENCE_NORMS[name])


@pytest.mark.parametrize("source", ["ganslim.archs", "reference_impl"])
@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures(source, name):
    """Counted on the meta device: shapes only, no arithmetic."""
    params_m, published_g, true_g = REFERENCE_FIGURES[name]
    with torch.device("meta"):
        generator = _build(source, name)
    counts = count_macs(generator, torch.empty(1, 3, 256, 256, device="meta"))
    assert _as_given(count_params(generator) / 1e6, params_m) == params_m
    assert _as_given(counts.macs_published / 1e9, published_g) == published_g
    assert _as_given(counts.macs / 1e9, true_g) == true_g


def _as_given(value: float, figure: str) -> str:
    """``value`` rounded to as many decimals as ``figure`` shows."""
    return f"{value:.{len(figure.partition('.')[2])}f}"


# Exact totals, so that a change in any rule shows up, not only one that moves the rounding.
EXACT_COUNTS = {
    "resnet_9blocks": (11_378_179, MacCount(macs=49_551_507_456, macs_published=56_799_264_768)),
    "unet_256": (54_413_955, MacCount(macs=6_048_186_368, macs_published=18_143_334_400)),
}


@pytest.mark.parametrize("name", sorted(EXACT_COUNTS))
def test_reference_counts_are_exact(name):
    params, macs = EXACT_COUNTS[name]
    with torch.device("meta"):
        generator = _build("ganslim.archs", name)
    assert count_params(generator) == params
    assert count_macs(generator, torch.empty(1, 3, 256, 256, device="meta")) == macs


# ----------------------------------------------------------------------------------------------------------
# Hand-computed single-layer cases: (module, input shape, true MACs, published MACs)


class _Call(nn.Module):
    """A module around a plain function, to count functional calls."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


TINY_CASES = {
    # 8 out channels x 5x5 pixels x (4 in x 3x3 taps)
    "conv": (nn.Conv2d(4, 8, 3, padding=1), (1, 4, 5, 5), 8 * 25 * 4 * 9, 8 * 25 * 4 * 9),
    # each output sees 4/2 = 2 input channels
    "conv_groups2": (nn.Conv2d(4, 8, 3, padding=1, groups=2), (1, 4, 5, 5), 8 * 25 * 2 * 9, 8 * 25 * 2 * 9),
    "conv_depthwise": (nn.Conv2d(4, 4, 3, padding=1, groups=4), (1, 4, 5, 5), 4 * 25 * 9, 4 * 25 * 9),
    "conv_stride2_batch2": (nn.Conv2d(3, 6, 3, stride=2, padding=1), (2, 3, 8, 8), 2 * 6 * 16 * 3 * 9,
                            2 * 6 * 16 * 3 * 9),  # fmt: skip
    # transposed 4 -> 6, 5x5 -> 10x10: true = input pixels x C_in x C_out x 9;
    # published = output pixels x C_in x 9 (torchprofile reads C_in from weight.shape[0] since 6 != 4)
    "conv_transpose": (nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1), (1, 4, 5, 5), 4 * 25 * 6 * 9,
                       6 * 100 * 4 * 9),  # fmt: skip
    # same channels: torchprofile reads weight.shape[1] = C_out/groups = 4
    "conv_transpose_square": (nn.ConvTranspose2d(4, 4, 3, 2, 1, output_padding=1), (1, 4, 5, 5), 4 * 25 * 4 * 9,
                              4 * 100 * 4 * 9),  # fmt: skip
    # grouped transposed 4 -> 6 in 2 groups: weight [4, 3, 3, 3]; true uses C_out/groups = 3,
    # torchprofile still reads the full C_in = 4 from weight.shape[0]
    "conv_transpose_groups2": (nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1, groups=2), (1, 4, 5, 5),
                               4 * 25 * 3 * 9, 6 * 100 * 4 * 9),  # fmt: skip
    "linear": (nn.Linear(10, 7), (3, 10), 3 * 10 * 7, 3 * 10 * 7),
    "linear_3d": (nn.Linear(10, 7, bias=False), (2, 5, 10), 2 * 5 * 10 * 7, 2 * 5 * 10 * 7),
    # torchprofile: affine norms count one per output element, non-affine ones nothing
    "batch_norm": (nn.BatchNorm2d(4), (1, 4, 5, 5), 0, 100),
    "instance_norm": (nn.InstanceNorm2d(4), (1, 4, 5, 5), 0, 0),
    "instance_norm_affine": (nn.InstanceNorm2d(4, affine=True), (1, 4, 5, 5), 0, 100),
    "group_norm": (nn.GroupNorm(2, 4), (1, 4, 5, 5), 0, 100),
    "layer_norm": (nn.LayerNorm(10), (3, 10), 0, 30),
    "leaky_relu": (nn.LeakyReLU(0.2), (1, 4, 5, 5), 0, 100),
    "leaky_relu_inplace": (nn.LeakyReLU(0.2, inplace=True), (1, 4, 5, 5), 0, 0),
    "relu": (nn.ReLU(), (1, 4, 5, 5), 0, 0),
    "tanh": (nn.Tanh(), (1, 4, 5, 5), 0, 0),
    "reflection_pad": (nn.ReflectionPad2d(1), (1, 4, 5, 5), 0, 0),
    "upsample_bilinear": (nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 3), 0, 4 * 2 * 36),
    "upsample_nearest": (nn.Upsample(scale_factor=2), (1, 2, 3, 3), 0, 0),
    "avg_pool": (nn.AvgPool2d(2), (1, 4, 4, 4), 0, 16),
    "adaptive_avg_pool": (nn.AdaptiveAvgPool2d(1), (1, 4, 4, 4), 0, 4),
    "dropout": (nn.Dropout(0.5), (1, 4, 5, 5), 0, 0),
    # functional calls: (2, 3, 4) @ (2, 4, 3) -> 2*3*3 outputs x 4 terms
    "matmul_batched": (_Call(lambda x: x @ x.transpose(-1, -2)), (2, 3, 4), 2 * 3 * 3 * 4, 2 * 3 * 3 * 4),
    "einsum": (_Call(lambda x: torch.einsum("bij,bkj->bik", x, x)), (2, 3, 4), 2 * 3 * 3 * 4, 2 * 3 * 3 * 4),
    # Q K^T and P V, each 2 heads x 4 x 4 x 8
    "attention": (_Call(lambda x: F.scaled_dot_product_attention(x, x, x)), (1, 2, 4, 8), 2 * 2 * 4 * 4 * 8,
                  2 * 2 * 4 * 4 * 8),  # fmt: skip
    "mul": (_Call(lambda x: x * x), (1, 4, 5, 5), 0, 100),
}


@pytest.mark.parametrize("case", sorted(TINY_CASES))
def test_tiny_single_layer_macs(case):
    module, shape, true, published = TINY_CASES[case]
    assert count_macs(module, torch.randn(shape)) == MacCount(macs=true, macs_published=published)


@pytest.mark.parametrize("case", sorted(TINY_CASES))
def test_counts_are_the_same_when_called_in_inference_mode(case):
    """A caller inside inference mode, with an inference-tensor input, gets the same totals."""
    module, shape, true, published = TINY_CASES[case]
    with torch.inference_mode():
        counts = count_macs(module, torch.randn(shape))
    assert counts == MacCount(macs=true, macs_published=published)


class _Functional(nn.Module):
    """Weights used through functional calls and tensor methods, no conv/linear modules."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 4, 3, 3))
        self.up = nn.Parameter(torch.randn(8, 2, 4, 4))
        self.proj = nn.Parameter(torch.randn(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, padding=1)  # (1, 8, 4, 4)
        x = F.conv_transpose2d(x, self.up, stride=2, padding=1)  # (1, 2, 8, 8)
        x = x * 0.5
        return x.flatten(2)[..., :16] @ self.proj  # (1, 2, 16) @ (16, 5)


def test_functional_calls_are_counted():
    conv = 8 * 16 * 4 * 9
    transposed_true, transposed_published = 8 * 16 * 2 * 16, 2 * 64 * 8 * 16
    mul = 2 * 64
    matmul = 2 * 16 * 5
    counts = count_macs(_Functional(), torch.randn(1, 4, 4, 4))
    assert counts.macs == conv + transposed_true + matmul
    assert counts.macs_published == conv + transposed_published + mul + matmul


def test_count_macs_restores_train_flags_and_counts_params():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(2, 2))
    model[1].eval()
    count_macs(model[:2], torch.randn(1, 3, 6, 6))
    assert [m.training for m in model] == [True, False, True]
    assert count_params(model) == (4 * 3 * 9 + 4) + (4 + 4) + (2 * 2 + 2)
    shared = nn.Linear(3, 3)
    assert count_params(nn.Sequential(shared, shared)) == 12


# ----------------------------------------------------------------------------------------------------------
# Memory


def test_peak_memory_of_a_chain_is_exact():
    """Input + two activations alive at once (Sequential drops each input after the next op runs)."""
    image = torch.randn(1, 4, 16, 16)
    nbytes = image.numel() * image.element_size()
    chain = nn.Sequential(nn.ReLU(), nn.ReLU(), nn.ReLU())
    assert measure_peak_memory(chain, image) == 3 * nbytes
    in_place = nn.Sequential(nn.ReLU(inplace=True), nn.ReLU(inplace=True))
    assert measure_peak_memory(in_place, image) == nbytes


def test_peak_memory_counts_parameters_and_activations():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
    image = torch.randn(1, 3, 32, 32)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    activation_bytes = 16 * 32 * 32 * 4
    assert measure_peak_memory(model, image) >= param_bytes + image.numel() * 4 + activation_bytes


# ----------------------------------------------------------------------------------------------------------
# Latency and the whole profile


def _tiny_generator() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.InstanceNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1))


def test_measure_latency_stats_are_ordered():
    stats = measure_latency(_tiny_generator(), torch.randn(1, 1, 16, 16), warmup=1, repeats=3, device="cpu")
    assert isinstance(stats, LatencyStats)
    assert stats.repeats == 3
    assert 0 < stats.min_ms <= stats.median_ms <= stats.max_ms


def test_the_peak_is_the_fastest_matmul_run(monkeypatch):
    assert torch.equal(fp32_matmul(8)(), fp32_matmul(8)())  # seeded operands
    clock = iter([0.0, 0.005, 1.0, 1.002, 2.0, 2.009])  # three timed runs of 5, 2 and 9 ms
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    before = torch.get_num_threads()
    assert measure_peak_gflops(64, runs=3, threads=1) == pytest.approx(matmul_gflops(64, 2.0))
    assert matmul_gflops(64, 2.0) == pytest.approx(2 * 64**3 / 2e-3 / 1e9) and torch.get_num_threads() == before
    assert LatencyStats.of([5.0, 2.0, 9.0]) == LatencyStats(median_ms=5.0, min_ms=2.0, max_ms=9.0, repeats=3)


def test_profile_model_figures_and_threads_restored():
    model = _tiny_generator()
    before = torch.get_num_threads()
    profile = profile_model(model, input_size=16, threads=1, warmup=1, repeats=3)
    assert torch.get_num_threads() == before
    assert isinstance(profile, Profile)
    assert profile.threads == 1
    assert profile.device == "cpu"
    assert profile.input_shape == (1, 1, 16, 16)  # a plain module: channels probed from the first conv
    assert profile.params == (4 * 9 + 4) + (4 + 1)
    assert profile.macs == profile.macs_published == 4 * 256 * 9 + 256 * 4
    assert profile.latency.min_ms <= profile.latency.median_ms <= profile.latency.max_ms
    assert profile.peak_memory_bytes > profile.params * 4
    assert model.training  # eval only while profiled


def test_profile_model_rectangular_batch_and_probed_channels():
    profile = profile_model(nn.Conv2d(2, 3, 1), input_size=(4, 6), batch=2, warmup=0, repeats=1)
    assert profile.input_shape == (2, 2, 4, 6)
    assert profile.macs == 2 * 3 * 24 * 2
    assert profile.signature == image_to_image(2, 3, profile.signature.image_input.sides)


class _Declared(nn.Module):
    """Takes a [0, 1] image of even sides and records what it was given; the channels come from the signature,
    not from its first conv (which takes 5)."""

    signature = image_to_image(2, 2, ImageSides(multiple=2, minimum=2), UNIT, scale=2)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(5, 2, 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.seen.append(image)
        return F.interpolate(image, scale_factor=2)


def test_profile_model_feeds_the_signatures_example_inputs():
    model = _Declared()
    profile = profile_model(model, input_size=(4, 6), warmup=0, repeats=1)
    assert profile.input_shape == (1, 2, 4, 6)
    assert all(0 <= image.min() and image.max() <= 1 for image in model.seen)  # uniform in [0, 1], the signature's
    assert profile.to_dict()["signature"] == model.signature.to_dict()
    assert "image (2 ch, [0, 1], multiples of 2) -> image (2 ch, [0, 1], x2)" in format_profile(profile, "m")
    message = _one_line_error(profile_model, model, 5)
    assert message.startswith("input_size 5 does not fit this generator") and "multiples of 2: use 4 or 6" in message


def test_to_dict_is_json_ready():
    data = profile_model(_tiny_generator(), input_size=8, warmup=0, repeats=2).to_dict()
    json.dumps(data)
    assert {"params", "macs", "macs_published", "latency_ms", "peak_memory_bytes"} <= set(data)
    assert set(data["latency_ms"]) == {"median", "min", "max"}
    assert data["peak_memory_kind"] == "peak tensor memory"


def test_format_profile_labels_both_conventions():
    profile = Profile(
        params=11_378_179, macs=49_551_507_456, macs_published=56_799_264_768,
        latency=LatencyStats(median_ms=622.0, min_ms=610.0, max_ms=640.0, repeats=10),
        peak_memory_bytes=80 * 2**20, device="cpu", threads=2, input_shape=(1, 3, 256, 256),
        signature=build_generator("resnet_9blocks").signature,
    )  # fmt: skip
    text = format_profile(profile, "resnet_9blocks")
    lines = text.splitlines()
    assert lines[0].startswith("resnet_9blocks")
    assert "1x3x256x256" in lines[0]
    assert any("true" in line and line.endswith("49.55 G") for line in lines)
    assert any("published (torchprofile convention)" in line and line.endswith("56.80 G") for line in lines)
    assert any(line.strip().startswith("params") and line.endswith("11.378 M") for line in lines)
    assert any("peak tensor memory" in line and line.endswith("80.0 MiB") for line in lines)
    assert "622.0 / 610.0 / 640.0 ms" in text


# ----------------------------------------------------------------------------------------------------------
# Errors


def _one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(GanslimError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_user_error():
    assert "CUDA is not available" in _one_line_error(profile_model, _tiny_generator(), 8, device="cuda")
    assert "cuda" in _one_line_error(measure_latency, _tiny_generator(), torch.randn(1, 1, 8, 8), device="cuda")


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"input_size": 0}, "input_size"),
        ({"input_size": (8, -1)}, "input_size"),
        ({"batch": 0}, "batch"),
        ({"repeats": 0}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"threads": 0}, "threads"),
        ({"device": "bogus"}, "bogus"),
        ({"device": "meta"}, "meta"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs, names):
    assert names in _one_line_error(profile_model, _tiny_generator(), **{"input_size": 8, **kwargs})


def test_in_channels_cannot_be_inferred_without_a_conv():
    assert "in_channels" in _one_line_error(profile_model, nn.Identity(), 8)


class _WrongSignature(nn.Sequential):
    """Declares 3-channel images, but its conv takes 1 channel."""

    signature = image_to_image(3, 4, ImageSides())


def test_failing_forward_is_a_user_error_and_threads_are_restored():
    before = torch.get_num_threads()
    message = _one_line_error(profile_model, _WrongSignature(nn.Conv2d(1, 4, 3)), 8, threads=1)
    assert "_WrongSignature failed on an input of shape [1, 3, 8, 8]" in message
    assert message.endswith("check input_size (the model takes image (3 ch, [-1, 1], any size) -> image (4 ch, "
                            "[-1, 1], x1))")
    assert torch.get_num_threads() == before


# ----------------------------------------------------------------------------------------------------------
# ESRGAN's RRDBNet through `ganslim profile`: the builder gets only the arguments it takes, --size is the LR side

ESRGAN_PARAMS = 16_697_987
ESRGAN_MACS_AT_256 = 1_174_853_910_528  # both conventions: no transposed convs, no elementwise multiply


def test_profile_prints_esrgans_figures_at_a_256_lr_input():
    """The counts at 256 come from the meta device (shapes only: a 1.17 TMAC forward is never computed), fed the
    signature's example input as profile_model feeds it; the table prints them as the paper gives them."""
    with torch.device("meta"):
        generator = build_generator("rrdbnet")
    inputs = generator.signature.example_inputs(256, device="meta")
    count = count_macs(generator, inputs)
    assert count == MacCount(ESRGAN_MACS_AT_256, ESRGAN_MACS_AT_256)
    profile = Profile(params=count_params(generator), macs=count.macs, macs_published=count.macs_published,
                      latency=LatencyStats(1.0, 1.0, 1.0, 1), peak_memory_bytes=0, device="cpu", threads=1,
                      input_shape=tuple(inputs[0].shape), signature=generator.signature)
    lines = format_profile(profile, "rrdbnet").splitlines()
    assert lines[0].startswith("rrdbnet  (input 1x3x256x256")
    assert lines[1].strip() == "image (3 ch, [0, 1], any size) -> image (3 ch, [0, 1], x4)"
    assert any(line.strip().startswith("params") and line.endswith("16.698 M") for line in lines)
    assert sum(line.endswith("1174.85 G") for line in lines) == 2  # true and published


def test_cli_profiles_rrdbnet_by_name_at_its_lr_size(capsys):
    """The whole command on the default 64/23/32 x4 network at a 4x4 LR input (0.29 GMAC: MACs scale with the
    area, so 256x256 gives the 1174.85 G above); the norm the translation builders get is not passed to it."""
    assert main(["profile", "rrdbnet", "--size", "4", "--warmup", "0", "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == ESRGAN_PARAMS
    assert report["macs"] == report["macs_published"] == ESRGAN_MACS_AT_256 * 4**2 // 256**2
    assert report["input_shape"] == [1, 3, 4, 4]
    assert Signature.from_dict(report["signature"]) == build_generator("rrdbnet", num_block=0).signature
    assert report["signature_description"].endswith("-> image (3 ch, [0, 1], x4)")


@pytest.mark.parametrize("flag, message", [
    (["--norm", "batch"], "generator 'rrdbnet' takes no norm; it takes: input_nc, output_nc, scale"),
    (["--ngf", "8"], "generator 'rrdbnet' takes no ngf"),
])
def test_cli_options_a_builder_does_not_take_are_one_line(capsys, flag, message):
    assert main(["profile", "rrdbnet", "--size", "4", *flag]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganslim profile: error: ") and message in lines[0]


def test_cli_profiles_an_x2_esrgan_checkpoint(tmp_path, capsys):
    """An x2 file's first conv takes 12 channels (pixel-unshuffled input); the signature says the image has 3."""
    from ganslim.checkpoints import save_model

    kwargs = {"scale": 2, "num_feat": 4, "num_block": 1, "num_grow_ch": 2}
    checkpoint = save_model(tmp_path / "x2.pt", build_generator("rrdbnet", **kwargs), "rrdbnet", kwargs)
    assert main(["profile", str(checkpoint), "--size", "6", "--warmup", "0", "--repeats", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [1, 3, 6, 6]
    assert main(["profile", str(checkpoint), "--size", "5", "--repeats", "1"]) == 2
    assert "input_size 5 does not fit this generator, which takes image sides that are multiples of 2" in (
        capsys.readouterr().err)


# ----------------------------------------------------------------------------------------------------------
# Latent generators: the whole generator and its parts


def stylegan2_true_macs(table: list[int], style_dim: int, n_mlp: int, image_channels: int = 3) -> tuple[int, int]:
    """(mapping, synthesis) true MACs of a StyleGAN2 of channel ``table`` (sides 4, 8, ...; z_dim = style_dim), by
    hand: the mapping's ``n_mlp`` style_dim x style_dim layers; the synthesis' 3x3 convs, stride-2 transposed convs
    at their input, 1x1 to-RGB convs and the style affines (one style_dim -> C_in per modulated conv); blur filters
    count 0."""
    channels = {4 * 2**i: width for i, width in enumerate(table)}
    blocks = [side for side in channels if side > 4]
    convs = sum(c * c * 9 * r * r for r, c in channels.items())  # conv1 and each block's second conv
    transposed = sum(channels[r // 2] * channels[r] * 9 * (r // 2) ** 2 for r in blocks)
    to_rgb = sum(image_channels * c * r * r for r, c in channels.items())
    styles = style_dim * (2 * table[0] + sum(channels[r // 2] + 2 * channels[r] for r in blocks))
    return n_mlp * style_dim * style_dim, convs + transposed + to_rgb + styles


def test_cli_profiles_a_stylegan2_checkpoint_whole_and_by_part(tmp_path, capsys):
    from ganslim.checkpoints import save_model

    kwargs = {"size": 16, "channels": [16, 8, 4], "style_dim": 8, "n_mlp": 2}
    checkpoint = save_model(tmp_path / "g.pt", build_generator("stylegan2", **kwargs), "stylegan2", kwargs)
    assert main(["profile", str(checkpoint), "--warmup", "0", "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    mapping, synthesis = report["parts"]["mapping"], report["parts"]["synthesis"]
    assert list(report["parts"]) == ["mapping", "synthesis"]
    assert (mapping["macs"], synthesis["macs"]) == stylegan2_true_macs([16, 8, 4], 8, 2)
    assert mapping["params"] == 2 * (8 * 8 + 8) and mapping["input_shape"] == [1, 8]
    assert synthesis["input_shape"] == [1, 6, 8]
    # The whole generator (z -> image) is its two parts: W is broadcast to W+ without arithmetic.
    assert report["params"] == mapping["params"] + synthesis["params"]
    assert report["macs"] == mapping["macs"] + synthesis["macs"]
    assert report["macs_published"] == mapping["macs_published"] + synthesis["macs_published"]
    assert synthesis["macs_published"] > synthesis["macs"]  # transposed convs at their output, blurs included
    assert report["input_shape"] == [1, 8] and report["signature_description"].endswith("16x16)")
    assert main(["profile", str(checkpoint), "--warmup", "0", "--repeats", "1"]) == 0
    text = capsys.readouterr().out
    assert "part mapping (input 1x8): 0.000 M params, 0.00 G MACs true" in text
    assert "part synthesis (input 1x6x8)" in text
    assert main(["profile", str(checkpoint), "--size", "32"]) == 2
    assert capsys.readouterr().err.strip() == ("ganslim profile: error: --size 32 does not fit this generator, which "
                                               "makes 16x16 images from latents: drop --size (a latent generator has "
                                               "one output size)")


def test_cli_builds_a_named_latent_generator_at_size(capsys):
    assert main(["profile", "stylegan2", "--size", "4", "--warmup", "0", "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["signature"]["output"]["resolution"] == 4
    assert report["parts"]["synthesis"]["input_shape"] == [1, 2, 512]
    assert report["parts"]["synthesis"]["macs"] == stylegan2_true_macs([512], 512, 8)[1]
    assert report["parts"]["mapping"]["params"] == 2_101_248  # config-f's mapping at any size: 2.10 M


def test_config_f_1024_parts_give_the_published_figures():
    from ganslim.measure.profile import profile_parts

    with torch.device("meta"):  # shapes only: the 74 GMAC synthesis is never computed
        parts = profile_parts(build_generator("stylegan2"))
    mapping, synthesis = parts["mapping"], parts["synthesis"]
    assert f"{mapping.params / 1e6:.2f} M" == "2.10 M" and f"{synthesis.params / 1e6:.2f} M" == "28.27 M"
    assert f"{synthesis.macs.macs / 1e9:.2f} G" == "74.26 G"
    assert synthesis.macs.macs_published / 1e9 == pytest.approx(143.15, rel=0.01)
    assert synthesis.input_shape == (1, 18, 512) and mapping.input_shape == (1, 512)
    assert profile_parts(build_generator("resnet_6blocks", ngf=4)) is None
