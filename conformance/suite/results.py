"""What a conformance run found: the data every report is written from.

The suite (:mod:`sephb.conformance.suite`) fills a :class:`SuiteResult`; the reports
(:mod:`sephb.conformance.suite.report`: the CLI's lines, HTML, Markdown, JUnit XML) only
read it, through :class:`Tally` for the counts, so that no two outputs of one run can
disagree. Keeping the two apart also lets a report be re-rendered from a saved result
(``result.json``) without running anything.

Verdicts follow the vocabulary of conformance suites (h2spec, Autobahn, TTCN-3): a
requirement or a transition **passed**, **failed**, was **not exercised** (the run
says nothing about it), is **skipped** (not observable through this adapter, with the
reason) or was **not reached** (the run stopped at an earlier failure). Only
``FAILED`` and, by the coverage gate, ``NOT_EXERCISED`` fail a run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

#: The version of ``result.json``'s shape; 1 had a ``NOT_COVERED`` status instead of
#: the three kinds of "not judged" below.
SCHEMA: int = 2


class Status(enum.Enum):
    """A requirement's (or a transition's) verdict in one run."""

    #: Exercised, never violated.
    PASSED = "PASSED"
    #: Violated at least once (see the failures).
    FAILED = "FAILED"
    #: Never exercised although the run finished: the run says nothing about it, and
    #: fails for it (the coverage gate).
    NOT_EXERCISED = "NOT_EXERCISED"
    #: Not observable through this adapter (the reason says why); not held against
    #: the client.
    SKIPPED = "SKIPPED"
    #: Not exercised because the run stopped at an earlier failure.
    NOT_REACHED = "NOT_REACHED"

    @property
    def fails_run(self) -> bool:
        return self in (Status.FAILED, Status.NOT_EXERCISED)

    @property
    def label(self) -> str:
        """Lower case words, as the CLI and the reports print them."""
        return self.value.lower().replace("_", " ")


class RequirementResult(msgspec.Struct, frozen=True):
    id: str
    status: Status
    #: The requirement's text (the seed sentence or the documented rule).
    text: str
    #: How often a transition or property carrying this id was exercised.
    hits: int
    #: Why it is SKIPPED or NOT_REACHED (empty otherwise).
    reason: str = ""
    #: Wall seconds of the test cases that exercised it (cases overlap: one case
    #: exercises many requirements).
    seconds: float = 0.0


class Failure(msgspec.Struct, frozen=True):
    """One violation, with the shrunk run that shows it."""

    requirement: str
    #: One line: what the client did, what the model allowed.
    message: str
    #: The shrunk program: one readable line per step (environment actions and the
    #: client's moves), as Hypothesis printed it.
    steps: list[str]
    #: The observable trace of the shrunk run, trace-format records as dicts.
    trace: list[dict[str, object]]
    #: A self-contained pytest file that replays the shrunk run.
    replay: str
    #: The seed of the run that found it (reproduce with ``--seed``); None for a
    #: directed case, which draws nothing.
    seed: int | None = None
    #: The 0-based index in ``trace`` of the record that broke the requirement, when
    #: one did (a deadline may be broken by time alone, at the end of the trace).
    record: int | None = None
    #: Which test case found it: "random" (Hypothesis), "directed" (a top-up case
    #: for an uncovered row) or "probe:<name>" (a deadline probe).
    found_by: str = "random"
    #: What the model allowed at ``record`` instead, when a transition was broken.
    expected: list[str] | None = None
    #: It rests on how late or early something happened (a deadline, a limit):
    #: scheduling noise beyond the run's jitter budget can fake it.
    timing: bool = False
    #: Over the wire: steps of the program that first showed it (``steps`` is the
    #: shrunk one; 0: not shrunk by the suite), and how many of ``replays`` runs of
    #: the shrunk program broke the requirement again (0 replays: not replayed --
    #: in process Hypothesis replays every shrunk program itself).
    original_steps: int = 0
    replays: int = 0
    reproduced: int = 0
    #: Over the wire: wall seconds from the run's start until the case that found
    #: it ended (before shrinking and replays); 0 in process.
    found_after_s: float = 0.0

    @property
    def reproducibility(self) -> str:
        """``reproducible (3/3)``, ``flaky (1/3)``, or empty when not replayed."""
        if not self.replays:
            return ""
        kind = "reproducible" if self.reproduced == self.replays else "flaky"
        return f"{kind} ({self.reproduced}/{self.replays} replays)"


class SuiteResult(msgspec.Struct):
    """Everything one ``sephb conform`` run found."""

    #: "reference", a fault name, or the --client-cmd.
    client: str
    #: "in-process" or "wire".
    adapter: str
    interpretation: str
    profile: str
    #: The seed every random choice of the run came from (``--seed`` replays it).
    seed: int | None
    #: Hypothesis test cases run (what ``--max-examples`` counts), and the rule
    #: steps over all of them (environment actions and waits).
    cases: int
    steps: int
    duration_s: float
    #: Times each row of the interpretation's table was exercised, by Row.name.
    transitions: dict[str, int]
    requirements: list[RequirementResult]
    failures: list[Failure]
    #: Warnings that are not violations (e.g. heartbeat sizes outside the typical range).
    warnings: list[str] = msgspec.field(default_factory=list)
    #: Directed cases run on top of the Hypothesis cases (top-ups for rows random
    #: search missed, and the deadline probes).
    directed: int = 0
    #: Cases Hypothesis discarded (their random data ran out before the program
    #: ended; their steps ran): not counted in ``cases``.
    discarded: int = 0
    #: Records the servers (or the in-process world) made over the run.
    records: int = 0
    #: Rows not observable through this adapter, with the reason (never counted
    #: against the client).
    skipped: dict[str, str] = msgspec.field(default_factory=dict)
    #: Wall seconds of the cases that exercised each row.
    row_seconds: dict[str, float] = msgspec.field(default_factory=dict)
    #: Settings of the run that change what it can see: time scale, tolerance,
    #: start-up wait (over the wire), as strings for the reports.
    settings: dict[str, str] = msgspec.field(default_factory=dict)
    #: The command line that replays the run.
    replay: str = ""
    #: Why the client could not be tested at all (it exited, or never made a
    #: request): the verdict is then ERROR, and nothing was judged.
    error: str = ""
    #: Why the run's timing cannot be trusted (over the wire: scheduling was later
    #: than the jitter budget its tolerance allows): the verdict is then
    #: INCONCLUSIVE, unless a failure that does not rest on timing was found.
    inconclusive: str = ""
    schema: int = SCHEMA

    def row_status(self, name: str) -> Status:
        if self.transitions.get(name, 0):
            return Status.PASSED
        if name in self.skipped:
            return Status.SKIPPED
        return (Status.NOT_REACHED if self.failures or self.error
                else Status.NOT_EXERCISED)

    @property
    def uncovered(self) -> list[str]:
        """Rows that fail the coverage gate (never exercised, observable, and the
        run did not stop early)."""
        return sorted(n for n in self.transitions
                      if self.row_status(n) is Status.NOT_EXERCISED)

    @property
    def conformant(self) -> bool:
        """No violation, and every observable requirement and row exercised."""
        return (not self.error and not self.inconclusive and not self.failures
                and not self.uncovered
                and not any(r.status.fails_run for r in self.requirements))

    @property
    def verdict(self) -> str:
        """CONFORMANT, NON-CONFORMANT, ERROR (the client could not be tested) or
        INCONCLUSIVE (the run's timing cannot be trusted, and no failure it found
        stands without timing)."""
        if self.error:
            return "ERROR"
        if self.inconclusive and all(f.timing for f in self.failures):
            return "INCONCLUSIVE"
        return "CONFORMANT" if self.conformant else "NON-CONFORMANT"

    @property
    def exit_status(self) -> int:
        """What ``sephb conform`` exits with: 0 conformant, 1 non-conformant, 3
        error, 4 inconclusive (2 is a usage error)."""
        return {"CONFORMANT": 0, "NON-CONFORMANT": 1, "ERROR": 3,
                "INCONCLUSIVE": 4}[self.verdict]


@dataclass(frozen=True)
class Tally:
    """The counts every output prints, worked out once."""

    requirements: dict[Status, int]
    rows: dict[Status, int]

    @staticmethod
    def of(result: SuiteResult) -> Tally:
        reqs = dict.fromkeys(Status, 0)
        for r in result.requirements:
            reqs[r.status] += 1
        rows = dict.fromkeys(Status, 0)
        for name in result.transitions:
            rows[result.row_status(name)] += 1
        return Tally(reqs, rows)

    @staticmethod
    def line(counts: dict[Status, int]) -> str:
        """``13 passed, 1 failed, 2 skipped`` (zero counts left out, but passed)."""
        return ", ".join(f"{n} {s.label}" for s, n in counts.items()
                         if n or s is Status.PASSED)


def cases_text(result: SuiteResult) -> str:
    """``300 random + 6 directed`` (and what Hypothesis discarded), as every output
    says it."""
    text = f"{result.cases:,} random"
    if result.directed:
        text += f" + {result.directed:,} directed"
    if result.discarded:
        text += f" ({result.discarded:,} more discarded: their random data ran out)"
    return text


def shrink_text(f: Failure) -> str:
    """How a failure's program was shrunk and replayed, as every output says it
    (empty in process, where Hypothesis shrinks and replays it itself):
    ``shrunk from 11 to 3 steps over the wire; reproducible (3/3 replays)``."""
    parts = []
    if f.original_steps:
        parts.append(f"shrunk from {f.original_steps} to "
                     f"{sum(1 for s in f.steps if not s.startswith('state.teardown('))} "
                     f"steps over the wire")
    if f.replays:
        parts.append(f.reproducibility)
    if f.timing:
        parts.append("a timing finding")
    return "; ".join(parts)


def dumps(result: SuiteResult) -> bytes:
    """``result.json``: the result, with its verdict and exit status written out (a
    reader need not work them out; :func:`loads` ignores them)."""
    raw = msgspec.to_builtins(result)
    raw["verdict"], raw["exit_status"] = result.verdict, result.exit_status
    return msgspec.json.encode(raw)


def loads(data: bytes) -> SuiteResult:
    """A saved result; one of schema 1 (``NOT_COVERED``) reads as NOT_EXERCISED,
    or NOT_REACHED when that run had failures."""
    raw = msgspec.json.decode(data)
    if isinstance(raw, dict) and raw.get("schema", 1) == 1:
        old = Status.NOT_REACHED.value if raw.get("failures") \
            else Status.NOT_EXERCISED.value
        for r in raw.get("requirements") or []:
            if isinstance(r, dict) and r.get("status") == "NOT_COVERED":
                r["status"] = old
        raw["schema"] = SCHEMA
    return msgspec.convert(raw, type=SuiteResult)


def replay_command(result: SuiteResult) -> str:
    """The command line that runs ``result``'s run again (same seed, same cases)."""
    if result.replay:
        return result.replay
    import shlex

    words = ["sephb", "conform", "-i", result.interpretation, "--profile",
             result.profile]
    if result.adapter == "wire":
        words += ["--client-cmd", result.client]
    elif result.client != "reference":
        words += ["--client", result.client]
    if result.seed is not None:
        words += ["--seed", str(result.seed)]
    return shlex.join(words)
