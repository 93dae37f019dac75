"""Import GAN Compression's mobile SPADE generators into ``mobile_spade``: its full mobile teacher (``netG
mobile_spade``) and the compressed students its ``export.py`` writes (``netG sub_mobile_spade``).

Both keep NVlabs' key names, with separable gamma / beta convs (``mlp_gamma.conv.0`` depthwise, ``conv.1`` the
``separable_conv_norm``, ``conv.2`` pointwise). What the files hold:

* **mobile_spade** trains with spectral norm (``norm_G spectralspadesyncbatch3x3``): folded as for SPADE
  (:func:`~ganslim.checkpoints.spade.fold_spectral_norm`). Its ``separable_conv_norm`` ``instance`` (the default; no
  keys) is ganslim's; ``batch`` (``conv.1`` BatchNorm keys) and ``none`` (no norm there) are refused.
* **sub_mobile_spade**: ``export.py`` cuts every conv to the leading channels of the configuration ``config_str``
  but copies the parameter-free BatchNorms' statistics whole, at the supernet's widths (16 ngf for head_0's
  norm_0, ...): the network zero-pads its input to that width and keeps the leading outputs, which in eval is the
  leading statistics. They are sliced to the sub-network's widths here.

The tensors give the configuration (each block's conv_0 width / its multiplier), ngf (the statistics' width / 16,
else fc's), the norm, SPADE's kernel and the label-map channels; ``config_str`` in the ``opt.txt`` beside the file
(or above its ``checkpoints/`` folder) or a ``channels`` option must agree with them. The label encoding and size
come from that opt.txt, a preset (``spade_cityscapes``, ``spade_coco``: their label maps and size), or options, as
for SPADE.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ganslim.archs import build_generator, builder_parameters
from ganslim.archs.spade.mobile import BLOCK_MULTIPLIERS, CHANNEL_NAMES, check_spade_channels
from ganslim.checkpoints.reference import _strip_module_prefix
from ganslim.checkpoints.spade import (
    _check_semantic_channels,
    _with_batch_counters,
    check_request,
    fold_spectral_norm,
    load_checked,
    options_beside,
    read_options_file,
    resolve_kwargs,
    spade_kwargs_from_options,
)
from ganslim.errors import GanslimError
from ganslim.registry import GENERATORS

StateDict = dict[str, torch.Tensor]
ARCH = "mobile_spade"
NETS = ("mobile_spade", "sub_mobile_spade")
_SEPARABLE_KEY = "head_0.norm_0.mlp_gamma.conv.0.weight"
_STATISTICS = ("param_free_norm.running_mean", "param_free_norm.running_var")


def is_mobile_spade(state_dict: StateDict) -> bool:
    """True when a SPADE state dict has GAN Compression's separable gamma convs (``mlp_gamma.conv.0``)."""
    return _SEPARABLE_KEY in _strip_module_prefix(state_dict)


def channels_from_config_str(text: str, source: str) -> list[int]:
    """GAN Compression's ``config_str`` (``32_40_40_32_40_24_32_24``) as the 8-entry configuration."""
    parts = text.split("_")
    if len(parts) != len(CHANNEL_NAMES) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise GanslimError(f"{source}: config_str {text!r} is not {len(CHANNEL_NAMES)} positive whole numbers joined "
                           f"by _ ({', '.join(CHANNEL_NAMES)}; e.g. 32_40_40_32_40_24_32_24): fix it")
    return [int(part) for part in parts]


