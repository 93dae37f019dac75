"""AutoGAN-Distiller's objectives against hand computations; presets; the VGG absent (said once, terms off,
summary); gradients reach the student only; the VGG never enters a state dict."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from ganslim.errors import GanslimError
from ganslim.methods.agd import objective as objective_module
from ganslim.methods.agd.objective import SR_PRESETS, TRANSLATION_PRESETS, AGDSRObjective, AGDTranslationObjective
from ganslim.nn.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG16Features, load_vgg16, load_vgg19
from test_vgg import CONVS, CONVS19, torchvision_state

RELU_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
CONV5_4 = 34
STYLE = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@pytest.fixture(scope="module")
def vgg16(tmp_path_factory) -> VGG16Features:
    """Random weights written as torchvision's file and loaded the way a run loads them."""
    path = tmp_path_factory.mktemp("vgg16") / "vgg16-397923af.pth"
    torch.save(torchvision_state(CONVS), path)
    return load_vgg16(path, imagenet_norm=False)


@pytest.fixture(scope="module")
def vgg19(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg19") / "vgg19-dcbb9e9d.pth"
    torch.save(torchvision_state(CONVS19), path)
    return load_vgg19(path)


@pytest.fixture()
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(objective_module, "_warned_networks", set())


def images(seed: int, shape=(2, 3, 16, 16), low: float = -1.0) -> torch.Tensor:
    return low + (1 - low) * torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def relu_activations(features: nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Walk torchvision's ``features`` by hand, keeping the style layers' outputs."""
    out = {}
    for index, layer in enumerate(features[:RELU_INDEX["relu4_3"] + 1]):
        x = layer(x)
        for name, wanted in RELU_INDEX.items():
            if index == wanted:
                out[name] = x
    return out


def hand_gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    return torch.einsum("nihw,njhw->nij", f, f) / (c * h * w)


def test_presets_are_the_references_weights(vgg16, vgg19):
    assert TRANSLATION_PRESETS == {"search": {"l1": 0.0, "style": 1e5, "content": 1.0, "tv": 0.0},
                                   "retrain": {"l1": 1e-2, "style": 1e5, "content": 1.0, "tv": 0.0}}
    assert SR_PRESETS == {"pixel": {"pixel": 1.0, "content": 0.0}, "pixel+content": {"pixel": 1e-2, "content": 1.0}}
    assert AGDTranslationObjective("search", vgg16).terms_on() == ("style", "content")
    retrain = AGDTranslationObjective("retrain", vgg16)
    assert retrain.term_weights == TRANSLATION_PRESETS["retrain"] and retrain.terms_on() == ("l1", "style", "content")
    assert AGDSRObjective("pixel", vgg19).terms_on() == ("pixel",)
    assert AGDSRObjective("pixel+content", vgg19).terms_on() == ("pixel", "content")
    retrain.term_weights["l1"] = 5.0  # an objective's weights are its own copy
    assert TRANSLATION_PRESETS["retrain"]["l1"] == 1e-2


def test_translation_terms_against_a_hand_computation(vgg16):
    weights = {"l1": 2.0, "style": 3e4, "content": 5.0, "tv": 7e-3}
    objective = AGDTranslationObjective(weights, vgg16)
    student, teacher = images(1), images(2)
    terms = objective(student, teacher)
    assert list(terms) == ["l1", "style", "content", "tv", "total"]

    s, t = relu_activations(vgg16.features, (student + 1) / 2), relu_activations(vgg16.features, (teacher + 1) / 2)
    style = sum(((hand_gram(s[name]) - hand_gram(t[name])) ** 2).mean() for name in STYLE)
    content = (s["relu2_2"] - t["relu2_2"]).abs().mean()
    tv = ((student[..., :, 1:] - student[..., :, :-1]).abs().sum()
          + (student[..., 1:, :] - student[..., :-1, :]).abs().sum())
    expected = {"l1": 2.0 * (student - teacher).abs().mean(), "style": 3e4 * style, "content": 5.0 * content,
                "tv": 7e-3 * tv}
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(terms["total"], sum(expected.values()), rtol=1e-5, atol=1e-7)
    assert terms["style"].item() > 0 and terms["content"].item() > 0

    same = objective(teacher, teacher)
    assert all(same[name].item() == 0 for name in ("l1", "style", "content"))


def test_sr_terms_against_a_hand_computation(vgg19):
    objective = AGDSRObjective({"pixel": 0.5, "content": 3.0}, vgg19)
    student, teacher = images(3, (2, 3, 32, 32), low=0.0), images(4, (2, 3, 32, 32), low=0.0)
    terms = objective(student, teacher)
    assert list(terms) == ["pixel", "content", "total"]

    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    features = vgg19.features[:CONV5_4 + 1]  # conv5_4, before its ReLU
    s, t = features((student - mean) / std), features((teacher - mean) / std)
    assert s.shape == (2, 512, 2, 2) and (s < 0).any()
    torch.testing.assert_close(terms["pixel"], 0.5 * (student - teacher).abs().mean())
    torch.testing.assert_close(terms["content"], 3.0 * (s - t).abs().mean())
    torch.testing.assert_close(terms["total"], terms["pixel"] + terms["content"])


def test_gradients_reach_the_student_output_only(vgg16, vgg19):
    cases = [(AGDTranslationObjective({"l1": 1.0, "style": 1e5, "content": 1.0, "tv": 1e-3}, vgg16), -1.0, 16),
             (AGDSRObjective("pixel+content", vgg19), 0.0, 32)]
    for objective, low, side in cases:
        student = images(5, (1, 3, side, side), low).requires_grad_()
        teacher = images(6, (1, 3, side, side), low).requires_grad_()
        objective(student, teacher)["total"].backward()
        assert student.grad is not None and student.grad.abs().sum() > 0
        assert teacher.grad is None
        assert all(p.grad is None and not p.requires_grad for p in objective.vgg.parameters())


def test_the_vgg_is_never_in_a_state_dict(vgg16, vgg19):
    objective = AGDTranslationObjective("retrain", vgg16)
    assert objective.state_dict() == {}
    assert AGDSRObjective("pixel+content", vgg19).state_dict() == {}
    holder = nn.ModuleDict({"student": nn.Conv2d(3, 3, 1), "objective": objective})
    assert sorted(holder.state_dict()) == ["student.bias", "student.weight"]

    before = {key: value.clone() for key, value in vgg16.state_dict().items()}
    holder.load_state_dict(holder.state_dict())  # strict: the VGG's absent keys are not missing
    foreign = {**holder.state_dict(), "objective.vgg.features.0.weight": torch.zeros(64, 3, 3, 3)}
    holder.load_state_dict(foreign)  # a state dict carrying VGG weights cannot replace the user's
    assert all(torch.equal(value, before[key]) for key, value in vgg16.state_dict().items())

    objective.train()
    assert not objective.vgg.training  # the loss network stays frozen inside a training method


def test_without_vgg_the_perceptual_terms_are_off_said_once(fresh_warnings, caplog):
    caplog.set_level(logging.WARNING, logger="ganslim.methods.agd.objective")
    translation = AGDTranslationObjective("retrain", None)
    AGDTranslationObjective("search", None)
    sr = AGDSRObjective("pixel+content", None)
    AGDSRObjective("pixel+content", None)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2  # once per network
    assert messages[0].startswith("VGG16 weights not found, so the AGD style and content term(s) are OFF (only l1")
    assert "GANSLIM_VGG16_WEIGHTS" in messages[0]
    assert messages[1].startswith("VGG19 weights not found, so the AGD content term(s) are OFF (only pixel")
    assert "GANSLIM_VGG19_WEIGHTS" in messages[1]

    assert translation.terms_on() == ("l1",)
    student, teacher = images(7), images(8)
    terms = translation(student, teacher)
    assert list(terms) == ["l1", "total"]
    torch.testing.assert_close(terms["total"], 1e-2 * (student - teacher).abs().mean())
    assert translation.summary() == {
        "terms": {"l1": 1e-2},
        "off": {"tv": "weight 0", "style": "no VGG16 weights", "content": "no VGG16 weights"},
        "perceptual": "absent",
        "notice": messages[0],
    }
    assert sr.terms_on() == ("pixel",)
    assert sr.summary()["terms"] == {"pixel": 1e-2} and sr.summary()["off"] == {"content": "no VGG19 weights"}

    searching = AGDTranslationObjective("search", None)  # no term at all: total is a zero, nothing breaks
    assert searching.terms_on() == ()
    assert searching(student, teacher) == {"total": torch.zeros(())}


def test_no_warning_when_no_weighted_term_needs_the_vgg(fresh_warnings, caplog, vgg16):
    caplog.set_level(logging.WARNING, logger="ganslim.methods.agd.objective")
    pixel = AGDSRObjective("pixel", None)
    assert pixel.terms_on() == ("pixel",) and not caplog.records
    assert pixel.summary() == {"terms": {"pixel": 1.0}, "off": {"content": "weight 0"}, "perceptual": "absent"}
    loaded = AGDTranslationObjective("retrain", vgg16).summary()
    assert loaded["terms"] == {"l1": 1e-2, "style": 1e5, "content": 1.0} and "notice" not in loaded
    assert loaded["perceptual"] == "VGG16 relu1_2, relu2_2, relu3_3, relu4_3 on (x + 1) / 2, unnormalised"
    assert not caplog.records


def test_bad_weights_networks_and_shapes(vgg16, tmp_path: Path):
    with pytest.raises(GanslimError, match="unknown AGD translation loss preset 'final'; choose from: search, retrain"):
        AGDTranslationObjective("final", None)
    with pytest.raises(GanslimError, match="exactly the terms pixel, content, got pixel$"):
        AGDSRObjective({"pixel": 1.0}, None)
    with pytest.raises(GanslimError, match="negative style weight"):
        AGDTranslationObjective({"l1": 1.0, "style": -1.0, "content": 1.0, "tv": 0.0}, None)
    with pytest.raises(ValueError, match="imagenet_norm=False"):
        AGDTranslationObjective("search", VGG16Features())
    with pytest.raises(ValueError, match="relu3_3, relu4_3"):
        AGDTranslationObjective("search", VGG16Features(layers=["relu1_2", "relu2_2"], imagenet_norm=False))
    with pytest.raises(GanslimError, match=r"differ in shape: \(2, 3, 16, 16\) vs \(2, 3, 16, 8\)"):
        AGDTranslationObjective("retrain", vgg16)(images(1), images(2)[..., :8])
