"""Discriminators: PatchGAN (``basic``, ``n_layers``), the 1x1 ``pixel`` discriminator, BasicSR's
``vgg_style`` (SRGAN / ESRGAN, a fixed 128 or 256-pixel input) and SPADE's ``multiscale`` PatchGAN. Importing this
package registers them."""

from ganslim.archs.discriminators import multiscale, patchgan, vgg_style

__all__ = ["multiscale", "patchgan", "vgg_style"]
