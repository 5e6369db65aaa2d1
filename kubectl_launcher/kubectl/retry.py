"""The one retry policy of the launcher: how often, how long apart, and until when a command is tried again.

`Kubectl.run` asks it, and nothing above the seam retries a kubectl command on its own (a loop around
Kubectl's would multiply the attempts and the deadlines). Whether a failure is worth a retry is not
decided here: stderr.py classifies it (transient or permanent), and only idempotent commands whose
stdin can be fed again are retried.

A retried operation has two deadlines. Each attempt has its own (`timeout`), and the operation a total
one (`total_timeout`): no attempt starts, or runs, past it. Each attempt's deadline is therefore
`min(timeout, what is left of the total)`, and a retry is given up when its backoff alone would reach
the total deadline. Without an explicit total, it is `default_total(timeout)`: every attempt its full
`timeout` plus the backoff between them, capped at `max_default_total` — but never less than one
attempt's `timeout`, so that a single long command (a large tar) keeps the deadline its caller gave it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubectl_launcher import errors

# An attempt's deadline is never shorter than this, even when the clock ran on between retry()'s
# check and the attempt (a retry is only started with time left, so this is at most a moment).
_LEAST = 0.01


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff (backoff_first, doubling, at most backoff_cap) for at most `retries`
    more attempts, within a total deadline. `sleep` and `clock` (monotonic seconds) are injected."""

    retries: int = 3
    backoff_first: float = 0.5
    backoff_cap: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    max_default_total: float = 600.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise errors.ConfigError(f"retries must be 0 or more, got {self.retries}")
        if self.backoff_first < 0 or self.backoff_cap < self.backoff_first:
            raise errors.ConfigError("backoff_first must not be negative nor larger than backoff_cap")
        if self.max_default_total <= 0:
            raise errors.ConfigError(f"max_default_total must be positive, got {self.max_default_total}")

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (1 for the first)."""
        return float(min(self.backoff_cap, self.backoff_first * 2 ** (attempt - 1)))

    def default_total(self, timeout: float) -> float:
        """The total deadline of an operation whose caller gave none (see the module's docstring)."""
        worst = (self.retries + 1) * timeout + sum(self.backoff(n) for n in range(1, self.retries + 1))
        return max(timeout, min(worst, self.max_default_total))

    def start(self, timeout: float, total_timeout: float | None = None, *, retryable: bool = True) -> Operation:
        """One operation: attempts of at most `timeout` seconds each, all within `total_timeout`."""
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if total_timeout is not None and total_timeout <= 0:
            raise ValueError(f"total_timeout must be positive, got {total_timeout}")
        total = total_timeout if total_timeout is not None else self.default_total(timeout)
        return Operation(self, timeout, total, retryable)


class Operation:
    """The attempts of one command under a RetryPolicy: `next_timeout()` before each, `retry()` after a
    transient failure (True: it has slept the backoff, try again)."""

    def __init__(self, policy: RetryPolicy, timeout: float, total: float, retryable: bool) -> None:
        self._policy = policy
        self._timeout = timeout
        self.total = total
        self._ends_at = 0.0  # set when the first attempt starts
        self._retryable = retryable
        self.attempts = 0
        self.out_of_time = False  # the last retry was given up because of the total deadline

    def next_timeout(self) -> float:
        """Count an attempt and return its deadline: min(timeout, what is left of the total)."""
        self.attempts += 1
        if self.attempts == 1:
            self._ends_at = self._policy.clock() + self.total
            return min(self._timeout, self.total)
        left = self._ends_at - self._policy.clock()
        return min(self._timeout, max(left, _LEAST))

    def retry(self) -> bool:
        """After a transient failure: sleep the backoff and return True, or False when retries are spent,
        the command may not be retried, or the backoff would reach the total deadline."""
        if not self._retryable or self.attempts > self._policy.retries:
            return False
        pause = self._policy.backoff(self.attempts)
        if self._policy.clock() + pause >= self._ends_at:
            self.out_of_time = True
            return False
        self._policy.sleep(pause)
        if self._policy.clock() >= self._ends_at:  # the sleep overslept
            self.out_of_time = True
            return False
        return True


__all__ = ["Operation", "RetryPolicy"]
