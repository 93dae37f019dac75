"""The ganslim checkpoint format: round trips, atomicity, safety and one-line errors."""

import pickle

import pytest
import torch

from ganslim.archs import build_generator
from ganslim.checkpoints import load_generator, resolve_generator_file, save_model
from ganslim.checkpoints.format import FORMAT_VERSION, read_checkpoint
from ganslim.errors import GanslimError

KWARGS = {"ngf": 8, "norm": "instance"}


@pytest.fixture
def generator():
    torch.manual_seed(0)
    return build_generator("resnet_6blocks", **KWARGS).eval()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_rebuilds_identical_model(tmp_path, generator, suffix):
    path = save_model(tmp_path / f"g{suffix}", generator, "resnet_6blocks", KWARGS, meta={"steps": 3})
    loaded = load_generator(path)
    assert (loaded.arch, loaded.arch_kwargs, loaded.source, loaded.meta) == (
        "resnet_6blocks", KWARGS, "ganslim", {"steps": 3})
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.model(image), generator(image))
    assert not loaded.model.training


def test_torch_file_is_a_versioned_plain_dict(tmp_path, generator):
    path = save_model(tmp_path / "g.pt", generator, "resnet_6blocks", KWARGS)
    content = torch.load(path, weights_only=True)
    assert content["format"] == "ganslim" and content["format_version"] == FORMAT_VERSION
    assert set(content["state_dict"]) == set(generator.state_dict())
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"], "no temporary file may remain"


def test_failed_write_leaves_previous_file_intact(tmp_path, generator, monkeypatch):
    path = save_model(tmp_path / "g.pt", generator, "resnet_6blocks", KWARGS, meta={"version": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_model(path, generator, "resnet_6blocks", KWARGS, meta={"version": 2})
    assert load_generator(path).meta == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(GanslimError, match="weights-only"):
        read_checkpoint(path)


def test_missing_file_and_wrong_kind(tmp_path, generator):
    with pytest.raises(GanslimError, match="not found"):
        load_generator(tmp_path / "nope.pt")
    path = save_model(tmp_path / "d.pt", generator, "resnet_6blocks", KWARGS, kind="discriminator")
    with pytest.raises(GanslimError, match="holds a discriminator"):
        load_generator(path)


def test_mismatched_weights_are_one_line(tmp_path, generator):
    path = save_model(tmp_path / "g.pt", generator, "resnet_6blocks", {**KWARGS, "ngf": 16})
    with pytest.raises(GanslimError) as error:
        load_generator(path)
    assert "does not match resnet_6blocks" in str(error.value) and "\n" not in str(error.value)


def test_folder_resolution_by_direction(tmp_path, generator):
    for name in ("latest_net_G_A.pth", "latest_net_G_B.pth"):
        torch.save(generator.state_dict(), tmp_path / name)
    assert resolve_generator_file(tmp_path, "AtoB").name == "latest_net_G_A.pth"
    assert resolve_generator_file(tmp_path, "BtoA").name == "latest_net_G_B.pth"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GanslimError, match="no generator checkpoint"):
        resolve_generator_file(empty, "AtoB")
