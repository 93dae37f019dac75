"""GauGAN benchmark: a SPADE teacher vs its GAN Compression student vs the same student trained from scratch.

    python benchmarks/gaugan.py [--work benchmarks/work/gaugan] [--out benchmarks/results] [--seeds 0,1,2]

On the built-in label -> image scenes (``labels2scene`` at 64 px: 400 train, 50 val, 50 test; 6 labels + instance
edges):

* **teacher**: ``ganslim train spade`` (hinge GAN, feature matching 10, TTUR; no VGG19 on this machine), ngf 16;
* **gan_compression**: ``ganslim compress gan-compression`` on it (the mobile SPADE supernet distilled at head_0,
  G_middle_1 and up_1 from the inherited discriminator, searched under a ninth of the teacher's MACs on its held-out
  10% of the training scenes, fine-tuned, exported), fine-tuned again from the same supernet with each other seed;
* **twin**: the searched architecture trained from scratch by ``ganslim train spade --set student_channels=...``
  (the teacher's recipe, no teacher: a fresh discriminator, no distillation, no spectral norm, as the student)
  on the same 90% of the training scenes, for as many steps as the supernet and fine-tune stages together.

Quality: PSNR/SSIM to the photos on the 50 test scenes (no model selects on them), and to the teacher's outputs.
Cost: params and MACs at the models' 64x64; eager CPU latency at 256x256 (the same weights rebuilt for that size)
on a real test label map, the models interleaved.
About an hour on 2 idle cores; finished runs are reused when re-run with the same ``--work``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as ganslim bench (see its docstring)

import argparse  # noqa: E402 - after the OpenMP setting
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from compression_task import finished_run, run_seconds, write_results  # noqa: E402
from gan_compression import SEARCH, repeat_finetune  # noqa: E402
from mobilestylegan import verdict  # noqa: E402

from ganslim.archs import build_generator  # noqa: E402
from ganslim.checkpoints import load_generator  # noqa: E402
from ganslim.config import load_config  # noqa: E402
from ganslim.data import make_builtin  # noqa: E402
from ganslim.data.builtin import INFO_FILE  # noqa: E402
from ganslim.data.label_datasets import LabelMapDataset, find_label_pairs  # noqa: E402
from ganslim.data.labels import LabelEncoding  # noqa: E402
from ganslim.data.subsets import holdout_indices  # noqa: E402
from ganslim.measure.compare import image_quality, model_cost  # noqa: E402
from ganslim.measure.profile.timing import interleaved_times, num_threads  # noqa: E402
from ganslim.methods.gan_compression.spade.distill import SpadeFinetuneDistillation  # noqa: E402
from ganslim.methods.gan_compression.pipeline import PipelineConfig, run_pipeline  # noqa: E402
from ganslim.methods.spade import SPADEConfig, run_spade  # noqa: E402

SIDE, BATCH = 64, 4
LATENCY_SIDE = 256  # timed at 256x256: at the 64x64 they train at, per-op overheads hide the MACs
SCENES = "labels2scene"
COMMON = {"batch_size": BATCH, "log_every": 50, "sample_every": 0, "ckpt_every": 500, "device": "cpu",
          "vgg19_weights": "none"}
TEACHER = {"label_nc": 6, "crop_size": SIDE, "ngf": 16, "ndf": 32, "epochs": 10, "epochs_decay": 10}
# GAN Compression's stages, in epochs of its 360 training scenes (90 steps each at batch 4).
SUPERNET_EPOCHS, FINETUNE_EPOCHS = 5, 5
MACS_FRACTION = 1 / 9.4  # the issue's >= 9x fewer MACs (the paper: 281G -> 31.7G)
STUDENT = {"channel_multiple": 4}  # candidate widths 16, 12, 8, 4 of the teacher's 16
TARGETS = {"macs": 9.0, "teacher_gap_db": 0.5}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work/gaugan"), help="training runs and data")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where results are written")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of every student and twin (default 0,1,2)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for latency (default 2)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--length", type=float, default=1.0, help="scale every training length (default 1)")
    args = parser.parse_args()
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    return args


def epochs(count: int, length: float) -> int:
    return max(1, round(count * length))


def scenes(work: Path) -> Path:
    """The built-in scenes at 64 px under ``work/data`` (made once)."""
    data = work / "data" / SCENES
    if not (data / INFO_FILE).is_file():
        make_builtin(SCENES, data, size=SIDE)
    return data


def holdout_split(work: Path, data: Path) -> Path:
    """``data`` without the training scenes GAN Compression holds out for its search (made once): what the twins
    train on. Its val and test splits are ``data``'s."""
    split = work / "data" / f"{data.name}-gan-compression-split"
    if split.is_dir():
        return split
    partial = split.with_name(split.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    pairs = find_label_pairs(data, "train", "folders", True)
    held = set(holdout_indices(len(pairs)))
    for index, pair in enumerate(pairs):
        if index not in held:
            for kind, path in (("labels", pair.label), ("images", pair.image), ("instances", pair.instance)):
                (partial / "train" / kind).mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, partial / "train" / kind / path.name)
    for folder in ("val", "test"):
        shutil.copytree(data / folder, partial / folder)
    shutil.copy2(data / INFO_FILE, partial / INFO_FILE)
    partial.rename(split)
    return split


