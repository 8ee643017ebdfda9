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
and the :class:`~.properties.Oracle` judges every record the servers make after every
step (an invariant). No rule restates the protocol.

Hypothesis shrinks a violation to a short program; the suite turns it into a
:class:`~.results.Failure` with the records, the steps and a replay file. Coverage:
every step's records are explained by one consistent run of the model, whose rows
are counted (and reported to ``hypothesis.event``); a run fails when a row or a
requirement id was never exercised. Rules are weighted toward what is not covered yet
by :func:`_goal`, which steers the environment to the cause of an uncovered row.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import msgspec
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.errors import FlakyFailure
from hypothesis.reporting import with_reporter
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from hypothesis.statistics import collector

from sephb.model.deadlines import DEADLINES
from sephb.model.interpretations import Interpretation
from sephb.model.protocol import (
    ENTRY,
    GUARDS,
    HEARTBEAT_INTERVAL_S,
    REQUIREMENTS,
    SESSION_LIMIT_MS,
    Event,
    Guard,
    Mode,
    Row,
    Source,
    State,
    Switch,
)

from . import wire
from .inproc import CoreClient, InProcessClient
from .properties import DATA_REQUIREMENTS, HIDDEN_IN_PROCESS, Manager, Oracle
from .results import Failure, RequirementResult, Status, SuiteResult
from .world import Fault, World

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
PATHS = [None, "/index.dat", "/urls", "/content", "/logs", "/sensors", "/push"]
LOCATIONS = ["Default", "Office", "Branch"]
#: The site every run uses: three managers over two priorities, and a GUP.
SITE = [("127.0.10.2", 8014, 1), ("127.0.10.3", 8014, 1), ("127.0.10.4", 8014, 2)]
GUP = ("127.0.10.9", 2967)

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
#: failover only where the reading has it).
PROPERTY_REQUIREMENTS = tuple(sorted(set(DATA_REQUIREMENTS) | {
    d.requirement for d in DEADLINES if d.requirement}))
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
    virtual. Over the wire (:mod:`.remote`) the world drives real servers and the
    client is a process; the rules and the oracle are the same.
    """

    client: ClientFactory
    world: Callable[[], Any] = lambda: World(SITE, GUP)
    #: Model milliseconds of slack for timing properties.
    tolerance_ms: int = 0
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

    def uncovered(self) -> list[str]:
        return [n for n, c in self.rows.items() if c == 0]


class Violation(AssertionError):
    """The oracle's finding, raised inside the state machine so Hypothesis shrinks."""

    def __init__(self, requirement: str, message: str, records: list[dict[str, Any]],
                 index: int | None = None, expected: tuple[str, ...] | None = None):
        super().__init__(f"{requirement}: {message}")
        self.requirement, self.message, self.records = requirement, message, records
        #: The record that broke it (0-based in ``records``), if one did, and what
        #: the model allowed there.
        self.index, self.expected = index, expected


class ClientGone(BaseException):
    """The client under test cannot be tested: it exited on its own, or never made
    a request within the start-up wait. A BaseException so that Hypothesis does not
    take it for a failure to shrink: it ends the run at once."""


def _counted(fn: Callable[..., None]) -> Callable[..., None]:
    """A rule whose every call counts as a step of the run."""

    @functools.wraps(fn)
    def step(self: Any, **kw: Any) -> None:
        self.coverage.steps += 1
        fn(self, **kw)

    return step


