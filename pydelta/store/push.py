"""push: store a file or a folder as a new version, uploading only new chunks.

Order of writes, which is what makes an interrupted push harmless:

1. packs (each pack object, then its index) - in parallel, ``jobs`` at a
   time, each built in a spool file on disk, so memory stays at a few
   chunks per worker whatever the pack size;
2. the manifest, once every pack it names is stored (create-only: the same
   content gives the same id, and an existing manifest is left alone);
3. the tag, with a compare-and-swap write (``If-Match`` on S3), so two
   pushes racing for a tag each either move it to their own complete
   version or fail with TagConflictError - never a tag pointing at a
   version whose packs are missing.

A push that stops before step 2 leaves no visible version; its complete
packs (those with an index) are found by the rerun's index and not sent
again.

Which chunks are new is decided from the store's pack indexes
(:mod:`.index`), not by a request per chunk.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from array import array
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, List, Optional, Tuple

from ..errors import FileAccessError, StoreError, StoreNotFoundError, UsageError
from ..formats import manifest as mf
from .base import CREATE, SWAP, EmptyStore, Store
from .chunker import ChunkParams, chunk_stream
from .digests import HASH_LEN, ChunkTable
from .index import load_index
from .packs import (
    DEFAULT_LEVEL,
    DEFAULT_PACK_SIZE,
    ChunkCodec,
    PackWriter,
    blake3,
    index_key,
    pack_key,
)
from .report import Progress, PushReport
from .stores import ensure_config, open_store, read_config, tag_key, version_key

ProgressFn = Callable[[Progress], None]


def collect_files(src: str) -> Tuple[List[Tuple[str, str]], bool, List[str]]:
    """([(relative POSIX path, absolute path)], single file?, skipped) of SRC.

    A folder is walked recursively in sorted order; symbolic links and
    special files are skipped (listed in ``skipped``), never followed.
    """
    try:
        st = os.stat(src)
    except OSError as e:
        raise FileAccessError(f"cannot read {src}: {e.strerror or e}") from None
    if stat.S_ISREG(st.st_mode):
        return [(os.path.basename(os.path.abspath(src)), os.path.abspath(src))], True, []
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{src} is neither a file nor a folder")
    root = os.path.abspath(src)
    files: List[Tuple[str, str]] = []
    skipped: List[str] = []

    def walk(d: str, rel: str) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            raise FileAccessError(f"cannot read folder {d}: {e.strerror or e}") from None
        for e in entries:
            r = f"{rel}{e.name}"
            if e.is_symlink():
                skipped.append(r)
            elif e.is_dir(follow_symlinks=False):
                walk(e.path, r + "/")
            elif e.is_file(follow_symlinks=False):
                try:
                    mf.check_path(r)
                except StoreError:
                    skipped.append(r)
                    continue
                files.append((r, e.path))
            else:
                skipped.append(r)

    walk(root, "")
    return files, False, skipped


class _Uploads:
    """Pack uploads in parallel, at most ``jobs`` at a time (the caller blocks)."""

    def __init__(self, store: Store, jobs: int) -> None:
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pydelta-push")
        self.slots = threading.Semaphore(jobs)
        self.futures: List[Future] = []
        self.bytes = 0
        self.packs = 0
        self._lock = threading.Lock()
        self.on_done: Optional[Callable[[int], None]] = None

    def submit(self, writer: PackWriter) -> Tuple[bytes, mf.PackIndex]:
        pack_id, idx = writer.finish()
        self.check()
        self.slots.acquire()

        def run() -> None:
            try:
                data = mf.encode_pack_index(idx, blake3)
                self.store.put_file(pack_key(pack_id), writer.path)
                self.store.put(index_key(pack_id), data)
                with self._lock:
                    self.bytes += idx.pack_size + len(data)
                    self.packs += 1
                if self.on_done is not None:
                    self.on_done(idx.pack_size + len(data))
            finally:
                writer.discard()
                self.slots.release()

        self.futures.append(self.pool.submit(run))
        return pack_id, idx

    def check(self) -> None:
        """Raise the first failed upload's error, if any."""
        for f in self.futures:
            if f.done() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]

    def wait(self) -> None:
        for f in self.futures:
            f.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def push(
    src: "str | os.PathLike[str]",
    store: str,
    *,
    tag: Optional[str] = "latest",
    jobs: int = 8,
    pack_size: int = DEFAULT_PACK_SIZE,
    chunk_avg: Optional[int] = None,
    chunker: Optional[ChunkParams] = None,
    level: int = DEFAULT_LEVEL,
    compress: bool = True,
    dry_run: bool = False,
    endpoint_url: Optional[str] = None,
    progress: Optional[ProgressFn] = None,
) -> PushReport:
    """Store SRC (a file or a folder) as a new version and point ``tag`` at it.

    Only chunks the store does not already hold are uploaded, in packs of
    about ``pack_size`` bytes, ``jobs`` uploads at a time. The version id is
    the BLAKE3 of its manifest, so pushing the same content twice gives the
    same version (and uploads nothing).

    Args:
        src: a file, or a folder (recursive; symbolic links are skipped).
        store: a local directory, ``file://`` URL or ``s3://bucket/prefix``.
        tag: the tag to point at the new version (None: move no tag).
        jobs: parallel uploads (and compression threads).
        pack_size: bytes per pack object.
        chunk_avg: average chunk size for a new store (a power of two;
            default 256 KiB, min = avg / 4, max = avg * 4); an existing
            store keeps its own.
        chunker: all three chunk sizes for a new store, instead of
            ``chunk_avg`` (min = avg = max cuts fixed-size pieces).
        level: zstd level for chunks (1..22).
        compress: try compressing chunks (stored raw when it does not pay).
        dry_run: upload nothing; report what would be uploaded.
        endpoint_url: the S3 endpoint (default: AWS config / environment).
        progress: called with a :class:`Progress` as the push goes.

    Returns:
        A :class:`PushReport`.

    Example:
        >>> import pydelta
        >>> r = pydelta.push("llama-7b/", "s3://models/llama-7b", tag="v2")  # doctest: +SKIP
        >>> print(r.summary())  # doctest: +SKIP
    """
    t0 = time.monotonic()
    if tag is not None:
        mf.check_tag_name(tag)
    if not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs must be a positive number, not {jobs!r}")
    if not isinstance(pack_size, int) or pack_size < 1:
        raise UsageError(f"invalid pack size {pack_size!r}")
    files, single, skipped = collect_files(os.fspath(src))
    if chunker is not None and chunk_avg is not None:
        raise UsageError("give chunk_avg or chunker, not both")
    want_params = chunker or (ChunkParams.from_avg(chunk_avg) if chunk_avg else None)
    codec = ChunkCodec(level, compress)
    total = 0
    sizes = []
    for _, path in files:
        try:
            sizes.append(os.stat(path).st_size)
        except OSError as e:
            raise FileAccessError(f"cannot read {path}: {e.strerror or e}") from None
    total = sum(sizes)

    try:
        st = open_store(os.fspath(store), endpoint_url=endpoint_url, jobs=jobs, create=not dry_run)
    except StoreNotFoundError:
        if not dry_run or os.fspath(store).startswith("s3://"):
            raise
        st = EmptyStore(os.fspath(store))  # a dry run into a new local store
    with st:
        if dry_run:
            params = read_config(st) or want_params
            from .chunker import DEFAULT_PARAMS, check_params

            params = check_params(params or DEFAULT_PARAMS)
            if want_params is not None and params != want_params:
                raise UsageError(
                    f"store {st.url} chunks with sizes {params.as_tuple()}, not {want_params.as_tuple()}"
                )
        else:
            params, _ = ensure_config(st, want_params)
        # every chunk of the store, and this push's new ones (placed as their
        # packs are written): ~49 bytes a chunk (see .digests)
        table = load_index(st, jobs) if read_config(st) else ChunkTable()
        report = PushReport(
            store=st.url,
            version="",
            tag=tag,
            files=len(files),
            bytes=total,
            new_chunks=0,
            new_bytes=0,
            known_chunks=0,
            uploaded_bytes=0,
            packs=0,
            seconds=0.0,
            dry_run=dry_run,
            skipped=skipped,
        )
        state = {"read": 0, "chunks": 0, "sent": 0}
        lock = threading.Lock()

        def tell(phase: str) -> None:
            if progress is not None:
                progress(Progress(phase, state["read"], total, state["chunks"], state["sent"]))

        def on_read(n: int) -> None:
            state["read"] += n
            tell("upload")

        def on_sent(n: int) -> None:
            with lock:
                state["sent"] += n
            tell("upload")

        uploads = _Uploads(st, jobs) if not dry_run else None
        if uploads is not None:
            uploads.on_done = on_sent
        comp_pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pydelta-zstd")
        pending: Deque[Tuple[bytes, int, "Future[Tuple[int, bytes]]"]] = deque()
        writer: List[Optional[PackWriter]] = [None]
        entries: List[mf.FileEntry] = []
        # each file's chunks: digests (32 bytes each) and lengths
        file_chunks: List[Tuple[bytearray, "array[int]"]] = []
        spool = st.spool_dir() if not dry_run else None

        def place(item: Tuple[bytes, int, "Future[Tuple[int, bytes]]"]) -> None:
            digest, size, fut = item
            c, payload = fut.result()
            w = writer[0]
            if w is None:
                w = writer[0] = PackWriter(spool)
            w.add(digest, size, c, payload)
            if w.size >= pack_size:
                flush_pack()

        def flush_pack() -> None:
            w = writer[0]
            if w is None or not w.entries:
                return
            writer[0] = None
            assert uploads is not None
            pack_id, idx = uploads.submit(w)
            n = table.pack_number(pack_id)
            for e in idx.entries:
                table.place(e.digest, n, e.offset, e.stored, e.codec)

        try:
            for (rel, path), size in zip(files, sizes):
                digests = bytearray()
                lengths = array("I")
                try:
                    fh = open(path, "rb", buffering=0)
                except OSError as e:
                    raise FileAccessError(f"cannot read {path}: {e.strerror or e}") from None
                with fh:
                    mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
                    gen = chunk_stream(fh, params, want_data=True, on_read=on_read)
                    while True:
                        try:
                            c, data = next(gen)
                        except StopIteration as stop:
                            digest = stop.value
                            break
                        except OSError as e:
                            raise FileAccessError(
                                f"cannot read {path}: {e.strerror or e}"
                            ) from None
                        digests += c.digest
                        lengths.append(c.size)
                        state["chunks"] += 1
                        if not table.add(c.digest):  # placed once its pack is finished
                            report.known_chunks += 1
                            continue
                        report.new_chunks += 1
                        report.new_bytes += c.size
                        if dry_run:
                            continue
                        payload = bytes(data)  # type: ignore[arg-type]
                        pending.append((c.digest, c.size, comp_pool.submit(codec.encode, payload)))
                        while len(pending) > 2 * jobs:
                            place(pending.popleft())
                entries.append(mf.FileEntry(rel, size, mode, digest, []))
                file_chunks.append((digests, lengths))
            while pending:
                place(pending.popleft())
            if not dry_run:
                flush_pack()
                assert uploads is not None
                uploads.wait()
        finally:
            comp_pool.shutdown(wait=True, cancel_futures=True)
            if uploads is not None:
                uploads.close()
            if writer[0] is not None:
                writer[0].discard()

        # every chunk now has a location: build the manifest
        if dry_run:
            report.seconds = time.monotonic() - t0
            report.version = ""
            return report
        for k, entry in enumerate(entries):
            digests, lengths = file_chunks[k]
            file_chunks[k] = (bytearray(), array("I"))  # freed as the manifest grows
            for i, size in enumerate(lengths):
                digest = bytes(digests[i * HASH_LEN : (i + 1) * HASH_LEN])
                loc = table.get(digest)
                assert loc is not None, "every chunk is stored before the manifest"
                pack, offset, stored, codec = loc
                entry.chunks.append(mf.ChunkRef(digest, size, codec, stored, pack, offset))
            del digests, lengths
        man = mf.Manifest(entries, single, params.as_tuple())
        data = mf.encode_manifest(man)
        version = blake3(data).hex()
        report.version = version
        report.packs = uploads.packs if uploads else 0
        sent = uploads.bytes if uploads else 0
        report.created = st.put(version_key(version), data, mode=CREATE)
        if report.created:
            sent += len(data)
        if tag is not None:
            body = mf.encode_tag(mf.Tag(version, time.time()))
            _, token = st.get_token(tag_key(tag))
            st.put(tag_key(tag), body, mode=SWAP, token=token)
            sent += len(body)
        report.uploaded_bytes = sent
        report.seconds = time.monotonic() - t0
        return report
