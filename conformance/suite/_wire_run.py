"""A wire run: calibrate, run the jobs (:mod:`._jobs`), merge, shrink, judge.

:func:`run_wire` is the wire adapter's whole run (:mod:`._remote` has the adapter:
the environment, the client process, the servers).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from sephb.conformance.suite import _jobs, _run
from sephb.conformance.suite import _machine as suite
from sephb.conformance.suite._jobs import (
    REPLAYS,
    SHARD_CASES,
    Job,
    JobsFailed,
    Outcome,
    Pool,
    default_jobs,
    shard_seed,
)
from sephb.conformance.suite._narrate import program_length
from sephb.conformance.suite._process import _number, _signals_held, close_all_clients
from sephb.conformance.suite._remote import (
    WIRE_PROFILES,
    WIRE_TOLERANCE_MS,
    WireObservations,
    _terminate_as_interrupt,
    _wire_result,
    wire_environment,
)
from sephb.conformance.suite._timing import (
    BUSY_SHARE,
    JitterMonitor,
    calibrate,
    collect_between_cases,
    resume,
)
from sephb.conformance.suite._wire_world import (
    START_ALLOWANCE_S,
    STARTUP_S,
    Size,
    close_all_worlds,
    run_octet,
)
from sephb.conformance.suite.results import Failure, SuiteResult
from sephb.model.errors import UsageError
from sephb.model.interpretations import Interpretation
from sephb.model.protocol import Mode

__all__ = ["WIRE_TOLERANCE_MS", "run_wire"]


def run_wire(interp: Interpretation, client_cmd: str, *, profile: str = "ci",
             seed: int | None = None, time_scale: float | None = None,
             tolerance_ms: int | None = None, max_examples: int | None = None,
             steps: int | None = None, directed: bool = True,
             startup_s: float = STARTUP_S, start_allowance_s: float = START_ALLOWANCE_S,
             jobs: int | None = None,
             shrink: bool = True, replays: int = REPLAYS, probes: bool = True,
             eager: bool = True,
             progress: Callable[[suite.Coverage, int], None] | None = None
             ) -> SuiteResult:
    """Run the suite against ``client_cmd`` over the wire; never raises for a
    non-conformant client.

    The deadline probes (``probes``), then the profile's Hypothesis cases
    (:data:`WIRE_PROFILES`, as fixed shards), then (``directed``) directed cases
    for the rows they missed (``eager``: a wait ends once the model needs no more
    time, see ``Environment.black_box``); ``jobs`` at a time (:mod:`._jobs`;
    default: what the machine holds), each on a site of its own, merged in a fixed
    order (the same result for every ``jobs``). A failure is shrunk (``shrink``)
    and replayed ``replays`` times (:func:`._jobs.confirm`). ``time_scale`` None:
    calibrated (:mod:`._timing`); the tolerance's wall time is the jitter budget. A
    run whose scheduling was later than the budget may be inconclusive on timing
    (:func:`_inconclusive`)."""
    if profile not in WIRE_PROFILES:
        raise UsageError(f"profile {profile!r}: expected one of "
                         f"{', '.join(WIRE_PROFILES)}")
    if jobs is not None and jobs < 1:
        raise UsageError(f"jobs {jobs}: expected a number >= 1")
    plan = WIRE_PROFILES[profile]
    t0 = time.perf_counter()
    calibration = calibrate() if time_scale is None else None
    scale = calibration.time_scale if calibration is not None else float(time_scale or 0)
    tol = WIRE_TOLERANCE_MS if tolerance_ms is None else tolerance_ms
    env = wire_environment(client_cmd, time_scale=scale, tolerance_ms=tol,
                           startup_s=startup_s, start_allowance_s=start_allowance_s)
    budget_ms = tol * scale
    if seed is None:
        seed = suite.FIXED_SEED if suite.PROFILES[profile][1] \
            else random.SystemRandom().randrange(2**32)
    n_jobs = jobs or default_jobs(calibration is not None and calibration.busy)
    cases = max_examples or plan.cases
    lanes = itertools.count(1)
    octet = run_octet()

    def job(kind: str, **kw: Any) -> Job:
        return Job(interp.name, client_cmd, scale, tol, startup_s, start_allowance_s,
                   octet, next(lanes), kind, eager=eager, tmp_dir=tmp, **kw)

    def program(steps_: list[str], found_by: str) -> Job:
        return job("program", program=steps_, found_by=found_by)

    coverage = suite.Coverage({r.name: 0 for r in interp.rows()})
    merged = _Merged(coverage)

    def each(i: int, o: Outcome) -> None:
        if progress is not None:
            progress(_partial(coverage, o), cases)

    skip = env.uncoverable(interp) if directed else {r.name: "" for r in interp.rows()}
    failure: Failure | None = None
    gone: str | None = None
    resume()  # whatever an earlier run in this process left paused
    try:
        with _terminate_as_interrupt(), _run_dir() as tmp, collect_between_cases(), \
                Pool(n_jobs) as pool, JitterMonitor(budget_ms) as jitter:
            sizes = [SHARD_CASES] * (cases // SHARD_CASES) + (
                [cases % SHARD_CASES] if cases % SHARD_CASES else [])
            # The probes need nothing from the random cases, so they run in the
            # same stage (one pool, no barrier), and first: they are short and aimed
            # at what random search meets last (stalls, timeouts, failover, a lost
            # upload), and a stage's failure waits only for the jobs before it.
            shards = [program(p, by) for by, p
                      in _run.probe_programs(interp, env.logs)] if probes else []
            shards += [job("random", seed=shard_seed(seed, i), cases=n,
                           steps=steps or plan.steps) for i, n in enumerate(sizes)]
            stage: list[tuple[Job, Outcome | None]] = list(zip(
                shards, pool.run(shards, each=each), strict=True))
            first = merged.add(stage)
            if first is None and directed:
                # One pull-mode program per row the cases so far missed; then push
                # mode for rows still missed.
                for mode in (Mode.PULL, Mode.PUSH):
                    directed_jobs = [program(p, "directed")
                                     for p in _run.top_up_programs(coverage, skip, (mode,))]
                    if not directed_jobs:
                        continue
                    stage = list(zip(directed_jobs, pool.run(directed_jobs, each=each),
                                     strict=True))
                    first = merged.add(stage)
                    if first is not None or not coverage.uncovered():
                        break
            if first is not None:
                found_s = time.perf_counter() - t0
                found_job, found_outcome = first
                gone = found_outcome.gone
                if gone is None and found_outcome.found is not None:
                    failure = msgspec.structs.replace(_shrunk_failure(
                        interp, client_cmd, pool, program, found_job, found_outcome,
                        seed, shrink, replays), found_after_s=round(found_s, 2))
            merged.late.append(jitter.worst_ms)
            merged.samples += jitter.samples
            merged.over += jitter.over
    except JobsFailed as exc:
        gone = str(exc)  # the run's own processes failed: nothing to judge by
    finally:
        # an interrupted case's process and servers, if any: clients first
        close_all_clients()
        close_all_worlds()
    result = _run._result(interp, env, coverage, [failure] if failure else [], profile,
                          seed, client_cmd, time.perf_counter() - t0)
    result.discarded = merged.discarded
    if gone is not None:
        result = _run.gone_result(result, suite.ClientGone(gone))
    late_ms = max(merged.late, default=0.0)
    settings = {
        "time scale": _number(scale) + (" (calibrated)" if calibration else ""),
        "tolerance": f"{tol:,} model ms ({_number(budget_ms / 1000)} s of wall time: "
                     f"the jitter budget)",
        "scheduling lateness": f"worst {late_ms:.1f} ms; {merged.over:,} of "
                               f"{merged.samples:,} samples over the budget",
        "findings set aside": (
            f"{merged.set_aside} (each did not recur when its case ran again; "
            f"inconclusive above {merged.max_set_aside()})"),
        "jobs": str(n_jobs),
        "start-up wait": f"{startup_s:g} s",
        "start allowance": f"{start_allowance_s:g} s"}
    if calibration is not None:
        settings["calibration"] = calibration.text()
    inconclusive = _inconclusive(merged, budget_ms, failure)
    result = msgspec.structs.replace(result, settings=settings, inconclusive=inconclusive)
    return _wire_result(result, merged.observations)


@contextlib.contextmanager
def _run_dir() -> Iterator[str]:
    """The run's temporary directory (``sephb-run-*``), in which its clients make
    theirs: removed on every way out of the run, also when a worker that died could
    not remove its own. (Entered after the SIGTERM handler and left before it goes,
    so that a second SIGTERM cannot stop its removal.)"""
    path: str | None = None
    try:
        with _signals_held():  # made and known to this block at once
            path = tempfile.mkdtemp(prefix="sephb-run-")
        yield path
    finally:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def _inconclusive(merged: _Merged, budget_ms: float, failure: Failure | None) -> str:
    """Why the run's timing cannot be trusted, or empty. Scheduling later than the
    jitter budget makes a record late (a client seems late) or hides an early one
    (a client seems on time). A lone hiccup while nothing was timed changes
    nothing; so a run is inconclusive when the machine was busy throughout (more
    than BUSY_SHARE of the samples over the budget), or when its failure rests on
    timing and not every replay broke it again, or more than
    :meth:`_Merged.max_set_aside` findings did not recur when their cases ran
    again."""
    busy = merged.samples and merged.over > BUSY_SHARE * merged.samples
    late = max(merged.late, default=0.0)
    advice = ("run it again on a quieter machine, with fewer --jobs or a larger "
              "--time-scale")
    if busy:
        return (f"{merged.over:,} of {merged.samples:,} scheduling samples were later "
                f"than the {budget_ms:g} ms jitter budget its tolerance allows (worst "
                f"{late:.1f} ms): the machine was too busy to judge timing; {advice}")
    if merged.set_aside > merged.max_set_aside():
        return (f"{merged.set_aside} findings did not recur when their cases "
                f"ran again (worst scheduling lateness {late:.1f} ms, budget "
                f"{budget_ms:g} ms): the machine, or the client, is too noisy to judge "
                f"timing; {advice}")
    if failure is not None and failure.timing and failure.replays \
            and failure.reproduced < failure.replays:
        # (Before, a timing failure that some replays broke stood when scheduling
        # had kept within the budget: on a machine kept busy the reference client
        # then failed once in ten runs -- a next action 2 ms past the budget whose
        # case had shown it twice and one replay in three again.)
        some = "none" if failure.reproduced == 0 else f"only {failure.reproduced}"
        return (f"its failure rests on timing and {some} of {failure.replays} replays "
                f"of it broke the requirement again (worst scheduling lateness "
                f"{late:.1f} ms, budget {budget_ms:g} ms; the client's own wait for a "
                f"CPU is excused, other delays on a busy machine are not measured): "
                f"it may be noise; {advice}")
    return ""


#: Findings a run may set aside as noise (``_jobs._perform``: each did not recur
#: when its case ran again) and still give a verdict: a share of its cases, at least
#: :data:`MIN_SET_ASIDE`. A few are a busy machine's stalls (measured: 1-3 in the
#: 40-odd cases of ``ci`` with both cores kept busy); more say the machine, or the
#: client's timing, is not steady enough to judge.
SET_ASIDE_SHARE: Final = 0.1
MIN_SET_ASIDE: Final = 2


@dataclass
class _Merged:
    """Outcomes merged into one coverage, in job order."""

    coverage: suite.Coverage
    observations: WireObservations = field(default_factory=WireObservations)
    discarded: int = 0
    late: list[float] = field(default_factory=list)
    samples: int = 0
    over: int = 0
    set_aside: int = 0

    def max_set_aside(self) -> int:
        """How many findings this run may set aside (:data:`SET_ASIDE_SHARE`)."""
        cases = self.coverage.cases + self.coverage.directed
        return max(MIN_SET_ASIDE, int(SET_ASIDE_SHARE * cases))

    def add(self, stage: list[tuple[Job, Outcome | None]]) -> tuple[Job, Outcome] | None:
        """Add a stage's outcomes up to its first failure; that failure's job."""
        c = self.coverage
        for job, o in stage:
            if o is None:
                break
            for name, n in o.rows.items():
                if name in c.rows:
                    c.rows[name] += n
            for key, n in o.requirements.items():
                c.requirements[key] = c.requirements.get(key, 0) + n
            for key, sec in o.seconds.items():
                c.seconds[key] = c.seconds.get(key, 0.0) + sec
            c.steps += o.steps
            c.cases += o.cases
            c.directed += o.directed
            c.records += o.records
            self.discarded += o.discarded
            self.late.append(o.late_ms)
            self.samples += o.samples
            self.over += o.over
            self.set_aside += o.set_aside
            self.observations.sizes += [Size(*s) for s in o.sizes]
            for note in o.notes:
                self.observations.note(note)
            if o.failed:
                return job, o
        return None


def _partial(coverage: suite.Coverage, o: Outcome) -> suite.Coverage:
    """The coverage a progress display shows: merged so far plus this outcome."""
    rows = dict(coverage.rows)
    for name, n in o.rows.items():
        rows[name] = rows.get(name, 0) + n
    return suite.Coverage(rows, cases=coverage.cases + o.cases)


def _shrunk_failure(interp: Interpretation, client_cmd: str, pool: Pool,
                    program: Callable[[list[str], str], Job], job: Job, o: Outcome,
                    seed: int, shrink: bool, replays: int) -> Failure:
    """The failure of ``o``, shrunk over the wire and replayed: its program is the
    recorded one (a random case's, cut at the step that found it) or the directed
    case's."""
    assert o.found is not None
    found = o.found
    if not found.program:  # a directed case: its program is the job's
        found = msgspec.structs.replace(found, program=list(job.program))
    original = program_length(found.program)
    kept = _jobs.shrink(pool, program, found)[0] if shrink else [found]
    best, reproduced = (_jobs.confirm(pool, program, kept, replays) if replays
                        else (kept[-1], 0))
    f = _run._failure(best.violation(), best.program, interp, client_cmd, client_cmd,
                      seed if job.kind == "random" else None, job.found_by)
    return msgspec.structs.replace(f, timing=best.timing,
                                   original_steps=original if shrink else 0,
                                   replays=replays, reproduced=reproduced)
