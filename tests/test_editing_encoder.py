"""The image -> W+ encoder and `ganslim train encoder`: shapes at any side, the mean-W start, a step lowering the loss,
the sub-generator terms, the VGG16 term with weights and its fallback said once, exact resume, the run's files,
real-image PSNR, and one-line refusals (another generator, not an encoder, bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganslim.archs import build_generator
from ganslim.checkpoints import load_generator
from ganslim.cli import main
from ganslim.data import make_builtin
from ganslim.editing import Encoder, load_encoder
from ganslim.editing.encoder import encoder_for, save_encoder
from ganslim.editing.encoder_training import EncoderConfig, EncoderTraining
from ganslim.engine import fit
from ganslim.errors import GanslimError
from ganslim.nn.vgg import VGG16Features
from helpers import (
    TINY_ENCODER,
    TINY_STYLEGAN2,
    assert_same_tensors,
    build_method,
    first_batch,
    interrupted_run,
    save_resnet,
    save_tiny_stylegan2,
    tiny_stylegan2,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_user_vgg")

NUM_WS, W_DIM = 6, TINY_STYLEGAN2["style_dim"]
TINY = dict(batch_size=4, log_every=1, sample_every=0, val_every=0, ckpt_every=0, vgg_weights="none", val_samples=4,
            sample_images=2, device="cpu", **TINY_ENCODER)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    return save_tiny_stylegan2(tmp_path_factory.mktemp("generator") / "generator.pt")


def tiny_config(generator_file: Path, tmp_path: Path, **overrides) -> EncoderConfig:
    return EncoderConfig(**{"generator": str(generator_file), "out_dir": str(tmp_path / "runs"), "iterations": 4,
                            **TINY, **overrides})


def test_the_encoder_maps_images_of_any_side_to_w_plus_starting_at_the_mean_w():
    generator = tiny_stylegan2()
    encoder = encoder_for(generator, **TINY_ENCODER)
    assert encoder.side == 16
    for side in (16, 8, 4, 32):
        w_plus = encoder(torch.rand(3, 3, side, side) * 2 - 1)
        assert w_plus.shape == (3, NUM_WS, W_DIM)
        assert torch.equal(w_plus, generator.style.w_avg.expand(3, NUM_WS, W_DIM))  # the last layer starts at zero
    assert Encoder(NUM_WS, W_DIM, side=64, **TINY_ENCODER)(torch.zeros(1, 3, 16, 16)).shape == (1, NUM_WS, W_DIM)
    with pytest.raises(GanslimError, match=r"takes images of shape \(N, 3, H, W\), got \(3, 16, 16\)"):
        encoder(torch.zeros(3, 16, 16))
    with pytest.raises(GanslimError, match="side 24 is not a power of two"):
        Encoder(NUM_WS, W_DIM, side=24)


def test_one_step_lowers_the_loss_on_the_same_batch(generator_file, tmp_path):
    method, _ = build_method(EncoderTraining, tiny_config(generator_file, tmp_path, lr=1e-3))
    batch = first_batch(method, 4)
    before = method.train_step(batch)  # the loss before its update (the step's draws are those of step 0 again)
    after = method.train_step(batch)
    assert set(before) == {"latent", "mse", "encoder"}
    assert after["encoder"] < before["encoder"]
    assert all(parameter.grad is None for parameter in method.generator.parameters())


def test_sub_generator_terms_join_the_loss_and_the_full_generator_is_restored(generator_file, tmp_path):
    method, _ = build_method(EncoderTraining, tiny_config(generator_file, tmp_path, sub_generators=True))
    terms = method.train_step(first_batch(method, 4))
    assert {"sub_mse", "latent", "mse"} <= set(terms)
    assert torch.isclose(terms["encoder"], terms["latent"] + terms["mse"] + terms["sub_mse"])
    assert method.generator.active_subnet.channels == tuple(method.generator.layer_channels)


def test_the_vgg16_term_runs_with_weights(generator_file, tmp_path):
    weights = tmp_path / "vgg16-397923af.pth"
    torch.manual_seed(0)
    torch.save(VGG16Features().state_dict(), weights)
    method, _ = build_method(EncoderTraining, tiny_config(generator_file, tmp_path, vgg_weights=str(weights)))
    terms = method.train_step(first_batch(method, 4))
    assert {"latent", "mse", "perceptual"} <= set(terms) and float(terms["perceptual"]) > 0
    assert method.summary()["objective"]["perceptual"] == {"vgg16": "loaded"}


def test_a_run_resumes_bit_exactly(generator_file, tmp_path):
    config = tiny_config(generator_file, tmp_path, iterations=6, ckpt_every=2, sub_generators=True, mixing=0.5)
    straight = fit(config, EncoderTraining, progress=False)
    interrupted = interrupted_run(EncoderTraining, config, crash_on_call=4)
    fit(config, EncoderTraining, resume=interrupted, progress=False)
    generator = tiny_stylegan2()
    assert_same_tensors(load_encoder(straight.run_dir, generator).state_dict(),
                        load_encoder(interrupted, generator).state_dict())


def test_train_encoder_writes_a_logged_run_with_real_image_psnr(generator_file, tmp_path, capsys, caplog):
    faces = make_builtin("faces", tmp_path / "faces", size=32, count=3)  # resized to 16
    code = main(["train", "encoder", "--generator", str(generator_file), "--data", str(faces),
                 "--out-dir", str(tmp_path / "runs"), "--iterations", "3", "--batch-size", "2", "--device", "cpu",
                 "--no-progress", "--set", "channels=8", "--set", "max_channels=16", "--set", "head_channels=32",
                 "--set", "val_samples=4", "--set", "sample_images=2"])
    assert code == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / f"00000-encoder-{generator_file.parent.name}"  # named after the generator's folder
    assert "ganslim train encoder: 3 steps" in out and "best val psnr" in out and "encoder.pt" in out
    for name in ("encoder.pt", "summary.json", "config.yaml", "checkpoints/latest.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["real"]["images"] == 3 and summary["real"]["psnr"] > 0
    assert summary["held_out"] == {"samples": 4, "psnr": pytest.approx(summary["held_out"]["psnr"])}
    assert summary["objective"]["perceptual"] == {"vgg16": "absent"} and "fallback" in summary["objective"]
    assert summary["generator"]["arch_kwargs"] == tiny_stylegan2().arch_kwargs()
    assert sum("no VGG16 weights" in record.getMessage() for record in caplog.records) == 1
    events = EventAccumulator(str(next((run / "logs").rglob("events.*")).parent)).Reload()
    assert {"val/psnr", "val/psnr_real"} <= set(events.Tags()["scalars"])


def test_an_encoder_refuses_another_generator_in_one_line(tmp_path):
    generator = tiny_stylegan2()
    path = save_encoder(tmp_path / "encoder.pt", encoder_for(generator, **TINY_ENCODER), generator)
    assert isinstance(load_encoder(path, tiny_stylegan2()), Encoder)
    with pytest.raises(GanslimError, match="trained for another generator of this architecture") as error:
        load_encoder(path, tiny_stylegan2(seed=1))
    assert "\n" not in str(error.value) and "ganslim train encoder" in str(error.value)
    other = build_generator("stylegan2", size=8, channels=[8, 8], style_dim=16, n_mlp=1)
    with pytest.raises(GanslimError, match="was trained for a stylegan2 generator .*not this stylegan2"):
        load_encoder(path, other)
    resnet = save_resnet(tmp_path / "resnet.pt", 4)
    with pytest.raises(GanslimError, match="is not a ganslim encoder checkpoint"):
        load_encoder(resnet, generator)


def test_bad_input_is_one_line_and_no_run_folder(generator_file, tmp_path, capsys):
    resnet = save_resnet(tmp_path / "resnet.pt", 4)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    base = ["train", "encoder", "--out-dir", str(tmp_path / "runs"), "--iterations", "1", "--device", "cpu"]
    cases = [([], "no generator: pass --generator CKPT"),
             (["--generator", str(resnet)], "not a stylegan2 one"),
             (["--generator", str(tmp_path / "missing.pt")], "not found"),
             (["--generator", str(generator_file), "--data", str(broken)], "a.png")]
    for flags, words in cases:
        assert main(base + flags) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ganslim train: error: ") and words in err[0], err
    assert not (tmp_path / "runs").exists()


def test_an_encoder_file_is_refused_where_a_generator_is_expected(tmp_path):
    generator = tiny_stylegan2()
    path = save_encoder(tmp_path / "encoder.pt", encoder_for(generator, **TINY_ENCODER), generator)
    with pytest.raises(GanslimError, match="holds an encoder, not a generator"):
        load_generator(path)
