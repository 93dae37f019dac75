"""Anycost GAN benchmark: Anycost-trained sub-generators vs the same ones cut from the teacher, and preview speed.

    python benchmarks/anycost.py [--parts faces,speed] [--work benchmarks/work] [--out benchmarks/results]
        [--teacher CKPT] [--teacher-kimg 10] [--kimg 10] [--channels-kimg 20] [--batch-size 8] [--seeds 0]
        [--eval-latents 256] [--size 1024] [--speed-configs 1024:1,...] [--backends torch,onnxruntime]
        [--threads 2] [--repeats 10] [--warmup 2]

**faces** (``anycost_faces.md``): the 32 px StyleGAN2 teacher of the MobileStyleGAN benchmark (trained here on the
built-in faces, or ``--teacher``), then per seed of ``--seeds`` one ``ganslim compress anycost`` run (multi-resolution
stage ``--kimg``, adaptive-channel stage ``--channels-kimg``, the authors' recipe otherwise). Every sub-generator of
the top 4 sides x the uniform widths 0.25, 0.5, 0.75, 1 is scored by fidelity: PSNR/SSIM of its images to its own
full generator's images downsampled to its side (bilinear, align_corners, as Anycost's consistency target), on the
same ``--eval-latents`` fixed z (seed 100000; the stored noise), for

* **anycost**: the generator ``compress anycost`` exported;
* **teacher sliced**: the same sub-generators cut from the teacher without training (the baseline Anycost exists to
  beat);
* **teacher sorted + sliced**: the teacher after Anycost's channel sorting alone (its full images unchanged), so the
  gain of sorting and the gain of training show apart.

Besides the uniform widths, the **searched** flexible configs: at each side above 4 px, ``ganslim search anycost``'s
search on the first seed's anycost generator (scored on its own seeds 0..15, not on the eval z) under a true-MACs
budget equal to the uniform 0.5x and 0.75x configs' at that side; each is scored like the uniform ones, and the same
widths are cut from the teacher for its baselines. Every sub-generator (uniform and searched) is also timed on the CPU
(z -> image, extracted as its own compact model from the first anycost generator, ``--threads`` threads, eager and
each of ``--backends``, every model x backend interleaved in one process).

Also the full anycost generator's fidelity to the original teacher, the MACs and parameters of each sub-generator
(z -> image, both conventions) and a grid of one latent through every sub-generator (rows: sides; columns: widths;
each upscaled to the full side) for anycost and for the sliced teacher.

**speed** (``anycost_speed.md`` and ``ganslim bench``'s files under ``anycost_speed/``): config-f at ``--size``
(random weights: speed does not depend on them), each of ``--speed-configs`` (side:ratio) extracted as its own
compact generator, latency of z -> image on ``--threads`` threads with ``--backends``, every model x backend
interleaved in one process (``ganslim.measure.bench``); speed-ups are ratios of median latencies to the full
generator's.

The issue's targets are printed with pass/fail. A finished Anycost run under ``--work`` is reused.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as ganslim bench (see its docstring)

import argparse  # noqa: E402 - after the OpenMP setting
import copy  # noqa: E402
import statistics  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from compression_task import write_results  # noqa: E402
from mobilestylegan import (faces_parser, parse_faces_arguments, prepare_faces, run_parts, teacher_run,  # noqa: E402
                            verdict)

from ganslim.archs import build_generator  # noqa: E402
from ganslim.archs.stylegan2 import StyleGAN2Generator, estimate_w_avg  # noqa: E402
from ganslim.checkpoints import load_generator  # noqa: E402
from ganslim.compress.anycost_search import Fidelity, search_anycost  # noqa: E402
from ganslim.compress.search import Budget  # noqa: E402
from ganslim.compress.stylegan2 import extract_stylegan2_subnet, sort_stylegan2_channels  # noqa: E402
from ganslim.config import load_config  # noqa: E402
from ganslim.data.images import save_image  # noqa: E402
from ganslim.engine.logging import image_grid  # noqa: E402
from ganslim.engine.staged import STATE_FILE  # noqa: E402
from ganslim.measure.bench import BenchModel, run_bench, write_bench  # noqa: E402
from ganslim.measure.profile import count_macs, count_params  # noqa: E402
from ganslim.methods.anycost.config import AnycostConfig  # noqa: E402
from ganslim.methods.anycost.pipeline import run_anycost  # noqa: E402
from ganslim.methods.anycost.sampling import top_sides  # noqa: E402
from ganslim.methods.anycost.training import FidelityProbe, fidelity  # noqa: E402

RATIOS = (0.25, 0.5, 0.75, 1.0)
SEARCH_RATIOS = (0.5, 0.75)  # a searched config's budget: the true MACs of this uniform width at its side
SEARCH_LATENTS = 16
SIDES = 4  # the top sides Anycost trains (its default ``resolutions``)
EVAL_SEED, EVAL_BATCH = 100_000, 32
GENERATORS = ("anycost", "teacher sliced", "teacher sorted + sliced")
TARGET_GAIN_DB, TARGET_FULL_DB = 3.0, 25.0
TARGET_MACS, TARGET_SPEED = 10.0, 6.0
DEFAULT_SPEED_CONFIGS = "1024:1,1024:0.5,1024:0.25,512:1,512:0.5,256:1,256:0.25"


def arguments() -> argparse.Namespace:
    parser = faces_parser(__doc__)
    parser.add_argument("--kimg", type=float, default=10.0, help="multi-resolution stage length (default 10)")
    parser.add_argument("--channels-kimg", type=float, default=20.0, help="adaptive-channel stage (default 20)")
    parser.add_argument("--batch-size", type=int, default=8, help="Anycost's batch (default 8)")
    parser.add_argument("--seeds", default="0", help="Anycost run seeds (default 0)")
    parser.add_argument("--eval-latents", type=int, default=256, help="fixed z scored (default 256)")
    parser.add_argument("--size", type=int, default=1024, help="config-f side for speed (default 1024)")
    parser.add_argument("--speed-configs", default=DEFAULT_SPEED_CONFIGS, help="side:ratio sub-generators timed")
    parser.add_argument("--backends", default="torch,onnxruntime", help="bench backends (default torch,onnxruntime)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for latency (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up rounds (default 2)")
    args = parse_faces_arguments(parser)
    args.speed_configs = [(int(side), float(ratio)) for side, ratio in
                          (item.split(":") for item in args.speed_configs.split(","))]
    return args


def probe_label(side: int, ratio: float) -> str:
    return FidelityProbe(ratio, side).label


@dataclass(frozen=True)
class SearchedProbe:
    """A searched flexible config at ``side`` (``ratio`` holds its per-layer widths, as ``subnet`` takes them),
    scored like a :class:`FidelityProbe` by :func:`fidelity`."""

    label: str
    side: int
    ratio: tuple[int, ...]


# ---------------------------------------------------------------------------------------------- faces


def anycost_run(args: argparse.Namespace, data: Path, teacher: Path, seed: int) -> Path:
    """The ``generator.pt`` of the Anycost run of ``seed`` (a finished one is reused, an unfinished one resumed)."""
    name = f"anycost-seed{seed}"
    runs = sorted(path.parent for path in (args.work / "runs").glob(f"*-anycost-{name}/{STATE_FILE}"))
    finished = [run for run in runs if (run / "generator.pt").is_file()]
    if finished:
        return finished[-1] / "generator.pt"
    options = {"teacher": str(teacher), "data": str(data), "name": name, "out_dir": str(args.work / "runs"),
               "device": "cpu", "seed": seed, "batch_size": args.batch_size, "kimg": args.kimg,
               "channels_kimg": args.channels_kimg}
    config = load_config(AnycostConfig, overrides=options, method="anycost")
    return run_anycost(config, resume=runs[-1] if runs else None).run_dir / "generator.pt"


def eval_latents(z_dim: int, count: int) -> list[torch.Tensor]:
    """``count`` fixed z (seed EVAL_SEED) in batches of EVAL_BATCH."""
    rng = torch.Generator().manual_seed(EVAL_SEED)
    return list(torch.randn(count, z_dim, generator=rng).split(EVAL_BATCH))


def compact_of(generator: StyleGAN2Generator, probe: FidelityProbe | SearchedProbe) -> StyleGAN2Generator:
    """The probe's sub-generator extracted as its own compact model."""
    ratio = list(probe.ratio) if isinstance(probe, SearchedProbe) else probe.ratio
    return extract_stylegan2_subnet(generator, probe.side, ratio).eval()


