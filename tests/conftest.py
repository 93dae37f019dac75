"""Fixtures shared by the test modules (plain helper functions live in helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

import ganslim.measure.evaluate
import ganslim.nn.vgg
from ganslim.data import make_builtin
from ganslim.metrics.inception import FIDInceptionV3
from helpers import save_resnet


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Iterator[Path]:
    """The session's own ganslim cache folder (records of decoded images), never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANSLIM_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture
def no_inception(monkeypatch, tmp_path):
    """No Inception weights anywhere: no env var, and the default location is empty."""
    monkeypatch.delenv("GANSLIM_INCEPTION_WEIGHTS", raising=False)
    missing = tmp_path / "cache" / "pt_inception-2015-12-05-6726825d.pth"
    monkeypatch.setattr(ganslim.measure.evaluate, "default_weights_path", lambda: missing)
    return missing


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory):
    """Randomly initialised FID Inception weights, saved as the state dict pytorch-fid ships.

    Kaiming-normal convs keep activations from vanishing through the 94 layers, so features differ per image.
    """
    torch.manual_seed(0)
    inception = FIDInceptionV3()
    for module in inception.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(inception.state_dict(), path)
    return path


@pytest.fixture
def no_user_vgg(monkeypatch, tmp_path):
    """No VGG16 (nor VGG19) weights from this machine: no env var and an empty home (so an empty ~/.cache/ganslim)."""
    monkeypatch.delenv(ganslim.nn.vgg.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.delenv("GANSLIM_VGG19_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def one_torch_thread():
    """These tensors are tiny: one thread is fastest, and two xdist workers x two OpenMP threads spin-wait
    for each other on a 2-core machine (measured 5x slower). Modules opt in with ``pytestmark``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """shapes2render at 32 px: train/ 16 A|B pairs, val/ and test/ 2 pairs each (one copy per test module)."""
    return make_builtin("shapes2render", tmp_path_factory.mktemp("data") / "shapes", size=32, count=16)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """``{"teacher": ckpt/teacher.pt, "student": ckpt/student.pt}``: random resnet_6blocks of width 8 and 4."""
    folder = tmp_path_factory.mktemp("ckpt")
    return {"teacher": save_resnet(folder / "teacher.pt", 8), "student": save_resnet(folder / "student.pt", 4)}
