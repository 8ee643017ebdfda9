"""A wire run as jobs: random shards, directed programs, shrink candidates, replays,
run N at a time, merged in a fixed order.

A wire case spends nearly all its wall time waiting for model time to pass (each
uses a few percent of a core), so cases run side by side: each :class:`Job` runs
in a worker process of its own (one fleet, one client process, one state
directory, on a third octet of its own: ``_wire_world.use_lane``) and returns an
:class:`Outcome` -- its coverage, its first violation with the program that showed
it, what the wire measured. What a run is made of never depends on how many jobs
run at once:

* the deadline probes come first, one program each (short, and aimed at what
  random search meets last);
* then the random cases, as fixed **shards** (:data:`SHARD_CASES` Hypothesis cases
  each, seeded ``shard_seed(seed, i)``);
* then the directed cases, one program per row still uncovered (pull mode, then
  push for rows still uncovered);
* outcomes are merged in job order, and a failure is the first job's in that order
  that failed: later jobs are cancelled or ignored, earlier ones always finish.

So ``--jobs 1`` and ``--jobs 4`` run the same programs and give the same verdict.

A failure is then **shrunk** (:func:`shrink`: delta debugging over the program's
steps, the candidates of one round run side by side, the first in order that still
breaks the same requirement wins) and **replayed** (:data:`REPLAYS` runs of the
shrunk program): reproducible when every replay broke it again. A shrunk program
that is not gives way to the one it was cut from (:func:`confirm`); one that no
replay confirms is reported flaky, with how often it reproduced.

A worker **stops** on its first SIGTERM or SIGINT (the pool shutting down an
interrupted run, ``timeout`` or a CI runner signalling the whole process group, a
Ctrl-C): in a job, the job is interrupted, cleans up (its client's processes, its
servers, its directory; later signals wait) and the worker then exits; between jobs
it exits at once. It never goes back for more work: its run is over, and a worker
waiting on the pool's queue after the run's process is gone would wait forever.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import FrameType
from typing import Any, Final

import msgspec

from sephb.conformance.suite import _machine as suite
from sephb.conformance.suite import _run
from sephb.conformance.suite._timing import (
    JitterMonitor,
    collect_between_cases,
    pause,
    resume,
)

#: Hypothesis cases per random shard. A shard is one Hypothesis run; its first case
#: is Hypothesis' simplest program, so shards much smaller than this would repeat it.
SHARD_CASES: Final = 4
#: Runs of a shrunk program that decide whether it is reproducible.
REPLAYS: Final = 3
#: Most candidate programs one shrink runs (each is a whole case).
SHRINK_BUDGET: Final = 48
#: Most programs of a shrink :func:`confirm` replays, the smallest first.
CONFIRM_TRIES: Final = 3


class Job(msgspec.Struct, frozen=True):
    """One unit of a wire run, as a worker gets it."""

    interpretation: str
    client_cmd: str
    time_scale: float
    tolerance_ms: int
    startup_s: float
    start_allowance_s: float
    #: Where its servers listen: 127.<octet>.<lane>.x.
    octet: int
    lane: int
    #: "random" (a shard of Hypothesis cases) or "program" (one directed case, a
    #: shrink candidate, a replay).
    kind: str
    seed: int = 0
    cases: int = 0
    steps: int = 0
    program: list[str] = msgspec.field(default_factory=list)
    #: "random", "directed", "probe:<name>", "shrink", "replay".
    found_by: str = "random"
    #: Waits end once the model needs no more time (``Environment.black_box``).
    eager: bool = True
    #: The run's temporary directory, which the run removes whatever happens: the
    #: client's directory is made in it ("": the system's).
    tmp_dir: str = ""


class Found(msgspec.Struct, frozen=True):
    """A violation as it crosses from a worker."""

    requirement: str
    message: str
    records: list[dict[str, Any]]
    index: int | None
    expected: list[str] | None
    #: The program that showed it (recorded as run), and Hypothesis' shrunk steps
    #: when it could shrink in the worker (it cannot over the wire: empty).
    program: list[str]
    steps: list[str]
    timing: bool = False

    def violation(self) -> suite.Violation:
        v = suite.Violation(self.requirement, self.message, self.records, self.index,
                            None if self.expected is None else tuple(self.expected),
                            self.timing)
        v.program = list(self.program)
        return v


class Outcome(msgspec.Struct):
    """What one job found and exercised."""

    rows: dict[str, int]
    requirements: dict[str, int]
    seconds: dict[str, float]
    steps: int = 0
    cases: int = 0
    directed: int = 0
    discarded: int = 0
    records: int = 0
    found: Found | None = None
    #: Why the client could not be tested (ClientGone's text), if it could not.
    gone: str | None = None
    sizes: list[tuple[str, int, str, int]] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)
    #: The worst scheduling lateness seen while the job ran, wall ms, and how many
    #: of its lateness samples were later than the jitter budget.
    late_ms: float = 0.0
    samples: int = 0
    over: int = 0
    #: Timing findings of this job that did not recur when it ran again (0 or 1).
    set_aside: int = 0

    @property
    def failed(self) -> bool:
        return self.found is not None or self.gone is not None


class JobsFailed(RuntimeError):
    """The run's worker processes failed (not the client: the run itself)."""


