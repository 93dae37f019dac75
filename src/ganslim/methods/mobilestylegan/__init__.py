"""MobileStyleGAN (Belousov 2021): a StyleGAN2 teacher distilled into a wavelet-domain student from sampled z alone,
``ganslim compress mobilestylegan``.

* :mod:`.config` - :class:`MobileStyleGANConfig` (the reference's defaults, gradient clipping on);
* :mod:`.loss` - the multi-scale pixel / wavelet terms and the VGG16 perceptual term;
* :mod:`.method` - :class:`MobileStyleGAN`, the engine method (teacher, student, GAN with lazy R1, validation by
  fidelity to the teacher or KID, exports).
"""

from ganslim.methods.mobilestylegan.config import MobileStyleGANConfig
from ganslim.methods.mobilestylegan.loss import PerceptualL1, multiscale_terms, teacher_target
from ganslim.methods.mobilestylegan.method import MobileStyleGAN, ValidationLatents, load_teacher

__all__ = ["MobileStyleGAN", "MobileStyleGANConfig", "PerceptualL1", "ValidationLatents", "load_teacher",
           "multiscale_terms", "teacher_target"]
