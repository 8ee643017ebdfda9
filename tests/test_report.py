"""Tests of the conformance reports: every file written, JUnit that parses, Markdown
and HTML that show every requirement, an HTML page that is self-contained, a coverage
diagram that marks what was never exercised, sequence diagrams of traces, the
reliability claim only when earned -- and the page as a real browser draws it."""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET  # our own output: no untrusted XML

import msgspec
import pytest

from sephb.conformance.suite._facts import failure_path
from sephb.conformance.suite._seqdiagram import (
    FAILURE_EVENTS,
    layout,
    sequence_mermaid,
    sequence_svg,
)
from sephb.conformance.suite.report import (
    CONFIDENCE,
    RELIABILITY_TARGET,
    min_clean_cases,
    reliability,
    write_junit,
    write_report,
)
from sephb.conformance.suite.results import (
    Failure,
    RequirementResult,
    Status,
    SuiteResult,
    dumps,
    loads,
)
from sephb.diagrams import render
from sephb.diagrams.statechart import UNCOVERED_INK
from sephb.model.errors import UsageError
from sephb.model.hierarchy import statechart
from sephb.model.interpretations import get
from sephb.model.protocol import REQUIREMENTS

PATH_INK = "#c62828"

SVG = "{http://www.w3.org/2000/svg}"
STATEMENT = "0.999 reliability at 95% confidence"
# A message a hostile client under test could provoke: markup, quotes, an XML
# terminator, an ANSI escape (not allowed in XML 1.0) and Markdown table syntax.
NASTY = 'client sent <script>alert("x")</script> & ]]> \x1b[31m | `tick` |'


def requirements_of(interp: str, failed: str | None = None,
                    uncovered: str | None = None) -> list[RequirementResult]:
    ids = sorted({r.requirement for r in get(interp).rows()})
    out = []
    for i, rid in enumerate(ids):
        status = (Status.FAILED if rid == failed else
                  Status.NOT_EXERCISED if rid == uncovered else Status.PASSED)
        hits = 0 if status is Status.NOT_EXERCISED else 10 + i
        out.append(RequirementResult(rid, status, REQUIREMENTS[rid].text, hits))
    return out


def trace() -> list[dict[str, object]]:
    """A documented-interpretation check-in as the reference client and the servers
    recorded it: m1 refuses, m2 answers, the GUP refuses, content from m2."""
    m2: dict[str, object] = {"server": "m2", "role": "manager", "conn": 1,
                             "addr": "127.0.0.3", "port": 8014, "by": "server"}
    at_m1: dict[str, object] = {"addr": "127.0.0.2", "port": 8014, "by": "client"}
    at_m2: dict[str, object] = {"addr": "127.0.0.3", "port": 8014, "by": "client"}
    me: dict[str, object] = {"by": "client"}
    steps: list[tuple[int, str, dict[str, object]]] = [
        (0, "HEARTBEAT_DUE", me),
        (5, "CONNECT", at_m1),
        (9, "CONNECT_FAILED", {**me, "error": "ConnectionRefusedError: [Errno 111]"}),
        (10, "CONNECT", at_m2),
        (12, "CONNECTED", me),
        (13, "GET_INDEX", at_m2),
        (14, "GET_INDEX", {**m2, "method": "GET", "path": "/index.dat", "serial": ""}),
        (15, "INDEX_RECEIVED", {**m2, "status": 200, "changed": True}),
        (16, "INDEX_RECEIVED", {**me, "changed": True, "source": "gup"}),
        (20, "DOWNLOAD_GUP", {"addr": "127.0.0.4", "port": 2967, "by": "client"}),
        (24, "DOWNLOAD_FAILED", {**me, "error": "refused"}),
        (25, "DOWNLOAD_MANAGER", at_m2),
        (30, "CONTENT_RECEIVED", me),
        (31, "UPLOAD_LOGS", at_m2),
        (32, "UPLOAD_LOGS", {**m2, "ids": ["a", "b"]}),
        (40, "REQUEST_FAILED", {**m2, "status": 503, "error": NASTY}),
        (41, "DISCONNECT", me),
    ]
    return [{"t": t, "client": "c1", "event": name, **fields}
            for t, name, fields in steps]


REPLAY = ('"""Replay of failure 1."""\n\n\ndef test_replay() -> None:\n'
          '    assert "é" != "e"\n')


