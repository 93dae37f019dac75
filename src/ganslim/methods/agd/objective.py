"""AutoGAN-Distiller's distillation objectives: the student's output against the teacher's, no discriminator.

Translation (:class:`AGDTranslationObjective`, images in [-1, 1])::

    l1 * L1(student, teacher) + style * sum_l MSE(gram(s_l), gram(t_l)) + content * L1(s_relu2_2, t_relu2_2)
    + tv * TV(student)

with Gram matrices normalised by C·H·W over VGG16 relu1_2, relu2_2, relu3_3 and relu4_3, the VGG fed (x + 1) / 2
without ImageNet normalisation (the reference's input; its weights were tuned on it), and TV as
:func:`ganslim.losses.total_variation`. Presets (the reference's ``[base, style, content, tv]``): search
``[0, 1e5, 1, 0]``, retrain ``[1e-2, 1e5, 1, 0]``.

Super-resolution (:class:`AGDSRObjective`, images in [0, 1])::

    pixel * L1(student, teacher) + content * L1(vgg19(student), vgg19(teacher))

on VGG19 conv5_4 before its ReLU, ImageNet-normalised (:class:`ganslim.nn.vgg.VGG19Features`). Presets: pixel
``[1, 0]`` (the first retrain phase), pixel+content ``[1e-2, 1]`` (the second).

Without the perceptual network the terms that need it are off: one warning per network and process says so, and
:meth:`terms_on` / :meth:`summary` record which terms ran, for the run summary. The perceptual network is a frozen
submodule (``.to(device)`` moves it) kept out of the objective's ``state_dict()``, so a checkpoint that holds the
objective never holds the VGG (the reference's checkpoints embed its 550 MB VGG19).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.errors import GanslimError
from ganslim.losses import feature_loss, style_loss, total_variation
from ganslim.nn.vgg import (
    PERCEPTUAL_LAYER,
    STYLE_LAYERS,
    VGG16Features,
    VGG19Features,
    vgg16_weights_hint,
    vgg19_weights_hint,
)

logger = logging.getLogger(__name__)

TRANSLATION_PRESETS: dict[str, dict[str, float]] = {
    "search": {"l1": 0.0, "style": 1e5, "content": 1.0, "tv": 0.0},
    "retrain": {"l1": 1e-2, "style": 1e5, "content": 1.0, "tv": 0.0},
}
SR_PRESETS: dict[str, dict[str, float]] = {
    "pixel": {"pixel": 1.0, "content": 0.0},
    "pixel+content": {"pixel": 1e-2, "content": 1.0},
}
CONTENT_LAYER = "relu2_2"
_warned_networks: set[str] = set()


def _resolve_weights(weights: str | Mapping[str, float], presets: Mapping[str, Mapping[str, float]],
                     kind: str) -> dict[str, float]:
    """A preset's weights by name, or ``weights`` checked: exactly the preset's term names, none negative."""
    if isinstance(weights, str):
        if weights not in presets:
            raise GanslimError(f"unknown AGD {kind} loss preset '{weights}'; choose from: {', '.join(presets)}")
        return dict(presets[weights])
    names = list(next(iter(presets.values())))
    if sorted(weights) != sorted(names):
        raise GanslimError(f"AGD {kind} loss weights need exactly the terms {', '.join(names)}, got "
                           f"{', '.join(weights) or 'none'}")
    negative = [name for name in names if weights[name] < 0]
    if negative:
        raise GanslimError(f"loss weights must be >= 0; got negative {', '.join(negative)} weight")
    return {name: float(weights[name]) for name in names}


class _AGDObjective(nn.Module):
    """Weighted terms and their total; the terms in :attr:`perceptual_terms` need :attr:`vgg`.

    Subclasses set the class attributes and implement :meth:`unweighted` for the terms of :meth:`terms_on`.
    """

    presets: Mapping[str, Mapping[str, float]]
    kind: str
    network: str
    perceptual_terms: tuple[str, ...]

    def __init__(self, weights: str | Mapping[str, float], vgg: nn.Module | None) -> None:
        super().__init__()
        self.term_weights = _resolve_weights(weights, self.presets, self.kind)
        self.vgg = vgg
        self.register_state_dict_post_hook(_drop_vgg_keys)
        self.register_load_state_dict_pre_hook(_keep_own_vgg)
        if vgg is None and self.terms_off_for_vgg():
            self._warn_once()

    def terms_off_for_vgg(self) -> tuple[str, ...]:
        """Terms with a weight above 0 that cannot run because no perceptual network was given."""
        if self.vgg is not None:
            return ()
        return tuple(name for name in self.perceptual_terms if self.term_weights[name] > 0)

    def terms_on(self) -> tuple[str, ...]:
        """Names of the terms :meth:`forward` computes, in order: weight above 0, and their network present."""
        off = self.terms_off_for_vgg()
        return tuple(name for name, weight in self.term_weights.items() if weight > 0 and name not in off)

    def summary(self) -> dict[str, Any]:
        """For the run summary: ``terms`` (on: weight), ``off`` (term: why), ``perceptual`` (the network or
        ``"absent"``) and, when a weighted term is off for want of weights, the ``notice`` the warning gave."""
        missing = self.terms_off_for_vgg()
        off = {name: "weight 0" for name, weight in self.term_weights.items() if weight == 0}
        off.update({name: f"no {self.network} weights" for name in missing})
        summary: dict[str, Any] = {
            "terms": {name: self.term_weights[name] for name in self.terms_on()},
            "off": off,
            "perceptual": self.perceptual_description() if self.vgg is not None else "absent",
        }
        if missing:
            summary["notice"] = self.notice()
        return summary

    def notice(self) -> str:
        """The one line said when the perceptual terms are off: which, and how to supply the weights."""
        return (f"{self.network} weights not found, so the AGD {' and '.join(self.terms_off_for_vgg())} term(s) "
                f"are OFF (only {', '.join(self.terms_on()) or 'no term'} distil the student); to turn them on, "
                f"{self.weights_hint()}")

    def _warn_once(self) -> None:
        if self.network in _warned_networks:
            return
        _warned_networks.add(self.network)
        logger.warning("%s", self.notice())

    def forward(self, student_output: Tensor, teacher_output: Tensor) -> dict[str, Tensor]:
        """The weighted terms and their sum.

        Args:
            student_output: (N, C, H, W); gradients flow to it.
            teacher_output: (N, C, H, W), same shape; detached here, its VGG features computed without a graph.

        Returns:
            ``{term: () weighted tensor}`` for each name in :meth:`terms_on`, and ``"total"``, their float32 sum
            (0 when no term is on).
        """
        if student_output.shape != teacher_output.shape:
            raise GanslimError(
                f"student and teacher outputs differ in shape: {tuple(student_output.shape)} vs "
                f"{tuple(teacher_output.shape)}; both generators must map the same input to the same size"
            )
        raw = self.unweighted(student_output, teacher_output.detach(), self.terms_on())
        out = {name: self.term_weights[name] * value for name, value in raw.items()}
        out["total"] = sum(out.values(), torch.zeros((), device=student_output.device))
        return out

    def unweighted(self, student: Tensor, teacher: Tensor, terms: tuple[str, ...]) -> dict[str, Tensor]:
        """``{term: () float32}`` for each of ``terms``; ``teacher`` is already detached."""
        raise NotImplementedError

    def perceptual_description(self) -> str:
        """Which network, layers and input scaling the perceptual terms use, for :meth:`summary`."""
        raise NotImplementedError

    def weights_hint(self) -> str:
        """How the user supplies the perceptual network's weights file (one line)."""
        raise NotImplementedError


