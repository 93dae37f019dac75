"""The ganslim checkpoint format: round trips, atomicity, safety and one-line errors."""

import errno
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

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


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_full_disk_is_one_line_and_leaves_previous_file_intact(tmp_path, generator, monkeypatch, suffix):
    path = save_model(tmp_path / f"g{suffix}", generator, "resnet_6blocks", KWARGS, meta={"version": 1})
    write_bytes = Path.write_bytes

    def disk_fills_up(self, data):
        write_bytes(self, bytes(data)[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", disk_fills_up)
    with pytest.raises(GanslimError) as error:
        save_model(path, generator, "resnet_6blocks", KWARGS, meta={"version": 2})
    monkeypatch.undo()
    message = str(error.value)
    assert str(path) in message and "No space left on device" in message and "\n" not in message
    assert load_generator(path).meta == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no partial file may remain"


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(GanslimError, match="weights-only"):
        read_checkpoint(path)


class Custom:
    """An object torch.save pickles by reference to its class."""


def test_refused_pickle_is_named_without_torchs_advice_to_unpickle_it(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"weights": torch.zeros(2), "extra": Custom()}, path)
    with pytest.raises(GanslimError) as error:
        load_generator(path)
    message = str(error.value)
    assert "pickled Python objects" in message and "Custom" in message and str(path) in message
    assert "weights_only" not in message and "trust" not in message and "\n" not in message


def test_foreign_safetensors_metadata_is_read_as_a_plain_state_dict(tmp_path, generator):
    path = tmp_path / "model.safetensors"
    save_file(generator.state_dict(), str(path), metadata={"format": "pt"})
    assert set(read_checkpoint(path)) == set(generator.state_dict())
    loaded = load_generator(path)
    assert (loaded.source, loaded.arch) == ("reference", "resnet_6blocks")
    assert loaded.arch_kwargs["ngf"] == 8


def test_malformed_ganslim_safetensors_header_is_one_line(tmp_path, generator):
    path = tmp_path / "broken.safetensors"
    save_file(generator.state_dict(), str(path), metadata={"format": json.dumps("ganslim"), "format_version": "1",
                                                           "arch_kwargs": "{ngf: 8"})
    with pytest.raises(GanslimError) as error:
        load_generator(path)
    message = str(error.value)
    assert "damaged ganslim header" in message and "'arch_kwargs'" in message and "\n" not in message


def _save_header(path, generator, **changes):
    content = {"format": "ganslim", "format_version": FORMAT_VERSION, "kind": "generator",
               "arch": "resnet_6blocks", "arch_kwargs": KWARGS, "meta": {},
               "state_dict": generator.state_dict(), **changes}
    torch.save(content, path)
    return path


@pytest.mark.parametrize("changes, words", [
    ({"arch_kwargs": {"ngf": "wide", "norm": "instance"}}, "cannot be rebuilt as resnet_6blocks"),
    ({"arch_kwargs": {"ngf": 8, "bogus": 1}}, "takes no bogus"),
    ({"arch_kwargs": [["ngf", 8]]}, "arch_kwargs is [['ngf', 8]]"),
    ({"arch": ["resnet_6blocks"]}, "arch is ['resnet_6blocks']"),
    ({"kind": "tree"}, "kind is 'tree'"),
    ({"meta": "trained"}, "meta is 'trained'"),
])
def test_malformed_header_fields_are_one_line(tmp_path, generator, changes, words):
    path = _save_header(tmp_path / "g.pt", generator, **changes)
    with pytest.raises(GanslimError) as error:
        load_generator(path)
    message = str(error.value)
    assert words in message and str(path) in message and "\n" not in message


@pytest.mark.parametrize("version", ["1", 1.0, None, True])
def test_format_version_that_is_not_a_number_is_called_damaged(tmp_path, generator, version):
    path = _save_header(tmp_path / "g.pt", generator, format_version=version)
    with pytest.raises(GanslimError) as error:
        load_generator(path)
    message = str(error.value)
    assert f"format_version {version!r}" in message and "upgrade" not in message


def test_newer_format_version_asks_for_an_upgrade(tmp_path, generator):
    path = _save_header(tmp_path / "g.pt", generator, format_version=FORMAT_VERSION + 1)
    with pytest.raises(GanslimError, match="upgrade ganslim"):
        load_generator(path)


def test_trained_size_comes_from_the_exported_meta(tmp_path, generator):
    assert load_generator(save_model(tmp_path / "a.pt", generator, "resnet_6blocks", KWARGS,
                                     meta={"crop_size": 128})).trained_size == 128
    assert load_generator(save_model(tmp_path / "b.pt", generator, "resnet_6blocks", KWARGS)).trained_size is None
    torch.save(generator.state_dict(), tmp_path / "latest_net_G.pth")
    assert load_generator(tmp_path / "latest_net_G.pth").trained_size is None


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
