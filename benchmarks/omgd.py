"""OMGD benchmark: OMGD vs the same student trained from scratch, vs GAN Compression and the teacher.

    python benchmarks/gan_compression.py && python benchmarks/omgd.py [--work benchmarks/work] [--tasks ...]

Run after ``gan_compression.py`` with the same --work folder: it reuses that benchmark's resnet_9blocks teacher and
GAN Compression student of each task, and their run folders (for wall-clock and step counts). OMGD trains its 1.0x
mobile ResNet student (ngf 16, 1.408G published MACs at 256x256; wide and deep teachers trained online, no
pretrained teacher) for the *same total number of optimisation steps* as the whole GAN Compression pipeline (teacher
+ supernet + fine-tune; rounded down to whole epochs), with three seeds. Its twin is the same student architecture
trained from scratch with the teacher's method (pix2pix / CycleGAN, no teacher) on the same images for as many
steps, three seeds. ``omgd_fast`` trades quality for time: teachers updated on one step in three (OMGD's n_dis 3)
for the teacher's schedule only.

Paired quality is PSNR/SSIM against the ground truth (OMGD and its twin keep their best val checkpoint). Unpaired,
OMGD trains its own CycleGAN teacher pair online and the student distils G_A; quality is fidelity to *that*
teacher (the G_A snapshot the student learnt from) on the test A images, for the OMGD student and for its twin of
the same seed. Without VGG16 weights (see the README) the student learns from SSIM, TV, L1 to the teachers'
outputs (ganslim's fallback) and channel distillation.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from compression_task import (BATCH_SIZE, EPOCHS, EPOCHS_DECAY, TRAINING, Task, benchmark_arguments, finished_run,
                              holdout_split, markdown_table, measure, prepare_data, run_seconds, seed_quality,
                              seed_table, step_seconds, train_teacher, train_translation, write_results)

from ganslim.config import load_config
from ganslim.data import AlignedDataset, UnalignedDataset
from ganslim.data.subsets import without_holdout
from ganslim.engine import fit
from ganslim.engine.runs import CHECKPOINT_DIR, LATEST
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.distill import FinetuneDistillation, SupernetDistillation
from ganslim.methods.omgd import OMGDConfig, omgd_method, student_ngf
from ganslim.methods.teachers import CycleGAN, CycleGANConfig, Pix2Pix, Pix2PixConfig
from ganslim.nn.vgg import find_vgg16_weights

SEEDS = (0, 1, 2)
# The wall-clock variant (one seed): the teacher's schedule; paired, teachers updated on one step in three.
FAST = {"paired": {"n_dis": 3, "epochs": EPOCHS, "epochs_decay": EPOCHS_DECAY},
        "unpaired": {"epochs": EPOCHS, "epochs_decay": EPOCHS_DECAY}}
STUDENT = {"student": "mobile_resnet", "width": 1.0}
# The ``method`` of a run's config.yaml -> (its config class, the method class for a config), to time its steps.
TRAINING_METHODS = {"pix2pix": (Pix2PixConfig, lambda config: Pix2Pix),
                    "cyclegan": (CycleGANConfig, lambda config: CycleGAN),
                    "gan-compression-supernet": (DistillConfig, lambda config: SupernetDistillation),
                    "gan-compression-finetune": (DistillConfig, lambda config: FinetuneDistillation),
                    "omgd": (OMGDConfig, omgd_method)}


def run_steps(exported: Path) -> int:
    """Optimisation steps of the run that exported ``exported`` (its last checkpoint's step)."""
    return int(torch.load(exported.parent / CHECKPOINT_DIR / LATEST, weights_only=True)["step"])


def pipeline_runs(gc_run: Path) -> list[Path]:
    """The training stages' run folders of a GAN Compression pipeline run (supernet, fine-tune)."""
    stages = json.loads((gc_run / "pipeline.json").read_text())["stages"]
    return [Path(stages[name]["run_dir"]) for name in ("supernet", "finetune")]


def gc_budget(teacher: Path, gc_run: Path) -> dict:
    """Steps and wall-clock of the whole GAN Compression pipeline: teacher + supernet + search + fine-tune."""
    stages = [run / "generator.pt" for run in pipeline_runs(gc_run)]
    stages[0] = stages[0].with_name("supernet.pt")
    search = Path(json.loads((gc_run / "pipeline.json").read_text())["stages"]["search"]["run_dir"])
    return {"steps": run_steps(teacher) + sum(run_steps(stage) for stage in stages),
            "seconds": run_seconds(teacher) + run_seconds(gc_run / "generator.pt"),
            "search_seconds": run_seconds(search / "result.json"), "stage_steps": {
                "teacher": run_steps(teacher), "supernet": run_steps(stages[0]), "finetune": run_steps(stages[1])}}


def training_cost(teacher: Path, gc_run: Path, budget: dict, omgd_runs: dict[str, Path]) -> dict:
    """Minutes each compression takes at equal load: its steps times the seconds a step takes, every method's step
    timed side by side in this process (``step_seconds``); GAN Compression adds its search's own wall-clock."""
    supernet, finetune = pipeline_runs(gc_run)
    runs = {"teacher": teacher.parent, "supernet": supernet, "finetune": finetune,
            **{name: path.parent for name, path in omgd_runs.items()}}
    seconds = step_seconds(runs, TRAINING_METHODS)
    steps = {**budget["stage_steps"], **{name: run_steps(path) for name, path in omgd_runs.items()}}
    pipeline = sum(steps[name] * seconds[name] for name in ("teacher", "supernet", "finetune"))
    cost = {"step_seconds": seconds, "gan_compression_pipeline_s": pipeline + budget["search_seconds"]}
    cost.update({f"{name}_s": steps[name] * seconds[name] for name in omgd_runs})
    return cost


def omgd_steps_per_epoch(task: Task, data: Path) -> int:
    """OMGD's steps an epoch at batch 4: all training pairs (paired), or the A items minus its held-out 10%."""
    if task.paired:
        items = len(AlignedDataset(data, "train"))
    else:
        dataset = UnalignedDataset(data, "train")
        items = len(without_holdout(dataset, len(dataset.A_paths)))
    return -(-items // BATCH_SIZE)


def twin_steps_per_epoch(task: Task, data: Path) -> int:
    """The twin's steps an epoch at batch 4 (CycleGAN: as many items as the larger of its A and B folders)."""
    dataset = (AlignedDataset if task.paired else UnalignedDataset)(data, "train")
    return -(-len(dataset) // BATCH_SIZE)


def epochs_for(steps: int, per_epoch: int) -> dict:
    """As many whole epochs as fit in ``steps``, half constant and half decaying."""
    total = steps // per_epoch
    return {"epochs": total // 2, "epochs_decay": total - total // 2}


def train_omgd(work: Path, data: Path, name: str, **options) -> Path:
    """Train OMGD once (a finished run of that name is reused); returns the student's ``generator.pt``."""
    if (path := finished_run(work, "omgd", name, "generator.pt", options)) is not None:
        return path
    overrides = {**TRAINING, "data": str(data), "name": name, "out_dir": str(work / "runs"), "device": "cpu",
                 **STUDENT, **options}
    config = load_config(OMGDConfig, overrides=overrides, method="omgd")
    return Path(fit(config, omgd_method(config)).exported["student"])


def seed_name(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-seed{seed}"


def omgd_and_twins(work: Path, task: Task, data: Path, schedule: dict) -> dict[str, list[Path]]:
    """OMGD students and their from-scratch twins, per seed (0 first): OMGD trains for ``schedule`` epochs, the
    twins as many steps on the same images (unpaired: without the A images OMGD holds out)."""
    suffix = "" if task.paired else "-unpaired"
    omgd = [train_omgd(work, data, seed_name(f"omgd{suffix}", seed), seed=seed, **schedule) for seed in SEEDS]
    twin = {"generator": "mobile_resnet", "ngf": student_ngf(OMGDConfig(**STUDENT)), "norm": "instance",
            "dropout": False}
    twin_data = data if task.paired else holdout_split(work, task, data)
    steps = (schedule["epochs"] + schedule["epochs_decay"]) * omgd_steps_per_epoch(task, data)
    twin_schedule = epochs_for(steps, twin_steps_per_epoch(task, twin_data))
    scratch = [train_translation(work, task, twin_data, seed_name(f"scratch-omgd{suffix}", seed), twin, seed=seed,
                                 **twin_schedule) for seed in SEEDS]
    return {"omgd": omgd, "scratch": scratch}


def omgd_teacher(student: Path) -> Path:
    """The online teacher an unpaired OMGD student learnt from: the run's G_A snapshot."""
    return student.with_name("teacher_snapshot.pt")


def target_line(task: Task, table: dict, seeds: dict, cost: dict) -> str:
    row = table["omgd"]
    wins = sum(s > t for s, t in zip(seeds["omgd"]["test_psnr"], seeds["scratch"]["test_psnr"]))
    line = (f"omgd: {row['macs_ratio']:.1f}x fewer MACs than resnet_9blocks (target >= 40x); ")
    if task.paired:
        teacher = table["teacher"]
        line += (f"val PSNR {row['psnr'] - teacher['psnr']:+.2f} dB vs the teacher (target >= -0.5 dB; test "
                 f"{row['test']['psnr'] - teacher['test']['psnr']:+.2f}; mean of {len(SEEDS)} seeds "
                 f"{seeds['omgd']['val_mean'] - teacher['psnr']:+.2f}), {row['psnr'] - table['scratch']['psnr']:+.2f} "
                 f"dB vs its from-scratch twin (means of the seeds "
                 f"{seeds['omgd']['val_mean'] - seeds['scratch']['val_mean']:+.2f}; test means "
                 f"{seeds['omgd']['test_mean'] - seeds['scratch']['test_mean']:+.2f}); ")
    else:
        line += (f"test PSNR to its teacher's outputs {', '.join(f'{v:.2f}' for v in seeds['omgd']['test_psnr'])} "
                 f"vs its twin's {', '.join(f'{v:.2f}' for v in seeds['scratch']['test_psnr'])}: higher on {wins} of "
                 f"{len(SEEDS)} seeds (target: every seed); ")
    pipeline = cost["gan_compression_pipeline_s"]
    line += (f"training time at equal load {cost['omgd_s'] / pipeline:.2f} of the GAN Compression pipeline's "
             f"(target <= 0.5).")
    fast = table["omgd_fast"]
    quality = (f"val PSNR {fast['psnr'] - table['teacher']['psnr']:+.2f} dB vs the teacher" if task.paired else
               f"test PSNR {fast['test']['psnr_vs_teacher']:.2f} to its own teacher")
    return line + (f"\nomgd_fast: training time at equal load {cost['omgd_fast_s'] / pipeline:.2f} of the GAN "
                   f"Compression pipeline's, {quality}.")


def cost_line(cost: dict, steps: dict) -> str:
    seconds = cost["step_seconds"]
    return ("Training time at equal load (every method's step timed side by side in one process, times its "
            "steps): " + ", ".join(f"{name} {seconds[name] * 1000:.0f} ms/step" for name in seconds)
            + f"; GAN Compression pipeline {cost['gan_compression_pipeline_s'] / 60:.1f} min (its search's own "
            f"wall-clock included), omgd {cost['omgd_s'] / 60:.1f} min, omgd_fast {cost['omgd_fast_s'] / 60:.1f} min. "
            "The wall-clock column is each run folder's own, which also counts whatever else the machine ran.")


def run_task(args, task: Task) -> None:
    suffix = "" if task.paired else "_unpaired"
    data = prepare_data(args.work, task)
    teacher = train_teacher(args.work, task, data)
    gc_name = "gan-compression" + ("" if task.paired else "-unpaired")
    gc_runs = sorted(p.parent for p in (args.work / "runs").glob(f"*-gan-compression-{gc_name}/generator.pt"))
    if not gc_runs:
        raise SystemExit(f"no finished '{gc_name}' run under {args.work}/runs: run benchmarks/gan_compression.py "
                         f"--tasks {task.kind} first")
    gc_run = gc_runs[-1]
    budget = gc_budget(teacher, gc_run)
    schedule = epochs_for(budget["steps"], omgd_steps_per_epoch(task, data))
    seeds = omgd_and_twins(args.work, task, data, schedule)
    fast = train_omgd(args.work, data, "omgd-fast" + suffix.replace("_", "-"), **FAST[task.kind])
    paths = {"teacher": teacher, "gan_compression": gc_run / "generator.pt", "omgd": seeds["omgd"][0],
             "scratch": seeds["scratch"][0], "omgd_fast": fast}
    teachers = {}
    if not task.paired:  # unpaired OMGD models are scored against their own online teacher
        paths["omgd_teacher"] = omgd_teacher(seeds["omgd"][0])
        paths["omgd_fast_teacher"] = omgd_teacher(fast)
        teachers = {"omgd": "omgd_teacher", "scratch": "omgd_teacher", "omgd_teacher": "omgd_teacher",
                    "omgd_fast": "omgd_fast_teacher", "omgd_fast_teacher": "omgd_fast_teacher"}
    wall_clock = {name: run_seconds(path) for name, path in paths.items() if not name.endswith("_teacher")}
    wall_clock["gan_compression"] = budget["seconds"] - wall_clock["teacher"]
    steps = {name: run_steps(path) for name, path in paths.items()
             if name not in ("gan_compression",) and not name.endswith("_teacher")}
    steps["gan_compression"] = budget["steps"] - steps["teacher"]
    cost = training_cost(teacher, gc_run, budget, {"omgd": seeds["omgd"][0], "omgd_fast": fast})
    table = measure(task, paths, data, reference="teacher", threads=args.threads, teachers=teachers)
    seed_teachers = ({name: [teacher] * len(SEEDS) for name in seeds} if task.paired else
                     {name: [omgd_teacher(path) for path in seeds["omgd"]] for name in seeds})
    quality = seed_quality(task, seeds, seed_teachers, data)
    results = {"task": {"dataset": data.name, "batch_size": BATCH_SIZE, "seeds": list(SEEDS),
                        "gan_compression_pipeline": budget, "omgd_schedule": schedule, "omgd_fast": FAST[task.kind],
                        "vgg16_weights": str(find_vgg16_weights() or "absent")},
               "models": table, "seeds": quality, "wall_clock_s": wall_clock, "steps": steps, "training_cost": cost}
    markdown = markdown_table(task, table, wall_clock)
    markdown += (f"\n\nSteps at batch {BATCH_SIZE}: {steps}. The GAN Compression pipeline (teacher + supernet + "
                 f"fine-tune) took {budget['steps']} steps and {budget['seconds'] / 60:.1f} min in all; OMGD gets "
                 f"as many whole epochs as fit in those steps ({schedule}), its twin the same number of steps. "
                 f"VGG16 weights: {results['task']['vgg16_weights']}.\n\nEvery OMGD student and its twin trained "
                 f"with seeds {list(SEEDS)} (the table above is seed 0):\n\n" + seed_table(task, quality) + "\n\n"
                 + cost_line(cost, steps) + "\n\n" + target_line(task, table, quality, cost))
    write_results(args.out, "omgd" + suffix, results, markdown)


def main() -> None:
    args = benchmark_arguments(__doc__)
    for task in args.tasks:
        run_task(args, task)


if __name__ == "__main__":
    main()
