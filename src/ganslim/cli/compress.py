"""`ganslim compress METHOD`: turn a trained teacher into a compact generator.

One subcommand per compression method registered in :data:`ganslim.methods.METHODS`, all run alike
(:func:`run_method`); what each shows (its flags, notes, extra options and report lines) lives with its family's
command-line module: :mod:`ganslim.cli.gan_compression`, :mod:`ganslim.cli.omgd`,
:mod:`ganslim.cli.mobilestylegan`, :mod:`ganslim.cli.anycost`, :mod:`ganslim.cli.agd`.
"""

from __future__ import annotations

import argparse

from ganslim.cli import agd, anycost, gan_compression, mobilestylegan, omgd
from ganslim.cli.common import (
    COMPRESS_EPILOG,
    MethodCommand,
    add_config_arguments,
    compress_config,
    print_main,
    show_config,
)
from ganslim.methods import COMPRESS, MethodEntry, methods_of

FAMILIES = (gan_compression, omgd, mobilestylegan, anycost, agd)
DESCRIPTION = "Turn a trained teacher generator into a compact one.\n\n" + "\n\n".join(
    family.DESCRIPTION for family in FAMILIES)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compress", help=f"compress a generator ({', '.join(family.TITLE for family in FAMILIES)})",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    methods = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    registered = methods_of(COMPRESS).entries()
    for family in FAMILIES:
        for entry in registered:
            if entry.name in family.COMMANDS:
                add_method_command(methods, entry, family.COMMANDS[entry.name])
        for add_command in family.OTHER_COMMANDS:
            add_command(methods)


def add_method_command(methods: argparse._SubParsersAction, entry: MethodEntry, command: MethodCommand) -> None:
    """Register ``ganslim compress NAME`` for ``entry``: its typed flags, the config arguments, ``--resume``, and
    ``--stop-after`` for a staged run; its epilog is the method's notes then :data:`COMPRESS_EPILOG`."""
    parser = methods.add_parser(entry.name, help=entry.help, description=entry.help, aliases=list(entry.aliases),
                                epilog=f"{command.notes}\n{COMPRESS_EPILOG}",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, list(command.groups), set_example=command.set_example)
    parser.add_argument("--resume", metavar="RUN_DIR", help=command.resume_help)
    if entry.stages:
        stops = entry.stages[:-1]
        parser.add_argument("--stop-after", metavar="STAGE", choices=stops,
                            help=f"stop after this stage ({', '.join(stops)}); --resume continues later")
    if command.add_arguments is not None:
        command.add_arguments(parser)
    parser.set_defaults(func=lambda args: run_method(entry, command, args))


def run_method(entry: MethodEntry, command: MethodCommand, args: argparse.Namespace) -> int:
    """Fill the method's config from the command line, then show it or run the method and print its summary."""
    runner = entry.load()
    config = (command.config or compress_config)(args, runner.Config, entry.name)
    if args.show_config:
        return show_config(config, entry.name)
    options = {"stop_after": args.stop_after} if entry.stages else {}
    result = runner.run(config, resume=args.resume, progress=not args.no_progress, **options)
    print_main(f"ganslim compress {result.summary()}")
    for line in command.report(result) if command.report is not None else []:
        print_main(line)
    return 0
