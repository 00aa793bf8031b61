"""Command-line options shared by the command modules (typer annotations).

Only the CLI modules import this; the library never does.
"""

from typing import Annotated, Optional

import typer

ProgressOpt = Annotated[
    Optional[bool],
    typer.Option(
        "--progress/--no-progress",
        help="Show a progress bar on stderr. Default: on when stderr is a "
        "terminal and the input is at least 64 MiB.",
        show_default=False,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print nothing on stderr but errors (no progress bar)."),
]
