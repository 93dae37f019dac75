"""Once-for-all supernet, sub-network extraction and the channel search space (GAN Compression)."""

from __future__ import annotations

import random

import pytest
import torch

from ganslim.archs import build_generator
from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.checkpoints import load_generator, save_model
from ganslim.compress import SearchSpace, extract_subnet
from ganslim.compress.space import default_candidates
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs
from ganslim.nn.elastic import ElasticConv2d, leading_slice
from reference_impl import image, randomize_

LARGEST = [8, 12, 16, 16, 12, 16, 12, 8]
CANDIDATES = [[8, 4], [12, 8, 4], [16, 8], [16, 8, 4], [12, 4], [16, 12, 8], [12, 8], [8, 6, 4]]


def supernet(norm: str, n_blocks: int = 9, largest=LARGEST, seed: int = 0) -> SuperMobileResnetGenerator:
    model = build_generator("super_mobile_resnet", norm=norm, n_blocks=n_blocks, channels=largest)
    return randomize_(model, seed=seed).eval()


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_extracted_subnet_matches_the_configured_supernet(norm):
    net = supernet(norm)
    space = SearchSpace.for_supernet(net, CANDIDATES)
    rng = random.Random(0)
    x = image(2, 3, 16)
    for channels in [space.smallest(), *(space.sample(rng) for _ in range(4))]:
        compact = extract_subnet(net, channels)
        assert type(compact) is MobileResnetGenerator and compact.channels == channels
        assert net.active_channels == LARGEST, "extraction leaves the supernet's configuration alone"
        assert sum(p.numel() for p in compact.parameters()) < sum(p.numel() for p in net.parameters())
        with torch.no_grad():
            expected = net.configure(channels)(x)
            got = compact(x)
        net.configure(None)
        assert torch.allclose(got, expected, atol=1e-5)
        assert got.std() > 0.05


def test_parity_with_uneven_block_groups_and_batch_statistics():
    # 4 blocks -> groups [1], [2], [3, 4]; in training mode both use batch statistics and update the same
    # leading entries of the running statistics.
    largest = [6, 8, 8, 8, 4, 8, 8, 6]
    net = supernet("batch", n_blocks=4, largest=largest).train()
    channels = [4, 8, 6, 2, 4, 8, 6, 3]
    compact = extract_subnet(net, channels)
    assert compact.training
    x = image(3, 3, 16)
    with torch.no_grad():
        expected = net.configure(channels)(x)
        got = compact(x)
    assert torch.allclose(got, expected, atol=1e-5)
    shared, own = net.state_dict(), compact.state_dict()
    for name in ("model.2.running_mean", "model.11.conv_block.2.running_var", "model.15.running_mean"):
        assert torch.allclose(leading_slice(shared[name], own[name].shape), own[name], atol=1e-6)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_largest_configuration_is_the_full_network(norm):
    net = supernet(norm)
    plain = MobileResnetGenerator(norm=norm, channels=LARGEST).eval()
    plain.load_state_dict(net.state_dict(), strict=True)  # the supernet's state dict is the plain one's
    x = image(1, 3, 16)
    with torch.no_grad():
        full = net(x)
        assert torch.equal(net.configure(LARGEST)(x), full)
        assert torch.allclose(extract_subnet(net, LARGEST)(x), full, atol=1e-6)
        assert torch.allclose(plain(x), full, atol=1e-6)


def test_small_configuration_trains_the_leading_slices_of_the_shared_weights():
    net = supernet("batch", n_blocks=2, largest=[8] * 7).train()
    before = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    channels = [4, 6, 4, 2, 6, 4, 3]
    net.configure(channels)
    net(image(2, 3, 16)).square().mean().backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    after = net.state_dict()
    compact_shapes = {name: t.shape for name, t in extract_subnet(net, channels).state_dict().items()}
    for name, shape in compact_shapes.items():
        if after[name].dim() == 0:  # num_batches_tracked
            continue
        inside = torch.zeros_like(after[name], dtype=torch.bool)
        leading_slice(inside, shape).fill_(True)
        assert torch.equal(after[name][~inside], before[name][~inside]), f"{name} changed outside its slice"
        if name.endswith(("weight", "running_mean", "running_var")):
            assert not torch.equal(after[name][inside], before[name][inside]), f"{name} slice did not train"
    assert net.model[1].weight.grad[4:].abs().sum() == 0  # stem outputs 5..8 were not used


def test_configure_checks_widths_and_resets():
    net = supernet("instance")
    with pytest.raises(GanslimError, match=r"channels\[2\] \(down2\) = 32 exceeds the supernet's 16"):
        net.configure([8, 12, 32, 16, 12, 16, 12, 8])
    with pytest.raises(GanslimError, match="channels has 7 entries"):
        extract_subnet(net, LARGEST[:-1])
    net.configure([4, 4, 4, 4, 4, 4, 4, 4])
    assert net.active_channels == [4] * 8 and net.feature_channels(9) == 4 and net.feature_channels(20) == 4
    assert net.configure(None).active_channels == LARGEST and net.feature_channels(9) == 16
    assert isinstance(net.model[1], ElasticConv2d) and net.model[10].conv_block[1].conv[0].depthwise


