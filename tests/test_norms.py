"""ganslim.nn.InstanceNorm2d (the group_norm kernel) computes what nn.InstanceNorm2d does, and exports as it."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from ganslim.archs import build_generator
from ganslim.export import export_model
from ganslim.nn import InstanceNorm2d
from ganslim.nn.elastic import ElasticInstanceNorm2d


def _randomized_pair(affine: bool, track: bool) -> tuple[nn.InstanceNorm2d, InstanceNorm2d]:
    standard = nn.InstanceNorm2d(6, affine=affine, track_running_stats=track)
    ours = InstanceNorm2d(6, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            standard.weight.normal_(generator=torch.Generator().manual_seed(0))
            standard.bias.normal_(generator=torch.Generator().manual_seed(1))
    ours.load_state_dict(standard.state_dict())
    return standard, ours


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
@pytest.mark.parametrize("shape", [(3, 6, 9, 7), (6, 5, 5)], ids=["batched", "unbatched"])
def test_same_outputs_and_gradients_as_torch(affine, shape):
    standard, ours = _randomized_pair(affine, track=False)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 3 + 1
    upstream = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    x_standard, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    (standard(x_standard) * upstream).sum().backward()
    (ours(x_ours) * upstream).sum().backward()

    torch.testing.assert_close(ours(x), standard(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(x_ours.grad, x_standard.grad, atol=1e-6, rtol=0)
    if affine:
        torch.testing.assert_close(ours.weight.grad, standard.weight.grad, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.bias.grad, standard.bias.grad, atol=1e-5, rtol=0)
    assert ours(x).abs().max() > 0.5  # a real normalization, not zeros


def test_running_statistics_keep_the_standard_path():
    standard, ours = _randomized_pair(affine=True, track=True)
    x = torch.randn(4, 6, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 + 3
    torch.testing.assert_close(ours(x), standard(x))
    torch.testing.assert_close(ours.running_mean, standard.running_mean)
    assert ours.running_mean.abs().sum() > 0  # the statistics were updated
    torch.testing.assert_close(ours.eval()(x), standard.eval()(x))


def test_elastic_norm_on_leading_channels():
    norm = ElasticInstanceNorm2d(16, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 5, 6, 6, generator=torch.Generator().manual_seed(5))
    expected = F.instance_norm(x, weight=norm.weight[:5], bias=norm.bias[:5])
    torch.testing.assert_close(norm(x), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(norm(x[0]), expected[0], atol=1e-6, rtol=0)


def _onnx_ops(generator: nn.Module, folder) -> list[str]:
    result = export_model(generator, folder, "onnx", size=32)
    assert result.max_abs_diff < 1e-4
    return [node.op_type for node in onnx.load(str(result.files[0])).graph.node]


def test_generators_use_it_and_export_the_graph_of_the_standard_layer(tmp_path):
    generator = build_generator("resnet_6blocks", ngf=4, norm="instance").eval()
    norms = {name for name, module in generator.named_modules() if isinstance(module, nn.InstanceNorm2d)}
    assert norms and all(isinstance(generator.get_submodule(name), InstanceNorm2d) for name in norms)
    ours = _onnx_ops(generator, tmp_path / "ours")

    for name in norms:  # the same network with torch's own layer
        parent, _, child = name.rpartition(".")
        setattr(generator.get_submodule(parent), child, nn.InstanceNorm2d(generator.get_submodule(name).num_features))
    standard = _onnx_ops(generator, tmp_path / "standard")

    # One InstanceNormalization node per norm, not group_norm's Reshape / InstanceNormalization / Reshape.
    assert ours == standard
    assert ours.count("InstanceNormalization") == len(norms)
