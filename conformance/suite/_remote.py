"""The conformance suite over the wire: real servers, and the client as a process.

Theory of operation
-------------------
The suite (:mod:`._machine`) plays the environment of one client through the methods of
:class:`~.world.World`. Here those methods drive real simulated servers instead: a
:class:`~._wire_world.RemoteWorld` owns a :class:`~sephb.conformance.site.Fleet` (three
managers over two priorities on port 8014 and a GUP on 2967, on 127.x addresses of its
own) running in an asyncio loop on a background thread. The Hypothesis machine is
synchronous; each environment action crosses into the loop with
:func:`asyncio.run_coroutine_threadsafe` and waits for it to be done.

The client under test is any program (:class:`ProcessClient`): the suite writes a
sylink.xml naming the fleet, runs the command with ``{sylink}``, ``{state_dir}`` and
``{time_scale}`` filled in (and ``{log_dir}``, a log spool, when it takes one), kills
it with SIGKILL to restart it (the state and spool directories stay), and kills it at
the end of each test case. It is a black box: it gets no calls, its timers are its
own, and the suite learns what it did only from what the servers record -- the same
server-side trace (``by: "server"``) the oracle reads in process, so one oracle
judges both adapters.

Time is the fleet's :class:`~sephb.conformance.traces.clock.Clock`: model milliseconds
at the run's time scale, shared by the servers' records and the suite's ``now``.
``advance`` sleeps until the clock reaches the target. The client's timers run in its
own process, so the suite cannot stop time at the client's wake-ups as it does in
process; instead the world asks to be polled every half tolerance
(:meth:`RemoteWorld.next_deadline`), so that the oracle looks at the records while time
passes (a violation ends a long wait early) and never judges a deadline on records older
than that. Timing properties get the tolerance as slack: scheduling jitter, in model
time, is wall jitter divided by the time scale.

What the wire cannot do, and what this adapter does about it (``docs/adapters.md``):

* A refused connect never reaches a server, and a loopback connect never hangs: the
  rows ``CONNECTING--SESSION_TIMEOUT`` and ``CONNECTING--CONNECT_FAILED`` leave no
  record and are reported skipped, with the reason (:func:`uncoverable` lists them,
  and the rows whose records the checker cannot attribute). The world's
  ``BLACKHOLE`` fault (a connect that never completes) becomes ``stall`` on every
  path.
* Only what servers cannot see is hidden from the checker (:data:`WIRE_HIDDEN`). The
  servers record a stalled first request that the client gives up as
  ``CONNECT_FAILED``; when the client gave up after the session limit, the adapter
  names it ``SESSION_TIMEOUT``, as the in-process world does.
* A connection closed before any request carries no client id: its records are
  dropped. At a restart, what the killed process left after the suite last looked
  (a check-in cut short) is dropped but for the closes: the oracle starts over.
* ``drop`` closes a connection between two requests of a check-in only when its next
  request arrives, so that the failure the client meets is one a server records.
* The client's logs are its own, unless its command takes ``{log_dir}``: then the
  suite's ``logs`` rule writes entries into that spool
  (:meth:`ProcessClient.produce_logs`) and the oracle judges each by its id, with
  the tolerance for an entry that landed as the client listed the spool. Without
  it the rule is off and only uploads twice are caught.
* Heartbeat sizes are real bytes here, and only here: each completed pull check-in
  whose connection carried nothing else is measured (REQ-SIZE-IDLE, REQ-SIZE-MAX),
  and a size outside the seed's typical range is a warning (ambiguity A7).
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from sephb.conformance.suite import _machine as suite
from sephb.conformance.suite._process import (
    PLACEHOLDERS,
    ProcessClient,
)
from sephb.conformance.suite._timing import (
    TOLERANCE_SHARE,
    collect,
    pause,
    resume,
)
from sephb.conformance.suite._wire_world import (
    DEFAULT_TIME_SCALE,
    START_ALLOWANCE_S,
    STARTUP_S,
    RemoteWorld,
    Size,
)
from sephb.conformance.suite.inproc import InProcessClient
from sephb.conformance.suite.results import (
    RequirementResult,
    Status,
    SuiteResult,
)
from sephb.conformance.suite.world import DEFAULT_SITE, Site
from sephb.model.errors import UsageError
from sephb.model.interpretations import Interpretation
from sephb.model.protocol import (
    SESSION_LIMIT_MS,
    Event,
    Mode,
    State,
)

__all__ = [
    "WIRE_HIDDEN",
    "WIRE_PROFILES",
    "WireEnvironment",
    "WireObservations",
    "WireProfile",
    "uncoverable",
    "wire_environment",
]

#: What the records over the wire cannot show: the client's timers, the TCP handshake,
#: and a GUP download that never connected. Narrower than properties.HIDDEN, which
#: also hides session failures: on loopback a connect never hangs, a refused one
#: changes nothing the model can see (the client is back in IDLE, or CONNECTING to
#: the next manager, both already consistent with the records), and every session
#: failure after the connect is recorded by the server that saw it (a stalled first
#: answer as SESSION_TIMEOUT, see RemoteWorld). Hiding them anyway would let the
#: checker explain a recorded CONNECT_FAILED on index.dat as a timeout, a new
#: heartbeat and a refused connect -- coverage of rows the wire cannot show.
WIRE_HIDDEN: Final = frozenset({Event.HEARTBEAT_DUE, Event.CONNECTED,
                                Event.DOWNLOAD_FAILED})


@dataclass(frozen=True)
class WireProfile:
    """How much of a profile runs over the wire.

    A wire case costs wall time: at the calibrated scale (0.003 on the project's
    2-core machine) a heartbeat interval lasts 0.9 s and a case of 12 steps about
    2 s, most of it waiting, so cases run side by side (``--jobs``). Failures are
    shrunk over the wire (:func:`._jobs.shrink`) and replayed.
    """

    cases: int
    steps: int


#: Per profile: Hypothesis cases and steps per case over the wire (in process:
#: suite.PROFILES), run in shards of _jobs.SHARD_CASES. The suite's directed cases
#: then steer to each row they missed. Measured times: docs/adapters.md. certify
#: runs the 2,995 clean cases a 0.999 reliability claim needs (rule of three).
WIRE_PROFILES: Final[dict[str, WireProfile]] = {
    "ci": WireProfile(cases=32, steps=12),
    "nightly": WireProfile(cases=600, steps=20),
    "certify": WireProfile(cases=3_000, steps=30),
}


# --- the environment -------------------------------------------------------------------


@dataclass
class WireObservations:
    """What the wire adapter learned over a run, beyond the oracle's verdicts."""

    sizes: list[Size] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class WireEnvironment(suite.Environment):
    """A :class:`~._machine.Environment` whose worlds are real servers; it also
    collects the heartbeat sizes and notes of every test case."""

    observations: WireObservations = field(default_factory=WireObservations)
    client_cmd: str = ""
    time_scale: float = DEFAULT_TIME_SCALE


