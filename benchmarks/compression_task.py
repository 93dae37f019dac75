"""The task the compression benchmarks share: data, teacher, from-scratch student, and side-by-side measuring.

Every model is trained on the built-in paired ``shapes2render`` data at 64 px on CPU at batch 4,
``EPOCHS + EPOCHS_DECAY`` epochs a training stage (100 steps an epoch on the 400 training images), selected on a
held-out or the val split, and measured in one process: params, MACs in both conventions at 256x256, eager CPU latency at 256x256
(models interleaved, same threads; speed-ups are medians of per-round ratios), and PSNR/SSIM (SSIM on [0, 1]
intensities) against the ground truth and against the teacher on the val split, and on the test split, which
no model was selected on (the teacher and OMGD keep their best val checkpoint; GAN Compression and the
from-scratch students select on images held out of the training split, see ``gan_compression.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from ganslim.atomic import atomic_write_text
from ganslim.checkpoints import load_generator
from ganslim.config import load_config
from ganslim.data import AlignedDataset, make_builtin
from ganslim.data.builtin import INFO_FILE
from ganslim.engine import fit
from ganslim.export.runtime import interleaved_times
from ganslim.methods.teacher import Pix2Pix, Pix2PixConfig
from ganslim.metrics import psnr, ssim
from ganslim.profile import count_macs, count_params, num_threads

DATASET, IMAGE_SIZE, BATCH_SIZE = "shapes2render", 64, 4
EPOCHS, EPOCHS_DECAY = 3, 3  # 100 steps an epoch: 600 optimisation steps for every model
TEACHER = {"generator": "resnet_9blocks", "ngf": 64, "norm": "instance", "dropout": False}
TRAINING = {"batch_size": BATCH_SIZE, "gan_mode": "lsgan", "load_size": IMAGE_SIZE + 8, "crop_size": IMAGE_SIZE,
            "sample_every": 0, "log_every": 25, "val_every": 200, "ckpt_every": 200}
LATENCY_SIZE = 256


def benchmark_arguments(doc: str) -> argparse.Namespace:
    """The options every compression benchmark takes: --work, --out, --threads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work"), help="training runs and data")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where results are written")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for latency (default 2)")
    return parser.parse_args()


def prepare_data(work: Path) -> Path:
    """The built-in paired dataset under ``work/data`` (made once)."""
    data = work / "data" / DATASET
    if not (data / INFO_FILE).is_file():
        make_builtin(DATASET, data, size=IMAGE_SIZE)
    return data


def train_pix2pix(work: Path, data: Path, name: str, generator: dict, epochs: int = EPOCHS,
                  epochs_decay: int = EPOCHS_DECAY, seed: int = 0) -> Path:
    """Train (once; a finished run of that name is reused) a pix2pix model; returns its ``generator.pt``."""
    finished = sorted((work / "runs").glob(f"*-pix2pix-{name}/generator.pt"))
    if finished:
        return finished[-1]
    overrides = {**TRAINING, **generator, "data": str(data), "out_dir": str(work / "runs"), "name": name,
                 "device": "cpu", "epochs": epochs, "epochs_decay": epochs_decay, "seed": seed}
    result = fit(load_config(Pix2PixConfig, overrides=overrides, method=Pix2Pix.name), Pix2Pix)
    return Path(result.exported["G"])


def run_seconds(exported: Path) -> float:
    """Wall-clock of the run that exported ``exported``: from its config.yaml (written first) to the export.

    Read from the files, so a run reused or resumed by a later invocation still reports its real duration.
    """
    return exported.stat().st_mtime - (exported.parent / "config.yaml").stat().st_mtime


def interleaved_latency(models: dict[str, torch.nn.Module], size: int, threads: int, warmup: int,
                        repeats: int) -> dict[str, list[float]]:
    """Milliseconds per model and round at ``size``x``size``: every round runs each model once, the order
    rotating every round (``ganslim.export.runtime.interleaved_times``)."""
    image = torch.rand(1, 3, size, size) * 2 - 1
    with num_threads(threads), torch.inference_mode():
        return interleaved_times(models, image, warmup, repeats)


