"""ESRGAN weights in BasicSR's, xinntao's new-arch and the old-arch key layouts load with the architecture inferred,
and compute what BasicSR's forward computes on the saved tensors."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from esrgan_reference import in_layout, random_state, reference_forward
from ganslim.archs import build_generator
from ganslim.checkpoints import load_generator, save_model
from ganslim.cli import main
from ganslim.errors import GanslimError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NUM_FEAT, NUM_BLOCK, GROW = 8, 2, 4
LOGGER = "ganslim.checkpoints.esrgan"


def random_weights(scale: int = 4, channels: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    in_channels = channels * {4: 1, 2: 4, 1: 16}[scale]
    return random_state(NUM_FEAT, NUM_BLOCK, GROW, in_channels, channels, seed)


def sr_output(model: torch.nn.Module, channels: int = 3, side: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(the model's output, its input) on a seeded (1, channels, side, side) image in [0, 1]."""
    image = torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return model(image), image


def expected_kwargs(scale: int, channels: int = 3) -> dict:
    return {"input_nc": channels, "output_nc": channels, "scale": scale, "num_feat": NUM_FEAT,
            "num_block": NUM_BLOCK, "num_grow_ch": GROW}


FILES = {
    "bare BasicSR (its converter)": lambda w: in_layout(w, "basicsr", NUM_BLOCK),
    "BasicSR params_ema": lambda w: {"params_ema": in_layout(w, "basicsr", NUM_BLOCK)},
    "xinntao new arch": lambda w: in_layout(w, "new_arch", NUM_BLOCK),
    "old arch": lambda w: in_layout(w, "old_arch", NUM_BLOCK),
    "DataParallel old arch": lambda w: {f"module.{k}": v for k, v in in_layout(w, "old_arch", NUM_BLOCK).items()},
}
LAYOUT_TITLES = {"bare BasicSR (its converter)": "BasicSR", "BasicSR params_ema": "BasicSR",
                 "xinntao new arch": "xinntao's new arch", "old arch": "ESRGAN's old arch",
                 "DataParallel old arch": "ESRGAN's old arch"}


