"""The mobile_stylegan generator: layout and key names, the style-index map (against the styles each layer really
reads), shapes at 32 and 64 px, determinism and noise, W / W+ entry points, the student built from a teacher,
the demodulation fold, save and load, and config-f's size and cost at 1024."""

from __future__ import annotations

import pytest
import torch

from ganslim.archs import build_generator
from ganslim.archs.stylegan2 import estimate_w_avg, style_index_map
from ganslim.archs.stylegan2.mobile import MobileStyleGANGenerator
from ganslim.checkpoints import load_generator, save_model
from ganslim.errors import GanslimError
from ganslim.measure.profile import count_macs, count_params
from ganslim.nn.wavelets import wavelets_to_image
from ganslim.signature import LATENT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STYLE_DIM = 8
TINY = {"size": 32, "channels": [16, 16, 8], "style_dim": STYLE_DIM, "n_mlp": 2}
TEACHER = {"size": 32, "channels": [16, 16, 8, 8], "style_dim": STYLE_DIM, "n_mlp": 2}


def _student(seed: int = 0, **kwargs) -> MobileStyleGANGenerator:
    """A tiny student with noise strengths of 1 (they start at 0, which would hide the noise)."""
    torch.manual_seed(seed)
    student = build_generator("mobile_stylegan", **{**TINY, **kwargs}).eval()
    with torch.no_grad():
        for name, parameter in student.named_parameters():
            if name.endswith("noise.weight"):
                parameter.fill_(1.0)
    return student


def _z(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, STYLE_DIM, generator=torch.Generator().manual_seed(seed))


def test_layout_and_key_names_are_mobilestylegans():
    student = _student()
    keys = student.state_dict()
    assert (student.num_ws, student.num_noises, student.channels) == (6, 5, {4: 16, 8: 16, 16: 8})
    assert tuple(keys["synthesis.input.input"].shape) == (1, 16, 4, 4)
    assert tuple(keys["synthesis.conv1.conv.weight"].shape) == (16, 16, 3, 3)
    assert tuple(keys["synthesis.to_img1.conv.weight"].shape) == (12, 16, 1, 1)
    assert tuple(keys["synthesis.layers.0.up.modulation.weight"].shape) == (16, STYLE_DIM)
    assert tuple(keys["synthesis.layers.0.conv1.conv.weight_dw"].shape) == (4, 1, 3, 3)  # 16 / 4 after the IDWT
    assert tuple(keys["synthesis.layers.0.conv1.conv.weight_permute"].shape) == (16, 4, 1, 1)
    assert tuple(keys["synthesis.layers.1.conv2.conv.style_inv"].shape) == (1, 1, 8, 1, 1)
    assert tuple(keys["synthesis.layers.1.to_img.bias"].shape) == (1, 12, 1, 1)
    assert [tuple(keys[f"synthesis.noises.noise_{i}"].shape)[-1] for i in range(5)] == [4, 8, 8, 16, 16]
    assert "synthesis.to_img1.conv.style_inv" not in keys  # the heads do not demodulate
    assert {key.split(".")[0] for key in keys} == {"style", "synthesis"}


