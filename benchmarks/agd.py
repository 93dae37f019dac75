"""AutoGAN-Distiller benchmark: the searched, distilled students vs their teachers vs the same architectures trained
without a teacher, for image translation and x4 super-resolution, in fp32 and int8.

    python benchmarks/agd.py [--parts translation,sr] [--work benchmarks/work] [--out benchmarks/results]
        [--seeds 0,1,2] [--threads 2] [--repeats 20] [--warmup 3] [--length 1]

**translation** (``agd_translation.md``): the paired task of ``compression_task.py`` (shapes2render at 64 px, 400
training images, batch 4), its pix2pix resnet_9blocks teacher and GAN Compression's student under 2.8G published
MACs, both from ``gan_compression.py``'s runs (the same ``--work`` reuses them; trained here when missing).
``ganslim compress agd`` searches under the same 2.8G (one 256x256 input, AGD's published convention) with about as
many weight steps as GAN Compression's two stages (12 + 12 epochs): warm-up 6 epochs, search 6 epochs (over half the
images each), retrain 6 + 6 epochs.

**sr** (``agd_sr.md``): photos2sr (HR crops of 128, LR made by bicubic x4), an RRDBNet teacher trained here
(``ganslim train esrgan``'s psnr stage, L1 to the HR images: num_feat 32, 6 blocks, grow 16, GT crops 64, batch 8)
and AGD's super-resolution search under a tenth of the teacher's MACs at a 256x256 LR input, its trunk at most 16
wide (``student_width``; see ``SR_STUDENT_WIDTH``), retrained at lr 1e-3 (``SR_RETRAIN_LR``).

The **twin** of each AGD student is its derived architecture retrained with the same objective, initialisation
seed, data and steps on the ground truth instead of the teacher's outputs (``--set retrain_target=ground_truth``):
the teacher is the one factor changed. Each search runs once; every student and twin is retrained with each of
``--seeds`` from the same ``derived.json`` (the main tables are the first seed). Scored on the test split, which
nothing trains or selects on: PSNR/SSIM against the ground truth and against the teacher (translation: RGB, as the
GAN Compression tables; super-resolution: the Y channel with a 4-pixel border crop, BasicSR's convention); params
and MACs (both conventions); latency from ``ganslim bench`` (eager PyTorch, ONNX Runtime, OpenVINO and their
static int8, every model x backend interleaved in one process, with each int8 model's quality); each run's
wall-clock. The issue's targets are printed with pass/fail. ``--length`` scales every training length (for a try;
the committed results use 1). Slow on CPU; finished runs under ``--work`` are reused.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as ganslim bench (see its docstring)

import argparse  # noqa: E402 - after the OpenMP setting
import json  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from compression_task import (BATCH_SIZE, IMAGE_SIZE, PAIRED, TASKS, TRAINING, finished_run, measure,  # noqa: E402
                              markdown_table, prepare_data, run_seconds, seed_quality, train_teacher, write_results)
from gan_compression import BUDGET, compress  # noqa: E402
from mobilestylegan import verdict  # noqa: E402

from ganslim.checkpoints import load_generator  # noqa: E402
from ganslim.config import load_config  # noqa: E402
from ganslim.data import make_builtin  # noqa: E402
from ganslim.data.builtin import INFO_FILE  # noqa: E402
from ganslim.engine import fit  # noqa: E402
from ganslim.measure.bench import BenchModel, run_bench, write_bench  # noqa: E402
from ganslim.measure.evaluate import evaluate_generator, open_sr_eval_data  # noqa: E402
from ganslim.measure.profile import count_macs, count_params  # noqa: E402
from ganslim.methods.agd.config import GROUND_TRUTH, TEACHER_TARGET, AGDConfig, AGDStageConfig  # noqa: E402
from ganslim.methods.agd.pipeline import run_agd  # noqa: E402
from ganslim.methods.agd.training import Retrain  # noqa: E402
from ganslim.methods.esrgan import ESRGANConfig, ESRGANPSNR, run_esrgan  # noqa: E402

TRANSLATION_LENGTHS = {"warmup_epochs": 6, "search_epochs": 6, "epochs": 6, "epochs_decay": 6}
SR_DATA = {"size": 128, "count": 200}  # HR crops: 200 train, the val / test splits of make_builtin
SR_TEACHER = {"num_feat": 32, "num_block": 6, "num_grow_ch": 16, "gt_size": 64, "batch_size": 8,
              "iterations": 3000}
# The student's widest trunk: half the teacher's. At the teacher's width ESRGAN's fixed frame alone (the two
# upsampling convs and the HR conv, at 2x and 4x the LR side) costs a third of this small teacher's MACs, so a
# tenth is out of reach; ESRGAN's own 23 blocks make the trunk dominate instead.
SR_STUDENT_WIDTH = 16
SR_LENGTHS = {"warmup_iterations": 1000, "search_iterations": 1000, "iterations": 3000}
# The retrain's learning rate (AGD's default 2e-4 under-trains a 10-40k-parameter student in 3000 steps: the same
# derived network and seed reached 30.21 dB at 2e-4 and 30.70 dB at 1e-3). The twins retrain with it too.
SR_RETRAIN_LR = 1e-3
SR_BUDGET_FRACTION = 0.1  # the issue's >= 10x fewer MACs than the teacher
BUDGET_SIZE = 256  # the side of the one input every budget and MAC count is for
SR_LATENCY_SIDE = 64  # LR side timed (an RRDBNet at a 256 LR input takes seconds a round on 2 threads)
COMMON = {"log_every": 50, "sample_every": 0, "val_every": 0, "ckpt_every": 500, "device": "cpu"}
TARGETS = {"translation": {"macs": 8.0, "teacher_gap_db": 0.5}, "sr": {"macs": 10.0, "teacher_gap_db": 0.3,
                                                                        "int8_gap_db": 0.2}}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="translation,sr", help="translation, sr or both (default)")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work"), help="training runs and data")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where results are written")
    parser.add_argument("--seeds", default="0,1,2", help="retrain seeds of every student and twin (default 0,1,2)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for latency (default 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up rounds (default 3)")
    parser.add_argument("--length", type=float, default=1.0, help="scale every training length (default 1)")
    args = parser.parse_args()
    args.parts = [part.strip() for part in args.parts.split(",")]
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    return args


def scaled(lengths: dict, factor: float) -> dict:
    """``lengths`` times ``factor``, each at least 1."""
    return {key: max(1, round(value * factor)) for key, value in lengths.items()}


def agd_run(work: Path, name: str, overrides: dict) -> Path:
    """Run (or finish; a finished run of that name is reused) ``ganslim compress agd``; returns its folder."""
    runs = sorted(path.parent for path in (work / "runs").glob(f"*-agd-{name}/pipeline.json"))
    finished = [run for run in runs if (run / "generator.pt").is_file()]
    if finished:
        return finished[-1]
    config = load_config(AGDConfig, overrides={**COMMON, **overrides, "out_dir": str(work / "runs"), "name": name},
                         method="agd")
    return run_agd(config, resume=runs[-1] if runs else None).run_dir


def retrain(work: Path, run: Path, name: str, seed: int, target: str) -> Path:
    """The retrain stage of AGD run ``run`` again (its derived architecture, objective, data and length) with
    ``seed`` and ``target`` (the teacher's outputs or the ground truth); returns its ``generator.pt``."""
    if target == TEACHER_TARGET and seed == 0:
        return run / "generator.pt"  # the run's own retrain
    if (path := finished_run(work, Retrain.name, name, "generator.pt")) is not None:
        return path
    stage = Path(json.loads((run / "pipeline.json").read_text())["stages"]["retrain"]["run_dir"])
    config = load_config(AGDStageConfig, stage / "config.yaml", method=Retrain.name,
                         overrides={"seed": seed, "name": name, "out_dir": str(work / "runs"),
                                    "retrain_target": target})
    return Path(fit(config, Retrain).exported["generator"])


def students_and_twins(work: Path, run: Path, label: str, seeds: list[int]) -> dict[str, list[Path]]:
    """Per seed: the AGD student (distilled) and its twin (the same architecture on the ground truth)."""
    return {"agd": [retrain(work, run, f"{label}-seed{seed}", seed, TEACHER_TARGET) for seed in seeds],
            "twin": [retrain(work, run, f"{label}-twin-seed{seed}", seed, GROUND_TRUTH) for seed in seeds]}


def bench(models: dict[str, Path], args: argparse.Namespace, folder: str, **options) -> dict:
    """``ganslim bench`` of ``models`` (the first the reference) on every backend; written under ``args.out``."""
    loaded = [BenchModel(name, generator.model, generator.arch, str(path))
              for (name, path), generator in zip(models.items(), map(load_generator, models.values()))]
    result = run_bench(loaded, ("torch", "onnxruntime", "openvino", "int8"), threads=args.threads,
                       repeats=args.repeats, warmup=args.warmup, **options).to_dict()
    files = write_bench(result, args.out / folder)
    return {"rows": result["results"], "json": str(files.json), "markdown": str(files.markdown)}


def latency_table(rows: list[dict]) -> str:
    """Median latency (ms) per model and backend, and each int8 row's quality, from a bench."""
    lines = ["| model | backend | latency median (ms) | PSNR | PSNR vs reference |", "|---|---|---|---|---|"]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['model']} | {row['backend']} | {row['status']}: {row.get('reason')} | – | – |")
            continue
        quality = row.get("quality") or {}
        lines.append(f"| {row['model']} | {row['backend']} | {row['latency_ms']['median']:.1f} | "
                     f"{decibels(quality.get('psnr'))} | {decibels(quality.get('psnr_ref'))} |")
    return "\n".join(lines)


