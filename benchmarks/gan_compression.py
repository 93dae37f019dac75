"""GAN Compression benchmark: teacher vs compressed students vs the same students trained from scratch.

    python benchmarks/gan_compression.py [--work benchmarks/work] [--out benchmarks/results] [--tasks paired,unpaired]

Two tasks (see ``compression_task.py``). **Paired**: a resnet_9blocks pix2pix teacher; GAN Compression distils a
once-for-all supernet from it, searches a sub-network under 2.8G published MACs at 256x256 (>= 20x fewer than the
teacher's 56.8G), fine-tunes and exports it. The same supernet is then searched again under a *latency* budget (no
retraining): 10x faster than the teacher, timed the same way as the candidates, and that sub-network is fine-tuned
and exported too. **Unpaired**: a resnet_9blocks CycleGAN teacher (G_A); GAN Compression's unpaired setting
(reconstruction to the teacher's outputs) under the same MACs budget; quality is fidelity to the teacher's outputs on
the held-out test A images.

Each chosen architecture is also trained from scratch with the teacher's own method (pix2pix, or CycleGAN for
unpaired data; no teacher) for as many epochs as the supernet + fine-tune stages together, on exactly the images GAN
Compression trains on (its 90% of the training split), and the paired twins keep their best checkpoint on the images
GAN Compression holds out for its search: same data, same steps, same selection images. Every student is then
trained twice more with other seeds (the GAN Compression ones fine-tuned again from the same supernet and
architecture), so a gap between them can be told from run-to-run variation. All models of a task are measured side
by side in one process. Slow on CPU (about 1.5 hours for the paired task and 1 hour for the unpaired one on 2 idle
cores; keep the machine otherwise idle: latency is measured during the search); finished runs are reused when re-run
with the same --work folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from compression_task import (BATCH_SIZE, EPOCHS, EPOCHS_DECAY, TRAINING, Task, benchmark_arguments, finished_run,
                              holdout_split, markdown_table, measure, mobile_resnet_options, prepare_data,
                              run_seconds, seed_quality, seed_table, train_teacher, train_translation,
                              write_results)

from ganslim.config import load_config
from ganslim.engine import fit
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.distill import FinetuneDistillation
from ganslim.methods.gan_compression.pipeline import PipelineConfig, run_pipeline
from ganslim.methods.gan_compression.search import read_result

BUDGET = "2.8G"
# The latency budget: the 10x target, timed the way the search times every candidate.
SPEEDUP_BUDGET = 10
SUPERNET_EPOCHS = FINETUNE_EPOCHS = EPOCHS  # each stage gets the teacher's schedule (constant, then as long decaying)
SEARCH = {"population": 40, "generations": 6, "threads": 2}
# Timing a candidate costs ~30 forward passes and few random ones fit a tight latency budget: a smaller search.
LATENCY_SEARCH = {"population": 16, "generations": 3, "latency_repeats": 20}
# Every student is trained again with these seeds (fine-tunes from the same supernet and architecture), to
# tell a real gap from run-to-run variation; the main table is seed 0.
REPEAT_SEEDS = (1, 2)
SEEDS = (0, *REPEAT_SEEDS)


def compress(work: Path, data: Path, teacher: Path, name: str, **budget) -> Path:
    """Run (or finish; a finished run of that name is reused) the GAN Compression pipeline; returns its folder."""
    runs = sorted(p.parent for p in (work / "runs").glob(f"*-gan-compression-{name}/pipeline.json"))
    finished = [run for run in runs if (run / "generator.pt").is_file()]
    if finished:
        return finished[-1]
    overrides = {**TRAINING, **SEARCH, **budget, "data": str(data),
                 "teacher": str(teacher), "out_dir": str(work / "runs"), "name": name, "device": "cpu",
                 "epochs": SUPERNET_EPOCHS, "epochs_decay": SUPERNET_EPOCHS,
                 "finetune_epochs": FINETUNE_EPOCHS, "finetune_epochs_decay": FINETUNE_EPOCHS}
    config = load_config(PipelineConfig, overrides=overrides, method="gan-compression")
    return run_pipeline(config, resume=runs[-1] if runs else None).run_dir


def train_scratch(work: Path, task: Task, data: Path, name: str, channels: list[int], seed: int = 0) -> Path:
    """The student architecture ``channels`` trained with the teacher's method alone on GAN Compression's training
    images, as many steps as both distillation stages (paired: selected on its held-out images)."""
    return train_translation(work, task, holdout_split(work, task, data), name if seed == 0 else f"{name}-seed{seed}",
                             mobile_resnet_options(channels), epochs=SUPERNET_EPOCHS + FINETUNE_EPOCHS,
                             epochs_decay=SUPERNET_EPOCHS + FINETUNE_EPOCHS, seed=seed)


def repeat_finetune(work: Path, pipeline_run: Path, name: str, seed: int,
                    method: type[FinetuneDistillation] = FinetuneDistillation) -> Path:
    """The fine-tune stage of ``pipeline_run`` again with another ``seed`` (same supernet, same architecture; the
    stage's ``method``, the student family's); returns its compact ``generator.pt`` (a finished run is reused)."""
    name = f"{name}-seed{seed}"
    if (path := finished_run(work, method.name, name, "generator.pt")) is not None:
        return path
    stage = Path(json.loads((pipeline_run / "pipeline.json").read_text())["stages"]["finetune"]["run_dir"])
    config = load_config(DistillConfig, stage / "config.yaml", method=method.name,
                         overrides={"seed": seed, "name": name, "out_dir": str(work / "runs")})
    return Path(fit(config, method).exported["generator"])


def paired_target_line(label: str, row: dict, teacher: dict, scratch: dict, seeds: dict) -> str:
    return (f"{label}: MACs reduced {row['macs_ratio']:.1f}x (>= 20x); val PSNR "
            f"{row['psnr'] - teacher['psnr']:+.2f} dB vs the teacher (>= -0.5 dB; test "
            f"{row['test']['psnr'] - teacher['test']['psnr']:+.2f}; mean of {len(seeds['student']['val_psnr'])} "
            f"seeds {seeds['student']['val_mean'] - teacher['psnr']:+.2f}) and "
            f"{row['psnr'] - scratch['psnr']:+.2f} dB vs its from-scratch twin (> 0; test "
            f"{row['test']['psnr'] - scratch['test']['psnr']:+.2f}; means of the seeds "
            f"{seeds['student']['val_mean'] - seeds['scratch']['val_mean']:+.2f}, test "
            f"{seeds['student']['test_mean'] - seeds['scratch']['test_mean']:+.2f}); "
            f"eager CPU speed-up {row['speedup']:.1f}x per round, {row['speedup_best']:.1f}x fastest vs fastest "
            f"(>= 10x).")


def unpaired_target_line(row: dict, seeds: dict) -> str:
    student, scratch = seeds["student"]["test_psnr"], seeds["scratch"]["test_psnr"]
    wins = sum(s > t for s, t in zip(student, scratch))
    return (f"Unpaired: MACs reduced {row['macs_ratio']:.1f}x (>= 20x); test PSNR to the teacher's outputs "
            f"{', '.join(f'{v:.2f}' for v in student)} (seeds {', '.join(map(str, SEEDS))}) vs its from-scratch "
            f"twin {', '.join(f'{v:.2f}' for v in scratch)}: higher on {wins} of {len(student)} seeds (target: "
            f"every seed); eager CPU speed-up {row['speedup']:.1f}x per round.")


def seeded_students(work: Path, task: Task, data: Path, runs: dict) -> dict[str, list[Path]]:
    """Every student and its from-scratch twin, per seed (0 first): ``runs`` maps a student to (its pipeline run,
    run name, its twin, the twin's run name)."""
    seeds = {}
    for student, (run, name, scratch, scratch_name) in runs.items():
        channels = json.loads((run / "summary.json").read_text())["student"]["channels"]
        seeds[student] = [run / "generator.pt"] + [repeat_finetune(work, run, name, seed) for seed in REPEAT_SEEDS]
        seeds[scratch] = [train_scratch(work, task, data, scratch_name, channels, seed) for seed in SEEDS]
    return seeds


def stage_epochs() -> dict[str, int]:
    return {"teacher": EPOCHS + EPOCHS_DECAY, "gan_compression_supernet": 2 * SUPERNET_EPOCHS,
            "gan_compression_finetune": 2 * FINETUNE_EPOCHS, "scratch": 2 * (SUPERNET_EPOCHS + FINETUNE_EPOCHS)}


def paired(args, task: Task) -> None:
    data = prepare_data(args.work, task)
    teacher = train_teacher(args.work, task, data)
    macs_run = compress(args.work, data, teacher, "gan-compression", budget_macs=BUDGET)
    supernet = json.loads((macs_run / "pipeline.json").read_text())["stages"]["supernet"]["run_dir"]
    ms_run = compress(args.work, data, teacher, "gan-compression-ms", budget_speedup=SPEEDUP_BUDGET,
                      supernet=supernet, **LATENCY_SEARCH)
    summaries = {run: json.loads((run / "summary.json").read_text()) for run in (macs_run, ms_run)}
    channels = {run: summaries[run]["student"]["channels"] for run in (macs_run, ms_run)}
    runs = {"gan_compression": (macs_run, "gan-compression", "scratch", "scratch-twin"),
            "gan_compression_ms": (ms_run, "gan-compression-ms", "scratch_ms", "scratch-twin-ms")}
    seeds = seeded_students(args.work, task, data, runs)
    paths = {"teacher": teacher, **{name: models[0] for name, models in seeds.items()}}
    wall_clock = {name: run_seconds(path) for name, path in paths.items()}
    searched = read_result(json.loads((ms_run / "pipeline.json").read_text())["stages"]["search"]["run_dir"])
    table = measure(task, paths, data, reference="teacher", threads=args.threads)
    quality = seed_quality(task, seeds, {name: [teacher] * len(SEEDS) for name in seeds}, data)
    epochs = stage_epochs()
    results = {"task": {"dataset": data.name, "batch_size": BATCH_SIZE, "epochs": epochs, "budget": BUDGET,
                        "budget_speedup": SPEEDUP_BUDGET, "student_channels": channels[macs_run],
                        "student_ms_channels": channels[ms_run], "seeds": list(SEEDS)},
               "models": table, "seeds": quality, "wall_clock_s": wall_clock, "search": summaries[macs_run],
               "search_ms": summaries[ms_run]}
    markdown = markdown_table(task, table, wall_clock)
    markdown += (f"\n\nEpochs at batch {BATCH_SIZE}: {epochs} (GAN Compression trains on 90% of the 400 training "
                 f"images, 10% are held out for its search; the from-scratch twins train on the same 90% and keep "
                 f"their best checkpoint on the same 10%: same data, same steps). gan_compression: searched under "
                 f"{BUDGET} published MACs, channels {channels[macs_run]}. gan_compression_ms: the same supernet "
                 f"searched again for {SPEEDUP_BUDGET}x the teacher's speed at 256x256 on {args.threads} threads (the "
                 f"search timed the teacher at {searched['budget']['teacher_ms']:.1f} ms and this student at "
                 f"{searched['latency_ms']:.1f} ms), channels {channels[ms_run]}; its wall-clock is search + "
                 f"fine-tune only (supernet reused). scratch / scratch_ms: the same architectures trained without a "
                 f"teacher.\n\nEvery student trained with seeds {list(SEEDS)} (the table above is seed 0; the "
                 f"GAN Compression students are fine-tuned again from the same supernet and architecture):\n\n"
                 + seed_table(task, quality) + "\n\n"
                 + "\n".join(paired_target_line(label, table[student], table["teacher"], table[runs[student][2]],
                                                {"student": quality[student], "scratch": quality[runs[student][2]]})
                             for label, student in (("MACs budget", "gan_compression"),
                                                    ("Latency budget", "gan_compression_ms"))))
    write_results(args.out, "gan_compression", results, markdown)


def unpaired(args, task: Task) -> None:
    data = prepare_data(args.work, task)
    teacher = train_teacher(args.work, task, data)
    run = compress(args.work, data, teacher, "gan-compression-unpaired", budget_macs=BUDGET)
    seeds = seeded_students(args.work, task, data, {
        "gan_compression": (run, "gan-compression-unpaired", "scratch", "scratch-twin-unpaired")})
    paths = {"teacher": teacher, **{name: models[0] for name, models in seeds.items()}}
    wall_clock = {name: run_seconds(path) for name, path in paths.items()}
    table = measure(task, paths, data, reference="teacher", threads=args.threads)
    quality = seed_quality(task, seeds, {name: [teacher] * len(SEEDS) for name in seeds}, data)
    summary = json.loads((run / "summary.json").read_text())
    epochs = stage_epochs()
    results = {"task": {"dataset": data.name, "batch_size": BATCH_SIZE, "epochs": epochs, "budget": BUDGET,
                        "student_channels": summary["student"]["channels"], "seeds": list(SEEDS)},
               "models": table, "seeds": quality, "wall_clock_s": wall_clock, "search": summary}
    markdown = markdown_table(task, table, wall_clock)
    markdown += (f"\n\nEpochs at batch {BATCH_SIZE}: {epochs}. The teacher is a CycleGAN resnet_9blocks (G_A, "
                 f"A -> B); GAN Compression's unpaired setting (L1 to the teacher's outputs, LSGAN, its D_A to start "
                 f"from), searched under {BUDGET} published MACs on its held-out 10% of the A images by PSNR to the "
                 f"teacher's outputs, channels {summary['student']['channels']}. scratch: the same architecture "
                 f"trained as a CycleGAN from scratch (G_A and G_B, no teacher) on the same 90% of the A images and "
                 f"all B images for the same steps (final weights: CycleGAN has no validation metric). Quality is "
                 f"fidelity to the teacher: PSNR/SSIM of a model's outputs against the teacher's outputs on the 50 "
                 f"test A images, which no model trained on.\n\nEvery student trained with seeds {list(SEEDS)}:\n\n"
                 + seed_table(task, quality) + "\n\n"
                 + unpaired_target_line(table["gan_compression"], {"student": quality["gan_compression"],
                                                                   "scratch": quality["scratch"]}))
    write_results(args.out, "gan_compression_unpaired", results, markdown)


def main() -> None:
    args = benchmark_arguments(__doc__)
    for task in args.tasks:
        (paired if task.paired else unpaired)(args, task)


if __name__ == "__main__":
    main()
