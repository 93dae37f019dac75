"""MobileStyleGAN benchmark: the distilled student vs its plain-GAN twin on the faces, and teacher vs student speed.

    python benchmarks/mobilestylegan.py [--parts faces,speed] [--work benchmarks/work] [--out benchmarks/results]
        [--teacher CKPT] [--teacher-kimg 10] [--kimg 5] [--batch-size 8] [--seeds 0,1,2] [--eval-images 500]
        [--size 1024] [--threads 2] [--repeats 20] [--warmup 3] [--num-calibration 16]

**faces** (``mobilestylegan_faces.md``): a StyleGAN2 teacher trained here on the built-in faces at 32 px (the README's
small config: style 128, 4 mapping layers, channels 128,128,64,32, DiffAugment; ``--teacher-kimg``, or ``--teacher``
to take a trained one), then per seed of ``--seeds``, for the same ``--kimg`` at the same ``--batch-size`` (so the
same steps):

* **distilled**: ``ganslim compress mobilestylegan --teacher`` (its own recipe: pixel and wavelet L1 + L2 at every
  scale, perceptual with VGG16 weights, GAN on the teacher's images);
* **twin**: the same student built the same way (``from_teacher``: the teacher's mapping, w_avg and constant noise,
  mapping frozen, only the synthesis trains) trained as a plain GAN on the teacher's training images with the
  teacher's recipe (``ganslim train stylegan2 --set generator=mobile_stylegan --set mapping_from=TEACHER``, the
  teacher's discriminator table and augmentation).

Both keep the same generator average (StyleGAN2's: 10 kimg half-life with 0.05 ramp-up) and select nothing (the
distillation validates once, at the end; the twin not at all: each exports its last averaged weights), so they differ
in the training signal alone. Scored on the same
``--eval-images`` fixed seeds (from 100000; none seen in training): PSNR/SSIM to the teacher's image of the same z
and the same random noise draws (``ganslim eval --teacher --noise-mode random``), and FID/KID against the faces when
Inception weights exist; a teacher | distilled | twin grid of 8 of those seeds (seed 0's students); each run's
wall-clock and steps.

**speed** (``mobilestylegan_speed.md``, and ``ganslim bench``'s files under ``mobilestylegan_speed/``): config-f at
``--size`` (random weights: speed does not depend on them), the StyleGAN2 teacher and its mobile_stylegan student:
parameters and MACs (both conventions) of each part, latency of z -> image on ``--threads`` threads in eager
PyTorch, ONNX Runtime, OpenVINO fp32 and int8 (the synthesis static int8, calibrated on W+ of mapped z), all
interleaved in one process (``ganslim.measure.bench``). Speed-ups are ratios of median latencies.

The issue's targets are printed with pass/fail. Finished runs under ``--work`` are reused (one trained with other
settings stops the script).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as ganslim bench (see its docstring)

import argparse  # noqa: E402 - after the OpenMP setting
import statistics  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from compression_task import finished_run, run_seconds, write_results  # noqa: E402
from omgd import run_steps  # noqa: E402

from ganslim.apps.generate import Latents, Sampling, synthesize  # noqa: E402
from ganslim.archs import build_generator  # noqa: E402
from ganslim.archs.stylegan2 import MobileStyleGANGenerator, estimate_w_avg  # noqa: E402
from ganslim.checkpoints import load_generator  # noqa: E402
from ganslim.config import load_config  # noqa: E402
from ganslim.data import make_builtin  # noqa: E402
from ganslim.data.builtin import INFO_FILE  # noqa: E402
from ganslim.data.images import save_image  # noqa: E402
from ganslim.engine import fit  # noqa: E402
from ganslim.engine.logging import image_grid  # noqa: E402
from ganslim.measure.bench import DEFAULT_BACKENDS, BenchModel, run_bench, write_bench  # noqa: E402
from ganslim.measure.evaluate import evaluate_generator, find_inception_weights, open_latent_eval_data  # noqa: E402
from ganslim.measure.profile import profile_parts  # noqa: E402
from ganslim.methods.mobilestylegan import MobileStyleGAN, MobileStyleGANConfig  # noqa: E402
from ganslim.methods.stylegan2 import StyleGAN2, StyleGAN2Config  # noqa: E402

FACES_SIZE = 32
TEACHER = {"size": FACES_SIZE, "batch_size": 8, "style_dim": 128, "n_mlp": 4, "channels": [128, 128, 64, 32],
           "augment": "color,translation,cutout"}
AVERAGE = {"ema_kimg": 10.0, "ema_rampup": 0.05}  # the same generator average for both students
NO_SELECTION = {"val_every": 0, "inception_weights": "none"}  # validation at the end only: no choice
EVAL_SEED, GRID_IMAGES = 100_000, 8
FIDELITY = Sampling(noise_mode="random")  # teacher and student get the same noise draws of each seed
MODELS = ("distilled", "twin")
TARGETS = {"true MACs (synthesis)": 9.0, "eager": 6.0, "best backend": 3.0}


def arguments() -> argparse.Namespace:
    parser = faces_parser(__doc__)
    parser.add_argument("--kimg", type=float, default=5.0, help="each student's length (default 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="each student's batch (default 8)")
    parser.add_argument("--seeds", default="0,1,2", help="student seeds (default 0,1,2)")
    parser.add_argument("--eval-images", type=int, default=500, help="fixed seeds scored (default 500)")
    parser.add_argument("--size", type=int, default=1024, help="config-f side for speed (default 1024)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for latency (default 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up rounds (default 3)")
    parser.add_argument("--num-calibration", type=int, default=16, help="int8 calibration latents (default 16)")
    return parse_faces_arguments(parser)


def faces_parser(doc: str) -> argparse.ArgumentParser:
    """The options every faces + speed benchmark shares: parts, folders and the faces teacher."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--parts", default="faces,speed", help="faces, speed or both (default)")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work"), help="training runs and data")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where results are written")
    parser.add_argument("--teacher", type=Path, help="a trained 32 px StyleGAN2 generator.pt (default: train one)")
    parser.add_argument("--teacher-kimg", type=float, default=10.0, help="the teacher's length (default 10)")
    return parser


