"""Import generator / discriminator files of the pix2pix / CycleGAN reference implementation.

The reference (junyanz/pytorch-CycleGAN-and-pix2pix) saves plain state_dicts: ``latest_net_G.pth`` (pix2pix),
``latest_net_G_A.pth`` / ``latest_net_G_B.pth`` / ``latest_net_D_A.pth`` (CycleGAN). This module reads them
without unpickling code, works out which architecture and options produced them, and loads them strictly.

Quirks handled as the reference's own loader does:
- keys saved from an ``nn.DataParallel`` model carry a ``module.`` prefix; it is removed;
- files written before PyTorch 0.4 hold ``running_mean`` / ``running_var`` (and maybe ``num_batches_tracked``)
  for InstanceNorm layers, which no longer have such buffers; they are dropped.

What the weights cannot tell: U-Net dropout adds no keys, so ``use_dropout`` for a U-Net is assumed to be
pix2pix's default (on); pass ``use_dropout=False`` to override. It only matters in training mode.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Mapping, Union

import torch
from torch import nn

from ganslim.archs import build_discriminator, build_generator, builder_parameters
from ganslim.archs.translation.unet import MIN_DOWNS
from ganslim.errors import GanslimError
from ganslim.registry import DISCRIMINATORS, GENERATORS, Registry
from ganslim.weights import read_weights_only

StateDict = dict[str, torch.Tensor]
Source = Union[str, os.PathLike, Mapping[str, torch.Tensor]]

# Named architectures that are a generic one at a fixed depth.
_FIXED_DEPTH: dict[str, tuple[str, str, int]] = {
    "resnet_9blocks": ("resnet", "n_blocks", 9),
    "resnet_6blocks": ("resnet", "n_blocks", 6),
    "unet_256": ("unet", "num_downs", 8),
    "unet_128": ("unet", "num_downs", 7),
    "basic": ("n_layers", "n_layers", 3),
}
_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")
_MAX_KEYS_SHOWN = 3
_TOP_LEVEL = re.compile(r"^(model|net)\.(\d+)\.(.+)$")


def load_state_dict_file(path: str | os.PathLike) -> StateDict:
    """Read a state_dict file on the CPU with ``weights_only=True`` (no code is unpickled).

    Returns a plain ``{key: tensor}`` dict. A missing, unreadable or non-state_dict file raises a
    :class:`GanslimError` naming the path.
    """
    path = Path(path)
    if path.is_dir():
        raise GanslimError(f"checkpoint {path} is a folder; pass the .pth file in it (e.g. latest_net_G.pth)")
    if not path.is_file():
        raise GanslimError(f"checkpoint {path} does not exist; check the path")
    loaded = read_weights_only(path, "checkpoint", "save a plain state_dict with torch.save(model.state_dict(), "
                                                   "path)")
    return _as_state_dict(loaded, f"checkpoint {path}")


def _as_state_dict(loaded: object, label: str) -> StateDict:
    if not isinstance(loaded, Mapping) or not loaded:
        raise GanslimError(f"{label} is not a state_dict (it holds {type(loaded).__name__}); pass a net_G/net_D file")
    bad = [k for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise GanslimError(
            f"{label} is not a plain state_dict ({_shorten([repr(k) for k in bad])} hold no tensors); "
            "pass a net_G/net_D file, "
            "not a training checkpoint"
        )
    # A plain dict also drops torch's ``_metadata``, as the reference loader does.
    return dict(loaded)


def _strip_module_prefix(state_dict: StateDict) -> StateDict:
    prefix = "module."
    if all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: value for key, value in state_dict.items()}
    return state_dict


def _strip_stat_only_norms(state_dict: StateDict) -> tuple[StateDict, bool]:
    """Drop running statistics of norm layers that have no affine weight: old InstanceNorm buffers.

    The reference's BatchNorm always has an affine weight, so stats without a weight beside them can only
    come from an InstanceNorm saved before PyTorch 0.4. Returns the cleaned dict and whether any were found.
    """
    cleaned: StateDict = {}
    found = False
    for key, value in state_dict.items():
        owner, dot, leaf = key.rpartition(".")
        if dot and f".{leaf}" in _STAT_SUFFIXES and f"{owner}.weight" not in state_dict:
            found = True
            continue
        cleaned[key] = value
    return cleaned, found


def _patch_instance_norm(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Drop the keys that old files hold for the model's InstanceNorm layers without running statistics."""
    patched: StateDict = {}
    for key, value in state_dict.items():
        owner, _, leaf = key.rpartition(".")
        if f".{leaf}" in _STAT_SUFFIXES:
            try:
                module = model.get_submodule(owner)
            except AttributeError:
                module = None
            if isinstance(module, nn.modules.instancenorm._InstanceNorm) and (
                leaf == "num_batches_tracked" or not module.track_running_stats
            ):
                continue
        patched[key] = value
    return patched


