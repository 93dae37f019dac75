"""Anycost editor benchmark: inversion quality, preview/final agreement of edits, preview speed, a screenshot.

    python benchmarks/editor.py --generator G.pt [--parts inversion,agreement,latency,screenshot]
        [--work benchmarks/work/editor] [--out benchmarks/results] [--encoder-kimg 20] [--held-out 16]
        [--project-steps 100] [--edits 32] [--size 1024] [--threads 2] [--repeats 3] [--screenshot PNG]

``--generator`` is an Anycost-trained StyleGAN2 (``ganslim compress anycost``'s ``generator.pt``; the faces one of
``benchmarks/anycost.py``). Results go to ``editor.md`` / ``editor.json``.

**inversion**: ``ganslim train encoder --generator G --data faces --set sub_generators=true`` (``--encoder-kimg``;
a finished run under ``--work`` is reused), then ``ganslim project`` (``--project-steps`` steps) from the mean W and
from the encoder on ``--held-out`` generated faces no run ever drew (seeds 100000 ..., saved as PNG as ``ganslim
generate`` writes them) and on as many built-in faces (the images the teacher was trained on: ganslim ships no other
faces): mean PSNR at the start and after the steps, for both starts.

**agreement**: ``--edits`` edits as the editor makes them: a held-out seed's W+, two of 5 SeFa sliders moved to a
strength drawn in +-1 .. 3 (the editor's -3 .. 3 standard deviations); for every sub-generator the page offers, the
PSNR of its preview to the full generator's final image downsampled to its side (bilinear, align_corners, Anycost's
consistency target); the editor's default preview on this machine marked.

**latency**: the editor's own start-up timing (``Editor``: synthesis of every offered sub-generator, interleaved,
fastest of ``--repeats``) at the ``--size`` config-f architecture (random weights: speed does not depend on them) on
``--threads`` threads; the default preview (richest within a fifth of the full generator's time) and its ratio.

**screenshot**: the editor on ``--generator`` with the encoder, in headless Chromium (Debian's ``chromium`` and
``chromium-driver``): a built-in face uploaded, two sliders moved, a preview, finalize; saved to ``--screenshot``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as ganslim bench (see its docstring)

import argparse  # noqa: E402 - after the OpenMP setting
import random  # noqa: E402
import shutil  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from compression_task import finished_run, write_results  # noqa: E402
from mobilestylegan import prepare_faces, verdict  # noqa: E402

from ganslim.apps.generate import seed_w_plus  # noqa: E402
from ganslim.archs import build_generator  # noqa: E402
from ganslim.archs.stylegan2 import estimate_w_avg  # noqa: E402
from ganslim.checkpoints import load_generator  # noqa: E402
from ganslim.config import load_config  # noqa: E402
from ganslim.data.images import save_image  # noqa: E402
from ganslim.editing.directions import apply_edit, sefa_directions, sefa_names  # noqa: E402
from ganslim.editing.encoder import load_encoder  # noqa: E402
from ganslim.editing.encoder_training import EncoderConfig, EncoderTraining  # noqa: E402
from ganslim.editing.projection import inversion, project_folder  # noqa: E402
from ganslim.editing.web import Editor, serving_in_thread  # noqa: E402
from ganslim.engine import fit  # noqa: E402
from ganslim.methods.anycost.losses import downsample  # noqa: E402
from ganslim.metrics import psnr  # noqa: E402

HELD_OUT_SEED = 100_000
DIRECTIONS = 5
MOVED_SLIDERS = 2
TARGET_INVERSION_DB, TARGET_AGREEMENT_DB, TARGET_FRACTION = 25.0, 25.0, 1 / 5


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, required=True, help="an Anycost-trained StyleGAN2 generator.pt")
    parser.add_argument("--parts", default="inversion,agreement,latency,screenshot", help="which parts (default all)")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work/editor"), help="runs and data")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where results are written")
    parser.add_argument("--encoder-kimg", type=float, default=20.0, help="encoder training length (default 20)")
    parser.add_argument("--held-out", type=int, default=16, help="generated and real faces inverted (default 16)")
    parser.add_argument("--project-steps", type=int, default=100, help="projection steps (default 100)")
    parser.add_argument("--edits", type=int, default=32, help="edits scored for agreement (default 32)")
    parser.add_argument("--size", type=int, default=1024, help="config-f side for latency (default 1024)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for latency (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per sub-generator (default 3)")
    parser.add_argument("--screenshot", type=Path, default=Path("docs/images/editor_faces32.png"))
    args = parser.parse_args()
    args.parts = [part.strip() for part in args.parts.split(",")]
    return args


def encoder_run(args: argparse.Namespace, data: Path) -> Path:
    """The encoder trained on ``--generator``'s samples (a finished run is reused); its ``encoder.pt``."""
    expected = {"kimg": args.encoder_kimg, "sub_generators": True, "seed": 0}
    if (path := finished_run(args.work, EncoderTraining.name, "faces", "encoder.pt", expected)) is not None:
        return path
    options = {**expected, "generator": str(args.generator), "data": str(data), "name": "faces",
               "out_dir": str(args.work / "runs"), "device": "cpu"}
    config = load_config(EncoderConfig, overrides=options, method=EncoderTraining.name)
    return Path(fit(config, EncoderTraining).exported["encoder"])


