"""The command line as a user drives it: translate, profile, data, compress help; one-line errors, no tracebacks."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ganslim.archs import build_generator
from ganslim.checkpoints import save_model
from ganslim.cli import main
from ganslim.data import image_to_tensor, tensor_to_image
from ganslim.methods.gan_compression.inherit import OWN_KEYS, STAGE_KEYS

SIZE = 32


def _write_images(folder, count, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")


@pytest.fixture
def generator():
    torch.manual_seed(0)
    return build_generator("resnet_6blocks", ngf=4, norm="instance").eval()


def _expected_output(generator, path, size=SIZE):
    image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    with torch.no_grad():
        output = generator(image_to_tensor(image)[None])[0]
    return np.asarray(tensor_to_image(output))


def test_translate_reference_checkpoint_folder(tmp_path, generator):
    torch.save(generator.state_dict(), tmp_path / "latest_net_G.pth")
    _write_images(tmp_path / "in" / "sub", 3)
    code = main(["translate", "--ckpt", str(tmp_path / "latest_net_G.pth"), "--input", str(tmp_path / "in"),
                 "--output", str(tmp_path / "out"), "--size", str(SIZE), "--device", "cpu"])
    assert code == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["sub/img0.png", "sub/img1.png", "sub/img2.png"]
    result = np.asarray(Image.open(tmp_path / "out" / "sub" / "img1.png"))
    assert result.shape == (SIZE, SIZE, 3)
    assert np.array_equal(result, _expected_output(generator, tmp_path / "in" / "sub" / "img1.png"))


def test_translate_ganslim_checkpoint_aligned_direction(tmp_path, generator):
    ckpt = save_model(tmp_path / "g.pt", generator, "resnet_6blocks", {"ngf": 4, "norm": "instance"})
    pair = np.zeros((SIZE, 2 * SIZE, 3), dtype=np.uint8)
    pair[:, SIZE:] = 200  # B half bright, A half black
    (tmp_path / "in").mkdir()
    Image.fromarray(pair).save(tmp_path / "in" / "p.png")
    Image.fromarray(pair[:, SIZE:]).save(tmp_path / "b_half.png")
    assert main(["translate", "--ckpt", str(ckpt), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "out"), "--size", str(SIZE), "--aligned", "--direction", "BtoA"]) == 0
    result = np.asarray(Image.open(tmp_path / "out" / "p.png"))
    assert np.array_equal(result, _expected_output(generator, tmp_path / "b_half.png"))


@pytest.mark.parametrize("args, message", [
    (["--ckpt", "{tmp}/missing.pth"], "not found"),
    (["--ckpt", "{tmp}/bad.pth"], "weights-only"),
])
def test_translate_errors_are_one_line(tmp_path, capsys, args, message):
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    _write_images(tmp_path / "in", 1)
    argv = ["translate"] + [a.format(tmp=tmp_path) for a in args] + ["--input", str(tmp_path / "in"),
                                                                     "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_translate_corrupt_image_named(tmp_path, generator, capsys):
    torch.save(generator.state_dict(), tmp_path / "latest_net_G.pth")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG garbage")
    assert main(["translate", "--ckpt", str(tmp_path / "latest_net_G.pth"), "--input", str(tmp_path / "in"),
                 "--output", str(tmp_path / "out"), "--size", str(SIZE)]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_profile_json_for_checkpoint(tmp_path, generator, capsys):
    ckpt = save_model(tmp_path / "g.safetensors", generator, "resnet_6blocks", {"ngf": 4, "norm": "instance"})
    assert main(["profile", str(ckpt), "--size", "64", "--repeats", "2", "--warmup", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == sum(p.numel() for p in generator.parameters())
    assert report["macs_published"] > report["macs"] > 0  # transposed convs count more when published
    assert report["latency_ms"]["min"] <= report["latency_ms"]["median"] <= report["latency_ms"]["max"]


def test_profile_unknown_name(capsys):
    assert main(["profile", "resnet_99blocks"]) == 2
    assert "resnet_9blocks" in capsys.readouterr().err


def test_data_list_and_make(tmp_path, capsys):
    assert main(["data", "list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.strip().splitlines()]
    assert {"shapes2render", "flat2striped"} <= set(names)
    assert main(["data", "make", "shapes2render", str(tmp_path / "d"), "--size", "32", "--count", "8"]) == 0
    assert len(list((tmp_path / "d" / "train").glob("*.png"))) == 8
    assert main(["data", "make", "shapes2render", str(tmp_path / "d")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_console_entry_point_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ganslim.cli", "translate", "--ckpt", str(tmp_path / "x.pth"),
                             "--input", str(tmp_path), "--output", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not found" in result.stderr


def _help(capsys, *argv: str) -> str:
    """The help text of ``ganslim ARGV --help``, its whitespace collapsed (argparse wraps lines)."""
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_compress_help_names_every_method_and_each_method_its_own_set_example(tmp_path, capsys):
    assert ("compress compress a generator (GAN Compression, OMGD, MobileStyleGAN, Anycost GAN, AutoGAN-Distiller)"
            in _help(capsys))
    assert "e.g. --set search_iterations=500 (repeatable)" in _help(capsys, "compress", "agd")
    assert "e.g. --set perceptual_weight=0.5 (repeatable)" in _help(capsys, "compress", "mobilestylegan")
    omgd = _help(capsys, "compress", "omgd")
    assert "e.g. --set lambda_cd=50 (repeatable)" in omgd and "lambda_distill" not in omgd
    assert main(["compress", "omgd", "--data", str(tmp_path), "--set", "lambda_cd=50", "--show-config"]) == 0
    assert "\nlambda_cd: 50.0  #" in capsys.readouterr().out
    search = _help(capsys, "compress", "gan-compression-search")
    assert "e.g. --set lambda_distill=0.5 (repeatable)" in search and "an option contradicting one is refused" in search
    kept, own = search.split("an option contradicting one is refused")
    assert all(key in kept for key in STAGE_KEYS) and all(key in own for key in OWN_KEYS if key not in (
        "fixed_channels", "supernet"))  # the help names every key a stage keeps, and those it sets itself
    assert main(["compress", "gan-compression", "--set", "lambda_distill=0.5", "--show-config"]) == 0
    assert "\nlambda_distill: 0.5  #" in capsys.readouterr().out


def test_omgd_reports_the_students_macs_at_256_and_at_the_training_size(tmp_path):
    from helpers import build_method

    from ganslim.cli.omgd import student_cost
    from ganslim.data import make_builtin
    from ganslim.methods.omgd import OMGD, OMGDConfig

    data = make_builtin("shapes2render", tmp_path / "shapes", size=32, count=2)
    method, _ = build_method(OMGD, OMGDConfig(data=str(data), load_size=64, crop_size=64, vgg_weights="none"))
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(method.summary()))
    assert student_cost(summary) == (
        "student mobile_resnet ngf 16: 0.137M params, MACs (published convention) 1.408G at 256x256, "
        "0.088G at 64x64 (training size)")


def test_train_and_compress_list_every_registered_method_and_build_without_torch(capsys):
    from ganslim.methods import COMPRESS, TRAIN, methods_of

    assert all(name in _help(capsys, "train") for name in methods_of(TRAIN).names())
    compress_help = _help(capsys, "compress")
    assert all(name in compress_help for name in [*methods_of(COMPRESS).names(), "gan-compression-export"])
    assert "--stop-after STAGE" in _help(capsys, "compress", "gan-compression")
    assert "--stop-after" not in _help(capsys, "compress", "omgd")
    code = "import sys; from ganslim.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
