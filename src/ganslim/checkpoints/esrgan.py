"""Import ESRGAN / RRDBNet weights in the three key layouts users have, the architecture read from the tensors.

* **BasicSR** (XPixelGroup/BasicSR, Real-ESRGAN): ``conv_first``, ``body.N.rdb1.conv1``, ``conv_body``,
  ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``; training saves ``{"params": ...}`` and/or
  ``{"params_ema": ...}`` (``params_ema`` is preferred, see :func:`unwrap_basicsr`), its converter a bare dict.
* **xinntao's new arch** (xinntao/ESRGAN ``RRDBNet_arch.py``): ``conv_first``, ``RRDB_trunk.N.RDB1.conv1``,
  ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``, ``conv_last``.
* **the old arch** (``RRDB_ESRGAN_x4_old_arch.pth``): one flattened ``model`` Sequential: ``model.0`` (first conv),
  ``model.1.sub.N.RDB1.conv1.0`` (blocks), ``model.1.sub.<num_block>`` (trunk conv), ``model.3`` / ``model.6``
  (up convs), ``model.8`` / ``model.10`` (HR convs).

Keys are renamed to BasicSR's (ganslim's ``rrdbnet`` uses them) and loaded strictly. Inferred: ``num_feat``
(conv_first's outputs), ``num_block`` (highest block index + 1), ``num_grow_ch`` (a dense conv's outputs),
``output_nc`` (conv_last's outputs), ``input_nc`` (= output_nc) and ``scale`` (conv_first takes 1x, 4x or 16x the
image channels for x4, x2, x1: pixel-unshuffle).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ganslim.archs import build_generator, builder_parameters
from ganslim.checkpoints.reference import _shorten, _strip_module_prefix
from ganslim.errors import GanslimError
from ganslim.registry import GENERATORS
from ganslim.weights import describe_mismatch

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
ARCH = "rrdbnet"
BASICSR_WRAPPERS = ("params_ema", "params")  # in order of preference: the EMA weights are the ones to evaluate
# conv_first's input channels / the image's -> scale (the x2 and x1 models pixel-unshuffle by 2 and 4 first).
_SCALE_OF_CHANNEL_RATIO = {1: 4, 4: 2, 16: 1}
# A key any RRDBNet layout has and no pix2pix / CycleGAN file does.
_ESRGAN_KEY = re.compile(r"^(conv_first|conv_body|trunk_conv|RRDB_trunk\.\d+\.RDB[123]\.|body\.\d+\.rdb[123]\."
                         r"|model\.1\.sub\.\d+\.RDB[123]\.)")


@dataclass(frozen=True)
class KeyLayout:
    """How one layout names RRDBNet's convs: ``name`` of a BasicSR conv -> its name here (``.weight`` and
    ``.bias`` follow), for ``num_block`` blocks; ``block`` finds a block index in a key."""

    title: str
    example: str
    block: re.Pattern
    rename: Callable[[str, int], str]

    def num_block(self, keys: list[str]) -> int:
        indices = [int(match.group(1)) for match in map(self.block.match, keys) if match]
        return max(indices) + 1 if indices else 0


def _new_arch_name(name: str, num_block: int) -> str:
    fixed = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    if name in fixed:
        return fixed[name]
    return re.sub(r"^body\.(\d+)\.rdb([123])\.", r"RRDB_trunk.\1.RDB\2.", name)


def _old_arch_name(name: str, num_block: int) -> str:
    fixed = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_block}", "conv_up1": "model.3",
             "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
    if name in fixed:
        return fixed[name]
    return re.sub(r"^body\.(\d+)\.rdb([123])\.(conv[1-5])$", r"model.1.sub.\1.RDB\2.\3.0", name)


LAYOUTS = (
    KeyLayout("BasicSR", "body.N.rdb1.conv1", re.compile(r"^body\.(\d+)\.rdb"), lambda name, num_block: name),
    KeyLayout("xinntao's new arch", "RRDB_trunk.N.RDB1.conv1, trunk_conv, upconv1, HRconv",
              re.compile(r"^RRDB_trunk\.(\d+)\.RDB"), _new_arch_name),
    KeyLayout("ESRGAN's old arch", "model.0, model.1.sub.N.RDB1.conv1.0, model.3",
              re.compile(r"^model\.1\.sub\.(\d+)\.RDB"), _old_arch_name),
)


def basicsr_conv_names(num_block: int) -> list[str]:
    """RRDBNet's convs in BasicSR's names, in ``state_dict`` order."""
    blocks = [f"body.{n}.rdb{r}.conv{c}" for n in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    return ["conv_first", *blocks, "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def unwrap_basicsr(content: object, path: str | Path) -> StateDict | None:
    """The weights in a BasicSR file ``{"params_ema": ..., "params": ...}`` (``params_ema`` preferred; a file with
    only ``params`` says so once), or None when ``content`` is no such wrapper."""
    if not isinstance(content, dict):
        return None
    for key in BASICSR_WRAPPERS:
        weights = content.get(key)
        if isinstance(weights, dict) and weights and all(isinstance(v, torch.Tensor) for v in weights.values()):
            if key == "params":
                logger.warning("note: '%s' holds no params_ema (BasicSR's EMA weights): loading its params", path)
            return dict(weights)
    return None


def is_esrgan(state_dict: StateDict) -> bool:
    """True when ``state_dict`` has a key only RRDBNet layouts have (so it is imported here, not as pix2pix)."""
    return any(_ESRGAN_KEY.match(key) for key in _strip_module_prefix(state_dict))


def to_basicsr(state_dict: StateDict, label: str) -> tuple[StateDict, KeyLayout]:
    """``state_dict`` renamed to BasicSR's keys, and the layout it was in.

    Raises:
        GanslimError: its keys fit no layout exactly; the message names the closest layout and what differs.
    """
    state_dict = _strip_module_prefix(state_dict)
    keys = list(state_dict)
    fits = []
    for layout in LAYOUTS:
        num_block = layout.num_block(keys)
        renamed = {f"{layout.rename(conv, num_block)}.{leaf}": f"{conv}.{leaf}"
                   for conv in basicsr_conv_names(num_block) for leaf in ("weight", "bias")}
        missing = [key for key in renamed if key not in state_dict]
        unexpected = [key for key in keys if key not in renamed]
        if not missing and not unexpected:
            return {renamed[key]: tensor for key, tensor in state_dict.items()}, layout
        fits.append((len(missing) + len(unexpected), layout, missing, unexpected))
    _, layout, missing, unexpected = min(fits, key=lambda fit: fit[0])
    differences = [f"{title} {_shorten(found)}" for title, found in (("missing", missing),
                                                                      ("unexpected", unexpected)) if found]
    raise GanslimError(f"{label} is not an RRDBNet in a known key layout; the closest is {layout.title} "
                       f"({layout.example}), from which it differs: {'; '.join(differences)}; pass a BasicSR, "
                       f"xinntao ESRGAN or old-arch ESRGAN generator file")


def infer_rrdbnet(state_dict: StateDict, label: str) -> dict:
    """The ``rrdbnet`` kwargs a state dict in BasicSR's keys was saved from (see the module docstring)."""
    first, last = state_dict["conv_first.weight"], state_dict["conv_last.weight"]
    output_nc = last.shape[0]
    ratio, remainder = divmod(first.shape[1], output_nc)
    if remainder or ratio not in _SCALE_OF_CHANNEL_RATIO:
        raise GanslimError(f"{label}: conv_first takes {first.shape[1]} channels and conv_last gives {output_nc}, "
                           f"but an RRDBNet's conv_first takes 1x, 4x or 16x the image's channels (x4, x2, x1): "
                           f"the file is not an ESRGAN generator of a known scale")
    grow = state_dict.get("body.0.rdb1.conv1.weight")
    return {"input_nc": output_nc, "output_nc": output_nc, "scale": _SCALE_OF_CHANNEL_RATIO[ratio],
            "num_feat": first.shape[0], "num_block": LAYOUTS[0].num_block(list(state_dict)),
            "num_grow_ch": grow.shape[0] if grow is not None else 32}


