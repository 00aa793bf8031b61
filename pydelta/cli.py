"""The ``pydelta`` command line: signature, delta, patch, info, sync, and the
model store's push, pull and ls.

The commands mirror rdiff: an omitted output or ``-`` is standard output,
``-`` as an input is standard input. Each command parses its arguments,
calls the library once and turns any error into one line on standard
error, ``pydelta: error: <message>``, with a distinct exit status per kind
of failure (:data:`._cliutil.EXIT_CODES_HELP`). Progress bars (tqdm) live
here only.
"""

import sys
import warnings
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from . import _cli_store
from ._cliopts import ProgressOpt, QuietOpt
from ._cliutil import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    PROGRESS_THRESHOLD,
    Bar,
    Failure,
    SyncBars,
    delta_result_size,
    error,
    input_size,
    one_stdin,
    print_report,
    refuse_terminal,
    run,
    say,
    summary,
    want_progress,
)
from ._version import version_line

# The library is imported inside each command, not here: a command loads
# only what it runs, and --help/--version none of it (issue 13.4).

if TYPE_CHECKING:
    from .sync import SyncReport

__all__ = ["app", "main", "version_line"]


def _is_signature(path: str) -> bool:
    """True if the file at path starts like a pydelta signature."""
    from .formats import SIGNATURE, sniff

    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(16)) == SIGNATURE
    except OSError:
        return False


PIPELINE_EXAMPLE = (
    "ssh host pydelta signature f | pydelta delta - f.new | ssh host pydelta patch f - f"
)

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


