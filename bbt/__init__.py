"""bbt: monitoring for 班班通 classroom PCs (the command line; the version lives in common)."""
from common import __version__

__all__ = ["__version__"]
