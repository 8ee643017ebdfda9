"""What every format of a report says, worked out once from a result: the verdict,
the reliability claim, the changes since a baseline, the failure files and texts."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from sephb.conformance.suite.results import (
    Failure,
    Status,
    SuiteResult,
    Tally,
    cases_text,
    replay_command,
    shrink_text,
)
from sephb.conformance.traces.trace import header_record
from sephb.model.checker import Checker
from sephb.model.errors import UsageError
from sephb.model.interpretations import INTERPRETATIONS, Interpretation
from sephb.model.protocol import REST_STATES

#: The reliability a conformant run may claim, and at which confidence.
RELIABILITY_TARGET: Final = 0.999
CONFIDENCE: Final = 0.95

#: Names of the files written (relative to the output directory).
HTML_FILE: Final = "index.html"
MARKDOWN_FILE: Final = "report.md"
JUNIT_FILE: Final = "junit.xml"
JSON_FILE: Final = "result.json"
COVERAGE_FILE: Final = "coverage.svg"
#: The same coverage in the full view (one arrow per row), linked from the page.
COVERAGE_FULL_FILE: Final = "coverage-full.svg"
FAILURES_DIR: Final = "failures"


def trace_file(n: int) -> str:
    """The NDJSON trace of failure ``n`` (1-based), relative to the output directory."""
    return f"{FAILURES_DIR}/failure-{n}.ndjson"


def replay_file(n: int) -> str:
    """The pytest replay of failure ``n`` (1-based), relative to the output directory."""
    return f"{FAILURES_DIR}/test_replay_{n}.py"


# --- reliability -----------------------------------------------------------------


@dataclass(frozen=True)
class Reliability:
    """What ``n`` clean cases say about the probability that a case passes."""

    #: Clean cases: cases of a conformant run (none of a failing one).
    cases: int
    #: Exact one-sided lower bound at :data:`CONFIDENCE`: ``(1 - C) ** (1 / n)``.
    bound: float
    #: The rule of three's approximation of it, ``1 - 3 / n``.
    rule_of_three: float
    #: Cases needed for the claim (:func:`min_clean_cases`).
    needed: int
    #: Was the run conformant (else it has no clean cases, whatever it ran)?
    conformant: bool = True

    @property
    def earned(self) -> bool:
        return self.cases > 0 and self.bound >= RELIABILITY_TARGET

    @property
    def statement(self) -> str | None:
        """The claim, when the cases earn it."""
        if not self.earned:
            return None
        return f"{RELIABILITY_TARGET:g} reliability at {CONFIDENCE:.0%} confidence"


def min_clean_cases(
    target: float = RELIABILITY_TARGET, confidence: float = CONFIDENCE
) -> int:
    """The fewest clean cases whose bound reaches ``target``: the least ``n`` with
    ``target ** n <= 1 - confidence`` (2,995 for 0.999 at 95 %)."""
    n = math.ceil(math.log(1 - confidence) / math.log(target))
    # Guard the float division either way: the definition, not the quotient, decides.
    while n > 1 and target ** (n - 1) <= 1 - confidence:
        n -= 1
    while target**n > 1 - confidence:
        n += 1
    return n


def reliability(result: SuiteResult) -> Reliability:
    """The reliability bound a run supports (0 clean cases unless it is conformant)."""
    n = result.cases if result.conformant else 0
    bound = (1 - CONFIDENCE) ** (1 / n) if n else 0.0
    return Reliability(n, bound, max(0.0, 1 - 3 / n) if n else 0.0, min_clean_cases(),
                       result.conformant)


# --- the facts every format shows -------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    result: SuiteResult
    reliability: Reliability
    #: Rows of the run's interpretation, in table order, with their counts (rows the
    #: run did not report count 0); empty when the interpretation is unknown.
    rows: list[tuple[str, str, int]]  # (row name, requirement id, count)
    #: Row names never exercised: those of ``rows`` with count 0 and any other name
    #: the run reported with 0.
    uncovered: list[str]
    #: Notes about the data itself (unknown row names, rows without a count).
    notes: list[str]
    #: Requirement id -> the 1-based numbers of its failures.
    failures_of: dict[str, list[int]]
    #: The coverage diagram (statechart view), or why there is none.
    svg: bytes | None
    svg_problem: str | None
    #: The counts every format prints.
    tally: Tally
    #: Where the failure files are, as the reader should open them (the report
    #: directory as given, e.g. ``out/r/``), or None when none were written: the
    #: JUnit file then carries each failure's trace inline.
    files: str | None = None
    #: What changed per requirement since a baseline run (None: no baseline).
    changes: list[Change] | None = None
    #: The coverage diagram in the full view (one arrow per row).
    svg_full: bytes | None = None
    #: What the diagrams highlight: the first failure's last check-in, in words.
    path_caption: str | None = None

    @property
    def verdict(self) -> str:
        return self.result.verdict


def _facts(result: SuiteResult, *, draw: bool = True) -> _Facts:
    notes: list[str] = []
    interp = INTERPRETATIONS.get(result.interpretation)
    rows: list[tuple[str, str, int]] = []
    known: dict[str, int] = {}
    if interp is None:
        notes.append(f"interpretation {result.interpretation!r} is not one this sephb "
                     "knows: no state diagram, coverage as the run reported it")
    else:
        names = {r.name for r in interp.rows()}
        rows = [(r.name, r.requirement, result.transitions.get(r.name, 0))
                for r in interp.rows()]
        known = {k: v for k, v in result.transitions.items() if k in names}
        missing = [r.name for r in interp.rows() if r.name not in result.transitions]
        if missing:
            notes.append(f"the run reported no count for {len(missing)} row(s) of the "
                         f"table; drawn as not exercised: {', '.join(missing)}")
        foreign = sorted(set(result.transitions) - names)
        if foreign:
            notes.append(f"the run counted {len(foreign)} name(s) that are not rows of "
                         f"the {interp.name!r} table: {', '.join(foreign)}")
    uncovered = [name for name, _, n in rows if n == 0 and name not in result.skipped]
    uncovered += [u for u in result.uncovered if u not in uncovered]

    failures_of: dict[str, list[int]] = {}
    for i, f in enumerate(result.failures, 1):
        failures_of.setdefault(f.requirement, []).append(i)

    svg: bytes | None = None
    svg_full: bytes | None = None
    problem: str | None = None
    path: list[tuple[str, str, str]] = []
    caption: str | None = None
    if interp is not None and result.failures:
        path = failure_path(interp, result.failures[0], result.adapter)
        caption = (f"the check-in of failure 1 ({result.failures[0].requirement}) up to "
                   "its violation") if path else None
    if interp is not None and draw:
        from sephb.diagrams import render  # graphviz and transitions load here

        try:
            svg, svg_full = (render(interp.name, "svg", path, counts=known, view=view,
                                    caption=caption) for view in ("statechart", "full"))
        except UsageError as exc:  # e.g. Graphviz's dot is missing
            problem = str(exc)
    elif interp is None:
        problem = notes[0]
    return _Facts(result, reliability(result), rows, uncovered, notes, failures_of, svg,
                  problem, Tally.of(result), svg_full=svg_full, path_caption=caption)


def failure_path(interp: Interpretation, failure: Failure, adapter: str
                 ) -> list[tuple[str, str, str]]:
    """The rows of the failure's last check-in before its violation, as a diagram
    highlights them ``(source, dest, row)``: the model's run that explains its server
    records (:meth:`~sephb.model.checker.Checker.run`, with what the adapter's
    servers cannot see hidden, as the oracle reads them), from the last row that left
    a rest state. Empty when no record of it explains a row."""
    from sephb.conformance.suite._remote import WIRE_HIDDEN  # (loads the site)
    from sephb.conformance.traces.properties import HIDDEN_IN_PROCESS

    checker = Checker(interp, hidden=WIRE_HIDDEN if adapter == "wire"
                      else HIDDEN_IN_PROCESS)
    rows = {r.name: r for r in interp.rows()}
    for i, rec in enumerate(failure.trace):
        if failure.record is not None and i >= failure.record:
            break
        if rec.get("by", "server") != "server":  # the client's own view of it
            continue
        try:
            if checker.feed(str(rec.get("event")), 0, _flag(rec.get("changed")),
                            _text(rec.get("source"))) is not None:
                break
        except ValueError:  # a record the checker does not read (environment, sizes)
            continue
    taken = [rows[n] for n in checker.run() if n in rows]
    starts = [i for i, r in enumerate(taken) if r.source in REST_STATES]
    last = taken[starts[-1]:] if starts else taken
    return [(r.source.value, r.dest.value, r.name) for r in last]


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None




def _prefix(outdir: Path) -> str:
    text = str(outdir)
    return "" if text in ("", ".") else text.rstrip("/") + "/"


def _traced(result: SuiteResult, failure: Failure) -> list[Mapping[str, object]]:
    """A failure's records as a trace file: the header saying how they were recorded
    (the time scale), then the records."""
    scale = result.settings.get("time scale", "1" if result.adapter == "in-process"
                                else "")
    try:
        value = float(scale)
        return [header_record(value, "suite"), *failure.trace]
    except ValueError:  # a result without a usable scale: the records alone
        return list(failure.trace)


def _ndjson(records: Sequence[Mapping[str, object]]) -> bytes:
    # msgspec, like the trace writer: the same bytes a recorder would have written.
    return b"".join(msgspec.json.encode(r) + b"\n" for r in records)


# --- baseline ----------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What became of one requirement between a baseline run and this one."""

    requirement: str
    before: Status | None
    after: Status | None

    @property
    def regression(self) -> bool:
        """Worse than before: passed (or absent) then, failing the run now."""
        return self.after is not None and self.after.fails_run and (
            self.before is None or not self.before.fails_run)

    @property
    def fixed(self) -> bool:
        return self.before is not None and self.before.fails_run and (
            self.after is None or not self.after.fails_run)

    def text(self) -> str:
        def word(st: Status | None) -> str:
            return "absent" if st is None else st.label

        kind = ("regression" if self.regression else "fixed" if self.fixed
                else "changed")
        return f"{kind}: {self.requirement}: {word(self.before)} → {word(self.after)}"