def shard_seed(seed: int, shard: int) -> int:
    """The seed of one random shard: a fixed function of the run's seed."""
    return (seed * 1_000_003 + shard * 7919 + 1) % 2**32


# --- one job -------------------------------------------------------------------------


def perform(job: Job) -> Outcome:
    """Run one job here (in a worker, or in the run's own process with one job at
    a time). A worker that was told to stop while it ran exits once it has cleaned
    up (:func:`_stop_worker`)."""
    try:
        _Worker.busy = True
        if _Worker.stopping:  # told to stop before this job came: the run is over
            raise KeyboardInterrupt(f"signal {_Worker.stopping}")
        return _perform(job)
    finally:
        _Worker.busy = False
        if _Worker.stopping:
            os._exit(128 + _Worker.stopping)


#: The jobs that get a second look: a run's own cases. A shrink candidate or a
#: replay is itself a second look (they count how often a failure recurs).
_SECOND_LOOK: Final = ("random", "directed", "probe")


def _perform(job: Job) -> Outcome:
    """Run ``job``; a case whose finding rests on timing alone, or whose client was
    not heard at all, runs again once, and the finding stands only if the second
    run fails too (its outcome is the job's). One late record on a busy machine is
    noise as often as it is the client's: a process can be descheduled, or stall on
    the disk, for longer than the run's jitter budget without any sleeping thread
    seeing it. A client that is late (or silent) again in the same case is late; one
    that is not, once, has its finding set aside (counted and said in every output,
    ``_wire_run._inconclusive``)."""
    out = _attempt(job)
    first = out.found
    timing = out.gone is None and first is not None and first.timing
    if not (timing or out.gone is not None) \
            or job.found_by.split(":")[0] not in _SECOND_LOOK:
        return out
    again = _attempt(job)
    again.late_ms = max(again.late_ms, out.late_ms)
    again.samples += out.samples
    again.over += out.over
    if not again.failed:
        again.set_aside = 1
        what = (f"{first.requirement} ({first.message})" if first is not None and timing
                else f"the client could not be tested ({out.gone})")
        again.notes.append(f"a finding set aside: {what}, which did not recur when "
                           f"its case ({job.found_by}) ran again")
    return again


