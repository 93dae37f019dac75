"""Edit directions: SeFa, label boundaries, the directions file and `ganslim directions`."""

from __future__ import annotations

import json

from PIL import Image

import pytest
import torch

from ganslim.apps.generate import seed_w_plus
from ganslim.archs import build_generator
from ganslim.cli import main
from ganslim.editing.directions import (
    apply_edit,
    edited_layers,
    fit_boundaries,
    image_boundaries,
    load_directions,
    read_attribute_folders,
    read_label_table,
    save_directions,
    sefa_directions,
)
from ganslim.errors import GanslimError
from ganslim.editing.encoder import encoder_for, save_encoder
from helpers import TINY_ENCODER, TINY_STYLEGAN2, save_tiny_stylegan2, tiny_stylegan2

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stacked_modulations(generator, layers: int) -> torch.Tensor:
    """The rows SeFa factorises, gathered independently: each StyledConv's modulation weight rows, unit norm."""
    rows = [generator.conv1.conv.modulation.weight] + [conv.conv.modulation.weight for conv in generator.convs]
    affine = torch.cat(rows[:layers]).double()
    return affine / affine.norm(dim=1, keepdim=True)


def test_sefa_directions_are_orthonormal_reproducible_and_the_top_eigenvectors():
    generator = tiny_stylegan2()
    directions = sefa_directions(generator, 4)
    assert directions.shape == (4, 16) and directions.dtype == torch.float32
    torch.testing.assert_close(directions @ directions.T, torch.eye(4), atol=1e-6, rtol=0)
    assert torch.equal(directions, sefa_directions(tiny_stylegan2(), 4))  # a fresh copy of the same weights
    assert all(row[row.abs().argmax()] > 0 for row in directions)  # the sign convention fixes each row
    affine = stacked_modulations(generator, edited_layers(generator.num_ws))  # 4 of 6 W+ entries
    gains = (affine @ directions.double().T).norm(dim=0) ** 2
    eigenvalues = torch.linalg.eigvalsh(affine.T @ affine).flip(0)[:4]
    torch.testing.assert_close(gains, eigenvalues, atol=1e-5, rtol=1e-5)
    assert torch.all(gains[:-1] >= gains[1:])
    other = tiny_stylegan2(seed=1)
    assert not torch.allclose(sefa_directions(other, 4), directions)


def test_sefa_refuses_a_count_outside_w_dim():
    with pytest.raises(GanslimError, match=r"--count 17 must be a number of directions from 1 to w_dim \(16\)"):
        sefa_directions(tiny_stylegan2(), 17)


def test_edits_move_only_the_first_two_thirds_of_w_plus():
    assert [edited_layers(n) for n in (18, 14, 6)] == [12, 9, 4]
    w_plus = torch.randn(2, 6, 16)
    directions = torch.eye(16)[:2]
    edited = apply_edit(w_plus, directions, torch.tensor([0.5, -2.0]))
    expected = w_plus.clone()
    expected[:, :4, 0] += 0.5
    expected[:, :4, 1] -= 2.0
    assert torch.equal(edited, expected)


def test_a_label_boundary_recovers_a_planted_direction():
    rng = torch.Generator().manual_seed(0)
    w = torch.randn(600, 16, generator=rng) * 0.7 + 0.3
    planted = torch.randn(2, 16, generator=rng)
    planted /= planted.norm(dim=1, keepdim=True)
    offsets = torch.tensor([0.3, -0.2])
    labels = torch.stack([(w @ planted[0] > offsets[0]).double() * 5 + 1,  # values 1 and 6: 6 is the positive side
                          (w @ planted[1] > offsets[1]).double()], dim=1)
    normals = fit_boundaries(w, labels, ["smile", "age"])
    torch.testing.assert_close(normals.norm(dim=1), torch.ones(2))
    cosines = (normals * planted).sum(dim=1)
    assert cosines.min() > 0.97, cosines


def test_a_label_column_needs_two_values():
    w = torch.randn(10, 16)
    labels = torch.arange(10.0)[:, None]
    with pytest.raises(GanslimError, match="attribute 'age' has 10 distinct value"):
        fit_boundaries(w, labels, ["age"])


