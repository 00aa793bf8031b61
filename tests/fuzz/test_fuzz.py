"""A short, bounded fuzz campaign in every test run (both backends).

tests/fuzz/fuzz.py has the targets and oracles; here each target gets a
fixed seed and up to INPUTS inputs or SECONDS seconds, whichever comes
first. The long campaign is described in docs/FUZZING.md.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzz  # noqa: E402

INPUTS = 100
SECONDS = 2.0

_SYNC_ITEM9 = pytest.mark.xfail(
    strict=False,
    reason="issue 10 item 9: malformed peer JSON escapes as KeyError/TypeError/RecursionError",
)


@pytest.mark.parametrize(
    "target",
    [
        "sig",
        "rdiff-sig",
        "delta",
        "rdiff-delta",
        pytest.param("sync-client", marks=_SYNC_ITEM9),
        pytest.param("sync-server", marks=_SYNC_ITEM9),
    ],
)
def test_fuzz_smoke(target, tmp_path):
    res = fuzz.run(
        target,
        iterations=INPUTS,
        seconds=SECONDS,
        seed=20261130,
        timeout=20,
        out=str(tmp_path),
        quiet=True,
    )
    assert res["inputs"] >= 20, res
    assert not res["findings"], "\n".join(f"{why} ({where})" for why, where in res["findings"])
