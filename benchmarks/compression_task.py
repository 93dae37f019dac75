"""The tasks the compression benchmarks share: data, teachers, from-scratch students, and side-by-side measuring.

Two tasks, both on built-in data at 64 px, trained on CPU at batch 4 for ``EPOCHS + EPOCHS_DECAY`` epochs a
training stage (100 steps an epoch on 400 training images):

* **paired** (``shapes2render``, pix2pix layout): a pix2pix resnet_9blocks teacher; quality is PSNR/SSIM against the
  ground truth (and against the teacher) on the val split and on the test split, which no model is selected on
  (the teacher, OMGD and its twin keep their best val checkpoint; GAN Compression and its twins select on images
  held out of the training split, see ``gan_compression.py``).
* **unpaired** (``flat2striped``, CycleGAN layout): a CycleGAN resnet_9blocks teacher (G_A, A -> B); there is no
  ground truth, so quality is *fidelity to a teacher*: PSNR/SSIM of a model's outputs against that teacher's
  outputs on the held-out ``testA`` images (never trained on), and FID/KID against ``testB`` when the Inception
  weights exist (see the README).

Every model is measured in one process: params, MACs in both conventions at 256x256, eager CPU latency at 256x256
(models interleaved, same threads; speed-ups are medians of per-round ratios to the reference) and its quality.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import default_collate

from ganslim.atomic import atomic_write_text
from ganslim.checkpoints import load_generator
from ganslim.config import load_config
from ganslim.data import AlignedDataset, UnalignedDataset, make_builtin
from ganslim.data.builtin import INFO_FILE
from ganslim.data.subsets import holdout_indices
from ganslim.engine import DistInfo, TrainContext, fit, read_run_config
from ganslim.measure.compare import image_quality, interleaved_model_times, model_cost
from ganslim.measure.evaluate import find_inception_weights
from ganslim.methods.teachers import CycleGAN, CycleGANConfig, Pix2Pix, Pix2PixConfig
from ganslim.metrics import compute_fid_kid
from ganslim.metrics.inception import load_inception

IMAGE_SIZE, BATCH_SIZE = 64, 4
EPOCHS, EPOCHS_DECAY = 3, 3  # 100 steps an epoch: 600 optimisation steps for every teacher
TEACHER = {"generator": "resnet_9blocks", "ngf": 64, "norm": "instance", "dropout": False}
TRAINING = {"batch_size": BATCH_SIZE, "load_size": IMAGE_SIZE + 8, "crop_size": IMAGE_SIZE,
            "sample_every": 0, "log_every": 25, "val_every": 200, "ckpt_every": 200}
LATENCY_SIZE = 256
PAIRED, UNPAIRED = "paired", "unpaired"


@dataclass(frozen=True)
class Task:
    """One benchmark task: its built-in dataset, the teacher's method, and how quality is scored."""

    kind: str  # PAIRED or UNPAIRED
    dataset: str
    teacher_method: type
    teacher_config: type
    teacher_overrides: dict

    @property
    def paired(self) -> bool:
        return self.kind == PAIRED


TASKS = {
    PAIRED: Task(PAIRED, "shapes2render", Pix2Pix, Pix2PixConfig, {"gan_mode": "lsgan"}),
    UNPAIRED: Task(UNPAIRED, "flat2striped", CycleGAN, CycleGANConfig, {}),
}


def benchmark_arguments(doc: str) -> argparse.Namespace:
    """The options every compression benchmark takes: --work, --out, --threads, --tasks."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work"), help="training runs and data")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where results are written")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for latency (default 2)")
    parser.add_argument("--tasks", default=f"{PAIRED},{UNPAIRED}", help="paired, unpaired or both (default)")
    args = parser.parse_args()
    args.tasks = [TASKS[name.strip()] for name in args.tasks.split(",")]
    return args


def prepare_data(work: Path, task: Task) -> Path:
    """The task's built-in dataset under ``work/data`` (made once)."""
    data = work / "data" / task.dataset
    if not (data / INFO_FILE).is_file():
        make_builtin(task.dataset, data, size=IMAGE_SIZE)
    return data


def finished_run(work: Path, method: str, name: str, exported: str, expected: dict | None = None) -> Path | None:
    """The newest finished run ``*-METHOD-NAME`` under ``work/runs`` (its ``exported`` file), or None.

    A finished run whose config.yaml disagrees with ``expected`` (e.g. another schedule) stops the benchmark: reusing
    it would report a model trained differently from what the tables say."""
    finished = sorted((work / "runs").glob(f"*-{method}-{name}/{exported}"))
    if not finished:
        return None
    config = read_run_config(finished[-1].parent)
    differing = {key: (config.get(key), value) for key, value in (expected or {}).items()
                 if str(config.get(key)) != str(value)}
    if differing:
        raise SystemExit(f"{finished[-1].parent} was trained with {differing} (found, wanted): move it away or use "
                         f"another --work folder")
    return finished[-1]


