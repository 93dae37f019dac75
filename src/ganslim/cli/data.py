"""`ganslim data list` and `ganslim data make NAME DIR`: the built-in datasets."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="list or create the built-in datasets")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the built-in datasets")
    listing.set_defaults(func=list_datasets)
    make = actions.add_parser("make", help="write a built-in dataset to a folder")
    make.add_argument("name", help="dataset name (see `ganslim data list`)")
    make.add_argument("directory", help="target folder (must not exist or be empty)")
    make.add_argument("--size", type=int, default=None, help="image side in pixels (default: the dataset's)")
    make.add_argument("--count", type=int, default=None, help="training images (default: the dataset's)")
    make.set_defaults(func=make_dataset)


def list_datasets(args: argparse.Namespace) -> None:
    from ganslim.data.builtin import list_builtin

    entries = list_builtin()
    width = max(len(name) for name, _ in entries)
    for name, description in entries:
        print(f"{name:<{width}}  {description}")


def make_dataset(args: argparse.Namespace) -> None:
    from ganslim.data.builtin import make_builtin

    path = make_builtin(args.name, args.directory, size=args.size, count=args.count)
    print(f"wrote built-in dataset '{args.name}' to {path}")
