"""One self-contained HTML page per compression run: config, metrics, Pareto plot, input | teacher | student | target.

What the page shows is read from the run folder:

* ``config.yaml`` (the resolved config every run folder holds), verbatim;
* metrics tables from every results file present: ``report.json``'s ``metrics``, ``summary.json`` (GAN
  Compression), ``eval.json`` (``ganslim eval --json > RUN/eval.json``) and ``bench.json`` (``ganslim bench
  --out RUN`` or ``--out RUN/bench``);
* the Pareto plot ``bench.png`` next to that ``bench.json``;
* an image grid, rows of input | teacher | student | target (target for paired data only), made from the
  first ``num_images`` images of a validation split, saved as ``report_grid.png`` next to the page.

The grid needs the models and the data. They are named by ``report.json`` in the run folder, the convention
methods follow (every key optional; relative paths are relative to the run folder; the comments are
explanations, not JSON)::

    {
      "title": "GAN Compression: resnet_9blocks -> mobile_resnet on facades",
      "teacher": "../00001-pix2pix-facades/generator.pt",   # generator checkpoint or folder holding one
      "student": "generator.pt",
      "data": "/data/facades",                              # dataset root (aligned or unaligned) or image folder
      "split": "val",                                       # default: val if present, else test
      "direction": "AtoB",                                  # default: the config's, else AtoB
      "size": 256,                                          # default: the config's crop_size, else 256
      "metrics": {"teacher": {"psnr": 21.3}, "student": {"psnr": 20.9}}
    }

Without ``report.json`` (or for keys it lacks) the config's ``teacher``, ``data``, ``direction`` and
``crop_size`` are used, and the student defaults to ``generator.pt`` in the run folder. Explicit arguments
override both. Images are embedded as base64, so the page can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganslim.errors import GanslimError

__all__ = ["GRID_FILE", "HTML_FILE", "REPORT_FILE", "ReportFiles", "ReportSpec", "make_report", "read_report_spec"]

REPORT_FILE = "report.json"
HTML_FILE = "report.html"
GRID_FILE = "report_grid.png"
CONFIG_FILE = "config.yaml"
# Results files looked for in the run folder, with the section title each gets.
RESULT_FILES = {"summary.json": "Summary (summary.json)", "eval.json": "Evaluation (eval.json)"}
BENCH_PLACES = ("bench.json", "bench/bench.json")


@dataclass(frozen=True)
class ReportSpec:
    """What the page is made of; paths resolved, None where unknown."""

    run_dir: Path
    title: str
    teacher: Path | None = None
    student: Path | None = None
    data: Path | None = None
    split: str | None = None
    direction: str = "AtoB"
    size: int = 256
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReportFiles:
    """The page written, the grid image (None when no grid could be made) and why not."""

    html: Path
    grid: Path | None
    grid_note: str | None


def read_report_spec(run_dir: str | os.PathLike, *, teacher: str | os.PathLike | None = None,
                     student: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
                     split: str | None = None, size: int | None = None, direction: str | None = None) -> ReportSpec:
    """Combine ``report.json``, the run's ``config.yaml`` and explicit arguments (which win), see the module doc."""
    from ganslim.config import read_config_file

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanslimError(f"run folder '{run_dir}' not found: pass a folder made by ganslim (it holds config.yaml)")
    config = read_config_file(run_dir / CONFIG_FILE) if (run_dir / CONFIG_FILE).is_file() else {}
    declared: dict[str, Any] = {}
    if (run_dir / REPORT_FILE).is_file():
        declared = _read_json(run_dir / REPORT_FILE)
        if not isinstance(declared, dict):
            raise GanslimError(f"{run_dir / REPORT_FILE} must hold a JSON object with keys such as teacher, "
                               "student, data")
    if declared.get("metrics") is not None and not isinstance(declared["metrics"], dict):
        raise GanslimError(f"'metrics' in {run_dir / REPORT_FILE} must be a JSON object")

    def path(explicit: Any, key: str) -> Path | None:
        if explicit is not None:
            return Path(explicit)
        value = declared.get(key, config.get(key))
        if not value:
            return None
        value = Path(value).expanduser()
        # report.json paths are relative to the run folder; config paths to where the run was started.
        return value if value.is_absolute() or key not in declared else run_dir / value

    student_default = run_dir / "generator.pt" if (run_dir / "generator.pt").is_file() else None
    resolved_size = size or declared.get("size") or config.get("crop_size") or 256
    if isinstance(resolved_size, bool) or not isinstance(resolved_size, int) or resolved_size < 1:
        raise GanslimError(f"size {resolved_size!r} must be a positive integer (e.g. 256)")
    method = config.get("method")
    data_path = path(data, "data")
    split = split or declared.get("split")
    if split is None and data_path is not None:
        split = next((s for s in ("val", "test") if (data_path / s).is_dir() or (data_path / f"{s}A").is_dir()),
                     "test")
    return ReportSpec(
        run_dir=run_dir,
        title=str(declared.get("title") or f"{run_dir.name}" + (f" ({method})" if method else "")),
        teacher=path(teacher, "teacher"),
        student=path(student, "student") or student_default,
        data=data_path,
        split=split,
        direction=direction or declared.get("direction") or config.get("direction") or "AtoB",
        size=resolved_size,
        metrics=declared.get("metrics"),
    )