def parse_faces_arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parsed arguments of :func:`faces_parser`'s parser, ``parts`` and ``seeds`` as lists."""
    args = parser.parse_args()
    args.parts = [part.strip() for part in args.parts.split(",")]
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    unknown = set(args.parts) - {"faces", "speed"}
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}: choose faces, speed or both")
    return args


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


# ---------------------------------------------------------------------------------------------- faces


def prepare_faces(work: Path) -> Path:
    """The built-in faces at 32 px under ``work/data`` (made once)."""
    data = work / "data" / f"faces-{FACES_SIZE}"
    if not (data / INFO_FILE).is_file():
        make_builtin("faces", data, size=FACES_SIZE)
    return data


def train(work: Path, method: type, config_cls: type, name: str, overrides: dict, expected: dict) -> Path:
    """A run of ``method`` named ``name``, trained once (a finished one with the ``expected`` settings is reused);
    its ``generator.pt``."""
    if (path := finished_run(work, method.name, name, "generator.pt", expected)) is not None:
        return path
    options = {**overrides, **expected, "name": name, "out_dir": str(work / "runs"), "device": "cpu"}
    return Path(fit(load_config(config_cls, overrides=options, method=method.name), method).exported["generator"])


def teacher_run(args: argparse.Namespace, data: Path) -> Path:
    if args.teacher is not None:
        return args.teacher
    return train(args.work, StyleGAN2, StyleGAN2Config, "mobilestylegan-teacher", {**TEACHER, "data": str(data)},
                 {"kimg": args.teacher_kimg, "seed": 0})


def student_runs(args: argparse.Namespace, data: Path, teacher: Path) -> dict[str, list[Path]]:
    """The distilled students and their twins, one per seed (same length, batch and average)."""
    runs: dict[str, list[Path]] = {name: [] for name in MODELS}
    for seed in args.seeds:
        length = {"kimg": args.kimg, "batch_size": args.batch_size, "seed": seed}
        runs["distilled"].append(train(args.work, MobileStyleGAN, MobileStyleGANConfig, f"distilled-seed{seed}",
                                       {**AVERAGE, **NO_SELECTION}, {**length, "teacher": str(teacher)}))
        twin = {**TEACHER, **AVERAGE, **NO_SELECTION, "data": str(data), "generator": "mobile_stylegan"}
        runs["twin"].append(train(args.work, StyleGAN2, StyleGAN2Config, f"twin-seed{seed}", twin,
                                  {**length, "size": FACES_SIZE, "mapping_from": str(teacher)}))
    return runs


def scores(model: torch.nn.Module, teacher: torch.nn.Module | None, data: Path, seeds: range) -> dict[str, float]:
    """PSNR/SSIM to ``teacher`` at the seeds' z and noise (when given), FID/KID against the faces when Inception
    weights exist (``distribution_absent`` says why not)."""
    weights, missing = find_inception_weights()
    metrics = (("psnr", "ssim") if teacher is not None else ()) + (("fid", "kid") if weights else ())
    if not metrics:
        return {"distribution_absent": missing}
    real = data if weights else None
    result = evaluate_generator(model, open_latent_eval_data(model.signature, seeds, real, batch_size=8),
                                metrics=metrics, teacher=teacher, inception_weights=weights, sampling=FIDELITY,
                                kid_subset_size=min(1000, len(seeds)), progress=False)
    row = {key: value for key, value in result.metrics.items() if key in ("psnr_teacher", "ssim_teacher", "fid",
                                                                          "kid")}
    return row if weights else {**row, "distribution_absent": missing}


