"""The ``pydelta`` command line: signature, delta, patch and info.

The commands mirror rdiff: an omitted output or ``-`` is standard output,
``-`` as an input is standard input. Each command parses its arguments,
calls the library once and turns any error into one line on standard
error, ``pydelta: error: <message>``, with exit status 1 (2 for usage
errors, 130 when interrupted). Progress bars (tqdm) live here only.
"""

import errno
import os
import stat
import sys
import warnings
from typing import Annotated, Callable, Optional, TypeVar

import typer

from ._version import __version__
from .errors import PydeltaError, SyncError, UnverifiedWarning
from .errors import message as error_message
from .formats import DELTA, sniff
from .formats import native as fmt
from .results import DeltaStats
from .sync import SyncReport, SyncStatus
from .delta import delta as make_delta
from .info import info as describe_file
from .patch import patch as apply_patch
from .signature import signature as make_signature
from .sync.client import sync as run_sync
from .sync.server import serve_main

__all__ = ["app", "main"]

T = TypeVar("T")

#: Inputs at least this large get a progress bar by default (when stderr is a terminal).
PROGRESS_THRESHOLD = 64 << 20

PIPELINE_EXAMPLE = "ssh host pydelta signature f | pydelta delta - f.new | ssh host pydelta patch f - f"

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
"""

app = typer.Typer(
    name="pydelta",
    help=_MAIN_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# -- errors ------------------------------------------------------------------


class _Failure(Exception):
    """An error found by the CLI itself (before the library runs)."""


def _error(message: str, code: int = 1) -> "typer.Exit":
    """Print the one-line error message and return the Exit to raise."""
    line = " ".join(str(message).split()) or "unknown error"
    try:
        sys.stderr.write(f"pydelta: error: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    return typer.Exit(code)


def _is_broken_pipe(exc: BaseException) -> bool:
    """True if exc is (or was caused by) EPIPE: the reader of our output went away.

    A sync's broken connection (EPIPE on the pipe to ssh) is not that: it
    has its own message.
    """
    seen = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, SyncError):
            return False
        if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE):
            return True
        e = e.__cause__ or e.__context__
    return False


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so flushing at exit cannot raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _run(action: Callable[[], T]) -> T:
    """Run one library call, translating every failure into one stderr line."""
    try:
        return action()
    except KeyboardInterrupt:
        raise _error("interrupted", 130) from None
    except _Failure as e:
        raise _error(str(e)) from None
    except PydeltaError as e:
        if _is_broken_pipe(e):
            _silence_stdout()
            raise typer.Exit(1) from None
        raise _error(str(e)) from None
    except OSError as e:
        if _is_broken_pipe(e):
            _silence_stdout()
            raise typer.Exit(1) from None
        raise _error(error_message(e)) from None
    except MemoryError as e:
        raise _error(str(e) or "out of memory") from None
    except Exception as e:  # a bug: still one line, unless debugging
        if os.environ.get("PYDELTA_DEBUG"):
            raise
        raise _error(
            f"internal error: {type(e).__name__}: {e} "
            "(please report it; set PYDELTA_DEBUG=1 to see the traceback)"
        ) from None


# -- checks before the library runs ------------------------------------------


def _is_stdio(arg: Optional[str]) -> bool:
    return arg is None or arg == "-"


def _refuse_terminal(out: Optional[str], what: str) -> None:
    """Fail if binary output would go to standard output and that is a terminal."""
    if not _is_stdio(out):
        return
    if sys.stdout is None:
        raise _Failure(f"standard output is closed; give an output file for the {what}")
    try:
        tty = sys.stdout.isatty()
    except (OSError, ValueError):
        tty = False
    if tty:
        raise _Failure(
            f"refusing to write binary {what} to a terminal; "
            "give an output file or redirect stdout"
        )


def _one_stdin(a: str, a_name: str, b: str, b_name: str) -> None:
    if a == "-" and b == "-":
        raise _Failure(f"{a_name} and {b_name} cannot both be standard input")


# -- progress ----------------------------------------------------------------


def _input_size(arg: Optional[str]) -> Optional[int]:
    """Size of the regular file named by arg ('-': standard input), else None."""
    try:
        if arg is None or arg == "-":
            st = os.fstat(sys.stdin.fileno())
        else:
            st = os.stat(arg)
    except (OSError, ValueError, AttributeError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _delta_result_size(arg: str) -> Optional[int]:
    """The result size a delta file announces in its end record, or None.

    Only to size the progress bar of ``patch``; the library checks the
    delta itself.
    """
    if arg == "-":
        return None
    try:
        with open(arg, "rb") as fh:
            if sniff(fh.read(4)) != DELTA:
                return None
            fh.seek(0, os.SEEK_END)
            if fh.tell() < fmt.DELTA_HEADER.size + fmt.END_LEN:
                return None
            fh.seek(-fmt.END_LEN, os.SEEK_END)
            tail = fh.read(fmt.END_LEN)
    except (OSError, ValueError):
        return None
    try:
        op = fmt.read_op(tail, 0, len(tail))
    except fmt.BadInstruction:
        return None
    return op.a if op is not None and op.code == fmt.OP_END else None


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):
        return False


def _want_progress(flag: Optional[bool], quiet: bool, size: Optional[int]) -> bool:
    if quiet:
        return False
    if flag is not None:
        return flag
    return _stderr_is_tty() and size is not None and size >= PROGRESS_THRESHOLD


def _stderr_shape() -> tuple:
    """(columns, lines) of the terminal on stderr; 0 where unknown or reported as 0."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return 0, 0
    return size.columns, size.lines


