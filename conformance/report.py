"""Reports of a conformance run: one self-contained HTML page, Markdown, JUnit XML,
and the files that reproduce each failure.

Theory of operation
-------------------
The suite (:mod:`sephb.conformance.suite`) fills a
:class:`~sephb.conformance.results.SuiteResult`; everything here only reads it, so a
report can be written again from a saved ``result.json`` without running anything.
:func:`write_report` first works out, once, what every format says (:class:`_Facts`:
the verdict, the reliability claim, the uncovered rows, file names of the failures)
and each writer then only formats those facts -- the page, the Markdown and the JUnit
file cannot disagree with one another.

The page renders offline and without JavaScript: CSS is inline, the state diagram
(drawn from the transition table by :mod:`sephb.diagrams` with its coverage overlay)
and the sequence diagrams (:mod:`sephb.conformance.seqdiagram`) are inline SVG, and
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

from sephb.model.errors import UsageError
from sephb.model.interpretations import INTERPRETATIONS

from .results import Failure, Status, SuiteResult, dumps
from .seqdiagram import sequence_mermaid, sequence_svg, xml_safe

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

    @property
    def verdict(self) -> str:
        return "CONFORMANT" if self.result.conformant else "NON-CONFORMANT"


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
    uncovered = [name for name, _, n in rows if n == 0]
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
                  problem)


# --- writing ---------------------------------------------------------------------


def write_report(result: SuiteResult, outdir: Path) -> dict[str, Path]:
    """Write every report of ``result`` into ``outdir``; return them by relative name.

    Files: ``index.html``, ``report.md``, ``junit.xml``, ``result.json``,
    ``coverage.svg`` (when the diagram could be drawn) and, per failure ``n``,
    ``failures/failure-<n>.ndjson`` and ``failures/test_replay_<n>.py``. Failure files
    (and the drawing) of an earlier report in the same directory are removed, so the
    directory never shows a failure this result does not have.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    facts = _facts(result)
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
        put(trace_file(i), _ndjson(failure.trace))
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


def write_junit(result: SuiteResult, path: Path) -> Path:
    """Write the JUnit XML of ``result`` to ``path`` (the CLI's ``--junit FILE``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_junit_bytes(_facts(result, draw=False)))
    return path


def _ndjson(records: Sequence[Mapping[str, object]]) -> bytes:
    # msgspec, like the trace writer: the same bytes a recorder would have written.
    return b"".join(msgspec.json.encode(r) + b"\n" for r in records)


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
    return "random (not fixed)" if seed is None else str(seed)


def _anchor(text: str) -> str:
    """An HTML id from any string (requirement ids are already plain)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _status_counts(result: SuiteResult) -> dict[Status, int]:
    counts = dict.fromkeys(Status, 0)
    for r in result.requirements:
        counts[r.status] += 1
    return counts


def _failure_text(n: int, f: Failure) -> str:
    """A failure as plain text (JUnit's failure body)."""
    lines = [f"Failure {n}: {f.requirement}: {f.message}"]
    if f.seed is not None:
        lines.append(f"Hypothesis seed: {f.seed}")
    lines.append("Steps:")
    lines += [f"  {i}. {step}" for i, step in enumerate(f.steps, 1)]
    lines.append(f"Trace: {trace_file(n)} ({len(f.trace)} records)")
    lines.append(f"Replay: pytest {replay_file(n)}")
    return "\n".join(lines)


# --- JUnit -------------------------------------------------------------------------


