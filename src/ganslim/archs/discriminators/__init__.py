"""Discriminators: PatchGAN (``basic``, ``n_layers``), the 1x1 ``pixel`` discriminator and BasicSR's
``vgg_style`` (SRGAN / ESRGAN, a fixed 128 or 256-pixel input). Importing this package registers them."""

from ganslim.archs.discriminators import patchgan, vgg_style

__all__ = ["patchgan", "vgg_style"]