def sub_generator_costs(generator: StyleGAN2Generator, probes: list) -> dict[str, dict]:
    """Parameters and MACs (z -> image, both conventions) of each probe's sub-generator, extracted as its own
    model."""
    costs = {}
    for probe in probes:
        compact = compact_of(generator, probe)
        macs = count_macs(compact, (torch.zeros(1, compact.z_dim),))
        costs[probe.label] = {"side": probe.side, "params": count_params(compact), "macs": macs.macs,
                              "macs_published": macs.macs_published}
        if isinstance(probe, SearchedProbe):
            costs[probe.label]["channels"] = list(probe.ratio)
    return costs


def searched_probes(generator: StyleGAN2Generator, sides: tuple[int, ...], costs: dict[str, dict]
                    ) -> list[SearchedProbe]:
    """The best flexible config of ``generator`` at each side above 4 px within each SEARCH_RATIOS uniform
    config's true MACs (``costs``), found by ``ganslim search anycost``'s search on seeds 0..SEARCH_LATENTS-1."""
    probes = []
    for side in sides:
        if side <= 4:
            continue
        fidelity_of = Fidelity(generator, side, SEARCH_LATENTS)
        for ratio in SEARCH_RATIOS:
            budget = Budget(macs=costs[probe_label(side, ratio)]["macs"], convention="true", size=side)
            best = search_anycost(generator, budget, fidelity=fidelity_of, progress=False).best
            probes.append(SearchedProbe(f"searched<={ratio:g}x_{side}px", side, tuple(best["channels"])))
    return probes