def conformant(cases: int = 3000) -> SuiteResult:
    rows = get("seed").rows()
    return SuiteResult(
        client="reference", adapter="in-process", interpretation="seed",
        profile="ci", seed=1234, cases=cases, steps=cases * 21, duration_s=93.4,
        transitions={r.name: 100 + 7 * i for i, r in enumerate(rows)},
        requirements=requirements_of("seed"), failures=[])


UNCOVERED_ROW = "DOWNLOADING_GUP--DOWNLOAD_FAILED-->DOWNLOADING_MANAGER"


def failing() -> SuiteResult:
    rows = get("documented").rows()
    counts = {r.name: 3 + i for i, r in enumerate(rows)}
    counts[UNCOVERED_ROW] = 0
    return SuiteResult(
        client="fault:drop-logs", adapter="wire", interpretation="documented",
        profile="quick", seed=None, cases=5000, steps=61_234, duration_s=4.25,
        transitions=counts,
        requirements=requirements_of("documented", failed="REQ-X-ABORT",
                                     uncovered="REQ-4-GUP-FALLBACK"),
        failures=[
            Failure("REQ-X-ABORT", NASTY,
                    ["state = HeartbeatMachine()", "state.heartbeat()",
                     "state.fault(step=5, mode='error')", "state.teardown()"],
                    trace(), REPLAY, seed=42),
            Failure("REQ-X-ABORT", "logs lost after REQUEST_FAILED", ["state.x()"],
                    trace()[:4], "def test_two() -> None:\n    pass\n"),
        ],
        warnings=["idle heartbeat of 5,400 B is above the seed's 3-5 KB"])


FILES = {"index.html", "report.md", "junit.xml", "result.json", "coverage.svg",
         "coverage-full.svg"}


# --- files --------------------------------------------------------------------------


def test_conformant_report_writes_every_file(tmp_path: Path) -> None:
    res = conformant()
    written = write_report(res, tmp_path / "out")
    assert set(written) == FILES
    for name, path in written.items():
        assert path == tmp_path / "out" / name and path.stat().st_size > 0
    assert not (tmp_path / "out" / "failures").exists()
    assert loads((tmp_path / "out" / "result.json").read_bytes()) == res


def test_failing_report_writes_trace_and_replay_of_each_failure(tmp_path: Path) -> None:
    res = failing()
    written = write_report(res, tmp_path)
    assert set(written) == FILES | {
        "failures/failure-1.ndjson", "failures/test_replay_1.py",
        "failures/failure-2.ndjson", "failures/test_replay_2.py"}
    for n, failure in enumerate(res.failures, 1):
        lines = written[f"failures/failure-{n}.ndjson"].read_text().splitlines()
        assert [json.loads(line) for line in lines] == failure.trace  # no scale known
        assert written[f"failures/test_replay_{n}.py"].read_text() == failure.replay
    assert loads(written["result.json"].read_bytes()) == res
    # A trace says at what time scale it was recorded (a header line first).
    res.settings = {"time scale": "0.01"}
    lines = write_report(res, tmp_path / "scaled")["failures/failure-1.ndjson"
                                                  ].read_text().splitlines()
    assert json.loads(lines[0]) == {"sephb": "trace", "version": 1, "time_scale": 0.01,
                                    "writer": "suite"}
    assert [json.loads(line) for line in lines[1:]] == res.failures[0].trace


def test_a_new_report_removes_the_failure_files_of_an_old_one(tmp_path: Path) -> None:
    write_report(failing(), tmp_path)
    (tmp_path / "failures" / "notes.txt").write_text("mine")
    write_report(conformant(), tmp_path)
    assert sorted(p.name for p in (tmp_path / "failures").iterdir()) == ["notes.txt"]


# --- JUnit ----------------------------------------------------------------------------


def junit_cases(root: ET.Element, interp: str = "documented") -> dict[str, ET.Element]:
    """The requirement test cases by requirement id (classname sephb.<interp>.<id>)."""
    return {str(c.get("classname")).removeprefix(f"sephb.{interp}."): c
            for c in root.iter("testcase") if c.get("name") == "requirement"}