def make_machine(interp: Interpretation, env: Environment | ClientFactory,
                 coverage: Coverage) -> type[RuleBasedStateMachine]:
    """A state machine class for one interpretation and one kind of client."""
    by_name = {r.name: r for r in interp.rows()}
    if not isinstance(env, Environment):
        env = Environment(env)
    environment = env

    class HeartbeatSuite(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.world: Any = None
            self.environment = environment
            self.coverage = coverage
            #: A violation was raised in this case (teardown then only cleans up).
            self.violated = False
            self.began = time.perf_counter()
            if currently_in_test_context():
                coverage.cases += 1
            else:  # a directed case (top-up or probe)
                coverage.directed += 1
            if coverage.on_case is not None:
                coverage.on_case()

        # --- set-up ---------------------------------------------------------------

        @initialize(mode=st.sampled_from(Mode))
        def start(self, mode: Mode) -> None:
            self.mode = mode
            self.world = w = environment.world()
            self.client = environment.client(w, interp, mode)
            self.oracle = Oracle(
                interp, mode,
                [Manager(m.name, m.address, m.port, m.priority) for m in w.managers],
                (w.gup.address, w.gup.port) if w.gup else None, INTERVAL_MS,
                tolerance_ms=environment.tolerance_ms, hidden=environment.hidden,
                unreachable=lambda name: next(
                    m for m in w.managers if m.name == name).unreachable,
                gup_up=lambda: w.gup is not None and not w.gup.faults)
            w.on_answer = lambda cid, reply: self.client.answer(w.now, reply)
            self.fed = 0
            self._starting(lambda: self.client.start(0))
            self._settle()

        # --- environment actions ------------------------------------------------------

        @rule(m=st.integers(0, len(SITE) - 1), fault=st.sampled_from(Fault),
              path=st.sampled_from(PATHS))
        @_counted
        def fault(self, m: int, fault: Fault, path: str | None) -> None:
            assert self.world is not None
            if fault in (Fault.REFUSE, Fault.BLACKHOLE):
                path = None  # connection-level faults: every connection
            self.world.set_fault(m, path, fault)

        @rule()
        @_counted
        def heal(self) -> None:
            assert self.world is not None
            self.world.heal()

        @rule(up=st.booleans(), fault=st.sampled_from([Fault.REFUSE, Fault.ERROR,
                                                       Fault.STALL]))
        @_counted
        @_counted
        def gup(self, up: bool, fault: Fault) -> None:
            assert self.world is not None
            self.world.set_gup(None if up else fault)

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
            self.world.set_policy(location, source)

        @rule(source=st.sampled_from(Source))
        @_counted
        def flip(self, source: Source) -> None:
            """The location's policy changes between the index and the URLs."""
            assert self.world is not None
            self.world.set_flip(source)

        @rule(pick=st.integers(0, len(by_name) - 1))
        @_counted
        def goal(self, pick: int) -> None:
            """Steer toward a row of the table: set up its cause, then let time pass.

            Every row is a target with equal weight, so the rare ones (a failure at
            one step, failover to the last manager) come up in every run. The choice
            must not depend on the coverage so far: Hypothesis replays and shrinks by
            the same draws, and needs the same behaviour from them."""
            _provoke(self, list(by_name.values())[pick])
            self._advance(INTERVAL_MS)

        @rule(location=st.sampled_from(LOCATIONS))
        @_counted
        def move(self, location: str) -> None:
            self.client.location = location  # type: ignore[attr-defined]

        @precondition(lambda self: environment.logs)
        @rule(count=st.integers(1, 4))
        @_counted
        def logs(self, count: int) -> None:
            # Ids when the suite wrote them (a spool): judged one by one from now.
            ids = self.client.produce_logs(count)
            self.oracle.logs_produced(count, ids=ids, at=self.world.now)

        @rule()
        @_counted
        def push(self) -> None:
            assert self.world is not None
            self.world.push()
            self._settle()

        @rule(m=st.integers(0, len(SITE) - 1))
        @_counted
        def drop(self, m: int) -> None:
            assert self.world is not None
            self.world.drop(m)
            self._settle()

        @rule(dt=st.none() | st.sampled_from(TIME_STEPS) | st.integers(1, 2 * INTERVAL_MS))
        @_counted
        def wait(self, dt: int | None) -> None:
            """Time passes: ``dt`` model ms, or (None) until the client's next timer
            -- its next heartbeat, say -- or one interval when it waits for nothing."""
            assert self.world is not None
            if dt is None:
                due = self.client.wakeup()
                dt = INTERVAL_MS if due is None else max(0, due - self.world.now)
            self._advance(dt)

        @precondition(lambda self: self.world is not None)
        @rule()
        @_counted
        def restart(self) -> None:
            assert self.world is not None
            self._starting(lambda: self.client.restart(self.world.now))
            self.oracle.restarted(self.world.now)
            self._settle()

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

        def _advance(self, dt: int) -> None:
            assert self.world is not None
            w = self.world
            target = w.now + dt
            spins = 0
            while True:
                spins = spins + 1 if self.client.wakeup() == w.now else 0
                if spins > SPIN_LIMIT:
                    self.violated = True
                    raise Violation(
                        "REQ-2-TIMEOUT-30000",
                        f"the client asked to act again at t={w.now} more than "
                        f"{SPIN_LIMIT} times without time passing: it retries at once "
                        f"instead of waiting for the next heartbeat interval",
                        list(w.records))
                due = self.client.wakeup()
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
                if nxt >= target:
                    return

        def _settle(self) -> None:
            assert self.world is not None
            self.oracle.observe_environment(self.world.now)
            records = self.world.records
            new = records[self.fed:]
            self.fed = len(records)
            for rec in new:
                coverage.records += 1
                self.oracle.feed(rec)
            if self.oracle.findings:
                f = self.oracle.findings[0]
                self.violated = True
                raise Violation(f.requirement, f.message, list(records), f.index,
                                f.expected)

        def _drain(self) -> None:
            """Keep the case running until the deadlines open at its end resolve
            (met or broken), for at most DRAIN_INTERVALS intervals: a client that
            checks in late, or never again, is caught within the case. Deadlines
            opened meanwhile are left pending (neither a pass nor a failure)."""
            w = self.world
            due = [o.due for o in self.oracle.pending()]
            if not due:
                return
            until = min(max(due) + environment.tolerance_ms + 1,
                        w.now + DRAIN_INTERVALS * INTERVAL_MS)
            # Over the wire the clock runs on: when ``until`` has passed already, one
            # look at time now still judges what is due (it is not skipped).
            self._advance(max(0, until - w.now))

        def teardown(self) -> None:
            if self.world is None:
                return
            try:
                if not self.violated:
                    self._drain()
            finally:
                self._close()

        def _close(self) -> None:
            environment.close(self.world, self.client)
            # A client that says which rows it took (the reference does) is counted
            # exactly; otherwise one run of the model that explains its records.
            taken = getattr(self.client, "taken", None)
            for name in taken() if taken else self.oracle.path():
                if name in coverage.rows:  # a faulty client's own rows do not count
                    coverage.rows[name] += 1
                    if currently_in_test_context():  # not in a directed top-up case
                        hypothesis.event(name)
            spent = time.perf_counter() - self.began
            seen = set()
            for req, n in self.oracle.exercised.items():
                coverage.requirements[req] = coverage.requirements.get(req, 0) + n
                seen.add(req)
            for name in taken() if taken else self.oracle.path():
                row = by_name.get(name)
                if row is not None:
                    seen |= _row_requirements(row)
            for name in taken() if taken else self.oracle.path():
                if name in coverage.rows:
                    coverage.seconds[name] = coverage.seconds.get(name, 0.0) + spent
            for req in seen:
                coverage.seconds[req] = coverage.seconds.get(req, 0.0) + spent

    HeartbeatSuite.__name__ = f"HeartbeatSuite_{interp.name}"
    return HeartbeatSuite


#: How the environment causes a session failure, by (state, event).
_SESSION_CAUSE = {
    (State.CONNECTING, Event.SESSION_TIMEOUT): (Fault.BLACKHOLE, None),
    (State.CONNECTING, Event.CONNECT_FAILED): (Fault.REFUSE, None),
    (State.FETCHING_INDEX, Event.SESSION_TIMEOUT): (Fault.STALL, wire.INDEX_PATH),
    (State.FETCHING_INDEX, Event.CONNECT_FAILED): (Fault.ERROR, wire.INDEX_PATH),
}
_PATH_OF = {r.action: r.path for r in wire.ROUTES}


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
        w.set_policy(location, Source.MANAGER)
        w.publish()
    elif event is Event.DOWNLOAD_FAILED and w.gup is not None:
        w.set_gup(Fault.REFUSE)
        w.set_policy(location, Source.GUP)
        w.publish()
    elif event in (Event.URLS_RECEIVED, Event.CONTENT_RECEIVED, Event.INDEX_RECEIVED):
        w.heal()
        source = {Guard.SOURCE_GUP: Source.GUP, Guard.SOURCE_NONE: Source.MANAGER}.get(
            row.guard or Guard.SOURCE_MANAGER, Source.MANAGER)
        if row.source is State.DOWNLOADING_GUP:
            source = Source.GUP
        w.set_policy(location, source)
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


def run(interp: Interpretation, *, factory: Environment | ClientFactory | None = None,
        profile: str = "ci", seed: int | None = None, client: str = "reference",
        max_examples: int | None = None, client_cmd: str | None = None,
        progress: Callable[[Coverage, int], None] | None = None,
        steps_per_case: int = 30, shrink: bool = True, probes: bool = True
        ) -> SuiteResult:
    """Run the suite; never raises for a non-conformant client (see the result).

    ``max_examples`` Hypothesis cases (the profile's by default) run first; directed
    cases come on top and are counted apart: top-ups for rows the random cases missed,
    then (``probes``) the deadline probes (:data:`PROBES`) when nothing failed. Every
    random choice comes from ``seed``: the profile's fixed one, or one drawn here and
    recorded in the result, so that ``--seed`` replays any run."""
    env = factory if isinstance(factory, Environment) else Environment(
        factory or reference_factory())
    coverage = Coverage({r.name: 0 for r in interp.rows()})
    cases, fixed = PROFILES[profile]
    if seed is None:
        seed = FIXED_SEED if fixed else random.SystemRandom().randrange(2**32)
    total = max_examples or cases
    if progress is not None:
        coverage.on_case = lambda: progress(coverage, total)
    machine = make_machine(interp, env, coverage)
    # The seed goes on the state machine class: run_state_machine_as_test reads it
    # from there (a seed on a wrapper would not reach Hypothesis).
    machine = hypothesis.seed(seed)(machine)
    failures: list[Failure] = []
    cfg = settings(
        max_examples=total,
        stateful_step_count=steps_per_case,
        deadline=None,
        # No example database: a run is its seed and nothing else (a database would
        # replay earlier failures first, and make two runs of one seed differ).
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])],
        print_blob=False,
    )
    t0 = time.perf_counter()
    printed: list[str] = []
    gone: ClientGone | None = None
    stats: list[Any] = []
    try:
        with with_reporter(lambda text: printed.append(str(text))), \
                _no_local_constants(), collector.with_value(stats.append):  # type: ignore[arg-type]
            run_state_machine_as_test(machine, settings=cfg)
    except (Violation, FlakyFailure) as exc:
        v = _violation(exc)
        # Hypothesis attaches the shrunk program to the exception as notes.
        notes = "\n".join([*printed, *getattr(v, "__notes__", [])])
        steps = _steps(notes)
        failures.append(_failure(v, steps, interp, client, client_cmd, seed))
    except ClientGone as exc:
        gone = exc
    try:
        if gone is None and not failures and coverage.uncovered():
            failures += _top_up(interp, machine, coverage, client, client_cmd,
                                skip=env.uncoverable(interp))
        if gone is None and not failures and probes:
            failures += _probe(interp, machine, client, client_cmd, env.logs)
    except ClientGone as exc:
        gone = exc
    # Hypothesis counts only valid cases toward max_examples; a case whose random
    # data ran out before its program ended is discarded, though its steps ran.
    discarded = sum(1 for phase in (stats[0] if stats else {}).values()
                    if isinstance(phase, dict)
                    for case in phase.get("test-cases", ())
                    if case.get("status") in ("overrun", "invalid"))
    coverage.cases -= min(discarded, coverage.cases)
    result = _result(interp, env, coverage, failures, profile, seed, client,
                     time.perf_counter() - t0)
    result.discarded = discarded
    if gone is not None:
        result = msgspec.structs.replace(result, error=str(gone), requirements=[
            msgspec.structs.replace(r, status=Status.NOT_REACHED,
                                    reason="the client could not be tested")
            if r.status is not Status.SKIPPED else r for r in result.requirements])
    return result


