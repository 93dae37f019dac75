"""One self-contained HTML page per run folder, complete from the run alone.

The page, in reading order:

1. **Summary**: one column per generator (teacher(s), student; see :mod:`ganslim.measure.report.run` for what each
   method exports), rows of parameters, MACs in both conventions, a quick CPU latency estimate and PSNR / SSIM,
   with units, and a column of student-vs-teacher ratios. Parameters and MACs are counted here; latency is
   timed here (eager PyTorch, interleaved, few rounds, a small stated size; off with ``latency=False``);
   quality is scored here on the first images of the run's val split (else test) when the run's data folder
   exists. What is missing is listed with the command that adds it.
2. **Images**: labelled grids, input | teacher(s) | student | target (CycleGAN: each direction with its cycle
   reconstruction), images inline as base64 PNG; then the loss and validation curves of ``logs/log.txt``.
3. The results files of the run, when present: ``summary.json`` (GAN Compression), ``eval.json`` (``ganslim eval
   ... --out RUN/eval.json``), ``bench.json`` and its Pareto plot (``ganslim bench ... --out RUN/bench``).
4. The GAN Compression pipeline's stages, and ``config.yaml`` folded away.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganslim.errors import GanslimError
from ganslim.measure.compare import Cost
from ganslim.measure.report import page
from ganslim.measure.report.curves import curves_html, read_curves
from ganslim.measure.report.measure import Latency, Quality, grid_images, model_costs, quick_latency, quick_quality
from ganslim.measure.report.run import STUDENT, Grid, ReportRun, RunModel, read_run
from ganslim.measure.report.summary import comparison, summary_rows
from ganslim.outputs import check_output_file

__all__ = ["HTML_FILE", "ReportFiles", "ReportOptions", "ReportRun", "RunModel", "make_report", "read_run"]

HTML_FILE = "report.html"
EVAL_FILE = "eval.json"
SUMMARY_FILE = "summary.json"
BENCH_PLACES = ("bench.json", "bench/bench.json")
LATENCY_SIDE = 128  # default latency input: the run's size, at most this (a quick estimate)


@dataclass(frozen=True)
class ReportOptions:
    """How much the report measures. ``latency_size`` None: the run's image size, at most ``LATENCY_SIDE``
    (the run's size if a model cannot run that small). ``bench`` / ``eval``: results files to include besides
    those in the run folder (a bench folder holding ``bench.json`` works too)."""

    num_images: int = 4
    quality_images: int = 16
    latency: bool = True
    latency_size: int | None = None
    latency_repeats: int = 5
    bench: Path | None = None
    eval: Path | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("num_images", "quality_images", "latency_size", "latency_repeats"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise GanslimError(f"--{name.replace('_', '-')} {value!r} must be a positive integer")


@dataclass(frozen=True)
class ReportFiles:
    """The page written, and what it could not show (one line each, with the command that adds it)."""

    html: Path
    notes: list[str] = field(default_factory=list)


def make_report(run: ReportRun, out: str | os.PathLike | None = None,
                options: ReportOptions = ReportOptions()) -> ReportFiles:
    """Measure ``run``'s models and write the page (default ``RUN/report.html``) atomically."""
    from ganslim.atomic import atomic_write_text

    out = check_output_file(Path(out) if out is not None else run.run_dir / HTML_FILE, "--out")
    eval_file, bench_file = _eval_file(run.run_dir, options.eval), _bench_file(run.run_dir, options.bench)
    results = _results_sections(run.run_dir, eval_file, bench_file)  # a broken file fails before measuring
    measured = _measure(run, options)
    notes = [*run.notes, *([] if options.latency else ["latency not timed (--no-latency)"])]
    todo = _todo(run, notes, has_eval=eval_file is not None, has_bench=bench_file is not None)
    body = [f"<h1>{html.escape(run.run_dir.name)}</h1>", page.paragraph(_subtitle(run), "subtitle"),
            _summary_section(run, measured, options.quality_images, todo, has_bench=bench_file is not None)]
    if measured.grids:
        body.append(page.section("Images", *(_grid_html(*grid) for grid in measured.grids)))
    curves = curves_html(read_curves(run.run_dir))
    if curves:
        body.append(page.section("Training curves (logs/log.txt)", curves))
    body += [page.section(title, content) for title, content in results]
    if run.stages is not None:
        body.append(_stages_section(run))
    body.append(_config_fold(run))
    atomic_write_text(page.page(f"{run.run_dir.name} ({run.method or 'run'})", body), out)
    return ReportFiles(out, notes)


@dataclass(frozen=True)
class _Measured:
    """What :func:`_measure` found: per model label its architecture and cost; latency, quality and grids
    (grid, its columns, which images) where they could be made."""

    archs: dict[str, str]
    costs: dict[str, Cost]
    latency: Latency | None
    quality: Quality | None
    grids: list[tuple[Grid, list, str]]


def _measure(run: ReportRun, options: ReportOptions) -> _Measured:
    from ganslim.checkpoints import load_generator

    loaded = {m.label: load_generator(m.path, direction=m.direction) for m in run.models}
    models = {label: entry.model for label, entry in loaded.items()}
    costs = model_costs(models, run.macs_size)
    latency = _latency(models, run.size, options) if options.latency and models else None
    device = torch.device(options.device)
    for model in models.values():
        model.to(device)
    quality, grids = None, []
    if run.data is not None and models:
        quality = quick_quality(run, models, options.quality_images, device)
        grids = [(grid, *grid_images(run, grid, models, options.num_images, device)) for grid in run.grids]
    return _Measured({label: entry.arch for label, entry in loaded.items()}, costs, latency, quality, grids)


def _latency(models: dict[str, torch.nn.Module], size: int, options: ReportOptions) -> Latency:
    if options.latency_size is not None:
        return quick_latency(models, options.latency_size, options.latency_repeats)
    try:
        return quick_latency(models, min(size, LATENCY_SIDE), options.latency_repeats)
    except GanslimError:
        if size <= LATENCY_SIDE:
            raise
        return quick_latency(models, size, options.latency_repeats)  # e.g. a U-Net that needs 256 pixels


# ----------------------------------------------------------------------------------------------------------
# Sections


def _subtitle(run: ReportRun) -> str:
    parts = [f"method {page.code(run.method or 'unknown')}"]
    if run.data is not None:
        parts.append(f"data {page.code(str(run.data))} ({html.escape(run.split or '')} split)")
    parts.append(f"run folder {page.code(str(run.run_dir))}")
    return " · ".join(parts)


def _summary_section(run: ReportRun, measured: _Measured, quality_images: int, todo: str, has_bench: bool) -> str:
    if not run.models:
        return page.section("Summary", page.paragraph("No generator to show."), todo)
    header, rows = summary_rows(run, measured.archs, measured.costs, measured.latency, measured.quality)
    side = f"{run.macs_size}×{run.macs_size}"
    captions = [f"Parameters and MACs counted on one 1×C×{side} image: <em>true</em> counts a transposed "
                "convolution at its input resolution, <em>published</em> is torchprofile's convention (the GAN "
                "Compression and OMGD papers' tables)."]
    latency, quality = measured.latency, measured.quality
    if latency is not None:
        bench = "its figures are below" if has_bench else "the command is below"
        captions.append(f"Latency is a <strong>quick estimate</strong>, not a benchmark: eager PyTorch on this "
                        f"machine's CPU, {latency.threads} thread(s), one 1×C×{latency.side}×{latency.side} image, "
                        f"median of {latency.repeats} rounds after {latency.warmup} warm-up, the models interleaved "
                        f"round by round. {page.code('ganslim bench')} measures latency properly ({bench}).")
    if quality is not None and any(quality.metrics.values()):
        captions.append(f"Quality on {html.escape(quality.data)}, at most {quality_images} images "
                        "(--quality-images): PSNR / SSIM against the targets; a student's PSNR / SSIM vs teacher "
                        "compare its outputs with its teacher's. SSIM on [0, 1] intensities.")
    files = "; ".join(f"{m.label}: {page.code(_relative(m.path, run.run_dir))}" for m in run.models)
    captions.append(f"Checkpoints: {files}.")
    return page.section("Summary", page.table(header, rows, "summary", ratio_column=comparison(run) is not None),
                        *(page.paragraph(c, "caption") for c in captions), todo)


def _todo(run: ReportRun, notes: list[str], has_eval: bool, has_bench: bool) -> str:
    """What the page lacks and the commands that add it."""
    items = [html.escape(note) for note in notes]
    if run.models and not has_eval:
        items.append(f"FID / KID and the whole split: {page.code(_eval_command(run))}, then run the report again")
    if run.models and not has_bench:
        items.append(f"ONNX Runtime / OpenVINO / int8 latency: {page.code(_bench_command(run))}")
    if not items:
        return ""
    return "<h3>Not in this report</h3>\n<ul class=\"todo\">" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _eval_command(run: ReportRun) -> str:
    scored = next((m for m in run.models if m.role == STUDENT), run.models[0])
    pair = comparison(run)
    words = ["ganslim", "eval", "--ckpt", str(scored.path), "--data", str(run.data or "DATA"), "--split",
             run.split or "test", "--size", str(run.size), "--direction", scored.direction]
    if pair is not None:
        words += ["--teacher", str(pair[0].path)]
    return shlex.join([*words, "--out", str(run.run_dir / EVAL_FILE)])


def _bench_command(run: ReportRun) -> str:
    models = [f"{_bench_label(m.label)}={m.path}" for m in run.models if m.direction == run.models[0].direction]
    data = ["--data", str(run.data), "--split", run.split or "test"] if run.data is not None else []
    return shlex.join(["ganslim", "bench", *models, "--size", str(run.size), *data,
                       "--out", str(run.run_dir / "bench")])


def _bench_label(label: str) -> str:
    """``teacher (snapshot)`` -> ``teacher_snapshot``: a LABEL for ``ganslim bench LABEL=MODEL``."""
    return re.sub(r"\W+", "_", label).strip("_")


def _grid_html(grid: Grid, columns: list, described: str) -> str:
    title = f"<h3>{html.escape(grid.title)}</h3>\n" if grid.title else ""
    labels = " | ".join(label for label, _ in columns)
    caption = page.paragraph(f"Rows: images of {html.escape(described)}. Columns: "
                             f"{html.escape(labels)}.", "caption")
    return title + page.image_grid_table(columns) + "\n" + caption


def _results_sections(run_dir: Path, eval_file: Path | None, bench_file: Path | None) -> list[tuple[str, str]]:
    """(title, HTML) of each results file: summary.json, eval.json, bench.json (+ its plot)."""
    from ganslim.measure.bench import PLOT_NAME, bench_table

    sections = []
    if (run_dir / SUMMARY_FILE).is_file():
        sections.append(("Run summary (summary.json)",
                         page.results_table(_read_json(run_dir / SUMMARY_FILE))))
    if eval_file is not None:
        sections.append((f"Evaluation ({eval_file.name})", page.results_table(_read_json(eval_file))))
    if bench_file is not None:
        bench = _read_json(bench_file)
        try:
            header, rows = bench_table(bench)
        except (KeyError, TypeError):
            raise GanslimError(f"{bench_file} is not a ganslim bench.json: write it with ganslim bench --out") from None
        parts = [page.table(header, rows), *(page.paragraph(note) for note in bench.get("notes", []))]
        if bench.get("command"):
            parts.insert(0, page.paragraph(f"Command: {page.code(bench['command'])}"))
        if (bench_file.parent / PLOT_NAME).is_file():
            parts.append(page.png_file(bench_file.parent / PLOT_NAME, "quality vs latency and MACs"))
        sections.append((f"Benchmark ({bench_file.name})", "\n".join(parts)))
    return sections


def _eval_file(run_dir: Path, explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise GanslimError(f"--eval '{explicit}' not found: pass the file ganslim eval --out wrote")
        return explicit
    return run_dir / EVAL_FILE if (run_dir / EVAL_FILE).is_file() else None


def _bench_file(run_dir: Path, explicit: Path | None) -> Path | None:
    if explicit is not None:
        path = explicit / "bench.json" if explicit.is_dir() else explicit
        if not path.is_file():
            raise GanslimError(f"--bench '{explicit}' not found: pass a bench.json or the folder ganslim bench wrote")
        return path
    return next((run_dir / place for place in BENCH_PLACES if (run_dir / place).is_file()), None)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GanslimError(f"cannot read {path} as JSON ({type(error).__name__}): fix or delete it") from None


def _stages_section(run: ReportRun) -> str:
    rows = [[stage, _relative(Path(folder), run.run_dir)] for stage, folder in (run.stages or {}).items()]
    return page.section("GAN Compression stages (pipeline.json)", page.table(["stage", "output"], rows))


def _config_fold(run: ReportRun) -> str:
    from ganslim.engine.runs import CONFIG_FILE

    text = (run.run_dir / CONFIG_FILE).read_text(encoding="utf-8")
    return page.folded(f"Config (config.yaml, {len(run.config)} keys)", page.preformatted(text))


def _relative(path: Path, run_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)
