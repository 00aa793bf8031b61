"""pydelta's version (one place, read by the package, the CLI and sync's hello)."""

__version__ = "0.1.0"


def version_line() -> str:
    """``pydelta X.Y.Z (backend c: blake3 avx2, blake2b avx2)``: the version,
    the kernels in use and their SIMD level (or why there are none).

    What ``pydelta --version`` prints; it loads the backend (to name it)
    and nothing else of the package.
    """
    from .backends import backend, fallback, simd, unavailable

    name = getattr(backend, "NAME", "none")
    if unavailable:
        detail = unavailable
    elif name == "c":
        detail = f"backend c: {simd()}"
    else:
        detail = f"backend {name}" + (f": {fallback}" if fallback else "")
    return f"pydelta {__version__} ({detail})"
