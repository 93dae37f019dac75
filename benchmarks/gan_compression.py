"""GAN Compression benchmark: teacher vs compressed student vs the same student trained from scratch.

    python benchmarks/gan_compression.py [--work benchmarks/work] [--out benchmarks/results]

On the built-in paired task (see ``compression_task.py``): a resnet_9blocks teacher (ngf 64) is trained with
pix2pix; GAN Compression distils a once-for-all supernet from it, searches a sub-network under 2.8G
published MACs at 256x256 (>= 20x fewer than the teacher's 56.8G), fine-tunes and exports it; the same
architecture is then trained from scratch with pix2pix losses (no teacher) for as many epochs as the
supernet + fine-tune stages together. All three are measured side by side in one process. Slow on CPU
(about half an hour on 2 idle cores); finished stages are reused when re-run with the same --work folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from compression_task import (BATCH_SIZE, EPOCHS, EPOCHS_DECAY, TEACHER, TRAINING, benchmark_arguments,
                              markdown_table, measure, prepare_data, run_seconds, train_pix2pix, write_results)

from ganslim.config import load_config
from ganslim.methods.gan_compression.pipeline import PipelineConfig, run_pipeline

BUDGET = "2.8G"
SUPERNET_EPOCHS = FINETUNE_EPOCHS = EPOCHS  # each stage gets the teacher's schedule (constant, then as long decaying)
SEARCH = {"population": 40, "generations": 6, "threads": 2}


def compress(work: Path, data: Path, teacher: Path) -> Path:
    """Run (or finish) the whole GAN Compression pipeline; returns the run folder."""
    overrides = {**{k: v for k, v in TRAINING.items() if k != "gan_mode"}, **SEARCH, "data": str(data),
                 "teacher": str(teacher), "out_dir": str(work / "runs"), "name": "gan-compression", "device": "cpu",
                 "budget_macs": BUDGET, "epochs": SUPERNET_EPOCHS, "epochs_decay": SUPERNET_EPOCHS,
                 "finetune_epochs": FINETUNE_EPOCHS, "finetune_epochs_decay": FINETUNE_EPOCHS}
    config = load_config(PipelineConfig, overrides=overrides, method="gan-compression")
    unfinished = sorted(p.parent for p in (work / "runs").glob("*-gan-compression*/pipeline.json")
                        if not (p.parent / "generator.pt").is_file())
    return run_pipeline(config, resume=unfinished[-1] if unfinished else None).run_dir


def main() -> None:
    args = benchmark_arguments(__doc__)

    data = prepare_data(args.work)
    teacher = train_pix2pix(args.work, data, "teacher", TEACHER)
    run_dir = compress(args.work, data, teacher)
    summary = json.loads((run_dir / "summary.json").read_text())
    channels = summary["student"]["channels"]
    student_spec = {"generator": "mobile_resnet", "ngf": channels[0], "norm": TEACHER["norm"], "dropout": False,
                    "channels": ",".join(map(str, channels))}
    # As many epochs as the supernet and fine-tune stages together (they train on 90%: 10% is held out).
    scratch = train_pix2pix(args.work, data, "scratch", student_spec, epochs=SUPERNET_EPOCHS + FINETUNE_EPOCHS,
                            epochs_decay=SUPERNET_EPOCHS + FINETUNE_EPOCHS)

    paths = {"teacher": teacher, "gan_compression": run_dir / "generator.pt", "scratch": scratch}
    wall_clock = {name: run_seconds(path) for name, path in paths.items()}
    table = measure(paths, data, reference="teacher", threads=args.threads)
    epochs = {"teacher": EPOCHS + EPOCHS_DECAY, "gan_compression_supernet": 2 * SUPERNET_EPOCHS,
              "gan_compression_finetune": 2 * FINETUNE_EPOCHS, "scratch": 2 * (SUPERNET_EPOCHS + FINETUNE_EPOCHS)}
    results = {"task": {"dataset": data.name, "batch_size": BATCH_SIZE, "epochs": epochs, "budget": BUDGET,
                        "student_channels": channels}, "models": table,
               "wall_clock_s": wall_clock, "search": summary}
    markdown = markdown_table(table, wall_clock)
    teacher_row, student_row, scratch_row = table["teacher"], table["gan_compression"], table["scratch"]
    markdown += (f"\n\nEpochs at batch {BATCH_SIZE}: {epochs} (GAN Compression trains on 90% of the 400 training "
                 f"images, 10% are held out for its search). Student channels {channels}. Targets: MACs reduced "
                 f"{student_row['macs_ratio']:.1f}x (>= 20x); "
                 f"val PSNR {student_row['psnr'] - teacher_row['psnr']:+.2f} dB vs the teacher (>= -0.5 dB) and "
                 f"{student_row['psnr'] - scratch_row['psnr']:+.2f} dB vs the from-scratch student (> 0); "
                 f"eager CPU speed-up {student_row['speedup']:.1f}x (>= 10x).")
    write_results(args.out, "gan_compression", results, markdown)


if __name__ == "__main__":
    main()
