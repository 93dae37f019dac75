"""Engine: exact resume, crash-safe checkpoints, schedules, data order, EMA, logging - with a toy method."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ganslim.atomic import atomic_torch_save
from ganslim.config import TrainConfig, config_to_yaml, load_config, option
from ganslim.engine import EMA, ConstantThenLinearDecay, DistInfo, TrainContext, epoch_batches, fit
from ganslim.engine import logging as logging_module
from ganslim.engine import runs as runs_module
from ganslim.engine import state as state_module
from ganslim.engine.loop import resumed_step, same_shape_batches, steps_per_epoch
from ganslim.engine.runs import RunLock
from ganslim.engine.seed import rng_state, seed_everything, set_rng_state
from ganslim.errors import GanslimError, RunInterrupted
from helpers import Crash, assert_same_tensors, interrupted_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------------------- toy method


class ToyDataset(torch.utils.data.Dataset):
    """``n`` pairs (A, B = 0.5 * A flipped); A's random flip depends on (seed, epoch, index) like ganslim.data."""

    def __init__(self, n: int, size: int = 8, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(1234)
        self.images = torch.rand(n, 1, size, size, generator=generator) * 2 - 1
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        if np.random.default_rng([self.seed, self.epoch, index]).random() < 0.5:
            image = image.flip(-1)
        return {"A": image, "B": 0.5 * image.flip(-2), "index": torch.tensor(index)}


@dataclasses.dataclass(frozen=True)
class ToyConfig(TrainConfig):
    lr: float = option(0.01, "learning rate", above=0.0)
    items: int = option(10, "dataset size", min=1)
    dropout: float = option(0.2, "dropout probability", min=0.0, max=0.9)
    batch_norm: bool = option(True, "use a BatchNorm layer")


class ToyMethod:
    """A two-optimizer regression 'method' using dropout, BatchNorm, global and own RNG."""

    name = "toy"
    Config = ToyConfig
    monitor = ("l1", "min")
    ema_networks = ("net",)

    def __init__(self, config: ToyConfig, ctx: TrainContext) -> None:
        self.config, self.ctx = config, ctx
        layers = [nn.Conv2d(1, 4, 3, padding=1)]
        layers += [nn.BatchNorm2d(4)] if config.batch_norm else []
        layers += [nn.ReLU(), nn.Dropout(config.dropout), nn.Conv2d(4, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers).to(ctx.device)
        self.head = nn.Conv2d(1, 1, 1).to(ctx.device)
        self.net_train, self.head_train = ctx.wrap(self.net), ctx.wrap(self.head)
        self.opt_net = torch.optim.Adam(self.net.parameters(), lr=config.lr, betas=(0.5, 0.999))
        self.opt_head = torch.optim.SGD(self.head.parameters(), lr=config.lr)
        self.noise = torch.Generator().manual_seed(ctx.seed_for(7))
        self.seen: list[int] = []

    def networks(self) -> dict[str, nn.Module]:
        return {"net": self.net, "head": self.head}

    def optimizers(self) -> dict:
        return {"net": self.opt_net, "head": self.opt_head}

    def lr_schedules(self) -> dict:
        return {}

    def train_dataset(self):
        return ToyDataset(self.config.items, seed=self.config.seed)

    def val_dataset(self):
        return ToyDataset(4, seed=99)

    def train_step(self, batch: dict) -> dict:
        self.seen.extend(batch["index"].tolist())
        jitter = torch.rand((), generator=self.noise) * 0.01
        with self.ctx.autocast():
            out = self.net_train(batch["A"] + jitter)
            loss = (out - batch["B"]).abs().mean()
        self.ctx.step("net", loss)
        with self.ctx.frozen(self.net):
            head_loss = (self.head_train(self.net(batch["A"]).detach()) - batch["B"]).pow(2).mean()
        self.ctx.step("head", head_loss)
        return {"l1": loss.detach(), "head": head_loss.detach()}

    def validate(self, batches) -> dict:
        errors = [(self.net(b["A"]) - b["B"]).abs().mean() for b in batches]
        return {"l1": float(torch.stack(errors).mean())}

    def visuals(self, batch: dict) -> list:
        return [batch["A"], self.net(batch["A"]).clamp(-1, 1), batch["B"]]

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "seen": list(self.seen)}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.seen = list(state["seen"])

    def export(self, run_dir: Path) -> dict:
        path = atomic_torch_save(self.net.state_dict(), run_dir / "toy.pt")
        return {"net": path}


def toy_config(tmp_path: Path, **overrides) -> ToyConfig:
    (tmp_path / "toydata").mkdir(exist_ok=True)  # the engine checks that the data folder exists
    values = dict(data=str(tmp_path / "toydata"), out_dir=str(tmp_path / "runs"), batch_size=3, log_every=2,
                  sample_every=5, val_every=4, ckpt_every=0)
    if not {"iterations", "kimg"} & set(overrides):  # a length in another unit replaces 2 + 2 epochs
        values.update(epochs=2, epochs_decay=2)
    values.update(overrides)
    return ToyConfig(**values)


def final_weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)


# ---------------------------------------------------------------------------------------------- resume


def test_resume_continues_exactly_mid_epoch(tmp_path):
    # 10 items, batch 3 -> 4 steps/epoch, 16 steps; checkpoint every 6 steps (mid-epoch), killed at step 8.
    config = toy_config(tmp_path, ema_decay=0.9, ckpt_every=6)
    straight = fit(config, ToyMethod, progress=False)
    assert straight.step == 16 and straight.total_steps == 16

    interrupted = interrupted_run(ToyMethod, config, crash_on_call=9)
    assert torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)["step"] == 6

    resumed = fit(config, ToyMethod, resume=interrupted, progress=False)
    assert resumed.run_dir == interrupted and resumed.step == 16
    a, b = final_weights(straight.run_dir), final_weights(interrupted)
    assert_same_tensors(a["networks"], b["networks"])
    assert_same_tensors(a["ema"], b["ema"])
    state_a = torch.load(straight.run_dir / "checkpoints" / a["state_file"], weights_only=True)
    state_b = torch.load(interrupted / "checkpoints" / b["state_file"], weights_only=True)
    assert_same_tensors(state_a["optimizers"], state_b["optimizers"])
    assert_same_tensors(state_a["ranks"], state_b["ranks"])  # RNG streams and the method's extra state
    assert state_a["best"] == state_b["best"]
    # every training item seen exactly once per epoch, in the same order
    assert state_a["ranks"][0]["method"]["seen"] == state_b["ranks"][0]["method"]["seen"]
    seen = state_a["ranks"][0]["method"]["seen"]
    assert len(seen) == 40 and all(sorted(seen[i * 10:(i + 1) * 10]) == list(range(10)) for i in range(4))