def _attempt(job: Job) -> Outcome:
    from sephb.conformance.suite._remote import wire_environment
    from sephb.conformance.suite._wire_world import use_lane
    from sephb.model.interpretations import get

    interp = get(job.interpretation)
    use_lane(job.lane, job.octet)
    env = wire_environment(job.client_cmd, time_scale=job.time_scale,
                           tolerance_ms=job.tolerance_ms, startup_s=job.startup_s,
                           start_allowance_s=job.start_allowance_s, eager=job.eager,
                           tmp_dir=job.tmp_dir or None)
    coverage = suite.Coverage({r.name: 0 for r in interp.rows()})
    machine = suite.make_machine(interp, env, coverage)
    out = Outcome({}, {}, {})
    with collect_between_cases(), \
            JitterMonitor(job.tolerance_ms * job.time_scale) as jitter:
        pause()  # until the first case's world: nothing is timed
        try:
            if job.kind == "random":
                _random(job, machine, coverage, out)
            else:
                _program(job, machine, out)
        except suite.ClientGone as exc:
            out.gone = str(exc)
        finally:
            dog = getattr(machine, "watchdog", None)
            if dog is not None:
                dog.close()
            _close_leftovers()
            resume()  # the last case's close paused: leave this process unpaused
    out.late_ms = round(jitter.worst_ms, 3)
    out.samples, out.over = jitter.samples, jitter.over
    out.rows = {n: c for n, c in coverage.rows.items() if c}
    out.requirements = dict(coverage.requirements)
    out.seconds = {k: round(v, 3) for k, v in coverage.seconds.items()}
    out.steps, out.cases, out.directed = coverage.steps, coverage.cases, coverage.directed
    out.records = coverage.records
    seen = env.observations
    out.sizes = [(s.kind, s.bytes, s.server, s.t) for s in seen.sizes]
    out.notes = list(seen.notes)
    return out


def _random(job: Job, machine: Any, coverage: suite.Coverage, out: Outcome) -> None:
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import seed as with_seed

    cfg = settings(max_examples=job.cases, stateful_step_count=job.steps,
                   deadline=None, database=None,
                   suppress_health_check=list(HealthCheck),
                   # Over the wire Hypothesis' shrinker would replay cases whose
                   # timing differs; the run shrinks the recorded program instead.
                   phases=[Phase.explicit, Phase.generate], print_blob=False)
    found = _run.explore(with_seed(job.seed)(machine), cfg, coverage)
    out.discarded = found.discarded
    if found.gone is not None:
        out.gone = str(found.gone)
    v = found.violation
    if v is not None:
        out.found = _found(v, steps=found.steps)


def _program(job: Job, machine: Any, out: Outcome) -> None:
    try:
        _run.run_program(machine, job.program)
    except suite.Violation as v:
        out.found = _found(v)


def _found(v: suite.Violation, steps: Sequence[str] = ()) -> Found:
    return Found(v.requirement, v.message, list(v.records), v.index,
                 None if v.expected is None else list(v.expected),
                 list(v.program or []), list(steps), v.timing)


def _close_leftovers() -> None:
    from sephb.conformance.suite._process import close_all_clients
    from sephb.conformance.suite._wire_world import close_all_worlds

    close_all_clients()
    close_all_worlds()


# --- many jobs -----------------------------------------------------------------------


class _Worker:
    """A worker's state: in a job (``busy``), and the signal that told it to stop."""

    busy = False
    stopping = 0


