"""The driving end of a sync: the plan (what to create, update, skip, delete)
over any channel; :func:`sync` runs it over ssh. The per-file exchanges are
in :mod:`.exchange`, the two ends' file systems in :mod:`.endpoints`.

One end runs :class:`SyncClient` (the ``pydelta sync`` command, or a script),
the other runs :func:`~pydelta.serve` (``pydelta serve``, started over ssh).
Per file only its signature and the delta cross the wire, and a failure
anywhere - a dropped connection, a remote error, a result that does not
verify - leaves the destination as it was.
"""

from __future__ import annotations

import os
import time
from typing import IO, Any, Dict, Optional, Sequence, Tuple, Union

from .._threads import resolve_threads
from .._version import __version__
from ..delta import use_compression
from ..errors import FileAccessError, SyncError, UsageError, message
from ..formats.literals import DEFAULT_LEVEL
from . import compare, fs, shortsig
from .bwlimit import TokenBucket, parse_rate
from .endpoints import Endpoint, Local, Remote
from .exchange import FileExchange
from .itemize import annotate
from .messages import FEATURES, PROTOCOL, Bye, Hello, agree_features, encode
from .options import RunOptions, listings, sync_link
from .report import (
    QUICK,
    SyncedFile,
    SyncProgress,
    SyncReport,
    planned,
    same_size_and_time,
)
from .sigcache import SigCache
from .ssh import SSHChannel, parse_location, ssh_argv
from .wire import DEFAULT_TIMEOUT, Channel, Failed


