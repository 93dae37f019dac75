"""AutoGAN-Distiller (Fu et al., ICML 2020): its searchable operators (:mod:`.operators`), the derived networks
``agd_translation`` (:mod:`.translation`) and ``agd_sr`` (:mod:`.sr`), plain registered generators whose choices are
their ``arch_kwargs``. Importing this package registers them."""

from ganslim.archs.agd import operators, sr, translation
from ganslim.archs.agd.operators import OPERATORS, WIDTH_RATIOS, make_divisible, width_choices
from ganslim.archs.agd.sr import AGDSRGenerator
from ganslim.archs.agd.translation import AGDTranslationGenerator

__all__ = [
    "AGDSRGenerator",
    "AGDTranslationGenerator",
    "OPERATORS",
    "WIDTH_RATIOS",
    "make_divisible",
    "operators",
    "sr",
    "translation",
    "width_choices",
]
