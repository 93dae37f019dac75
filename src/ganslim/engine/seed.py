"""Seeding and RNG state: one ``seed_everything(seed, rank)``, and capture/restore for exact resume."""

from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys, e.g. ``derive_seed(seed, rank, stream)``."""
    return int(np.random.SeedSequence([int(key) for key in keys]).generate_state(1, np.uint64)[0] >> 1)


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators for process ``rank``.

    Each rank gets its own stream (different dropout masks per process); weights still start identical
    because DistributedDataParallel broadcasts rank 0's. Returns the derived seed.
    """
    derived = derive_seed(seed, rank)
    random.seed(derived)
    np.random.seed(derived % 2**32)
    torch.manual_seed(derived)  # also seeds every CUDA device
    return derived


def rng_state() -> dict:
    """The global generators' states as plain data that ``torch.load(weights_only=True)`` accepts."""
    version, mt_state, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]), "has_gauss": int(numpy_state["has_gauss"]),
                  "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
