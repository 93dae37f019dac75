"""Import StyleGAN2 networks from the files users have, the architecture read from the tensors.

* **rosinality train.py** checkpoints: ``{"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p"}``
  (``args`` an ``argparse.Namespace``, admitted by name to ``torch.load(weights_only=True)``). The generator is
  ``g_ema`` (the EMA weights, the ones to sample from); a file with only ``g`` says so once. No mean W is stored.
* **rosinality convert_weight.py** files: ``{"g_ema", "latent_avg"}`` (maybe ``g``, ``d``); ``latent_avg`` is the
  mean W truncation pulls toward.
* bare **state dicts** in rosinality's keys (``style.1.weight``, ``conv1.conv.weight``, ... or the discriminator's
  ``convs.0.0.weight``, ``final_linear.0.weight``).
* **NVIDIA** stylegan2-ada-pytorch / stylegan3 snapshot ``.pkl`` files (``{"G", "D", "G_ema", ...}``) of
  StyleGAN2 networks, read by :mod:`ganslim.checkpoints.restricted_pickle` without running their code. Their
  keys are renamed to rosinality's: ``mapping.fc{i}`` -> ``style.{i+1}``, ``synthesis.b4.const`` ->
  ``input.input``, ``b{r}.conv0`` / ``conv1`` / ``torgb`` -> ``convs.{2k}`` / ``convs.{2k+1}`` / ``to_rgbs.{k}``
  (``affine`` -> ``conv.modulation``, ``noise_strength`` -> ``noise.weight``, ``noise_const`` ->
  ``noises.noise_i``, ``bias`` -> ``activate.bias``), ``mapping.w_avg`` -> ``style.w_avg``; convolution weights
  gain a leading axis. The equalised-lr gains agree (both scale by 1/sqrt(fan-in) at run time; NVIDIA's
  demodulated convs skip that gain, which demodulation cancels). Their ``conv_clamp`` and the mapping's learning-rate
  multiplier are read from the pickled objects; their fp16 layers run in fp32 here.

A generator without a stored mean W keeps ``style.w_avg`` NaN and ``meta["w_avg"] == "missing"``: estimate it
with :func:`ganslim.archs.stylegan2.estimate_w_avg` before truncating.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ganslim.archs import build_discriminator, build_generator, builder_parameters
from ganslim.archs.stylegan2 import rosinality_channels
from ganslim.checkpoints.reference import _strip_module_prefix
from ganslim.checkpoints.restricted_pickle import PersistentObject, RefusedGlobal, restricted_load
from ganslim.errors import GanslimError, first_line
from ganslim.registry import DISCRIMINATORS, GENERATORS
from ganslim.weights import describe_mismatch

logger = logging.getLogger(__name__)

StateDict = dict[str, Tensor]
ARCH = "stylegan2"
GENERATOR_KEYS = ("g_ema", "g")  # rosinality's, in order of preference
UPSAMPLE_GAIN = 4  # rosinality stores its x2 up filters multiplied by factor**2; NVIDIA's are normalised to 1
_NVIDIA_BLOCK = re.compile(r"^(?:synthesis\.)?b(\d+)\.")


@dataclass
class StyleGAN2File:
    """What a StyleGAN2 file holds, in rosinality's key layout.

    ``generator_key`` names the generator it came from (``g_ema``, ``g`` or NVIDIA's ``G_ema``); ``w_avg`` is the
    stored mean W (w_dim,) or None; the ``*_kwargs`` are architecture options the tensors cannot tell.
    """

    format: str
    generator: StateDict | None = None
    generator_key: str | None = None
    discriminator: StateDict | None = None
    w_avg: Tensor | None = None
    generator_kwargs: dict = field(default_factory=dict)
    discriminator_kwargs: dict = field(default_factory=dict)


def _tensor_dict(value: object) -> StateDict | None:
    if isinstance(value, dict) and value and all(isinstance(v, Tensor) for v in value.values()):
        return _strip_module_prefix(dict(value))
    return None


def unwrap_rosinality(content: object) -> StyleGAN2File | None:
    """The networks in a rosinality train.py or convert_weight.py dict, or None when ``content`` is no such file."""
    if not isinstance(content, dict):
        return None
    found = {key: _tensor_dict(content.get(key)) for key in (*GENERATOR_KEYS, "d")}
    key = next((key for key in GENERATOR_KEYS if found[key] is not None), None)
    if key is None:
        return None
    average = content.get("latent_avg")
    if "args" in content or "g_optim" in content:
        kind = "rosinality train.py"
    elif average is not None:
        kind = "rosinality convert_weight.py"
    else:
        kind = "rosinality checkpoint"
    return StyleGAN2File(kind, found[key], key, found["d"],
                         average.detach().reshape(-1).float() if isinstance(average, Tensor) else None)


def network_kind(state_dict: StateDict) -> str | None:
    """``"generator"`` or ``"discriminator"`` when ``state_dict`` is in rosinality's StyleGAN2 keys, else None."""
    keys = _strip_module_prefix(state_dict).keys()
    if {"style.1.weight", "input.input", "conv1.conv.weight"} <= keys:
        return "generator"
    if {"convs.0.0.weight", "final_conv.0.weight", "final_linear.0.weight"} <= keys:
        return "discriminator"
    return None


def read_nvidia_pickle(path: Path) -> StyleGAN2File:
    """The StyleGAN2 networks of an NVIDIA snapshot ``.pkl``, unpickled without running code.

    Raises:
        GanslimError: the pickle names a class or function outside the allow-list (nothing was run), is no
            snapshot, or holds no StyleGAN2 generator.
    """
    label = f"'{path}'"
    if not path.is_file():
        raise GanslimError(f"checkpoint {label} not found: check the path")
    try:
        with open(path, "rb") as handle:
            content = restricted_load(handle)
    except RefusedGlobal as refused:
        raise GanslimError(f"{label} needs {refused.qualified_name} to unpickle, which ganslim refuses: a pickle can "
                           f"run code, so only tensors, plain containers and NVIDIA's network objects are read; pass "
                           f"an NVIDIA StyleGAN2 snapshot or a torch.save'd state_dict") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, RuntimeError) as error:
        raise GanslimError(f"cannot read {label} as an NVIDIA network pickle ({first_line(error)}): pass a "
                           f"stylegan2-ada-pytorch or stylegan3 snapshot .pkl") from None
    networks = content if isinstance(content, dict) else {}
    generator = networks.get("G_ema", networks.get("G"))
    if not isinstance(generator, PersistentObject):
        raise GanslimError(f"{label} holds no NVIDIA generator (G_ema): pass a stylegan2-ada-pytorch or stylegan3 "
                           f"network snapshot")
    key = "G_ema" if isinstance(networks.get("G_ema"), PersistentObject) else "G"
    state, w_avg, g_kwargs = _nvidia_generator(generator, label)
    file = StyleGAN2File("NVIDIA pickle", state, key, w_avg=w_avg, generator_kwargs=g_kwargs)
    if isinstance(networks.get("D"), PersistentObject):
        file.discriminator, file.discriminator_kwargs = _nvidia_discriminator(networks["D"], label)
    return file