def _junit_bytes(facts: _Facts) -> bytes:
    """One <testcase> per requirement id; NOT_COVERED is a failure (the run says
    nothing about the requirement, and the run fails for it). One more case,
    ``<classname>.coverage / transitions``, fails when a row was never exercised, so
    that a NON-CONFORMANT verdict never reads as a green build."""
    res = facts.result
    classname = f"sephb.{res.interpretation}"
    # (classname, name, failure or None); a failure is (type, message, body).
    cases: list[tuple[str, str, tuple[str, str, str] | None]] = []
    listed = {r.id for r in res.requirements}
    for req in res.requirements:
        nums = facts.failures_of.get(req.id, [])
        failure: tuple[str, str, str] | None = None
        if req.status is Status.FAILED or nums:
            failure = _junit_failed(req.id, nums, res.failures)
        elif req.status is Status.NOT_COVERED:
            failure = (Status.NOT_COVERED.value,
                       f"{req.id} was never exercised in {res.cases:,} cases",
                       f"{req.id}: {req.text}\nNo transition or property carrying this "
                       "requirement was exercised: the run says nothing about it.")
        cases.append((classname, req.id, failure))
    # A failure whose requirement the run did not list still fails the build.
    cases += [(classname, rid, _junit_failed(rid, nums, res.failures))
              for rid, nums in facts.failures_of.items() if rid not in listed]
    cases.append((f"{classname}.coverage", "transitions", (
        Status.NOT_COVERED.value, f"{len(facts.uncovered)} transition(s) never exercised",
        "\n".join(facts.uncovered)) if facts.uncovered else None))

    failed = sum(1 for *_, f in cases if f is not None)
    time = f"{res.duration_s:.3f}"
    root = ET.Element("testsuites", name="sephb conformance", tests=str(len(cases)),
                      failures=str(failed), errors="0", time=time)
    suite = ET.SubElement(root, "testsuite", name=xml_safe(classname),
                          tests=str(len(cases)), failures=str(failed), errors="0",
                          skipped="0", time=time)
    props = ET.SubElement(suite, "properties")
    for key, value in (("verdict", facts.verdict), ("client", res.client),
                       ("adapter", res.adapter), ("interpretation", res.interpretation),
                       ("profile", res.profile), ("seed", _seed(res.seed)),
                       ("cases", str(res.cases)), ("steps", str(res.steps))):
        ET.SubElement(props, "property", name=key, value=xml_safe(value))
    for cls, name, failure in cases:
        el = ET.SubElement(suite, "testcase", classname=xml_safe(cls), name=xml_safe(name))
        if failure is not None:
            kind, message, body = failure
            f = ET.SubElement(el, "failure", message=xml_safe(message), type=kind)
            f.text = xml_safe(body)
    warnings = [*res.warnings, *facts.notes]
    if warnings:
        ET.SubElement(suite, "system-out").text = xml_safe(
            "\n".join(f"warning: {w}" for w in warnings))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _junit_failed(rid: str, nums: list[int], failures: list[Failure]
                  ) -> tuple[str, str, str]:
    if not nums:  # FAILED without a recorded failure: say so rather than invent one
        return Status.FAILED.value, f"{rid} failed (no failure recorded)", rid
    first = failures[nums[0] - 1].message
    more = f" (and {len(nums) - 1} more)" if len(nums) > 1 else ""
    return (Status.FAILED.value, first + more,
            "\n\n".join(_failure_text(n, failures[n - 1]) for n in nums))


# --- Markdown ------------------------------------------------------------------------

