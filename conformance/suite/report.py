"""Reports of a conformance run: one self-contained HTML page, Markdown, JUnit XML,
and the files that reproduce each failure.

Theory of operation
-------------------
The suite (:mod:`sephb.conformance.suite`) fills a
:class:`~sephb.conformance.suite.results.SuiteResult`; everything here only reads it, so a
report can be written again from a saved ``result.json`` without running anything.
:func:`write_report` first works out, once, what every format says (:class:`_Facts`:
the verdict, the reliability claim, the uncovered rows, file names of the failures)
and each writer then only formats those facts -- the page, the Markdown and the JUnit
file cannot disagree with one another.

The page renders offline and without JavaScript: CSS is inline, the state diagram
(drawn from the transition table by :mod:`sephb.diagrams` with its coverage overlay)
and the sequence diagrams (:mod:`sephb.conformance.suite._seqdiagram`) are inline SVG, and
every link is relative to the output directory. Every string that came from a run
(messages, steps, traces, a foreign client's command line) is escaped for the format
it goes into, and characters XML 1.0 cannot carry are replaced.

The reliability claim is the zero-failure binomial bound: after ``n`` independent
cases without a failure, the probability of failure per case is at most
``p = 1 - (1 - C) ** (1 / n)`` with confidence ``C`` (the one-sided Clopper-Pearson
bound), which the rule of three approximates by ``3 / n`` at 95 %. The claim
"0.999 reliability at 95% confidence" is made when the exact bound reaches the
target, which takes 2,995 clean cases; the rule-of-three figure is shown next to it.
Only a conformant run has clean cases to count.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final
from xml.etree import ElementTree as ET  # writing only: nothing untrusted is parsed

import msgspec

from sephb.conformance.suite._seqdiagram import sequence_mermaid, sequence_svg, xml_safe
from sephb.conformance.suite.results import (
    Failure,
    Status,
    SuiteResult,
    Tally,
    cases_text,
    dumps,
    replay_command,
)
from sephb.conformance.traces.trace import header_record
from sephb.model.errors import UsageError
from sephb.model.interpretations import INTERPRETATIONS

__all__ = [
    "CONFIDENCE",
    "RELIABILITY_TARGET",
    "Reliability",
    "min_clean_cases",
    "reliability",
    "write_junit",
    "write_report",
]

#: The reliability a conformant run may claim, and at which confidence.
RELIABILITY_TARGET: Final = 0.999
CONFIDENCE: Final = 0.95

#: Names of the files written (relative to the output directory).
HTML_FILE: Final = "index.html"
MARKDOWN_FILE: Final = "report.md"
JUNIT_FILE: Final = "junit.xml"
JSON_FILE: Final = "result.json"
COVERAGE_FILE: Final = "coverage.svg"
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
    #: The coverage diagram, or why there is none.
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
    problem: str | None = None
    if interp is not None and draw:
        from sephb.diagrams import render  # graphviz and transitions load here

        try:
            svg = render(interp.name, "svg", counts=known)
        except UsageError as exc:  # e.g. Graphviz's dot is missing
            problem = str(exc)
    elif interp is None:
        problem = notes[0]
    return _Facts(result, reliability(result), rows, uncovered, notes, failures_of, svg,
                  problem, Tally.of(result))


# --- writing ---------------------------------------------------------------------


def write_report(result: SuiteResult, outdir: Path, *,
                 baseline: SuiteResult | None = None) -> dict[str, Path]:
    """Write every report of ``result`` into ``outdir``; return them by relative name.

    Files: ``index.html``, ``report.md``, ``junit.xml``, ``result.json``,
    ``coverage.svg`` (when the diagram could be drawn) and, per failure ``n``,
    ``failures/failure-<n>.ndjson`` and ``failures/test_replay_<n>.py``. Failure files
    (and the drawing) of an earlier report in the same directory are removed, so the
    directory never shows a failure this result does not have. ``baseline``: an
    earlier run's result, to report what changed per requirement.
    """
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"report directory {str(outdir)!r}: {exc.strerror or exc}"
                         ) from None
    facts = dataclasses.replace(_facts(result), files=_prefix(outdir),
                                changes=_changes(baseline, result))
    written: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        path = outdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[name] = path

    fdir = outdir / FAILURES_DIR
    if fdir.is_dir():
        for old in [*fdir.glob("failure-*.ndjson"), *fdir.glob("test_replay_*.py")]:
            old.unlink()
    for i, failure in enumerate(result.failures, 1):
        put(trace_file(i), _ndjson(_traced(result, failure)))
        put(replay_file(i), failure.replay.encode())
    if facts.svg is not None:
        put(COVERAGE_FILE, facts.svg)
    else:  # an older drawing must not pass for this run's
        (outdir / COVERAGE_FILE).unlink(missing_ok=True)
    put(JSON_FILE, dumps(result))
    put(JUNIT_FILE, _junit_bytes(facts))
    put(MARKDOWN_FILE, _markdown(facts).encode())
    put(HTML_FILE, _html(facts).encode())
    return written


def write_junit(result: SuiteResult, path: Path, *, report_dir: Path | None = None,
                baseline: SuiteResult | None = None) -> Path:
    """Write the JUnit XML of ``result`` to ``path`` (the CLI's ``--junit FILE``).
    It names the failure files of ``report_dir`` when a report was written there
    (as paths relative to the working directory); otherwise each failure's trace is
    inline, so that the file stands alone."""
    facts = dataclasses.replace(
        _facts(result, draw=False),
        files=None if report_dir is None else _prefix(report_dir),
        changes=_changes(baseline, result))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_junit_bytes(facts))
    except OSError as exc:
        raise UsageError(f"--junit {str(path)!r}: {exc.strerror or exc}") from None
    return path


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
    from sephb.conformance.suite import narrate

    return [(narrate(step, res.interpretation), step) for step in f.steps]


def _failure_text(n: int, f: Failure, res: SuiteResult, files: str | None) -> str:
    """A failure as plain text (JUnit's failure body): self-contained when no files
    were written (``files`` None), else naming them."""
    lines = [f"Failure {n}: {f.requirement}: {f.message}",
             f"Where: {_marked(f)}"]
    expected = _expected_text(f)
    if expected is not None:
        lines.append(f"Expected: {expected}")
    lines.append(f"Found by: {f.found_by} test case"
                 + (f" (seed {f.seed})" if f.seed is not None else ""))
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


# --- JUnit -------------------------------------------------------------------------

#: The JUnit element of each verdict (PASSED has none); a <failure>'s type is the
#: verdict's name.
_JUNIT_ELEMENT: Final = {Status.FAILED: "failure", Status.NOT_EXERCISED: "failure",
                         Status.SKIPPED: "skipped", Status.NOT_REACHED: "skipped"}


@dataclass(frozen=True)
class _Case:
    classname: str
    name: str
    seconds: float
    #: The verdict, or None for the ERROR case of a client that could not be tested.
    status: Status | None
    message: str = ""
    body: str = ""

    @property
    def element(self) -> str | None:
        return "error" if self.status is None else _JUNIT_ELEMENT.get(self.status)


def _junit_bytes(facts: _Facts) -> bytes:
    """One <testcase> per requirement (classname ``sephb.<interpretation>.<id>``)
    and one per transition of the table, under its requirement's classname. FAILED
    is a <failure>; NOT_EXERCISED too (the coverage gate: the run fails for it);
    SKIPPED and NOT_REACHED are <skipped> with the reason; an ERROR run (the client
    could not be tested) is one <error>. So the file fails exactly when the verdict
    is not CONFORMANT, with one failure per failed requirement."""
    res = facts.result
    base = f"sephb.{res.interpretation}"
    cases: list[_Case] = []
    if res.error:
        cases.append(_Case(f"{base}.client", "start", 0.0, None, res.error, res.error))
    listed = {r.id for r in res.requirements}
    for req in res.requirements:
        nums = facts.failures_of.get(req.id, [])
        cls = f"{base}.{req.id}"
        if req.status is Status.FAILED or nums:
            cases.append(_Case(cls, "requirement", req.seconds, Status.FAILED,
                               *_junit_failed(req.id, nums, res, facts.files)))
        elif req.status is Status.NOT_EXERCISED:
            cases.append(_Case(
                cls, "requirement", req.seconds, req.status,
                f"{req.id} was never exercised in {_cases(res)} cases",
                f"{req.id}: {req.text}\nNo transition or property carrying this "
                "requirement was exercised: the run says nothing about it."))
        else:
            cases.append(_Case(cls, "requirement", req.seconds, req.status,
                               f"{req.status.label}: {req.reason}" if req.reason
                               else req.status.label))
    # A failure whose requirement the run did not list still fails the build.
    for rid, nums in facts.failures_of.items():
        if rid not in listed:
            cases.append(_Case(f"{base}.{rid}", "requirement", 0.0, Status.FAILED,
                               *_junit_failed(rid, nums, res, facts.files)))
    req_of = {name: rid for name, rid, _ in facts.rows}
    reached = ("the client could not be tested" if res.error
               else "the run stopped at its first failure")
    for name in res.transitions:
        status = res.row_status(name)
        why = {Status.NOT_EXERCISED: f"never exercised in {_cases(res)} cases",
               Status.SKIPPED: f"skipped: {res.skipped.get(name, '')}",
               Status.NOT_REACHED: f"not reached: {reached}"}.get(status, "")
        cases.append(_Case(
            f"{base}.{req_of.get(name, 'transitions')}", f"transition {name}",
            res.row_seconds.get(name, 0.0), status, why,
            f"{name}: no test case took this transition"
            if status is Status.NOT_EXERCISED else ""))

    count = {kind: sum(1 for c in cases if c.element == kind)
             for kind in ("failure", "error", "skipped")}
    time = f"{res.duration_s:.3f}"
    totals = {"tests": str(len(cases)), "failures": str(count["failure"]),
              "errors": str(count["error"]), "skipped": str(count["skipped"]),
              "time": time}
    root = ET.Element("testsuites", {"name": "sephb conformance", **totals})
    suite = ET.SubElement(root, "testsuite", {"name": xml_safe(base), **totals})
    props = ET.SubElement(suite, "properties")
    for key, value in [("verdict", facts.verdict), ("client", res.client),
                       ("adapter", res.adapter), ("interpretation", res.interpretation),
                       ("profile", res.profile), ("seed", _seed(res.seed)),
                       ("cases", str(res.cases)), ("directed cases", str(res.directed)),
                       ("steps", str(res.steps)), ("records", str(res.records)),
                       *res.settings.items(), ("replay", replay_command(res))]:
        ET.SubElement(props, "property", name=key, value=xml_safe(value))
    for c in cases:
        el = ET.SubElement(suite, "testcase", classname=xml_safe(c.classname),
                           name=xml_safe(c.name), time=f"{c.seconds:.3f}")
        if c.element is not None:
            f = ET.SubElement(el, c.element, message=xml_safe(c.message))
            if c.element != "skipped":
                f.set("type", "ERROR" if c.status is None else c.status.value)
                f.text = xml_safe(c.body)
    out = [f"warning: {w}" for w in [*res.warnings, *facts.notes]]
    if facts.changes:
        out += [f"baseline: {c.text()}" for c in facts.changes]
    if out:
        ET.SubElement(suite, "system-out").text = xml_safe("\n".join(out))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _junit_failed(rid: str, nums: list[int], res: SuiteResult, files: str | None
                  ) -> tuple[str, str]:
    """(message, body) of a failed requirement's <failure>."""
    if not nums:  # FAILED without a recorded failure: say so rather than invent one
        return f"{rid} failed (no failure recorded)", rid
    first = res.failures[nums[0] - 1].message
    more = f" (and {len(nums) - 1} more)" if len(nums) > 1 else ""
    return (first + more,
            "\n\n".join(_failure_text(n, res.failures[n - 1], res, files)
                         for n in nums))


# --- Markdown ------------------------------------------------------------------------

_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|#])")
_STATUS_MARK: Final = {Status.PASSED: "✅", Status.FAILED: "❌", Status.NOT_EXERCISED: "⚠️",
                       Status.SKIPPED: "⏭️", Status.NOT_REACHED: "⏸️"}


def _md(text: object) -> str:
    """Plain text for a Markdown paragraph or table cell: one line, specials escaped."""
    one_line = " ".join(xml_safe(text).split())
    return _MD_SPECIAL.sub(r"\\\1", one_line)


def _md_code(text: str) -> str:
    """An inline code span that survives backticks in ``text``."""
    text = " ".join(xml_safe(text).split())
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_block(text: str, lang: str = "") -> str:
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}{lang}\n{xml_safe(text).rstrip()}\n{fence}"


def _markdown(facts: _Facts) -> str:
    res = facts.result
    rel = facts.reliability
    tally = facts.tally
    out: list[str] = [f"# sephb conformance report: {facts.verdict}", ""]
    if res.error:
        out += [f"> **The client could not be tested:** {_md(res.error)}", ""]
    out += [
        "| | |", "| --- | --- |",
        f"| Verdict | **{facts.verdict}** |",
        f"| Client | {_md_code(res.client)} |",
        f"| Adapter | {_md(res.adapter)} |",
        f"| Interpretation | {_md(res.interpretation)} |",
        f"| Profile | {_md(res.profile)} |",
        f"| Seed | {_md(_seed(res.seed))} |",
        f"| Cases | {_md(_cases(res))} |",
        f"| Steps | {res.steps:,} ({res.records:,} records) |",
        *(f"| {_md(k.capitalize())} | {_md(v)} |" for k, v in res.settings.items()),
        f"| Duration | {_duration(res.duration_s)} |",
        f"| Run again | {_md_code(replay_command(res))} |",
        "",
    ]
    out += [_reliability_text(rel, markdown=True), ""]
    out += [
        f"Requirements: {Tally.line(tally.requirements)}. Transitions: "
        f"{Tally.line(tally.rows)}. Failures: {len(res.failures)}. "
        f"Warnings: {len(res.warnings)}.",
        "",
    ]
    if facts.changes is not None:
        out += ["## Changes since the baseline", ""]
        out += [f"- {_md(c.text())}" for c in facts.changes] or ["None."]
        out.append("")
    out += [f"## Failures ({len(res.failures)})", ""]
    if not res.failures:
        out += ["None.", ""]
    for n, f in enumerate(res.failures, 1):
        out += [f'<a id="failure-{n}"></a>', "",
                f"### Failure {n}: {_md(f.requirement)}", "",
                f"> {_md(f.message)}", "",
                f"- Where: {_md(_marked(f))}"]
        expected = _expected_text(f)
        if expected is not None:
            out.append(f"- Expected: {_md(expected)}")
        out += [f"- Found by: {_md(f.found_by)} test case"
                + (f" (seed {f.seed})" if f.seed is not None else ""), ""]
        out += ["What happened (shrunk):", ""]
        out += [f"{i}. {_md(words)} ({_md_code(step)})"
                for i, (words, step) in enumerate(_program(res, f), 1)] or ["(none)"]
        out += ["", f"Trace ({len(f.trace)} records; the failing one marked):", "",
                _md_block(sequence_mermaid(f.trace, mark=f.record), "mermaid"), ""]
        out += [f"Files: [{trace_file(n)}]({trace_file(n)}) (NDJSON trace), "
                f"[{replay_file(n)}]({replay_file(n)}) (replay: "
                f"{_md_code('pytest ' + replay_file(n))})", ""]
    out += ["## Requirements", "",
            "| Requirement | Status | Hits | Text |",
            "| --- | --- | ---: | --- |"]
    for req in res.requirements:
        nums = facts.failures_of.get(req.id, [])
        refs = (" (" + ", ".join(f"[failure {n}](#failure-{n})" for n in nums) + ")"
                if nums else "")
        why = f": {_md(req.reason)}" if req.reason else ""
        out.append(f"| {_md(req.id)} | {_STATUS_MARK[req.status]} {req.status.label}"
                   f"{refs}{why} | {req.hits:,} | {_md(req.text)} |")
    out += ["", "## Transition coverage", ""]
    if facts.svg is not None:
        out += [f"![State diagram of '{_md(res.interpretation)}' with how often each "
                f"transition was exercised]({COVERAGE_FILE})", "",
                "Each arrow carries its count; arrows never exercised are red and "
                "dashed.", ""]
    elif facts.svg_problem:
        out += [f"No diagram: {_md(facts.svg_problem)}", ""]
    out += [f"Transitions: {Tally.line(tally.rows)}.", ""]
    if facts.uncovered:
        out += ["### Never exercised", ""]
        req_of = {name: rid for name, rid, _ in facts.rows}
        out += [f"- {_md_code(u)}" + (f" ({_md(req_of[u])})" if u in req_of else "")
                for u in facts.uncovered]
        out.append("")
    if res.skipped:
        out += ["### Skipped (not observable in this adapter)", ""]
        out += [f"- {_md_code(n)}: {_md(why)}" for n, why in res.skipped.items()]
        out.append("")
    if facts.rows:
        out += ["<details><summary>Every transition and its count</summary>", "",
                "| Transition | Requirement | Count | Status |",
                "| --- | --- | ---: | --- |"]
        out += [f"| {_md_code(name)} | {_md(rid)} | {n:,} | "
                f"{res.row_status(name).label} |" for name, rid, n in facts.rows]
        out += ["", "</details>", ""]
    warnings = [*res.warnings, *facts.notes]
    out += ["## Warnings", ""]
    out += [f"- {_md(w)}" for w in warnings] if warnings else ["None."]
    return "\n".join(out).rstrip() + "\n"


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


# --- HTML ------------------------------------------------------------------------------


def _h(text: object) -> str:
    return html.escape(xml_safe(text), quote=True)


_SVG_PROLOG: Final = re.compile(r"\A.*?(?=<svg\b)", re.S)
_SVG_SIZE: Final = re.compile(r'(<svg\b[^>]*?)\s(?:width|height)="[^"]*"')
_XML_COMMENT: Final = re.compile(r"<!--.*?-->", re.S)


_VIEWBOX: Final = re.compile(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) [\d.]+"')


def _inline_svg(svg: bytes) -> tuple[str, int]:
    """Graphviz's SVG, fit for inlining, and its natural width in CSS pixels.

    No XML prolog or DOCTYPE (invalid inside HTML), no comments, and no fixed size,
    so that CSS scales it to the page by its viewBox (Graphviz's units are points).
    """
    text = _SVG_PROLOG.sub("", svg.decode())
    text = _XML_COMMENT.sub("", text)
    for _ in range(2):
        text = _SVG_SIZE.sub(r"\1", text, count=1)
    m = _VIEWBOX.search(text)
    width = round(float(m.group(1)) * 4 / 3) if m else 1600
    return text.replace("<svg", '<svg class="statechart"', 1), width


_CSS: Final = """
:root{--ink:#1f2d36;--muted:#62737f;--line:#dde3e8;--bg:#f4f6f8;--card:#fff;
--pass:#1b7f3b;--pass-bg:#e7f5ec;--pass-line:#a6d8b6;--fail:#c62828;--fail-bg:#fdecea;
--fail-line:#f2b8b5;--warn:#a65c00;--warn-bg:#fff3e0;--warn-line:#f5cc8f;--accent:#1d4e89}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.55 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",
monospace;font-size:12.5px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.wrap{max-width:1320px;margin:0 auto;padding:0 28px}
header.top{background:var(--card);border-bottom:1px solid var(--line)}
header.top .stripe{height:6px;background:var(--pass)}
header.top.fail .stripe{background:var(--fail)}
header.top .wrap{padding-top:20px;padding-bottom:18px}
.kicker{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:var(--muted)}
h1{margin:6px 0 10px;font-size:26px;line-height:1.25;display:flex;align-items:center;
gap:14px;flex-wrap:wrap}
h1 .subject{font-weight:600}
h1 code{font-size:21px}
.verdict{display:inline-block;padding:5px 14px;border-radius:6px;color:#fff;
background:var(--pass);font-size:16px;font-weight:700;letter-spacing:.05em}
.fail .verdict{background:var(--fail)}
.claim{margin:4px 0 0;padding:10px 14px;border-radius:6px;border:1px solid var(--line);
background:#fafbfc;color:var(--muted)}
.claim.earned{border-color:var(--pass-line);background:var(--pass-bg);color:var(--ink)}
.claim strong{color:var(--pass);font-size:15px}
nav.toc{margin-top:14px;display:flex;gap:18px;flex-wrap:wrap;font-size:13px}
main.wrap{padding-top:22px;padding-bottom:40px}
dl.facts{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:1px;margin:0;
background:var(--line);border:1px solid var(--line);border-radius:8px;overflow:hidden}
dl.facts div{background:var(--card);padding:10px 16px}
dl.facts dt{font-size:11px;letter-spacing:.06em;text-transform:uppercase;color:var(--muted)}
dl.facts dd{margin:2px 0 0;font-weight:600;overflow-wrap:anywhere}
.tiles{display:grid;grid-template-columns:repeat(5,minmax(0,1fr));gap:12px;margin:16px 0}
.tile{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:12px 16px;border-top:3px solid var(--line)}
.tile .n{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.tile .l{font-size:12px;color:var(--muted)}
.tile.good{border-top-color:var(--pass)}.tile.bad{border-top-color:var(--fail)}
.tile.bad .n{color:var(--fail)}.tile.warn{border-top-color:var(--warn)}
.tile.warn .n{color:var(--warn)}
section.card{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:18px 22px;margin:18px 0}
h2{margin:0 0 12px;font-size:18px}
h2 .count{color:var(--muted);font-weight:400}
h3{margin:0;font-size:16px}
p.lead{margin:-4px 0 12px;color:var(--muted)}
table{width:100%;border-collapse:collapse}
th{text-align:left;font-size:11.5px;letter-spacing:.05em;text-transform:uppercase;
color:var(--muted);border-bottom:2px solid var(--line);padding:8px 10px;font-weight:600}
td{padding:8px 10px;border-bottom:1px solid var(--line);vertical-align:top}
tbody tr:last-child td{border-bottom:0}
td.id{white-space:nowrap;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.FAILED td:first-child{box-shadow:inset 3px 0 var(--fail)}
tr.NOT_EXERCISED td:first-child{box-shadow:inset 3px 0 var(--warn)}
.status{display:inline-block;min-width:104px;padding:2px 10px;border-radius:999px;
font-size:11.5px;font-weight:700;letter-spacing:.03em;text-align:center;border:1px solid}
.status.PASSED{color:var(--pass);background:var(--pass-bg);border-color:var(--pass-line)}
.status.FAILED{color:var(--fail);background:var(--fail-bg);border-color:var(--fail-line)}
.status.NOT_EXERCISED{color:var(--warn);background:var(--warn-bg);border-color:var(--warn-line)}
.status.SKIPPED,.status.NOT_REACHED{color:var(--muted);background:#f1f3f5;
border-color:var(--line)}
.reason{display:block;font-size:12px;color:var(--muted);margin-top:3px}
.error{margin:16px 0;padding:12px 16px;border:1px solid var(--fail-line);
border-left:4px solid var(--fail);border-radius:8px;background:var(--fail-bg);
overflow-wrap:anywhere}
table.move{width:auto;margin:6px 0 4px}table.move th{width:110px}
ol.program li small{display:block;color:var(--muted)}
.replay{margin:10px 0 0}.replay code{background:#f7f9fa;border:1px solid var(--line);
border-radius:4px;padding:2px 6px;overflow-wrap:anywhere}
.refs{display:block;font-size:12px;margin-top:3px}
figure{margin:0}
figure.diagram{border:1px solid var(--line);border-radius:6px;padding:10px;overflow-x:auto;
background:#fff}
svg.statechart{display:block;width:100%;height:auto;min-width:900px}
input.zoom{position:absolute;opacity:0;pointer-events:none}
label.zoom{margin-left:auto;padding:2px 10px;border:1px solid var(--line);border-radius:6px;
cursor:pointer;color:var(--accent);background:#f7f9fa;user-select:none}
label.zoom .on,#zoom:checked+label.zoom .off{display:none}
#zoom:checked+label.zoom .on{display:inline}
#zoom:checked+label.zoom{background:#e6eef7;border-color:#9fb8d6}
#zoom:focus-visible+label.zoom{outline:2px solid var(--accent)}
.legend:has(#zoom:checked)+figure svg.statechart{width:var(--natural);max-width:none}
figure.seq{border:1px solid var(--line);border-radius:6px;overflow-x:auto;background:#fff}
figure.seq svg{display:block}
figcaption{font-size:12.5px;color:var(--muted);margin-top:8px}
.legend{display:flex;gap:22px;flex-wrap:wrap;font-size:12.5px;color:var(--muted);
margin:0 0 10px}
.legend{align-items:center}
.legend>span::before{content:"";display:inline-block;width:26px;height:0;margin-right:7px;
vertical-align:middle;border-top:2px solid #37474f}
.legend>.uncov::before{border-top:2px dashed #e53935}
ul.plain{margin:0;padding-left:18px}ul.plain li{margin:3px 0}
.uncovered li code{color:var(--fail)}
.ok{color:var(--pass);font-weight:600}
details{margin-top:12px}summary{cursor:pointer;color:var(--accent)}
details table{margin-top:8px}
.warnings li{margin:4px 0}
article.failure{border:1px solid var(--fail-line);border-left:4px solid var(--fail);
border-radius:8px;padding:16px 20px;margin:16px 0;background:#fff}
article.failure header{display:flex;justify-content:space-between;align-items:baseline;
gap:12px;flex-wrap:wrap}
.message{margin:10px 0;padding:10px 14px;background:var(--fail-bg);border-radius:6px;
color:#7f1d1d;overflow-wrap:anywhere}
.meta{color:var(--muted);font-size:13px}
h4{margin:12px 0 6px;font-size:12px;letter-spacing:.06em;text-transform:uppercase;
color:var(--muted)}
ol.steps{margin:0;padding:8px 12px 8px 44px;background:#f7f9fa;border:1px solid var(--line);
border-radius:6px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",
monospace;font-size:12.5px}
ol.steps li{padding:1px 0;overflow-wrap:anywhere}
.files a{display:inline-block;margin:8px 10px 0 0;padding:4px 10px;
border:1px solid var(--line);border-radius:6px;background:#f7f9fa;font-size:13px}
footer{color:var(--muted);font-size:12px;padding:0 0 30px}
@media (max-width:1000px){dl.facts{grid-template-columns:repeat(2,minmax(0,1fr))}
.tiles{grid-template-columns:repeat(2,minmax(0,1fr))}}
@media print{body{background:#fff}section.card,article.failure{break-inside:avoid}}
"""


def _html(facts: _Facts) -> str:
    """The page: verdict, facts and counts, then the failures (a failed run opens on
    them), the baseline's changes, requirements, coverage and warnings."""
    res = facts.result
    rel = facts.reliability
    ok = res.conformant
    tally = facts.tally
    title = f"{facts.verdict}: {res.client} ({res.interpretation}) · sephb conformance"
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<header class="top {"pass" if ok else "fail"}"><div class="stripe"></div>',
        '<div class="wrap"><div class="kicker">sephb · conformance report · SEP client '
        "heartbeat</div>",
        f'<h1><span class="verdict">{facts.verdict}</span>'
        f'<span class="subject">client <code>{_h(res.client)}</code></span></h1>',
        _html_claim(rel),
        '<nav class="toc">'
        f'<a href="#failures">Failures ({len(res.failures)})</a>'
        '<a href="#requirements">Requirements</a>'
        '<a href="#coverage">Transition coverage</a><a href="#warnings">Warnings</a>'
        f'<a href="{JUNIT_FILE}">JUnit XML</a><a href="{JSON_FILE}">result.json</a>'
        f'<a href="{MARKDOWN_FILE}">Markdown</a></nav>',
        "</div></header>",
        '<main class="wrap">',
    ]
    if res.error:
        out.append(f'<div class="error" id="error"><b>The client could not be tested.'
                   f"</b> {_h(res.error)}</div>")
    facts_dl = [
        ("Client", f"<code>{_h(res.client)}</code>"), ("Adapter", _h(res.adapter)),
        ("Interpretation", _h(res.interpretation)), ("Profile", _h(res.profile)),
        ("Seed", _h(_seed(res.seed))), ("Cases", _h(_cases(res))),
        ("Steps", f"{res.steps:,} ({res.records:,} records)"),
        ("Duration", _h(_duration(res.duration_s))),
        *((_h(k.capitalize()), _h(v)) for k, v in res.settings.items()),
    ]
    out.append('<dl class="facts">' + "".join(
        f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts_dl) + "</dl>")
    out.append(f'<p class="replay">Run again: <code>{_h(replay_command(res))}</code></p>')
    reqs = tally.requirements
    tiles = [
        (str(reqs[Status.PASSED]), "requirements passed", "good"),
        (str(reqs[Status.FAILED]), "requirements failed",
         "bad" if reqs[Status.FAILED] else "good"),
        (str(reqs[Status.NOT_EXERCISED]), "requirements not exercised",
         "warn" if reqs[Status.NOT_EXERCISED] else "good"),
        (f"{reqs[Status.SKIPPED]} / {reqs[Status.NOT_REACHED]}",
         "requirements skipped / not reached", ""),
        (f"{tally.rows[Status.PASSED]}/{len(res.transitions)}", "transitions exercised",
         "good" if not facts.uncovered else "warn"),
    ]
    out.append('<div class="tiles">' + "".join(
        f'<div class="tile {cls}"><div class="n">{n}</div><div class="l">{label}</div>'
        "</div>" for n, label, cls in tiles) + "</div>")
    if res.failures:
        out.append(_html_failures(facts))
    if facts.changes is not None:
        out.append(_html_changes(facts.changes))
    out.append(_html_requirements(facts))
    out.append(_html_coverage(facts))
    out.append(_html_warnings(facts))
    if not res.failures:
        out.append(_html_failures(facts))
    try:
        version = metadata.version("sephb")
    except metadata.PackageNotFoundError:  # running from a source tree
        version = "unknown version"
    out += ["</main>",
            f'<footer class="wrap">Written by sephb {_h(version)} from '
            f'<a href="{JSON_FILE}">{JSON_FILE}</a>. Self-contained: no scripts, no '
            "external resources.</footer>",
            "</body></html>"]
    return "\n".join(out) + "\n"


