"""The wire suite as jobs: calibrated speed, N at a time with one result, failures
shrunk over the wire and replayed, and runs too noisy to judge timing said so.

Real runs: real servers on loopback, the reference client as a process."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from sephb.conformance.suite import program_length
from sephb.conformance.suite._jobs import (
    Found,
    Job,
    Outcome,
    Pool,
    candidates,
    confirm,
    shard_seed,
)
from sephb.conformance.suite._machine import Coverage
from sephb.conformance.suite._timing import (
    MIN_BUDGET_S,
    TOLERANCE_SHARE,
    JitterMonitor,
    calibrate,
    pause,
    resume,
    scale_for,
)
from sephb.conformance.suite._wire_run import (
    WIRE_TOLERANCE_MS,
    _inconclusive,
    _Merged,
    run_wire,
)
from sephb.conformance.suite.report import write_report
from sephb.conformance.suite.results import Failure, Status, SuiteResult
from sephb.model.interpretations import get
from sephb.model.protocol import SESSION_LIMIT_MS

REFERENCE = (f"{sys.executable} -m sephb.conformance.cli client --sylink {{sylink}} "
             f"--state-dir {{state_dir}} --time-scale {{time_scale}}")


# --- speed, measured ------------------------------------------------------------------


def test_the_scale_keeps_the_tolerance_a_third_of_the_session_limit() -> None:
    assert scale_for(0.02) == 0.002 and scale_for(0.03) == 0.003
    assert scale_for(0.1) == 0.01  # the old default budget gives the old default scale
    assert WIRE_TOLERANCE_MS == SESSION_LIMIT_MS * TOLERANCE_SHARE == 10_000


def test_calibration_measures_this_machine() -> None:
    c = calibrate(0.05)
    assert c.samples > 5 and 0 <= c.p50_ms <= c.p99_ms <= c.max_ms
    assert c.budget_s >= MIN_BUDGET_S and c.time_scale == scale_for(c.budget_s)
    assert f"time scale {c.time_scale:g}" in c.text()


def test_the_monitor_counts_late_samples_but_not_untimed_ones() -> None:
    resume()  # (a wire case run earlier in this process ends paused)
    with JitterMonitor(budget_ms=0.0) as m:  # every sample is over a zero budget
        import time

        time.sleep(0.05)
    assert m.samples > 5 and m.over == m.samples
    with JitterMonitor(budget_ms=0.0) as m:
        pause()  # between cases: nothing is timed
        time.sleep(0.05)
        resume()
    assert m.over <= 1  # at most the sample the pause began in


# --- shrinking ---------------------------------------------------------------------------


def test_candidates_cut_the_middle_biggest_chunks_first() -> None:
    prog = ["state.start(mode=Mode.PULL)", "a", "b", "c", "d", "state.teardown()"]
    cands = list(candidates(prog))
    assert cands[0] == [prog[0], "c", "d", prog[-1]]  # half of it gone
    assert all(c[0] == prog[0] and c[-1] == prog[-1] for c in cands)
    assert [prog[0], "a", "b", "c", prog[-1]] in cands  # one step at a time, last
    assert list(candidates(prog[:1] + prog[-1:])) == []  # nothing to cut


def test_candidates_cut_the_steps_before_the_start_but_keep_it() -> None:
    start, end = "state.start(mode=Mode.PULL)", "state.teardown()"
    prog = ["f1", "f2", start, "a", end]
    cands = list(candidates(prog))
    assert cands[0] == [start, "a", end]  # the first half (both faults) gone
    assert all(start in c and c[-1] == end for c in cands)
    assert ["f1", start, "a", end] in cands and ["f1", "f2", start, end] in cands


class _ReplayPool(Pool):
    """A pool whose runs are not cases: a program of ``n`` steps breaks its
    requirement in the replays ``hits[n]`` says (in turn), so the choice of
    :func:`confirm` is seen alone."""

    def __init__(self, hits: dict[int, list[bool]]) -> None:
        super().__init__(1)
        self.hits = {n: iter(h) for n, h in hits.items()}
        self.replayed: list[int] = []

    def run(self, jobs: Sequence[Job], *, stop: Callable[[Outcome], bool] = lambda o: False,
            each: Callable[[int, Outcome], None] | None = None) -> list[Outcome | None]:
        outs: list[Outcome | None] = []
        for job in jobs:
            n = program_length(job.program)
            self.replayed.append(n)
            o = Outcome({}, {}, {})
            if next(self.hits[n]):
                o.found = _found(n)
            outs.append(o)
        return outs


def _found(n: int) -> Found:
    """A violation whose program is ``n`` steps long (the start is one)."""
    body = [f"state.wait(dt={i})" for i in range(n - 1)]
    return Found("REQ-7-PULL", "late", [], None, None,
                 ["state.start(mode=Mode.PULL)", *body, "state.teardown()"], [])


def _make(program: list[str], found_by: str) -> Job:
    return Job("seed", "client", 0.003, 10_000, 3.0, 0.5, 7, 1, "program",
               program=program, found_by=found_by)


def test_a_shrunk_program_that_does_not_always_reproduce_gives_way_to_its_parent(
        ) -> None:
    kept = [_found(7), _found(4), _found(2)]  # as a shrink kept them
    # the 2-step program breaks it 2 times in 3, the 4-step one every time
    pool = _ReplayPool({2: [True, False, True], 4: [True] * 3, 7: [True] * 3})
    chosen, n = confirm(pool, _make, kept, times=3)
    assert (program_length(chosen.program), n) == (4, 3)
    assert pool.replayed == [2] * 3 + [4] * 3  # the 7-step one was not needed
    # none reproduces every time: the one that did most often, the smaller of equals
    pool = _ReplayPool({2: [True, False, False], 4: [True, True, False],
                        7: [True, True, False]})
    chosen, n = confirm(pool, _make, kept, times=3)
    assert (program_length(chosen.program), n) == (4, 2)
    # at most `tries` programs are replayed, the smallest first
    pool = _ReplayPool({2: [False] * 3, 4: [False] * 3, 7: [True] * 3})
    chosen, n = confirm(pool, _make, kept, times=3, tries=2)
    assert (program_length(chosen.program), n) == (2, 0)
    assert pool.replayed == [2] * 3 + [4] * 3


def test_shards_are_a_fixed_function_of_the_seed() -> None:
    assert [shard_seed(7, i) for i in range(3)] == [shard_seed(7, i) for i in range(3)]
    assert len({shard_seed(7, i) for i in range(100)}) == 100


# --- the verdict when timing cannot be trusted ------------------------------------------


def _failure(timing: bool, reproduced: int) -> Failure:
    return Failure("REQ-7-PULL", "late", ["state.start(mode=Mode.PULL)"], [], "",
                   timing=timing, replays=3, reproduced=reproduced)


def test_noise_voids_only_what_rests_on_timing() -> None:
    quiet = _Merged(Coverage({}), samples=10_000, over=5, late=[45.0])
    busy = _Merged(Coverage({}), samples=10_000, over=50, late=[45.0])
    assert "too busy" in _inconclusive(busy, 30, None)
    assert _inconclusive(quiet, 30, None) == ""  # a hiccup while nothing failed
    assert "may be noise" in _inconclusive(quiet, 30, _failure(True, 1))
    assert _inconclusive(quiet, 30, _failure(True, 3)) == ""  # it reproduced
    calm = _Merged(Coverage({}), samples=10_000, over=0, late=[5.0])
    # within the budget, but one replay in three: a timing verdict needs them all
    assert "only 1 of 3 replays" in _inconclusive(calm, 30, _failure(True, 1))
    assert "none of 3 replays" in _inconclusive(calm, 30, _failure(True, 0))
    assert _inconclusive(quiet, 30, _failure(False, 0)) == ""  # not about timing
    base = SuiteResult("c", "wire", "seed", "ci", 0, 1, 1, 1.0, {}, [], [])
    timing = SuiteResult("c", "wire", "seed", "ci", 0, 1, 1, 1.0, {}, [],
                         [_failure(True, 1)], inconclusive="noise")
    data = SuiteResult("c", "wire", "seed", "ci", 0, 1, 1, 1.0, {}, [],
                       [_failure(False, 1)], inconclusive="noise")
    assert (base.verdict, base.exit_status) == ("CONFORMANT", 0)
    assert (timing.verdict, timing.exit_status) == ("INCONCLUSIVE", 4)
    assert (data.verdict, data.exit_status) == ("NON-CONFORMANT", 1)


def test_a_run_noisier_than_its_budget_is_inconclusive_in_every_output(
        tmp_path: Path) -> None:
    # A tolerance of 1 model ms is a budget of microseconds: every lateness sample
    # of the run is over it.
    result = run_wire(get("seed"), REFERENCE, max_examples=1, steps=2, directed=False,
                      probes=False, tolerance_ms=1, jobs=1, replays=1)
    assert result.verdict == "INCONCLUSIVE", (result.verdict, result.failures)
    assert result.exit_status == 4 and "too busy" in result.inconclusive
    assert all(f.timing for f in result.failures)
    written = write_report(result, tmp_path)
    for name in ("index.html", "report.md", "junit.xml", "result.json"):
        text = written[name].read_text()
        assert "INCONCLUSIVE" in text, name
    assert "sephb.seed.timing" in written["junit.xml"].read_text()


# --- N at a time, one result ----------------------------------------------------------


def test_one_job_and_three_give_the_same_result() -> None:
    # (with the directed cases: which row explains a random case's records can
    # depend on timing, but the top-ups then cover every row either way)
    runs = [run_wire(get("seed"), REFERENCE, seed=11, max_examples=8, steps=5,
                     probes=False, jobs=n) for n in (1, 3)]
    one, three = runs
    assert one.verdict == three.verdict == "CONFORMANT"
    assert one.failures == three.failures == []
    # (how many top-ups ran can differ: it follows the rows the random cases'
    # records showed, which timing can change -- with one job as with three)
    assert one.cases == three.cases == 8
    covered = [{n for n, c in r.transitions.items() if c} for r in runs]
    assert covered[0] == covered[1]
    assert [(r.id, r.status) for r in one.requirements] == \
        [(r.id, r.status) for r in three.requirements]
    assert one.settings["jobs"] == "1" and three.settings["jobs"] == "3"


@pytest.mark.parametrize("fault", ["sensors-before-logs", "stays-connected-in-pull"])
def test_a_failure_is_shrunk_over_the_wire_and_replayed(fault: str) -> None:
    result = run_wire(get("seed"), REFERENCE + f" --fault {fault}", seed=5,
                      max_examples=4, steps=10, directed=False, probes=False, jobs=2)
    assert result.failures, f"{fault} survived"
    f = result.failures[0]
    assert any(s.startswith("state.start(") for s in f.steps)
    assert f.steps[-1] == "state.teardown()"
    assert program_length(f.steps) <= min(6, f.original_steps)
    assert f.replays == 3 and f.reproduced == 3, f.reproducibility
    assert f.reproducibility == "reproducible (3/3 replays)"
    assert f.found_after_s > 0
    assert next(r for r in result.requirements
                if r.id == f.requirement).status is Status.FAILED


def test_a_client_stuck_in_a_check_in_that_began_during_the_drain_is_caught() -> None:
    # The stalled /urls request of a client that never gives up opens on the next
    # heartbeat; whether that came before the case's end or during its drain must
    # not decide the verdict (before, replays of this program caught it 0-3 times
    # in 3, and the run was INCONCLUSIVE).
    from sephb.conformance.suite._jobs import Job, perform
    from sephb.conformance.suite._wire_world import (
        START_ALLOWANCE_S,
        STARTUP_S,
        run_octet,
    )

    program = ["state.start(mode=Mode.PULL)",
               "state.fault(m=0, fault=Fault.STALL, path='/urls')",
               "state.publish()", "state.wait(dt=None)", "state.teardown()"]
    cmd = REFERENCE + " --fault waits-forever-after-session"
    scale = 0.003
    found = []
    for lane in range(3):
        job = Job("seed", cmd, scale, WIRE_TOLERANCE_MS, STARTUP_S, START_ALLOWANCE_S,
                  run_octet(),
                  lane + 1, "program", program=program, found_by="replay")
        out = perform(job)
        found.append(out.found.requirement if out.found else None)
    assert found == ["REQ-X-ABORT"] * 3


def _late_once(tmp_path: Path) -> str:
    """A client command whose first process checks in late and whose later ones are
    the reference: a timing deviation that does not recur."""
    tmp_path.mkdir()
    marker = tmp_path / "started"
    script = tmp_path / "late-once.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"if mkdir {marker} 2>/dev/null; then exec \"$@\" --fault checks-in-late; fi\n"
        "exec \"$@\"\n")
    script.chmod(0o755)
    return f"{script} {REFERENCE}"


def test_a_timing_finding_that_does_not_recur_is_set_aside_and_said(
        tmp_path: Path) -> None:
    from sephb.conformance.suite._jobs import Job, perform
    from sephb.conformance.suite._wire_world import (
        START_ALLOWANCE_S,
        STARTUP_S,
        run_octet,
    )

    program = ["state.start(mode=Mode.PULL)", "state.wait(dt=None)",
               "state.wait(dt=None)", "state.teardown()"]

    def job(cmd: str, found_by: str) -> Job:
        return Job("seed", cmd, 0.003, WIRE_TOLERANCE_MS, STARTUP_S,
                   START_ALLOWANCE_S, run_octet(), 1, "program", program=program,
                   found_by=found_by)

    # A case of the run: the late first process shows REQ-7-PULL broken; the case
    # runs again with an on-time client, passes, and the finding is set aside.
    out = perform(job(_late_once(tmp_path / "a"), "directed"))
    assert out.found is None and out.set_aside == 1
    assert any("set aside: REQ-7-PULL" in n for n in out.notes), out.notes
    # A replay is itself a second look: its finding stands.
    out = perform(job(_late_once(tmp_path / "b"), "replay"))
    assert out.found is not None and out.found.requirement == "REQ-7-PULL"
    assert out.set_aside == 0
    # A client late every time is late: the second look finds it again.
    out = perform(job(REFERENCE + " --fault checks-in-late", "directed"))
    assert out.found is not None and out.found.requirement == "REQ-7-PULL"
    assert out.set_aside == 0


def test_too_many_findings_set_aside_make_the_run_inconclusive() -> None:
    from sephb.conformance.suite._wire_run import MIN_SET_ASIDE

    calm = _Merged(Coverage({}), samples=10_000, over=0, late=[5.0],
                   set_aside=MIN_SET_ASIDE)
    assert _inconclusive(calm, 30, None) == ""
    calm.set_aside += 1
    assert "did not recur" in _inconclusive(calm, 30, None)
    # a tenth of the run's cases may be set aside
    calm.coverage.cases, calm.coverage.directed = 32, 8
    assert calm.max_set_aside() == 4 and _inconclusive(calm, 30, None) == ""
