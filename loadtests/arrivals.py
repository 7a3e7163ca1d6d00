"""Fixed-rate load (``--rate``): every request of a cell has a scheduled start, whether or not a user is free
to send it then. Latency is measured from that scheduled start (corrected for coordinated omission: a stalled
server also delays the requests a closed-loop generator would simply not have sent), and a slot no user could
start before the cell ended is counted as dropped - never silently skipped.

Pure: the standard library only. Times are seconds on the recorder's clock (RECORDER.now()).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ARRIVALS = ("constant", "poisson")
LATE_S = 0.010  # a request that starts this much after its scheduled time is counted as late


@dataclass
class Schedule:
    """The scheduled starts of one cell: `total` slots at `rate` a second from `start`, evenly spaced
    (constant) or with exponential gaps (poisson, seeded: the same run gives the same schedule)."""

    rate: float
    total: int
    start: float
    arrivals: str = "constant"
    seed: int = 0
    taken: int = 0
    late: int = 0
    _next: float = field(init=False)
    _random: random.Random = field(init=False)

    def __post_init__(self):
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals {self.arrivals!r}: one of {', '.join(ARRIVALS)}")
        if self.rate <= 0:
            raise ValueError(f"rate {self.rate}: must be above 0")
        self._random = random.Random(self.seed)
        self._next = self.start

    def take(self) -> float | None:
        """The next slot's scheduled start, or None when every slot is taken."""
        if self.taken >= self.total:
            return None
        slot = self._next
        self.taken += 1
        gap = 1.0 / self.rate if self.arrivals == "constant" else self._random.expovariate(self.rate)
        self._next = slot + gap
        return slot

    def started(self, slot: float, now: float) -> None:
        if now - slot > LATE_S:
            self.late += 1

    def dropped(self, now: float) -> int:
        """Slots due by `now` that no user took: the generator fell behind them (at the cell's end). For
        poisson arrivals the gaps not yet drawn count at their mean, 1/rate."""
        if self.taken >= self.total or self._next > now:
            return 0
        return min(self.total - self.taken, int((now - self._next) * self.rate) + 1)