def test_junit_has_one_testcase_per_requirement_with_its_failure(tmp_path: Path) -> None:
    res = failing()
    root = ET.parse(write_report(res, tmp_path)["junit.xml"]).getroot()
    cases = junit_cases(root)
    assert sorted(cases) == sorted(r.id for r in res.requirements)
    for req in res.requirements:
        children = list(cases[req.id])
        if req.status is Status.PASSED:
            assert children == [], req.id
            continue
        [failure] = children
        assert failure.tag == "failure"
        assert failure.get("type") == req.status.value
    aborted = cases["REQ-X-ABORT"].find("failure")
    assert aborted is not None
    # The message comes through intact, only with the ESC that XML cannot carry
    # replaced; the body has both failures with their numbered steps, in words.
    assert aborted.get("message") == NASTY.replace("\x1b", "\ufffd") + " (and 1 more)"
    body = aborted.text or ""
    assert "1. state = HeartbeatMachine()" in body and "Run again: sephb conform" in body
    assert f"{tmp_path}/failures/test_replay_2.py" in body  # a path that exists
    assert (tmp_path / "failures" / "test_replay_2.py").is_file()
    not_exercised = cases["REQ-4-GUP-FALLBACK"].find("failure")
    assert not_exercised is not None
    assert "never exercised" in str(not_exercised.get("message"))
    # One test case per transition, under its requirement's classname; the row the
    # run never reached (it stopped at the failure) is skipped, not a failure.
    rows = {str(c.get("name")).removeprefix("transition "): c
            for c in root.iter("testcase") if c.get("name") != "requirement"}
    assert set(rows) == set(res.transitions)
    skipped = rows[UNCOVERED_ROW].find("skipped")
    assert skipped is not None and "not reached" in str(skipped.get("message"))
    [suite] = root.iter("testsuite")
    assert suite.get("tests") == str(len(res.requirements) + len(res.transitions))
    assert suite.get("failures") == "2"  # REQ-X-ABORT, REQ-4-GUP-FALLBACK
    assert suite.get("skipped") == "1"
    assert float(str(suite.get("time"))) == pytest.approx(res.duration_s)
    assert all(c.get("time") is not None for c in root.iter("testcase"))
    assert "5,400 B" in (suite.findtext("system-out") or "")


def test_junit_of_a_conformant_run_has_no_failure(tmp_path: Path) -> None:
    path = write_junit(conformant(), tmp_path / "ci" / "junit.xml")
    root = ET.parse(path).getroot()
    [suite] = root.iter("testsuite")
    assert suite.get("failures") == "0" and suite.get("name") == "sephb.seed"
    assert suite.get("errors") == "0" and suite.get("skipped") == "0"
    assert not list(root.iter("failure"))
    assert list(junit_cases(root, "seed")) == [r.id for r in conformant().requirements]


def test_skipped_requirements_and_rows_are_junit_skips(tmp_path: Path) -> None:
    """What an adapter cannot observe is <skipped> with its reason: a conformant
    wire run is a green build."""
    res = conformant()
    row = next(iter(res.transitions))
    res.transitions[row] = 0
    res.skipped = {row: "reaches no server"}
    res.requirements = [*res.requirements, RequirementResult(
        "REQ-SIZE-MAX", Status.SKIPPED, REQUIREMENTS["REQ-SIZE-MAX"].text, 0,
        "the client's own logs decide")]
    assert res.conformant
    root = ET.parse(write_junit(res, tmp_path / "j.xml")).getroot()
    [suite] = root.iter("testsuite")
    assert suite.get("failures") == "0" and suite.get("skipped") == "2"
    messages = [str(s.get("message")) for s in root.iter("skipped")]
    assert any("reaches no server" in m for m in messages)
    assert any("the client's own logs decide" in m for m in messages)


def test_junit_alone_carries_the_trace_inline(tmp_path: Path) -> None:
    """--junit without --report names no file that is not there: the failure's
    trace is in the body; with --report it names that report's files."""
    res = failing()
    alone = write_junit(res, tmp_path / "a.xml").read_text()
    assert "failures/" not in alone
    assert '"event":"UPLOAD_LOGS"' in alone and "sephb conform" in alone
    both = write_junit(res, tmp_path / "b.xml", report_dir=tmp_path / "r").read_bytes()
    assert both == write_report(res, tmp_path / "r")["junit.xml"].read_bytes()


# --- Markdown ---------------------------------------------------------------------------


