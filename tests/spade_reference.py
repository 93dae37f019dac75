"""A SPADE generator reference for the tests, written apart from ganslim's code: NVlabs' ``latest_net_G.pth`` key
layout as an explicit table (spectral norm's ``weight_orig`` / ``weight_u`` / ``weight_v`` on the blocks' convs,
SyncBatchNorm statistics), GAN Compression's mobile / exported sub-mobile layout (separable gamma / beta convs, the
statistics at the supernet's widths), random weights for them, and their forward passes as functional calls on the
tensors, upsampling by repeating pixels and downsampling the label map by striding."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
EPS = 1e-5  # BatchNorm's
UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}


def blocks(ngf: int, mode: str) -> list[tuple[str, int, int]]:
    """(name, fin, fout) of every SPADE residual block, in forward order."""
    widths = [("head_0", 16, 16), ("G_middle_0", 16, 16), ("G_middle_1", 16, 16), ("up_0", 16, 8), ("up_1", 8, 4),
              ("up_2", 4, 2), ("up_3", 2, 1)]
    table = [(name, fin * ngf, fout * ngf) for name, fin, fout in widths]
    return table + ([("up_4", ngf, ngf // 2)] if mode == "most" else [])


def nvlabs_shapes(ngf: int, semantic_nc: int, mode: str, hidden: int = 128, spectral: bool = True
                  ) -> dict[str, tuple[int, ...]]:
    """Every key and shape of NVlabs' SPADEGenerator state dict (spectral norm on the blocks' convs unless
    ``spectral`` is False, as GAN Compression saves)."""
    shapes: dict[str, tuple[int, ...]] = {"fc.weight": (16 * ngf, semantic_nc, 3, 3), "fc.bias": (16 * ngf,)}

    def conv(name: str, cout: int, cin: int, k: int, bias: bool) -> None:
        if spectral:
            shapes[f"{name}.weight_orig"] = (cout, cin, k, k)
        else:
            shapes[f"{name}.weight"] = (cout, cin, k, k)
        if bias:
            shapes[f"{name}.bias"] = (cout,)
        if spectral:
            shapes[f"{name}.weight_u"] = (cout,)
            shapes[f"{name}.weight_v"] = (cin * k * k,)

    def spade(name: str, channels: int) -> None:
        shapes.update({f"{name}.param_free_norm.running_mean": (channels,),
                       f"{name}.param_free_norm.running_var": (channels,),
                       f"{name}.param_free_norm.num_batches_tracked": (),
                       f"{name}.mlp_shared.0.weight": (hidden, semantic_nc, 3, 3),
                       f"{name}.mlp_shared.0.bias": (hidden,),
                       f"{name}.mlp_gamma.weight": (channels, hidden, 3, 3), f"{name}.mlp_gamma.bias": (channels,),
                       f"{name}.mlp_beta.weight": (channels, hidden, 3, 3), f"{name}.mlp_beta.bias": (channels,)})

    for name, fin, fout in blocks(ngf, mode):
        middle = min(fin, fout)
        conv(f"{name}.conv_0", middle, fin, 3, True)
        conv(f"{name}.conv_1", fout, middle, 3, True)
        if fin != fout:
            conv(f"{name}.conv_s", fout, fin, 1, False)
        spade(f"{name}.norm_0", fin)
        spade(f"{name}.norm_1", middle)
        if fin != fout:
            spade(f"{name}.norm_s", fin)
    final = ngf // 2 if mode == "most" else ngf
    shapes.update({"conv_img.weight": (3, final, 3, 3), "conv_img.bias": (3,)})
    return shapes


def random_nvlabs_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, Tensor]:
    """Random tensors for ``shapes``: weights scaled by their fan-in (SPADE's gamma and beta convs by a further
    0.5), spectral-norm vectors near the weight's top singular vectors, running variances in [0.5, 2] and means in
    [-0.5, 0.5]."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) * 1.5 + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.rand(shape, generator=generator) - 0.5
        elif key.endswith(("weight_u", "weight_v")):
            # Near W's top singular vectors, where torch's power iteration leaves them (sigma ~ its spectral norm).
            matrix = state[key[: -len("_u")] + "_orig"].flatten(1)
            left, _, right = torch.linalg.svd(matrix, full_matrices=False)
            vector = (left[:, 0] if key.endswith("_u") else right[0]) + 0.01 * torch.randn(shape, generator=generator)
            state[key] = vector / vector.norm()
        elif key.endswith("bias"):
            state[key] = torch.randn(shape, generator=generator) * 0.1
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
            scale = 0.5 if ".mlp_gamma." in key or ".mlp_beta." in key else 1.0
            state[key] = torch.randn(shape, generator=generator) * scale / fan_in**0.5
    return state


def _weight(state: dict[str, Tensor], name: str) -> Tensor:
    """A conv's weight: plain, or W / (uᵀ W_mat v) from spectral norm's stored tensors."""
    if f"{name}.weight" in state:
        return state[f"{name}.weight"]
    w, u, v = state[f"{name}.weight_orig"], state[f"{name}.weight_u"], state[f"{name}.weight_v"]
    sigma = (u[:, None] * (w.reshape(w.shape[0], -1) * v[None, :])).sum()
    return w / sigma


