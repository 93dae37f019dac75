"""AutoGAN-Distiller (Fu et al., ICML 2020): the search's building blocks over the supernets of
:mod:`ganslim.archs.agd` — architecture parameters, samples, the sandwich rule and derivation (:mod:`.space`), and
the cost table, AGD's expected-cost penalty and its weight's adaptation (:mod:`.cost`), and the distillation
objectives (:mod:`.objective`)."""

from ganslim.methods.agd.cost import CostTable, PenaltyWeight, agd_cost, latency_measure, mac_measure
from ganslim.methods.agd.objective import AGDSRObjective, AGDTranslationObjective
from ganslim.methods.agd.space import (
    ArchParameters,
    derive,
    derived_choices,
    fixed_sample,
    gumbel_hard,
    random_widths,
    sandwich_widths,
    search_sample,
)

__all__ = [
    "AGDSRObjective",
    "AGDTranslationObjective",
    "ArchParameters",
    "CostTable",
    "PenaltyWeight",
    "agd_cost",
    "derive",
    "derived_choices",
    "fixed_sample",
    "gumbel_hard",
    "latency_measure",
    "mac_measure",
    "random_widths",
    "sandwich_widths",
    "search_sample",
]
