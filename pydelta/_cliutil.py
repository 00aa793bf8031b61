"""The command line's helpers: turning errors into one line, checks before
the library runs, and the output (tqdm progress bars, summaries, sync
reports). Only the CLI modules import this; the library never does.

No typer here: an error ends the command with :class:`SystemExit` (what
typer's Exit comes to as well), so the fast path of the common verbs
(:mod:`pydelta._cliparse`) runs them without loading typer.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from .errors import (
    CorruptError,
    CorruptStoreError,
    DiskFullError,
    FormatError,
    PullTimeoutError,
    PydeltaError,
    StoreAccessError,
    StoreNotFoundError,
    StoreUnreachableError,
    SyncError,
    TagConflictError,
    UsageError,
    VerificationError,
    WrongBasisError,
)
from .errors import message as error_message

if TYPE_CHECKING:  # imported where used: start-up stays short (issue 13.4)
    from .results import DeltaStats
    from .store import Progress
    from .sync import SyncReport, SyncStatus

T = TypeVar("T")

#: Inputs at least this large get a progress bar by default (on a terminal).
PROGRESS_THRESHOLD = 64 << 20


def say(line: str) -> None:
    """One line of information on stderr (-v summaries)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# -- errors ------------------------------------------------------------------


#: Exit codes (documented in the README and ``pydelta --help``): one table
#: for every command, so a script or a supervisor can act on them.
EXIT_OK = 0
EXIT_ERROR = 1  # any other error: a file cannot be read or written, out of memory, ...
EXIT_USAGE = 2  # bad arguments or options
EXIT_BAD_INPUT = 3  # not a signature/delta, damaged, truncated, or a newer format
EXIT_WRONG_BASIS = 4  # the old file is not the one the signature was made from
EXIT_VERIFY = 5  # a result failed its size/digest check (patch, sync, or bytes a store served)
EXIT_REMOTE = 6  # sync: ssh or the remote pydelta failed, the connection broke
EXIT_PARTIAL = 7  # sync: some files were not synced (the others were)
EXIT_ACCESS = 8  # store: no credentials, or access denied
EXIT_CONFLICT = 9  # store: a tag moved meanwhile (tag, push), or is not the one --expect names
EXIT_UNREACHABLE = 10  # store: could not be reached (retry later, or use a --near store)
EXIT_MISSING = 11  # store: the tag, version or store does not exist (a configuration error)
EXIT_DISK_FULL = 12  # no space left at DEST (or in a local store)
EXIT_TIMEOUT = 13  # --timeout ran out (what arrived is kept for the rerun)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_PIPE = 141  # our standard output was closed by its reader (128 + SIGPIPE), silently

#: For ``--help``.
EXIT_CODES_HELP = (
    "Exit status: 0 success, 1 error (file access, I/O), 2 usage, 3 bad input (not a "
    "signature/delta, damaged, truncated), 4 wrong old file, 5 verification failed, "
    "6 remote/connection (sync), 7 some files not synced, 8 store access denied, "
    "9 tag conflict, 10 store unreachable, 11 tag/version/store missing, 12 disk full, "
    "13 timeout, 130 interrupted, 141 output closed by its reader."
)

#: Most specific first: the store's errors, then the general kinds.
_EXIT_CODES: "tuple[tuple[type[BaseException], int], ...]" = (
    (PullTimeoutError, EXIT_TIMEOUT),
    (DiskFullError, EXIT_DISK_FULL),
    (StoreUnreachableError, EXIT_UNREACHABLE),
    (StoreNotFoundError, EXIT_MISSING),  # VersionNotFoundError too
    (CorruptStoreError, EXIT_VERIFY),
    (StoreAccessError, EXIT_ACCESS),
    (TagConflictError, EXIT_CONFLICT),
    (UsageError, EXIT_USAGE),
    (FormatError, EXIT_BAD_INPUT),
    (CorruptError, EXIT_BAD_INPUT),
    (WrongBasisError, EXIT_WRONG_BASIS),
    (VerificationError, EXIT_VERIFY),
    (SyncError, EXIT_REMOTE),
)


def exit_code(exc: BaseException) -> int:
    """The exit status for an error (1 unless it is one of the kinds above)."""
    if isinstance(exc, Failure):
        return exc.code
    for kind, code in _EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_ERROR


