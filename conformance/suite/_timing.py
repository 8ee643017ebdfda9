"""How fast a wire run may go on this machine: jitter measured, not assumed.

Over the wire every timing rule gets a tolerance: the wall seconds a record may be
late by scheduling (the *jitter budget*), in model time at the run's time scale. A
faster scale makes the same budget more model time, and the tolerance must stay a
small share of the 30,000 ms session limit, or the oracle could no longer tell a
session given up at the limit from one given up early. So the fastest safe scale
follows from the budget: ``scale = budget / (TOLERANCE_SHARE x session limit)``.

:func:`calibrate` measures this machine's scheduling lateness for a moment at the
start of a run and picks the budget (:data:`HEADROOM` times the worst lateness seen,
at least :data:`MIN_BUDGET_S`), hence the scale. A :class:`JitterMonitor` then
watches lateness through the whole run, in every process of it; a run whose worst
lateness exceeded its budget is *inconclusive* on timing (``results``), rather than
failing or passing a client on noise.

Lateness is measured the way the suite and the servers feel it: a thread asks to
sleep :data:`SAMPLE_S` and notes how much later it woke up (the GIL, the other
threads and the other processes on the cores all show there).
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from sephb.model.protocol import SESSION_LIMIT_MS

#: The share of the session limit the tolerance may take: 10,000 of 30,000 model ms.
TOLERANCE_SHARE: Final = 1 / 3
#: The smallest budget: on a quiet machine a sleep is late by well under a
#: millisecond, but a loopback request, its record and a client's timer add a few.
#: 30 ms gives a time scale of 0.003 (the 300 s interval lasts 0.9 s).
MIN_BUDGET_S: Final = 0.03
#: The budget is this many times the worst lateness the calibration saw.
HEADROOM: Final = 4
#: A machine whose other work takes more than this share of a CPU from a thread
#: that wants one is busy: its processes (the client, the servers) are scheduled
#: late in bursts that a sleeping thread does not see, so the run takes the old,
#: wider budget (0.1 s: a time scale of 0.01) and fewer jobs.
BUSY_CONTENTION: Final = 0.1
BUSY_BUDGET_S: Final = 0.1
#: How long the calibration spins to measure contention.
SPIN_S: Final = 0.1
#: How long the calibration samples, and one sample's sleep.
CALIBRATION_S: Final = 0.25
SAMPLE_S: Final = 0.002


def scale_for(budget_s: float) -> float:
    """The fastest time scale at which ``budget_s`` of wall time is at most
    :data:`TOLERANCE_SHARE` of the session limit (rounded up to 2 significant
    digits: the scale is a command-line number)."""
    raw = budget_s * 1000 / (SESSION_LIMIT_MS * TOLERANCE_SHARE)
    digits = 1 - math.floor(math.log10(raw))
    return float(math.ceil(raw * 10**digits) / 10**digits)


@dataclass(frozen=True)
class Calibration:
    """What the start of a run measured, and the budget and scale it chose."""

    samples: int
    #: Lateness of a short sleep, wall milliseconds: median, 99th percentile, worst.
    p50_ms: float
    p99_ms: float
    max_ms: float
    budget_s: float
    time_scale: float
    #: The share of a 0.1 s spin this thread spent waiting for a CPU (other work
    #: on the machine); None where the kernel does not say.
    contention: float | None = None

    @property
    def busy(self) -> bool:
        return self.contention is not None and self.contention > BUSY_CONTENTION

    def text(self) -> str:
        load = "" if self.contention is None else (
            f"; a spinning thread waited {self.contention:.0%} of the time for a CPU"
            + (" (a busy machine)" if self.busy else ""))
        return (f"{self.samples} sleeps of {SAMPLE_S * 1000:g} ms were late by "
                f"{self.p50_ms:.2f} ms (median), {self.p99_ms:.2f} ms (p99), "
                f"{self.max_ms:.2f} ms (worst){load}: budget "
                f"{self.budget_s * 1000:g} ms, time scale {self.time_scale:g}")


def calibrate(duration_s: float = CALIBRATION_S) -> Calibration:
    """Measure this machine's scheduling lateness for ``duration_s`` and choose the
    jitter budget and the time scale from it."""
    late = sorted(_samples(duration_s))
    worst = late[-1]
    contention = _contention(SPIN_S)
    budget = max(MIN_BUDGET_S, math.ceil(HEADROOM * worst) / 1000)
    if contention is not None and contention > BUSY_CONTENTION:
        budget = max(budget, BUSY_BUDGET_S)
    return Calibration(len(late), late[len(late) // 2],
                       late[min(len(late) - 1, int(len(late) * 0.99))], worst,
                       budget, scale_for(budget), contention)


def _contention(spin_s: float) -> float | None:
    """The share of ``spin_s`` of busy looping this thread spent waiting on a run
    queue (Linux schedstat of the thread; None without it)."""
    path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
    try:
        with open(path, "rb") as f:
            run0, wait0 = (int(x) for x in f.read().split()[:2])
        end = time.monotonic() + spin_s
        while time.monotonic() < end:
            pass
        with open(path, "rb") as f:
            run1, wait1 = (int(x) for x in f.read().split()[:2])
    except (OSError, ValueError):
        return None
    total = (run1 - run0) + (wait1 - wait0)
    return (wait1 - wait0) / total if total > 0 else None


def _samples(duration_s: float) -> list[float]:
    out: list[float] = []
    end = time.monotonic() + duration_s
    while time.monotonic() < end or not out:
        t = time.monotonic()
        time.sleep(SAMPLE_S)
        out.append(max(0.0, (time.monotonic() - t - SAMPLE_S) * 1000))
    return out


#: Bumped as an untimed stretch begins and ends (see :func:`untimed`).
_untimed: list[int] = [0]


def pause() -> None:
    """An untimed stretch begins: the run's own work between test cases, when no
    client runs and no server records (Hypothesis collects garbage as a case
    begins). Lateness until :func:`resume` is not counted."""
    if not _untimed[0] % 2:
        _untimed[0] += 1


def resume() -> None:
    """The untimed stretch ends (a test case's world is made)."""
    if _untimed[0] % 2:
        _untimed[0] += 1


@contextlib.contextmanager
def untimed() -> Iterator[None]:
    """An untimed stretch (see :func:`pause`) for the length of the block."""
    was = _untimed[0] % 2
    pause()
    try:
        yield
    finally:
        if not was:
            resume()


@contextlib.contextmanager
def collect_between_cases() -> Iterator[None]:
    """No automatic garbage collection while the block runs: a full collection of
    the suite's objects (Hypothesis', the records') holds the GIL for tens of
    milliseconds, and would make the servers record late. :func:`collect` runs it
    between cases instead."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def collect() -> None:
    """Collect garbage now, between two test cases (untimed)."""
    with untimed():
        gc.collect()


#: A run is too busy to judge timing when more than this share of its lateness
#: samples exceed the budget (a lone hiccup is not; see ``_remote.run_wire``).
BUSY_SHARE: Final = 0.001


class JitterMonitor:
    """Measures scheduling lateness in the background while a run goes on (a daemon
    thread): :attr:`worst_ms` is the worst seen, :attr:`over` how many samples of
    :attr:`samples` were later than ``budget_ms``. Use as a context manager."""

    def __init__(self, budget_ms: float = math.inf, sample_s: float = SAMPLE_S) -> None:
        self.sample_s = sample_s
        self.budget_ms = budget_ms
        self.worst_ms = 0.0
        self.samples = self.over = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sephb-jitter",
                                        daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            epoch = _untimed[0]
            t = time.monotonic()
            time.sleep(self.sample_s)
            late = (time.monotonic() - t - self.sample_s) * 1000
            if epoch != _untimed[0] or epoch % 2:
                continue  # an untimed stretch of the run's own work
            self.samples += 1
            if late > self.budget_ms:
                self.over += 1
            if late > self.worst_ms:
                self.worst_ms = late

    def __enter__(self) -> JitterMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
