"""The runnable methods, registered in one place: ``ganslim train NAME`` and ``ganslim compress NAME`` are built
from :data:`METHODS`.

A :class:`MethodEntry` names its command (``train``: a model from scratch; ``compress``: a compact model from a
trained teacher), its one-line help and, for a staged run, its stages. Registering imports nothing heavy:
``entry.load()`` imports the method's package and returns its :class:`Runner` (config class and run function), so
the command line builds every subcommand without loading torch (``ganslim bench`` must set ``OMP_WAIT_POLICY``
before torch loads). One package per method: :mod:`.teachers`, :mod:`.esrgan`, :mod:`.spade`, :mod:`.stylegan2`,
:mod:`.gan_compression`, :mod:`.omgd`, :mod:`.mobilestylegan`, :mod:`.anycost`, :mod:`.agd`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ganslim.methods.anycost import STAGES as ANYCOST_STAGES
from ganslim.methods.gan_compression import STAGES as GAN_COMPRESSION_STAGES
from ganslim.registry import Registry

TRAIN, COMPRESS = "train", "compress"
# AutoGAN-Distiller's stages, in order (here: importing ganslim.methods.agd loads torch)
AGD_STAGES = ("warmup", "search", "derive", "retrain", "export")
KINDS = {TRAIN: "training method", COMPRESS: "compression method"}


@dataclass(frozen=True)
class Runner:
    """What runs a method: its config class, and ``run(config, *, resume, progress[, stop_after])`` returning a
    result whose ``summary()`` is the line the command prints (e.g. :class:`ganslim.engine.RunResult`)."""

    Config: type
    run: Callable[..., Any]


@dataclass(frozen=True)
class MethodEntry:
    """A method ``ganslim COMMAND NAME`` runs; ``stages`` lists a staged run's stages in order (``--stop-after``
    takes any but the last)."""

    name: str
    command: str
    help: str
    load: Callable[[], Runner]
    aliases: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()


def trained(pick: type | Callable[[Any], type], Config: type | None = None) -> Runner:
    """The :class:`Runner` of a method the engine trains (``ganslim.engine.fit``): ``pick`` is the method class, or
    picks one from the config (then ``Config`` is the config class)."""
    choose = (lambda config: pick) if isinstance(pick, type) else pick

    def run(config: Any, *, resume: str | None, progress: bool) -> Any:
        from ganslim.engine import fit

        return fit(config, choose(config), resume=resume, progress=progress)

    return Runner(Config or pick.Config, run)


def methods_of(command: str) -> Registry[MethodEntry]:
    """The entries of ``ganslim COMMAND``; an unknown name fails listing them."""
    return METHODS.where(KINDS[command], lambda entry: entry.command == command)


def _pix2pix() -> Runner:
    from ganslim.methods.teachers import Pix2Pix

    return trained(Pix2Pix)


def _cyclegan() -> Runner:
    from ganslim.methods.teachers import CycleGAN

    return trained(CycleGAN)


def _esrgan() -> Runner:
    from ganslim.methods.esrgan import ESRGANConfig, run_esrgan

    return Runner(ESRGANConfig, run_esrgan)


def _spade() -> Runner:
    from ganslim.methods.spade import SPADEConfig, run_spade

    return Runner(SPADEConfig, run_spade)


def _stylegan2() -> Runner:
    from ganslim.methods.stylegan2 import StyleGAN2

    return trained(StyleGAN2)


def _encoder() -> Runner:
    from ganslim.editing.encoder_training import EncoderTraining

    return trained(EncoderTraining)


def _gan_compression() -> Runner:
    from ganslim.methods.gan_compression.pipeline import PipelineConfig, run_pipeline

    return Runner(PipelineConfig, run_pipeline)


def _gan_compression_supernet() -> Runner:
    from ganslim.methods.gan_compression.config import DistillConfig
    from ganslim.methods.gan_compression.family import family_of_run

    return trained(lambda config: family_of_run(config).supernet_method, DistillConfig)


def _gan_compression_search() -> Runner:
    from ganslim.methods.gan_compression.search import SearchConfig, run_search

    return Runner(SearchConfig, run_search)


def _gan_compression_finetune() -> Runner:
    from ganslim.methods.gan_compression.config import DistillConfig
    from ganslim.methods.gan_compression.family import family_of_run

    return trained(lambda config: family_of_run(config).finetune_method, DistillConfig)


def _omgd() -> Runner:
    from ganslim.methods.omgd import OMGDConfig, omgd_method

    return trained(omgd_method, OMGDConfig)


def _mobilestylegan() -> Runner:
    from ganslim.methods.mobilestylegan import MobileStyleGAN

    return trained(MobileStyleGAN)


def _anycost() -> Runner:
    from ganslim.methods.anycost.config import AnycostConfig
    from ganslim.methods.anycost.pipeline import run_anycost

    return Runner(AnycostConfig, run_anycost)


def _agd() -> Runner:
    from ganslim.methods.agd.config import AGDConfig
    from ganslim.methods.agd.pipeline import run_agd

    return Runner(AGDConfig, run_agd)


METHODS: Registry[MethodEntry] = Registry("method")
for _entry in (
    MethodEntry("pix2pix", TRAIN, "pix2pix teacher (paired data)", _pix2pix),
    MethodEntry("cyclegan", TRAIN, "CycleGAN teacher (unpaired data)", _cyclegan),
    MethodEntry("esrgan", TRAIN, "ESRGAN super-resolution teacher (RRDBNet): --stage psnr (L1), then --stage gan "
                "--init PSNR_RUN", _esrgan),
    MethodEntry("spade", TRAIN, "SPADE / GauGAN teacher (label maps -> images; NVlabs' recipe): hinge GAN with the "
                "multi-scale discriminator, feature matching, VGG19, TTUR", _spade),
    MethodEntry("stylegan2", TRAIN, "StyleGAN2 (rosinality's recipe): unconditional, from a folder of same-size "
                "images; length in kimg", _stylegan2),
    MethodEntry("encoder", TRAIN, "an image -> W+ encoder for a StyleGAN2 generator (--generator CKPT), trained on its "
                "own samples; length in kimg", _encoder),
    MethodEntry("gan-compression", COMPRESS, "all stages in one resumable run folder: supernet -> search -> "
                "fine-tune -> export", _gan_compression, stages=GAN_COMPRESSION_STAGES),
    MethodEntry("gan-compression-supernet", COMPRESS, "stage 1: distil a once-for-all supernet from the teacher",
                _gan_compression_supernet, aliases=("gan-compression-train",)),
    MethodEntry("gan-compression-search", COMPRESS, "stage 2: search the sub-networks of a supernet run (--supernet "
                "RUN) under a budget", _gan_compression_search),
    MethodEntry("gan-compression-finetune", COMPRESS, "stage 3: fine-tune the sub-network a search chose (--search "
                "RUN), or --channels of --supernet RUN; exports the compact generator.pt", _gan_compression_finetune),
    MethodEntry("omgd", COMPRESS, "OMGD: train wide + deep teachers and the compact student together, in one stage "
                "(the student never sees the discriminator or the ground truth); exports the student as "
                "generator.pt", _omgd),
    MethodEntry("mobilestylegan", COMPRESS, "MobileStyleGAN: distil a StyleGAN2 teacher into a wavelet-domain student "
                "from sampled z (no dataset); exports the student as generator.pt", _mobilestylegan),
    MethodEntry("anycost", COMPRESS, "Anycost GAN: fine-tune a StyleGAN2 teacher so that every sub-generator (lower "
                "resolution, fewer channels) previews it: multi-resolution -> adaptive channels -> export",
                _anycost, stages=ANYCOST_STAGES),
    MethodEntry("agd", COMPRESS, "AutoGAN-Distiller: search a compact generator under a MACs or latency budget, guided "
                "only by the teacher (translation or x4 super-resolution), and retrain it by distillation: warm-up -> "
                "search -> derive -> retrain -> export", _agd, stages=AGD_STAGES),
):
    METHODS.register(_entry.name)(_entry)

__all__ = ["AGD_STAGES", "COMPRESS", "METHODS", "TRAIN", "MethodEntry", "Runner", "methods_of", "trained"]
