"""StyleGAN2 files users have: rosinality train.py checkpoints (argparse.Namespace inside), convert_weight.py
files, bare state dicts, and NVIDIA .pkl snapshots read without running their code; each loaded network against a
functional re-computation, and every bad file refused in one line."""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from ganslim.archs import build_discriminator
from ganslim.checkpoints import load_discriminator, load_generator, save_model
from ganslim.errors import GanslimError
from stylegan2_reference import (
    discriminator_forward,
    map_rosinality,
    nvidia_discriminator_forward,
    nvidia_discriminator_tensors,
    nvidia_forward,
    nvidia_generator_tensors,
    random_rosinality_state,
    stored_noises,
    synthesize_rosinality,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, CHANNELS, STYLE_DIM = 16, [8, 8, 4], 16
TOLERANCE = 1e-4


def _generator_state(seed: int, w_avg: bool = False) -> dict[str, torch.Tensor]:
    return random_rosinality_state(SIZE, CHANNELS, STYLE_DIM, 2, seed=seed, w_avg=w_avg)


def _discriminator_state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    template = build_discriminator("stylegan2", size=SIZE, channels=CHANNELS).state_dict()
    return {key: t if key.endswith("kernel") else torch.randn(t.shape, generator=generator) * (
            0.1 if key.endswith("bias") else 1) for key, t in template.items()}


def _z(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, STYLE_DIM, generator=torch.Generator().manual_seed(11))


def _expected_image(state: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    return synthesize_rosinality(state, map_rosinality(state, z)[:, None].repeat(1, 6, 1),
                                 stored_noises(state, z.shape[0]))


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_rosinality_train_file_reads_g_ema_and_d(tmp_path):
    g, g_ema, d = _generator_state(1), _generator_state(2), _discriminator_state(3)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))])
    optimizer.step()
    path = tmp_path / "050000.pt"
    torch.save({"g": g, "d": d, "g_ema": g_ema, "g_optim": optimizer.state_dict(), "d_optim": optimizer.state_dict(),
                "args": argparse.Namespace(size=SIZE, channel_multiplier=2, path="lmdb/", r1=10.0),
                "ada_aug_p": 0.0}, path)
    loaded = load_generator(path)
    assert loaded.arch == "stylegan2" and loaded.source == "reference"
    assert loaded.arch_kwargs == {"size": SIZE, "style_dim": STYLE_DIM, "n_mlp": 2, "channels": CHANNELS}
    assert loaded.meta == {"format": "rosinality train.py", "weights": "g_ema", "w_avg": "missing"}
    z = _z()
    with torch.no_grad():
        assert torch.allclose(loaded.model(z), _expected_image(g_ema, z), atol=TOLERANCE)
    with pytest.raises(GanslimError, match="has no w_avg") as error:
        loaded.model(z, truncation_psi=0.7)
    _one_line(error)

    critic = load_discriminator(path)
    assert critic.arch == "stylegan2" and critic.arch_kwargs == {"size": SIZE, "channels": CHANNELS}
    images = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(critic.model(images), discriminator_forward(d, images), atol=1e-5)


def test_a_file_with_only_g_loads_it_and_says_so(tmp_path, caplog):
    g = _generator_state(5)
    path = tmp_path / "g_only.pt"
    torch.save({"g": g, "args": argparse.Namespace(size=SIZE)}, path)
    with caplog.at_level(logging.WARNING, logger="ganslim"):
        loaded = load_generator(path)
    assert loaded.meta["weights"] == "g"
    assert [record.getMessage() for record in caplog.records] == [
        f"note: checkpoint '{path}' holds no g_ema (rosinality's EMA generator, the one to sample from): loading "
        f"its g"]
    with torch.no_grad():
        assert torch.allclose(loaded.model(_z()), _expected_image(g, _z()), atol=TOLERANCE)
    with pytest.raises(GanslimError, match=r"holds no StyleGAN2 discriminator \(rosinality's d, NVIDIA's D\)"):
        load_discriminator(path)


def test_converted_file_truncates_toward_its_latent_avg(tmp_path):
    g_ema = _generator_state(6)
    latent_avg = torch.randn(STYLE_DIM, generator=torch.Generator().manual_seed(7))
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save({"g_ema": g_ema, "latent_avg": latent_avg}, path)
    loaded = load_generator(path)
    assert loaded.meta == {"format": "rosinality convert_weight.py", "weights": "g_ema", "w_avg": "stored"}
    assert torch.equal(loaded.model.style.w_avg, latent_avg)
    z = _z()
    truncated = latent_avg + 0.6 * (map_rosinality(g_ema, z) - latent_avg)
    expected = synthesize_rosinality(g_ema, truncated[:, None].repeat(1, 6, 1), stored_noises(g_ema, 2))
    with torch.no_grad():
        assert torch.allclose(loaded.model(z, truncation_psi=0.6), expected, atol=TOLERANCE)