def _failure(v: Violation, steps: list[str], interp: Interpretation, client: str,
             client_cmd: str | None, seed: int | None, found_by: str = "random"
             ) -> Failure:
    return Failure(v.requirement, v.message, steps, v.records,
                   replay_source(interp.name, client, steps, v.requirement, v.message,
                                 client_cmd),
                   seed, v.index, found_by,
                   None if v.expected is None else list(v.expected))


@contextlib.contextmanager
def _no_local_constants() -> Iterator[None]:
    """Hypothesis mixes constants it finds in "local" source files (those outside
    site-packages) into what it draws, so one seed gives other programs from an
    editable install than from a normal one, or when other modules are loaded.
    The suite's draws must depend on the seed alone: no local constants while it
    runs. (A private hook; without it, runs are still valid, only less portable.)"""
    from hypothesis.internal.conjecture import providers
    from hypothesis.internal.constants_ast import Constants

    original = getattr(providers, "_get_local_constants", None)
    if original is None:
        yield
        return
    empty = Constants()
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = original


#: What a directed test case does: steer toward the row, then let the client run
#: through two of its timers (the cause needs a heartbeat to show).
_DIRECTED = ("state.goal(pick={pick})", "state.wait(dt=None)", "state.wait(dt=None)")


def _top_up(interp: Interpretation, machine: type[RuleBasedStateMachine],
            coverage: Coverage, client: str, client_cmd: str | None,
            skip: Collection[str] = ()) -> list[Failure]:
    """Directed test cases for rows random search left uncovered.

    Hypothesis draws rules uniformly, so a row whose cause is rare can stay
    uncovered in a short profile. For each such row, in each mode, one short program
    steers the environment to its cause (the ``goal`` rule with that row) and lets
    time pass; the oracle judges it like any other case. A violation here is a
    failure like any other, with the program as its steps.
    """
    names = list(coverage.rows)
    for name in coverage.uncovered():
        if name in skip:
            continue
        for mode in Mode:
            if coverage.rows[name]:
                break
            steps = [f"state.start(mode=Mode.{mode.name})",
                     *(s.format(pick=names.index(name)) for s in _DIRECTED),
                     "state.teardown()"]
            state: Any = machine()
            try:
                state.start(mode=mode)
                state.goal(pick=names.index(name))
                state.wait(dt=None)
                state.wait(dt=None)
                state.teardown()
            except Violation as v:
                return [_failure(v, steps, interp, client, client_cmd, None, "directed")]
    return []


