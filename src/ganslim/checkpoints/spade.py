"""Import SPADE generators: NVlabs/SPADE's ``latest_net_G.pth`` and GAN Compression's SPADE teachers.

* **NVlabs** trains with spectral norm on every block's ``conv_0``, ``conv_1`` and ``conv_s``: the file holds
  ``weight_orig``, ``weight_u`` and ``weight_v`` for each. They are folded once into a plain ``weight`` = W / sigma,
  sigma = uᵀ W_mat v with the stored vectors (W_mat: W reshaped to (out, in*k*k)), which is the weight torch's
  ``spectral_norm`` uses in eval mode; no power iteration runs. Its SyncBatchNorm statistics
  (``param_free_norm.running_mean`` / ``running_var``) load into plain BatchNorm.
* **GAN Compression** removed spectral norm before saving its SPADE teachers: their weights are plain already. Its
  mobile teacher and compressed students (separable gamma / beta convs) load through
  :mod:`ganslim.checkpoints.mobile_spade`, which reads options with the helpers here.

The tensors give the width, the label-map channels, SPADE's hidden width and kernel, the VAE's fc, the norm and
'most' upsampling (``up_4``). The rest (how the label-map channels split into labels, a dontcare label and instance
edges; 'normal' or 'more' upsampling; crop size and aspect ratio) comes from the ``opt.txt`` SPADE writes beside its
checkpoints (GAN Compression: one folder above ``checkpoints/``), from a preset architecture (``spade_cityscapes``,
``spade_coco``), or from options, in increasing precedence. ``opt.pkl`` is a pickle and is never read.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ganslim.archs import build_generator, builder_parameters
from ganslim.archs.spade import semantic_channels
from ganslim.checkpoints.reference import _strip_module_prefix
from ganslim.errors import GanslimError
from ganslim.registry import GENERATORS
from ganslim.weights import describe_mismatch

StateDict = dict[str, torch.Tensor]
ARCH = "spade"
PRESETS = ("spade_cityscapes", "spade_coco")
OPTIONS_FILE = "opt.txt"
SPECTRAL_SUFFIXES = ("_orig", "_u", "_v")
# The opt.txt netG values imported: NVlabs' generator and GAN Compression's mobile teacher and exported student.
IMPORTED_NETS = (ARCH, "mobile_spade", "sub_mobile_spade")
# What the label split and the latent's size need when the tensors cannot tell them.
NEEDED = ("label_nc", "contain_dontcare_label", "instance_edges", "num_upsampling_layers", "crop_size",
          "aspect_ratio")
_SPADE_KEY = re.compile(r"^head_0\.norm_0\.mlp_shared\.0\.weight$")
_OPTION_LINE = re.compile(r"^\s*(\w+): (.*?)\s*(?:\t\[default: .*\])?\s*$")
_NORM_G = re.compile(r"^(spectral)?spade(syncbatch|batch|instance)(\d+)x\d+$")
# The opt.txt options that are spade kwargs of the same name, and no_instance (instance_edges negated).
_OPTION_TYPES = {"label_nc": int, "contain_dontcare_label": bool, "ngf": int, "num_upsampling_layers": str,
                 "crop_size": int, "aspect_ratio": float, "use_vae": bool, "z_dim": int, "output_nc": int,
                 "no_instance": bool}
_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "True or False", str: "text"}


def is_spade(state_dict: StateDict) -> bool:
    """True when ``state_dict`` is a SPADE generator's (it has SPADE's shared modulation conv in ``head_0``)."""
    return any(_SPADE_KEY.match(key) for key in _strip_module_prefix(state_dict))


def fold_spectral_norm(state_dict: StateDict, label: str) -> tuple[StateDict, int]:
    """``state_dict`` with every spectral-normed ``X.weight_orig`` / ``X.weight_u`` / ``X.weight_v`` replaced by the
    plain ``X.weight`` = W / (uᵀ W_mat v), and how many were folded (keys keep their order)."""
    folded: StateDict = {}
    count = 0
    for key, tensor in state_dict.items():
        if key.endswith(("weight_u", "weight_v")):
            continue
        if not key.endswith("weight_orig"):
            folded[key] = tensor
            continue
        owner = key[: -len("weight_orig")]
        u, v = state_dict.get(f"{owner}weight_u"), state_dict.get(f"{owner}weight_v")
        matrix = tensor.reshape(tensor.shape[0], -1)
        if u is None or v is None or u.shape != matrix.shape[:1] or v.shape != matrix.shape[1:]:
            raise GanslimError(f"{label}: '{key}' {tuple(tensor.shape)} has no spectral-norm vectors "
                               f"'{owner}weight_u' ({matrix.shape[0]},) and '{owner}weight_v' ({matrix.shape[1]},) "
                               f"beside it: the file is damaged; save it again from SPADE")
        folded[f"{owner}weight"] = tensor / torch.dot(u, torch.mv(matrix, v))
        count += 1
    orphans = [key for key in state_dict if key.endswith(("weight_u", "weight_v"))
               and f"{key[:-len('weight_u')]}weight_orig" not in state_dict]
    if orphans:
        raise GanslimError(f"{label}: '{orphans[0]}' has no weight_orig beside it: the file is damaged; save it again "
                           f"from SPADE")
    return folded, count


def read_options_file(path: Path) -> dict[str, str]:
    """The ``key: value`` lines of a SPADE / GAN Compression ``opt.txt`` (values as written, defaults noted after
    a tab dropped); other lines (the ``--- Options ---`` banner of a printed copy) are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise GanslimError(f"cannot read SPADE options '{path}' ({error}): fix or remove the file") from None
    return {match.group(1): match.group(2) for match in map(_OPTION_LINE.match, text.splitlines()) if match}