def _html_changes(changes: list[Change]) -> str:
    body = ('<ul class="plain">' + "".join(
        f'<li class="{"bad" if c.regression else ""}">{_h(c.text())}</li>'
        for c in changes) + "</ul>") if changes else '<p class="ok">None.</p>'
    return ('<section class="card" id="changes"><h2>Changes since the baseline '
            f'<span class="count">({len(changes)})</span></h2>{body}</section>')


def _html_claim(rel: Reliability) -> str:
    if rel.statement:
        return (f'<p class="claim earned"><strong>{_h(rel.statement)}</strong> · '
                f"{rel.cases:,} clean cases, no failure. Lower bound on the pass "
                f"probability: {rel.bound:.6f} (exact, {1 - CONFIDENCE:g}<sup>1/n</sup>); "
                f"rule of three 1 − 3/n = {rel.rule_of_three:.6f}.</p>")
    return f'<p class="claim">{_h(_reliability_text(rel))}</p>'


def _html_requirements(facts: _Facts) -> str:
    res = facts.result
    rows = []
    for req in res.requirements:
        nums = facts.failures_of.get(req.id, [])
        refs = ('<span class="refs">' + ", ".join(
            f'<a href="#failure-{n}">failure {n}</a>' for n in nums) + "</span>"
            if nums else "")
        why = (f'<span class="reason">{_h(req.reason)}</span>' if req.reason else "")
        rows.append(
            f'<tr id="req-{_anchor(req.id)}" class="req {req.status.value}">'
            f'<td class="id">{_h(req.id)}</td>'
            f'<td><span class="status {req.status.value}">{req.status.label}</span>'
            f"{refs}{why}</td>"
            f'<td class="num">{req.hits:,}</td><td>{_h(req.text)}</td></tr>')
    return ('<section class="card" id="requirements"><h2>Requirements '
            f'<span class="count">({len(res.requirements)})</span></h2>'
            '<p class="lead">Every rule of the interpretation, with how often a '
            "transition or property carrying it was exercised. Failed and not exercised "
            "fail the run; skipped (not observable through this adapter) and not "
            "reached (the run stopped at an earlier failure) do not.</p>"
            '<table class="requirements"><thead><tr><th>Requirement</th><th>Status</th>'
            '<th class="num">Hits</th><th>Text</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></section>")


def _html_coverage(facts: _Facts) -> str:
    res = facts.result
    parts = ['<section class="card" id="coverage"><h2>Transition coverage '
             f'<span class="count">({_h(Tally.line(facts.tally.rows))})</span></h2>']
    if facts.svg is not None:
        svg, natural = _inline_svg(facts.svg)
        # Fitted to the page by default, so that the whole machine is in view; the
        # checkbox (CSS only, no script) shows it at its natural size to read labels.
        parts += [
            '<div class="legend"><span>exercised (label: how often)</span>'
            '<span class="uncov">never exercised</span>'
            '<input type="checkbox" id="zoom" class="zoom">'
            '<label for="zoom" class="zoom"><span class="off">Show at actual size</span>'
            '<span class="on">Fit to the page</span></label></div>',
            f'<figure class="diagram" style="--natural:{natural}px">{svg}'
            f"<figcaption>State diagram of the interpretation "
            f"<b>{_h(res.interpretation)}</b>, drawn from the transition table. Each "
            "arrow reads EVENT [guard], the requirement that makes the move mandatory, "
            "and how often this run exercised it; states no exercised row reaches are "
            "dashed. The same drawing: "
            f'<a href="{COVERAGE_FILE}">{COVERAGE_FILE}</a>.</figcaption></figure>',
        ]
    elif facts.svg_problem:
        parts.append(f'<p class="meta">No diagram: {_h(facts.svg_problem)}</p>')
    if res.skipped:
        parts.append("<h4>Skipped: not observable in this adapter</h4>"
                     '<ul class="plain">' + "".join(
                         f"<li><code>{_h(n)}</code>: {_h(why)}</li>"
                         for n, why in res.skipped.items()) + "</ul>")
    parts.append("<h4>Never exercised</h4>")
    if facts.uncovered:
        req_of = {name: rid for name, rid, _ in facts.rows}
        parts.append('<ul class="plain uncovered">' + "".join(
            f"<li><code>{_h(u)}</code>"
            + (f' · <a href="#req-{_anchor(req_of[u])}">{_h(req_of[u])}</a>'
               if u in req_of else "") + "</li>" for u in facts.uncovered) + "</ul>")
    else:
        parts.append('<p class="ok">None.</p>' if res.failures or res.error else
                     '<p class="ok">None: every observable transition was '
                     "exercised.</p>")
    if facts.rows:
        parts.append(
            f"<details><summary>Every transition and its count ({len(facts.rows)})"
            '</summary><table class="transitions"><thead><tr><th>Transition</th>'
            '<th>Requirement</th><th class="num">Count</th></tr></thead><tbody>'
            + "".join(f"<tr><td><code>{_h(name)}</code></td><td>{_h(rid)}</td>"
                      f'<td class="num">{n:,}</td></tr>' for name, rid, n in facts.rows)
            + "</tbody></table></details>")
    parts.append("</section>")
    return "".join(parts)


def _html_warnings(facts: _Facts) -> str:
    warnings = [*facts.result.warnings, *facts.notes]
    body = ('<ul class="plain warnings">' + "".join(f"<li>{_h(w)}</li>" for w in warnings)
            + "</ul>") if warnings else '<p class="ok">None.</p>'
    return (f'<section class="card" id="warnings"><h2>Warnings <span class="count">'
            f"({len(warnings)})</span></h2>"
            '<p class="lead">Findings that are not violations, e.g. heartbeat sizes '
            f"outside the seed's typical range.</p>{body}</section>")


def _html_failures(facts: _Facts) -> str:
    res = facts.result
    parts = [f'<section class="card" id="failures"><h2>Failures <span class="count">'
             f"({len(res.failures)})</span></h2>"]
    if not res.failures:
        parts.append('<p class="ok">None.</p>')
    for n, f in enumerate(res.failures, 1):
        seed = f" · seed <code>{f.seed}</code>" if f.seed is not None else ""
        program = "".join(f"<li>{_h(words)}<small><code>{_h(step)}</code></small></li>"
                          for words, step in _program(res, f))
        move = [("Where", _h(_marked(f)))]
        expected = _expected_text(f)
        if expected is not None:
            move.append(("Expected", _h(expected)))
        parts.append(
            f'<article class="failure" id="failure-{n}"><header>'
            f'<h3>Failure {n} · <a href="#req-{_anchor(f.requirement)}">'
            f"{_h(f.requirement)}</a></h3>"
            f'<span class="meta">found by a {_h(f.found_by)} test case · '
            f"{len(f.steps)} steps · {len(f.trace)} trace records{seed}</span></header>"
            f'<div class="message">{_h(f.message)}</div>'
            '<table class="move">' + "".join(
                f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in move) + "</table>"
            f"<h4>What happened (shrunk)</h4>"
            f'<ol class="steps program">{program or "<li>(no steps)</li>"}</ol>'
            f"<h4>Sequence of the trace</h4>"
            f'<figure class="seq">{sequence_svg(f.trace, mark=f.record)}</figure>'
            f'<p class="replay">Run again: <code>{_h(replay_command(res))}</code></p>'
            f'<div class="files"><a href="{trace_file(n)}">Trace: {trace_file(n)}</a>'
            f'<a href="{replay_file(n)}">Replay: {replay_file(n)}</a>'
            f'<span class="meta">run it with <code>pytest {replay_file(n)}</code></span>'
            "</div></article>")
    parts.append("</section>")
    return "".join(parts)
