"""The conformance suite: Hypothesis stateful testing of a client against the model.

Theory of operation
-------------------
A Hypothesis ``RuleBasedStateMachine`` plays the environment of one client: three
managers over two priorities and a GUP (a :class:`~.world.World` in process), a
virtual clock, and the client under test. Its rules are environment actions -- a
manager refusing, stalling, resetting, failing or answering garbage at some step, the
GUP going down, new content published, the location's LiveUpdate source changed, the
client moving location, logs produced, a policy change pushed, the held connection
dropped, time advanced (by values that hug the 30,000 ms limit and the interval), the
client restarted. The client's moves are not rules: they are what it does in answer,
and the :class:`~.oracle.Oracle` judges every record the servers make after every
step (an invariant). No rule restates the protocol.

Hypothesis shrinks a violation to a short program; the suite turns it into a
:class:`~.results.Failure` with the records, the steps and a replay file. Coverage:
every step's records are explained by one consistent run of the model, whose rows
are counted (and reported to ``hypothesis.event``); a run fails when a row or a
requirement id was never exercised. Rules are weighted toward what is not covered yet
by :func:`_goal`, which steers the environment to the cause of an uncovered row.

Why this module is long: the environment's rules, the waits that judge while time
passes and the coverage they count share one case's state; the protocol itself is
not here (the oracle and the table judge), only how a case is played.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import hypothesis
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sephb.conformance.suite._guard import CALL_BUDGET_S, ClientFailed, Guarded, Watchdog
from sephb.conformance.suite.inproc import CoreClient, InProcessClient
from sephb.conformance.suite.oracle import Manager, Oracle
from sephb.conformance.suite.world import (
    DEFAULT_SITE,
    LOCATIONS,
    MAX_MANAGERS,
    Fault,
    Site,
    World,
    sites,
)
from sephb.conformance.traces import wire
from sephb.conformance.traces.properties import (
    DATA_REQUIREMENTS,
    HIDDEN_IN_PROCESS,
)
from sephb.model.deadlines import DEADLINES, JUDGED_ELSEWHERE, Bound
from sephb.model.interpretations import Interpretation
from sephb.model.protocol import (
    ENTRY,
    GUARDS,
    HEARTBEAT_INTERVAL_S,
    SESSION_LIMIT_MS,
    Event,
    Guard,
    Mode,
    Row,
    Source,
    State,
)

INTERVAL_MS = HEARTBEAT_INTERVAL_S * 1000
#: Steps of time that matter: just under, at and over the session limit and the
#: interval, plus small and large ones.
TIME_STEPS = sorted({1, 1_000, SESSION_LIMIT_MS - 1, SESSION_LIMIT_MS,
                     SESSION_LIMIT_MS + 1, INTERVAL_MS - 1, INTERVAL_MS, INTERVAL_MS + 1,
                     2 * INTERVAL_MS})
#: Wake-ups at one model instant beyond which a client is spinning.
SPIN_LIMIT = 200
#: Longest a case is kept running after its last step for its open deadlines to
#: resolve, in heartbeat intervals (the longest deadline is one interval, plus the
#: failovers and randomization a recorder may not see).
DRAIN_INTERVALS = 2

#: Deadlines every check-in (or held push) opens anew: a drain that awaited those
#: opened while it ran would never end. The others (at once, request and session
#: limits) end with their check-in.
CHAINED: Final = frozenset(d.id for d in (*DEADLINES, *JUDGED_ELSEWHERE)
                           if d.bound in (Bound.INTERVAL, Bound.HOLD))
PATHS = [None, "/index.dat", "/urls", "/content", "/logs", "/sensors", "/push"]
#: The site of directed cases (top-ups and probes), and what drawn sites shrink
#: toward: three managers over two priorities, and a GUP.
SITE = DEFAULT_SITE.addresses()
GUP = DEFAULT_SITE.gup_address()

#: name -> (cases, fixed): a fixed profile always runs the same programs (seed
#: :data:`FIXED_SEED` unless ``--seed`` says otherwise); the others draw a seed and
#: print it. "certify" is at least 2,995 clean cases, so that the rule of three gives
#: 0.999 reliability at 95% confidence.
PROFILES: dict[str, tuple[int, bool]] = {
    "ci": (300, True),
    "nightly": (10_000, False),
    "certify": (3_000, False),
}
FIXED_SEED = 0
#: Requirements judged by the oracle's data and deadline rules rather than by a row
#: (the deadlines judged elsewhere carry requirements of rows: the session limit, and
#: failover only where the reading has it; a deadline of an interpretation switch,
#: the push heartbeat, carries the requirement of its rows too).
PROPERTY_REQUIREMENTS = tuple(sorted(set(DATA_REQUIREMENTS) | {
    d.requirement for d in DEADLINES if d.requirement and d.switch is None}
    | {"REQ-X-ALIVE"}))
#: What a client breaks when it raises, hangs or spins instead of going on: judged
#: by the suite itself (every call into the client is guarded, :mod:`._guard`).
ALIVE = "REQ-X-ALIVE"
#: Requirements only real bytes on the wire can show, and why.
SIZE_REQUIREMENTS = {
    "REQ-SIZE-IDLE": "heartbeat sizes are bytes on the wire: only the wire adapter "
                     "measures them",
    "REQ-SIZE-MAX": "heartbeat sizes are bytes on the wire: only the wire adapter "
                    "measures them",
}

ClientFactory = Callable[[Any, Interpretation, Mode], InProcessClient]


@dataclass
class Environment:
    """Where a run happens: how to make the world and the client of one test case.

    In process (the default) the world is a :class:`~.world.World` and time is
    virtual. Over the wire (:mod:`._remote`) the world drives real servers and the
    client is a process; the rules and the oracle are the same.
    """

    client: ClientFactory
    world: Callable[[Site], Any] = World.of
    #: Model milliseconds of slack for timing properties.
    tolerance_ms: int = 0
    #: Model milliseconds a client may take to start before its first heartbeat,
    #: which is due at once (A10): 0 in process, a process's start over the wire.
    start_ms: int = 0
    #: Events the servers' records cannot show in this environment.
    hidden: frozenset[Event] = HIDDEN_IN_PROCESS
    adapter: str = "in-process"
    #: Called at the end of every test case with its world and client.
    close: Callable[[Any, InProcessClient], None] = lambda world, client: None
    #: Whether the suite makes the client's logs: in process, and over the wire for a
    #: command with a log spool (``{log_dir}``); otherwise a process makes its own,
    #: the ``logs`` rule is off and the oracle judges none lost.
    logs: bool = True
    #: Rows this environment's records can never show, with the reason (no directed
    #: case tries them; reported as skipped).
    uncoverable: Callable[[Interpretation], Mapping[str, str]] = lambda interp: {}
    #: Requirements this environment cannot judge, with the reason.
    unjudged: Mapping[str, str] = field(default_factory=lambda: dict(SIZE_REQUIREMENTS))
    #: Wall seconds one call into the client may take before the watchdog cuts it
    #: short (REQ-X-ALIVE); None: no watchdog (a process bounds its own waits).
    call_budget_s: float | None = CALL_BUDGET_S
    #: The client is a black box whose timers the suite cannot see (a process): a
    #: wait ends as soon as the model needs no more time (see ``_Waits``), not after
    #: a whole interval, since model time costs wall time there.
    black_box: bool = False


def reference_factory(core: Any = None) -> ClientFactory:
    """In-process clients built on the reference core (or a seeded-fault core)."""

    def make(world: World, interp: Interpretation, mode: Mode) -> InProcessClient:
        kw = {"core": core} if core is not None else {}
        return CoreClient(world, interp, mode, **kw)

    return make


@dataclass
class Coverage:
    """Counts over a whole run (all test cases)."""

    rows: dict[str, int]
    requirements: dict[str, int] = field(default_factory=dict)
    #: Rule steps (environment actions and waits), Hypothesis cases, directed cases,
    #: and records the oracle read.
    steps: int = 0
    cases: int = 0
    directed: int = 0
    records: int = 0
    #: Wall seconds of the cases that exercised each requirement.
    seconds: dict[str, float] = field(default_factory=dict)
    #: Called as each test case starts (a progress display).
    on_case: Callable[[], None] | None = None
    #: The first violation any case raised (reported unshrunk when Hypothesis
    #: cannot replay its case).
    first: Violation | None = None

    def uncovered(self) -> list[str]:
        return [n for n, c in self.rows.items() if c == 0]


class Violation(AssertionError):
    """The oracle's finding, raised inside the state machine so Hypothesis shrinks."""

    def __init__(self, requirement: str, message: str, records: list[dict[str, Any]],
                 index: int | None = None, expected: tuple[str, ...] | None = None,
                 timing: bool = False):
        super().__init__(f"{requirement}: {message}")
        #: It rests on how late or early something happened (see Finding.timing).
        self.timing = timing
        self.requirement, self.message, self.records = requirement, message, records
        #: The record that broke it (0-based in ``records``), if one did, and what
        #: the model allowed there.
        self.index, self.expected = index, expected
        #: The program of the case that found it, as run (:func:`step_text`).
        self.program: list[str] | None = None


