"""OMGD's teachers, described from the student's ``(arch, kwargs)``, and the layers channel distillation reads.

OMGD trains two teachers online next to a compact student:

* the **wide** teacher is the student's own architecture with every width multiplied (4x by default: a
  ``mobile_resnet`` ngf 16 student gets a ``mobile_resnet`` ngf 64 teacher, separable blocks kept), so its
  activations line up with the student's layer by layer for channel distillation (:func:`wide_teacher_spec`);
* the **deep** teacher keeps the student's width and inserts residual blocks (:func:`deep_teacher_spec`):
  ``mobile_resnet_deep`` for a mobile ResNet student, ``unet_deep`` for a U-Net one
  (:mod:`ganslim.archs.translation.deep`).

:func:`omgd_distill_layers` names the layers channel distillation reads, the same in the student and its
wide teacher; :func:`init_from_checkpoint` starts a teacher from a checkpoint of the same layers.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator
from ganslim.archs.translation.unet import UnetGenerator
from ganslim.checkpoints import load_generator
from ganslim.errors import GanslimError

UNET_DISTILL_DEPTHS = (1, 2, 3, 4)
# Student architecture -> architecture of its deep teacher.
DEEP_TEACHERS = {"mobile_resnet": "mobile_resnet_deep", "unet": "unet_deep", "unet_256": "unet_deep"}


def _scaled(ngf: int, multiplier: float) -> int:
    return max(1, round(ngf * multiplier))


def wide_teacher_spec(arch: str, kwargs: dict, multiplier: float = 4.0) -> tuple[str, dict]:
    """``(arch, kwargs)`` of the wide teacher of the student ``(arch, kwargs)``: the same with ngf x multiplier.

    A mobile ResNet student with explicit ``channels`` gets every width multiplied.
    """
    wide = dict(kwargs, ngf=_scaled(kwargs["ngf"], multiplier))
    if kwargs.get("channels") is not None:
        wide["channels"] = [_scaled(width, multiplier) for width in kwargs["channels"]]
    return arch, wide


def deep_teacher_spec(arch: str, kwargs: dict, multiplier: float = 1.0) -> tuple[str, dict]:
    """``(arch, kwargs)`` of the deep teacher of the student ``(arch, kwargs)`` (ngf x multiplier, default 1).

    ``mobile_resnet`` -> ``mobile_resnet_deep`` (same n_blocks); ``unet`` / ``unet_256`` -> ``unet_deep`` (same
    num_downs, 8 for unet_256).
    """
    if arch not in DEEP_TEACHERS:
        raise GanslimError(f"OMGD has no deep teacher for a '{arch}' student: use one of {', '.join(DEEP_TEACHERS)}")
    if arch == "mobile_resnet" and kwargs.get("channels") is not None:
        raise GanslimError("the deep teacher of a mobile_resnet student needs uniform widths: drop 'channels'")
    deep = {key: value for key, value in kwargs.items() if key != "channels"}
    deep["ngf"] = _scaled(kwargs["ngf"], multiplier)
    if arch == "unet_256":
        deep["num_downs"] = 8
    return DEEP_TEACHERS[arch], deep


def omgd_distill_layers(generator: nn.Module, choice: str = "activations") -> list[int]:
    """Layers whose activations OMGD's channel distillation compares, for ``forward_features``.

    Mobile ResNet, ``choice="omgd"``: OMGD's released code, GAN Compression's layers (``distill_layers()``:
    the second downsampling and the last block of each block group; ``model.9, 12, 15, 18``). With non-affine
    instance norm every block adds an instance-normalised term whose spatial mean is 0, so the pooled block
    outputs all equal the pooled ``model.9``: those four terms carry one layer's information.
    ``choice="activations"`` (ganslim's default): the ReLU outputs of the second downsampling and of both
    upsamplings (``model.9, 21, 24`` for 9 blocks), three different pooled vectors.
    U-Net (either choice): the outputs of the skip blocks at depths 1-4, of 2, 4, 8 and 16 x ngf channels - the
    widths of OMGD's four U-Net layers, two of which are block outputs and two block inputs (the skip halves of
    the depth-2 and depth-4 outputs); batch norm keeps per-image means, so these pools differ.
    """
    if isinstance(generator, MobileResnetGenerator):
        if choice == "omgd":
            return generator.distill_layers()
        return generator.relu_layers()
    if isinstance(generator, UnetGenerator):
        return list(UNET_DISTILL_DEPTHS)
    raise GanslimError(f"OMGD distils mobile_resnet and U-Net students, not {type(generator).__name__}")


def init_from_checkpoint(net: nn.Module, arch: str, kwargs: dict, path: str | Path, role: str) -> None:
    """Load a generator checkpoint into ``net`` (built as ``arch`` + ``kwargs``) if it has the same layers.

    Dropout may differ (it has no weights). Raises GanslimError saying in one line what differs
    (``ngf 64 vs 16``, the architecture, the first mismatching layer) and how to fix it.
    """
    loaded = load_generator(path)
    theirs, ours = loaded.model.state_dict(), net.state_dict()
    differing = [f"{key} {loaded.arch_kwargs[key]} vs {kwargs[key]}"
                 for key in ("input_nc", "output_nc", "ngf", "norm", "n_blocks", "num_downs")
                 if key in loaded.arch_kwargs and key in kwargs and loaded.arch_kwargs[key] != kwargs[key]]
    missing = [key for key in ours if key not in theirs]
    reshaped = [key for key in ours if key in theirs and theirs[key].shape != ours[key].shape]
    extra = sorted(set(theirs) - set(ours))
    if not differing and (missing or reshaped or extra):
        differing = [f"architecture {loaded.arch} vs {arch}"] if loaded.arch != arch else []
        first = (missing or reshaped or extra)[0]
        differing.append(f"layer '{first}' " + ("missing" if missing else "differs" if reshaped else "unexpected"))
    if differing:
        raise GanslimError(f"--teacher {loaded.path} cannot initialise the {role} ({arch}, ngf {kwargs['ngf']}): "
                           f"{'; '.join(differing)}; pass a checkpoint of that architecture or drop --teacher")
    net.load_state_dict(theirs)