def _changes(baseline: SuiteResult | None, result: SuiteResult) -> list[Change] | None:
    """Per-requirement changes from ``baseline`` (regressions first, then fixes, then
    the rest); None without a baseline."""
    if baseline is None:
        return None
    before = {r.id: r.status for r in baseline.requirements}
    after = {r.id: r.status for r in result.requirements}
    out = [Change(rid, before.get(rid), after.get(rid))
           for rid in sorted(before.keys() | after.keys())
           if before.get(rid) is not after.get(rid)]
    out.sort(key=lambda c: (not c.regression, not c.fixed, c.requirement))
    return out


def compare(baseline: SuiteResult, result: SuiteResult) -> list[Change]:
    """What changed per requirement from ``baseline`` to ``result``, regressions
    first (the CLI's ``--baseline``)."""
    return _changes(baseline, result) or []


# --- formatting helpers ------------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _seed(seed: int | None) -> str:
    return "none" if seed is None else str(seed)


def _cases(res: SuiteResult) -> str:
    return cases_text(res)


def _anchor(text: str) -> str:
    """An HTML id from any string (requirement ids are already plain)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _marked(f: Failure) -> str:
    """Where the failure is in its trace: the record number the message, the
    sequence diagram and the trace file share."""
    if f.record is None or not 0 <= f.record < len(f.trace):
        return "no record broke it: time passed without the move the model requires"
    rec = f.trace[f.record]
    where = f" on {rec['server']}" if rec.get("server") else ""
    return f"record {f.record + 1}: {rec.get('event')} at t={rec.get('t')} ms{where}"


def _expected_text(f: Failure) -> str | None:
    if f.expected is None:
        return None
    return ", ".join(f.expected) if f.expected else "nothing (the client should wait)"


def _program(res: SuiteResult, f: Failure) -> list[tuple[str, str]]:
    """The shrunk program as (domain words, the step as the replay runs it)."""
    from sephb.conformance.suite._narrate import narrate_program

    return list(zip(narrate_program(f.steps, res.interpretation), f.steps, strict=True))


def _site(f: Failure) -> str:
    """The site of a failure's case, in words."""
    from sephb.conformance.suite._narrate import site_of

    return site_of(f.steps).words()


