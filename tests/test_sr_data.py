"""Super-resolution data: HR folders with LR made on the fly, BasicSR's paired folders, the photos2sr dataset."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganslim.cli import main
from ganslim.data import HRFolderDataset, PairedSRDataset, make_builtin
from ganslim.data import builtin
from ganslim.errors import GanslimError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCALE = 4


def write_photo(path, width: int, height: int, seed: int) -> np.ndarray:
    """A smooth random RGB image (so bicubic resizing has structure to keep), saved as PNG; its pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 4 + 2, width // 4 + 2, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def pixels(tensor: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8 (exact for tensors made from 8-bit images)."""
    return np.round(tensor.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


def downsample(array: np.ndarray, scale: int = SCALE) -> np.ndarray:
    height, width = array.shape[:2]
    return np.asarray(Image.fromarray(array).resize((width // scale, height // scale), Image.BICUBIC))


def undo(array: np.ndarray, hflip: bool, vflip: bool, transpose: bool) -> np.ndarray:
    """The inverse of BasicSR's augment on an (H, W, 3) array: transpose back, then unflip."""
    if transpose:
        array = array.transpose(1, 0, 2)
    if vflip:
        array = array[::-1]
    if hflip:
        array = array[:, ::-1]
    return array


def find(patch: np.ndarray, image: np.ndarray) -> list[tuple[int, int]]:
    """Every (x, y) where ``patch`` is ``image[y:y+h, x:x+w]``."""
    h, w = patch.shape[:2]
    return [(x, y) for y in range(image.shape[0] - h + 1) for x in range(image.shape[1] - w + 1)
            if np.array_equal(image[y:y + h, x:x + w], patch)]


@pytest.fixture
def hr_folder(tmp_path):
    images = {name: write_photo(tmp_path / "hr" / f"{name}.png", 42, 38, seed) for seed, name in enumerate("ab")}
    return tmp_path / "hr", images


def test_hr_folder_evaluation_items_are_whole_mod_cropped_images_and_their_bicubic_lr(hr_folder):
    root, images = hr_folder
    dataset = HRFolderDataset(root, scale=SCALE, train=False)
    item = dataset[0]
    assert len(dataset) == 2 and item["lq_path"] == item["gt_path"] == str(root / "a.png")
    assert item["gt"].shape == (3, 36, 40) and item["lq"].shape == (3, 9, 10)  # 42x38 cropped to 40x36
    assert item["gt"].dtype == item["lq"].dtype == torch.float32
    gt = images["a"][:36, :40]
    np.testing.assert_array_equal(pixels(item["gt"]), gt)
    np.testing.assert_array_equal(pixels(item["lq"]), downsample(gt))
    # It is bicubic with antialiasing: torch's antialiased bicubic agrees to a couple of levels.
    torch_lr = F.interpolate(torch.from_numpy(gt.copy()).permute(2, 0, 1)[None].double(), size=(9, 10), mode="bicubic",
                             antialias=True, align_corners=False)[0]
    assert (item["lq"].double() * 255 - torch_lr).abs().max() <= 2.0


def test_hr_folder_training_crops_are_aligned_augmented_and_seeded(hr_folder):
    root, images = hr_folder
    dataset = HRFolderDataset(root, scale=SCALE, gt_size=16, seed=3)
    augmentations = set()
    for epoch, index in itertools.product(range(4), range(2)):
        dataset.set_epoch(epoch)
        item = dataset[index]
        assert item["gt"].shape == (3, 16, 16) and item["lq"].shape == (3, 4, 4)
        hr = images["ab"[index]]
        found = []
        for flips in itertools.product((False, True), repeat=3):
            gt = undo(pixels(item["gt"]), *flips)
            for x, y in find(gt, hr):
                if np.array_equal(undo(pixels(item["lq"]), *flips), downsample(gt)):
                    found.append(flips)
        assert found, "the GT crop is an augmented crop of the HR image and the LQ its bicubic downsampling"
        augmentations.add(found[0])
    assert len(augmentations) > 2
    dataset.set_epoch(1)
    again = HRFolderDataset(root, scale=SCALE, gt_size=16, seed=3)
    again.set_epoch(1)
    assert torch.equal(dataset[1]["gt"], again[1]["gt"]) and torch.equal(dataset[1]["lq"], again[1]["lq"])


@pytest.fixture
def paired(tmp_path):
    """GT 42x38 images; LQ 10x9 files named as DIV2K (``0001x4.png``) and as BasicSR's converter (``0002.png``)."""
    gt = {name: write_photo(tmp_path / "gt" / f"{name}.png", 42, 38, seed) for seed, name in enumerate(["0001",
                                                                                                        "0002"])}
    lq = {}
    for name, lq_name in (("0001", "0001x4"), ("0002", "0002")):
        lq[name] = write_photo(tmp_path / "lq" / f"{lq_name}.png", 10, 9, seed=10 + len(lq))
    return tmp_path / "gt", tmp_path / "lq", gt, lq


def test_paired_folders_pair_by_name_and_evaluate_whole_images(paired):
    gt_dir, lq_dir, gt, lq = paired
    dataset = PairedSRDataset(gt_dir, lq_dir, scale=SCALE, train=False)
    assert [(p.name, q.name) for p, q in zip(dataset.gt_paths, dataset.lq_paths)] == [("0001.png", "0001x4.png"),
                                                                                     ("0002.png", "0002.png")]
    item = dataset[1]
    assert item["gt_path"] == str(gt_dir / "0002.png") and item["lq_path"] == str(lq_dir / "0002.png")
    np.testing.assert_array_equal(pixels(item["lq"]), lq["0002"])
    np.testing.assert_array_equal(pixels(item["gt"]), gt["0002"][:36, :40])


def test_paired_training_crops_cover_the_same_place(paired):
    gt_dir, lq_dir, gt, lq = paired
    dataset = PairedSRDataset(gt_dir, lq_dir, scale=SCALE, gt_size=16, seed=1)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        item = dataset[0]
        assert item["gt"].shape == (3, 16, 16) and item["lq"].shape == (3, 4, 4)
        matches = [(flips, x, y) for flips in itertools.product((False, True), repeat=3)
                   for x, y in find(undo(pixels(item["lq"]), *flips), lq["0001"])]
        assert any(np.array_equal(undo(pixels(item["gt"]), *flips), gt["0001"][4 * y:4 * y + 16, 4 * x:4 * x + 16])
                   for flips, x, y in matches)


def test_unpaired_files_are_one_line_naming_the_first(paired):
    gt_dir, lq_dir, _, _ = paired
    write_photo(gt_dir / "0003.png", 42, 38, seed=5)
    with pytest.raises(GanslimError, match=rf"GT image '{gt_dir / '0003.png'}' has no LQ image in '{lq_dir}' "
                                           r"\(looked for '0003' or '0003x4'"):
        PairedSRDataset(gt_dir, lq_dir, scale=SCALE)
    (gt_dir / "0003.png").unlink()
    write_photo(lq_dir / "0009.png", 10, 9, seed=6)
    with pytest.raises(GanslimError, match=rf"LQ image '{lq_dir / '0009.png'}' has no GT image in '{gt_dir}' "
                                           r"\(1 unpaired LQ file\(s\)\)"):
        PairedSRDataset(gt_dir, lq_dir, scale=SCALE)


def test_an_lq_of_the_wrong_size_names_both_sizes(paired):
    gt_dir, lq_dir, _, _ = paired
    (lq_dir / "0001x4.png").rename(lq_dir / "0001.png")
    with pytest.raises(GanslimError, match=rf"LQ image '{lq_dir / '0001.png'}' is 10x9 but its GT "
                                           rf"'{gt_dir / '0001.png'}' is 42x38: at scale 2 the LQ must be 21x19"):
        PairedSRDataset(gt_dir, lq_dir, scale=2)


def test_bad_folders_and_files_are_one_line(tmp_path, hr_folder):
    root, _ = hr_folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanslimError, match=r"no images in '.*empty': put HR images \(.png, .jpg, ...\) there"):
        HRFolderDataset(tmp_path / "empty")
    with pytest.raises(GanslimError, match=r"HR folder '.*a.png' is a file: pass a folder of images"):
        HRFolderDataset(root / "a.png")
    with pytest.raises(GanslimError, match=r"LQ folder '.*nowhere' does not exist"):
        PairedSRDataset(root, tmp_path / "nowhere")
    (root / "notes.png").write_text("not an image")
    with pytest.raises(GanslimError, match=r"cannot read image '.*notes.png' \(UnidentifiedImageError\)"):
        HRFolderDataset(root, gt_size=16)


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 0}, r"scale=0 is not a positive integer: pass the SR factor"),
    ({"scale": 2.5}, r"scale=2.5 is not a positive integer"),
    ({"gt_size": 18}, r"gt_size=18 is not a positive multiple of the scale 4: pass e.g. 128"),
    ({"gt_size": 40}, r"HR image '.*a.png' is 42x38, smaller than gt_size 40: pass a smaller gt_size"),
    ({"gt_size": None}, r"training crops need gt_size"),
])
def test_impossible_options_are_one_line(hr_folder, kwargs, message):
    root, _ = hr_folder
    with pytest.raises(GanslimError, match=message):
        HRFolderDataset(root, **{"scale": SCALE, "gt_size": 16, **kwargs})