class _Tensors:
    """A network's tensors by key; a missing key is a one-line error naming it."""

    def __init__(self, tensors: StateDict, label: str) -> None:
        self.tensors, self.label = tensors, label

    def __getitem__(self, key: str) -> Tensor:
        if key not in self.tensors:
            raise GanslimError(f"{self.label} is not a StyleGAN2 network NVIDIA's code wrote: it has no '{key}'")
        return self.tensors[key]


def _nvidia_generator(generator: PersistentObject, label: str) -> tuple[StateDict, Tensor | None, dict]:
    """rosinality's generator keys, the stored mean W, and the kwargs only the objects' attributes tell."""
    tensors = generator.tensors()
    if any(key.startswith("synthesis.input.") for key in tensors):
        raise GanslimError(f"{label} holds a StyleGAN3 (alias-free) generator, not a StyleGAN2 one: pass a StyleGAN2 "
                           f"snapshot (stylegan3's stylegan2 config)")
    if "mapping.embed.weight" in tensors:
        raise GanslimError(f"{label} holds a conditional generator ({tensors['mapping.embed.weight'].shape[1]} "
                           f"classes); ganslim's stylegan2 is unconditional")
    source = _Tensors(tensors, label)
    sides = sorted({int(m.group(1)) for m in map(_NVIDIA_BLOCK.match, tensors) if m})
    for side in sides[1:]:
        if f"synthesis.b{side}.skip.weight" in tensors or f"synthesis.b{side}.torgb.weight" not in tensors:
            architecture = "resnet" if f"synthesis.b{side}.skip.weight" in tensors else "orig"
            raise GanslimError(f"{label}'s generator uses NVIDIA's '{architecture}' synthesis architecture; "
                               f"ganslim's stylegan2 is the 'skip' one (their default)")
    n_mlp = sum(1 for key in tensors if re.fullmatch(r"mapping\.fc\d+\.weight", key))
    state = {}
    for index in range(n_mlp):
        for leaf in ("weight", "bias"):
            state[f"style.{index + 1}.{leaf}"] = source[f"mapping.fc{index}.{leaf}"]
    state["input.input"] = source["synthesis.b4.const"].unsqueeze(0)
    state.update(_nvidia_styled_conv(source, "synthesis.b4.conv1", "conv1"))
    state.update(_nvidia_to_rgb(source, "synthesis.b4.torgb", "to_rgb1"))
    noises = [_nvidia_noise(source, "synthesis.b4.conv1", 4)]
    for k, side in enumerate(sides[1:]):
        block = f"synthesis.b{side}"
        state.update(_nvidia_styled_conv(source, f"{block}.conv0", f"convs.{2 * k}"))
        state[f"convs.{2 * k}.conv.blur.kernel"] = _filter_2d(source[f"{block}.conv0.resample_filter"]) * UPSAMPLE_GAIN
        state.update(_nvidia_styled_conv(source, f"{block}.conv1", f"convs.{2 * k + 1}"))
        state.update(_nvidia_to_rgb(source, f"{block}.torgb", f"to_rgbs.{k}"))
        state[f"to_rgbs.{k}.upsample.kernel"] = _filter_2d(source[f"{block}.resample_filter"]) * UPSAMPLE_GAIN
        noises += [_nvidia_noise(source, f"{block}.conv0", side), _nvidia_noise(source, f"{block}.conv1", side)]
    state.update({f"noises.noise_{index}": noise for index, noise in enumerate(noises)})

    kwargs = {}
    first_layer = _descendant(generator, "mapping", "fc0")
    if first_layer is not None and isinstance(first_layer.state.get("bias_gain"), (int, float)):
        kwargs["lr_mlp"] = float(first_layer.state["bias_gain"])  # NVIDIA's lr_multiplier
    first_conv = _descendant(generator, "synthesis", "b4", "conv1")
    if first_conv is not None:
        if first_conv.state.get("activation", "lrelu") != "lrelu":
            raise GanslimError(f"{label}'s generator uses a '{first_conv.state['activation']}' activation; "
                               f"ganslim's stylegan2 uses lrelu (NVIDIA's default)")
        if isinstance(first_conv.state.get("conv_clamp"), (int, float)):
            kwargs["conv_clamp"] = float(first_conv.state["conv_clamp"])
    w_avg = tensors.get("mapping.w_avg")
    return state, w_avg.float() if w_avg is not None else None, kwargs


