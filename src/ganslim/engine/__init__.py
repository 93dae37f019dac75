"""The generic training engine: one loop for every method, resumable, logged, single- or multi-process.

Use :func:`fit` with a config (a :class:`ganslim.config.TrainConfig` subclass) and a method class that
follows :class:`Method` (see :mod:`ganslim.engine.protocol`); methods update their optimizers through the
:class:`TrainContext` they are given. A method of several stages runs them with :func:`run_stages`
(:mod:`ganslim.engine.staged`). The engine never imports a method.

What the engine offers every method: a length in epochs, iterations or kimg (:mod:`.length`); learning-rate
schedules by name (:mod:`.schedules`); an EMA of fixed decay or of a half-life in kimg with ramp-up (:mod:`.ema`);
lazy regularisation, terms every k steps (:mod:`.lazy`); gradient accumulation and draws shared over processes
(:class:`TrainContext`); training items that are sampled rather than read from a folder (``needs_data = False``).
"""

from ganslim.engine.context import TrainContext
from ganslim.engine.distributed import DistInfo, init_distributed, launched_by_torchrun
from ganslim.engine.ema import EMA, half_life_decay
from ganslim.engine.lazy import lazy_adam
from ganslim.engine.length import RunLength
from ganslim.engine.logging import image_grid
from ganslim.engine.loop import RunResult, check_image_sides, epoch_batches, fit, resumed_step, steps_per_epoch
from ganslim.engine.protocol import Method, MethodBase
from ganslim.engine.runs import RunLock, create_run_dir, read_run_config, require_run_folder, resolve_resume
from ganslim.engine.schedules import LR_SCHEDULES, Constant, ConstantThenLinearDecay, Cosine, Schedule
from ganslim.engine.seed import derive_seed, seed_everything
from ganslim.engine.staged import Stage, StagedRun, run_stages
from ganslim.engine.state import load_weights

__all__ = [
    "Constant",
    "ConstantThenLinearDecay",
    "Cosine",
    "DistInfo",
    "EMA",
    "LR_SCHEDULES",
    "Method",
    "MethodBase",
    "RunLock",
    "RunLength",
    "RunResult",
    "Schedule",
    "Stage",
    "StagedRun",
    "TrainContext",
    "check_image_sides",
    "create_run_dir",
    "derive_seed",
    "epoch_batches",
    "fit",
    "half_life_decay",
    "image_grid",
    "init_distributed",
    "launched_by_torchrun",
    "lazy_adam",
    "load_weights",
    "read_run_config",
    "require_run_folder",
    "resolve_resume",
    "resumed_step",
    "run_stages",
    "seed_everything",
    "steps_per_epoch",
]
