"""AutoGAN-Distiller's architecture parameters over a supernet, the samples they drive, and derivation by argmax.

* :class:`ArchParameters`: ``alpha`` (operator slots x operators; softmax gives each mixed operator's weights) and
  ``width_logits`` (width slots x candidates), both starting at 1e-3 as the reference's.
* :func:`gumbel_hard`: straight-through hard Gumbel-softmax: one-hot forward, the soft sample's gradient backward.
* :func:`search_sample`: softmax(alpha) with widths drawn by :func:`gumbel_hard`, gated so that the width logits
  get gradients; :func:`fixed_sample` runs softmax(alpha) at given widths (the max / min / random subnets).
* :func:`sandwich_widths`: the sandwich rule's widths of one warm-up step: largest, smallest and random ones.
* :func:`derive`: the argmax operators and widths as the derived network's ``arch`` and ``arch_kwargs``.

Randomness comes in explicitly (a ``torch.Generator``), never from the global generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.archs.agd import OPERATORS, AGDSupernet, Sample

INITIAL_VALUE = 1e-3
RANDOM_SUBNETS = 2  # the sandwich rule's random widths per warm-up step
GUMBEL_EPS = 1e-20


class ArchParameters(nn.Module):
    """The searched parameters of ``supernet``: ``alpha`` (operator slots, len(OPERATORS)) and ``width_logits``
    (width slots, candidates per slot)."""

    def __init__(self, supernet: AGDSupernet) -> None:
        super().__init__()
        candidates = {len(widths) for widths in supernet.width_candidates}
        if len(candidates) != 1:
            raise ValueError("every width slot of a supernet needs as many candidates")
        self.alpha = nn.Parameter(torch.full((len(supernet.op_slots), len(OPERATORS)), INITIAL_VALUE))
        self.width_logits = nn.Parameter(torch.full((len(supernet.width_candidates), candidates.pop()), INITIAL_VALUE))

    def op_weights(self) -> Tensor:
        """softmax(alpha) per slot: (operator slots, len(OPERATORS))."""
        return F.softmax(self.alpha, dim=-1)


def gumbel_hard(logits: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
    """Straight-through hard Gumbel-softmax over the last dimension: (..., K) logits -> (..., K).

    The forward value is the one-hot of argmax(logits + Gumbel noise); the gradient is that of the soft sample
    softmax((logits + noise) / temperature).
    """
    # Drawn where the generator lives (a CPU one, e.g. the engine's shared one), then moved: a CUDA tensor cannot be
    # drawn from a CPU generator.
    device = generator.device if generator is not None else torch.device("cpu")
    uniform = torch.rand(logits.shape, generator=generator, device=device, dtype=logits.dtype).to(logits.device)
    noise = -torch.log(-torch.log(uniform + GUMBEL_EPS) + GUMBEL_EPS)
    soft = F.softmax((logits + noise) / temperature, dim=-1)
    hard = F.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def search_sample(supernet: AGDSupernet, params: ArchParameters, generator: torch.Generator | None = None) -> Sample:
    """softmax(alpha) with one width per slot drawn by :func:`gumbel_hard`; each slot's gate is the drawn one-hot's
    entry at its width (1 forward), through which the width logits get gradients."""
    one_hot = gumbel_hard(params.width_logits, generator)
    chosen = one_hot.argmax(dim=-1)
    widths = tuple(candidates[int(index)] for candidates, index in zip(supernet.width_candidates, chosen))
    gates = one_hot.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
    return Sample(params.op_weights(), widths, gates)


def fixed_sample(params: ArchParameters, widths: list[float]) -> Sample:
    """softmax(alpha) at the given widths, without gates (the warm-up's and the sandwich's subnets)."""
    return Sample(params.op_weights(), tuple(widths))


def random_widths(supernet: AGDSupernet, generator: torch.Generator | None = None) -> list[float]:
    """One candidate per width slot, uniformly."""
    picks = [int(torch.randint(len(c), (1,), generator=generator)) for c in supernet.width_candidates]
    return [candidates[pick] for candidates, pick in zip(supernet.width_candidates, picks)]


def sandwich_widths(supernet: AGDSupernet, generator: torch.Generator | None = None,
                    random_count: int = RANDOM_SUBNETS) -> list[list[float]]:
    """The widths of one sandwich-rule step: the largest, the smallest, then ``random_count`` random ones."""
    return [supernet.largest_widths(), supernet.smallest_widths(),
            *(random_widths(supernet, generator) for _ in range(random_count))]


def derive(supernet: AGDSupernet, params: ArchParameters) -> tuple[str, dict]:
    """The derived network: per slot the operator of largest alpha and the width of largest logit, as the
    registered ``arch`` and its ``arch_kwargs``."""
    return supernet.derived_arch, supernet.derived_kwargs(*derived_choices(supernet, params))


def derived_choices(supernet: AGDSupernet, params: ArchParameters) -> tuple[list[str], list[float]]:
    """The argmax operator of every slot and width of every width slot (what :func:`derive` builds from)."""
    ops = [OPERATORS[int(index)] for index in params.alpha.argmax(dim=-1)]
    widths = [candidates[int(index)]
              for candidates, index in zip(supernet.width_candidates, params.width_logits.argmax(dim=-1))]
    return ops, widths
