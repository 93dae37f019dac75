"""`ganslim report RUN_DIR`: one self-contained HTML page: config, metrics, Pareto plot, image grid."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="render a run folder as one HTML page (config, metrics, Pareto plot, image grid)",
        description="Write RUN_DIR/report.html: the run's config.yaml, tables from report.json / summary.json / "
                    "eval.json / bench.json, the bench Pareto plot, and a grid input | teacher | student | target. "
                    "The models and data come from RUN_DIR/report.json (keys teacher, student, data, split, "
                    "size, metrics; see ganslim.report), else from config.yaml and RUN_DIR/generator.pt; the "
                    "flags below override both.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (holds config.yaml)")
    parser.add_argument("--teacher", default=None, metavar="CKPT", help="teacher generator checkpoint")
    parser.add_argument("--student", default=None, metavar="CKPT", help="student generator checkpoint")
    parser.add_argument("--data", default=None, metavar="DIR", help="dataset for the image grid")
    parser.add_argument("--split", default=None, help="split of the grid images (default val, else test)")
    parser.add_argument("--size", type=int, default=None, help="image side (default: the config's crop_size)")
    parser.add_argument("--direction", default=None, choices=["AtoB", "BtoA"],
                        help="input side of the data (default: the config's, else AtoB)")
    parser.add_argument("--num-images", type=int, default=4, help="rows of the image grid (default 4)")
    parser.add_argument("--out", default=None, metavar="FILE", help="the HTML file (default RUN_DIR/report.html)")
    parser.add_argument("--device", default="cpu", help="where the models run for the grid (default cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.devices import resolve_device
    from ganslim.report import make_report, read_report_spec

    spec = read_report_spec(args.run_dir, teacher=args.teacher, student=args.student, data=args.data,
                            split=args.split, size=args.size, direction=args.direction)
    files = make_report(spec, out=args.out, num_images=args.num_images, device=resolve_device(args.device))
    print(f"wrote {files.html}" + (f" and {files.grid}" if files.grid else ""))
    if files.grid_note:
        print(f"no image grid: {files.grid_note}")
