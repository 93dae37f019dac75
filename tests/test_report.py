"""ganslim.measure.report and `ganslim report`: a complete page from each kind of run alone, laid out for a reader
(summary first, labelled grids, config folded), results files included, bad folders and outputs refused."""

from __future__ import annotations

import html
import json
import re
import shutil

import pytest
import torch

import ganslim.atomic
import ganslim.measure.report
from ganslim.checkpoints import load_generator
from ganslim.cli import main
from ganslim.data import make_builtin
from ganslim.engine import fit
from ganslim.engine.logging import RunLogger
from ganslim.measure.bench import BenchResult, BenchRow, write_bench
from ganslim.measure.profile import LatencyStats, count_macs, count_params
from ganslim.measure.report.page import si
from ganslim.methods.omgd import OMGDConfig, omgd_method
from ganslim.methods.teachers import CycleGAN, CycleGANConfig, Pix2Pix, Pix2PixConfig
from helpers import save_resnet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32
TINY = dict(load_size=SIZE, crop_size=SIZE, batch_size=4, epochs=1, epochs_decay=0, log_every=2, sample_every=0,
            val_every=0, ckpt_every=0, device="cpu", max_train_images=4)


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    return make_builtin("flat2striped", tmp_path_factory.mktemp("data") / "stripes", size=SIZE, count=6)


@pytest.fixture(scope="module")
def runs(dataset, unpaired, tmp_path_factory) -> dict:
    """One tiny real run of each kind: pix2pix (unet, needs 32 px), cyclegan, omgd paired and unpaired."""
    out = str(tmp_path_factory.mktemp("runs"))
    omgd = dict(TINY, base_ngf=4, ndf=8, student="mobile_resnet", n_blocks=3, vgg_weights="none", out_dir=out)
    configs = {
        "pix2pix": (Pix2PixConfig(**TINY, ngf=4, ndf=4, generator="unet", num_downs=5, data=str(dataset),
                                  out_dir=out), Pix2Pix),
        "cyclegan": (CycleGANConfig(**TINY, ngf=4, ndf=4, generator="resnet", n_blocks=1, pool_size=3,
                                    data=str(unpaired), out_dir=out), CycleGAN),
        "omgd": (OMGDConfig(**omgd, data=str(dataset)), None),
        "omgd_unpaired": (OMGDConfig(**omgd, data=str(unpaired)), None),
    }
    return {name: fit(config, method or omgd_method(config), progress=False).run_dir
            for name, (config, method) in configs.items()}