@dataclass(frozen=True)
class Probe:
    """A directed case for the deadlines (:mod:`sephb.model.deadlines`): a short
    program that opens one kind of deadline and lets time run past it. Random search
    meets these situations too, but over the wire a profile has only a few cases."""

    name: str
    mode: Mode
    steps: tuple[tuple[str, dict[str, Any]], ...]
    #: Only under a reading with failover.
    failover: bool = False
    #: Only where the suite makes the client's logs (in process; over the wire with
    #: a log spool).
    logs: bool = False

    def program(self) -> list[str]:
        def arg(v: Any) -> str:
            return f"{type(v).__name__}.{v.name}" if isinstance(v, Fault | Source) \
                else repr(v)

        return [f"state.start(mode=Mode.{self.mode.name})",
                *(f"state.{rule}({', '.join(f'{k}={arg(v)}' for k, v in kw.items())})"
                  for rule, kw in self.steps),
                "state.teardown()"]


def _stall(path: str, managers: range) -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple(("fault", {"m": i, "fault": Fault.STALL, "path": path})
                 for i in managers)


_WAIT_NEXT = ("wait", {"dt": None})
#: How many managers share the first priority (they come first in SITE).
_TOP = sum(1 for *_, p in SITE if p == SITE[0][2])
# A case starts with every server up and the manager as every location's content
# source: the probes change only what they need.
PROBES: tuple[Probe, ...] = (
    # Two heartbeats with nothing wrong: each begins by the interval, each pull
    # check-in closes its connection at once (step 7).
    Probe("heartbeats", Mode.PULL,
          (("wait", {"dt": INTERVAL_MS}), ("wait", {"dt": INTERVAL_MS}))),
    # New content and every manager stalls GET /urls: the request is given up within
    # the request limit, and the next heartbeat still comes.
    # (Faults come before what they must meet: a client still busy with its first
    # check-in when the probe begins must not get past them.)
    Probe("stalled-request", Mode.PULL,
          (*_stall("/urls", range(len(SITE))), ("publish", {}), _WAIT_NEXT, _WAIT_NEXT)),
    # Every manager stalls index.dat: the session is given up at the limit, neither
    # later nor earlier.
    Probe("stalled-session", Mode.PULL,
          (*_stall("/index.dat", range(len(SITE))), _WAIT_NEXT, _WAIT_NEXT)),
    # A change pushed on the held connection is acted on at once.
    # (A push reaches only a held request: first the client holds.)
    Probe("push", Mode.PUSH, (("wait", {"dt": SESSION_LIMIT_MS}), ("push", {}),
                              ("wait", {"dt": INTERVAL_MS}))),
    # Logs produced, the first priority's managers reset POST /logs, the client is
    # restarted after the failed upload: what it had taken in must still be
    # uploaded, once.
    Probe("log-durability", Mode.PULL,
          (*(("fault", {"m": i, "fault": Fault.RESET, "path": "/logs"})
             for i in range(_TOP)), ("logs", {"count": 2}),
           _WAIT_NEXT, ("heal", {}), ("restart", {}), _WAIT_NEXT), logs=True),
    # The first priority's managers stall the session: the heartbeat fails over to
    # the next manager at once, in priority order.
    Probe("failover", Mode.PULL,
          (*_stall("/index.dat", range(_TOP)),
           _WAIT_NEXT, _WAIT_NEXT, _WAIT_NEXT), failover=True),
)