def _worker_init() -> None:
    """A worker ends like the run's main process: a SIGTERM (the pool shutting down
    an interrupted run, or the process group's) or SIGINT is an interrupt, so its
    client and servers are cleaned up; then it exits (the module's docstring)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_worker)


def _stop_worker(signum: int, frame: FrameType | None) -> None:
    """The first signal interrupts the job in hand (its cleanup runs, then
    :func:`perform` exits the worker); later ones wait for that cleanup. Between jobs
    the worker exits where it waits for work; but not while it sends a result back
    (half a message would leave the pool's pipe unreadable): the signal comes again
    a moment later."""
    first = not _Worker.stopping
    _Worker.stopping = _Worker.stopping or signum
    if _Worker.busy:
        if first:
            raise KeyboardInterrupt(f"signal {signum}")
        return
    f = frame
    while f is not None:
        if f.f_code.co_name == "_sendback_result":  # concurrent.futures' worker
            threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
            return
        f = f.f_back
    raise SystemExit(128 + signum)


class Pool:
    """Runs jobs ``n`` at a time: in worker processes (forkserver: started once,
    with the suite imported), or here, one after the other, when ``n`` is 1."""

    def __init__(self, n: int) -> None:
        self.n = max(1, n)
        self._executor: cf.ProcessPoolExecutor | None = None
        #: The multiprocessing children this process had before the pool's.
        self._before: set[int | None] = set()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)

    def close(self, cancel: bool = False) -> None:
        ex, self._executor = self._executor, None
        if ex is None:
            return
        procs = list((getattr(ex, "_processes", None) or {}).values())
        # (and one whose start an interrupt cut short before the executor knew it)
        procs += [p for p in multiprocessing.active_children()
                  if p.pid not in self._before and p not in procs]
        try:
            if cancel:
                # An interrupted run: the workers clean up their clients and servers
                # (SIGTERM is an interrupt there), and the run waits until they have.
                _terminate(procs)
            ex.shutdown(wait=True, cancel_futures=True)
        finally:
            # Also when an interrupt cut the wait short: a worker left waiting for
            # work would outlive the run, and keep its process from exiting
            # (multiprocessing joins its children at exit).
            _terminate(procs)
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.join(timeout=15)

    def _pool(self) -> cf.ProcessPoolExecutor:
        if self._executor is None:
            self._before = {p.pid for p in multiprocessing.active_children()}
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["sephb.conformance.suite._jobs",
                                        "sephb.conformance.suite._remote"])
            self._executor = cf.ProcessPoolExecutor(self.n, mp_context=ctx,
                                                    initializer=_worker_init)
        return self._executor

    def run(self, jobs: Sequence[Job], *,
            stop: Callable[[Outcome], bool] = lambda o: o.failed,
            each: Callable[[int, Outcome], None] | None = None
            ) -> list[Outcome | None]:
        """Run ``jobs``; the outcome of each in job order. Once a job's outcome
        satisfies ``stop``, later jobs are cancelled (or ignored: None) and earlier
        ones still finish, so the outcomes up to the first stop are the same for
        every ``n``. ``each`` sees each outcome as it comes."""
        outcomes: list[Outcome | None] = [None] * len(jobs)
        first_stop = len(jobs)
        if self.n == 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                outcomes[i] = o = perform(job)
                if each is not None:
                    each(i, o)
                if stop(o):
                    break
            return outcomes
        pool = self._pool()
        futures = {pool.submit(perform, job): i for i, job in enumerate(jobs)}
        try:
            for fut in cf.as_completed(futures):
                i = futures[fut]
                if i > first_stop:
                    continue
                try:
                    o = fut.result()
                except cf.process.BrokenProcessPool as exc:
                    raise JobsFailed(
                        "a worker process of the run ended abruptly (killed, or out "
                        "of memory; a script that calls the suite with more than one "
                        "job must guard its code with `if __name__ == '__main__':`, "
                        "since workers import the main module): run it again, or "
                        "with jobs=1 / --jobs 1") from exc
                outcomes[i] = o
                if each is not None:
                    each(i, o)
                if stop(o) and i < first_stop:
                    first_stop = i
                    for f, j in futures.items():
                        if j > i:
                            f.cancel()
                if all(outcomes[j] is not None for j in range(min(first_stop + 1,
                                                                  len(jobs)))):
                    break
        finally:
            for f in futures:
                f.cancel()
        return [o if i <= first_stop else None for i, o in enumerate(outcomes)]


def _terminate(procs: Iterable[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM each live worker of ``procs`` (it stops: :func:`_stop_worker`)."""
    for proc in procs:
        with contextlib.suppress(Exception):
            if proc.is_alive():
                proc.terminate()


def default_jobs(busy: bool = False) -> int:
    """What this machine holds: a wire case uses a few percent of a core while it
    waits, and a client process's start a burst of one; two per core, one on a
    machine that other work keeps busy."""
    return max(1, min(8, (1 if busy else 2) * (os.cpu_count() or 1)))


# --- shrinking and replaying ---------------------------------------------------------


def candidates(steps: list[str]) -> Iterator[list[str]]:
    """Smaller programs to try, biggest cuts first (delta debugging): the program
    with one of n chunks of its steps removed, n = 2, 4, ... up to one step at a
    time; the start and the teardown stay (steps before the start, faults in place
    when the client starts, may go)."""
    fixed = [i for i, s in enumerate(steps)
             if s.startswith(("state.start(", "state.teardown("))]
    body = [i for i in range(len(steps)) if i not in fixed]
    n = 2
    while body and n <= 2 * len(body):
        size = max(1, -(-len(body) // n))
        for i in range(0, len(body), size):
            gone = set(body[i:i + size])
            yield [s for j, s in enumerate(steps) if j not in gone]
        if size == 1:
            break
        n *= 2


def shrink(pool: Pool, make: Callable[[list[str], str], Job], found: Found,
           budget: int = SHRINK_BUDGET) -> tuple[list[Found], int]:
    """Shrink ``found``'s program over the wire: each round runs the candidates
    (:func:`candidates`) up to ``pool.n`` at a time and keeps the first, in order,
    that breaks the same requirement; until none does or ``budget`` runs are spent.
    Returns every violation it kept, ``found`` first and the smallest last, and the
    runs it took."""
    kept, spent = [found], 0
    while spent < budget:
        tried = list(_take(candidates(kept[-1].program), budget - spent))
        if not tried:
            break
        better = None
        breaks = functools.partial(_same, found=kept[-1])
        for start in range(0, len(tried), pool.n):
            batch = tried[start:start + pool.n]
            outs = pool.run([make(p, "shrink") for p in batch], stop=breaks)
            spent += sum(1 for o in outs if o is not None)
            hit = next((o for o in outs if o is not None and breaks(o)), None)
            if hit is not None:
                better = hit.found
                break
        if better is None:
            break
        kept.append(better)
    return kept, spent


def confirm(pool: Pool, make: Callable[[list[str], str], Job], kept: Sequence[Found],
            times: int = REPLAYS, tries: int = CONFIRM_TRIES) -> tuple[Found, int]:
    """The program to report, of the ``kept`` ones of a shrink (smallest last), and
    how many of ``times`` replays broke its requirement again: the smallest that
    every replay broke, of the last ``tries``; when none of those, the one most
    replays broke (the smaller of equals). One run decides that a candidate is
    kept, and cutting a step can leave a program that breaks the requirement only
    when timing helps (a wait that let the client reach the fault, gone): then the
    program before it, which did not need that help, is the counterexample."""
    best: tuple[Found, int] | None = None
    for f in list(reversed(kept))[:max(1, tries)]:
        n = replay(pool, make, f, times)
        if n == times:
            return f, n
        if best is None or n > best[1]:
            best = (f, n)
    assert best is not None
    return best


def _same(o: Outcome, found: Found) -> bool:
    return o.found is not None and o.found.requirement == found.requirement


def _take(it: Iterable[list[str]], n: int) -> Iterator[list[str]]:
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x


def replay(pool: Pool, make: Callable[[list[str], str], Job], found: Found,
           times: int = REPLAYS) -> int:
    """How many of ``times`` runs of ``found``'s program broke its requirement again."""
    outs = pool.run([make(found.program, "replay") for _ in range(times)],
                    stop=lambda o: False)
    return sum(1 for o in outs if o is not None and _same(o, found))
