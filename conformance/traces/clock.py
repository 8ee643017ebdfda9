"""Model time versus wall time.

The protocol's times (30,000 ms session limit, 300 s interval) are *model* time. A
run at ``time_scale`` 0.001 makes 30,000 model ms last 30 wall ms. Traces are always
written in model milliseconds, so a property holds the same at every scale.

A recording is late by scheduling jitter measured in *wall* time, so the slack a
timing property needs in model time grows as the scale shrinks:
:func:`tolerance_for` turns :data:`JITTER_BUDGET_S` of wall time into model
milliseconds (the conformance suite over the wire and ``sephb validate`` both use it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Final

#: Wall seconds of slack for timing properties. Measured on the project's 2-core
#: machine with the reference client (docs/adapters.md): how late the servers record
#: a session given up at the limit, and how far apart check-ins are beyond the
#: interval, at most 8 ms of wall time with both cores busy; 0.1 s leaves 12x that.
JITTER_BUDGET_S: Final = 0.1


def tolerance_for(time_scale: float) -> int:
    """Model milliseconds of slack for :data:`JITTER_BUDGET_S` at ``time_scale``
    (wall seconds per model second): 100 at 1, 10,000 at 0.01, 100,000 at 0.001."""
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"time scale must be a number > 0, got {time_scale!r}")
    return math.ceil(JITTER_BUDGET_S / time_scale * 1000)


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
