"""AutoGAN-Distiller (Fu et al., ICML 2020): its searchable operators (:mod:`.operators`), the derived networks
``agd_translation`` (:mod:`.translation`) and ``agd_sr`` (:mod:`.sr`), plain registered generators whose choices are
their ``arch_kwargs``, and the supernets the search trains (:mod:`.supernet`, not registered: they run a sample of
choices, not an image alone). Importing this package registers the derived networks."""

from ganslim.archs.agd import operators, sr, supernet, translation
from ganslim.archs.agd.operators import OPERATORS, WIDTH_RATIOS, make_divisible, width_choices
from ganslim.archs.agd.sr import AGDSRGenerator
from ganslim.archs.agd.supernet import (
    AGDSRSupernet,
    AGDSupernet,
    AGDTranslationSupernet,
    MixedOperator,
    Sample,
    extract_derived,
    one_hot_sample,
)
from ganslim.archs.agd.translation import AGDTranslationGenerator

__all__ = [
    "AGDSRGenerator",
    "AGDSRSupernet",
    "AGDSupernet",
    "AGDTranslationGenerator",
    "AGDTranslationSupernet",
    "MixedOperator",
    "OPERATORS",
    "Sample",
    "WIDTH_RATIOS",
    "extract_derived",
    "make_divisible",
    "one_hot_sample",
    "operators",
    "sr",
    "supernet",
    "translation",
    "width_choices",
]