@torch.inference_mode()
def split_quality(models: dict[str, torch.nn.Module], data: Path, reference: str, split: str) -> dict[str, dict]:
    """Mean PSNR/SSIM on ``split`` vs the ground truth and vs the ``reference`` model's outputs."""
    images = AlignedDataset(data, split=split, load_size=IMAGE_SIZE, crop_size=IMAGE_SIZE, flip=False)
    inputs = torch.stack([images[i]["A"] for i in range(len(images))])
    targets = torch.stack([images[i]["B"] for i in range(len(images))])
    outputs = {name: model(inputs) for name, model in models.items()}
    quality = {}
    for name, output in outputs.items():
        quality[name] = {"psnr": psnr(output, targets).mean().item(), "ssim": ssim(output, targets).mean().item(),
                         "psnr_vs_teacher": psnr(output, outputs[reference]).mean().item(),
                         "ssim_vs_teacher": ssim(output, outputs[reference]).mean().item()}
    return quality


def measure(paths: dict[str, Path], data: Path, reference: str, threads: int = 2, repeats: int = 30) -> dict:
    """Params, MACs (both conventions, 256x256), interleaved latency and val and test quality of every model.

    ``speedup`` is the median over rounds of the reference's time over the model's in the same round: the
    machine's speed drifts between rounds (by 10-20% on a shared VM) far more than within one.
    ``speedup_best`` is the reference's fastest time over the model's fastest, the least disturbed runs.
    """
    models = {name: load_generator(path).model.eval() for name, path in paths.items()}
    example = torch.zeros(1, 3, LATENCY_SIZE, LATENCY_SIZE)
    table = {}
    for name, model in models.items():
        macs = count_macs(model, example)
        table[name] = {"checkpoint": str(paths[name]), "params": count_params(model), "macs": macs.macs,
                       "macs_published": macs.macs_published}
    latency = interleaved_latency(models, LATENCY_SIZE, threads, warmup=3, repeats=repeats)
    quality = split_quality(models, data, reference, "val")
    test = split_quality(models, data, reference, "test")
    for name, times in latency.items():
        base = table[reference]
        table[name].update(latency_ms={"median": statistics.median(times), "min": min(times), "max": max(times)},
                           **quality[name], test=test[name],
                           macs_ratio=base["macs_published"] / table[name]["macs_published"],
                           speedup=statistics.median(r / t for r, t in zip(latency[reference], times)),
                           speedup_best=min(latency[reference]) / min(times))
    return table


def markdown_table(table: dict, wall_clock: dict[str, float] | None = None) -> str:
    """One row per model: size, cost, speed and quality, with ratios to the reference (teacher)."""
    header = ("| model | params | MACs true | MACs published | fewer MACs | latency ms (median, min-max) "
              "| speed-up (per round) | speed-up (fastest) | val PSNR | val SSIM | test PSNR | test SSIM "
              "| val PSNR vs teacher |"
              + (" wall-clock |" if wall_clock else ""))
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, row in table.items():
        latency = row["latency_ms"]
        line = (f"| {name} | {row['params'] / 1e6:.3f}M | {row['macs'] / 1e9:.2f}G | {row['macs_published'] / 1e9:.2f}G "
                f"| {row['macs_ratio']:.1f}x | {latency['median']:.1f} ({latency['min']:.1f}-{latency['max']:.1f}) "
                f"| {row['speedup']:.1f}x | {row['speedup_best']:.1f}x | {row['psnr']:.2f} | {row['ssim']:.3f} "
                f"| {row['test']['psnr']:.2f} | {row['test']['ssim']:.3f} | {row['psnr_vs_teacher']:.2f} |")
        if wall_clock:
            seconds = wall_clock.get(name)
            line += f" {seconds / 60:.1f} min |" if seconds is not None else " - |"
        lines.append(line)
    return "\n".join(lines)


def write_results(out: Path, name: str, results: dict, markdown: str) -> None:
    """``out/NAME.json`` and ``out/NAME.md`` (with the command that made them), written atomically."""
    command = "python " + " ".join(sys.argv)
    results = {**results, "command": command, "torch": torch.__version__, "threads": torch.get_num_threads()}
    atomic_write_text(json.dumps(results, indent=2) + "\n", out / f"{name}.json")
    atomic_write_text(f"# {name}\n\nMade by `{command}`.\n\n{markdown}\n", out / f"{name}.md")
    print(markdown)
    print(f"results: {out / (name + '.json')}, {out / (name + '.md')}")
