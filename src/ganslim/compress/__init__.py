"""Surgery without training: channel search spaces, sub-network extraction from once-for-all supernets, their
predicted cost and the search over them under a budget (:mod:`.search`).

Training (distillation, once-for-all steps, fine-tuning) and what scores a candidate live in ``ganslim.methods``;
this package only reshapes networks, predicts their cost and searches.
"""

from ganslim.compress.extract import extract_subnet
from ganslim.compress.space import DEFAULT_RATIOS, SearchSpace

__all__ = ["DEFAULT_RATIOS", "SearchSpace", "extract_subnet"]