# -- options shared by the verbs ---------------------------------------------

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
        help="fsync the result before it replaces OUT, so a crash cannot leave a partial file.",
    ),
]
SyncFsyncOpt = Annotated[
    bool,
    typer.Option(
        "--fsync/--no-fsync",
        help="fsync each received file before it replaces the old one, so a crash "
        "cannot leave a partial file.",
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Print a one-line summary on stderr."),
]
LevelOpt = Annotated[
    int,
    typer.Option("--level", help="zstd compression level (1..22).", show_default=True),
]


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


@app.command(
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta signature big.img big.img.sig\n"
    "  ssh host pydelta signature big.img > big.img.sig",
)
def signature(
    old: Annotated[
        str,
        typer.Argument(metavar="OLD", help="The old file (the basis); '-' reads standard input."),
    ],
    sig: Annotated[
        Optional[str],
        typer.Argument(
            metavar="SIG", help="Where to write the signature; omitted or '-' is standard output."
        ),
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
    verbose: VerboseOpt = False,
    threads: ThreadsOpt = 0,
) -> None:
    """Write the signature of OLD to SIG.

    The signature is small (about 24 bytes per block) and is all the sender
    needs to make a delta against OLD. With --format rdiff it is a librsync
    signature, byte for byte what 'rdiff signature' writes with the same
    -b/-S/-H/-R options; 'pydelta delta' and 'rdiff delta' both accept it.
    """

    def action() -> None:
        from .signature import signature as make_signature

        refuse_terminal(sig, "signature")
        if sig_format not in ("native", "rdiff"):
            raise Failure(f"unknown --format {sig_format!r}: use native or rdiff")
        if sig_format == "native" and (rollsum != "rabinkarp" or strong_hash != "blake2"):
            raise Failure("--rollsum and --hash apply to --format rdiff only")
        size = input_size(old)
        with Bar(want_progress(progress, quiet, size), size, "signature") as bar:
            made = make_signature(
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
        if verbose and not quiet:
            n = made.block_count
            say(
                f"pydelta: old {made.basis_size} bytes, {n} block{'s' if n != 1 else ''} "
                f"of {made.block_len} bytes, {made.strong_len}-byte strong hashes"
            )

    run(action)


@app.command(
    no_args_is_help=True,
    epilog=f"\b\nExample:\n  pydelta delta old.sig new.bin new.delta\n  {PIPELINE_EXAMPLE}",
)
def delta(
    sig: Annotated[
        str,
        typer.Argument(metavar="SIG", help="Signature of the old file; '-' reads standard input."),
    ],
    new: Annotated[
        str, typer.Argument(metavar="NEW", help="The new file; '-' reads standard input.")
    ],
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
    level: LevelOpt = 1,
) -> None:
    """Write the delta that turns the file SIG was made from into NEW.

    NEW is read once, front to back, so it may be a pipe. If SIG is an rdiff
    (librsync) signature, DELTA is a librsync delta that 'rdiff patch' applies.
    """

    def action() -> None:
        from .delta import delta as make_delta
        from .errors import NotASignatureError
        from .formats.literals import check_level

        one_stdin(sig, "SIG", new, "NEW")
        refuse_terminal(delta_out, "delta")
        check_level(level)
        size = input_size(new)
        with Bar(want_progress(progress, quiet, size), size, "delta") as bar:
            try:
                stats = make_delta(
                    sig,
                    new,
                    "-" if delta_out is None else delta_out,
                    progress=bar.callback,
                    threads=threads,
                    compress=compress,
                    level=level,
                )
            except NotASignatureError as e:
                if new != "-" and "wrong order" not in str(e) and _is_signature(new):
                    raise NotASignatureError(
                        f"{e} (arguments in the wrong order? NEW {new} is a signature: "
                        "it is 'pydelta delta SIG NEW')"
                    ) from None
                raise
        if verbose and not quiet:
            say(summary(stats))

    run(action)


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
            "at random offsets; '-' only if standard input is redirected from a file).",
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
            "May be OLD itself: it is replaced only once the result is verified.",
        ),
    ] = None,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
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
        from .errors import UnverifiedWarning
        from .patch import patch as apply_patch

        one_stdin(old, "OLD", delta_in, "DELTA")
        refuse_terminal(out, "result")
        # the bar counts result bytes; "large" goes by the bigger of result and OLD
        total = delta_result_size(delta_in)
        basis_size = input_size(old)
        known = [s for s in (total, basis_size) if s is not None]
        on = want_progress(progress, quiet, max(known) if known else None)
        with Bar(on, total, "patch") as bar, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnverifiedWarning)
            result = apply_patch(
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

        if verbose and not quiet:
            check = "verified" if result.verified else "NOT verified (rdiff delta)"
            say(f"pydelta: result {result.size} bytes, BLAKE3 {result.digest.hex()} ({check})")

    run(action)


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
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: format, kind, and the fields with snake_case "
            "keys (digests as hex strings, sizes as integers).",
        ),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Describe what a signature or delta holds (block size, sizes, digests)."""

    def action() -> None:
        import json

        from .info import info as describe_file

        found = describe_file(file)
        if as_json:
            obj = {"format": found.format, "kind": found.kind}
            obj.update({k.replace(" ", "_"): v for k, v in found.fields.items()})
            text = json.dumps(obj)
        else:
            text = str(found)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    run(action)


@app.command(
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta sync model.safetensors gpu1:/models/model.safetensors   # push one file\n"
    "  pydelta sync llama-7b gpu1:/models/llama-7b --delete           # push a folder\n"
    "  pydelta sync -e 'ssh -p 2222 -i key' me@gpu1:ckpt/ ./ckpt      # pull\n"
    "  pydelta sync --remote-cmd '~/venv/bin/pydelta' model.bin gpu1:model.bin",
)
def sync(
    src: Annotated[
        str,
        typer.Argument(
            metavar="SRC", help="What to copy: a file or folder, local or [user@]host:path."
        ),
    ],
    dest: Annotated[
        str,
        typer.Argument(
            metavar="DEST",
            help="What it becomes: local or [user@]host:path (exactly one side is remote).",
        ),
    ],
    ssh: Annotated[
        str,
        typer.Option(
            "--ssh",
            "-e",
            metavar="COMMAND",
            help="The ssh command and its options, as for rsync -e, e.g. 'ssh -p 2222 -i key'.",
        ),
    ] = "ssh",
    remote_cmd: Annotated[
        str,
        typer.Option(
            "--remote-cmd",
            metavar="COMMAND",
            help="How to run pydelta on the remote host, e.g. '~/venv/bin/pydelta'.",
        ),
    ] = "pydelta",
    delete: Annotated[
        bool,
        typer.Option(
            "--delete",
            help="Delete files and folders in DEST that are not in SRC (only when every file synced).",
        ),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Skip files whose size and modification time already match (rsync's default quick check). Without it every file is compared by content.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            "-n",
            help="Change nothing: list what would be created, compared, skipped and deleted.",
        ),
    ] = False,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every file with what was done to it.")
    ] = False,
    threads: ThreadsOpt = 0,
    compress: Annotated[
        Optional[bool],
        typer.Option(
            "--compress/--no-compress",
            help="zstd-compress literal data always / never. Default: only while the link is slower than compressing it (measured as it goes).",
            show_default=False,
        ),
    ] = None,
    level: LevelOpt = 1,
    fsync: SyncFsyncOpt = True,
    exclude: Annotated[
        Optional[List[str]],
        typer.Option(
            "--exclude",
            metavar="PATTERN",
            help="Leave out what matches (repeatable; rsync-like: * ? [..] **, a trailing / "
            "matches folders, a leading / anchors to the root; see docs/SYNC.md). Excluded "
            "files in DEST are not deleted.",
        ),
    ] = None,
    include: Annotated[
        Optional[List[str]],
        typer.Option(
            "--include",
            metavar="PATTERN",
            help="Keep what matches (repeatable; with --exclude the first rule that matches, "
            "in command-line order, decides).",
        ),
    ] = None,
    links: Annotated[
        bool,
        typer.Option(
            "--links",
            "-l",
            help="Recreate symbolic links as links (relative ones that stay inside the tree; "
            "others are skipped and reported).",
        ),
    ] = False,
    copy_links: Annotated[
        bool,
        typer.Option(
            "--copy-links",
            "-L",
            help="Send what symbolic links point to as regular files and folders (if inside "
            "the tree; dangling or escaping links are skipped and reported).",
        ),
    ] = False,
    bwlimit: Annotated[
        Optional[str],
        typer.Option(
            "--bwlimit",
            metavar="RATE",
            help="Limit what each end writes to RATE: KiB/s, or with a suffix "
            "(B, K, M, G = 1024-based; KB, MB, GB = 1000-based), e.g. 10M. 0: no limit.",
        ),
    ] = None,
    itemize: Annotated[
        int,
        typer.Option(
            "--itemize-changes",
            "-i",
            count=True,
            help="Print one line per changed entry in rsync's form (e.g. '<f.st...... path'); "
            "twice (-ii) for every entry. See docs/SYNC.md.",
        ),
    ] = 0,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Print rsync-like totals: files, created, deleted, transferred, literal and "
            "matched data, bytes sent and received.",
        ),
    ] = False,
    sig_cache: Annotated[
        bool,
        typer.Option(
            "--sig-cache/--no-sig-cache",
            help="Let the receiving end reuse the signature it kept of a large file that "
            "has not changed since (same device, inode, size, mtime and ctime; results are "
            "verified either way). Kept in $XDG_CACHE_HOME/pydelta/sigs (~/.cache/...) or "
            "$PYDELTA_SIG_CACHE; see docs/SYNC_SPEED.md.",
        ),
    ] = True,
    refine: Annotated[
        bool,
        typer.Option(
            "--refine/--no-refine",
            help="After the first scan, ask for finer signatures of the old data around "
            "what did not match (a small edit then costs a few hundred bytes, not a block).",
        ),
    ] = True,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the report as one JSON object on stdout instead of the summary "
            "(src, dest, files with path/action/size/sent/received/message/kind/target/"
            "changes/literal/matched, bytes_sent, bytes_received, total_size, seconds, "
            "dry_run, source_counts, bwlimit, bwlimit_seconds, speedup).",
        ),
    ] = False,
) -> None:
    """Make DEST a copy of SRC over ssh, sending only what changed.

    Like rsync: the remote end (pydelta serve, started over ssh) sends the
    signature of its old copy, the sending end answers with a delta, and
    the receiving end rebuilds the file beside the old one and replaces it
    only once its BLAKE3 digest matches; on any failure the old content
    stays and a rerun completes. A missing file is sent whole (compressed),
    an unchanged one costs only its signature. A folder is synced
    recursively in one connection; special files are reported and skipped,
    and symbolic links too unless -l (recreate them) or -L (follow them). DEST names what SRC becomes (a trailing '/' on SRC
    makes no difference); a file synced to an existing folder, or to a DEST
    ending in '/', goes inside it. Prints an rsync-like summary: bytes sent
    and received, and the speed-up against copying whole files.
    """

    def show(report: "SyncReport") -> None:
        if as_json:
            import dataclasses
            import json

            obj = dataclasses.asdict(report)
            obj["speedup"] = None if report.dry_run else round(report.speedup, 2)
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()
        else:
            print_report(report, verbose, quiet, itemize=itemize, stats=stats)

    # rsync tries the rules in command-line order: recover it from the raw arguments
    from .sync.filters import order_from_argv

    rules = order_from_argv(sys.argv[1:], exclude or [], include or []) if include else None

    def action() -> None:
        from .errors import SyncError
        from .formats.literals import check_level
        from .sync import SyncReport
        from .sync.client import sync as run_sync

        check_level(level)
        on = want_progress(progress, quiet, PROGRESS_THRESHOLD)
        report = None
        try:
            with SyncBars(on) as bars:
                report = run_sync(
                    src,
                    dest,
                    ssh=ssh,
                    remote_cmd=remote_cmd,
                    delete=delete,
                    quick=quick,
                    dry_run=dry_run,
                    progress=bars.callback,
                    threads=threads,
                    compress=compress,
                    level=level,
                    fsync=fsync,
                    exclude=None if rules else exclude,
                    include=None if rules else include,
                    filter_rules=rules,
                    links=links,
                    copy_links=copy_links,
                    bwlimit=bwlimit,
                    sig_cache=sig_cache,
                    refine=refine,
                )
        except SyncError as e:
            if isinstance(e.report, SyncReport):
                show(e.report)
                n = len(e.report.failed)
                raise Failure(
                    f"{n} file{'s' if n != 1 else ''} not synced (they keep their old content)",
                    EXIT_PARTIAL,
                ) from None
            raise
        show(report)

    run(action)


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
        raise SystemExit(error("interrupted", 130).exit_code) from None


# The model store's commands (push, pull, ls, mirror, tag, diff, gc) live in
# their own module; registered here, after the verbs, in the order they show.
for _name, _kwargs, _fn in _cli_store.COMMANDS:
    app.command(_name, **_kwargs)(_fn)