def decibels(value: object) -> str:
    """A bench PSNR: a number to 2 decimals, ``inf`` (written as a string) as it is, none as a dash."""
    return f"{value:.2f}" if isinstance(value, (int, float)) else str(value) if value else "–"


def seed_line(name: str, values: list[float]) -> str:
    return f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {statistics.mean(values):.2f} |"


# ---------------------------------------------------------------------------------------------------- translation


def translation(args: argparse.Namespace) -> list[str]:
    task = TASKS[PAIRED]
    data = prepare_data(args.work, task)
    teacher = train_teacher(args.work, task, data)
    gc_run = compress(args.work, data, teacher, "gan-compression", budget_macs=BUDGET)
    lengths = scaled(TRANSLATION_LENGTHS, args.length)
    run = agd_run(args.work, "translation", {
        "teacher": str(teacher), "data": str(data), "budget_macs": BUDGET, "size": BUDGET_SIZE,
        "batch_size": BATCH_SIZE, "load_size": TRAINING["load_size"], "crop_size": IMAGE_SIZE, **lengths})
    seeds = students_and_twins(args.work, run, "agd-translation", args.seeds)
    paths = {"teacher": teacher, "gan_compression": gc_run / "generator.pt", "agd": seeds["agd"][0],
             "twin": seeds["twin"][0]}
    wall_clock = {name: run_seconds(path) for name, path in paths.items()}  # AGD's: its whole run, all stages
    table = measure(task, paths, data, reference="teacher", threads=args.threads)
    quality = seed_quality(task, seeds, {name: [teacher] * len(args.seeds) for name in seeds}, data)
    speed = bench(paths, args, "agd_translation_bench", size=BUDGET_SIZE, data=str(data), split="test",
                  num_images=16)
    summary = json.loads((run / "summary.json").read_text())
    agd, twin, teacher_row = table["agd"], table["twin"], table["teacher"]
    wins = sum(a > t for a, t in zip(quality["agd"]["test_psnr"], quality["twin"]["test_psnr"]))
    targets = [
        f"translation MACs: {agd['macs_ratio']:.1f}x fewer than resnet_9blocks (target >= "
        f"{TARGETS['translation']['macs']:g}x): {verdict(agd['macs_ratio'] >= TARGETS['translation']['macs'])}",
        f"translation vs teacher: test PSNR {agd['test']['psnr'] - teacher_row['test']['psnr']:+.2f} dB (target >= "
        f"-{TARGETS['translation']['teacher_gap_db']:g} dB): "
        f"{verdict(agd['test']['psnr'] - teacher_row['test']['psnr'] >= -TARGETS['translation']['teacher_gap_db'])}",
        f"translation vs twin: test PSNR {agd['test']['psnr'] - twin['test']['psnr']:+.2f} dB (seed {args.seeds[0]}); "
        f"higher on {wins} of {len(args.seeds)} seeds (target: every seed): {verdict(wins == len(args.seeds))}"]
    results = {"settings": {"dataset": data.name, "budget": BUDGET, "lengths": lengths, "seeds": args.seeds,
                            "threads": args.threads},
               "models": table, "seeds": quality, "wall_clock_s": wall_clock, "bench": speed, "agd": summary,
               "targets": targets}
    markdown = (markdown_table(task, table, wall_clock) +
                f"\n\nAGD searched under {BUDGET} published MACs at {BUDGET_SIZE}x{BUDGET_SIZE} (warm-up "
                f"{lengths['warmup_epochs']} epochs, search {lengths['search_epochs']} epochs over half the images, "
                f"retrain {lengths['epochs']} + {lengths['epochs_decay']}), derived {summary['derived']['arch_kwargs']}"
                f"; objective terms {summary['objectives']['retrain']}. twin: that architecture retrained the same way "
                f"on the ground truth. GAN Compression: gan_compression.py's student at the same budget.\n\n"
                f"Test PSNR per seed {args.seeds}:\n\n| model | test PSNR | mean |\n|---|---|---|\n"
                + "\n".join(seed_line(name, quality[name]["test_psnr"]) for name in ("agd", "twin"))
                + "\n\nLatency at 256x256 and int8 (test images):\n\n" + latency_table(speed["rows"])
                + "\n\nTargets:\n\n" + "\n".join(f"- {line}" for line in targets))
    write_results(args.out, "agd_translation", results, markdown)
    return targets


