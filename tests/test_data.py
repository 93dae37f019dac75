"""Datasets, preprocessing, image listing and tensor <-> image conversion (ganslim.data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ganslim.data import (
    AlignedDataset,
    Preprocess,
    SingleImageDataset,
    UnalignedDataset,
    detect_layout,
    image_to_tensor,
    list_images,
    save_image,
    tensor_to_image,
)
from ganslim.errors import GanslimError


def _noise(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _aligned_root(tmp_path: Path, count: int = 3, side: int = 24, split: str = "train") -> Path:
    """Aligned dataset whose A (left) and B (right) halves are different noise images."""
    root = tmp_path / "aligned"
    for index in range(count):
        pair = np.concatenate([_noise(index, side, side), _noise(100 + index, side, side)], axis=1)
        _save(pair, root / split / f"{index:03d}.png")
    return root


def _unaligned_root(tmp_path: Path, count_a: int = 3, count_b: int = 5, side: int = 20) -> Path:
    root = tmp_path / "unaligned"
    for split in ("train", "test"):
        for index in range(count_a):
            _save(_noise(index, side, side), root / f"{split}A" / f"a{index}.png")
        for index in range(count_b):
            _save(_noise(50 + index, side, side), root / f"{split}B" / f"b{index}.png")
    return root


def _error_message(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, "GanslimError messages are one line"
    return message


# ---------------------------------------------------------------- aligned


def test_aligned_items_have_shapes_ranges_and_paths(tmp_path):
    root = _aligned_root(tmp_path)
    dataset = AlignedDataset(root, load_size=20, crop_size=16)
    assert len(dataset) == 3
    item = dataset[1]
    assert item["A"].shape == item["B"].shape == (3, 16, 16)
    assert item["A"].dtype == torch.float32
    for key in ("A", "B"):
        assert -1.0 <= item[key].min() and item[key].max() <= 1.0
    assert item["A_path"] == item["B_path"] == str(root / "train" / "001.png")
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch["A"].shape == (2, 3, 16, 16) and len(batch["A_path"]) == 2


def _find_window(source: np.ndarray, window: np.ndarray) -> set[tuple[int, int, bool]]:
    """Every (x, y, flipped) where ``window`` equals a (mirrored) crop of ``source``."""
    size = window.shape[0]
    hits = set()
    for y in range(source.shape[0] - size + 1):
        for x in range(source.shape[1] - size + 1):
            crop = source[y : y + size, x : x + size]
            for flipped, candidate in ((False, crop), (True, crop[:, ::-1])):
                if np.array_equal(candidate, window):
                    hits.add((x, y, flipped))
    return hits


def test_aligned_halves_get_the_same_crop_and_flip(tmp_path):
    half = _noise(7, 24, 24)
    root = tmp_path / "same"
    _save(np.concatenate([half, half], axis=1), root / "train" / "pair.png")
    dataset = AlignedDataset(root, preprocess="crop", crop_size=16, flip=True, seed=3)
    expected_half = image_to_tensor(Image.fromarray(half)).numpy().transpose(1, 2, 0)
    draws = set()
    for epoch in range(12):
        dataset.set_epoch(epoch)
        item = dataset[0]
        assert torch.equal(item["A"], item["B"])
        hits = _find_window(expected_half, item["A"].numpy().transpose(1, 2, 0))
        assert len(hits) == 1, "the item must be exactly one (mirrored) 16x16 window of the half"
        draws |= hits
    assert len({(x, y) for x, y, _ in draws}) > 1, "crop positions vary across epochs"
    assert {flipped for _, _, flipped in draws} == {False, True}, "both flip states occur"


def test_aligned_direction_swaps_a_and_b(tmp_path):
    root = _aligned_root(tmp_path, count=1)
    kwargs = dict(preprocess="none", flip=False)
    forward = AlignedDataset(root, direction="AtoB", **kwargs)[0]
    backward = AlignedDataset(root, direction="BtoA", **kwargs)[0]
    assert torch.equal(forward["A"], backward["B"]) and torch.equal(forward["B"], backward["A"])
    left = image_to_tensor(Image.fromarray(_noise(0, 24, 24)))
    assert torch.equal(forward["A"], left)


def test_aligned_grayscale_channels_follow_direction(tmp_path):
    root = _aligned_root(tmp_path, count=1)
    item = AlignedDataset(root, direction="BtoA", preprocess="none", flip=False, input_nc=1, output_nc=3)[0]
    assert item["A"].shape == (1, 24, 24) and item["B"].shape == (3, 24, 24)
    right = Image.fromarray(_noise(100, 24, 24))
    assert torch.equal(item["A"], image_to_tensor(right.convert("L")))


def test_aligned_is_deterministic_per_seed_epoch_and_index(tmp_path):
    root = _aligned_root(tmp_path, count=4)

    def items(seed: int, epoch: int, order: list[int]) -> dict[int, torch.Tensor]:
        dataset = AlignedDataset(root, load_size=22, crop_size=16, seed=seed)
        dataset.set_epoch(epoch)
        return {index: dataset[index]["A"] for index in order}

    reference = items(seed=5, epoch=2, order=[0, 1, 2, 3])
    shuffled = items(seed=5, epoch=2, order=[3, 1, 0, 2])
    assert all(torch.equal(reference[i], shuffled[i]) for i in range(4)), "order-independent and repeatable"
    other_epoch = items(seed=5, epoch=3, order=[0, 1, 2, 3])
    other_seed = items(seed=6, epoch=2, order=[0, 1, 2, 3])
    assert any(not torch.equal(reference[i], other_epoch[i]) for i in range(4))
    assert any(not torch.equal(reference[i], other_seed[i]) for i in range(4))


def test_aligned_max_items_and_negative_index(tmp_path):
    root = _aligned_root(tmp_path, count=4)
    dataset = AlignedDataset(root, preprocess="none", flip=False, max_items=2)
    assert len(dataset) == 2
    assert torch.equal(dataset[-1]["A"], dataset[1]["A"])
    with pytest.raises(IndexError):
        dataset[2]


# ---------------------------------------------------------------- preprocessing


def test_normalisation_maps_0_255_to_minus_one_one():
    image = Image.fromarray(np.array([[[0, 128, 255]]], dtype=np.uint8))
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 1, 1)
    expected = torch.tensor([-1.0, (128 / 255 - 0.5) / 0.5, 1.0])
    assert torch.allclose(tensor.flatten(), expected, atol=1e-6)


@pytest.mark.parametrize(
    "mode, size, load, crop, expected",
    [
        ("resize_and_crop", (40, 20), 30, 24, (24, 24)),
        ("crop", (40, 20), 30, 16, (16, 16)),
        ("scale_width", (40, 20), 32, 8, (32, 16)),
        ("scale_width", (40, 20), 32, 24, (32, 24)),  # height raised to crop_size, as the reference
        ("scale_width_and_crop", (40, 20), 32, 12, (12, 12)),
        ("none", (30, 18), 99, 99, (32, 16)),  # 18 / 4 = 4.5 rounds half to even -> 16
    ],
)
def test_preprocess_modes_give_reference_sizes(mode, size, load, crop, expected):
    preprocess = Preprocess(mode, load, crop, flip=True)
    image = Image.fromarray(_noise(0, size[1], size[0]))
    draw = preprocess.sample(np.random.default_rng(0), image.size)
    assert preprocess.apply(image, draw).size == expected


def test_resize_is_pil_bicubic():
    image = Image.fromarray(_noise(1, 20, 30))
    preprocess = Preprocess("resize_and_crop", 16, 16, flip=False)
    resized = preprocess.apply(image, preprocess.sample(np.random.default_rng(0), image.size))
    assert np.array_equal(np.asarray(resized), np.asarray(image.resize((16, 16), Image.BICUBIC)))


def test_flip_disabled_never_mirrors():
    image = Image.fromarray(_noise(2, 8, 8))
    preprocess = Preprocess("crop", 8, 8, flip=False)
    for seed in range(8):
        out = preprocess.apply(image, preprocess.sample(np.random.default_rng(seed), image.size))
        assert np.array_equal(np.asarray(out), np.asarray(image))


# ---------------------------------------------------------------- unaligned


def test_unaligned_length_shapes_and_serial_pairing(tmp_path):
    root = _unaligned_root(tmp_path, count_a=3, count_b=5)
    dataset = UnalignedDataset(root, load_size=18, crop_size=16, serial_batches=True, output_nc=1)
    assert len(dataset) == 5
    for index in range(5):
        item = dataset[index]
        assert item["A"].shape == (3, 16, 16) and item["B"].shape == (1, 16, 16)
        assert Path(item["A_path"]).name == f"a{index % 3}.png"
        assert Path(item["B_path"]).name == f"b{index % 5}.png"
        assert -1 <= item["A"].min() and item["B"].max() <= 1


def test_unaligned_random_pairing_is_seeded(tmp_path):
    root = _unaligned_root(tmp_path, count_a=3, count_b=5)

    def pairing(seed: int, epoch: int) -> list[str]:
        dataset = UnalignedDataset(root, load_size=20, crop_size=16, seed=seed)
        dataset.set_epoch(epoch)
        return [dataset[i]["B_path"] for i in range(len(dataset))]

    assert pairing(0, 0) == pairing(0, 0)
    epochs = {tuple(pairing(0, epoch)) for epoch in range(6)}
    assert len(epochs) > 1, "B is re-drawn each epoch"
    all_b = {p for combo in epochs for p in combo}
    assert all_b <= {str(root / "trainB" / f"b{i}.png") for i in range(5)}


def test_unaligned_direction_and_test_split(tmp_path):
    root = _unaligned_root(tmp_path, count_a=3, count_b=5)
    dataset = UnalignedDataset(root, split="test", direction="BtoA", serial_batches=True, preprocess="none")
    item = dataset[4]
    assert item["A_path"] == str(root / "testB" / "b4.png")
    assert item["B_path"] == str(root / "testA" / "a1.png")


# ---------------------------------------------------------------- single images


def test_single_image_dataset_resizes_without_crop_or_flip(tmp_path):
    array = _noise(3, 20, 30)
    path = _save(array, tmp_path / "one.jpg")
    dataset = SingleImageDataset(path, load_size=16)
    assert len(dataset) == 1
    item = dataset[0]
    assert item["path"] == str(path)
    expected = image_to_tensor(Image.open(path).convert("RGB").resize((16, 16), Image.BICUBIC))
    assert torch.equal(item["image"], expected)


def test_single_image_dataset_folder_keep_size_and_gray(tmp_path):
    _save(_noise(0, 18, 30), tmp_path / "imgs" / "b.png")
    _save(_noise(1, 16, 16), tmp_path / "imgs" / "a.png")
    dataset = SingleImageDataset(tmp_path / "imgs", load_size=None, input_nc=1)
    assert [Path(dataset[i]["path"]).name for i in range(2)] == ["a.png", "b.png"]
    assert dataset[0]["image"].shape == (1, 16, 16)
    assert dataset[1]["image"].shape == (1, 16, 32)


# ---------------------------------------------------------------- listing and layouts


def test_list_images_is_recursive_sorted_and_case_insensitive(tmp_path):
    for name in ("b.PNG", "sub/a.JpG", "c.webp", "d.TIFF", "notes.txt", "e.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert names == ["b.PNG", "c.webp", "d.TIFF", "sub/a.JpG"]


def test_detect_layout(tmp_path):
    assert detect_layout(_aligned_root(tmp_path)) == "aligned"
    assert detect_layout(_unaligned_root(tmp_path)) == "unaligned"
    image = _save(_noise(0, 8, 8), tmp_path / "photos" / "x.png")
    assert detect_layout(tmp_path / "photos") == "single"
    assert detect_layout(image) == "single"
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanslimError) as excinfo:
        detect_layout(tmp_path / "empty")
    assert str(tmp_path / "empty") in _error_message(excinfo)
    with pytest.raises(GanslimError) as excinfo:
        detect_layout(tmp_path / "missing")
    assert str(tmp_path / "missing") in _error_message(excinfo)


# ---------------------------------------------------------------- bad data


def test_missing_aligned_split_names_folder_and_layout(tmp_path):
    root = _aligned_root(tmp_path, split="train")
    with pytest.raises(GanslimError) as excinfo:
        AlignedDataset(root, split="val")
    message = _error_message(excinfo)
    assert str(root / "val") in message and "train/ val/ test/" in message


def test_missing_unaligned_folder_names_it(tmp_path):
    root = tmp_path / "cyc"
    _save(_noise(0, 8, 8), root / "trainA" / "a.png")
    with pytest.raises(GanslimError) as excinfo:
        UnalignedDataset(root)
    message = _error_message(excinfo)
    assert str(root / "trainB") in message and "trainA/ trainB/" in message


def test_folder_without_images(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "readme.txt").write_text("no images")
    with pytest.raises(GanslimError) as excinfo:
        AlignedDataset(tmp_path / "data")
    assert f"no images in '{tmp_path / 'data' / 'train'}'" in _error_message(excinfo)


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
@pytest.mark.parametrize("build", [
    lambda root: AlignedDataset(root, load_size=20, crop_size=16),
    lambda root: SingleImageDataset(root / "train"),
], ids=["aligned", "single"])
def test_corrupt_image_is_named_when_the_dataset_is_built(tmp_path, content, build):
    root = _aligned_root(tmp_path, count=3)
    bad = root / "train" / "001.png"
    bad.write_bytes(content if isinstance(content, bytes) else bad.read_bytes()[:200])
    with pytest.raises(GanslimError) as excinfo:
        build(root)
    message = _error_message(excinfo)
    assert str(bad) in message and "more" not in message


def test_unaligned_dataset_names_a_corrupt_b_image_when_built(tmp_path):
    root = _unaligned_root(tmp_path)
    bad = root / "trainB" / "b3.png"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(GanslimError) as excinfo:
        UnalignedDataset(root, load_size=20, crop_size=16)
    assert str(bad) in _error_message(excinfo)


def test_image_damaged_after_the_dataset_was_built_is_named_when_loaded(tmp_path):
    root = _aligned_root(tmp_path, count=2)
    dataset = AlignedDataset(root, load_size=20, crop_size=16)
    bad = root / "train" / "001.png"
    bad.write_bytes(b"not an image at all")
    dataset[0]
    with pytest.raises(GanslimError) as excinfo:
        dataset[1]
    assert str(bad) in _error_message(excinfo)


def test_aligned_image_not_twice_as_wide_fails_when_built(tmp_path):
    _aligned_root(tmp_path / "data", count=2)
    path = _save(_noise(0, 20, 30), tmp_path / "data" / "aligned" / "train" / "odd.png")
    with pytest.raises(GanslimError) as excinfo:
        AlignedDataset(tmp_path / "data" / "aligned", preprocess="none")
    message = _error_message(excinfo)
    assert str(path) in message and "30x20" in message and "twice" in message


def test_crop_larger_than_image_fails_when_built(tmp_path):
    root = _aligned_root(tmp_path, count=1, side=12)
    with pytest.raises(GanslimError) as excinfo:
        AlignedDataset(root, preprocess="crop", crop_size=16)
    message = _error_message(excinfo)
    assert str(root / "train" / "000.png") in message and "crop_size 16" in message


def test_crop_larger_than_load_size_fails_in_constructor(tmp_path):
    root = _aligned_root(tmp_path, count=1)
    with pytest.raises(GanslimError) as excinfo:
        AlignedDataset(root, load_size=16, crop_size=20)
    assert "crop_size 20 is larger than load_size 16" in _error_message(excinfo)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(preprocess="zoom"), "unknown preprocess 'zoom'"),
        (dict(direction="AtoC"), "unknown direction 'AtoC'"),
        (dict(input_nc=2), "input_nc=2"),
        (dict(seed=-1), "seed=-1"),
        (dict(max_items=0), "max_items=0"),
    ],
)
def test_bad_options(tmp_path, kwargs, words):
    root = _aligned_root(tmp_path, count=1)
    with pytest.raises(GanslimError) as excinfo:
        AlignedDataset(root, **kwargs)
    assert words in _error_message(excinfo)


def test_single_image_dataset_bad_paths(tmp_path):
    with pytest.raises(GanslimError) as excinfo:
        SingleImageDataset(tmp_path / "nope.png")
    assert str(tmp_path / "nope.png") in _error_message(excinfo)
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(GanslimError) as excinfo:
        SingleImageDataset(text)
    assert str(text) in _error_message(excinfo)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanslimError) as excinfo:
        SingleImageDataset(tmp_path / "empty")
    assert str(tmp_path / "empty") in _error_message(excinfo)


# ---------------------------------------------------------------- tensor -> image


def test_tensor_to_image_truncates_like_tensor2im():
    values = torch.tensor([-1.0, 0.999, 1.0, 0.0, -0.5, 2.0], dtype=torch.float32)
    image = tensor_to_image(values.view(1, 1, 6))
    assert image.mode == "RGB" and image.size == (6, 1)
    pixels = np.asarray(image)
    assert np.array_equal(pixels[..., 0], pixels[..., 2]), "1 channel is repeated to RGB"
    # 0.999 -> 254.87 -> 254 (truncation, not rounding); 0 -> 127.5 -> 127; 2.0 is clamped to 255.
    assert pixels[0, :, 0].tolist() == [0, 254, 255, 127, 63, 255]


def test_tensor_to_image_round_trip_loses_at_most_one_level_and_accepts_batch_of_one():
    array = _noise(4, 5, 7)
    tensor = image_to_tensor(Image.fromarray(array)).unsqueeze(0)
    # float32 (v / 255 - 0.5) / 0.5 then (x + 1) / 2 * 255 lands just below v for some v; truncation (as
    # the reference) then gives v - 1, never v + 1.
    loss = array.astype(int) - np.asarray(tensor_to_image(tensor)).astype(int)
    assert set(np.unique(loss).tolist()) <= {0, 1} and (loss == 0).mean() > 0.5
    with pytest.raises(ValueError):
        tensor_to_image(torch.zeros(2, 3, 4, 4))


def test_save_image_writes_atomically(tmp_path):
    tensor = image_to_tensor(Image.fromarray(_noise(5, 6, 6)))
    path = save_image(tensor, tmp_path / "out" / "x.png")
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(tensor_to_image(tensor)))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]
    with pytest.raises(GanslimError) as excinfo:
        save_image(tensor, tmp_path / "x.unknown")
    assert "x.unknown" in _error_message(excinfo)


def test_data_kind_is_paired_or_unpaired_and_names_the_method_that_needs_one(tmp_path):
    from ganslim.data import PAIRED, UNPAIRED, data_kind, make_builtin

    assert data_kind(make_builtin("shapes2render", tmp_path / "paired", size=32, count=2), "OMGD") == PAIRED
    assert data_kind(make_builtin("flat2striped", tmp_path / "unpaired", size=32, count=2), "OMGD") == UNPAIRED
    (tmp_path / "single").mkdir()
    Image.fromarray(_noise(0, 8, 8)).save(tmp_path / "single" / "a.png")
    for method in ("OMGD", "GAN Compression"):
        with pytest.raises(GanslimError) as excinfo:
            data_kind(tmp_path / "single", method)
        assert str(excinfo.value) == (f"'{tmp_path / 'single'}' is a folder of single images: {method} needs train/ "
                                      f"(paired A|B images) or trainA/ trainB/ (unpaired)")
    with pytest.raises(GanslimError, match=r"^no dataset given: pass --data DIR"):
        data_kind("", "OMGD")