class Session(FileExchange):
    """The driving end of a sync over a :class:`~pydelta.sync.wire.Channel`
    (a :class:`SyncClient` over a pair of streams, or :func:`sync` over ssh).

    Says hello at once; ``push``/``pull`` then run whole syncs, ``close``
    says goodbye.
    """

    def __init__(
        self,
        ch: Channel,
        *,
        progress: SyncProgress = None,
        threads: Optional[int] = None,
        compress: Optional[bool] = None,
        level: int = DEFAULT_LEVEL,
        fsync: bool = True,
        bwlimit: Union[None, int, str] = None,
        sig_cache: bool = True,
        refine: bool = True,
    ) -> None:
        resolve_threads(threads)
        use_compression(compress, level)
        rate = parse_rate(bwlimit) if isinstance(bwlimit, str) else bwlimit
        if rate is not None and (not isinstance(rate, int) or rate <= 0):
            raise UsageError(f"bwlimit must be a positive number of bytes/s, not {bwlimit!r}")
        #: bytes/s both ends' writes are held to (--bwlimit), or None
        self.bwlimit = rate
        if rate:
            ch.limiter = TokenBucket(rate)
        self._opts = RunOptions()
        self._ch = ch
        self._progress = progress
        self._threads = threads
        self._compress = compress
        self._level = level
        self._fsync = fsync
        #: whether receiving ends may use their signature cache (.sigcache)
        self._sig_cache = sig_cache
        self._cache = SigCache.open(sig_cache)  # ours, when we receive (pull)
        self._closed = False
        self._bytes_done = 0  # bytes of the source's files dealt with, for progress
        self._known = compare.Known()
        # the local source folder's digests, hashed while the session started
        # (sync() sets it; used by the next push of that folder, then closed)
        self._ahead: Optional[compare.SourceDigests] = None
        ch.send_magic()
        offer = FEATURES if refine else FEATURES - {"refine"}
        ch.send_json(encode(Hello(PROTOCOL, __version__, sorted(offer), rate)))
        ch.expect_magic()
        reply = ch.recv_json()
        #: the pydelta version of the serving end
        version = reply.get("version")
        self.remote_version: Optional[str] = version if isinstance(version, str) else None
        #: the optional protocol features both ends speak (see messages.FEATURES)
        self.features = agree_features(reply.get("features")) & offer
        if self._cache is not None:  # sign and serve in the kind we ask for (.shortsig)
            self._cache.strong_hash = shortsig.signing_hash(self.features)
        self._local = Local()
        self._remote = Remote(ch)

    # -- public -----------------------------------------------------------------
    def push(
        self,
        src: str,
        dest: str,
        *,
        delete: bool = False,
        quick: bool = False,
        dry_run: bool = False,
        **options: Any,
    ) -> SyncReport:
        """Make ``dest`` on the far end a copy of the local ``src`` (file or folder).

        ``delete``, ``quick``, ``dry_run`` and ``exclude``, ``include``,
        ``links``, ``copy_links`` are as for :func:`sync`.
        """
        self._opts = RunOptions.make(**options)
        return self._run(self._local, self._remote, os.fspath(src), dest, delete, quick, dry_run)

    def pull(
        self,
        src: str,
        dest: str,
        *,
        delete: bool = False,
        quick: bool = False,
        dry_run: bool = False,
        **options: Any,
    ) -> SyncReport:
        """Make the local ``dest`` a copy of ``src`` on the far end (file or folder).

        ``delete``, ``quick``, ``dry_run`` and ``exclude``, ``include``,
        ``links``, ``copy_links`` are as for :func:`sync`.
        """
        self._opts = RunOptions.make(**options)
        return self._run(self._remote, self._local, src, os.fspath(dest), delete, quick, dry_run)

    def close(self) -> None:
        """Say goodbye to the serving end (it then exits)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._ch.send_json(encode(Bye()))
            self._ch.recv_json()
        finally:
            self._ch.release()  # the caller's stream back in blocking mode (wire timeout)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

    # -- the plan ---------------------------------------------------------------
    def _run(
        self,
        s_ep: Endpoint,
        d_ep: Endpoint,
        src: str,
        dest: str,
        delete: bool,
        quick: bool,
        dry_run: bool = False,
    ) -> SyncReport:
        push = not s_ep.remote
        peer = self._ch.peer
        report = SyncReport(
            src=src if push else f"{peer}:{src}",
            dest=f"{peer}:{dest}" if push else dest,
            dry_run=dry_run,
            bwlimit=self.bwlimit,
        )
        t0 = time.perf_counter()
        sent0, recv0 = self._ch.sent, self._ch.received
        lim = self._ch.limiter
        slept0 = lim.slept if lim is not None else 0.0
        self._bytes_done = 0
        self._listed: tuple = ({}, {})  # (source, destination) entries, for annotate
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not (push and ahead.root == src):
            ahead.close()
            ahead = None
        if push and ahead is None:  # this end's digests, hashed when asked for (.compare)
            ahead = compare.SourceDigests(src, self._threads, self._opts.links, walk=False)
        self._known = compare.Known(ahead)
        try:
            self._plan_and_go(s_ep, d_ep, src, dest, delete, quick, push, report, ahead)
        finally:
            if ahead is not None:
                ahead.close()
            annotate(report, *self._listed, push)
            report.seconds = time.perf_counter() - t0
            report.bytes_sent = self._ch.sent - sent0
            report.bytes_received = self._ch.received - recv0
            report.bwlimit_seconds = (lim.slept - slept0) if lim is not None else 0.0
        if report.failed and not report.dry_run:
            first = report.failed[0]
            more = f" (and {len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
            raise SyncError(f"{first.path}: {first.message}{more}", report)
        return report

    def _plan_and_go(
        self,
        s_ep: Endpoint,
        d_ep: Endpoint,
        src: str,
        dest: str,
        delete: bool,
        quick: bool,
        push: bool,
        report: SyncReport,
        ahead: Optional[compare.SourceDigests] = None,
    ) -> None:
        where = "" if push else f"{self._ch.peer}:"
        s = s_ep.stat(src)
        if s["type"] == "missing":
            raise FileAccessError(f"{where}{src}: no such file or directory")
        if s["type"] == "other":
            raise FileAccessError(
                f"{where}{src}: {s.get('why', 'not a regular file or directory')}"
            )
        d = d_ep.stat(dest)
        if s["type"] == "file":
            if d["type"] == "dir" or dest.endswith("/"):
                root, name = dest, os.path.basename(src.rstrip("/"))
            else:
                root, name = os.path.dirname(dest) or ".", os.path.basename(dest)
            if not self._opts.filter.included(name, False):
                return  # excluded: nothing to do (as rsync)
            report.total_size = s["size"]
            t = d if d["type"] == "file" and not dest.endswith("/") else None
            self._listed = ({name: s}, {name: t} if t else {})
            if report.dry_run:
                t = (
                    d
                    if d["type"] != "dir" and not dest.endswith("/")
                    else d_ep.stat(os.path.join(root, name))
                )
                report.files.append(planned(name, s, t if t["type"] != "missing" else None, quick))
                return
            d_ep.mkdir(root)
            if quick and d["type"] != "dir" and same_size_and_time(s, d):
                report.files.append(SyncedFile(name, "unchanged", s["size"], message=QUICK))
            elif push:
                self._push_file(src, root, name, name, s, report)
            else:
                self._pull_file(
                    os.path.dirname(src) or ".", os.path.basename(src), root, name, s, report
                )
            return
        # a folder
        if d["type"] not in ("dir", "missing"):
            raise FileAccessError(f"{dest} exists and is not a directory")
        linkable = "links" in self.features
        entries, have = listings(s_ep, d_ep, src, dest, d["type"] == "dir", self._opts, linkable)
        self._listed = ({e["path"]: e for e in entries}, have)
        report.total_size = sum(e["size"] for e in entries if e["type"] == "file")
        if not report.dry_run:
            d_ep.mkdir(dest)
        same: Dict[str, SyncedFile] = {}  # already the same by digest (feature "compare")
        cmp: Optional[compare.Comparison] = None  # ... or found so as we go ("compare-ahead")
        if push and not report.dry_run and not quick and compare.FEATURE in self.features:
            cmp = self._comparison(dest, entries, have, ahead)
            if cmp is None:
                follow = self._opts.links == "copy"
                same = compare.same_files(
                    self._call, src, dest, entries, have, self._threads, follow, ahead, self._known
                )
        if ahead is not None and cmp is None:
            ahead.close()  # whatever it did not finish is not needed
        later = {e["path"] for e in cmp.cands} if cmp is not None else set()
        first = len(report.files)
        for e in entries:
            rel = e["path"]
            if e["type"] == "other":
                report.files.append(SyncedFile(rel, "skipped", message=e.get("why", "")))
            elif e["type"] == "link":
                report.files.append(sync_link(d_ep, dest, e, have.get(rel), report.dry_run))
            elif report.dry_run:
                if e["type"] == "file":
                    report.files.append(planned(rel, e, have.get(rel), quick))
                elif have.get(rel, {}).get("type") != "dir":
                    report.files.append(SyncedFile(rel + "/", "created", kind="dir"))
            elif e["type"] == "dir":
                if have.get(rel, {}).get("type") != "dir":
                    with Failed() as f:
                        d_ep.mkdir(dest, rel)
                    report.files.append(
                        SyncedFile(rel + "/", "created", kind="dir")
                        if f.error is None
                        else SyncedFile(rel + "/", "failed", message=message(f.error), kind="dir")
                    )
            elif rel in same:
                report.files.append(same[rel])
                self._bytes_done += e["size"]
            elif rel in later:
                continue  # compared as the far end's digests come, below
            elif quick and same_size_and_time(e, have.get(rel)):
                report.files.append(SyncedFile(rel, "unchanged", e["size"], message=QUICK))
                self._bytes_done += e["size"]
            else:
                if push:
                    self._push_file(os.path.join(src, rel), dest, rel, rel, e, report)
                else:
                    self._pull_file(src, rel, dest, rel, e, report)
                self._bytes_done += e["size"]
        if cmp is not None:
            self._compare_ahead(cmp, src, dest, report)
            order = {e["path"]: i for i, e in enumerate(entries)}
            report.files[first:] = sorted(
                report.files[first:], key=lambda x: order.get(x.path.rstrip("/"), len(order))
            )
        if delete and not report.failed:
            keep = {e["path"]: e["type"] for e in entries}
            blocked = [p + "/" for p, t in keep.items() if t != "dir"]
            for rel in sorted(have, reverse=True):  # children before their parent
                if rel in keep or any(rel.startswith(b) for b in blocked):
                    continue
                if report.dry_run:
                    report.files.append(
                        SyncedFile(rel, "deleted", message="dry run: would be deleted")
                    )
                    continue
                with Failed() as f:
                    d_ep.delete(dest, rel)
                    report.files.append(SyncedFile(rel, "deleted"))
                if f.error is not None:
                    report.files.append(SyncedFile(rel, "failed", message=message(f.error)))


class SyncClient(Session):
    """The driving end of a sync over a channel you provide.

    :func:`sync` uses this over ssh; use it directly over a channel of your
    own whose other end runs :func:`serve` (``pydelta serve``). Paths on the
    far end are as that end sees them (relative ones from its working
    directory, ``~`` expanded).

    Args:
        rfile: readable binary stream from the serving end.
        wfile: writable binary stream to the serving end.
        peer: how messages name the far end.
        progress: called with a :class:`SyncStatus` as files move.
        threads: threads for hashing and scanning on this side (default all cores).
        compress: zstd-compress literal data: ``None`` (default) while the link
            is slower than compressing, ``True`` always, ``False`` never.
        level: zstd level.
        fsync: make each written file durable before it replaces its target.
        bwlimit: hold each end's writes to this many bytes/s (see :func:`sync`).
        sig_cache: let the receiving end use its signature cache (see :func:`sync`).
        refine: refinement rounds for blocks that did not match (see :func:`sync`).
        timeout: the most seconds to wait for the far end's next byte (see
            :func:`sync`); timed only when rfile is a pipe or socket file.

    Example:
        >>> import paramiko, pydelta  # doctest: +SKIP
        >>> stdin, stdout, _ = ssh_client.exec_command("pydelta serve")  # doctest: +SKIP
        >>> with pydelta.SyncClient(stdout, stdin, peer="gpu-node") as c:  # doctest: +SKIP
        ...     print(c.push("models/llama", "/data/models/llama"))
    """

    def __init__(
        self,
        rfile: IO[bytes],
        wfile: IO[bytes],
        *,
        peer: str = "the remote side",
        progress: SyncProgress = None,
        threads: Optional[int] = None,
        compress: Optional[bool] = None,
        level: int = DEFAULT_LEVEL,
        fsync: bool = True,
        bwlimit: Union[None, int, str] = None,
        sig_cache: bool = True,
        refine: bool = True,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(
            Channel(rfile, wfile, peer, timeout),
            progress=progress,
            threads=threads,
            compress=compress,
            level=level,
            fsync=fsync,
            bwlimit=bwlimit,
            sig_cache=sig_cache,
            refine=refine,
        )

    def __enter__(self) -> "SyncClient":
        return self


def sync(
    src: Union[str, "os.PathLike[str]"],
    dest: Union[str, "os.PathLike[str]"],
    *,
    ssh: Union[str, Sequence[str]] = "ssh",
    remote_cmd: str = "pydelta",
    delete: bool = False,
    quick: bool = False,
    dry_run: bool = False,
    progress: SyncProgress = None,
    threads: Optional[int] = None,
    compress: Optional[bool] = None,
    level: int = DEFAULT_LEVEL,
    fsync: bool = True,
    exclude: Optional[Sequence[str]] = None,
    include: Optional[Sequence[str]] = None,
    links: bool = False,
    copy_links: bool = False,
    bwlimit: Union[None, int, str] = None,
    filter_rules: Optional[Sequence[Tuple[str, str]]] = None,
    sig_cache: bool = True,
    refine: bool = True,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
) -> SyncReport:
    """Make ``dest`` a copy of ``src`` where one of them is ``[user@]host:path``.

    Over one ssh connection the far end runs ``<remote_cmd> serve``; per
    file only its signature and the delta cross the wire. A missing file is
    sent whole (compressed, verified), an unchanged one costs its signature.
    A folder is synced recursively: missing directories are created,
    special files are skipped (and reported), and symbolic links too unless
    ``links`` or ``copy_links``. Each file replaces its target only once verified, with the
    source's permission bits and modification time.

    ``dest`` names what the source becomes (``sync model/ host:models/model``
    mirrors the folder into ``models/model``); a single file whose ``dest``
    is an existing directory, or ends in '/', goes inside it. Missing parent
    directories are created.

    Args:
        src, dest: local path and ``[user@]host:path``, either way round.
        ssh: the ssh command and options, like rsync's ``-e``
            (e.g. ``"ssh -p 2222 -i key"``), as one string or a list.
        remote_cmd: how to run pydelta on the far end (a path or a shell
            command, e.g. ``"~/venv/bin/pydelta"``).
        delete: remove files and folders in ``dest`` that are not in ``src``
            (only if every file synced).
        quick: skip files whose size and modification time already match
            (rsync's default quick check; sync keeps modification times, so
            after one sync only changed files are read). Without it every
            file is compared by content (its signature).
        dry_run: change nothing; the report lists what would be created,
            compared/updated, skipped and deleted (from the listings alone).
        progress: called with a :class:`SyncStatus` (file and total bytes done).
        compress: ``None`` (default) compresses literal data only while the
            link is slower than compressing it (measured as it goes);
            ``True`` always, ``False`` never.
        threads, level: as for :func:`pydelta.delta`.
        fsync: make each result durable before it replaces its target.
        exclude, include: rsync-like patterns (see :mod:`pydelta.sync.filters`);
            includes are tried before excludes, first match wins;
            ``filter_rules`` gives a mixed order as ("include"|"exclude",
            pattern) pairs, tried first. Excluded files at ``dest`` are not
            deleted.
        links: recreate symbolic links as links (rsync ``-l``), only relative
            ones that stay inside the tree; others are skipped and reported.
        copy_links: send what links point to as regular files and folders
            (rsync ``-L``), when that is inside the tree.
        bwlimit: hold what each end writes to this rate: an int in bytes/s,
            or a string as rsync's ``--bwlimit`` (``"10M"``; a bare number is
            KiB/s).
        sig_cache: the receiving end keeps the signatures of large files it
            signed or wrote and reuses one while the file's device, inode,
            size, mtime and ctime are unchanged (results are verified either
            way); ``False`` (``--no-sig-cache``) makes and keeps none. Where
            it lives: :mod:`pydelta.sync.sigcache`.
        refine: where blocks did not match, ask for finer signatures of the
            old data around them (rounds that stop when they do not pay;
            used only if the far end speaks it).
        timeout: give up (ConnectionLostError) when the far end sends
            nothing for this many seconds while we wait for it (default 30
            minutes: a far end verifying a very large file in place on a
            slow disk is silent for its size over the disk's speed); 0 or
            None waits for ever. The far end applies its own default
            (``$PYDELTA_SYNC_TIMEOUT`` there) inside each request.

    Returns:
        :class:`SyncReport`: per file, bytes sent and received, size of the
        files, time; ``str(report)`` is an rsync-like summary.

    Raises:
        SyncError: some files failed (``e.report`` says which); the others
            were synced, the failed ones keep their old content.
        RemoteCommandError: ssh failed, or pydelta is not installed there.
        ConnectionLostError: the connection broke, or the far end was
            silent for ``timeout`` seconds; a rerun completes.

    Example:
        >>> import pydelta
        >>> r = pydelta.sync("model.safetensors", "gpu1:/models/model.safetensors")  # doctest: +SKIP
        >>> print(r)  # doctest: +SKIP
        1 file: 0 created, 1 updated, 0 unchanged, 0 deleted
        sent 23,458,905 bytes  received 787,204 bytes  3,067,513.88 bytes/sec
        total size is 1,073,562,897  speedup is 44.28
    """
    s_host, s_path = parse_location(src)
    d_host, d_path = parse_location(dest)
    if (s_host is None) == (d_host is None):
        raise UsageError(
            "exactly one of SRC and DEST must be remote ([user@]host:path)"
            if s_host is None
            else "SRC and DEST cannot both be remote"
        )
    host = s_host or d_host
    assert host is not None
    if not remote_cmd or not remote_cmd.strip():
        raise UsageError("the remote command is empty")
    # bad patterns or rates are usage errors before anything connects
    run_opts = RunOptions.make(exclude, include, links, copy_links, filter_rules)
    if isinstance(bwlimit, str):
        bwlimit = parse_rate(bwlimit)
    if timeout is not None and not 0 <= timeout < float("inf"):
        raise UsageError(f"the timeout must be a number of seconds >= 0 (0: none), not {timeout}")
    argv = ssh_argv(ssh) + [host, f"{remote_cmd} serve"]
    ahead = None
    if s_host is None and not quick and not dry_run and os.path.isdir(fs.expand(s_path)):
        # a folder push compares by content: hash ours while ssh connects (.compare)
        ahead = compare.SourceDigests(s_path, threads, run_opts.links)
    ch = SSHChannel(argv, host, remote_cmd, timeout)
    clean = False  # the far end was told goodbye: let ssh exit by itself
    try:
        session = Session(
            ch,
            progress=progress,
            threads=threads,
            compress=compress,
            level=level,
            fsync=fsync,
            bwlimit=bwlimit,
            sig_cache=sig_cache,
            refine=refine,
        )
        ch.started = True
        session._ahead, ahead = ahead, None
        opts: Dict[str, Any] = dict(
            delete=delete,
            quick=quick,
            dry_run=dry_run,
            exclude=exclude,
            include=include,
            links=links,
            copy_links=copy_links,
            rules=filter_rules,
        )
        with Failed() as f:
            if s_host is None:
                report = session.push(s_path, d_path, **opts)
            else:
                report = session.pull(s_path, d_path, **opts)
        if f.error is not None:
            session.close()  # the session is still in step: end it politely
            clean = True
            raise f.error
        session.close()
        clean = True
    finally:
        if ahead is not None:
            ahead.close()
        if clean:
            ch.finish()
        else:
            ch.kill()
    return report