# --------------------------------------------------------------------------------------------- super-resolution


def sr_data(work: Path) -> Path:
    """photos2sr under ``work/data`` (made once)."""
    data = work / "data" / "photos2sr"
    if not (data / INFO_FILE).is_file():
        make_builtin("photos2sr", data, **SR_DATA)
    return data


def sr_teacher(work: Path, data: Path, length: float) -> Path:
    """The RRDBNet teacher (psnr stage), trained once."""
    settings = {**SR_TEACHER, "iterations": max(1, round(SR_TEACHER["iterations"] * length))}
    if (path := finished_run(work, ESRGANPSNR.name, "sr-teacher", "generator.pt", settings)) is not None:
        return path
    config = load_config(ESRGANConfig, overrides={**COMMON, **settings, "data": str(data), "name": "sr-teacher",
                                                  "out_dir": str(work / "runs"), "val_every": 500},
                         method=ESRGANPSNR.name)
    return Path(run_esrgan(config, resume=None, progress=True).exported["generator"])


def sr_scores(path: Path, teacher: torch.nn.Module, data: Path) -> dict[str, float]:
    """Y-PSNR / SSIM (4-pixel border crop) on the test HR images, vs the HR image and vs the teacher."""
    model = load_generator(path).model
    result = evaluate_generator(model, open_sr_eval_data(model.signature, data, "test"),
                                metrics=("psnr", "ssim"), teacher=teacher, progress=False, sr_metric="y")
    return result.metrics