def _nvidia_styled_conv(source: _Tensors, layer: str, target: str) -> StateDict:
    strength = source.tensors.get(f"{layer}.noise_strength", torch.zeros(()))  # absent where use_noise=False
    return {f"{target}.conv.weight": source[f"{layer}.weight"].unsqueeze(0),
            f"{target}.conv.modulation.weight": source[f"{layer}.affine.weight"],
            f"{target}.conv.modulation.bias": source[f"{layer}.affine.bias"],
            f"{target}.noise.weight": strength.reshape(1),
            f"{target}.activate.bias": source[f"{layer}.bias"]}


def _nvidia_to_rgb(source: _Tensors, layer: str, target: str) -> StateDict:
    return {f"{target}.conv.weight": source[f"{layer}.weight"].unsqueeze(0),
            f"{target}.conv.modulation.weight": source[f"{layer}.affine.weight"],
            f"{target}.conv.modulation.bias": source[f"{layer}.affine.bias"],
            f"{target}.bias": source[f"{layer}.bias"].view(1, -1, 1, 1)}


def _nvidia_noise(source: _Tensors, layer: str, side: int) -> Tensor:
    return source.tensors.get(f"{layer}.noise_const", torch.zeros(side, side)).reshape(1, 1, side, side)


def _filter_2d(taps: Tensor) -> Tensor:
    """NVIDIA stores a separable filter as its 1D taps, others as the 2D kernel."""
    return taps[None, :] * taps[:, None] if taps.dim() == 1 else taps


def _descendant(root: PersistentObject, *names: str) -> PersistentObject | None:
    node: PersistentObject | None = root
    for name in names:
        node = node.child(name) if node is not None else None
    return node


