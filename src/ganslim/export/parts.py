"""The graphs a latent generator is deployed as: its mapping (z -> W) and its synthesis (W or W+ -> image), each a
module with its own signature, over the generator's own layers.

A latent generator plugs in through ``parts()`` (:func:`ganslim.signature.parts_of`), as
:class:`ganslim.archs.stylegan2.StyleGAN2Generator` does: ``{"mapping": (module, (z,)), "synthesis": (module,
(w_plus,))}``, z (N, z_dim) and W+ (N, num_ws, w_dim) example inputs. The synthesis module is called as
``synthesis(w_plus, noise=...)``: ``noise="const"`` adds its stored noise, the buffers of its ``noises`` submodule
((1, C, r, r) each, in order), and a list of tensors, one per buffer, replaces them.

A generator is exported in its :func:`deployable` form: one that can fold its demodulation into its weights
(``fold_demodulation()``, MobileStyleGAN's) is folded first, and the graphs are checked against the unfolded one.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ganslim.errors import GanslimError
from ganslim.signature import LATENT, InputSpec, OutputSpec, Signature, noise_input, parts_of

PARTS = ("mapping", "synthesis")
NOISE_CHOICES = ("frozen", "input")  # the stored noise baked into the graph, or one graph input per noise buffer


class MappingGraph(nn.Module):
    """z (N, z_dim) -> W (N, w_dim): the generator's mapping part (no truncation)."""

    def __init__(self, mapping: nn.Module, z: InputSpec, w_dim: int) -> None:
        super().__init__()
        self.mapping = mapping
        self.signature = Signature((z,), OutputSpec(w_dim, None, None, kind=LATENT))

    def forward(self, z: Tensor) -> Tensor:
        return self.mapping(z)


class SynthesisGraph(nn.Module):
    """W (N, w_dim), the same style for all ``num_ws`` layers, or W+ (N, num_ws, w_dim) with ``w_plus`` -> the
    image (``output``).

    ``noise``: ``frozen`` adds the stored noise buffers (constants of the graph); ``input`` takes one (N or 1, C,
    r, r) noise image per buffer after the latent, named as the buffers (``noise_0``, ...).
    """

    def __init__(self, synthesis: nn.Module, num_ws: int, w_dim: int, output: OutputSpec, w_plus: bool = False,
                 noise: str = "frozen") -> None:
        super().__init__()
        check_noise(noise)
        self.synthesis, self.num_ws = synthesis, num_ws
        self.w_plus, self.noise_inputs = w_plus, noise == "input"
        latent = (InputSpec("w_plus", LATENT, w_dim, None, None, layers=num_ws) if w_plus
                  else InputSpec("w", LATENT, w_dim, None, None))
        noises = [noise_input(name, buffer.shape[-1], buffer.shape[1])
                  for name, buffer in synthesis.noises.named_buffers()] if self.noise_inputs else []
        self.signature = Signature((latent, *noises), output)

    def forward(self, latent: Tensor, *noises: Tensor) -> Tensor:
        w_plus = latent if self.w_plus else latent.unsqueeze(1).expand(-1, self.num_ws, -1)
        return self.synthesis(w_plus, noise=list(noises) if self.noise_inputs else "const")


def deployable(generator: nn.Module) -> nn.Module:
    """The form ``generator`` is exported in: a copy with its demodulation folded into the weights when it has
    ``fold_demodulation()`` (MobileStyleGAN: the same images within 1e-5, no per-output rsqrt left in the graph),
    else ``generator`` itself."""
    fold = getattr(generator, "fold_demodulation", None)
    return generator if fold is None else fold()


def check_noise(noise: str) -> None:
    """One line unless ``noise`` is one of :data:`NOISE_CHOICES`."""
    if noise not in NOISE_CHOICES:
        raise GanslimError(f"noise '{noise}' is not one of {', '.join(NOISE_CHOICES)}: frozen bakes the stored noise "
                           f"into the graph, input makes each noise image an input")


def part_graphs(generator: nn.Module, parts: Sequence[str], w_plus: bool = False,
                noise: str = "frozen") -> dict[str, nn.Module]:
    """The graphs of ``parts`` (names from :data:`PARTS`, in that order); one line for a model without parts, an
    unknown part, or W+ / noise options without the synthesis part."""
    pieces = parts_of(generator)
    if pieces is None:
        raise GanslimError(f"{type(generator).__name__} has no mapping and synthesis parts (only latent generators "
                           f"such as stylegan2 do): export it whole")
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise GanslimError(f"parts {', '.join(unknown) or '(none)'} unknown: choose from {', '.join(PARTS)}, "
                           f"comma-separated")
    check_noise(noise)
    if "synthesis" not in parts and (w_plus or noise != "frozen"):
        raise GanslimError("W+ and noise inputs are options of the synthesis graph: add synthesis to the parts")
    mapping, _ = pieces["mapping"]
    synthesis, (example,) = pieces["synthesis"]
    _, num_ws, w_dim = example.shape
    signature = generator.signature
    graphs = {"mapping": lambda: MappingGraph(mapping, signature.inputs[0], w_dim),
              "synthesis": lambda: SynthesisGraph(synthesis, num_ws, w_dim, signature.output, w_plus, noise)}
    return {part: graphs[part]() for part in PARTS if part in parts}