def test_the_directions_file_round_trips_and_refuses_another_generator(tmp_path):
    generator = tiny_stylegan2()
    directions = sefa_directions(generator, 3)
    path = save_directions(tmp_path / "d.safetensors", ["a", "b", "c"], directions, "sefa", generator)
    names, loaded = load_directions(path, generator)
    assert names == ["a", "b", "c"] and torch.equal(loaded, directions)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    assert metadata["method"] == "sefa" and json.loads(metadata["names"]) == ["a", "b", "c"]
    assert json.loads(metadata["generator"])["w_dim"] == 16
    wider = build_generator("stylegan2", **{**TINY_STYLEGAN2, "style_dim": 32})
    with pytest.raises(GanslimError, match=r"was made for another generator \(W of 16 dims, 6 W\+ entries; this one: "
                                           r"32, 6"):
        load_directions(path, wider)
    larger = build_generator("stylegan2", **{**TINY_STYLEGAN2, "size": 32, "channels": [8, 8, 4, 4]})
    with pytest.raises(GanslimError, match="was made for another generator"):
        load_directions(path, larger)
    with generator.subnet(8, 0.5):  # a sub-generator of the same generator still matches
        assert load_directions(path, generator)[0] == names


@pytest.mark.parametrize("content, words", [
    (None, "not found"),
    (b"not a safetensors file at all", "is not a readable safetensors file"),
    ("no-names", "lacks the names or generator"),
    ("other-tensor", "holds no (K, w_dim) tensor 'directions'"),
])
def test_bad_directions_files_are_one_line(tmp_path, content, words):
    from safetensors.torch import save_file

    path = tmp_path / "d.safetensors"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "no-names":
        save_file({"directions": torch.zeros(2, 16)}, str(path), metadata={"method": "sefa"})
    elif content == "other-tensor":
        save_file({"weights": torch.zeros(2, 16)}, str(path),
                  metadata={"method": "sefa", "names": '["a", "b"]', "generator": "{}"})
    with pytest.raises(GanslimError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_directions(path)


def test_label_table_reads_seeds_and_attributes_and_names_the_bad_line(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("seed,smile,glasses\n3,1,0\n5,0,1\n\n8,1,1\n")
    table = read_label_table(path)
    assert table.seeds == (3, 5, 8) and table.names == ("smile", "glasses")
    assert table.values.tolist() == [[1, 0], [0, 1], [1, 1]]
    for text, words in [("x,smile\n1,0\n2,1\n", "does not start with a header seed"),
                        ("seed,smile\n1,0\n1,1\n", "line 3: seed '1' is not a whole number not used before"),
                        ("seed,smile\n1,0\n2,yes\n", "line 3 holds a label that is not a number"),
                        ("seed,smile\n1,0\n2\n", "line 3 has 1 fields; the header has 2"),
                        ("seed,smile\n1,0\n", "has 1 sample row(s)")]:
        path.write_text(text)
        with pytest.raises(GanslimError, match=words.replace("(", r"\(").replace(")", r"\)")):
            read_label_table(path)


def test_cli_sefa_writes_named_directions(tmp_path, capsys):
    ckpt = save_tiny_stylegan2(tmp_path / "g.pt")
    out = tmp_path / "d.safetensors"
    assert main(["directions", "--generator", str(ckpt), "--output", str(out), "--count", "3"]) == 0
    names, directions = load_directions(out, tiny_stylegan2())
    assert names == ["sefa_0", "sefa_1", "sefa_2"]
    assert torch.equal(directions, sefa_directions(tiny_stylegan2(), 3))
    assert "wrote 3 direction(s) of stylegan2" in capsys.readouterr().out


def test_cli_labels_fits_boundaries_to_the_seeds_w(tmp_path):
    ckpt = save_tiny_stylegan2(tmp_path / "g.pt")
    generator = tiny_stylegan2()
    seeds = list(range(300))
    w = seed_w_plus(generator, seeds)[:, 0].detach()
    planted = sefa_directions(generator, 1)[0]
    scores = w @ planted
    labels = (scores > scores.median()).int().tolist()
    csv = tmp_path / "labels.csv"
    csv.write_text("seed,bright\n" + "".join(f"{s},{label}\n" for s, label in zip(seeds, labels)))
    out = tmp_path / "d.safetensors"
    assert main(["directions", "--generator", str(ckpt), "--output", str(out), "--method", "labels",
                 "--samples", str(csv)]) == 0
    names, directions = load_directions(out, generator)
    assert names == ["bright"] and float(directions[0] @ planted) > 0.95


def write_attribute_images(root, grey_levels: dict[str, list[int]]) -> None:
    """``root/bright/VALUE/i.png``: 16 px images of one grey level each, per value folder."""
    for value, levels in grey_levels.items():
        folder = root / "bright" / value
        folder.mkdir(parents=True)
        for index, level in enumerate(levels):
            Image.new("RGB", (16, 16), (level,) * 3).save(folder / f"{index}.png")


def test_image_boundaries_separate_the_inverted_w_of_two_value_folders(tmp_path):
    """A stand-in inversion puts each image's brightness along a planted direction (plus noise): the boundary fitted
    between the folders 0 and 10 (numbers ordered by value, not as text) recovers it, pointing to 10."""
    generator = tiny_stylegan2()
    write_attribute_images(tmp_path / "images", {"10": [200, 210, 220, 230, 240], "0": [10, 20, 30, 40, 50]})
    planted = sefa_directions(generator, 1)[0]
    rng = torch.Generator().manual_seed(0)

    def invert(image):
        w = image.mean() * 4 * planted + 0.1 * torch.randn(generator.w_dim, generator=rng)
        return w.expand(1, generator.num_ws, generator.w_dim)

    attributes = read_attribute_folders(tmp_path / "images")
    assert attributes.names == ("bright",) and [p.name for p in attributes.folders[0]] == ["0", "10"]
    directions, count = image_boundaries(generator, attributes, invert, progress=False)
    assert count == 10 and directions.shape == (1, generator.w_dim)
    assert float(directions[0] @ planted) > 0.9


def test_cli_images_inverts_each_image_with_the_encoder_and_projection(tmp_path, capsys):
    ckpt = save_tiny_stylegan2(tmp_path / "g.pt")
    generator = tiny_stylegan2()
    encoder = save_encoder(tmp_path / "enc.pt", encoder_for(generator, **TINY_ENCODER), generator)
    write_attribute_images(tmp_path / "images", {"0": [20, 40, 60], "1": [180, 200, 220]})
    out = tmp_path / "d.safetensors"
    assert main(["directions", "--generator", str(ckpt), "--output", str(out), "--method", "images", "--images",
                 str(tmp_path / "images"), "--encoder", str(encoder), "--project-steps", "2"]) == 0
    names, directions = load_directions(out, generator)
    assert names == ["bright"] and abs(float(directions[0].norm()) - 1) < 1e-5
    assert "boundaries fitted to 6 inverted images of" in capsys.readouterr().out


def test_attribute_folders_that_do_not_fit_the_layout_are_one_line(tmp_path):
    write_attribute_images(tmp_path / "images", {"0": [0], "1": [255], "2": [128]})
    with pytest.raises(GanslimError, match=r"holds 3 value folder\(s\) \(0, 1, 2\): an attribute needs exactly two"):
        read_attribute_folders(tmp_path / "images")
    with pytest.raises(GanslimError, match="is not a folder"):
        read_attribute_folders(tmp_path / "missing")


@pytest.mark.parametrize("flags, words", [
    (["--output", "{tmp}/d.pt"], "must end in .safetensors"),
    (["--output", "{tmp}/d.safetensors", "--method", "images", "--images", "{tmp}"],
     "--method images inverts each image to W+: pass --encoder CKPT and/or --project-steps N"),
    (["--output", "{tmp}/d.safetensors", "--encoder", "{tmp}/e.pt"], "--encoder and --project-steps are for --method images"),
    (["--output", "{tmp}/d.safetensors", "--method", "labels"], "--method labels fits one direction per attribute"),
    (["--output", "{tmp}/d.safetensors", "--samples", "{tmp}/x.csv"], "--samples is for --method labels"),
    (["--output", "{tmp}/d.safetensors", "--count", "0"], "--count 0 must be a number of directions"),
])
def test_cli_bad_options_are_one_line_and_write_nothing(tmp_path, capsys, flags, words):
    ckpt = save_tiny_stylegan2(tmp_path / "g.pt")
    args = [flag.format(tmp=tmp_path) for flag in flags]
    assert main(["directions", "--generator", str(ckpt), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganslim directions: error: ") and words in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pt"]