_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|#])")
_STATUS_MARK: Final = {Status.PASSED: "✅", Status.FAILED: "❌", Status.NOT_COVERED: "⚠️"}


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
    counts = _status_counts(res)
    out: list[str] = [f"# sephb conformance report: {facts.verdict}", ""]
    out += [
        "| | |", "| --- | --- |",
        f"| Verdict | **{facts.verdict}** |",
        f"| Client | {_md_code(res.client)} |",
        f"| Adapter | {_md(res.adapter)} |",
        f"| Interpretation | {_md(res.interpretation)} |",
        f"| Profile | {_md(res.profile)} |",
        f"| Seed | {_md(_seed(res.seed))} |",
        f"| Cases | {res.cases:,} |",
        f"| Steps | {res.steps:,} |",
        f"| Duration | {_duration(res.duration_s)} |",
        "",
    ]
    out += [_reliability_text(rel, markdown=True), ""]
    out += [
        f"Requirements: {counts[Status.PASSED]} passed, {counts[Status.FAILED]} failed, "
        f"{counts[Status.NOT_COVERED]} not covered. Transitions: "
        f"{_covered_text(facts)}. Failures: {len(res.failures)}. "
        f"Warnings: {len(res.warnings)}.",
        "",
        "## Requirements", "",
        "| Requirement | Status | Hits | Text |",
        "| --- | --- | ---: | --- |",
    ]
    for req in res.requirements:
        nums = facts.failures_of.get(req.id, [])
        refs = (" (" + ", ".join(f"[failure {n}](#failure-{n})" for n in nums) + ")"
                if nums else "")
        out.append(f"| {_md(req.id)} | {_STATUS_MARK[req.status]} {req.status.value}"
                   f"{refs} | {req.hits:,} | {_md(req.text)} |")
    out += ["", "## Transition coverage", ""]
    if facts.svg is not None:
        out += [f"![State diagram of '{_md(res.interpretation)}' with how often each "
                f"transition was exercised]({COVERAGE_FILE})", "",
                "Each arrow carries its count; arrows never exercised are red and "
                "dashed.", ""]
    elif facts.svg_problem:
        out += [f"No diagram: {_md(facts.svg_problem)}", ""]
    out += [f"Transitions: {_covered_text(facts)}.", ""]
    if facts.uncovered:
        out += ["### Uncovered transitions", ""]
        req_of = {name: rid for name, rid, _ in facts.rows}
        out += [f"- {_md_code(u)}" + (f" ({_md(req_of[u])})" if u in req_of else "")
                for u in facts.uncovered]
        out.append("")
    if facts.rows:
        out += ["<details><summary>Every transition and its count</summary>", "",
                "| Transition | Requirement | Count |", "| --- | --- | ---: |"]
        out += [f"| {_md_code(name)} | {_md(rid)} | {n:,} |" for name, rid, n in facts.rows]
        out += ["", "</details>", ""]
    warnings = [*res.warnings, *facts.notes]
    out += ["## Warnings", ""]
    out += [f"- {_md(w)}" for w in warnings] if warnings else ["None."]
    out += ["", f"## Failures ({len(res.failures)})", ""]
    if not res.failures:
        out += ["None.", ""]
    for n, f in enumerate(res.failures, 1):
        out += [f'<a id="failure-{n}"></a>', "",
                f"### Failure {n}: {_md(f.requirement)}", "",
                f"> {_md(f.message)}", ""]
        if f.seed is not None:
            out += [f"Hypothesis seed: {f.seed}", ""]
        out += ["Steps (shrunk):", "",
                _md_block("\n".join(f"{i:>3}. {s}" for i, s in enumerate(f.steps, 1))
                          or "(no steps)", "text"), ""]
        out += [f"Trace ({len(f.trace)} records):", "",
                _md_block(sequence_mermaid(f.trace), "mermaid"), ""]
        out += [f"Files: [{trace_file(n)}]({trace_file(n)}) (NDJSON trace), "
                f"[{replay_file(n)}]({replay_file(n)}) (replay: "
                f"{_md_code('pytest ' + replay_file(n))})", ""]
    return "\n".join(out).rstrip() + "\n"