def import_rrdbnet(state_dict: StateDict, label: str, arch: str | None = None,
                   overrides: dict | None = None) -> tuple[nn.Module, str, dict, str]:
    """Build an ``rrdbnet`` and load ESRGAN weights in any of the three layouts into it (strict, eval mode).

    ``overrides`` (e.g. ``scale``) must agree with the tensors. Returns ``(model, "rrdbnet", kwargs, layout
    title)``; the model maps (N, C, H, W) in [0, 1] -> (N, C, scale*H, scale*W).
    """
    overrides = dict(overrides or {})
    if arch not in (None, ARCH):
        raise GanslimError(f"{label} holds an ESRGAN RRDBNet, not a {arch}: drop the architecture (or pass {ARCH})")
    unknown = sorted(set(overrides) - set(builder_parameters(GENERATORS, ARCH)))
    if unknown:
        raise GanslimError(f"{label} is an {ARCH} generator, which takes no {', '.join(unknown)}")
    weights, layout = to_basicsr(state_dict, label)
    inferred = infer_rrdbnet(weights, label)
    scale = overrides.get("scale", inferred["scale"])
    if scale != inferred["scale"]:
        raise GanslimError(f"{label} holds an x{inferred['scale']} RRDBNet (conv_first takes "
                           f"{weights['conv_first.weight'].shape[1]} channels for {inferred['input_nc']}-channel "
                           f"images), not x{scale}: pass --scale {inferred['scale']} or the x{scale} model's file")
    kwargs = {**inferred, **overrides}
    model = build_generator(ARCH, **kwargs)
    problem = describe_mismatch(weights, model.state_dict())
    if problem:
        raise GanslimError(f"{label} does not fit {ARCH} ({', '.join(f'{k} {v}' for k, v in kwargs.items())}): "
                           f"{problem}; drop the overrides or check the file")
    model.load_state_dict(weights, strict=True)
    return model.eval(), ARCH, kwargs, layout.title
