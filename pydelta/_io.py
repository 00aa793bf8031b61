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
import os
import stat
import sys
import tempfile
from typing import IO, BinaryIO, Iterator, Optional, Tuple, Union

from .errors import FileAccessError

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


def _os_reason(e: OSError) -> str:
    return e.strerror or str(e)


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


def readinto(fh: BinaryIO, view: memoryview, name: str) -> int:
    """Read into view; returns bytes read, 0 at end of input."""
    try:
        ri = getattr(fh, "readinto", None)
        if ri is not None:
            n = ri(view)
            if n is None:  # non-blocking stream with nothing ready
                return readinto_blocking(fh, view, name)
            return n
        data = fh.read(len(view))
    except OSError as e:
        raise FileAccessError(f"cannot read {name}: {_os_reason(e)}") from None
    if data is None:
        return 0
    view[: len(data)] = data
    return len(data)


def readinto_blocking(fh: BinaryIO, view: memoryview, name: str) -> int:
    data = fh.read(len(view))
    if not data:
        return 0
    view[: len(data)] = data
    return len(data)


def read_all(fh: BinaryIO, name: str) -> bytes:
    try:
        return fh.read()
    except OSError as e:
        raise FileAccessError(f"cannot read {name}: {_os_reason(e)}") from None


class AtomicFile:
    """A temporary file beside ``path`` that replaces it only on commit()."""

    def __init__(self, path: PathLike, what: str = "output") -> None:
        # Write through a symlink to the file it names, as an in-place update should.
        self.name = os.fsdecode(path)
        self.path = os.path.realpath(self.name)
        target_dir = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(self.path):
            raise FileAccessError(f"cannot write {what} {self.name}: it is a directory")
        try:
            fd, self.tmp = tempfile.mkstemp(
                prefix="." + os.path.basename(self.path) + ".", suffix=".pydelta-tmp",
                dir=target_dir,
            )
        except OSError as e:
            raise FileAccessError(
                f"cannot write {what} {self.name}: {_os_reason(e)} (in {target_dir})"
            ) from None
        self.fh: BinaryIO = os.fdopen(fd, "wb", buffering=0)  # type: ignore[assignment]
        self._done = False

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        view = memoryview(data)
        try:
            while view:
                n = self.fh.write(view)
                view = view[n:]
        except OSError as e:
            raise FileAccessError(f"cannot write {self.name}: {_os_reason(e)}") from None

    def commit(self) -> None:
        """Flush, fsync, keep the mode of an existing target, and rename over it."""
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            try:
                mode = stat.S_IMODE(os.stat(self.path).st_mode)
            except FileNotFoundError:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.chmod(self.tmp, mode)
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.abort()
            raise FileAccessError(f"cannot write {self.name}: {_os_reason(e)}") from None
        self._done = True

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self.fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


class StreamSink:
    """Writes to a caller's binary file object (no atomicity possible)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.name = describe(fh)

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        try:
            n = self.fh.write(data)
            # raw (unbuffered) files may write less than asked
            if n is not None and n < len(data):
                view = memoryview(data)[n:]
                while view:
                    k = self.fh.write(view)
                    view = view[k or 0 :]
        except OSError as e:
            raise FileAccessError(f"cannot write {self.name}: {_os_reason(e)}") from None

    def commit(self) -> None:
        try:
            self.fh.flush()
        except OSError as e:
            raise FileAccessError(f"cannot write {self.name}: {_os_reason(e)}") from None

    def abort(self) -> None:
        pass


def open_output(dest: Union[PathLike, BinaryIO], what: str) -> Union[AtomicFile, StreamSink]:
    """An output: '-' is standard output, a path is written atomically."""
    if is_path(dest):
        path = os.fsdecode(dest)  # type: ignore[arg-type]
        if path == "-":
            return StreamSink(sys.stdout.buffer)
        return AtomicFile(path, what)
    if not hasattr(dest, "write"):
        raise TypeError(f"{what} must be a path or a binary file object, not {type(dest).__name__}")
    return StreamSink(dest)  # type: ignore[arg-type]
