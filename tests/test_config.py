"""Config: defaults in one place, YAML + overrides, up-front one-line errors, and the `train` command's use of it."""

from __future__ import annotations

import argparse

import pytest
import yaml

from ganslim.cli import train as train_command
from ganslim.config import (
    TrainConfig,
    build_config,
    config_to_yaml,
    fill_auto,
    load_config,
    parse_overrides,
)
from ganslim.errors import GanslimError
from ganslim.methods.teachers import CycleGANConfig, Pix2PixConfig


def run_train_command(*argv: str):
    parser = argparse.ArgumentParser(prog="ganslim")
    train_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *argv])
    return args.func(args)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


def test_precedence_defaults_file_then_overrides(tmp_path):
    path = tmp_path / "p2p.yaml"
    path.write_text("method: pix2pix\nlr: 1.0e-3\nbatch_size: 4\nflip: false\nlambda_l1: 50\n")
    config = load_config(Pix2PixConfig, path, {"batch_size": "8", "gan_mode": "lsgan"}, method="pix2pix")
    assert (config.lr, config.batch_size, config.flip, config.gan_mode) == (1e-3, 8, False, "lsgan")
    assert config.lambda_l1 == 50.0 and isinstance(config.lambda_l1, float)
    assert config.generator == "unet_256" and config.beta1 == 0.5  # untouched keys keep the class defaults


def test_resolved_yaml_round_trips(tmp_path):
    config = build_config(CycleGANConfig, {"data": "d", "lr": "5e-5", "pool_size": "0", "amp": "no", "name": "a: b #c"})
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(config, "cyclegan"))
    assert yaml.safe_load(path.read_text())["method"] == "cyclegan"
    assert load_config(CycleGANConfig, path, method="cyclegan") == config


@pytest.mark.parametrize("values, expected", [
    ({"batchsize": "2"}, "unknown config key 'batchsize' for pix2pix: did you mean 'batch_size'?"),
    ({"lr": "fast"}, "bad value for 'lr': 'fast' is not a number"),
    ({"lr": "nan"}, "bad value for 'lr': nan is not a finite number"),
    ({"lr": "0"}, "bad value for 'lr': 0.0 must be greater than 0.0"),
    ({"batch_size": "1.5"}, "bad value for 'batch_size': '1.5' is not an integer"),
    ({"batch_size": 2.5}, "bad value for 'batch_size': 2.5 is not an integer"),
    ({"batch_size": True}, "bad value for 'batch_size': True is not an integer"),
    ({"batch_size": "0"}, "bad value for 'batch_size': 0 is below the minimum 1"),
    ({"flip": "maybe"}, "bad value for 'flip': 'maybe' is not true or false"),
    ({"gan_mode": "minimax"}, "bad value for 'gan_mode': 'minimax'; choose one of: vanilla, lsgan, hinge"),
    ({"norm": "batchnorm"}, "bad value for 'norm': 'batchnorm' (did you mean 'batch'?)"),
    ({"input_nc": "2"}, "bad value for 'input_nc': 2; choose one of: 1, 3"),
    ({"ema_decay": "1.5"}, "bad value for 'ema_decay': 1.5 is above the maximum"),
    ({"epochs": "0", "epochs_decay": "0"}, "epochs + epochs_decay is 0"),
    ({"crop_size": "512"}, "crop_size 512 is larger than load_size 286"),
    ({"method": "cyclegan"}, "config is for method 'cyclegan', not 'pix2pix'"),
])
def test_bad_keys_and_values_are_one_line_errors(values, expected):
    with pytest.raises(GanslimError) as excinfo:
        build_config(Pix2PixConfig, values, method="pix2pix")
    assert expected in one_line_error(excinfo)


