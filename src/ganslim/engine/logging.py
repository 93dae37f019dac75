"""What a run shows and records: a progress bar, TensorBoard scalars and image grids, PNG samples, log.txt.

Only rank 0 logs; other ranks get a disabled logger. TensorBoard tags: ``loss/<term>`` for every loss term a
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
from ganslim.errors import GanslimError

LOG_DIR = "logs"
SAMPLE_DIR = "samples"


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
    """Progress bar + TensorBoard + ``logs/log.txt`` for one run; does nothing when ``enabled`` is False."""

    def __init__(self, run_dir: Path | None, enabled: bool, total_steps: int, start_step: int,
                 progress: bool = True) -> None:
        self.enabled = enabled and run_dir is not None
        self.run_dir = run_dir
        self.writer = None
        self.text = None
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, int] = {}  # per term: a method may log a term only on some steps
        self._last_time = time.perf_counter()
        self._last_step = start_step
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
        """Add one step's loss terms to the running means (each over the steps that logged it); advance the bar."""
        for key, value in losses.items():
            value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1
        self.bar.update(1)

    def log_losses(self, step: int, lrs: dict[str, float]) -> dict[str, float]:
        """Write the mean loss terms since the last call, the learning rates and the speed; return the means."""
        means = {key: float(total) / self._counts[key] for key, total in self._sums.items()}
        self._sums, self._counts = {}, {}
        for key, value in means.items():
            if not math.isfinite(value):
                raise GanslimError(f"loss '{key}' became {value} around step {step}: lower the learning rate"
                                   f" (--set lr=...), turn off --amp, or set grad_clip")
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
