"""ganslim.nn.OutputConv2d (the pixel-phase kernel) computes what nn.Conv2d does, and exports as it."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from ganslim.archs import build_generator
from ganslim.export import export_model
from ganslim.measure.profile import count_macs
from ganslim.nn import OutputConv2d
from ganslim.nn.conv import phase_conv_applies


def _pair(in_channels: int, out_channels: int, kernel_size: int, **options) -> tuple[nn.Conv2d, OutputConv2d]:
    standard = nn.Conv2d(in_channels, out_channels, kernel_size, **options)
    with torch.no_grad():
        for parameter in standard.parameters():
            parameter.normal_(generator=torch.Generator().manual_seed(parameter.numel()))
    ours = OutputConv2d(in_channels, out_channels, kernel_size, **options)
    ours.load_state_dict(standard.state_dict())
    return standard, ours


@pytest.mark.parametrize("out_channels,kernel_size,padding,bias,size", [
    (3, 7, 0, True, (20, 14)),   # the generators' last layer (after a reflection pad)
    (1, 3, 1, False, (8, 10)),   # grayscale output, zero padding, no bias
    (4, 4, 0, True, (11, 9)),    # even kernel, odd input -> even output
    (2, 1, 0, True, (6, 6)),
])
def test_phase_path_equals_conv2d(out_channels, kernel_size, padding, bias, size):
    standard, ours = _pair(5, out_channels, kernel_size, padding=padding, bias=bias)
    x = torch.randn(2, 5, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert phase_conv_applies(ours, x)
        expected, got = standard(x), ours(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert expected.abs().max() > 1  # a real output, not zeros


# case -> (conv options, out channels, input height, grad enabled)
STANDARD_PATH_CASES = {
    "grad": ({}, 3, 10, True),
    "odd_output": ({}, 3, 9, False),
    "many_outputs": ({}, 8, 10, False),
    "stride": ({"stride": 2}, 3, 10, False),
    "reflect_padding": ({"padding": 1, "padding_mode": "reflect"}, 3, 10, False),
}


@pytest.mark.parametrize("case", STANDARD_PATH_CASES)
def test_standard_path_where_the_phase_path_does_not_apply(case):
    options, out_channels, height, grad = STANDARD_PATH_CASES[case]
    standard, ours = _pair(4, out_channels, 3, **options)
    x = torch.randn(1, 4, height, 10, generator=torch.Generator().manual_seed(1))
    with torch.set_grad_enabled(grad):
        assert not phase_conv_applies(ours, x)
        torch.testing.assert_close(ours(x), standard(x))


def test_gradients_unchanged():
    standard, ours = _pair(4, 3, 7)
    x = torch.randn(2, 4, 12, 12, generator=torch.Generator().manual_seed(2))
    standard(x).square().sum().backward()
    ours(x).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, standard.weight.grad)
    torch.testing.assert_close(ours.bias.grad, standard.bias.grad)


@pytest.mark.parametrize("arch", ["resnet_6blocks", "mobile_resnet"])
def test_generators_end_in_it_and_export_a_single_conv(arch, tmp_path):
    generator = build_generator(arch, ngf=4, norm="instance").eval()
    last = [module for module in generator.modules() if isinstance(module, nn.Conv2d)][-1]
    assert isinstance(last, OutputConv2d) and last.out_channels == 3
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        assert phase_conv_applies(last, torch.zeros(1, last.in_channels, 38, 38))
        eager = generator(x)
    result = export_model(generator, tmp_path, "onnx", size=32)
    assert result.max_abs_diff < 1e-4
    ops = [node.op_type for node in onnx.load(str(result.files[0])).graph.node]
    assert "DepthToSpace" not in ops  # no pixel shuffle: the plain Conv of nn.Conv2d
    torch.testing.assert_close(eager, generator(x), atol=1e-5, rtol=0)  # grad-enabled path, same result


def test_macs_are_counted_on_the_standard_conv():
    standard, ours = _pair(8, 3, 7)
    x = torch.zeros(1, 8, 22, 22)
    with torch.inference_mode():
        assert phase_conv_applies(ours, x)
        counted = count_macs(ours, x)
    assert (counted.macs, counted.macs_published) == (8 * 3 * 49 * 16 * 16, count_macs(standard, x).macs_published)