def _conv(state: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    weight = _weight(state, name)
    return F.conv2d(x, weight, state.get(f"{name}.bias"), padding=weight.shape[-1] // 2)


def _resize_nearest(labels: Tensor, height: int, width: int) -> Tensor:
    """Integer-ratio nearest resizing of (N, C, H, W): strided picks down, repeats up."""
    h, w = labels.shape[2:]
    if height <= h:
        return labels[:, :, :: h // height, :: w // width]
    return labels.repeat_interleave(height // h, 2).repeat_interleave(width // w, 3)


def _spade(state: dict[str, Tensor], name: str, x: Tensor, labels: Tensor) -> Tensor:
    mean = state[f"{name}.param_free_norm.running_mean"][None, :, None, None]
    var = state[f"{name}.param_free_norm.running_var"][None, :, None, None]
    normalized = (x - mean) / torch.sqrt(var + EPS)
    actv = torch.relu(_conv(state, f"{name}.mlp_shared.0", _resize_nearest(labels, *x.shape[2:])))
    return normalized * (1 + _conv(state, f"{name}.mlp_gamma", actv)) + _conv(state, f"{name}.mlp_beta", actv)


def _block(state: dict[str, Tensor], name: str, x: Tensor, labels: Tensor, spade: Callable = _spade) -> Tensor:
    def act(t: Tensor) -> Tensor:
        return torch.where(t > 0, t, 0.2 * t)

    learned = f"{name}.conv_s.weight_orig" in state or f"{name}.conv_s.weight" in state
    shortcut = _conv(state, f"{name}.conv_s", spade(state, f"{name}.norm_s", x, labels)) if learned else x
    dx = _conv(state, f"{name}.conv_0", act(spade(state, f"{name}.norm_0", x, labels)))
    dx = _conv(state, f"{name}.conv_1", act(spade(state, f"{name}.norm_1", dx, labels)))
    return shortcut + dx


def _up(x: Tensor) -> Tensor:
    return x.repeat_interleave(2, 2).repeat_interleave(2, 3)


def nvlabs_forward(state: dict[str, Tensor], labels: Tensor, ngf: int, mode: str, spade: Callable = _spade
                   ) -> Tensor:
    """NVlabs' SPADEGenerator.forward in eval mode (no VAE) on (N, semantic_nc, H, W) -> (N, 3, H, W)."""
    step = 2 ** UPSAMPLINGS[mode]
    x = _conv(state, "fc", _resize_nearest(labels, labels.shape[2] // step, labels.shape[3] // step))
    x = _block(state, "head_0", x, labels, spade)
    x = _block(state, "G_middle_0", _up(x), labels, spade)
    if mode in ("more", "most"):
        x = _up(x)
    x = _block(state, "G_middle_1", x, labels, spade)
    for name, _, _ in blocks(ngf, mode)[3:]:
        x = _block(state, name, _up(x), labels, spade)
    return torch.tanh(_conv(state, "conv_img", torch.where(x > 0, x, 0.2 * x)))


def gc_mobile_shapes(ngf: int, semantic_nc: int, mode: str, channels: list[int] | None = None,
                     spectral: bool = False, norm: str = "batch", separable_norm: str = "instance"
                     ) -> dict[str, tuple[int, ...]]:
    """Every key and shape of GAN Compression's MobileSPADEGenerator state dict (``channels`` None) or of the
    SubMobileSPADEGenerator ``export.py`` writes for ``channels`` (its ``config_str``): each block's convs at the
    sub-network's widths (its ``ic`` input, ``channel`` = entry x 16 / 8 / 4 / 2 / 1), hidden 2 x entry, and the
    param-free norms' statistics at the full widths of ``ngf`` (``norm`` batch; none for instance). Separable
    gamma / beta convs ``conv.0`` (depthwise) and ``conv.2`` (1x1), with ``conv.1`` BatchNorm keys when
    ``separable_norm`` is batch."""
    config = [ngf] * 8 if channels is None else channels
    multipliers = [16, 16, 16, 8, 4, 2, 1]
    shapes: dict[str, tuple[int, ...]] = {"fc.weight": (16 * config[0], semantic_nc, 3, 3),
                                          "fc.bias": (16 * config[0],)}

    def conv(name: str, cout: int, cin: int, k: int, bias: bool) -> None:
        shapes[f"{name}.weight_orig" if spectral else f"{name}.weight"] = (cout, cin, k, k)
        if bias:
            shapes[f"{name}.bias"] = (cout,)
        if spectral:
            shapes[f"{name}.weight_u"] = (cout,)
            shapes[f"{name}.weight_v"] = (cin * k * k,)

    def separable(name: str, hidden: int, out: int) -> None:
        shapes.update({f"{name}.conv.0.weight": (hidden, 1, 3, 3), f"{name}.conv.0.bias": (hidden,)})
        if separable_norm == "batch":
            shapes.update({f"{name}.conv.1.{key}": (hidden,) for key in ("weight", "bias", "running_mean",
                                                                         "running_var")})
            shapes[f"{name}.conv.1.num_batches_tracked"] = ()
        shapes.update({f"{name}.conv.2.weight": (out, hidden, 1, 1), f"{name}.conv.2.bias": (out,)})

    def spade(name: str, full: int, out: int, hidden: int) -> None:
        if norm == "batch":
            shapes.update({f"{name}.param_free_norm.running_mean": (full,),
                           f"{name}.param_free_norm.running_var": (full,),
                           f"{name}.param_free_norm.num_batches_tracked": ()})
        shapes.update({f"{name}.mlp_shared.0.weight": (hidden, semantic_nc, 3, 3),
                       f"{name}.mlp_shared.0.bias": (hidden,)})
        separable(f"{name}.mlp_gamma", hidden, out)
        separable(f"{name}.mlp_beta", hidden, out)

    ic = 16 * config[0]
    for (name, fin, fout), entry, multiplier in zip(blocks(ngf, "more"), config[1:], multipliers):
        channel, hidden, learned = multiplier * entry, 2 * entry, fin != fout
        conv(f"{name}.conv_0", channel, ic, 3, True)
        conv(f"{name}.conv_1", channel if learned else ic, channel, 3, True)
        if learned:
            conv(f"{name}.conv_s", channel, ic, 1, False)
        spade(f"{name}.norm_0", fin, ic, hidden)
        spade(f"{name}.norm_1", min(fin, fout), channel, hidden)
        if learned:
            spade(f"{name}.norm_s", fin, ic, hidden)
            ic = channel  # an up_ block's output is the next one's input
    shapes.update({"conv_img.weight": (3, config[-1], 3, 3), "conv_img.bias": (3,)})
    return shapes


def _instance_norm(x: Tensor) -> Tensor:
    mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + EPS)


def _separable(state: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    depthwise = state[f"{name}.conv.0.weight"]
    x = F.conv2d(x, depthwise, state[f"{name}.conv.0.bias"], padding=depthwise.shape[-1] // 2, groups=x.shape[1])
    return F.conv2d(_instance_norm(x), state[f"{name}.conv.2.weight"], state[f"{name}.conv.2.bias"])


def _mobile_spade(state: dict[str, Tensor], name: str, x: Tensor, labels: Tensor) -> Tensor:
    """GAN Compression's (Sub)MobileSPADE: its SuperSynchronizedBatchNorm2d zero-pads x to the statistics' width,
    normalises, and keeps x's channels."""
    if f"{name}.param_free_norm.running_mean" in state:
        mean = state[f"{name}.param_free_norm.running_mean"][None, :, None, None]
        var = state[f"{name}.param_free_norm.running_var"][None, :, None, None]
        padded = torch.cat([x, x.new_zeros(x.shape[0], mean.shape[1] - x.shape[1], *x.shape[2:])], 1)
        normalized = ((padded - mean) / torch.sqrt(var + EPS))[:, : x.shape[1]]
    else:
        normalized = _instance_norm(x)
    actv = torch.relu(_conv(state, f"{name}.mlp_shared.0", _resize_nearest(labels, *x.shape[2:])))
    return normalized * (1 + _separable(state, f"{name}.mlp_gamma", actv)) + _separable(state, f"{name}.mlp_beta", actv)


def gc_mobile_forward(state: dict[str, Tensor], labels: Tensor, mode: str) -> Tensor:
    """GAN Compression's (Sub)MobileSPADEGenerator.forward in eval mode ('normal' / 'more') -> (N, 3, H, W)."""
    return nvlabs_forward(state, labels, 1, mode, _mobile_spade)


def one_hot_map(semantic_nc: int, height: int, width: int, seed: int = 0) -> Tensor:
    """A random (1, semantic_nc, H, W) label map: one-hot labels, then instance edges (a fifth of the pixels)."""
    labels = torch.randint(semantic_nc - 1, (1, height, width), generator=torch.Generator().manual_seed(seed))
    edges = torch.rand(1, 1, height, width, generator=torch.Generator().manual_seed(seed + 1)) < 0.2
    return torch.cat([F.one_hot(labels, semantic_nc - 1).permute(0, 3, 1, 2).float(), edges.float()], 1)


def nvlabs_options(**options: object) -> str:
    """An ``opt.txt`` as NVlabs' ``save_options`` writes it: ``{:>25}: {:<30}`` and, for options off their
    default, a tab and ``[default: ...]``."""
    defaults = {"label_nc": 182, "crop_size": 512, "aspect_ratio": 1.0, "num_upsampling_layers": "normal"}
    lines = []
    for key, value in sorted(options.items()):
        comment = f"\t[default: {defaults[key]}]" if key in defaults and defaults[key] != value else ""
        lines.append("{:>25}: {:<30}{}\n".format(key, str(value), comment))
    return "".join(lines)