def sr(args: argparse.Namespace) -> list[str]:
    data = sr_data(args.work)
    teacher_path = sr_teacher(args.work, data, args.length)
    teacher = load_generator(teacher_path).model
    lr_input = torch.zeros(1, 3, BUDGET_SIZE, BUDGET_SIZE)
    teacher_macs = count_macs(teacher, lr_input).macs_published
    budget = f"{teacher_macs * SR_BUDGET_FRACTION / 1e9:.2f}G"
    lengths = scaled(SR_LENGTHS, args.length)
    run = agd_run(args.work, "sr", {"teacher": str(teacher_path), "data": str(data), "budget_macs": budget,
                                    "size": BUDGET_SIZE, "gt_size": SR_TEACHER["gt_size"],
                                    "student_width": SR_STUDENT_WIDTH, "lr": SR_RETRAIN_LR,
                                    "batch_size": SR_TEACHER["batch_size"], **lengths})
    seeds = students_and_twins(args.work, run, "agd-sr", args.seeds)
    scores = {name: [sr_scores(path, teacher, data) for path in paths] for name, paths in seeds.items()}
    teacher_scores = sr_scores(teacher_path, teacher, data)
    paths = {"teacher": teacher_path, "agd": seeds["agd"][0], "twin": seeds["twin"][0]}
    costs = {}
    for name, path in paths.items():
        model = load_generator(path).model
        macs = count_macs(model, lr_input)
        costs[name] = {"params": count_params(model), "macs": macs.macs, "macs_published": macs.macs_published}
    wall_clock = {name: run_seconds(path) for name, path in paths.items()}  # AGD's: its whole run, all stages
    speed = bench(paths, args, "agd_sr_bench", size=SR_LATENCY_SIDE, data=str(data), split="test", num_images=8)
    agd_psnr = [score["psnr"] for score in scores["agd"]]
    twin_psnr = [score["psnr"] for score in scores["twin"]]
    macs_ratio = costs["teacher"]["macs_published"] / costs["agd"]["macs_published"]
    gap = agd_psnr[0] - teacher_scores["psnr"]
    int8 = {row["backend"]: row["quality"].get("psnr") for row in speed["rows"]
            if row["model"] == "agd" and row["status"] == "ok"}
    int8_gap = (max(int8.get("onnxruntime-int8") or -1e9, int8.get("openvino-int8") or -1e9)
                - (int8.get("torch") or float("nan")))
    wins = sum(a > t for a, t in zip(agd_psnr, twin_psnr))
    goal = TARGETS["sr"]
    targets = [f"SR MACs: {macs_ratio:.1f}x fewer than the teacher (target >= {goal['macs']:g}x): "
               f"{verdict(macs_ratio >= goal['macs'])}",
               f"SR vs teacher: Y-PSNR {gap:+.2f} dB (target >= -{goal['teacher_gap_db']:g} dB): "
               f"{verdict(gap >= -goal['teacher_gap_db'])}",
               f"SR vs twin: higher on {wins} of {len(args.seeds)} seeds (target: every seed): "
               f"{verdict(wins == len(args.seeds))}",
               f"SR int8 (best of ONNX Runtime / OpenVINO) vs fp32 eager on the bench's test images: {int8_gap:+.2f} dB "
               f"(target >= -{goal['int8_gap_db']:g} dB): {verdict(int8_gap >= -goal['int8_gap_db'])}"]
    summary = json.loads((run / "summary.json").read_text())
    results = {"settings": {"data": SR_DATA, "teacher": SR_TEACHER, "budget": budget, "lengths": lengths,
                            "seeds": args.seeds, "threads": args.threads, "latency_lr_side": SR_LATENCY_SIDE,
                            "retrain_lr": SR_RETRAIN_LR},
               "teacher": teacher_scores, "scores": scores, "costs": costs, "wall_clock_s": wall_clock,
               "bench": speed, "agd": summary, "targets": targets}
    rows = ["| model | params (M) | MACs true (G) | MACs published (G) | Y-PSNR | SSIM | Y-PSNR vs teacher | "
            "wall-clock (min) |", "|---|---|---|---|---|---|---|---|"]
    for name, score in (("teacher", teacher_scores), ("agd", scores["agd"][0]), ("twin", scores["twin"][0])):
        cost = costs[name]
        rows.append(f"| {name} | {cost['params'] / 1e6:.3f} | {cost['macs'] / 1e9:.2f} | "
                    f"{cost['macs_published'] / 1e9:.2f} | {score['psnr']:.2f} | {score['ssim']:.4f} | "
                    f"{score.get('psnr_teacher', float('inf')):.2f} | {wall_clock[name] / 60:.1f} |")
    markdown = ("\n".join(rows) + f"\n\nMACs of one {BUDGET_SIZE}x{BUDGET_SIZE} LR input; AGD searched under "
                f"{budget} (a tenth of the teacher's), lengths {lengths}, retrain lr {SR_RETRAIN_LR:g}, derived "
                f"{summary['derived']['arch_kwargs']}"
                f"; objective terms {summary['objectives']['retrain']}. twin: that architecture retrained the same "
                f"way on the HR images.\n\nY-PSNR per seed {args.seeds}:\n\n| model | Y-PSNR | mean |\n|---|---|---|\n"
                + seed_line("agd", agd_psnr) + "\n" + seed_line("twin", twin_psnr)
                + f"\n\nLatency at a {SR_LATENCY_SIDE}x{SR_LATENCY_SIDE} LR input and int8 (test images):\n\n"
                + latency_table(speed["rows"]) + "\n\nTargets:\n\n" + "\n".join(f"- {line}" for line in targets))
    write_results(args.out, "agd_sr", results, markdown)
    return targets


def main() -> None:
    args = arguments()
    targets = []
    if "translation" in args.parts:
        targets += translation(args)
    if "sr" in args.parts:
        targets += sr(args)
    print("\n".join(["", "Targets:", *targets]))


if __name__ == "__main__":
    main()
