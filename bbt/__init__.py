"""bbt: monitoring for 班班通 classroom PCs."""
__version__ = "0.1.0"