def _covered_text(facts: _Facts) -> str:
    total = len(facts.rows) or len(facts.result.transitions)
    return f"{total - len(facts.uncovered)} of {total} exercised"


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
tr.NOT_COVERED td:first-child{box-shadow:inset 3px 0 var(--warn)}
.status{display:inline-block;min-width:104px;padding:2px 10px;border-radius:999px;
font-size:11.5px;font-weight:700;letter-spacing:.03em;text-align:center;border:1px solid}
.status.PASSED{color:var(--pass);background:var(--pass-bg);border-color:var(--pass-line)}
.status.FAILED{color:var(--fail);background:var(--fail-bg);border-color:var(--fail-line)}
.status.NOT_COVERED{color:var(--warn);background:var(--warn-bg);border-color:var(--warn-line)}
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
    res = facts.result
    rel = facts.reliability
    ok = res.conformant
    counts = _status_counts(res)
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
        '<nav class="toc"><a href="#requirements">Requirements</a>'
        '<a href="#coverage">Transition coverage</a><a href="#warnings">Warnings</a>'
        f'<a href="#failures">Failures ({len(res.failures)})</a>'
        f'<a href="{JUNIT_FILE}">JUnit XML</a><a href="{JSON_FILE}">result.json</a>'
        f'<a href="{MARKDOWN_FILE}">Markdown</a></nav>',
        "</div></header>",
        '<main class="wrap">',
    ]
    facts_dl = [
        ("Client", f"<code>{_h(res.client)}</code>"), ("Adapter", _h(res.adapter)),
        ("Interpretation", _h(res.interpretation)), ("Profile", _h(res.profile)),
        ("Seed", _h(_seed(res.seed))), ("Cases", f"{res.cases:,}"),
        ("Steps", f"{res.steps:,}"), ("Duration", _h(_duration(res.duration_s))),
    ]
    out.append('<dl class="facts">' + "".join(
        f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts_dl) + "</dl>")
    total = len(facts.rows) or len(res.transitions)
    covered = total - len(facts.uncovered)
    tiles = [
        (f"{counts[Status.PASSED]}/{len(res.requirements)}", "requirements passed",
         "good" if counts[Status.PASSED] == len(res.requirements) else ""),
        (str(counts[Status.FAILED]), "requirements failed",
         "bad" if counts[Status.FAILED] else "good"),
        (str(counts[Status.NOT_COVERED]), "requirements not covered",
         "warn" if counts[Status.NOT_COVERED] else "good"),
        (f"{covered}/{total}", "transitions exercised",
         "good" if not facts.uncovered else "warn"),
        (str(len(res.failures)), "failures", "bad" if res.failures else "good"),
    ]
    out.append('<div class="tiles">' + "".join(
        f'<div class="tile {cls}"><div class="n">{n}</div><div class="l">{label}</div>'
        "</div>" for n, label, cls in tiles) + "</div>")
    out.append(_html_requirements(facts))
    out.append(_html_coverage(facts))
    out.append(_html_warnings(facts))
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
        rows.append(
            f'<tr id="req-{_anchor(req.id)}" class="req {req.status.value}">'
            f'<td class="id">{_h(req.id)}</td>'
            f'<td><span class="status {req.status.value}">{req.status.value}</span>'
            f"{refs}</td>"
            f'<td class="num">{req.hits:,}</td><td>{_h(req.text)}</td></tr>')
    return ('<section class="card" id="requirements"><h2>Requirements '
            f'<span class="count">({len(res.requirements)})</span></h2>'
            '<p class="lead">Every rule of the model, with how often a transition or '
            "property carrying it was exercised. NOT_COVERED fails the run: it says "
            "nothing about that rule.</p>"
            '<table class="requirements"><thead><tr><th>Requirement</th><th>Status</th>'
            '<th class="num">Hits</th><th>Text</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></section>")


def _html_coverage(facts: _Facts) -> str:
    res = facts.result
    parts = ['<section class="card" id="coverage"><h2>Transition coverage '
             f'<span class="count">({_h(_covered_text(facts))})</span></h2>']
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
    parts.append("<h4>Uncovered transitions</h4>")
    if facts.uncovered:
        req_of = {name: rid for name, rid, _ in facts.rows}
        parts.append('<ul class="plain uncovered">' + "".join(
            f"<li><code>{_h(u)}</code>"
            + (f' · <a href="#req-{_anchor(req_of[u])}">{_h(req_of[u])}</a>'
               if u in req_of else "") + "</li>" for u in facts.uncovered) + "</ul>")
    else:
        parts.append('<p class="ok">None: every transition was exercised.</p>')
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
        seed = (f" · Hypothesis seed <code>{f.seed}</code>" if f.seed is not None else "")
        steps = ("".join(f"<li>{_h(s)}</li>" for s in f.steps)
                 or '<li class="meta">(no steps)</li>')
        parts.append(
            f'<article class="failure" id="failure-{n}"><header>'
            f'<h3>Failure {n} · <a href="#req-{_anchor(f.requirement)}">'
            f"{_h(f.requirement)}</a></h3>"
            f'<span class="meta">{len(f.steps)} steps · {len(f.trace)} trace records'
            f"{seed}</span></header>"
            f'<div class="message">{_h(f.message)}</div>'
            f'<h4>Shrunk steps</h4><ol class="steps">{steps}</ol>'
            f"<h4>Sequence of the trace</h4>"
            f'<figure class="seq">{sequence_svg(f.trace)}</figure>'
            f'<div class="files"><a href="{trace_file(n)}">Trace: {trace_file(n)}</a>'
            f'<a href="{replay_file(n)}">Replay: {replay_file(n)}</a>'
            f'<span class="meta">run it with <code>pytest {replay_file(n)}</code></span>'
            "</div></article>")
    parts.append("</section>")
    return "".join(parts)
