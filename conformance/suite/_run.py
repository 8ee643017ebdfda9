"""Running the suite: random cases, directed top-ups and deadline probes, and the
result they give.

:func:`run` drives Hypothesis over the state machine of :mod:`._machine` with one seed
and no example database, then tops up rows random search missed and probes the
deadlines; :func:`_result` turns the coverage and failures into one
:class:`~.results.SuiteResult` in which every requirement of the reading is listed.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import msgspec
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter
from hypothesis.stateful import (
    RuleBasedStateMachine,
    run_state_machine_as_test,
)
from hypothesis.statistics import collector

from sephb.conformance.suite._machine import (
    FIXED_SEED,
    INTERVAL_MS,
    PROFILES,
    PROPERTY_REQUIREMENTS,
    SITE,
    SIZE_REQUIREMENTS,
    ClientFactory,
    ClientGone,
    Coverage,
    Environment,
    Violation,
    make_machine,
    reference_factory,
    row_requirements,
    step_text,
)
from sephb.conformance.suite._narrate import parse_step, replay_source
from sephb.conformance.suite.results import Failure, RequirementResult, Status, SuiteResult
from sephb.conformance.suite.world import DEFAULT_SITE, Fault, Site
from sephb.model.interpretations import Interpretation
from sephb.model.protocol import (
    REQUIREMENTS,
    SESSION_LIMIT_MS,
    Mode,
    Switch,
)


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
    try:
        return _run_machine(interp, env, machine, coverage, cfg, profile, seed, client,
                            client_cmd, probes, t0)
    finally:
        dog = getattr(machine, "watchdog", None)
        if dog is not None:
            dog.close()


@dataclass
class Explored:
    """What the random cases of one Hypothesis run found (see :func:`explore`)."""

    #: The run's violation (shrunk, when Hypothesis could replay its case) and its
    #: program's steps (as Hypothesis printed them; the recorded program if none).
    violation: Violation | None = None
    steps: list[str] = field(default_factory=list)
    #: Why the client could not be tested, if it could not.
    gone: ClientGone | None = None
    #: Cases Hypothesis discarded (their random data ran out).
    discarded: int = 0


def explore(machine: type[RuleBasedStateMachine], cfg: Any, coverage: Coverage
            ) -> Explored:
    """Run Hypothesis over ``machine`` with ``cfg``: the random cases."""
    out = Explored()
    printed: list[str] = []
    stats: list[Any] = []
    try:
        with with_reporter(lambda text: printed.append(str(text))), \
                _no_local_constants(), collector.with_value(stats.append):  # type: ignore[arg-type]
            run_state_machine_as_test(machine, settings=cfg)
    except (Violation, Flaky, ExceptionGroup) as exc:
        # Hypothesis raises a group when it found several distinct failures: the
        # first violation in it is the run's (each is shrunk already).
        v = _violation(exc)
        if v is None and not isinstance(exc, Flaky):
            raise
        if v is not None:
            # Hypothesis attaches the shrunk program to the exception as notes.
            notes = "\n".join([*printed, *getattr(v, "__notes__", [])])
            out.violation, out.steps = v, _steps(notes) or list(v.program or [])
        elif coverage.first is not None:
            # The data a case drew did not replay the same way (over the wire a
            # rule's choices can depend on timing): there is no shrunk program, but
            # the violation seen is reported, with the program that showed it.
            first = coverage.first
            out.violation = Violation(
                first.requirement, f"{first.message} (not shrunk: {_unreplayable(exc)})",
                first.records, first.index, first.expected, first.timing)
            out.violation.program = first.program
            out.steps = list(first.program or [])
        else:
            out.gone = ClientGone(f"the run stopped after {coverage.cases} case(s): "
                                  f"{_unreplayable(exc)}; no violation had been seen")
    except ClientGone as exc:
        out.gone = exc
    # Hypothesis counts only valid cases toward max_examples; a case whose random
    # data ran out before its program ended is discarded, though its steps ran.
    out.discarded = sum(1 for phase in (stats[0] if stats else {}).values()
                        if isinstance(phase, dict)
                        for case in phase.get("test-cases", ())
                        if case.get("status") in ("overrun", "invalid"))
    coverage.cases -= min(out.discarded, coverage.cases)
    return out


def _run_machine(interp: Interpretation, env: Environment,
                 machine: type[RuleBasedStateMachine], coverage: Coverage, cfg: Any,
                 profile: str, seed: int, client: str, client_cmd: str | None,
                 probes: bool, t0: float) -> SuiteResult:
    failures: list[Failure] = []
    found = explore(machine, cfg, coverage)
    gone = found.gone
    if found.violation is not None:
        failures.append(_failure(found.violation, found.steps, interp, client,
                                 client_cmd, seed))
    try:
        if gone is None and not failures and coverage.uncovered():
            failures += _top_up(interp, machine, coverage, client, client_cmd,
                                skip=env.uncoverable(interp))
        if gone is None and not failures and probes:
            failures += _probe(interp, machine, client, client_cmd, env.logs)
    except ClientGone as exc:
        gone = exc
    result = _result(interp, env, coverage, failures, profile, seed, client,
                     time.perf_counter() - t0)
    result.discarded = found.discarded
    if gone is not None:
        result = gone_result(result, gone)
    return result


def gone_result(result: SuiteResult, gone: BaseException) -> SuiteResult:
    """``result`` of a run that stopped because the client could not be tested."""
    return msgspec.structs.replace(result, error=str(gone), requirements=[
        msgspec.structs.replace(r, status=Status.NOT_REACHED,
                                reason="the client could not be tested")
        if r.status is not Status.SKIPPED else r for r in result.requirements])


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
    for steps in top_up_programs(coverage, skip):
        try:
            run_program(machine, steps)
        except Violation as v:
            return [_failure(v, steps, interp, client, client_cmd, None, "directed")]
        if not coverage.uncovered():
            break
    return []


def top_up_programs(coverage: Coverage, skip: Collection[str] = (),
                    modes: Collection[Mode] = tuple(Mode)) -> Iterator[list[str]]:
    """The directed programs for the rows ``coverage`` still misses, one per row and
    mode (of ``modes``), in table order; a row covered meanwhile (by an earlier
    program) gets no more."""
    names = list(coverage.rows)
    for name in coverage.uncovered():
        if name in skip:
            continue
        for mode in modes:
            if coverage.rows[name]:
                break
            yield [step_text("start", {"mode": mode}),
                   *(s.format(pick=names.index(name)) for s in _DIRECTED),
                   "state.teardown()"]


def run_program(machine: type[RuleBasedStateMachine], steps: list[str]) -> None:
    """Run a program (``state.start(...)``, rule steps, ``state.teardown()``, as
    :func:`._machine.step_text` writes them) as a fresh case of ``machine``, with
    the invariant after every step as Hypothesis runs it. Raises the case's
    :class:`Violation`; the case is always closed. Nothing is evaluated: each step
    is parsed into its rule and arguments (:func:`._narrate.parse_step`)."""
    calls = [parse_step(step) for step in steps]
    state: Any = machine()
    try:
        for rule, kw in calls:
            if rule == "teardown":
                break
            if rule.startswith("_") or not callable(getattr(state, rule, None)):
                raise ValueError(f"not a rule of the suite: {rule!r}")
            getattr(state, rule)(**kw)
            state.conforms()
    except BaseException:
        with contextlib.suppress(Exception):
            state.teardown()  # the client and servers of a case cut short
        raise
    state.teardown()


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
    #: The site the probe runs against.
    site: Site = DEFAULT_SITE
    #: Steps done before the client starts (``fault``, ``gup`` and ``logs``): its
    #: first heartbeat meets them, so the probe needs no heartbeat to get there.
    before: tuple[tuple[str, dict[str, Any]], ...] = ()

    def program(self) -> list[str]:
        site = {} if self.site == DEFAULT_SITE else {"site": self.site}
        return [*(step_text(rule, kw) for rule, kw in self.before),
                step_text("start", {"mode": self.mode, **site}),
                *(step_text(rule, kw) for rule, kw in self.steps),
                "state.teardown()"]


def _every(fault: Fault, path: str, managers: range
           ) -> tuple[tuple[str, dict[str, Any]], ...]:
    """``fault`` steps: each of ``managers`` answers ``path`` with ``fault``."""
    return tuple(("fault", {"m": i, "fault": fault, "path": path}) for i in managers)


_WAIT_NEXT = ("wait", {"dt": None})
#: How many managers share the first priority (they come first in SITE).
_TOP = sum(1 for *_, p in SITE if p == SITE[0][2])
# A case starts with every server up and the manager as every location's content
# source: the probes change only what they need, before the client starts when its
# first heartbeat can meet it (a client starts with no index.dat, so its first
# check-in fetches the download URLs and the content).
PROBES: tuple[Probe, ...] = (
    # (In the order they run: those that end soonest and that most wrong clients
    # fail come first, since a failure is reported only once the probes before it
    # have ended -- that keeps a run's result the same whatever its --jobs.)
    # Every manager stalls index.dat: the session is given up at the limit, neither
    # later nor earlier, and the next heartbeat still comes.
    Probe("stalled-session", Mode.PULL, (_WAIT_NEXT, _WAIT_NEXT),
          before=_every(Fault.STALL, "/index.dat", range(len(SITE)))),
    # A site unlike the default one: managers on other ports than 8014 and in
    # another order of ports, a GUP on another port than 2967 that the client's
    # location takes its content from. Every address and port must come from
    # sylink.xml and the download URLs, none from the seed's defaults.
    Probe("other-ports", Mode.PULL, (),
          site=Site(managers=((1, 9014), (1, 8443), (2, 8014)), gup=2968,
                    policies=(("Default", "gup"),))),
    # Every manager answers GET /index.dat with an HTTP error (503): the check-in
    # ends at once (documented: after failing over through the managers), and the
    # client goes on to its next heartbeat.
    Probe("failed-session", Mode.PULL, (_WAIT_NEXT,),
          before=_every(Fault.ERROR, "/index.dat", range(len(SITE)))),
    # Every manager stalls GET /urls: the request is given up within the request
    # limit, and the next heartbeat still comes.
    Probe("stalled-request", Mode.PULL, (_WAIT_NEXT, _WAIT_NEXT),
          before=_every(Fault.STALL, "/urls", range(len(SITE)))),
    # The first priority's managers stall the session: the heartbeat fails over to
    # the next manager at once, in priority order.
    Probe("failover", Mode.PULL, (_WAIT_NEXT, _WAIT_NEXT),
          failover=True, before=_every(Fault.STALL, "/index.dat", range(_TOP))),
    # The location takes its content from the GUP, which fails: the seed's reading
    # skips it, the documented one fetches it from the manager (a failed GUP
    # download leaves no record over the wire; the suite knows it made the GUP fail).
    Probe("gup-down", Mode.PULL, (),
          site=Site(policies=(("Default", "gup"),)),
          before=(("gup", {"up": False, "fault": Fault.ERROR}),)),
    # Every manager answers POST /sensors with an HTTP error: the check-in ends (its
    # logs went before) and the next heartbeat comes by the interval.
    Probe("failed-upload", Mode.PULL, (_WAIT_NEXT,),
          before=_every(Fault.ERROR, "/sensors", range(len(SITE)))),
    # A change pushed on the held connection is acted on at once.
    # (A push reaches only a held request: first the client holds.)
    Probe("push", Mode.PUSH, (("wait", {"dt": SESSION_LIMIT_MS}), ("push", {}),
                              ("wait", {"dt": INTERVAL_MS}))),
    # Heartbeats with nothing wrong: each begins by the interval, each pull check-in
    # closes its connection at once (step 7). (Every case ends by waiting for the
    # next heartbeat: this one sees three.)
    Probe("heartbeats", Mode.PULL, (_WAIT_NEXT,)),
    # A pushed check-in whose index.dat stalls: its session is given up at the
    # session limit, neither later nor earlier, as a heartbeat's would be.
    # (Faults come before what they must meet: a client still busy with its first
    # check-in when the probe begins must not get past them.)
    Probe("push-stalled-session", Mode.PUSH,
          (("wait", {"dt": SESSION_LIMIT_MS}),
           *_every(Fault.STALL, "/index.dat", range(len(SITE))),
           ("push", {}), ("wait", {"dt": INTERVAL_MS}))),
    # Logs produced, the first priority's managers reset POST /logs, the client is
    # restarted after the failed upload: what it had taken in must still be
    # uploaded, once (the first wait ends when the first check-in has ended).
    Probe("log-durability", Mode.PULL, (_WAIT_NEXT, ("heal", {}), ("restart", {})),
          logs=True,
          before=(*_every(Fault.RESET, "/logs", range(_TOP)), ("logs", {"count": 2}))),
)


def _probe(interp: Interpretation, machine: type[RuleBasedStateMachine], client: str,
           client_cmd: str | None, logs: bool = True) -> list[Failure]:
    """Run the probes (:data:`PROBES`) that apply to the interpretation and the
    environment (``logs``: whether it makes the client's logs); the first violation
    is the run's failure."""
    for found_by, steps in probe_programs(interp, logs):
        try:
            run_program(machine, steps)
        except Violation as v:
            return [_failure(v, steps, interp, client, client_cmd, None, found_by)]
    return []


def probe_programs(interp: Interpretation, logs: bool = True
                   ) -> list[tuple[str, list[str]]]:
    """("probe:<name>", program) of each probe that applies to the interpretation
    and the environment (``logs``: whether it makes the client's logs)."""
    return [(f"probe:{p.name}", p.program()) for p in PROBES
            if not (p.failover and not interp.switches[Switch.FAILOVER])
            and not (p.logs and not logs)]


def _violation(exc: BaseException) -> Violation | None:
    """The violation, or the first run's when its replay did not fail the same way
    (over the wire timing can change a replay; Hypothesis says FlakyFailure); None
    when the case's data itself did not replay (FlakyStrategyDefinition)."""
    if isinstance(exc, Violation):
        return exc
    for e in getattr(exc, "exceptions", ()):
        found = _violation(e)
        if found is not None:
            return found
    return None


def _unreplayable(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"Hypothesis could not replay a test case the same way to shrink it "
            f"({type(exc).__name__}{': ' + first if first else ''})")


def _steps(printed: str) -> list[str]:
    """The shrunk program's steps, as Hypothesis printed them (``state.rule(...)``),
    one per step: a step whose arguments Hypothesis wrapped over several lines (a
    drawn site) is joined back into one."""
    steps: list[str] = []
    depth = 0
    for raw in printed.splitlines():
        line = raw.strip()
        if depth:
            steps[-1] += (" " if steps[-1][-1] in ",:" else "") + line
        elif line.startswith("state."):
            steps.append(line)
        else:
            continue
        depth += line.count("(") + line.count("[") - line.count(")") - line.count("]")
    return steps


def requirements_of(interp: Interpretation) -> list[str]:
    """Every requirement a run of this interpretation judges: those of its rows and
    their guards, those of the oracle's data and deadline rules, and the heartbeat
    sizes. Every run lists them all, whatever it exercised."""
    ids: set[str] = set(PROPERTY_REQUIREMENTS) | set(SIZE_REQUIREMENTS)
    for r in interp.rows():
        ids |= row_requirements(r)
    return sorted(ids)


def _result(interp: Interpretation, env: Environment, coverage: Coverage,
            failures: list[Failure], profile: str, seed: int | None, client: str,
            duration: float) -> SuiteResult:
    hits: dict[str, int] = dict(coverage.requirements)
    rows_of: dict[str, set[str]] = {}
    for r in interp.rows():
        for rid in row_requirements(r):
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