def train_translation(work: Path, task: Task, data: Path, name: str, generator: dict, epochs: int = EPOCHS,
                      epochs_decay: int = EPOCHS_DECAY, seed: int = 0) -> Path:
    """Train (once; a finished run of that name is reused) a pix2pix (paired) or CycleGAN (unpaired) model with
    ``generator`` options; returns its A -> B ``generator.pt`` / ``generator_A.pt``."""
    method = task.teacher_method
    exported = "generator.pt" if task.paired else "generator_A.pt"
    schedule = {"epochs": epochs, "epochs_decay": epochs_decay, "seed": seed}
    if (path := finished_run(work, method.name, name, exported, schedule)) is not None:
        return path
    overrides = {**TRAINING, **task.teacher_overrides, **generator, "data": str(data), "out_dir": str(work / "runs"),
                 "name": name, "device": "cpu", **schedule}
    result = fit(load_config(task.teacher_config, overrides=overrides, method=method.name), method)
    return Path(result.exported["G" if task.paired else "G_A"])


def train_teacher(work: Path, task: Task, data: Path) -> Path:
    """The task's resnet_9blocks teacher (pix2pix or CycleGAN), trained once."""
    return train_translation(work, task, data, "teacher", TEACHER)


def mobile_resnet_options(channels: list[int]) -> dict:
    """Teacher-method options that train a ``mobile_resnet`` with these per-layer ``channels``."""
    return {"generator": "mobile_resnet", "ngf": channels[0], "norm": TEACHER["norm"], "dropout": False,
            "channels": channels}


