"""The sync verb: its options (plain data, :mod:`pydelta._cliopts`'s table)
and its work (``pydelta sync``, the client; the far end is ``pydelta
serve``, which skips the command line layer)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional

from ._cliopts import LEVEL, PROGRESS, QUIET, THREADS, Arg, Opt, Verb

if TYPE_CHECKING:
    from .sync import SyncReport

SYNC = Verb(
    "sync",
    (
        Arg("src", "SRC", "What to copy: a file or folder, local or [user@]host:path."),
        Arg(
            "dest",
            "DEST",
            "What it becomes: local or [user@]host:path (exactly one side is remote).",
        ),
        Opt(
            "ssh",
            ("--ssh", "-e"),
            "str",
            "ssh",
            "The ssh command and its options, as for rsync -e, e.g. 'ssh -p 2222 -i key'.",
            metavar="COMMAND",
        ),
        Opt(
            "remote_cmd",
            ("--remote-cmd",),
            "str",
            "pydelta",
            "How to run pydelta on the remote host, e.g. '~/venv/bin/pydelta'.",
            metavar="COMMAND",
        ),
        Opt(
            "delete",
            ("--delete",),
            "flag",
            False,
            "Delete files and folders in DEST that are not in SRC (only when every file synced).",
        ),
        Opt(
            "quick",
            ("--quick",),
            "flag",
            False,
            "Skip files whose size and modification time already match (rsync's default quick "
            "check). Without it every file is compared by content.",
        ),
        Opt(
            "dry_run",
            ("--dry-run", "-n"),
            "flag",
            False,
            "Change nothing: list what would be created, compared, skipped and deleted.",
        ),
        PROGRESS,
        QUIET,
        Opt(
            "verbose",
            ("--verbose", "-v"),
            "flag",
            False,
            "List every file with what was done to it.",
        ),
        THREADS,
        Opt(
            "compress",
            ("--compress/--no-compress",),
            "switch",
            None,
            "zstd-compress literal data always / never. Default: only while the link is slower "
            "than compressing it (measured as it goes).",
            show_default=False,
        ),
        LEVEL,
        Opt(
            "fsync",
            ("--fsync/--no-fsync",),
            "switch",
            True,
            "fsync each received file before it replaces the old one, so a crash cannot leave "
            "a partial file.",
        ),
        Opt(
            "exclude",
            ("--exclude",),
            "multi",
            None,
            "Leave out what matches (repeatable; rsync-like: * ? [..] **, a trailing / matches "
            "folders, a leading / anchors to the root; see docs/SYNC.md). Excluded files in "
            "DEST are not deleted.",
            metavar="PATTERN",
        ),
        Opt(
            "include",
            ("--include",),
            "multi",
            None,
            "Keep what matches (repeatable; with --exclude the first rule that matches, in "
            "command-line order, decides).",
            metavar="PATTERN",
        ),
        Opt(
            "links",
            ("--links", "-l"),
            "flag",
            False,
            "Recreate symbolic links as links (relative ones that stay inside the tree; others "
            "are skipped and reported).",
        ),
        Opt(
            "copy_links",
            ("--copy-links", "-L"),
            "flag",
            False,
            "Send what symbolic links point to as regular files and folders (if inside the "
            "tree; dangling or escaping links are skipped and reported).",
        ),
        Opt(
            "bwlimit",
            ("--bwlimit",),
            "str",
            None,
            "Limit what each end writes to RATE: KiB/s, or with a suffix (B, K, M, G = "
            "1024-based; KB, MB, GB = 1000-based), e.g. 10M. 0: no limit.",
            metavar="RATE",
        ),
        Opt(
            "itemize",
            ("--itemize-changes", "-i"),
            "count",
            0,
            "Print one line per changed entry in rsync's form (e.g. '<f.st...... path'); twice "
            "(-ii) for every entry. See docs/SYNC.md.",
        ),
        Opt(
            "stats",
            ("--stats",),
            "flag",
            False,
            "Print rsync-like totals: files, created, deleted, transferred, literal and matched "
            "data, bytes sent and received.",
        ),
        Opt(
            "sig_cache",
            ("--sig-cache/--no-sig-cache",),
            "switch",
            True,
            "Let the receiving end reuse the signature it kept of a large file that has not "
            "changed since (same device, inode, size, mtime and ctime; results are verified "
            "either way). Kept in $XDG_CACHE_HOME/pydelta/sigs (~/.cache/...) or "
            "$PYDELTA_SIG_CACHE; see docs/SYNC_SPEED.md.",
        ),
        Opt(
            "refine",
            ("--refine/--no-refine",),
            "switch",
            True,
            "After the first scan, ask for finer signatures of the old data around what did not "
            "match (a small edit then costs a few hundred bytes, not a block).",
        ),
        Opt(
            "timeout",
            ("--timeout",),
            "int",
            3600,
            "Give up when the far end sends nothing for SECONDS while this end waits for it "
            "(exit 6, 'no data from HOST'); 0 waits for ever. The far end verifying a very "
            "large file on a slow disk is silent for its size over the disk's speed.",
            metavar="SECONDS",
            min=0,
            show_default=True,
        ),
        Opt(
            "as_json",
            ("--json",),
            "flag",
            False,
            "Print the report as one JSON object on stdout instead of the summary (src, dest, "
            "files with path/action/size/sent/received/message/kind/target/changes/literal/"
            "matched, bytes_sent, bytes_received, total_size, seconds, dry_run, source_counts, "
            "bwlimit, bwlimit_seconds, speedup).",
        ),
    ),
    "_cli_sync:sync_cmd",
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
    """,
    "\b\nExample:\n"
    "  pydelta sync model.safetensors gpu1:/models/model.safetensors   # push one file\n"
    "  pydelta sync llama-7b gpu1:/models/llama-7b --delete           # push a folder\n"
    "  pydelta sync -e 'ssh -p 2222 -i key' me@gpu1:ckpt/ ./ckpt      # pull\n"
    "  pydelta sync --remote-cmd '~/venv/bin/pydelta' model.bin gpu1:model.bin",
)


def sync_cmd(
    src: str,
    dest: str,
    ssh: str,
    remote_cmd: str,
    delete: bool,
    quick: bool,
    dry_run: bool,
    progress: Optional[bool],
    quiet: bool,
    verbose: bool,
    threads: int,
    compress: Optional[bool],
    level: int,
    fsync: bool,
    exclude: Optional[List[str]],
    include: Optional[List[str]],
    links: bool,
    copy_links: bool,
    bwlimit: Optional[str],
    itemize: int,
    stats: bool,
    sig_cache: bool,
    refine: bool,
    timeout: int,
    as_json: bool,
) -> None:
    """``pydelta sync``: the client, which starts the far end over ssh."""
    from ._cliutil import (
        EXIT_PARTIAL,
        PROGRESS_THRESHOLD,
        Failure,
        SyncBars,
        print_report,
        run,
        want_progress,
    )

    def show(report: "SyncReport") -> None:
        if as_json:
            import json

            obj = report.as_dict()
            obj["speedup"] = None if report.dry_run else round(report.speedup, 2)
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()
        else:
            print_report(report, verbose, quiet, itemize=itemize, stats=stats)

    rules = None
    if include:  # rsync tries the rules in command-line order: recover it from the raw arguments
        from .sync.filters import order_from_argv

        rules = order_from_argv(sys.argv[1:], exclude or [], include)

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
                    timeout=timeout,
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
