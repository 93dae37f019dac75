"""The editor's state and renders, apart from the web server (:mod:`.app` serves them).

One edit at a time: a *base* W+ (a seed's, or an uploaded image's inversion), slider strengths per direction, and
the last finalized image. Strength s on a direction moves the first
:func:`~ganslim.editing.directions.edited_layers` W+ entries by ``s * sigma`` along it, ``sigma`` the standard
deviation of W along that direction over the W of seeds 0 .. 999, so the sliders' -3 .. 3 mean the same for every
generator and direction. A preview renders with an Anycost sub-generator (a resolution and a uniform width ratio),
"finalize" with the full generator, both with the stored noise, so the same W+ gives the same image every time.

At start every offered sub-generator is timed on this machine; the default preview is the richest one (the slowest)
within the latency target, else the fastest. The default target is a fifth of the full generator's time, but never
below :data:`INTERACTIVE_MS`: a generator that renders in a few ms needs no coarse preview to feel interactive, and a
4 px one would be all the fifth of its time allows.
One lock guards the generator (sub-generators are set on its shared weights) and the state: concurrent requests
wait their turn instead of racing.
"""

from __future__ import annotations

import base64
import io
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ganslim.apps.generate import seed_w_plus
from ganslim.archs.stylegan2 import CHANNEL_RATIOS, StyleGAN2Generator, resolve_subnet
from ganslim.data.images import tensor_to_image
from ganslim.editing.directions import apply_edit
from ganslim.editing.web.uploads import decode_upload
from ganslim.errors import GanslimError
from ganslim.measure.profile.timing import interleaved_times

SLIDER_RANGE = 3.0
SPREAD_SAMPLES = 1000
PREVIEW_RESOLUTIONS = 4  # the full side and the three below it, as Anycost trains them
TARGET_FRACTION = 1 / 5
INTERACTIVE_MS = 50.0  # a render this fast keeps up with a dragged slider

Invert = Callable[[Tensor], Tensor]  # image (1, 3, R, R) in [-1, 1] -> W+ (1, num_ws, w_dim); autograd on


@dataclass(frozen=True)
class RenderConfig:
    """A sub-generator the page offers: output ``resolution`` and uniform channel ``ratio``."""

    resolution: int
    ratio: float


@dataclass(frozen=True)
class Render:
    """One rendered image: ``png`` bytes, the synthesis time ``ms``, the sub-generator it ran as, its ``kind``
    (``reconstruction``, ``preview`` or ``final``) and its ``number`` (1, 2, ... in the order rendered)."""

    png: bytes
    ms: float
    config: RenderConfig
    channels: tuple[int, ...]
    kind: str
    number: int

    def to_json(self) -> dict:
        return {"image": png_data_url(self.png), "ms": round(self.ms, 2), "resolution": self.config.resolution,
                "ratio": self.config.ratio, "channels": list(self.channels), "kind": self.kind,
                "number": self.number}


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def encode_png(image: Tensor) -> bytes:
    """Image (1, 3, H, W) in [-1, 1] -> PNG bytes (pixels as every ganslim PNG: ``(x + 1) / 2 * 255``)."""
    buffer = io.BytesIO()
    tensor_to_image(image).save(buffer, format="PNG")
    return buffer.getvalue()


def render_configs(generator: StyleGAN2Generator) -> list[RenderConfig]:
    """The sub-generators offered: the :data:`PREVIEW_RESOLUTIONS` largest sides x Anycost's uniform ratios, the full
    generator last."""
    sides = [generator.img_resolution >> shift for shift in range(PREVIEW_RESOLUTIONS)]
    return [RenderConfig(side, ratio) for side in sorted(s for s in sides if s >= 4) for ratio in CHANNEL_RATIOS]


def direction_spreads(generator: StyleGAN2Generator, directions: Tensor) -> Tensor:
    """Standard deviation (K,) of W along each of ``directions`` (K, w_dim), over the W of seeds 0 .. 999."""
    with torch.inference_mode():
        w = seed_w_plus(generator, range(SPREAD_SAMPLES))[:, 0]
    return (w @ directions.T).std(dim=0)


