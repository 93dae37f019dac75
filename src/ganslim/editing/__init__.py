"""Editing with a StyleGAN2 generator (Anycost GAN's loop): :mod:`.encoder` (image -> W+, ``ganslim train encoder``)."""

from ganslim.editing.encoder import Encoder, load_encoder

__all__ = ["Encoder", "load_encoder"]