def options_text(kwargs: dict, extra: dict) -> str:
    """An ``opt.txt`` as SPADE writes it (``key: value`` lines between its banners, sorted) for a ``spade`` of
    ``kwargs``, with the training options ``extra``: what :func:`read_options_file` reads back."""
    same = ("label_nc", "contain_dontcare_label", "ngf", "num_upsampling_layers", "crop_size", "use_vae", "z_dim",
            "output_nc")
    values = {"netG": "spade", **{key: kwargs[key] for key in same}, "no_instance": not kwargs["instance_edges"],
              "aspect_ratio": float(kwargs["aspect_ratio"]), **extra}
    lines = [f"{key:>25}: {value!s:<30}".rstrip() for key, value in sorted(values.items())]
    return "\n".join(["----------------- Options ---------------", *lines, "----------------- End -------------------",
                      ""])


def options_beside(checkpoint: Path) -> Path | None:
    """The ``opt.txt`` beside ``checkpoint`` (or above its ``checkpoints/`` folder, as GAN Compression lays out
    runs), or None."""
    for folder in (checkpoint.parent, *([checkpoint.parent.parent] if checkpoint.parent.name == "checkpoints" else [])):
        if (folder / OPTIONS_FILE).is_file():
            return folder / OPTIONS_FILE
    return None


def spade_kwargs_from_options(options: dict[str, str], source: str, nets: tuple[str, ...] = (ARCH,)) -> dict:
    """The ``spade`` kwargs an ``opt.txt`` sets (only those it holds); a netG other than ``nets`` (the layouts the
    tensors are in), or a value of the wrong type, is one line naming the option."""
    net = options.get("netG", nets[0])
    if net not in nets:
        if net in IMPORTED_NETS:
            raise GanslimError(f"{source} says netG {net}, but the checkpoint holds {' / '.join(nets)} tensors: put "
                               f"that run's opt.txt beside it, or fix netG")
        raise GanslimError(f"{source} says netG {net}: only SPADE generators (netG {', '.join(IMPORTED_NETS)}) are "
                           f"imported")
    kwargs: dict = {}
    # GAN Compression names the label count input_nc (SPADE's input_nc is an image's channels).
    if "label_nc" not in options and "input_nc" in options:
        options = {**options, "label_nc": options["input_nc"]}
    for name in _OPTION_TYPES:
        if name in options:
            value = _read(options, name, source)
            kwargs.update({"instance_edges": not value} if name == "no_instance" else {name: value})
    if "norm_G" in options:
        match = _NORM_G.match(options["norm_G"])
        if match is None:
            raise GanslimError(f"{source}: norm_G {options['norm_G']!r} is not a SPADE norm (e.g. "
                               f"spectralspadesyncbatch3x3): fix the file or pass the options")
        kwargs["norm"] = "instance" if match.group(2) == "instance" else "batch"
        kwargs["spade_kernel"] = int(match.group(3))
    return kwargs


