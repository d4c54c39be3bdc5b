"""Event-time window assigners for :meth:`KeyedStream.window`."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["HoppingWindows", "TumblingWindows"]


@dataclass(frozen=True)
class TumblingWindows:
    """Back-to-back windows of ``size`` time units: [k*size, (k+1)*size).

    ``size`` and the timestamps share a unit (seconds, milliseconds...).
    """

    size: float

    def __post_init__(self) -> None:
        if not self.size > 0:
            raise ValueError(f"window size must be positive, not {self.size!r}")

    def assign(self, t: float) -> list[float]:
        """The start of the one window holding time ``t``."""
        if t != t or t in (math.inf, -math.inf):
            raise ValueError(f"timestamp must be a finite number, not {t!r}")
        size = self.size
        return [(t // size) * size]


@dataclass(frozen=True)
class HoppingWindows:
    """Windows of ``size`` starting every ``hop`` (``hop`` <= ``size``): each
    time falls in ``ceil(size / hop)`` windows (fewer at the edges of an
    uneven division)."""

    size: float
    hop: float

    def __post_init__(self) -> None:
        if not self.size > 0 or not self.hop > 0:
            raise ValueError(f"size and hop must be positive, not {self.size!r}, {self.hop!r}")
        if self.hop > self.size:
            raise ValueError(
                f"hop {self.hop!r} is larger than size {self.size!r}: events would be lost"
            )

    def assign(self, t: float) -> list[float]:
        """The starts of every window holding ``t``, oldest first."""
        if t != t or t in (math.inf, -math.inf):
            raise ValueError(f"timestamp must be a finite number, not {t!r}")
        hop, size = self.hop, self.size
        last = (t // hop) * hop
        starts = []
        s = last
        while s > t - size:
            starts.append(s)
            s -= hop
        starts.reverse()
        return starts
