"""Benchmark generators side by side across runtimes, in one process (:mod:`.run`), and write Markdown + JSON + a
Pareto plot (:mod:`.write`)."""

from ganslim.measure.bench.run import (
    ABOVE_PEAK_NOTE,
    BACKENDS,
    DEFAULT_BACKENDS,
    PEAK_RUNS,
    BenchModel,
    BenchResult,
    BenchRow,
    backend_unavailable,
    common_scale,
    default_side,
    parse_backends,
    run_bench,
)
from ganslim.measure.bench.write import PLOT_NAME, BenchFiles, bench_table, format_markdown, pareto_plot, write_bench

__all__ = [
    "ABOVE_PEAK_NOTE",
    "BACKENDS",
    "BenchFiles",
    "BenchModel",
    "BenchResult",
    "BenchRow",
    "DEFAULT_BACKENDS",
    "PEAK_RUNS",
    "PLOT_NAME",
    "backend_unavailable",
    "bench_table",
    "common_scale",
    "default_side",
    "format_markdown",
    "pareto_plot",
    "parse_backends",
    "run_bench",
    "write_bench",
]