def _nvidia_discriminator(discriminator: PersistentObject, label: str) -> tuple[StateDict, dict]:
    """rosinality's discriminator keys and kwargs for NVIDIA's residual discriminator."""
    tensors = discriminator.tensors()
    label = f"{label}'s discriminator"
    if "mapping.fc0.weight" in tensors:
        raise GanslimError(f"{label} is conditional; ganslim's stylegan2 discriminator is unconditional")
    source = _Tensors(tensors, label)
    sides = sorted({int(m.group(1)) for m in map(_NVIDIA_BLOCK.match, tensors) if m} - {4}, reverse=True)
    if not sides or any(f"b{side}.skip.weight" not in tensors for side in sides):
        raise GanslimError(f"{label} is not NVIDIA's 'resnet' discriminator (their default), the one ganslim's "
                           f"stylegan2 discriminator is")
    state = {"convs.0.0.weight": source[f"b{sides[0]}.fromrgb.weight"],
             "convs.0.1.bias": source[f"b{sides[0]}.fromrgb.bias"]}
    for index, side in enumerate(sides, start=1):
        block, target = f"b{side}", f"convs.{index}"
        state.update({f"{target}.conv1.0.weight": source[f"{block}.conv0.weight"],
                      f"{target}.conv1.1.bias": source[f"{block}.conv0.bias"],
                      f"{target}.conv2.0.kernel": _filter_2d(source[f"{block}.conv1.resample_filter"]),
                      f"{target}.conv2.1.weight": source[f"{block}.conv1.weight"],
                      f"{target}.conv2.2.bias": source[f"{block}.conv1.bias"],
                      f"{target}.skip.0.kernel": _filter_2d(source[f"{block}.skip.resample_filter"]),
                      f"{target}.skip.1.weight": source[f"{block}.skip.weight"]})
    state.update({"final_conv.0.weight": source["b4.conv.weight"], "final_conv.1.bias": source["b4.conv.bias"],
                  "final_linear.0.weight": source["b4.fc.weight"], "final_linear.0.bias": source["b4.fc.bias"],
                  "final_linear.1.weight": source["b4.out.weight"], "final_linear.1.bias": source["b4.out.bias"]})
    mbstd = _descendant(discriminator, "b4", "mbstd")
    group = mbstd.state.get("group_size") if mbstd is not None else None
    final_conv = state["final_conv.0.weight"]
    if isinstance(group, bool) or not isinstance(group, int) or final_conv.shape[1] != final_conv.shape[0] + 1:
        raise GanslimError(f"{label} has no minibatch-stddev layer of one feature over groups of a fixed size "
                           f"(group size {group!r}); ganslim's stylegan2 discriminator has one")
    kwargs: dict = {"stddev_group": group}
    first_conv = _descendant(discriminator, f"b{sides[0]}", "conv0")
    if first_conv is not None and isinstance(first_conv.state.get("conv_clamp"), (int, float)):
        kwargs["conv_clamp"] = float(first_conv.state["conv_clamp"])
    return state, kwargs


def _count(state: StateDict, pattern: str) -> int:
    """How many keys of ``state`` match ``pattern`` in full."""
    return sum(1 for key in state if re.fullmatch(pattern, key))


def _need(state: StateDict, key: str, label: str, kind: str) -> Tensor:
    if key not in state:
        raise GanslimError(f"{label} is not a StyleGAN2 {kind} in rosinality's layout: it has no '{key}'")
    return state[key]


def _table_kwargs(size: int, table: tuple[int, ...]) -> dict:
    """The narrowest kwargs that rebuild ``table``: none (config-f's), a channel multiplier, or the table."""
    if table == rosinality_channels(size):
        return {}
    multiplier, rest = divmod(table[4], 256) if len(table) > 4 else (0, 1)
    if rest == 0 and multiplier >= 1 and rosinality_channels(size, multiplier) == table:
        return {"channel_multiplier": multiplier}
    return {"channels": list(table)}