def holdout_split(work: Path, task: Task, data: Path) -> Path:
    """``data`` with the training images GAN Compression holds out for its search (``holdout_indices``: 10%) moved
    out of training (made once): paired ``train/`` + ``val/`` (the held-out images); unpaired ``trainA/`` without
    them, all of ``trainB/``, and ``testA/ testB/``. What GAN Compression's from-scratch twins train on."""
    split = work / "data" / f"{data.name}-gan-compression-split"
    if split.is_dir():
        return split
    partial = split.with_name(split.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if task.paired:
        images = AlignedDataset(data, "train").paths
        held = set(holdout_indices(len(images)))
        for index, image in enumerate(images):
            _copy(image, partial / ("val" if index in held else "train"))
    else:
        images = UnalignedDataset(data, "train").A_paths
        held = set(holdout_indices(len(images)))
        for index, image in enumerate(images):
            if index not in held:
                _copy(image, partial / "trainA")
        for folder in ("trainB", "testA", "testB"):
            shutil.copytree(data / folder, partial / folder)
    partial.rename(split)
    return split


def _copy(image: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(image, folder / image.name)


def run_seconds(exported: Path) -> float:
    """Wall-clock of the run that exported ``exported``: from its config.yaml (written first) to the export.

    Read from the files, so a run reused or resumed by a later invocation still reports its real duration.
    """
    return exported.stat().st_mtime - (exported.parent / "config.yaml").stat().st_mtime


def split_images(task: Task, data: Path, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(inputs, targets)`` of a split at the training size: paired ``val``/``test`` A and B images; unpaired
    ``test`` A images and ``None`` (no ground truth)."""
    if task.paired:
        images = AlignedDataset(data, split=split, load_size=IMAGE_SIZE, crop_size=IMAGE_SIZE, flip=False)
        return (torch.stack([images[i]["A"] for i in range(len(images))]),
                torch.stack([images[i]["B"] for i in range(len(images))]))
    images = UnalignedDataset(data, split=split, load_size=IMAGE_SIZE, crop_size=IMAGE_SIZE, flip=False,
                              serial_batches=True)
    return torch.stack([images[i]["A"] for i in range(len(images.A_paths))]), None


def real_b_images(data: Path) -> torch.Tensor:
    """The unpaired task's ``testB`` images (the real distribution FID/KID compare with)."""
    images = UnalignedDataset(data, split="test", load_size=IMAGE_SIZE, crop_size=IMAGE_SIZE, flip=False,
                              serial_batches=True)
    return torch.stack([images[i]["B"] for i in range(len(images.B_paths))])


@torch.inference_mode()
def split_quality(task: Task, models: dict[str, torch.nn.Module], data: Path, split: str,
                  references: dict[str, str]) -> dict[str, dict]:
    """Per model: mean PSNR/SSIM against the ground truth (paired) and against the outputs of the model
    ``references[name]`` names (its teacher), on ``split``."""
    inputs, targets = split_images(task, data, split)
    outputs = {name: model(inputs) for name, model in models.items()}
    quality = {}
    for name, output in outputs.items():
        row = {f"{key}_vs_teacher": value for key, value in image_quality(output, outputs[references[name]]).items()}
        if targets is not None:
            row.update(image_quality(output, targets))
        quality[name] = row
    return quality


def distribution_scores(models: dict[str, torch.nn.Module], data: Path) -> dict[str, dict] | str:
    """FID and KID of each model's ``testA`` outputs against the real ``testB`` images, or why they are absent."""
    weights, reason = find_inception_weights()
    if weights is None:
        return reason
    inception = load_inception(weights)
    inputs, _ = split_images(TASKS[UNPAIRED], data, "test")
    real = real_b_images(data)
    scores = {}
    with torch.inference_mode():
        for name, model in models.items():
            result = compute_fid_kid([model(inputs)], [real], inception, kid_subset_size=len(real))
            scores[name] = {"fid": result.fid, "kid": result.kid}
    return scores


def measure(task: Task, paths: dict[str, Path], data: Path, reference: str, threads: int = 2, repeats: int = 30,
            teachers: dict[str, str] | None = None) -> dict:
    """Params, MACs (both conventions, 256x256), interleaved latency and quality of every model.

    ``reference`` is the model the MACs ratios and speed-ups are relative to (the resnet_9blocks teacher);
    ``teachers[name]`` names the model whose outputs ``name`` is scored against (default: ``reference``).
    ``speedup`` is the median over rounds of the reference's time over the model's in the same round: the
    machine's speed drifts between rounds (by 10-20% on a shared VM) far more than within one.
    ``speedup_best`` is the reference's fastest time over the model's fastest, the least disturbed runs.
    Paired quality: val (``psnr``, ...) and ``test``; unpaired: ``test`` (fidelity, FID/KID in ``distribution``).
    """
    models = {name: load_generator(path).model.eval() for name, path in paths.items()}
    teachers = {name: (teachers or {}).get(name, reference) for name in models}
    table = {name: {"checkpoint": str(paths[name]), **model_cost(model, LATENCY_SIZE).to_dict(),
                    "teacher": teachers[name]} for name, model in models.items()}
    latency = interleaved_model_times(models, LATENCY_SIZE, threads, warmup=3, repeats=repeats)
    test = split_quality(task, models, data, "test", teachers)
    val = split_quality(task, models, data, "val", teachers) if task.paired else {}
    distribution = distribution_scores(models, data) if not task.paired else {}
    for name, times in latency.items():
        base = table[reference]
        table[name].update(latency_ms={"median": statistics.median(times), "min": min(times), "max": max(times)},
                           **val.get(name, {}), test=test[name],
                           macs_ratio=base["macs_published"] / table[name]["macs_published"],
                           speedup=statistics.median(r / t for r, t in zip(latency[reference], times)),
                           speedup_best=min(latency[reference]) / min(times))
        if isinstance(distribution, dict) and name in distribution:
            table[name]["distribution"] = distribution[name]
    if isinstance(distribution, str):
        table[reference]["distribution_absent"] = distribution
    return table


def seed_quality(task: Task, seeds: dict[str, list[Path]], teachers: dict[str, list[Path]], data: Path
                 ) -> dict[str, dict]:
    """Per student and seed: paired val and test PSNR; unpaired test PSNR to its teacher of that seed
    (``teachers[name][seed]``). With the means over seeds."""
    models, references = {}, {}
    for name, paths in seeds.items():
        for seed, path in enumerate(paths):
            key, teacher_key = f"{name}@{seed}", f"teacher:{teachers[name][seed]}"
            models[key] = load_generator(path).model.eval()
            models.setdefault(teacher_key, load_generator(teachers[name][seed]).model.eval())
            references[key] = references[teacher_key] = teacher_key
    splits = ("val", "test") if task.paired else ("test",)
    scores = {split: split_quality(task, models, data, split, references) for split in splits}
    metric = "psnr" if task.paired else "psnr_vs_teacher"
    quality = {}
    for name, paths in seeds.items():
        row = {}
        for split in splits:
            values = [scores[split][f"{name}@{seed}"][metric] for seed in range(len(paths))]
            row[f"{split}_psnr"], row[f"{split}_mean"] = values, statistics.mean(values)
        quality[name] = row
    return quality


def seed_table(task: Task, quality: dict[str, dict]) -> str:
    """One row per student: its PSNR on every seed and the means (paired: val and test; unpaired: test, vs its
    teacher)."""
    seeds = len(next(iter(quality.values()))["test_psnr"])
    if task.paired:
        lines = [f"| student | val PSNR, seeds 0-{seeds - 1} | val mean | test mean |", "|---|---|---|---|"]
        for name, row in quality.items():
            lines.append(f"| {name} | {', '.join(f'{v:.2f}' for v in row['val_psnr'])} | {row['val_mean']:.2f} "
                         f"| {row['test_mean']:.2f} |")
    else:
        lines = [f"| student | test PSNR vs teacher, seeds 0-{seeds - 1} | mean |", "|---|---|---|"]
        for name, row in quality.items():
            lines.append(f"| {name} | {', '.join(f'{v:.2f}' for v in row['test_psnr'])} | {row['test_mean']:.2f} |")
    return "\n".join(lines)


def markdown_table(task: Task, table: dict, wall_clock: dict[str, float] | None = None) -> str:
    """One row per model: size, cost, speed and quality, with ratios to the reference (teacher)."""
    header = ("| model | params | MACs true | MACs published | fewer MACs | latency ms (median, min-max) "
              "| speed-up (per round) | speed-up (fastest) |")
    if task.paired:
        header += " val PSNR | val SSIM | test PSNR | test SSIM | val PSNR vs teacher |"
    else:
        header += " teacher | test PSNR vs teacher | test SSIM vs teacher | FID | KID |"
    header += " wall-clock |" if wall_clock else ""
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, row in table.items():
        latency = row["latency_ms"]
        line = (f"| {name} | {row['params'] / 1e6:.3f}M | {row['macs'] / 1e9:.2f}G | {row['macs_published'] / 1e9:.2f}G "
                f"| {row['macs_ratio']:.1f}x | {latency['median']:.1f} ({latency['min']:.1f}-{latency['max']:.1f}) "
                f"| {row['speedup']:.1f}x | {row['speedup_best']:.1f}x |")
        if task.paired:
            line += (f" {row['psnr']:.2f} | {row['ssim']:.3f} | {row['test']['psnr']:.2f} | {row['test']['ssim']:.3f} "
                     f"| {row['psnr_vs_teacher']:.2f} |")
        else:
            scores = row.get("distribution")
            line += (f" {row['teacher']} | {row['test']['psnr_vs_teacher']:.2f} | {row['test']['ssim_vs_teacher']:.3f} "
                     + (f"| {scores['fid']:.2f} | {scores['kid']:.4f} |" if scores else "| - | - |"))
        if wall_clock:
            seconds = wall_clock.get(name)
            line += f" {seconds / 60:.1f} min |" if seconds is not None else " - |"
        lines.append(line)
    absent = next((row["distribution_absent"] for row in table.values() if "distribution_absent" in row), None)
    if absent:
        lines.append(f"\nFID/KID: not measured ({absent}).")
    return "\n".join(lines)


def write_results(out: Path, name: str, results: dict, markdown: str) -> None:
    """``out/NAME.json`` and ``out/NAME.md`` (with the command that made them), written atomically."""
    command = "python " + " ".join(sys.argv)
    results = {**results, "command": command, "torch": torch.__version__, "threads": torch.get_num_threads()}
    atomic_write_text(json.dumps(results, indent=2) + "\n", out / f"{name}.json")
    atomic_write_text(f"# {name}\n\nMade by `{command}`.\n\n{markdown}\n", out / f"{name}.md")
    print(markdown)
    print(f"results: {out / (name + '.json')}, {out / (name + '.md')}")


def step_seconds(runs: dict[str, Path], methods: dict[str, tuple[type, Callable[[Any], type]]], rounds: int = 12,
                 warmup: int = 2) -> dict[str, float]:
    """Median seconds of one optimisation step of each training run, timed side by side in this process.

    ``runs`` maps a name to a run folder; ``methods`` maps the ``method`` of a run's config.yaml to its config class
    and a function of the config returning the method class. Each method is rebuilt from the run's config.yaml on the CPU and steps on one fixed batch;
    every round runs one step of each (the order rotating), so load from other processes slows them all alike and
    the ratios of these figures compare the methods' training cost like with like (a run folder's wall-clock
    depends on what else the machine did while it trained).
    """
    steppers = {}
    for name, run in runs.items():
        label = read_run_config(run)["method"]
        config_cls, method_for = methods[label]
        config = load_config(config_cls, run / "config.yaml", method=label, overrides={"device": "cpu"})
        method_cls = method_for(config)
        torch.manual_seed(0)
        context = TrainContext(config, torch.device("cpu"), DistInfo())
        method = method_cls(config, context)
        context.bind_optimizers(method.optimizers())
        dataset = method.train_dataset()
        batch = default_collate([dataset[i] for i in range(config.batch_size)])
        steppers[name] = (method, batch)
    times: dict[str, list[float]] = {name: [] for name in steppers}
    names = list(steppers)
    for round_ in range(warmup + rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            method, batch = steppers[name]
            start = time.perf_counter()
            method.train_step(batch)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
