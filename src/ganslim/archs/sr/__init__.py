"""Super-resolution generators: ``rrdbnet`` (ESRGAN's RRDBNet, BasicSR's layout and key names)."""

from ganslim.archs.sr.rrdbnet import RRDB, SR_SCALES, ResidualDenseBlock, RRDBNet

__all__ = ["RRDB", "RRDBNet", "ResidualDenseBlock", "SR_SCALES"]
