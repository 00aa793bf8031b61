"""``--bwlimit``: a token bucket on the bytes one end writes to the channel.

As rsync's: the rate is in units of 1024 bytes per second unless a suffix
says otherwise (``K``/``KiB`` 1024, ``M``/``MiB`` 1024², ``G``/``GiB``
1024³; ``KB``/``MB``/``GB`` powers of 1000; ``B`` bytes), ``0`` means no
limit. Each end limits what it writes: the driving end by itself, the
serving end when both speak the "bwlimit" feature (the limit travels in
hello), so a push and a pull are both held to the rate.

The bucket holds at most :data:`BURST_SECONDS` of the rate (and at least
one 64 KiB write); a write takes its bytes from it and, if that leaves it
in debt, sleeps until the debt is paid, so over any stretch the bytes
written stay within rate x time + the bucket's size.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Callable, Optional

from ..errors import UsageError

#: How much the bucket holds, in seconds of the rate.
BURST_SECONDS = 0.1
#: ... but never less than this many bytes.
MIN_BURST = 64 << 10

_UNITS = {
    "": 1024,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
}

_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_rate(text: object) -> Optional[int]:
    """Bytes per second of a ``--bwlimit`` value (None: no limit).

    Example:
        >>> parse_rate("10M"), parse_rate("500"), parse_rate("1.5MB"), parse_rate("0")
        (10485760, 512000, 1500000, None)
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise UsageError(f"bad --bwlimit {text!r}")
    if isinstance(text, (int, float)):
        value = float(text) * 1024
    else:
        m = _RATE.match(str(text))
        unit = _UNITS.get(m.group(2).lower()) if m else None
        if m is None or unit is None:
            raise UsageError(
                f"bad --bwlimit {text!r}: a number of KiB/s, or with a suffix "
                "(B, K, M, G, KB, MB, GB), e.g. 10M"
            )
        value = float(m.group(1)) * unit
    if value < 0:
        raise UsageError(f"bad --bwlimit {text!r}: negative")
    if value == 0:
        return None
    if value < 1:
        raise UsageError(f"bad --bwlimit {text!r}: less than one byte per second")
    return int(value)


class TokenBucket:
    """Holds writes to ``rate`` bytes per second on average.

    Args:
        rate: bytes per second.
        burst: bytes the bucket holds (default: BURST_SECONDS of the rate,
            at least MIN_BURST).
        clock, sleep: for tests.

    Example:
        >>> b = TokenBucket(1 << 20)
        >>> b.take(1000); b.taken
        1000
    """

    def __init__(
        self,
        rate: int,
        burst: Optional[int] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise UsageError("a bandwidth limit must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(MIN_BURST, int(rate * BURST_SECONDS))
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self._lock = threading.Lock()
        self.taken = 0  #: bytes that went through the bucket
        self.slept = 0.0  #: seconds spent waiting for it

    def take(self, n: int) -> None:
        """Account for n bytes about to be written; sleeps while in debt."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            self.taken += n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            if wait > 0:
                self.slept += wait
                self._sleep(wait)