def _probe(interp: Interpretation, machine: type[RuleBasedStateMachine], client: str,
           client_cmd: str | None, logs: bool = True) -> list[Failure]:
    """Run the probes (:data:`PROBES`) that apply to the interpretation and the
    environment (``logs``: whether it makes the client's logs); the first violation
    is the run's failure."""
    for probe in PROBES:
        if (probe.failover and not interp.switches[Switch.FAILOVER]) \
                or (probe.logs and not logs):
            continue
        state: Any = machine()
        steps = probe.program()
        try:
            state.start(mode=probe.mode)
            for rule, kw in probe.steps:
                getattr(state, rule)(**kw)
            state.teardown()
        except Violation as v:
            with contextlib.suppress(Exception):
                state.teardown()  # the client and servers of a case cut short
            return [_failure(v, steps, interp, client, client_cmd, None,
                             f"probe:{probe.name}")]
    return []


def _violation(exc: BaseException) -> Violation:
    """The violation, or the first run's when its replay did not fail the same way
    (over the wire timing can change a replay; Hypothesis says FlakyFailure)."""
    if isinstance(exc, Violation):
        return exc
    found = [e for e in getattr(exc, "exceptions", ()) if isinstance(e, Violation)]
    if not found:
        raise exc
    return found[0]


def _steps(printed: str) -> list[str]:
    """The shrunk program's steps, as Hypothesis printed them (``state.rule(...)``)."""
    return [line.strip() for line in printed.splitlines()
            if line.strip().startswith("state.")]


