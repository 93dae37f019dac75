"""`ganslim profile MODEL_OR_CKPT`: params, MACs (both conventions), latency and peak memory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ganslim.cli.subnets import add_subnet_arguments, describe_subnet, extracted_subnet

if TYPE_CHECKING:
    from ganslim.signature import Signature


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("profile", help="params, MACs, latency and memory of a generator")
    parser.add_argument("model", metavar="MODEL_OR_CKPT",
                        help="a checkpoint file/folder, or a registered generator name (e.g. resnet_9blocks)")
    parser.add_argument("--size", type=int, default=None,
                        help="input height and width, the low-resolution side for super-resolution (default: the size the "
                             "model is built for, as SPADE's, else 256); "
                             "a latent generator's image side (a name: built at that size; a checkpoint: its own)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs after warm-up (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    parser.add_argument("--ngf", type=int, default=None,
                        help="width, when MODEL is an architecture name that takes one")
    parser.add_argument("--norm", default=None, choices=["instance", "batch", "none"],
                        help="norm, when MODEL is a name that takes one (default: instance for resnet, batch for "
                             "unet, as the reference CycleGAN/pix2pix; SPADE's parameter-free batch for spade)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_subnet_arguments(parser)
    parser.set_defaults(func=run)


def build_named_generator(name: str, ngf: int | None, norm: str | None, size: int | None = None):
    """A freshly initialised registered generator, with the reference's default norm for its family where it
    takes a norm; ``ngf`` and ``norm`` given to a builder that takes none are one line naming what it takes.
    ``size`` is the image side of a latent generator (a builder that takes ``size``, as stylegan2's); an image
    model's input side is no build argument, so it is ignored for those."""
    from ganslim.archs import build_generator, builder_parameters
    from ganslim.registry import GENERATORS

    kwargs = {key: value for key, value in (("ngf", ngf), ("norm", norm)) if value is not None}
    accepted = builder_parameters(GENERATORS, name)
    if norm is None and "norm" in accepted and not name.startswith("spade"):  # SPADE's builders default to NVlabs'
        kwargs["norm"] = "batch" if name.startswith("unet") else "instance"
    if size is not None and "size" in accepted:
        kwargs["size"] = size
    return build_generator(name, **kwargs)


def profile_size(requested: int | None, signature: Signature) -> int | tuple[int, int]:
    """The side to profile at: ``requested`` for a model that takes an image (default: the (height, width) it is
    built for, as SPADE's 256x512 for Cityscapes, else 256); a latent generator's own image side, which a different
    ``requested`` is one line against."""
    if signature.takes_image:
        return requested if requested is not None else signature.image_input.size or 256
    if requested is not None:
        signature.check_resolution(requested)
    return signature.output.resolution


def run(args: argparse.Namespace) -> None:
    import ganslim.archs  # noqa: F401 - registers the generators
    from ganslim.checkpoints import load_generator
    from ganslim.errors import GanslimError
    from ganslim.measure.profile import format_profile, profile_model
    from ganslim.registry import GENERATORS

    from ganslim.signature import signature_of

    if Path(args.model).exists():
        model = load_generator(args.model).model
    elif args.model in GENERATORS:
        model = build_named_generator(args.model, args.ngf, args.norm, args.size)
    else:
        raise GanslimError(f"'{args.model}' is neither an existing checkpoint nor a generator name: pass a "
                           f"checkpoint path or one of {', '.join(GENERATORS.names())}")
    size = profile_size(args.size, signature_of(model, args.size or 256))
    model, subnet = extracted_subnet(model, args, f"'{args.model}'")
    profile = profile_model(model, input_size=size, batch=args.batch, device=args.device,
                            threads=args.threads, warmup=args.warmup, repeats=args.repeats)
    named = args.model if subnet is None else (f"{args.model} (sub-generator: {subnet.resolution} px, channels "
                                               f"{','.join(map(str, subnet.channels))})")
    if args.json:
        print(json.dumps({"model": args.model, **profile.to_dict()}
                         | ({} if subnet is None else {"subnet": describe_subnet(subnet)})))
    else:
        print(format_profile(profile, named))
