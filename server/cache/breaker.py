"""A circuit breaker: after N consecutive failures a dependency is skipped for T seconds.

States: ``closed`` (calls go through), ``open`` (calls are skipped until the cool-down ends),
``half-open`` (one trial call goes through; success closes the breaker, failure opens it again).
Every transition is logged once, so an outage shows as two log lines, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Tracks failures of one dependency; ``allow()`` says whether to try it now."""

    def __init__(
        self, name: str, failures: int, cooldown_s: float,
        clock: Callable[[], float] = time.monotonic, log: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._log = log or logging.getLogger("onemap.cache")
        self.state = CLOSED
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    def allow(self) -> bool:
        """True when a call may be made now (closed, or the one trial call of half-open)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self._clock() >= self._open_until:
            self.state = HALF_OPEN
            self._probing = False
            self._log.info("%s: circuit half-open, trying again", self.name)
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        """A call succeeded: close the breaker."""
        if self.state != CLOSED:
            self._log.warning("%s: circuit closed, back in use", self.name)
        self.state = CLOSED
        self._failures = 0
        self._probing = False

    def failure(self, reason: str = "") -> None:
        """A call failed: open the breaker after ``threshold`` consecutive failures or a failed trial."""
        self._failures += 1
        if self.state == HALF_OPEN or (self.state == CLOSED and self._failures >= self.threshold):
            self.state = OPEN
            self._probing = False
            self._open_until = self._clock() + self.cooldown_s
            self._log.warning(
                "%s: circuit open after %d failure(s) (%s); skipped for %.1f s",
                self.name, self._failures, reason or "error", self.cooldown_s,
            )