def test_a_bare_state_dict_loads_and_round_trips_through_a_ganslim_checkpoint(tmp_path):
    state = _generator_state(8)
    torch.save({f"module.{key}": value for key, value in state.items()}, tmp_path / "g_ema.pt")  # DataParallel
    loaded = load_generator(tmp_path / "g_ema.pt")
    assert loaded.meta["format"] == "rosinality state dict"
    for suffix in (".pt", ".safetensors"):
        path = save_model(tmp_path / f"ours{suffix}", loaded.model, loaded.arch, loaded.arch_kwargs)
        again = load_generator(path)
        assert again.source == "ganslim" and again.signature == loaded.signature
        with torch.no_grad():
            assert torch.equal(again.model(_z()), loaded.model(_z()))


def test_a_layer_of_the_wrong_shape_is_named(tmp_path):
    state = _generator_state(9)
    state["convs.1.conv.weight"] = torch.randn(1, 8, 6, 3, 3)
    torch.save({"g_ema": state}, tmp_path / "bad.pt")
    with pytest.raises(GanslimError) as error:
        load_generator(tmp_path / "bad.pt")
    assert "fits no stylegan2 generator (size=16, style_dim=16, n_mlp=2, channels=[8, 8, 4])" in _one_line(error)
    assert "1 shape mismatches (first 'convs.1.conv.weight': file (1, 8, 6, 3, 3), expected (1, 8, 8, 3, 3))" in \
        str(error.value)
    del state["convs.1.conv.weight"], state["to_rgb1.conv.weight"]
    torch.save({"g_ema": state}, tmp_path / "missing.pt")
    with pytest.raises(GanslimError, match="is not a StyleGAN2 generator in rosinality's layout: it has no "
                                           "'to_rgb1.conv.weight'") as error:
        load_generator(tmp_path / "missing.pt")
    _one_line(error)


# ---------------------------------------------------------------- NVIDIA pickles, written as their code writes them

SOURCE_NEVER_RUN = "raise RuntimeError('the pickled source code was run')\n"


class _Persistent:
    """Pickles as NVIDIA's persistent classes do: ``_reconstruct_persistent_obj(meta)`` with the module source."""

    def __init__(self, class_name: str, state: dict) -> None:
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = {"type": "class", "version": 6, "module_src": SOURCE_NEVER_RUN, "class_name": self.class_name,
                "state": self.state}
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,)


_CLASS_NAMES = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "torgb": "ToRGBLayer",
                "conv0": "SynthesisLayer", "conv1": "SynthesisLayer", "affine": "FullyConnectedLayer"}
_BUFFERS = ("resample_filter", "noise_const", "w_avg")


def _module_tree(tensors: dict[str, torch.Tensor], class_name: str, attributes: dict) -> _Persistent:
    """Nested persistent objects holding ``tensors`` (flat state-dict keys) as parameters and buffers."""
    own = {key: value for key, value in tensors.items() if "." not in key}
    children: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if "." in key:
            head, rest = key.split(".", 1)
            children.setdefault(head, {})[rest] = value
    state = {"training": False, "_non_persistent_buffers_set": set(),
             "_parameters": OrderedDict((k, torch.nn.Parameter(v, requires_grad=False)) for k, v in own.items()
                                        if k not in _BUFFERS),
             "_buffers": OrderedDict((k, v) for k, v in own.items() if k in _BUFFERS),
             "_modules": OrderedDict((name, _module_tree(sub, _child_class(name), attributes))
                                     for name, sub in children.items()),
             **attributes.get(class_name, {})}
    return _Persistent(class_name, state)


def _child_class(name: str) -> str:
    if name.startswith("fc"):
        return "MappingFC"
    if name.startswith("b"):
        return "Block"
    return _CLASS_NAMES.get(name, "Layer")


