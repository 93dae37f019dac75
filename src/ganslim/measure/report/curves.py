"""Training curves from a run's ``logs/log.txt`` (the lines :class:`ganslim.engine.logging.RunLogger` writes), drawn
as small inline SVG charts: one per loss term and validation metric."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

LOG_FILE = Path("logs") / "log.txt"
_LOSSES = re.compile(r"^step (\d+) ((?:\S+=\S+ ?)+)$")  # step 20 G_GAN=0.93 G_L1=43
_VALIDATION = re.compile(r"^step (\d+) validation: (.+)$")  # step 100 validation: psnr 6.5, ssim 0.23
WIDTH, HEIGHT, PAD = 240, 70, 4

Series = dict[str, list[tuple[int, float]]]


def read_curves(run_dir: Path) -> Series:
    """name -> [(step, value)] of every loss term (``G_L1``) and validation metric (``val psnr``) in the log."""
    path = run_dir / LOG_FILE
    series: Series = {}
    if not path.is_file():
        return series
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := _VALIDATION.match(line):
            pairs = [item.strip().split(" ", 1) for item in match.group(2).split(",")]
            values = {f"val {name}": text for name, text in (p for p in pairs if len(p) == 2)}
        elif match := _LOSSES.match(line):
            values = dict(item.split("=", 1) for item in match.group(2).split())
        else:
            continue
        for name, text in values.items():
            try:
                value = float(text)
            except ValueError:
                continue
            if math.isfinite(value):
                series.setdefault(name, []).append((int(match.group(1)), value))
    return series


def curves_html(series: Series) -> str:
    """One small chart per series with two points or more: name, last value, the line, the step range."""
    charts = []
    for name, points in series.items():
        if len(points) < 2:
            continue
        steps, values = [s for s, _ in points], [v for _, v in points]
        low, high = min(values), max(values)
        x = [PAD + (WIDTH - 2 * PAD) * (s - steps[0]) / max(steps[-1] - steps[0], 1) for s in steps]
        y = [PAD + (HEIGHT - 2 * PAD) * (1 - (v - low) / (high - low) if high > low else 0.5) for v in values]
        line = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y))
        charts.append(
            f'<figure class="curve"><figcaption>{html.escape(name)}: {values[-1]:.4g} '
            f'<span>(range {low:.3g} – {high:.3g}, steps {steps[0]} – {steps[-1]})</span></figcaption>'
            f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
            f'aria-label="{html.escape(name)} by step"><polyline points="{line}"/></svg></figure>')
    return '<div class="curves">' + "\n".join(charts) + "</div>" if charts else ""
