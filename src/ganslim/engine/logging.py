"""What a run shows and records: a progress bar, TensorBoard scalars and image grids, PNG samples, log.txt.

Only rank 0 logs; other ranks get a disabled logger that still tracks the loss terms (for the finiteness check).
The console gets the start line, an ETA once the speed is known, validation lines and, without a progress bar,
one line per epoch. TensorBoard tags: ``loss/<term>`` for every loss term a
method returns (mean since the last log), ``lr/<optimizer>``, ``val/<metric>``, ``speed/steps_per_s`` and the
image grid ``samples`` (rows: images; columns: input | output | target).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ganslim.data import save_image

LOG_DIR = "logs"
SAMPLE_DIR = "samples"
ETA_AFTER_STEPS = 20  # the ETA line comes after this many timed steps or ETA_AFTER_SECONDS, whichever is first
ETA_AFTER_SECONDS = 20.0
_NEVER = 2**62  # "no non-finite value yet" in the per-term first-bad-step trackers


def _steps(count: int) -> str:
    return f"{count} step" + ("" if count == 1 else "s")


def format_duration(seconds: float) -> str:
    """``"45s"``, ``"3m05s"``, ``"2h07m"``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def image_grid(columns: list[torch.Tensor], padding: int = 2) -> torch.Tensor:
    """Lay images out as rows of ``columns[0][i] | columns[1][i] | ...``.

    Args:
        columns: tensors (N, C, H, W) in [-1, 1], C in {1, 3}, same N, H, W; 1-channel ones are shown as grey.
        padding: white pixels between and around images.

    Returns:
        (3, N*H + (N+1)*padding, K*W + (K+1)*padding) tensor in [-1, 1] on the CPU, K = len(columns).
    """
    if not columns:
        raise ValueError("image_grid needs at least one column")
    n, _, h, w = columns[0].shape
    for column in columns:
        if column.dim() != 4 or column.shape[0] != n or column.shape[2:] != (h, w) or column.shape[1] not in (1, 3):
            raise ValueError(f"grid columns must all be (N={n}, 1|3, {h}, {w}), got {tuple(column.shape)}")
    grid = torch.ones(3, n * h + (n + 1) * padding, len(columns) * w + (len(columns) + 1) * padding)
    for j, column in enumerate(columns):
        images = column.detach().to("cpu", torch.float32).clamp(-1, 1).expand(-1, 3, -1, -1)
        for i in range(n):
            top, left = padding + i * (h + padding), padding + j * (w + padding)
            grid[:, top:top + h, left:left + w] = images[i]
    return grid