@pytest.mark.parametrize("file_kind", list(FILES))
def test_each_layout_loads_and_computes_basicsr_forward(tmp_path, file_kind, caplog):
    weights = random_weights()
    path = tmp_path / "esrgan.pth"
    torch.save(FILES[file_kind](weights), path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        loaded = load_generator(path)
    assert caplog.records == []
    assert (loaded.arch, loaded.arch_kwargs, loaded.source) == ("rrdbnet", expected_kwargs(4), "reference")
    assert loaded.meta == {"key_layout": LAYOUT_TITLES[file_kind]}
    assert loaded.signature.describe() == "image (3 ch, [0, 1], any size) -> image (3 ch, [0, 1], x4)"
    output, image = sr_output(loaded.model)
    assert output.shape == (1, 3, 32, 32)
    assert torch.allclose(output, reference_forward(weights, image, 4), atol=1e-5)


@pytest.mark.parametrize("scale, channels", [(2, 3), (1, 3), (4, 1), (2, 1)])
def test_scale_and_channels_are_read_from_conv_first(tmp_path, scale, channels):
    weights = random_weights(scale, channels, seed=scale)
    torch.save({"params_ema": weights}, tmp_path / "x.pth")
    loaded = load_generator(tmp_path / "x.pth")
    assert loaded.arch_kwargs == expected_kwargs(scale, channels)
    output, image = sr_output(loaded.model, channels)
    assert output.shape == (1, channels, 8 * scale, 8 * scale)
    assert torch.allclose(output, reference_forward(weights, image, scale), atol=1e-5)


def test_params_ema_is_preferred_over_params(tmp_path, caplog):
    ema, raw = random_weights(seed=1), random_weights(seed=2)
    torch.save({"params": raw, "params_ema": ema}, tmp_path / "both.pth")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        output, image = sr_output(load_generator(tmp_path / "both.pth").model)
    assert caplog.records == []
    assert torch.allclose(output, reference_forward(ema, image, 4), atol=1e-5)
    assert not torch.allclose(output, reference_forward(raw, image, 4), atol=1e-3)


def test_a_file_with_only_params_loads_them_and_says_so_once(tmp_path, caplog):
    raw = random_weights(seed=3)
    path = tmp_path / "net_g_5000.pth"
    torch.save({"params": raw}, path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        output, image = sr_output(load_generator(path).model)
    assert [record.getMessage() for record in caplog.records] == [
        f"note: '{path}' holds no params_ema (BasicSR's EMA weights): loading its params"]
    assert torch.allclose(output, reference_forward(raw, image, 4), atol=1e-5)


def test_a_scale_the_file_does_not_have_is_one_line(tmp_path):
    torch.save(random_weights(), tmp_path / "x4.pth")
    assert load_generator(tmp_path / "x4.pth", scale=4).arch_kwargs["scale"] == 4
    with pytest.raises(GanslimError) as error:
        load_generator(tmp_path / "x4.pth", scale=2)
    assert str(error.value) == (f"checkpoint '{tmp_path / 'x4.pth'}' holds an x4 RRDBNet (conv_first takes 3 "
                                f"channels for 3-channel images), not x2: pass --scale 4 or the x2 model's file")


def test_an_unknown_layout_names_the_closest_and_what_differs(tmp_path):
    state = in_layout(random_weights(), "new_arch", NUM_BLOCK)
    state["HR_conv.weight"], state["HR_conv.bias"] = state.pop("HRconv.weight"), state.pop("HRconv.bias")
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(GanslimError) as error:
        load_generator(tmp_path / "odd.pth")
    assert str(error.value) == (
        f"checkpoint '{tmp_path / 'odd.pth'}' is not an RRDBNet in a known key layout; the closest is xinntao's new "
        f"arch (RRDB_trunk.N.RDB1.conv1, trunk_conv, upconv1, HRconv), from which it differs: missing HRconv.weight, "
        f"HRconv.bias; unexpected HR_conv.weight, HR_conv.bias; pass a BasicSR, xinntao ESRGAN or old-arch ESRGAN "
        f"generator file")


def test_a_missing_block_is_named_in_the_files_own_layout(tmp_path):
    state = in_layout(random_weights(), "old_arch", NUM_BLOCK)
    del state["model.1.sub.0.RDB2.conv3.0.bias"]
    torch.save(state, tmp_path / "old.pth")
    with pytest.raises(GanslimError, match=r"the closest is ESRGAN's old arch \(model.0, .*\), from which it differs: "
                                           r"missing model.1.sub.0.RDB2.conv3.0.bias; pass"):
        load_generator(tmp_path / "old.pth")


def test_another_arch_or_option_is_refused_in_one_line(tmp_path):
    torch.save(random_weights(), tmp_path / "x4.pth")
    with pytest.raises(GanslimError, match="holds an ESRGAN RRDBNet, not a resnet_9blocks: drop the architecture"):
        load_generator(tmp_path / "x4.pth", arch="resnet_9blocks")
    with pytest.raises(GanslimError, match="is an rrdbnet generator, which takes no ngf"):
        load_generator(tmp_path / "x4.pth", ngf=64)
    with pytest.raises(GanslimError, match=r"does not fit rrdbnet \(.*num_block 3.*\): 30 missing keys "
                                           r"\(first 'body.2.rdb1.conv1.weight'\)"):
        load_generator(tmp_path / "x4.pth", num_block=3)


def test_a_conv_first_of_no_known_scale_is_one_line(tmp_path):
    weights = random_weights()
    weights["conv_first.weight"] = weights["conv_first.weight"].repeat(1, 2, 1, 1)  # 6 channels for 3
    torch.save(weights, tmp_path / "x.pth")
    with pytest.raises(GanslimError, match="conv_first takes 6 channels and conv_last gives 3, but an RRDBNet's "
                                           "conv_first takes 1x, 4x or 16x"):
        load_generator(tmp_path / "x.pth")


def test_a_ganslim_rrdbnet_checkpoint_round_trips_with_its_signature(tmp_path):
    generator = build_generator("rrdbnet", scale=2, num_feat=4, num_block=1, num_grow_ch=2).eval()
    kwargs = {"scale": 2, "num_feat": 4, "num_block": 1, "num_grow_ch": 2}
    for suffix in (".pt", ".safetensors"):
        loaded = load_generator(save_model(tmp_path / f"g{suffix}", generator, "rrdbnet", kwargs))
        assert loaded.signature == generator.signature and loaded.source == "ganslim"
        output, image = sr_output(loaded.model)
        with torch.no_grad():
            assert torch.equal(output, generator(image))


def test_the_cli_reads_an_old_arch_file(tmp_path, capsys):
    torch.save(in_layout(random_weights(), "old_arch", NUM_BLOCK), tmp_path / "RRDB_old.pth")
    assert main(["profile", str(tmp_path / "RRDB_old.pth"), "--size", "8", "--repeats", "1", "--warmup", "0",
                 "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    weights = random_weights()
    assert figures["params"] == sum(tensor.numel() for tensor in weights.values())
    assert figures["input_shape"] == [1, 3, 8, 8]
