"""Fake quantization for quantization-aware training (QAT) of the conv / transposed-conv / linear layers of a model.

A fake-quantized layer computes in float what its int8 version computes: its weights rounded to int8 per output
channel, its input and output rounded to uint8 per tensor. The numbers are those of ``onnxruntime.quantization``'s
QDQ models (``QuantType.QInt8`` weights, symmetric; ``QuantType.QUInt8`` activations, asymmetric), so that the QDQ
ONNX graph exported from a fake-quantized model (``torch.onnx`` writes each fake quantization as a QuantizeLinear /
DequantizeLinear pair) runs in ONNX Runtime with ``QLinearConv`` and computes the same values:

* weights, per output channel ``c``: scale ``max|w_c| / 127``, zero point 0, integers in [-127, 127] (written in
  int8's [-128, 127] range, the one the exporter takes; -128 is never reached);
* activations, per tensor, from a range [low, high] (widened to hold 0): scale ``(high - low) / 255``, zero point
  ``round(-low / scale)``, integers in [0, 255].

Rounding is half to even in both (``nearbyint`` in torch, ONNX's QuantizeLinear). Gradients are the clipped
straight-through estimator of torch's fake-quant kernels: passed unchanged where the scaled value lies inside the
integer range, zero outside it (weights never lie outside: their scale covers them).

Activation ranges are observed, not learned: :func:`observing` sets every quantizer's :attr:`ActivationFakeQuant.mode`
to ``minmax`` (the min and max over all batches seen, as ONNX Runtime's MinMax calibration) or ``ema`` (an
exponential moving average of each batch's min and max, for fine-tuning); otherwise the ranges stay fixed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["EMA_MOMENTUM", "ActivationFakeQuant", "WeightFakeQuant", "activation_qparams", "fake_quantized_layers",
           "observing", "prepare_qat", "weight_qparams"]

WEIGHT_QMAX = 127  # symmetric int8: [-127, 127]
EXPORT_WEIGHT_RANGE = (-128, 127)  # the int8 range torch.onnx exports; values stay within +-WEIGHT_QMAX
ACTIVATION_RANGE = (0, 255)  # uint8
# Weight of each batch's min / max in the running ranges during fine-tuning: ~100 batches of memory, as torch's
# MovingAverageMinMaxObserver, long enough that one image's outliers do not set the range.
EMA_MOMENTUM = 0.01
QUANTIZED_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
MODES = ("minmax", "ema")


def weight_qparams(weight: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """Per-channel symmetric int8 scale (float32) and zero point (int32, all 0) of ``weight`` along ``axis``,
    each of shape (weight.shape[axis],); a channel of zeros gets scale 1, as ONNX Runtime gives it."""
    dims = [dim for dim in range(weight.dim()) if dim != axis]
    scale = weight.detach().abs().amax(dim=dims).float() / WEIGHT_QMAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, torch.zeros_like(scale, dtype=torch.int32)


def activation_qparams(low: float, high: float) -> tuple[float, int]:
    """Asymmetric uint8 scale and zero point of the range [low, high], widened to hold 0 as ONNX Runtime does."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / (ACTIVATION_RANGE[1] - ACTIVATION_RANGE[0])
    if scale <= 0:
        return 1.0, 0
    return scale, int(round(ACTIVATION_RANGE[0] - low / scale))


class WeightFakeQuant(nn.Module):
    """A parametrization of a layer's ``weight``: (out, in, ...) -> the same, rounded to int8 per channel along
    ``axis`` (0 for convs and linears; 1, the output channels, for transposed convs)."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, weight: Tensor) -> Tensor:
        scale, zero_point = weight_qparams(weight, self.axis)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, self.axis, *EXPORT_WEIGHT_RANGE)


class ActivationFakeQuant(nn.Module):
    """Rounds a tensor (any shape) to uint8 over its observed range [``low``, ``high``] (buffers).

    ``mode``: None (the range is fixed), ``minmax`` or ``ema`` (the range is updated from each batch before it is
    rounded; see the module docstring). A quantizer that has seen no batch passes tensors through unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("observed", torch.tensor(False))
        self.mode: str | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.mode is not None:
            self._observe(x.detach())
        if not self.observed:
            return x
        scale, zero_point = activation_qparams(float(self.low), float(self.high))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, *ACTIVATION_RANGE)

    def _observe(self, x: Tensor) -> None:
        low, high = x.min().float(), x.max().float()
        if not self.observed:
            self.low.copy_(low)
            self.high.copy_(high)
            self.observed.fill_(True)
        elif self.mode == "minmax":
            self.low.copy_(torch.minimum(self.low, low))
            self.high.copy_(torch.maximum(self.high, high))
        else:
            self.low.lerp_(low, EMA_MOMENTUM)
            self.high.lerp_(high, EMA_MOMENTUM)

    def extra_repr(self) -> str:
        return f"low={float(self.low):.4g}, high={float(self.high):.4g}, mode={self.mode}"


def prepare_qat(model: nn.Module) -> nn.Module:
    """A fake-quantized copy of ``model`` (which is left as it is): every ``nn.Conv2d``, ``nn.ConvTranspose2d``
    and ``nn.Linear`` (subclasses included) gets its weight rounded per output channel (a
    :class:`WeightFakeQuant` parametrization; the float weight, ``parametrizations.weight.original``, trains) and
    its first input and its output rounded by an :class:`ActivationFakeQuant` each (``input_quantizer``,
    ``output_quantizer``), which pass tensors through until :func:`observing` has shown them a batch."""
    prepared = copy.deepcopy(model)
    for layer in prepared.modules():
        if not isinstance(layer, QUANTIZED_LAYERS) or parametrize.is_parametrized(layer, "weight"):
            continue
        axis = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
        parametrize.register_parametrization(layer, "weight", WeightFakeQuant(axis))
        layer.input_quantizer = ActivationFakeQuant()
        layer.output_quantizer = ActivationFakeQuant()
        layer.register_forward_pre_hook(_quantize_input)
        layer.register_forward_hook(_quantize_output)
    return prepared


def fake_quantized_layers(model: nn.Module) -> list[nn.Module]:
    """The layers :func:`prepare_qat` fake-quantized in ``model``, in module order."""
    return [layer for layer in model.modules() if isinstance(getattr(layer, "input_quantizer", None),
                                                               ActivationFakeQuant)]


@contextlib.contextmanager
def observing(model: nn.Module, mode: str) -> Iterator[None]:
    """Within the block every activation quantizer of ``model`` updates its range from the batches it sees
    (``minmax`` or ``ema``); afterwards the ranges stay fixed."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    quantizers = [m for m in model.modules() if isinstance(m, ActivationFakeQuant)]
    for quantizer in quantizers:
        quantizer.mode = mode
    try:
        yield
    finally:
        for quantizer in quantizers:
            quantizer.mode = None


def _quantize_input(layer: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (layer.input_quantizer(args[0]), *args[1:])


def _quantize_output(layer: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
    return layer.output_quantizer(output)
