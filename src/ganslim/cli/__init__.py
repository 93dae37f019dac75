"""The `ganslim` command line: thin commands over the library. Nothing imports this package.

Each command lives in its own module exposing ``add_parser(subparsers)``, which registers the command and
sets ``func`` to a function taking the parsed arguments. User mistakes (``GanslimError``) print as one line.
The flag and config plumbing of the commands that train (``train``, ``compress``) lives in :mod:`.common`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ganslim import __version__
from ganslim.cli.common import is_main_process
from ganslim.errors import GanslimError, RunInterrupted

COMMAND_MODULES = ("translate", "generate", "profile", "data", "demo", "train", "compress", "search", "export", "quantize", "eval", "bench", "report",
                   "project", "directions", "edit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganslim", description="Make image generators small and fast.")
    parser.add_argument("--version", action="version", version=f"ganslim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"ganslim.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except GanslimError as error:
        print(f"ganslim {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RunInterrupted as interrupt:
        if is_main_process():
            print(f"ganslim {args.command}: {interrupt.line(_command_line(args))}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if is_main_process():
            print(f"ganslim {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _command_line(args: argparse.Namespace) -> str:
    """``ganslim train pix2pix`` / ``ganslim compress omgd``: the command that resumes this kind of run."""
    method = getattr(args, "method", None)
    return f"ganslim {args.command}" + (f" {method}" if method else "")


if __name__ == "__main__":
    sys.exit(main())