def _drop_vgg_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict post-hook: remove the perceptual network's entries, so no checkpoint ever carries them."""
    for key in [key for key in state_dict if key.startswith(f"{prefix}vgg.")]:
        del state_dict[key]


def _keep_own_vgg(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load pre-hook: feed the perceptual network its own tensors, so a state dict without them (every one that
    :func:`_drop_vgg_keys` wrote) loads strictly and one with them cannot replace the user's weights."""
    vgg = getattr(module, "vgg", None)
    if vgg is not None:
        state_dict.update({f"{prefix}vgg.{key}": value for key, value in vgg.state_dict().items()})


class AGDTranslationObjective(_AGDObjective):
    """AutoGAN-Distiller's translation objective (see the module docstring).

    Args:
        weights: a preset name (``"search"`` or ``"retrain"``) or ``{"l1", "style", "content", "tv"}`` weights.
        vgg16: the frozen VGG16 returning relu1_2 ... relu4_3, built with ``imagenet_norm=False``
            (``load_vgg16(path, imagenet_norm=False)``), or ``None``: style and content off.
    """

    presets = TRANSLATION_PRESETS
    kind = "translation"
    network = "VGG16"
    perceptual_terms = ("style", "content")

    def __init__(self, weights: str | Mapping[str, float], vgg16: VGG16Features | None) -> None:
        if vgg16 is not None:
            missing = [name for name in STYLE_LAYERS if name not in vgg16.layers]
            if missing:
                raise ValueError(f"the VGG16 must return {', '.join(missing)}; build it with the default layers")
            if vgg16.imagenet_norm or vgg16.signed_input:
                raise ValueError("AGD's VGG16 takes (x + 1) / 2 unnormalised: load_vgg16(path, imagenet_norm=False)")
        super().__init__(weights, vgg16)

    def unweighted(self, student: Tensor, teacher: Tensor, terms: tuple[str, ...]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if "l1" in terms:
            out["l1"] = F.l1_loss(student.float(), teacher.float())
        if "style" in terms or "content" in terms:
            student_features = self.vgg(student)
            with torch.no_grad():
                teacher_features = self.vgg(teacher)
            if "style" in terms:
                out["style"] = style_loss(student_features, teacher_features, distance=F.mse_loss)
            if "content" in terms:
                out["content"] = feature_loss(student_features, teacher_features, CONTENT_LAYER)
        if "tv" in terms:
            out["tv"] = total_variation(student)
        return out

    def perceptual_description(self) -> str:
        return f"VGG16 {', '.join(STYLE_LAYERS)} on (x + 1) / 2, unnormalised"

    def weights_hint(self) -> str:
        return vgg16_weights_hint()


class AGDSRObjective(_AGDObjective):
    """AutoGAN-Distiller's super-resolution objective (see the module docstring).

    Args:
        weights: a preset name (``"pixel"`` or ``"pixel+content"``) or ``{"pixel", "content"}`` weights.
        vgg19: the frozen :class:`ganslim.nn.vgg.VGG19Features` (``load_vgg19(path)``), or ``None``: content off.
    """

    presets = SR_PRESETS
    kind = "super-resolution"
    network = "VGG19"
    perceptual_terms = ("content",)

    def __init__(self, weights: str | Mapping[str, float], vgg19: VGG19Features | None) -> None:
        super().__init__(weights, vgg19)

    def unweighted(self, student: Tensor, teacher: Tensor, terms: tuple[str, ...]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if "pixel" in terms:
            out["pixel"] = F.l1_loss(student.float(), teacher.float())
        if "content" in terms:
            with torch.no_grad():
                teacher_features = self.vgg(teacher.float())
            out["content"] = F.l1_loss(self.vgg(student.float()).float(), teacher_features.float())
        return out

    def perceptual_description(self) -> str:
        return f"VGG19 {PERCEPTUAL_LAYER} before its ReLU, ImageNet-normalised"

    def weights_hint(self) -> str:
        return vgg19_weights_hint()
