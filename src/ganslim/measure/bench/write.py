"""The bench's files: ``bench.json``, ``bench.md`` (the table as Markdown) and ``bench.png`` (quality vs latency and
vs MACs, with the Pareto front), all from the ``bench.json`` dict (:meth:`.run.BenchResult.to_dict`)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganslim.atomic import atomic_write, atomic_write_text
from ganslim.measure.bench.run import ABOVE_PEAK, above_peak, is_int8

JSON_NAME, MARKDOWN_NAME, PLOT_NAME = "bench.json", "bench.md", "bench.png"


TABLE_HEADER = ["model", "backend", "params (M)", "MACs true (G)", "MACs published (G)", "latency median (ms)",
                "min (ms)", "max (ms)", "img/s", "GFLOP/s", "% of fp32 peak", "PSNR", "SSIM", "PSNR vs ref",
                "SSIM vs ref", "notes"]


def _number(value: Any, digits: int) -> str:
    """``digits`` decimals, or 3 significant digits for values below 1 that would round to nothing."""
    if value is None:
        return "–"
    if isinstance(value, str):  # json_safe's "inf"
        return "∞" if value == "inf" else value
    if 0 < abs(value) < 1 and abs(value) < 10 ** (1 - digits):
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


def _latent_sides(bench: dict[str, Any]) -> str:
    """The image side the latent generators make, or each one's when they differ."""
    sides = {model["name"]: model.get("output_side", bench["settings"]["size"]) for model in bench["models"]}
    if len(set(sides.values())) == 1:
        side = next(iter(sides.values()))
        return f"{side}x{side}"
    return ", ".join(f"{name} {side}x{side}" for name, side in sides.items())


