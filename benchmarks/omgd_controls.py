"""Controlled runs for OMGD's quality gap: OMGD on the paired benchmark task with one setting changed at a time,
and the wide teacher's architecture trained alone by pix2pix for the same steps.

    python benchmarks/omgd_controls.py [--work benchmarks/work] [--out benchmarks/results]

The same built-in paired task, preprocessing and schedule as the other compression benchmarks
(``compression_task.py``: 400 training images at 64 px, batch 4, 3 + 3 epochs of 100 steps). Each run reports
the val PSNR of the student and of both teachers (OMGD) or of the generator (pix2pix), best and at every
validation (every 100 steps), so a gap can be placed: the student's capacity (see ``omgd_student.py``), the
channel-distillation layers, the deep teacher's learning rate, or how well the online teachers train.
About 45 minutes a run on 2 idle cores.
"""

from __future__ import annotations

import json
import time

from compression_task import EPOCHS, EPOCHS_DECAY, TASKS, TRAINING, benchmark_arguments, prepare_data, write_results

from ganslim.config import load_config
from ganslim.engine import fit
from ganslim.methods.omgd import OMGDConfig, omgd_method
from ganslim.methods.teachers import Pix2Pix, Pix2PixConfig

PAIRED = TASKS["paired"]
STUDENT = {"student": "mobile_resnet", "width": 1.0}
# name -> (method, the one setting changed); "defaults" is the reference every OMGD row is compared with
RUNS = {
    "defaults": ("omgd", {}),
    "cd_layers_omgd": ("omgd", {"cd_layers": "omgd"}),
    "deep_lr_1e-3": ("omgd", {"deep_lr": 1e-3}),
    "pix2pix_gan": ("omgd", {"gan_mode": "vanilla", "ndf": 64}),
    "wide_alone": ("pix2pix", {"generator": "mobile_resnet", "ngf": 64, "norm": "instance", "dropout": False}),
}


def run_one(work, data, name: str) -> dict:
    """Train run ``name`` of :data:`RUNS`; its best val PSNR and the validation history."""
    method, change = RUNS[name]
    overrides = {**TRAINING, "val_every": 100, "ckpt_every": 0, "epochs": EPOCHS, "epochs_decay": EPOCHS_DECAY,
                 "data": str(data), "out_dir": str(work / "runs"), "device": "cpu", "name": f"control-{name}",
                 **change}
    if method == "omgd":
        config = load_config(OMGDConfig, overrides={**overrides, **STUDENT}, method="omgd")
        method_class = omgd_method(config)
    else:
        config = load_config(Pix2PixConfig, overrides=overrides, method="pix2pix")
        method_class = Pix2Pix
    started = time.time()
    result = fit(config, method_class, progress=False)
    return {"name": name, "method": method, "change": change, "best": result.best, "last": result.last_metrics,
            "seconds": round(time.time() - started)}


def markdown_rows(rows: list[dict]) -> list[str]:
    lines = ["| run | change | student | wide teacher | deep teacher |", "|---|---|---|---|---|"]
    for row in rows:
        last = row["last"]
        student = f"{row['best']['value']:.2f}" if row["method"] == "omgd" else "-"
        wide = last.get("psnr_wide", last["psnr"] if row["method"] == "pix2pix" else float("nan"))
        deep = f"{last['psnr_deep']:.2f}" if "psnr_deep" in last else "-"
        lines.append(f"| {row['name']} | {json.dumps(row['change']) if row['change'] else '-'} | {student} | "
                     f"{wide:.2f} | {deep} |")
    return lines


def main() -> None:
    args = benchmark_arguments(__doc__)
    data = prepare_data(args.work, PAIRED)
    rows = [run_one(args.work, data, name) for name in RUNS]
    markdown = ("OMGD on the paired benchmark task (600 steps), one setting changed at a time; val PSNR (dB) of the "
                "student (best step) and of the teachers at the last step; `wide_alone` is the wide teacher's "
                "architecture trained by pix2pix on its own.\n\n" + "\n".join(markdown_rows(rows)))
    write_results(args.out, "omgd_controls", {"runs": rows}, markdown)


if __name__ == "__main__":
    main()
