"""The load a fault runs under: paced users, how long, and when a fault at a moment lands."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoadShape:
    users: int
    per_user_rps: float
    seconds: float
    at_s: float  # when a fault that happens at a moment is injected, seconds after the load starts

    @property
    def requests(self) -> int:
        return int(self.users * self.per_user_rps * self.seconds)

    def as_dict(self) -> dict:
        return {**self.__dict__, "requests": self.requests}


# Faults land at least 1.3 s into the load: redis' everysec fsync (once per wall-clock second) has then
# run at least once since the first write, so what a host crash loses is a tail, not everything.
FULL = LoadShape(users=10, per_user_rps=25, seconds=4.0, at_s=1.5)
QUICK = LoadShape(users=8, per_user_rps=25, seconds=2.5, at_s=1.3)
