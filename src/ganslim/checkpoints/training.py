"""A model out of a training checkpoint (a run's ``checkpoints/latest.pt`` or ``best.pt``, see
:mod:`ganslim.engine.state`): its ``models`` entry names each loadable network's kind, arch and arch_kwargs; the
weights are the network's average (EMA) when the run keeps one, else the trained ones; a generator trained with
spectral norm (SPADE's) gets it folded into plain weights, as its export does."""

from __future__ import annotations

from pathlib import Path

from ganslim.checkpoints.format import ModelCheckpoint
from ganslim.errors import GanslimError

TRAINING_FORMAT = "ganslim-train"  # ganslim.engine.state.WEIGHTS_FORMAT (checkpoints does not import the engine)


def is_training_checkpoint(content: object) -> bool:
    return isinstance(content, dict) and content.get("format") == TRAINING_FORMAT


def model_from_training(path: Path, content: dict, kind: str, direction: str = "AtoB") -> ModelCheckpoint:
    """The network of ``kind`` in training checkpoint ``content`` (for two generators such as CycleGAN's G_A and
    G_B, the one of ``direction``), as a ModelCheckpoint with meta ``{"weights": "ema" | "trained", "step"}``."""
    models = content.get("models") or {}
    names = [name for name, spec in models.items() if isinstance(spec, dict) and spec.get("kind") == kind]
    run = path.parent.parent
    if not names:
        raise GanslimError(f"'{path}' is a training checkpoint that names no {kind} to load (an older ganslim, or a "
                           f"stage that exports none): pass the {kind} file its run writes at the end, under '{run}'")
    suffix = "_B" if direction == "BtoA" else "_A"
    name = next((name for name in names if name.endswith(suffix)), names[0])
    spec, averaged = models[name], (content.get("ema") or {}).get(name)
    weights = averaged if averaged is not None else (content.get("networks") or {}).get(name)
    if not isinstance(weights, dict):
        raise GanslimError(f"'{path}' holds no weights for its {kind} '{name}': the file is damaged; pass another "
                           f"checkpoint of '{run}'")
    meta = {"weights": "ema" if averaged is not None else "trained", "step": content.get("step"),
            "network": name}
    if kind == "generator" and any(key.endswith("weight_orig") for key in weights):
        from ganslim.checkpoints.spade import fold_spectral_norm  # here: it imports the architectures

        weights, _ = fold_spectral_norm(weights, f"the generator of '{path}'")
    return ModelCheckpoint(kind=kind, arch=spec["arch"], arch_kwargs=dict(spec["arch_kwargs"]), state_dict=weights,
                           meta=meta)
