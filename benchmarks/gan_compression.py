"""GAN Compression benchmark: teacher vs compressed students vs the same students trained from scratch.

    python benchmarks/gan_compression.py [--work benchmarks/work] [--out benchmarks/results]

On the built-in paired task (see ``compression_task.py``): a resnet_9blocks teacher (ngf 64) is trained with
pix2pix; GAN Compression distils a once-for-all supernet from it, searches a sub-network under 2.8G
published MACs at 256x256 (>= 20x fewer than the teacher's 56.8G), fine-tunes and exports it. The same
supernet is then searched again under a *latency* budget (no retraining): 10x faster than the teacher, timed
the same way as the candidates, and that sub-network is fine-tuned and exported too. Each chosen
architecture is also trained from scratch with pix2pix losses (no teacher) for as many epochs as the
supernet + fine-tune stages together, on exactly the images GAN Compression trains on (its 90% of the training
split), and keeps its best checkpoint on the images GAN Compression holds out for its search: same data, same
steps, same selection images. Every student is then trained twice more with other seeds (the GAN
Compression ones fine-tuned again from the same supernet and architecture), so a gap between them can be told
from run-to-run variation. All models are measured side by side in one process. Slow on CPU (about 1.5 hours
on 2 idle cores; keep the machine otherwise idle: latency is measured during the search);
finished runs are reused when re-run with the same --work folder.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from compression_task import (BATCH_SIZE, EPOCHS, EPOCHS_DECAY, TEACHER, TRAINING,
                              benchmark_arguments, markdown_table, measure, prepare_data, run_seconds, split_quality,
                              train_pix2pix, write_results)

from ganslim.checkpoints import load_generator
from ganslim.config import load_config
from ganslim.data import AlignedDataset
from ganslim.data.subsets import holdout_indices
from ganslim.engine import fit
from ganslim.methods.gan_compression.distill import DistillConfig, FinetuneDistillation
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


def gan_compression_split(work: Path, data: Path) -> Path:
    """``data`` as GAN Compression splits it (made once): ``train/`` the images it trains on, ``val/`` the
    training images it holds out (default 10%, ``ganslim.data.subsets.holdout_indices``); no test split."""
    split = work / "data" / f"{data.name}-gan-compression-split"
    if split.is_dir():
        return split
    images = AlignedDataset(data, "train").paths
    held = set(holdout_indices(len(images)))
    partial = split.with_name(split.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for index, image in enumerate(images):
        folder = partial / ("val" if index in held else "train")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(image, folder / image.name)
    partial.rename(split)
    return split


def train_scratch(work: Path, data: Path, name: str, channels: list[int], seed: int = 0) -> Path:
    """The student architecture ``channels`` trained with pix2pix alone on GAN Compression's training images,
    as many steps as both distillation stages, selected on its held-out images (``gan_compression_split``)."""
    spec = {"generator": "mobile_resnet", "ngf": channels[0], "norm": TEACHER["norm"], "dropout": False,
            "channels": ",".join(map(str, channels))}
    return train_pix2pix(work, gan_compression_split(work, data), name if seed == 0 else f"{name}-seed{seed}",
                         spec, epochs=SUPERNET_EPOCHS + FINETUNE_EPOCHS,
                         epochs_decay=SUPERNET_EPOCHS + FINETUNE_EPOCHS, seed=seed)


def repeat_finetune(work: Path, pipeline_run: Path, name: str, seed: int) -> Path:
    """The fine-tune stage of ``pipeline_run`` again with another ``seed`` (same supernet, same architecture);
    returns its compact ``generator.pt`` (a finished run is reused)."""
    name = f"{name}-seed{seed}"
    finished = sorted((work / "runs").glob(f"*-{FinetuneDistillation.name}-{name}/generator.pt"))
    if finished:
        return finished[-1]
    stage = Path(json.loads((pipeline_run / "pipeline.json").read_text())["stages"]["finetune"]["run_dir"])
    config = load_config(DistillConfig, stage / "config.yaml", method=FinetuneDistillation.name,
                         overrides={"seed": seed, "name": name, "out_dir": str(work / "runs")})
    return Path(fit(config, FinetuneDistillation).exported["generator"])


def repeat_quality(repeats: dict[str, list[Path]], teacher: Path, data: Path) -> dict[str, dict]:
    """Val and test PSNR of every seed's model, and their means, per student."""
    models = {"teacher": load_generator(teacher).model.eval()}
    models.update({f"{name}@{seed}": load_generator(path).model.eval()
                   for name, paths in repeats.items() for seed, path in enumerate(paths)})
    val, test = (split_quality(models, data, "teacher", split) for split in ("val", "test"))
    quality = {}
    for name, paths in repeats.items():
        val_psnr = [val[f"{name}@{seed}"]["psnr"] for seed in range(len(paths))]
        test_psnr = [test[f"{name}@{seed}"]["psnr"] for seed in range(len(paths))]
        quality[name] = {"val_psnr": val_psnr, "test_psnr": test_psnr, "val_mean": statistics.mean(val_psnr),
                         "test_mean": statistics.mean(test_psnr)}
    return quality