def infer_generator_kwargs(state: StateDict, label: str) -> dict:
    """The ``stylegan2`` generator kwargs a rosinality-layout state dict was saved from (not ``lr_mlp``, which no
    tensor records: 0.01 unless told)."""
    n_mlp = _count(state, r"style\.\d+\.weight")
    mapping_in = _need(state, "style.1.weight", label, "generator")
    style_dim = _need(state, f"style.{n_mlp}.weight", label, "generator").shape[0]
    blocks = _count(state, r"to_rgbs\.\d+\.conv\.weight")
    table = (_need(state, "input.input", label, "generator").shape[1],
             *(_need(state, f"convs.{2 * k}.conv.weight", label, "generator").shape[1] for k in range(blocks)))
    size = 4 * 2**blocks
    kwargs = {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, **_table_kwargs(size, table)}
    if mapping_in.shape[1] != style_dim:
        kwargs["z_dim"] = mapping_in.shape[1]
    image_channels = _need(state, "to_rgb1.conv.weight", label, "generator").shape[1]
    if image_channels != 3:
        kwargs["image_channels"] = image_channels
    return kwargs


def infer_discriminator_kwargs(state: StateDict, label: str) -> dict:
    """The ``stylegan2`` discriminator kwargs a rosinality-layout state dict was saved from."""
    blocks = _count(state, r"convs\.\d+\.conv1\.0\.weight")
    first = _need(state, "convs.0.0.weight", label, "discriminator")
    widths = [first.shape[0]] + [_need(state, f"convs.{i}.conv2.1.weight", label, "discriminator").shape[0]
                                 for i in range(1, blocks + 1)]
    size = 4 * 2**blocks
    kwargs = {"size": size, **_table_kwargs(size, tuple(reversed(widths)))}
    if first.shape[1] != 3:
        kwargs["image_channels"] = first.shape[1]
    return kwargs


def import_stylegan2(content: StyleGAN2File | StateDict, kind: str, label: str, arch: str | None = None,
                     overrides: dict | None = None) -> tuple[nn.Module, str, dict, dict]:
    """Build the ``stylegan2`` generator or discriminator (``kind``) a file holds and load it strictly (eval mode).

    ``overrides`` (e.g. ``lr_mlp``) join the inferred kwargs. Returns ``(model, "stylegan2", kwargs, meta)``, meta
    saying the file's format, which generator was read and whether a mean W was stored.
    """
    file = content if isinstance(content, StyleGAN2File) else _bare_file(content)
    if arch not in (None, ARCH):
        raise GanslimError(f"{label} holds a StyleGAN2 {kind}, not a {arch}: drop the architecture (or pass {ARCH})")
    registry, build = (GENERATORS, build_generator) if kind == "generator" else (DISCRIMINATORS, build_discriminator)
    unknown = sorted(set(overrides or {}) - set(builder_parameters(registry, ARCH)))
    if unknown:
        raise GanslimError(f"{label} is a {ARCH} {kind}, which takes no {', '.join(unknown)}")
    if kind == "generator":
        if file.generator is None:
            raise GanslimError(f"{label} holds a StyleGAN2 discriminator, not a generator: pass the generator's file")
        if file.generator_key == "g":
            logger.warning("note: %s holds no g_ema (rosinality's EMA generator, the one to sample from): loading "
                           "its g", label)
        state, inferred = dict(file.generator), {**infer_generator_kwargs(file.generator, label),
                                                 **file.generator_kwargs}
    else:
        if file.discriminator is None:
            raise GanslimError(f"{label} holds no StyleGAN2 discriminator (rosinality's d, NVIDIA's D): pass a "
                               f"training checkpoint that has one")
        state, inferred = dict(file.discriminator), {**infer_discriminator_kwargs(file.discriminator, label),
                                                     **file.discriminator_kwargs}
    kwargs = {**inferred, **(overrides or {})}
    model = build(ARCH, **kwargs)
    if kind == "generator":
        state["style.w_avg"] = file.w_avg if file.w_avg is not None else model.style.w_avg
    problem = describe_mismatch(state, model.state_dict())
    if problem:
        raise GanslimError(f"{label} fits no {ARCH} {kind} ({', '.join(f'{k}={v}' for k, v in kwargs.items())}): "
                           f"{problem}; check the file (or the overrides)")
    model.load_state_dict(state, strict=True)
    meta = {"format": file.format}
    if kind == "generator":
        meta.update(weights=file.generator_key, w_avg="stored" if file.w_avg is not None else "missing")
    return model.eval(), ARCH, kwargs, meta


def _bare_file(state_dict: StateDict) -> StyleGAN2File:
    state_dict = _strip_module_prefix(state_dict)
    if network_kind(state_dict) == "discriminator":
        return StyleGAN2File("rosinality state dict", discriminator=state_dict)
    return StyleGAN2File("rosinality state dict", generator=state_dict)