def test_markdown_lists_every_requirement_with_its_status(tmp_path: Path) -> None:
    res = failing()
    md = write_report(res, tmp_path)["report.md"].read_text()
    lines = md.splitlines()
    for req in res.requirements:
        [row] = [line for line in lines if line.startswith(f"| {req.id} |")]
        assert req.status.label in row, row
    assert "# sephb conformance report: NON-CONFORMANT" in md
    assert "](coverage.svg)" in md
    assert f"| `{UNCOVERED_ROW}` | REQ-4-GUP-FALLBACK | 0 | not reached |" in md
    assert "```mermaid\nsequenceDiagram\n" in md
    assert "[failures/failure-1.ndjson](failures/failure-1.ndjson)" in md
    assert "[failures/test_replay_2.py](failures/test_replay_2.py)" in md
    assert "<script>" not in md  # escaped: \<script\>
    assert "5,400 B" in md


# --- HTML -------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> Tags:
    p = Tags()
    p.feed(text)
    p.close()
    return p


RESOURCE_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "poster", "data",
                  "background", "formaction"}


@pytest.mark.parametrize("make", [conformant, failing])
def test_html_is_self_contained(tmp_path: Path, make: Callable[[], SuiteResult]) -> None:
    text = write_report(make(), tmp_path)["index.html"].read_text()
    page = parse_html(text)
    tags = [t for t, _ in page.tags]
    assert tags.count("script") == 0, "the page must not need JavaScript"
    assert not {"link", "iframe", "object", "embed", "img", "base"} & set(tags)
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in RESOURCE_ATTRS and value:
                # Only anchors and files next to the page.
                assert not re.match(r"[a-z][a-z0-9+.-]*:|//", value, re.I), (tag, name,
                                                                              value)
                assert ".." not in value.split("/")
    style = "".join(re.findall(r"<style>(.*?)</style>", text, re.S))
    assert style and "url(" not in style and "@import" not in style
    assert text.count("<svg") == 1 + len(make().failures)


def test_html_shows_every_requirement_and_escapes_what_runs_wrote(tmp_path: Path) -> None:
    res = failing()
    text = write_report(res, tmp_path)["index.html"].read_text()
    page = parse_html(text)
    rows = {attrs.get("id"): attrs.get("class") for tag, attrs in page.tags
            if tag == "tr" and "req" in (attrs.get("class") or "").split()}
    assert rows == {f"req-{r.id}": f"req {r.status.value}" for r in res.requirements}
    assert "NON-CONFORMANT" in text
    for field in ("fault:drop-logs", "wire", "documented", "quick", "5,000", "61,234"):
        assert field in "".join(page.text), field
    # The hostile message is text, never markup, and reads as it was written (with
    # the ESC that XML cannot carry replaced).
    assert "<script>" not in text and "&lt;script&gt;alert(" in text
    assert "\x1b" not in text
    assert NASTY.replace("\x1b", "\ufffd") in page.text
    assert f"<code>{UNCOVERED_ROW.replace('>', '&gt;')}</code>" in text
    for n in (1, 2):
        assert f'href="failures/failure-{n}.ndjson"' in text
        assert f'href="failures/test_replay_{n}.py"' in text
    assert "5,400 B" in text


# --- reliability ----------------------------------------------------------------------


def test_the_claim_needs_2995_clean_cases() -> None:
    # The least n with 0.999**n <= 0.05 (the exact zero-failure bound reaches 0.999).
    n = min_clean_cases()
    assert n == 2995
    assert RELIABILITY_TARGET ** n <= 1 - CONFIDENCE < RELIABILITY_TARGET ** (n - 1)
    assert reliability(conformant(n)).statement == STATEMENT
    assert reliability(conformant(n - 1)).statement is None
    rel = reliability(conformant(30_000))
    assert rel.rule_of_three == pytest.approx(1 - 3 / 30_000)
    assert rel.bound == pytest.approx(0.05 ** (1 / 30_000))
    assert reliability(failing()).cases == 0  # no clean cases in a failing run


@pytest.mark.parametrize(("res", "earned"), [
    (conformant(2995), True),
    (conformant(2994), False),
    (conformant(100), False),
    (failing(), False),  # 5,000 cases, but not conformant
])
def test_the_reliability_statement_appears_only_when_earned(
    tmp_path: Path, res: SuiteResult, earned: bool
) -> None:
    out = write_report(res, tmp_path)
    html_text = out["index.html"].read_text()
    md = out["report.md"].read_text()
    assert (STATEMENT in html_text) is earned
    assert (STATEMENT in md) is earned
    if res.conformant:
        # The bound is shown either way, computed from n.
        assert f"{1 - 3 / res.cases:.6f}" in html_text
        assert f"{0.05 ** (1 / res.cases):.6f}" in md


