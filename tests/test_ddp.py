"""Two CPU processes under torchrun (gloo): ranks stay in sync, gradients are averaged, the result loads (CycleGAN,
and SPADE with its spectral norms)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from ganslim.checkpoints import load_generator
from ganslim.data import make_builtin
from ganslim.engine import DistInfo, fit
from ganslim.engine import distributed
from ganslim.methods.teachers import CycleGAN, CycleGANConfig
from helpers import interrupted_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# No dropout, no image pool and no norm layers (a conv bias in front of instance norm gets a gradient of pure
# rounding noise, which Adam turns into full-size steps): every sample is processed independently, so two ranks
# with batch 2 each follow the trajectory of one process with batch 4 (DDP averages the ranks' gradients).
SETTINGS = dict(generator="resnet", n_blocks=1, norm="none", ngf=4, ndf=4, load_size=32, crop_size=32, pool_size=0,
                epochs=1, epochs_decay=1, log_every=1, sample_every=0, val_every=0, ckpt_every=2,
                max_train_images=8)


def torchrun_train(*args: str, method: str = "cyclegan") -> subprocess.CompletedProcess:
    """``ganslim train METHOD ARGS`` as two CPU processes under torchrun."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ganslim.cli", "train", method, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_two_processes_match_one_process_with_the_combined_batch(tmp_path):
    data = make_builtin("flat2striped", tmp_path / "stripes", size=32, count=8)
    done = torchrun_train("--data", str(data), "--out-dir", str(tmp_path / "ddp"), "--batch-size", "2", "--no-progress",
                          *[arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}")])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ganslim train cyclegan: 4 steps") == 1  # summary printed by rank 0 only
    run_dir = tmp_path / "ddp" / "00000-cyclegan-stripes"
    log = (run_dir / "logs" / "log.txt").read_text()
    assert "1 + 1 decay epochs x 2 steps = 4 steps on cpu x 2 processes" in log  # 8 images sharded over 2 ranks
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["00000-cyclegan-stripes"]

    # Ranks are compared at every checkpoint (steps 2 and 4): a divergence would have failed the run.
    state = torch.load(run_dir / "checkpoints" / "state_00000004.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    assert not torch.equal(state["ranks"][0]["rng"]["torch"], state["ranks"][1]["rng"]["torch"])

    single = fit(CycleGANConfig(data=str(data), out_dir=str(tmp_path / "single"), batch_size=4, **SETTINGS),
                 CycleGAN, progress=False)
    together = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    alone = torch.load(single.run_dir / "checkpoints" / "latest.pt", weights_only=True)["networks"]
    for name in alone:
        for key in alone[name]:
            torch.testing.assert_close(together[name][key], alone[name][key], atol=2e-5, rtol=1e-4)

    generator = load_generator(run_dir, direction="AtoB")
    assert generator.path.name == "generator_A.pt"
    with torch.no_grad():
        out = generator.model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_a_single_process_run_resumes_as_two_processes_by_images_seen(tmp_path):
    # Alone with batch 2: 4 steps/epoch, 8 steps; killed after the checkpoint of step 2 (4 images of epoch 0 seen).
    # As two processes: 2 steps/epoch, 4 steps; 4 images are one step of the pair, so it continues at step 1.
    data = make_builtin("flat2striped", tmp_path / "stripes", size=32, count=8)
    config = CycleGANConfig(data=str(data), out_dir=str(tmp_path / "runs"), batch_size=2, **SETTINGS)
    run_dir = interrupted_run(CycleGAN, config, crash_on_call=4)
    assert torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["step"] == 2
    done = torchrun_train("--resume", str(run_dir), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ganslim train cyclegan: 4 steps") == 1
    log = (run_dir / "logs" / "log.txt").read_text()
    assert ("the checkpoint of step 2 was written by 1 process(es) of batch 2; as 2 of batch 2 the run continues "
            "at step 1 of 4") in log
    state = torch.load(run_dir / "checkpoints" / "state_00000004.pt", weights_only=True)
    assert state["step"] == 4 and state["world_size"] == 2 and len(state["ranks"]) == 2
    assert not (run_dir / ".lock").exists()


def test_out_of_sync_ranks_are_detected(monkeypatch):
    net = torch.nn.Linear(2, 2)
    info = DistInfo(rank=0, world_size=2)

    def gather(info, value):
        drifted = {name: [v + 1e-7 for v in values] for name, values in value.items()}
        return [value, drifted]

    monkeypatch.setattr(distributed, "gather_objects", gather)
    with pytest.raises(RuntimeError, match="rank 1 weights diverged from rank 0 in net"):
        distributed.assert_in_sync(info, {"net": net})
    monkeypatch.setattr(distributed, "gather_objects", lambda info, value: [value, value])
    distributed.assert_in_sync(info, {"net": net})


def test_spade_trains_as_two_processes_with_spectral_norms_in_sync(tmp_path):
    # Spectral norm updates its vectors in every training forward (the frozen D's in G's step too): the ranks must
    # still agree at every checkpoint. SyncBatchNorm needs CUDA, so CPU processes keep their own statistics.
    data = make_builtin("labels2scene", tmp_path / "scenes", size=64, count=4)
    done = torchrun_train("--data", str(data), "--out-dir", str(tmp_path / "ddp"), "--batch-size", "1",
                          "--no-progress", "--vgg19-weights", "none",
                          *[arg for key, value in dict(label_nc=6, crop_size=64, ngf=4, ndf=4, epochs=2,
                                                       ckpt_every=1).items() for arg in ("--set", f"{key}={value}")],
                          method="spade")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ganslim train spade: 4 steps") == 1
    assert done.stderr.count("SyncBatchNorm runs on CUDA only: each of the 2 CPU processes") == 1
    run_dir = tmp_path / "ddp" / "00000-spade-scenes"
    state = torch.load(run_dir / "checkpoints" / "state_00000004.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    generator = load_generator(run_dir)
    with torch.no_grad():
        out = generator.model(torch.zeros(1, 7, 64, 64))
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
