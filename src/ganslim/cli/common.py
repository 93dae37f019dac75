"""Plumbing shared by the commands that fill a config and run a method (`ganslim train`, `ganslim compress ...`).

Such a command takes typed flags for its common config keys, ``--config FILE``, ``--set KEY=VALUE``,
``--show-config``, ``--no-progress`` and ``--resume``; :func:`config_from_args` resolves them in one order:
defaults < --config FILE (or, with --resume, the run's config.yaml) < typed flags < --set. Lines are printed by
the main process only, so a ``torchrun`` of N processes prints each once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Typed flags, flag -> (config key, metavar, help); every other config key goes through --set.
# The run options every training command takes:
RUN_FLAGS = {
    "--device": ("device", "DEV", "auto (default: CUDA if present), cpu, cuda or cuda:N"),
    "--seed": ("seed", "N", "random seed (default 0)"),
    "--batch-size": ("batch_size", "N", "images per step and process"),
    "--out-dir": ("out_dir", "DIR", "where run folders are created (default runs/)"),
    "--name": ("name", "NAME", "run folder suffix (default: the dataset folder's name)"),
}
# The flags of every `ganslim compress METHOD` (a method adds a group of its own):
COMPRESS_FLAGS = {
    "--data": ("data", "DIR", "dataset folder: train/ (paired A|B images) or trainA/ trainB/ (unpaired)"),
    "--teacher": ("teacher", "CKPT", "teacher generator: generator.pt, latest_net_G*.pth or a teacher run folder"),
    **RUN_FLAGS,
}

# The end of every `ganslim compress METHOD` epilog, after the method's own notes:
COMPRESS_EPILOG = """\
Config precedence: defaults < --config FILE < flags < --set KEY=VALUE (every key: --show-config).
Several processes / GPUs: torchrun --nproc_per_node=N -m ganslim.cli compress ... (same flags)."""


def add_config_arguments(parser: argparse.ArgumentParser, groups: list[dict], set_example: str) -> None:
    """Add the typed flags of ``groups`` (each ``flag -> (config key, metavar, help)``, default None; their keys in
    ``args.flag_keys``), ``--config``, ``--set`` (help shows ``--set set_example``), ``--show-config`` and
    ``--no-progress``."""
    for group in groups:
        for flag, (key, metavar, help_text) in group.items():
            parser.add_argument(flag, dest=key, metavar=metavar, default=None, help=help_text)
    parser.set_defaults(flag_keys=[key for group in groups for key, _, _ in group.values()])
    parser.add_argument("--config", metavar="FILE", help="YAML file of config keys")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                        help=f"set any config key, e.g. --set {set_example} (repeatable)")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")


@dataclass(frozen=True)
class MethodCommand:
    """How ``ganslim compress NAME`` presents a method registered in :data:`ganslim.methods.METHODS`.

    ``groups``: its typed flags (each ``flag -> (config key, metavar, help)``); ``notes``: its epilog, before
    :data:`COMPRESS_EPILOG`; ``set_example``: what ``--set`` help shows; ``add_arguments``: flags that are no
    config key; ``config(args, Config, name)``: its config from the command line (default
    :func:`compress_config`); ``report(result)``: lines printed after the run's summary line.
    """

    groups: tuple[dict, ...]
    notes: str
    set_example: str
    resume_help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    config: Callable[[argparse.Namespace, type, str], Any] | None = None
    report: Callable[[Any], list[str]] | None = None


def config_from_args(args: argparse.Namespace, cls: type, method: str, read_resumed: Callable[[str], Mapping],
                     inherited: Mapping[str, Any] | None = None, **extra: Any) -> Any:
    """``cls`` from defaults < ``inherited`` (what an earlier stage left) < --config or ``read_resumed(args.resume)``
    < typed flags < ``extra`` < --set."""
    from ganslim.config import build_config, parse_overrides, read_config_file
    from ganslim.errors import GanslimError

    overrides = parse_overrides(args.overrides)
    if args.resume is not None:
        if args.config is not None:
            raise GanslimError("--config cannot be combined with --resume (the run's config.yaml is used): "
                               "pass changes with --set")
        base = read_resumed(args.resume)
    else:
        base = read_config_file(args.config) if args.config is not None else {}
    flags = {key: getattr(args, key) for key in args.flag_keys if getattr(args, key) is not None}
    return build_config(cls, inherited or {}, base, flags, extra, overrides, method=method)


def compress_config(args: argparse.Namespace, cls: type, method: str, inherited: Mapping[str, Any] | None = None,
                    **extra: Any) -> Any:
    """:func:`config_from_args` for ``ganslim compress METHOD``, whose --resume takes a run folder it made."""
    return config_from_args(args, cls, method, lambda run_dir: _run_folder_config(run_dir, method), inherited,
                            **extra)


def _run_folder_config(run_dir: str, method: str) -> dict:
    from ganslim.config import read_config_file
    from ganslim.engine.runs import CONFIG_FILE, require_run_folder

    return read_config_file(require_run_folder(run_dir, f"'ganslim compress {method}'") / CONFIG_FILE)


def show_config(config: Any, method: str) -> int:
    """Print the resolved config as YAML (for --show-config); the command's exit code."""
    from ganslim.config import config_to_yaml

    print(config_to_yaml(config, method), end="")
    return 0


def is_main_process() -> bool:
    """True in a plain process and in rank 0 of a ``torchrun`` world (``RANK`` 0 or unset)."""
    return os.environ.get("RANK", "0") == "0"


def print_main(line: str) -> None:
    """Print ``line`` in the main process only."""
    if is_main_process():
        print(line)