def _top_level(state_dict: StateDict, container: str) -> dict[int, list[str]]:
    """``{i: [rest, ...]}`` for keys ``<container>.<i>.<rest>``."""
    entries: dict[int, list[str]] = {}
    for key in state_dict:
        match = _TOP_LEVEL.match(key)
        if match and match.group(1) == container:
            entries.setdefault(int(match.group(2)), []).append(match.group(3))
    return entries


def _conv_indices(state_dict: StateDict, container: str) -> list[int]:
    """Positions in ``<container>`` whose own ``weight`` is a 4-d conv kernel."""
    return sorted(
        index
        for index, rests in _top_level(state_dict, container).items()
        if "weight" in rests and state_dict[f"{container}.{index}.weight"].dim() == 4
    )


def _norm_of(state_dict: StateDict, norm_weight: str, conv_bias: str, had_instance_stats: bool) -> str:
    """batch: the first norm has an affine weight; instance: convs have biases (or old IN stats); else none."""
    if norm_weight in state_dict:
        return "batch"
    if had_instance_stats or conv_bias in state_dict:
        return "instance"
    return "none"


def _shorten(keys: list[str]) -> str:
    """The first few keys, and how many more there are: keeps error messages to one readable line."""
    more = f" (+{len(keys) - _MAX_KEYS_SHOWN} more)" if len(keys) > _MAX_KEYS_SHOWN else ""
    return ", ".join(keys[:_MAX_KEYS_SHOWN]) + more


def _infer_generator_generic(state_dict: StateDict, label: str = "state_dict") -> tuple[str, dict]:
    state_dict = _strip_module_prefix(state_dict)
    state_dict, had_instance_stats = _strip_stat_only_norms(state_dict)
    if "model.model.0.weight" in state_dict:
        return _infer_unet(state_dict, had_instance_stats, label)
    stem = state_dict.get("model.1.weight")
    if stem is not None and stem.dim() == 4 and "model.0.weight" not in state_dict:
        return _infer_resnet(state_dict, had_instance_stats)
    if "model.0.weight" in state_dict or "net.0.weight" in state_dict:
        raise GanslimError(f"{label} looks like a discriminator, not a generator; import it as a discriminator")
    raise GanslimError(
        f"{label} matches no pix2pix/CycleGAN generator (keys: {_shorten(list(state_dict))}); pass the arch"
    )


def _infer_resnet(state_dict: StateDict, had_instance_stats: bool) -> tuple[str, dict]:
    top = _top_level(state_dict, "model")
    blocks = sorted(i for i, rests in top.items() if any(r.startswith("conv_block.") for r in rests))
    last_conv = _conv_indices(state_dict, "model")[-1]
    use_dropout = any(
        state_dict.get(f"model.{block}.conv_block.6.weight", torch.empty(0)).dim() == 4 for block in blocks
    )
    stem = state_dict["model.1.weight"]
    return "resnet", {
        "input_nc": stem.shape[1],
        "output_nc": state_dict[f"model.{last_conv}.weight"].shape[0],
        "ngf": stem.shape[0],
        "norm": _norm_of(state_dict, "model.2.weight", "model.1.bias", had_instance_stats),
        "use_dropout": use_dropout,
        "n_blocks": len(blocks),
    }