def test_overrides_and_files_are_checked(tmp_path):
    assert parse_overrides(["lr=1e-4", " name = a=b "]) == {"lr": "1e-4", "name": "a=b"}
    with pytest.raises(GanslimError, match="not KEY=VALUE"):
        parse_overrides(["lr"])
    with pytest.raises(GanslimError, match="not found"):
        load_config(TrainConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1,\n")
    with pytest.raises(GanslimError, match="not valid YAML") as excinfo:
        load_config(Pix2PixConfig, bad)
    one_line_error(excinfo)
    bad.write_text("- lr\n- 2\n")
    with pytest.raises(GanslimError, match="flat 'key: value' mapping"):
        load_config(Pix2PixConfig, bad)


def test_configs_are_frozen():
    config = Pix2PixConfig(data="x")
    with pytest.raises(AttributeError):
        config.lr = 1.0


def test_train_command_fills_the_config_from_flags(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.001\nbatch_size: 2\n")
    run_train_command("pix2pix", "--data", "somewhere", "--config", str(path), "--lr", "0.003", "--set",
                      "lr=0.004", "--batch-size", "3", "--gan-mode", "hinge", "--amp", "--show-config")
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["method"] == "pix2pix" and shown["data"] == "somewhere"
    assert (shown["lr"], shown["batch_size"], shown["gan_mode"], shown["amp"]) == (0.004, 3, "hinge", True)
    run_train_command("cyclegan", "--data", "somewhere", "--kimg", "2.5", "--show-config")
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["kimg"], shown["iterations"], shown["lr_schedule"]) == (2.5, 0, "linear_decay")
    run_train_command("esrgan", "--data", "somewhere", "--iterations", "300", "--show-config")
    assert yaml.safe_load(capsys.readouterr().out)["iterations"] == 300


def test_train_command_fails_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    cases = [
        (["pix3pix", "--data", str(data)], "unknown training method 'pix3pix'; choose one of: cyclegan, encoder, esrgan, pix2pix"),
        (["pix2pix", "--data", str(data), "--set", "lambda_L1=3"], "did you mean 'lambda_l1'?"),
        (["pix2pix", "--data", str(data), "--epochs", "ten"], "bad value for 'epochs'"),
        (["pix2pix", "--data", str(tmp_path / "nowhere")], "not found"),
        (["pix2pix"], "no dataset given"),
        (["pix2pix", "--data", str(data)], "no images in"),
        (["pix2pix", "--resume", str(tmp_path / "runs" / "00000-x")], "not found"),
        (["cyclegan", "--data", str(data), "--resume", str(tmp_path), "--config", "c.yaml"], "cannot be combined"),
    ]
    for argv, expected in cases:
        with pytest.raises(GanslimError) as excinfo:
            run_train_command(*argv, "--generator", "unet", "--set", "num_downs=5", "--set", "ngf=2",
                              "--set", "ndf=2") if argv[0] == "pix2pix" else run_train_command(*argv)
        assert expected in one_line_error(excinfo), argv
    assert not (tmp_path / "runs").exists()


TINY = ["--set", "ngf=2", "--set", "ndf=2", "--set", "load_size=32", "--set", "epochs=1", "--set", "epochs_decay=0"]


@pytest.mark.parametrize("settings, expected", [
    (["--generator", "resnet_6blocks", "--set", "crop_size=30"],
     "crop_size 30 does not fit network 'G' (ResnetGenerator), which takes image sides that are multiples of 4 and "
     "at least 8 pixels: set crop_size=28 or crop_size=32 (or change the architecture)"),
    (["--generator", "resnet_6blocks", "--set", "crop_size=16"],  # fine for the generator, too small for the PatchGAN
     "crop_size 16 does not fit network 'D' (NLayerDiscriminator), which takes image sides that are at least 24 "
     "pixels: set crop_size=24 (or change the architecture)"),
    (["--generator", "resnet_6blocks", "--set", "preprocess=scale_width", "--set", "load_size=30",
      "--set", "crop_size=28"], "load_size 30 does not fit network 'G' (ResnetGenerator)"),
])
def test_sizes_the_networks_cannot_take_are_refused_before_a_run_folder_exists(dataset, tmp_path, settings, expected):
    out = tmp_path / "runs"
    with pytest.raises(GanslimError) as excinfo:
        run_train_command("pix2pix", "--data", str(dataset), "--out-dir", str(out), "--no-progress", *TINY, *settings)
    assert one_line_error(excinfo).startswith(expected)
    assert not out.exists()


def test_resume_of_a_folder_that_is_not_a_run_says_so(tmp_path):
    from ganslim.cli import build_parser

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"")
    for given in (tmp_path, tmp_path / "checkpoints", tmp_path / "checkpoints" / "latest.pt"):
        with pytest.raises(GanslimError) as excinfo:
            run_train_command("pix2pix", "--resume", str(given))
        assert one_line_error(excinfo) == (f"'{tmp_path}' is not a run folder (no config.yaml): pass a folder that "
                                           f"'ganslim train' made")
    args = build_parser().parse_args(["compress", "omgd", "--resume", str(tmp_path)])
    with pytest.raises(GanslimError) as excinfo:
        args.func(args)
    assert one_line_error(excinfo) == (f"'{tmp_path}' is not a run folder (no config.yaml): pass a folder that "
                                       f"'ganslim compress omgd' made")


