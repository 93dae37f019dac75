"""GAN Compression (Li et al., CVPR 2020): distil a once-for-all supernet from a pix2pix / CycleGAN teacher,
search it under a MACs or latency budget without retraining, fine-tune the chosen sub-network, export it.

* :mod:`.distill` - the two training methods (``gan-compression-supernet``, ``gan-compression-finetune``)
  and their :class:`DistillConfig`;
* :mod:`.search` - evaluating sub-networks on held-out training images, exhaustive / evolutionary search;
* :mod:`.pipeline` - all stages in one resumable run folder (``ganslim compress gan-compression``).
"""

from ganslim.methods.gan_compression.distill import (
    DistillConfig,
    ElasticFeatureDistillation,
    FinetuneDistillation,
    SupernetDistillation,
    distill_layers,
    resolve_defaults,
)

__all__ = [
    "DistillConfig",
    "ElasticFeatureDistillation",
    "FinetuneDistillation",
    "SupernetDistillation",
    "distill_layers",
    "resolve_defaults",
]