class Editor:
    """The edit being made with ``generator`` along ``directions`` (K, w_dim) named ``names`` (see the module
    docstring); ``invert`` (image -> W+) enables uploads; ``preview_target_ms`` overrides the latency target;
    each sub-generator is timed ``timing_repeats`` times (after one untimed run), the fastest kept."""

    def __init__(self, generator: StyleGAN2Generator, names: Sequence[str], directions: Tensor,
                 invert: Invert | None = None, preview_target_ms: float | None = None, timing_repeats: int = 3) -> None:
        check_editable(generator)
        if directions.dim() != 2 or directions.shape != (len(names), generator.w_dim):
            raise GanslimError(f"{len(names)} direction name(s) and directions {tuple(directions.shape)} do not match "
                               f"this generator's W ({generator.w_dim} dims)")
        if preview_target_ms is not None and not preview_target_ms > 0:
            raise GanslimError(f"--preview-ms {preview_target_ms!r} must be a positive number of milliseconds")
        self.generator = generator.eval()
        self.names, self.directions, self.invert = list(names), directions.float(), invert
        self.spreads = direction_spreads(generator, self.directions)
        self.configs = render_configs(generator)
        self.full = self.configs[-1]
        self.latencies_ms = self._time_configs(timing_repeats)
        full_ms = self.latencies_ms[self.full]
        self.target_ms = default_target_ms(full_ms) if preview_target_ms is None else float(preview_target_ms)
        self.default_preview = choose_preview(self.latencies_ms, self.full, self.target_ms)
        self._lock = threading.Lock()
        self._base: Tensor | None = None
        self._final: tuple[Tensor, bytes] | None = None  # the finalized W+ and its PNG
        self._renders = 0

    # ------------------------------------------------------------------------------------------------------
    # Requests (each holds the lock throughout)

    def load_seed(self, seed: int) -> Render:
        """Start an edit from the W+ of ``seed`` (as ``ganslim generate --seeds`` draws it); its full render."""
        with self._lock, torch.inference_mode():
            return self._start(seed_w_plus(self.generator, [seed]))

    def load_upload(self, data: bytes) -> tuple[bytes, Render]:
        """Start an edit from an uploaded image's inversion: the image as the generator sees it (PNG) and the full
        render of its W+. One line when no inversion is set or the upload is refused (:func:`decode_upload`)."""
        if self.invert is None:
            raise GanslimError("uploading needs an inversion: restart ganslim edit with --encoder CKPT and/or "
                               "--project-steps N (meanwhile, "
                               "pick a sample by seed)")
        image = decode_upload(data, self.generator.img_resolution)
        with self._lock:
            w_plus = self.invert(image).detach()  # with autograd on: a projection optimises
            expected = (1, self.generator.num_ws, self.generator.w_dim)
            if tuple(w_plus.shape) != expected:
                raise GanslimError(f"the inversion returned W+ of shape {tuple(w_plus.shape)}, not {expected}: the "
                                   f"encoder belongs to another generator")
            with torch.inference_mode():
                return encode_png(image), self._start(w_plus.float())

    def render(self, strengths: Mapping[str, float], config: RenderConfig | None) -> Render:
        """The current edit at ``strengths`` (name -> -3 .. 3; a direction left out: 0), as the sub-generator
        ``config`` (a preview) or, with None, the full generator (finalize: kept for :meth:`result`)."""
        values = self._strengths(strengths)
        if config is not None and config not in self.latencies_ms:
            offered = ", ".join(f"{c.resolution} px x {c.ratio:g}" for c in self.configs)
            raise GanslimError(f"{config.resolution} px at width {config.ratio:g} is not offered: pick one of "
                               f"{offered}")
        with self._lock, torch.inference_mode():
            if self._base is None:
                raise GanslimError("pick a sample (seed) or upload an image first")
            w_plus = apply_edit(self._base, self.directions, values * self.spreads)
            render = self._render(w_plus, config or self.full, "preview" if config is not None else "final")
            if config is None:
                self._final = (w_plus, render.png)
            return render

    def result(self) -> tuple[Tensor, bytes]:
        """The last finalized W+ (1, num_ws, w_dim) and its PNG; one line before any "finalize"."""
        with self._lock:
            if self._final is None:
                raise GanslimError("nothing finalized yet: press Finalize first")
            return self._final

    # ------------------------------------------------------------------------------------------------------

    def synthesize(self, w_plus: Tensor, config: RenderConfig) -> Tensor:
        """W+ (N, num_ws, w_dim) -> images (N, 3, r, r) as the sub-generator ``config``, with the stored noise.
        Not locked: for callers holding the lock, and for tests."""
        with self.generator.subnet(config.resolution, config.ratio):
            return self.generator.synthesize(w_plus)

    def _start(self, w_plus: Tensor) -> Render:
        self._base, self._final = w_plus, None
        return self._render(w_plus, self.full, "reconstruction")

    def _render(self, w_plus: Tensor, config: RenderConfig, kind: str) -> Render:
        begin = time.perf_counter()
        image = self.synthesize(w_plus, config)
        ms = (time.perf_counter() - begin) * 1000
        self._renders += 1
        channels = resolve_subnet(self.generator.layer_channels, config.resolution, config.ratio).channels
        return Render(encode_png(image), ms, config, channels, kind, self._renders)

    def _strengths(self, strengths: Mapping[str, float]) -> Tensor:
        unknown = set(strengths) - set(self.names)
        if unknown:
            raise GanslimError(f"unknown direction(s) {', '.join(sorted(unknown))}: this editor has "
                               f"{', '.join(self.names)}")
        values = [strengths.get(name, 0.0) for name in self.names]
        for name, value in zip(self.names, values):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or abs(value) > SLIDER_RANGE:
                raise GanslimError(f"strength {value!r} of '{name}' is outside -{SLIDER_RANGE:g} .. {SLIDER_RANGE:g}")
        return torch.tensor(values, dtype=torch.float32)

    def _time_configs(self, repeats: int) -> dict[RenderConfig, float]:
        """The fastest synthesis ms of each offered sub-generator on seed 0's W+, timed interleaved."""
        with torch.inference_mode():
            w_plus = seed_w_plus(self.generator, [0])
            runners = {config: (lambda w, c=config: self.synthesize(w, c)) for config in self.configs}
            times = interleaved_times(runners, w_plus, warmup=1, repeats=repeats)
        return {config: min(values) for config, values in times.items()}