def test_style_index_map_is_what_each_layer_reads():
    assert style_index_map(2) == {
        "conv1": 0, "to_img1": 1,
        "layers.0.up": 1, "layers.0.conv1": 1, "layers.0.conv2": 2, "layers.0.to_img": 3,
        "layers.1.up": 3, "layers.1.conv1": 3, "layers.1.conv2": 4, "layers.1.to_img": 5,
    }
    student = _student()
    read: dict[str, torch.Tensor] = {}
    for name, module in student.synthesis.named_modules():
        if name.endswith("modulation"):
            layer = name.removesuffix(".modulation").removesuffix(".conv")
            module.register_forward_pre_hook(lambda _, args, layer=layer: read.__setitem__(layer, args[0]))
    w_plus = torch.randn(2, 6, STYLE_DIM, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        student.synthesis(w_plus)
    assert set(read) == set(style_index_map(2))
    for layer, index in style_index_map(2).items():
        assert torch.equal(read[layer], w_plus[:, index]), layer


@pytest.mark.parametrize("size, channels", [(32, [16, 16, 8]), (64, [16, 16, 8, 8])])
def test_image_and_heads_shapes_at_32_and_64(size, channels):
    student = _student(size=size, channels=channels)
    assert student.signature.inputs[0].kind == LATENT and student.signature.inputs[0].channels == STYLE_DIM
    assert student.signature.output.resolution == size and student.signature.output.value_range == (-1.0, 1.0)
    z = _z(3)
    with torch.no_grad():
        w_plus = student.broadcast(student.map(z))
        heads = student.synthesis.wavelets(w_plus)
        image = student(z)
    assert [tuple(head.shape) for head in heads] == [(3, 12, side, side) for side in (4, 8, 16, 32)[:len(channels)]]
    assert image.shape == (3, 3, size, size) and image.dtype == torch.float32
    assert torch.equal(image, wavelets_to_image(heads[-1])), "the image is the inverse DWT of the last head only"
    assert torch.isfinite(image).all() and 0.1 < image.std() < 10
    assert (image[0] - image[1]).abs().mean() > 0.01, "different z, different images"


def test_same_z_and_noise_give_the_same_image_and_every_noise_mode_counts():
    student = _student()
    z = _z()
    with torch.no_grad():
        const = student(z)
        assert torch.equal(student(z), const)
        explicit = [torch.randn(1, 1, side, side, generator=torch.Generator().manual_seed(side))
                    for side in (4, 8, 8, 16, 16)]
        assert torch.equal(student(z, noise=explicit), student(z, noise=explicit))
        assert torch.equal(student(z, noise=student.synthesis.noises.constants()), const)
        first = student(z, noise="random", rng=torch.Generator().manual_seed(3))
        assert torch.equal(student(z, noise="random", rng=torch.Generator().manual_seed(3)), first)
        for other in (student(z, noise="random", rng=torch.Generator().manual_seed(4)), student(z, noise="none"),
                      student(z, noise=explicit)):
            assert (other - const).abs().mean() > 1e-3
    with pytest.raises(GanslimError, match="takes 5 noise tensors, got 4"):
        student(z, noise=explicit[:4])
    with pytest.raises(GanslimError, match=r"noise 1 must have shape \(2 or 1, 1, 8, 8\)"):
        student(z, noise=[explicit[0], explicit[0], *explicit[2:]])


def test_w_and_w_plus_entry_points_agree():
    student = _student()
    z = _z()
    with torch.no_grad():
        w = student.map(z)
        assert torch.equal(w, student.style(z))
        image = student(z)
        assert torch.equal(student.synthesis(student.broadcast(w)), image)
        assert torch.equal(student.synthesis(w.unsqueeze(1).expand(-1, 6, -1).contiguous()), image)
        other = student.map(_z(seed=2))
        assert torch.equal(student.mix(w, other, 0), student.broadcast(other))
        mixed = student.mix(w, other, 3)
        assert torch.equal(mixed[:, :3], student.broadcast(w)[:, :3])
        assert torch.equal(mixed[:, 3:], student.broadcast(other)[:, 3:])
        assert (student.synthesis(mixed) - image).abs().mean() > 1e-3
    with pytest.raises(GanslimError, match="no w_avg"):
        student(z, truncation_psi=0.5)
    w_avg = estimate_w_avg(student, n=64)
    with torch.no_grad():
        assert torch.allclose(student.map(z, truncation_psi=0.0), w_avg.expand(2, -1))
        halfway = student.broadcast(torch.lerp(w_avg, w, 0.5))
        assert torch.equal(student(z, truncation_psi=0.5), student.synthesis(halfway))
    with pytest.raises(GanslimError, match=r"synthesis takes W\+ of shape \(N, 6, 8\), got \(2, 7, 8\)"):
        student.synthesis(torch.zeros(2, 7, STYLE_DIM))
    with pytest.raises(GanslimError, match=r"takes W of shape \(N, 8\), got \(2, 9\)"):
        student.broadcast(torch.zeros(2, 9))


def test_parts_are_the_generators_own_modules():
    student = _student()
    parts = student.parts(batch=2)
    mapping, (z,) = parts["mapping"]
    synthesis, (w_plus,) = parts["synthesis"]
    assert mapping is student.style and synthesis is student.synthesis
    assert z.shape == (2, STYLE_DIM) and w_plus.shape == (2, 6, STYLE_DIM)
    assert count_params(mapping) + count_params(synthesis) == count_params(student)


def test_from_teacher_copies_the_mapping_and_shares_the_teachers_noise():
    torch.manual_seed(7)
    teacher = build_generator("stylegan2", **TEACHER).eval()
    estimate_w_avg(teacher, n=64)
    student = MobileStyleGANGenerator.from_teacher(teacher)
    assert (student.img_resolution, student.channels, student.num_ws) == (32, {4: 16, 8: 16, 16: 8}, 6)
    assert student.style is not teacher.style
    teacher_state = teacher.style.state_dict()
    assert student.style.state_dict().keys() == teacher_state.keys()
    assert all(torch.equal(t, teacher_state[key]) for key, t in student.style.state_dict().items())
    z = _z()
    with torch.no_grad():
        assert torch.equal(student.map(z, 0.7), teacher.map(z, 0.7))
        # The teacher's constant noise at 4, 8, 8, 16, 16 px (its last two, at 32 px, have no student conv).
        teacher_noise = teacher.noises.constants()
        assert all(torch.equal(s, t) for s, t in zip(student.synthesis.noises.constants(), teacher_noise[:5]))
        assert [n.shape[-1] for n in student.synthesis.shared_noise(teacher_noise)] == [4, 8, 8, 16, 16]
        student.style[1].weight.add_(1.0)
    assert not torch.equal(student.style[1].weight, teacher.style[1].weight), "copied, not shared"
    with pytest.raises(GanslimError, match=r"takes noise at sides \[4, 8, 8, 16, 16\] .* got a list at sides \[4, 8\]"):
        student.synthesis.shared_noise(teacher_noise[:2])
    with pytest.raises(GanslimError, match="built from a stylegan2 generator, got ResnetGenerator"):
        MobileStyleGANGenerator.from_teacher(build_generator("resnet_6blocks", ngf=4))


def test_bad_arguments_are_one_line():
    for kwargs, message in (({"size": 6}, "size 6 is not a power of two of at least 8"),
                            ({"size": 48}, "size 48 is not a power of two"),
                            ({"channels": [16, 16]}, r"channels \[16, 16\] has 2 widths; a 32 px student takes 3 "
                                                     r"\(one per side 4, 8, ..., 16"),
                            ({"channels": [16, 10, 8]}, "10 is no multiple of 4"),
                            ({"channels": [16, 0, 8]}, "mobile_stylegan channels=0 is not a positive integer"),
                            ({"lr_mlp": 0}, "mobile_stylegan lr_mlp=0 is not a positive number")):
        with pytest.raises(GanslimError, match=message):
            build_generator("mobile_stylegan", **{**TINY, **kwargs})
    assert build_generator("mobile_stylegan", **{**TINY, "channels": [16, 16, 6]}).channels[16] == 6  # feeds no IDWT


@torch.no_grad()
def test_folded_generator_renders_the_same_images():
    student = _student()
    folded = student.fold_demodulation()
    assert not any(key.endswith("style_inv") for key in folded.state_dict())
    assert sum(key.endswith("style_inv") for key in student.state_dict()) == 5  # conv1 + two per block
    z = _z(3)
    for noise in ("const", "none"):
        assert (folded(z, noise=noise) - student(z, noise=noise)).abs().max() < 1e-5


def test_save_and_load_keep_the_weights_and_style_inv(tmp_path):
    student = _student()
    path = save_model(tmp_path / "student.pt", student, "mobile_stylegan", TINY)
    torch.manual_seed(99)  # a rebuilt model draws other style_inv vectors; loading must replace them
    loaded = load_generator(path).model.eval()
    assert isinstance(loaded, MobileStyleGANGenerator)
    assert torch.equal(loaded.synthesis.conv1.conv.style_inv, student.synthesis.conv1.conv.style_inv)
    z = _z()
    with torch.no_grad():
        assert torch.equal(loaded(z), student(z))


def test_config_f_1024_size_and_cost_on_meta():
    with torch.device("meta"):  # shapes only
        student = build_generator("mobile_stylegan")
        teacher = build_generator("stylegan2")
        counts = {name: (count_params(module), count_macs(module, inputs))
                  for name, (module, inputs) in student.parts().items()}
        teacher_synthesis = count_macs(*teacher.parts()["synthesis"])
    assert list(student.channels.items()) == list(zip([4, 8, 16, 32, 64, 128, 256, 512], [512] * 5 + [256, 128, 64]))
    assert (student.num_ws, student.num_noises) == (16, 15)
    (mapping_params, _), (synthesis_params, synthesis_macs) = counts["mapping"], counts["synthesis"]
    assert mapping_params == count_params(teacher.style) == 2_101_248
    assert synthesis_params == 8_852_079 and f"{synthesis_params / 1e6:.2f} M" == "8.85 M"
    # True MACs by hand: the 4 px stem (dense 3x3 + 1x1 head), per block at side r the depthwise 3x3 and pointwise
    # convs and the head, and the style affines (W -> one scale per input channel); the IDWT multiplies nothing.
    table = [512] * 5 + [256, 128, 64]
    block_widths = list(zip([8, 16, 32, 64, 128, 256, 512], table, table[1:]))  # (side, c_in, c_out)
    stem = (512 * 512 * 9 + 12 * 512) * 16
    blocks = sum((c_in // 4 * 9 + c_out * c_in // 4 + c_out * 9 + c_out * c_out + 12 * c_out) * r * r
                 for r, c_in, c_out in block_widths)
    styles = 512 * (2 * 512 + sum(c_in + c_in // 4 + 2 * c_out for _, c_in, c_out in block_widths))
    assert synthesis_macs.macs == stem + blocks + styles
    assert f"{synthesis_macs.macs / 1e9:.2f} G" == "7.47 G"
    assert teacher_synthesis.macs / synthesis_macs.macs > 9.9  # 74.26 G / 7.47 G
