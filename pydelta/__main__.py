"""``python -m pydelta`` and the ``pydelta`` command.

``pydelta serve`` (the far end of ``pydelta sync``, started over ssh for
every sync), ``pydelta --version`` and the common command lines of the file
and sync verbs (those the fast parser, :mod:`pydelta._cliparse`, fully
understands) run without loading the command-line layer (typer, click,
rich): that saves most of the start-up. Everything else - help, errors,
completion, the store's verbs - goes to :mod:`pydelta.cli` (typer).

The library reports through the ``pydelta`` logger (for instance the notice
that the C core is missing and the numba backend stands in). It is set up
here, before the library is imported, so that ``-q``/``--quiet`` silences
warnings from the start: one line each on stderr, ``pydelta: warning: ...``.
"""

import sys
from typing import TYPE_CHECKING, List

if TYPE_CHECKING:
    import logging


def _formatter() -> "logging.Formatter":
    """One line per record: ``pydelta: warning: ...``."""
    import logging

    class _Format(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            text = " ".join(record.getMessage().split())
            if record.levelno >= logging.WARNING:
                return f"pydelta: {record.levelname.lower()}: {text}"
            return f"pydelta: {text}"

    return _Format()


def setup_logging(argv: List[str]) -> None:
    """Send the ``pydelta`` logger's records to stderr, one line each:
    warnings and errors by default, errors only with ``-q``/``--quiet``."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    quiet = any(
        a == "--quiet" or (a[:1] == "-" and a[1:2] != "-" and a[1:].isalpha() and "q" in a)
        for a in args
    )
    import logging

    logger = logging.getLogger("pydelta")
    if any(getattr(h, "_pydelta_cli", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter())
    handler._pydelta_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR if quiet else logging.WARNING)
    logger.propagate = False


def main() -> None:
    """Entry point of the ``pydelta`` script."""
    args = sys.argv[1:]
    if args in (["--version"], ["-V"]):  # without the command-line layer (typer)
        from pydelta._version import version_line

        sys.stdout.write(version_line() + "\n")
        sys.stdout.flush()
        sys.exit(0)
    setup_logging(args)
    if args == ["serve"]:
        from pydelta.sync.server import serve_main

        sys.exit(serve_main())
    from pydelta._cliparse import parse

    parsed = parse(args)
    if parsed is None:
        from pydelta.cli import main as cli_main

        cli_main()
        return
    from pydelta._cliopts import invoke

    try:
        invoke(*parsed)
    except KeyboardInterrupt:
        from pydelta._cliutil import error

        raise error("interrupted", 130) from None
    sys.exit(0)


def run() -> None:
    """The ``pydelta`` script (and ``python -m pydelta``): :func:`main`, then
    a shorter interpreter exit.

    When a command ends, its work is done and every output closed: what is
    left is Python's own finalization, whose garbage collections traverse
    every object the command's imports made (typing, the kernels' wrappers,
    sync's layers): 5-18 ms of CPU of the common commands' 55-90 (the
    cases of ``bench/startup.py``, best runs). :func:`gc.freeze` moves
    those objects out of the collector's sight first; they are freed as the
    modules are cleared, as always (only unreachable cycles are left to the
    operating system, whose ``__del__`` Python never promises to run at
    exit). Not in :func:`main`, which tests and embedders call in their own
    process.
    """
    try:
        main()
    finally:
        import gc

        gc.freeze()


if __name__ == "__main__":
    run()
