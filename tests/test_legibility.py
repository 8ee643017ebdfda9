"""The diagrams are legible as a browser draws them (headless Chromium): no edge label
on another label, a box or a title; every label nearest its own arrow; no text under
10 px -- for the committed diagrams, the README's, and the HTML report's coverage
diagram (see tests/legibility.py for how it measures)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from legibility import measure, problems
from test_report import failing, png_rows, run_chromium

from sephb.conformance.suite.report import write_report
from sephb.diagrams import VIEWS, filename, render
from sephb.diagrams.statechart import chart_edge_label, edge_label
from sephb.model.hierarchy import statechart
from sephb.model.interpretations import INTERPRETATIONS, get

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "diagrams"
#: The width the HTML report fits its coverage diagram to ("Fit to the page"): its
#: content column (report.css: .wrap max-width 1320 px, padding 2 x 28 px, the
#: figure's own padding and border 2 x 11 px).
REPORT_WIDTH = 1320 - 2 * 28 - 2 * 11


@pytest.mark.parametrize("name", sorted(INTERPRETATIONS))
@pytest.mark.parametrize("view", VIEWS)
def test_the_committed_diagrams_are_legible(name: str, view: str, tmp_path: Path) -> None:
    svg = (DOCS / filename(name, "svg", view)).read_bytes()
    assert problems(measure(svg, None, tmp_path)) == []
    if view == "statechart":  # also as the report fits it to the page
        assert problems(measure(svg, REPORT_WIDTH, tmp_path)) == []


@pytest.mark.parametrize("name", sorted(INTERPRETATIONS))
def test_highlighted_and_coverage_drawings_are_legible(name: str, tmp_path: Path) -> None:
    # The longest labels: a step prefix and a count line on every arrow.
    rows = get(name).rows()
    counts = {r.name: 1_000 + i for i, r in enumerate(rows)}
    counts[rows[-1].name] = 0
    path = [(r.source.value, r.dest.value, r.name) for r in rows[:4]]
    for view in VIEWS:
        svg = render(name, "svg", path, counts, view=view, caption="a test path")
        assert problems(measure(svg, None, tmp_path)) == [], view
    chart = render(name, "svg", path, counts, view="statechart", caption="a test path")
    assert problems(measure(chart, REPORT_WIDTH, tmp_path)) == []


def _colours(png: Path) -> set[bytes]:
    _, _, rows = png_rows(png, 10_000)
    return {row[i:i + 3] for row in rows for i in range(0, len(row), 3)}


def test_the_readme_diagram_in_chromium(tmp_path: Path) -> None:
    # The README shows the seed's statechart: a screenshot of it as a page shows it
    # (an <img>), and its labels are all there and legible.
    target = re.search(r"!\[[^\]]*\]\((docs/diagrams/[^)]+\.svg)\)",
                       (ROOT / "README.md").read_text())
    assert target is not None and target[1] == "docs/diagrams/heartbeat-seed-statechart.svg"
    svg = ROOT / target[1]
    page = tmp_path / "readme.html"
    page.write_text(f'<!doctype html><body style="margin:0"><img src="{svg.as_uri()}">')
    shot = tmp_path / "readme.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1800,1600",
                 "--allow-file-access-from-files", page.as_uri())
    colours = _colours(shot)
    assert bytes.fromhex("e3ecf5") in colours  # a rest state's fill
    assert bytes.fromhex("f5f7fa") in colours  # a frame's fill
    g = measure(svg.read_bytes(), None, tmp_path)
    want = {chart_edge_label(e) for e in statechart(get("seed")).edges}
    assert want <= {lb.text for lb in g.labels}
    assert problems(g) == []


def test_the_report_coverage_diagram_in_chromium(tmp_path: Path) -> None:
    res = failing()
    written = write_report(res, tmp_path / "report")
    shot = tmp_path / "coverage.png"
    # The whole page (headless Chromium does not scroll a screenshot to #coverage):
    # the statechart shows with its rest states and the failure's check-in in red.
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,6000",
                 written["index.html"].as_uri())
    colours = _colours(shot)
    assert bytes.fromhex("e3ecf5") in colours  # a rest state's fill
    assert bytes.fromhex("fde3df") in colours  # a state on the failure's path
    svg = written["coverage.svg"].read_bytes()
    for width in (None, REPORT_WIDTH):  # its default size, and fitted to the page
        g = measure(svg, width, tmp_path)
        assert problems(g) == [], width
    texts = " ".join(t.text for t in g.texts)
    for e in statechart(get("documented")).edges:
        assert chart_edge_label(e).split("\n")[0] in texts
    assert "Highlighted: the check-in of failure 1" in texts
    full = measure(written["coverage-full.svg"].read_bytes(), None, tmp_path)
    assert problems(full) == []
    assert {edge_label(r).split("\n")[1] for r in get("documented").rows()} <= {
        t.text for t in full.texts}
