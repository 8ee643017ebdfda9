"""Tests of sephb.diagrams: every row drawn once, highlights exact, committed docs fresh."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree as ET  # our own output: no untrusted XML

import pytest

from sephb.diagrams import FORMATS, filename, is_stale, render, write_all
from sephb.diagrams.statechart import _machine_graph, edge_label
from sephb.model.errors import UsageError
from sephb.model.graph import Topology, abstract_graph, checkin_paths, concrete_graph
from sephb.model.interpretations import INTERPRETATIONS, Interpretation, Selection, get
from sephb.model.protocol import State, Switch

DOCS = Path(__file__).resolve().parent.parent / "docs" / "diagrams"
NAMES = sorted(INTERPRETATIONS)
PATH_INK = "#c62828"
SVG_NS = "{http://www.w3.org/2000/svg}"

# One DOT edge statement, as the graphviz library writes it.
DOT_EDGE = re.compile(r"^\t(\w+) -> (\w+) \[(.*)\]$", re.M)
# One Mermaid transition (the initial-state arrow [*] --> IDLE is not a row).
MMD_EDGE = re.compile(r"^  (\w+) --> (\w+): (.*)$", re.M)


def dot_attr(attrs: str, key: str) -> str | None:
    m = re.search(rf'(?:^| ){key}=("(?:[^"\\]|\\.)*"|\S+)', attrs)
    return m.group(1).strip('"') if m else None


def dot_edges(src: str) -> list[tuple[str, str, str]]:
    """(source, dest, attribute text) of every edge statement."""
    return [(m[1], m[2], m[3]) for m in DOT_EDGE.finditer(src)]


def dot_nodes(src: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^\t(\w+) \[(.*)\]$", src, re.M)}


def documented_failover_path() -> list[tuple[str, str, str]]:
    """A concrete check-in path that takes the CONNECTING self-loop twice."""
    g = concrete_graph(get("documented"), Topology(managers=3))
    loop = "CONNECTING--CONNECT_FAILED[next_manager]-->CONNECTING"
    return next(p for p in checkin_paths(g) if [e[2] for e in p].count(loop) == 2)


@pytest.mark.parametrize("name", NAMES)
def test_dot_has_one_labelled_edge_per_row(name: str) -> None:
    rows = get(name).rows()
    edges = dot_edges(render(name, "dot").decode())
    assert len(edges) == len(rows)
    drawn = Counter((s, d, dot_attr(a, "label"), dot_attr(a, "id")) for s, d, a in edges)
    want = Counter(
        (r.source.value, r.dest.value, edge_label(r).replace("\n", r"\n"), r.name)
        for r in rows
    )
    assert drawn == want


def test_edge_label_reads_event_guard_and_requirement() -> None:
    row = next(r for r in get("seed").rows() if r.name ==
               "FETCHING_INDEX--INDEX_RECEIVED[download_allowed]-->FETCHING_URLS")
    assert edge_label(row) == "INDEX_RECEIVED [download_allowed]\nREQ-4-URLS"


@pytest.mark.parametrize("name", NAMES)
def test_mermaid_is_a_state_diagram_with_one_transition_per_row(name: str) -> None:
    src = render(name, "mermaid").decode()
    assert src.startswith("stateDiagram-v2\n")
    rows = get(name).rows()
    drawn = Counter((m[1], m[2], m[3]) for m in MMD_EDGE.finditer(src))
    want = Counter(
        (r.source.value, r.dest.value, edge_label(r).replace("\n", "<br/>")) for r in rows
    )
    assert drawn == want
    assert "  [*] --> IDLE" in src.splitlines()
    for s in State:
        assert f' as {s.value}' in src


@pytest.mark.parametrize("name", NAMES)
def test_svg_parses_and_has_one_edge_group_per_row(name: str) -> None:
    root = ET.fromstring(render(name, "svg"))
    rows = get(name).rows()
    groups = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "edge"]
    assert len(groups) == len(rows)
    assert sorted(str(g.get("id")) for g in groups) == sorted(r.name for r in rows)
    nodes = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "node"]
    assert len(nodes) == len(State)


def test_png_is_a_png() -> None:
    assert render("seed", "png").startswith(b"\x89PNG\r\n\x1a\n")


def test_parallel_edges_and_self_loops_are_separate_edges() -> None:
    seed = Counter((s, d) for s, d, _ in dot_edges(render("seed", "dot").decode()))
    assert seed["CONNECTING", "IDLE"] == 2  # SESSION_TIMEOUT and CONNECT_FAILED
    assert seed["DOWNLOADING_GUP", "UPLOADING_LOGS"] == 2
    doc_edges = dot_edges(render("documented", "dot").decode())
    loops = [a for s, d, a in doc_edges if s == d == "CONNECTING"]
    assert len(loops) == 2
    # Each loop on its own side of the box, so the labels do not overlap.
    assert {dot_attr(a, "tailport") for a in loops} == {"e", "w"}
    root = ET.fromstring(render("documented", "svg"))
    titles = [str(g.findtext(f"{SVG_NS}title")) for g in root.iter(f"{SVG_NS}g")
              if g.get("class") == "edge"]
    assert sorted(t for t in titles if t.startswith("CONNECTING:")) == [
        "CONNECTING:e->CONNECTING:e", "CONNECTING:w->CONNECTING:w"]


def test_highlight_styles_exactly_the_path() -> None:
    path = documented_failover_path()
    src = render("documented", "dot", path).decode()
    on_path = {k for _, _, k in path}
    states = {n.split("@")[0] for e in path for n in e[:2]}
    for _, _, attrs in dot_edges(src):
        row = dot_attr(attrs, "id")
        assert (dot_attr(attrs, "color") == PATH_INK) == (row in on_path), row
    styled = {n for n, a in dot_nodes(src).items() if dot_attr(a, "color") == PATH_INK}
    assert styled == states
    # Steps are numbered in path order; the self-loop is taken at two steps.
    loop = "CONNECTING--CONNECT_FAILED[next_manager]-->CONNECTING"
    steps = [i for i, e in enumerate(path, 1) if e[2] == loop]
    loop_attrs = next(a for _, _, a in dot_edges(src) if dot_attr(a, "id") == loop)
    assert (dot_attr(loop_attrs, "label") or "").startswith(
        f"({','.join(map(str, steps))}) CONNECT_FAILED")
    # The SVG shows the same: red strokes on the path's edges only.
    root = ET.fromstring(render("documented", "svg", path))
    red = {g.get("id") for g in root.iter(f"{SVG_NS}g") if g.get("class") == "edge"
           and any(p.get("stroke") == PATH_INK for p in g.iter(f"{SVG_NS}path"))}
    assert red == on_path


def test_highlight_accepts_abstract_edges_and_marks_mermaid_states() -> None:
    g = abstract_graph(get("seed").rows())
    path = [e for e in g.edges(keys=True) if e[0] == "IDLE" or e[1] == "IDLE"][:2]
    src = render("seed", "mermaid", path).decode()
    path_states = {n for e in path for n in e[:2]}
    marked = set(re.findall(r"^  Class (\w+) s_path$", src, re.M))
    assert marked == path_states
    assert sum(1 for m in MMD_EDGE.finditer(src) if re.match(r"\(\d", m[3])) == 2


def test_no_highlight_styles_nothing() -> None:
    src = render("seed", "dot").decode()
    assert PATH_INK not in src


@pytest.mark.parametrize(
    "edge, message",
    [
        (("IDLE", "CONNECTING", "no-such-row"), "is not a row"),
        # A row of `documented` only: the seed has no failover.
        (("CONNECTING", "CONNECTING",
          "CONNECTING--CONNECT_FAILED[next_manager]-->CONNECTING"), "is not a row"),
        (("IDLE", "FETCHING_INDEX", "IDLE--HEARTBEAT_DUE-->CONNECTING"), "does not match"),
        (("IDLE",), "expected (source, dest, row)"),
    ],
)
def test_bad_highlight_is_a_usage_error(edge: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        render("seed", "dot", [edge])  # type: ignore[list-item]


def test_unknown_format_is_a_usage_error_naming_the_formats() -> None:
    with pytest.raises(UsageError) as err:
        render("seed", "jpeg")
    assert "jpeg" in str(err.value)
    assert "\n" not in str(err.value)
    assert all(f in str(err.value) for f in FORMATS)


def test_unknown_interpretation_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown interpretation"):
        render("literal", "dot")


def test_write_all_writes_every_format(tmp_path: Path) -> None:
    paths = write_all(tmp_path / "a" / "nested")
    assert [p.name for p in paths] == [filename(n, f) for n in INTERPRETATIONS
                                       for f in FORMATS]
    assert {p.suffix for p in paths} == {".svg", ".png", ".dot", ".mmd"}
    assert all(p.parent == tmp_path / "a" / "nested" for p in paths)
    assert is_stale(tmp_path / "a" / "nested") == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_is_deterministic(fmt: str) -> None:
    path = documented_failover_path()
    assert render("documented", fmt, path) == render("documented", fmt, path)


def test_is_stale_names_changed_and_missing_files(tmp_path: Path) -> None:
    write_all(tmp_path)
    dot = tmp_path / "heartbeat-seed.dot"
    dot.write_text(dot.read_text().replace("REQ-1-PRIORITY", "REQ-1"))
    (tmp_path / "heartbeat-documented.png").unlink()
    svg = tmp_path / "heartbeat-documented.svg"
    svg.write_text(svg.read_text().replace("HEARTBEAT_DUE", "HEARTBEAT"))
    assert is_stale(tmp_path) == [
        "heartbeat-seed.dot", "heartbeat-documented.svg", "heartbeat-documented.png"
    ]


def test_is_stale_does_not_judge_svg_drawn_by_another_graphviz(tmp_path: Path) -> None:
    write_all(tmp_path)
    svg = tmp_path / "heartbeat-seed.svg"
    text = re.sub(r"graphviz version [^\n]*", "graphviz version 0.0.0 (other)",
                  svg.read_text())
    svg.write_text(text.replace("1.2", "1.3"))
    (tmp_path / "heartbeat-seed.png").write_bytes(b"\x89PNG other renderer")
    assert is_stale(tmp_path) == []


def test_committed_diagrams_are_not_stale() -> None:
    stale = is_stale(DOCS)
    assert stale == [], f"regenerate with `make diagrams`: {stale}"


def test_every_row_of_every_interpretation_is_in_the_committed_dot() -> None:
    # Belt and braces for reviewers reading docs/diagrams without running anything.
    for name in INTERPRETATIONS:
        src = (DOCS / filename(name, "dot")).read_text()
        ids = {dot_attr(a, "id") for _, _, a in dot_edges(src)}
        assert ids == {r.name for r in get(name).rows()}


def test_the_drawing_follows_the_rows_of_any_interpretation() -> None:
    # Not a drawing per known name: a reading that mixes the switches gets exactly
    # its own rows (failover from `documented`, the rest from `seed`).
    mixed = Interpretation(
        "mixed", "failover only",
        {Switch.FAILOVER: True, Switch.GUP_FALLBACK: False, Switch.PUSH_HEARTBEAT: False},
        Selection.FIRST,
    )
    src = str(_machine_graph(mixed, "graphviz", []).source)
    assert sorted(dot_attr(a, "id") or "" for _, _, a in dot_edges(src)) == sorted(
        r.name for r in mixed.rows())
    assert mixed.rows() not in (get("seed").rows(), get("documented").rows())
