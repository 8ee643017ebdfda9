"""The Markdown report of a result (``report.md``)."""

from __future__ import annotations

import re
from typing import Final

from sephb.conformance.suite._facts import (
    COVERAGE_FILE,
    _cases,
    _duration,
    _expected_text,
    _Facts,
    _marked,
    _program,
    _reliability_text,
    _seed,
    _site,
    replay_file,
    trace_file,
)
from sephb.conformance.suite._seqdiagram import sequence_mermaid, xml_safe
from sephb.conformance.suite.results import (
    Status,
    Tally,
    replay_command,
    shrink_text,
)

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
    if res.inconclusive:
        out += [f"> **Timing cannot be trusted:** {_md(res.inconclusive)}", ""]
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
                f"- Site: {_md(_site(f))}",
                f"- Where: {_md(_marked(f))}"]
        expected = _expected_text(f)
        if expected is not None:
            out.append(f"- Expected: {_md(expected)}")
        out += [f"- Found by: {_md(f.found_by)} test case"
                + (f" (seed {f.seed})" if f.seed is not None else "")]
        if shrink_text(f):
            out.append(f"- Shrinking and replays: {_md(shrink_text(f))}")
        out.append("")
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
