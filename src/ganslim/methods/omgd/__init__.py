"""OMGD (Ren et al., ICCV 2021): online multi-granularity distillation of a compact generator in one stage
(see :mod:`.method`)."""

from ganslim.methods.omgd.method import (
    OMGD,
    OMGDConfig,
    OMGDStudentLoss,
    OMGDUnpaired,
    load_omgd_vgg,
    omgd_method,
    resolve_defaults,
    student_ngf,
    student_spec,
)

__all__ = ["OMGD", "OMGDConfig", "OMGDStudentLoss", "OMGDUnpaired", "load_omgd_vgg", "omgd_method",
           "resolve_defaults", "student_ngf", "student_spec"]
