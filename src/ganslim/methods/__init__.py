"""Training methods, one module each, registered by name for ``ganslim train METHOD``.

A method is a class following :class:`ganslim.engine.Method`; ``METHODS.get(name)`` returns the class and
``cls.Config`` its config dataclass. Registered here: ``pix2pix`` and ``cyclegan`` (teachers).
"""

from __future__ import annotations

from ganslim.methods.teachers import CycleGAN, CycleGANConfig, ImagePool, Pix2Pix, Pix2PixConfig
from ganslim.registry import Registry

METHODS: Registry = Registry("training method")
for _method in (Pix2Pix, CycleGAN):
    METHODS.register(_method.name)(_method)

__all__ = ["METHODS", "CycleGAN", "CycleGANConfig", "ImagePool", "Pix2Pix", "Pix2PixConfig"]
