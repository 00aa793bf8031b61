"""The sync benchmark's cases beyond one file (used by bench/sync_bench.py).

repeat    push: the destination holds the result of an earlier sync by the same
          tool (of finetune's NEW, untimed), and the source has since had a
          second small change (3 x 1 MiB overwritten, same size): the timed
          run is the second sync. For pydelta the receiving end's signature
          cache then holds the signature of the file it wrote (signed after
          the first session by a detached low-priority child of `pydelta
          serve`; the harness waits until that entry exists, as a real
          second sync minutes later would find it).
folder40  push: a folder of 40 model shards (SIZE/40 each) of which 3 were
          fine-tuned (modelgen finetune pairs), the other 37 identical; every
          file compared by content (rsync -r -c; pydelta's default). scp is
          not run (it would copy the whole folder into the existing one).
"""

from __future__ import annotations

import filecmp
import os
import random
import shutil
import subprocess
import time
from typing import Callable, List, Optional, Tuple

from modelgen import make_pair

#: Shards of the folder case, and which of them change.
SHARDS = 40
CHANGED = (5, 17, 33)
#: The second small change of the repeat case: (offset fraction, bytes).
SECOND_CHANGE = ((0.21, 1 << 20), (0.52, 1 << 20), (0.83, 1 << 20))


def ensure_second_change(new: str, log: Callable[[str], None]) -> str:
    """NEW with a second small change (cached beside it as NEW.2)."""
    out = new + ".2"
    if os.path.exists(out) and os.path.getmtime(out) > os.path.getmtime(new):
        return out
    log(f"generating {os.path.basename(out)} ...")
    tmp = out + ".tmp"
    shutil.copyfile(new, tmp)
    size = os.path.getsize(new)
    rng = random.Random(2)
    with open(tmp, "r+b") as f:
        for frac, n in SECOND_CHANGE:
            f.seek(int(size * frac))
            f.write(rng.randbytes(min(n, size)))
    st = os.stat(
        new
    )  # a later time than NEW's, as a real second change has (rsync -t's quick check)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns + 60 * 10**9))
    os.replace(tmp, out)
    return out


def ensure_folder_pair(work: str, size: float, log: Callable[[str], None]) -> Tuple[str, str]:
    """(old dir, new dir) of SHARDS model shards, CHANGED of them fine-tuned."""
    tag = f"folder{SHARDS}-{size:g}M"
    old, new = os.path.join(work, f"{tag}.old"), os.path.join(work, f"{tag}.new")
    if os.path.isdir(old) and os.path.isdir(new) and len(os.listdir(new)) == SHARDS:
        return old, new
    log(f"generating {tag} ...")
    for d in (old, new):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    shard = size / SHARDS
    for i in range(SHARDS):
        name = f"model-{i + 1:05d}-of-{SHARDS:05d}.safetensors"
        o, n = os.path.join(old, name), os.path.join(new, name)
        make_pair("finetune" if i in CHANGED else "identical", shard, o, n, seed=100 + i)
    return old, new


def copy_tree(src: str, dest: str) -> None:
    """A fresh copy (new inodes, new times) of a folder, as `cp -r`."""
    subprocess.run(["cp", "-r", src, dest], check=True)


def same_tree(a: str, b: str) -> Optional[str]:
    """None if the two folders hold the same files with the same bytes, else why not."""

    def files(root: str) -> List[str]:
        out = []
        for d, _, names in os.walk(root):
            out += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return sorted(out)

    fa, fb = files(a), files(b)
    if fa != fb:
        return f"different files: {sorted(set(fa) ^ set(fb))[:5]}"
    for rel in fa:
        if not filecmp.cmp(os.path.join(a, rel), os.path.join(b, rel), shallow=False):
            return f"{rel} differs"
    return None


def wait_signed(cache_dir: str, target: str, timeout: float = 120.0) -> float:
    """Wait until pydelta's signature cache in cache_dir holds target's entry
    (see pydelta/sync/sigcache.py); returns the seconds waited (-1: gave up)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = os.stat(target)
        if os.path.exists(os.path.join(cache_dir, f"{st.st_dev:x}-{st.st_ino:x}.sig")):
            return time.monotonic() - t0
        time.sleep(0.05)
    return -1.0
