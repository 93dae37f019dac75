"""ganslim.data.validate: every file decoded once, remembered by size and modification time, cache never required."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganslim.data.validate as validate
from ganslim.data.validate import CACHE_FILE, cache_dir, image_sizes
from ganslim.errors import GanslimError


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("GANSLIM_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """The files ``image_sizes`` decodes, in order."""
    seen: list[str] = []
    load = validate.load_image

    def counting(path, *args):
        seen.append(Path(path).name)
        return load(path, *args)

    monkeypatch.setattr(validate, "load_image", counting)
    return seen


def _images(folder: Path, sizes: list[tuple[int, int]], suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index, (width, height) in enumerate(sizes):
        paths.append(folder / f"{index}{suffix}")
        Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def test_cache_folder_follows_ganslim_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("GANSLIM_CACHE_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "own"
    monkeypatch.delenv("GANSLIM_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "ganslim"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "ganslim"


def test_sizes_are_decoded_once_then_read_from_the_cache(tmp_path, cache, decodes):
    paths = _images(tmp_path / "data", [(8, 4), (6, 6), (10, 5)])
    assert image_sizes(paths) == [(8, 4), (6, 6), (10, 5)]
    assert decodes == ["0.png", "1.png", "2.png"]
    assert image_sizes(paths) == [(8, 4), (6, 6), (10, 5)] and len(decodes) == 3  # warm: nothing decoded
    recorded = json.loads((cache / CACHE_FILE).read_text())["files"]
    assert recorded[os.path.abspath(paths[1])][2:] == [6, 6]


def test_a_changed_file_is_decoded_again(tmp_path, cache, decodes):
    paths = _images(tmp_path / "data", [(8, 4), (6, 6)])
    image_sizes(paths)
    _images(tmp_path / "data", [(8, 4), (12, 6)])  # rewrites both; only 1.png changes size
    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert image_sizes(paths) == [(8, 4), (12, 6)]
    assert decodes == ["0.png", "1.png", "0.png", "1.png"]


def test_a_truncated_jpeg_is_caught_by_the_full_decode(tmp_path, cache):
    path = _images(tmp_path / "data", [(64, 64)], suffix=".jpg")[0]
    path.write_bytes(path.read_bytes()[:-1000])
    with Image.open(path) as image:
        image.verify()  # what a header check would accept
    with pytest.raises(GanslimError, match=f"cannot read image '{path}'"):
        image_sizes([path])


def test_every_bad_file_is_counted_and_good_ones_remembered(tmp_path, cache, decodes):
    paths = _images(tmp_path / "data", [(4, 4)] * 4)
    for bad in paths[1:3]:
        bad.write_bytes(b"broken")
    with pytest.raises(GanslimError) as error:
        image_sizes(paths)
    message = str(error.value)
    assert str(paths[1]) in message and "(1 more of the 4 images cannot be read)" in message
    decodes.clear()
    with pytest.raises(GanslimError):
        image_sizes(paths)
    assert decodes == ["1.png", "2.png"]  # the good files were remembered, the bad ones never are


def test_an_unusable_cache_only_costs_decoding(tmp_path, monkeypatch, decodes):
    paths = _images(tmp_path / "data", [(4, 4)])
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    monkeypatch.setenv("GANSLIM_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    assert image_sizes(paths) == [(4, 4)] and image_sizes(paths) == [(4, 4)]
    assert len(decodes) == 2
    monkeypatch.setenv("GANSLIM_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    for damaged in ("{not json", json.dumps({"version": 1, "files": {str(paths[0]): "x"}}), "[]"):
        (tmp_path / "cache" / CACHE_FILE).write_text(damaged)
        assert image_sizes(paths) == [(4, 4)]