# --- coverage diagram ---------------------------------------------------------------------


def edge_groups(svg: bytes) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {str(g.get("id")): g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"}


def test_coverage_svg_shows_counts_and_marks_uncovered_rows(tmp_path: Path) -> None:
    # The full view: one arrow per row, its count; the failure's check-in in red.
    res = failing()
    svg = write_report(res, tmp_path)["coverage-full.svg"].read_bytes()
    groups = edge_groups(svg)
    assert set(groups) == {r.name for r in get("documented").rows()}
    on_path = {row for _, _, row in failure_path(get("documented"), res.failures[0],
                                                 res.adapter)}
    # (the servers' records explain it as a check-in with nothing to download that
    # ends on the failed log upload: the GUP's refusal is not theirs to see)
    assert on_path == {"IDLE--HEARTBEAT_DUE-->CONNECTING",
                       "CONNECTING--CONNECTED-->FETCHING_INDEX",
                       "FETCHING_INDEX--INDEX_RECEIVED[no_download]-->UPLOADING_LOGS",
                       "UPLOADING_LOGS--REQUEST_FAILED-->IDLE"}
    for name, g in groups.items():
        text = " ".join(t.text or "" for t in g.iter(f"{SVG}text"))
        strokes = {p.get("stroke") for p in g.iter(f"{SVG}path")}
        dashed = any(p.get("stroke-dasharray") for p in g.iter(f"{SVG}path"))
        count = res.transitions[name]
        assert (f"{count:,}× exercised" if count else "0× NOT EXERCISED") in text, name
        if name in on_path:  # the path wins: it is what the reader looks for
            assert strokes == {PATH_INK} and re.match(r"\(\d+\) ", text), name
        elif count:
            assert UNCOVERED_INK not in strokes and not dashed, name
        else:
            assert strokes == {UNCOVERED_INK} and dashed, name
    assert b"Coverage: 27 of 28 transitions exercised" in svg
    # (Graphviz writes a hyphen in text as &#45;)
    assert "Highlighted: the check-in of failure 1 (REQ-X-ABORT) up to its violation, " \
        "4 steps" in html.unescape(svg.decode())


def test_the_coverage_statechart_counts_each_frame_arrow_over_its_rows(
        tmp_path: Path) -> None:
    res = failing()
    res.transitions["UPLOADING_LOGS--REQUEST_FAILED-->IDLE"] = 0
    svg = write_report(res, tmp_path)["coverage.svg"].read_bytes()
    groups = edge_groups(svg)
    chart = statechart(get("documented"))
    assert set(groups) == {e.name for e in chart.edges}
    for e in chart.edges:
        text = " ".join(t.text or "" for t in groups[e.name].iter(f"{SVG}text"))
        counts = [res.transitions[r] for r in e.rows]
        want = (f"{sum(counts):,}× exercised" if all(counts) else "0× NOT EXERCISED"
                if len(counts) == 1 else
                f"{counts.count(0)} of {len(counts)} transitions NOT EXERCISED")
        assert want in text, (e.name, text)
    assert "1 of 4 transitions NOT EXERCISED" in " ".join(
        t.text or "" for t in groups["SESSION_UP--REQUEST_FAILED-->IDLE"].iter(
            f"{SVG}text"))
    assert b"Statechart view" in svg and b"Frame: a superstate" in svg


def test_coverage_overlay_in_every_format_and_its_errors() -> None:
    counts = {r.name: 1 for r in get("seed").rows()}
    del counts["IDLE--HEARTBEAT_DUE-->CONNECTING"]  # absent counts as never exercised
    mmd = render("seed", "mermaid", counts=counts).decode()
    assert ("IDLE --> CONNECTING: HEARTBEAT_DUE<br/>REQ-1-PRIORITY<br/>0× NOT EXERCISED"
            in mmd)
    # Nothing but IDLE's HEARTBEAT_DUE enters CONNECTING: the state is marked too.
    assert "Class CONNECTING s_uncovered" in mmd
    dot = render("seed", "dot", counts=counts).decode()
    assert dot.count("style=dashed") == 1  # the edge
    assert re.findall(r'^\t(\w+) \[.*style="rounded,filled,dashed"', dot, re.M) == [
        "CONNECTING"]
    plain = render("seed", "dot").decode()
    assert "NOT EXERCISED" not in plain and "exercised" not in plain
    with pytest.raises(UsageError, match="not a row of the 'seed'"):
        render("seed", "svg", counts={"CONNECTING--CONNECT_FAILED[next_manager]-->"
                                      "CONNECTING": 3})
    with pytest.raises(UsageError, match="expected an integer >= 0"):
        render("seed", "dot", counts={"IDLE--HEARTBEAT_DUE-->CONNECTING": -1})


# --- sequence diagrams -------------------------------------------------------------------


def test_sequence_layout_follows_the_trace() -> None:
    recs = trace()
    seq = layout(recs)
    assert [(line.title, line.role) for line in seq.lifelines] == [
        ("c1", "client"), ("127.0.0.2:8014", "manager"), ("m2", "manager"),
        ("127.0.0.4:2967", "gup")]
    assert len(seq.arrows) == len(recs)
    by_name = {(a.name, a.observer): a for a in seq.arrows}
    # Actions go from the client, events come back; client-side answers go to the
    # peer of the request before them, and m2 is one lifeline for both observers.
    def ends(name: str, observer: int) -> tuple[int, int]:
        a = by_name[name, observer]
        return a.source, a.dest

    assert ends("CONNECT_FAILED", 0) == (1, 0)
    assert ends("GET_INDEX", 0) == ends("GET_INDEX", 2) == (0, 2)
    assert ends("INDEX_RECEIVED", 0) == ends("INDEX_RECEIVED", 2) == (2, 0)
    assert by_name["DOWNLOAD_FAILED", 0].source == 3
    assert by_name["DISCONNECT", 0].dest == 2
    heartbeat = seq.arrows[0]
    assert heartbeat.source == heartbeat.dest == 0  # the client's own timer
    assert [a.index for a in seq.arrows if a.failure] == [3, 11, 16]
    assert {"CONNECT_FAILED", "REQUEST_FAILED", "DOWNLOAD_FAILED", "SESSION_TIMEOUT",
            "CONNECTION_LOST"} == set(FAILURE_EVENTS)


def test_sequence_svg_has_one_arrow_per_record_labelled_and_escaped() -> None:
    svg = sequence_svg(trace())
    root = ET.fromstring(svg)  # well-formed despite the nasty error text
    msgs = [g for g in root.iter(f"{SVG}g") if "msg" in str(g.get("class")).split()]
    assert len(msgs) == len(trace())
    failures = [g for g in msgs if "failure" in str(g.get("class")).split()]
    assert len(failures) == 3
    label = "".join(msgs[5].itertext())  # GET_INDEX by the client, at t=13 to m2
    assert "GET_INDEX" in label and "13 ms" in label and ":8014" in label
    texts = "".join(root.itertext())
    assert "DOWNLOAD_GUP" in texts and ":2967" in texts
    assert 'alert("x")' in texts and "<script>" not in svg
    lifelines = [g for g in root.iter(f"{SVG}g") if g.get("class") == "lifeline"]
    assert len(lifelines) == 4


def test_sequence_svg_cuts_long_traces() -> None:
    recs = trace() * 40
    root = ET.fromstring(sequence_svg(recs, max_rows=50))
    msgs = [g for g in root.iter(f"{SVG}g") if "msg" in str(g.get("class")).split()]
    assert len(msgs) == 50
    assert f"{len(recs) - 50:,} more records" in "".join(root.itertext())


def test_sequence_mermaid() -> None:
    mmd = sequence_mermaid(trace())
    lines = mmd.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert sum(1 for line in lines if line.startswith("  participant ")) == 4
    msgs = [line for line in lines if re.match(r"  P\d-{1,2}>>P\d: ", line)]
    assert len(msgs) == len(trace())
    assert "  P0->>P2: GET_INDEX 13 ms :8014" in lines
    assert "  P2-->>P0: INDEX_RECEIVED 15 ms :8014" in lines
    assert lines.count("  rect rgb(253, 236, 234)") == 3 == lines.count("  end")
    assert not any(c in line.split(": ", 1)[-1] for line in msgs for c in "#;<>")


# --- in a real browser ---------------------------------------------------------------


def chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("chromium not found (/usr/bin/chromium or on PATH): `make test` installs "
                "it (apt-get install chromium)")


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True)


