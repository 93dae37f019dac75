"""A StyleGAN2 reference for the tests, written apart from ganslim's code: rosinality's key layout as an explicit
table, random weights for it, NVIDIA's key layout, and both generators' forward passes (and rosinality's
discriminator) as functional calls on the tensors, one sample at a time, upsampling by explicit zero insertion."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
BLUR = torch.tensor([1.0, 3.0, 3.0, 1.0])
BLUR_2D = BLUR[:, None] * BLUR[None, :] / 64  # sums to 1


def sides(size: int) -> list[int]:
    return [2**i for i in range(2, int(math.log2(size)) + 1)]


def rosinality_shapes(size: int, channels: list[int], style_dim: int, n_mlp: int) -> dict[str, tuple[int, ...]]:
    """Every key and shape of rosinality's ``Generator`` state dict (as its model.py registers them), plus
    ganslim's ``style.w_avg``."""
    shapes: dict[str, tuple[int, ...]] = {"style.w_avg": (style_dim,)}
    for i in range(1, n_mlp + 1):
        shapes |= {f"style.{i}.weight": (style_dim, style_dim), f"style.{i}.bias": (style_dim,)}
    c = dict(zip(sides(size), channels))

    # A module's own parameters come first, then its children's keys in the order they were registered.
    def styled(name: str, cin: int, cout: int, up: bool) -> None:
        shapes[f"{name}.conv.weight"] = (1, cout, cin, 3, 3)
        if up:
            shapes[f"{name}.conv.blur.kernel"] = (4, 4)
        shapes.update({f"{name}.conv.modulation.weight": (cin, style_dim), f"{name}.conv.modulation.bias": (cin,),
                       f"{name}.noise.weight": (1,), f"{name}.activate.bias": (cout,)})

    def to_rgb(name: str, cin: int, up: bool) -> None:
        shapes[f"{name}.bias"] = (1, 3, 1, 1)
        if up:
            shapes[f"{name}.upsample.kernel"] = (4, 4)
        shapes.update({f"{name}.conv.weight": (1, 3, cin, 1, 1), f"{name}.conv.modulation.weight": (cin, style_dim),
                       f"{name}.conv.modulation.bias": (cin,)})

    shapes["input.input"] = (1, c[4], 4, 4)
    styled("conv1", c[4], c[4], False)
    to_rgb("to_rgb1", c[4], False)
    for k, side in enumerate(sides(size)[1:]):
        styled(f"convs.{2 * k}", c[side // 2], c[side], True)
        styled(f"convs.{2 * k + 1}", c[side], c[side], False)
    for k, side in enumerate(sides(size)[1:]):
        to_rgb(f"to_rgbs.{k}", c[side], True)
    noise_sides = [4] + [side for side in sides(size)[1:] for _ in range(2)]
    shapes.update({f"noises.noise_{i}": (1, 1, s, s) for i, s in enumerate(noise_sides)})
    return shapes


def random_rosinality_state(size: int, channels: list[int], style_dim: int, n_mlp: int, seed: int,
                            w_avg: bool = True) -> dict[str, Tensor]:
    """Random weights in rosinality's layout: N(0, 1) weights (the mapping's / 0.01), non-zero biases and noise
    strengths, and the [1, 3, 3, 1] filters rosinality stores (x4: every generator filter follows an x2 upsampling)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in rosinality_shapes(size, channels, style_dim, n_mlp).items():
        noise = torch.randn(shape, generator=generator)
        if key.endswith("kernel"):
            state[key] = BLUR_2D * 4
        elif key.endswith("modulation.bias"):
            state[key] = 1 + 0.2 * noise
        elif key.endswith((".bias", "noise.weight", "w_avg")):
            state[key] = 0.3 * noise
        elif key.startswith("style."):
            state[key] = noise / 0.01  # as EqualLinear stores them: N(0, 1) / lr_mul
        else:
            state[key] = noise
    if not w_avg:
        del state["style.w_avg"]
    return state


# ---------------------------------------------------------------- functional ops, one sample at a time


def lrelu(x: Tensor) -> Tensor:
    return torch.where(x >= 0, x, 0.2 * x) * 2**0.5


def zero_insert(x: Tensor) -> Tensor:
    """(C, H, W) -> (C, 2H, 2W) with x at the even positions and zeros elsewhere."""
    out = torch.zeros(x.shape[0], 2 * x.shape[1], 2 * x.shape[2])
    out[:, ::2, ::2] = x
    return out


def fir(x: Tensor, kernel: Tensor, pad_before: int, pad_after: int) -> Tensor:
    """(C, H, W): zero-pad, then a true convolution of every channel with ``kernel``."""
    padded = F.pad(x, [pad_before, pad_after, pad_before, pad_after])[:, None]
    return F.conv2d(padded, kernel.flip([0, 1])[None, None])[:, 0]


def modulated(x: Tensor, weight: Tensor, style: Tensor, demodulate: bool, up: bool = False) -> Tensor:
    """x (C_in, H, W), weight (C_out, C_in, k, k) already scaled, style (C_in,)."""
    w = weight * style[None, :, None, None]
    if demodulate:
        w = w / torch.sqrt((w**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
    k = w.shape[-1]
    if up:  # a stride-2 transposed conv = zero insertion, then a full convolution with the flipped kernel
        inserted = zero_insert(x)[:, :-1, :-1]
        return F.conv2d(F.pad(inserted, [k - 1] * 4)[None], w.flip([2, 3]))[0]
    return F.conv2d(x[None], w, padding=k // 2)[0]


def map_rosinality(state: dict[str, Tensor], z: Tensor, lr_mlp: float = 0.01) -> Tensor:
    """z (N, D) -> w (N, D)."""
    x = z / torch.sqrt((z**2).mean(dim=1, keepdim=True) + 1e-8)
    index = 1
    while f"style.{index}.weight" in state:
        weight, bias = state[f"style.{index}.weight"], state[f"style.{index}.bias"]
        x = lrelu(x @ (weight * lr_mlp / weight.shape[1] ** 0.5).T + bias * lr_mlp)
        index += 1
    return x


def _style(state: dict[str, Tensor], name: str, w: Tensor) -> Tensor:
    weight, bias = state[f"{name}.conv.modulation.weight"], state[f"{name}.conv.modulation.bias"]
    return w @ (weight / weight.shape[1] ** 0.5).T + bias


def _styled_conv(state: dict[str, Tensor], name: str, x: Tensor, w: Tensor, noise: Tensor | None,
                 up: bool) -> Tensor:
    weight = state[f"{name}.conv.weight"][0]
    out = modulated(x, weight / (weight[0].numel()) ** 0.5, _style(state, name, w), True, up)
    if up:
        out = fir(out, BLUR_2D * 4, 1, 1)
    if noise is not None:
        out = out + state[f"{name}.noise.weight"] * noise
    return lrelu(out + state[f"{name}.activate.bias"][:, None, None])


def _to_rgb(state: dict[str, Tensor], name: str, x: Tensor, w: Tensor, skip: Tensor | None) -> Tensor:
    weight = state[f"{name}.conv.weight"][0]
    out = modulated(x, weight / weight.shape[1] ** 0.5, _style(state, name, w), False) + state[f"{name}.bias"][0]
    if skip is not None:
        out = out + fir(zero_insert(skip), BLUR_2D * 4, 2, 1)
    return out


def synthesize_rosinality(state: dict[str, Tensor], w_plus: Tensor, noises: list[Tensor | None]) -> Tensor:
    """W+ (N, num_ws, D) -> image, sample by sample; ``noises[i]`` (N, 1, r, r) or None."""
    images = []
    for n in range(w_plus.shape[0]):
        w = w_plus[n]
        noise = [None if t is None else t[n] for t in noises]
        x = _styled_conv(state, "conv1", state["input.input"][0], w[0], noise[0], False)
        skip = _to_rgb(state, "to_rgb1", x, w[1], None)
        k = 0
        while f"to_rgbs.{k}.conv.weight" in state:
            x = _styled_conv(state, f"convs.{2 * k}", x, w[2 * k + 1], noise[2 * k + 1], True)
            x = _styled_conv(state, f"convs.{2 * k + 1}", x, w[2 * k + 2], noise[2 * k + 2], False)
            skip = _to_rgb(state, f"to_rgbs.{k}", x, w[2 * k + 3], skip)
            k += 1
        images.append(skip)
    return torch.stack(images)


def stored_noises(state: dict[str, Tensor], batch: int) -> list[Tensor]:
    count = sum(1 for key in state if key.startswith("noises."))
    return [state[f"noises.noise_{i}"].expand(batch, -1, -1, -1) for i in range(count)]


# ---------------------------------------------------------------- NVIDIA's layout (stylegan2-ada-pytorch)


def nvidia_generator_tensors(size: int, channels: list[int], w_dim: int, n_mlp: int, seed: int) -> dict[str, Tensor]:
    """Random tensors keyed as NVIDIA's ``Generator`` state dict (skip architecture, 3 colour channels)."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> Tensor:
        return torch.randn(shape, generator=generator)

    c = dict(zip(sides(size), channels))
    tensors = {"mapping.w_avg": 0.5 * randn(w_dim)}
    for i in range(n_mlp):
        tensors |= {f"mapping.fc{i}.weight": randn(w_dim, w_dim) * 100, f"mapping.fc{i}.bias": randn(w_dim)}

    def layer(name: str, cin: int, cout: int, side: int) -> None:
        tensors.update({f"{name}.weight": randn(cout, cin, 3, 3), f"{name}.affine.weight": randn(cin, w_dim),
                        f"{name}.affine.bias": 1 + 0.2 * randn(cin), f"{name}.noise_strength": 0.3 * randn(),
                        f"{name}.bias": 0.3 * randn(cout), f"{name}.noise_const": randn(side, side),
                        f"{name}.resample_filter": BLUR_2D.clone()})

    def torgb(name: str, cin: int) -> None:
        tensors.update({f"{name}.weight": randn(3, cin, 1, 1), f"{name}.affine.weight": randn(cin, w_dim),
                        f"{name}.affine.bias": 1 + 0.2 * randn(cin), f"{name}.bias": 0.3 * randn(3)})

    for side in sides(size):
        block = f"synthesis.b{side}"
        tensors[f"{block}.resample_filter"] = BLUR_2D.clone()
        if side == 4:
            tensors[f"{block}.const"] = randn(c[4], 4, 4)
        else:
            layer(f"{block}.conv0", c[side // 2], c[side], side)
        layer(f"{block}.conv1", c[side], c[side], side)
        torgb(f"{block}.torgb", c[side])
    return tensors


def nvidia_forward(tensors: dict[str, Tensor], z: Tensor, psi: float, noise_mode: str, lr: float = 0.01) -> Tensor:
    """NVIDIA's arithmetic: FullyConnectedLayer gains, demodulated convs without a weight gain, ToRGB styles
    times 1/sqrt(fan_in), filters normalised to 1 with gain 4 when upsampling, w_avg.lerp truncation."""
    x = z / torch.sqrt((z**2).mean(dim=1, keepdim=True) + 1e-8)
    i = 0
    while f"mapping.fc{i}.weight" in tensors:
        weight = tensors[f"mapping.fc{i}.weight"]
        x = lrelu(x @ (weight * lr / weight.shape[1] ** 0.5).T + tensors[f"mapping.fc{i}.bias"] * lr)
        i += 1
    w = tensors["mapping.w_avg"] + psi * (x - tensors["mapping.w_avg"])

    def affine(name: str, w_n: Tensor) -> Tensor:
        weight = tensors[f"{name}.affine.weight"]
        return w_n @ (weight / weight.shape[1] ** 0.5).T + tensors[f"{name}.affine.bias"]

    def layer(name: str, x_n: Tensor, w_n: Tensor, up: bool) -> Tensor:
        out = modulated(x_n, tensors[f"{name}.weight"], affine(name, w_n), True, up)
        if up:
            out = fir(out, tensors[f"{name}.resample_filter"] * 4, 1, 1)
        if noise_mode == "const":
            out = out + tensors[f"{name}.noise_const"] * tensors[f"{name}.noise_strength"]
        return lrelu(out + tensors[f"{name}.bias"][:, None, None])

    def torgb(name: str, x_n: Tensor, w_n: Tensor) -> Tensor:
        weight = tensors[f"{name}.weight"]
        styles = affine(name, w_n) / weight[0].numel() ** 0.5
        return modulated(x_n, weight, styles, False) + tensors[f"{name}.bias"][:, None, None]

    images = []
    for w_n in w:
        feature, image = tensors["synthesis.b4.const"], None
        side = 4
        while f"synthesis.b{side}.conv1.weight" in tensors:
            block = f"synthesis.b{side}"
            if side > 4:
                feature = layer(f"{block}.conv0", feature, w_n, True)
            feature = layer(f"{block}.conv1", feature, w_n, False)
            rgb = torgb(f"{block}.torgb", feature, w_n)
            image = rgb if image is None else rgb + fir(zero_insert(image), tensors[f"{block}.resample_filter"] * 4,
                                                        2, 1)
            side *= 2
        images.append(image)
    return torch.stack(images)


# ---------------------------------------------------------------- discriminators (batched: minibatch stddev)


def _equal_conv(x: Tensor, weight: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    return F.conv2d(x, weight / weight[0].numel() ** 0.5, stride=stride, padding=padding)


def _equal_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return x @ (weight / weight.shape[1] ** 0.5).T + bias


def _blur(x: Tensor, pad: int) -> Tensor:
    channels = x.shape[1]
    return F.conv2d(F.pad(x, [pad] * 4), BLUR_2D.flip([0, 1]).expand(channels, 1, 4, 4), groups=channels)


def _act(x: Tensor, bias: Tensor) -> Tensor:
    return lrelu(x + bias[None, :, None, None])


def _minibatch_stddev(x: Tensor, group: int) -> Tensor:
    batch, channels, height, width = x.shape
    groups = x.view(group, batch // group, channels, height, width)
    stddev = torch.sqrt(groups.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))
    return torch.cat([x, stddev.repeat(group)[:, None, None, None].expand(batch, 1, height, width)], dim=1)


def discriminator_forward(state: dict[str, Tensor], images: Tensor, group: int = 4) -> Tensor:
    """(N, 3, R, R) -> (N, 1), rosinality's Discriminator op for op."""
    x = _act(_equal_conv(images, state["convs.0.0.weight"]), state["convs.0.1.bias"])
    index = 1
    while f"convs.{index}.conv1.0.weight" in state:
        block = f"convs.{index}"
        out = _act(_equal_conv(x, state[f"{block}.conv1.0.weight"], padding=1), state[f"{block}.conv1.1.bias"])
        out = _act(_equal_conv(_blur(out, 2), state[f"{block}.conv2.1.weight"], stride=2),
                   state[f"{block}.conv2.2.bias"])
        x = (out + _equal_conv(_blur(x, 1), state[f"{block}.skip.1.weight"], stride=2)) / 2**0.5
        index += 1
    x = _act(_equal_conv(_minibatch_stddev(x, group), state["final_conv.0.weight"], padding=1),
             state["final_conv.1.bias"])
    x = lrelu(_equal_linear(x.flatten(1), state["final_linear.0.weight"], state["final_linear.0.bias"]))
    return _equal_linear(x, state["final_linear.1.weight"], state["final_linear.1.bias"])


def nvidia_discriminator_tensors(size: int, channels: list[int], seed: int) -> dict[str, Tensor]:
    """Random tensors keyed as NVIDIA's residual ``Discriminator`` state dict (unconditional, 3 channels)."""
    generator = torch.Generator().manual_seed(seed)
    c = dict(zip(sides(size), channels))
    tensors: dict[str, Tensor] = {}

    def conv(name: str, cout: int, cin: int, k: int, bias: bool = True) -> None:
        tensors[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=generator)
        if bias:
            tensors[f"{name}.bias"] = 0.1 * torch.randn(cout, generator=generator)
        tensors[f"{name}.resample_filter"] = BLUR_2D.clone()

    conv(f"b{size}.fromrgb", c[size], 3, 1)
    for side in reversed(sides(size)[1:]):
        conv(f"b{side}.conv0", c[side], c[side], 3)
        conv(f"b{side}.conv1", c[side // 2], c[side], 3)
        conv(f"b{side}.skip", c[side // 2], c[side], 1, bias=False)
    conv("b4.conv", c[4], c[4] + 1, 3)
    for name, cout, cin in (("b4.fc", c[4], c[4] * 16), ("b4.out", 1, c[4])):
        tensors[f"{name}.weight"] = torch.randn(cout, cin, generator=generator)
        tensors[f"{name}.bias"] = 0.1 * torch.randn(cout, generator=generator)
    return tensors


def nvidia_discriminator_forward(tensors: dict[str, Tensor], images: Tensor, group: int) -> Tensor:
    """NVIDIA's arithmetic: conv1 and the skip each scaled by sqrt(0.5) (the skip linear, conv1's gain
    sqrt(2) * sqrt(0.5)), filters padded as conv2d_resample pads them for a stride-2 conv."""
    side = images.shape[-1]
    x = _act(_equal_conv(images, tensors[f"b{side}.fromrgb.weight"]), tensors[f"b{side}.fromrgb.bias"])
    while side > 4:
        skip = _equal_conv(_blur(x, 1), tensors[f"b{side}.skip.weight"], stride=2) * 0.5**0.5
        x = _act(_equal_conv(x, tensors[f"b{side}.conv0.weight"], padding=1), tensors[f"b{side}.conv0.bias"])
        x = _act(_equal_conv(_blur(x, 2), tensors[f"b{side}.conv1.weight"], stride=2),
                 tensors[f"b{side}.conv1.bias"]) * 0.5**0.5
        x = skip + x
        side //= 2
    x = _act(_equal_conv(_minibatch_stddev(x, group), tensors["b4.conv.weight"], padding=1), tensors["b4.conv.bias"])
    x = lrelu(_equal_linear(x.flatten(1), tensors["b4.fc.weight"], tensors["b4.fc.bias"]))
    return _equal_linear(x, tensors["b4.out.weight"], tensors["b4.out.bias"])