class _Bar:
    """A tqdm bar fed by the library's cumulative byte counts."""

    def __init__(self, enabled: bool, total: Optional[int], desc: str) -> None:
        self.bar = None
        self.last = 0
        if enabled:
            from tqdm import tqdm

            # follow the terminal's width; but tqdm hides the bar of a terminal
            # that reports a size of 0 (a bare pty, a serial console)
            cols, lines = _stderr_shape()
            self.bar = tqdm(
                total=total,
                desc=desc,
                unit="B",
                unit_scale=True,
                file=sys.stderr,
                dynamic_ncols=bool(cols),
                ncols=None if cols else 80,
                nrows=lines or 24,
                leave=True,
            )

    @property
    def callback(self) -> Optional[Callable[[int], None]]:
        return self.update if self.bar is not None else None

    def update(self, done: int) -> None:
        if self.bar is not None and done > self.last:
            self.bar.update(done - self.last)
            self.last = done

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):
                pass


# -- options shared by the verbs ---------------------------------------------

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
ThreadsOpt = Annotated[
    int,
    typer.Option(
        "--threads",
        "-j",
        min=0,
        help="Threads to use; 0 (the default) means all cores. The output is the "
        "same for any count.",
    ),
]
FsyncOpt = Annotated[
    bool,
    typer.Option(
        "--fsync/--no-fsync",
        help="fsync the result before it replaces OUT, so a crash cannot leave a "
        "partial file (default: on).",
    ),
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pydelta {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    pass


# -- commands ----------------------------------------------------------------


@app.command(
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta signature big.img big.img.sig\n"
    "  ssh host pydelta signature big.img > big.img.sig",
)
def signature(
    old: Annotated[
        str, typer.Argument(metavar="OLD", help="The old file (the basis); '-' reads standard input.")
    ],
    sig: Annotated[
        Optional[str],
        typer.Argument(metavar="SIG", help="Where to write the signature; omitted or '-' is standard output."),
    ] = None,
    block_size: Annotated[
        Optional[int],
        typer.Option(
            "--block-size",
            "-b",
            help="Block length in bytes (1..67108864). Default: from the size of OLD "
            "(square root rule, 1 KiB..1 MiB; 32 KiB for a pipe; with --format rdiff, "
            "librsync's rule).",
            show_default=False,
        ),
    ] = None,
    strong_len: Annotated[
        Optional[int],
        typer.Option(
            "--strong-len",
            "-S",
            help="Bytes of strong hash kept per block: 8..32 of BLAKE3, default 16. "
            "With --format rdiff as rdiff's -S: 1..32 (1..16 for MD4), default and 0 the "
            "maximum, -1 librsync's minimum.",
            show_default=False,
        ),
    ] = None,
    sig_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="native (pydelta's own, verified) or rdiff (librsync's format, what "
            "'rdiff signature' writes, for rdiff/librsync peers).",
        ),
    ] = "native",
    rollsum: Annotated[
        str,
        typer.Option(
            "--rollsum",
            "-R",
            help="Rolling sum of an rdiff signature: rabinkarp (rdiff's default) or rollsum.",
        ),
    ] = "rabinkarp",
    strong_hash: Annotated[
        str,
        typer.Option(
            "--hash",
            "-H",
            help="Strong hash of an rdiff signature: blake2 (rdiff's default) or md4 (legacy).",
        ),
    ] = "blake2",
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
    threads: ThreadsOpt = 0,
) -> None:
    """Write the signature of OLD to SIG.

    The signature is small (about 24 bytes per block) and is all the sender
    needs to make a delta against OLD. With --format rdiff it is a librsync
    signature, byte for byte what 'rdiff signature' writes with the same
    -b/-S/-H/-R options; 'pydelta delta' and 'rdiff delta' both accept it.
    """

    def action() -> None:
        _refuse_terminal(sig, "signature")
        if sig_format not in ("native", "rdiff"):
            raise _Failure(f"unknown --format {sig_format!r}: use native or rdiff")
        if sig_format == "native" and (rollsum != "rabinkarp" or strong_hash != "blake2"):
            raise _Failure("--rollsum and --hash apply to --format rdiff only")
        size = _input_size(old)
        with _Bar(_want_progress(progress, quiet, size), size, "signature") as bar:
            make_signature(
                old,
                "-" if sig is None else sig,
                block_size=block_size,
                strong_len=strong_len,
                progress=bar.callback,
                threads=threads,
                format=sig_format,
                rdiff_weak=rollsum,
                rdiff_hash=strong_hash,
            )

    _run(action)


