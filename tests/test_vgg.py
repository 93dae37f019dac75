"""VGG16 and VGG19 features: torchvision's layouts, forward, weight lookup order, loading and its errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganslim.errors import GanslimError
from ganslim.losses import load_perceptual_vgg
from ganslim.nn import vgg as vgg_module
from ganslim.nn.vgg import (
    VGG16_LAYERS,
    VGG16Features,
    VGG19Features,
    find_vgg16_weights,
    find_vgg19_weights,
    load_vgg16,
    load_vgg19,
)

# torchvision's vgg16().features, written out: (index in ``features``, in_channels, out_channels) of each of
# the 13 3x3 convs; a ReLU follows each conv at index + 1, max-pools sit at 4, 9, 16, 23 and 30.
CONVS = [
    (0, 3, 64), (2, 64, 64),
    (5, 64, 128), (7, 128, 128),
    (10, 128, 256), (12, 256, 256), (14, 256, 256),
    (17, 256, 512), (19, 512, 512), (21, 512, 512),
    (24, 512, 512), (26, 512, 512), (28, 512, 512),
]
POOLS = [4, 9, 16, 23, 30]
RELU_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
# torchvision's vgg19().features the same way: 16 convs, max-pools at 4, 9, 18, 27 and 36.
CONVS19 = [
    (0, 3, 64), (2, 64, 64),
    (5, 64, 128), (7, 128, 128),
    (10, 128, 256), (12, 256, 256), (14, 256, 256), (16, 256, 256),
    (19, 256, 512), (21, 512, 512), (23, 512, 512), (25, 512, 512),
    (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512),
]
POOLS19 = [4, 9, 18, 27, 36]
VGG19_ENV_VAR = "GANSLIM_VGG19_WEIGHTS"


@pytest.fixture(autouse=True)
def no_user_weights(monkeypatch, tmp_path):
    """Every test starts with no env var and an empty home, so a real cache on this machine never leaks in."""
    monkeypatch.delenv(vgg_module.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.delenv(VGG19_ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def torchvision_state(convs: list[tuple[int, int, int]]) -> dict[str, torch.Tensor]:
    """Random weights with torchvision's key names, scaled so activations stay O(1) through the convs."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for index, cin, cout in convs:
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=generator) * (2 / (9 * cin)) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(cout, generator=generator) * 0.1
    return state


@pytest.fixture(scope="module")
def random_state() -> dict[str, torch.Tensor]:
    return torchvision_state(CONVS)


@pytest.fixture(scope="module")
def vgg19_state() -> dict[str, torch.Tensor]:
    return torchvision_state(CONVS19)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, random_state) -> Path:
    path = tmp_path_factory.mktemp("vgg") / vgg_module.WEIGHTS_FILENAME
    torch.save(random_state, path)
    return path


def test_layout_matches_torchvision():
    vgg = VGG16Features()
    expected_keys = [f"features.{i}.{p}" for i, _, _ in CONVS for p in ("weight", "bias")]
    state = vgg.state_dict()
    assert list(state) == expected_keys  # mean / std buffers stay out of the state dict
    assert expected_keys[0] == "features.0.weight" and expected_keys[-1] == "features.28.bias"
    for index, cin, cout in CONVS:
        assert state[f"features.{index}.weight"].shape == (cout, cin, 3, 3)
        assert state[f"features.{index}.bias"].shape == (cout,)
    assert len(vgg.features) == 31
    for index, layer in enumerate(vgg.features):
        if index in POOLS:
            assert isinstance(layer, nn.MaxPool2d) and layer.kernel_size == 2 and layer.stride == 2
        elif index in {i for i, _, _ in CONVS}:
            assert isinstance(layer, nn.Conv2d) and layer.padding == (1, 1) and layer.kernel_size == (3, 3)
        else:
            assert isinstance(layer, nn.ReLU) and isinstance(vgg.features[index - 1], nn.Conv2d)
    for name, index in RELU_INDEX.items():
        assert VGG16_LAYERS[name] == index
    assert len(VGG16_LAYERS) == 13


