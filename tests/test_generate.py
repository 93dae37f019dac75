"""`ganslim generate` and ganslim.apps.generate: seeds and file names, z / W / W+ inputs against the generator's own
entry points, truncation toward the stored, given or estimated mean W, noise modes, the unclamped array, the grid,
and every bad input as one line with nothing written."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from ganslim.apps.generate import Latents, format_seeds, parse_grid, parse_seeds
from ganslim.archs.stylegan2 import estimate_w_avg
from ganslim.cli import main
from ganslim.data.images import tensor_to_image
from ganslim.errors import GanslimError
from helpers import TINY_STYLEGAN2, reference_seed_images, save_resnet, save_tiny_stylegan2, tiny_stylegan2
from helpers import save_tiny_student, tiny_student

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, STYLE_DIM, NUM_WS = TINY_STYLEGAN2["size"], TINY_STYLEGAN2["style_dim"], 6


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_stylegan2(tmp_path_factory.mktemp("ckpt") / "g.pt")


@pytest.fixture(scope="module")
def ckpt_without_w_avg(tmp_path_factory):
    return save_tiny_stylegan2(tmp_path_factory.mktemp("ckpt") / "g_no_avg.pt", w_avg=False)


def seed_z(seeds) -> torch.Tensor:
    return torch.cat([torch.randn(1, STYLE_DIM, generator=torch.Generator().manual_seed(s)) for s in seeds])


def generate(ckpt, out, *flags: str) -> int:
    return main(["generate", "--ckpt", str(ckpt), "--output", str(out), "--device", "cpu", *flags])


def array(out) -> torch.Tensor:
    return torch.from_numpy(np.load(out / "images.npy"))


def test_seeds_parse_and_print_back():
    assert parse_seeds("0-3") == (0, 1, 2, 3)
    assert parse_seeds("0,5,7") == (0, 5, 7)
    assert parse_seeds("3") == (3,)
    assert parse_seeds(" 0-2, 10 ") == (0, 1, 2, 10)
    assert format_seeds((0, 1, 2, 10, 12, 13)) == "0-2,10,12-13"
    assert parse_seeds(format_seeds((0, 1, 2, 10, 12, 13))) == (0, 1, 2, 10, 12, 13)


@pytest.mark.parametrize("text, words", [
    ("5-2", "runs downward: write it low to high (2-5)"),
    ("a", "'a' is not a seed"),
    ("-1", "'' is not a seed"),
    ("1.5", "'1.5' is not a seed"),
    ("", "'' is not a seed"),
    ("1,0-2", "names seed 1 more than once"),
    (str(2**64), f"'{2**64}' is not a seed"),
])
def test_bad_seeds_are_one_line(text, words):
    with pytest.raises(GanslimError, match="^--seeds") as error:
        parse_seeds(text)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_seeds_write_pngs_named_by_seed_and_the_unclamped_array(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert generate(ckpt, out, "--seeds", "0-2,7", "--save-array", "--batch-size", "3") == 0
    assert sorted(p.name for p in out.iterdir()) == ["images.npy", "seed0000.png", "seed0001.png", "seed0002.png",
                                                     "seed0007.png"]
    with torch.no_grad():
        expected = tiny_stylegan2()(seed_z([0, 1, 2, 7]))
    images = array(out)
    assert images.dtype == torch.float32 and images.shape == (4, 3, SIZE, SIZE)
    assert torch.allclose(images, expected, atol=1e-5)
    assert images.abs().max() > 1.5, "the array holds the output unclamped"
    png = np.asarray(Image.open(out / "seed0007.png"))
    assert np.array_equal(png, np.asarray(tensor_to_image(images[3])))
    assert "generated 4 image(s) with stylegan2" in capsys.readouterr().out


@pytest.mark.parametrize("noise, psi", [("const", 1.0), ("random", 0.7), ("none", 0.5)])
def test_the_array_equals_an_independent_forward_from_the_state_dict(ckpt, tmp_path, noise, psi):
    assert generate(ckpt, tmp_path / "out", "--seeds", "3,0-1", "--noise-mode", noise, "--truncation", str(psi),
                    "--save-array", "--batch-size", "2") == 0
    expected = reference_seed_images(tiny_stylegan2(), [3, 0, 1], noise, psi)
    assert torch.allclose(array(tmp_path / "out"), expected, atol=1e-4)


def test_latents_file_reproduces_seeds_in_every_noise_mode(ckpt, tmp_path):
    np.save(tmp_path / "z.npy", seed_z([0, 1, 2]).numpy())
    for mode in ("const", "random", "none"):
        assert generate(ckpt, tmp_path / f"seeds-{mode}", "--seeds", "0-2", "--noise-mode", mode, "--save-array") == 0
        assert generate(ckpt, tmp_path / f"rows-{mode}", "--latents", str(tmp_path / "z.npy"), "--noise-mode", mode,
                        "--save-array", "--batch-size", "2") == 0
        assert torch.allclose(array(tmp_path / f"seeds-{mode}"), array(tmp_path / f"rows-{mode}"), atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "rows-const").iterdir()) == ["000000.png", "000001.png", "000002.png",
                                                                           "images.npy"]
    assert not torch.allclose(array(tmp_path / "seeds-const"), array(tmp_path / "seeds-random"), atol=1e-3)


def test_w_and_w_plus_files_equal_the_synthesis_network(ckpt, tmp_path):
    generator = tiny_stylegan2()
    w_plus = torch.randn(2, NUM_WS, STYLE_DIM, generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "w.npy", w_plus[:, 0].numpy())
    np.save(tmp_path / "w_plus.npy", w_plus.numpy())
    assert generate(ckpt, tmp_path / "w", "--w", str(tmp_path / "w.npy"), "--save-array") == 0
    assert generate(ckpt, tmp_path / "w+", "--w", str(tmp_path / "w_plus.npy"), "--save-array") == 0
    with torch.no_grad():
        assert torch.allclose(array(tmp_path / "w"), generator.synthesis(generator.broadcast(w_plus[:, 0])), atol=1e-5)
        assert torch.allclose(array(tmp_path / "w+"), generator.synthesis(w_plus), atol=1e-5)


def test_random_noise_is_drawn_after_each_seeds_z_whatever_the_batch(ckpt, tmp_path):
    generator = tiny_stylegan2()
    for batch in ("1", "3"):
        assert generate(ckpt, tmp_path / batch, "--seeds", "4-6", "--noise-mode", "random", "--save-array",
                        "--batch-size", batch) == 0
    assert torch.allclose(array(tmp_path / "1"), array(tmp_path / "3"), atol=1e-5)
    expected = []
    for seed in (4, 5, 6):
        rng = torch.Generator().manual_seed(seed)
        z = torch.randn(1, STYLE_DIM, generator=rng)
        noise = [torch.randn(1, 1, side, side, generator=rng) for side in (4, 8, 8, 16, 16)]
        with torch.no_grad():
            expected.append(generator(z, noise=noise))
    assert torch.allclose(array(tmp_path / "3"), torch.cat(expected), atol=1e-5)


def test_a_saved_mobile_stylegan_student_draws_pngs_and_its_own_w_plus(tmp_path, capsys):
    checkpoint = save_tiny_student(tmp_path / "student.pt")
    student = tiny_student()
    for mode in ("const", "random"):
        assert generate(checkpoint, tmp_path / mode, "--seeds", "0-1,5", "--noise-mode", mode, "--save-array") == 0
        assert sorted(p.name for p in (tmp_path / mode).iterdir()) == ["images.npy", "seed0000.png", "seed0001.png",
                                                                      "seed0005.png"]
        expected = []
        for seed in (0, 1, 5):  # the noise drawn after z at the student's sides, the teacher's first three
            rng = torch.Generator().manual_seed(seed)
            z = torch.randn(1, STYLE_DIM, generator=rng)
            noise = [torch.randn(1, 1, side, side, generator=rng) for side in (4, 8, 8)] if mode == "random" else mode
            with torch.no_grad():
                expected.append(student(z, noise=noise))
        images = array(tmp_path / mode)
        assert images.shape == (3, 3, SIZE, SIZE) and torch.allclose(images, torch.cat(expected), atol=1e-5)
        assert images.std() > 0.1
        png = np.asarray(Image.open(tmp_path / mode / "seed0005.png"))
        assert np.array_equal(png, np.asarray(tensor_to_image(images[2])))
    assert "generated 3 image(s) with mobile_stylegan" in capsys.readouterr().out
    w_plus = torch.randn(2, 4, STYLE_DIM, generator=torch.Generator().manual_seed(3))  # 4 entries, the teacher's 6
    np.save(tmp_path / "w_plus.npy", w_plus.numpy())
    assert generate(checkpoint, tmp_path / "w+", "--w", str(tmp_path / "w_plus.npy"), "--save-array") == 0
    with torch.no_grad():
        assert torch.allclose(array(tmp_path / "w+"), student.synthesis(w_plus), atol=1e-5)
    np.save(tmp_path / "teacher_w_plus.npy", np.zeros((2, NUM_WS, STYLE_DIM), np.float32))
    capsys.readouterr()
    assert generate(checkpoint, tmp_path / "bad", "--w", str(tmp_path / "teacher_w_plus.npy")) == 2
    _one_line_and_nothing_written(capsys, tmp_path / "bad", "shape (2, 6, 16)", "W+ of shape (N, 4, 16)")


def test_noise_mode_none_and_truncation_toward_the_stored_w_avg(ckpt, tmp_path, caplog):
    generator = tiny_stylegan2()
    with caplog.at_level(logging.WARNING):
        assert generate(ckpt, tmp_path / "out", "--seeds", "0-1", "--noise-mode", "none", "--truncation", "0.5",
                        "--save-array") == 0
    assert not caplog.records, "a stored w_avg needs no estimate"
    with torch.no_grad():
        expected = generator(seed_z([0, 1]), truncation_psi=0.5, noise="none")
    assert torch.allclose(array(tmp_path / "out"), expected, atol=1e-5)


def test_truncation_mean_file_overrides_the_checkpoints(ckpt, tmp_path):
    mean = torch.randn(1, STYLE_DIM, generator=torch.Generator().manual_seed(9))
    np.save(tmp_path / "mean.npy", mean.numpy())
    assert generate(ckpt, tmp_path / "out", "--seeds", "0-1", "--truncation", "0.3", "--truncation-mean",
                    str(tmp_path / "mean.npy"), "--save-array") == 0
    generator = tiny_stylegan2()
    with torch.no_grad():
        w = torch.lerp(mean, generator.map(seed_z([0, 1])), 0.3)
        expected = generator.synthesis(generator.broadcast(w))
    assert torch.allclose(array(tmp_path / "out"), expected, atol=1e-5)


def test_a_checkpoint_without_w_avg_truncates_toward_an_estimate_and_says_so(ckpt_without_w_avg, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert generate(ckpt_without_w_avg, tmp_path / "out", "--seeds", "0-1", "--truncation", "0.5",
                        "--save-array") == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"note: checkpoint '{ckpt_without_w_avg}' stores no mean W to truncate toward: using a mean W estimated "
        f"from 10000 mapped z of seed 0"]
    generator = tiny_stylegan2(w_avg=False)
    estimate_w_avg(generator, n=10_000, seed=0)
    with torch.no_grad():
        expected = generator(seed_z([0, 1]), truncation_psi=0.5)
    assert torch.allclose(array(tmp_path / "out"), expected, atol=1e-4)


def test_grid_lays_the_images_out_row_by_row(ckpt, tmp_path):
    assert generate(ckpt, tmp_path / "out", "--seeds", "0-4", "--grid", "2x3", "--save-array") == 0
    grid = np.asarray(Image.open(tmp_path / "out" / "grid.png"))
    padding = 2
    assert grid.shape == (2 * SIZE + 3 * padding, 3 * SIZE + 4 * padding, 3)
    second_row_first = grid[2 * padding + SIZE:2 * padding + 2 * SIZE, padding:padding + SIZE]
    assert np.array_equal(second_row_first, np.asarray(tensor_to_image(array(tmp_path / "out")[3])))
    assert (grid[-padding - SIZE:-padding, -padding - SIZE:-padding] == 255).all(), "the empty cell is white"
    assert parse_grid("auto", 5) == (2, 3) and parse_grid("auto", 9) == (3, 3)


def _one_line_and_nothing_written(capsys, out, *words: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ganslim generate: error: "), err
    for word in words:
        assert word in err[0], (word, err[0])
    assert not out.exists() or not any(out.iterdir())


def test_bad_latent_files_are_one_line_stating_the_expected_shape(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    np.save(tmp_path / "z8.npy", np.zeros((3, 8), np.float32))
    np.save(tmp_path / "w5.npy", np.zeros((2, 5, STYLE_DIM), np.float32))
    np.save(tmp_path / "int.npy", np.zeros((2, STYLE_DIM), np.int64))
    np.save(tmp_path / "nan.npy", np.full((2, STYLE_DIM), np.nan, np.float32))
    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.zeros(3))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    cases = [
        (("--latents", "z8.npy"), ("shape (3, 8)", f"takes z of shape (N, {STYLE_DIM})")),
        (("--w", "w5.npy"), ("shape (2, 5, 16)", f"W of shape (N, {STYLE_DIM}) or W+ of shape (N, {NUM_WS}, 16)")),
        (("--latents", "int.npy"), ("int64 values",)),
        (("--latents", "nan.npy"), ("NaN or infinite",)),
        (("--latents", "two.npz"), (".npz archive",)),
        (("--latents", "junk.npy"), ("not a readable .npy",)),
        (("--latents", "missing.npy"), ("not found",)),
    ]
    for (flag, name), words in cases:
        assert generate(ckpt, out, flag, str(tmp_path / name)) == 2
        _one_line_and_nothing_written(capsys, out, f"{flag} '", *words)


def test_bad_options_are_one_line_with_nothing_written(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    np.save(tmp_path / "mean.npy", np.zeros(5, np.float32))
    np.save(tmp_path / "good_mean.npy", np.zeros(STYLE_DIM, np.float32))
    cases = [
        (("--seeds", "0", "--truncation", "1.5"), ("--truncation 1.5 is outside [0, 1]",)),
        (("--seeds", "0", "--truncation", "-0.1"), ("outside [0, 1]",)),
        (("--seeds", "5-2"), ("runs downward",)),
        (("--seeds", "0", "--truncation", "0.5", "--truncation-mean", str(tmp_path / "mean.npy")),
         ("shape (5,)", f"({STYLE_DIM},) or (1, {STYLE_DIM})")),
        (("--seeds", "0", "--truncation-mean", str(tmp_path / "good_mean.npy")), ("pass --truncation below 1",)),
        (("--seeds", "0-5", "--grid", "2x2"), ("holds 4 images, but 6 are drawn",)),
        (("--seeds", "0", "--grid", "2by2"), ("not ROWSxCOLS",)),
        (("--seeds", "0", "--batch-size", "0"), ("--batch-size 0",)),
    ]
    for flags, words in cases:
        assert generate(ckpt, out, *flags) == 2
        _one_line_and_nothing_written(capsys, out, *words)


def test_an_image_to_image_checkpoint_points_to_translate(tmp_path, capsys):
    resnet = save_resnet(tmp_path / "resnet.pt", 4)
    assert generate(resnet, tmp_path / "out", "--seeds", "0") == 2
    _one_line_and_nothing_written(capsys, tmp_path / "out", "image-to-image model", "ganslim translate")


def test_outputs_never_land_on_inputs_or_files(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    z = out / "images.npy"
    np.save(z, seed_z([0]).numpy())
    before = z.read_bytes()
    assert generate(ckpt, out, "--latents", str(z), "--save-array") == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert z.read_bytes() == before and sorted(out.iterdir()) == [z]
    (tmp_path / "file").write_text("x")
    assert generate(ckpt, tmp_path / "file", "--seeds", "0") == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_latents_name_rows_and_seeds():
    assert Latents.from_seeds((3, 12345)).names() == ["seed0003", "seed12345"]
    assert Latents.from_rows("z", torch.zeros(2, STYLE_DIM)).names() == ["000000", "000001"]


def test_the_parsers_noise_modes_are_the_architectures():
    import ganslim.cli.generate
    from ganslim.archs.stylegan2 import NOISE_MODES

    assert ganslim.cli.generate.NOISE_MODES == NOISE_MODES
