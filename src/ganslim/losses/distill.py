"""Distillation losses: image terms (1 - SSIM, total variation, OMGD's perceptual mix) and intermediate-feature
terms with learned adapters (OMGD channel distillation, GAN Compression feature-map distillation).

Every loss treats its target (a teacher's output or activation) as a constant: gradients reach only the
student and the adapters, never a teacher.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.errors import GanslimError
from ganslim.losses.perceptual import FEATURE_LAYER, feature_loss, style_loss
from ganslim.metrics import ssim
from ganslim.nn import init_weights
from ganslim.nn.vgg import STYLE_LAYERS, VGG16Features, vgg16_weights_hint

logger = logging.getLogger(__name__)
TERM_NAMES = {"ssim": "SSIM", "style": "style", "feature": "feature", "tv": "TV", "l1": "L1 to the teacher"}
_warned_no_vgg = False


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - mean SSIM`` between two batches of images in [-1, 1], computed on their intensities in [0, 1].

    SSIM is not shift-invariant: its luminance term ``(2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)`` assumes
    non-negative intensities. On [-1, 1] values a region whose mean has the opposite sign to the target's and
    a larger magnitude is pushed *away* from it (the term rises towards 0 as ``|mu_x|`` grows), and a student
    that starts there saturates its tanh and never recovers; on [0, 1] the gradient always points to the
    target's mean. (:func:`ganslim.metrics.ssim`, which compares [-1, 1] images as [0, 1] intensities.)

    Args:
        pred: (N, C, H, W), H and W at least 11 (the Gaussian window).
        target: (N, C, H, W), same shape; treated as constant.

    Returns:
        () float32 tensor in [0, 2] (also under autocast); 0 for identical images.
    """
    # Autocast off: its bf16 convolutions would otherwise undo ssim's float32 local statistics.
    with torch.autocast(device_type=pred.device.type, enabled=False):
        return 1 - ssim(pred, target.detach()).mean()


def total_variation(image: Tensor) -> Tensor:
    """Anisotropic L1 total variation, summed (not averaged) over the batch, channels and pixels, as OMGD.

    Args:
        image: (N, C, H, W).

    Returns:
        () tensor ``sum |x[..., i, j+1] - x[..., i, j]| + sum |x[..., i+1, j] - x[..., i, j]|``, in float32 at
        least. Being a sum, it grows with batch size and resolution; OMGD's weight 1e-5 assumes that.
    """
    if image.dim() != 4:
        raise ValueError(f"total_variation takes (N, C, H, W) images, got {tuple(image.shape)}")
    x = image.to(torch.promote_types(image.dtype, torch.float32))
    return (x[..., :, 1:] - x[..., :, :-1]).abs().sum() + (x[..., 1:, :] - x[..., :-1, :]).abs().sum()


class PerceptualDistillLoss(nn.Module):
    """OMGD's student objective towards one teacher's output: SSIM, style, feature, TV (and L1) terms.

    ``loss = ssim_weight (1 - SSIM) + style_weight style + feature_weight feature + tv_weight TV(student)
    + l1_weight L1`` (paper weights 10, 1e4, 10, 1e-5 and no L1; AutoGAN-Distiller uses the same terms). OMGD
    adds this once per teacher, so the TV term, which looks only at the student, is counted once per teacher too.
    The L1 term (mean absolute difference to the teacher's output) is ganslim's stand-in for the VGG terms when
    no VGG16 weights exist.

    With ``vgg=None`` the style and feature terms are off and only SSIM, TV and L1 are computed; if their weights
    are not zero, one warning per process says so and how to supply the VGG16 weights.
    The VGG is a frozen submodule: ``.to(device)`` moves it, and it never needs checkpointing.

    Args:
        vgg: the frozen VGG16 (:func:`ganslim.losses.perceptual.load_perceptual_vgg`), or ``None``.
        ssim_weight, style_weight, feature_weight, tv_weight, l1_weight: non-negative weights; 0 skips a term.
    """

    def __init__(
        self,
        vgg: VGG16Features | None,
        *,
        ssim_weight: float = 10.0,
        style_weight: float = 1e4,
        feature_weight: float = 10.0,
        tv_weight: float = 1e-5,
        l1_weight: float = 0.0,
    ) -> None:
        super().__init__()
        weights = {"ssim": ssim_weight, "style": style_weight, "feature": feature_weight, "tv": tv_weight,
                   "l1": l1_weight}
        negative = [name for name, value in weights.items() if value < 0]
        if negative:
            raise GanslimError(f"loss weights must be >= 0; got negative {', '.join(negative)} weight")
        if vgg is not None:
            missing = [name for name in (*STYLE_LAYERS, FEATURE_LAYER) if name not in vgg.layers]
            if missing:
                raise ValueError(f"the VGG must return {', '.join(missing)}; build it with the default layers")
        self.vgg = vgg
        self.term_weights = weights
        if vgg is None and (style_weight > 0 or feature_weight > 0):
            _warn_no_vgg(self.terms)

    @property
    def terms(self) -> tuple[str, ...]:
        """Names of the terms :meth:`forward` returns, in order (those with a weight above 0 that can run)."""
        needs_vgg = ("style", "feature")
        return tuple(
            name for name, value in self.term_weights.items()
            if value > 0 and (self.vgg is not None or name not in needs_vgg)
        )

    def forward(self, student_image: Tensor, teacher_image: Tensor) -> dict[str, Tensor]:
        """The weighted terms for one teacher.

        Args:
            student_image: (N, C, H, W) student output in [-1, 1], H and W at least 11; gradients flow to it.
            teacher_image: (N, C, H, W) teacher output, same shape; detached here, and its VGG features are
                computed without a graph.

        Returns:
            ``{term: () tensor}`` for each name in :attr:`terms` (already multiplied by its weight); sum the
            values for the student's loss.
        """
        if student_image.shape != teacher_image.shape:
            raise GanslimError(
                f"student and teacher images differ in shape: {tuple(student_image.shape)} vs "
                f"{tuple(teacher_image.shape)}; both generators must map the same input to the same size"
            )
        teacher_image = teacher_image.detach()
        terms = self.terms
        out: dict[str, Tensor] = {}
        if "ssim" in terms:
            out["ssim"] = self.term_weights["ssim"] * ssim_loss(student_image, teacher_image)
        if "style" in terms or "feature" in terms:
            assert self.vgg is not None
            student_features = self.vgg(student_image)
            with torch.no_grad():
                teacher_features = self.vgg(teacher_image)
            if "style" in terms:
                out["style"] = self.term_weights["style"] * style_loss(student_features, teacher_features)
            if "feature" in terms:
                out["feature"] = self.term_weights["feature"] * feature_loss(student_features, teacher_features)
        if "tv" in terms:
            out["tv"] = self.term_weights["tv"] * total_variation(student_image)
        if "l1" in terms:
            out["l1"] = self.term_weights["l1"] * F.l1_loss(student_image.float(), teacher_image.float())
        return out