def test_forward_shapes_normalisation_and_early_stop(random_state):
    vgg = VGG16Features()
    vgg.load_state_dict(random_state)
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    called = []
    vgg.features[23].register_forward_hook(lambda *_: called.append(23))
    out = vgg(image)
    assert list(out) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert [tuple(t.shape) for t in out.values()] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]
    assert called == []  # nothing after relu4_3 runs

    # [-1, 1] -> [0, 1] -> ImageNet mean / std, then torchvision's first four modules.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = ((image + 1) / 2 - mean) / std
    w0, b0 = random_state["features.0.weight"], random_state["features.0.bias"]
    w2, b2 = random_state["features.2.weight"], random_state["features.2.bias"]
    expected = F.relu(F.conv2d(F.relu(F.conv2d(x, w0, b0, padding=1)), w2, b2, padding=1))
    torch.testing.assert_close(out["relu1_2"], expected, rtol=1e-5, atol=1e-5)

    shallow = VGG16Features(layers=["relu2_2", "relu1_2"])
    shallow.load_state_dict(random_state)
    shallow_out = shallow(image)
    assert list(shallow_out) == ["relu1_2", "relu2_2"]  # ordered shallow to deep
    torch.testing.assert_close(shallow_out["relu2_2"], out["relu2_2"])
    grey = vgg(image[:, :1])["relu1_2"]
    torch.testing.assert_close(grey, vgg(image[:, :1].expand(-1, 3, -1, -1))["relu1_2"])


def test_frozen_but_differentiable_to_the_input():
    vgg = VGG16Features(layers=["relu1_2"])
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    image = torch.zeros(1, 3, 8, 8, requires_grad=True)
    vgg(image)["relu1_2"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_bad_layers_and_images():
    with pytest.raises(GanslimError, match="relu9_9"):
        VGG16Features(layers=["relu9_9"])
    with pytest.raises(GanslimError, match=r"\(N,3,H,W\)"):
        VGG16Features(layers=["relu1_1"])(torch.zeros(1, 4, 8, 8))


def test_round_trip_with_and_without_classifier_keys(tmp_path, weights_file, random_state):
    loaded = load_vgg16(weights_file)
    for key, value in random_state.items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())

    # torchvision's file also holds the classifier (shapes 4096x25088 etc.; small stand-ins here): ignored.
    with_classifier = dict(random_state)
    with_classifier.update({
        "classifier.0.weight": torch.randn(8, 16), "classifier.0.bias": torch.randn(8),
        "classifier.6.weight": torch.randn(10, 8), "classifier.6.bias": torch.randn(10),
    })
    full_path = tmp_path / "full.pth"
    torch.save(with_classifier, full_path)
    full = load_vgg16(full_path)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    for name, value in full(image).items():
        torch.testing.assert_close(value, loaded(image)[name], rtol=0, atol=0)


def test_lookup_order_argument_env_cache(monkeypatch, tmp_path, weights_file):
    home = Path(os.environ["HOME"])
    assert find_vgg16_weights() is None
    cache = home / ".cache" / "ganslim" / vgg_module.WEIGHTS_FILENAME
    cache.parent.mkdir(parents=True)
    cache.symlink_to(weights_file)
    assert vgg_module.default_vgg16_weights_path() == cache
    assert find_vgg16_weights() == cache

    env_file = tmp_path / "from_env.pth"
    env_file.symlink_to(weights_file)
    monkeypatch.setenv("GANSLIM_VGG16_WEIGHTS", str(env_file))
    assert find_vgg16_weights() == env_file
    assert isinstance(load_vgg16(), VGG16Features)  # found through the environment variable

    arg_file = tmp_path / "from_arg.pth"
    arg_file.symlink_to(weights_file)
    assert find_vgg16_weights(arg_file) == arg_file


