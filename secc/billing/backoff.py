"""How long the outbox waits before trying a failed delivery again (pure, no clock).

After the n-th failed attempt of a record (n = 1, 2, ...) the delay is

    base(n) = min(maximum, initial * factor ** (n - 1))
    delay(n) = base(n) * (1 - jitter * u)      u drawn from the injected random source in [0, 1)

so with the defaults (2 s doubling, capped at 10 min, 10 % jitter) the retries come after about
2, 4, 8, ... 512, 600, 600 s. The jitter only shortens a delay, so the cap is a true maximum;
it spreads the retries of records that failed together (a processor that was down) instead
of sending them all in the same second when it comes back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential back-off with a cap and downward jitter; times in seconds."""

    initial: float = 2.0
    maximum: float = 600.0
    factor: float = 2.0
    jitter: float = 0.1  # fraction of the delay that random may take off (0: none)
    _cap_exponent: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial > 0):
            raise ValueError(f"back-off initial delay must be > 0 s, not {self.initial!r}")
        if not (math.isfinite(self.maximum) and self.maximum >= self.initial):
            raise ValueError(
                f"back-off maximum {self.maximum!r} must be at least the initial delay "
                f"{self.initial!r}"
            )
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"back-off factor must be >= 1, not {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"back-off jitter must be within 0..1, not {self.jitter!r}")
        # the exponent from which the cap applies (avoids float overflow for large n)
        if self.factor == 1 or self.maximum == self.initial:
            cap = 0
        else:
            cap = math.ceil(math.log(self.maximum / self.initial, self.factor))
        object.__setattr__(self, "_cap_exponent", cap)

    def base(self, failures: int) -> float:
        """The delay after `failures` failed attempts, before jitter (0 for none)."""
        if failures <= 0:
            return 0.0
        exponent = failures - 1
        if exponent >= self._cap_exponent:
            return self.maximum
        return min(self.maximum, self.initial * self.factor**exponent)

    def delay(self, failures: int, random: Callable[[], float]) -> float:
        """The delay after `failures` failed attempts; `random()` gives u in [0, 1)."""
        base = self.base(failures)
        if base == 0.0 or self.jitter == 0:
            return base
        u = min(max(random(), 0.0), 1.0)
        return base * (1.0 - self.jitter * u)
