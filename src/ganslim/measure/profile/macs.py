"""Parameters and multiply-accumulates of one forward pass, in two conventions.

Two MAC conventions are reported, because papers and honest arithmetic disagree:

* ``macs`` (true): the multiply-adds of convolutions, matrix products and attention. A transposed
  convolution is counted at its *input* resolution, ``N*C_in*H_in*W_in * (C_out/groups) * k_h*k_w``, which
  is the work a real kernel does. Norms, activations, pooling and elementwise ops count 0, and so do fixed
  resampling filters (StyleGAN2's [1, 3, 3, 1] blur, run inside ``ganslim.nn.upfirdn.fixed_filtering``): not
  learned layers, and left out of the reference figures (config-f synthesis: 74.26 G).
* ``macs_published``: the convention of torchprofile (mit-han-lab/torchprofile), which produced the
  tables of GAN Compression, OMGD, CAT and their successors. Every convolution is counted as
  ``prod(output shape) * C_in' * k_h*k_w`` where ``C_in'`` is read from the weight as torchprofile reads
  it: ``weight.shape[1]`` when the output has ``weight.shape[0]`` channels (ordinary convolutions),
  ``weight.shape[0]`` otherwise (transposed convolutions, which are therefore counted at *output*
  resolution, zeros included). It also counts ``prod(output shape)`` for a norm with an affine weight,
  average pooling and means, out-of-place ``leaky_relu``, and elementwise ``mul``; ``4*prod(output)`` for
  bilinear upsampling; matrix products as in the true count. torchprofile has no rule for in-place
  ``leaky_relu_`` (nn.LeakyReLU(inplace=True)), so it counts 0 there, and so do we.

Ops are seen through a ``TorchDispatchMode``, so functional calls (``F.conv2d`` with a raw weight,
``torch.matmul``) are counted as well as modules. The forward runs under ``torch.no_grad`` (not inference
mode), where composite ops such as ``linear`` or ``instance_norm`` reach the mode already lowered to the
kernels that really run (``addmm``, ``native_batch_norm``); the rules are written for that level and give
the same totals torchprofile gets from the composite ops.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ganslim.measure.profile.running import Inputs, eval_mode, lowered_ops, outside_inference
from ganslim.nn.kernels import standard_kernels
from ganslim.nn.upfirdn import in_fixed_filtering


@dataclass(frozen=True)
class MacCount:
    """Multiply-accumulate counts of one forward pass in the two conventions (see the module docstring)."""

    macs: int
    macs_published: int


def count_params(model: nn.Module) -> int:
    """Number of parameter elements (a parameter shared by several modules counts once)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example_input: Inputs) -> MacCount:
    """Count MACs of one forward of ``model(*example_input)`` in both conventions.

    Args:
        model: any module; run in eval mode (its train/eval flags are restored afterwards).
        example_input: a tensor (N, C, H, W) or a sequence of positional tensors, on the model's device.
            Meta tensors work (with a model built on the meta device), which counts without computing.
    """
    counter = _MacCounter()
    with eval_mode(model), lowered_ops(), standard_kernels():
        args = outside_inference(example_input)
        with counter:
            model(*args)
    return MacCount(macs=counter.macs, macs_published=counter.macs_published)


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def _arg(func: torch._ops.OpOverload, args: tuple, kwargs: dict, index: int) -> Any:
    """Positional argument ``index`` of an aten call, wherever the caller put it."""
    if index < len(args):
        return args[index]
    schema_arg = func._schema.arguments[index]
    if schema_arg.name in kwargs:
        return kwargs[schema_arg.name]
    return schema_arg.default_value