def test_missing_weights(monkeypatch, tmp_path):
    assert find_vgg16_weights() is None
    assert load_perceptual_vgg() is None
    with pytest.raises(GanslimError) as error:
        load_vgg16()
    message = str(error.value)
    assert "\n" not in message
    assert "GANSLIM_VGG16_WEIGHTS" in message and str(vgg_module.default_vgg16_weights_path()) in message

    # A path the user names is never skipped silently, even when a later source would have a file.
    with pytest.raises(GanslimError, match="the weights argument"):
        find_vgg16_weights(tmp_path / "nope.pth")
    monkeypatch.setenv("GANSLIM_VGG16_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(GanslimError, match=r"\$GANSLIM_VGG16_WEIGHTS"):
        load_perceptual_vgg()


def test_wrong_files_name_what_differs(tmp_path, random_state):
    def load(state_or_bytes, name):
        path = tmp_path / name
        if isinstance(state_or_bytes, bytes):
            path.write_bytes(state_or_bytes)
        else:
            torch.save(state_or_bytes, path)
        with pytest.raises(GanslimError) as error:
            load_vgg16(path)
        assert "\n" not in str(error.value)
        return str(error.value)

    missing = {k: v for k, v in random_state.items() if k != "features.28.bias"}
    assert "1 missing keys (first 'features.28.bias')" in load(missing, "missing.pth")

    reshaped = dict(random_state, **{"features.5.weight": torch.zeros(128, 32, 3, 3)})
    assert "'features.5.weight': file (128, 32, 3, 3), expected (128, 64, 3, 3)" in load(reshaped, "shape.pth")

    # vgg16_bn puts batch norms between the convs, so its indices and keys differ.
    bn_like = dict(random_state, **{"features.1.running_mean": torch.zeros(64)})
    assert "unexpected keys (first 'features.1.running_mean')" in load(bn_like, "bn.pth")

    assert "not a state dict of tensors (got list)" in load([1, 2], "list.pth")
    assert "cannot read VGG16 weights" in load(b"not a torch file", "garbage.pth")


# ---------------------------------------------------------------------------------------------- VGG19


def test_vgg19_layout_matches_torchvision_and_returns_conv5_4_before_its_relu(vgg19_state):
    vgg = VGG19Features()
    assert list(vgg.state_dict()) == [f"features.{i}.{p}" for i, _, _ in CONVS19 for p in ("weight", "bias")]
    assert len(vgg.features) == 37
    assert [i for i, layer in enumerate(vgg.features) if isinstance(layer, nn.MaxPool2d)] == POOLS19
    vgg.load_state_dict(vgg19_state)
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))  # [0, 1], as SR images
    called = []
    vgg.features[35].register_forward_hook(lambda *_: called.append(35))
    out = vgg(image)
    assert out.shape == (2, 512, 2, 2) and called == []  # the ReLU after conv5_4 never runs

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (image - mean) / std
    for index, _, _ in CONVS19:
        if index - 1 in POOLS19:
            x = F.max_pool2d(x, 2)
        x = F.conv2d(x, vgg19_state[f"features.{index}.weight"], vgg19_state[f"features.{index}.bias"], padding=1)
        if index != 34:
            x = F.relu(x)
    torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-4)
    assert (out < 0).any()  # pre-ReLU: negative values survive
    assert not any(p.requires_grad for p in vgg.parameters())
    with pytest.raises(GanslimError, match=r"\(N, 3, H, W\) images in \[0, 1\]"):
        vgg(torch.zeros(1, 1, 16, 16))


def test_vgg19_is_looked_up_as_vgg16_is(monkeypatch, tmp_path, vgg19_state):
    assert find_vgg19_weights() is None
    with pytest.raises(GanslimError) as error:
        load_vgg19()
    assert VGG19_ENV_VAR in str(error.value) and "vgg19-dcbb9e9d.pth" in str(error.value)
    assert str(vgg_module.default_vgg19_weights_path()) in str(error.value) and "\n" not in str(error.value)

    file = tmp_path / "vgg19.pth"
    torch.save({**vgg19_state, "classifier.6.bias": torch.zeros(10)}, file)  # the classifier is ignored
    cache = Path(os.environ["HOME"]) / ".cache" / "ganslim" / "vgg19-dcbb9e9d.pth"
    cache.parent.mkdir(parents=True)
    cache.symlink_to(file)
    assert vgg_module.default_vgg19_weights_path() == cache and find_vgg19_weights() == cache
    monkeypatch.setenv(VGG19_ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(GanslimError, match=r"\$GANSLIM_VGG19_WEIGHTS"):
        find_vgg19_weights()  # a path the user set is never skipped for the cache
    monkeypatch.setenv(VGG19_ENV_VAR, str(file))
    assert find_vgg19_weights() == file and find_vgg19_weights(cache) == cache
    loaded = load_vgg19()
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in vgg19_state.items())
    torch.save(torchvision_state(CONVS), tmp_path / "vgg16.pth")
    with pytest.raises(GanslimError, match="is not torchvision's VGG19 weights file vgg19-dcbb9e9d.pth"):
        load_vgg19(tmp_path / "vgg16.pth")
