"""Each architecture's declared image sides match what its forward pass takes, and training checks them up front."""

from __future__ import annotations

import pytest
import torch

from ganslim.archs import build_discriminator, build_generator, builder_parameters
from ganslim.signature import ImageSides, combined
from ganslim.errors import GanslimError
from ganslim.registry import DISCRIMINATORS, GENERATORS
from helpers import image_network_names

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(registry, name: str) -> torch.nn.Module:
    accepted = builder_parameters(registry, name)
    wanted = (("ngf", 2), ("ndf", 2), ("num_downs", 5), ("num_feat", 4), ("num_block", 1), ("num_grow_ch", 2))
    kwargs = {key: value for key, value in wanted if key in accepted}
    build = build_generator if registry is GENERATORS else build_discriminator
    return build(name, **kwargs).train()


def _takes(net: torch.nn.Module, side: int, generator: bool) -> bool:
    """A training forward pass of one (1, C, side, side) image works (and a generator's output has the size its
    signature says)."""
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, net.input_nc, side, side))
    except (RuntimeError, ValueError, GanslimError):
        return False
    if generator:
        out_side = net.signature.output_side(side)
        return out.shape[-2:] == (out_side, out_side)
    scores = out[-1][-1] if isinstance(out, list) else out  # a multi-scale discriminator's coarsest scores
    return min(scores.shape[-2:]) >= 1


@pytest.mark.parametrize("registry, name", [(GENERATORS, name) for name in image_network_names(GENERATORS)]
                         + [(DISCRIMINATORS, name) for name in image_network_names(DISCRIMINATORS)])
def test_declared_sides_are_the_sides_the_network_takes(registry, name):
    net = _tiny(registry, name)
    rule = net.image_sides
    assert isinstance(rule, ImageSides) and rule.minimum % rule.multiple == 0
    for side in sorted({rule.minimum - 1, rule.minimum, rule.minimum + 1, rule.minimum + rule.multiple,
                        2 * rule.minimum + 1} - {0}):
        assert rule.accepts(side) == _takes(net, side, registry is GENERATORS), (name, side)


def test_rules_describe_combine_and_suggest():
    resnet, patchgan, unet = ImageSides(4, 8), ImageSides(1, 24), ImageSides(32, 32)
    assert resnet.describe() == "multiples of 4 and at least 8 pixels"
    assert patchgan.describe() == "at least 24 pixels" and unet.describe() == "multiples of 32"
    assert resnet.nearest(30) == [28, 32] and resnet.nearest(5) == [8] and patchgan.nearest(16) == [24]
    assert combined([resnet, patchgan]) == ImageSides(4, 24) and combined([unet, patchgan]) == ImageSides(32, 32)
    assert combined([ImageSides(4, 8), ImageSides(1, 26)]) == ImageSides(4, 28)
    fixed = ImageSides(128, 128, maximum=128)  # a fully connected head, as BasicSR's VGG-style discriminator
    assert fixed.describe() == "exactly 128 pixels" and not fixed.accepts(256) and fixed.nearest(200) == [128]
    assert combined([resnet, fixed]) == fixed
    assert ImageSides(1, 8, 64).describe() == "at least 8 pixels and at most 64 pixels"
