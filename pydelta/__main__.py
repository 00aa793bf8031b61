"""``python -m pydelta`` and the ``pydelta`` command.

``pydelta serve`` (the far end of ``pydelta sync``, started over ssh for
every sync) runs without loading the command-line layer: that saves about
0.2 s of start-up per sync. Everything else goes to :mod:`pydelta.cli`.

The library reports through the ``pydelta`` logger (for instance the notice
that the C core is missing and the numba backend stands in). It is set up
here, before the library is imported, so that ``-q``/``--quiet`` silences
warnings from the start: one line each on stderr, ``pydelta: warning: ...``.
"""

import logging
import sys
from typing import List


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        if record.levelno >= logging.WARNING:
            return f"pydelta: {record.levelname.lower()}: {text}"
        return f"pydelta: {text}"


def setup_logging(argv: List[str]) -> None:
    """Send the ``pydelta`` logger's records to stderr, one line each:
    warnings and errors by default, errors only with ``-q``/``--quiet``."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    quiet = any(
        a == "--quiet" or (a[:1] == "-" and a[1:2] != "-" and a[1:].isalpha() and "q" in a)
        for a in args
    )
    logger = logging.getLogger("pydelta")
    if any(getattr(h, "_pydelta_cli", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    handler._pydelta_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR if quiet else logging.WARNING)
    logger.propagate = False


def main() -> None:
    """Entry point of the ``pydelta`` script."""
    setup_logging(sys.argv[1:])
    if sys.argv[1:] == ["serve"]:
        from pydelta.sync.server import serve_main

        sys.exit(serve_main())
    from pydelta.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