def image_folders(args: argparse.Namespace, generator, data: Path) -> dict[str, Path]:
    """``--held-out`` generated faces (seeds HELD_OUT_SEED ...) and as many built-in faces, each in a folder."""
    generated, real = args.work / "held_out" / "generated", args.work / "held_out" / "faces"
    if not generated.is_dir():
        with torch.no_grad():
            for offset in range(args.held_out):
                seed = HELD_OUT_SEED + offset
                save_image(generator.synthesize(seed_w_plus(generator, [seed]))[0].clamp(-1, 1),
                           generated / f"seed{seed:06d}.png")
    if not real.is_dir():
        real.mkdir(parents=True)
        for path in sorted((data / "images").glob("*.png"))[:args.held_out]:
            shutil.copy(path, real / path.name)
    return {"generated": generated, "faces": real}


def inversion_part(args: argparse.Namespace, generator, data: Path, encoder_path: Path) -> dict:
    """Mean PSNR at the start and after ``--project-steps`` per folder and start."""
    encoder = load_encoder(encoder_path, generator)
    table = {}
    for name, folder in image_folders(args, generator, data).items():
        for start, start_encoder in (("mean W", None), ("encoder", encoder)):
            out = args.work / "projections" / f"{name}-{start.replace(' ', '_')}-{args.project_steps}"
            shutil.rmtree(out, ignore_errors=True)  # a rerun's own output, never a user's file
            done = project_folder(generator, folder, out, args.project_steps, start_encoder, progress=False)
            begin, end = done.mean_psnr
            table[f"{name}, from the {start}"] = {"start": begin, "end": end, "images": len(done.content["images"])}
    generated = table["generated, from the encoder"]["end"]
    line = (f"held-out generated faces, encoder + {args.project_steps} projection steps: {generated:.2f} dB (target "
            f">= {TARGET_INVERSION_DB:g} dB): {verdict(generated >= TARGET_INVERSION_DB)}")
    return {"encoder": str(encoder_path), "steps": args.project_steps, "table": table, "targets": [line]}