def _write_nvidia_pickle(path: Path, networks: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``networks`` pickled with stand-ins for torch_utils.persistence and dnnlib registered only while writing."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # noqa: ANN001 - NVIDIA's name and signature
        raise AssertionError("only pickled here, never called")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__, EasyDict.__qualname__ = util.__name__, "EasyDict"
    persistence._reconstruct_persistent_obj, util.EasyDict = _reconstruct_persistent_obj, EasyDict
    with monkeypatch.context() as patch:
        for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                             ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
            patch.setitem(sys.modules, name, module)
        options = EasyDict(path="ffhq.zip", resolution=SIZE, xflip=np.bool_(True), mean=np.arange(3.0))  # numpy too
        content = {**networks, "training_set_kwargs": options, "augment_pipe": None}
        path.write_bytes(pickle.dumps(content, protocol=4))
    return path


def _nvidia_generator(tensors: dict[str, torch.Tensor], conv_clamp: float | None = None) -> _Persistent:
    attributes = {"MappingFC": {"bias_gain": 0.01, "activation": "lrelu"},
                  "SynthesisLayer": {"conv_clamp": conv_clamp, "activation": "lrelu"}}
    return _module_tree(tensors, "Generator", attributes)


@pytest.mark.parametrize("psi, noise_mode", [(1.0, "const"), (0.6, "const"), (0.7, "none")])
def test_nvidia_pickle_generator_matches_nvidias_arithmetic(tmp_path, monkeypatch, psi, noise_mode):
    tensors = nvidia_generator_tensors(SIZE, CHANNELS, STYLE_DIM, 2, seed=12)
    path = _write_nvidia_pickle(tmp_path / "network-snapshot-000400.pkl",
                                {"G": _nvidia_generator(nvidia_generator_tensors(SIZE, CHANNELS, STYLE_DIM, 2, 13)),
                                 "G_ema": _nvidia_generator(tensors, conv_clamp=256)}, monkeypatch)
    loaded = load_generator(path)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert loaded.arch_kwargs == {"size": SIZE, "style_dim": STYLE_DIM, "n_mlp": 2, "channels": CHANNELS,
                                  "lr_mlp": 0.01, "conv_clamp": 256.0}
    assert loaded.meta == {"format": "NVIDIA pickle", "weights": "G_ema", "w_avg": "stored"}
    z = _z(3)
    with torch.no_grad():
        image = loaded.model(z, truncation_psi=psi, noise=noise_mode)
    expected = nvidia_forward(tensors, z, psi, noise_mode)
    assert expected.std() > 0.1 and torch.allclose(image, expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_nvidia_pickle_discriminator_matches_nvidias_arithmetic(tmp_path, monkeypatch):
    d_tensors = nvidia_discriminator_tensors(SIZE, CHANNELS, seed=14)
    discriminator = _module_tree(d_tensors, "Discriminator", {})
    discriminator.state["_modules"]["b4"].state["_modules"]["mbstd"] = _Persistent("MinibatchStdLayer", {
        "training": False, "_parameters": OrderedDict(), "_buffers": OrderedDict(), "_modules": OrderedDict(),
        "group_size": 2, "num_channels": 1})
    generator = _nvidia_generator(nvidia_generator_tensors(SIZE, CHANNELS, STYLE_DIM, 2, 15))
    path = _write_nvidia_pickle(tmp_path / "snapshot.pkl", {"G_ema": generator, "D": discriminator}, monkeypatch)
    loaded = load_discriminator(path)
    assert loaded.arch_kwargs == {"size": SIZE, "channels": CHANNELS, "stddev_group": 2}
    images = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(16))
    with torch.no_grad():
        logits = loaded.model(images)
    expected = nvidia_discriminator_forward(d_tensors, images, group=2)
    assert expected.std() > 0.02 and torch.allclose(logits, expected, atol=1e-5, rtol=1e-5)


def test_a_stylegan3_pickle_is_refused_in_one_line(tmp_path, monkeypatch):
    tensors = {"mapping.fc0.weight": torch.randn(4, 4), "synthesis.input.affine.weight": torch.randn(4, 4)}
    path = _write_nvidia_pickle(tmp_path / "stylegan3-t.pkl", {"G_ema": _nvidia_generator(tensors)}, monkeypatch)
    with pytest.raises(GanslimError, match=r"holds a StyleGAN3 \(alias-free\) generator, not a StyleGAN2") as error:
        load_generator(path)
    _one_line(error)


class _RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _RunsACommand(marker)}))
    with pytest.raises(GanslimError) as error:
        load_generator(path)
    assert f"'{path}' needs {os.system.__module__}.system to unpickle, which ganslim refuses: a pickle can run " \
           f"code" in _one_line(error)
    assert not marker.exists()
    torch.save({"g_ema": _RunsACommand(marker)}, tmp_path / "evil.pt")  # the same payload in a torch file
    with pytest.raises(GanslimError, match="holds pickled Python objects.*which are never unpickled"):
        load_generator(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize("content, words", [
    ({"G_ema": torch.nn.Linear(2, 2)}, "needs torch.nn.modules.linear.Linear to unpickle, which ganslim refuses"),
    ({"G_ema": OrderedDict(weight=torch.zeros(2))}, "holds no NVIDIA generator \\(G_ema\\)"),
    (b"not a pickle at all", "cannot read .* as an NVIDIA network pickle"),
])
def test_other_pickles_are_one_line(tmp_path, content, words):
    path = tmp_path / "other.pkl"
    path.write_bytes(content if isinstance(content, bytes) else pickle.dumps(content))
    with pytest.raises(GanslimError, match=words) as error:
        load_generator(path)
    _one_line(error)
