"""Controlled runs for OMGD's student: the 0.137 M student trained directly on the ground truth (a perfect, frozen
teacher), one factor changed at a time: the learning rate, the objective, the schedule's length.

    python benchmarks/omgd_student.py [--work benchmarks/work] [--out benchmarks/results]

The same built-in paired task and preprocessing as the other compression benchmarks (``compression_task.py``): 400
training images at 64 px, batch 4, 100 steps an epoch, constant then linearly decaying learning rate (Adam, beta1
0.5), val PSNR/SSIM at the end. Objectives: ``ssim+tv`` is OMGD's student objective without VGG16 weights
(10 (1 - SSIM) + 1e-5 TV), ``l1`` is 10 L1, ``ssim+tv+l1`` both (ganslim's fallback). It isolates what limits the
student in short schedules from what its online teachers can teach it. About 40 minutes on 2 idle cores.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from compression_task import (BATCH_SIZE, IMAGE_SIZE, TASKS, benchmark_arguments, prepare_data, split_images,
                              write_results)

from ganslim.archs import build_generator, init_weights
from ganslim.data import AlignedDataset
from ganslim.engine import ConstantThenLinearDecay
from ganslim.losses import ssim_loss, total_variation
from ganslim.metrics import psnr, ssim

PAIRED = TASKS["paired"]
STUDENT = {"ngf": 16, "norm": "instance"}  # OMGD's 1.0x mobile ResNet student


@dataclass(frozen=True)
class Run:
    objective: str
    lr: float
    epochs: int = 3
    epochs_decay: int = 3


RUNS = [Run("ssim+tv", 2e-4), Run("ssim+tv", 1e-3), Run("l1", 1e-3), Run("ssim+tv+l1", 1e-3),
        Run("ssim+tv+l1", 2e-3), Run("ssim+tv+l1", 1e-3, 8, 8)]


def loss(objective: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    total = output.new_zeros(())
    if "ssim" in objective:
        total = total + 10 * ssim_loss(output, target) + 1e-5 * total_variation(output)
    if "l1" in objective:
        total = total + 10 * F.l1_loss(output, target)
    return total


def train(run: Run, data, val_inputs: torch.Tensor, val_targets: torch.Tensor, seed: int = 0) -> dict:
    """Train the student on the ground truth with ``run``'s settings; its val PSNR/SSIM at the end."""
    torch.manual_seed(seed)
    student = init_weights(build_generator("mobile_resnet", **STUDENT), "normal", 0.02)
    optimizer = torch.optim.Adam(student.parameters(), lr=run.lr, betas=(0.5, 0.999))
    schedule = ConstantThenLinearDecay(run.epochs, run.epochs_decay)
    train_set = AlignedDataset(data, "train", load_size=IMAGE_SIZE + 8, crop_size=IMAGE_SIZE, flip=True, seed=seed)
    for epoch in range(schedule.total_epochs):
        for group in optimizer.param_groups:
            group["lr"] = run.lr * schedule.factor(epoch)
        train_set.set_epoch(epoch)
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for start in range(0, len(order), BATCH_SIZE):
            items = [train_set[int(i)] for i in order[start:start + BATCH_SIZE]]
            inputs, targets = torch.stack([it["A"] for it in items]), torch.stack([it["B"] for it in items])
            optimizer.zero_grad()
            loss(run.objective, student(inputs), targets).backward()
            optimizer.step()
    student.eval()
    with torch.no_grad():
        output = student(val_inputs)
    return {"val_psnr": psnr(output, val_targets).mean().item(), "val_ssim": ssim(output, val_targets).mean().item(),
            "steps": schedule.total_epochs * len(range(0, len(train_set), BATCH_SIZE))}


def main() -> None:
    args = benchmark_arguments(__doc__)
    data = prepare_data(args.work, PAIRED)
    val_inputs, val_targets = split_images(PAIRED, data, "val")
    rows = [{**asdict(run), **train(run, data, val_inputs, val_targets)} for run in RUNS]
    lines = ["| objective | student lr | steps | val PSNR | val SSIM |", "|---|---|---|---|---|"]
    lines += [f"| {row['objective']} | {row['lr']:g} | {row['steps']} | {row['val_psnr']:.2f} | {row['val_ssim']:.3f} |"
              for row in rows]
    markdown = ("The OMGD student (mobile ResNet ngf 16, 0.137 M params) trained directly on the ground truth, one "
                "factor changed at a time (Adam beta1 0.5, constant then linearly decaying learning rate):\n\n"
                + "\n".join(lines))
    write_results(args.out, "omgd_student", {"runs": rows, "student": STUDENT}, markdown)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