def grid(models: dict[str, torch.nn.Module], seeds: range, path: Path) -> Path:
    """teacher | distilled | twin, one row per seed (the same z and noise draws for all)."""
    latents = Latents.from_seeds(seeds)
    columns = [synthesize(model, latents, list(range(len(seeds))), FIDELITY).float().clamp(-1, 1)
               for model in models.values()]
    return save_image(image_grid(columns), path)


def faces(args: argparse.Namespace) -> list[str]:
    """Part (a); its target line."""
    data = prepare_faces(args.work)
    teacher_path = teacher_run(args, data)
    runs = student_runs(args, data, teacher_path)
    teacher = load_generator(teacher_path).model.eval()
    seeds = range(EVAL_SEED, EVAL_SEED + args.eval_images)
    per_seed: dict[str, list[dict]] = {name: [] for name in MODELS}
    for name, paths in runs.items():
        for seed, path in zip(args.seeds, paths):
            row = scores(load_generator(path).model.eval(), teacher, data, seeds)
            row.update(seed=seed, checkpoint=str(path), steps=run_steps(path), wall_clock_s=run_seconds(path))
            per_seed[name].append(row)
    teacher_row = {**scores(teacher, None, data, seeds), "checkpoint": str(teacher_path)}
    if args.teacher is None:
        teacher_row.update(steps=run_steps(teacher_path), wall_clock_s=run_seconds(teacher_path))
    picture = grid({"teacher": teacher, **{name: load_generator(runs[name][0]).model.eval() for name in MODELS}},
                   range(EVAL_SEED, EVAL_SEED + GRID_IMAGES), args.out / "mobilestylegan_faces" / "grid.png")
    wins = [d["psnr_teacher"] > t["psnr_teacher"] for d, t in zip(per_seed["distilled"], per_seed["twin"])]
    target = (f"distilled beats its twin on PSNR to the teacher on {sum(wins)} of {len(wins)} seeds (target: every "
              f"seed): {verdict(all(wins))}")
    teacher_kimg = load_generator(teacher_path).meta.get("kimg") if args.teacher else args.teacher_kimg
    results = {"settings": {"teacher": TEACHER, "teacher_kimg": teacher_kimg, "kimg": args.kimg,
                            "batch_size": args.batch_size, "seeds": args.seeds, "average": AVERAGE,
                            "eval_seeds": f"{EVAL_SEED}-{EVAL_SEED + args.eval_images - 1}",
                            "fidelity_noise": FIDELITY.noise_mode},
               "teacher": teacher_row, "students": per_seed, "grid": str(picture), "targets": [target]}
    markdown = faces_markdown(results, picture) + f"\n\nTarget: {target}"
    write_results(args.out, "mobilestylegan_faces", results, markdown)
    return [target]


def faces_markdown(results: dict, picture: Path) -> str:
    settings = results["settings"]
    lines = ["| model | seed | PSNR vs teacher | SSIM vs teacher | FID | KID | steps | wall-clock |",
             "|---|---|---|---|---|---|---|---|"]

    def cells(row: dict) -> str:
        fid, kid = row.get("fid"), row.get("kid")
        return (f"{row['psnr_teacher']:.2f} | {row['ssim_teacher']:.4f} | "
                f"{'-' if fid is None else f'{fid:.2f}'} | {'-' if kid is None else f'{kid:.4f}'} | {row['steps']} | "
                f"{row['wall_clock_s'] / 60:.1f} min")

    teacher = results["teacher"]
    fid, kid = teacher.get("fid"), teacher.get("kid")
    wall = f"{teacher['wall_clock_s'] / 60:.1f} min" if "wall_clock_s" in teacher else "-"
    lines.append(f"| teacher | 0 | - | - | {'-' if fid is None else f'{fid:.2f}'} | "
                 f"{'-' if kid is None else f'{kid:.4f}'} | {teacher.get('steps', '-')} | {wall} |")
    for name, rows in results["students"].items():
        lines += [f"| {name} | {row['seed']} | {cells(row)} |" for row in rows]
    for name, rows in results["students"].items():
        psnr = statistics.mean(row["psnr_teacher"] for row in rows)
        ssim = statistics.mean(row["ssim_teacher"] for row in rows)
        lines.append(f"| {name} (mean) | all | {psnr:.2f} | {ssim:.4f} | | | | |")
    absent = teacher.get("distribution_absent")
    notes = [f"Teacher: {settings['teacher']}, {settings['teacher_kimg']} kimg. Students: {settings['kimg']} kimg at "
             f"batch {settings['batch_size']}, seeds {settings['seeds']}, the same generator average "
             f"({settings['average']}), no checkpoint selection. Fidelity: {settings['eval_seeds']} (z and "
             f"{settings['fidelity_noise']} noise per seed, the same for teacher and student)."]
    if absent:
        notes.append(f"FID/KID: not measured ({absent}).")
    return "\n".join(lines) + "\n\n" + " ".join(notes) + f"\n\n![teacher | distilled | twin]({picture.parent.name}/" \
        f"{picture.name})"


