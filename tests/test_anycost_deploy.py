"""Anycost sub-generators for users: `generate` / `profile` / `export` with `--resolution` and `--channels`, and
`search anycost`."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.compress import SlicedSubGenerator, extract_stylegan2_subnet
from ganslim.compress.anycost_search import AnycostSpace, Evolution, Fidelity, search_anycost
from ganslim.compress.search import Budget
from ganslim.measure.profile import count_macs, count_params
from helpers import save_resnet, save_tiny_stylegan2, save_tiny_student, tiny_stylegan2
from stylegan2_reference import random_rosinality_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# TINY_STYLEGAN2 (16 px, [8, 8, 4] per side) has 6 layers [8, 8, 8, 8, 4, 4]; Anycost's uniform 0.5 config is
# [8, 8, 4, 4, 2, 2] (uncapped widths 16, 16, 8, 8, 4, 4), which at 8 px runs its first 4 layers.
HALF_AT_8 = [8, 8, 4, 4]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_stylegan2(tmp_path_factory.mktemp("ckpt") / "g.pt")


def seed_z(seeds) -> torch.Tensor:
    return torch.cat([torch.randn(1, 16, generator=torch.Generator().manual_seed(s)) for s in seeds])


def one_line_error(capsys, command: str, *words: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ganslim {command}: error: "), err
    for word in words:
        assert word in err[0], (word, err[0])


def test_generate_draws_the_sub_generators_images(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--ckpt", str(ckpt), "--seeds", "0-2", "--output", str(out), "--device", "cpu",
                 "--resolution", "8", "--channels", "0.5", "--save-array"]) == 0
    assert "as its 8 px sub-generator of channels 8,8,4,4" in capsys.readouterr().out
    images = torch.from_numpy(np.load(out / "images.npy"))
    assert images.shape == (3, 3, 8, 8)
    compact = extract_stylegan2_subnet(tiny_stylegan2(), 8, 0.5)  # the same sub-generator with its own tensors
    with torch.no_grad():
        torch.testing.assert_close(images, compact(seed_z([0, 1, 2])), atol=1e-5, rtol=0)


def test_generate_takes_a_config_file_and_its_resolution(ckpt, tmp_path):
    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps({"small": {"channels": [8, 8, 4, 4, 2, 2], "res": 8, "macs": 1}}))
    out = tmp_path / "out"
    assert main(["generate", "--ckpt", str(ckpt), "--seeds", "0", "--output", str(out), "--device", "cpu",
                 "--channels", f"{configs}:small", "--save-array"]) == 0
    compact = extract_stylegan2_subnet(tiny_stylegan2(), 8, HALF_AT_8)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(np.load(out / "images.npy")), compact(seed_z([0])), atol=1e-5,
                                   rtol=0)


def test_profile_reports_the_sub_generators_params_and_both_mac_conventions(ckpt, capsys):
    assert main(["profile", str(ckpt), "--resolution", "8", "--channels", "0.5", "--json", "--repeats", "1",
                 "--warmup", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    compact = extract_stylegan2_subnet(tiny_stylegan2(), 8, 0.5)
    whole = count_macs(compact, (torch.zeros(1, 16),))
    synthesis = count_macs(*compact.parts()["synthesis"])
    assert report["subnet"] == {"resolution": 8, "channels": HALF_AT_8}
    assert (report["params"], report["macs"], report["macs_published"]) == (
        count_params(compact), whole.macs, whole.macs_published)
    assert report["parts"]["synthesis"]["params"] == count_params(compact.synthesis)
    assert (report["parts"]["synthesis"]["macs"], report["parts"]["synthesis"]["macs_published"]) == (
        synthesis.macs, synthesis.macs_published)
    assert report["parts"]["synthesis"]["input_shape"] == [1, 4, 16]
    assert report["signature"]["output"]["resolution"] == 8


def test_profile_of_a_name_builds_it_at_size_then_takes_the_sub_generator(capsys):
    # config-f at 8 px: four 512-wide layers; uniform 0.25 of the uncapped widths (1024, 1024, 512, 512).
    assert main(["profile", "stylegan2", "--size", "8", "--resolution", "4", "--channels", "0.25", "--json",
                 "--repeats", "1", "--warmup", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["subnet"] == {"resolution": 4, "channels": [256, 256]}
    with torch.device("meta"):
        compact = build_generator("stylegan2", size=4, channels=[256, 256])
    assert report["params"] == count_params(compact)
    assert report["parts"]["synthesis"]["params"] == count_params(compact.synthesis)
    assert report["parts"]["synthesis"]["macs_published"] == count_macs(*compact.parts()["synthesis"]).macs_published


@pytest.mark.parametrize("command", ["generate", "profile", "export"])
@pytest.mark.parametrize("flags, words", [
    (["--resolution", "32"], ["resolution 32", "4 .. 16"]),
    (["--channels", "8,8,4"], ["has 3 widths", "takes 6"]),
    (["--channels", "9,8,8,8,4,4"], ["layer 0", "width 9", "outside 1 .. 8"]),
    (["--channels", "1.5"], ["ratio 1.5", "(0, 1]"]),
])
def test_bad_sub_generators_are_one_line_and_write_nothing(ckpt, tmp_path, capsys, command, flags, words):
    out = tmp_path / "out"
    line = {"generate": ["generate", "--ckpt", str(ckpt), "--seeds", "0", "--output", str(out)],
            "profile": ["profile", str(ckpt), "--repeats", "1"],
            "export": ["export", "--ckpt", str(ckpt), "--output", f"{out}/"]}[command]
    assert main(line + flags) == 2
    one_line_error(capsys, command, *words)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("command", ["profile", "export"])
def test_sub_generator_flags_of_another_model_are_one_line(tmp_path, capsys, command):
    model = save_resnet(tmp_path / "r.pt", 4)
    line = {"profile": ["profile", str(model)], "export": ["export", "--ckpt", str(model)]}[command]
    assert main(line + ["--channels", "0.5"]) == 2
    one_line_error(capsys, command, "a sub-generator of a stylegan2 generator", "ResnetGenerator", "drop them")


def test_generate_refuses_the_flags_for_a_mobile_stylegan(tmp_path, capsys):
    student = save_tiny_student(tmp_path / "s.pt")
    assert main(["generate", "--ckpt", str(student), "--seeds", "0", "--output", str(tmp_path / "out"),
                 "--resolution", "8"]) == 2
    one_line_error(capsys, "generate", "MobileStyleGAN", "drop them")


def test_the_sliced_reference_has_the_compacts_interface_and_images():
    generator = tiny_stylegan2()
    sliced, compact = SlicedSubGenerator(generator, 8, 0.5), extract_stylegan2_subnet(generator, 8, 0.5)
    w_plus = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(1))
    noise = [torch.randn(2, 1, side, side) for side in (4, 8, 8)]
    assert sliced.num_ws == compact.num_ws == 4
    assert [name for name, _ in sliced.noises.named_buffers()] == ["noise_0", "noise_1", "noise_2"]
    with torch.no_grad():
        for mode in ("const", noise):
            torch.testing.assert_close(sliced.synthesis(w_plus, noise=mode), compact.synthesis(w_plus, noise=mode),
                                       atol=1e-5, rtol=0)
    assert generator.active_subnet.resolution == 16  # left full


def test_export_writes_the_compact_graph_checked_against_the_sliced_model(ckpt, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert main(["export", "--ckpt", str(ckpt), "--resolution", "8", "--channels", "0.5", "--w-plus", "--noise",
                 "input", "--output", f"{out}/", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    sidecar = json.loads((out / "g.synthesis.onnx.json").read_text())
    assert sidecar["meta"]["subnet"]["resolution"] == 8 and sidecar["meta"]["subnet"]["channels"] == HALF_AT_8
    assert sidecar["meta"]["subnet"]["of"]["arch_kwargs"]["size"] == 16
    assert sidecar["arch_kwargs"]["size"] == 8 and sidecar["arch_kwargs"]["channels"] == HALF_AT_8
    assert [entry["shape"] for entry in sidecar["inputs"]] == [[1, 4, 16], [1, 1, 4, 4], [1, 1, 8, 8], [1, 1, 8, 8]]
    assert report["parts"]["synthesis"]["max_abs_diff"] < 1e-4

    # The graph holds the smaller tensors: the 8 px convs are 8 -> 4 and 4 -> 4 (the full one's 8 -> 8), nothing
    # of the 16 px side, and fewer weights than the full synthesis has (even with some stored twice, folded).
    graph = onnx.load(out / "g.synthesis.onnx").graph
    shapes = [tuple(tensor.dims) for tensor in graph.initializer]
    kernels = {shape for shape in shapes if len(shape) == 4 and shape[2:] == (3, 3)}
    assert kernels <= {(8, 8, 3, 3), (4, 8, 3, 3), (8, 4, 3, 3), (4, 4, 3, 3)} and (4, 4, 3, 3) in kernels
    assert sum(1 for shape in shapes if len(shape) == 4 and shape[:2] == (1, 3)) == 2  # two to-RGB biases
    full = tiny_stylegan2()
    assert sum(int(np.prod(shape)) for shape in shapes) < count_params(full.synthesis)

    # In ONNX Runtime it renders what the sliced full generator renders.
    w_plus = torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(3))
    noise = [torch.randn(1, 1, side, side, generator=torch.Generator().manual_seed(side)) for side in (4, 8, 8)]
    session = onnxruntime.InferenceSession(str(out / "g.synthesis.onnx"))
    names = [i.name for i in session.get_inputs()]
    image = session.run(None, dict(zip(names, [t.numpy() for t in (w_plus, *noise)])))[0]
    padded = torch.cat([w_plus, torch.zeros(1, 2, 16)], dim=1)
    with torch.no_grad(), full.subnet(8, 0.5):
        expected = full.synthesis(padded, noise=noise + [torch.zeros(1, 1, 16, 16)] * 2)
    np.testing.assert_allclose(image, expected.numpy(), atol=1e-4)


def test_openvino_export_of_a_sub_generator_passes_its_parity_check(ckpt, tmp_path, capsys):
    out = tmp_path / "ov"
    assert main(["export", "--ckpt", str(ckpt), "--channels", "0.25", "--format", "openvino", "--output", f"{out}/",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for part in ("mapping", "synthesis"):
        assert report["parts"][part]["runtime"].startswith("openvino")
        assert report["parts"][part]["max_abs_diff"] < 1e-4
    sidecar = json.loads((out / "g.synthesis.xml.json").read_text())
    assert sidecar["meta"]["subnet"] == {"resolution": 16, "channels": [4, 4, 2, 2, 1, 1],
                                         "of": {"arch": "stylegan2", "arch_kwargs": sidecar["meta"]["subnet"]["of"]
                                                ["arch_kwargs"]}}


# ----------------------------------------------------------------------------------------------------------
# ganslim search anycost

# Layers [32, 32, 32, 32, 16, 16]; flexible widths (at least the uniform 0.25 config [16, 16, 8, 8, 4 -> 8, 8]):
# 4 px {16, 24, 32}, 8 px {8, 16, 24, 32}, 16 px {8, 12, 16}: 144 configurations at 8 px, 1296 at 16 px.
WIDE = {"size": 16, "channels": [32, 32, 16], "style_dim": 16, "n_mlp": 2}


def wide_stylegan2():
    generator = build_generator("stylegan2", **WIDE).eval()
    generator.load_state_dict({**generator.state_dict(), **random_rosinality_state(**WIDE, seed=2)}, strict=True)
    return generator


@pytest.fixture(scope="module")
def wide_ckpt(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("wide") / "wide.pt", wide_stylegan2(), "stylegan2", WIDE)


def published_macs(generator, resolution, channels) -> int:
    compact = extract_stylegan2_subnet(generator, resolution, channels)
    return count_macs(compact, (torch.zeros(1, 16),)).macs_published


def test_the_space_holds_anycosts_flexible_widths_and_counts_the_compacts_macs():
    generator = wide_stylegan2()
    space = AnycostSpace.of(generator, 8)
    assert space.candidates == ((32, 24, 16), (32, 24, 16), (32, 24, 16, 8), (32, 24, 16, 8))
    assert AnycostSpace.of(generator).candidates[4:] == ((16, 12, 8), (16, 12, 8))
    assert space.size() == 144 == len({tuple(c) for c in space.enumerate()})
    assert space.smallest() == [16, 16, 8, 8]
    assert space.predict_macs([24, 16, 32, 8]).macs_published == published_macs(generator, 8, [24, 16, 32, 8])


def test_search_under_macs_finds_the_best_fitting_config_and_generate_reads_it_back(wide_ckpt, tmp_path, capsys):
    generator, out = wide_stylegan2(), tmp_path / "configs.json"
    space, budget = AnycostSpace.of(generator, 8), 600_000
    fidelity = Fidelity(generator, 8, latents=4)
    fitting = [c for c in space.enumerate() if space.predict_macs(c).macs_published <= budget]
    expected = max(fitting, key=lambda c: fidelity(c)["psnr"])
    assert 0 < len(fitting) < space.size()

    assert main(["search", "anycost", "--ckpt", str(wide_ckpt), "--budget-macs", "600K", "--resolution", "8",
                 "--latents", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"(exhaustive, {len(fitting)} within budget)" in printed and f"{out}:600K" in printed
    entry = json.loads(out.read_text())["600K"]
    assert entry["channels"] == expected + [16, 16] and entry["res"] == 8  # the unrun 16 px layers at full width
    assert entry["macs"] == published_macs(generator, 8, expected) <= budget
    assert entry["psnr"] == pytest.approx(fidelity(expected)["psnr"], abs=1e-3)

    images = tmp_path / "images"
    assert main(["generate", "--ckpt", str(wide_ckpt), "--seeds", "0-1", "--output", str(images), "--device", "cpu",
                 "--channels", f"{out}:600K", "--save-array"]) == 0
    compact = extract_stylegan2_subnet(generator, 8, expected)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(np.load(images / "images.npy")), compact(seed_z([0, 1])),
                                   atol=1e-5, rtol=0)


def test_evolution_shows_its_generations_and_keeps_to_the_budget(wide_ckpt, tmp_path, capsys):
    out = tmp_path / "evolved.json"
    assert main(["search", "anycost", "--ckpt", str(wide_ckpt), "--budget-macs", "1.2M", "--strategy", "evolution",
                 "--population", "6", "--generations", "2", "--latents", "2", "--name", "mine", "--out",
                 str(out)]) == 0
    captured = capsys.readouterr()
    assert "generation 2/2" in captured.err and "(evolution, " in captured.out
    entry = json.loads(out.read_text())["mine"]
    generator = wide_stylegan2()
    assert entry["res"] == 16 and entry["macs"] == published_macs(generator, 16, entry["channels"]) <= 1_200_000
    assert entry["psnr"] == pytest.approx(Fidelity(generator, 16, latents=2)(entry["channels"])["psnr"], abs=1e-3)


def test_a_latency_budget_times_each_candidates_compact_model():
    generator = wide_stylegan2()
    timed = []

    def stand_in(compact) -> float:  # 1 ms per 100k true MACs
        timed.append(compact.layer_channels)
        return count_macs(compact, (torch.zeros(1, 16),)).macs / 1e5

    budget = Budget(None, ms=4.0, size=8)
    result = search_anycost(generator, budget, fidelity=Fidelity(generator, 8, latents=2), latency=stand_in,
                            evolution=Evolution("evolution", population=4, generations=1), progress=False)
    best = result.best
    assert best["latency_ms"] == pytest.approx(best["macs"] / 1e5) and best["latency_ms"] <= 4.0
    assert timed[0] == (16, 16, 8, 8) and tuple(best["channels"]) in timed  # the smallest first, then candidates
    assert result.strategy == "evolution" and result.evaluated == len(timed) - 1  # plus the feasibility check


@pytest.mark.parametrize("flags, words", [
    (["--budget-macs", "100K"], ["budget 100K MACs", "below the smallest", "raise the budget"]),
    (["--budget-ms", "0.000001"], ["below the smallest sub-network's latency", "raise the budget"]),
    ([], ["no budget given", "--budget-macs"]),
    (["--budget-macs", "1G", "--resolution", "64"], ["resolution 64", "4 .. 16"]),
])
def test_impossible_searches_are_one_line_and_write_nothing(wide_ckpt, tmp_path, capsys, flags, words):
    out = tmp_path / "c.json"
    assert main(["search", "anycost", "--ckpt", str(wide_ckpt), "--out", str(out), "--latents", "1",
                 "--latency-repeats", "1", *flags]) == 2
    one_line_error(capsys, "search", *words)
    assert not out.exists()


def test_search_refuses_an_existing_out_and_another_model(wide_ckpt, tmp_path, capsys):
    out = tmp_path / "c.json"
    out.write_text("{}")
    assert main(["search", "anycost", "--ckpt", str(wide_ckpt), "--budget-macs", "1G", "--out", str(out)]) == 2
    one_line_error(capsys, "search", "already exists")
    assert out.read_text() == "{}"
    resnet = save_resnet(tmp_path / "r.pt", 4)
    assert main(["search", "anycost", "--ckpt", str(resnet), "--budget-macs", "1G", "--out",
                 str(tmp_path / "d.json")]) == 2
    one_line_error(capsys, "search", "ResnetGenerator")
