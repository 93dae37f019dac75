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


# ----------------------------------------------------------------------------------------------------------
# Super-resolution: [0, 1] in and out, each image at its own size, tiles


SR_KWARGS = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


@pytest.fixture
def sr_checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_model(tmp_path / "RRDB.pt", build_generator("rrdbnet", **SR_KWARGS), "rrdbnet", SR_KWARGS)


def _translate(*args: str) -> int:
    return main(["translate", *args])


def _expected_sr_png(checkpoint, path) -> np.ndarray:
    """What BasicSR writes: x / 255 in, round(clamp(y, 0, 1) * 255) out."""
    from ganslim.checkpoints import load_generator

    image = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
    with torch.no_grad():
        output = load_generator(checkpoint).model(image[None])[0]
    return (output.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy()


def test_an_sr_checkpoint_writes_x4_pngs_of_each_inputs_own_size(tmp_path, sr_checkpoint, capsys):
    inputs = _images(tmp_path / "lr", ["a.png"], size=(12, 10))
    _images(inputs / "sub", ["b.jpg"], size=(8, 6))
    assert _translate("--ckpt", str(sr_checkpoint), "--input", str(inputs), "--output", str(tmp_path / "sr"),
                      "--scale", "4", "--batch-size", "2") == 0
    assert "size: each image's own (super-resolution models never resize their input)" in capsys.readouterr().err
    assert Image.open(tmp_path / "sr" / "a.png").size == (48, 40)
    assert Image.open(tmp_path / "sr" / "sub" / "b.png").size == (32, 24)
    for name, source in (("a.png", inputs / "a.png"), ("sub/b.png", inputs / "sub" / "b.jpg")):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "sr" / name)),
                                      _expected_sr_png(sr_checkpoint, source))


def test_tiled_translation_writes_the_untiled_pixels(tmp_path, sr_checkpoint):
    inputs = _images(tmp_path / "lr", ["a.png"], size=(20, 18))
    assert _translate("--ckpt", str(sr_checkpoint), "--input", str(inputs), "--output", str(tmp_path / "whole")) == 0
    assert _translate("--ckpt", str(sr_checkpoint), "--input", str(inputs), "--output", str(tmp_path / "tiled"),
                      "--tile", "8", "--tile-pad", "4") == 0
    whole = np.asarray(Image.open(tmp_path / "whole" / "a.png")).astype(int)
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "a.png")).astype(int)
    assert tiled.shape == (72, 80, 3) and np.abs(tiled - whole).max() <= 1  # see tests/test_tiling.py


@pytest.mark.parametrize("flags, message", [
    (["--size", "64"], "--size 64 does not apply: super-resolution models never resize their input (this x4 model "
                       "takes each image at its own size): drop --size"),
    (["--scale", "2"], "--scale 2 does not match checkpoint '{ckpt}', an x4 model: drop --scale or pass the x2 model"),
    (["--tile", "8", "--tile-pad", "11"], "image '{lr}/small.png' is 12x10 pixels, smaller than --tile-pad 11: it "
                                          "needs no tiles; translate it without --tile, or pass --tile-pad 10 or less"),
    (["--tile", "0"], None),
])
def test_sr_mistakes_are_one_line_and_write_nothing(tmp_path, sr_checkpoint, capsys, flags, message):
    inputs = _images(tmp_path / "lr", ["big.png"], size=(24, 24))
    _images(inputs, ["small.png"], size=(12, 10))
    code = _translate("--ckpt", str(sr_checkpoint), "--input", str(inputs), "--output", str(tmp_path / "sr"), *flags)
    if message is None:  # --tile 0 is the whole image, as in Real-ESRGAN
        assert code == 0 and sorted(p.name for p in (tmp_path / "sr").iterdir()) == ["big.png", "small.png"]
        return
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "ganslim translate: error: " + message.format(ckpt=sr_checkpoint, lr=inputs)
    assert not (tmp_path / "sr").exists()


def test_an_x2_model_refuses_an_odd_image_and_translators_refuse_tiles(tmp_path, generator):
    kwargs = {**SR_KWARGS, "scale": 2}
    x2 = build_generator("rrdbnet", **kwargs)
    inputs = _images(tmp_path / "lr", ["a.png"], size=(12, 9))
    with pytest.raises(GanslimError, match=r"image '.*a.png': its side 9 does not fit this generator, which takes "
                                           r"image sides that are multiples of 2: use 8 or 10"):
        translate_files(x2, inputs, tmp_path / "sr", progress=False)
    with pytest.raises(GanslimError, match="--tile applies to super-resolution models only"):
        translate_files(generator, inputs, tmp_path / "out", size=16, tile=8, progress=False)
    with pytest.raises(GanslimError, match=r"an image-to-image model takes its inputs resized: pass a size"):
        translate_files(generator, inputs, tmp_path / "out", progress=False)
    assert not (tmp_path / "sr").exists() and not (tmp_path / "out").exists()