def _warn_no_vgg(remaining: Sequence[str]) -> None:
    """Say once per process that the VGG terms are off, which terms still distil, and how to turn them on."""
    global _warned_no_vgg
    if _warned_no_vgg:
        return
    _warned_no_vgg = True
    logger.warning(
        "VGG16 weights not found, so the style and feature distillation terms are OFF (%s distil the student); "
        "to turn them on, %s",
        ", ".join(TERM_NAMES[term] for term in remaining) or "no other terms", vgg16_weights_hint(),
    )


def channel_distillation_loss(adapted_student: Sequence[Tensor], teacher_features: Sequence[Tensor]) -> Tensor:
    """Sum over layers of the MSE between globally average-pooled student and teacher activations (OMGD).

    Args:
        adapted_student: per layer (N, C_l, H_l, W_l), the student's activation already mapped to the
            teacher's width C_l.
        teacher_features: per layer (N, C_l, H'_l, W'_l); spatial sizes may differ (pooled away); treated as
            constant.

    Returns:
        () tensor ``sum_l mean_{n,c} (pool(s_l) - pool(t_l))**2``, in float32 at least.
    """
    total = torch.zeros((), device=adapted_student[0].device)
    for student, teacher in zip(adapted_student, teacher_features, strict=True):
        if student.dim() != 4 or teacher.dim() != 4 or student.shape[:2] != teacher.shape[:2]:
            raise GanslimError(
                f"channel distillation: adapted student {tuple(student.shape)} and teacher {tuple(teacher.shape)} "
                "must both be (N, C, H, W) with the same N and C"
            )
        dtype = torch.promote_types(student.dtype, torch.float32)
        pooled_student = student.to(dtype).mean(dim=(2, 3))
        pooled_teacher = teacher.detach().to(dtype).mean(dim=(2, 3))
        total = total + F.mse_loss(pooled_student, pooled_teacher)
    return total


