"""Built-in demo datasets (ganslim.data.builtin): deterministic, correct layouts, safe to interrupt."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from ganslim.data import (AlignedDataset, HRFolderDataset, SingleImageDataset, UnalignedDataset, detect_layout,
                          list_builtin, make_builtin)
from ganslim.data import builtin
from ganslim.errors import GanslimError

NAMES = [name for name, _ in list_builtin() if name != "labels2scene"]  # label maps: tests/test_spade.py
SIZE, COUNT = 32, 4  # val/test get max(1, 4 // 8) = 1 image


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_list_builtin_has_paired_default_photo_and_unpaired_tasks():
    described = dict(list_builtin())
    assert builtin.DEFAULT_BUILTIN in described
    assert {"shapes2render", "degraded2photo", "flat2striped"} <= set(described)
    assert all(description and "\n" not in description for description in described.values())


@pytest.mark.parametrize("name", NAMES)
def test_builtin_is_deterministic_with_reference_layout(tmp_path, name):
    first = make_builtin(name, tmp_path / "one", size=SIZE, count=COUNT)
    second = make_builtin(name, tmp_path / "two", size=SIZE, count=COUNT)
    assert _digest(first) == _digest(second), "same bytes on every build"

    info = json.loads((first / builtin.INFO_FILE).read_text())
    assert info["name"] == name and info["size"] == SIZE
    layout = info["layout"]
    # SR folders of HR images look like aligned ones; an images/ folder is a folder of single images.
    assert detect_layout(first) == {"sr": "aligned", "images": "single"}.get(layout, layout)
    if layout == "aligned":
        expected = {"train": COUNT, "val": 1, "test": 1}
        image_size = (2 * SIZE, SIZE)
    elif layout == "sr":
        expected = {"train": COUNT, "val": 1, "test": 1}
        image_size = (SIZE, SIZE)
    elif layout == "images":
        expected = {"images": COUNT}
        image_size = (SIZE, SIZE)
    else:
        expected = {"trainA": COUNT, "trainB": COUNT, "testA": 1, "testB": 1}
        image_size = (SIZE, SIZE)
    folders = {p.name: sorted(p.iterdir()) for p in first.iterdir() if p.is_dir()}
    assert {folder: len(files) for folder, files in folders.items()} == expected == info["splits"]
    for files in folders.values():
        for path in files:
            with Image.open(path) as image:
                assert image.format == "PNG" and image.mode == "RGB" and image.size == image_size

    if layout == "sr":
        item = HRFolderDataset(first / "train", scale=4, gt_size=SIZE)[0]
        assert item["gt"].shape == (3, SIZE, SIZE) and item["lq"].shape == (3, SIZE // 4, SIZE // 4)
        return
    if layout == "images":
        assert SingleImageDataset(first / "images", load_size=SIZE)[0]["image"].shape == (3, SIZE, SIZE)
        return
    dataset_class = AlignedDataset if layout == "aligned" else UnalignedDataset
    item = dataset_class(first, load_size=SIZE, crop_size=SIZE)[0]
    assert item["A"].shape == item["B"].shape == (3, SIZE, SIZE)


def test_smaller_count_is_a_prefix_of_larger(tmp_path):
    small = _digest(make_builtin("shapes2render", tmp_path / "small", size=SIZE, count=2))
    large = _digest(make_builtin("shapes2render", tmp_path / "large", size=SIZE, count=3))
    assert small["train/0000.png"] == large["train/0000.png"]
    assert small["train/0001.png"] == large["train/0001.png"]
    assert small["test/0000.png"] == large["test/0000.png"]


def test_shapes2render_pairs_outlines_with_shaded_kind_colors(tmp_path):
    root = make_builtin("shapes2render", tmp_path / "shapes", size=64, count=6)
    for path in sorted((root / "train").iterdir()):
        pair = np.asarray(Image.open(path)).astype(int)
        outline, render = pair[:, :64], pair[:, 64:]
        assert set(np.unique(outline).tolist()) == {0, 255}, "A is black lines on white"
        inside = (render != 255).any(axis=2)
        assert inside.any() and (outline[inside] == 0).any()
        # Every rendered pixel is one kind's color scaled by a brightness in [0.35, 1].
        colors = np.array(list(builtin.KIND_COLORS.values()), dtype=float)
        pixels = render[inside].astype(float)
        scale = pixels.max(axis=1, keepdims=True) / colors.max(axis=1)[None, :]
        error = np.abs(pixels[:, None, :] - scale[..., None] * colors[None]).max(axis=2)
        assert (error.min(axis=1) <= 2).all()


def test_degraded2photo_inputs_are_gray_and_splits_use_disjoint_regions(tmp_path):
    root = make_builtin("degraded2photo", tmp_path / "photos", size=SIZE, count=2)
    pair = np.asarray(Image.open(root / "train" / "0000.png"))
    degraded, clean = pair[:, :SIZE], pair[:, SIZE:]
    assert (degraded[..., 0] == degraded[..., 1]).all() and (degraded[..., 1] == degraded[..., 2]).all()
    assert not (clean[..., 0] == clean[..., 1]).all(), "B keeps its colors"
    regions = builtin.PHOTO_REGIONS
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        (l1, t1, r1, b1), (l2, t2, r2, b2) = regions[a], regions[b]
        assert min(r1, r2) <= max(l1, l2) or min(b1, b2) <= max(t1, t2), f"{a} and {b} overlap"


def test_flat2striped_a_is_flat_b_is_striped(tmp_path):
    root = make_builtin("flat2striped", tmp_path / "cyc", size=64, count=3)
    for index in range(3):
        flat = np.asarray(Image.open(root / "trainA" / f"{index:04d}.png")).reshape(-1, 3)
        striped = np.asarray(Image.open(root / "trainB" / f"{index:04d}.png")).reshape(-1, 3)
        # flat: background + one color per shape (at most 4); striped: two tones per shape.
        assert len(np.unique(flat, axis=0)) <= 5
        assert len(np.unique(striped, axis=0)) >= 3


def test_faces_are_the_lfw_faces_upscaled_and_augmented_at_64_px(tmp_path):
    root = make_builtin("faces", tmp_path / "faces", count=201)
    assert json.loads((root / builtin.INFO_FILE).read_text())["size"] == 64  # the dataset's default size
    faces = [np.asarray(Image.open(root / "images" / f"{index:04d}.png")).astype(float) for index in (0, 1, 200)]
    assert all(face.shape == (64, 64, 3) and (face[..., 0] == face[..., 2]).all() for face in faces), "gray RGB"
    small = [np.asarray(Image.fromarray(face.astype(np.uint8)).convert("L").resize((25, 25), Image.BICUBIC))
             for face in faces]
    lfw = skimage.data.lfw_subset()
    # Image i shows face i % 200, zoomed at most 15 % and shifted, maybe mirrored: it correlates best with it.
    for image, index in zip(small, (0, 1, 0)):
        scores = [max(np.corrcoef(image.ravel(), view.ravel())[0, 1] for view in (face, face[:, ::-1]))
                  for face in lfw[:10]]
        assert int(np.argmax(scores)) == index and scores[index] > 0.7


def test_blobs_are_colourful_gradients_with_shapes(tmp_path):
    root = make_builtin("blobs", tmp_path / "blobs", size=SIZE, count=3)
    for index in range(3):
        image = np.asarray(Image.open(root / "images" / f"{index:04d}.png")).astype(int)
        assert image.shape == (SIZE, SIZE, 3)
        assert np.abs(image[..., 0] - image[..., 1]).mean() > 10, "colour, not gray"
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100, "gradients and soft edges"


def test_refuses_non_empty_target_and_accepts_empty_one(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(GanslimError) as excinfo:
        make_builtin("shapes2render", target, size=SIZE, count=1)
    message = str(excinfo.value)
    assert str(target) in message and "not empty" in message and "\n" not in message
    assert [p.name for p in target.iterdir()] == ["keep.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert (make_builtin("shapes2render", empty, size=SIZE, count=1) / "train" / "0000.png").is_file()


def test_interrupted_build_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = []

    def failing_save(array, path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        Image.fromarray(array).save(path, format="PNG")

    monkeypatch.setattr(builtin, "_save_png", failing_save)
    with pytest.raises(KeyboardInterrupt):
        make_builtin("shapes2render", tmp_path / "data", size=SIZE, count=COUNT)
    assert list(tmp_path.iterdir()) == [], "no target and no partial folder left behind"


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def disk_fills_up(array, path):
        calls.append(path)
        if len(calls) == 3:
            path.write_bytes(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        Image.fromarray(array).save(path, format="PNG")

    monkeypatch.setattr(builtin, "_save_png", disk_fills_up)
    with pytest.raises(GanslimError) as excinfo:
        make_builtin("shapes2render", tmp_path / "data", size=SIZE, count=COUNT)
    message = str(excinfo.value)
    assert message == f"cannot write '{tmp_path / 'data'}' (No space left on device): free some disk space or write " \
                      "elsewhere"
    assert list(tmp_path.iterdir()) == []


def test_a_target_that_is_a_file_or_in_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "data").write_text("mine")
    with pytest.raises(GanslimError, match="dataset folder '.*data' is a file, not a folder"):
        make_builtin("shapes2render", tmp_path / "data", size=SIZE, count=1)
    assert (tmp_path / "data").read_text() == "mine"
    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # what a non-root user meets
    with pytest.raises(GanslimError, match="'.*locked' is read-only"):
        make_builtin("shapes2render", tmp_path / "locked" / "data", size=SIZE, count=1)
    assert list((tmp_path / "locked").iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(name="edges2cats"), "unknown built-in dataset 'edges2cats'"),
        (dict(size=30), "size=30"),
        (dict(size=16), "size=16"),
        (dict(count=0), "count=0"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, words):
    arguments = dict(name="shapes2render", out_dir=tmp_path / "x", size=SIZE, count=1) | kwargs
    with pytest.raises(GanslimError) as excinfo:
        make_builtin(**arguments)
    assert words in str(excinfo.value)
    assert not (tmp_path / "x").exists()
