"""Statistics for recognizability studies: reads tidy trials, returns tidy results (no Flask)."""

__version__ = "0.1.0"
