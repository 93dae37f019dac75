"""`ganslim compress agd`: tiny end-to-end runs for translation and super-resolution, resume after every stage
(and inside the search), the penalty weight's adaptation in the search, the derived student's MACs against the
cost table, the student through `translate`, and the one-line refusals (budget, teacher, data) that leave nothing
behind."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganslim.archs import build_generator
from ganslim.archs.agd import OPERATORS, AGDTranslationSupernet
from ganslim.checkpoints import load_generator, save_model
from ganslim.cli import main as cli_main
from ganslim.config import load_config
from ganslim.data import load_image, make_builtin
from ganslim.data.sr import bicubic_downsample
from ganslim.engine import fit
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs
from ganslim.methods import COMPRESS, METHODS
from ganslim.methods.agd.budget import penalty_floor
from ganslim.methods.agd.config import AGDConfig, AGDStageConfig
from ganslim.methods.agd.cost import CostTable
from ganslim.methods.agd import pipeline
from ganslim.methods.agd.pipeline import run_agd, stage_config
from ganslim.methods.agd.task import load_task
from ganslim.methods.agd.training import Retrain, Search, save_supernet
from helpers import (
    assert_rebuilds_like_export,
    assert_same_tensors,
    build_method,
    dying_at,
    first_batch,
    save_resnet,
    save_tiny_stylegan2,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STAGE_FOLDERS = ["00000-agd-warmup-shapes", "00001-agd-search-shapes", "00002-agd-retrain-shapes"]
# ngf 8, 3 cells at 16 px: the space spans 422K (each cell its cheapest op at the smallest widths) .. 2.22M MACs.
TRANSLATION = dict(load_size=16, crop_size=16, size=16, cells=3, budget_macs="1.5M", warmup_iterations=2,
                   search_iterations=4, eval_every=2, iterations=3, log_every=1, sample_every=0, val_every=0,
                   ckpt_every=0, vgg16_weights="none", device="cpu")
# num_feat 16, 2 cells of 3 ops at an 8 px LR input: 5.97M .. 7.7M MACs.
SR = dict(gt_size=16, size=8, student_width=16, cells=2, ops_per_cell=3, budget_macs="6.5M", warmup_iterations=2,
          search_iterations=4, eval_every=2, iterations=3, log_every=1, sample_every=0, val_every=0, ckpt_every=0,
          vgg19_weights="none", device="cpu")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """shapes2render at 32 px: 8 paired training images."""
    return make_builtin("shapes2render", tmp_path_factory.mktemp("data") / "shapes", size=32, count=8)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory) -> Path:
    """A random resnet_6blocks of width 8: the translation teacher."""
    return save_resnet(tmp_path_factory.mktemp("teacher") / "teacher.pt", 8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """photos2sr at 32 px: train/ 4 HR images."""
    return make_builtin("photos2sr", tmp_path_factory.mktemp("data") / "hr", size=32, count=4)


def save_rrdbnet(path: Path, scale: int = 4) -> Path:
    torch.manual_seed(3)
    kwargs = dict(input_nc=3, output_nc=3, scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
    return save_model(path, build_generator("rrdbnet", **kwargs), "rrdbnet", kwargs)


@pytest.fixture(scope="module")
def rrdbnet(tmp_path_factory) -> Path:
    return save_rrdbnet(tmp_path_factory.mktemp("teacher") / "rrdb.pt")


def translation_config(shapes: Path, teacher: Path, out: Path, **overrides) -> AGDConfig:
    return AGDConfig(**{"data": str(shapes), "teacher": str(teacher), "out_dir": str(out), **TRANSLATION,
                        **overrides})


@pytest.fixture(scope="module")
def straight(shapes, resnet, tmp_path_factory):
    """An uninterrupted translation run."""
    return run_agd(translation_config(shapes, resnet, tmp_path_factory.mktemp("straight")), progress=False)


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_translation_run_searches_within_the_budget_and_exports_a_plain_student(straight, shapes, tmp_path):
    run_dir = straight.run_dir
    assert sorted(p.name for p in run_dir.iterdir()) == [*STAGE_FOLDERS, "config.yaml", "cost_table.json",
                                                         "derived.json", "generator.pt", "pipeline.json",
                                                         "summary.json"]
    summary = read(run_dir / "summary.json")
    assert summary["task"] == "translation" and summary["teacher"]["arch"] == "resnet_6blocks"
    budget = summary["budget"]
    assert (budget["kind"], budget["value"], budget["low"], budget["label"]) == ("macs", 1.5e6, 960944, "1.5M MACs")
    assert (budget["smallest"], budget["largest"]) == (421888, 2224128)
    history = summary["penalty_weight"]["history"]
    assert [entry["step"] for entry in history] == [2, 4] and summary["penalty_weight"]["start"] == 0.01
    derived = summary["derived"]
    assert derived["arch"] == "agd_translation" and derived["cost"] <= 1.5e6 and derived["macs_match"] is True
    assert derived["from"] == "the final argmax" and all(op in OPERATORS for op in derived["ops"])
    # The student as any generator: rebuilt from its arch_kwargs, its counted MACs the table's prediction.
    student = load_generator(run_dir / "generator.pt")
    assert student.arch == "agd_translation" and student.arch_kwargs == derived["arch_kwargs"]
    count = count_macs(student.model, torch.zeros(1, 3, 16, 16))
    assert count.macs_published == derived["predicted_macs"] == derived["cost"] == derived["macs"]["published"]
    assert count.macs == derived["macs"]["true"] and student.meta["crop_size"] == 16
    assert summary["objectives"]["search"]["terms"] == {"l1": 1.0}  # no VGG16: L1 stands in for style + content
    assert summary["objectives"]["retrain"]["terms"] == {"l1": 0.01}
    assert summary["objectives"]["retrain"]["off"] == {"tv": "weight 0", "style": "no VGG16 weights",
                                                       "content": "no VGG16 weights"}
    assert summary["teacher_outputs"] == "computed online each step"
    assert "agd: translation student agd_translation" in straight.summary()
    assert f"within the budget of 1.5M MACs; model {run_dir / 'generator.pt'}" in straight.summary()
    logged = {}
    for folder in STAGE_FOLDERS:
        events = EventAccumulator(str(run_dir / folder / "logs"), size_guidance={"scalars": 0})
        events.Reload()
        logged[folder] = set(events.Tags()["scalars"])
    assert {"loss/largest", "loss/smallest", "loss/random1", "loss/random2"} <= logged[STAGE_FOLDERS[0]]  # sandwich
    assert {"loss/arch", "loss/penalty", "loss/weights", "loss/penalty_weight"} <= logged[STAGE_FOLDERS[1]]
    assert {"loss/l1", "loss/total"} <= logged[STAGE_FOLDERS[2]]
    # translate takes it like any other generator.
    out = tmp_path / "out"
    assert cli_main(["translate", "--ckpt", str(run_dir / "generator.pt"), "--input", str(shapes / "test"),
                     "--aligned", "--output", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (shapes / "test").iterdir())


def test_a_super_resolution_run_distils_an_x4_student_from_an_rrdbnet(photos, rrdbnet, tmp_path):
    config = AGDConfig(data=str(photos), teacher=str(rrdbnet), out_dir=str(tmp_path), **SR)
    result = run_agd(config, progress=False)
    summary = result.summary_content
    assert summary["task"] == "super-resolution" and summary["teacher"]["arch"] == "rrdbnet"
    derived = summary["derived"]
    assert derived["arch"] == "agd_sr" and derived["cost"] <= 6.5e6 and derived["macs_match"] is True
    assert [len(cell) for cell in derived["arch_kwargs"]["ops"]] == [3, 3]
    student = load_generator(result.run_dir / "generator.pt")
    assert student.arch == "agd_sr" and student.signature.output.scale == 4
    retrain = next(result.run_dir.glob("*-retrain-*"))
    assert_rebuilds_like_export(retrain / "checkpoints" / "latest.pt", result.run_dir / "generator.pt")
    assert count_macs(student.model, torch.zeros(1, 3, 8, 8)).macs_published == derived["predicted_macs"]
    with torch.no_grad():
        output = student.model(torch.rand(1, 3, 8, 8))
    assert output.shape == (1, 3, 32, 32) and 0 <= output.min() <= output.max() <= 1
    assert summary["objectives"]["retrain"]["terms"] == {"pixel": 0.01}  # pixel+content without VGG19
    assert summary["objectives"]["warmup"]["terms"] == {"pixel": 1.0}


@pytest.mark.parametrize("stop", ["warmup", "search", "derive", "retrain"])
def test_a_run_stopped_after_any_stage_resumes_to_the_uninterrupted_result(straight, shapes, resnet, tmp_path,
                                                                           stop):
    config = translation_config(shapes, resnet, tmp_path)
    stopped = run_agd(config, stop_after=stop, progress=False)
    assert stopped.summary_content is None and f"resume with --resume {stopped.run_dir}" in stopped.summary()
    assert list(read(stopped.run_dir / "pipeline.json")["stages"]) == list(METHODS.get("agd").stages)[
        :["warmup", "search", "derive", "retrain"].index(stop) + 1]
    kept = {path.name: path.stat().st_mtime_ns for path in stopped.run_dir.rglob("*") if path.is_file()
            and path.name in ("supernet.pt", "search.json", "derived.json", "generator.pt")}
    resumed = run_agd(config, resume=stopped.run_dir, progress=False)
    assert sorted(p.name for p in resumed.run_dir.iterdir() if p.is_dir()) == STAGE_FOLDERS  # no stage ran twice
    for path in resumed.run_dir.rglob("*"):
        if path.name in kept and path.parent != resumed.run_dir:
            assert path.stat().st_mtime_ns == kept[path.name], path  # the finished stages' outputs are reused
    assert_same_tensors(load_generator(straight.run_dir / "generator.pt").model.state_dict(),
                        load_generator(resumed.run_dir / "generator.pt").model.state_dict())
    assert resumed.summary_content["penalty_weight"] == straight.summary_content["penalty_weight"]
    assert resumed.summary_content["derived"] == straight.summary_content["derived"]


def test_a_search_killed_mid_stage_resumes_with_its_penalty_history(straight, shapes, resnet, tmp_path):
    config = translation_config(shapes, resnet, tmp_path, ckpt_every=2)
    with dying_at(Search, 4):  # in its 4th step, after the checkpoint of step 2
        run_agd(config, progress=False)
    run_dir = next((tmp_path).iterdir())
    assert torch.load(run_dir / STAGE_FOLDERS[1] / "checkpoints" / "latest.pt", weights_only=True)["step"] == 2
    resumed = run_agd(config, resume=run_dir, progress=False)
    search = read(run_dir / STAGE_FOLDERS[1] / "search.json")
    assert search["history"] == read(straight.run_dir / STAGE_FOLDERS[1] / "search.json")["history"]
    assert resumed.summary_content["derived"] == straight.summary_content["derived"]


def test_a_search_whose_derived_networks_all_miss_the_budget_is_refused_in_one_line(shapes, resnet, tmp_path):
    config = translation_config(shapes, resnet, tmp_path)
    stopped = run_agd(config, stop_after="search", progress=False)
    search_file = stopped.run_dir / STAGE_FOLDERS[1] / "search.json"
    search = read(search_file)
    for entry in (search["final"], *search["history"]):  # as a search whose penalty never caught up would leave
        entry["cost"] = 2e6
    search_file.write_text(json.dumps(search))
    with pytest.raises(GanslimError) as error:
        run_agd(config, resume=stopped.run_dir, progress=False)
    assert str(error.value) == ("no derived network of the search fits the budget of 1.5M MACs (the final one costs "
                                "2M MACs, the cheapest of the 3 it derived 2M MACs): start again with a higher "
                                "penalty_weight or a longer search (search_epochs)")
    assert not (stopped.run_dir / "derived.json").exists()
    assert list(read(stopped.run_dir / "pipeline.json")["stages"]) == ["warmup", "search"]


def search_method(shapes: Path, resnet: Path, tmp_path: Path, budget: str) -> Search:
    """The search stage built over a fresh supernet (what a warm-up of 0 steps would leave)."""
    config = translation_config(shapes, resnet, tmp_path, budget_macs=budget)
    task = load_task(config, torch.device("cpu"))
    supernet = save_supernet(tmp_path / "supernet.pt", task.supernet(config), task.supernet_kwargs(config))
    stage = stage_config(config, tmp_path, 0, 1, supernet=str(supernet), cost_table=str(tmp_path / "table.json"))
    return build_method(Search, stage)[0]


def choose(search: Search, op: str, width_index: int) -> None:
    """Make ``op`` in every cell at candidate ``width_index`` of every width slot the argmax."""
    with torch.no_grad():
        search.arch.alpha.zero_()
        search.arch.alpha[:, OPERATORS.index(op)] = 1.0
        search.arch.width_logits.zero_()
        search.arch.width_logits[:, width_index] = 1.0


def test_the_penalty_weight_rises_over_the_budget_and_falls_under_its_floor(shapes, resnet, tmp_path):
    search = search_method(shapes, resnet, tmp_path, "1.5M")
    assert read(tmp_path / "table.json")["kind"] == "macs"  # the table the run searches with, written once
    choose(search, "residual", -1)  # the largest network: 2.22M MACs, over the budget
    search.evaluate(10)
    choose(search, "residual", -1)
    search.evaluate(20)
    choose(search, "conv1x1", 0)  # the smallest: 422K, under the floor
    search.evaluate(30)
    choose(search, "conv3x3", 1)  # inside [422K + 0.5 x (1.5M - 422K), 1.5M] = [961K, 1.5M]: kept
    search.evaluate(40)
    assert [(entry["step"], entry["cost"], entry["penalty_weight"]) for entry in search.history] == [
        (10, 2224128, 0.02), (20, 2224128, 0.04), (30, 421888, 0.02), (40, 1044480, 0.02)]
    assert search.penalty_weight.low == 421888 + 0.5 * (1.5e6 - 421888)
    assert search.history[2]["ops"] == ["conv1x1"] * 3 and search.history[2]["widths"] == [16, 16, 16, 1 / 3]
    # The penalty of an architecture step grows with the weight, and its gradient lowers the expensive choices.
    batch = torch.utils.data.default_collate([search.train_dataset()[0]])
    losses = search.train_step(batch)
    assert losses["penalty_weight"] == 0.02 and losses["penalty"] > 0


def test_the_floor_is_measured_from_the_smallest_network_so_the_weight_falls_in_a_tight_budget(shapes, resnet,
                                                                                                tmp_path):
    # The smallest network (422K) costs 70% of a 0.6M budget: a floor of 0.5 x budget (300K) could never be reached
    # and the search would stay at the smallest network; measured from it, the floor is 422K + 0.5 x 178K = 511K.
    search = search_method(shapes, resnet, tmp_path, "0.6M")
    assert search.penalty_weight.low == 421888 + 0.5 * (0.6e6 - 421888)
    choose(search, "conv1x1", 0)
    search.evaluate(10)
    assert search.history[-1]["cost"] == 421888 and search.history[-1]["penalty_weight"] == 0.005
    # A latency table timed again can put the smallest network over a budget the check passed: the floor stays at it.
    assert penalty_floor(search.config, 0.7e6) == 0.6e6


def test_a_latency_budget_searches_with_a_table_measured_here(shapes, resnet, tmp_path):
    tiny = translation_config(shapes, resnet, tmp_path, budget_macs="", budget_latency=1e-6, threads=1)
    with pytest.raises(GanslimError, match=r"the budget of 1e-06 ms is below the smallest sub-network of the search "
                                           r"space \([0-9.]+ ms at 16x16"):
        run_agd(tiny, progress=False)
    assert list(tmp_path.iterdir()) == []
    config = translation_config(shapes, resnet, tmp_path, budget_macs="", budget_latency=1e3, threads=1)
    with pytest.raises(GanslimError, match="is not below the largest sub-network") as error:
        run_agd(config, progress=False)
    smallest, largest = map(float, re.search(r"between ([0-9.]+) ms and ([0-9.]+) ms", str(error.value)).groups())
    config = dataclasses.replace(config, budget_latency=round((smallest + largest) / 2, 3))
    stopped = run_agd(config, stop_after="search", progress=False)
    measured = read(stopped.run_dir / "cost_table.json")
    assert measured["kind"] == "latency" and all(row[-1] > 0 for row in measured["entries"])
    table = CostTable(AGDTranslationSupernet(ngf=8, cells=3), 16, lambda build, shape: pytest.fail("unmeasured"))
    table.add_records(measured["entries"])
    history = read(stopped.run_dir / STAGE_FOLDERS[1] / "search.json")["history"]
    assert [entry["cost"] for entry in history] == [table.predict(entry["ops"], entry["widths"]) for entry in history]


@pytest.mark.parametrize("argv, words", [
    (["--budget-macs", "100K"], "the budget of 100K MACs is below the smallest sub-network of the search space "
                                "(422K MACs at 16x16: each cell its cheapest operator at the smallest widths): pass a "
                                "budget of at least 422K MACs"),
    (["--budget-macs", "3G"], "the budget of 3G MACs is not below the largest sub-network of the search space "
                              "(2.22M MACs at 16x16), so every architecture fits and the penalty never acts: pass a "
                              "budget between 422K MACs and 2.22M MACs"),
    (["--budget-macs", "1M", "--budget-latency", "5"], "give one budget: --budget-macs (e.g. 6G) or "
                                                       "--budget-latency (ms on this CPU), not both"),
    ([], "give one budget"),
    (["--budget-macs", "1M", "--size", "18"], "size 18 does not fit network"),
    (["--budget-macs", "1M", "--set", "input_nc=1"], "mapping 3 to 3 channels, but input_nc=1, output_nc=3: set "
                                                     "input_nc=3 output_nc=3"),
    (["--budget-macs", "1M", "--set", "search_epochs=0"], "the search stage has no length"),
])
def test_bad_budgets_and_options_are_one_line_before_any_run_folder(shapes, resnet, tmp_path, capsys, argv, words):
    out = tmp_path / "runs"
    common = ["--data", str(shapes), "--teacher", str(resnet), "--out-dir", str(out), "--device", "cpu",
              "--no-progress", "--set", "load_size=16", "--set", "crop_size=16", "--set", "cells=3", "--size", "16"]
    assert cli_main(["compress", "agd", *common, *argv]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("ganslim compress: error: ") and words in error, error
    assert not out.exists() or list(out.iterdir()) == []


def test_a_teacher_or_data_that_does_not_fit_is_one_line_leaving_nothing(shapes, photos, resnet, tmp_path, capsys):
    assert METHODS.get("agd").command == COMPRESS
    out = tmp_path / "runs"
    stylegan2 = save_tiny_stylegan2(tmp_path / "stylegan2.pt")
    x2 = save_rrdbnet(tmp_path / "x2.pt", scale=2)
    common = ["--out-dir", str(out), "--device", "cpu", "--no-progress", "--budget-macs", "1M", "--size", "16",
              "--set", "load_size=16", "--set", "crop_size=16", "--set", "cells=3"]
    for argv, words in (
            (["--data", str(shapes), "--teacher", str(stylegan2)], "is a stylegan2 generator, driven by latents: AGD "
                                                                   "compresses image-to-image teachers"),
            (["--data", str(photos), "--teacher", str(x2)], "is a rrdbnet generator of scale x2: AGD's "
                                                            "super-resolution space is x4"),
            (["--data", str(shapes), "--teacher", str(tmp_path / "missing.pt")], "missing.pt"),
            (["--data", str(tmp_path / "nothing"), "--teacher", str(resnet)], "nothing"),
            (["--data", str(shapes / "test"), "--teacher", str(rrdbnet_in(tmp_path))], "no train/ folder of HR "
                                                                                      "images"),
    ):
        assert cli_main(["compress", "agd", *common, *argv]) == 2, argv
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and words in error, error
    assert not out.exists() or list(out.iterdir()) == []


def rrdbnet_in(folder: Path) -> Path:
    return save_rrdbnet(folder / "x4.pt")


def test_unpaired_data_trains_on_the_a_images_split_in_halves_for_the_search(resnet, tmp_path):
    unpaired = make_builtin("flat2striped", tmp_path / "flat2striped", size=32, count=6)
    config = translation_config(unpaired, resnet, tmp_path / "runs")
    task = load_task(config, torch.device("cpu"))
    training, search = task.training_items(config), task.search_items(config)
    count = len(list((unpaired / "trainA").iterdir()))
    assert len(training) == count and len(search) == count // 2
    first = search[0]
    assert sorted(first) == ["arch_image", "image"] and first["image"].shape == first["arch_image"].shape == (3, 16, 16)
    torch.testing.assert_close(first["arch_image"], training[count // 2]["image"])  # the second half's first image
    stopped = run_agd(config, stop_after="warmup", progress=False)
    assert list(stopped.stages) == ["warmup"] and (Path(stopped.stages["warmup"]["run_dir"]) / "supernet.pt").is_file()


def test_a_torchrun_world_is_refused_before_a_run_folder(shapes, resnet, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "launched_by_torchrun", lambda: True)
    with pytest.raises(GanslimError, match="agd runs in one process"):
        pipeline._Pipeline(translation_config(shapes, resnet, tmp_path)).check()
    assert list(tmp_path.iterdir()) == []


def test_a_ground_truth_retrain_on_unpaired_data_is_refused_before_a_run_folder(resnet, tmp_path):
    unpaired = make_builtin("flat2striped", tmp_path / "flat2striped", size=32, count=4)
    config = dataclasses.replace(translation_config(unpaired, resnet, tmp_path / "runs"),
                                 retrain_target="ground_truth")
    with pytest.raises(GanslimError, match="retrain_target=ground_truth needs paired data"):
        run_agd(config, progress=False)
    assert not (tmp_path / "runs").exists()


def test_the_command_runs_every_stage_and_prints_its_summary_line(shapes, resnet, tmp_path, capsys):
    sets = [arg for key, value in TRANSLATION.items() if key not in ("device", "budget_macs", "size", "iterations")
            for arg in ("--set", f"{key}={value}")]
    assert cli_main(["compress", "agd", "--data", str(shapes), "--teacher", str(resnet), "--budget-macs", "1.5M",
                     "--size", "16", "--iterations", "3", "--out-dir", str(tmp_path), "--device", "cpu",
                     "--no-progress", *sets]) == 0
    run_dir = tmp_path / "00000-agd-shapes"
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("ganslim compress agd: translation student agd_translation: ") and line.endswith(
        f"within the budget of 1.5M MACs; model {run_dir / 'generator.pt'}"), line
    assert read(run_dir / "pipeline.json")["stages"].keys() == {"warmup", "search", "derive", "retrain", "export"}


def test_basicsr_paired_folders_feed_the_super_resolution_search(photos, rrdbnet, tmp_path):
    gt, lq = photos / "train", tmp_path / "lq"
    lq.mkdir()
    for path in sorted(gt.iterdir()):
        bicubic_downsample(load_image(path), 4).save(lq / f"{path.stem}x4.png")
    config = AGDConfig(teacher=str(rrdbnet), gt=str(gt), lq=str(lq), out_dir=str(tmp_path / "runs"), **SR)
    assert config.data == str(gt)
    search = load_task(config, torch.device("cpu")).search_items(config)
    assert len(search) == 2 and search[0]["image"].shape == search[0]["arch_image"].shape == (3, 4, 4)
    stopped = run_agd(config, stop_after="warmup", progress=False)
    assert stopped.run_dir.name == "00000-agd-train" and list(stopped.stages) == ["warmup"]
    with pytest.raises(GanslimError, match="gt is set but lq is not: paired super-resolution data needs both"):
        AGDConfig(teacher=str(rrdbnet), gt=str(gt), **SR)


def test_a_ground_truth_retrain_learns_the_b_images_with_the_same_objective(straight, shapes, tmp_path):
    """The from-scratch control: the derived network, objective, data order and seed of the run's retrain, with
    each step's target the B image (paired) instead of the teacher's output; unpaired data is one line."""
    stage = Path(read(straight.run_dir / "pipeline.json")["stages"]["retrain"]["run_dir"])
    config = load_config(AGDStageConfig, stage / "config.yaml", method=Retrain.name,
                         overrides={"out_dir": str(tmp_path), "retrain_target": "ground_truth"})
    method, _ = build_method(Retrain, config)
    item = method.train_dataset()[0]
    source = method.task.train_images(config)[0][0]  # the paired item (A, B) the retrain draws first
    torch.testing.assert_close(item["image"], source["A"])
    torch.testing.assert_close(item["target"], source["B"])
    assert not torch.equal(source["A"], source["B"])
    batch = first_batch(method)
    with torch.no_grad():
        expected = method.objective(method.generator(batch["image"]), batch["target"])["total"]
        teacher_loss = method.distill(method.generator(batch["image"]), batch["image"])["total"]
    assert not torch.allclose(expected, teacher_loss)  # the target really is another one
    assert torch.allclose(method.train_step(batch)["total"], expected)
    result = fit(config, Retrain, progress=False)
    assert load_generator(result.exported["generator"]).meta["target"] == "ground_truth"

    unpaired = make_builtin("flat2striped", tmp_path / "flat2striped", size=32, count=4)
    refused = dataclasses.replace(config, data=str(unpaired))
    with pytest.raises(GanslimError, match="retrain_target=ground_truth needs paired data"):
        build_method(Retrain, refused)[0].train_dataset()
