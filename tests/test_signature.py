"""Model signatures: declared by every generator, true to its forward, round-tripped through checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from ganslim.archs import build_generator, builder_parameters
from ganslim.checkpoints import load_generator, save_model
from ganslim.errors import GanslimError
from ganslim.registry import GENERATORS
from ganslim.signature import (
    IMAGE,
    LABEL_MAP,
    LATENT,
    NOISE,
    UNIT,
    ImageSides,
    InputSpec,
    OutputSpec,
    Signature,
    image_to_image,
    input_channels,
    noise_input,
    output_channels,
)
from helpers import image_network_names

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# Generators whose output range is nominal: ESRGAN's RRDBNet is not clamped (as BasicSR's); callers quantise it.
UNCLAMPED = {"rrdbnet"}


def tiny(name: str) -> torch.nn.Module:
    """The registered generator ``name`` at a small width."""
    small = {"ngf": 4, "num_feat": 4, "num_block": 1, "num_grow_ch": 2}
    kwargs = {key: value for key, value in small.items() if key in builder_parameters(GENERATORS, name)}
    return build_generator(name, **kwargs).eval()


@pytest.mark.parametrize("name", image_network_names(GENERATORS))
def test_every_generator_does_what_its_signature_says(name):
    generator = tiny(name)
    signature = generator.signature
    assert Signature.from_dict(json.loads(json.dumps(signature.to_dict()))) == signature
    spec = signature.image_input
    side = spec.sides.nearest(40)[-1]
    inputs = signature.example_inputs(side, batch=2, generator=torch.Generator().manual_seed(0))
    assert [tuple(x.shape) for x in inputs] == [(2, spec.channels, side, side)]
    if spec.kind == LABEL_MAP:  # one-hot: one 1 per pixel
        assert torch.equal(inputs[0].sum(1), torch.ones(2, side, side))
    else:
        low, high = spec.value_range
        assert low <= inputs[0].min() and inputs[0].max() <= high
    with torch.no_grad():
        output = generator(*inputs)
    out_side = signature.output_side(side)
    assert tuple(output.shape) == (2, signature.output.channels, out_side, out_side)
    low, high = signature.output.value_range
    if name not in UNCLAMPED:
        assert low <= output.min() and output.max() <= high
    rejected = side + 1 if spec.sides.multiple > 1 else spec.sides.minimum - 1  # x4 SR takes every side >= 1
    with pytest.raises(GanslimError, match=f"the input size {rejected} does not fit this generator"):
        signature.check_side(rejected)


def test_the_checkpoint_header_carries_the_signature_and_a_tampered_one_is_refused(tmp_path):
    generator = build_generator("resnet_6blocks", ngf=4, input_nc=1)
    path = save_model(tmp_path / "g.pt", generator, "resnet_6blocks", {"ngf": 4, "input_nc": 1})
    header = torch.load(path, weights_only=True)
    assert Signature.from_dict(header["signature"]) == generator.signature
    assert header["signature"]["inputs"][0]["channels"] == 1
    assert load_generator(path).signature == generator.signature
    for suffix in (".pt", ".safetensors"):
        copy = save_model(tmp_path / f"copy{suffix}", generator, "resnet_6blocks", {"ngf": 4, "input_nc": 1})
        assert load_generator(copy).signature.describe() == (
            "image (1 ch, [-1, 1], multiples of 4 and at least 8 pixels) -> image (3 ch, [-1, 1], x1)")

    header["signature"]["output"]["scale"] = 4.0
    torch.save(header, tmp_path / "tampered.pt")
    with pytest.raises(GanslimError, match=r"says its resnet_6blocks takes .* x4\), but that architecture takes "
                                           r".* x1\): the header is damaged"):
        load_generator(tmp_path / "tampered.pt")
    del header["signature"]  # files written before signatures existed load as before
    torch.save(header, tmp_path / "old.pt")
    assert load_generator(tmp_path / "old.pt").signature == generator.signature


def test_a_malformed_signature_is_one_line():
    with pytest.raises(GanslimError, match="malformed model signature .*: re-export the checkpoint"):
        Signature.from_dict({"inputs": [{"name": "image"}], "output": {}})


def test_super_resolution_and_latent_signatures():
    sr = image_to_image(3, 3, ImageSides(multiple=2), UNIT, scale=4)
    assert sr.output_side(64) == 256 and sr.describe() == (
        "image (3 ch, [0, 1], multiples of 2) -> image (3 ch, [0, 1], x4)")
    (image,) = sr.example_inputs(8)
    assert image.shape == (1, 3, 8, 8) and 0 <= image.min() and image.max() <= 1
    latent = Signature((InputSpec("z", LATENT, 512, None, None),), OutputSpec(3, resolution=1024, scale=None))
    assert latent.output_side(1) == 1024 and not latent.takes_image
    (z,) = latent.example_inputs(batch=2)
    assert z.shape == (2, 512) and latent.describe() == "z (512 dims) -> image (3 ch, [-1, 1], 1024x1024)"
    assert Signature.from_dict(latent.to_dict()) == latent
    with pytest.raises(GanslimError, match="takes no image"):
        latent.image_input
    with pytest.raises(ValueError, match="latent inputs have no sides"):
        InputSpec("z", LATENT, 8)
    with pytest.raises(ValueError, match="either a scale or a fixed resolution"):
        OutputSpec(3, scale=None)
    assert InputSpec("image", IMAGE, 3).sides == ImageSides()


def test_w_plus_noise_inputs_and_latent_outputs_round_trip_and_earlier_dicts_read_back():
    synthesis = Signature((InputSpec("w_plus", LATENT, 8, None, None, layers=6), noise_input("noise_0", 4)),
                          OutputSpec(3, resolution=16, scale=None))
    mapping = Signature((InputSpec("z", LATENT, 8, None, None),), OutputSpec(8, None, None, kind=LATENT))
    for signature in (synthesis, mapping):
        assert Signature.from_dict(json.loads(json.dumps(signature.to_dict()))) == signature
    w_plus, noise = synthesis.example_inputs(batch=3)
    assert w_plus.shape == (3, 6, 8) and noise.shape == (3, 1, 4, 4)
    assert synthesis.inputs[1].kind == NOISE and not synthesis.takes_image
    assert synthesis.describe() == ("w_plus (6x8 dims), noise_0 (1 ch, exactly 4 pixels) -> image (3 ch, [-1, 1], "
                                    "16x16)")
    assert mapping.describe() == "z (8 dims) -> latent (8 dims)"
    # The keys added for these (layers, a side's maximum, an output's kind) appear only where they are set.
    image = image_to_image(3, 3, ImageSides(4, 8))
    assert image.to_dict() == {
        "inputs": [{"name": "image", "kind": "image", "channels": 3, "value_range": [-1.0, 1.0],
                    "sides": {"multiple": 4, "minimum": 8}}],
        "output": {"channels": 3, "value_range": [-1.0, 1.0], "scale": 1.0, "resolution": None}}
    with pytest.raises(ValueError, match="only latent inputs have layers"):
        InputSpec("image", IMAGE, 3, layers=2)
    with pytest.raises(ValueError, match="a noise input has one fixed side"):
        InputSpec("noise", NOISE, 1, None, ImageSides(1, 4))
    with pytest.raises(ValueError, match="a latent output has no scale, resolution or value range"):
        OutputSpec(8, None, None, resolution=4, kind=LATENT)
    with pytest.raises(GanslimError, match="--size 32 does not fit this generator, which makes 16x16 images from "
                                           "latents: drop --size"):
        synthesis.check_resolution(32)
    synthesis.check_resolution(16)


def test_channels_are_read_from_the_signature_and_probed_only_on_a_plain_module():
    class Declared(torch.nn.Conv2d):  # a signature that differs from the conv, and a forward that must not run
        signature = image_to_image(2, 5, ImageSides())

        def forward(self, image):
            raise AssertionError("output_channels ran the forward of a model that declares its signature")

    declared = Declared(3, 7, 1)
    assert (input_channels(declared), output_channels(declared, 8)) == (2, 5)
    unet = tiny("unet_128")
    assert (input_channels(unet), output_channels(unet, 128)) == (unet.input_nc, unet.output_nc)
    plain = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 1), torch.nn.Conv2d(4, 1, 1))
    assert (input_channels(plain), output_channels(plain, 8)) == (2, 1)
    with pytest.raises(GanslimError, match="declares no signature and has no convolution; pass in_channels"):
        input_channels(torch.nn.Identity())
