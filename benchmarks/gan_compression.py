"""GAN Compression benchmark: teacher vs compressed students vs the same students trained from scratch.

    python benchmarks/gan_compression.py [--work benchmarks/work] [--out benchmarks/results]

On the built-in paired task (see ``compression_task.py``): a resnet_9blocks teacher (ngf 64) is trained with
pix2pix; GAN Compression distils a once-for-all supernet from it, searches a sub-network under 2.8G
published MACs at 256x256 (>= 20x fewer than the teacher's 56.8G), fine-tunes and exports it. The same
supernet is then searched again under a *latency* budget (no retraining): 10x faster than the teacher, timed
the same way as the candidates, and that sub-network is fine-tuned and exported too. Each chosen
architecture is also trained from scratch with pix2pix losses (no teacher) for as many epochs as the
supernet + fine-tune stages together. All models are measured side by side in one process. Slow on CPU
(about an hour on 2 idle cores; keep the machine otherwise idle: latency is measured during the search);
finished runs are reused when re-run with the same --work folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from compression_task import (BATCH_SIZE, EPOCHS, EPOCHS_DECAY, TEACHER, TRAINING,
                              benchmark_arguments, markdown_table, measure, prepare_data, run_seconds, train_pix2pix,
                              write_results)

from ganslim.config import load_config
from ganslim.methods.gan_compression.pipeline import PipelineConfig, run_pipeline
from ganslim.methods.gan_compression.search import read_result

BUDGET = "2.8G"
# The latency budget: the 10x target, timed the way the search times every candidate.
SPEEDUP_BUDGET = 10
SUPERNET_EPOCHS = FINETUNE_EPOCHS = EPOCHS  # each stage gets the teacher's schedule (constant, then as long decaying)
SEARCH = {"population": 40, "generations": 6, "threads": 2}
# Timing a candidate costs ~30 forward passes and few random ones fit a tight latency budget: a smaller search.
LATENCY_SEARCH = {"population": 16, "generations": 3, "latency_repeats": 20}


def compress(work: Path, data: Path, teacher: Path, name: str, **budget) -> Path:
    """Run (or finish; a finished run of that name is reused) the GAN Compression pipeline; returns its folder."""
    runs = sorted(p.parent for p in (work / "runs").glob(f"*-gan-compression-{name}/pipeline.json"))
    finished = [run for run in runs if (run / "generator.pt").is_file()]
    if finished:
        return finished[-1]
    overrides = {**{k: v for k, v in TRAINING.items() if k != "gan_mode"}, **SEARCH, **budget, "data": str(data),
                 "teacher": str(teacher), "out_dir": str(work / "runs"), "name": name, "device": "cpu",
                 "epochs": SUPERNET_EPOCHS, "epochs_decay": SUPERNET_EPOCHS,
                 "finetune_epochs": FINETUNE_EPOCHS, "finetune_epochs_decay": FINETUNE_EPOCHS}
    config = load_config(PipelineConfig, overrides=overrides, method="gan-compression")
    return run_pipeline(config, resume=runs[-1] if runs else None).run_dir


def train_scratch(work: Path, data: Path, name: str, channels: list[int]) -> Path:
    """The student architecture ``channels`` trained with pix2pix alone, as long as both distillation stages."""
    spec = {"generator": "mobile_resnet", "ngf": channels[0], "norm": TEACHER["norm"], "dropout": False,
            "channels": ",".join(map(str, channels))}
    # As many epochs as the supernet and fine-tune stages together (they train on 90%: 10% is held out).
    return train_pix2pix(work, data, name, spec, epochs=SUPERNET_EPOCHS + FINETUNE_EPOCHS,
                         epochs_decay=SUPERNET_EPOCHS + FINETUNE_EPOCHS)


def target_line(label: str, row: dict, teacher: dict, scratch: dict) -> str:
    return (f"{label}: MACs reduced {row['macs_ratio']:.1f}x (>= 20x); val PSNR "
            f"{row['psnr'] - teacher['psnr']:+.2f} dB vs the teacher (>= -0.5 dB; test "
            f"{row['test']['psnr'] - teacher['test']['psnr']:+.2f}) and {row['psnr'] - scratch['psnr']:+.2f} dB vs "
            f"its from-scratch twin (> 0; test {row['test']['psnr'] - scratch['test']['psnr']:+.2f}); "
            f"eager CPU speed-up {row['speedup']:.1f}x per round, {row['speedup_best']:.1f}x fastest vs fastest "
            f"(>= 10x).")


def main() -> None:
    args = benchmark_arguments(__doc__)

    data = prepare_data(args.work)
    teacher = train_pix2pix(args.work, data, "teacher", TEACHER)
    macs_run = compress(args.work, data, teacher, "gan-compression", budget_macs=BUDGET)
    supernet = json.loads((macs_run / "pipeline.json").read_text())["stages"]["supernet"]["run_dir"]
    ms_run = compress(args.work, data, teacher, "gan-compression-ms", budget_speedup=SPEEDUP_BUDGET,
                      supernet=supernet, **LATENCY_SEARCH)
    summaries = {run: json.loads((run / "summary.json").read_text()) for run in (macs_run, ms_run)}
    channels = {run: summaries[run]["student"]["channels"] for run in (macs_run, ms_run)}

    paths = {"teacher": teacher, "gan_compression": macs_run / "generator.pt",
             "scratch": train_scratch(args.work, data, "scratch", channels[macs_run]),
             "gan_compression_ms": ms_run / "generator.pt",
             "scratch_ms": train_scratch(args.work, data, "scratch-ms", channels[ms_run])}
    wall_clock = {name: run_seconds(path) for name, path in paths.items()}
    searched = read_result(json.loads((ms_run / "pipeline.json").read_text())["stages"]["search"]["run_dir"])
    table = measure(paths, data, reference="teacher", threads=args.threads)
    epochs = {"teacher": EPOCHS + EPOCHS_DECAY, "gan_compression_supernet": 2 * SUPERNET_EPOCHS,
              "gan_compression_finetune": 2 * FINETUNE_EPOCHS, "scratch": 2 * (SUPERNET_EPOCHS + FINETUNE_EPOCHS)}
    results = {"task": {"dataset": data.name, "batch_size": BATCH_SIZE, "epochs": epochs, "budget": BUDGET,
                        "budget_speedup": SPEEDUP_BUDGET, "student_channels": channels[macs_run],
                        "student_ms_channels": channels[ms_run]},
               "models": table, "wall_clock_s": wall_clock, "search": summaries[macs_run],
               "search_ms": summaries[ms_run]}
    markdown = markdown_table(table, wall_clock)
    markdown += (f"\n\nEpochs at batch {BATCH_SIZE}: {epochs} (GAN Compression trains on 90% of the 400 training "
                 f"images, 10% are held out for its search). gan_compression: searched under {BUDGET} published "
                 f"MACs, channels {channels[macs_run]}. gan_compression_ms: the same supernet searched again for "
                 f"{SPEEDUP_BUDGET}x the teacher's speed at 256x256 on {args.threads} threads (the search timed the "
                 f"teacher at {searched['budget']['teacher_ms']:.1f} ms and this student at "
                 f"{searched['latency_ms']:.1f} ms), channels {channels[ms_run]}; its wall-clock is search + "
                 f"fine-tune only (supernet reused). "
                 f"scratch / scratch_ms: the same architectures trained without a teacher.\n\n"
                 + target_line("MACs budget", table["gan_compression"], table["teacher"], table["scratch"]) + "\n"
                 + target_line("Latency budget", table["gan_compression_ms"], table["teacher"], table["scratch_ms"]))
    write_results(args.out, "gan_compression", results, markdown)


if __name__ == "__main__":
    main()
