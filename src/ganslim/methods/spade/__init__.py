"""SPADE (GauGAN, Park et al. 2019), NVlabs' recipe: train a label-map -> image teacher.

* :mod:`.config` - :class:`SPADEConfig` and the generator / discriminator it describes (defaults from a preset);
* :mod:`.method` - :class:`SPADETeacher` (hinge GAN with the multi-scale discriminator, feature matching, VGG19,
  TTUR) and its exports.
"""

from ganslim.methods.spade.config import SPADEConfig, generator_kwargs, resolve_defaults
from ganslim.methods.spade.method import SPADETeacher, add_spectral_norm, parameter_free_norms, run_spade

__all__ = ["SPADEConfig", "SPADETeacher", "add_spectral_norm", "generator_kwargs", "parameter_free_norms",
           "resolve_defaults", "run_spade"]