def png_rows(path: Path, rows: int) -> tuple[int, int, list[bytes]]:
    """Width, height and the first ``rows`` scanlines (RGB or RGBA, 8 bits) of a PNG,
    decoded with zlib and the PNG filters: enough to look at pixels without Pillow."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (length,), chunk = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if chunk == b"IHDR":
            ihdr = body
        elif chunk == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", ihdr[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompressobj().decompress(idat, (rows + 1) * (width * bpp + 1))
    stride = width * bpp
    out: list[bytes] = []
    prev = bytearray(stride)
    for y in range(min(rows, height)):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, cur = line[0], bytearray(line[1:])
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                cur[i] = (cur[i] + a) & 255
            elif kind == 2:
                cur[i] = (cur[i] + b) & 255
            elif kind == 3:
                cur[i] = (cur[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 255
        out.append(bytes(cur))
        prev = cur
    return width, height, [r if bpp == 3 else _rgb(r) for r in out]


def _rgb(rgba: bytes) -> bytes:
    return b"".join(rgba[i:i + 3] for i in range(0, len(rgba), 4))


def test_the_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    res = failing()
    page = write_report(res, tmp_path / "report")["index.html"]
    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    parsed = parse_html(dom)
    req_rows = [a.get("id") for t, a in parsed.tags
                if t == "tr" and "req" in (a.get("class") or "").split()]
    assert req_rows == [f"req-{r.id}" for r in res.requirements]
    # The state diagram: one <svg class="statechart"> whose edges are the table's rows.
    svgs = [a for t, a in parsed.tags if t == "svg"]
    assert sum(1 for a in svgs if a.get("class") == "statechart") == 1
    edges = [a.get("id") for t, a in parsed.tags if t == "g" and a.get("class") == "edge"]
    assert sorted(map(str, edges)) == sorted(
        e.name for e in statechart(get("documented")).edges)
    # The full view is one click away.
    assert any(t == "a" and a.get("id") == "full-view" and a.get("href") ==
               "coverage-full.svg" for t, a in parsed.tags)
    assert sum(1 for a in svgs if a.get("class") == "seq") == len(res.failures)
    assert "NON-CONFORMANT" in "".join(parsed.text)

    shot = tmp_path / "page.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000",
                 page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000
    width, height, top = png_rows(shot, 160)
    assert (width, height) == (1400, 2000)
    colours = {row[i:i + 3] for row in top for i in range(0, len(row), 3)}
    assert len(colours) > 50, f"the header looks blank: {len(colours)} colours"
    # The stripe atop a failing report is the failure red of the CSS (#c62828).
    assert bytes.fromhex("c62828") in {top[2][i:i + 3] for i in range(0, width * 3, 3)}


def test_chromium_is_found_or_the_test_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    real = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda self: False if "chromium" in str(self)
                        else real(self))
    with pytest.raises(pytest.fail.Exception, match="make test"):
        chromium()


def test_results_round_trip_through_json_unchanged() -> None:
    # The reports may be rewritten from result.json: nothing must be lost on the way.
    res = failing()
    assert msgspec.json.decode(msgspec.json.encode(res), type=SuiteResult) == res


# --- reports of unusual results ------------------------------------------------------


def test_a_report_is_written_even_when_the_diagram_cannot_be_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sephb.diagrams

    def no_dot(*args: object, **kwargs: object) -> bytes:
        raise UsageError("drawing svg needs Graphviz's `dot` on PATH")

    monkeypatch.setattr(sephb.diagrams, "render", no_dot)
    written = write_report(failing(), tmp_path)
    assert "coverage.svg" not in written
    text = written["index.html"].read_text()
    assert "No diagram: drawing svg needs Graphviz" in text
    assert f"<code>{UNCOVERED_ROW.replace('>', '&gt;')}</code>" in text  # still listed
    assert "No diagram: drawing svg needs Graphviz" in written["report.md"].read_text()


def test_unknown_interpretations_and_rows_are_reported(tmp_path: Path) -> None:
    res = failing()
    res.interpretation = "vendor-2026"
    res.transitions = {"A--X-->B": 0, "B--Y-->A": 5}
    written = write_report(res, tmp_path)
    assert "coverage.svg" not in written
    text = written["index.html"].read_text()
    assert "not one this sephb knows" in text
    assert "(1 passed, 1 not reached)" in text
    root = ET.parse(written["junit.xml"]).getroot()
    assert {c.get("name") for c in root.iter("testcase")
            if c.get("classname") == "sephb.vendor-2026.transitions"} == {
        "transition A--X-->B", "transition B--Y-->A"}
    # Counts for rows a known table lacks are reported, not silently dropped.
    res = failing()
    res.transitions = {**res.transitions, "NOT--A-->ROW": 2}
    del res.transitions["IDLE--HEARTBEAT_DUE-->CONNECTING"]
    text = write_report(res, tmp_path / "b")["index.html"].read_text()
    assert "not rows of the 'documented' table: NOT--A-->ROW" in "".join(
        parse_html(text).text)
    assert "no count for 1 row(s)" in text


def test_empty_traces_and_empty_runs(tmp_path: Path) -> None:
    assert ET.fromstring(sequence_svg([])).tag == f"{SVG}svg"
    assert sequence_mermaid([]) == "sequenceDiagram\n"
    res = SuiteResult(client="c", adapter="in-process", interpretation="seed",
                      profile="ci", seed=None, cases=0, steps=0, duration_s=0.0,
                      transitions={}, requirements=[], failures=[])
    text = write_report(res, tmp_path)["index.html"].read_text()
    assert "No reliability claim: the run has no cases." in text


def _colours(rows: list[bytes]) -> set[bytes]:
    return {row[i:i + 3] for row in rows for i in range(0, len(row), 3)}


def test_a_failed_run_opens_on_its_failure_in_headless_chromium(tmp_path: Path) -> None:
    """A real failing run: the page opens on the failure (before the requirements),
    its violating record is marked in the sequence diagram with the number the message
    gives, and the first screenful shows it; a passing run's page is green."""
    from sephb.conformance import suite

    res = suite.run(get("seed"), factory=suite.environment_for("sensors-before-logs"),
                    client="sensors-before-logs")
    [f] = res.failures
    assert f.record is not None
    page = write_report(res, tmp_path / "failed")["index.html"]
    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert dom.index('id="failures"') < dom.index('id="requirements"')
    parsed = parse_html(dom)
    [marked] = [a for t, a in parsed.tags if a.get("id") == "violation"]
    assert "violation" in str(marked.get("class")).split()
    assert f"violation (record {f.record + 1})" in "".join(parsed.text)
    assert f"record {f.record + 1} " in f.message
    # The program is told in the domain's words, with the replay command.
    assert "the client starts in" in dom and "Run again: " in "".join(parsed.text)

    shot = tmp_path / "failed.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,900",
                 page.as_uri())
    _, _, rows = png_rows(shot, 900)
    # The failure's message box (#fdecea) is on the first screen, under the red stripe.
    assert bytes.fromhex("c62828") in _colours(rows[:8])
    assert bytes.fromhex("fdecea") in _colours(rows)

    ok = suite.run(get("seed"))
    assert ok.conformant
    page = write_report(ok, tmp_path / "passed")["index.html"]
    shot = tmp_path / "passed.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,900",
                 page.as_uri())
    _, _, rows = png_rows(shot, 900)
    assert bytes.fromhex("1b7f3b") in _colours(rows[:8])  # the green stripe
    assert bytes.fromhex("c62828") not in _colours(rows)


def test_a_schema_1_result_still_loads() -> None:
    """result.json of an older sephb (NOT_COVERED) reads with today's verdicts."""
    old = json.loads(dumps(failing()))
    del old["schema"]
    for r in old["requirements"]:
        if r["status"] == "NOT_EXERCISED":
            r["status"] = "NOT_COVERED"
    res = loads(json.dumps(old).encode())
    assert Status.NOT_REACHED in {r.status for r in res.requirements}  # it had failures
    old["failures"] = []
    res = loads(json.dumps(old).encode())
    assert Status.NOT_EXERCISED in {r.status for r in res.requirements}


def test_the_mermaid_trace_marks_the_violating_record() -> None:
    mmd = sequence_mermaid(trace(), mark=5)
    lines = mmd.splitlines()
    note = lines.index("  Note over P0,P2: violation (record 6)")
    assert "GET_INDEX 13 ms" in lines[note - 1]
    assert "violation" not in sequence_mermaid(trace())