def _infer_unet(state_dict: StateDict, had_instance_stats: bool, label: str) -> tuple[str, dict]:
    # Block prefixes: the outermost holds its inner block at index 1, every other block at index 3.
    chain = ["model.model."]
    candidate = chain[0] + "1.model."
    while any(key.startswith(candidate) for key in state_dict):
        chain.append(candidate)
        candidate += "3.model."
    if len(chain) < 2:
        raise GanslimError(f"{label} has a U-Net stem but no inner blocks; pass the arch")
    down, up = state_dict["model.model.0.weight"], state_dict.get("model.model.3.weight")
    if up is None:
        raise GanslimError(f"{label} has a U-Net stem but no outermost up-conv (model.model.3); pass the arch")
    num_downs = len(chain)
    return "unet", {
        "input_nc": down.shape[1],
        "output_nc": up.shape[1],  # ConvTranspose2d weights are (in, out, k, k)
        "ngf": down.shape[0],
        "norm": _norm_of(state_dict, chain[1] + "2.weight", chain[1] + "1.bias", had_instance_stats),
        "use_dropout": num_downs > MIN_DOWNS,
        "num_downs": num_downs,
    }


def _infer_discriminator_generic(state_dict: StateDict, label: str = "state_dict") -> tuple[str, dict]:
    state_dict = _strip_module_prefix(state_dict)
    state_dict, had_instance_stats = _strip_stat_only_norms(state_dict)
    first = state_dict.get("net.0.weight")
    if first is not None:
        return "pixel", {
            "input_nc": first.shape[1],
            "ndf": first.shape[0],
            "norm": _norm_of(state_dict, "net.3.weight", "net.2.bias", had_instance_stats),
        }
    first = state_dict.get("model.0.weight")
    if first is not None and first.dim() == 4:
        n_layers = len(_conv_indices(state_dict, "model")) - 2
        if n_layers < 1:
            raise GanslimError(f"{label} has too few convs for a PatchGAN ({n_layers + 2}); pass the arch")
        return "n_layers", {
            "input_nc": first.shape[1],
            "ndf": first.shape[0],
            "norm": _norm_of(state_dict, "model.3.weight", "model.2.bias", had_instance_stats),
            "n_layers": n_layers,
        }
    if "model.1.weight" in state_dict or "model.model.0.weight" in state_dict:
        raise GanslimError(f"{label} looks like a generator, not a discriminator; import it as a generator")
    raise GanslimError(
        f"{label} matches no pix2pix/CycleGAN discriminator (keys: {_shorten(list(state_dict))}); pass the arch"
    )


def _specific(name: str, kwargs: dict) -> tuple[str, dict]:
    """Prefer a fixed-depth name (``resnet`` with n_blocks 9 -> ``resnet_9blocks``) when one matches."""
    for specific, (generic, depth_key, depth) in _FIXED_DEPTH.items():
        if generic == name and kwargs.get(depth_key) == depth:
            return specific, {k: v for k, v in kwargs.items() if k != depth_key}
    return name, kwargs


def infer_generator_arch(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, dict]:
    """Work out ``(arch, kwargs)`` of a reference generator from its tensors.

    ``arch`` is ``resnet_9blocks`` / ``resnet_6blocks`` / ``unet_256`` / ``unet_128`` when the depth matches,
    else ``resnet`` (with ``n_blocks``) or ``unet`` (with ``num_downs``). kwargs: input_nc, output_nc, ngf,
    norm, use_dropout (U-Net: assumed on, see the module docstring). Raises GanslimError if nothing fits.
    """
    return _specific(*_infer_generator_generic(_as_state_dict(state_dict, "state_dict")))


def infer_discriminator_arch(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, dict]:
    """Work out ``(arch, kwargs)`` of a reference discriminator: ``basic``, ``n_layers`` or ``pixel``.

    kwargs: input_nc (6 for pix2pix), ndf, norm (+ n_layers). Raises GanslimError if nothing fits.
    """
    return _specific(*_infer_discriminator_generic(_as_state_dict(state_dict, "state_dict")))


