"""The model store's commands: push, pull, ls, mirror, tag, diff, gc.

Thin like the rest of the CLI: parse, call the library once (pydelta.store),
print. :mod:`pydelta.cli` registers :data:`COMMANDS` on its typer app.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Callable, Optional

import typer

from ._cli_typer import annotated
from ._cliopts import PROGRESS, QUIET
from ._cliutil import Deadline, StoreBar, run, store_progress

ProgressOpt = annotated(PROGRESS)
QuietOpt = annotated(QUIET)

#: (name, typer.command keyword arguments, function), in the order they show.
COMMANDS: "list[tuple[str, dict[str, Any], Callable[..., Any]]]" = []


def command(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Record a command for :mod:`pydelta.cli` to register."""

    def record(fn: Callable[..., Any]) -> Callable[..., Any]:
        COMMANDS.append((name, kwargs, fn))
        return fn

    return record


# -- model store: push, pull, ls ---------------------------------------------

JobsOpt = Annotated[
    int,
    typer.Option(
        "--jobs", "-j", min=1, max=256, help="Parallel transfers (requests to the store)."
    ),
]
EndpointOpt = Annotated[
    Optional[str],
    typer.Option(
        "--endpoint-url",
        metavar="URL",
        help="S3 endpoint, e.g. http://minio:9000 (default: AWS_ENDPOINT_URL or the AWS config).",
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", "-n", help="Change nothing: say what would be transferred, in bytes."
    ),
]


