"""MobileStyleGAN's modulated convolutions: input modulation, the style-independent demodulation against a
hand computation, its fold into the weights, and ``style_inv`` kept through save and load."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from ganslim.nn.kernels import standard_kernels
from ganslim.nn.separable import ModulatedDenseConv2d, ModulatedSeparableConv2d

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IN, OUT, K, STYLE_DIM = 4, 6, 3, 5


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    return torch.randn(3, IN, 7, 7, generator=rng), torch.randn(3, STYLE_DIM, generator=rng)


def _by_hand(conv, dense_weight: torch.Tensor, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """scale * (W s + b) scales x's channels; a dense conv; each output channel o times
    rsqrt(sum_{i,k} (scale * style_inv[i] * W[o, i, k])^2 + 1e-8), computed with loops."""
    scale = 1 / (IN * K * K) ** 0.5
    modulation = (style @ conv.modulation.weight.T + conv.modulation.bias) * scale
    out = F.conv2d(x * modulation.view(3, IN, 1, 1), dense_weight, padding=K // 2)
    style_inv = conv.style_inv.flatten()
    for o in range(OUT):
        total = sum(float(scale * style_inv[i] * dense_weight[o, i, a, b]) ** 2
                    for i in range(IN) for a in range(K) for b in range(K))
        out[:, o] *= (total + 1e-8) ** -0.5
    return out


@torch.no_grad()
def test_separable_conv_is_the_dense_conv_of_its_combined_kernel_with_fixed_demodulation():
    torch.manual_seed(0)
    conv = ModulatedSeparableConv2d(IN, OUT, K, STYLE_DIM)
    assert conv.weight_dw.shape == (IN, 1, K, K) and conv.weight_permute.shape == (OUT, IN, 1, 1)
    assert conv.style_inv.shape == (1, 1, IN, 1, 1) and conv.modulation.bias.tolist() == [1.0] * IN
    dense = conv.weight_permute * conv.weight_dw.view(1, IN, K, K)
    x, style = _inputs()
    assert torch.allclose(conv(x, style), _by_hand(conv, dense, x, style), atol=1e-5)


@torch.no_grad()
def test_dense_conv_demodulates_the_same_way_and_the_style_leaves_the_demodulation_alone():
    torch.manual_seed(1)
    conv = ModulatedDenseConv2d(IN, OUT, K, STYLE_DIM)
    x, style = _inputs()
    assert torch.allclose(conv(x, style), _by_hand(conv, conv.weight, x, style), atol=1e-5)
    # Twice the style's affine output doubles the modulated input; the demodulation does not undo it.
    conv.modulation.weight.zero_()
    conv.modulation.bias.fill_(2.0)
    doubled = conv(x, style)
    conv.modulation.bias.fill_(1.0)
    assert torch.allclose(doubled, 2 * conv(x, style), atol=1e-5)


@pytest.mark.parametrize("kind", [ModulatedDenseConv2d, ModulatedSeparableConv2d])
@torch.no_grad()
def test_folded_demodulation_gives_the_same_outputs(kind):
    torch.manual_seed(2)
    conv = kind(IN, OUT, K, STYLE_DIM)
    before = {key: t.clone() for key, t in conv.state_dict().items()}
    folded = conv.fold_demodulation()
    assert not folded.demodulate and "style_inv" not in folded.state_dict()
    assert set(folded.state_dict()) == set(before) - {"style_inv"}
    for seed in (0, 1):
        x, style = _inputs(seed)
        assert (conv(x, style) - folded(x, style)).abs().max() < 1e-5
    assert all(torch.equal(conv.state_dict()[key], t) for key, t in before.items()), "the original is unchanged"
    undemodulated = kind(IN, OUT, 1, STYLE_DIM, demodulate=False)
    assert "style_inv" not in undemodulated.state_dict()
    assert torch.equal(undemodulated.fold_demodulation()(*_inputs()), undemodulated(*_inputs()))


@torch.no_grad()
def test_style_inv_is_saved_and_loaded_never_drawn_again(tmp_path):
    torch.manual_seed(3)
    conv = ModulatedSeparableConv2d(IN, OUT, K, STYLE_DIM)
    x, style = _inputs()
    expected = conv(x, style)
    torch.save(conv.state_dict(), tmp_path / "conv.pt")
    torch.manual_seed(4)
    fresh = ModulatedSeparableConv2d(IN, OUT, K, STYLE_DIM)
    assert not torch.equal(fresh.style_inv, conv.style_inv)
    fresh.load_state_dict(torch.load(tmp_path / "conv.pt", weights_only=True))
    assert torch.equal(fresh.style_inv, conv.style_inv)
    assert torch.equal(fresh(x, style), expected)
    fresh.train()
    fresh(x, style)
    assert torch.equal(fresh.style_inv, conv.style_inv), "a forward in training mode leaves it too"


@pytest.mark.parametrize("kind", [ModulatedDenseConv2d, ModulatedSeparableConv2d])
@pytest.mark.parametrize("demodulate", [True, False])
def test_the_eager_form_folds_style_demodulation_and_bias_into_kernels_with_the_same_values_and_gradients(
        kind, demodulate):
    torch.manual_seed(1)
    conv = kind(IN, OUT, K, STYLE_DIM, demodulate=demodulate)
    x, style = _inputs(2)
    bias = torch.randn(OUT)
    results = []
    for standard in (True, False):
        conv.zero_grad()
        with standard_kernels() if standard else contextlib.nullcontext():
            out = conv(x, style, bias)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in conv.parameters()]))
    (plain, plain_grads), (folded, folded_grads) = results
    torch.testing.assert_close(folded, plain, atol=1e-5, rtol=1e-5)
    expected = F.conv2d(x * (conv.modulation(style) * conv.scale).view(3, IN, 1, 1), conv.combined_weight(),
                        padding=K // 2)
    if demodulate:
        expected = expected * conv.demodulation().view(1, -1, 1, 1)
    torch.testing.assert_close(plain, expected + bias.view(1, -1, 1, 1), atol=1e-5, rtol=1e-5)
    for a, b in zip(folded_grads, plain_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
