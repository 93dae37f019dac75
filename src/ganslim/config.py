"""Training configuration: frozen dataclasses holding every default, filled from YAML and ``key=value`` overrides.

A config class is a frozen dataclass whose fields are declared with :func:`option` (default, one-line help,
optional bounds and choices). Values are checked when the object is built, so an unknown key or a bad value
fails with one :class:`~ganslim.errors.GanslimError` line before anything trains. Field types are limited to
``int``, ``float``, ``bool``, ``str`` and lists of numbers (``tuple[int, ...]``, ``tuple[float, ...]``) or of
such lists (``tuple[tuple[int, ...], ...]``), so every value round-trips through YAML and the command line: a list
is a YAML list, and on the command line (or in an older config.yaml) ``16,32,64``, a list of lists ``8;16,8``
(parsed once, here). Bounds and choices of a list field apply to each number.

``TrainConfig`` holds what the engine reads; ``ImageTranslationConfig`` adds the image-to-image data options;
each method subclasses one of them next to its code (e.g. ``ganslim.methods.teachers.Pix2PixConfig``) and
overrides defaults by re-declaring a field.

Precedence when loading: class defaults < YAML file < overrides (in the order given).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from ganslim.errors import GanslimError

C = TypeVar("C", bound="TrainConfig")
Choices = Union[tuple, Callable[[], Iterable[str]]]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_SCALAR_TYPES = (int, float, bool, str)
AUTO = -1.0  # a weight left for the method to pick (option(AUTO, ..., min=0.0, auto=AUTO))
# The ways to give a run's length, and the fields each uses (see TrainConfig._resolve_length).
LENGTH_KEYS = {"kimg": ("kimg",), "iterations": ("iterations",), "epochs": ("epochs", "epochs_decay")}


def option(default: Any, help: str, *, min: float | None = None, max: float | None = None,
           choices: Choices | None = None, above: float | None = None, auto: Any = None) -> Any:
    """Declare a config field: its default, a one-line help, and optional checks.

    ``min``/``max`` are inclusive bounds, ``above`` an exclusive lower bound; ``choices`` is a tuple of
    allowed values or a callable returning them (e.g. a registry's ``names``), looked up at check time.
    ``auto`` is a value outside the bounds that leaves the option to the method (e.g. :data:`AUTO` for a loss
    weight the method picks for its data, see :func:`fill_auto`).
    """
    return field(default=default, metadata={"help": help, "min": min, "max": max, "above": above,
                                            "choices": choices, "auto": auto})


@dataclass(frozen=True)
class TrainConfig:
    """Options every training method shares; the engine reads only these."""

    data: str = option("", "dataset folder (layout depends on the method)")
    out_dir: str = option("runs", "folder holding the numbered run folders")
    name: str = option("", "suffix of the run folder name (default: the dataset folder's name)")
    seed: int = option(0, "seed for weights init, data order, augmentation and dropout", min=0)
    device: str = option("auto", "auto (CUDA if present), cpu, cuda or cuda:N")
    amp: bool = option(False, "mixed precision (float16 autocast + gradient scaling); CUDA only")
    batch_size: int = option(1, "images per optimisation step and process", min=1)
    num_workers: int = option(0, "DataLoader worker processes", min=0)
    epochs: int = option(100, "epochs at the initial learning rate", min=0)
    epochs_decay: int = option(100, "epochs over which the learning rate decays linearly to zero", min=0)
    iterations: int = option(0, "training length in steps, instead of the method's default length (0: off)", min=0)
    kimg: float = option(0.0, "training length in thousands of real images shown (every process's together), "
                              "instead of the method's default length (0: off)", min=0.0)
    lr_schedule: str = option("linear_decay", "learning-rate schedule: linear_decay (constant, then linear to zero "
                                              "over epochs_decay, or over the second half of an iterations / kimg "
                                              "run), constant or cosine (to zero over the run)",
                              choices=lambda: lr_schedule_names())
    accumulate: int = option(1, "split each step's batch into this many parts whose gradients add up (less memory; "
                                "methods that compute a loss per part, such as stylegan2; others refuse it)", min=1)
    grad_clip: float = option(0.0, "clip each optimizer's gradient norm to this (0: off)", min=0.0)
    ema_decay: float = option(0.0, "keep an exponential moving average of the generator(s) (0: off)",
                              min=0.0, max=0.99999)
    ema_kimg: float = option(0.0, "instead of ema_decay: the average's half-life in thousands of images "
                                  "(StyleGAN2-ADA's ema_kimg; 0: off)", min=0.0)
    ema_rampup: float = option(0.0, "with ema_kimg: the half-life is at most this times the kimg shown so far "
                                    "(StyleGAN2-ADA: 0.05; 0: no ramp-up)", min=0.0)
    log_every: int = option(50, "steps between logged losses", min=1)
    sample_every: int = option(500, "steps between sample grids (0: only at the end)", min=0)
    val_every: int = option(1000, "steps between validations (0: only at the end)", min=0)
    ckpt_every: int = option(1000, "steps between checkpoints (0: only at the end)", min=0)
    val_images: int = option(0, "validate on at most this many images (0: the whole val split)", min=0)
    sample_images: int = option(4, "rows in each sample grid", min=1)

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if _element(hints[item.name]) is not None:
                value = _as_tuple(item.name, hints[item.name], value)
                object.__setattr__(self, item.name, value)
            _check_value(type(self), item, hints[item.name], value)
            if hints[item.name] is float:  # 100 from YAML is stored as 100.0, so the written YAML round-trips
                object.__setattr__(self, item.name, float(value))
        self._resolve_length()
        self._resolve_ema()
        self.check()

    @property
    def length_unit(self) -> str:
        """How the run's length is given: ``"kimg"``, ``"iterations"`` or ``"epochs"``."""
        return "kimg" if self.kimg > 0 else "iterations" if self.iterations > 0 else "epochs"

    def _declared(self, key: str) -> Any:
        return next(item.default for item in dataclasses.fields(self) if item.name == key)

    def _given(self, *keys: str) -> bool:
        """Whether any of ``keys`` differs from its declared default (was set by the user or a method)."""
        return any(getattr(self, key) != self._declared(key) for key in keys)

    def _resolve_length(self) -> None:
        """One length: the unit given (kimg, iterations, or epochs + epochs_decay) replaces the class's default
        unit (so ``--iterations 500`` needs no ``--kimg 0`` where kimg is the default); two given are refused."""
        given = [unit for unit, keys in LENGTH_KEYS.items()
                 if self._given(*keys) and any(getattr(self, key) for key in keys)]
        if len(given) > 1:
            lengths = " and ".join(f"{key}={getattr(self, key):g}" for unit in given for key in LENGTH_KEYS[unit]
                                   if getattr(self, key) != self._declared(key))
            raise GanslimError(f"the length is given twice ({lengths}): keep one")
        if given:
            for key in ("kimg", "iterations"):
                if key != given[0]:
                    object.__setattr__(self, key, type(getattr(self, key))(0))
        if self.length_unit == "epochs" and self.epochs + self.epochs_decay < 1:
            raise GanslimError("epochs + epochs_decay is 0: train at least one epoch, e.g. --set epochs=1 (or "
                               "give the length as --kimg or --iterations)")

    def _resolve_ema(self) -> None:
        """One EMA decay, fixed (``ema_decay``) or a half-life (``ema_kimg``): the one given replaces the class's
        default one, and a default ramp-up goes with a half-life turned off; two given are refused."""
        fixed = self.ema_decay > 0 and self._given("ema_decay")
        half_life = self.ema_kimg > 0 and self._given("ema_kimg")
        if fixed and half_life:
            raise GanslimError(f"ema_decay {self.ema_decay:g} and ema_kimg {self.ema_kimg:g} both set the average's "
                               f"decay: keep one")
        if fixed:
            object.__setattr__(self, "ema_kimg", 0.0)
        elif half_life:
            object.__setattr__(self, "ema_decay", 0.0)
        if self.ema_kimg <= 0 and not self._given("ema_rampup"):
            object.__setattr__(self, "ema_rampup", 0.0)
        if self.ema_rampup > 0 and self.ema_kimg <= 0:
            raise GanslimError("ema_rampup ramps up the half-life of ema_kimg, which is off: set ema_kimg (e.g. 10) "
                               "or ema_rampup=0")

    def check(self) -> None:
        """Cross-field checks of a subclass; raise GanslimError with a one-line fix."""

    def fixed_image_sides(self) -> dict[str, int]:
        """Config keys that fix a side of the images the networks see, with that side (none here: a subclass
        with image options says; the engine checks each against every network's ``image_sides``)."""
        return {}


@dataclass(frozen=True)
class ImageTranslationConfig(TrainConfig):
    """Data options of image-to-image methods (aligned or unaligned folders, reference preprocessing)."""

    direction: str = option("AtoB", "which side is the input", choices=("AtoB", "BtoA"))
    preprocess: str = option("resize_and_crop", "reference preprocessing of training images",
                             choices=("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"))
    load_size: int = option(286, "resize images to this size first", min=1)
    crop_size: int = option(256, "then crop this size (train); val images are resized to it", min=1)
    flip: bool = option(True, "random horizontal flips during training")
    input_nc: int = option(3, "input channels (1 or 3)", choices=(1, 3))
    output_nc: int = option(3, "output channels (1 or 3)", choices=(1, 3))
    max_train_images: int = option(0, "use at most this many training images (0: all)", min=0)

    def check(self) -> None:
        super().check()
        if "crop" in self.preprocess and self.crop_size > self.load_size:
            raise GanslimError(f"crop_size {self.crop_size} is larger than load_size {self.load_size}: "
                               f"set load_size >= crop_size")

    def fixed_image_sides(self) -> dict[str, int]:
        """Crops are crop_size square; scale_width makes training images load_size wide and validation images
        crop_size wide; 'none' keeps each image's own size (rounded to a multiple of 4)."""
        if "crop" in self.preprocess:
            return {"crop_size": self.crop_size}
        if self.preprocess == "scale_width":
            return {"load_size": self.load_size, "crop_size": self.crop_size}
        return {}


def lr_schedule_names() -> list[str]:
    from ganslim.engine.schedules import LR_SCHEDULES  # imported late: the engine imports this module

    return LR_SCHEDULES.names()


def fill_auto(config: C, chosen: Mapping[str, Any]) -> C:
    """``config`` with each key of ``chosen`` that it leaves at its declared default replaced by the chosen value.

    For the options whose default means "the method picks" (``auto``, -1 or 0, as their help says): a method
    resolves them for its data with this, e.g. ``fill_auto(config, {"gan_mode": "hinge", "ndf": 128})``.
    """
    defaults = {item.name: item.default for item in dataclasses.fields(config)}
    changes = {key: value for key, value in chosen.items() if getattr(config, key) == defaults[key]}
    return dataclasses.replace(config, **changes) if changes else config


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``["lr=1e-4", "flip=false"]`` -> ``{"lr": "1e-4", "flip": "false"}`` (values stay strings)."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise GanslimError(f"override '{pair}' is not KEY=VALUE: write e.g. --set lr=0.0001")
        overrides[key.strip()] = value.strip()
    return overrides


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping stored in a YAML config file (a flat ``key: value`` mapping)."""
    path = Path(path)
    if not path.is_file():
        raise GanslimError(f"config file '{path}' not found: check the path")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise GanslimError(f"config file '{path}' is not valid YAML ({line.strip() or 'parse error'}): "
                           f"fix the syntax") from None
    if content is None:
        return {}
    if not isinstance(content, dict) or not all(isinstance(key, str) for key in content):
        raise GanslimError(f"config file '{path}' must hold a flat 'key: value' mapping")
    return content


def build_config(cls: type[C], *sources: Mapping[str, Any], method: str | None = None) -> C:
    """Build ``cls`` from mappings applied in order (later wins); string values are parsed by field type.

    A ``method`` key in a source must equal ``method`` (so a pix2pix config is not run as cyclegan).
    """
    fields = {item.name: item for item in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for source in sources:
        for key, raw in source.items():
            if key == "method":
                if method is not None and raw != method:
                    raise GanslimError(f"config is for method '{raw}', not '{method}': "
                                       f"run 'ganslim train {raw}' or remove the 'method' key")
                continue
            if key not in fields:
                raise GanslimError(_unknown_key_message(key, list(fields), method))
            values[key] = _coerce(key, hints[key], raw)
    return cls(**values)


def load_config(cls: type[C], path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
                method: str | None = None) -> C:
    """Defaults of ``cls``, then the YAML file at ``path`` (if any), then ``overrides``."""
    file_values = read_config_file(path) if path is not None else {}
    return build_config(cls, file_values, dict(overrides or {}), method=method)


def config_to_yaml(config: TrainConfig, method: str | None = None) -> str:
    """The resolved config as YAML (``method`` first when given), each key followed by its help as a comment.

    :func:`load_config` reads it back to an equal object; ``ganslim train --show-config`` prints it and every run
    folder keeps it as ``config.yaml``.
    """
    lines = [_yaml_line("method", method)] if method is not None else []
    for item in dataclasses.fields(config):
        lines.append(f"{_yaml_line(item.name, getattr(config, item.name))}  # {item.metadata.get('help', '')}")
    return "\n".join(lines) + "\n"


def _yaml_line(key: str, value: Any) -> str:
    if isinstance(value, tuple):  # a list field: one flow-style line, [16, 32] or [[8], [16, 8]]
        return f"{key}: {yaml.safe_dump(_as_lists(value), default_flow_style=True, width=2**16).strip()}"
    return yaml.safe_dump({key: value}, default_flow_style=False, width=2**16).rstrip("\n")


def _as_lists(value: tuple) -> list:
    return [_as_lists(item) if isinstance(item, tuple) else item for item in value]


def field_value(cls: type[TrainConfig], key: str, raw: Any) -> Any:
    """``raw`` (a YAML or command-line value of key ``key``) as a ``cls`` config holds it, e.g. ``"1,0.5"`` ->
    ``(1.0, 0.5)`` for a list of numbers: what a recorded value is compared as."""
    kind = get_type_hints(cls)[key]
    return _as_tuple(key, kind, raw) if _element(kind) is not None else _coerce(key, kind, raw)


def _unknown_key_message(key: str, valid: list[str], method: str | None) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
    owner = f" for {method}" if method else ""
    return f"unknown config key '{key}'{owner}: {hint}"


def _coerce(key: str, kind: type, raw: Any) -> Any:
    """Parse a string from the command line / YAML into scalar ``kind``; other values (and lists, which the config
    parses itself, see :func:`_as_tuple`) are checked later."""
    if not isinstance(raw, str) or kind is str or _element(kind) is not None:
        return raw
    text = raw.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise GanslimError(f"bad value for '{key}': '{raw}' is not true or false")
    try:
        return kind(text)
    except ValueError:
        example = "0.0002" if kind is float else "10"
        raise GanslimError(f"bad value for '{key}': '{raw}' is not {'a number' if kind is float else 'an integer'}"
                           f" (e.g. {key}={example})") from None


def _element(kind: Any) -> Any:
    """What a list field holds (``tuple[int, ...]`` -> ``int``); None for a scalar field."""
    return get_args(kind)[0] if get_origin(kind) is tuple else None


def _as_tuple(key: str, kind: Any, value: Any) -> Any:
    """A list field's value as the config holds it: a tuple of its element type (ints read as floats in a list of
    numbers, as in a float field). A string is parsed: ``,`` between numbers and, in a list of lists, ``;``
    between lists (``"8;16,8"`` -> ``((8,), (16, 8))``); spaces and empty entries between commas are ignored.
    Anything else is left for :func:`_check_value` to refuse."""
    element = _element(kind)
    if isinstance(value, str):
        try:
            return _parse_list(kind, value.replace(" ", ""))
        except ValueError:
            raise GanslimError(f"bad value for '{key}': '{value}' is not {_type_words(kind)} (e.g. "
                               f"{key}={_example(kind)})") from None
    if isinstance(value, (list, tuple)):
        if _element(element) is not None:
            return tuple(_as_tuple(key, element, item) for item in value)
        return tuple(float(item) if element is float and _is_int(item) else item for item in value)
    return value


def _parse_list(kind: Any, text: str) -> tuple:
    element = _element(kind)
    if _element(element) is not None:
        return tuple(_parse_list(element, part) for part in text.split(";")) if text else ()
    return tuple(element(part) for part in text.split(",") if part)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(item: dataclasses.Field) -> tuple | None:
    choices = item.metadata.get("choices")
    if choices is None:
        return None
    return tuple(choices() if callable(choices) else choices)


def _check_value(cls: type, item: dataclasses.Field, kind: type, value: Any) -> None:
    name = item.name
    element = _element(kind)
    if element is not None:
        if not isinstance(value, tuple):
            raise GanslimError(f"bad value for '{name}': {value!r} is not {_type_words(kind)} (e.g. "
                               f"{name}={_example(kind)})")
        for number in value:
            _check_value(cls, item, element, number)
        return
    if kind not in _SCALAR_TYPES:
        raise TypeError(f"{cls.__name__}.{name}: config fields must be int, float, bool, str or tuples of numbers, "
                        f"not {kind}")
    ok = (isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))) or (
        kind is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise GanslimError(f"bad value for '{name}': {value!r} is not {_type_words(kind)}")
    if kind is float and not math.isfinite(value):
        raise GanslimError(f"bad value for '{name}': {value!r} is not a finite number")
    choices = _choices(item)
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), [str(choice) for choice in choices], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise GanslimError(f"bad value for '{name}': {value!r}{hint}; choose one of: "
                           f"{', '.join(map(str, choices))}")
    meta = item.metadata
    if meta.get("auto") is not None and value == meta["auto"]:
        return
    if meta.get("min") is not None and value < meta["min"]:
        auto = f" (or {meta['auto']!r}: the method picks)" if meta.get("auto") is not None else ""
        raise GanslimError(f"bad value for '{name}': {value!r} is below the minimum {meta['min']}{auto}")
    if meta.get("max") is not None and value > meta["max"]:
        raise GanslimError(f"bad value for '{name}': {value!r} is above the maximum {meta['max']}")
    if meta.get("above") is not None and not value > meta["above"]:
        raise GanslimError(f"bad value for '{name}': {value!r} must be greater than {meta['above']}")


def _type_words(kind: Any) -> str:
    element = _element(kind)
    if element is not None:
        if _element(element) is not None:
            return "lists of comma-separated integers, ';' between the lists"
        return f"comma-separated {'integers' if element is int else 'numbers'}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]


def _example(kind: Any) -> str:
    element = _element(kind)
    return "64,48;128,96" if _element(element) is not None else "16,32,64" if element is int else "1,0.5"