def train_spade(work: Path, data: Path, name: str, settings: dict) -> Path:
    """``ganslim train spade`` with ``settings`` (once; a finished run of that name is reused): its generator.pt."""
    if (path := finished_run(work, "spade", name, "generator.pt", settings)) is not None:
        return path
    config = load_config(SPADEConfig, overrides={**COMMON, **settings, "data": str(data), "name": name,
                                                 "out_dir": str(work / "runs")}, method="spade")
    return Path(run_spade(config, resume=None, progress=True).exported["generator"])


def compress(work: Path, data: Path, teacher: Path, budget: str, length: float) -> Path:
    """The GAN Compression pipeline on the teacher (a finished run is reused); returns its folder."""
    runs = sorted(p.parent for p in (work / "runs").glob("*-gan-compression-gaugan/pipeline.json"))
    finished = [run for run in runs if (run / "generator.pt").is_file()]
    if finished:
        return finished[-1]
    supernet, finetune = epochs(SUPERNET_EPOCHS, length), epochs(FINETUNE_EPOCHS, length)
    overrides = {**COMMON, **SEARCH, **STUDENT, "data": str(data), "teacher": str(teacher), "size": SIDE,
                 "budget_macs": budget, "out_dir": str(work / "runs"), "name": "gaugan", "val_every": 0,
                 "epochs": supernet, "epochs_decay": supernet, "finetune_epochs": finetune,
                 "finetune_epochs_decay": finetune}
    config = load_config(PipelineConfig, overrides=overrides, method="gan-compression")
    return run_pipeline(config, resume=runs[-1] if runs else None).run_dir


def students(work: Path, data: Path, run: Path, seeds: list[int], length: float) -> dict[str, list[Path]]:
    """Per seed: the GAN Compression student and its from-scratch twin."""
    channels = json.loads((run / "summary.json").read_text())["student"]["channels"]
    steps = epochs(SUPERNET_EPOCHS, length) + epochs(FINETUNE_EPOCHS, length)  # constant + as long decaying, twice
    twin = {**{key: TEACHER[key] for key in ("label_nc", "crop_size", "ngf", "ndf")},
            "student_channels": channels, "spectral_g": False, "epochs": steps,
            "epochs_decay": steps}
    split = holdout_split(work, data)
    return {"gan_compression": [run / "generator.pt" if seed == 0
                                else repeat_finetune(work, run, "gaugan", seed, SpadeFinetuneDistillation)
                                for seed in seeds],
            "twin": [train_spade(work, split, f"twin-seed{seed}", {**twin, "seed": seed}) for seed in seeds]}


