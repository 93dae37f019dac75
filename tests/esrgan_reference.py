"""An ESRGAN reference for the tests, written apart from ganslim's code: the three key layouts as an explicit table,
and RRDBNet's forward as functional calls on a BasicSR-keyed state dict (BasicSR's arithmetic, op for op)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def conv_table(num_block: int) -> list[tuple[str, str, str]]:
    """(BasicSR, xinntao new arch, old arch) name of every conv, as each repository's modules name them."""
    rows = [("conv_first", "conv_first", "model.0")]
    for n in range(num_block):
        for r in (1, 2, 3):
            for c in (1, 2, 3, 4, 5):
                rows.append((f"body.{n}.rdb{r}.conv{c}", f"RRDB_trunk.{n}.RDB{r}.conv{c}",
                             f"model.1.sub.{n}.RDB{r}.conv{c}.0"))
    rows += [("conv_body", "trunk_conv", f"model.1.sub.{num_block}"), ("conv_up1", "upconv1", "model.3"),
             ("conv_up2", "upconv2", "model.6"), ("conv_hr", "HRconv", "model.8"),
             ("conv_last", "conv_last", "model.10")]
    return rows


LAYOUT_COLUMN = {"basicsr": 0, "new_arch": 1, "old_arch": 2}


def in_layout(state: dict[str, Tensor], layout: str, num_block: int) -> dict[str, Tensor]:
    """A BasicSR-keyed state dict renamed to ``layout`` (a key of LAYOUT_COLUMN)."""
    column = LAYOUT_COLUMN[layout]
    return {f"{row[column]}.{leaf}": state[f"{row[0]}.{leaf}"].clone()
            for row in conv_table(num_block) for leaf in ("weight", "bias")}


def random_state(num_feat: int, num_block: int, num_grow_ch: int, in_channels: int, out_channels: int,
                 seed: int) -> dict[str, Tensor]:
    """Random BasicSR-keyed weights (std 1/sqrt(fan_in), biases 0.05) for an RRDBNet of these sizes."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"conv_first": (num_feat, in_channels), "conv_last": (out_channels, num_feat)}
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[name] = (num_feat, num_feat)
    for n in range(num_block):
        for r in (1, 2, 3):
            for c in (1, 2, 3, 4):
                shapes[f"body.{n}.rdb{r}.conv{c}"] = (num_grow_ch, num_feat + (c - 1) * num_grow_ch)
            shapes[f"body.{n}.rdb{r}.conv5"] = (num_feat, num_feat + 4 * num_grow_ch)
    state = {}
    for name, (out_c, in_c) in shapes.items():
        state[f"{name}.weight"] = torch.randn(out_c, in_c, 3, 3, generator=generator) / (9 * in_c) ** 0.5
        state[f"{name}.bias"] = torch.randn(out_c, generator=generator) * 0.05
    return state


def _conv(state: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    return F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], stride=1, padding=1)


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, negative_slope=0.2)


def _dense_block(state: dict[str, Tensor], prefix: str, x: Tensor) -> Tensor:
    x1 = _lrelu(_conv(state, f"{prefix}.conv1", x))
    x2 = _lrelu(_conv(state, f"{prefix}.conv2", torch.cat((x, x1), 1)))
    x3 = _lrelu(_conv(state, f"{prefix}.conv3", torch.cat((x, x1, x2), 1)))
    x4 = _lrelu(_conv(state, f"{prefix}.conv4", torch.cat((x, x1, x2, x3), 1)))
    x5 = _conv(state, f"{prefix}.conv5", torch.cat((x, x1, x2, x3, x4), 1))
    return x5 * 0.2 + x


def _pixel_unshuffle(x: Tensor, factor: int) -> Tensor:
    """BasicSR's basicsr.archs.arch_util.pixel_unshuffle (view / permute), not torch's."""
    b, c, hh, hw = x.shape
    h, w = hh // factor, hw // factor
    return x.view(b, c, h, factor, w, factor).permute(0, 1, 3, 5, 2, 4).reshape(b, c * factor**2, h, w)


def reference_forward(state: dict[str, Tensor], image: Tensor, scale: int) -> Tensor:
    """BasicSR's RRDBNet.forward on ``state`` (BasicSR keys): (N, C, H, W) -> (N, C_out, scale*H, scale*W)."""
    num_block = len({key.split(".")[1] for key in state if key.startswith("body.")})
    feat = image if scale == 4 else _pixel_unshuffle(image, 4 // scale)
    feat = _conv(state, "conv_first", feat)
    body = feat
    for n in range(num_block):
        out = body
        for r in (1, 2, 3):
            out = _dense_block(state, f"body.{n}.rdb{r}", out)
        body = out * 0.2 + body
    feat = feat + _conv(state, "conv_body", body)
    feat = _lrelu(_conv(state, "conv_up1", F.interpolate(feat, scale_factor=2, mode="nearest")))
    feat = _lrelu(_conv(state, "conv_up2", F.interpolate(feat, scale_factor=2, mode="nearest")))
    return _conv(state, "conv_last", _lrelu(_conv(state, "conv_hr", feat)))