#: The tolerance of every timing rule over the wire, model ms: a share of the session
#: limit (:data:`._timing.TOLERANCE_SHARE`), so that timing properties can still tell
#: a session given up at the limit from one given up early. Its wall time at the
#: run's time scale is the jitter budget (``_timing``: the calibration picks the
#: scale for it).
WIRE_TOLERANCE_MS: Final = round(SESSION_LIMIT_MS * TOLERANCE_SHARE)


def wire_environment(client_cmd: str, *, time_scale: float = DEFAULT_TIME_SCALE,
                     tolerance_ms: int | None = None, startup_s: float = STARTUP_S,
                     start_allowance_s: float = START_ALLOWANCE_S, eager: bool = True,
                     tmp_dir: str | None = None) -> WireEnvironment:
    """The suite's environment over the wire for a client command (a template with
    ``{sylink}``, ``{state_dir}`` and ``{time_scale}``; ``{client_id}``,
    ``{interpretation}`` and ``{log_dir}`` are optional). With ``{log_dir}`` the
    suite's ``logs`` rule is on: it writes into the client's spool, and the oracle
    judges those entries by id. ``tolerance_ms`` defaults to
    :data:`WIRE_TOLERANCE_MS` (a share of the session limit; at ``time_scale`` it is
    the run's jitter budget in wall time). ``tmp_dir``: where the clients'
    temporary directories go (default: the system's)."""
    missing = [p for p in PLACEHOLDERS[:3] if p not in client_cmd]
    if missing:
        raise UsageError(f"--client-cmd {client_cmd!r}: missing {', '.join(missing)} "
                         f"(a client needs the sylink.xml, its state directory and the "
                         f"time scale; see docs/adapters.md)")
    try:
        words = shlex.split(client_cmd)
        if not words:
            raise ValueError("empty command")
    except ValueError as exc:
        raise UsageError(f"--client-cmd {client_cmd!r}: {exc}") from None
    if shutil.which(words[0]) is None:
        # Found now rather than as a crash in the first test case.
        where = ("no such file, or not executable" if os.sep in words[0]
                 else "not found on PATH (give its path, e.g. .venv/bin/sephb)")
        raise UsageError(f"--client-cmd: {words[0]!r} is not an executable program: "
                         f"{where}")
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise UsageError(f"time scale {time_scale!r}: expected a number > 0")
    if not (math.isfinite(startup_s) and startup_s > 0):
        raise UsageError(f"start-up wait {startup_s!r}: expected a number of seconds > 0")
    if not (math.isfinite(start_allowance_s) and 0 <= start_allowance_s <= startup_s):
        raise UsageError(f"start allowance {start_allowance_s!r}: expected seconds from 0 "
                         f"to the start-up wait ({startup_s:g} s)")
    tol = WIRE_TOLERANCE_MS if tolerance_ms is None else tolerance_ms
    if not 0 <= tol <= SESSION_LIMIT_MS // 2:
        raise UsageError(
            f"tolerance {tol} model ms: more than half the {SESSION_LIMIT_MS} ms "
            f"session limit, which timing properties could no longer tell apart; "
            f"expected 0 to {SESSION_LIMIT_MS // 2}")
    observations = WireObservations()

    def world(site: Site = DEFAULT_SITE) -> RemoteWorld:
        collect()  # the garbage of earlier cases, before this one is timed
        try:
            return RemoteWorld(site, time_scale=time_scale, tolerance_ms=tol)
        finally:
            resume()

    contact = [False]

    def client(w: Any, interp: Interpretation, mode: Mode) -> InProcessClient:
        return ProcessClient(w, client_cmd, mode, interpretation=interp.name,
                             startup_s=startup_s, contact=contact, tmp_dir=tmp_dir)

    def close(w: Any, c: InProcessClient) -> None:
        c = getattr(c, "unguarded", c)  # the suite's guarded client, or the client
        pause()  # the case is over: until the next one's world, nothing is timed
        try:
            if isinstance(c, ProcessClient):
                c.kill()
                for line in c.exits:
                    observations.note(line)
        finally:
            try:
                if isinstance(w, RemoteWorld):
                    w.close()
                    observations.sizes += w.sizes()
                    for line in w.notes:
                        observations.note(line)
            finally:
                if isinstance(c, ProcessClient):
                    c.close()

    return WireEnvironment(client=client, world=world, tolerance_ms=tol,
                           start_ms=round(start_allowance_s * 1000 / time_scale),
                           call_budget_s=None,
                           adapter="wire", close=close, logs="{log_dir}" in client_cmd,
                           hidden=WIRE_HIDDEN,
                           uncoverable=uncoverable, unjudged={},
                           observations=observations, black_box=eager,
                           client_cmd=client_cmd, time_scale=time_scale)


