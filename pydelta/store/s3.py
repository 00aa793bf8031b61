"""A store on any S3-compatible server (``s3://bucket/prefix``), through boto3.

boto3 is imported when an ``s3://`` store is first opened, never before
(``pip install 'pydelta[s3]'``). Endpoint, region and credentials come from
``--endpoint-url`` or the standard AWS environment variables and config
files (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID``, ...). Why boto3 rather than obstore: see
bench/s3_clients.py and the README ("Model stores").

boto3's own retries are switched off: every operation goes through
:func:`~pydelta.store.base.retry`, so 5xx answers, throttling, refused or
dropped connections and truncated bodies are retried the same way for
every store, and a body that arrives short is retried too (botocore would
hand it over as an error half way through a read). Request checksums are
left to the server's needs (``when_required``): the chunks carry BLAKE3
digests that pull checks anyway, and some S3-compatible servers reject the
newer default CRC headers.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, Iterator, Optional, Tuple

from ..errors import (
    CorruptStoreError,
    StoreAccessError,
    StoreError,
    StoreNotFoundError,
    TagConflictError,
    UsageError,
)
from .base import CREATE, SWAP, Data, ObjectInfo, Store, Transient, retry

_RAISE = object()  # _call's default: a missing object is an error

#: connections per client (a pull or push uses at most its job count)
MAX_POOL = 64

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_ACCESS = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
    "AllAccessDisabled",
    "AccountProblem",
}
_TRANSIENT = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestTimeTooSkewed",
    "500",
    "502",
    "503",
    "504",
}


def parse_s3_url(url: str) -> Tuple[str, str]:
    """(bucket, key prefix ending in '/' or empty) of ``s3://bucket/prefix``."""
    m = re.fullmatch(r"s3://([^/]+)(?:/(.*))?", url)
    if not m or not m.group(1):
        raise UsageError(f"invalid S3 store URL {url!r}: use s3://bucket/prefix")
    prefix = (m.group(2) or "").strip("/")
    return m.group(1), prefix + "/" if prefix else ""


def _import_boto3() -> Any:
    try:
        import boto3
        import botocore  # noqa: F401
    except ImportError:
        raise UsageError(
            "s3:// stores need boto3: pip install 'pydelta[s3]' (or pip install boto3)"
        ) from None
    return boto3