class ClientGone(BaseException):
    """The client under test cannot be tested: it exited on its own, or never made
    a request within the start-up wait. A BaseException so that Hypothesis does not
    take it for a failure to shrink: it ends the run at once."""


def step_text(rule: str, kw: Mapping[str, Any]) -> str:
    """One step of a program as Python (``state.fault(m=0, fault=Fault.STALL,
    path='/urls')``): what Hypothesis prints, what a replay file runs, and what
    :func:`._run.run_program` runs again over the wire."""

    def arg(v: Any) -> str:
        return f"{type(v).__name__}.{v.name}" if isinstance(v, Fault | Source | Mode) \
            else repr(v)

    return f"state.{rule}({', '.join(f'{k}={arg(v)}' for k, v in kw.items())})"


def _counted(fn: Callable[..., None]) -> Callable[..., None]:
    """A rule whose every call counts as a step of the run, and is written down as
    a step of the case's program (over the wire a failure is shrunk from it)."""

    @functools.wraps(fn)
    def step(self: Any, **kw: Any) -> None:
        self.coverage.steps += 1
        self.program.append(step_text(fn.__name__, kw))
        fn(self, **kw)

    return step




def make_machine(interp: Interpretation, env: Environment | ClientFactory,
                 coverage: Coverage) -> type[RuleBasedStateMachine]:
    """A state machine class for one interpretation and one kind of client."""
    by_name = {r.name: r for r in interp.rows()}
    if not isinstance(env, Environment):
        env = Environment(env)
    environment = env
    # One watchdog (one thread) for the whole run.
    watchdog = Watchdog(env.call_budget_s) if env.call_budget_s else None

    class HeartbeatSuite(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.world: Any = None
            self.client: Any = None
            self.environment = environment
            self.coverage = coverage
            #: A violation was raised in this case (teardown then only cleans up).
            self.violated = False
            #: The case's steps so far, as Python (:func:`step_text`).
            self.program: list[str] = []
            #: The row the last ``goal`` steered to, and (once it showed) the
            #: deadlines open at that moment: a black box's waits end when those
            #: have resolved.
            self.target: str | None = None
            self._awaited: set[tuple[str, int]] | None = None
            #: What a directed case's steps before its start do, done once the site
            #: and the client are built and before the client starts (a stall, or
            #: logs, its first heartbeat meets).
            self._before: list[Callable[[], None]] = []
            self._started = False
            self.began = time.perf_counter()
            if currently_in_test_context():
                coverage.cases += 1
            else:  # a directed case (top-up or probe)
                coverage.directed += 1
            if coverage.on_case is not None:
                coverage.on_case()

        # --- set-up ---------------------------------------------------------------

        @initialize(mode=st.sampled_from(Mode), site=sites())
        def start(self, mode: Mode, site: Site = DEFAULT_SITE) -> None:
            self.mode, self.site = mode, site
            self.program.append(step_text("start", {"mode": mode, **(
                {} if site == DEFAULT_SITE else {"site": site})}))
            self.world = w = environment.world(site)
            self.oracle = Oracle(
                interp, mode,
                [Manager(m.name, m.address, m.port, m.priority) for m in w.managers],
                (w.gup.address, w.gup.port) if w.gup else None, INTERVAL_MS,
                tolerance_ms=environment.tolerance_ms, hidden=environment.hidden,
                randomization_ms=site.randomization_s * 1000,
                start_wait=lambda: self._start_wait(),
                cpu_wait=lambda since: self._cpu_wait(since),
                unreachable=lambda name: next(
                    m for m in w.managers if m.name == name).unreachable,
                gup_up=lambda: w.gup is not None and not w.gup.faults)
            # Building the client is a call into it too: what it raises is a finding.
            try:
                made = environment.client(w, interp, mode)
            except Exception as exc:
                raise self._client_failed(ClientFailed("start", exc,
                                                       None)) from exc
            self.client = Guarded(made, watchdog, self._client_failed)
            w.on_answer = lambda cid, reply: self.client.answer(w.now, reply)
            self.fed = 0
            for act in self._before:
                act()
            self._started = True
            t0 = w.now
            self._starting(lambda: self.client.start(0))
            self.oracle.started(self._spawned(t0), environment.start_ms)
            self._settle()

        # --- environment actions ------------------------------------------------------

        @rule(m=st.integers(0, MAX_MANAGERS - 1), fault=st.sampled_from(Fault),
              path=st.sampled_from(PATHS))
        @_counted
        def fault(self, m: int, fault: Fault, path: str | None) -> None:
            """Manager ``m`` (counted round the site's managers) misbehaves; before
            the start (a directed case's program only), from the client's first
            request on."""
            if fault in (Fault.REFUSE, Fault.BLACKHOLE):
                path = None  # connection-level faults: every connection
            self._when_started(lambda: self.world.set_fault(
                m % len(self.world.managers), path, fault))

        @rule()
        @_counted
        def heal(self) -> None:
            assert self.world is not None
            self.world.heal()

        @rule(up=st.booleans(), fault=st.sampled_from([Fault.REFUSE, Fault.ERROR,
                                                       Fault.STALL]))
        @_counted
        def gup(self, up: bool, fault: Fault) -> None:
            self._when_started(lambda: self.world.set_gup(None if up else fault))

        @rule()
        @_counted
        def publish(self) -> None:
            assert self.world is not None
            self.world.publish()
            self._settle()

        @rule(location=st.sampled_from(LOCATIONS), source=st.sampled_from(Source))
        @_counted
        def policy(self, location: str, source: Source) -> None:
            assert self.world is not None
            _set_policy(self.world, location, source)

        @rule(source=st.sampled_from(Source))
        @_counted
        def flip(self, source: Source) -> None:
            """The location's policy changes between the index and the URLs."""
            assert self.world is not None
            self.world.set_flip(_possible(self.world, source))

        @rule(pick=st.integers(0, len(by_name) - 1))
        @_counted
        def goal(self, pick: int) -> None:
            """Steer toward a row of the table: set up its cause, then let time pass.

            Every row is a target with equal weight, so the rare ones (a failure at
            one step, failover to the last manager) come up in every run. The choice
            must not depend on the coverage so far: Hypothesis replays and shrinks by
            the same draws, and needs the same behaviour from them."""
            row = list(by_name.values())[pick]
            self.target, self._awaited = row.name, None
            _provoke(self, row)
            # A black box: no longer than the row takes to show and the deadlines
            # open then take to resolve (met or broken).
            self._advance(INTERVAL_MS, until=self._goal_settled
                          if environment.black_box else None)

        @rule(location=st.sampled_from(LOCATIONS))
        @_counted
        def move(self, location: str) -> None:
            self.client.location = location

        @precondition(lambda self: environment.logs)
        @rule(count=st.integers(1, 4))
        @_counted
        def logs(self, count: int) -> None:
            def produce() -> None:
                # Ids when the suite wrote them (a spool): judged one by one from now.
                ids = self.client.produce_logs(count)
                self.oracle.logs_produced(count, ids=ids, at=self.world.now)

            self._when_started(produce)

        @rule()
        @_counted
        def push(self) -> None:
            assert self.world is not None
            self.world.push()
            self._settle()

        @rule(m=st.integers(0, MAX_MANAGERS - 1))
        @_counted
        def drop(self, m: int) -> None:
            assert self.world is not None
            self.world.drop(m % len(self.world.managers))
            self._settle()

        @rule(dt=st.none() | st.sampled_from(TIME_STEPS) | st.integers(1, 2 * INTERVAL_MS))
        @_counted
        def wait(self, dt: int | None) -> None:
            """Time passes: ``dt`` model ms, or (None) until the client's next timer
            -- its next heartbeat, say -- or one interval when it waits for nothing."""
            assert self.world is not None
            if dt is None:
                due = self.client.wakeup()
                if due is None and environment.black_box:
                    # Its timers are its own: wait until what the model expects of
                    # it next (the deadlines open now) has resolved -- at once when
                    # the case's goal has shown and settled -- or one interval.
                    if self._goal_settled():
                        return
                    self._advance(INTERVAL_MS, until=self._resolved(self._open()))
                    return
                dt = INTERVAL_MS if due is None else max(0, due - self.world.now)
            self._advance(dt)

        @precondition(lambda self: self.world is not None)
        @rule()
        @_counted
        def restart(self) -> None:
            assert self.world is not None
            t0 = self.world.now
            self._starting(lambda: self.client.restart(t0))
            self.oracle.restarted(t0)
            self.oracle.started(self._spawned(t0), environment.start_ms)
            self._settle()

        def _when_started(self, act: Callable[[], None]) -> None:
            """Do ``act`` now, or (a step before the start: only a directed case's
            program has one) once the case's site and client are built, just before
            the client starts."""
            if self._started:
                act()
            else:
                self._before.append(act)

        def _open(self) -> set[tuple[str, int]]:
            return {(o.deadline, o.opened) for o in self.oracle.pending()}

        def _resolved(self, awaited: set[tuple[str, int]]) -> Callable[[], bool]:
            """Whether every deadline of ``awaited`` has resolved (none open: one
            interval passes)."""
            return lambda: bool(awaited) and not awaited & self._open()

        def _goal_settled(self) -> bool:
            """The goal's row has shown, and the deadlines open when it showed have
            resolved."""
            if self.target is None:
                return False
            if self._awaited is None:
                if self.target not in self.oracle.path():
                    return False
                self._awaited = self._open()
            return not self._awaited & self._open()

        def _cpu_wait(self, since: int) -> int:
            """Model ms a process client has waited for a CPU since ``since``."""
            client = getattr(self.client, "unguarded", self.client)
            wait = getattr(client, "cpu_wait_ms", None)
            return int(wait(since)) if wait is not None else 0

        def _start_wait(self) -> int:
            """Model ms a process client has waited for a CPU since its start."""
            client = getattr(self.client, "unguarded", self.client)
            wait = getattr(client, "start_wait_ms", None)
            return int(wait()) if wait is not None else 0

        def _spawned(self, t0: int) -> int:
            """When the client last began to run: a process notes the model time it
            was spawned at on its world (a restart first waits for the killed one's
            connections to end); in process, ``t0``."""
            spawned = getattr(self.world, "spawned_at", None)
            return t0 if spawned is None else max(t0, int(spawned))

        def _client_failed(self, failed: ClientFailed) -> Violation:
            """REQ-X-ALIVE: the client raised, or a call into it did not return."""
            self.violated = True
            records = list(self.world.records) if self.world is not None else []
            last = (f"; its last record: {records[-1].get('event')} at "
                    f"t={records[-1].get('t')}") if records else ""
            now = self.world.now if self.world is not None else 0
            return self._found(Violation(ALIVE, f"{failed.text} at t={now}{last}",
                                         records))

        def _found(self, v: Violation) -> Violation:
            """Keep the run's first violation: if Hypothesis cannot replay the case
            to shrink it, the run still reports what it saw. It carries the case's
            program up to the step that found it."""
            if v.program is None:
                v.program = [*self.program, "state.teardown()"]
            if coverage.first is None:
                coverage.first = v
            return v

        def _starting(self, start: Callable[[], None]) -> None:
            try:
                start()
            except ClientGone:
                self.violated = True  # the teardown only cleans up
                raise

        # --- the oracle -------------------------------------------------------------

        @invariant()
        def conforms(self) -> None:
            if self.world is None:
                return
            self._settle()

        def _advance(self, dt: int, until: Callable[[], bool] | None = None) -> int:
            """Let ``dt`` of model time pass, judging as it goes; ``until``: end as
            soon as it holds (looked at after every poll). Returns the model time the
            oracle last judged at (over the wire the world's clock runs on past it)."""
            assert self.world is not None
            w = self.world
            target = w.now + dt
            spins = 0
            while True:
                due = self.client.wakeup()
                # A timer at now, or in the past (which the world serves now), that
                # comes back after it was served: the client spins at one instant.
                spins = spins + 1 if due is not None and due <= w.now else 0
                if spins > SPIN_LIMIT:
                    self.violated = True
                    raise self._found(Violation(
                        "REQ-2-TIMEOUT-30000",
                        f"the client asked to act again at t={w.now} (its timer said "
                        f"t={due}) more than {SPIN_LIMIT} times without time passing: "
                        f"it retries at once instead of waiting for the next heartbeat "
                        f"interval", list(w.records)))
                holds = w.next_deadline()
                nxt = min(x for x in (due, holds, target) if x is not None)
                nxt = max(nxt, w.now)
                self._settle()  # what happened before time moves on
                w.advance(nxt)
                self.client.tick(nxt)
                self._settle()
                # Judged after the client had its chance at ``nxt``: giving up
                # exactly at the limit is in time.
                self.oracle.tick(nxt)
                self._settle()  # raises what the tick found
                if nxt >= target or (until is not None and until()):
                    return int(nxt)

        def _settle(self) -> None:
            assert self.world is not None
            self.oracle.observe_environment(self.world.now)
            sample = getattr(getattr(self.client, "unguarded", None), "sample_cpu", None)
            if sample is not None:  # a process: how long it has waited for a CPU
                sample(self.world.now)
            records = self.world.records
            new = records[self.fed:]
            self.fed = len(records)
            for rec in new:
                coverage.records += 1
                self.oracle.feed(rec)
            if self.oracle.findings:
                if environment.black_box:
                    # A process that died explains its cut-short records: the
                    # finding is that it stopped (REQ-X-ALIVE, raised here). Its
                    # sockets close as it exits: give the exit a moment to show.
                    exiting = getattr(self.client.unguarded, "exited", None)
                    if exiting is not None:
                        exiting(0.2)
                    self.client.wakeup()
                f = self.oracle.findings[0]
                self.violated = True
                raise self._found(Violation(f.requirement, f.message, list(records),
                                            f.index, f.expected, f.timing))

        def _drain(self) -> None:
            """Keep the case running until the deadlines open at its end resolve
            (met or broken), for at most DRAIN_INTERVALS intervals: a client that
            checks in late, or never again, is caught within the case. Deadlines
            opened meanwhile are left pending (neither a pass nor a failure), but
            for a black box those of a check-in that began during the drain (request,
            session, at once): whether the awaited heartbeat came just before the
            drain or just after must not decide whether a client stuck in its
            check-in is caught (a replay would then not reproduce it)."""
            w = self.world
            due = [o.due for o in self.oracle.pending()]
            if not due:
                return
            cap = w.now + DRAIN_INTERVALS * INTERVAL_MS
            awaited = self._open()

            def settled() -> bool:
                awaited.update(k for k in self._open() if k[0] not in CHAINED)
                return not awaited & self._open()

            while True:
                until = min(max(due) + environment.tolerance_ms + 1, cap)
                # Over the wire the clock runs on: when ``until`` has passed already,
                # one look at time now still judges what is due (it is not skipped).
                # A black box's case ends as soon as they have all resolved.
                judged = self._advance(max(0, until - w.now),
                                       until=settled if environment.black_box else None)
                if environment.black_box:
                    settled()
                # An excuse (a client starved of a CPU) may have moved a due time
                # on: keep going for the deadlines still open, up to the cap. Done
                # only when the oracle has *judged* past them: over the wire the
                # world's clock runs on while a loaded machine is slow, and a due
                # time the clock passed but no tick looked at would be left open
                # (a client that never ended its hold passed that way).
                due = [o.due for o in self.oracle.pending()
                       if (o.deadline, o.opened) in awaited]
                if not due or judged >= cap or max(due) + environment.tolerance_ms \
                        < judged:
                    return

        def teardown(self) -> None:
            if watchdog is not None:
                watchdog.disarm()  # nothing of the client's calls outlives its case
            if self.world is None:
                return
            try:
                if not self.violated:
                    self._drain()
            finally:
                self._close()

        def _close(self) -> None:
            if self.client is None:  # it could not be built: only the world to close
                environment.close(self.world, None)  # type: ignore[arg-type]
                return
            environment.close(self.world, self.client.unguarded)
            # A client that says which rows it took (the reference does) is counted
            # exactly; otherwise one run of the model that explains its records.
            taken = getattr(self.client, "taken", None)
            for name in taken() if taken else self.oracle.path():
                if name in coverage.rows:  # a faulty client's own rows do not count
                    coverage.rows[name] += 1
                    if currently_in_test_context():  # not in a directed top-up case
                        hypothesis.event(name)
            spent = time.perf_counter() - self.began
            seen = set() if self.violated else {ALIVE}
            if not self.violated:  # the client went on through the whole case
                coverage.requirements[ALIVE] = coverage.requirements.get(ALIVE, 0) + 1
            for req, n in self.oracle.exercised.items():
                coverage.requirements[req] = coverage.requirements.get(req, 0) + n
                seen.add(req)
            for name in taken() if taken else self.oracle.path():
                row = by_name.get(name)
                if row is not None:
                    seen |= row_requirements(row)
            for name in taken() if taken else self.oracle.path():
                if name in coverage.rows:
                    coverage.seconds[name] = coverage.seconds.get(name, 0.0) + spent
            for req in seen:
                coverage.seconds[req] = coverage.seconds.get(req, 0.0) + spent

    HeartbeatSuite.__name__ = f"HeartbeatSuite_{interp.name}"
    #: The run's watchdog (None without one): :func:`run` closes it at the end.
    HeartbeatSuite.watchdog = watchdog
    return HeartbeatSuite


#: How the environment causes a session failure, by (state, event).
_SESSION_CAUSE = {
    (State.CONNECTING, Event.SESSION_TIMEOUT): (Fault.BLACKHOLE, None),
    (State.CONNECTING, Event.CONNECT_FAILED): (Fault.REFUSE, None),
    (State.FETCHING_INDEX, Event.SESSION_TIMEOUT): (Fault.STALL, wire.INDEX_PATH),
    (State.FETCHING_INDEX, Event.CONNECT_FAILED): (Fault.ERROR, wire.INDEX_PATH),
}
_PATH_OF = {r.action: r.path for r in wire.ROUTES}


def _possible(w: Any, source: Source) -> Source:
    """The source a policy can name at this site: a site without a GUP has none to
    name (its servers refuse such a policy), so its content comes from the manager."""
    return Source.MANAGER if source is Source.GUP and w.gup is None else source


def _set_policy(w: Any, location: str, source: Source) -> None:
    w.set_policy(location, _possible(w, source))


def _provoke(m: Any, row: Row) -> None:
    """Set the world up so that ``row`` can fire at the client's next chance.

    This is knowledge of the environment (which fault produces which event), not of
    the client: the client's answer is still judged by the oracle.
    """
    w: World = m.world
    location = getattr(m.client, "location", "Default")
    event = row.event
    if (row.source, event) in _SESSION_CAUSE:
        fault, path = _SESSION_CAUSE[(row.source, event)]
        # Failover rows need every manager before the last to fail; the others all.
        n = len(w.managers)
        for i in range(n - 1 if row.guard is Guard.NEXT_MANAGER else n):
            w.only_fault(i, path, fault)
    elif event is Event.REQUEST_FAILED:
        if row.source is State.UPLOADING_LOGS and m.environment.logs:  # logs to lose
            ids = m.client.produce_logs(2)
            m.oracle.logs_produced(2, ids=ids, at=w.now)
        path = _PATH_OF.get(ENTRY[row.source])
        for i in range(len(w.managers)):
            w.only_fault(i, path, Fault.ERROR)
        _set_policy(w, location, Source.MANAGER)
        w.publish()
    elif event is Event.DOWNLOAD_FAILED and w.gup is not None:
        w.set_gup(Fault.REFUSE)
        _set_policy(w, location, Source.GUP)
        w.publish()
    elif event in (Event.URLS_RECEIVED, Event.CONTENT_RECEIVED, Event.INDEX_RECEIVED):
        w.heal()
        source = {Guard.SOURCE_GUP: Source.GUP, Guard.SOURCE_NONE: Source.MANAGER}.get(
            row.guard or Guard.SOURCE_MANAGER, Source.MANAGER)
        if row.source is State.DOWNLOADING_GUP:
            source = Source.GUP
        _set_policy(w, location, source)
        if row.guard is Guard.SOURCE_NONE:
            w.set_flip(Source.NONE)
        if row.guard is not Guard.NO_DOWNLOAD:
            w.publish()
    elif event is Event.POLICY_PUSHED:
        w.push()
    elif event is Event.CONNECTION_LOST:
        # Only a held connection can be lost: let what is due now (a first check-in
        # that ends in the hold) happen before the drop.
        m._advance(0)
        for i in range(len(w.managers)):
            w.drop(i)
    else:  # the happy path: heal everything
        w.heal()


def row_requirements(row: Row) -> set[str]:
    """The requirements a row exercises: its own, and its guard's."""
    out = {row.requirement}
    if row.guard is not None:
        out.add(GUARDS[row.guard].requirement)
    return out
