"""`ganslim report RUN_DIR`: one self-contained HTML page: summary (teacher vs student), image grids, results."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="render a run folder as one HTML page (summary, image grids, results, config)",
        description="Write RUN_DIR/report.html from the run alone: a summary of its generators (teacher vs "
                    "student: parameters, MACs, a quick CPU latency estimate, val PSNR/SSIM on a few images when "
                    "the run's data folder is here), labelled image grids, the run's summary.json / eval.json / "
                    "bench.json when present, and the config folded away. Works on pix2pix and CycleGAN teacher "
                    "runs, GAN Compression pipelines and their stages, and OMGD runs.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (holds config.yaml)")
    parser.add_argument("--teacher", default=None, metavar="CKPT",
                        help="teacher checkpoint instead of the run's (or in addition, for a run without one)")
    parser.add_argument("--student", default=None, metavar="CKPT", help="student checkpoint instead of the run's")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="dataset for the grids and quality (default: the run's, if it is here)")
    parser.add_argument("--split", default=None, help="split of the grid and quality images (default val, else test)")
    parser.add_argument("--size", type=int, default=None,
                        help="image side for the grids, quality and MACs (default: the config's crop_size)")
    parser.add_argument("--direction", default=None, choices=["AtoB", "BtoA"],
                        help="input side of the data (default: the config's)")
    parser.add_argument("--num-images", type=int, default=4, help="rows of each image grid (default 4)")
    parser.add_argument("--quality-images", type=int, default=16,
                        help="PSNR/SSIM on at most this many images (default 16)")
    parser.add_argument("--latency-size", type=int, default=None,
                        help="image side of the latency estimate (default: --size, at most 128)")
    parser.add_argument("--latency-repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--no-latency", action="store_true", help="do not time the models")
    parser.add_argument("--bench", default=None, metavar="FILE",
                        help="a bench.json (or its folder) to include (default: RUN_DIR/bench.json or bench/)")
    parser.add_argument("--eval", default=None, metavar="FILE",
                        help="an eval.json to include (default: RUN_DIR/eval.json)")
    parser.add_argument("--out", default=None, metavar="FILE", help="the HTML file (default RUN_DIR/report.html)")
    parser.add_argument("--device", default="cpu", help="where grids and quality are computed (default cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.devices import resolve_device
    from ganslim.measure.report import ReportOptions, make_report, read_run

    options = ReportOptions(num_images=args.num_images, quality_images=args.quality_images,
                            latency=not args.no_latency, latency_size=args.latency_size,
                            latency_repeats=args.latency_repeats, bench=_path(args.bench), eval=_path(args.eval),
                            device=str(resolve_device(args.device)))
    report_run = read_run(args.run_dir, teacher=args.teacher, student=args.student, data=args.data,
                          split=args.split, size=args.size, direction=args.direction)
    files = make_report(report_run, out=args.out, options=options)
    print(f"wrote {files.html}")
    for note in files.notes:
        print(f"not in the report: {note}")


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)