def agreement_part(args: argparse.Namespace, generator) -> dict:
    """Each offered preview's PSNR to the downsampled final image, over ``--edits`` random edits."""
    editor = Editor(generator, sefa_names(DIRECTIONS), sefa_directions(generator, DIRECTIONS), timing_repeats=3)
    rng = random.Random(0)
    scores: dict[str, list[float]] = {f"{c.resolution}px x {c.ratio:g}": [] for c in editor.configs[:-1]}
    with torch.inference_mode():
        for number in range(args.edits):
            base = seed_w_plus(generator, [HELD_OUT_SEED + number])
            strengths = torch.zeros(DIRECTIONS)
            for index in rng.sample(range(DIRECTIONS), MOVED_SLIDERS):
                strengths[index] = rng.choice((-1, 1)) * rng.uniform(1.0, 3.0)
            w_plus = apply_edit(base, editor.directions, strengths * editor.spreads)
            final = editor.synthesize(w_plus, editor.full).clamp(-1, 1)
            for config in editor.configs[:-1]:
                preview = editor.synthesize(w_plus, config).clamp(-1, 1)
                value = psnr(preview, downsample(final, config.resolution).clamp(-1, 1))
                scores[f"{config.resolution}px x {config.ratio:g}"].append(float(value.clamp(max=100)))
    default = editor.default_preview
    label = f"{default.resolution}px x {default.ratio:g}"
    table = {name: {"mean": statistics.mean(values), "min": min(values),
                    "ms": editor.latencies_ms[config]} for (name, values), config in zip(scores.items(),
                                                                                         editor.configs[:-1])}
    agreeing = [name for name, row in table.items() if row["mean"] >= TARGET_AGREEMENT_DB]
    lines = [f"default preview on this machine ({label}, {editor.latencies_ms[default]:.2f} ms vs the full "
             f"{editor.latencies_ms[editor.full]:.2f} ms): preview vs downsampled final {table[label]['mean']:.2f} dB "
             f"(target >= {TARGET_AGREEMENT_DB:g} dB): {verdict(table[label]['mean'] >= TARGET_AGREEMENT_DB)}",
             f"{len(agreeing)} of {len(table)} previews agree at >= {TARGET_AGREEMENT_DB:g} dB on average: "
             f"{', '.join(agreeing) or 'none'}"]
    return {"edits": args.edits, "full_ms": editor.latencies_ms[editor.full], "default": label, "table": table,
            "targets": lines}


def latency_part(args: argparse.Namespace) -> dict:
    """The editor's start-up timing at the ``--size`` config-f architecture."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = build_generator("stylegan2", size=args.size).eval()
    estimate_w_avg(generator, n=1000)
    editor = Editor(generator, sefa_names(DIRECTIONS), sefa_directions(generator, DIRECTIONS),
                    timing_repeats=args.repeats)
    full = editor.latencies_ms[editor.full]
    default = editor.default_preview
    table = {f"{c.resolution}px x {c.ratio:g}": ms for c, ms in editor.latencies_ms.items()}
    ratio = editor.latencies_ms[default] / full
    line = (f"{args.size} px config-f, {args.threads} threads: default preview {default.resolution}px x "
            f"{default.ratio:g} {editor.latencies_ms[default]:.0f} ms vs finalize {full:.0f} ms = 1/{1 / ratio:.1f} "
            f"(target <= 1/{1 / TARGET_FRACTION:g}): {verdict(ratio <= TARGET_FRACTION)}")
    return {"size": args.size, "threads": args.threads, "repeats": args.repeats, "ms": table,
            "default": f"{default.resolution}px x {default.ratio:g}", "targets": [line]}


def screenshot_part(args: argparse.Namespace, generator, encoder_path: Path, data: Path) -> dict:
    """The editor page after an upload, two slider moves, a preview and finalize, as headless Chromium shows it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from ganslim.editing.web import create_app

    invert = inversion(generator, load_encoder(encoder_path, generator), args.project_steps)
    editor = Editor(generator, sefa_names(DIRECTIONS), sefa_directions(generator, DIRECTIONS), invert)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    wait = WebDriverWait(driver, 300)

    def rendered(image_id: str, after: int) -> int:
        def done(d):
            number = d.find_element(By.ID, image_id).get_attribute("data-number")
            idle = d.find_element(By.TAG_NAME, "body").get_attribute("data-busy") == "0"
            return int(number) if number and int(number) > after and idle else None
        return wait.until(done)

    face = sorted((data / "images").glob("*.png"))[3]
    try:
        with serving_in_thread(create_app(editor)) as url:
            driver.get(url)
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
            driver.find_element(By.ID, "upload-file").send_keys(str(face.absolute()))
            driver.find_element(By.ID, "upload").click()
            number = rendered("reconstruction", 0)
            for name, offset in (("sefa_0", -30), ("sefa_3", 30)):
                slider = driver.find_element(By.ID, f"slider-{name}")
                ActionChains(driver).click_and_hold(slider).move_by_offset(offset, 0).release().perform()
                number = rendered("preview", number)
            driver.find_element(By.ID, "finalize").click()
            rendered("final", number)
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.screenshot))
    finally:
        driver.quit()
    return {"screenshot": str(args.screenshot), "uploaded": str(face), "default_preview":
            f"{editor.default_preview.resolution}px x {editor.default_preview.ratio:g}"}


