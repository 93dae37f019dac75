"""ganslim.measure.bench and `ganslim bench`: output schema, derived figures, quality, skipped backends, files written."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from ganslim.measure.bench import (
    ABOVE_PEAK_NOTE,
    PEAK_RUNS,
    BenchModel,
    BenchResult,
    BenchRow,
    bench_table,
    parse_backends,
    run_bench,
    write_bench,
)
from ganslim.checkpoints import load_generator
from ganslim.cli import main
from ganslim.data import AlignedDataset
from ganslim.errors import GanslimError
from ganslim.metrics import psnr
from ganslim.cli import bench as bench_cli
from ganslim.measure.profile import PEAK_MATMUL_SIZE, LatencyStats, count_macs, count_params

SIZE = 32
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_bench_cli_schema_figures_quality_and_files(dataset, checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if OpenVINO were not installed
    out = tmp_path / "bench"
    teacher, student = checkpoints["teacher"], checkpoints["student"]
    code = main(["bench", f"teacher={teacher}", str(student), "--backends",
                 "torch,onnxruntime,onnxruntime-int8,openvino", "--size", str(SIZE), "--threads", "1",
                 "--repeats", "3", "--warmup", "1", "--data", str(dataset), "--split", "val",
                 "--num-calibration", "4", "--peak-size", "128", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    bench = json.loads((out / "bench.json").read_text())

    assert {"format", "format_version", "ganslim_version", "command", "settings", "machine", "peak", "models",
            "results", "notes"} <= set(bench)
    assert bench["command"].startswith("ganslim bench teacher=")
    assert bench["settings"]["threads"] == 1 and bench["settings"]["reference"] == "teacher"
    assert bench["peak"]["gflops"] >= bench["peak"]["gflops_median"] > 0 and bench["peak"]["matmul_size"] == 128
    assert bench["peak"]["runs"] == 3 * PEAK_RUNS  # PEAK_RUNS matmuls in each of the 3 timed rounds
    assert [m["name"] for m in bench["models"]] == ["teacher", "student"]
    for info, path in zip(bench["models"], (teacher, student)):
        model = load_generator(path).model
        counted = count_macs(model, torch.zeros(1, 3, SIZE, SIZE))
        assert (info["params"], info["macs"], info["macs_published"]) == (
            count_params(model), counted.macs, counted.macs_published)

    rows = {(r["model"], r["backend"]): r for r in bench["results"]}
    assert list(rows) == [(m, b) for m in ("teacher", "student")
                          for b in ("torch", "onnxruntime", "onnxruntime-int8", "openvino")]
    macs = {m["name"]: m["macs"] for m in bench["models"]}
    for (model, backend), row in rows.items():
        if backend == "openvino":
            assert row["status"] == "skipped" and "openvino is not installed" in row["reason"]
            assert row["latency_ms"] is None and row["quality"] == {}
            continue
        assert row["status"] == "ok", row
        latency = row["latency_ms"]
        assert 0 < latency["min"] <= latency["median"] <= latency["max"] and row["repeats"] == 3
        assert row["throughput_img_s"] == pytest.approx(1000 / latency["median"])
        assert row["gflops"] == pytest.approx(2 * macs[model] / (latency["median"] / 1e3) / 1e9)
        assert row["peak_share"] == pytest.approx(row["gflops"] / bench["peak"]["gflops"])
        assert set(row["quality"]) == {"psnr", "ssim", "psnr_ref", "ssim_ref"}
    assert rows["teacher", "onnxruntime-int8"]["int8"]["int8_layers"]  # really quantized

    # Quality: vs the val targets, and vs the reference (the first model) which scores inf against itself.
    pairs = AlignedDataset(dataset, "val", load_size=SIZE, crop_size=SIZE, flip=False)
    inputs = torch.stack([pairs[i]["A"] for i in range(len(pairs))])
    targets = torch.stack([pairs[i]["B"] for i in range(len(pairs))])
    with torch.no_grad():
        fake = load_generator(student).model(inputs).clamp(-1, 1)
    assert rows["student", "torch"]["quality"]["psnr"] == pytest.approx(float(psnr(fake, targets).mean()), abs=1e-4)
    assert rows["teacher", "torch"]["quality"]["psnr_ref"] == "inf"
    assert rows["teacher", "onnxruntime"]["quality"]["psnr_ref"] > 60  # fp32 export ~ eager
    assert rows["student", "torch"]["quality"]["psnr_ref"] < 60

    markdown = (out / "bench.md").read_text()
    assert markdown == printed[:len(markdown)]
    table_rows = [line for line in markdown.splitlines() if line.startswith(("| teacher |", "| student |"))]
    assert len(table_rows) == 8
    assert sum("skipped: openvino is not installed" in line for line in table_rows) == 2
    if HAS_MATPLOTLIB:
        assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_without_data_skips_int8_and_quality(checkpoints, tmp_path):
    model = BenchModel("student", load_generator(checkpoints["student"]).model)
    result = run_bench([model], "torch,int8", size=SIZE, threads=1, repeats=1, warmup=0, peak_size=64,
                       progress=False)
    statuses = {row.backend: (row.status, row.reason) for row in result.rows}
    assert statuses["torch"] == ("ok", None)
    for backend in ("onnxruntime-int8", "openvino-int8"):
        assert statuses[backend][0] == "skipped" and "--data" in statuses[backend][1]
    files = write_bench(result.to_dict(), tmp_path)
    assert files.json.is_file() and files.markdown.is_file()
    assert files.plot is None and "no quality" in files.plot_note


def test_backend_names():
    assert parse_backends("torch, int8") == ("torch", "onnxruntime-int8", "openvino-int8")
    assert parse_backends(["ort", "onnxruntime"]) == ("onnxruntime",)
    with pytest.raises(GanslimError, match="unknown backend 'tensorrt'"):
        parse_backends("torch,tensorrt")
    with pytest.raises(GanslimError, match="unique"):
        run_bench([BenchModel("a", torch.nn.Conv2d(3, 3, 1))] * 2, "torch", progress=False)


def _student(tmp_path, name: str, crop_size: int | None):
    from ganslim.archs import build_generator
    from ganslim.checkpoints import save_model

    kwargs = {"ngf": 4, "norm": "instance"}
    meta = {"crop_size": crop_size} if crop_size else {}
    return save_model(tmp_path / name, build_generator("resnet_6blocks", **kwargs), "resnet_6blocks", kwargs,
                      meta=meta)


def test_bench_runs_at_the_size_the_models_were_trained_at(tmp_path, capsys):
    a, b = _student(tmp_path, "a.pt", SIZE), _student(tmp_path, "b.pt", None)
    assert main(["bench", str(a), str(b), "--backends", "torch", "--threads", "1", "--repeats", "1",
                 "--warmup", "0", "--peak-size", "64", "--out", str(tmp_path / "bench"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["settings"]["size"] == SIZE
    assert f"size {SIZE}x{SIZE} (the size a was trained at)" in captured.err


def test_bench_models_trained_at_different_sizes_need_size(tmp_path, capsys):
    a, b = _student(tmp_path, "a.pt", SIZE), _student(tmp_path, "b.pt", 2 * SIZE)
    assert main(["bench", str(a), str(b), "--backends", "torch", "--out", str(tmp_path / "bench")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"ganslim bench: error: the models were trained at different sizes (a at {SIZE}, b at "
                     f"{2 * SIZE}): pass --size")
    assert not (tmp_path / "bench").exists()


def test_bench_out_that_is_a_file_fails_before_timing(tmp_path, capsys, monkeypatch):
    import ganslim.measure.bench

    monkeypatch.setattr(ganslim.measure.bench, "run_bench", lambda *args, **kwargs: pytest.fail("timed before checking"))
    (tmp_path / "bench").write_text("mine")
    a = _student(tmp_path, "a.pt", SIZE)
    assert main(["bench", str(a), "--backends", "torch", "--out", str(tmp_path / "bench")]) == 2
    assert "--out '" + str(tmp_path / "bench") + "' is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "bench").read_text() == "mine"


def test_a_share_of_the_fp32_peak_above_100_percent_is_marked_and_explained():
    model = {"name": "student", "params": 1000, "macs": 10**9, "macs_published": 10**9, "input_shape": [1, 3, 8, 8]}
    rows = [BenchRow("student", backend, "ok", latency=LatencyStats(ms, ms, ms, 1))
            for backend, ms in (("torch", 40.0), ("onnxruntime", 10.0), ("onnxruntime-int8", 5.0))]
    result = BenchResult(models=[model], rows=rows, settings={"batch": 1}, machine={}, peak={"gflops": 100.0})
    bench = result.to_dict()
    assert [r["peak_share"] for r in bench["results"]] == [pytest.approx(0.5), pytest.approx(2.0), pytest.approx(4.0)]
    header, cells = bench_table(bench)
    shares = [row[header.index("% of fp32 peak")] for row in cells]
    assert shares == ["50.0", "200.0*", "400.0 (int8)"]  # int8 kernels may pass the fp32 peak; fp32 ones not
    assert bench["notes"] == [ABOVE_PEAK_NOTE] and ABOVE_PEAK_NOTE.startswith("* an fp32 row above 100%")
    rows.pop(1)
    assert BenchResult(models=[model], rows=rows, settings={"batch": 1}, machine={},
                       peak={"gflops": 100.0}).to_dict()["notes"] == []  # no fp32 row above the peak


def test_the_bench_command_measures_the_peak_with_the_librarys_matmul_size():
    assert bench_cli.PEAK_SIZE == PEAK_MATMUL_SIZE  # written out in the CLI, which must not import torch early


# Latent generators: z in, image out


def _stylegan2(channels: list[int], size: int = 16):
    from ganslim.archs import build_generator

    torch.manual_seed(0)
    return build_generator("stylegan2", size=size, channels=channels, style_dim=8, n_mlp=2).eval()


def test_bench_times_latent_generators_on_every_float_backend(tmp_path):
    teacher, student = _stylegan2([16, 8, 8]), _stylegan2([8, 4, 4])
    backends = ["torch", "onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    result = run_bench([BenchModel("teacher", teacher), BenchModel("student", student)], backends, size=None,
                       threads=1, repeats=2, warmup=0, peak_size=64, progress=False)
    bench = result.to_dict()
    assert bench["settings"]["size"] == 16 and bench["settings"]["sr_scale"] is None
    for info, model in zip(bench["models"], (teacher, student)):
        counted = count_macs(model, torch.zeros(1, 8))
        assert info["input_shape"] == [1, 8]
        assert (info["params"], info["macs"], info["macs_published"]) == (
            count_params(model), counted.macs, counted.macs_published)
    rows = {(r["model"], r["backend"]): r for r in bench["results"]}
    for name in ("teacher", "student"):
        for backend in backends:
            row = rows[name, backend]
            assert row["status"] == "ok" and row["latency_ms"]["median"] > 0 and row["repeats"] == 2
            if backend != "torch":  # exported z -> image graphs, checked against eager PyTorch
                assert row["parity_max_abs_diff"] < 1e-4 and row["runtime"].startswith(backend)
    files = write_bench(bench, tmp_path)
    assert "- input z 1x8 (latent generators: 16x16 images out)" in files.markdown.read_text()


INT8_BACKENDS = ["onnxruntime-int8"] + (["openvino-int8"] if importlib.util.find_spec("nncf") else [])


@pytest.mark.parametrize("backend", INT8_BACKENDS)
def test_a_latent_generators_int8_row_is_its_fp32_mapping_then_its_int8_synthesis(tmp_path, backend):
    from ganslim.export import load_exported
    from ganslim.export.quantize import quantize_synthesis
    from ganslim.measure.bench.run import _build_latent_int8
    from helpers import tiny_student

    student = tiny_student()
    result = run_bench([BenchModel("student", student)], ["torch", backend], size=None, threads=1, repeats=2,
                       warmup=0, num_calibration=4, peak_size=64, progress=False)
    row = {r["backend"]: r for r in result.to_dict()["results"]}[backend]
    assert row["status"] == "ok" and row["latency_ms"]["median"] > 0 and row["repeats"] == 2
    runtime = backend.removesuffix("-int8")
    int8 = row["int8"]
    assert int8["part"] == "synthesis" and int8["mapping"].startswith(runtime) and int8["mapping"].endswith(", fp32")
    assert (int8["num_calibration"], int8["calibration"], int8["num_eval"]) == (4, "W+ of seeds 0-3", 4)
    assert sum(int8["int8_layers"].values()) > 0
    # The same quantization made apart: the row reports its fidelity (int8 vs fp32 graph, int8 vs eager).
    apart = quantize_synthesis(student, tmp_path / "apart", backend=runtime, num_calibration=4, num_eval=4,
                               threads=1, warmup=0, repeats=1)
    assert int8["psnr_vs_fp32"] == pytest.approx(apart.psnr_vs_fp32, abs=1e-3) and 15 < int8["psnr_vs_fp32"] < 80
    assert int8["ssim_vs_fp32"] == pytest.approx(apart.ssim_vs_fp32, abs=1e-4) and 0.5 < int8["ssim_vs_fp32"] <= 1
    assert int8["psnr_vs_eager"] == pytest.approx(apart.task.psnr_int8, abs=1e-3)
    table = {cells[1]: cells for cells in bench_table(result.to_dict())[1]}
    note = f"int8 vs fp32 synthesis: PSNR {int8['psnr_vs_fp32']:.2f} dB, SSIM {int8['ssim_vs_fp32']:.4f}"
    assert note in table[backend][-1]
    # What the row runs is z -> mapping -> W broadcast to W+ -> that int8 synthesis.
    runner, _, _ = _build_latent_int8(backend, student, tmp_path / "row", 1, 4)
    z = torch.randn(1, student.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        w_plus = student.broadcast(student.map(z))
    expected = load_exported(apart.files[0], threads=1)(w_plus.numpy())
    assert expected.shape == (1, 3, 16, 16)
    np.testing.assert_allclose(runner(z.numpy()), expected, atol=1e-4)


def test_bench_of_saved_mobile_stylegan_and_its_teacher_checkpoints_on_every_float_backend(tmp_path, capsys):
    from helpers import save_tiny_student, save_tiny_stylegan2, tiny_student, tiny_stylegan2

    teacher = save_tiny_stylegan2(tmp_path / "teacher.pt")
    student = save_tiny_student(tmp_path / "student.pt")
    backends = ["torch", "onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    assert main(["bench", str(teacher), str(student), "--backends", ",".join(backends), "--threads", "1",
                 "--repeats", "2", "--warmup", "0", "--peak-size", "64", "--out", str(tmp_path / "bench"),
                 "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["settings"]["size"] == 16
    for info, model in zip(bench["models"], (tiny_stylegan2(), tiny_student())):
        counted = count_macs(model, torch.zeros(1, 16))
        assert (info["input_shape"], info["params"], info["macs"]) == ([1, 16], count_params(model), counted.macs)
    rows = {(r["model"], r["backend"]): r for r in bench["results"]}
    assert len(rows) == 2 * len(backends)
    for name in ("teacher", "student"):
        for backend in backends:
            row = rows[name, backend]
            assert row["status"] == "ok" and row["latency_ms"]["median"] > 0 and row["repeats"] == 2
            if backend != "torch":  # the student exported folded, checked against its eager unfolded self
                assert row["parity_max_abs_diff"] < 1e-4 and row["runtime"].startswith(backend)


@pytest.mark.parametrize("case, message", [
    ("image", "but 'g' is a latent generator, 'r' is image-to-image: bench latent generators apart from image models"),
    ("size", "--size 32 does not fit this generator, which makes 16x16 images from latents: drop --size"),
    ("data", "latent generators take no images to score: drop --data (ganslim eval scores them)"),
])
def test_latent_bench_errors_are_one_line(tmp_path, case, message):
    from ganslim.archs import build_generator

    models = [BenchModel("g", _stylegan2([16, 8, 8]))]
    models += {"image": [BenchModel("r", build_generator("resnet_6blocks", ngf=4))]}.get(case, [])
    options = {"size": 32 if case == "size" else None, "data": tmp_path if case == "data" else None}
    with pytest.raises(GanslimError, match="^[^\n]*$") as error:
        run_bench(models, "torch", threads=1, repeats=1, warmup=0, progress=False, **options)
    assert message in str(error.value)


def test_latent_generators_of_different_sides_bench_together(tmp_path):
    """Anycost's previews: a 16 px generator and an 8 px one in one interleaved bench, each side recorded."""
    models = [BenchModel("g", _stylegan2([16, 8, 8])), BenchModel("h", _stylegan2([8, 8], size=8))]
    bench = run_bench(models, "torch", size=None, threads=1, repeats=1, warmup=0, progress=False).to_dict()
    assert bench["settings"]["size"] == 16
    assert [model["output_side"] for model in bench["models"]] == [16, 8]
    assert [row["status"] for row in bench["results"]] == ["ok", "ok"]
    page = write_bench(bench, tmp_path / "bench").markdown.read_text()
    assert "(latent generators: g 16x16, h 8x8 images out)" in page


def test_the_bench_command_builds_a_named_latent_generator_at_size(tmp_path, capsys):
    assert main(["bench", "stylegan2", "--size", "4", "--backends", "torch", "--threads", "1", "--repeats", "1",
                 "--warmup", "0", "--peak-size", "64", "--out", str(tmp_path / "bench"), "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["settings"]["size"] == 4 and bench["models"][0]["input_shape"] == [1, 512]
    assert bench["command"].startswith("ganslim bench stylegan2 --backends torch --size 4 ")
    assert bench["results"][0]["status"] == "ok"