class S3Store(Store):
    """A model store under a prefix of an S3 bucket."""

    conditional = True

    def __init__(self, url: str, *, endpoint_url: Optional[str] = None, jobs: int = 8) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        boto3 = _import_boto3()
        from botocore.config import Config

        self._exc = exc = __import__("botocore.exceptions", fromlist=["x"])
        #: failures of the connection rather than answers of the server
        self._dropped = (
            exc.ConnectionError,
            exc.HTTPClientError,
            exc.IncompleteReadError,
            exc.ResponseStreamingError,
        )
        session = boto3.session.Session()
        region = session.region_name or "us-east-1"
        cfg = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(10, min(MAX_POOL, jobs + 4)),
            connect_timeout=10,
            read_timeout=60,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.endpoint = endpoint_url or None
        try:
            self._client = session.client(
                "s3", endpoint_url=self.endpoint, region_name=region, config=cfg
            )
        except ValueError as e:  # e.g. a malformed endpoint URL
            raise UsageError(f"cannot use S3 endpoint {endpoint_url!r}: {e}") from None
        self._lock = threading.Lock()

    # -- error mapping

    def _where(self) -> str:
        return self.url + (f" at {self.endpoint}" if self.endpoint else "")

    def _call(self, what: str, fn: Any, *args: Any, missing: Any = _RAISE, **kw: Any) -> Any:
        """One boto3 call with retries; errors mapped to the pydelta family.

        ``missing``, if given, is returned when the object does not exist."""
        exc = self._exc

        def once() -> Any:
            try:
                return fn(*args, **kw)
            except exc.ClientError as e:
                err = e.response.get("Error", {})
                code = str(err.get("Code", ""))
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in _TRANSIENT or (isinstance(status, int) and status >= 500):
                    raise Transient(f"{code or status} {err.get('Message', '')}".strip()) from None
                raise
            except exc.NoCredentialsError:
                raise StoreAccessError(
                    f"no AWS credentials for store {self._where()}: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
                ) from None
            except exc.PartialCredentialsError as e:
                raise StoreAccessError(f"incomplete AWS credentials: {e}") from None
            except self._dropped as e:
                raise Transient(str(e) or type(e).__name__) from None

        try:
            return retry(once, what, self._where())
        except exc.ClientError as e:
            if missing is not _RAISE and str(e.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                return missing
            raise self._client_error(e, what) from None

    def _client_error(self, e: Any, what: str) -> StoreError:
        err = e.response.get("Error", {})
        code = str(err.get("Code", ""))
        msg = err.get("Message") or code
        if code == "NoSuchBucket":
            return StoreNotFoundError(f"bucket {self.bucket!r} does not exist ({self._where()})")
        if code in _NOT_FOUND:
            return StoreNotFoundError(f"{what}: not found in store {self._where()}")
        if code in _ACCESS:
            return StoreAccessError(f"{what}: access denied by store {self._where()}: {msg}")
        if code in ("PreconditionFailed", "412"):
            return TagConflictError(
                f"{what}: the object changed meanwhile in store {self._where()}"
            )
        return StoreError(f"{what}: store {self._where()} answered {code}: {msg}")

    # -- reads

    def _read_body(self, resp: Any) -> bytes:
        body = resp["Body"]
        try:
            data = body.read()
        except (*self._dropped, OSError) as e:
            raise Transient(f"connection dropped while reading: {e}") from None
        finally:
            with contextlib.suppress(Exception):
                body.close()
        want = resp.get("ContentLength")
        if isinstance(want, int) and len(data) != want:
            raise Transient(f"body cut short ({len(data)} of {want} bytes)")
        return data

    def get(self, key: str) -> bytes:
        def op() -> bytes:
            return self._read_body(
                self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            )

        return self._call(f"reading {key}", op)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        def op() -> bytes:
            resp = self._client.get_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Range=f"bytes={start}-{start + length - 1}",
            )
            data = self._read_body(resp)
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 200 and len(data) >= start + length:
                data = data[start : start + length]  # a server that ignores Range
            if len(data) != length:
                total = str(resp.get("ContentRange", "")).rpartition("/")[2]
                if total.isdigit() and int(total) < start + length:
                    raise CorruptStoreError(
                        f"{key} in store {self._where()} is shorter than its index says "
                        f"({total} bytes, wanted {start}..{start + length})"
                    )
                raise Transient(f"range answer of {len(data)} bytes, wanted {length}")
            return data

        return self._call(f"reading {key}", op)

    def get_token(self, key: str) -> "tuple[Optional[bytes], Optional[str]]":
        def op() -> Any:
            resp = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return self._read_body(resp), resp.get("ETag")

        return self._call(f"reading {key}", op, missing=(None, None))

    def exists(self, key: str) -> bool:
        found = self._call(
            f"checking {key}",
            self._client.head_object,
            Bucket=self.bucket,
            Key=self.prefix + key,
            missing=None,
        )
        return found is not None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        token: Optional[str] = None
        n = len(self.prefix)
        while True:
            kw = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
            if token:
                kw["ContinuationToken"] = token
            page = self._call(f"listing {prefix or '/'}", self._client.list_objects_v2, **kw)
            for o in page.get("Contents", []):
                yield ObjectInfo(o["Key"][n:], int(o["Size"]), o["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    # -- writes

    def put(
        self, key: str, data: Data, *, mode: str = "overwrite", token: Optional[str] = None
    ) -> bool:
        kw: dict = {"Bucket": self.bucket, "Key": self.prefix + key, "Body": bytes(data)}
        if mode == CREATE or (mode == SWAP and token is None):
            kw["IfNoneMatch"] = "*"
        elif mode == SWAP:
            kw["IfMatch"] = token
        try:
            self._call(f"writing {key}", self._client.put_object, **kw)
        except TagConflictError:
            if mode == CREATE:
                return False
            raise TagConflictError(
                f"{key} in store {self._where()} changed while we were writing it"
            ) from None
        return True

    def put_file(self, key: str, path: str) -> None:
        def op() -> Any:
            with open(path, "rb") as fh:
                return self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=fh)

        self._call(f"uploading {key}", op)

    def delete(self, key: str) -> None:
        self._call(
            f"deleting {key}", self._client.delete_object, Bucket=self.bucket, Key=self.prefix + key
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