def _summary(stats: "DeltaStats") -> str:
    def pct(part: int) -> str:
        return f"{100.0 * part / stats.new_size:.1f}%" if stats.new_size else "0.0%"

    zlit = getattr(stats, "compressed_literal", 0)
    ztext = f" ({zlit} of them compressed to {stats.compressed_size})" if zlit else ""
    return (
        f"pydelta: new {stats.new_size} bytes, copied {stats.copied} ({pct(stats.copied)}), "
        f"literal {stats.literal} ({pct(stats.literal)}){ztext}, delta {stats.delta_size} bytes"
    )


@app.command(
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta delta old.sig new.bin new.delta\n"
    f"  {PIPELINE_EXAMPLE}",
)
def delta(
    sig: Annotated[
        str, typer.Argument(metavar="SIG", help="Signature of the old file; '-' reads standard input.")
    ],
    new: Annotated[str, typer.Argument(metavar="NEW", help="The new file; '-' reads standard input.")],
    delta_out: Annotated[
        Optional[str],
        typer.Argument(
            metavar="DELTA",
            help="Where to write the delta; omitted or '-' is standard output.",
            show_default=False,
        ),
    ] = None,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
    threads: ThreadsOpt = 0,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Print a one-line summary on stderr: new size, bytes copied and "
            "literal, delta size.",
        ),
    ] = False,
    compress: Annotated[
        Optional[bool],
        typer.Option(
            "--compress/--no-compress",
            help="Send literal data zstd-compressed where that saves at least 3%, "
            "per literal: plain or with the bytes of 16-bit values grouped (float16/"
            "bfloat16), whichever is smaller. Default: on if the zstandard package is "
            "installed. --no-compress writes deltas that older pydelta versions read.",
            show_default=False,
        ),
    ] = None,
    level: Annotated[
        int,
        typer.Option("--level", min=1, max=22, help="zstd compression level (1..22)."),
    ] = 3,
) -> None:
    """Write the delta that turns the file SIG was made from into NEW.

    NEW is read once, front to back, so it may be a pipe. If SIG is an rdiff
    (librsync) signature, DELTA is a librsync delta that 'rdiff patch' applies.
    """

    def action() -> None:
        _one_stdin(sig, "SIG", new, "NEW")
        _refuse_terminal(delta_out, "delta")
        size = _input_size(new)
        with _Bar(_want_progress(progress, quiet, size), size, "delta") as bar:
            stats = make_delta(
                sig,
                new,
                "-" if delta_out is None else delta_out,
                progress=bar.callback,
                threads=threads,
                compress=compress,
                level=level,
            )
        if verbose and not quiet:
            sys.stderr.write(_summary(stats) + "\n")
            sys.stderr.flush()

    _run(action)


