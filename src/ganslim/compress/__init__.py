"""Surgery without training: channel search spaces, sub-network extraction from once-for-all supernets, their
predicted cost and the search over them under a budget (:mod:`.search`); Anycost GAN's sub-generator extraction and
channel sorting for StyleGAN2 (:mod:`.stylegan2`).

Training (distillation, once-for-all steps, fine-tuning) and what scores a candidate live in ``ganslim.methods``;
this package only reshapes networks, predicts their cost and searches.
"""

from ganslim.compress.extract import extract_subnet
from ganslim.compress.space import DEFAULT_RATIOS, SearchSpace
from ganslim.compress.stylegan2 import (
    SlicedSubGenerator,
    channel_importance,
    extract_stylegan2_subnet,
    sort_stylegan2_channels,
)

__all__ = ["DEFAULT_RATIOS", "SearchSpace", "SlicedSubGenerator", "channel_importance", "extract_stylegan2_subnet",
           "extract_subnet", "sort_stylegan2_channels"]