#: The site of every case in words: "m1, m2 at priority 1, m3 at priority 2, a GUP".
_SITE_WORDS = ", ".join(
    f"{', '.join(f'm{i + 1}' for i, (*_, q) in enumerate(SITE) if q == p)} at priority {p}"
    for p in sorted({p for *_, p in SITE})) + (", a GUP" if GUP else "")
_FAULT_WORDS = {
    Fault.UP: "answers normally",
    Fault.REFUSE: "refuses connections",
    Fault.STALL: "stalls {req}",
    Fault.RESET: "resets the connection on {req}",
    Fault.ERROR: "answers {req} with an HTTP error",
    Fault.GARBAGE: "answers {req} with bytes that are not HTTP",
    Fault.BLACKHOLE: "lets connects hang (they never complete)",
}


def _request(path: object) -> str:
    if not isinstance(path, str):
        return "every request"
    route = next((r for r in wire.ROUTES if r.path == path
                  or (r.path.endswith("/") and path.startswith(r.path))), None)
    return f"{route.method} {path}" if route else path


def _value(node: Any) -> Any:
    """A step's argument: a literal, or an enum member named like ``Fault.STALL``."""
    import ast

    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        enum_type = {"Fault": Fault, "Mode": Mode, "Source": Source}.get(node.value.id)
        if enum_type is not None:
            return enum_type[node.attr]
    return ast.literal_eval(node)