class _AdapterDistillation(nn.Module):
    """Per-layer learned adapters from student to teacher width, N(0, 0.02)-initialised (biases and batch-norm
    shifts 0, batch-norm scales N(1, 0.02)), as both reference implementations leave them."""

    def __init__(
        self,
        student_channels: Sequence[int],
        teacher_channels: Sequence[int],
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if len(student_channels) != len(teacher_channels) or not student_channels:
            raise GanslimError(
                f"{name} needs one student and one teacher width per layer, got {list(student_channels)} and "
                f"{list(teacher_channels)}"
            )
        if min(*student_channels, *teacher_channels) < 1:
            raise GanslimError(
                f"{name}: channel counts must be positive, got {list(student_channels)} and {list(teacher_channels)}"
            )
        self.adapters = nn.ModuleList(self.make_adapter(s, t) for s, t in zip(student_channels, teacher_channels))
        init_weights(self.adapters, "normal", 0.02, generator=generator)

    @staticmethod
    def make_adapter(student_channels: int, teacher_channels: int) -> nn.Module:
        """(N, student_channels, H, W) -> (N, teacher_channels, H, W)."""
        raise NotImplementedError

    def adapt(self, student_features: Sequence[Tensor], teacher_features: Sequence[Tensor]) -> list[Tensor]:
        """Each student activation through its layer's adapter, after checking there is one pair per adapter."""
        if len(student_features) != len(self.adapters) or len(teacher_features) != len(self.adapters):
            raise GanslimError(
                f"{type(self).__name__} has {len(self.adapters)} adapters but got {len(student_features)} student "
                f"and {len(teacher_features)} teacher feature maps; pass one of each per distilled layer"
            )
        return [adapter(feature) for adapter, feature in zip(self.adapters, student_features)]


class ChannelDistillation(_AdapterDistillation):
    """OMGD channel distillation: per layer, adapter(student) then global average pool, MSE to the teacher's pool.

    Adapter per layer (as OMGD): 1×1 conv student_channels -> teacher_channels without bias, BatchNorm2d, ReLU;
    conv weights N(0, 0.02), batch-norm weight N(1, 0.02) and bias 0 (OMGD's effective initialisation). The
    adapters are trained with the student: give their parameters to the student's optimizer and checkpoint
    this module. The loss is unweighted; OMGD multiplies it by λ_CD (10-500).

    Args:
        student_channels: the student's width at each distilled layer, e.g. (64,) * 4 for a mobile ResNet ngf 16.
        teacher_channels: the teacher's width at the same layers, e.g. (256,) * 4 for its 4× wide teacher.
        generator: draws the initial weights (default: the global RNG).
    """

    @staticmethod
    def make_adapter(student_channels: int, teacher_channels: int) -> nn.Module:
        """1×1 conv without bias, BatchNorm2d, ReLU (OMGD's ``build_feature_connector``)."""
        return nn.Sequential(
            nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(teacher_channels),
            nn.ReLU(),
        )

    def forward(self, student_features: Sequence[Tensor], teacher_features: Sequence[Tensor]) -> Tensor:
        """Unweighted channel distillation loss.

        Args:
            student_features: per layer (N, student_channels[l], H, W).
            teacher_features: per layer (N, teacher_channels[l], H', W'); detached here.

        Returns:
            () tensor, see :func:`channel_distillation_loss`.
        """
        return channel_distillation_loss(self.adapt(student_features, teacher_features), teacher_features)


class FeatureDistillation(_AdapterDistillation):
    """GAN Compression's intermediate-feature distillation: a learned 1×1 conv per layer maps the student
    activation to the teacher's width, then the MSE to the teacher's activation, summed over layers.

    Conv with bias, weights N(0, 0.02) and bias 0 (as GAN Compression's ``init_net``). The loss is unweighted;
    GAN Compression multiplies it by ``lambda_distill`` (1 by default). Train the adapters with the student.

    Args:
        student_channels: the student's width at each distilled layer.
        teacher_channels: the teacher's width at the same layers.
        generator: draws the initial weights (default: the global RNG).
    """

    @staticmethod
    def make_adapter(student_channels: int, teacher_channels: int) -> nn.Module:
        """A 1×1 conv with bias (GAN Compression's ``netA``)."""
        return nn.Conv2d(student_channels, teacher_channels, kernel_size=1)

    def forward(self, student_features: Sequence[Tensor], teacher_features: Sequence[Tensor]) -> Tensor:
        """Unweighted feature distillation loss.

        Args:
            student_features: per layer (N, student_channels[l], H_l, W_l).
            teacher_features: per layer (N, teacher_channels[l], H_l, W_l), same spatial size; detached here.

        Returns:
            () tensor ``sum_l mean (adapter_l(s_l) - t_l)**2``, in float32 at least.
        """
        total = torch.zeros((), device=student_features[0].device)
        for mapped, teacher in zip(self.adapt(student_features, teacher_features), teacher_features):
            if mapped.shape != teacher.shape:
                raise GanslimError(
                    f"feature distillation: the student activation maps to {tuple(mapped.shape)} but the teacher's "
                    f"is {tuple(teacher.shape)}; distil layers of the same resolution and check the widths"
                )
            dtype = torch.promote_types(mapped.dtype, torch.float32)
            total = total + F.mse_loss(mapped.to(dtype), teacher.detach().to(dtype))
        return total


class FeatureTap(nn.Module):
    """A generator that also returns its activations at ``layers`` (its ``forward_features``), optionally each
    through its layer's adapter (e.g. :class:`ChannelDistillation`'s ``adapters``).

    One module, so DistributedDataParallel sees the generator and its adapters in a single forward.
    ``forward(image)`` -> ``(output (N, C, H, W), [per layer (N, C_l, H_l, W_l)])``; no layers: ``[]``.
    """

    def __init__(self, generator: nn.Module, layers: Sequence[int], adapters: nn.ModuleList | None = None) -> None:
        super().__init__()
        self.generator, self.layers, self.adapters = generator, list(layers), adapters

    def forward(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        if not self.layers:
            return self.generator(image), []
        output, features = self.generator.forward_features(image, self.layers)
        if self.adapters is not None:
            features = [adapter(feature) for adapter, feature in zip(self.adapters, features)]
        return output, features
