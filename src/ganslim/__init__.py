"""ganslim: make image generators small and fast enough for laptops and phones."""

__version__ = "0.1.0"
