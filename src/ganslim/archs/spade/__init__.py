"""Label-map generators: ``spade`` (NVlabs/SPADE's GauGAN generator, every option), its presets
``spade_cityscapes`` and ``spade_coco``, and GAN Compression's ``mobile_spade`` student and its once-for-all supernet
``super_mobile_spade``."""

from ganslim.archs.spade.generator import SPADE, SPADEGenerator, SPADELayout, SPADEResnetBlock, semantic_channels
from ganslim.archs.spade.mobile import MobileSPADEGenerator
from ganslim.archs.spade.super_mobile import SuperMobileSPADEGenerator

__all__ = ["SPADE", "SPADEGenerator", "SPADELayout", "SPADEResnetBlock", "MobileSPADEGenerator",
           "SuperMobileSPADEGenerator", "semantic_channels"]
