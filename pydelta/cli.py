"""The ``pydelta`` command line: signature, delta, patch, info, sync, and the
model store's push, pull and ls.

The commands mirror rdiff: an omitted output or ``-`` is standard output,
``-`` as an input is standard input. Each command parses its arguments,
calls the library once and turns any error into one line on standard
error, ``pydelta: error: <message>``, with a distinct exit status per kind
of failure (:data:`._cliutil.EXIT_CODES_HELP`). Progress bars (tqdm) live
in :mod:`._cliutil` only.

This module is the typer application: help, usage errors, completion, the
store's verbs. The file and sync verbs are declared once, as data, in the
option table (:mod:`._cliopts`, :mod:`._cli_sync`) and registered here from
it; their common command lines skip typer altogether (:mod:`._cliparse`,
called by :mod:`pydelta.__main__`).
"""

from typing import Annotated, Optional

import typer

from . import _cli_store
from ._cli_sync import SYNC
from ._cli_typer import add_verb
from ._cliopts import FILE_VERBS, PIPELINE_EXAMPLE
from ._cliutil import EXIT_CODES_HELP, PROGRESS_THRESHOLD, error
from ._version import version_line

# The library is imported inside each command, not here: a command loads
# only what it runs, and --help/--version none of it (issue 13.4).

__all__ = ["PROGRESS_THRESHOLD", "app", "main", "version_line"]

_MAIN_HELP = f"""rsync-style binary deltas for very large files.

The receiver makes a small signature of its old file; the sender scans the
new file against it and writes a delta of copy and literal instructions;
the receiver patches its old file with the delta into the new file, which
is verified against a BLAKE3 digest before it replaces anything.

An omitted output or '-' means standard output; '-' as an input means
standard input.

\b
Example:
  pydelta signature old.bin old.sig          # on the receiver
  pydelta delta old.sig new.bin new.delta    # on the sender
  pydelta patch old.bin new.delta old.bin    # on the receiver, in place

\b
Example, updating a remote file over ssh without a temporary file:
  {PIPELINE_EXAMPLE}

{EXIT_CODES_HELP}

Shell completion: pydelta --install-completion (bash, zsh, fish), or
print the script with --show-completion.
"""

app = typer.Typer(
    name="pydelta",
    help=_MAIN_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version_callback,
            is_eager=True,
            help="Print the version, the kernel backend and its SIMD level, and exit.",
        ),
    ] = False,
) -> None:
    pass


# -- commands ----------------------------------------------------------------

for _verb in (*FILE_VERBS, SYNC):
    add_verb(app, _verb)


@app.command(hidden=True)
def serve() -> None:
    """Serve the sync protocol on standard input and output (run by 'pydelta sync' over ssh)."""
    from .sync.server import serve_main

    code = serve_main()
    if code:
        raise typer.Exit(code)


def main(argv: Optional[list] = None) -> None:
    """Entry point of the ``pydelta`` script."""
    try:
        app(args=argv, prog_name="pydelta")
    except KeyboardInterrupt:
        raise error("interrupted", 130) from None


# The model store's commands (push, pull, ls, mirror, tag, diff, gc) live in
# their own module; registered here, after the verbs, in the order they show.
for _name, _kwargs, _fn in _cli_store.COMMANDS:
    app.command(_name, **_kwargs)(_fn)
