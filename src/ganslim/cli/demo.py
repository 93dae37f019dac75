"""`ganslim demo`: the built-in end-to-end job that `make demo` runs."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="train a teacher, compress it, compare both on built-in data")
    parser.add_argument("--out", default="demo_out", help="folder for everything the demo writes (default demo_out)")
    parser.add_argument("--dataset", default=None, help="built-in paired dataset (default: shapes2render)")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (default 64)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="teacher epochs at the full learning rate, then as many decaying (default 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.apps.demo import run_demo
    from ganslim.data import DEFAULT_BUILTIN

    report = run_demo(args.out, dataset=args.dataset or DEFAULT_BUILTIN, size=args.size, epochs=args.epochs,
                      device=args.device)
    print("\n".join(report.lines()))