def test_scenes(model: torch.nn.Module, data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split's (label maps, photos) at the model's size."""
    items = LabelMapDataset(data, LabelEncoding.of(model), model.size, "test", "folders", flip=False)
    return (torch.stack([items[i]["label_map"] for i in range(len(items))]),
            torch.stack([items[i]["image"] for i in range(len(items))]))


@torch.inference_mode()
def quality(models: dict[Any, torch.nn.Module], teacher: torch.nn.Module, data: Path) -> dict[str, dict]:
    """PSNR/SSIM of each model's test outputs to the photos and to the teacher's outputs."""
    label_maps, photos = test_scenes(teacher, data)
    reference = teacher(label_maps)
    scores = {}
    for name, model in models.items():
        output = model(label_maps)
        scores[name] = {**image_quality(output, photos),
                        **{f"{key}_vs_teacher": value for key, value in image_quality(output, reference).items()}}
    return scores


def at_side(path: Path, side: int) -> torch.nn.Module:
    """The generator at ``path`` rebuilt for ``side`` x ``side`` label maps with the same weights (SPADE's convs
    take any size; only the latent's size follows ``crop_size``)."""
    loaded = load_generator(path)
    model = build_generator(loaded.arch, **{**loaded.arch_kwargs, "crop_size": side})
    model.load_state_dict(loaded.model.state_dict())
    return model.eval()


def latency(paths: dict[str, Path], data: Path, threads: int, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per round of each model, rebuilt at ``LATENCY_SIDE``, on one real test label map (resized
    nearest), the models interleaved."""
    models = {name: at_side(path, LATENCY_SIDE) for name, path in paths.items()}
    label_map = test_scenes(next(iter(models.values())), data)[0][:1]
    with torch.inference_mode(), num_threads(threads):
        return interleaved_times(models, label_map, warmup=3, repeats=repeats)


def seed_line(name: str, values: list[float]) -> str:
    return f"| {name} | {', '.join(f'{value:.2f}' for value in values)} | {statistics.mean(values):.2f} |"


def main() -> None:
    args = arguments()
    data = scenes(args.work)
    teacher_settings = {**TEACHER, "epochs": epochs(TEACHER["epochs"], args.length),
                        "epochs_decay": epochs(TEACHER["epochs_decay"], args.length)}
    teacher_path = train_spade(args.work, data, "teacher", teacher_settings)
    teacher = load_generator(teacher_path).model.eval()
    budget = f"{model_cost(teacher, SIDE).macs.macs_published * MACS_FRACTION / 1e6:.1f}M"
    run = compress(args.work, data, teacher_path, budget, args.length)
    seeds = students(args.work, data, run, args.seeds, args.length)
    paths = {"teacher": teacher_path, "gan_compression": seeds["gan_compression"][0], "twin": seeds["twin"][0]}
    models = {name: load_generator(path).model.eval() for name, path in paths.items()}
    costs = {name: model_cost(model, SIDE).to_dict() for name, model in models.items()}
    times = latency(paths, data, args.threads, args.repeats)
    scores = quality(models, teacher, data)
    seeded = quality({(name, seed): load_generator(path).model.eval() for name, paths_ in seeds.items()
                      for seed, path in enumerate(paths_)}, teacher, data)
    per_seed = {name: [seeded[(name, seed)]["psnr"] for seed in range(len(paths_))] for name, paths_ in seeds.items()}
    wall_clock = {name: run_seconds(path) for name, path in paths.items()}  # gan_compression: the whole pipeline
    macs_ratio = costs["teacher"]["macs"] / costs["gan_compression"]["macs"]
    gap = scores["gan_compression"]["psnr"] - scores["teacher"]["psnr"]
    wins = sum(s > t for s, t in zip(per_seed["gan_compression"], per_seed["twin"]))
    targets = [f"MACs: {macs_ratio:.1f}x fewer than the teacher (target >= {TARGETS['macs']:g}x): "
               f"{verdict(macs_ratio >= TARGETS['macs'])}",
               f"vs teacher: test PSNR {gap:+.2f} dB, seed 0 (target >= -{TARGETS['teacher_gap_db']:g} dB): "
               f"{verdict(gap >= -TARGETS['teacher_gap_db'])}",
               f"vs twin: higher on {wins} of {len(args.seeds)} seeds (target: every seed): "
               f"{verdict(wins == len(args.seeds))}"]
    summary = json.loads((run / "summary.json").read_text())
    rows = ["| model | params (M) | MACs (M) | fewer MACs | latency ms (median, min-max) | speed-up (per round) | "
            "test PSNR | test SSIM | PSNR vs teacher | wall-clock (min) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, cost in costs.items():
        ms = times[name]
        speedup = statistics.median(t / m for t, m in zip(times["teacher"], ms))
        score = scores[name]
        rows.append(f"| {name} | {cost['params'] / 1e6:.3f} | {cost['macs'] / 1e6:.1f} | "
                    f"{costs['teacher']['macs'] / cost['macs']:.1f}x | {statistics.median(ms):.2f} ({min(ms):.2f}-"
                    f"{max(ms):.2f}) | {speedup:.1f}x | {score['psnr']:.2f} | {score['ssim']:.3f} | "
                    f"{score['psnr_vs_teacher']:.2f} | {wall_clock[name] / 60:.1f} |")
    markdown = ("\n".join(rows) + f"\n\nMACs and quality at 64x64, latency at {LATENCY_SIDE}x{LATENCY_SIDE} (the "
                f"same weights rebuilt for that size) on {args.threads} threads. The teacher: spade ngf 16, "
                f"{teacher_settings['epochs']} + {teacher_settings['epochs_decay']} epochs of 400 scenes at batch "
                f"{BATCH}. gan_compression: searched under {budget} MACs (a ninth of the teacher's), channels "
                f"{summary['student']['channels']}, supernet {epochs(SUPERNET_EPOCHS, args.length)} + as many "
                f"decaying epochs, fine-tune {epochs(FINETUNE_EPOCHS, args.length)} + as many, of its 360 training "
                f"scenes (wall-clock: the whole pipeline). twin: that architecture from scratch with the teacher's "
                f"recipe on the same 360 scenes for the same steps. No VGG19 weights: the perceptual terms are off "
                f"for every model.\n\nTest PSNR per seed {args.seeds}:\n\n| model | PSNR | mean |\n|---|---|---|\n"
                + seed_line("gan_compression", per_seed["gan_compression"]) + "\n"
                + seed_line("twin", per_seed["twin"]) + "\n\nTargets:\n\n" + "\n".join(f"- {t}" for t in targets))
    results = {"settings": {"teacher": teacher_settings, "budget": budget, "seeds": args.seeds,
                            "supernet_epochs": epochs(SUPERNET_EPOCHS, args.length),
                            "finetune_epochs": epochs(FINETUNE_EPOCHS, args.length), "threads": args.threads},
               "costs": costs, "latency_ms": times, "scores": scores, "per_seed_psnr": per_seed,
               "wall_clock_s": wall_clock, "search": summary, "targets": targets}
    write_results(args.out, "gaugan", results, markdown)
    print("\n".join(["", "Targets:", *targets]))


if __name__ == "__main__":
    main()
