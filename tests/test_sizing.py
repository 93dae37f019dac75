"""ganslim.cli.sizing.choose_size: the size every image command runs at, read from the models' signatures."""

from __future__ import annotations

import pytest

from ganslim.archs import build_generator
from ganslim.cli.sizing import choose_size
from ganslim.errors import GanslimError

SR = build_generator("rrdbnet", num_feat=4, num_block=0, num_grow_ch=2).signature
TRANSLATOR = build_generator("resnet_6blocks", ngf=4).signature


def test_translators_take_size_then_training_size_then_256(capsys):
    assert choose_size(None, [("g.pt", 128)], [TRANSLATOR]) == 128
    assert choose_size(64, [("g.pt", 128)], [TRANSLATOR]) == 64
    assert choose_size(None, [("g.pt", None)]) == 256  # callers that pass no signature keep the old rule
    assert capsys.readouterr().err.splitlines() == [
        "size 128x128 (the size g.pt was trained at)", "size 64x64 (--size)",
        "size 256x256 (the default: no training size is recorded with the model)"]


def test_super_resolution_never_resizes_its_input(capsys):
    assert choose_size(None, [("x4.pt", 128)], [SR]) is None  # a training crop is no size to resize to
    announced = capsys.readouterr().err.strip()
    assert announced == "size: each image's own (super-resolution models never resize their input)"
    with pytest.raises(GanslimError, match=r"^--size 64 does not apply: super-resolution models never resize their "
                                           r"input \(this x4 model takes each image at its own size\): drop --size$"):
        choose_size(64, [("x4.pt", None)], [SR])


def test_commands_making_their_own_inputs_take_the_lr_side(capsys):
    assert choose_size(None, [("x4.pt", 128)], [SR], resizes=False) == 64  # bench times x4 models at 64 -> 256
    assert choose_size(32, [("x4.pt", 128)], [SR], resizes=False) == 32
    announced = capsys.readouterr().err.splitlines()
    assert announced == ["LR input size 64x64 (the default for super-resolution models: --size sets the LR side; "
                         "at least 64)", "LR input size 32x32 (--size)"]


def test_mixing_super_resolution_and_translation_is_one_line():
    with pytest.raises(GanslimError, match="mix super-resolution and image-to-image generators"):
        choose_size(None, [("a", None), ("b", None)], [SR, TRANSLATOR])
