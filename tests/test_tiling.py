"""ganslim.apps.tiling: tiled super-resolution equals the untiled output away from seams, in memory bounded by the
tile; models and options it cannot take are one line."""

from __future__ import annotations

import pytest
import torch

from esrgan_reference import random_state
from ganslim.apps.tiling import DEFAULT_TILE_PAD, Tiled, check_tileable
from ganslim.archs import build_generator
from ganslim.cli import translate as translate_cli
from ganslim.errors import GanslimError
from ganslim.measure.profile import measure_peak_memory

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"num_feat": 8, "num_grow_ch": 4}


def tiny_esrgan(num_block: int = 2, scale: int = 4) -> torch.nn.Module:
    """A tiny RRDBNet with weights of std 1/sqrt(fan_in), so its trunk mixes its whole receptive field (ganslim's
    own init scales the dense blocks by 0.1, which makes far pixels matter even less)."""
    generator = build_generator("rrdbnet", num_block=num_block, scale=scale, **TINY).eval()
    in_channels = 3 * {4: 1, 2: 4, 1: 16}[scale]
    generator.load_state_dict(random_state(8, num_block, 4, in_channels, 3, seed=0))
    return generator


def lr_image(height: int = 64, width: int = 48) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))


def seam_distance(side: int, tile: int, scale: int = 4) -> torch.Tensor:
    """For each output row (or column), its distance in input pixels to the nearest tile seam."""
    centres = (torch.arange(side * scale) + 0.5) / scale
    seams = torch.arange(tile, side, tile, dtype=torch.float32)
    return (centres[:, None] - seams[None]).abs().min(1).values


@pytest.mark.parametrize("tile, pad", [(24, DEFAULT_TILE_PAD), (16, 4)])
def test_tiled_equals_untiled_away_from_seams_within_one_level(tile, pad):
    """Every output pixel of a tile sees at least ``pad`` input pixels of context, but an RRDBNet's receptive field
    is wider (two blocks: 32 convs, 34 input pixels; ESRGAN's 23 blocks: about 350), so pixels near a seam miss some
    of what they see untiled and may differ; those ``pad`` pixels or more from every seam must agree within 1/255."""
    generator, image = tiny_esrgan(), lr_image()
    with torch.no_grad():
        untiled = generator(image)
        tiled = Tiled(generator, tile, pad)(image)
    assert tiled.shape == untiled.shape == (1, 3, 256, 192)
    difference = (tiled - untiled).abs()[0].amax(0)
    distance = torch.minimum(seam_distance(64, tile)[:, None], seam_distance(48, tile)[None])
    away = distance >= pad
    assert difference[away].max() <= 1 / 255
    assert difference[~away].max() > difference[away].max()  # where they differ most is at the seams
    assert untiled.std() > 0.05  # not a comparison of two near-constant images


def test_tiled_is_exact_where_the_pad_covers_the_receptive_field():
    """Without blocks the network sees 4 input pixels around each one (conv_first, conv_body, then one input pixel
    for the x2 conv and one for the three x4 convs): a pad of 4 leaves nothing outside a tile to miss."""
    generator, image = tiny_esrgan(num_block=0), lr_image(37, 29)  # tiles of every size at the edges
    with torch.no_grad():
        assert torch.allclose(Tiled(generator, 8, 4)(image), generator(image), atol=1e-6)
        assert not torch.allclose(Tiled(generator, 8, 3)(image), generator(image), atol=1e-6)


def test_an_x2_model_tiles_on_multiples_of_its_pixel_unshuffle():
    """x2 runs its trunk on the input pixel-unshuffled by 2, which widens the receptive field to 7 input pixels: a
    pad of 8 covers it. x1 (unshuffled by 4) is not super-resolution: it is not tiled."""
    generator, image = tiny_esrgan(num_block=0, scale=2), lr_image(36, 28)
    with torch.no_grad():
        assert torch.allclose(Tiled(generator, 8, 8)(image), generator(image), atol=1e-6)
    with pytest.raises(GanslimError, match="--tile 7 does not fit this x2 model, which takes image sides that are "
                                           "multiples of 2: pass a multiple of 2"):
        Tiled(generator, 7, 8)
    with pytest.raises(GanslimError, match="--tile-pad 5 does not fit this x2 model"):
        Tiled(generator, 8, 5)
    with pytest.raises(GanslimError, match="--tile applies to super-resolution models only"):
        Tiled(tiny_esrgan(num_block=0, scale=1), 8, 8)


