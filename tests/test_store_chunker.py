"""The content-defined chunker (csrc/cdc.c and its numba twin).

Cut points must be a pure function of the content and the sizes: the same
whatever buffer sizes the input arrives in, the same on every backend, the
same as a plain-Python statement of the rule, and the same as the golden
values below (a store's chunks depend on them forever).
"""

from __future__ import annotations

import io
import random

import blake3 as ref_blake3
import pytest

from pydelta import errors
from pydelta.store.chunker import ChunkParams, check_params, chunk_stream

P_SMALL = ChunkParams(1024, 4096, 16384)
MASK64 = (1 << 64) - 1


def backends():
    out = ["c"]
    try:
        import numba  # noqa: F401

        out.append("numba")
    except ImportError:
        pass
    return out


def kernel(name):
    if name == "c":
        from pydelta.backends import c as k
    else:
        from pydelta.backends import numba as k
    return k


def scan_all(k, data: bytes, params: ChunkParams, feed: int):
    """(lengths, digests) feeding ``feed`` bytes per call (the kernel keeps state)."""
    ch = k.Chunker(*params.as_tuple())
    lens, digs = [], b""
    pos = 0
    while True:
        n = min(feed, len(data) - pos)
        eof = pos + n == len(data)
        buf = data[pos : pos + n]
        off = 0
        while True:
            rc, used, ls, ds = ch.scan(buf, off, n - off, eof)
            lens += ls
            digs += ds
            off += used
            if rc != 2:
                break
        assert off == n
        pos += n
        if eof:
            assert rc == 3
            return lens, digs


def splitmix_gear():
    out = []
    for i in range(256):
        z = ((i + 1) * 0x9E3779B97F4A7C15) & MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out


def py_cuts(data: bytes, lo: int, avg: int, hi: int):
    """The rule of csrc/cdc.c, stated plainly (slow; for small inputs)."""
    gear = splitmix_gear()
    b = avg.bit_length() - 1
    mask_s = (MASK64 << (64 - (b + 2))) & MASK64
    mask_l = (MASK64 << (64 - (b - 2))) & MASK64
    out = []
    start = 0
    while start < len(data):
        h = 0
        length = 0
        cut = None
        for i in range(start, len(data)):
            length += 1
            if length > lo - 64:  # bytes with L <= min - 64 are skipped
                h = ((h << 1) + gear[data[i]]) & MASK64
            if length < lo:
                continue
            if length >= hi or not (h & (mask_s if length < avg else mask_l)):
                cut = length
                break
        if cut is None:
            cut = len(data) - start
        out.append(cut)
        start += cut
    return out


def test_gear_table_is_splitmix64():
    from pydelta.backends import c, numba

    assert c.cdc_gear() == splitmix_gear() == numba.cdc_gear()


@pytest.mark.parametrize("backend", backends())
def test_matches_the_plain_python_rule(backend):
    data = random.Random(1).randbytes(150_000) + bytes(40_000) + random.Random(2).randbytes(30_000)
    lens, digs = scan_all(kernel(backend), data, P_SMALL, 1 << 20)
    assert lens == py_cuts(data, *P_SMALL.as_tuple())
    pos = 0
    for i, n in enumerate(lens):
        assert digs[32 * i : 32 * i + 32] == ref_blake3.blake3(data[pos : pos + n]).digest()
        pos += n


@pytest.mark.parametrize("backend", backends())
def test_golden_cut_points(backend):
    data = random.Random(42).randbytes(1 << 20)
    lens, _ = scan_all(kernel(backend), data, P_SMALL, 1 << 20)
    assert len(lens) == 237
    assert lens[:12] == [9176, 4213, 5574, 4103, 4122, 1475, 6294, 5879, 4883, 4237, 4341, 4680]
    assert (
        ref_blake3.blake3(repr(lens).encode()).hexdigest()[:32]
        == "39cbd1c573adbb5116adc75cd83d5479"
    )


@pytest.mark.parametrize("backend", backends())
def test_any_feed_size_gives_the_same_chunks(backend):
    k = kernel(backend)
    data = random.Random(3).randbytes(60_000)
    want = scan_all(k, data, P_SMALL, len(data))
    for feed in (1, 2, 3, 7, 15, 100, 1023, 1024, 4097, 16385):
        assert scan_all(k, data, P_SMALL, feed) == want, feed


def test_backends_agree():
    if len(backends()) < 2:
        pytest.skip("numba is not installed")
    data = random.Random(4).randbytes(3 << 20) + bytes(300_000)
    for params in (P_SMALL, ChunkParams.from_avg(64 << 10), ChunkParams(64, 256, 256)):
        assert scan_all(kernel("c"), data, params, 1 << 20) == scan_all(
            kernel("numba"), data, params, 777_777
        )


@pytest.mark.parametrize("backend", backends())
def test_sizes_respect_min_max_and_cluster(backend):
    data = random.Random(5).randbytes(4 << 20)
    p = ChunkParams.from_avg(16 << 10)
    lens, _ = scan_all(kernel(backend), data, p, 1 << 20)
    assert all(p.min_size <= n <= p.max_size for n in lens[:-1])
    mean = sum(lens) / len(lens)
    assert 0.8 * p.avg_size < mean < 1.5 * p.avg_size
    # zeros never cut by content: max-size chunks
    zl, _ = scan_all(kernel(backend), bytes(200_000), p, 1 << 20)
    assert zl[:-1] == [p.max_size] * (len(zl) - 1)


def test_empty_and_tiny_inputs():
    k = kernel("c")
    assert scan_all(k, b"", P_SMALL, 10) == ([], b"")
    lens, digs = scan_all(k, b"abc", P_SMALL, 1)
    assert lens == [3] and digs == ref_blake3.blake3(b"abc").digest()


def test_shift_resistance():
    """An insertion near the start changes only the chunks around it."""
    a = random.Random(6).randbytes(2 << 20)
    b = a[:5000] + b"one more byte in the header" + a[5000:]
    p = ChunkParams.from_avg(16 << 10)
    la, da = scan_all(kernel("c"), a, p, 1 << 20)
    lb, db = scan_all(kernel("c"), b, p, 1 << 20)
    sa = {da[i : i + 32] for i in range(0, len(da), 32)}
    sb = [db[i : i + 32] for i in range(0, len(db), 32)]
    new = [d for d in sb if d not in sa]
    assert len(new) <= 2, len(new)


def test_stream_driver_matches_kernel_for_any_read_size():
    data = random.Random(7).randbytes(300_000)
    want = scan_all(kernel("c"), data, P_SMALL, 1 << 20)[0]
    for rs in (4096, 10_000, 65_536):
        for want_data in (False, True):
            g = chunk_stream(io.BytesIO(data), P_SMALL, want_data=want_data, read_size=rs)
            got = []
            while True:
                try:
                    c, d = next(g)
                except StopIteration as stop:
                    assert stop.value == ref_blake3.blake3(data).digest()
                    break
                if want_data:
                    assert bytes(d) == data[c.offset : c.offset + c.size]
                got.append(c.size)
            assert got == want


def test_invalid_sizes():
    from pydelta.backends import c as _cdc_c

    for bad in (
        (63, 256, 1024),
        (64, 300, 1024),
        (1024, 512, 4096),
        (64, 256, 128),
        (64, 128, 1024),
    ):
        assert not _cdc_c.cdc_check(*bad)
        with pytest.raises(ValueError):
            _cdc_c.Chunker(*bad)
        with pytest.raises(errors.UsageError):
            check_params(ChunkParams(*bad))