@app.command(
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta patch old.bin new.delta new.bin\n"
    "  pydelta patch big.img big.img.delta big.img     # in place\n"
    f"  {PIPELINE_EXAMPLE}",
)
def patch(
    old: Annotated[
        str,
        typer.Argument(
            metavar="OLD",
            help="The old file the signature was made from (a regular file: it is read "
            "at random offsets; '-' only if standard input is redirected from a file)."
        ),
    ],
    delta_in: Annotated[
        str,
        typer.Argument(metavar="DELTA", help="The delta; '-' reads standard input."),
    ],
    out: Annotated[
        Optional[str],
        typer.Argument(
            metavar="OUT",
            help="Where to write the result; omitted or '-' is standard output. "
            "May be OLD itself: it is replaced only once the result is verified."
        ),
    ] = None,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
    fsync: FsyncOpt = True,
) -> None:
    """Apply DELTA to OLD and write the verified result to OUT.

    A result written to a file appears (atomically) only after its size and
    BLAKE3 digest match the delta's; on any error an existing OUT is left
    as it was. An rdiff (librsync) delta is applied too, but it carries no
    digest: its result cannot be verified, and a warning says so (unless
    --quiet).
    """

    def action() -> None:
        _one_stdin(old, "OLD", delta_in, "DELTA")
        _refuse_terminal(out, "result")
        # the bar counts result bytes; "large" goes by the bigger of result and OLD
        total = _delta_result_size(delta_in)
        basis_size = _input_size(old)
        known = [s for s in (total, basis_size) if s is not None]
        on = _want_progress(progress, quiet, max(known) if known else None)
        with _Bar(on, total, "patch") as bar, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnverifiedWarning)
            apply_patch(
                sys.stdin.buffer if old == "-" else old,
                delta_in,
                "-" if out is None else out,
                progress=bar.callback,
                fsync=fsync,
            )
        for w in caught:  # an rdiff delta: say the result is unverified
            if not issubclass(w.category, UnverifiedWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            elif not quiet:
                sys.stderr.write(f"pydelta: warning: {w.message}\n")
                sys.stderr.flush()

    _run(action)


@app.command(
    no_args_is_help=True,
    epilog="\b\nExample:\n  pydelta info old.sig\n  pydelta info new.delta",
)
def info(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="A pydelta or rdiff (librsync) signature or delta; '-' reads standard input.",
        ),
    ],
) -> None:
    """Describe what a signature or delta holds (block size, sizes, digests)."""

    def action() -> None:
        text = str(describe_file(file))
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    _run(action)