def _first_tensor(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


# A rule maps (func, args, kwargs, out) to (true MACs, published MACs).
_Rule = Callable[[torch._ops.OpOverload, tuple, dict, Any], tuple[int, int]]


def _convolution(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    # aten.convolution / aten._convolution: (input, weight, bias, stride, padding, dilation, transposed, ...)
    x, weight = _arg(func, args, kwargs, 0), _arg(func, args, kwargs, 1)
    transposed = bool(_arg(func, args, kwargs, 6))
    kernel = _numel(weight.shape[2:])
    # Weight is [C_out, C_in/g, k..] for a convolution and [C_in, C_out/g, k..] when transposed.
    true = (x.numel() if transposed else out.numel()) * weight.shape[1] * kernel
    in_channels = weight.shape[1] if out.shape[1] == weight.shape[0] else weight.shape[0]
    return true, out.numel() * in_channels * kernel


def _contraction(index: int) -> _Rule:
    """Matrix products: output elements times the contracted size, read from argument ``index``."""

    def rule(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        operand = _arg(func, args, kwargs, index)
        macs = _first_tensor(out).numel() * operand.shape[-1]
        return macs, macs

    return rule


def _attention(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    # Q K^T then P V: query [..., L, E], key [..., S, E], value [..., S, Ev].
    query, key, value = (_arg(func, args, kwargs, i) for i in range(3))
    *batch, length, embed = query.shape
    macs = _numel(batch) * length * key.shape[-2] * (embed + value.shape[-1])
    return macs, macs


def _norm(weight_index: int) -> _Rule:
    def rule(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        affine = _arg(func, args, kwargs, weight_index) is not None
        return 0, _first_tensor(out).numel() if affine else 0

    return rule


def _published_per_output(factor: int) -> _Rule:
    def rule(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        return 0, factor * _first_tensor(out).numel()

    return rule


@functools.cache
def _rules() -> dict[Any, _Rule]:
    """Rules keyed by aten overload packet, for the ops seen under no_grad; ops not listed count 0.

    Names missing from this torch build are skipped.
    """
    by_name: dict[str, _Rule] = {
        "convolution": _convolution,
        "_convolution": _convolution,
        "mm": _contraction(0),
        "bmm": _contraction(0),
        "mv": _contraction(0),
        "dot": _contraction(0),
        "addmm": _contraction(1),
        "addmv": _contraction(1),
        "baddbmm": _contraction(1),
        "_scaled_dot_product_flash_attention": _attention,
        "_scaled_dot_product_flash_attention_for_cpu": _attention,
        "_scaled_dot_product_efficient_attention": _attention,
        "_scaled_dot_product_cudnn_attention": _attention,
        # batch_norm, instance_norm (weight repeated per sample), layer_norm and group_norm lower to these.
        "native_batch_norm": _norm(1),
        "_native_batch_norm_legit": _norm(1),
        "_native_batch_norm_legit_no_training": _norm(1),
        "_batch_norm_with_update": _norm(1),
        "_batch_norm_no_update": _norm(1),
        "cudnn_batch_norm": _norm(1),
        "miopen_batch_norm": _norm(1),
        "native_layer_norm": _norm(2),
        "native_group_norm": _norm(1),
        "mul": _published_per_output(1),
        "mul_": _published_per_output(1),
        "leaky_relu": _published_per_output(1),
        "upsample_bilinear2d": _published_per_output(4),
        # avg_pool1d and adaptive_avg_pool{1,2}d lower to these; the element count is unchanged.
        "mean": _published_per_output(1),
        "avg_pool2d": _published_per_output(1),
        "avg_pool3d": _published_per_output(1),
        "_adaptive_avg_pool2d": _published_per_output(1),
        "_adaptive_avg_pool3d": _published_per_output(1),
    }
    rules: dict[Any, _Rule] = {}
    for name, rule in by_name.items():
        packet = getattr(torch.ops.aten, name, None)
        if packet is not None:
            rules[packet] = rule
    return rules


class _MacCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.macs_published = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = _rules().get(func.overloadpacket)
        if rule is not None:
            true, published = rule(func, args, kwargs, out)
            self.macs += 0 if in_fixed_filtering() else int(true)
            self.macs_published += int(published)
        return out