def narrate(step: str, interpretation: str | None = None) -> str:
    """One step of a shrunk program (``state.fault(m=0, fault=Fault.STALL,
    path='/index.dat')``) in the words of the domain (``m1 stalls GET /index.dat``);
    a step it does not know comes back as it is."""
    import ast

    try:
        call = ast.parse(step.strip(), mode="eval").body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            return step
        kw = {k.arg: _value(k.value) for k in call.keywords if k.arg}
    except (SyntaxError, ValueError, KeyError):
        return step
    rule = call.func.attr
    manager = f"m{kw.get('m', 0) + 1}" if isinstance(kw.get("m"), int) else "a manager"
    if rule == "start":
        mode = kw.get("mode")
        return (f"the client starts in {mode.value if isinstance(mode, Mode) else '?'} "
                f"mode ({_SITE_WORDS})")
    if rule == "fault" and isinstance(kw.get("fault"), Fault):
        return f"{manager} " + _FAULT_WORDS[kw["fault"]].format(
            req=_request(kw.get("path")))
    if rule == "gup":
        if kw.get("up") or not isinstance(kw.get("fault"), Fault):
            return "the GUP answers normally"
        return "the GUP " + _FAULT_WORDS[kw["fault"]].format(req="every request")
    if rule == "wait":
        dt = kw.get("dt")
        if dt is None:
            return "time passes until the client's next timer (or one interval)"
        return f"{dt / 1000:,g} s of model time pass"
    if rule == "goal":
        names = _row_names(interpretation)
        pick = kw.get("pick")
        target = names[pick] if isinstance(pick, int) and 0 <= pick < len(names) \
            else f"row {pick}"
        return (f"the environment sets up the cause of {target}, then "
                f"{INTERVAL_MS // 1000} s pass")
    simple = {
        "heal": "every manager answers normally again",
        "publish": "new content is published (a new index.dat serial)",
        "policy": "the LiveUpdate policy of location {location} takes content from "
                  "{source}",
        "flip": "the location's LiveUpdate source becomes {source} between the index "
                "and the URLs",
        "move": "the client moves to location {location}",
        "logs": "the client gets {count} new log entries",
        "push": "the manager pushes a policy change on the held connection",
        "drop": "{manager} drops its open connections",
        "restart": "the client is killed and started again on its state directory",
        "conforms": "the suite judges the records so far",
        "teardown": "the case ends: open deadlines are waited for",
    }
    if rule not in simple:
        return step
    words = {k: (v.value if isinstance(v, Source | Mode) else v) for k, v in kw.items()}
    return simple[rule].format(manager=manager, **words)


def _row_names(interpretation: str | None) -> list[str]:
    from sephb.model.interpretations import INTERPRETATIONS

    interp = INTERPRETATIONS.get(interpretation or "")
    return [r.name for r in interp.rows()] if interp else []


def program_length(steps: list[str]) -> int:
    """Steps of a shrunk program that are environment actions (invariant checks and
    the teardown are the suite's own)."""
    return sum(1 for s in steps
               if not s.startswith(("state.conforms(", "state.teardown(")))


def environment_for(client: str = "reference", client_cmd: str | None = None
                    ) -> Environment:
    """The environment of a named client: ``reference``, a seeded fault's name (in
    process), or any command over the wire."""
    if client_cmd is not None:
        from .remote import wire_environment

        return wire_environment(client_cmd)
    if client == "reference":
        return Environment(reference_factory())
    from .faults import core_class

    return Environment(reference_factory(core_class(client)))


def machine_for(interpretation: str, client: str = "reference",
                client_cmd: str | None = None) -> type[RuleBasedStateMachine]:
    """The suite's state machine for one client, to replay a shrunk program."""
    from sephb.model.interpretations import get

    interp = get(interpretation)
    coverage = Coverage({r.name: 0 for r in interp.rows()})
    return make_machine(interp, environment_for(client, client_cmd), coverage)


