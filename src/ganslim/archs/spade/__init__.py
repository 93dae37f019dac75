"""Label-map generators: ``spade`` (NVlabs/SPADE's GauGAN generator, every option) and its presets
``spade_cityscapes`` and ``spade_coco``."""

from ganslim.archs.spade.generator import SPADE, SPADEGenerator, SPADEResnetBlock, semantic_channels

__all__ = ["SPADE", "SPADEGenerator", "SPADEResnetBlock", "semantic_channels"]
