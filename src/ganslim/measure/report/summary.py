"""The summary table that opens the report: one column per model, one row per figure, with units, and a last
column comparing the student with its teacher."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ganslim.measure.compare import Cost
from ganslim.measure.report.measure import Latency, Quality
from ganslim.measure.report.page import si
from ganslim.measure.report.run import STUDENT, TEACHER, ReportRun, RunModel

Row = list[str]


def comparison(run: ReportRun) -> tuple[RunModel, RunModel] | None:
    """(teacher, student) that the ratio column compares: the student and the first teacher of its direction."""
    student = next((m for m in run.models if m.role == STUDENT), None)
    if student is None:
        return None
    teacher = next((m for m in run.models if m.role == TEACHER and m.direction == student.direction), None)
    return None if teacher is None else (teacher, student)


def summary_rows(run: ReportRun, archs: Mapping[str, str], costs: Mapping[str, Cost], latency: Latency | None,
                 quality: Quality | None) -> tuple[Row, list[Row]]:
    """(header, rows) of the summary table; rows without any value are left out."""
    labels = [m.label for m in run.models]
    pair = comparison(run)
    header = ["", *labels] + ([f"student vs {pair[0].label}"] if pair else [])
    size = f"{run.macs_size}×{run.macs_size}"
    rows = [_row("architecture", labels, archs.get, pair, None),
            _row("parameters", labels, lambda k: costs[k].params, pair, _fewer, si),
            _row(f"MACs, true ({size})", labels, lambda k: costs[k].macs.macs, pair, _fewer, si),
            _row(f"MACs, published convention ({size})", labels, lambda k: costs[k].macs.macs_published, pair,
                 _fewer, si)]
    if latency is not None:
        side = f"{latency.side}×{latency.side}"
        threads = f"{latency.threads} thread" + ("s" if latency.threads > 1 else "")
        rows.append(_row(f"CPU latency, {threads}, quick estimate ({side}, median)", labels,
                         lambda k: latency.stats[k].median_ms, pair, _faster, lambda v: f"{v:.1f} ms"))
    if quality is not None:
        metrics = quality.metrics
        for key, name, formatter, diff in (
                ("psnr", "PSNR vs target", _db, _db_diff), ("ssim", "SSIM vs target", _ssim, _ssim_diff),
                ("psnr_teacher", "PSNR vs teacher", _db, None), ("ssim_teacher", "SSIM vs teacher", _ssim, None)):
            rows.append(_row(name, labels, lambda k, key=key: metrics.get(k, {}).get(key), pair, diff, formatter))
    return header, [row for row in rows if any(cell != "–" for cell in row[1:])]


def _row(name: str, labels: list[str], value: Callable[[str], object], pair: tuple[RunModel, RunModel] | None,
         ratio: Callable[[float, float], str] | None, formatter: Callable[[float], str] = str) -> Row:
    values = {label: value(label) for label in labels}
    cells = [name] + ["–" if values[label] is None else formatter(values[label]) for label in labels]
    if pair is not None:
        teacher, student = (values[m.label] for m in pair)
        usable = ratio is not None and teacher is not None and student is not None
        cells.append(ratio(teacher, student) if usable else "–")
    return cells


def _fewer(teacher: float, student: float) -> str:
    return _times(teacher, student, "fewer", "more")


def _faster(teacher: float, student: float) -> str:
    return _times(teacher, student, "faster", "slower")


def _times(teacher: float, student: float, better: str, worse: str) -> str:
    """``6.7× fewer`` when the student's figure is smaller, ``1.3× more`` when it is larger."""
    if not teacher or not student:
        return "–"
    return f"{teacher / student:.1f}× {better}" if student <= teacher else f"{student / teacher:.1f}× {worse}"


def _db(value: float) -> str:
    return f"{value:.2f} dB"


def _ssim(value: float) -> str:
    return f"{value:.4f}"


def _db_diff(teacher: float, student: float) -> str:
    return f"{student - teacher:+.2f} dB"


def _ssim_diff(teacher: float, student: float) -> str:
    return f"{student - teacher:+.4f}"
