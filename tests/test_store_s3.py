"""S3-only behaviour: faults on the wire (503, resets, cut bodies), credentials, endpoints.

The faults come from tests/store_fixtures.py's FaultProxy in front of the
moto server; retries are made quick by shrinking the backoff.
"""

from __future__ import annotations

import random

import pytest
from store_fixtures import make_bucket

from pydelta import errors
from pydelta.store import base, pull, push

SMALL = dict(pack_size=256 << 10, chunk_avg=16 << 10, jobs=2)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(base, "BACKOFF", 0.01)
    monkeypatch.setattr(base, "BACKOFF_MAX", 0.02)


@pytest.fixture
def pushed(moto_endpoint, tmp_path, monkeypatch):
    """A bucket holding one version of a 1 MiB file; returns (url, data)."""
    monkeypatch.setenv("PYDELTA_CACHE_DIR", str(tmp_path / "cache"))
    data = random.Random(3).randbytes(1 << 20)
    (tmp_path / "m.bin").write_bytes(data)
    url = f"s3://{make_bucket(moto_endpoint)}/m"
    push(tmp_path / "m.bin", url, endpoint_url=moto_endpoint, **SMALL)
    return url, data


@pytest.mark.parametrize("action", ["503", "reset", "truncate"])
def test_transient_faults_are_retried(pushed, fault_proxy, tmp_path, action):
    url, data = pushed
    rule = fault_proxy.add(".pack", action, times=3)
    tag_rule = fault_proxy.add("/tags/latest", action, times=1)
    out = tmp_path / "out.bin"
    pull(url, out, endpoint_url=fault_proxy.url)
    assert out.read_bytes() == data
    assert rule.hits == 3 and tag_rule.hits == 1


@pytest.mark.parametrize("action", ["503", "reset", "truncate"])
def test_persistent_faults_give_a_clear_error(pushed, fault_proxy, tmp_path, action):
    url, _ = pushed
    fault_proxy.add(".pack", action, times=10_000)
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    with pytest.raises(errors.StoreUnreachableError, match="attempts"):
        pull(url, out, endpoint_url=fault_proxy.url)
    assert out.read_bytes() == b"old"


def test_push_through_faults(moto_endpoint, fault_proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("PYDELTA_CACHE_DIR", str(tmp_path / "cache"))
    data = random.Random(4).randbytes(1 << 20)
    (tmp_path / "m.bin").write_bytes(data)
    url = f"s3://{make_bucket(moto_endpoint)}/m"
    fault_proxy.add("PUT", "503", times=2)
    fault_proxy.add(".idx", "reset", times=1)
    r = push(tmp_path / "m.bin", url, endpoint_url=fault_proxy.url, **SMALL)
    pull(url, tmp_path / "o.bin", endpoint_url=moto_endpoint)
    assert (tmp_path / "o.bin").read_bytes() == data and r.packs >= 4


def test_missing_bucket(moto_endpoint, tmp_path):
    with pytest.raises(errors.StoreNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        pull("s3://no-such-bucket/x", tmp_path / "o", endpoint_url=moto_endpoint)
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(errors.StoreNotFoundError, match="does not exist"):
        push(tmp_path / "m.bin", "s3://no-such-bucket/x", endpoint_url=moto_endpoint)


def test_unreachable_endpoint(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(errors.StoreUnreachableError, match="127.0.0.1"):
        pull("s3://b/x", tmp_path / "o", endpoint_url=f"http://127.0.0.1:{port}")


def test_no_credentials(moto_endpoint, tmp_path, monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(errors.StoreAccessError, match="credentials"):
        pull("s3://b/x", tmp_path / "o", endpoint_url=moto_endpoint)


def test_bad_urls(tmp_path):
    with pytest.raises(errors.UsageError, match="s3://bucket"):
        pull("s3:///x", tmp_path / "o")
    with pytest.raises(errors.UsageError, match="scheme"):
        pull("gs://b/x", tmp_path / "o")
    with pytest.raises(errors.UsageError, match="endpoint"):
        pull(str(tmp_path), tmp_path / "o", endpoint_url="http://x")
