"""Anycost GAN in one resumable run folder: multi-resolution -> adaptive channels -> export.

``run_anycost(config)`` is a staged run (:mod:`ganslim.engine.staged`) creating ``out_dir/NNNNN-anycost-NAME/``::

    config.yaml                                 the resolved AnycostConfig (read back by --resume)
    pipeline.json                               finished stages and what each recorded
    00000-anycost-multi-resolution-NAME/        stage 1 (an engine run): generator.pt, discriminator.pt, checkpoints/
    00001-anycost-adaptive-channels-NAME/       stage 2: the same, channels sorted, D conditioned
    generator.pt                                stage 3: stage 2's generator (a plain stylegan2, full config active)
    summary.json                                per sub-generator: params, synthesis MACs, fidelity to the teacher

``resume=RUN`` skips the finished stages and continues the unfinished one from its last checkpoint; ``stop_after``
ends after a stage. The training stages run under ``ganslim.engine.fit`` (so under ``torchrun`` on every process);
the export runs on rank 0.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ganslim.atomic import atomic_write, atomic_write_text
from ganslim.checkpoints import load_generator
from ganslim.compress import extract_stylegan2_subnet
from ganslim.data import ImageFolderDataset
from ganslim.engine import fit
from ganslim.engine import distributed as ddp
from ganslim.engine.runs import run_label
from ganslim.engine.staged import Stage, StagedRun, run_stages
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs, count_params
from ganslim.methods.anycost import STAGES
from ganslim.methods.anycost.config import METHOD, AdaptiveChannelsConfig, AnycostConfig
from ganslim.methods.anycost.sampling import top_sides
from ganslim.methods.anycost.training import (
    GENERATOR_FILE,
    AdaptiveChannels,
    MultiResolution,
    fidelity,
    fidelity_latents,
    fidelity_probes,
    load_start_discriminator,
    load_teacher,
    teacher_discriminator_file,
)
from ganslim.methods.stylegan2 import require_one_batch
from ganslim.nn.vgg import find_vgg16_weights

SUMMARY_FILE = "summary.json"
FIDELITY_BATCH = 16


@dataclass
class AnycostResult:
    """Where the run is and, once exported, its ``summary.json`` content."""

    run_dir: Path
    stages: dict
    summary_content: dict | None = None

    def summary(self) -> str:
        """The one line ``ganslim compress anycost`` ends with."""
        if self.summary_content is None:
            done = ", ".join(self.stages) or "none"
            return f"{METHOD}: stopped; finished stages: {done}; resume with --resume {self.run_dir}"
        subs = self.summary_content["sub_generators"]
        full, cheapest = subs[0], min(subs, key=lambda sub: sub["synthesis_macs"])
        return (f"{METHOD}: {len(subs)} sub-generators scored; the cheapest ({cheapest['label']}) runs "
                f"{full['synthesis_macs'] / cheapest['synthesis_macs']:.1f}x fewer synthesis MACs than the full one at "
                f"{cheapest['fidelity']['psnr']:.2f} dB fidelity to the teacher; model {self.run_dir / GENERATOR_FILE}")


def run_anycost(config: AnycostConfig, *, resume: str | os.PathLike | None = None, stop_after: str | None = None,
                progress: bool = True) -> AnycostResult:
    """Run (or continue) every stage of Anycost GAN in one run folder; see the module docstring."""
    pipeline = _Pipeline(config)
    stages = [Stage(name, run) for name, run in zip(STAGES, pipeline.stages())]
    staged = run_stages(config, METHOD, stages, resume=resume, stop_after=stop_after, progress=progress,
                        check=pipeline.check)
    return AnycostResult(staged.run_dir, staged.done, staged.done.get("export", {}).get("summary"))


def check_inputs(config: AnycostConfig) -> None:
    """Refuse bad input in one line before anything is written: the teacher (a StyleGAN2 generator), the sides
    asked for, the images (decoded at the teacher's side) and the discriminator the first stage starts from."""
    teacher = load_teacher(config.teacher, torch.device("cpu"), config.seed)
    size = teacher.img_resolution
    renders = top_sides(size, len(teacher.channels))
    if config.resolutions > len(renders):
        raise GanslimError(f"resolutions {config.resolutions}: the {size} px teacher renders only {len(renders)} "
                           f"sides ({', '.join(map(str, renders))}): lower resolutions")
    require_one_batch(ImageFolderDataset(config.data, size, resize=config.resize, flip=False), config.data,
                      config.batch_size, 1)
    start = teacher_discriminator_file(config)
    if start is not None:
        load_start_discriminator(start, size, config.resolutions, conditioned=False)


class _Pipeline:
    """The stages of one run, over its config."""

    def __init__(self, config: AnycostConfig) -> None:
        self.config = config

    def stages(self) -> list:
        """What each of ``STAGES`` runs, in order."""
        return [self._multi_resolution, self._adaptive_channels, self._export]

    def check(self) -> None:
        check_inputs(self.config)

    def _train(self, staged: StagedRun, method_cls: type, config: AnycostConfig) -> str:
        """Fit a training stage, continuing its folder under the run if it has a checkpoint."""
        resume = staged.resumable(run_label(method_cls.name, config))
        return str(fit(config, method_cls, resume=resume, progress=staged.progress).run_dir)

    def _multi_resolution(self, staged: StagedRun) -> dict:
        config = dataclasses.replace(self.config, out_dir=str(staged.run_dir))
        start = teacher_discriminator_file(config)
        return {"run_dir": self._train(staged, MultiResolution, config),
                "discriminator": f"from {start}" if start is not None else "fresh (the teacher has none)"}

    def _adaptive_channels(self, staged: StagedRun) -> dict:
        values = {**dataclasses.asdict(self.config), "out_dir": str(staged.run_dir),
                  "kimg": self.config.channels_kimg, "iterations": self.config.channels_iterations,
                  "multi_resolution": staged.done["multi-resolution"]["run_dir"]}
        return {"run_dir": self._train(staged, AdaptiveChannels, AdaptiveChannelsConfig(**values))}

    def _export(self, staged: StagedRun) -> dict:
        run_dir, done = staged.run_dir, staged.done

        def export() -> dict:
            source = Path(done["adaptive-channels"]["run_dir"]) / GENERATOR_FILE
            summary = sub_generator_summary(self.config, source, done["multi-resolution"]["discriminator"])
            atomic_write(run_dir / GENERATOR_FILE, lambda path: shutil.copyfile(source, path))
            atomic_write_text(json.dumps(summary, indent=1) + "\n", run_dir / SUMMARY_FILE)
            return summary

        return {"model": str(run_dir / GENERATOR_FILE), "summary": ddp.on_main(staged.info, export)}


@torch.no_grad()
def sub_generator_summary(config: AnycostConfig, generator_file: Path, discriminator_start: str) -> dict:
    """Per fidelity sub-generator (every uniform ratio at the full and half side): its parameters and synthesis
    MACs (both conventions, batch 1, of the extracted compact generator) and its fidelity (PSNR / SSIM) to the
    teacher's full images downsampled, on the validation's fixed latents; plus the run's settings worth knowing."""
    teacher = load_teacher(config.teacher, torch.device("cpu"), config.seed)
    generator = load_generator(generator_file).model
    probes = fidelity_probes(generator.img_resolution, config.resolutions)
    latents = fidelity_latents(config, generator.z_dim)
    z = torch.stack([latents[index]["z"] for index in range(len(latents))])
    scores = fidelity(generator, teacher, z.split(FIDELITY_BATCH), probes)
    subs = []
    for probe in probes:
        compact = extract_stylegan2_subnet(generator, probe.side, probe.ratio)
        macs = count_macs(compact.synthesis, torch.zeros(1, compact.num_ws, compact.w_dim))
        subs.append({"label": probe.label, "ratio": probe.ratio, "resolution": probe.side,
                     "channels": list(compact.layer_channels), "params": count_params(compact),
                     "synthesis_macs": macs.macs, "synthesis_macs_published": macs.macs_published,
                     "fidelity": scores[probe.label]})
    vgg = config.vgg_weights != "none" and find_vgg16_weights(config.vgg_weights or None) is not None
    return {"teacher": config.teacher, "size": generator.img_resolution, "fidelity_samples": config.fidelity_samples,
            "consistency": "mse + vgg16 perceptual" if vgg else "mse (no VGG16 weights)",
            "discriminator_start": discriminator_start, "sub_generators": subs}
