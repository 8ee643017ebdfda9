"""Model time versus wall time.

The protocol's times (30,000 ms session limit, 300 s interval) are *model* time. A
run at ``time_scale`` 0.001 makes 30,000 model ms last 30 wall ms. Traces are always
written in model milliseconds, so a property holds the same at every scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Clock:
    """Converts between wall seconds (monotonic) and model milliseconds."""

    time_scale: float = 1.0
    #: Monotonic wall time that model time 0 corresponds to.
    epoch: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise ValueError(f"time scale must be > 0, got {self.time_scale}")

    def now_ms(self) -> int:
        """The current model time in whole milliseconds."""
        return int((time.monotonic() - self.epoch) / self.time_scale * 1000)

    def wall_seconds(self, model_ms: float) -> float:
        """How long ``model_ms`` of model time lasts on the wall clock."""
        return model_ms / 1000 * self.time_scale