def report(run, *flags):
    """Run `ganslim report RUN` and return the page with its inline images blanked (they are long base64)."""
    assert main(["report", str(run), "--latency-repeats", "1", *flags]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    return re.sub(r'src="data:image/png;base64,[^"]+"', 'src=""', page)


def grid_headers(page: str) -> list[list[str]]:
    """The column labels of every image grid, in order."""
    heads = re.findall(r'<table class="grid"[^>]*>\n<thead><tr>(.*?)</tr></thead>', page)
    return [re.findall(r'<th scope="col">(.*?)</th>', head) for head in heads]


def summary_header(page: str) -> list[str]:
    head = re.search(r'<table class="summary">\n<thead><tr>(.*?)</tr></thead>', page).group(1)
    return re.findall(r"<th>(.*?)</th>", head)


def row(page: str, name: str) -> list[str]:
    """The cells of the summary row ``name`` (header excluded)."""
    match = re.search(rf"<tr><th>{re.escape(name)}</th>(.*?)</tr>", page)
    return re.findall(r"<td[^>]*>(.*?)</td>", match.group(1)) if match else []


def test_pix2pix_page_reads_top_down_summary_grid_config(runs):
    run = runs["pix2pix"]
    before = {p.name for p in run.iterdir()}
    page = report(run)
    assert {p.name for p in run.iterdir()} - before == {"report.html"}  # the page is self-contained

    # Summary first, then images, then the config folded away at the end; no YAML outside the fold.
    assert re.search(r"<table[^>]*>", page).group() == '<table class="summary">'
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Images</h2>") < page.index("<details>")
    assert "<pre>" not in page[:page.index("<details>")]
    config_keys = len((run / "config.yaml").read_text().splitlines())
    assert f"<summary>Config (config.yaml, {config_keys} keys)</summary>\n<pre>method: pix2pix" in page

    assert summary_header(page) == ["", "generator"]
    generator = load_generator(run / "generator.pt").model
    macs = count_macs(generator, torch.zeros(1, 3, SIZE, SIZE))
    assert row(page, "parameters") == [si(count_params(generator))]
    assert row(page, f"MACs, true ({SIZE}×{SIZE})") == [si(macs.macs)]
    assert row(page, f"MACs, published convention ({SIZE}×{SIZE})") == [si(macs.macs_published)]
    assert not re.search(r"<td[^>]*>\d[\d,]{4,}</td>", page)  # no count printed as a raw integer
    assert re.fullmatch(r"\d+\.\d ms", row(page, f"CPU latency, 1 thread, quick estimate ({SIZE}×{SIZE}, median)")[0])
    assert re.fullmatch(r"-?\d+\.\d\d dB", row(page, "PSNR vs target")[0])
    assert "quick estimate</strong>, not a benchmark" in page

    assert grid_headers(page) == [["input", "generator", "target"]]
    assert page.count('<img class="pixelated" alt=') == 2 * 3  # val holds 2 pairs: 2 rows of 3 images
    assert page.count("<table") == page.count('<div class="table-wrap"><table')  # every table scrolls alone
    assert ".table-wrap { max-width: 100%; overflow-x: auto;" in page


def test_training_curves_come_from_the_runs_log(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["pix2pix"], run, ignore=shutil.ignore_patterns("report.html", "logs"))
    logger = RunLogger(run, enabled=True, total_steps=4, start_step=0, progress=False)
    for step, loss, val_psnr in ((2, 4.0, 10.0), (4, 2.0, 12.5)):
        logger.track({"G_L1": loss})
        logger.log_losses(step, {})
        logger.log_validation(step, {"psnr": val_psnr})
    logger.close()
    page = report(run, "--no-latency")
    assert page.index("<h2>Images</h2>") < page.index("<h2>Training curves (logs/log.txt)</h2>") < page.index(
        "<details>")
    captions = re.findall(r"<figcaption>(.*?) <span>", page)
    assert captions == ["G_L1: 2", "val psnr: 12.5"]
    assert '<polyline points="4.0,66.0 236.0,4.0"/>' in page  # psnr rises from the bottom left to the top right


def test_cyclegan_page_shows_each_direction_and_its_cycle(runs, tmp_path):
    bench = _bench(tmp_path / "bench")
    written = json.loads(bench.json.read_text())
    bench.json.write_text(json.dumps({**written, "notes": ["* an fp32 row above 100% of the peak: why"]}))
    page = report(runs["cyclegan"], "--bench", str(bench.json.parent))
    assert "<h2>Benchmark (bench.json)</h2>" in page and "OpenVINO / int8 latency:" not in page
    assert "* an fp32 row above 100% of the peak: why" in page  # bench's footnotes come with its table
    assert summary_header(page) == ["", "G_A", "G_B"]  # two generators, no student to compare
    assert grid_headers(page) == [["input A", "G_A: fake B", "G_B(G_A): back to A"],
                                  ["input B", "G_B: fake A", "G_A(G_B): back to B"]]
    assert not row(page, "PSNR vs target")  # unpaired: nothing to score against
    eval_file = runs["cyclegan"] / "eval.json"
    assert f"--out {eval_file}</code>, then run the report again" in page


def test_omgd_paired_page_compares_the_student_with_both_teachers(runs):
    run = runs["omgd"]
    page = report(run)
    assert summary_header(page) == ["", "wide teacher", "deep teacher", "student", "student vs wide teacher"]
    wide, student = (count_params(load_generator(run / name).model) for name in ("teacher_wide.pt", "generator.pt"))
    assert row(page, "parameters")[-1] == f"{wide / student:.1f}× fewer"
    assert row(page, "PSNR vs teacher")[2] != "–" and row(page, "PSNR vs teacher")[0] == "–"
    assert grid_headers(page) == [["input", "wide teacher", "deep teacher", "student", "target"]]


def test_omgd_unpaired_student_is_scored_against_its_teacher_snapshot(runs):
    page = report(runs["omgd_unpaired"])
    assert summary_header(page) == ["", "teacher (snapshot)", "student", "student vs teacher (snapshot)"]
    assert re.fullmatch(r"-?\d+\.\d\d dB", row(page, "PSNR vs teacher")[1])
    assert not row(page, "PSNR vs target")
    assert grid_headers(page) == [["input", "teacher (snapshot)", "student"]]


def _bench(folder):
    """A small bench output (made without timing anything) in ``folder``."""
    models = [{"name": "teacher", "path": None, "arch": "unet", "params": 125_000, "macs": 10**7,
               "macs_published": 2 * 10**7, "input_shape": [1, 3, SIZE, SIZE]}]
    rows = [BenchRow("teacher", "torch", "ok", runtime="torch", latency=LatencyStats(3.0, 2.5, 4.0, 3),
                     quality={"psnr": 17.25, "ssim": 0.5, "psnr_ref": float("inf"), "ssim_ref": 1.0}),
            BenchRow("teacher", "openvino", "skipped", reason="openvino is not installed")]
    result = BenchResult(models=models, rows=rows, machine={"cpu": "test", "logical_cpus": 2, "versions": {}},
                         settings={"size": SIZE, "batch": 1, "threads": 1, "repeats": 3, "warmup": 1,
                                   "reference": "teacher", "data": "d", "split": "val", "num_images": 2},
                         peak={"gflops": 110.0, "gflops_median": 100.0, "matmul_size": 64})
    return write_bench(result.to_dict(), folder)


def test_gan_compression_pipeline_page_includes_its_summary_eval_and_bench(runs, dataset, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["compress", "gan-compression", "--data", str(dataset), "--teacher", str(runs["pix2pix"]),
                 "--out-dir", str(out), "--batch-size", "4", "--epochs", "1", "--epochs-decay", "0",
                 "--finetune-epochs", "1", "--finetune-epochs-decay", "0", "--size", "64", "--no-progress",
                 "--budget-macs", "20M", "--device", "cpu", "--set", f"load_size={SIZE}", "--set",
                 f"crop_size={SIZE}", "--set", "sample_every=0", "--set", "max_train_images=4",
                 "--set", "candidates=4;8;16;16;8;8;8;4,2"]) == 0
    run = next(out.iterdir())
    assert main(["eval", "--ckpt", str(run), "--data", str(dataset), "--split", "val", "--size", str(SIZE),
                 "--metrics", "psnr,ssim", "--device", "cpu", "--out", str(run / "eval.json")]) == 0
    _bench(run / "bench")

    page = report(run)
    assert summary_header(page) == ["", "teacher", "student", "student vs teacher"]
    assert row(page, "architecture") == ["unet", "mobile_resnet", "–"]
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert titles == ["Summary", "Images", "Run summary (summary.json)", "Evaluation (eval.json)",
                      "Benchmark (bench.json)", "GAN Compression stages (pipeline.json)"]
    summary = json.loads((run / "summary.json").read_text())
    assert f"<tr><th>macs_published</th><td>{si(summary['student']['macs_published'])}</td>" in page
    # MACs at the size the pipeline counted its budget at (64), images at the training size (32).
    assert row(page, "MACs, published convention (64×64)")[1] == si(summary["student"]["macs_published"])
    assert html.escape(f"images of aligned split 'val' of {dataset} (2 pairs)") in page
    assert str(summary["student"]["macs"]) not in page
    assert "<td>17.25</td>" in page and "skipped: openvino is not installed" in page  # the bench table
    assert re.findall(r"<tr><th>(supernet|search|finetune|export)</th>", page) == [
        "supernet", "search", "finetune", "export"]
    assert "Not in this report" not in page  # eval.json and bench.json are there

    # A stage folder is a run too: the supernet stage exports no generator.pt, and says so.
    supernet = next(run.glob("*-gan-compression-supernet-*"))
    capsys.readouterr()
    page = report(supernet, "--no-latency")
    assert summary_header(page) == ["", "teacher"]
    assert f"not in the report: no student: '{supernet / 'generator.pt'}' not found" in capsys.readouterr().out


def test_eval_out_writes_the_json_that_json_prints(dataset, checkpoints, tmp_path, capsys):
    command = ["eval", "--ckpt", str(checkpoints["student"]), "--data", str(dataset), "--split", "val", "--size",
               str(SIZE), "--metrics", "psnr,ssim", "--device", "cpu"]
    assert main([*command, "--json", "--out", str(tmp_path / "run" / "eval.json")]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "run" / "eval.json").read_text() == printed and json.loads(printed)["metrics"]["psnr"] > 0
    assert main([*command, "--out", str(tmp_path / "again.json")]) == 0  # without --json: the lines, and the file
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"wrote {tmp_path / 'again.json'}" and any("PSNR vs target" in line for line in lines)
    assert json.loads((tmp_path / "again.json").read_text())["metrics"] == json.loads(printed)["metrics"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    assert main([*command, "--out", str(tmp_path / "run")]) == 2  # a folder: refused before evaluating
    assert capsys.readouterr().err.strip().endswith(f"--out '{tmp_path / 'run'}' is a folder: pass a file name")


def test_missing_data_and_no_latency_say_what_adds_them(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"method: pix2pix\ndata: {tmp_path / 'moved'}\ncrop_size: {SIZE}\n")
    save_resnet(run / "generator.pt", 4)
    page = report(run, "--no-latency")
    out = capsys.readouterr().out.splitlines()
    assert out == [f"wrote {run / 'report.html'}",
                   f"not in the report: the run's data folder '{tmp_path / 'moved'}' is not here: pass --data DIR "
                   "for the image grid and the quality figures",
                   "not in the report: latency not timed (--no-latency)"]
    assert "<h2>Images</h2>" not in page and not row(page, "PSNR vs target") and "CPU latency" not in page
    assert "--data DATA" in page  # the eval command to fill in

    student = save_resnet(tmp_path / "student.pt", 2)
    page = report(run, "--student", str(student), "--no-latency")
    assert summary_header(page) == ["", "generator", "student", "student vs generator"]


def test_latency_size_falls_back_to_the_run_size_for_models_that_need_it(runs, monkeypatch, capsys):
    monkeypatch.setattr(ganslim.measure.report, "LATENCY_SIDE", SIZE // 2)  # the unet (5 downsamplings) needs 32 px
    page = report(runs["pix2pix"], "--quality-images", "1")
    assert row(page, f"CPU latency, 1 thread, quick estimate ({SIZE}×{SIZE}, median)")
    assert main(["report", str(runs["pix2pix"]), "--latency-size", str(SIZE // 2)]) == 2
    err = capsys.readouterr().err
    assert "multiples of 32, got (1, 3, 16, 16)" in err and "pass a --latency-size they accept" in err


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ganslim report: error: ")
    return err


def test_refuses_folders_that_are_not_runs_and_unwritable_outputs(runs, tmp_path, capsys, monkeypatch):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "run folder" in _one_line_error(capsys) and not (tmp_path / "missing").exists()
    (tmp_path / "photos").mkdir()
    assert main(["report", str(tmp_path / "photos")]) == 2
    assert "is not a ganslim run folder (no config.yaml)" in _one_line_error(capsys)
    assert not any((tmp_path / "photos").iterdir())  # nothing written into it

    run = tmp_path / "run"
    shutil.copytree(runs["pix2pix"], run, ignore=shutil.ignore_patterns("report.html"))
    (tmp_path / "pages").mkdir()
    assert main(["report", str(run), "--out", str(tmp_path / "pages")]) == 2
    assert "is a folder: pass a file name" in _one_line_error(capsys)
    (tmp_path / "file").write_text("")
    assert main(["report", str(run), "--out", str(tmp_path / "file" / "report.html")]) == 2
    assert "is a file, not a folder" in _one_line_error(capsys)

    assert main(["report", str(run), "--eval", str(tmp_path / "none.json")]) == 2
    assert f"--eval '{tmp_path / 'none.json'}' not found" in _one_line_error(capsys)
    (run / "eval.json").write_text("{not json")
    assert main(["report", str(run)]) == 2
    assert "eval.json as JSON (JSONDecodeError): fix or delete it" in _one_line_error(capsys)
    (run / "eval.json").unlink()

    def read_only(source, target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(ganslim.atomic.os, "replace", read_only)
    assert main(["report", str(run), "--no-latency"]) == 2
    assert f"cannot write '{run / 'report.html'}' (Permission denied): pass a location you can write to" in (
        _one_line_error(capsys))
    assert not (run / "report.html").exists() and not any((tmp_path / "pages").iterdir())
