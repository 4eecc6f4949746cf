"""What an admission check answers, and the one place its refusals are worded.

Every store (this process's memory, PostgreSQL, Redis) answers the same four verdicts, so an
engine sees the same ``RATE_LIMITED`` whichever one counted it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NoReturn

from app.errors import RateLimited

OK = "ok"
BUSY = "busy"  # maxConcurrentSessions operations already in flight
RATE = "rate"  # not enough of aiCallsPerMinute left; ``wait`` says when there will be
NEVER = "never"  # the operation alone costs more than the whole budget


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str
    wait: float = 0.0


@dataclass(frozen=True, slots=True)
class Lease:
    """A slot of maxConcurrentSessions, held while the operation runs. ``shared`` leases live in
    the shared store and expire unless this process renews them, so a process that dies frees
    its slots within the lease time."""

    key: str
    token: str
    shared: bool


def refuse(verdict: Verdict, cost: int, per_minute: int, max_in_flight: int) -> NoReturn:
    if verdict.kind == BUSY:
        raise RateLimited(
            f"maxConcurrentSessions of {max_in_flight} reached: wait for an operation to finish",
            retry_after_seconds=1,
        )
    if verdict.kind == NEVER:
        # No wait can make it fit: say so, instead of a retry time that never succeeds.
        raise RateLimited(
            f"this operation has {cost} root fields and aiCallsPerMinute is {per_minute}: it can "
            f"never be admitted; send at most {per_minute} root fields per operation",
            retry_after_seconds=None,
            maxRootFields=per_minute,
        )
    raise RateLimited(
        f"aiCallsPerMinute of {per_minute} reached: this operation has {cost} root fields",
        retry_after_seconds=max(1, math.ceil(verdict.wait - 1e-9)),
    )