def test_resume_a_finished_run_only_exports_again(tmp_path):
    config = toy_config(tmp_path, epochs=1, epochs_decay=0)
    first = fit(config, ToyMethod, progress=False)
    before = final_weights(first.run_dir)
    (first.run_dir / "toy.pt").unlink()
    again = fit(config, ToyMethod, resume=first.run_dir / "checkpoints" / "latest.pt", progress=False)
    assert again.step == first.step and (first.run_dir / "toy.pt").is_file()
    assert_same_tensors(before["networks"], final_weights(first.run_dir)["networks"])


def test_resume_errors_are_one_line(tmp_path):
    with pytest.raises(GanslimError, match="not found"):
        fit(toy_config(tmp_path), ToyMethod, resume=tmp_path / "nope", progress=False)
    run = fit(toy_config(tmp_path, epochs=1, epochs_decay=0), ToyMethod, progress=False)
    with pytest.raises(GanslimError, match="weights only"):
        fit(toy_config(tmp_path), ToyMethod, resume=run.run_dir / "checkpoints" / "best.pt", progress=False)
    with pytest.raises(GanslimError, match="does not fit"):
        fit(toy_config(tmp_path, batch_norm=False), ToyMethod, resume=run.run_dir, progress=False)


# ---------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_layout_and_best_selection(tmp_path):
    result = fit(toy_config(tmp_path, ckpt_every=4), ToyMethod, progress=False)
    checkpoints = result.run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pt", "latest.pt", "state_00000016.pt"]
    latest = torch.load(checkpoints / "latest.pt", weights_only=True)
    assert latest["format"] == "ganslim-train" and latest["step"] == 16
    assert set(latest["networks"]) == {"net", "head"} and "optimizers" not in latest  # weights apart from state
    best = torch.load(checkpoints / "best.pt", weights_only=True)
    # validation ran at steps 4, 8, 12 and the end (16); best.pt holds the lowest val l1 among them
    log = (result.run_dir / "logs" / "log.txt").read_text()
    scores = {int(line.split()[1]): float(line.split("l1 ")[1]) for line in log.splitlines() if "validation" in line}
    assert sorted(scores) == [4, 8, 12, 16]
    assert best["step"] == min(scores, key=scores.get)
    assert best["value"] == pytest.approx(min(scores.values()), abs=1e-4)
    assert result.best == {"metric": "l1", "value": best["value"], "step": best["step"]}
    assert (result.run_dir / "toy.pt").is_file() and result.exported == {"net": result.run_dir / "toy.pt"}
    assert f"best val l1 {best['value']:.4g} at step {best['step']}" in result.summary()


