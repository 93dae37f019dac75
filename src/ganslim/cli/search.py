"""`ganslim search anycost --ckpt G.pt (--budget-macs 5G | --budget-ms 30) [--resolution R] --out configs.json`: the
best flexible Anycost sub-generator of a StyleGAN2 generator under a budget, written in Anycost's config format.

(GAN Compression's search is a stage of its training pipeline, ``ganslim compress gan-compression-search``; this
one needs no data or training: it searches a trained checkpoint.)"""

from __future__ import annotations

import argparse

ANYCOST_DESCRIPTION = """\
Search the flexible sub-generators of a StyleGAN2 checkpoint (per layer one of the widths Anycost GAN trains:
ratios 0.25 .. 1 of the full width, multiples of 4) that stop at --resolution, for the one closest to the full
generator (PSNR of its images to the full generator's, downsampled, on the z of seeds 0 .. --latents-1 and the
stored noise) within a MACs budget (the whole z -> image generator, --macs-convention) and/or a latency budget
measured on this machine's CPU (each candidate's compact model timed interleaved with the smallest one, as GAN
Compression's search times). Small spaces are searched exhaustively, larger ones by GAN Compression's evolution.
The best configuration is written to --out in Anycost's config format (channels for every layer, res, macs),
which `ganslim generate/profile/export --channels FILE.json:NAME` read. Fidelity means most for a generator trained
as Anycost's (compress anycost): slicing any other generator works, its narrow sub-generators just look worse."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help="search sub-networks of a trained generator under a budget")
    kinds = parser.add_subparsers(dest="method", metavar="KIND", required=True)
    anycost = kinds.add_parser("anycost", help="Anycost GAN's flexible sub-generators of a StyleGAN2 checkpoint",
                               description=ANYCOST_DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    anycost.add_argument("--ckpt", required=True, help="StyleGAN2 checkpoint (ganslim, rosinality, NVIDIA .pkl)")
    anycost.add_argument("--budget-macs", default=None, metavar="MACS",
                         help="MACs budget of the whole sub-generator on one z, e.g. 5G or 500M")
    anycost.add_argument("--budget-ms", type=float, default=None, metavar="MS",
                         help="latency budget in ms of one z -> image on this machine's CPU")
    anycost.add_argument("--macs-convention", default="published", choices=("published", "true"),
                         help="convention of --budget-macs: published (torchprofile, Anycost's figures; default) or "
                              "true multiply-adds")
    anycost.add_argument("--resolution", type=int, default=None, metavar="R",
                         help="the side the sub-generators stop at (default: the generator's)")
    anycost.add_argument("--out", required=True, metavar="FILE.json", help="config file to write (must not exist)")
    anycost.add_argument("--name", default=None,
                         help="the config's name in --out (default: the budget, e.g. 5G or 30ms)")
    anycost.add_argument("--latents", type=int, default=16, help="seeds scored on (default 16)")
    anycost.add_argument("--threads", type=int, default=None, help="CPU threads when timing (default: torch's)")
    anycost.add_argument("--latency-repeats", type=int, default=10, help="timed rounds per timing (default 10)")
    anycost.add_argument("--strategy", default="auto", choices=("auto", "exhaustive", "evolution"),
                         help="auto (default): exhaustive when at most 500 configurations fit a MACs budget")
    anycost.add_argument("--population", type=int, default=32, help="evolution: population size (default 32)")
    anycost.add_argument("--generations", type=int, default=8, help="evolution: generations (default 8)")
    anycost.add_argument("--seed", type=int, default=0, help="seed of the evolution (default 0)")
    anycost.add_argument("--device", default="auto", help="where candidates are scored: auto, cpu or cuda "
                                                          "(timing is always on the CPU)")
    anycost.add_argument("--no-progress", action="store_true", help="no progress bar")
    anycost.set_defaults(func=run_anycost)


def run_anycost(args: argparse.Namespace) -> None:
    import json

    from ganslim.atomic import atomic_write_text
    from ganslim.checkpoints import load_generator
    from ganslim.cli.subnets import stylegan2_of
    from ganslim.compress.anycost_search import Evolution, Fidelity, config_entry, search_anycost
    from ganslim.compress.search import Budget, format_macs, parse_macs
    from ganslim.devices import resolve_device
    from ganslim.errors import GanslimError
    from ganslim.outputs import check_output_file

    if args.budget_macs is None and args.budget_ms is None:
        raise GanslimError("no budget given: pass --budget-macs (e.g. 5G) and/or --budget-ms (e.g. 30)")
    if args.budget_ms is not None and not args.budget_ms > 0:
        raise GanslimError(f"--budget-ms {args.budget_ms:g} must be a positive number of milliseconds (e.g. 30)")
    for flag, value, least in (("--population", args.population, 2), ("--generations", args.generations, 0),
                               ("--latency-repeats", args.latency_repeats, 1)):
        if value < least:
            raise GanslimError(f"{flag} {value} must be at least {least}")
    out = check_output_file(args.out, "--out")
    if out.exists():
        raise GanslimError(f"--out '{out}' already exists: pass a new file name (it is never overwritten)")
    loaded = load_generator(args.ckpt)
    generator = stylegan2_of(loaded.model, f"checkpoint '{loaded.path}'").to(resolve_device(args.device)).eval()
    fidelity = Fidelity(generator, _resolution(generator, args.resolution), args.latents)
    macs = parse_macs(args.budget_macs) if args.budget_macs is not None else None
    budget = Budget(macs, args.macs_convention, args.budget_ms, fidelity.resolution, args.threads,
                    args.budget_macs or "")
    evolution = Evolution(args.strategy, population=args.population, generations=args.generations, seed=args.seed)
    result = search_anycost(generator, budget, fidelity=fidelity, evolution=evolution,
                            latency_repeats=args.latency_repeats, progress=not args.no_progress)
    name = args.name or "_".join(([budget.macs_label] if macs is not None else [])
                                 + ([f"{args.budget_ms:g}ms"] if args.budget_ms is not None else []))
    entry = config_entry(generator, result)
    atomic_write_text(json.dumps({name: entry}, indent=1) + "\n", out)
    best = result.best
    cost = f"{format_macs(best['macs_published'])} MACs published ({format_macs(best['macs'])} true)"
    if best.get("latency_ms") is not None:
        cost += f", {best['latency_ms']:.3g} ms"
    psnr = "identical to the full generator" if entry["psnr"] is None else f"PSNR {entry['psnr']:.2f} dB"
    print(f"searched {result.evaluated} sub-generators of {loaded.path} at {fidelity.resolution} px under "
          f"{budget.describe()} ({result.strategy}, {result.fitting} within budget); best {psnr}, {cost}, channels "
          f"{','.join(map(str, best['channels']))} -> {out}:{name}")


def _resolution(generator, resolution: int | None) -> int:
    from ganslim.archs.stylegan2.subnets import resolve_subnet

    return resolve_subnet(generator.layer_channels, resolution).resolution
