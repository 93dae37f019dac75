"""ESRGAN (Wang et al. 2018), BasicSR's recipe: train an RRDBNet super-resolution teacher in two runs.

* :mod:`.config` - :class:`ESRGANConfig` (both stages) and BasicSR's values for the stage-dependent options;
* :mod:`.method` - the PSNR-oriented stage (:class:`ESRGANPSNR`, L1), the adversarial stage (:class:`ESRGAN`:
  L1, VGG19 perceptual, RaGAN with BasicSR's VGG-style discriminator, EMA) and their exports.
"""

from ganslim.methods.esrgan.config import GAN, PSNR, STAGES, ESRGANConfig, resolve_defaults
from ganslim.methods.esrgan.method import ESRGAN, ESRGANPSNR, esrgan_method, load_init, run_esrgan

__all__ = ["ESRGAN", "ESRGANConfig", "ESRGANPSNR", "GAN", "PSNR", "STAGES", "esrgan_method", "load_init",
           "resolve_defaults", "run_esrgan"]
