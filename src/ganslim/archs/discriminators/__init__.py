"""Discriminators: PatchGAN (``basic``, ``n_layers``) and the 1x1 ``pixel`` discriminator. Importing this package
registers them."""

from ganslim.archs.discriminators import patchgan

__all__ = ["patchgan"]
