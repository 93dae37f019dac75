"""StyleGAN2 (Karras et al. 2020) with rosinality/stylegan2-pytorch's training recipe: ``ganslim train stylegan2``.

* :mod:`.config` - :class:`StyleGAN2Config` (rosinality's defaults; the length in kimg);
* :mod:`.method` - :class:`StyleGAN2`, the engine method (losses, lazy regularisation, mixing, DiffAugment, FID,
  exports in ganslim's and rosinality's layouts).
"""

from ganslim.methods.stylegan2.config import StyleGAN2Config, discriminator_kwargs, generator_kwargs
from ganslim.methods.stylegan2.method import StyleGAN2, draw_latents, mixed_w_plus, require_one_batch, rosinality_state

__all__ = ["StyleGAN2", "StyleGAN2Config", "discriminator_kwargs", "draw_latents", "generator_kwargs",
           "mixed_w_plus", "require_one_batch", "rosinality_state"]