class Failure(Exception):
    """An error found by the CLI itself (before the library runs); by
    default a usage error."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def error(message: str, code: int = 1) -> SystemExit:
    """Print the one-line error message and return the SystemExit to raise."""
    line = " ".join(str(message).split()) or "unknown error"
    try:
        sys.stderr.write(f"pydelta: error: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    return SystemExit(code)


def is_broken_pipe(exc: BaseException) -> bool:
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


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so flushing at exit cannot raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def run(action: Callable[[], T]) -> T:
    """Run one library call, translating every failure into one stderr line."""
    from . import backends

    if backends.unavailable:  # no kernels: say why, whatever the command
        raise error(backends.unavailable, EXIT_USAGE if backends.requested else EXIT_ERROR)
    try:
        return action()
    except KeyboardInterrupt:
        raise error("interrupted", EXIT_INTERRUPTED) from None
    except Failure as e:
        raise error(str(e), e.code) from None
    except PydeltaError as e:
        if is_broken_pipe(e):
            silence_stdout()
            raise SystemExit(EXIT_PIPE) from None
        raise error(str(e), exit_code(e)) from None
    except OSError as e:
        if is_broken_pipe(e):
            silence_stdout()
            raise SystemExit(EXIT_PIPE) from None
        raise error(error_message(e)) from None
    except MemoryError as e:
        raise error(str(e) or "out of memory") from None
    except Exception as e:  # a bug: still one line, unless debugging
        if os.environ.get("PYDELTA_DEBUG"):
            raise
        raise error(
            f"internal error: {type(e).__name__}: {e} "
            "(please report it; set PYDELTA_DEBUG=1 to see the traceback)"
        ) from None


class Deadline:
    """A hard stop ``GRACE`` seconds after ``timeout``: the library checks its
    deadline between requests; this ends the process even if a request hangs
    (a dead peer that keeps the connection open)."""

    GRACE = 5.0

    def __init__(self, timeout: Optional[float]) -> None:
        self.timeout = timeout
        self.old: object = None

    def _fire(self, signum: int, frame: object) -> None:
        error(
            f"gave up after {self.timeout:g} s (--timeout); what arrived is kept for the rerun",
            EXIT_TIMEOUT,
        )
        os._exit(EXIT_TIMEOUT)

    def __enter__(self) -> "Deadline":
        import signal

        if self.timeout is not None and hasattr(signal, "SIGALRM"):
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.timeout + self.GRACE)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self.timeout is not None and hasattr(signal, "SIGALRM"):
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old or signal.SIG_DFL)  # type: ignore[arg-type]


# -- checks before the library runs ------------------------------------------


def is_stdio(arg: Optional[str]) -> bool:
    return arg is None or arg == "-"


def refuse_terminal(out: Optional[str], what: str) -> None:
    """Fail if binary output would go to standard output and that is a terminal."""
    if not is_stdio(out):
        return
    if sys.stdout is None:
        raise Failure(f"standard output is closed; give an output file for the {what}", EXIT_ERROR)
    try:
        tty = sys.stdout.isatty()
    except (OSError, ValueError):
        tty = False
    if tty:
        raise Failure(
            f"refusing to write binary {what} to a terminal; give an output file or redirect stdout"
        )


def one_stdin(a: str, a_name: str, b: str, b_name: str) -> None:
    if a == "-" and b == "-":
        raise Failure(f"{a_name} and {b_name} cannot both be standard input")


# -- progress ----------------------------------------------------------------


def input_size(arg: Optional[str]) -> Optional[int]:
    """Size of the regular file named by arg ('-': standard input), else None."""
    try:
        if arg is None or arg == "-":
            st = os.fstat(sys.stdin.fileno())
        else:
            st = os.stat(arg)
    except (OSError, ValueError, AttributeError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def delta_result_size(arg: str) -> Optional[int]:
    """The result size a delta file announces in its end record, or None.

    Only to size the progress bar of ``patch``; the library checks the
    delta itself.
    """
    if arg == "-":
        return None
    from .formats import DELTA, sniff
    from .formats import native as fmt

    try:
        if not stat.S_ISREG(os.stat(arg).st_mode):
            return None  # a pipe (e.g. <(...)): reading its head would eat the delta
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


def stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):
        return False


def want_progress(flag: Optional[bool], quiet: bool, size: Optional[int]) -> bool:
    if quiet:
        return False
    if flag is not None:
        return flag
    return stderr_is_tty() and size is not None and size >= PROGRESS_THRESHOLD


def stderr_shape() -> tuple:
    """(columns, lines) of the terminal on stderr; 0 where unknown or reported as 0."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return 0, 0
    return size.columns, size.lines


def tqdm_bar(tqdm: Any, total: Optional[int], desc: str) -> Any:
    """A byte-counting tqdm bar on stderr."""
    # follow the terminal's width; but tqdm hides the bar of a terminal
    # that reports a size of 0 (a bare pty, a serial console)
    cols, lines = stderr_shape()
    return tqdm(
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


class Bar:
    """A tqdm bar fed by the library's cumulative byte counts."""

    def __init__(self, enabled: bool, total: Optional[int], desc: str) -> None:
        self.bar = None
        self.last = 0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm_bar(tqdm, total, desc)

    @property
    def callback(self) -> Optional[Callable[[int], None]]:
        return self.update if self.bar is not None else None

    def update(self, done: int) -> None:
        if self.bar is not None and done > self.last:
            self.bar.update(done - self.last)
            self.last = done

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):
                pass