# ---------------------------------------------------------------------------------------------- speed


def config_f(size: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """config-f StyleGAN2 at ``size`` with random weights and its mobile_stylegan student, in eval mode."""
    torch.manual_seed(0)
    teacher = build_generator("stylegan2", size=size).eval()
    estimate_w_avg(teacher, n=1000)  # the student copies it; NaN would reach the exports
    return teacher, MobileStyleGANGenerator.from_teacher(teacher).eval()


def speed(args: argparse.Namespace) -> list[str]:
    """Part (b); its target lines."""
    teacher, student = config_f(args.size)
    parts = {name: {part: profile.to_dict() for part, profile in profile_parts(model).items()}
             for name, model in (("stylegan2", teacher), ("mobile_stylegan", student))}
    bench = run_bench([BenchModel("stylegan2", teacher, "stylegan2"),
                       BenchModel("mobile_stylegan", student, "mobile_stylegan")], DEFAULT_BACKENDS, size=None,
                      threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                      num_calibration=args.num_calibration).to_dict()
    files = write_bench(bench, args.out / "mobilestylegan_speed")
    median = {(row["model"], row["backend"]): row["latency_ms"]["median"] for row in bench["results"]
              if row["status"] == "ok"}
    best = {name: min((ms, backend) for (model, backend), ms in median.items() if model == name) for name in parts}
    ratios = {"true MACs (synthesis)": parts["stylegan2"]["synthesis"]["macs"]
              / parts["mobile_stylegan"]["synthesis"]["macs"],
              "eager": median["stylegan2", "torch"] / median["mobile_stylegan", "torch"],
              "best backend": best["stylegan2"][0] / best["mobile_stylegan"][0]}
    targets = [f"{what}: {ratios[what]:.2f}x (target >= {TARGETS[what]:g}x): {verdict(ratios[what] >= TARGETS[what])}"
               for what in TARGETS]
    targets[2] += f" (teacher's best {best['stylegan2'][1]}, student's best {best['mobile_stylegan'][1]})"
    results = {"settings": {"size": args.size, "threads": args.threads, "repeats": args.repeats,
                            "warmup": args.warmup, "num_calibration": args.num_calibration, "weights": "random"},
               "parts": parts, "ratios": ratios, "best_backend": best, "bench": str(files.json), "targets": targets}
    write_results(args.out, "mobilestylegan_speed", results, speed_markdown(results, files.markdown) +
                  "\n\nTargets:\n\n" + "\n".join(f"- {line}" for line in targets))
    return targets


def speed_markdown(results: dict, bench_md: Path) -> str:
    lines = ["| model | part | params (M) | MACs true (G) | MACs published (G) |", "|---|---|---|---|---|"]
    for name, parts in results["parts"].items():
        for part, row in parts.items():
            lines.append(f"| {name} | {part} | {row['params'] / 1e6:.2f} | {row['macs'] / 1e9:.3f} | "
                         f"{row['macs_published'] / 1e9:.3f} |")
    settings = results["settings"]
    table = bench_md.read_text().split("\n", 2)[2]  # the bench's page without its title
    return ("\n".join(lines) + f"\n\nconfig-f at {settings['size']} px, random weights; latency of z -> image "
            f"({settings['threads']} threads, {settings['repeats']} rounds after {settings['warmup']} warm-up, "
            f"every model x backend interleaved in one process):\n\n" + table)


def run_parts(args: argparse.Namespace, faces: Callable, speed: Callable) -> None:
    """Run the parts asked for and print every target line."""
    targets = []
    if "faces" in args.parts:
        targets += faces(args)
    if "speed" in args.parts:
        targets += speed(args)
    print("\n".join(["", "Targets:", *targets]))


def main() -> None:
    run_parts(arguments(), faces, speed)


if __name__ == "__main__":
    main()
