"""The FID Inception: layout of pt_inception-2015-12-05, forward, weight lookup and loading errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganslim.errors import GanslimError
from ganslim.metrics import inception as inc
from ganslim.metrics.inception import FIDInceptionV3, InceptionFeatures, load_inception

# Expected layout, written from the TF-graph-to-PyTorch name map of the 2015-12-05 Inception (pytorch-fid /
# torch-fidelity): (name, in_channels, out_channels, kernel_h, kernel_w) of every conv + batch-norm unit.
STEM = [
    ("Conv2d_1a_3x3", 3, 32, 3, 3),
    ("Conv2d_2a_3x3", 32, 32, 3, 3),
    ("Conv2d_2b_3x3", 32, 64, 3, 3),
    ("Conv2d_3b_1x1", 64, 80, 1, 1),
    ("Conv2d_4a_3x3", 80, 192, 3, 3),
]


def block_a(cin, pool):
    return [
        ("branch1x1", cin, 64, 1, 1),
        ("branch5x5_1", cin, 48, 1, 1),
        ("branch5x5_2", 48, 64, 5, 5),
        ("branch3x3dbl_1", cin, 64, 1, 1),
        ("branch3x3dbl_2", 64, 96, 3, 3),
        ("branch3x3dbl_3", 96, 96, 3, 3),
        ("branch_pool", cin, pool, 1, 1),
    ]


def block_b(cin):
    return [
        ("branch3x3", cin, 384, 3, 3),
        ("branch3x3dbl_1", cin, 64, 1, 1),
        ("branch3x3dbl_2", 64, 96, 3, 3),
        ("branch3x3dbl_3", 96, 96, 3, 3),
    ]


def block_c(c7):
    return [
        ("branch1x1", 768, 192, 1, 1),
        ("branch7x7_1", 768, c7, 1, 1),
        ("branch7x7_2", c7, c7, 1, 7),
        ("branch7x7_3", c7, 192, 7, 1),
        ("branch7x7dbl_1", 768, c7, 1, 1),
        ("branch7x7dbl_2", c7, c7, 7, 1),
        ("branch7x7dbl_3", c7, c7, 1, 7),
        ("branch7x7dbl_4", c7, c7, 7, 1),
        ("branch7x7dbl_5", c7, 192, 1, 7),
        ("branch_pool", 768, 192, 1, 1),
    ]


def block_d(cin):
    return [
        ("branch3x3_1", cin, 192, 1, 1),
        ("branch3x3_2", 192, 320, 3, 3),
        ("branch7x7x3_1", cin, 192, 1, 1),
        ("branch7x7x3_2", 192, 192, 1, 7),
        ("branch7x7x3_3", 192, 192, 7, 1),
        ("branch7x7x3_4", 192, 192, 3, 3),
    ]


def block_e(cin):
    return [
        ("branch1x1", cin, 320, 1, 1),
        ("branch3x3_1", cin, 384, 1, 1),
        ("branch3x3_2a", 384, 384, 1, 3),
        ("branch3x3_2b", 384, 384, 3, 1),
        ("branch3x3dbl_1", cin, 448, 1, 1),
        ("branch3x3dbl_2", 448, 384, 3, 3),
        ("branch3x3dbl_3a", 384, 384, 1, 3),
        ("branch3x3dbl_3b", 384, 384, 3, 1),
        ("branch_pool", cin, 192, 1, 1),
    ]


BLOCKS = {
    "Mixed_5b": block_a(192, 32),
    "Mixed_5c": block_a(256, 64),
    "Mixed_5d": block_a(288, 64),
    "Mixed_6a": block_b(288),
    "Mixed_6b": block_c(128),
    "Mixed_6c": block_c(160),
    "Mixed_6d": block_c(160),
    "Mixed_6e": block_c(192),
    "Mixed_7a": block_d(768),
    "Mixed_7b": block_e(1280),
    "Mixed_7c": block_e(2048),
}


def expected_shapes() -> dict[str, tuple[int, ...]]:
    units = list(STEM) + [(f"{block}.{name}", *rest) for block, layers in BLOCKS.items() for name, *rest in layers]
    shapes: dict[str, tuple[int, ...]] = {}
    for name, cin, cout, kh, kw in units:
        shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{stat}"] = (cout,)
    shapes["fc.weight"] = (1008, 2048)
    shapes["fc.bias"] = (1008,)
    return shapes


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> tuple[str, dict[str, torch.Tensor]]:
    """A file in the pt_inception format (plain dict, no num_batches_tracked) holding random values."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in expected_shapes().items():
        # Scaled so activations keep their size through the 94 layers and still depend on the input.
        if key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith("bn.weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        else:
            state[key] = 0.01 * torch.randn(shape, generator=gen)
    path = tmp_path_factory.mktemp("weights") / inc.WEIGHTS_FILENAME
    torch.save(state, path)
    return str(path), state


def test_state_dict_matches_pt_inception_layout():
    model = FIDInceptionV3()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = expected_shapes()
    assert got == expected
    # 94 conv units x (conv weight + 4 batch-norm tensors) + fc weight and bias.
    assert len(STEM) + sum(len(layers) for layers in BLOCKS.values()) == 94
    assert len(got) == 94 * 5 + 2 == 472
    assert not any("num_batches_tracked" in k or "AuxLogits" in k for k in got)
    # torchvision documents 27,161,264 parameters for InceptionV3 with its aux head (3,326,696) and
    # 1000 classes; without the aux head and with 1008 classes: 23,834,568 + 8 * 2049.
    assert sum(p.numel() for p in model.parameters()) == 23_850_960


def test_forward_features_and_tf_port_details(random_weights):
    path, _ = random_weights
    features = load_inception(path)
    seen = {}

    def keep(name):
        def hook(module, args):
            seen[name] = args[0].detach().clone()

        return hook

    net = features.inception
    net.Conv2d_1a_3x3.register_forward_pre_hook(keep("stem_in"))
    for block in ("Mixed_5b", "Mixed_7b", "Mixed_7c"):
        getattr(net, block).register_forward_pre_hook(keep(f"{block}_in"))
        getattr(net, block).branch_pool.register_forward_pre_hook(keep(f"{block}_pool"))

    images = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    with torch.no_grad():
        out = features(images)
    assert out.shape == (2, 2048) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.abs().sum() > 0 and not torch.allclose(out[0], out[1])

    # pytorch-fid preprocessing: [0, 1], bilinear resize to 299 without align_corners, then [-1, 1].
    want = F.interpolate(images.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    torch.testing.assert_close(seen["stem_in"], want)
    # TF port: average pools ignore padding (A and first E block), the last E block max-pools.
    for block in ("Mixed_5b", "Mixed_7b"):
        x = seen[f"{block}_in"]
        avg = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        torch.testing.assert_close(seen[f"{block}_pool"], avg)
        assert not torch.allclose(avg, F.avg_pool2d(x, 3, stride=1, padding=1))
    torch.testing.assert_close(seen["Mixed_7c_pool"], F.max_pool2d(seen["Mixed_7c_in"], 3, stride=1, padding=1))


def test_weights_round_trip_and_frozen(random_weights):
    path, state = random_weights
    features = load_inception(path)
    loaded = features.inception.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert not features.training
    assert not any(p.requires_grad for p in features.parameters())
    bn = features.inception.Conv2d_1a_3x3.bn
    bn.train()  # frozen batch norm never updates its statistics
    bn(torch.randn(2, 32, 5, 5) + 3)
    assert torch.equal(features.inception.Conv2d_1a_3x3.bn.running_mean, state["Conv2d_1a_3x3.bn.running_mean"])


def test_lookup_order(random_weights, tmp_path, monkeypatch):
    path, state = random_weights
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(inc.WEIGHTS_ENV_VAR, raising=False)
    assert inc.default_weights_path() == tmp_path / ".cache" / "ganslim" / inc.WEIGHTS_FILENAME

    # Nothing anywhere: one line that says where to put the file.
    with pytest.raises(GanslimError) as err:
        load_inception()
    message = str(err.value)
    assert "\n" not in message
    assert str(inc.default_weights_path()) in message and inc.WEIGHTS_ENV_VAR in message

    # The environment variable is used when no argument is given.
    monkeypatch.setenv(inc.WEIGHTS_ENV_VAR, path)
    from_env = load_inception()
    assert torch.equal(from_env.inception.fc.bias, state["fc.bias"])

    # The argument wins over the environment variable, and a missing argument path is an error.
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(GanslimError, match="nowhere.pth"):
        load_inception(missing)

    # A set but wrong environment variable is reported, not skipped.
    monkeypatch.setenv(inc.WEIGHTS_ENV_VAR, str(missing))
    with pytest.raises(GanslimError, match=inc.WEIGHTS_ENV_VAR):
        load_inception()

    # The cache folder is the last resort.
    monkeypatch.delenv(inc.WEIGHTS_ENV_VAR)
    cached = inc.default_weights_path()
    cached.parent.mkdir(parents=True)
    cached.symlink_to(path)
    from_cache = load_inception()
    assert torch.equal(from_cache.inception.fc.weight, state["fc.weight"])


def test_wrong_files_name_the_difference(random_weights, tmp_path):
    _, state = random_weights

    def save(name, obj):
        target = tmp_path / name
        torch.save(obj, target)
        return target

    # A torchvision-style copy that carries num_batches_tracked still loads.
    with_counters = dict(state)
    with_counters["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0)
    load_inception(save("counters.pth", with_counters))

    cases = {
        "classes.pth": ({**state, "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)},
                        "'fc.weight': file (1000, 2048), expected (1008, 2048)"),
        "aux.pth": ({**state, "AuxLogits.fc.weight": torch.zeros(1000, 768)}, "1 unexpected keys (first 'AuxLogits"),
        "partial.pth": ({k: v for k, v in state.items() if not k.startswith("Mixed_7c")}, "45 missing keys"),
        "nested.pth": ({"state_dict": state}, "not a state dict of tensors"),
    }
    for name, (obj, fragment) in cases.items():
        with pytest.raises(GanslimError) as err:
            load_inception(save(name, obj))
        assert fragment in str(err.value) and "\n" not in str(err.value), name

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(GanslimError, match="cannot read Inception weights") as err:
        load_inception(garbage)
    assert "\n" not in str(err.value)


def test_features_reject_float_images():
    features = InceptionFeatures(FIDInceptionV3())
    with pytest.raises(GanslimError, match="uint8"):
        features(torch.zeros(1, 3, 32, 32))
    with pytest.raises(GanslimError, match="uint8"):
        features(torch.zeros(1, 4, 32, 32, dtype=torch.uint8))


def test_grayscale_is_repeated_to_rgb(random_weights):
    path, _ = random_weights
    features = load_inception(path)
    gray = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 1, 40, 40), dtype=np.uint8))
    with torch.no_grad():
        torch.testing.assert_close(features(gray), features(gray.repeat(1, 3, 1, 1)))