def summary(stats: "DeltaStats") -> str:
    def pct(part: int) -> str:
        return f"{100.0 * part / stats.new_size:.1f}%" if stats.new_size else "0.0%"

    zlit = getattr(stats, "compressed_literal", 0)
    ztext = f" ({zlit} of them compressed to {stats.compressed_size})" if zlit else ""
    return (
        f"pydelta: new {stats.new_size} bytes, copied {stats.copied} ({pct(stats.copied)}), "
        f"literal {stats.literal} ({pct(stats.literal)}){ztext}, delta {stats.delta_size} bytes"
    )


class SyncBars:
    """Two tqdm bars for a sync: all files, and the file moving now."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.total: Optional[Bar] = None
        self.file: Optional[Bar] = None
        self.path: Optional[str] = None
        self.label = ""
        self.phase = "delta"

    def update(self, st: "SyncStatus") -> None:
        if not self.enabled:
            return
        if self.total is None:
            self.total = Bar(True, st.total, "total")
        if st.path != self.path:
            if self.file is not None:
                self.file.__exit__(None, None, None)
            self.label = st.path if len(st.path) <= 30 else "..." + st.path[-27:]
            self.file = Bar(True, st.file_size, self.label)
            self.path = st.path
            self.phase = "delta"
        assert self.file is not None and self.file.bar is not None
        if st.phase != self.phase:  # e.g. "model.bin (signature)" while the far end hashes
            self.phase = st.phase
            self.file.bar.set_description(
                self.label if st.phase == "delta" else f"{self.label} ({st.phase})"
            )
        self.file.update(st.file_done)
        self.total.update(st.done)

    @property
    def callback(self) -> Optional[Callable[["SyncStatus"], None]]:
        return self.update if self.enabled else None

    def __enter__(self) -> "SyncBars":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for bar in (self.file, self.total):
            if bar is not None:
                bar.__exit__(exc_type, exc, tb)


def print_report(
    report: "SyncReport", verbose: bool, quiet: bool, itemize: int = 0, stats: bool = False
) -> None:
    """The sync's lines: skips and failures on stderr; per entry (-v, or -i in
    rsync's itemized form, -ii for all); --stats totals; the summary."""
    for f in report.files:
        if f.action == "skipped" and not quiet:
            sys.stderr.write(f"pydelta: skipped {f.path}: {f.message}\n")
        elif f.action == "failed":
            sys.stderr.write(f"pydelta: failed {f.path}: {' '.join(f.message.split())}\n")
        elif itemize:
            from .sync.itemize import line as item_line

            text = item_line(f, itemize > 1)  # rsync's YXcstpoguax code, then the path
            if text and not quiet:
                sys.stdout.write(text + "\n")
        elif f.kind == "dir":
            continue
        elif (verbose or report.dry_run) and not quiet:
            wire = (
                f"  (sent {f.sent:,}, received {f.received:,})"
                if f.action != "deleted" and not report.dry_run
                else ""
            )
            sys.stdout.write(f"{f.action:<9} {f.path}{wire}\n")
    sys.stderr.flush()
    if stats and not quiet:
        sys.stdout.write(report.stats() + "\n\n")
    if not quiet:
        sys.stdout.write(report.summary() + "\n")
        sys.stdout.flush()


# -- model store -----------------------------------------------------------------


def store_progress(flag: Optional[bool], quiet: bool) -> bool:
    """Whether push/pull show a bar: --progress/--no-progress, else on a terminal."""
    if quiet:
        return False
    return stderr_is_tty() if flag is None else flag


class StoreBar:
    """A tqdm bar over the store's progress events (bytes; chunks and bytes moved as postfix)."""

    NAMES = {"scan": "checking local files", "upload": "pushing", "fetch": "pulling"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.phase = ""
        self.last = 0

    def __call__(self, ev: "Progress") -> None:
        if not self.enabled:
            return
        if ev.phase != self.phase:
            self.close()
            from tqdm import tqdm

            self.bar = tqdm_bar(tqdm, ev.bytes_total or None, self.NAMES.get(ev.phase, ev.phase))
            self.phase, self.last = ev.phase, 0
        if self.bar is not None and ev.bytes_done > self.last:
            self.bar.update(ev.bytes_done - self.last)
            self.last = ev.bytes_done
            self.bar.set_postfix_str(
                f"{ev.chunks:,} chunks, {ev.transferred / 1e6:,.1f} MB moved", refresh=False
            )

    def close(self) -> None:
        """Close the bar (if one is shown)."""
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):
                pass
            self.bar = None
