"""What `ganslim compress` shows of GAN Compression: its stage commands' flags, notes and extras.

``gan-compression`` runs GAN Compression's four stages (supernet distillation -> search -> fine-tune -> export) in
one resumable run folder. Each stage is also a command of its own: ``gan-compression-supernet`` (alias
``gan-compression-train``), ``gan-compression-search``, ``gan-compression-finetune`` and
``gan-compression-export``, each taking its data, sizes and teacher from the run folder of the stage before (see
``ganslim.methods.gan_compression.inherit``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ganslim.cli.common import COMPRESS_FLAGS, MethodCommand, compress_config, print_main

TITLE = "GAN Compression"
PIPELINE = "gan-compression"
DESCRIPTION = """\
gan-compression runs GAN Compression's four stages (distil a once-for-all supernet, search it under a MACs or
latency budget, fine-tune the chosen sub-network, export it) in one resumable run folder. Each stage is also
a command of its own (gan-compression-supernet, -search, -finetune, -export), each taking the data, image
sizes, held-out images, teacher and widths from the run folder of the stage before."""

# flag -> (config key, metavar, help); each command takes the groups it needs, every other key goes via --set
TRAIN_FLAGS = {
    "--epochs": ("epochs", "N", "epochs at the initial learning rate (pipeline: of the supernet)"),
    "--epochs-decay": ("epochs_decay", "N", "epochs of linear learning-rate decay to zero"),
    "--lr": ("lr", "LR", "initial learning rate"),
    "--student-ngf": ("student_ngf", "N", "stem width of the largest student (default: the teacher's ngf)"),
    "--sampling": ("sampling", "MODE", "supernet: uniform (one random sub-network per step) or sandwich"),
    "--teacher-discriminator": ("teacher_discriminator", "CKPT",
                                "discriminator to start from (default: found next to the teacher; 'none': fresh)"),
}
SEARCH_FLAGS = {
    "--budget-macs": ("budget_macs", "MACS", "MACs budget of one --size image, e.g. 3G or 500M"),
    "--budget-ms": ("budget_ms", "MS", "latency budget in ms, measured on this machine's CPU"),
    "--budget-speedup": ("budget_speedup", "X", "latency budget as a speed-up over the teacher on this CPU, e.g. 10"),
    "--macs-convention": ("macs_convention", "CONV", "published (torchprofile, default) or true"),
    "--size": ("size", "PX", "image side for the budget (default 256)"),
    "--threads": ("threads", "N", "CPU threads when measuring latency (default: torch's)"),
    "--strategy": ("strategy", "S", "auto (default), exhaustive or evolution"),
    "--metric": ("metric", "M", "auto (default), psnr, ssim, fid or psnr_teacher"),
    "--inception-weights": ("inception_weights", "FILE", "pt_inception-2015-12-05-6726825d.pth for the FID of "
                            "unpaired data (default: $GANSLIM_INCEPTION_WEIGHTS, then ~/.cache/ganslim)"),
}
PIPELINE_FLAGS = {
    "--finetune-epochs": ("finetune_epochs", "N", "fine-tune epochs at the initial learning rate"),
    "--finetune-epochs-decay": ("finetune_epochs_decay", "N", "fine-tune epochs of learning-rate decay"),
}
SUPERNET_FLAG = {"--supernet": ("supernet", "RUN", "the supernet: a gan-compression-supernet run folder or its "
                                                   "supernet.pt (the data, sizes and teacher come from that run)")}
REUSE_SUPERNET_FLAG = {"--supernet": ("supernet", "RUN", "skip stage 1: search this trained supernet (a "
                                                         "gan-compression-supernet run folder or its supernet.pt)")}

NOTES = """\
Paired data defaults to the paper's pix2pix settings (lambda_recon 100, lambda_distill 1, hinge), unpaired to
its CycleGAN ones (10, 0.01, lsgan). A SPADE (label-map) teacher gets the mobile SPADE student and GauGAN's
settings (no L1, lambda_distill 10, lambda_feat 10, lambda_vgg 10 with vgg19_weights, hinge, TTUR); its --size
is the label map's width.
A stage starts from the run folder of the stage before (--supernet RUN; the fine-tune: --search RUN) and keeps
its data, direction, preprocess, load_size, crop_size, input_nc, output_nc, max_train_images, holdout_images,
teacher, student_ngf, student_norm, student_blocks, channel_ratios, channel_multiple and candidates (and a
search's supernet and widths): an option contradicting one is refused. Its other keys (batch size, seed, loss
weights, ...) are defaults that options may change; out_dir, device, epochs and epochs_decay are each stage's."""
SET_EXAMPLE = "lambda_distill=0.5"


def _given(args: argparse.Namespace, key: str) -> str | None:
    """Config key ``key`` as this command line sets it (--set over its flag over --config), else None."""
    from ganslim.config import parse_overrides, read_config_file

    overrides = parse_overrides(args.overrides)
    if key in overrides:
        return overrides[key]
    if getattr(args, key, None) is not None:
        return getattr(args, key)
    return read_config_file(args.config).get(key) if args.config else None


