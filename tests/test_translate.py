"""`ganslim translate` keeps the user's files safe: inputs never overwritten, inputs decoded before anything is
written, unwritable outputs in one line, the model's own size by default, a warning for non-finite outputs."""

from __future__ import annotations

import errno
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ganslim.outputs
from ganslim.apps.translate import translate_files
from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.errors import GanslimError

KWARGS = {"ngf": 4, "norm": "instance"}


@pytest.fixture
def generator() -> nn.Module:
    torch.manual_seed(0)
    return build_generator("resnet_6blocks", **KWARGS).eval()


def _images(folder, names, size=(24, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    return folder


def _snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(generator, inputs, output, words):
    with pytest.raises(GanslimError) as error:
        translate_files(generator, inputs, output, size=16, progress=False)
    message = str(error.value)
    assert words in message and "\n" not in message
    return message


@pytest.mark.parametrize("output", [".", "sub", "sub/deeper"])
def test_output_equal_to_or_inside_the_input_folder_is_refused(tmp_path, generator, output):
    inputs = _images(tmp_path / "in", ["a.png", "b.png"])
    _images(inputs / "sub", ["c.png"])
    before = _snapshot(inputs)
    _refused(generator, inputs, inputs / output, "inside --input")
    assert _snapshot(inputs) == before


def test_output_reaching_the_input_through_a_symlink_or_another_spelling_is_refused(tmp_path, generator,
                                                                                     monkeypatch):
    inputs = _images(tmp_path / "in", ["a.png"])
    (tmp_path / "link").symlink_to(inputs, target_is_directory=True)
    before = _snapshot(inputs)
    _refused(generator, inputs, tmp_path / "link", "inside --input")
    monkeypatch.chdir(tmp_path)
    _refused(generator, "in", tmp_path / "in" / ".." / "in", "inside --input")
    _refused(generator, str(inputs), "in/out", "inside --input")
    assert _snapshot(inputs) == before


def test_an_output_that_would_land_on_the_input_file_is_refused(tmp_path, generator):
    inputs = _images(tmp_path, ["photo.png"])
    before = (tmp_path / "photo.png").read_bytes()
    message = _refused(generator, tmp_path / "photo.png", tmp_path, "would overwrite the input")
    assert "photo.png" in message and (tmp_path / "photo.png").read_bytes() == before
    assert sorted(p.name for p in inputs.iterdir()) == ["photo.png"]


def test_a_jpg_next_to_the_input_folder_is_translated_without_touching_it(tmp_path, generator):
    _images(tmp_path, ["photo.jpg"])
    written = translate_files(generator, tmp_path / "photo.jpg", tmp_path, size=16, progress=False)
    assert written == [tmp_path / "photo.png"] and (tmp_path / "photo.jpg").is_file()


def test_two_inputs_with_one_output_name_are_refused(tmp_path, generator):
    inputs = _images(tmp_path / "in", ["a.png", "a.jpg"])
    _refused(generator, inputs, tmp_path / "out", "would both be written to")
    assert not (tmp_path / "out").exists()


def test_an_unreadable_input_stops_the_run_before_anything_is_written(tmp_path, generator):
    inputs = _images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    (inputs / "c.png").write_bytes((inputs / "c.png").read_bytes()[:60])
    _refused(generator, inputs, tmp_path / "out", "c.png")
    assert not (tmp_path / "out").exists()


def test_an_aligned_input_of_the_wrong_shape_stops_the_run_before_anything_is_written(tmp_path, generator):
    inputs = _images(tmp_path / "in", ["a.png", "b.png"], size=(32, 16))
    _images(inputs, ["c.png"], size=(20, 16))
    with pytest.raises(GanslimError, match="c.png' is 20x16.*drop --aligned"):
        translate_files(generator, inputs, tmp_path / "out", size=16, aligned=True, progress=False)
    assert not (tmp_path / "out").exists()


def test_an_output_that_is_a_file_is_one_line(tmp_path, generator):
    inputs = _images(tmp_path / "in", ["a.png"])
    (tmp_path / "out").write_text("notes")
    _refused(generator, inputs, tmp_path / "out", "is a file, not a folder")
    _refused(generator, inputs, tmp_path / "out" / "sub", "'" + str(tmp_path / "out") + "' is a file")
    assert (tmp_path / "out").read_text() == "notes"


def test_a_read_only_output_folder_is_one_line(tmp_path, generator, monkeypatch):
    inputs = _images(tmp_path / "in", ["a.png"])
    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(ganslim.outputs.os, "access", lambda path, mode: False)  # as for a non-root user
    _refused(generator, inputs, tmp_path / "locked" / "out", "is read-only")
    assert list((tmp_path / "locked").iterdir()) == []


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, generator, monkeypatch, capsys):
    ckpt = save_model(tmp_path / "g.pt", generator, "resnet_6blocks", KWARGS)
    inputs = _images(tmp_path / "in", ["a.png", "b.png"])
    save = Image.Image.save

    def disk_fills_up(self, fp, *args, **kwargs):
        save(self, fp, *args, **kwargs)
        if "b.png" in str(fp):
            with open(fp, "r+b") as file:
                file.truncate(10)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", disk_fills_up)
    assert main(["translate", "--ckpt", str(ckpt), "--input", str(inputs), "--output", str(tmp_path / "out"),
                 "--size", "16"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert error.startswith("ganslim translate: error: cannot write") and "b.png" in error
    assert "No space left on device" in error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]  # complete files only


class NaNGenerator(nn.Module):
    """Returns NaN for the first image of a batch and a valid grey image for the others."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        output = torch.zeros_like(image)
        output[0] = float("nan")
        return output


def test_non_finite_outputs_are_warned_about(tmp_path, caplog):
    inputs = _images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    with caplog.at_level(logging.WARNING, logger="ganslim.apps.translate"):
        translate_files(NaNGenerator(), inputs, tmp_path / "out", size=16, batch_size=2, progress=False)
    assert [record.getMessage() for record in caplog.records if "NaN" in record.getMessage()] == [
        "warning: the generator output NaN or infinite values for 2 of 3 image(s) (NaN pixels are written black): "
        "the checkpoint may be damaged or its training diverged"]
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).max() == 0


def test_finite_outputs_give_no_warning(tmp_path, generator, caplog):
    inputs = _images(tmp_path / "in", ["a.png"])
    with caplog.at_level(logging.WARNING, logger="ganslim.apps.translate"):
        translate_files(generator, inputs, tmp_path / "out", size=16, progress=False)
    assert caplog.records == []


@pytest.mark.parametrize("meta, flag, expected, words", [
    ({"crop_size": 16}, [], 16, "size 16x16 (the size g.pt was trained at)"),
    ({"crop_size": 16}, ["--size", "8"], 8, "size 8x8 (--size)"),
    ({}, [], 256, "size 256x256 (the default: no training size is recorded with the model)"),
])
def test_the_size_defaults_to_the_checkpoints_and_is_announced(tmp_path, generator, capsys, meta, flag, expected,
                                                               words):
    ckpt = save_model(tmp_path / "g.pt", generator, "resnet_6blocks", KWARGS, meta=meta)
    inputs = _images(tmp_path / "in", ["a.png"])
    assert main(["translate", "--ckpt", str(ckpt), "--input", str(inputs), "--output", str(tmp_path / "out"),
                 *flag]) == 0
    assert words in capsys.readouterr().err.splitlines()
    assert Image.open(tmp_path / "out" / "a.png").size == (expected, expected)
