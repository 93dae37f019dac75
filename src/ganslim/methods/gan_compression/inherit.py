"""What a GAN Compression stage run as a command of its own takes from the run folder of the stage before.

:func:`inherit_from_supernet` and :func:`inherit_from_search` read that run's ``config.yaml`` (and a search's
choice) into an :class:`Inherited`, whose ``STAGE_KEYS`` (data, sizes, held-out images, teacher, widths) options may
not contradict.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ganslim.config import TrainConfig, field_value, read_config_file
from ganslim.engine.runs import CONFIG_FILE
from ganslim.errors import GanslimError
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.networks import SUPERNET_FILE, find_supernet
from ganslim.methods.gan_compression.search import read_result

# What a stage command takes from the stage before it (:class:`Inherited`). These keys say which images are
# trained on and held out, how they are sized, what the teacher is and which widths the supernet has: an option
# contradicting one of them is refused. Every other key of the earlier run is a default that options may change
# (batch size, seed, loss weights, ...), except OWN_KEYS, which each stage sets for itself.
STAGE_KEYS = ("data", "direction", "preprocess", "load_size", "crop_size", "input_nc", "output_nc",
              "max_train_images", "holdout_images", "teacher", "student_ngf", "student_norm", "student_blocks",
              "channel_ratios", "channel_multiple", "candidates")
OWN_KEYS = ("out_dir", "device", "epochs", "epochs_decay", "fixed_channels", "supernet")
_PATH_KEYS = ("data", "teacher", "supernet")


@dataclass(frozen=True)
class Inherited:
    """What a stage command takes from an earlier stage's run folder.

    ``defaults``: config values the new stage's config starts from; ``fixed``: the values among them that an
    option may not change (a recorded path that no longer exists may be pointed elsewhere).
    """

    source: str  # e.g. "the supernet run 'runs/00000-gan-compression-supernet-facades'"
    defaults: dict
    fixed: dict

    def defaults_for(self, cls: type[TrainConfig]) -> dict:
        """``defaults`` restricted to the keys of config class ``cls``."""
        names = {item.name for item in dataclasses.fields(cls)}
        return {key: value for key, value in self.defaults.items() if key in names}

    def check(self, config: DistillConfig) -> None:
        """Refuse (GanslimError) a ``config`` whose value of a fixed key differs from the recorded one."""
        for key, recorded in self.fixed.items():
            given, recorded = getattr(config, key), field_value(type(config), key, recorded)
            if key not in _PATH_KEYS or Path(recorded).exists():
                if _comparable(key, given) != _comparable(key, recorded):
                    raise GanslimError(f"{key}={given!r} contradicts {self.source} ({key}={recorded!r}): drop the "
                                       f"option; a stage keeps the data, image sizes, held-out images, teacher and "
                                       f"widths of the stage before")
            elif given == recorded:
                raise GanslimError(f"{key} '{recorded}' of {self.source} is not found from here (its config.yaml "
                                   f"holds the path as given then): pass --{key} with where it is now")


def _comparable(key: str, value: object) -> object:
    """``value`` of config key ``key`` as compared between stages: paths resolved, a supernet folder as its file."""
    if key not in _PATH_KEYS:
        return value
    path = Path(value)
    return (path / SUPERNET_FILE if key == "supernet" and path.is_dir() else path).resolve()


def _run_values(run_dir: Path) -> dict | None:
    """The config values in ``run_dir/config.yaml`` (without its ``method``); None when there is none."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    return {key: value for key, value in read_config_file(path).items() if key != "method"}


def _inherited(source: str, values: dict, **chosen) -> Inherited:
    defaults = {**{key: value for key, value in values.items() if key not in OWN_KEYS}, **chosen}
    return Inherited(source, defaults, {**{key: defaults[key] for key in STAGE_KEYS if key in defaults}, **chosen})


def inherit_from_supernet(supernet: str | os.PathLike) -> Inherited | None:
    """What a search or fine-tune of ``supernet`` (a supernet run folder or its supernet.pt) takes from that run;
    None when no config.yaml lies beside the supernet.pt."""
    run_dir = find_supernet(supernet).parent
    values = _run_values(run_dir)
    return None if values is None else _inherited(f"the supernet run '{run_dir}'", values)


def inherit_from_search(search: str | os.PathLike) -> Inherited:
    """What a fine-tune of a search's choice takes: that run's options, its supernet and the chosen widths."""
    result = read_result(search)
    run_dir = Path(search) if Path(search).is_dir() else Path(search).parent
    return _inherited(f"the search run '{run_dir}'", _run_values(run_dir) or {}, supernet=result["supernet"],
                      fixed_channels=tuple(result["channels"]))