def test_two_files_of_one_name_are_refused(paired):
    gt_dir, lq_dir, _, _ = paired
    Image.open(lq_dir / "0002.png").save(lq_dir / "0002.bmp")
    with pytest.raises(GanslimError, match=r"'.*0002.bmp' and '.*0002.png' have the same name"):
        PairedSRDataset(gt_dir, lq_dir, scale=SCALE)


def _locate(patch: np.ndarray, photos: list[np.ndarray]) -> tuple[int, int, int]:
    """(photo, x, y) of the one place ``patch`` comes from, found by its first pixels then checked whole."""
    size = patch.shape[0]
    for number, photo in enumerate(photos):
        height, width = photo.shape[:2]
        candidates = np.ones((height - size + 1, width - size + 1), dtype=bool)
        for dx in range(4):
            candidates &= (photo[:height - size + 1, dx:width - size + 1 + dx] == patch[0, dx]).all(axis=2)
        for y, x in zip(*np.nonzero(candidates)):
            if np.array_equal(photo[y:y + size, x:x + size], patch):
                return number, int(x), int(y)
    raise AssertionError("the crop is not in any photo")


def test_photos2sr_holds_native_crops_from_disjoint_photo_regions(tmp_path):
    root = make_builtin("photos2sr", tmp_path / "sr", size=32, count=3)
    info = json.loads((root / builtin.INFO_FILE).read_text())
    assert info["layout"] == "sr" and info["splits"] == {"train": 3, "val": 1, "test": 1}
    photos = [np.asarray(photo) for photo in builtin._load_photos()]
    for split in ("train", "val", "test"):
        for path in sorted((root / split).iterdir()):
            patch = np.asarray(Image.open(path))
            assert patch.shape == (32, 32, 3)
            number, x, y = _locate(patch, photos)
            height, width = photos[number].shape[:2]
            left, top, right, bottom = builtin.PHOTO_REGIONS[split]
            assert left * width <= x and x + 32 <= right * width and top * height <= y and y + 32 <= bottom * height
    item = HRFolderDataset(root / "train", scale=SCALE, gt_size=32)[0]
    assert item["gt"].shape == (3, 32, 32) and item["lq"].shape == (3, 8, 8)


def test_photos2sr_defaults_to_a_small_count_and_refuses_a_size_no_region_holds(tmp_path, capsys):
    assert main(["data", "make", "photos2sr", str(tmp_path / "sr"), "--size", "32"]) == 0
    assert len(list((tmp_path / "sr" / "train").iterdir())) == 64
    assert len(list((tmp_path / "sr" / "val").iterdir())) == 8
    with pytest.raises(GanslimError, match="size 304 is larger than every val region of the photos: photos2sr "
                                           "takes sizes up to 300"):
        make_builtin("photos2sr", tmp_path / "big", size=304, count=1)
    assert not (tmp_path / "big").exists() and [p.name for p in tmp_path.iterdir()] == ["sr"]
