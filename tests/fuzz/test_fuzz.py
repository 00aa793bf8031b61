"""A short, bounded fuzz campaign in every test run (both backends).

tests/fuzz/fuzz.py has the targets and oracles; here each target gets a
fixed seed and INPUTS inputs (SECONDS is a safety net on a crawling
machine). The long campaign is described in docs/FUZZING.md.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzz  # noqa: E402

INPUTS = 50
#: only a safety net: the campaign is meant to be INPUTS inputs (deterministic)
SECONDS = 30.0


@pytest.mark.parametrize(
    "target",
    [
        "sig",
        "rdiff-sig",
        "delta",
        "rdiff-delta",
        "sync-client",
        "sync-server",
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
    assert res["inputs"] >= 10, res
    assert not res["findings"], "\n".join(f"{why} ({where})" for why, where in res["findings"])
