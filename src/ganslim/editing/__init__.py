"""Editing with a StyleGAN2 generator (Anycost GAN's loop): :mod:`.encoder` (image -> W+, ``ganslim train encoder``)
and :mod:`.projection` (W+ optimised to reconstruct a photo, ``ganslim project``)."""

from ganslim.editing.encoder import Encoder, load_encoder
from ganslim.editing.projection import project

__all__ = ["Encoder", "load_encoder", "project"]
