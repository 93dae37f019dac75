"""Surgery without training: channel search spaces and sub-network extraction from once-for-all supernets.

Training (distillation, once-for-all steps, search, fine-tuning) lives in ``ganslim.methods``; this package
only reshapes networks and predicts their cost.
"""

from ganslim.compress.extract import extract_subnet
from ganslim.compress.space import DEFAULT_RATIOS, SearchSpace

__all__ = ["DEFAULT_RATIOS", "SearchSpace", "extract_subnet"]
