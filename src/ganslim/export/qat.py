"""Quantization-aware fine-tuning (QAT) of an image model, and the real int8 model its learned ranges make.

:func:`finetune_qat` fake-quantizes a copy of the generator (:func:`ganslim.nn.fake_quant.prepare_qat`: int8
weights per output channel, uint8 activations around every conv / transposed conv / linear), sets the activation
ranges to the min and max over the calibration inputs (what ONNX Runtime's MinMax calibration gives plain
post-training quantization, PTQ), then fine-tunes it for a number of steps by distillation: L1 between its output and
a teacher's on the same inputs (the fp32 model itself unless another teacher is given), a batch of calibration
inputs per step in seeded shuffled orders, Adam on the float weights, the ranges following each batch's min and max
by an exponential moving average. Norm layers stay in eval mode (no running-statistics updates).

:func:`export_qdq_onnx` writes the fine-tuned model as a QDQ ONNX graph: each fake quantization becomes a
QuantizeLinear / DequantizeLinear pair with the learned scale and zero point (no calibration), and ONNX Runtime's
hardware-independent rewrites then fold the weights into int8 tensors and the biases into int32 ones, as
``onnxruntime.quantization`` writes them. ONNX Runtime runs it with ``QLinearConv`` (OpenVINO reads the same file
as FakeQuantize ops); which layers really run in int8 is read back from the executed graph by
``ganslim.export.quantize``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ganslim.errors import GanslimError
from ganslim.export.onnx import export_onnx
from ganslim.export.runtime import ort_session
from ganslim.nn.fake_quant import EMA_MOMENTUM, fake_quantized_layers, observing, prepare_qat
from ganslim.signature import Signature

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_LR", "QatLog", "QatOptions", "check_qat_options", "export_qdq_onnx", "finetune_qat"]

# Adam's step on the float weights: fine-tuning starts from a trained model, so well below training rates (1e-3 to
# 2e-4 for these generators). On tiny agd_translation models 1e-5 lowered the int8 error on the tuning images a
# little, 1e-4 raised it by ~2 dB (tests/test_quantize_qat.py).
DEFAULT_LR = 1e-5
# Calibration inputs per step. On a tiny trained agd_translation (32 calibration, 16 held-out images, 100 steps at
# 1e-5) one per step gained 1.0 dB int8 vs fp32 over PTQ, four 0.2 dB in three times the time.
DEFAULT_BATCH_SIZE = 1
SELF_TEACHER = "the fp32 model itself"


@dataclass(frozen=True)
class QatOptions:
    """Fine-tuning settings: ``steps`` of ``batch_size`` calibration inputs (1 where their sizes differ), Adam
    ``lr``, the ``teacher`` (a CPU model in eval mode) whose outputs are distilled (None: the fp32 model itself),
    named ``teacher_name`` in the report, and the shuffling ``seed``."""

    steps: int
    lr: float = DEFAULT_LR
    batch_size: int = DEFAULT_BATCH_SIZE
    teacher: nn.Module | None = None
    teacher_name: str = SELF_TEACHER
    seed: int = 0


@dataclass(frozen=True)
class QatLog:
    """What fine-tuning did: the settings (``batch_size`` as used: see :class:`QatOptions`), the layers
    fake-quantized, the mean L1 distillation loss over the first and over the last tenth of the steps (at least one
    each), and the seconds it took."""

    steps: int
    batch_size: int
    lr: float
    teacher: str
    ema_momentum: float
    fake_quantized_layers: int
    loss_first: float
    loss_last: float
    seconds: float


def check_qat_options(options: QatOptions) -> None:
    """One line for a step count or batch size that is not a positive integer, or a learning rate that is not a
    positive number."""
    if isinstance(options.steps, bool) or not isinstance(options.steps, int) or options.steps < 1:
        raise GanslimError(f"qat_steps={options.steps!r} must be a positive integer (leave QAT out for plain "
                           f"post-training quantization)")
    if isinstance(options.batch_size, bool) or not isinstance(options.batch_size, int) or options.batch_size < 1:
        raise GanslimError(f"qat_batch={options.batch_size!r} must be a positive integer "
                           f"(default {DEFAULT_BATCH_SIZE})")
    if not (isinstance(options.lr, (int, float)) and math.isfinite(options.lr) and options.lr > 0):
        raise GanslimError(f"qat_lr={options.lr!r} must be a positive number (default {DEFAULT_LR:g})")


def finetune_qat(generator: nn.Module, calibration: Sequence[Tensor], options: QatOptions) -> tuple[nn.Module,
                                                                                                      QatLog]:
    """A fake-quantized copy of ``generator`` (left as it is), calibrated and fine-tuned as the module docstring
    says.

    Args:
        generator: a CPU image model in eval mode.
        calibration: its inputs, each (1, C, H, W) in its input range (sizes may differ between inputs).
        options: see :class:`QatOptions`; the teacher must take the same inputs and return outputs of the same
            shape.

    Returns:
        The fake-quantized model (eval mode, ranges fixed) and the :class:`QatLog`.
    """
    check_qat_options(options)
    started = time.perf_counter()
    student = prepare_qat(generator).eval()
    layers = fake_quantized_layers(student)
    if not layers:
        raise GanslimError(f"{type(generator).__name__} has no Conv2d, ConvTranspose2d or Linear layer to "
                           f"fake-quantize: QAT cannot help it; quantize it without QAT")
    teacher = generator if options.teacher is None else options.teacher
    with torch.no_grad(), observing(student, "minmax"):
        for inputs in calibration:
            student(inputs)
    batch_size = _batch_size(calibration, options.batch_size)
    losses = _distill(student, teacher, _batches(calibration, batch_size, options), options.lr)
    tail = max(1, len(losses) // 10)
    log = QatLog(steps=options.steps, batch_size=batch_size, lr=options.lr, teacher=options.teacher_name,
                 ema_momentum=EMA_MOMENTUM, fake_quantized_layers=len(layers), loss_first=sum(losses[:tail]) / tail,
                 loss_last=sum(losses[-tail:]) / tail, seconds=time.perf_counter() - started)
    return student, log


def _distill(student: nn.Module, teacher: nn.Module, batches: Iterator[Tensor], lr: float) -> list[float]:
    """One Adam step of L1(student(x), teacher(x)) per batch x, the ranges tracked by EMA; the loss of each step."""
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=lr)
    losses = []
    with torch.enable_grad(), observing(student, "ema"):
        for inputs in batches:
            with torch.no_grad():
                target = teacher(inputs)
            output = student(inputs)
            if output.shape != target.shape:
                raise GanslimError(f"the QAT teacher returns {tuple(target.shape)} for a {tuple(inputs.shape)} input, "
                                   f"the model {tuple(output.shape)}: pass a teacher of the same task and scale")
            loss = F.l1_loss(output, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def _batch_size(calibration: Sequence[Tensor], requested: int) -> int:
    """``requested``, at most the number of inputs, or 1 when their sizes differ (a super-resolution model's whole
    images may)."""
    return min(requested, len(calibration)) if len({tuple(x.shape) for x in calibration}) == 1 else 1


def _batches(calibration: Sequence[Tensor], batch_size: int, options: QatOptions) -> Iterator[Tensor]:
    """``options.steps`` batches (batch_size, C, H, W) of calibration inputs in seeded shuffled orders."""
    shuffle = torch.Generator().manual_seed(options.seed)
    order: list[int] = []
    for _ in range(options.steps):
        if len(order) < batch_size:
            order = torch.randperm(len(calibration), generator=shuffle).tolist() + order  # pop() takes the old first
        yield torch.cat([calibration[order.pop()] for _ in range(batch_size)])


def export_qdq_onnx(student: nn.Module, path: Path, example: Tensor, signature: Signature, dynamic: bool,
                    scratch: Path) -> None:
    """Write the fake-quantized ``student`` (from :func:`finetune_qat`) as the QDQ ONNX file ``path``: exported at
    ``example``'s shape (free axes if ``dynamic``) into ``scratch`` (an existing folder), then rewritten by ONNX
    Runtime's basic, hardware-independent optimizations, which fold the quantized weights into int8 and the biases
    into int32 initializers."""
    raw = scratch / "qat.fake_quant.onnx"
    export_onnx(student, raw, example, dynamic=dynamic, signature=signature)
    ort_session(raw, optimized_path=path, basic_optimizations=True)
