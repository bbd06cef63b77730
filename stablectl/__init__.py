"""stablectl: keep a stable mirror of an upstream project."""

__version__ = "0.1.0"