def bench_table(bench: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows of cells) of a ``bench.json`` dict: one row per model x backend, in the order run."""
    models = {m["name"]: m for m in bench["models"]}
    rows = []
    for result in bench["results"]:
        model = models[result["model"]]
        latency = result.get("latency_ms") or {}
        quality = result.get("quality") or {}
        if result["status"] == "ok":
            note = result.get("runtime") or ""
            int8 = result.get("int8")
            if int8 and "psnr_vs_fp32" in int8:  # a latent generator's int8 synthesis
                note += (f"; int8 vs fp32 synthesis: PSNR {_number(int8['psnr_vs_fp32'], 2)} dB, SSIM "
                         f"{_number(int8['ssim_vs_fp32'], 4)}")
            if int8 and int8.get("float_layers"):
                floats = ", ".join(f"{op} x{n}" for op, n in int8["float_layers"].items())
                note += f"; float: {floats}"
        else:
            note = f"{result['status']}: {result.get('reason')}"
        rows.append([
            result["model"], result["backend"], _number(model["params"] / 1e6, 3), _number(model["macs"] / 1e9, 2),
            _number(model["macs_published"] / 1e9, 2), _number(latency.get("median"), 1),
            _number(latency.get("min"), 1), _number(latency.get("max"), 1),
            _number(result.get("throughput_img_s"), 2), _number(result.get("gflops"), 1), _share_cell(result),
            _number(quality.get("psnr"), 2),
            _number(quality.get("ssim"), 4), _number(quality.get("psnr_ref"), 2), _number(quality.get("ssim_ref"), 4),
            note])
    return TABLE_HEADER, rows


def _share_cell(result: dict[str, Any]) -> str:
    """The row's % of the fp32 peak: ``(int8)`` after an int8 row's, :data:`ABOVE_PEAK` after an fp32 row's
    above 100% (explained by :data:`ABOVE_PEAK_NOTE`)."""
    share = result.get("peak_share")
    cell = _number(None if share is None else 100 * share, 1)
    if share is None:
        return cell
    if is_int8(result["backend"]):
        return f"{cell} (int8)"
    return f"{cell}{ABOVE_PEAK}" if above_peak(result) else cell


def format_markdown(bench: dict[str, Any]) -> str:
    """The bench as a Markdown page: settings, machine, one table row per model x backend, notes."""
    settings, peak, machine = bench["settings"], bench["peak"], bench["machine"]
    header, rows = bench_table(bench)
    lines = ["# ganslim bench", ""]
    if bench.get("command"):
        lines += [f"Command: `{bench['command']}`", ""]
    scale, shape = settings.get("sr_scale"), bench["models"][0]["input_shape"]
    if len(shape) == 2:  # a latent generator's z
        given = f"input z {'x'.join(map(str, shape))} (latent generators: {_latent_sides(bench)} images out)"
    else:
        lr = f" LR (x{scale} super-resolution; exports dynamic in height and width, for whole images)" if scale else ""
        given = f"input {'x'.join(map(str, shape))}{lr}"
    lines += [
        f"- {given}, "
        f"{settings['threads']} thread(s), {settings['warmup']} warm-up + {settings['repeats']} timed rounds, all "
        f"model x backend runs interleaved round-robin, the order rotating every round, in one process "
        f"(OMP_WAIT_POLICY="
        f"{settings.get('omp_wait_policy')}, ONNX Runtime spinning off, OpenVINO f32; a passive wait slows "
        f"eager PyTorch on models of many small ops: time it alone with OMP_WAIT_POLICY=ACTIVE for its best)",
        f"- machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
        f"- fp32 peak: {_number(peak['gflops'], 1)} GFLOP/s (fastest run; median "
        f"{_number(peak['gflops_median'], 1)}) of a {peak['matmul_size']}x{peak['matmul_size']} matmul timed in the "
        f"same rounds; GFLOP/s = 2 x true MACs / median latency (an int8 row's share, marked (int8), can pass "
        f"100%: int8 kernels do more multiply-adds per cycle)",
        "- MACs: true (transposed convs at input resolution) and published (torchprofile convention, as in the "
        "GAN Compression tables)",
    ]
    if settings.get("data"):
        lines.append(f"- quality: {settings['num_images']} image(s) of split '{settings['split']}' of "
                     f"{settings['data']}; PSNR/SSIM vs targets, and vs the reference model "
                     f"'{settings['reference']}'" + (f" ({settings['scoring']})" if settings.get("scoring") else ""))
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    if bench.get("notes"):
        lines += [""] + [f"Note: {note}" for note in bench["notes"]]
    return "\n".join(lines) + "\n"


def _quality_key(results: list[dict[str, Any]]) -> str | None:
    for key in ("psnr", "psnr_ref"):
        if any(isinstance((r.get("quality") or {}).get(key), (int, float)) for r in results):
            return key
    return None


def pareto_plot(bench: dict[str, Any], path: str | os.PathLike) -> Path | None:
    """Quality vs latency and quality vs MACs as a PNG at ``path``; None when matplotlib is missing or there
    is no quality metric (no data). The Pareto front (fastest for its quality) is drawn on the latency panel."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        return None
    results = [r for r in bench["results"] if r["status"] == "ok"]
    key = _quality_key(results)
    if key is None:
        return None
    points = [(r, r["quality"][key]) for r in results if isinstance(r["quality"].get(key), (int, float))]
    macs = {m["name"]: m["macs"] / 1e9 for m in bench["models"]}
    models = list(macs)
    backends = list(dict.fromkeys(r["backend"] for r, _ in points))
    markers = "osD^vP*X"
    colors = plt.get_cmap("tab10")
    label = "PSNR vs target (dB)" if key == "psnr" else f"PSNR vs {bench['settings']['reference']} (dB)"
    figure, (ax_latency, ax_macs) = plt.subplots(1, 2, figsize=(11, 4.5))
    for result, quality in points:
        style = {"color": colors(models.index(result["model"]) % 10),
                 "marker": markers[backends.index(result["backend"]) % len(markers)], "s": 50}
        ax_latency.scatter(result["latency_ms"]["median"], quality, **style)
        ax_macs.scatter(macs[result["model"]], quality, **style)
    front, best = [], -math.inf
    for result, quality in sorted(points, key=lambda p: (p[0]["latency_ms"]["median"], -p[1])):
        if quality > best:
            front.append((result["latency_ms"]["median"], quality))
            best = quality
    if len(front) > 1:
        ax_latency.plot(*zip(*front), color="gray", linestyle="--", linewidth=1, drawstyle="steps-post",
                        label="Pareto front")
        ax_latency.legend(loc="lower right", fontsize=8)
    ax_latency.set(xlabel="median latency (ms, log)", ylabel=label, xscale="log", title="quality vs latency")
    ax_macs.set(xlabel="true MACs (G, log)", ylabel=label, xscale="log", title="quality vs MACs")
    for name in models:
        ax_macs.scatter([], [], color=colors(models.index(name) % 10), label=name)
    for backend in backends:
        ax_macs.scatter([], [], color="black", marker=markers[backends.index(backend) % len(markers)], label=backend)
    ax_macs.legend(fontsize=7, loc="lower right")
    for axis in (ax_latency, ax_macs):
        axis.grid(True, alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)
    return path


@dataclass(frozen=True)
class BenchFiles:
    """What :func:`write_bench` wrote; ``plot`` is None when it was not drawn (``plot_note`` says why)."""

    json: Path
    markdown: Path
    plot: Path | None
    plot_note: str | None


def write_bench(bench: dict[str, Any], out_dir: str | os.PathLike) -> BenchFiles:
    """Write ``bench.json``, ``bench.md`` and ``bench.png`` (the Pareto plot) into ``out_dir``."""
    out_dir = Path(out_dir)
    json_path = atomic_write_text(json.dumps(bench, indent=1) + "\n", out_dir / JSON_NAME)
    markdown = atomic_write_text(format_markdown(bench), out_dir / MARKDOWN_NAME)
    plot = pareto_plot(bench, out_dir / PLOT_NAME)
    note = None
    if plot is None:
        note = ("no Pareto plot: no quality metrics (pass --data)" if _quality_key(bench["results"]) is None
                else "no Pareto plot: matplotlib is not installed (pip install matplotlib)")
    return BenchFiles(json=json_path, markdown=markdown, plot=plot, plot_note=note)
