"""ganslim.report and `ganslim report`: the page holds the config, the metrics, the bench table and plot, the grid."""

from __future__ import annotations

import base64
import importlib.util
import json

import torch
from PIL import Image

from ganslim.bench import BenchResult, BenchRow, write_bench
from ganslim.cli import main
from ganslim.profile import LatencyStats
from ganslim.report import read_report_spec
from helpers import save_resnet

SIZE = 32
PAD = 2  # image_grid's default padding
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _bench(folder):
    """A small bench output (made without timing anything) in ``folder``."""
    models = [{"name": "teacher", "path": None, "arch": "resnet_6blocks", "params": 125_000, "macs": 10**7,
               "macs_published": 2 * 10**7, "input_shape": [1, 3, SIZE, SIZE]}]
    rows = [BenchRow("teacher", "torch", "ok", runtime="torch", latency=LatencyStats(3.0, 2.5, 4.0, 3),
                     quality={"psnr": 17.25, "ssim": 0.5, "psnr_ref": float("inf"), "ssim_ref": 1.0}),
            BenchRow("teacher", "openvino", "skipped", reason="openvino is not installed")]
    result = BenchResult(models=models, rows=rows, machine={"cpu": "test", "logical_cpus": 2, "versions": {}},
                         settings={"size": SIZE, "batch": 1, "threads": 1, "repeats": 3, "warmup": 1,
                                   "reference": "teacher", "data": "d", "split": "val", "num_images": 2},
                         peak={"gflops": 110.0, "gflops_median": 100.0, "matmul_size": 64})
    return write_bench(result.to_dict(), folder)


def test_report_from_report_json(dataset, tmp_path, capsys):
    run = tmp_path / "00003-gan-compression-shapes"
    run.mkdir()
    (run / "config.yaml").write_text("method: gan-compression\nbudget_macs: 3G  # MACs budget\n")
    save_resnet(run / "generator.pt", 4)
    save_resnet(tmp_path / "teacher.pt", 8)
    (run / "report.json").write_text(json.dumps({
        "title": "tiny <compression> run", "teacher": "../teacher.pt", "student": "generator.pt",
        "data": str(dataset), "size": SIZE, "metrics": {"teacher": {"psnr": 12.5}, "student": {"psnr": 11.75}}}))
    (run / "summary.json").write_text(json.dumps({"size": SIZE, "student": {"macs": 1234567, "channels": [4, 8]}}))
    bench_files = _bench(run / "bench")

    assert main(["report", str(run), "--num-images", "3"]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (run / "report.html").read_text()
    assert "<title>tiny &lt;compression&gt; run</title>" in page
    assert "budget_macs: 3G  # MACs budget" in page  # the config, verbatim
    assert "<td>12.5</td>" in page and "<td>11.75</td>" in page  # report.json metrics
    assert "<td>1,234,567</td>" in page and "4, 8" in page  # summary.json
    assert "<td>17.25</td>" in page and "skipped: openvino is not installed" in page  # the bench table
    if HAS_MATPLOTLIB:
        assert base64.b64encode(bench_files.plot.read_bytes()).decode() in page

    grid = run / "report_grid.png"
    assert f'href="{grid.name}"' in page and base64.b64encode(grid.read_bytes()).decode() in page
    assert "input | teacher | student | target" in page
    width, height = Image.open(grid).size
    assert (width, height) == (4 * SIZE + 5 * PAD, 2 * SIZE + 3 * PAD)  # val holds 2 pairs


def test_report_without_report_json_uses_config_and_flags(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"method: pix2pix\ndata: {dataset}\ncrop_size: {SIZE}\n")
    spec = read_report_spec(run)
    assert spec.data == dataset and spec.size == SIZE and spec.student is None and spec.split == "val"

    assert main(["report", str(run)]) == 0
    assert "no image grid: the run names no student" in capsys.readouterr().out
    assert "No image grid" in (run / "report.html").read_text()

    student = save_resnet(tmp_path / "student.pt", 4)
    out = tmp_path / "pages" / "page.html"
    assert main(["report", str(run), "--student", str(student), "--split", "test", "--num-images", "1",
                 "--out", str(out)]) == 0
    grid = out.parent / "report_grid.png"
    assert Image.open(grid).size == (3 * SIZE + 4 * PAD, SIZE + 2 * PAD)  # input | student | target
    assert "input | student | target" in out.read_text()


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "run folder" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("[1, 2]")
    assert main(["report", str(tmp_path)]) == 2
    assert "must hold a JSON object" in capsys.readouterr().err


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