def test_memory_is_bounded_by_the_tile_not_the_image():
    """Peak tensor memory (profile's tool) of a 64x64 input exceeds a 48x48 one's by exactly the larger input and
    output: the tiles' activations are the same size; untiled, they grow with the image."""
    generator = build_generator("rrdbnet", num_block=1, **TINY).eval()
    tiled = {side: measure_peak_memory(Tiled(generator, 16, 4), lr_image(side, side)) for side in (48, 64)}
    untiled = {side: measure_peak_memory(generator, lr_image(side, side)) for side in (48, 64)}
    pixel_bytes = 3 * 4 * (1 + 4 * 4)  # an input pixel and its 16 output pixels, 3 float32 channels each
    assert tiled[64] - tiled[48] == (64**2 - 48**2) * pixel_bytes
    assert untiled[64] - untiled[48] > 5 * (tiled[64] - tiled[48])
    assert tiled[64] < untiled[64] / 3


def test_translation_models_and_bad_options_are_one_line():
    with pytest.raises(GanslimError, match="--tile applies to super-resolution models only: this image-to-image "
                                           "model normalises by whole-image statistics"):
        Tiled(build_generator("resnet_6blocks", ngf=4), 64, 16)
    generator = tiny_esrgan(num_block=0)
    for tile, pad, message in [(0, 4, "--tile 0 must be an integer of at least 1"),
                               (8, -1, "--tile-pad -1 must be an integer of at least 0")]:
        with pytest.raises(GanslimError, match=message):
            Tiled(generator, tile, pad)
    with pytest.raises(GanslimError, match="image 'a.png' is 12x10 pixels, smaller than --tile-pad 16: it needs no "
                                           "tiles; translate it without --tile, or pass --tile-pad 10 or less"):
        check_tileable("image 'a.png'", 10, 12, 16)
    check_tileable("image 'a.png'", 16, 16, 16)


def test_the_cli_default_pad_is_the_librarys():
    assert translate_cli.DEFAULT_TILE_PAD == DEFAULT_TILE_PAD


def test_the_meta_device_counts_what_the_cpu_holds():
    """Peak tensor memory on the meta device (shapes only) equals the CPU measurement, tiled or not, so the full
    ESRGAN figures below need no arithmetic."""
    generator = build_generator("rrdbnet", num_block=1, **TINY).eval()
    with torch.device("meta"):
        on_meta = build_generator("rrdbnet", num_block=1, **TINY).eval()
    image = lr_image(37, 45)
    for wrap in (lambda model: model, lambda model: Tiled(model, 16, 4)):
        assert measure_peak_memory(wrap(on_meta), image.to("meta"), "meta") == measure_peak_memory(wrap(generator),
                                                                                                   image)


@pytest.mark.slow
def test_esrgan_on_a_1024_lr_image_in_256_tiles_stays_under_2_gib():
    """The README's figures: ESRGAN x4 (64/23/32) on a 1024x1024 LR input holds 0.97 GiB of tensors at its peak in
    256-pixel tiles with the default pad, 9.07 GiB untiled (63.7 MiB of weights + 9,228 bytes per LR pixel)."""
    with torch.device("meta"):
        generator = build_generator("rrdbnet").eval()
        image = torch.empty(1, 3, 1024, 1024)
    tiled = measure_peak_memory(Tiled(generator, 256, DEFAULT_TILE_PAD), image, "meta")
    assert tiled == 1_045_113_356 and tiled < 2 * 2**30
    assert measure_peak_memory(generator, image, "meta") == 16_697_987 * 4 + 9_228 * 1024**2 == 9_743_051_276