def infer_mobile_from_tensors(weights: StateDict, label: str) -> dict:
    """The ``mobile_spade`` kwargs the (folded) tensors determine: channels, ngf, norm, spade_kernel, output_nc; plus
    ``semantic_nc``, the label-map channels. An ``up_4`` ('most' upsampling) is one line."""
    keys = ["fc.weight", *(f"{name}.conv_0.weight" for name in CHANNEL_NAMES[1:])]
    try:
        widths = [weights[key].shape[0] for key in keys]
        shared, image = weights["head_0.norm_0.mlp_shared.0.weight"], weights["conv_img.weight"]
    except KeyError as error:
        raise GanslimError(f"{label} is not a complete mobile SPADE generator (no '{error.args[0]}'): pass the net_G "
                           f"file GAN Compression saved") from None
    for key, width, multiplier in zip(keys, widths, BLOCK_MULTIPLIERS):
        if width % multiplier:
            raise GanslimError(f"{label}: '{key}' has {width} outputs, not a multiple of {multiplier}: it is not a GAN "
                               f"Compression mobile SPADE (check the file)")
    channels = [width // multiplier for width, multiplier in zip(widths, BLOCK_MULTIPLIERS)]
    statistics = weights.get(f"head_0.norm_0.{_STATISTICS[0]}")
    inferred = {"channels": channels, "ngf": channels[0] if statistics is None else max(1, statistics.shape[0] // 16),
                "norm": "instance" if statistics is None else "batch", "spade_kernel": shared.shape[-1],
                "output_nc": image.shape[0], "semantic_nc": shared.shape[1]}
    if any(key.startswith("up_4.") for key in weights):
        raise GanslimError(f"{label} has an up_4 ('most' upsampling), which ganslim's mobile_spade lacks (as GAN "
                           f"Compression's sub-networks do): compress a 'normal' or 'more' model")
    return inferred


def mobile_kwargs_from_options(options: dict[str, str], source: str) -> dict:
    """The ``mobile_spade`` kwargs a GAN Compression ``opt.txt`` sets (``config_str`` as ``channels``); a netG or a
    ``separable_conv_norm`` ganslim cannot run exactly is one line."""
    kwargs = spade_kwargs_from_options(options, source, NETS)
    separable = options.get("separable_conv_norm", "instance")
    if separable != "instance":
        raise GanslimError(f"{source} says separable_conv_norm {separable}: ganslim's mobile_spade runs an "
                           f"InstanceNorm inside its separable convs (separable_conv_norm instance) and imports only "
                           f"those; retrain with it")
    if options.get("config_str", "None") != "None":
        kwargs["channels"] = channels_from_config_str(options["config_str"], source)
    accepted = builder_parameters(GENERATORS, ARCH)
    return {key: value for key, value in kwargs.items() if key in accepted}


def slice_statistics(weights: StateDict, expected: StateDict) -> tuple[StateDict, int]:
    """``weights`` with every parameter-free norm's running statistics saved wider than ``expected`` (the
    supernet's widths ``export.py`` keeps) cut to their leading entries, and how many were cut."""
    sliced, count = dict(weights), 0
    for key, tensor in weights.items():
        target = expected.get(key)
        if key.endswith(_STATISTICS) and target is not None and tensor.dim() == 1 and tensor.numel() > target.numel():
            sliced[key] = tensor[: target.numel()].clone()
            count += 1
    return sliced, count


def import_mobile_spade(state_dict: StateDict, path: Path, arch: str | None = None,
                        overrides: dict | None = None) -> tuple[nn.Module, str, dict, dict]:
    """Build a ``mobile_spade`` generator and load a GAN Compression mobile / sub-mobile SPADE state dict into it
    (spectral norm folded, statistics sliced; strict; eval mode).

    Options, in increasing precedence: the tensors', ``opt.txt`` beside ``path``'s, the preset ``arch``'s, then
    ``overrides``. Returns ``(model, "mobile_spade", kwargs, meta)``. The model maps (N, semantic_nc, H, W) label maps
    -> (N, 3, H, W) in [-1, 1].
    """
    label = f"checkpoint '{path}'"
    overrides = dict(overrides or {})
    check_request(ARCH, arch, overrides, label, "a GAN Compression mobile SPADE generator")
    weights, folded = fold_spectral_norm(_strip_module_prefix(state_dict), label)
    separable_norm = next((key for key in weights if ".mlp_gamma.conv.1." in key), None)
    if separable_norm is not None:
        raise GanslimError(f"{label} holds '{separable_norm}': a BatchNorm inside the separable convs "
                           f"(separable_conv_norm batch), which ganslim's mobile_spade (an InstanceNorm there) cannot "
                           f"run exactly; retrain with separable_conv_norm instance")
    weights = _with_batch_counters(weights)
    inferred = infer_mobile_from_tensors(weights, label)
    semantic_nc = inferred.pop("semantic_nc")
    options_file = options_beside(path)
    source = f"'{options_file}'"
    from_file = mobile_kwargs_from_options(read_options_file(options_file), source) if options_file else {}
    kwargs = resolve_kwargs(inferred, from_file, arch, overrides, label, "GAN Compression")
    _check_semantic_channels(kwargs, semantic_nc, label)
    channels = check_spade_channels(kwargs["channels"])
    if channels != inferred["channels"]:
        given = (f"channels {channels}" if "channels" in overrides
                 else f"config_str {'_'.join(map(str, channels))} in {source}")
        raise GanslimError(f"{label}: {given} does not match its tensors, which hold the sub-network "
                           f"{'_'.join(map(str, inferred['channels']))}: fix it or drop it (a supernet's file must "
                           f"be exported to that sub-network first)")
    model = build_generator(ARCH, **kwargs)
    weights, sliced = slice_statistics(weights, model.state_dict())
    load_checked(model, ARCH, weights, label)
    meta = {"spectral_norms_folded": folded, "statistics_sliced": sliced,
            "options": str(options_file) if options_file else None}
    return model, ARCH, model.arch_kwargs(), meta
