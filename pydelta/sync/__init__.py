"""``pydelta sync``: bring a remote file or folder up to date, shipping only deltas.

One end runs :class:`SyncClient` (the ``pydelta sync`` command, or a script),
the other runs :func:`serve` (``pydelta serve``, started over ssh). Per file,
the receiving end sends the signature of its old copy, the sending end scans
its new file against it and streams back a delta, and the receiving end
patches into a temporary file beside the target that replaces it only once
its size and BLAKE3 digest are verified. So only signatures and deltas cross
the wire, and a failure anywhere - a dropped connection, a remote error, a
result that does not verify - leaves the destination as it was.

By concern:

* :mod:`.wire` - frames over a pair of byte streams (the channel);
* :mod:`.messages` - the protocol's requests, as typed dataclasses;
* :mod:`.client` - the driving end and :func:`sync`;
* :mod:`.server` - the serving end (:func:`serve`);
* :mod:`.transfer` - one file's signature, delta and patch;
* :mod:`.fs` - file system operations both ends share (and their path checks);
* :mod:`.ssh` - locations and the ssh channel;
* :mod:`.report` - the report and progress.
"""

from typing import TYPE_CHECKING, Any

# Imported on first use (PEP 562): ``pydelta serve`` loads the serving end
# only, not the client, ssh and report modules (start-up, issue 13.4).
_WHERE = {
    "SyncClient": "client",
    "sync": "client",
    "PROTOCOL": "messages",
    "SyncedFile": "report",
    "SyncProgress": "report",
    "SyncReport": "report",
    "SyncStatus": "report",
    "serve": "server",
    "serve_main": "server",
    "parse_location": "ssh",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .client import SyncClient, sync
    from .messages import PROTOCOL
    from .report import SyncedFile, SyncProgress, SyncReport, SyncStatus
    from .server import serve, serve_main
    from .ssh import parse_location

__all__ = [
    "sync",
    "serve",
    "serve_main",
    "SyncClient",
    "SyncReport",
    "SyncedFile",
    "SyncStatus",
    "SyncProgress",
    "parse_location",
    "PROTOCOL",
]