class _SyncBars:
    """Two tqdm bars for a sync: all files, and the file moving now."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.total: Optional[_Bar] = None
        self.file: Optional[_Bar] = None
        self.path: Optional[str] = None
        self.label = ""
        self.phase = "delta"

    def update(self, st: "SyncStatus") -> None:
        if not self.enabled:
            return
        if self.total is None:
            self.total = _Bar(True, st.total, "total")
        if st.path != self.path:
            if self.file is not None:
                self.file.__exit__(None, None, None)
            self.label = st.path if len(st.path) <= 30 else "..." + st.path[-27:]
            self.file = _Bar(True, st.file_size, self.label)
            self.path = st.path
            self.phase = "delta"
        assert self.file is not None and self.file.bar is not None
        if st.phase != self.phase:  # e.g. "model.bin (signature)" while the far end hashes
            self.phase = st.phase
            self.file.bar.set_description(self.label if st.phase == "delta" else f"{self.label} ({st.phase})")
        self.file.update(st.file_done)
        self.total.update(st.done)

    @property
    def callback(self) -> Optional[Callable[["SyncStatus"], None]]:
        return self.update if self.enabled else None

    def __enter__(self) -> "_SyncBars":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for bar in (self.file, self.total):
            if bar is not None:
                bar.__exit__(exc_type, exc, tb)


def _print_report(report: "SyncReport", verbose: bool, quiet: bool) -> None:
    for f in report.files:
        if f.action == "skipped" and not quiet:
            sys.stderr.write(f"pydelta: skipped {f.path}: {f.message}\n")
        elif f.action == "failed":
            sys.stderr.write(f"pydelta: failed {f.path}: {' '.join(f.message.split())}\n")
        elif (verbose or report.dry_run) and not quiet:
            wire = f"  (sent {f.sent:,}, received {f.received:,})" if f.action != "deleted" and not report.dry_run else ""
            sys.stdout.write(f"{f.action:<9} {f.path}{wire}\n")
    sys.stderr.flush()
    if not quiet:
        sys.stdout.write(report.summary() + "\n")
        sys.stdout.flush()


@app.command(
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta sync model.safetensors gpu1:/models/model.safetensors   # push one file\n"
    "  pydelta sync llama-7b gpu1:/models/llama-7b --delete           # push a folder\n"
    "  pydelta sync -e 'ssh -p 2222 -i key' me@gpu1:ckpt/ ./ckpt      # pull\n"
    "  pydelta sync --remote-cmd '~/venv/bin/pydelta' model.bin gpu1:model.bin",
)
def sync(
    src: Annotated[str, typer.Argument(metavar="SRC", help="What to copy: a file or folder, local or [user@]host:path.")],
    dest: Annotated[str, typer.Argument(metavar="DEST", help="What it becomes: local or [user@]host:path (exactly one side is remote).")],
    ssh: Annotated[
        str,
        typer.Option("--ssh", "-e", metavar="COMMAND", help="The ssh command and its options, as for rsync -e, e.g. 'ssh -p 2222 -i key'."),
    ] = "ssh",
    remote_cmd: Annotated[
        str,
        typer.Option("--remote-cmd", metavar="COMMAND", help="How to run pydelta on the remote host, e.g. '~/venv/bin/pydelta'."),
    ] = "pydelta",
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Delete files and folders in DEST that are not in SRC (only when every file synced)."),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Skip files whose size and modification time already match (rsync's default quick check). Without it every file is compared by content."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", "-n", help="Change nothing: list what would be created, compared, skipped and deleted."),
    ] = False,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every file with what was done to it.")] = False,
    threads: ThreadsOpt = 0,
    compress: Annotated[
        Optional[bool],
        typer.Option("--compress/--no-compress", help="zstd-compress literal data always / never. Default: only while the link is slower than compressing it (measured as it goes).", show_default=False),
    ] = None,
    level: Annotated[int, typer.Option("--level", min=1, max=22, help="zstd compression level (1..22).")] = 3,
    fsync: FsyncOpt = True,
) -> None:
    """Make DEST a copy of SRC over ssh, sending only what changed.

    Like rsync: the remote end (pydelta serve, started over ssh) sends the
    signature of its old copy, the sending end answers with a delta, and
    the receiving end rebuilds the file beside the old one and replaces it
    only once its BLAKE3 digest matches; on any failure the old content
    stays and a rerun completes. A missing file is sent whole (compressed),
    an unchanged one costs only its signature. A folder is synced
    recursively in one connection; symbolic links and special files are
    reported and skipped. DEST names what SRC becomes (a trailing '/' on SRC
    makes no difference); a file synced to an existing folder, or to a DEST
    ending in '/', goes inside it. Prints an rsync-like summary: bytes sent
    and received, and the speed-up against copying whole files.
    """

    def action() -> None:
        on = _want_progress(progress, quiet, PROGRESS_THRESHOLD)
        report = None
        try:
            with _SyncBars(on) as bars:
                report = run_sync(
                    src, dest, ssh=ssh, remote_cmd=remote_cmd, delete=delete, quick=quick, dry_run=dry_run,
                    progress=bars.callback, threads=threads, compress=compress,
                    level=level, fsync=fsync,
                )
        except SyncError as e:
            if isinstance(e.report, SyncReport):
                _print_report(e.report, verbose, quiet)
                n = len(e.report.failed)
                raise _Failure(f"{n} file{'s' if n != 1 else ''} not synced (they keep their old content)") from None
            raise
        _print_report(report, verbose, quiet)

    _run(action)


@app.command(hidden=True)
def serve() -> None:
    """Serve the sync protocol on standard input and output (run by 'pydelta sync' over ssh)."""
    code = serve_main()
    if code:
        raise typer.Exit(code)


def main(argv: Optional[list] = None) -> None:
    """Entry point of the ``pydelta`` script."""
    try:
        app(args=argv, prog_name="pydelta")
    except KeyboardInterrupt:
        raise SystemExit(_error("interrupted", 130).exit_code) from None