def test_ctrl_c_prints_the_resume_command_on_one_line(tmp_path, monkeypatch, capsys):
    import ganslim.engine
    from ganslim.cli import main
    from ganslim.errors import RunInterrupted

    def interrupted(*args, **kwargs):
        raise RunInterrupted(1234, "runs/00003-x", "runs/00003-x", (1200, "runs/00003-x/checkpoints/latest.pt"))

    monkeypatch.setattr(ganslim.engine, "fit", interrupted)
    assert main(["train", "pix2pix", "--data", str(tmp_path)]) == 130
    assert capsys.readouterr().err == ("ganslim train: interrupted at step 1234; last checkpoint: step 1200 in "
                                       "runs/00003-x/checkpoints/latest.pt; resume with: ganslim train pix2pix "
                                       "--resume runs/00003-x\n")


def test_fill_auto_replaces_only_the_options_left_at_their_auto_default():
    from ganslim.methods.omgd import OMGDConfig

    chosen = {"gan_mode": "hinge", "ndf": 128, "lambda_cd": 100.0}
    filled = fill_auto(OMGDConfig(), chosen)
    assert (filled.gan_mode, filled.ndf, filled.lambda_cd) == ("hinge", 128, 100.0)
    given = OMGDConfig(gan_mode="lsgan", ndf=32, lambda_cd=0.0)  # 0 turns channel distillation off: kept
    assert fill_auto(given, chosen) == given
    with pytest.raises(GanslimError, match=r"^bad value for 'lambda_cd': -2.0 is below the minimum 0.0 \(or -1.0: "
                                           r"the method picks\)$"):
        OMGDConfig(lambda_cd=-2.0)


def test_list_fields_are_yaml_lists_and_older_string_values_still_load(tmp_path):
    from ganslim.methods.gan_compression.config import DistillConfig

    config = DistillConfig(candidates=((8,), (16, 8)), fixed_channels=(8, 16))
    text = config_to_yaml(config, "gan-compression-finetune")
    assert "\ncandidates: [[8], [16, 8]]  #" in text and "\nchannel_ratios: [1.0, 0.75, 0.5, 0.375, 0.25]  #" in text
    (tmp_path / "config.yaml").write_text(text)
    assert load_config(DistillConfig, tmp_path / "config.yaml", method="gan-compression-finetune") == config
    (tmp_path / "old.yaml").write_text("channel_ratios: 1,0.5\ncandidates: 8;16,8\nfixed_channels: 8,16\n")
    old = load_config(DistillConfig, tmp_path / "old.yaml")  # a run folder's config.yaml from before lists
    assert (old.channel_ratios, old.candidates, old.fixed_channels) == ((1.0, 0.5), ((8,), (16, 8)), (8, 16))
    assert build_config(DistillConfig, parse_overrides(["fixed_channels=8, 16"])).fixed_channels == (8, 16)
    with pytest.raises(GanslimError, match=r"^bad value for 'fixed_channels': '8,x' is not comma-separated integers "
                                           r"\(e.g. fixed_channels=16,32,64\)$"):
        build_config(DistillConfig, {"fixed_channels": "8,x"})
    with pytest.raises(GanslimError, match=r"^candidates '8;;16' has an empty layer"):
        DistillConfig(candidates="8;;16")
    with pytest.raises(GanslimError, match=r"^bad value for 'channel_ratios': 2.0 is above the maximum 1.0$"):
        DistillConfig(channel_ratios=[1, 2])
