"""The stylegan2 generator and discriminator: rosinality's keys and shapes, their arithmetic against a functional
re-computation on the state dict (z, W, W+, truncation, mixing, every noise mode), shape checks, and config-f's
published size and cost."""

from __future__ import annotations

import pytest
import torch

from ganslim.archs import build_discriminator, build_generator
from ganslim.archs.stylegan2 import estimate_w_avg, rosinality_channels
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs, count_params
from ganslim.nn.upfirdn import upfirdn2d
from ganslim.signature import LATENT
from stylegan2_reference import (
    discriminator_forward,
    map_rosinality,
    random_rosinality_state,
    rosinality_shapes,
    stored_noises,
    synthesize_rosinality,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, CHANNELS, STYLE_DIM, N_MLP = 16, [8, 8, 4], 16, 2
TINY = {"size": SIZE, "channels": CHANNELS, "style_dim": STYLE_DIM, "n_mlp": N_MLP}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_rosinality_state(SIZE, CHANNELS, STYLE_DIM, N_MLP, seed=0)


@pytest.fixture(scope="module")
def generator(state):
    generator = build_generator("stylegan2", **TINY).eval()
    generator.load_state_dict(state, strict=True)
    return generator


def _z(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, STYLE_DIM, generator=torch.Generator().manual_seed(seed))


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    assert expected.std() > 0.1, "not a comparison of two near-constant images"
    return torch.allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_keys_and_shapes_are_rosinalitys_in_order():
    generator = build_generator("stylegan2", **TINY)
    expected = rosinality_shapes(SIZE, CHANNELS, STYLE_DIM, N_MLP)
    assert {key: tuple(t.shape) for key, t in generator.state_dict().items()} == expected
    assert list(generator.state_dict()) == list(expected)
    assert (generator.num_ws, generator.num_noises, generator.z_dim, generator.w_dim) == (6, 5, 16, 16)


def test_config_f_channel_table():
    assert rosinality_channels(1024) == (512, 512, 512, 512, 512, 256, 128, 64, 32)
    assert rosinality_channels(256, channel_multiplier=1) == (512, 512, 512, 512, 256, 128, 64)


def test_z_forward_is_rosinality_arithmetic(generator, state):
    z = _z()
    with torch.no_grad():
        image = generator(z)
    expected = synthesize_rosinality(state, map_rosinality(state, z)[:, None].repeat(1, 6, 1), stored_noises(state, 3))
    assert image.shape == (3, 3, SIZE, SIZE)
    assert _close(image, expected)
    assert (image[0] - image[1]).abs().mean() > 0.1, "z changes the image"


def test_w_and_w_plus_entry_points(generator, state):
    w_plus = torch.randn(2, 6, STYLE_DIM, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        from_w_plus = generator.synthesis(w_plus)
        from_w = generator.synthesis(generator.broadcast(w_plus[:, 0]))
    assert _close(from_w_plus, synthesize_rosinality(state, w_plus, stored_noises(state, 2)))
    assert _close(from_w, synthesize_rosinality(state, w_plus[:, :1].repeat(1, 6, 1), stored_noises(state, 2)))


def test_truncation_pulls_toward_the_stored_w_avg(generator, state):
    z = _z()
    w = map_rosinality(state, z)
    truncated = state["style.w_avg"] + 0.5 * (w - state["style.w_avg"])
    with torch.no_grad():
        image = generator(z, truncation_psi=0.5)
        at_average = generator(z, truncation_psi=0.0)
    assert _close(image, synthesize_rosinality(state, truncated[:, None].repeat(1, 6, 1), stored_noises(state, 3)))
    assert torch.allclose(at_average[0], at_average[2], atol=1e-5), "psi 0: every z gives the mean image"


def test_style_mixing_takes_the_first_layers_from_the_first_w(generator, state):
    z_a, z_b = _z(seed=3), _z(seed=4)
    w_a, w_b = map_rosinality(state, z_a), map_rosinality(state, z_b)
    with torch.no_grad():
        mixed = generator.mix(generator.map(z_a), generator.map(z_b), crossover=2)
    assert torch.allclose(mixed[:, :2], w_a[:, None].expand(-1, 2, -1), atol=1e-5)
    assert torch.allclose(mixed[:, 2:], w_b[:, None].expand(-1, 4, -1), atol=1e-5)
    expected = torch.cat([w_a[:, None].repeat(1, 2, 1), w_b[:, None].repeat(1, 4, 1)], dim=1)
    with torch.no_grad():
        assert _close(generator.synthesis(mixed), synthesize_rosinality(state, expected, stored_noises(state, 3)))
    with pytest.raises(GanslimError, match="style-mixing crossover 7 is not a layer index in 0..6"):
        generator.mix(w_a, w_b, 7)


def test_noise_modes(generator, state):
    w_plus = generator.broadcast(map_rosinality(state, _z(2)))
    explicit = [torch.randn(2, 1, s, s, generator=torch.Generator().manual_seed(s)) for s in (4, 8, 8, 16, 16)]
    with torch.no_grad():
        none = generator.synthesis(w_plus, noise="none")
        given = generator.synthesis(w_plus, noise=explicit)
        first = generator.synthesis(w_plus, noise="random", rng=torch.Generator().manual_seed(5))
        again = generator.synthesis(w_plus, noise="random", rng=torch.Generator().manual_seed(5))
        other = generator.synthesis(w_plus, noise="random", rng=torch.Generator().manual_seed(6))
    assert _close(none, synthesize_rosinality(state, w_plus, [None] * 5))
    assert _close(given, synthesize_rosinality(state, w_plus, explicit))
    assert torch.equal(first, again) and not torch.allclose(first, other)
    drawn = torch.Generator().manual_seed(5)
    assert _close(first, synthesize_rosinality(state, w_plus, [torch.randn(2, 1, s, s, generator=drawn)
                                                               for s in (4, 8, 8, 16, 16)]))


@pytest.mark.parametrize("call, words", [
    (lambda g: g(torch.zeros(2, 15)), r"mapping network takes z of shape \(N, 16\), got \(2, 15\)"),
    (lambda g: g.synthesis(torch.zeros(2, 5, 16)), r"synthesis takes W\+ of shape \(N, 6, 16\), got \(2, 5, 16\)"),
    (lambda g: g.broadcast(torch.zeros(2, 6, 16)), r"takes W of shape \(N, 16\), got \(2, 6, 16\)"),
    (lambda g: g.synthesis(torch.zeros(1, 6, 16), noise="fresh"), "noise mode 'fresh' is not one of const, random"),
    (lambda g: g.synthesis(torch.zeros(1, 6, 16), noise=[torch.zeros(1, 1, 4, 4)]), "takes 5 noise tensors, got 1"),
    (lambda g: g.synthesis(torch.zeros(1, 6, 16), noise=[torch.zeros(1, 1, 4, 4)] * 5),
     r"noise 1 must have shape \(1 or 1, 1, 8, 8\), got \(1, 1, 4, 4\)"),
])
def test_bad_inputs_are_one_line(generator, call, words):
    with pytest.raises(GanslimError, match=words):
        call(generator)


@pytest.mark.parametrize("kwargs, words", [
    ({"size": 48}, "stylegan2 size 48 is not a power of two of at least 4"),
    ({"size": 16, "channels": [8, 8]}, r"channels \[8, 8\] has 2 widths; a 16 px generator takes 3 \(one per side "
                                        r"4, 8, ..., 16\) or 6 \(one per layer"),
    ({"size": 16, "style_dim": 0}, "stylegan2 style_dim=0 is not a positive integer"),
    ({"size": 16, "lr_mlp": -0.01}, "stylegan2 lr_mlp=-0.01 is not a positive number"),
])
def test_bad_arguments_are_one_line(kwargs, words):
    with pytest.raises(GanslimError, match=words):
        build_generator("stylegan2", **kwargs)


def test_signature_is_a_latent_in_and_a_fixed_resolution_out(generator):
    signature = generator.signature
    assert [(spec.name, spec.kind, spec.channels) for spec in signature.inputs] == [("z", LATENT, 16)]
    assert signature.output.resolution == SIZE and signature.output.scale is None
    assert signature.describe() == "z (16 dims) -> image (3 ch, [-1, 1], 16x16)"
    (z,) = signature.example_inputs(batch=2)
    with torch.no_grad():
        assert generator(z).shape == (2, 3, SIZE, SIZE)


def test_an_unknown_w_avg_refuses_truncation_until_estimated(state):
    generator = build_generator("stylegan2", **TINY).eval()
    generator.load_state_dict({**state, "style.w_avg": torch.full((STYLE_DIM,), float("nan"))})
    assert not generator.mapping.has_w_avg
    with pytest.raises(GanslimError, match="has no w_avg .* estimate it first with .*estimate_w_avg"):
        generator(_z(), truncation_psi=0.7)
    estimate = estimate_w_avg(generator, n=300, seed=7, batch=128)
    z = torch.randn(300, STYLE_DIM, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(estimate, map_rosinality(state, z).mean(dim=0), atol=1e-5)
    assert torch.equal(estimate_w_avg(generator, n=300, seed=7), estimate), "the same seed gives the same mean"
    assert generator.mapping.has_w_avg and torch.equal(generator.style.w_avg, estimate)


def test_mapping_and_synthesis_are_the_generators_own_modules(generator):
    parts = generator.parts(batch=2)
    mapping, (z,) = parts["mapping"]
    synthesis, (w_plus,) = parts["synthesis"]
    assert mapping is generator.style and z.shape == (2, 16) and w_plus.shape == (2, 6, 16)
    assert synthesis.conv1 is generator.conv1
    assert count_params(mapping) + count_params(synthesis) == count_params(generator)
    with torch.no_grad():
        assert torch.equal(synthesis(generator.broadcast(mapping(z))), generator(z))


def test_config_f_1024_size_and_cost_on_meta():
    with torch.device("meta"):  # shapes only: the 75 GMAC forward is never computed
        generator = build_generator("stylegan2")
        counts = {name: (count_params(module), count_macs(module, inputs))
                  for name, (module, inputs) in generator.parts().items()}
    (mapping_params, mapping_macs), (synthesis_params, synthesis_macs) = counts["mapping"], counts["synthesis"]
    assert f"{mapping_params / 1e6:.2f} M" == "2.10 M" and f"{synthesis_params / 1e6:.2f} M" == "28.27 M"
    assert mapping_macs.macs == 2_097_152  # eight 512x512 layers
    # True MACs: the modulated 3x3 convs, the stride-2 transposed convs at their input and the to-RGB 1x1 convs
    # (74.26 G), plus the style affines; the [1, 3, 3, 1] FIR filters are fixed filters, which the true count leaves
    # out and the published one counts.
    channels = dict(zip([2**i for i in range(2, 11)], rosinality_channels(1024)))
    convs = 512 * 512 * 9 * 16 + sum(c * c * 9 * r * r for r, c in channels.items() if r > 4)
    transposed = sum(channels[r // 2] * c * 9 * (r // 2) ** 2 for r, c in channels.items() if r > 4)
    to_rgb = sum(3 * c * r * r for r, c in channels.items())
    assert f"{(convs + transposed + to_rgb) / 1e9:.2f} G" == "74.26 G"
    styles = 512 * (2 * 512 + sum(channels[r // 2] + 2 * c for r, c in channels.items() if r > 4))  # 5.7 M
    blur = sum(c * r * r * 16 + 3 * (r // 2) ** 2 * 16 for r, c in channels.items() if r > 4)  # 1.07 G
    assert synthesis_macs.macs == convs + transposed + to_rgb + styles
    assert f"{synthesis_macs.macs / 1e9:.2f} G" == "74.26 G" and f"{blur / 1e9:.2f} G" == "1.07 G"
    # Published (torchprofile's): transposed convs at their output, FIR filters and elementwise ops included.
    assert synthesis_macs.macs_published == 144_452_407_600
    assert synthesis_macs.macs_published / 1e9 == pytest.approx(143.15, rel=0.01)


def test_upfirdn2d_up_and_down_match_zero_insertion_and_decimation():
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    kernel = torch.arange(1.0, 13.0).view(3, 4)  # asymmetric: the flip is visible
    inserted = torch.zeros(2, 3, 10, 12)
    inserted[:, :, ::2, ::2] = x
    for pad in ((2, 1), (0, 0), (3, -1)):
        padded = torch.nn.functional.pad(inserted, [pad[0], pad[1], pad[0], pad[1]])
        expected = torch.nn.functional.conv2d(padded.view(6, 1, *padded.shape[2:]), kernel.flip([0, 1])[None, None])
        assert torch.allclose(upfirdn2d(x, kernel, up=2, pad=pad), expected.view(2, 3, *expected.shape[2:]),
                              atol=1e-5)
    padded = torch.nn.functional.pad(x, [2, 2, 2, 2])
    expected = torch.nn.functional.conv2d(padded.view(6, 1, 9, 10), kernel.flip([0, 1])[None, None])[:, :, ::2, ::2]
    assert torch.allclose(upfirdn2d(x, kernel, down=2, pad=(2, 2)), expected.view(2, 3, *expected.shape[2:]),
                          atol=1e-5)


def test_discriminator_is_rosinality_arithmetic():
    discriminator = build_discriminator("stylegan2", size=SIZE, channels=CHANNELS).eval()
    generator = torch.Generator().manual_seed(9)
    state = {key: t if key.endswith("kernel") else torch.randn(t.shape, generator=generator) * (
             0.1 if key.endswith("bias") else 1) for key, t in discriminator.state_dict().items()}
    discriminator.load_state_dict(state)
    assert list(state)[:6] == ["convs.0.0.weight", "convs.0.1.bias", "convs.1.conv1.0.weight",
                               "convs.1.conv1.1.bias", "convs.1.conv2.0.kernel", "convs.1.conv2.1.weight"]
    images = torch.randn(8, 3, SIZE, SIZE, generator=generator)
    with torch.no_grad():
        logits = discriminator(images)
    expected = discriminator_forward(state, images)
    assert logits.shape == (8, 1) and expected.std() > 0.02  # random weights: logits differ little by image
    assert torch.allclose(logits, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(GanslimError, match=r"takes \(N, 3, 16, 16\) images, got \(1, 3, 32, 32\)"):
        discriminator(torch.zeros(1, 3, 32, 32))
