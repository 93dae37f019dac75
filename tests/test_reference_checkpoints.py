"""Importing files of the pix2pix / CycleGAN reference implementation (ganslim.checkpoints.reference)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganslim.archs import build_discriminator, build_generator
from ganslim.checkpoints.reference import (
    import_discriminator,
    import_generator,
    infer_discriminator_arch,
    infer_generator_arch,
    load_state_dict_file,
)
from ganslim.errors import GanslimError
from reference_impl import (
    NORM_NAMES,
    OUTPUT_TOLERANCE,
    TINY_DISCRIMINATORS,
    TINY_GENERATORS,
    image,
    randomize_,
    reference_discriminator,
    reference_generator,
)

UNPICKLED_CALLS: list[str] = []


def _record_call(tag: str) -> None:
    UNPICKLED_CALLS.append(tag)


class _RunsCodeWhenUnpickled:
    """An object whose unpickling would call ``_record_call``: what weights_only loading must refuse."""

    def __reduce__(self):
        return _record_call, ("unpickled",)


def _save(state_dict: dict, path) -> str:
    torch.save(state_dict, path)
    return str(path)


def _expected_generator(name: str, kwargs: dict, norm: str, use_dropout: bool) -> dict:
    expected = {"input_nc": 3, "output_nc": 3, "ngf": 64, **kwargs, "norm": norm, "use_dropout": use_dropout}
    if "unet" in name:  # dropout leaves no trace in U-Net weights; pix2pix's default (on) is assumed
        expected["use_dropout"] = expected.get("num_downs", 8 if name == "unet_256" else 7) > 5
    return expected


@pytest.mark.parametrize("use_dropout", [False, True], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("norm", NORM_NAMES)
@pytest.mark.parametrize("name", list(TINY_GENERATORS))
def test_import_generator_infers_arch_and_reproduces_outputs(tmp_path, name, norm, use_dropout):
    kwargs, size = TINY_GENERATORS[name]
    ref = randomize_(reference_generator(name, norm=norm, use_dropout=use_dropout, **kwargs), seed=1).eval()
    path = _save(ref.state_dict(), tmp_path / "latest_net_G.pth")

    generator, arch, arch_kwargs = import_generator(path)

    assert arch == name
    assert arch_kwargs == _expected_generator(name, kwargs, norm, use_dropout)
    assert infer_generator_arch(ref.state_dict()) == (arch, arch_kwargs)
    assert not generator.training
    x = image(1, arch_kwargs["input_nc"], size)
    with torch.no_grad():
        assert torch.allclose(generator(x), ref(x), atol=OUTPUT_TOLERANCE)
    assert list(build_generator(arch, **arch_kwargs).state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize("norm", NORM_NAMES)
@pytest.mark.parametrize(
    "name,kwargs,size", TINY_DISCRIMINATORS, ids=[f"{n}-{k.get('n_layers', '')}" for n, k, _ in TINY_DISCRIMINATORS]
)
def test_import_discriminator_infers_arch_and_reproduces_outputs(tmp_path, name, kwargs, size, norm):
    ref = randomize_(reference_discriminator(name, norm=norm, **kwargs), seed=2).eval()
    path = _save(ref.state_dict(), tmp_path / "latest_net_D_A.pth")

    discriminator, arch, arch_kwargs = import_discriminator(path)

    expected_arch = "basic" if name == "n_layers" and kwargs["n_layers"] == 3 else name
    assert arch == expected_arch
    assert arch_kwargs == {"input_nc": 3, "ndf": 64, **kwargs, "norm": norm}
    assert infer_discriminator_arch(ref.state_dict()) == (arch, arch_kwargs)
    x = image(2, arch_kwargs["input_nc"], size)
    with torch.no_grad():
        assert torch.allclose(discriminator(x), ref(x), atol=1e-5)


def _old_style_pair(kind: str, name: str, **kwargs) -> tuple[nn.Module, dict]:
    """A current reference model and the state_dict a pre-0.4 run of it would have saved (IN statistics)."""
    make = reference_generator if kind == "G" else reference_discriminator
    old = randomize_(make(name, norm="instance", instance_tracks_stats=True, **kwargs), seed=3)
    old_state = old.state_dict()
    assert any(key.endswith("running_mean") for key in old_state)
    assert any(key.endswith("num_batches_tracked") for key in old_state)
    current = make(name, norm="instance", **kwargs).eval()
    current.load_state_dict({k: v for k, v in old_state.items() if k in current.state_dict()}, strict=True)
    return current, old_state


@pytest.mark.parametrize(
    "name,kwargs,size,arch",
    [
        ("resnet", {"ngf": 8, "n_blocks": 2}, 32, None),
        ("resnet_6blocks", {"ngf": 4}, 32, "resnet_6blocks"),
        ("unet", {"ngf": 4, "num_downs": 5}, 32, None),
        ("unet_128", {"ngf": 4}, 128, "unet_128"),
    ],
    ids=["resnet-inferred", "resnet-given", "unet-inferred", "unet-given"],
)
def test_old_instance_norm_statistics_are_stripped(tmp_path, name, kwargs, size, arch):
    current, old_state = _old_style_pair("G", name, **kwargs)
    path = _save(old_state, tmp_path / "latest_net_G_A.pth")

    generator, got_arch, got_kwargs = import_generator(path, arch=arch)

    assert got_kwargs["norm"] == "instance"
    assert got_arch == (arch or name)
    x = image(1, 3, size)
    with torch.no_grad():
        assert torch.allclose(generator(x), current(x), atol=OUTPUT_TOLERANCE)


def test_old_instance_norm_statistics_in_discriminator(tmp_path):
    current, old_state = _old_style_pair("D", "basic", ndf=8)
    discriminator, arch, kwargs = import_discriminator(_save(old_state, tmp_path / "latest_net_D_A.pth"))
    assert (arch, kwargs["norm"]) == ("basic", "instance")
    x = image(1, 3, 64)
    with torch.no_grad():
        assert torch.allclose(discriminator(x), current(x), atol=1e-5)


def test_old_batch_norm_without_num_batches_tracked_loads(tmp_path):
    ref = randomize_(reference_generator("resnet", ngf=4, n_blocks=1, norm="batch"), seed=4).eval()
    state = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    generator, _, kwargs = import_generator(_save(state, tmp_path / "old_G.pth"))
    assert kwargs["norm"] == "batch"
    x = image(1, 3, 32)
    with torch.no_grad():
        assert torch.allclose(generator(x), ref(x), atol=OUTPUT_TOLERANCE)


def test_data_parallel_prefix_is_stripped(tmp_path):
    ref = randomize_(reference_generator("resnet_6blocks", ngf=4, norm="instance"), seed=5).eval()
    wrapped = nn.DataParallel(ref).state_dict()
    assert all(key.startswith("module.") for key in wrapped)
    path = _save(wrapped, tmp_path / "latest_net_G_A.pth")

    generator, arch, kwargs = import_generator(path)

    assert (arch, kwargs["ngf"], kwargs["norm"]) == ("resnet_6blocks", 4, "instance")
    assert infer_generator_arch(wrapped) == (arch, kwargs)
    x = image(1, 3, 32)
    with torch.no_grad():
        assert torch.allclose(generator(x), ref(x), atol=OUTPUT_TOLERANCE)
    d_wrapped = nn.DataParallel(reference_discriminator("basic", ndf=4)).state_dict()
    assert import_discriminator(d_wrapped)[1] == "basic"


def test_state_dict_source_and_plain_loading(tmp_path):
    ref = reference_generator("unet_128", ngf=4, norm="batch")
    path = _save(ref.state_dict(), tmp_path / "latest_net_G.pth")
    loaded = load_state_dict_file(path)
    assert type(loaded) is dict and list(loaded) == list(ref.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in ref.state_dict().items())
    _, arch, _ = import_generator(loaded)
    assert arch == "unet_128"


def test_overrides_win_over_inference(tmp_path):
    ref = reference_generator("unet_128", ngf=4, norm="batch", use_dropout=True)
    path = _save(ref.state_dict(), tmp_path / "latest_net_G.pth")
    generator, arch, kwargs = import_generator(path, use_dropout=False)
    assert arch == "unet_128" and kwargs["use_dropout"] is False
    assert not any(isinstance(m, nn.Dropout) for m in generator.modules())
    # Giving the depth of the inferred family keeps the specific name.
    resnet = _save(reference_generator("resnet", ngf=4, n_blocks=9).state_dict(), tmp_path / "r.pth")
    assert import_generator(resnet, n_blocks=9)[1:] == import_generator(resnet)[1:]
    assert import_generator(resnet, arch="resnet")[1:] == ("resnet", {**import_generator(resnet)[2], "n_blocks": 9})


def test_mismatching_architecture_is_one_line(tmp_path):
    ref = reference_generator("resnet_9blocks", ngf=8, norm="instance")
    path = _save(ref.state_dict(), tmp_path / "latest_net_G_A.pth")
    with pytest.raises(GanslimError) as error:
        import_generator(path, arch="resnet_6blocks")
    message = str(error.value)
    assert "\n" not in message and len(message) - len(path) < 450
    assert message.startswith(f"checkpoint {path} does not fit resnet_6blocks (")
    assert "unexpected model.16.conv_block.1.weight" in message and "more)" in message
    assert "pass --arch" in message

    with pytest.raises(GanslimError) as error:
        import_generator(path, ngf=16)
    message = str(error.value)
    assert "\n" not in message
    assert "shape of model.1.weight is [8, 3, 7, 7] in the file, [16, 3, 7, 7] in the model" in message

    with pytest.raises(GanslimError, match="missing model.2.weight"):
        import_generator(path, norm="batch")


def test_wrong_kind_of_network(tmp_path):
    d_path = _save(reference_discriminator("basic", ndf=4).state_dict(), tmp_path / "latest_net_D.pth")
    g_path = _save(reference_generator("resnet", ngf=4, n_blocks=1).state_dict(), tmp_path / "latest_net_G.pth")
    with pytest.raises(GanslimError, match="looks like a discriminator"):
        import_generator(d_path)
    with pytest.raises(GanslimError, match="looks like a generator"):
        import_discriminator(g_path)
    with pytest.raises(GanslimError, match="matches no pix2pix/CycleGAN generator"):
        infer_generator_arch({"conv_first.weight": torch.zeros(4, 3, 3, 3)})
    with pytest.raises(GanslimError, match="takes no num_downs"):
        import_generator(g_path, num_downs=3)


def test_unreadable_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(GanslimError, match=f"checkpoint {missing} does not exist"):
        import_generator(missing)
    with pytest.raises(GanslimError, match="is a folder"):
        load_state_dict_file(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(GanslimError) as error:
        load_state_dict_file(text)
    assert str(text) in str(error.value) and "\n" not in str(error.value)
    not_a_dict = _save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(GanslimError, match="not a state_dict"):
        load_state_dict_file(not_a_dict)
    training = _save({"epoch": 3, "net": {"w": torch.zeros(1)}}, tmp_path / "train.pth")
    with pytest.raises(GanslimError, match="not a plain state_dict"):
        import_discriminator(training)


def test_pickled_objects_are_refused_without_running_them(tmp_path):
    path = _save({"model.1.weight": torch.zeros(1), "extra": _RunsCodeWhenUnpickled()}, tmp_path / "evil.pth")
    with pytest.raises(GanslimError) as error:
        import_generator(path)
    assert "pickled Python objects" in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)
    assert UNPICKLED_CALLS == []
