"""A run's training checkpoints (``checkpoints/latest.pt``) load as models: the generator a user asks for, its
averaged weights when the run keeps an average, the direction's generator of a CycleGAN, the discriminator; a
checkpoint that names no model is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganslim.checkpoints import load_discriminator, load_generator
from ganslim.cli import main as cli_main
from ganslim.data import make_builtin
from ganslim.engine import fit
from ganslim.errors import GanslimError
from ganslim.methods.stylegan2 import StyleGAN2, StyleGAN2Config
from ganslim.methods.teachers import CycleGAN, CycleGANConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def stylegan2_run(tmp_path_factory) -> Path:
    """A 2-step tiny StyleGAN2 run (EMA on, no ramp-up: the average differs from the trained weights)."""
    root = tmp_path_factory.mktemp("stylegan2")
    faces = make_builtin("faces", root / "faces", size=32, count=4)
    config = StyleGAN2Config(data=str(faces), out_dir=str(root / "runs"), size=16, resize=True, style_dim=8, n_mlp=1,
                             channels=(8, 8, 4), batch_size=2, iterations=2, log_every=1, sample_every=0,
                             val_every=0, ckpt_every=0, inception_weights="none", sample_images=2, ema_rampup=0.0)
    return fit(config, StyleGAN2, progress=False).run_dir


def test_latest_loads_the_averaged_generator_the_run_exported(stylegan2_run):
    latest = stylegan2_run / "checkpoints" / "latest.pt"
    from_training = load_generator(latest)
    exported = load_generator(stylegan2_run / "generator.pt")
    assert from_training.arch == exported.arch == "stylegan2"
    assert from_training.meta == {"weights": "ema", "step": 2, "network": "G"}
    content = torch.load(latest, weights_only=True)
    assert not torch.equal(content["ema"]["G"]["style.1.weight"], content["networks"]["G"]["style.1.weight"])
    averaged = content["ema"]["G"]["style.1.weight"]
    torch.testing.assert_close(from_training.model.state_dict()["style.1.weight"], averaged)
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # psi 1: the export's estimated w_avg plays no part
        torch.testing.assert_close(from_training.model(z), exported.model(z))
    discriminator = load_discriminator(latest)
    assert discriminator.arch == "stylegan2" and discriminator.meta["weights"] == "trained"


def test_generate_takes_a_training_checkpoint(stylegan2_run, tmp_path):
    out = tmp_path / "samples"
    code = cli_main(["generate", "--ckpt", str(stylegan2_run / "checkpoints" / "latest.pt"), "--seeds", "0-1",
                     "--output", str(out)])
    assert code == 0 and len(list(out.glob("*.png"))) == 2


def test_a_training_checkpoint_naming_no_model_is_one_line(stylegan2_run, tmp_path):
    content = torch.load(stylegan2_run / "checkpoints" / "latest.pt", weights_only=True)
    del content["models"]  # as written before training checkpoints described their networks
    old = tmp_path / "latest.pt"
    torch.save(content, old)
    with pytest.raises(GanslimError, match="names no generator to load .*pass the generator file its run writes"):
        load_generator(old)


def test_a_cyclegan_checkpoint_gives_the_generator_of_each_direction(tmp_path):
    data = make_builtin("flat2striped", tmp_path / "stripes", size=32, count=4)
    config = CycleGANConfig(data=str(data), out_dir=str(tmp_path / "runs"), generator="resnet", n_blocks=1, ngf=4,
                            ndf=4, load_size=32, crop_size=32, batch_size=2, epochs=1, epochs_decay=0, log_every=2,
                            sample_every=0, val_every=0, ckpt_every=0, pool_size=2)
    run = fit(config, CycleGAN, progress=False).run_dir
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    for direction, side in (("AtoB", "A"), ("BtoA", "B")):
        from_training = load_generator(run / "checkpoints" / "latest.pt", direction=direction)
        assert from_training.meta["network"] == f"G_{side}" and from_training.meta["weights"] == "trained"
        with torch.no_grad():
            assert torch.equal(from_training.model(image), load_generator(run / f"generator_{side}.pt").model(image))
