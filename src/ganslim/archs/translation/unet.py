"""U-Net generator of pix2pix, state-dict compatible with the reference.

The net is a chain of nested skip blocks; block d (d = 0 outermost .. num_downs - 1 innermost) halves the
resolution on the way down and doubles it on the way up. Its ``model`` Sequential holds:

    outermost   0 Conv2d(in->c)  1 <block 1>  2 ReLU  3 ConvTranspose2d(2c->out, with bias)  4 Tanh
    middle      0 LeakyReLU(0.2)  1 Conv2d  2 norm  3 <block d+1>  4 ReLU  5 ConvTranspose2d  6 norm
                [7 Dropout(0.5) — only in the num_downs - 5 inner 8*ngf blocks, and only with use_dropout]
    innermost   0 LeakyReLU(0.2)  1 Conv2d  2 ReLU  3 ConvTranspose2d  4 norm

so keys read ``model.model.1.model.3.model.3...``. All convs are 4x4, stride 2, padding 1; they have a bias
only with instance norm, except the outermost up-conv which always has one. Dropout adds no keys, so it cannot
be read back from a checkpoint.

Reference quirk kept on purpose: the LeakyReLU that opens every inner block works in place, so it also
rewrites the tensor the block concatenates as its skip; the skip therefore carries LeakyReLU(x), not x.
Making it out-of-place would change the outputs of every trained checkpoint.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ganslim.errors import GanslimError
from ganslim.nn import check_norm, conv_bias, make_norm
from ganslim.registry import GENERATORS
from ganslim.signature import ImageSides, TranslatesImages

MIN_DOWNS = 5


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: x -> cat([x, up(inner(down(x)))]), (N, outer_nc, H, W) -> (N, 2*outer_nc, H, W).

    The outermost block returns ``up(...)`` alone: (N, input_nc, H, W) -> (N, outer_nc, H, W), tanh applied.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: UnetSkipConnectionBlock | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        self.outer_nc = outer_nc
        bias = conv_bias(norm)
        in_channels = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(in_channels, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            layers: list[nn.Module] = [
                down_conv,
                submodule,
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1),
                nn.Tanh(),
            ]
        elif innermost:
            layers = [
                nn.LeakyReLU(0.2, inplace=True),
                down_conv,
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias),
                make_norm(norm, outer_nc),
            ]
        else:
            layers = [
                nn.LeakyReLU(0.2, inplace=True),
                down_conv,
                make_norm(norm, inner_nc),
                submodule,
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias),
                make_norm(norm, outer_nc),
            ]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    @property
    def submodule(self) -> UnetSkipConnectionBlock | None:
        """The next inner block, or None for the innermost one."""
        inner = self.model[1] if self.outermost else self.model[3]
        return inner if isinstance(inner, UnetSkipConnectionBlock) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(TranslatesImages, nn.Module):
    """pix2pix U-Net: (N, input_nc, H, W) in [-1, 1] -> (N, output_nc, H, W) in [-1, 1].

    H and W must be multiples of 2**num_downs (256 for ``unet_256``, 128 for ``unet_128``).

    Args:
        input_nc: channels of the input image.
        output_nc: channels of the output image.
        ngf: channels after the first down-conv; widths double per level up to 8 * ngf.
        norm: ``batch`` | ``instance`` | ``none``.
        use_dropout: Dropout(0.5) at the end of the num_downs - 5 8*ngf levels between the innermost block and
            the 4*ngf level (pix2pix trains with it on).
        num_downs: number of stride-2 downsamplings (>= 5); 8 for ``unet_256``, 7 for ``unet_128``.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = False,
        num_downs: int = 8,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if num_downs < MIN_DOWNS:
            raise GanslimError(f"unet generator needs num_downs >= {MIN_DOWNS}, got {num_downs}")
        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf
        self.norm, self.use_dropout, self.num_downs = norm, use_dropout, num_downs

        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
        for _ in range(num_downs - MIN_DOWNS):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        for outer_mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * outer_mult, ngf * outer_mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm
        )

    @property
    def image_sides(self) -> ImageSides:
        """Each of the num_downs stride-2 convs halves the image exactly, down to 1x1."""
        return ImageSides(multiple=2**self.num_downs, minimum=2**self.num_downs)

    def blocks(self) -> list[UnetSkipConnectionBlock]:
        """The skip blocks from outermost (depth 0) to innermost (depth num_downs - 1)."""
        chain = [self.model]
        while (inner := chain[-1].submodule) is not None:
            chain.append(inner)
        return chain

    def _check_image(self, image: torch.Tensor) -> None:
        sides = self.image_sides
        if image.dim() != 4 or image.shape[1] != self.input_nc or not all(map(sides.accepts, image.shape[2:])):
            raise GanslimError(
                f"unet generator with num_downs {self.num_downs} takes (N, {self.input_nc}, H, W) with H, W "
                f"{sides.describe()}, got {tuple(image.shape)}; resize or crop the images"
            )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, H, W), values in [-1, 1]."""
        if not torch.jit.is_tracing():  # exporters trace with a valid example; the check would only warn there
            self._check_image(image)
        return self.model(image)

    def forward_features(
        self, image: torch.Tensor, layer_indices: Sequence[int]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the generator and also return the outputs of the skip blocks at the given depths.

        Args:
            image: (N, input_nc, H, W).
            layer_indices: block depths 1 .. num_downs - 1 (1 = just inside the outermost block).
        Returns:
            ``(output, features)``: output (N, output_nc, H, W) equal to ``forward(image)``; features in the
            order of ``layer_indices``; the one for depth d is the block's output, the concatenation of its
            input (skip) and its decoded part: (N, feature_channels(d), H / 2**d, W / 2**d). Features stay
            attached to the autograd graph.
        """
        chain = self.blocks()
        bad = [d for d in layer_indices if not isinstance(d, int) or not 1 <= d < len(chain)]
        if bad:
            raise GanslimError(f"unet depths {bad} are outside 1..{len(chain) - 1}; pick block depths in it")
        captured: dict[int, torch.Tensor] = {}

        def capture(depth: int):
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                # The parent applies an in-place ReLU to this output right after.
                captured[depth] = output.clone()

            return hook

        handles = [chain[d].register_forward_hook(capture(d)) for d in set(layer_indices)]
        try:
            output = self.forward(image)
        finally:
            for handle in handles:
                handle.remove()
        return output, [captured[d] for d in layer_indices]

    def feature_channels(self, depth: int) -> int:
        """Channels of the feature that ``forward_features`` returns for block ``depth`` (2 * its outer width)."""
        chain = self.blocks()
        if not 1 <= depth < len(chain):
            raise GanslimError(f"unet depth {depth} is outside 1..{len(chain) - 1}; pick a block depth in it")
        return 2 * chain[depth].outer_nc


@GENERATORS.register("unet")
def unet(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "batch",
    use_dropout: bool = False,
    num_downs: int = 8,
) -> UnetGenerator:
    """U-Net generator with any number (>= 5) of downsamplings."""
    return UnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, num_downs)


@GENERATORS.register("unet_256")
def unet_256(
    input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch", use_dropout: bool = False
) -> UnetGenerator:
    """pix2pix's default generator for 256x256 images: 8 downsamplings (54.41M parameters at ngf 64)."""
    return UnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, num_downs=8)


@GENERATORS.register("unet_128")
def unet_128(
    input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch", use_dropout: bool = False
) -> UnetGenerator:
    """U-Net for 128x128 images: 7 downsamplings."""
    return UnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, num_downs=7)
