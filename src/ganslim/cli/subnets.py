"""`--resolution R` and `--channels RATIO | C1,...,Cn | FILE.json:NAME` of `generate`, `profile` and `export`: one
of a StyleGAN2 generator's Anycost sub-generators (:mod:`ganslim.archs.stylegan2.subnets`), run on its weights or
copied out with real, smaller tensors."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from ganslim.archs.stylegan2 import StyleGAN2Generator
    from ganslim.archs.stylegan2.subnets import Subnet


def add_subnet_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--resolution`` and ``--channels`` (both default None: the full generator)."""
    group = parser.add_argument_group("Anycost sub-generator (StyleGAN2 only)")
    group.add_argument("--resolution", type=int, default=None, metavar="R",
                       help="stop early at side R (a power of two from 4 to the generator's size), returning that "
                            "side's image")
    group.add_argument("--channels", default=None, metavar="CHANNELS",
                       help="the first k channels of each layer: a ratio (0.25, 0.5, 0.75: Anycost's uniform "
                            "configs), one width per layer C1,...,Cn (18 at 1024), or FILE.json:NAME from an "
                            "Anycost config file (its res is the default --resolution)")


def wants_subnet(args: argparse.Namespace) -> bool:
    """Whether ``--resolution`` or ``--channels`` was given."""
    return args.resolution is not None or args.channels is not None


def stylegan2_of(model: nn.Module, what: str) -> StyleGAN2Generator:
    """``model`` if it is a StyleGAN2 generator, else one line: the sub-generator flags are StyleGAN2's only."""
    from ganslim.archs.stylegan2 import StyleGAN2Generator
    from ganslim.errors import GanslimError

    if not isinstance(model, StyleGAN2Generator):
        raise GanslimError(f"--resolution and --channels choose a sub-generator of a stylegan2 generator; {what} is "
                           f"a {type(model).__name__}: drop them")
    return model


def set_subnet(model: nn.Module, args: argparse.Namespace, what: str) -> Subnet | None:
    """Make ``model`` run as the sub-generator the flags name, on its own weights (None: no flag given)."""
    if not wants_subnet(args):
        return None
    return stylegan2_of(model, what).set_subnet(args.resolution, args.channels)


def extracted_subnet(model: nn.Module, args: argparse.Namespace, what: str) -> tuple[nn.Module, Subnet | None]:
    """The sub-generator the flags name as a standalone ``stylegan2`` with real, smaller tensors
    (``ganslim.compress.extract_stylegan2_subnet``), and which one it is; ``(model, None)`` when no flag is given."""
    from ganslim.archs.stylegan2.subnets import resolve_subnet
    from ganslim.compress import extract_stylegan2_subnet

    if not wants_subnet(args):
        return model, None
    generator = stylegan2_of(model, what)
    subnet = resolve_subnet(generator.layer_channels, args.resolution, args.channels)
    return extract_stylegan2_subnet(generator, subnet.resolution, subnet.channels), subnet


def describe_subnet(subnet: Subnet) -> dict:
    """The JSON record of a sub-generator: its resolution and per-layer widths."""
    return {"resolution": subnet.resolution, "channels": list(subnet.channels)}