def _read(source: Source) -> tuple[str, StateDict]:
    if isinstance(source, (str, os.PathLike)):
        return f"checkpoint {source}", load_state_dict_file(source)
    return "state_dict", _as_state_dict(source, "state_dict")


def _check_fit(model: nn.Module, state_dict: StateDict, label: str, arch: str, kwargs: dict) -> StateDict:
    """Return ``state_dict`` completed with absent ``num_batches_tracked``, or raise one line saying what differs."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    reshaped = [k for k in state_dict if k in expected and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or reshaped:
        problems = []
        for title, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                problems.append(f"{title} {_shorten(keys)}")
        if reshaped:
            key = reshaped[0]
            more = f" (+{len(reshaped) - 1} more)" if len(reshaped) > 1 else ""
            problems.append(
                f"shape of {key} is {list(state_dict[key].shape)} in the file, {list(expected[key].shape)} "
                f"in the model{more}"
            )
        options = ", ".join(f"{k} {v}" for k, v in kwargs.items())
        raise GanslimError(
            f"{label} does not fit {arch} ({options}): {'; '.join(problems)}; "
            "pass --arch/--ngf/--norm or check the file"
        )
    completed = dict(state_dict)
    for key in expected:
        completed.setdefault(key, expected[key])
    return completed


def _import(
    registry: Registry,
    build: Callable[..., nn.Module],
    infer: Callable[[StateDict, str], tuple[str, dict]],
    source: Source,
    arch: str | None,
    overrides: dict,
) -> tuple[nn.Module, str, dict]:
    label, state_dict = _read(source)
    state_dict = _strip_module_prefix(state_dict)
    if arch is None:
        name, kwargs = infer(state_dict, label)
        unknown = sorted(set(overrides) - set(builder_parameters(registry, name)))
        if unknown:
            raise GanslimError(f"{label} is a {name} {registry.kind}, which takes no {', '.join(unknown)}")
        name, kwargs = _specific(name, {**kwargs, **overrides})
    else:
        accepted = builder_parameters(registry, arch)
        try:
            _, inferred = infer(state_dict, label)
        except GanslimError:
            inferred = {}
        # Keep what the weights say where the chosen arch takes it; the caller's overrides win.
        name, kwargs = arch, {**{k: v for k, v in inferred.items() if k in accepted}, **overrides}
    model = build(name, **kwargs)
    state_dict = _check_fit(model, _patch_instance_norm(state_dict, model), label, name, kwargs)
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), name, kwargs


def import_generator(
    source: Source, arch: str | None = None, **overrides
) -> tuple[nn.Module, str, dict]:
    """Build a generator and load a reference checkpoint into it (strict).

    Args:
        source: path to a ``latest_net_G*.pth`` file, or an already loaded state_dict.
        arch: registered generator name; inferred from the weights when None.
        overrides: architecture kwargs that win over the inferred ones (e.g. ``use_dropout=False``).
    Returns:
        ``(generator, arch, kwargs)`` with the generator in eval mode on the CPU; ``build_generator(arch,
        **kwargs)`` rebuilds the same network. Maps (N, input_nc, H, W) -> (N, output_nc, H, W).
    Raises:
        GanslimError: unreadable file, or weights that do not fit (one line listing what differs).
    """
    return _import(GENERATORS, build_generator, _infer_generator_generic, source, arch, overrides)


def import_discriminator(
    source: Source, arch: str | None = None, **overrides
) -> tuple[nn.Module, str, dict]:
    """Build a discriminator and load a reference ``latest_net_D*.pth`` into it (strict).

    Same contract as :func:`import_generator`; the discriminator maps (N, input_nc, H, W) -> (N, 1, h, w).
    """
    return _import(DISCRIMINATORS, build_discriminator, _infer_discriminator_generic, source, arch, overrides)
