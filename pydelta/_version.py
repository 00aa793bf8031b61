"""pydelta's version (one place, read by the package, the CLI and sync's hello)."""

__version__ = "0.1.0"
