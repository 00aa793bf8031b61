"""One file's exchange on the driving end of a sync: push (we send the
delta against the far end's signature) and pull (we send our signature and
patch from its delta), each with its line of the report; and a folder push's
files sent as a comparison by digest finds them different (.compare).

:class:`FileExchange` holds these steps; :class:`~pydelta.sync.client.Session`
(the plan) inherits them.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Dict, Iterator, List, Optional

from ..errors import RemoteError, message
from ..results import Progress
from . import compare, fs, presign, shortsig
from .compare import Known
from .messages import FileMeta, Get, Put, encode
from .options import RunOptions, got_stats
from .pipeline import prehashing
from .report import SyncedFile, SyncProgress, SyncReport, SyncStatus
from .resume import after_prefix, answer_offer
from .sigcache import MIN_FILE, SigCache
from .transfer import Incoming, receive, recv_signature, send_delta
from .wire import Channel, Failed


class FileExchange:
    """The per-file push and pull of a session (mixed into Session)."""

    _ch: Channel
    _opts: RunOptions
    _progress: SyncProgress
    _threads: Optional[int]
    _compress: Optional[bool]
    _level: int
    _fsync: bool
    _sig_cache: bool
    _cache: Optional[SigCache]
    _bytes_done: int
    _known: Known  #: digests of NEW the comparison computed (feature "compare")
    features: frozenset

    def _call(self, msg: Dict[str, Any]) -> Dict[str, Any]:
        """One raw request and its reply (a FAIL raises RemoteError)."""
        self._ch.send_json(msg)
        return self._ch.recv_json()

    def _file_progress(self, label: str, size: int, report: SyncReport) -> Progress:
        """The file's progress callback (bytes of it done); says "signature" at once."""
        cb = self._progress
        if cb is None:
            return None
        before = self._bytes_done
        total = report.total_size

        def update(done: int) -> None:
            cb(SyncStatus(label, done, size, before + min(done, size), total))

        cb(SyncStatus(label, 0, size, before, total, "signature"))
        return update

    @contextlib.contextmanager
    def _entry(self, label: str, size: int, report: SyncReport) -> Iterator[SyncedFile]:
        """One file's line of the report: a failure of this file alone (the
        session still in step) is recorded there; a broken session is raised."""
        ch = self._ch
        sent0, recv0 = ch.sent, ch.received
        entry = SyncedFile(label, "failed", size=size)
        report.files.append(entry)
        try:
            with Failed() as f:
                yield entry
        finally:
            entry.sent, entry.received = ch.sent - sent0, ch.received - recv0
        if isinstance(f.error, RemoteError):
            entry.message = f"{ch.peer}: {f.error}"
        elif f.error is not None:
            entry.message = message(f.error)

    def _push_file(
        self, local: str, root: str, rel: str, label: str, meta: Dict[str, Any], report: SyncReport
    ) -> None:
        ch = self._ch
        with self._entry(label, meta.get("size", 0), report) as entry:
            follow = self._opts.links == "copy"
            # NEW's digest: the comparison's (.compare), else computed while the
            # far end signs its copy (.pipeline)
            with (
                fs.open_source(fs.expand(local), follow=follow) as fh,
                prehashing(fh, self._threads, self._known.take(rel, fh.fileno())) as take,
            ):
                size = os.fstat(fh.fileno()).st_size
                # short and/or XXH3 strong sums first; once more, full-length
                # BLAKE3, if the result failed its digest (.shortsig)
                for strong, kind in shortsig.attempts(self.features):
                    fh.seek(0)
                    ch.send_json(
                        encode(
                            Put(
                                root,
                                rel,
                                meta.get("mode"),
                                meta.get("mtime_ns"),
                                self._fsync,
                                size,
                                self._sig_cache,
                                strong,
                                kind if shortsig.XXH3 in self.features else None,
                            )
                        )
                    )
                    progress = self._file_progress(label, entry.size, report)
                    reply = ch.recv_json()
                    sig = recv_signature(ch)
                    skip = answer_offer(
                        ch, fh, reply.get("resume"), size
                    )  # (it offers: resume agreed)
                    if skip and progress is not None:
                        progress = functools.partial(after_prefix, progress, skip)
                    with Failed() as f:
                        stats = send_delta(
                            ch,
                            sig,
                            fh,
                            progress=progress,
                            threads=self._threads,
                            compress=self._compress,
                            level=self._level,
                            digest=take(),
                            refine="refine" in self.features,
                        )
                    if f.error is not None:
                        ch.send_fail(message(f.error))  # the server drops the file
                        raise f.error
                    entry.size = skip + stats.new_size
                    entry.literal, entry.matched = stats.literal, stats.copied + skip
                    answer = ch.recv_json()
                    action = shortsig.put_action(answer, ch.peer, shortsig.may_retry(strong, kind))
                    if action is not None:
                        entry.action = action
                        break
                    entry.message = shortsig.retried(answer.get("error"))
                if progress is not None:
                    progress(entry.size)

    def _pull_file(
        self,
        root: str,
        rel: str,
        local_root: str,
        local_rel: str,
        meta: Dict[str, Any],
        report: SyncReport,
    ) -> None:
        ch = self._ch
        with self._entry(local_rel, meta.get("size", 0), report) as entry:
            for strong, kind in shortsig.attempts(self.features):  # see _push_file
                inc = Incoming(
                    fs.expand(local_root),
                    local_rel,
                    fsync=self._fsync,
                    threads=self._threads,
                    name=f"from {ch.peer}",
                    cache=self._cache,
                )
                try:
                    follow = self._opts.links == "copy" and "links" in self.features
                    ch.send_json(encode(Get(root, rel, self._compress, self._level, follow)))
                    got = FileMeta.parse(ch.recv_json(), ch.peer, repr(rel))
                    entry.size = got.size
                    inc.max_size = got.size  # the result may not be larger than announced
                    inc.mode = got.mode
                    inc.mtime_ns = got.mtime_ns
                    inc.progress = progress = self._file_progress(local_rel, entry.size, report)
                    offer = inc.resume_offer() if "resume" in self.features else None
                    if offer is not None:
                        ch.send_json({"op": "resume", **offer})
                    with Failed() as f:
                        ch.send_stream(inc.signature(strong, kind))
                    if f.error is not None:
                        ch.send_fail(message(f.error))  # the server sends no delta
                        raise f.error
                    if offer is not None:
                        inc.resume_answer(ch.recv_json())
                    with Failed() as f:
                        entry.action = receive(ch, inc, refine="refine" in self.features)
                    if "stats" in self.features and not isinstance(f.error, RemoteError):
                        got_stats(ch.recv_json(), entry)  # sent after the delta stream
                    if f.error is not None:
                        entry.action = "failed"
                        if shortsig.may_retry(strong, kind) and shortsig.retryable(f.error):
                            entry.message = shortsig.retried(message(f.error))
                            continue  # once more, full-length (.shortsig)
                        raise f.error
                    if progress is not None:
                        progress(entry.size)
                    break
                finally:
                    inc.close()

    def _comparison(
        self,
        dest: str,
        entries: List[Dict[str, Any]],
        have: Dict[str, Dict[str, Any]],
        ahead: Optional[compare.SourceDigests],
    ) -> Optional[compare.Comparison]:
        """Start the far end hashing the candidates (feature "compare-ahead"),
        or None (not spoken, nothing to compare, refused)."""
        cands = compare.candidates(entries, have)
        if compare.AHEAD not in self.features or ahead is None or not cands:
            return None
        ahead.keep({e["path"] for e in cands})
        sign = None
        if presign.FEATURE in self.features and self._sig_cache:

            def sign(rels: List[str]) -> None:
                with contextlib.suppress(RemoteError):
                    self._call({"op": "presign", "root": dest, "files": rels})

            # the files of another size go first, while the far end hashes:
            # it signs those it has, in that order, ahead of their turn (all
            # but the first, whose put comes at once)
            later = {e["path"] for e in cands}
            updates = [
                e["path"]
                for e in entries
                if e["type"] == "file"
                and e["path"] not in later
                and have.get(e["path"], {}).get("type") == "file"
                and have[e["path"]].get("size", 0) >= MIN_FILE
            ]
            if len(updates) > 1:
                sign(updates[1:])
        try:
            return compare.Comparison(self._call, dest, cands, ahead, self._known, sign)
        except RemoteError:
            return None

    def _compare_ahead(
        self, cmp: compare.Comparison, src: str, dest: str, report: SyncReport
    ) -> None:
        """Send each candidate found different as soon as both digests for it
        are known (the far end hashes on meanwhile), then settle the same ones."""
        for e in cmp.different():
            self._push_file(os.path.join(src, e["path"]), dest, e["path"], e["path"], e, report)
            self._bytes_done += e["size"]
        lines, refused = cmp.touch()
        for e in cmp.cands:
            if e["path"] in lines:
                report.files.append(lines[e["path"]])
                self._bytes_done += e["size"]
        for e in refused:  # changed there since hashed: the usual exchange
            self._push_file(os.path.join(src, e["path"]), dest, e["path"], e["path"], e, report)
            self._bytes_done += e["size"]
