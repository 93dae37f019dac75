"""Lazy regularisation (Karras et al. 2020, StyleGAN2 section 4): a regulariser runs only every ``k`` steps, with
``k`` times its weight, and the optimizer of the network it trains takes ``lr * c`` and ``betas ** c``,
``c = k / (k + 1)`` (the main loss and the regulariser then step it ``k + 1`` times per ``k`` steps).

A method asks :meth:`ganslim.engine.TrainContext.due` whether a term of interval ``k`` runs in this step (steps
0, k, 2k, ..., a function of the step, so a resumed run keeps the rhythm) and builds the optimizer with
:func:`lazy_adam`.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def lazy_adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float], every: int | None
              ) -> torch.optim.Adam:
    """Adam for a network regularised every ``every`` steps (None: never, plain Adam), with the lazy-regularisation
    adjustment ``lr * c``, ``betas ** c``, ``c = every / (every + 1)``."""
    ratio = every / (every + 1) if every else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio))