def _read(options: dict[str, str], name: str, source: str) -> int | float | bool | str:
    """Option ``name`` as its type (:data:`_OPTION_TYPES`); a value of another type is one line."""
    kind, text = _OPTION_TYPES[name], options[name]
    try:
        if kind is bool:
            if text not in ("True", "False"):
                raise ValueError(text)
            return text == "True"
        return kind(text)
    except ValueError:
        raise GanslimError(f"{source}: {name} {text!r} is not {_TYPE_WORDS[kind]}: fix the file or pass "
                           f"{name}") from None


def infer_from_tensors(weights: StateDict, label: str) -> dict:
    """The ``spade`` kwargs the (folded) tensors determine: ngf, spade_hidden, spade_kernel, use_vae (and z_dim),
    norm, output_nc, and 'most' upsampling when ``up_4`` is present; plus ``semantic_nc``, the label-map channels."""
    try:
        shared = weights["head_0.norm_0.mlp_shared.0.weight"]
        head = weights["head_0.conv_0.weight"]
        fc, image = weights["fc.weight"], weights["conv_img.weight"]
    except KeyError as error:
        raise GanslimError(f"{label} is not a complete SPADE generator (no '{error.args[0]}'): pass the net_G file "
                           f"SPADE saved") from None
    inferred = {"ngf": head.shape[0] // 16, "spade_hidden": shared.shape[0], "spade_kernel": shared.shape[-1],
                "use_vae": fc.dim() == 2, "output_nc": image.shape[0], "semantic_nc": shared.shape[1],
                "norm": "batch" if "head_0.norm_0.param_free_norm.running_mean" in weights else "instance"}
    if inferred["use_vae"]:
        inferred["z_dim"] = fc.shape[1]
    if any(key.startswith("up_4.") for key in weights):
        inferred["num_upsampling_layers"] = "most"
    return inferred


def import_spade(state_dict: StateDict, path: Path, arch: str | None = None,
                 overrides: dict | None = None) -> tuple[nn.Module, str, dict, dict]:
    """Build a ``spade`` generator and load a SPADE state dict into it (spectral norm folded; strict; eval mode).

    Options, in increasing precedence: the tensors', ``opt.txt`` beside ``path``'s, the preset ``arch``'s, then
    ``overrides``. Returns ``(model, "spade", kwargs, meta)``; ``meta`` says where the options came from and how many
    spectral norms were folded. The model maps (N, semantic_nc, H, W) label maps -> (N, 3, H, W) in [-1, 1].
    """
    label = f"checkpoint '{path}'"
    overrides = dict(overrides or {})
    check_request(ARCH, arch, overrides, label, "a SPADE generator")
    weights, folded = fold_spectral_norm(_strip_module_prefix(state_dict), label)
    weights = _with_batch_counters(weights)
    inferred = infer_from_tensors(weights, label)
    semantic_nc = inferred.pop("semantic_nc")
    options_file = options_beside(path)
    from_file = spade_kwargs_from_options(read_options_file(options_file), f"'{options_file}'") if options_file else {}
    kwargs = resolve_kwargs(inferred, from_file, arch, overrides, label, "SPADE")
    _check_semantic_channels(kwargs, semantic_nc, label)
    model = build_generator(ARCH, **kwargs)
    load_checked(model, ARCH, weights, label)
    meta = {"spectral_norms_folded": folded, "options": str(options_file) if options_file else None}
    return model, ARCH, model.arch_kwargs(), meta