def check_editable(generator: object) -> None:
    """One line unless ``generator`` is a stylegan2 generator, whose Anycost sub-generators render the previews."""
    if not isinstance(generator, StyleGAN2Generator):
        raise GanslimError(f"the editor previews with Anycost sub-generators, which stylegan2 generators have; this "
                           f"is a {type(generator).__name__}: pass a stylegan2 checkpoint")


def default_target_ms(full_ms: float) -> float:
    """The default preview latency target: a fifth of the full generator's ``full_ms``, at least INTERACTIVE_MS."""
    return max(full_ms * TARGET_FRACTION, INTERACTIVE_MS)


def choose_preview(latencies_ms: Mapping[RenderConfig, float], full: RenderConfig, target_ms: float) -> RenderConfig:
    """The slowest (richest) sub-generator other than ``full`` within ``target_ms``, else the fastest one."""
    previews = {config: ms for config, ms in latencies_ms.items() if config != full}
    within = [config for config, ms in previews.items() if ms <= target_ms]
    if within:
        return max(within, key=previews.__getitem__)
    return min(previews, key=previews.__getitem__)


def w_plus_npy(w_plus: Tensor) -> bytes:
    """W+ (1, num_ws, w_dim) as ``.npy`` bytes (float32), the file ``ganslim generate --w`` reads."""
    buffer = io.BytesIO()
    np.save(buffer, w_plus.detach().float().cpu().numpy())
    return buffer.getvalue()