@command(
    "push",
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta push llama-7b/ s3://models/llama-7b --tag v2\n"
    "  pydelta push model.safetensors /mnt/store/model        # a local store\n"
    "  pydelta push ckpt/ s3://b/ckpt --endpoint-url http://minio:9000 -j 16",
)
def push_cmd(
    src: Annotated[str, typer.Argument(metavar="SRC", help="A file, or a folder (recursive).")],
    store: Annotated[
        str,
        typer.Argument(
            metavar="STORE", help="A local directory, file:// URL or s3://bucket/prefix."
        ),
    ],
    tag: Annotated[
        str, typer.Option("--tag", "-t", help="Point this tag at the new version.")
    ] = "latest",
    jobs: JobsOpt = 8,
    pack_size: Annotated[
        int, typer.Option("--pack-size", min=1, metavar="MiB", help="Pack object size in MiB.")
    ] = 32,
    level: Annotated[
        int, typer.Option("--level", min=1, max=22, help="zstd level for chunks.")
    ] = 1,
    compress: Annotated[
        bool, typer.Option("--compress/--no-compress", help="Compress chunks when it pays.")
    ] = True,
    endpoint_url: EndpointOpt = None,
    dry_run: DryRunOpt = False,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Store SRC as a new version in STORE, uploading only chunks it lacks.

    Files are cut into content-defined chunks (a shifted header does not
    change the chunks after it); chunks the store already holds are not
    sent. The version is visible only once complete, then TAG points at it.
    Prints the version id and what was uploaded.
    """

    def action() -> None:
        from .store import push as push_version

        bar = StoreBar(store_progress(progress, quiet))
        try:
            r = push_version(
                src,
                store,
                tag=tag,
                jobs=jobs,
                pack_size=pack_size << 20,
                level=level,
                compress=compress,
                endpoint_url=endpoint_url,
                dry_run=dry_run,
                progress=bar,
            )
        finally:
            bar.close()
        if not quiet:
            for s in r.skipped:
                sys.stderr.write(f"pydelta: skipped {s} (not a regular file)\n")
            sys.stdout.write(r.summary() + "\n")

    run(action)


@command(
    "pull",
    no_args_is_help=False,  # STORE and DEST may come from the environment
    epilog="\b\nExample:\n"
    "  pydelta pull s3://models/llama-7b /models/llama-7b --tag v2\n"
    "  pydelta pull s3://models/llama-7b /models/llama-7b --quick    # at container start\n"
    "  pydelta pull /mnt/store/model model.safetensors --seed old-model.safetensors\n"
    "  pydelta pull s3://models/llama-7b /models/llama-7b --near /mnt/node-cache/llama-7b\n"
    "  PYDELTA_STORE=https://cdn.example.com/llama PYDELTA_DEST=/models/llama pydelta pull\n"
    "\b\nEnvironment (used when the argument or option is not given):\n"
    "  PYDELTA_STORE PYDELTA_DEST PYDELTA_TAG PYDELTA_VERSION PYDELTA_JOBS\n"
    "  PYDELTA_NEAR (space-separated) PYDELTA_TIMEOUT PYDELTA_QUICK=1 PYDELTA_ENDPOINT_URL\n"
    "\b\nExit status: 0 done, 1 other error, 2 bad usage, 5 verification failed,\n"
    "  8 access denied, 10 store unreachable, 11 version (or store) missing,\n"
    "  12 disk full, 13 timed out, 130 interrupted.",
)
def pull_cmd(
    store: Annotated[
        str,
        typer.Argument(
            metavar="STORE",
            envvar="PYDELTA_STORE",
            show_envvar=False,
            help="A local directory, file:// URL, s3://bucket/prefix or http(s):// URL (read-only).",
        ),
    ],
    dest: Annotated[
        str,
        typer.Argument(
            metavar="DEST",
            envvar="PYDELTA_DEST",
            show_envvar=False,
            help="The file or folder to make that version.",
        ),
    ],
    tag: Annotated[
        Optional[str],
        typer.Option(
            "--tag",
            "-t",
            envvar="PYDELTA_TAG",
            show_envvar=False,
            help="The tag to pull (default: latest).",
        ),
    ] = None,
    version: Annotated[
        Optional[str],
        typer.Option(
            "--version",
            "-V",
            envvar="PYDELTA_VERSION",
            show_envvar=False,
            help="A version id (or a unique prefix) instead of a tag.",
        ),
    ] = None,
    seed: Annotated[
        Optional[list[str]],
        typer.Option(
            "--seed",
            metavar="PATH",
            help="More local files or folders to take chunks from (repeatable).",
        ),
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Remove files in DEST that are not in the version.")
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            envvar="PYDELTA_QUICK",
            show_envvar=False,
            help="Trust the sizes and times recorded by the last pull (read no file data if they match).",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=256,
            envvar="PYDELTA_JOBS",
            show_envvar=False,
            help="Parallel transfers (requests to the store).",
        ),
    ] = 8,
    endpoint_url: Annotated[
        Optional[str],
        typer.Option(
            "--endpoint-url",
            metavar="URL",
            envvar="PYDELTA_ENDPOINT_URL",
            show_envvar=False,
            help="S3 endpoint, e.g. http://minio:9000 (default: AWS_ENDPOINT_URL or the AWS config).",
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
    near: Annotated[
        Optional[list[str]],
        typer.Option(
            "--near",
            metavar="NEAR_STORE",
            envvar="PYDELTA_NEAR",
            show_envvar=False,
            help="A store to read before STORE (a mirror in the region, a node cache, an HTTP "
            "server; repeatable, tried in order).",
        ),
    ] = None,
    timeout: Annotated[
        Optional[float],
        typer.Option(
            "--timeout",
            min=0.0,
            metavar="SECONDS",
            envvar="PYDELTA_TIMEOUT",
            show_envvar=False,
            help="Give up after this long (waiting for another pull included); exit status 13.",
        ),
    ] = None,
    lock: Annotated[
        bool,
        typer.Option(
            "--lock/--no-lock",
            help="Take the lock beside DEST so concurrent pulls into it download once.",
        ),
    ] = True,
) -> None:
    """Make DEST exactly one version of STORE, downloading only missing chunks.

    Whatever DEST holds (typically the previous version) and the --seed
    paths supply chunks; the rest comes in ranged GETs, in parallel. Each
    file is built beside its target, verified chunk by chunk and whole
    (BLAKE3), and only then renamed into place; an interrupted pull keeps
    what arrived and the rerun fetches only the rest.
    """

    def action() -> None:
        from .store import pull as pull_version

        bar = StoreBar(store_progress(progress, quiet))
        try:
            with Deadline(timeout):
                r = pull_version(
                    store,
                    dest,
                    tag=tag,
                    version=version,
                    seeds=seed or (),
                    delete=delete,
                    quick=quick,
                    jobs=jobs,
                    endpoint_url=endpoint_url,
                    dry_run=dry_run,
                    progress=bar,
                    near=near or (),
                    lock=lock,
                    timeout=timeout,
                )
        finally:
            bar.close()
        if not quiet:
            if dry_run:
                for kind in ("created", "updated", "deleted"):
                    for p in getattr(r, kind):
                        sys.stdout.write(f"{kind[:-1] if kind != 'deleted' else 'delete'}  {p}\n")
            sys.stdout.write(r.summary() + "\n")

    run(action)


@command(
    "ls",
    no_args_is_help=True,
    epilog="\b\nExample:\n  pydelta ls s3://models/llama-7b",
)
def ls_cmd(
    store: Annotated[
        str,
        typer.Argument(
            metavar="STORE", help="A local directory, file:// URL or s3://bucket/prefix."
        ),
    ],
    endpoint_url: EndpointOpt = None,
) -> None:
    """List the versions (oldest first) and tags of STORE."""
    import time as _time

    def action() -> None:
        from .store import ls as list_store

        listing = list_store(store, endpoint_url=endpoint_url)
        out = sys.stdout
        out.write(f"{'version':<16}  {'date (UTC)':<19}  {'files':>6}  {'bytes':>16}  tags\n")
        for v in listing.versions:
            when = _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(v.time))
            out.write(
                f"{v.version[:16]}  {when}  {v.files:>6}  {v.bytes:>16,}  {', '.join(v.tags)}\n"
            )
        known = {v.version for v in listing.versions}
        if listing.tags:
            out.write("\ntag -> version\n")
            for name, vid in sorted(listing.tags.items()):
                out.write(f"{name} -> {vid[:16]}\n")
        for name, vid in sorted(listing.tags.items()):
            if vid not in known:
                out.write(
                    f"pydelta: tag {name} names version {vid[:16]}, which is not in the store\n"
                )

    run(action)


# -- fleet delivery: mirror, tag, diff, gc -----------------------------------

StoreArg = Annotated[
    str,
    typer.Argument(metavar="STORE", help="A local directory, file:// URL or s3://bucket/prefix."),
]


@command(
    "mirror",
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta mirror s3://models-us/llama s3://models-eu/llama\n"
    "  pydelta mirror s3://models/llama /srv/www/llama --tag prod    # served by nginx\n"
    "  pydelta pull s3://models/llama /models/llama --near https://cache.local/llama",
)
def mirror_cmd(
    src: Annotated[
        str,
        typer.Argument(
            metavar="SRC_STORE", help="The store to copy from (http(s):// needs --tag)."
        ),
    ],
    dst: Annotated[
        str,
        typer.Argument(
            metavar="DST_STORE", help="The store to copy to (a local directory is created)."
        ),
    ],
    tag: Annotated[
        Optional[str],
        typer.Option(
            "--tag",
            "-t",
            help="Copy only this tag and its version (default: every version and tag).",
        ),
    ] = None,
    jobs: JobsOpt = 8,
    endpoint_url: Annotated[
        Optional[str],
        typer.Option(
            "--endpoint-url",
            metavar="URL",
            help="S3 endpoint of SRC_STORE (and of DST_STORE unless --dst-endpoint-url).",
        ),
    ] = None,
    dst_endpoint_url: Annotated[
        Optional[str],
        typer.Option("--dst-endpoint-url", metavar="URL", help="S3 endpoint of DST_STORE."),
    ] = None,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Copy versions to another store, sending only the packs it lacks.

    Packs are checked against their ids as they are copied; manifests come
    after their packs and tags last, so the copy never names a version it
    cannot serve.
    """

    def action() -> None:
        from .store import mirror as copy_store

        r = copy_store(
            src,
            dst,
            tag=tag,
            jobs=jobs,
            dry_run=dry_run,
            endpoint_url=endpoint_url,
            dst_endpoint_url=dst_endpoint_url,
        )
        if not quiet:
            sys.stdout.write(r.summary() + "\n")

    run(action)


@command(
    "tag",
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta tag s3://models/llama 3f2a9c1d prod\n"
    "  pydelta tag s3://models/llama latest prod --expect 77aa01be   # promote, if prod is still 77aa01be\n"
    "  pydelta tag s3://models/llama 3f2a9c1d prod --force",
)
def tag_cmd(
    store: StoreArg,
    version: Annotated[
        str,
        typer.Argument(metavar="VERSION", help="A version id, a unique prefix of one, or a tag."),
    ],
    tag: Annotated[str, typer.Argument(metavar="TAG", help="The tag to set or move.")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Write even if the tag moved meanwhile.")
    ] = False,
    expect: Annotated[
        Optional[str],
        typer.Option(
            "--expect",
            metavar="VERSION",
            help="Only if TAG names this version now ('' = only if TAG does not exist).",
        ),
    ] = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Point TAG at VERSION with a conditional write.

    Refuses (exit 9) if the tag moved between our read and our write, or is
    not the version --expect names; --force writes unconditionally.
    """

    def action() -> None:
        from .store import tag as set_tag

        r = set_tag(store, version, tag, force=force, expect=expect, endpoint_url=endpoint_url)
        sys.stdout.write(r.summary() + "\n")

    run(action)


@command(
    "diff",
    no_args_is_help=True,
    epilog="\b\nExample:\n  pydelta diff s3://models/llama v1 v2\n  pydelta diff /mnt/store/llama 3f2a9c1d latest",
)
def diff_cmd(
    store: StoreArg,
    old: Annotated[str, typer.Argument(metavar="V1", help="A version id, prefix or tag.")],
    new: Annotated[str, typer.Argument(metavar="V2", help="A version id, prefix or tag.")],
    endpoint_url: EndpointOpt = None,
) -> None:
    """What changed from V1 to V2: files added, removed and changed, and the
    bytes of V2 in chunks V1 lacks (what a pull holding V1 downloads)."""

    def action() -> None:
        from .store import diff as diff_versions

        sys.stdout.write(diff_versions(store, old, new, endpoint_url=endpoint_url).summary() + "\n")

    run(action)


@command(
    "gc",
    no_args_is_help=True,
    epilog="\b\nExample:\n"
    "  pydelta gc s3://models/llama --keep-last 5 --keep-tagged --dry-run\n"
    "  pydelta gc s3://models/llama --keep-last 5 --keep-tagged\n"
    "\b\nSafe against pushes running at the same time as long as every push finishes\n"
    "within the grace period: a pack nothing uses is first hidden from new pushes,\n"
    "and deleted only by a gc at least the grace period later, if still unused.",
)
def gc_cmd(
    store: StoreArg,
    keep_last: Annotated[
        Optional[int],
        typer.Option("--keep-last", min=0, metavar="N", help="Keep the N most recent versions."),
    ] = None,
    keep_tagged: Annotated[
        bool, typer.Option("--keep-tagged", help="Keep every version a tag names.")
    ] = False,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0.0,
            metavar="SECONDS",
            help="Longer than any push takes (default 6 hours).",
        ),
    ] = 6 * 3600.0,
    repack: Annotated[
        bool,
        typer.Option(
            "--repack/--no-repack",
            help="Repack packs whose live chunks are under half their bytes.",
        ),
    ] = True,
    jobs: JobsOpt = 8,
    endpoint_url: EndpointOpt = None,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Delete versions outside the policy and the packs no version uses.

    With neither --keep-last nor --keep-tagged every version is kept and only
    unused packs go. Versions younger than the grace period are always kept.
    """

    def action() -> None:
        from .store import gc as collect

        r = collect(
            store,
            keep_last=keep_last,
            keep_tagged=keep_tagged,
            grace=grace,
            repack=repack,
            dry_run=dry_run,
            jobs=jobs,
            endpoint_url=endpoint_url,
        )
        if not quiet:
            sys.stdout.write(r.summary() + "\n")

    run(action)