def check_request(arch_name: str, arch: str | None, overrides: dict, label: str, holds: str) -> None:
    """One line for an ``arch`` other than ``arch_name`` or a preset, or an override ``arch_name`` does not take."""
    if arch not in (None, arch_name, *PRESETS):
        raise GanslimError(f"{label} holds {holds}, not a {arch}: drop the architecture or pass one of "
                           f"{', '.join((arch_name, *PRESETS))}")
    unknown = sorted(set(overrides) - set(builder_parameters(GENERATORS, arch_name)))
    if unknown:
        raise GanslimError(f"{label} is a {arch_name} generator, which takes no {', '.join(unknown)}")


def resolve_kwargs(inferred: dict, from_file: dict, arch: str | None, overrides: dict, label: str,
                   writer: str) -> dict:
    """The tensors', the opt.txt's, the preset ``arch``'s and the given kwargs, later ones winning; one line naming
    what is missing when none gives :data:`NEEDED` (``writer``: who writes the opt.txt)."""
    preset = _preset_kwargs(arch) if arch in PRESETS else {}
    kwargs = {**inferred, **from_file, **preset, **overrides}
    missing = [name for name in NEEDED if name not in kwargs]
    if missing:
        raise GanslimError(f"{label} has no {OPTIONS_FILE} beside it and nothing gives its {', '.join(missing)}: put "
                           f"{writer}'s {OPTIONS_FILE} beside it, or pass --arch {' / '.join(PRESETS)} or the options")
    return kwargs


def load_checked(model: nn.Module, arch_name: str, weights: StateDict, label: str) -> None:
    """Load ``weights`` into ``model`` strictly and set eval mode; keys or shapes that differ are one line."""
    problem = describe_mismatch(weights, model.state_dict())
    if problem:
        described = ", ".join(f"{key} {value}" for key, value in model.arch_kwargs().items())
        raise GanslimError(f"{label} does not fit {arch_name} ({described}): {problem}; fix the options "
                           f"({OPTIONS_FILE}, --arch) or check the file")
    model.load_state_dict(weights, strict=True)
    model.eval()


def _with_batch_counters(weights: StateDict) -> StateDict:
    """``num_batches_tracked`` beside BatchNorm statistics saved without one (PyTorch < 0.4.1 wrote none; it is
    unused in eval mode), so old and new files load alike."""
    counters = {key.replace("running_mean", "num_batches_tracked"): torch.tensor(0)
                for key in weights if key.endswith("running_mean")}
    return {**weights, **{key: value for key, value in counters.items() if key not in weights}}


def _preset_kwargs(arch: str) -> dict:
    """The full ``spade`` kwargs of preset ``arch`` (built on the meta device: no weights are made)."""
    with torch.device("meta"):
        kwargs = build_generator(arch).arch_kwargs()
    return {key: value for key, value in kwargs.items() if key in NEEDED}


def _check_semantic_channels(kwargs: dict, semantic_nc: int, label: str) -> None:
    expected = semantic_channels(kwargs["label_nc"], kwargs["contain_dontcare_label"], kwargs["instance_edges"])
    if expected != semantic_nc:
        parts = [f"{kwargs['label_nc']} labels"] + (["a dontcare label"] if kwargs["contain_dontcare_label"] else []) \
            + (["instance edges"] if kwargs["instance_edges"] else [])
        raise GanslimError(f"{label}: its options give {' + '.join(parts)} = {expected} label-map channels, but "
                           f"head_0.norm_0.mlp_shared.0.weight takes {semantic_nc}: fix label_nc, "
                           f"contain_dontcare_label or instance_edges (opt.txt, --arch or the options)")