class RunLogger:
    """Progress bar + TensorBoard + ``logs/log.txt`` for one run; writes nothing when ``enabled`` is False."""

    def __init__(self, run_dir: Path | None, enabled: bool, total_steps: int, start_step: int,
                 progress: bool = True) -> None:
        self.enabled = enabled and run_dir is not None
        self.run_dir = run_dir
        self.progress = progress
        self.writer = None
        self.text = None
        self.step, self.total_steps = start_step, total_steps
        self.last_means: dict[str, float] = {}
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, int] = {}  # per term: a method may log a term only on some steps
        self._first_bad: dict[str, torch.Tensor | int] = {}  # per term: first step with a non-finite value
        self._started = self._last_time = time.perf_counter()
        self._last_step = start_step
        self._timed_from: tuple[float, int] | None = None  # (time, step) after the first step (its warm-up is slow)
        self._eta_shown = False
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = run_dir / LOG_DIR
            log_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(log_dir=str(log_dir))
            self.text = open(log_dir / "log.txt", "a", encoding="utf-8")
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not (self.enabled and progress), file=sys.stderr, smoothing=0.05)

    def message(self, line: str) -> None:
        """A line for the console (above the bar) and log.txt."""
        if not self.enabled:
            return
        self.bar.write(line, file=sys.stderr)
        self.text.write(line + "\n")
        self.text.flush()

    def track(self, losses: dict[str, torch.Tensor | float]) -> None:
        """Add one step's loss terms to the running means (each over the steps that logged it), note the first
        step of each term that is not finite (without waiting for the device), advance the bar and the ETA."""
        self.step += 1
        for key, value in losses.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().float()
                bad = torch.where(torch.isfinite(value).all(), _NEVER, self.step)
                self._first_bad[key] = torch.minimum(bad, torch.as_tensor(self._first_bad.get(key, _NEVER)))
            else:
                value = float(value)
                if not math.isfinite(value):
                    self._first_bad[key] = min(self._first_bad.get(key, _NEVER), self.step)
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1
        self.bar.update(1)
        self._maybe_show_eta()

    def non_finite_loss(self) -> tuple[int, str] | None:
        """``(step, "loss 'l1' became nan")`` for the earliest non-finite loss term since the last
        :meth:`log_losses`, or None."""
        found = [(int(step), key) for key, step in self._first_bad.items() if int(step) < _NEVER]
        if not found:
            return None
        step, key = min(found)
        return step, f"loss '{key}' became {float(self._sums[key])}"

    def log_losses(self, step: int, lrs: dict[str, float]) -> dict[str, float]:
        """Write the mean loss terms since the last call, the learning rates and the speed; return the means."""
        means = {key: float(total) / self._counts[key] for key, total in self._sums.items()}
        self._sums, self._counts, self._first_bad = {}, {}, {}
        self.last_means = means
        now = time.perf_counter()
        speed = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        if self.enabled:
            for key, value in means.items():
                self.writer.add_scalar(f"loss/{key}", value, step)
            for key, value in lrs.items():
                self.writer.add_scalar(f"lr/{key}", value, step)
            self.writer.add_scalar("speed/steps_per_s", speed, step)
            self.bar.set_postfix({key: f"{value:.3g}" for key, value in means.items()}, refresh=False)
            self.text.write(f"step {step} " + " ".join(f"{k}={v:.4g}" for k, v in means.items()) + "\n")
            self.text.flush()
        return means

    def log_epoch(self, epoch: int, total_epochs: int) -> None:
        """Without a progress bar: one line per finished epoch (step, last logged losses, elapsed, ETA)."""
        if self.progress:
            return
        losses = ", ".join(f"{key} {value:.3g}" for key, value in self.last_means.items())
        timing = f"{format_duration(time.perf_counter() - self._started)} elapsed"
        eta = self._eta_seconds()
        if eta is not None and self.step < self.total_steps:
            timing += f", ETA {format_duration(eta)}"
        self.message(f"epoch {epoch}/{total_epochs}: step {self.step:,}/{self.total_steps:,}"
                     + (f", {losses}" if losses else "") + f"; {timing}")

    def _eta_seconds(self) -> float | None:
        if self._timed_from is None or self.step <= self._timed_from[1]:
            return None
        since, first = self._timed_from
        return (self.total_steps - self.step) * (time.perf_counter() - since) / (self.step - first)

    def _maybe_show_eta(self) -> None:
        now = time.perf_counter()
        if self._timed_from is None:
            self._timed_from = (now, self.step)
            return
        since, first = self._timed_from
        if self._eta_shown or not (self.step - first >= ETA_AFTER_STEPS or now - since >= ETA_AFTER_SECONDS):
            return
        self._eta_shown = True
        if self.step < self.total_steps:
            speed = (self.step - first) / max(now - since, 1e-9)
            self.message(f"ETA {format_duration(self._eta_seconds())}: {self.total_steps - self.step:,} steps left "
                         f"at {speed:.3g} steps/s (timed over {_steps(self.step - first)})")

    def log_validation(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        for key, value in metrics.items():
            self.writer.add_scalar(f"val/{key}", value, step)
        self.message(f"step {step} validation: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))

    def log_samples(self, step: int, grid: torch.Tensor) -> Path | None:
        """Write the grid to ``samples/step_XXXXXXXX.png`` and TensorBoard tag ``samples``."""
        if not self.enabled:
            return None
        self.writer.add_image("samples", ((grid + 1) / 2).clamp(0, 1), step, dataformats="CHW")
        return save_image(grid, self.run_dir / SAMPLE_DIR / f"step_{step:08d}.png")

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        if self.text is not None:
            self.text.close()