def _failure_text(n: int, f: Failure, res: SuiteResult, files: str | None) -> str:
    """A failure as plain text (JUnit's failure body): self-contained when no files
    were written (``files`` None), else naming them."""
    lines = [f"Failure {n}: {f.requirement}: {f.message}",
             f"Site: {_site(f)}",
             f"Where: {_marked(f)}"]
    expected = _expected_text(f)
    if expected is not None:
        lines.append(f"Expected: {expected}")
    lines.append(f"Found by: {f.found_by} test case"
                 + (f" (seed {f.seed})" if f.seed is not None else ""))
    if shrink_text(f):
        lines.append(f"Shrinking and replays: {shrink_text(f)}")
    lines.append("What happened (shrunk):")
    lines += [f"  {i}. {words}" for i, (words, _) in enumerate(_program(res, f), 1)]
    lines.append(f"Run again: {replay_command(res)}")
    if files is not None:
        lines.append(f"Trace: {files}{trace_file(n)} ({len(f.trace)} records)")
        lines.append(f"Replay: pytest {files}{replay_file(n)}")
    else:
        lines.append(f"Trace ({len(f.trace)} records, NDJSON):")
        lines += [msgspec.json.encode(r).decode() for r in f.trace[-_INLINE_RECORDS:]]
        if len(f.trace) > _INLINE_RECORDS:
            lines.append(f"(the first {len(f.trace) - _INLINE_RECORDS} records left "
                         "out; --report writes the whole trace)")
    return "\n".join(lines)


#: Records of a failure's trace a stand-alone JUnit file carries (its last ones).
_INLINE_RECORDS: Final = 200




def _reliability_text(rel: Reliability, *, markdown: bool = False) -> str:
    """The reliability paragraph, as plain text (the page formats its own)."""
    if rel.statement:
        claim = f"**{rel.statement}**" if markdown else rel.statement
        return (f"{claim}: {rel.cases:,} clean cases; lower bound on the pass "
                f"probability {rel.bound:.6f} (exact, {1 - CONFIDENCE:g}^(1/n)); "
                f"rule of three 1 − 3/n = {rel.rule_of_three:.6f}.")
    if rel.cases:
        return (f"Reliability bound from {rel.cases:,} clean cases: {rel.bound:.6f} at "
                f"{CONFIDENCE:.0%} confidence (rule of three 1 − 3/n = "
                f"{rel.rule_of_three:.6f}); a claim of {RELIABILITY_TARGET:g} needs "
                f"{rel.needed:,} clean cases.")
    if rel.conformant:
        return "No reliability claim: the run has no cases."
    return ("No reliability claim: the run is not conformant, so it has no clean "
            "cases to count.")
