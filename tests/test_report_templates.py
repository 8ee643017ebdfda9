"""Tests of the report templates: whatever a run wrote is text in the page and one
cell in a Markdown table, never markup; the style sheet is inlined as it is; and a
template that names something the view lacks fails instead of printing nothing."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import jinja2
import msgspec
import pytest
from test_report import failing, parse_html

from sephb.conformance.suite import _html, _markdown
from sephb.conformance.suite.report import write_report
from sephb.conformance.suite.results import RequirementResult, Status, SuiteResult

#: Markup a hostile client (or its command line) could put into any string of a
#: run: a tag, an attribute breaking out of its quotes, a Markdown table cell's end.
EVIL = '"><blink id="pwn">x</blink>|<img src=x onerror=alert(1)>'


def hostile() -> tuple[SuiteResult, SuiteResult]:
    """A failing run with EVIL in every string the reports show, and a baseline for
    it (so that the changes are shown too)."""
    res = failing()
    res.client = f"./client {EVIL}"
    res.profile = EVIL
    res.settings = {f"key {EVIL}": EVIL}
    res.warnings = [EVIL]
    res.error = EVIL
    res.inconclusive = EVIL
    res.skipped = {next(iter(res.transitions)): EVIL}
    res.requirements = [*res.requirements, RequirementResult(
        f"REQ-{EVIL}", Status.SKIPPED, EVIL, 0, EVIL)]
    res.failures = [msgspec.structs.replace(
        f, message=EVIL, found_by=EVIL, steps=[*f.steps, EVIL]) for f in res.failures]
    baseline = failing()
    baseline.requirements = [r for r in baseline.requirements if r.id != "REQ-X-ABORT"]
    return res, baseline


def test_what_a_run_wrote_is_text_in_the_page(tmp_path: Path) -> None:
    res, baseline = hostile()
    text = write_report(res, tmp_path, baseline=baseline)["index.html"].read_text()
    page = parse_html(text)
    assert not [a for _, a in page.tags if a.get("id") == "pwn" or "onerror" in a]
    assert not {"blink", "img"} & {t for t, _ in page.tags}
    # Every place shows it as written: the facts, the settings, the failures, the
    # requirement and its reason, the skipped row, the warnings, error and timing.
    assert sum(EVIL in chunk for chunk in page.text) >= 15


def test_what_a_run_wrote_stays_in_its_markdown_cell(tmp_path: Path) -> None:
    res, baseline = hostile()
    md = write_report(res, tmp_path, baseline=baseline)["report.md"].read_text()
    # Code spans show their text as it is; everywhere else markup is escaped.
    prose = re.sub(r"(`+).*?\1", "", md)
    assert not re.search(r"(?<!\\)<(blink|img)\b", prose)
    rows = [line for line in prose.splitlines() if line.startswith("| ")]
    for row in rows:
        # An unescaped pipe ends a cell: every row keeps the cells of its table.
        cells = re.split(r"(?<!\\)\|", row)[1:-1]
        assert len(cells) in (2, 4), row
    assert sum("pwn" in row for row in rows) >= 3  # a setting, a requirement, its text
    # Code spans in a cell too: GitHub splits a row at a pipe inside one unless it
    # is escaped (the client and run-again rows hold the client command).
    for row in (line for line in md.splitlines() if line.startswith("| ")):
        assert len(re.split(r"(?<!\\)\|", row)[1:-1]) in (2, 4), row


def test_the_style_sheet_is_inlined_as_it_is(tmp_path: Path) -> None:
    css = (resources.files("sephb.conformance.suite") / "templates" / "report.css"
           ).read_text(encoding="utf-8")
    text = write_report(failing(), tmp_path)["index.html"].read_text()
    [style] = re.findall(r"<style>(.*?)</style>", text, re.S)
    assert style == "\n" + css


def test_a_template_naming_what_the_view_lacks_fails() -> None:
    with pytest.raises(jinja2.UndefinedError):
        _html._environment().get_template("index.html").render()
    with pytest.raises(jinja2.UndefinedError):
        _markdown._environment().get_template("report.md").render()
    # Made once per process, not per report.
    assert _html._environment() is _html._environment()
