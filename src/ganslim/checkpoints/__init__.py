"""Load and save models: ganslim checkpoints and the reference files (pix2pix/CycleGAN, ESRGAN, SPADE / GauGAN and
GAN Compression's mobile SPADEs, StyleGAN2's rosinality checkpoints and NVIDIA ``.pkl`` snapshots), behind one
call."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ganslim.checkpoints.format import ModelCheckpoint, read_checkpoint, save_model
from ganslim.errors import GanslimError, first_line
from ganslim.signature import Signature

__all__ = ["LoadedModel", "load_generator", "load_discriminator", "save_model", "resolve_generator_file"]

# Files a reference (junyanz/pytorch-CycleGAN-and-pix2pix) checkpoints folder holds, by direction.
_REFERENCE_GENERATOR_FILES = {"AtoB": ("latest_net_G.pth", "latest_net_G_A.pth"),
                              "BtoA": ("latest_net_G.pth", "latest_net_G_B.pth")}
_GANSLIM_GENERATOR_FILES = {"AtoB": ("generator.pt", "generator_A.pt", "generator.safetensors"),
                            "BtoA": ("generator.pt", "generator_B.pt", "generator.safetensors")}


@dataclass
class LoadedModel:
    """A rebuilt model and how it was described: ``source`` is 'ganslim' or 'reference'."""

    model: nn.Module
    arch: str
    arch_kwargs: dict
    source: str
    path: Path
    meta: dict = field(default_factory=dict)

    @property
    def signature(self) -> Signature:
        """What the generator takes and returns (declared by its architecture; see :mod:`ganslim.signature`)."""
        return self.model.signature

    @property
    def trained_size(self) -> int | None:
        """The crop size the model was trained (and validated) at, from the ``meta`` of ganslim exports; None for
        reference files and checkpoints that do not record it."""
        size = self.meta.get("crop_size")
        return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def resolve_generator_file(path: str | os.PathLike, direction: str = "AtoB") -> Path:
    """A checkpoint file, or the generator of ``direction`` inside a run / reference checkpoints folder."""
    path = Path(path)
    if direction not in _REFERENCE_GENERATOR_FILES:
        raise GanslimError(f"direction '{direction}' is not valid: use AtoB or BtoA")
    if not path.is_dir():
        return path
    for folder in (path, path / "checkpoints"):
        for name in _GANSLIM_GENERATOR_FILES[direction] + _REFERENCE_GENERATOR_FILES[direction]:
            if (folder / name).is_file():
                return folder / name
    expected = ", ".join(_GANSLIM_GENERATOR_FILES[direction] + _REFERENCE_GENERATOR_FILES[direction])
    raise GanslimError(f"no generator checkpoint in folder '{path}' (looked for {expected}): pass the file")


def load_generator(path: str | os.PathLike, arch: str | None = None, direction: str = "AtoB",
                   **arch_overrides) -> LoadedModel:
    """Rebuild a generator from a ganslim checkpoint or a reference ``latest_net_G*.pth`` (eval mode).

    For reference files the architecture is inferred from the tensors unless ``arch`` / overrides say.
    """
    return _load(resolve_generator_file(path, direction), "generator", arch, arch_overrides, direction)


def load_discriminator(path: str | os.PathLike, arch: str | None = None, **arch_overrides) -> LoadedModel:
    """Rebuild a discriminator from a ganslim checkpoint or a reference ``latest_net_D*.pth``."""
    return _load(Path(path), "discriminator", arch, arch_overrides)


def _load(path: Path, kind: str, arch: str | None, overrides: dict, direction: str = "AtoB") -> LoadedModel:
    from ganslim.checkpoints import esrgan, mobile_spade, reference, spade, stylegan2

    content = (stylegan2.read_nvidia_pickle(path) if path.suffix == ".pkl"
               else read_checkpoint(path, kind, direction))
    if isinstance(content, ModelCheckpoint):
        if content.kind != kind:
            raise GanslimError(f"'{path}' holds {_article(content.kind)} {content.kind}, not {_article(kind)} {kind}: pass "
                               f"the {kind}'s checkpoint")
        model = _build_ganslim(path, content, kind)
        if content.signature is not None and hasattr(model, "signature"):
            _check_signature(path, content, model.signature)
        loaded = LoadedModel(model, content.arch, content.arch_kwargs, "ganslim", path, content.meta)
    elif isinstance(content, stylegan2.StyleGAN2File) or stylegan2.network_kind(content) is not None:
        model, arch_name, kwargs, meta = stylegan2.import_stylegan2(content, kind, f"checkpoint '{path}'", arch,
                                                                    overrides)
        loaded = LoadedModel(model, arch_name, kwargs, "reference", path, meta)
    elif kind == "generator" and spade.is_spade(content):
        importer = mobile_spade.import_mobile_spade if mobile_spade.is_mobile_spade(content) else spade.import_spade
        model, arch_name, kwargs, meta = importer(content, path, arch, overrides)
        loaded = LoadedModel(model, arch_name, kwargs, "reference", path, meta)
    elif kind == "generator" and esrgan.is_esrgan(content):
        model, arch_name, kwargs, layout = esrgan.import_rrdbnet(content, f"checkpoint '{path}'", arch, overrides)
        loaded = LoadedModel(model, arch_name, kwargs, "reference", path, {"key_layout": layout})
    else:
        importer = reference.import_generator if kind == "generator" else reference.import_discriminator
        model, arch_name, kwargs = importer(content, arch=arch, **overrides)
        loaded = LoadedModel(model, arch_name, kwargs, "reference", path)
    loaded.model.eval()
    return loaded


def _check_signature(path: Path, checkpoint: ModelCheckpoint, rebuilt: Signature) -> None:
    """The signature in the header must be the one the architecture declares (a mismatch: a hand-edited header)."""
    stored = Signature.from_dict(checkpoint.signature)
    if stored != rebuilt:
        raise GanslimError(f"checkpoint '{path}' says its {checkpoint.arch} takes {stored.describe()}, but that "
                           f"architecture takes {rebuilt.describe()}: the header is damaged; re-export it")


def _build_ganslim(path: Path, checkpoint: ModelCheckpoint, kind: str) -> nn.Module:
    from ganslim.archs import build_discriminator, build_generator

    build = build_generator if kind == "generator" else build_discriminator
    try:
        model = build(checkpoint.arch, **checkpoint.arch_kwargs)
    except (GanslimError, TypeError, ValueError, RuntimeError) as error:  # builders reject bad values variously
        raise GanslimError(f"checkpoint '{path}' cannot be rebuilt as {checkpoint.arch} {checkpoint.arch_kwargs} "
                           f"({first_line(error)}): the file is damaged or from another ganslim version") from None
    try:
        model.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as error:
        first_problem = str(error).strip().splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise GanslimError(f"checkpoint '{path}' does not match {checkpoint.arch} {checkpoint.arch_kwargs} "
                           f"({first_problem[:200]}): the file is damaged or from another ganslim version") from None
    return model


def _article(noun: str) -> str:
    """'an' before a vowel, else 'a'."""
    return "an" if noun[:1].lower() in "aeiou" else "a"