# --- a run ---------------------------------------------------------------------------


_SESSION_FAILURES: Final = (Event.SESSION_TIMEOUT, Event.CONNECT_FAILED)


def uncoverable(interp: Interpretation) -> dict[str, str]:
    """Rows whose coverage the records of a black box over the wire cannot show,
    each with the reason (docs/adapters.md). Coverage over the wire is the checker's
    explanation of the servers' records, so a row must both leave records and be
    the explanation the checker picks for them."""
    rows = interp.rows()
    fallback = any(r.source is State.DOWNLOADING_GUP and r.dest is State.DOWNLOADING_MANAGER
                   for r in rows)
    out = {}
    for r in rows:
        if r.source is State.CONNECTING and r.event in _SESSION_FAILURES:
            out[r.name] = ("a session that fails before the TCP connection is up "
                           "(refused, or a connect that never completes) reaches no "
                           "server")
        elif (r.source is State.FETCHING_INDEX and r.event in _SESSION_FAILURES
              and r.dest is State.CONNECTING):
            out[r.name] = ("the failed connection's close is recorded as DISCONNECT, "
                           "which reads as the check-in ending; the records cannot "
                           "tell a failover from the last manager failing")
        elif (fallback and r.source is State.DOWNLOADING_GUP
              and r.event is Event.CONTENT_RECEIVED):
            out[r.name] = ("a GUP that refuses is invisible, so the checker may always "
                           "explain GUP content as the fallback download from the "
                           "manager")
    return out


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a wire run like Ctrl-C: the finally blocks kill the client and
    stop the servers (Python's default SIGTERM exits without running them). A
    SIGTERM after the first waits for them (a supervisor that says it twice, one
    that signals the whole process group and the pool that passes it on): dying in
    the middle of the cleanup would leave the job workers, their clients and the
    temporary directories behind. Only on the main thread, and only where nobody
    else handles SIGTERM."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    came: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        came.append(signum)
        if len(came) == 1:
            raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wire_result(result: SuiteResult, seen: WireObservations) -> SuiteResult:
    """Add what only the wire measures (sizes) and says (notes) to a result."""
    warnings = list(result.warnings)
    reqs = []
    for r in result.requirements:
        if r.id in _SIZE_SHOWN_BY:
            r = _size_result(r, seen.sizes, result, warnings)
        reqs.append(r)
    warnings += seen.notes
    return msgspec.structs.replace(result, requirements=reqs, warnings=warnings)


#: Which check-ins show each size requirement, for the reason it was not measured.
_SIZE_SHOWN_BY: Final = {
    "REQ-SIZE-IDLE": "a pull check-in that carried nothing but the heartbeat (no logs, "
                     "no content)",
    "REQ-SIZE-MAX": "a pull check-in that uploaded the client's full logs",
}


def _size_result(r: RequirementResult, sizes: list[Size], result: SuiteResult,
                 warnings: list[str]) -> RequirementResult:
    """A size requirement's verdict from the check-ins measured: PASSED when one was
    (a size outside the typical range is a warning: the seed calls the sizes typical,
    A7), else SKIPPED -- whether such a check-in happens depends on the client's own
    logs, which the suite does not control -- or NOT_REACHED after a failure."""
    measured = [s for s in sizes if s.requirement == r.id]
    out = [s for s in measured if not s.bounds[0] <= s.bytes <= s.bounds[1]]
    if out:
        lo, hi = out[0].bounds
        values = sorted(s.bytes for s in out)
        span = (f"{values[0]:,}" if values[0] == values[-1]
                else f"{values[0]:,}-{values[-1]:,}")
        warnings.append(
            f"{r.id}: {len(out)} of {len(measured)} {out[0].kind} check-ins were "
            f"{span} bytes on the wire (first at t={out[0].t} on {out[0].server}); the "
            f"seed's typical range is {lo:,}-{hi:,} bytes (a warning, not a violation: "
            f"the seed calls the sizes typical, A7)")
    if measured:
        return msgspec.structs.replace(r, status=Status.PASSED, hits=len(measured),
                                       reason="")
    if result.failures or result.error:
        return msgspec.structs.replace(
            r, status=Status.NOT_REACHED, reason=r.reason or "the run stopped early")
    return msgspec.structs.replace(
        r, status=Status.SKIPPED,
        reason=f"no check-in of this run could show it: it needs "
               f"{_SIZE_SHOWN_BY[r.id]}, and the client's own logs decide whether one "
               f"happens")