def make_report(spec: ReportSpec, out: str | os.PathLike | None = None, num_images: int = 4,
                device: str | torch.device = "cpu") -> ReportFiles:
    """Write the HTML page for ``spec`` (default ``RUN/report.html``) and the grid PNG next to it."""
    from ganslim.atomic import atomic_write_text

    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise GanslimError(f"--num-images {num_images!r} must be a positive integer")
    out = Path(out) if out is not None else spec.run_dir / HTML_FILE
    sections = [_config_section(spec.run_dir)]
    if spec.metrics:
        sections.append(_section("Metrics (report.json)", _table_html(spec.metrics)))
    for name, title in RESULT_FILES.items():
        if (spec.run_dir / name).is_file():
            sections.append(_section(title, _table_html(_read_json(spec.run_dir / name))))
    sections += _bench_sections(spec.run_dir)
    grid_path, text = _grid(spec, out.parent / GRID_FILE, num_images, torch.device(device))
    if grid_path is not None:
        body = (f"<p>{html.escape(text)}. File: <a href=\"{html.escape(grid_path.name)}\">"
                f"{html.escape(grid_path.name)}</a></p>\n{_img(grid_path, 'image grid')}")
    else:
        body = f"<p>No image grid: {html.escape(text)}</p>"
    sections.append(_section("Images", body))
    page = _PAGE.format(title=html.escape(spec.title), body="\n".join(sections))
    atomic_write_text(page, out)
    return ReportFiles(html=out, grid=grid_path, grid_note=None if grid_path is not None else text)


# ----------------------------------------------------------------------------------------------------------
# Sections


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
pre {{ background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }}
img {{ max-width: 100%; image-rendering: pixelated; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GanslimError(f"cannot read {path} as JSON ({type(error).__name__}): fix or delete it") from None


def _config_section(run_dir: Path) -> str:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return _section("Config", "<p>No config.yaml in the run folder.</p>")
    return _section("Config (config.yaml)", f"<pre>{html.escape(path.read_text(encoding='utf-8'))}</pre>")


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value)
    return str(value)


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _table_html(results: Any) -> str:
    """A results object as tables: nested objects (e.g. teacher / student) as rows of one table, with their
    flattened keys as columns; top-level scalars as a key | value table."""
    if not isinstance(results, dict):
        return f"<pre>{html.escape(json.dumps(results, indent=1))}</pre>"
    # Objects of numbers become table rows; objects of text (e.g. eval's "skipped" reasons) stay key | value.
    nested = {k: _flatten(v) for k, v in results.items()
              if isinstance(v, dict) and not all(isinstance(x, str) for x in v.values())}
    scalars = _flatten({k: v for k, v in results.items() if k not in nested})
    parts = []
    if nested:
        columns = list(dict.fromkeys(c for flat in nested.values() for c in flat))
        rows = [[name] + [_format(flat.get(c)) for c in columns] for name, flat in nested.items()]
        parts.append(_html_table([""] + columns, rows))
    if scalars:
        parts.append(_html_table(["key", "value"], [[k, _format(v)] for k, v in scalars.items()]))
    return "\n".join(parts)


def _bench_sections(run_dir: Path) -> list[str]:
    from ganslim.bench import PLOT_NAME, bench_table

    sections = []
    for place in BENCH_PLACES:
        path = run_dir / place
        if not path.is_file():
            continue
        bench = _read_json(path)
        try:
            header, rows = bench_table(bench)
        except (KeyError, TypeError):
            raise GanslimError(f"{path} is not a ganslim bench.json: write it with ganslim bench --out") from None
        body = _html_table(header, rows)
        if bench.get("command"):
            body = f"<p>Command: <code>{html.escape(bench['command'])}</code></p>\n{body}"
        sections.append(_section(f"Benchmark ({place})", body))
        plot = path.parent / PLOT_NAME
        if plot.is_file():
            sections.append(_section("Pareto plot", _img(plot, "quality vs latency and MACs")))
    return sections


def _img(path: Path, alt: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _grid(spec: ReportSpec, path: Path, num_images: int, device: torch.device) -> tuple[Path | None, str]:
    """Write the grid to ``path``: (path, caption), or (None, why there is none)."""
    from ganslim.checkpoints import load_generator
    from ganslim.data import save_image
    from ganslim.engine import image_grid
    from ganslim.evaluate import open_eval_data, output_channels
    from ganslim.translate import input_channels

    if spec.student is None or spec.data is None:
        missing = " and ".join(n for n, v in (("student", spec.student), ("data", spec.data)) if v is None)
        return None, (f"the run names no {missing}: write them into {REPORT_FILE} or pass --student / --data")
    student = load_generator(spec.student, direction=spec.direction).model.to(device)
    teacher = (load_generator(spec.teacher, direction=spec.direction).model.to(device)
               if spec.teacher is not None else None)
    channels = input_channels(student)
    data = open_eval_data(spec.data, split=spec.split or "test", size=spec.size, direction=spec.direction,
                          input_nc=channels, output_nc=output_channels(student, channels, spec.size),
                          max_images=num_images)
    items = [data.inputs[i] for i in range(len(data.inputs))]
    inputs = torch.stack([item["A"] for item in items]).to(device)
    with torch.inference_mode():
        columns = [inputs] + ([teacher(inputs)] if teacher is not None else []) + [student(inputs)]
    if data.paired:
        columns.append(torch.stack([item["B"] for item in items]))
    save_image(image_grid([c.float().cpu().clamp(-1, 1) for c in columns]), path)
    names = ["input", "teacher", "student", "target"]
    names = [n for n in names if (n != "teacher" or teacher is not None) and (n != "target" or data.paired)]
    return path, f"rows: the first {len(items)} image(s) of {data.describe()}; columns: {' | '.join(names)}"