def inherited_config(args: argparse.Namespace, cls: type, method: str, search: str | None = None,
                     **extra: str) -> Any:
    """``cls`` built on what the stage before left (the ``search`` run, else the supernet run) and checked
    against it: an option contradicting that run's data, sizes, teacher or widths is refused."""
    from ganslim.methods.gan_compression.inherit import inherit_from_search, inherit_from_supernet

    if args.resume is not None:  # the run's own config.yaml already holds what it inherited
        return compress_config(args, cls, method, **extra)
    chosen = inherit_from_search(search) if search is not None else None
    supernet = _given(args, "supernet")
    start = chosen or (inherit_from_supernet(supernet) if supernet else None)
    config = compress_config(args, cls, method, start.defaults_for(cls) if start else None, **extra)
    for source in (chosen, inherit_from_supernet(config.supernet) if config.supernet else None):
        if source is not None:
            source.check(config)
    return config


def finetune_config(args: argparse.Namespace, cls: type, method: str) -> Any:
    """The fine-tune's config: the widths of ``--channels``, or those a ``--search`` run chose, and its options."""
    from ganslim.errors import GanslimError

    if args.channels is not None and args.search is not None:
        raise GanslimError("pass either --channels or --search, not both")
    extra = {"fixed_channels": args.channels} if args.channels is not None else {}
    return inherited_config(args, cls, method, search=args.search, **extra)


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--channels", metavar="C1,C2,...", help="the sub-network's widths")
    parser.add_argument("--search", metavar="RUN_DIR", help="a gan-compression-search run folder: its widths, "
                                                            "supernet and options")


def comparison_lines(result: Any) -> list[str]:
    """The pipeline's teacher vs student table, once its export stage ran."""
    from ganslim.methods.gan_compression.export import summary_table

    return summary_table(result.comparison) if result.comparison is not None else []


COMMANDS = {
    PIPELINE: MethodCommand((COMPRESS_FLAGS, TRAIN_FLAGS, SEARCH_FLAGS, PIPELINE_FLAGS, REUSE_SUPERNET_FLAG), NOTES,
                            SET_EXAMPLE, "continue a run: skip finished stages, resume the rest",
                            config=inherited_config, report=comparison_lines),
    f"{PIPELINE}-supernet": MethodCommand((COMPRESS_FLAGS, TRAIN_FLAGS), NOTES, SET_EXAMPLE,
                                          "continue a supernet run from its last checkpoint"),
    f"{PIPELINE}-search": MethodCommand((COMPRESS_FLAGS, SEARCH_FLAGS, SUPERNET_FLAG), NOTES, SET_EXAMPLE,
                                        "continue a search, skipping scored candidates", config=inherited_config),
    f"{PIPELINE}-finetune": MethodCommand((COMPRESS_FLAGS, TRAIN_FLAGS, SUPERNET_FLAG), NOTES, SET_EXAMPLE,
                                          "continue a fine-tune run from its last checkpoint",
                                          add_arguments=add_finetune_arguments, config=finetune_config),
}


def add_export_command(methods: argparse._SubParsersAction) -> None:
    """``gan-compression-export``: it trains nothing (it writes the fine-tuned student), so it is no method."""
    export = methods.add_parser(f"{PIPELINE}-export", help="stage 4: write the fine-tuned student as a compact "
                                                           "checkpoint and print teacher vs student")
    export.add_argument("--finetune", metavar="RUN_OR_CKPT", required=True,
                        help="a gan-compression-finetune run folder (its data and teacher score both) or its "
                             "generator.pt")
    export.add_argument("--out", metavar="FILE", required=True, help="the compact checkpoint to write (.pt)")
    export.add_argument("--search", metavar="RUN_DIR", help="check the MACs against this search's prediction")
    export.add_argument("--size", type=int, default=None, help="image side for MACs (default: the search's, or 256)")
    export.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    export.set_defaults(func=run_export_command)


def run_export_command(args: argparse.Namespace) -> int:
    import json

    from ganslim.config import build_config, read_config_file
    from ganslim.engine.runs import CONFIG_FILE
    from ganslim.methods.gan_compression.config import DistillConfig
    from ganslim.methods.gan_compression.export import export_student, summary_table
    from ganslim.methods.gan_compression.networks import GENERATOR_FILE
    from ganslim.methods.gan_compression.search import read_result

    source = Path(args.finetune)
    generator = source / GENERATOR_FILE if source.is_dir() else source
    run_config = generator.parent / CONFIG_FILE
    config = build_config(DistillConfig, read_config_file(run_config)) if run_config.is_file() else None
    search = read_result(args.search) if args.search else None
    summary = export_student(generator, args.out, config, search_result=search, size=args.size)
    print_main(json.dumps(summary) if args.json else "\n".join(summary_table(summary)))
    return 0


OTHER_COMMANDS = (add_export_command,)  # subcommands that are no method
