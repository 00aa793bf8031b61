"""Opening inputs and outputs: paths, '-', and binary file objects.

Outputs to a path are written to a temporary file in the target's own
directory and renamed over the target only by :meth:`AtomicFile.commit`,
after the caller has verified what it wrote; any failure before that
removes the temporary file and leaves an existing target untouched. The
target may be the very file being read (patching in place): the reader
keeps its descriptor to the old inode, and the rename is atomic.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import stat
import sys
import time
from typing import IO, BinaryIO, Iterable, Iterator, Optional, Tuple, Union

from .errors import FileAccessError
from .errors import os_reason as _os_reason

PathLike = Union[str, "os.PathLike[str]"]
Source = Union[PathLike, BinaryIO, IO[bytes]]


def is_path(obj: object) -> bool:
    return isinstance(obj, (str, bytes, os.PathLike))


def describe(obj: object) -> str:
    """A short name for messages."""
    if is_path(obj):
        s = os.fsdecode(obj)  # type: ignore[arg-type]
        return "standard input" if s == "-" else s
    name = getattr(obj, "name", None)
    if isinstance(name, str):
        return name
    return "the stream"


@contextlib.contextmanager
def open_input(src: Source, what: str) -> Iterator[Tuple[BinaryIO, str]]:
    """Yield (binary file object, display name) for a path, '-' or file object."""
    if is_path(src):
        path = os.fsdecode(src)  # type: ignore[arg-type]
        if path == "-":
            yield sys.stdin.buffer, "standard input"
            return
        try:
            fh = open(path, "rb")
        except OSError as e:
            raise FileAccessError(f"cannot open {what} {path}: {_os_reason(e)}") from None
        try:
            if stat.S_ISDIR(os.fstat(fh.fileno()).st_mode):
                raise FileAccessError(f"cannot read {what} {path}: it is a directory")
            yield fh, path
        finally:
            fh.close()
        return
    if not hasattr(src, "read"):
        raise TypeError(f"{what} must be a path or a binary file object, not {type(src).__name__}")
    yield src, describe(src)  # type: ignore[misc]


def input_size(fh: BinaryIO) -> Optional[int]:
    """Size of a regular file behind fh, or None (pipes, sockets, BytesIO)."""
    try:
        st = os.fstat(fh.fileno())
    except (OSError, AttributeError, ValueError):
        getbuf = getattr(fh, "getbuffer", None)
        if getbuf is not None:
            try:
                return len(getbuf()) - fh.tell()
            except (OSError, ValueError):
                return None
        return None
    if stat.S_ISREG(st.st_mode):
        try:
            return st.st_size - fh.tell()
        except OSError:
            return st.st_size
    return None


def _wait_readable(fh: BinaryIO) -> None:
    """Block until a non-blocking stream has data (or EOF) to read."""
    try:
        select.select([fh], [], [])
    except (TypeError, ValueError, OSError):
        time.sleep(0.001)  # no descriptor to wait on: poll


def readinto(fh: BinaryIO, view: memoryview, name: str) -> int:
    """Read into view; returns bytes read (> 0), or 0 only at end of input.

    A non-blocking stream that has nothing ready (read returns None) is
    waited on, never mistaken for the end of the input.
    """
    while True:
        try:
            ri = getattr(fh, "readinto", None)
            if ri is not None:
                n = ri(view)
            else:
                data = fh.read(len(view))
                if data is None:
                    n = None
                else:
                    n = len(data)
                    view[:n] = data
        except BlockingIOError:
            n = None
        except OSError as e:
            raise FileAccessError(f"cannot read {name}: {_os_reason(e)}") from None
        if n is not None:
            return n
        _wait_readable(fh)


def fill(fh: BinaryIO, buf: Union[bytearray, memoryview], name: str) -> int:
    """Read into buf until it is full or the input ends; returns bytes held."""
    view = memoryview(buf)
    have = 0
    while have < len(view):
        n = readinto(fh, view[have:], name)
        if not n:
            break
        have += n
    return have


def read_exact(fh: BinaryIO, size: int, name: str) -> bytes:
    """Read size bytes, fewer only at end of input (short reads are retried)."""
    buf = bytearray(size)
    return bytes(buf[: fill(fh, buf, name)])


def read_all(fh: BinaryIO, name: str) -> bytes:
    """Read to the end of input."""
    out = bytearray()
    chunk = bytearray(1 << 20)
    view = memoryview(chunk)
    while True:
        n = readinto(fh, view, name)
        if not n:
            return bytes(out)
        out += view[:n]


#: Largest single write(): measured on Linux/ext4, writing 1 GiB to a new
#: file took 2.3 s of system time in 4 MiB writes and 0.3 s in 1 MiB ones.
WRITE_SIZE = 1 << 20


def write_to(fh: BinaryIO, data: Union[bytes, bytearray, memoryview], name: str) -> None:
    """Write all of data to fh, at most WRITE_SIZE per call (larger write()s
    to a new file cost several times more kernel time); a raw file may write
    less than asked, and a non-blocking one that is full is waited on."""
    view = memoryview(data).cast("B")
    try:
        while view:
            n = fh.write(view[:WRITE_SIZE])
            if n is None:  # a non-blocking stream that is full: wait
                select.select([], [fh], [])
                continue
            view = view[n:]
    except OSError as e:
        raise FileAccessError(f"cannot write {name}: {_os_reason(e)}") from None


def current_umask() -> int:
    """The process umask (from /proc on Linux, so it is never set to 0 meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
# read-write: a patch hashes its result by reading it back as it is written
_O_TMP = (
    os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


class AtomicFile:
    """A temporary file beside a target that replaces it only on commit().

    The target's directory is opened once, when the AtomicFile is made, and
    all that follows is relative to that descriptor (``dir_fd``, as openat
    does): the temporary file is created in it with O_EXCL | O_NOFOLLOW,
    its permission bits and time are set on the open file (fchmod,
    futimens), and the rename stays inside that directory. Swapping the
    directory, or one above it, for a symbolic link meanwhile cannot move
    the result anywhere else.

    Args:
        path: the target. Without ``dir_fd`` a symbolic link there is
            followed (an in-place update writes the file it names); with
            ``dir_fd`` only its last component is used, as a name in that
            directory, and the whole path only in messages.
        what: how messages name the output.
        fsync: make the data (and then the rename) durable.
        dir_fd: an open directory to create the file in (it is duplicated).
    """

    def __init__(
        self,
        path: PathLike,
        what: str = "output",
        fsync: bool = False,
        *,
        dir_fd: Optional[int] = None,
    ) -> None:
        self._fsync = fsync
        #: permission bits for the result (default: the replaced file's, or 0o666 & ~umask)
        self.mode: Optional[int] = None
        #: modification time (ns) to give the result (default: now)
        self.mtime_ns: Optional[int] = None
        self.name = os.fsdecode(path)
        self._done = True  # nothing to clean up until the temporary file exists
        if dir_fd is None:
            # Write through a symlink to the file it names, as an in-place update should.
            real = os.path.realpath(self.name)
            if os.path.isdir(real):
                raise FileAccessError(f"cannot write {what} {self.name}: it is a directory")
            directory, self.base = os.path.split(real)
            try:
                self._dir = os.open(directory or ".", _O_DIR)
            except OSError as e:
                raise FileAccessError(
                    f"cannot write {what} {self.name}: {_os_reason(e)} (in {directory})"
                ) from None
        else:
            self.base = os.path.basename(self.name)
            self._dir = os.dup(dir_fd)
        try:
            fd, self.tmp = self._create(what)
        except BaseException:
            os.close(self._dir)
            raise
        self.fh: BinaryIO = os.fdopen(fd, "wb", buffering=0)  # type: ignore[assignment]
        self._done = False

    def _create(self, what: str) -> Tuple[int, str]:
        """A new temporary file in the directory: (descriptor, its name there)."""
        for _ in range(100):  # os.urandom, not secrets: that loads hashlib and random
            tmp = f".{self.base}.{os.urandom(4).hex()}.pydelta-tmp"
            try:
                return os.open(tmp, _O_TMP, 0o600, dir_fd=self._dir), tmp
            except FileExistsError:
                continue
            except OSError as e:
                raise FileAccessError(f"cannot write {what} {self.name}: {_os_reason(e)}") from None
        raise FileAccessError(f"cannot write {what} {self.name}: no free temporary name")

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        write_to(self.fh, data, self.name)

    def commit(self) -> None:
        """Flush (and fsync if asked), set mode and time on the open file, rename over the target."""
        try:
            self.fh.flush()
            fd = self.fh.fileno()
            if self._fsync:
                os.fsync(fd)
            mode = self.mode
            if mode is None:
                try:
                    mode = stat.S_IMODE(os.stat(self.base, dir_fd=self._dir).st_mode)
                except FileNotFoundError:
                    mode = 0o666 & ~current_umask()
            os.fchmod(fd, mode)
            if self.mtime_ns is not None:
                os.utime(fd, ns=(time.time_ns(), self.mtime_ns))
            self.fh.close()
            os.replace(self.tmp, self.base, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            if self._fsync:
                with contextlib.suppress(OSError):  # not every file system syncs directories
                    os.fsync(self._dir)
        except (OSError, OverflowError, ValueError) as e:
            self.abort()
            why = _os_reason(e) if isinstance(e, OSError) else str(e)
            raise FileAccessError(f"cannot write {self.name}: {why}") from None
        self._done = True
        os.close(self._dir)

    def abort(self, keep_as: Optional[str] = None) -> None:
        """Drop the temporary file, or rename it to ``keep_as`` (a name in the
        same directory, e.g. to resume from later); the target is left as it was."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self.fh.close()
        try:
            if keep_as is not None:
                with contextlib.suppress(OSError):
                    os.replace(
                        self.tmp,
                        os.path.basename(keep_as),
                        src_dir_fd=self._dir,
                        dst_dir_fd=self._dir,
                    )
                    return
            with contextlib.suppress(OSError):
                os.unlink(self.tmp, dir_fd=self._dir)
        finally:
            os.close(self._dir)


class StreamSink:
    """Writes to a caller's binary file object (no atomicity possible)."""

    def __init__(self, fh: BinaryIO, close: bool = False) -> None:
        self.fh = fh
        self.name = describe(fh)
        self._close = close

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        write_to(self.fh, data, self.name)

    def commit(self) -> None:
        try:
            self.fh.flush()
            if self._close:
                self.fh.close()
        except OSError as e:
            raise FileAccessError(f"cannot write {self.name}: {_os_reason(e)}") from None

    def abort(self) -> None:
        if self._close:
            with contextlib.suppress(OSError):
                self.fh.close()


def open_output(
    dest: Union[PathLike, BinaryIO], what: str, fsync: bool = False
) -> Union[AtomicFile, StreamSink]:
    """An output: '-' is standard output, a path is written atomically.

    fsync makes a path's data durable before the rename, so a crash cannot
    leave an empty or partial file in place of the target.
    """
    if isinstance(dest, AtomicFile):  # already placed by the caller (e.g. with a dir_fd)
        return dest
    if is_path(dest):
        path = os.fsdecode(dest)  # type: ignore[arg-type]
        if path == "-":
            return StreamSink(sys.stdout.buffer)
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            # a FIFO, device or socket: write into it; renaming over it would
            # replace the special file with a regular one
            try:
                fh = open(path, "wb")
            except OSError as e:
                raise FileAccessError(f"cannot write {what} {path}: {_os_reason(e)}") from None
            return StreamSink(fh, close=True)  # type: ignore[arg-type]
        return AtomicFile(path, what, fsync)
    if not hasattr(dest, "write"):
        raise TypeError(f"{what} must be a path or a binary file object, not {type(dest).__name__}")
    return StreamSink(dest)  # type: ignore[arg-type]


def write_all(
    dest: Union[PathLike, BinaryIO],
    what: str,
    pieces: Iterable[Union[bytes, bytearray, memoryview]],
    fsync: bool = False,
) -> None:
    """Write every piece to :func:`open_output` ``(dest, what)`` and commit it;
    any failure (of the writing or of making the pieces) drops the output."""
    sink = open_output(dest, what, fsync)
    try:
        for piece in pieces:
            sink.write(piece)
        sink.commit()
    except BaseException:
        sink.abort()
        raise


class MappedWindows:
    """Read-only mapped windows of a regular file, one at a time.

    The file is taken as ``size`` bytes from ``base`` (a multiple of
    mmap.ALLOCATIONGRANULARITY). :meth:`window` maps the bytes from a
    NEW-relative offset (also a multiple of it) and unmaps the previous
    window, so the mapped - resident - part of the file stays one window.
    A file truncated under a window makes reading its lost pages raise
    SIGBUS: only guarded kernels may touch a window (csrc/mapguard.c).
    """

    def __init__(self, fd: int, base: int, size: int, length: int) -> None:
        self._fd, self._base, self.size, self._length = fd, base, size, length
        self._map: Optional[mmap.mmap] = None
        self.view: Optional[memoryview] = None

    def window(self, at: int, length: int = 0) -> memoryview:
        """Map [at, at + max(length, the window length)) (cut at size)."""
        self.close()
        n = min(max(length, self._length), self.size - at)
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        self._map = mmap.mmap(self._fd, n, flags=flags, prot=mmap.PROT_READ, offset=self._base + at)
        self.view = memoryview(self._map)
        return self.view

    def close(self) -> None:
        """Unmap the current window (views of it must be gone)."""
        if self.view is not None:
            try:
                self.view.release()
            except BufferError:  # pragma: no cover - see below
                pass
            self.view = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # pragma: no cover - a view outlived its use
                pass  # unmapped when the last view goes
            self._map = None