def repeat_table(quality: dict[str, dict]) -> str:
    """One row per student: val PSNR of every seed, and the val and test means."""
    seeds = len(next(iter(quality.values()))["val_psnr"])
    lines = [f"| student | val PSNR, seeds 0-{seeds - 1} | val mean | test mean |", "|---|---|---|---|"]
    for name, row in quality.items():
        lines.append(f"| {name} | {', '.join(f'{v:.2f}' for v in row['val_psnr'])} | {row['val_mean']:.2f} "
                     f"| {row['test_mean']:.2f} |")
    return "\n".join(lines)


def target_line(label: str, row: dict, teacher: dict, scratch: dict, repeats: dict) -> str:
    return (f"{label}: MACs reduced {row['macs_ratio']:.1f}x (>= 20x); val PSNR "
            f"{row['psnr'] - teacher['psnr']:+.2f} dB vs the teacher (>= -0.5 dB; test "
            f"{row['test']['psnr'] - teacher['test']['psnr']:+.2f}; mean of {len(repeats['student']['val_psnr'])} "
            f"seeds {repeats['student']['val_mean'] - teacher['psnr']:+.2f}) and "
            f"{row['psnr'] - scratch['psnr']:+.2f} dB vs its from-scratch twin (> 0; test "
            f"{row['test']['psnr'] - scratch['test']['psnr']:+.2f}; means of the seeds "
            f"{repeats['student']['val_mean'] - repeats['scratch']['val_mean']:+.2f}, test "
            f"{repeats['student']['test_mean'] - repeats['scratch']['test_mean']:+.2f}); "
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

    # student -> (its pipeline run, run name, its from-scratch twin, the twin's run name)
    runs = {"gan_compression": (macs_run, "gan-compression", "scratch", "scratch-twin"),
            "gan_compression_ms": (ms_run, "gan-compression-ms", "scratch_ms", "scratch-twin-ms")}
    repeats = {}  # model -> its generator.pt per seed (0 first)
    for student, (run, name, scratch, scratch_name) in runs.items():
        repeats[student] = [run / "generator.pt"] + [repeat_finetune(args.work, run, name, seed)
                                                     for seed in REPEAT_SEEDS]
        repeats[scratch] = [train_scratch(args.work, data, scratch_name, channels[run], seed)
                            for seed in (0, *REPEAT_SEEDS)]
    paths = {"teacher": teacher, **{name: seeds[0] for name, seeds in repeats.items()}}
    wall_clock = {name: run_seconds(path) for name, path in paths.items()}
    searched = read_result(json.loads((ms_run / "pipeline.json").read_text())["stages"]["search"]["run_dir"])
    table = measure(paths, data, reference="teacher", threads=args.threads)
    repeated = repeat_quality(repeats, teacher, data)
    epochs = {"teacher": EPOCHS + EPOCHS_DECAY, "gan_compression_supernet": 2 * SUPERNET_EPOCHS,
              "gan_compression_finetune": 2 * FINETUNE_EPOCHS, "scratch": 2 * (SUPERNET_EPOCHS + FINETUNE_EPOCHS)}
    results = {"task": {"dataset": data.name, "batch_size": BATCH_SIZE, "epochs": epochs, "budget": BUDGET,
                        "budget_speedup": SPEEDUP_BUDGET, "student_channels": channels[macs_run],
                        "student_ms_channels": channels[ms_run], "seeds": [0, *REPEAT_SEEDS]},
               "models": table, "seeds": repeated, "wall_clock_s": wall_clock, "search": summaries[macs_run],
               "search_ms": summaries[ms_run]}
    markdown = markdown_table(table, wall_clock)
    markdown += (f"\n\nEpochs at batch {BATCH_SIZE}: {epochs} (GAN Compression trains on 90% of the 400 training "
                 f"images, 10% are held out for its search; the from-scratch twins train on the same 90% and keep "
                 f"their best checkpoint on the same 10%: same data, same steps). gan_compression: searched under "
                 f"{BUDGET} published MACs, channels {channels[macs_run]}. gan_compression_ms: the same supernet "
                 f"searched again for {SPEEDUP_BUDGET}x the teacher's speed at 256x256 on {args.threads} threads (the "
                 f"search timed the teacher at {searched['budget']['teacher_ms']:.1f} ms and this student at "
                 f"{searched['latency_ms']:.1f} ms), channels {channels[ms_run]}; its wall-clock is search + "
                 f"fine-tune only (supernet reused). scratch / scratch_ms: the same architectures trained without a "
                 f"teacher.\n\nEvery student trained with seeds {[0, *REPEAT_SEEDS]} (the table above is seed 0; the "
                 f"GAN Compression students are fine-tuned again from the same supernet and architecture):\n\n"
                 + repeat_table(repeated) + "\n\n"
                 + "\n".join(target_line(label, table[student], table["teacher"], table[runs[student][2]],
                                         {"student": repeated[student], "scratch": repeated[runs[student][2]]})
                             for label, student in (("MACs budget", "gan_compression"),
                                                    ("Latency budget", "gan_compression_ms"))))
    write_results(args.out, "gan_compression", results, markdown)


if __name__ == "__main__":
    main()
