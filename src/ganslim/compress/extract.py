"""Turn a configuration of a once-for-all supernet into a standalone compact generator with real tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from torch import nn

from ganslim.archs.spade import MobileSPADEGenerator, SuperMobileSPADEGenerator
from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.nn.elastic import leading_slice

# supernet type -> (compact type, its registered arch)
COMPACT_OF = {SuperMobileResnetGenerator: (MobileResnetGenerator, "mobile_resnet"),
              SuperMobileSPADEGenerator: (MobileSPADEGenerator, "mobile_spade")}


def compact_arch(supernet: nn.Module) -> str | None:
    """The registered arch of the compact sub-networks of ``supernet`` (``mobile_resnet``, ``mobile_spade``); None
    for a model that is no supernet."""
    return COMPACT_OF.get(type(supernet), (None, None))[1]


def extract_subnet(supernet: SuperMobileResnetGenerator | SuperMobileSPADEGenerator, channels: Sequence[int]
                   ) -> MobileResnetGenerator | MobileSPADEGenerator:
    """The compact model (``mobile_resnet`` or ``mobile_spade``) at widths ``channels`` holding copies of the
    supernet's leading weight slices.

    Every tensor of the compact model (weights, biases, BatchNorm affine parameters and running statistics)
    is a fresh copy of the leading block of the supernet's tensor with the same name, so in eval mode its
    output equals ``supernet.configure(channels)``'s. The supernet is left as it was (weights and
    configuration); the compact model is on its device and dtype, in its train/eval mode, and is rebuilt from
    its arch (:func:`compact_arch`) + ``compact.arch_kwargs()``.

    Raises a GanslimError if ``channels`` is not a configuration of the supernet (wrong length, a width
    above the largest).
    """
    channels = supernet.check_config(channels)
    kwargs = {**supernet.arch_kwargs(), "channels": channels}
    with torch.device("meta"):  # no point initialising weights that are overwritten next
        compact = COMPACT_OF[type(supernet)][0](**kwargs)
    shared = supernet.state_dict()
    with torch.no_grad():
        state = {
            name: leading_slice(shared[name], tensor.shape).clone()
            for name, tensor in compact.state_dict().items()
        }
    compact.load_state_dict(state, strict=True, assign=True)
    return compact.train(supernet.training)
