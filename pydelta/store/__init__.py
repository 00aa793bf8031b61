"""The model store: push and pull versions of model files through object stores.

Files are cut into content-defined chunks (csrc/cdc.c), chunks are packed
into pack objects, and each version is a manifest naming every file's
chunks; tags name versions. Stores: a local directory (or ``file://``) and
any S3-compatible server (``s3://bucket/prefix``, boto3 imported only
then). See the README's "Model stores" section and docs/FORMAT.md.

This package never imports pydelta.sync.
"""

from __future__ import annotations

from .catalog import ls
from .chunker import DEFAULT_PARAMS, ChunkParams

# fleet delivery (issue 12)
from .gc import GcReport, gc
from .mirror import MirrorReport, mirror
from .pull import pull
from .push import push
from .report import Progress, PullReport, PushReport, StoreListing, VersionInfo
from .stores import open_store
from .tags import DiffReport, TagReport, diff, tag, untag

__all__ = [
    "mirror",
    "gc",
    "tag",
    "untag",
    "diff",
    "MirrorReport",
    "GcReport",
    "TagReport",
    "DiffReport",
    "push",
    "pull",
    "ls",
    "open_store",
    "Progress",
    "PushReport",
    "PullReport",
    "StoreListing",
    "VersionInfo",
    "ChunkParams",
    "DEFAULT_PARAMS",
]
