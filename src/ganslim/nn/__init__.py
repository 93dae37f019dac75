"""Building blocks shared by the architectures (norm layers, weight init, ...)."""

from ganslim.nn.conv import OutputConv2d
from ganslim.nn.norms import INIT_TYPES, NORMS, InstanceNorm2d, check_norm, conv_bias, init_weights, make_norm

__all__ = ["INIT_TYPES", "NORMS", "InstanceNorm2d", "OutputConv2d", "check_norm", "conv_bias", "init_weights",
           "make_norm"]