def target_lines(results: dict) -> list[str]:
    return [line for part in results.values() if isinstance(part, dict) for line in part.get("targets", [])]


def markdown(results: dict) -> str:
    parts = [f"Generator: `{results['generator']}`. Each part was made by the command it names (a rerun of some "
             "parts keeps the others)."]
    if "inversion" in results:
        inv = results["inversion"]
        rows = [f"| {name} | {row['images']} | {row['start']:.2f} | {row['end']:.2f} |"
                for name, row in inv["table"].items()]
        parts.append(f"Inversion (`{inv.get('command', '')}`):\n\n| images | count | PSNR at the start (dB) | after "
                     f"{inv['steps']} projection steps (dB) |\n|---|---|---|---|\n" + "\n".join(rows)
                     + f"\n\nEncoder: `{inv['encoder']}`.")
    if "agreement" in results:
        agr = results["agreement"]
        rows = [f"| {name}{' (default)' if name == agr['default'] else ''} | {row['ms']:.2f} | {row['mean']:.2f} | "
                f"{row['min']:.2f} |" for name, row in agr["table"].items()]
        parts.append(f"Agreement (`{agr.get('command', '')}`): preview vs the downsampled final image over "
                     f"{agr['edits']} edits (full generator "
                     f"{agr['full_ms']:.2f} ms on this machine):\n\n| preview | ms | mean PSNR (dB) | min PSNR (dB) |\n"
                     "|---|---|---|---|\n" + "\n".join(rows))
    if "latency" in results:
        lat = results["latency"]
        rows = [f"| {name}{' (default)' if name == lat['default'] else ''} | {ms:.0f} |"
                for name, ms in lat["ms"].items()]
        parts.append(f"Latency (`{lat.get('command', '')}`): the editor's start-up timing at the {lat['size']} px "
                     f"config-f architecture (random weights, "
                     f"{lat['threads']} threads, fastest of {lat['repeats']} interleaved):\n\n| sub-generator | "
                     "synthesis ms |\n|---|---|\n" + "\n".join(rows))
    if "screenshot" in results:
        shot = results["screenshot"]
        parts.append(f"Screenshot (`{shot.get('command', '')}`): `{shot['screenshot']}` (uploaded "
                     f"`{shot['uploaded']}`, default preview "
                     f"{shot['default_preview']}).")
    return "\n\n".join(parts) + "\n\nTargets:\n\n" + "\n".join(f"- {line}" for line in target_lines(results))


def main() -> None:
    args = arguments()
    earlier = args.out / "editor.json"  # a rerun of some parts keeps the others' results
    results: dict = json.loads(earlier.read_text()) if earlier.is_file() else {}
    if results.get("generator") != str(args.generator):
        results = {}
    results = {key: value for key, value in results.items() if isinstance(value, dict)}
    results["generator"] = str(args.generator)
    needs_faces = {"inversion", "agreement", "screenshot"} & set(args.parts)
    generator = load_generator(args.generator).model.eval() if needs_faces else None
    data = prepare_faces(args.work) if needs_faces else None
    encoder_path = encoder_run(args, data) if {"inversion", "screenshot"} & set(args.parts) else None
    parts = {"latency": lambda: latency_part(args),  # first: nothing else of this script runs meanwhile
             "inversion": lambda: inversion_part(args, generator, data, encoder_path),
             "agreement": lambda: agreement_part(args, generator),
             "screenshot": lambda: screenshot_part(args, generator, encoder_path, data)}
    for name, run in parts.items():
        if name in args.parts:
            results[name] = {**run(), "command": "python " + " ".join(sys.argv)}
    write_results(args.out, "editor", results, markdown(results))
    print("\n".join(["", "Targets:", *target_lines(results)]))


if __name__ == "__main__":
    main()