_REPLAY = '''"""Counterexample found by `sephb conform` ({requirement}).

{message}

Replays the shrunk run against the same client; the test fails while the client
still breaks {requirement}. Run it with pytest.
"""

from sephb.conformance.suite import machine_for
from sephb.conformance.world import Fault
from sephb.model.protocol import Mode, Source

__all__ = ["Fault", "Mode", "Source"]  # the steps below may name any of them


def test_counterexample() -> None:
    HeartbeatSuite = machine_for({interpretation!r}, {client!r}{cmd})
    state = HeartbeatSuite()
{body}
'''


def replay_source(interpretation: str, client: str, steps: list[str], requirement: str,
                  message: str, client_cmd: str | None = None) -> str:
    """A self-contained pytest file that replays a shrunk program; it fails while the
    client still breaks the requirement."""
    body = "\n".join(f"    {line}" for line in steps) or "    pass"
    return _REPLAY.format(
        requirement=requirement, message=message.replace('"""', "'''"),
        interpretation=interpretation, client=client, body=body,
        cmd=f", client_cmd={client_cmd!r}" if client_cmd else "")


def _row_requirements(row: Row) -> set[str]:
    """The requirements a row exercises: its own, and its guard's."""
    out = {row.requirement}
    if row.guard is not None:
        out.add(GUARDS[row.guard].requirement)
    return out


def requirements_of(interp: Interpretation) -> list[str]:
    """Every requirement a run of this interpretation judges: those of its rows and
    their guards, those of the oracle's data and deadline rules, and the heartbeat
    sizes. Every run lists them all, whatever it exercised."""
    ids: set[str] = set(PROPERTY_REQUIREMENTS) | set(SIZE_REQUIREMENTS)
    for r in interp.rows():
        ids |= _row_requirements(r)
    return sorted(ids)


def _result(interp: Interpretation, env: Environment, coverage: Coverage,
            failures: list[Failure], profile: str, seed: int | None, client: str,
            duration: float) -> SuiteResult:
    hits: dict[str, int] = dict(coverage.requirements)
    rows_of: dict[str, set[str]] = {}
    for r in interp.rows():
        for rid in _row_requirements(r):
            hits[rid] = hits.get(rid, 0) + coverage.rows.get(r.name, 0)
            rows_of.setdefault(rid, set()).add(r.name)
    skipped_rows = dict(env.uncoverable(interp))
    failed = {f.requirement for f in failures}
    first = failures[0].requirement if failures else ""
    reqs = []
    for rid in requirements_of(interp):
        n = hits.get(rid, 0)
        reason = ""
        if rid in failed:
            status = Status.FAILED
        elif n:
            status = Status.PASSED
        elif rid in env.unjudged:
            status, reason = Status.SKIPPED, env.unjudged[rid]
        elif (rid not in PROPERTY_REQUIREMENTS and rows_of.get(rid)
              and rows_of[rid] <= skipped_rows.keys()):
            status = Status.SKIPPED
            reason = (f"not observable in the {env.adapter} adapter: every transition "
                      f"carrying it is skipped ({skipped_rows[min(rows_of[rid])]})")
        elif failures:
            status = Status.NOT_REACHED
            reason = f"the run stopped at the failure of {first}"
        else:
            status = Status.NOT_EXERCISED
        reqs.append(RequirementResult(rid, status, REQUIREMENTS[rid].text, n, reason,
                                      round(coverage.seconds.get(rid, 0.0), 3)))
    return SuiteResult(client=client, adapter=env.adapter, interpretation=interp.name,
                       profile=profile, seed=seed, cases=coverage.cases,
                       steps=coverage.steps, duration_s=duration,
                       transitions=dict(coverage.rows), requirements=reqs,
                       failures=failures, directed=coverage.directed,
                       records=coverage.records,
                       row_seconds={n: round(coverage.seconds.get(n, 0.0), 3)
                                    for n in coverage.rows},
                       skipped={n: why for n, why in skipped_rows.items()
                                if not coverage.rows.get(n)})