def test_killed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    run = fit(toy_config(tmp_path, epochs=1, epochs_decay=0), ToyMethod, progress=False)
    checkpoints = run.run_dir / "checkpoints"
    before = {p.name: p.read_bytes() for p in checkpoints.iterdir()}
    real_save = torch.save

    def torn_save(obj, target, *args, **kwargs):  # writes half a file, then the process "dies"
        real_save(obj, target, *args, **kwargs)
        if isinstance(target, (str, Path)):  # atomic_torch_save serialises to memory: it dies before writing
            data = Path(target).read_bytes()
            Path(target).write_bytes(data[: len(data) // 2])
        raise Crash

    # crash while writing the state file, then while writing latest.pt after the state file was written
    for crash_on in (1, 2):
        calls = {"n": 0}

        def save(obj, path, *args, **kwargs):
            calls["n"] += 1
            return (torn_save if calls["n"] == crash_on else real_save)(obj, path, *args, **kwargs)

        monkeypatch.setattr(torch, "save", save)
        with pytest.raises(Crash):
            state_module.save_latest(checkpoints, 999, {"net": {}}, None, {"optimizers": {}})
        monkeypatch.setattr(torch, "save", real_save)
        assert (checkpoints / "latest.pt").read_bytes() == before["latest.pt"]
        weights, state = state_module.load_training_state(checkpoints / "latest.pt")
        assert weights["step"] == state["step"] == 4
        assert not list(checkpoints.glob(".*.tmp"))
    resumed = fit(toy_config(tmp_path, epochs=2, epochs_decay=0), ToyMethod, resume=run.run_dir, progress=False)
    assert resumed.step == 8


def test_damaged_checkpoint_is_a_one_line_error(tmp_path):
    run = fit(toy_config(tmp_path, epochs=1, epochs_decay=0), ToyMethod, progress=False)
    latest = run.run_dir / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.raises(GanslimError, match="damaged"):
        fit(toy_config(tmp_path), ToyMethod, resume=run.run_dir, progress=False)


# ---------------------------------------------------------------------------------------------- run folders, logs


def test_run_folders_are_numbered_and_hold_the_resolved_config(tmp_path):
    import yaml

    first = fit(toy_config(tmp_path, epochs=1, epochs_decay=0), ToyMethod, progress=False)
    second = fit(toy_config(tmp_path, epochs=1, epochs_decay=0, name="again"), ToyMethod, progress=False)
    assert first.run_dir.name == "00000-toy-toydata" and second.run_dir.name == "00001-toy-again"
    saved = yaml.safe_load((first.run_dir / "config.yaml").read_text())
    assert saved["method"] == "toy" and saved["batch_size"] == 3 and saved["lr"] == 0.01
    assert set(saved) == {"method", *(f.name for f in dataclasses.fields(ToyConfig))}


def test_tensorboard_has_losses_lrs_validation_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = fit(toy_config(tmp_path), ToyMethod, progress=False)
    events = EventAccumulator(str(result.run_dir / "logs"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/l1", "loss/head", "lr/net", "lr/head", "val/l1", "speed/steps_per_s"} <= set(tags["scalars"])
    assert tags["images"] == ["samples"]
    lrs = {event.step: event.value for event in events.Scalars("lr/net")}
    # epochs=2 constant, epochs_decay=2 linear: epochs 2 and 3 (steps 9-16) at 2/3 and 1/3 of 0.01
    assert lrs[2] == pytest.approx(0.01) and lrs[8] == pytest.approx(0.01)
    assert lrs[10] == pytest.approx(0.01 * 2 / 3) and lrs[16] == pytest.approx(0.01 / 3)
    assert [event.step for event in events.Scalars("val/l1")] == [4, 8, 12, 16]
    samples = sorted(p.name for p in (result.run_dir / "samples").iterdir())
    assert samples == ["step_00000005.png", "step_00000010.png", "step_00000015.png", "step_00000016.png"]
    from PIL import Image

    with Image.open(result.run_dir / "samples" / samples[0]) as grid:  # 4 rows x (input | output | target)
        assert grid.size == (3 * 8 + 4 * 2, 4 * 8 + 5 * 2)


def test_non_finite_loss_stops_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ToyMethod, "train_step", lambda self, batch: {"l1": float("nan")})
    with pytest.raises(GanslimError, match="became nan"):
        fit(toy_config(tmp_path), ToyMethod, progress=False)


def test_amp_needs_cuda_and_data_is_required(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    with pytest.raises(GanslimError, match="--amp needs a CUDA device"):
        fit(toy_config(tmp_path, amp=True), ToyMethod, progress=False)
    with pytest.raises(GanslimError, match="--data"):
        fit(toy_config(tmp_path, data=""), ToyMethod, progress=False)
    assert not (tmp_path / "runs").exists()  # nothing written before the checks


# ---------------------------------------------------------------------------------------------- building blocks


def test_schedule_is_constant_then_linear_to_zero():
    schedule = ConstantThenLinearDecay(epochs=3, epochs_decay=4)
    assert [schedule.factor(e) for e in range(7)] == pytest.approx([1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert ConstantThenLinearDecay(0, 1).factor(0) == pytest.approx(0.5)


def test_validation_batches_join_images_of_one_shape_only():
    def one(index: int, side: int) -> dict:
        return {"image": torch.full((1, 3, side, side), float(index)), "path": [f"{index}.png"]}

    sides = [8, 8, 8, 6, 8, 8]
    batches = list(same_shape_batches((one(i, side) for i, side in enumerate(sides)), batch_size=2))
    assert [batch["path"] for batch in batches] == [["0.png", "1.png"], ["2.png"], ["3.png"], ["4.png", "5.png"]]
    assert [tuple(batch["image"].shape) for batch in batches] == [(2, 3, 8, 8), (1, 3, 8, 8), (1, 3, 6, 6),
                                                                   (2, 3, 8, 8)]
    assert batches[3]["image"][:, 0, 0, 0].tolist() == [4.0, 5.0]


def test_epoch_order_is_deterministic_sharded_and_padded():
    single = epoch_batches(10, 3, seed=5, epoch=2, info=DistInfo())
    assert single == epoch_batches(10, 3, seed=5, epoch=2, info=DistInfo())
    assert single != epoch_batches(10, 3, seed=5, epoch=3, info=DistInfo())
    assert sorted(i for batch in single for i in batch) == list(range(10)) and [len(b) for b in single] == [3, 3, 3, 1]
    ranks = [epoch_batches(11, 2, seed=5, epoch=2, info=DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert [len(r) for r in ranks] == [2, 2, 2] and steps_per_epoch(11, 2, DistInfo(world_size=3)) == 2
    covered = [i for r in ranks for batch in r for i in batch]
    assert len(covered) == 12 and set(covered) == set(range(11))  # one index repeated to even the ranks out


def test_seed_everything_and_rng_state_round_trip():
    seed_everything(3, rank=0)
    saved = rng_state()
    first = (torch.rand(3), np.random.rand(), __import__("random").random())
    set_rng_state(saved)
    again = (torch.rand(3), np.random.rand(), __import__("random").random())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]
    seed_everything(3, rank=1)
    assert not torch.equal(torch.rand(3), first[0])  # each rank draws its own stream
    saved_path_roundtrip = torch.load(_save_tmp(saved), weights_only=True)
    set_rng_state(saved_path_roundtrip)
    assert torch.equal(torch.rand(3), first[0])


def _save_tmp(obj) -> str:
    import tempfile

    handle = tempfile.NamedTemporaryFile(suffix=".pt", delete=False)
    handle.close()
    torch.save(obj, handle.name)
    return handle.name


def test_ema_averages_and_swaps_back_exactly():
    net = nn.Linear(2, 1)
    ema = EMA({"net": net}, decay=0.75)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update()
    assert torch.allclose(ema.shadow["net"]["weight"], start + 0.25)
    trained = net.weight.detach().clone()
    with ema.swapped_in():
        assert torch.allclose(net.weight, start + 0.25)
    assert torch.equal(net.weight, trained)


def test_step_clips_gradients_and_frozen_blocks_them():
    config = ToyConfig(data="x", grad_clip=0.5)
    ctx = TrainContext(config, torch.device("cpu"), DistInfo())
    net = nn.Linear(4, 1, bias=False)
    seen = {}
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    original_step = optimizer.step

    def spy(*args, **kwargs):
        seen["norm"] = float(net.weight.grad.norm())
        return original_step(*args, **kwargs)

    optimizer.step = spy
    ctx.bind_optimizers({"net": optimizer})
    ctx.step("net", net(torch.full((1, 4), 100.0)).sum())
    assert seen["norm"] == pytest.approx(0.5)
    ctx.step("net", net(torch.full((1, 4), 100.0)).sum(), grad_clip=2.0)  # this update's own clip
    assert seen["norm"] == pytest.approx(2.0)
    ctx.step("net", net(torch.full((1, 4), 100.0)).sum(), grad_clip=0.0)  # none
    assert seen["norm"] == pytest.approx(200.0)
    other = nn.Linear(1, 1)
    with ctx.frozen(other):
        assert not any(p.requires_grad for p in other.parameters())
        other(net(torch.ones(1, 4))).sum().backward()
        assert other.weight.grad is None
    assert all(p.requires_grad for p in other.parameters())


def test_amp_context_autocasts_and_scales_gradients():
    # The engine only allows --amp on CUDA; the mechanism itself runs on CPU too, so it is checked here.
    config = ToyConfig(data="x")
    ctx = TrainContext(config, torch.device("cpu"), DistInfo())
    ctx.amp = True
    net = nn.Conv2d(1, 1, 3)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    ctx.bind_optimizers({"net": optimizer})
    before = net.weight.detach().clone()
    scaler = ctx.scalers["net"]
    for step in range(2):
        with ctx.autocast():
            out = net(torch.ones(1, 1, 5, 5))
        assert out.dtype == torch.float16
        ctx.step("net", out.float().mean())
        if step == 0:  # gradients of 65536 x the loss overflow float16: the step is skipped, the scale halved
            assert scaler.get_scale() == 32768.0 and torch.equal(before, net.weight)
    assert scaler.is_enabled() and scaler.get_scale() == 32768.0
    assert not torch.equal(before, net.weight) and torch.isfinite(net.weight).all()
    with TrainContext(config, torch.device("cpu"), DistInfo()).autocast():
        assert net(torch.ones(1, 1, 5, 5)).dtype == torch.float32  # --amp off: no autocast


# ---------------------------------------------------------------------------------------------- non-finite values


def _turns_bad_at(call: int, *, loss: str | None = None, weights: bool = False):
    """A train_step that from its ``call``-th call returns a NaN ``loss`` term and/or leaves NaN weights."""
    original, calls = ToyMethod.train_step, {"n": 0}

    def step(self, batch):
        calls["n"] += 1
        losses = original(self, batch)
        if calls["n"] >= call:
            if loss is not None:
                losses[loss] = losses[loss] * float("nan")
            if weights:
                with torch.no_grad():
                    self.head.weight.fill_(float("nan"))
        return losses

    return step


@pytest.mark.parametrize("bad, expected", [
    (dict(loss="head"), "loss 'head' became nan at step 6"),
    (dict(weights=True), "network 'head' has non-finite weights at step 8"),  # losses stay finite until step 7
])
def test_non_finite_values_never_reach_a_checkpoint(tmp_path, monkeypatch, bad, expected):
    # log_every 50: no log step before the end; checkpoints and validations at steps 4 and 8
    config = toy_config(tmp_path, ckpt_every=4, val_every=4, log_every=50, sample_every=0)
    # NaN weights make the next step's loss NaN too: they come in the last step before the check at step 8
    monkeypatch.setattr(ToyMethod, "train_step", _turns_bad_at(8 if "weights" in bad else 6, **bad))
    with pytest.raises(GanslimError) as excinfo:
        fit(config, ToyMethod, progress=False)
    message = str(excinfo.value)
    run = sorted((tmp_path / "runs").iterdir())[-1]
    assert "\n" not in message and message.startswith(expected)
    assert f"last good checkpoint, step 4, is kept in {run / 'checkpoints' / 'latest.pt'}" in message
    assert message.endswith(f"then resume with --resume {run}") and "--set lr=" in message
    latest = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert latest["step"] == 4 and best["step"] == 4
    for saved in (latest, best):
        assert all(torch.isfinite(t).all() for net in saved["networks"].values() for t in net.values())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "latest.pt", "state_00000004.pt"]
    assert not (run / ".lock").exists()


def test_non_finite_loss_before_the_first_checkpoint_says_start_again(tmp_path, monkeypatch):
    monkeypatch.setattr(ToyMethod, "train_step", _turns_bad_at(1, loss="l1"))
    with pytest.raises(GanslimError) as excinfo:
        fit(toy_config(tmp_path, log_every=3), ToyMethod, progress=False)
    assert str(excinfo.value).startswith("loss 'l1' became nan at step 1: training stopped before its first "
                                         "checkpoint (run folder ")
    assert str(excinfo.value).endswith("drop --amp, then start again")


# ---------------------------------------------------------------------------------------------- world / batch changes


@pytest.mark.parametrize("step, saved, now, expected", [
    (6, (3, 1), (3, 2), (3, 0)),     # 10 items: 4 steps/epoch alone, 2 as two processes; 6 images seen: exact
    (5, (3, 1), (3, 2), (2, 3)),     # epoch 1 after 3 images: the next 2-process step starts at image 0 again
    (3, (3, 2), (3, 1), (6, 0)),     # back: epoch 1 after 6 images = 2 single-process steps
    (16, (3, 1), (3, 2), (8, 0)),    # a finished run stays finished
    (8, (3, 2), (3, 1), (16, 0)),
    (6, (3, 1), (2, 1), (8, 0)),     # another batch size: 6 images = 3 steps of 2 into epoch 1 (5 steps/epoch)
    (7, (3, 1), (4, 1), (5, 1)),     # 9 images = 2 steps of 4 into epoch 1 (3 steps/epoch), one image again
])
def test_resumed_step_converts_by_images_seen(step, saved, now, expected):
    assert resumed_step(step, 10, saved, now) == expected


def test_resume_with_another_batch_size_continues_by_images_seen(tmp_path):
    # batch 3: 4 steps/epoch, killed after the checkpoint of step 6 (epoch 1, 6 images seen); resumed at batch 2
    config = toy_config(tmp_path, ckpt_every=6)
    interrupted = interrupted_run(ToyMethod, config, crash_on_call=8)
    resumed = fit(dataclasses.replace(config, batch_size=2), ToyMethod, resume=interrupted, progress=False)
    assert resumed.step == resumed.total_steps == 20  # 5 steps/epoch x 4 epochs, continued at step 5 + 3
    log = (interrupted / "logs" / "log.txt").read_text()
    assert ("the checkpoint of step 6 was written by 1 process(es) of batch 3; as 1 of batch 2 the run continues "
            "at step 8 of 20") in log
    seen = torch.load(interrupted / "checkpoints" / "state_00000020.pt", weights_only=True)["ranks"][0]["method"]
    assert [sorted(seen["seen"][i * 10:(i + 1) * 10]) for i in range(4)] == [list(range(10))] * 4


def test_a_step_number_taken_by_latest_gets_its_own_state_file(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    state_module.save_latest(checkpoints, 6, {"net": {}}, None, {"optimizers": {}})
    state_module.save_latest(checkpoints, 6, {"net": {}}, None, {"optimizers": {"again": {}}})
    weights, state = state_module.load_training_state(checkpoints / "latest.pt")
    assert weights["state_file"] == "state_00000006-1.pt" and state["optimizers"] == {"again": {}}
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest.pt", "state_00000006-1.pt"]


# ---------------------------------------------------------------------------------------------- lock, disk, Ctrl-C


def test_a_second_writer_of_a_run_is_refused(tmp_path):
    run = fit(toy_config(tmp_path, epochs=1, epochs_decay=0), ToyMethod, progress=False)
    assert not (run.run_dir / ".lock").exists()  # released at the end
    before = (run.run_dir / "checkpoints" / "latest.pt").read_bytes()
    with RunLock(run.run_dir):
        with pytest.raises(GanslimError) as excinfo:
            fit(toy_config(tmp_path, epochs=2, epochs_decay=0), ToyMethod, resume=run.run_dir, progress=False)
    message = str(excinfo.value)
    assert message.startswith(f"run folder '{run.run_dir}' is in use by pid {os.getpid()} on host ")
    assert f"(lock file {run.run_dir / '.lock'})" in message
    assert (run.run_dir / "checkpoints" / "latest.pt").read_bytes() == before
    assert fit(toy_config(tmp_path, epochs=2, epochs_decay=0), ToyMethod, resume=run.run_dir,
               progress=False).step == 8  # free again


def test_a_stale_lock_is_taken_over_with_a_notice(tmp_path):
    config = toy_config(tmp_path, ckpt_every=4)
    interrupted = interrupted_run(ToyMethod, config, crash_on_call=6)
    assert not (interrupted / ".lock").exists()  # released on the error too
    (interrupted / ".lock").write_text('{"pid": 999999999, "host": "elsewhere", "started": "2024-01-01 00:00:00"}')
    fit(config, ToyMethod, resume=interrupted, progress=False)
    log = (interrupted / "logs" / "log.txt").read_text()
    assert (f"took over the stale lock {interrupted / '.lock'} of pid 999999999 on host elsewhere "
            f"(since 2024-01-01 00:00:00), which no longer runs") in log
    assert not (interrupted / ".lock").exists()
    lock = RunLock(interrupted)
    with lock:
        holder = json.loads((interrupted / ".lock").read_text())
        assert holder["pid"] == os.getpid() and lock.notice is None


def test_out_dir_problems_are_one_line_and_create_nothing(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(GanslimError, match=r"--out-dir '.*afile' is a file, not a folder"):
        fit(toy_config(tmp_path, out_dir=str(tmp_path / "afile")), ToyMethod, progress=False)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):  # tests run as root, for whom chmod does not make a folder read-only
        if self.parent == read_only:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(GanslimError) as excinfo:
        fit(toy_config(tmp_path, out_dir=str(read_only)), ToyMethod, progress=False)
    assert str(excinfo.value) == (f"cannot create a run folder in '{read_only}' (Permission denied): pass a "
                                  f"writable --out-dir")
    assert list(read_only.iterdir()) == []


@pytest.mark.parametrize("failing", ["state", "latest"])
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, failing):
    real_save = state_module.atomic_torch_save

    def save(obj, path):
        if obj["step"] == 8 and Path(path).name.startswith(failing):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path)

    monkeypatch.setattr(state_module, "atomic_torch_save", save)
    with pytest.raises(GanslimError) as excinfo:
        fit(toy_config(tmp_path, ckpt_every=4), ToyMethod, progress=False)
    run = sorted((tmp_path / "runs").iterdir())[-1]
    assert str(excinfo.value) == (
        f"cannot write the checkpoint of step 8 to {run / 'checkpoints'} (No space left on device): training stopped;"
        f" the last good checkpoint, step 4, is kept in {run / 'checkpoints' / 'latest.pt'}: free disk space or make "
        f"the folder writable, then resume with --resume {run}")
    weights, state = state_module.load_training_state(run / "checkpoints" / "latest.pt")
    assert weights["step"] == state["step"] == 4
    assert not list((run / "checkpoints").glob("state_00000008*")) and not (run / ".lock").exists()


def _interrupt_at(call: int):
    original, calls = ToyMethod.train_step, {"n": 0}

    def step(self, batch):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, batch)

    return step


def test_ctrl_c_says_where_to_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(ToyMethod, "train_step", _interrupt_at(7))
    with pytest.raises(RunInterrupted) as excinfo:
        fit(toy_config(tmp_path, ckpt_every=4), ToyMethod, progress=False)
    run = sorted((tmp_path / "runs").iterdir())[-1]
    assert excinfo.value.line("ganslim train toy") == (
        f"interrupted at step 6; last checkpoint: step 4 in {run / 'checkpoints' / 'latest.pt'}; resume with: "
        f"ganslim train toy --resume {run}")
    assert not (run / ".lock").exists()

    monkeypatch.setattr(ToyMethod, "train_step", _interrupt_at(3))
    with pytest.raises(RunInterrupted) as excinfo:
        fit(toy_config(tmp_path, ckpt_every=4), ToyMethod, progress=False)
    run = sorted((tmp_path / "runs").iterdir())[-1]
    assert excinfo.value.line("ganslim train toy") == (
        f"interrupted at step 2, before the first checkpoint: '{run}' holds nothing to resume and can be deleted")


def test_a_stage_of_a_staged_run_resumes_through_its_run(tmp_path, monkeypatch):
    outer = tmp_path / "runs" / "00000-staged"
    outer.mkdir(parents=True)
    (outer / "config.yaml").write_text("method: staged\n")
    monkeypatch.setattr(ToyMethod, "train_step", _interrupt_at(3))
    with pytest.raises(RunInterrupted) as excinfo:
        fit(toy_config(tmp_path, out_dir=str(outer)), ToyMethod, progress=False)
    assert excinfo.value.line("ganslim compress staged") == (
        f"interrupted at step 2, before the first checkpoint: '{outer / '00000-toy-toydata'}' holds nothing to "
        f"resume and can be deleted; resume with: ganslim compress staged --resume {outer} (its earlier stages are "
        f"kept)")


# ---------------------------------------------------------------------------------------------- console


def test_console_shows_total_eta_and_without_a_bar_one_line_per_epoch(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(logging_module, "ETA_AFTER_STEPS", 3)
    result = fit(toy_config(tmp_path, epochs=1, epochs_decay=3), ToyMethod, progress=False)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("toy: 10 training images; 1 + 3 decay epochs x 4 steps = 16 steps on cpu; run folder")
    eta = [line for line in lines if line.startswith("ETA ")]
    # timed from the end of step 1 (its warm-up is slow): after 3 more steps, 12 are left
    assert len(eta) == 1 and re.fullmatch(r"ETA \d+s: 12 steps left at [\d.]+ steps/s \(timed over 3 steps\)", eta[0])
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/4", "epoch 2/4", "epoch 3/4", "epoch 4/4"]
    assert epochs[0].startswith("epoch 1/4: step 4/16, l1 ") and ", head " in epochs[0] and ", ETA " in epochs[0]
    assert epochs[3].startswith("epoch 4/4: step 16/16") and "elapsed" in epochs[3] and "ETA" not in epochs[3]
    assert "epoch 2/4: step 8/16" in (result.run_dir / "logs" / "log.txt").read_text()

    fit(toy_config(tmp_path, epochs=1, epochs_decay=0), ToyMethod, progress=True)
    assert "epoch 1/1" not in capsys.readouterr().err  # the bar shows progress instead


def test_a_file_system_without_locks_runs_unguarded_with_a_notice(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(runs_module.fcntl, "flock", no_locks)
    result = fit(toy_config(tmp_path, epochs=1, epochs_decay=0), ToyMethod, progress=False)
    assert result.step == 4
    assert (f"cannot lock {result.run_dir / '.lock'} (No locks available): make sure no other process writes this "
            f"run folder") in (result.run_dir / "logs" / "log.txt").read_text()
    assert not (result.run_dir / ".lock").exists()


def test_a_run_folder_is_opened_alike_for_every_kind_of_run(tmp_path):
    from ganslim.engine.distributed import distributed_session, on_main
    from ganslim.engine.runs import open_run_dir

    config = TrainConfig(data=str(tmp_path / "facades"), out_dir=str(tmp_path / "runs"))
    with distributed_session("cpu") as (info, device):  # a plain process: a world of one
        assert (info, device) == (DistInfo(), torch.device("cpu"))
        made = open_run_dir(info, config, "x", None, "'ganslim compress x'")
        assert made == tmp_path / "runs" / "00000-x-facades"
        assert (made / "config.yaml").read_text().startswith("method: x\n")
        assert open_run_dir(info, config, "x", made, "'ganslim compress x'") == made
        with pytest.raises(GanslimError) as excinfo:
            open_run_dir(info, config, "x", tmp_path, "'ganslim compress x'")
        assert str(excinfo.value) == (f"'{tmp_path}' is not a run folder (no config.yaml): pass a folder that "
                                      f"'ganslim compress x' made")
        assert on_main(info, lambda: 7) == 7

        def refused():
            raise GanslimError("one line")

        with pytest.raises(GanslimError, match="^one line$"):
            on_main(info, refused)


def test_a_staged_run_records_each_stage_stops_after_one_and_resumes_the_rest(tmp_path):
    from ganslim.engine import Stage, run_stages
    from ganslim.engine.runs import LOCK_FILE

    config = TrainConfig(data=str(tmp_path / "facades"), out_dir=str(tmp_path / "runs"))
    calls = []

    def stage(name: str):
        def run(staged):
            calls.append(name)
            assert (staged.run_dir / LOCK_FILE).is_file()  # the run folder is locked while a stage runs
            (staged.run_dir / f"00000-{name}-x" / "checkpoints").mkdir(parents=True)
            return {"after": list(staged.done)}

        return Stage(name, run)

    stages = [stage("one"), stage("two"), stage("three")]
    with pytest.raises(GanslimError, match="^unknown stage 'four'; choose one of: one, two, three$"):
        run_stages(config, "x", stages, stop_after="four")
    first = run_stages(config, "x", stages, stop_after="two", check=lambda: calls.append("check"))
    assert calls == ["check", "one", "two"] and list(first.done) == ["one", "two"]
    assert json.loads((first.run_dir / "pipeline.json").read_text()) == {
        "stages": {"one": {"after": []}, "two": {"after": ["one"]}}}
    assert not (first.run_dir / LOCK_FILE).exists()
    assert first.stage_dirs("two-x") == [first.run_dir / "00000-two-x"] and first.resumable("two-x") is None
    rest = run_stages(config, "x", stages, resume=first.run_dir)
    assert calls[3:] == ["three"] and rest.done["three"] == {"after": ["one", "two"]}
    (tmp_path / "plain" / "checkpoints").mkdir(parents=True)
    (tmp_path / "plain" / "config.yaml").write_text("method: x\n")
    with pytest.raises(GanslimError) as excinfo:
        run_stages(config, "x", stages, resume=tmp_path / "plain")
    assert str(excinfo.value) == (f"'{tmp_path / 'plain'}' is not a x run folder (no pipeline.json): pass the folder "
                                  f"'ganslim compress x' made")


# ---------------------------------------------------------------------------------------------- lengths, schedules,
# EMA half-life, lazy intervals, accumulation, sampled data


@pytest.mark.parametrize("overrides, unit, fields", [
    ({}, "epochs", {"epochs": 2, "epochs_decay": 2, "kimg": 0.0, "iterations": 0}),
    ({"iterations": 7}, "iterations", {"iterations": 7, "kimg": 0.0}),
    ({"kimg": 0.02}, "kimg", {"kimg": 0.02, "iterations": 0}),
])
def test_a_length_is_given_in_one_unit(tmp_path, overrides, unit, fields):
    config = toy_config(tmp_path, **overrides)
    assert config.length_unit == unit and {key: getattr(config, key) for key in fields} == fields


@dataclasses.dataclass(frozen=True)
class KimgToyConfig(ToyConfig):
    """A method whose default length and average are kimg-based (as StyleGAN2's)."""

    kimg: float = option(5.0, "length", min=0.0)
    epochs: int = option(0, "epochs", min=0)
    epochs_decay: int = option(0, "decay epochs", min=0)
    ema_kimg: float = option(10.0, "half-life", min=0.0)
    ema_rampup: float = option(0.05, "ramp-up", min=0.0)


@pytest.mark.parametrize("overrides, expected", [
    ({"iterations": 9}, {"iterations": 9, "kimg": 0.0, "length_unit": "iterations"}),
    ({"epochs": 3}, {"epochs": 3, "kimg": 0.0, "length_unit": "epochs"}),
    ({"ema_decay": 0.99}, {"ema_decay": 0.99, "ema_kimg": 0.0, "ema_rampup": 0.0}),
    ({"ema_kimg": 0.0}, {"ema_kimg": 0.0, "ema_rampup": 0.0}),  # the average off: its default ramp-up goes too
    ({}, {"kimg": 5.0, "length_unit": "kimg", "ema_kimg": 10.0, "ema_rampup": 0.05}),
])
def test_a_given_length_or_average_replaces_the_default_one(tmp_path, overrides, expected):
    config = KimgToyConfig(data="x", **overrides)
    assert {key: getattr(config, key) for key in expected} == expected
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(config))
    assert load_config(KimgToyConfig, path) == config  # a run's config.yaml reads back to the same run


@pytest.mark.parametrize("cls, overrides, message", [
    (ToyConfig, {"kimg": 1.0, "iterations": 5}, "the length is given twice (kimg=1 and iterations=5): keep one"),
    (ToyConfig, {"kimg": 1.0, "epochs": 3}, "the length is given twice (kimg=1 and epochs=3): keep one"),
    (KimgToyConfig, {"iterations": 4, "epochs": 2}, "the length is given twice (iterations=4 and epochs=2): keep one"),
    (KimgToyConfig, {"ema_decay": 0.9, "ema_kimg": 2.0}, "ema_decay 0.9 and ema_kimg 2 both set the average's decay"),
    (ToyConfig, {"ema_rampup": 0.05}, "ema_rampup ramps up the half-life of ema_kimg, which is off"),
    (ToyConfig, {"lr_schedule": "step"}, "lr_schedule"),
])
def test_two_lengths_or_averages_are_one_line(cls, overrides, message):
    with pytest.raises(GanslimError) as excinfo:
        cls(data="x", **overrides)
    assert "\n" not in str(excinfo.value) and message in str(excinfo.value)


def test_run_length_counts_steps_and_images_in_every_unit():
    from ganslim.engine import RunLength

    # 10 items over 2 processes = 5 per process, batch 2: batches of 2, 2, 1 -> 3 steps and 10 images per epoch
    info = DistInfo(rank=0, world_size=2)
    kimg = RunLength.of(TrainConfig(data="x", kimg=0.025, batch_size=2), 10, info)
    assert (kimg.steps_per_epoch, kimg.total_steps) == (3, 8)  # 2 epochs (20 images) + 2 steps (8 more)
    assert [kimg.images_seen(step) for step in range(9)] == [0, 4, 8, 10, 14, 18, 20, 24, 28]
    assert kimg.describe() == "0.025 kimg = 8 steps of 4 images (2.667 epochs of 3 steps)"
    iterations = RunLength.of(TrainConfig(data="x", iterations=4, batch_size=2), 10, info)
    assert (iterations.total_steps, iterations.period(3)) == (4, 3)
    assert iterations.describe() == "4 iterations of 4 images (0.014 kimg, 1.333 epochs of 3 steps)"
    epochs = RunLength.of(TrainConfig(data="x", epochs=1, epochs_decay=2, batch_size=2), 10, info)
    assert (epochs.total_steps, epochs.period(5), epochs.periods) == (9, 1, 3)


def test_schedules_by_name_over_the_run(tmp_path):
    from ganslim.engine import LR_SCHEDULES, RunLength

    info = DistInfo()
    length = RunLength.of(toy_config(tmp_path, iterations=8), 10, info)
    factors = {name: [LR_SCHEDULES.get(name)(toy_config(tmp_path), length).factor(step) for step in range(8)]
               for name in ("linear_decay", "constant", "cosine")}
    assert factors["constant"] == [1.0] * 8
    assert factors["linear_decay"] == pytest.approx([1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])  # over the second half
    assert factors["cosine"] == pytest.approx([(1 + math.cos(math.pi * step / 8)) / 2 for step in range(8)])
    epochs = RunLength.of(toy_config(tmp_path), 10, info)  # 2 + 2 decay epochs: per epoch, as the reference
    assert [LR_SCHEDULES.get("cosine")(toy_config(tmp_path), epochs).factor(e) for e in range(4)] == pytest.approx(
        [1, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2])


class RecordingToy(ToyMethod):
    """The toy method noting, per step, the learning rate, the steps and images done and whether a lazy term of
    interval 3 is due."""

    def train_step(self, batch: dict) -> dict:
        self.record = getattr(self, "record", [])
        self.record.append((self.opt_net.param_groups[0]["lr"], self.ctx.steps_done, self.ctx.images_seen,
                            self.ctx.due(3)))
        return super().train_step(batch)


def test_an_iterations_run_follows_its_schedule_counts_images_and_runs_lazy_terms_on_time(tmp_path, monkeypatch):
    runs = []
    monkeypatch.setattr(RecordingToy, "export", lambda self, run_dir: runs.append(self.record) or {})
    result = fit(toy_config(tmp_path, iterations=6, lr_schedule="cosine", log_every=1), RecordingToy, progress=False)
    assert result.step == 6 and "toy: 10 training images; 6 iterations of 3 images (0.016 kimg, 1.5 epochs of 4 " \
                                "steps) on cpu" in (result.run_dir / "logs" / "log.txt").read_text()
    lrs, steps, images, due = zip(*runs[0])
    assert lrs == pytest.approx([0.01 * (1 + math.cos(math.pi * step / 6)) / 2 for step in range(6)])
    assert steps == (0, 1, 2, 3, 4, 5) and images == (0, 3, 6, 9, 10, 13)  # the epoch's last batch holds 1 item
    assert due == (True, False, False, True, False, False)


def test_a_half_life_average_copies_first_with_a_ramp_up_then_decays_by_images(tmp_path):
    from ganslim.engine import half_life_decay

    assert half_life_decay(32, 0, 10.0, 0.05) == 0.0  # nothing shown yet: the average is the weights
    assert half_life_decay(32, 64_000, 10.0, 0.05) == pytest.approx(0.5 ** (32 / 3200))  # 0.05 x 64 kimg
    assert half_life_decay(32, 10**9, 10.0, 0.05) == pytest.approx(0.5 ** (32 / 10_000))  # rosinality's accum
    assert half_life_decay(5000, 0, 5.0) == pytest.approx(0.5)  # a step of one half-life halves the average
    one = fit(toy_config(tmp_path, iterations=1, ema_kimg=10.0, ema_rampup=0.05, ckpt_every=1), ToyMethod,
              progress=False)
    weights = final_weights(one.run_dir)
    assert_same_tensors(weights["ema"]["net"], weights["networks"]["net"])
    assert not torch.equal(weights["ema"]["net"]["0.weight"], initial_toy_weights(tmp_path)["0.weight"])


def initial_toy_weights(tmp_path: Path) -> dict:
    """The toy net's initial weights (seed 0, as fit builds it)."""
    seed_everything(0, 0)
    method = ToyMethod(toy_config(tmp_path), TrainContext(toy_config(tmp_path), torch.device("cpu"), DistInfo()))
    return {key: value.clone() for key, value in method.net.state_dict().items()}


def test_accumulated_parts_add_up_to_the_whole_batch_gradient():
    from ganslim.engine.context import split_batch

    batch = {"x": torch.arange(5.0).view(5, 1), "name": ["a", "b", "c", "d", "e"], "k": 3}
    parts = split_batch(batch, 2)
    assert [part["x"].flatten().tolist() for part, _ in parts] == [[0, 2, 4], [1, 3]]
    assert [part["name"] for part, _ in parts] == [["a", "c", "e"], ["b", "d"]] and parts[1][0]["k"] == 3
    assert [share for _, share in parts] == [0.6, 0.4]
    gradients, losses = {}, {}
    for accumulate in (1, 2, 3):
        ctx = TrainContext(ToyConfig(data="x", accumulate=accumulate), torch.device("cpu"), DistInfo())
        torch.manual_seed(0)
        net = nn.Linear(1, 1)
        optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
        ctx.bind_optimizers({"net": optimizer})
        optimizer.step = lambda: None  # keep the gradient to compare it
        losses[accumulate] = float(ctx.step("net", lambda part: (net(part["x"]) - 1).pow(2).mean(), batch))
        gradients[accumulate] = net.weight.grad.clone()
    for accumulate in (2, 3):
        torch.testing.assert_close(gradients[accumulate], gradients[1])
        assert losses[accumulate] == pytest.approx(losses[1])


def test_a_method_that_cannot_accumulate_refuses_it_in_one_line(tmp_path):
    with pytest.raises(GanslimError) as excinfo:
        fit(toy_config(tmp_path, accumulate=2), ToyMethod, progress=False)
    assert str(excinfo.value) == ("toy updates from whole batches, it cannot accumulate 2 parts: set accumulate=1 (a "
                                  "smaller --batch-size saves memory)")
    assert not (tmp_path / "runs").exists()


class LatentToy(ToyMethod):
    """A method that trains on sampled latent codes: no dataset folder."""

    name = "latent"
    needs_data = False
    monitor = None

    def train_dataset(self):
        from ganslim.data import LatentDataset

        return LatentDataset(6, 4, seed=self.config.seed)

    def val_dataset(self):
        return None

    def train_step(self, batch: dict) -> dict:
        self.seen.append(batch["z"].clone())
        loss = self.head(batch["z"].view(-1, 1, 2, 2)).pow(2).mean()
        self.ctx.step("head", loss)
        return {"head": loss.detach()}

    def visuals(self, batch: dict) -> list:
        return [batch["z"].view(-1, 1, 2, 2).clamp(-1, 1)]

    def extra_state(self) -> dict:
        return {"seen": [z.tolist() for z in self.seen]}


def test_a_method_of_sampled_latents_trains_without_a_data_folder(tmp_path):
    from ganslim.data import LatentDataset

    config = toy_config(tmp_path, data="", iterations=4, batch_size=3)
    result = fit(config, LatentToy, progress=False)
    assert result.run_dir.name == "00000-latent-data" and result.step == 4  # no folder to name it
    assert "latent: 6 latent codes; 4 iterations of 3 images" in (result.run_dir / "logs" / "log.txt").read_text()
    seen = torch.tensor(torch.load(result.run_dir / "checkpoints" / final_weights(result.run_dir)["state_file"],
                                   weights_only=True)["ranks"][0]["method"]["seen"])
    dataset = LatentDataset(6, 4, seed=0)
    epochs = []
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        epochs.append(torch.stack([dataset[i]["z"] for i in range(6)]))
    assert seen.shape == (4, 3, 4) and not torch.equal(epochs[0], epochs[1])  # new codes every epoch
    for rows, epoch in zip(seen, (0, 0, 1, 1)):  # every row one of its epoch's codes, each code once per epoch
        assert all(any(torch.equal(row, code) for code in epochs[epoch]) for row in rows)
    assert {tuple(row.tolist()) for row in seen[:2].flatten(0, 1)} == {tuple(code.tolist()) for code in epochs[0]}
    with pytest.raises(GanslimError, match="length=0 is not a positive integer"):
        LatentDataset(0, 4)