def latencies(generator: StyleGAN2Generator, probes: list, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """``{probe label: {backend: median ms}}`` of each probe's compact sub-generator, z -> image, every model x
    backend interleaved (``ganslim bench``); the bench's own files go under ``args.out/anycost_faces/bench``."""
    models = [BenchModel(probe.label, compact_of(generator, probe), "stylegan2") for probe in probes]
    backends = [name.strip() for name in args.backends.split(",")]
    bench = run_bench(models, backends, size=None, threads=args.threads, repeats=args.repeats,
                      warmup=args.warmup, progress=False).to_dict()
    write_bench(bench, args.out / "anycost_faces" / "bench")
    timed: dict[str, dict[str, float]] = {probe.label: {} for probe in probes}
    for row in bench["results"]:
        if row["status"] == "ok":
            timed[row["model"]][row["backend"]] = row["latency_ms"]["median"]
    return timed


def self_fidelity(generator: StyleGAN2Generator, latents: list[torch.Tensor], probes: list[FidelityProbe]
                  ) -> dict[str, dict[str, float]]:
    """Each sub-generator's fidelity to the same generator's full images (downsampled to its side)."""
    return fidelity(generator, generator, latents, probes)


def grid(generator: StyleGAN2Generator, sides: tuple[int, ...], path: Path) -> Path:
    """One latent (the first eval z) through every sub-generator: rows are sides, columns widths, upscaled."""
    z = eval_latents(generator.z_dim, 1)[0]
    full_side = sides[0]
    columns = []
    with torch.no_grad():
        for ratio in RATIOS:
            rows = []
            for side in sides:
                with generator.subnet(side, ratio):
                    image = generator(z).float().clamp(-1, 1)
                rows.append(F.interpolate(image, size=(full_side, full_side), mode="nearest"))
            columns.append(torch.cat(rows))
    picture = image_grid(columns)
    return save_image(F.interpolate(picture[None], scale_factor=4, mode="nearest")[0], path)


def faces(args: argparse.Namespace) -> list[str]:
    """Part (a); its target lines."""
    data = prepare_faces(args.work)
    teacher_path = teacher_run(args, data)
    teacher = load_generator(teacher_path).model.eval()
    sides = top_sides(teacher.img_resolution, SIDES)
    uniform = [FidelityProbe(ratio, side) for side in sides for ratio in RATIOS]
    latents = eval_latents(teacher.z_dim, args.eval_latents)
    models = [(seed, anycost_run(args, data, teacher_path, seed)) for seed in args.seeds]
    models = [(seed, path, load_generator(path).model.eval()) for seed, path in models]
    first = models[0][2]
    costs = sub_generator_costs(teacher, uniform)
    searched = searched_probes(first, sides, costs)
    costs.update(sub_generator_costs(teacher, searched))
    probes = uniform + searched
    sorted_teacher = sort_stylegan2_channels(copy.deepcopy(teacher))
    baselines = {"teacher sliced": self_fidelity(teacher, latents, probes),
                 "teacher sorted + sliced": self_fidelity(sorted_teacher, latents, probes)}
    per_seed = []
    for seed, path, model in models:
        to_teacher = fidelity(model, teacher, latents, [FidelityProbe(1.0, sides[0])])
        per_seed.append({"seed": seed, "checkpoint": str(path), "fidelity": self_fidelity(model, latents, probes),
                         "full_to_teacher": to_teacher[probe_label(sides[0], 1.0)]})
    pictures = {"anycost": grid(first, sides, args.out / "anycost_faces" / "grid_anycost.png"),
                "teacher sliced": grid(teacher, sides, args.out / "anycost_faces" / "grid_teacher_sliced.png")}
    results = {"settings": {"teacher": str(teacher_path), "kimg": args.kimg, "channels_kimg": args.channels_kimg,
                            "batch_size": args.batch_size, "seeds": args.seeds, "eval_latents": args.eval_latents,
                            "eval_seed": EVAL_SEED, "noise": "const (stored)", "threads": args.threads,
                            "repeats": args.repeats, "warmup": args.warmup},
               "costs": costs, "baselines": baselines, "anycost": per_seed,
               "latency_ms": latencies(first, probes, args),
               "grids": {name: str(path) for name, path in pictures.items()}}
    results["targets"] = faces_targets(results, sides)
    markdown = faces_markdown(results, sides, pictures) + "\n\nTargets:\n\n" + "\n".join(
        f"- {line}" for line in results["targets"])
    write_results(args.out, "anycost_faces", results, markdown)
    return results["targets"]


def faces_targets(results: dict, sides: tuple[int, ...]) -> list[str]:
    """The gain over naive slicing at every sub-generator but the full one (uniform and searched), and the full
    one's fidelity."""
    naive = results["baselines"]["teacher sliced"]
    partial = [label for label in results["costs"] if label != probe_label(sides[0], 1.0)]
    lines = []
    for run in results["anycost"]:
        gains = {label: run["fidelity"][label]["psnr"] - naive[label]["psnr"] for label in partial}
        worst = min(gains, key=gains.get)
        lines.append(f"seed {run['seed']}: the smallest gain over the sliced teacher is {gains[worst]:+.2f} dB "
                     f"({worst}; target >= {TARGET_GAIN_DB:g} dB at every width < 1 and side < full): "
                     f"{verdict(gains[worst] >= TARGET_GAIN_DB)}")
        full = run["full_to_teacher"]["psnr"]
        lines.append(f"seed {run['seed']}: full generator vs the original teacher {full:.2f} dB (target >= "
                     f"{TARGET_FULL_DB:g} dB): {verdict(full >= TARGET_FULL_DB)}")
    return lines


def latency_cells(timed: dict[str, float], full: dict[str, float]) -> list[str]:
    """Eager ms (speed-up over the full generator on the same backend) and the fastest other backend's, named."""
    def cell(backend: str) -> str:
        ms, base = timed[backend], full.get(backend)
        return f"{ms:.2f}" + ("" if base is None else f" ({base / ms:.1f}x)")

    others = [backend for backend in timed if backend != "torch"]
    best = min(others, key=timed.get) if others else None
    return [cell("torch") if "torch" in timed else "-", f"{cell(best)} {best}" if best else "-"]


def faces_markdown(results: dict, sides: tuple[int, ...], pictures: dict[str, Path]) -> str:
    columns = ["teacher sliced", "teacher sorted + sliced"] + [f"anycost seed {run['seed']}"
                                                              for run in results["anycost"]]
    lines = ["| sub-generator | params (M) | MACs true (M) | MACs published (M) | eager ms | best backend ms | "
             + " | ".join(f"{name} PSNR / SSIM" for name in columns) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(columns)]
    scored = [results["baselines"]["teacher sliced"], results["baselines"]["teacher sorted + sliced"],
              *(run["fidelity"] for run in results["anycost"])]
    reference = probe_label(sides[0], 1.0)
    for label, cost in results["costs"].items():
        cells = []
        for table in scored:
            row = table[label]
            ssim = f"{row['ssim']:.3f}" if "ssim" in row else "-"
            cells.append("full (reference)" if label == reference else f"{row['psnr']:.2f} / {ssim}")
        timing = latency_cells(results["latency_ms"][label], results["latency_ms"][reference])
        lines.append(f"| {label} | {cost['params'] / 1e6:.3f} | {cost['macs'] / 1e6:.1f} | "
                     f"{cost['macs_published'] / 1e6:.1f} | " + " | ".join(timing + cells) + " |")
    if len(results["anycost"]) > 1:
        means = {label: statistics.mean(run["fidelity"][label]["psnr"] for run in results["anycost"])
                 for label in results["costs"]}
        lines.append("| anycost mean PSNR | | | | | | " + " | ".join(
            f"{label}: {value:.2f}" for label, value in means.items()) + " |")
    settings = results["settings"]
    full = ", ".join(f"seed {run['seed']}: {run['full_to_teacher']['psnr']:.2f} dB" for run in results["anycost"])
    searched = "; ".join(f"{label}: {','.join(map(str, cost['channels']))}"
                         for label, cost in results["costs"].items() if "channels" in cost)
    notes = (f"Fidelity of each sub-generator to its own full generator (downsampled), {settings['eval_latents']} "
             f"fixed z from seed {settings['eval_seed']}, stored noise. Anycost: multi-resolution {settings['kimg']} "
             f"kimg + adaptive channels {settings['channels_kimg']} kimg at batch {settings['batch_size']}. Full "
             f"anycost generator vs the original teacher: {full}. SSIM only at sides >= 11 px. Searched configs "
             f"(per-layer widths, found on the first seed's generator within the true MACs of the uniform width "
             f"named): {searched}. Latency: median ms of z -> image (batch 1) of each compact sub-generator of the "
             f"first seed's generator, {settings['threads']} threads, {settings['repeats']} rounds after "
             f"{settings['warmup']} warm-up, every model x backend interleaved; speed-ups over the full generator on "
             f"the same backend.")
    images = " ".join(f"![{name}: rows {', '.join(map(str, sides))} px, columns widths {', '.join(map(str, RATIOS))}]"
                      f"({path.parent.name}/{path.name})" for name, path in pictures.items())
    return "\n".join(lines) + "\n\n" + notes + "\n\n" + images


# ---------------------------------------------------------------------------------------------- speed


def speed(args: argparse.Namespace) -> list[str]:
    """Part (b); its target lines."""
    torch.manual_seed(0)
    full = build_generator("stylegan2", size=args.size).eval()
    estimate_w_avg(full, n=1000)  # keeps the stored mean finite in the exports
    models, costs = [], {}
    for side, ratio in args.speed_configs:
        label = probe_label(side, ratio)
        compact = extract_stylegan2_subnet(full, side, ratio).eval()
        macs = count_macs(compact, (torch.zeros(1, compact.z_dim),))
        costs[label] = {"side": side, "ratio": ratio, "params": count_params(compact), "macs": macs.macs,
                        "macs_published": macs.macs_published}
        models.append(BenchModel(label, compact, "stylegan2"))
    backends = [name.strip() for name in args.backends.split(",")]
    bench = run_bench(models, backends, size=None, threads=args.threads, repeats=args.repeats,
                      warmup=args.warmup).to_dict()
    files = write_bench(bench, args.out / "anycost_speed")
    median = {(row["model"], row["backend"]): row["latency_ms"]["median"] for row in bench["results"]
              if row["status"] == "ok"}
    reference, cheapest = probe_label(args.size, 1.0), probe_label(args.size // 4, 0.25)
    targets = []
    if reference in costs and cheapest in costs:
        mac_ratio = costs[reference]["macs"] / costs[cheapest]["macs"]
        targets.append(f"cheapest preview {cheapest}: {mac_ratio:.1f}x fewer true MACs than {reference} (target >= "
                       f"{TARGET_MACS:g}x): {verdict(mac_ratio >= TARGET_MACS)}")
        for backend in backends:
            if (reference, backend) in median and (cheapest, backend) in median:
                speedup = median[reference, backend] / median[cheapest, backend]
                targets.append(f"cheapest preview {cheapest} on {backend}: {speedup:.1f}x faster (target >= "
                               f"{TARGET_SPEED:g}x): {verdict(speedup >= TARGET_SPEED)}")
    results = {"settings": {"size": args.size, "threads": args.threads, "repeats": args.repeats,
                            "warmup": args.warmup, "backends": backends, "weights": "random"},
               "costs": costs, "bench": str(files.json), "targets": targets}
    write_results(args.out, "anycost_speed", results, speed_markdown(results, median, reference) +
                  "\n\nTargets:\n\n" + "\n".join(f"- {line}" for line in targets))
    return targets


def speed_markdown(results: dict, median: dict, reference: str) -> str:
    backends = results["settings"]["backends"]
    lines = ["| sub-generator | params (M) | MACs true (G) | MACs published (G) | "
             + " | ".join(f"{backend} ms (speed-up)" for backend in backends) + " |",
             "|---|---|---|---|" + "---|" * len(backends)]
    for label, cost in results["costs"].items():
        cells = []
        for backend in backends:
            ms, base = median.get((label, backend)), median.get((reference, backend))
            cells.append("-" if ms is None else f"{ms:.1f}" + ("" if base is None else f" ({base / ms:.1f}x)"))
        lines.append(f"| {label} | {cost['params'] / 1e6:.2f} | {cost['macs'] / 1e9:.2f} | "
                     f"{cost['macs_published'] / 1e9:.2f} | " + " | ".join(cells) + " |")
    settings = results["settings"]
    return ("\n".join(lines) + f"\n\nconfig-f at {settings['size']} px, random weights; each sub-generator extracted as "
            f"its own compact model; latency of z -> image ({settings['threads']} threads, {settings['repeats']} "
            f"rounds after {settings['warmup']} warm-up, every model x backend interleaved in one process).")


def main() -> None:
    run_parts(arguments(), faces, speed)


if __name__ == "__main__":
    main()