# count_macs is slow on instance norm (decomposed op by op), so that case runs on 3 blocks.
@pytest.mark.parametrize("norm,n_blocks", [("batch", 9), ("instance", 3)])
def test_mac_prediction_equals_the_profiler(norm, n_blocks):
    net = supernet(norm, n_blocks)
    space = SearchSpace.for_supernet(net, CANDIDATES)
    channels = space.sample(random.Random(1))
    for height, width in ((32, 32), (16, 24)):
        x = torch.zeros(1, 3, height, width)
        predicted = space.predict_macs(channels, (height, width))
        assert predicted == count_macs(extract_subnet(net, channels), x)
    assert predicted == count_macs(net.configure(channels), x)
    assert space.predict_macs(channels, 32) == space.predict_macs(channels, (32, 32))
    with pytest.raises(GanslimError, match="input_size must be"):
        space.predict_macs(channels, 4)
    assert space.predict_macs(space.smallest(), 32).macs < space.predict_macs(space.largest(), 32).macs


def test_default_space_below_an_ngf64_teacher():
    assert default_candidates(64) == (64, 48, 32, 24, 16)
    assert default_candidates(256) == (256, 192, 128, 96, 64)
    assert default_candidates(16) == (16, 8)
    assert default_candidates(12) == (12, 8)
    with torch.device("meta"):
        net = build_generator("super_mobile_resnet", ngf=64)
    space = SearchSpace.for_supernet(net)
    assert space.largest() == [64, 128, 256, 256, 256, 256, 128, 64]
    assert space.smallest() == [16, 32, 64, 64, 64, 64, 32, 16]
    assert space.size() == 5**8
    # The smallest sub-network of the default space is the published ngf-16 student.
    assert space.predict_macs(space.smallest(), 256).macs_published == 1_407_713_280


def test_space_enumeration_and_sampling():
    space = SearchSpace([[8, 4], [4, 8, 8], [6], [5, 3], [2], [4, 2], [3]], n_blocks=2)
    assert space.candidates[1] == (8, 4) and space.names == [
        "stem", "down1", "down2", "hidden[1]", "hidden[2]", "up1", "up2"
    ]
    configs = list(space.enumerate())
    assert len(configs) == space.size() == 16 and len({tuple(c) for c in configs}) == 16
    assert configs[0] == space.largest() == [8, 8, 6, 5, 2, 4, 3]
    assert configs[-1] == space.smallest() == [4, 4, 6, 3, 2, 2, 3]
    draws = [space.sample(random.Random(7)) for _ in range(2)]
    assert draws[0] == draws[1] and space.validate(draws[0]) == draws[0]
    rng = random.Random(3)
    seen = {tuple(space.sample(rng)) for _ in range(200)}
    assert len(seen) == 16
    largest, smallest, sampled = space.sandwich(random.Random(0))
    assert (largest, smallest) == (space.largest(), space.smallest()) and tuple(sampled) in seen


@pytest.mark.parametrize(
    "channels,message",
    [
        ([8, 12, 16, 16, 12, 16, 12, 5], r"channels\[7\] \(up2\) = 5 is not a candidate; choose one of 8, 6, 4"),
        ([8, 12, 16, 12, 12, 16, 12, 8], r"channels\[3\] \(hidden\[1-3\]\) = 12 is not a candidate"),
        ([8, 12, 16], "channels has 3 entries; 9 blocks need 8"),
        ([8, 12, 16, 16, 12, 16, 12, None], r"channels\[7\] \(up2\) must be a positive int"),
    ],
)
def test_space_validation_names_the_bad_position(channels, message):
    space = SearchSpace(CANDIDATES)
    with pytest.raises(GanslimError, match=message) as error:
        space.validate(channels)
    assert "\n" not in str(error.value)


def test_space_construction_errors():
    with pytest.raises(GanslimError, match="needs 8 candidate sets"):
        SearchSpace(CANDIDATES[:5])
    with pytest.raises(GanslimError, match=r"candidates\[0\] \(stem\) must be a non-empty list"):
        SearchSpace([[], *CANDIDATES[1:]])
    net = supernet("instance")
    with pytest.raises(GanslimError, match=r"channels\[0\] \(stem\) = 16 exceeds the supernet's 8"):
        SearchSpace.for_supernet(net, [[16, 8], *CANDIDATES[1:]])


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_extracted_student_saves_and_loads_from_arch_and_channels(tmp_path, suffix):
    net = supernet("batch")
    channels = [4, 8, 8, 4, 12, 8, 8, 6]
    student = extract_subnet(net, channels)
    path = save_model(tmp_path / f"student{suffix}", student, "mobile_resnet", student.arch_kwargs())
    loaded = load_generator(path)
    assert loaded.arch == "mobile_resnet" and loaded.arch_kwargs["channels"] == channels
    assert isinstance(loaded.model, MobileResnetGenerator) and loaded.model.channels == channels
    x = image(1, 3, 16)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), student(x))
    with torch.no_grad():  # the student owns its tensors: changing it leaves the supernet alone
        student.model[1].weight.zero_()
    assert net.model[1].weight.abs().sum() > 0
