"""OMGD (Ren et al., ICCV 2021): online multi-granularity distillation of a compact generator in one stage.

* :mod:`.config` - :class:`OMGDConfig` and OMGD's values for its ``auto`` options;
* :mod:`.teachers` - the wide and deep teachers described from the student, and the distilled layers;
* :mod:`.loss` - the student's objective;
* :mod:`.method` - the methods (:class:`OMGD` on paired data, :class:`OMGDUnpaired`) and their exports.
"""

from ganslim.methods.omgd.config import OMGDConfig, resolve_defaults, student_ngf, student_spec
from ganslim.methods.omgd.loss import OMGDStudentLoss, load_omgd_vgg
from ganslim.methods.omgd.method import OMGD, OMGDUnpaired, omgd_method

__all__ = ["OMGD", "OMGDConfig", "OMGDStudentLoss", "OMGDUnpaired", "load_omgd_vgg", "omgd_method",
           "resolve_defaults", "student_ngf", "student_spec"]
