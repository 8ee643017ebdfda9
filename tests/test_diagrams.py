"""Tests of sephb.diagrams: every row drawn once, highlights exact, committed docs fresh."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree as ET  # our own output: no untrusted XML

import pytest

from sephb.diagrams import FORMATS, VIEWS, filename, is_stale, render, write_all
from sephb.diagrams.statechart import _machine_graph, edge_label
from sephb.model.errors import UsageError
from sephb.model.graph import Topology, abstract_graph, checkin_paths, concrete_graph
from sephb.model.hierarchy import statechart
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
    """Node name -> attribute text of every node statement (in a frame too)."""
    return {m[1]: m[2] for m in re.finditer(r"^\t+(\w+) \[(.*)\]$", src, re.M)
            if m[1] not in ("graph", "node", "edge")}


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
    # A front matter with the title Mermaid draws, then the diagram.
    assert src.startswith("---\ntitle: \"SEP client heartbeat, interpretation ")
    assert "\n---\nstateDiagram-v2\n" in src
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
    assert [p.name for p in paths] == [filename(n, f, v) for n in INTERPRETATIONS
                                       for v in VIEWS for f in FORMATS]
    assert "heartbeat-seed-statechart.svg" in {p.name for p in paths}
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
    chart = tmp_path / "heartbeat-documented-statechart.mmd"
    chart.write_text(chart.read_text().replace("SESSION_UP", "SESSION"))
    assert is_stale(tmp_path) == [
        "heartbeat-seed.dot", "heartbeat-documented.svg", "heartbeat-documented.png",
        "heartbeat-documented-statechart.mmd",
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
        chart = (DOCS / filename(name, "dot", "statechart")).read_text()
        assert Counter(expand_dot(chart)) == Counter(row_keys(get(name)))


# --- the statechart view ----------------------------------------------------------------


def row_keys(interp: Interpretation) -> list[tuple[str, str, str | None, str, str]]:
    return [(r.source.value, r.event.value, r.guard.value if r.guard else None,
             r.dest.value, r.requirement) for r in interp.rows()]


def _label_parts(label: str) -> tuple[list[str], str | None, str]:
    """Events, guard and requirement of an edge label (``(n) `` step prefix and a
    coverage line dropped)."""
    first, requirement = label.split(r"\n")[:2]
    first = re.sub(r"^\([\d,]+\) ", "", first)
    m = re.fullmatch(r"(.*?)(?: \[(\w+)\])?", first)
    assert m is not None
    return m[1].split(" | "), m[2], requirement


def expand_dot(src: str) -> list[tuple[str, str, str | None, str, str]]:
    """The rows a statechart DOT stands for, read off the drawing alone: an edge with
    ``ltail`` (or from a frame's circle) stands for every state in that frame, on every
    event of its label."""
    clusters: dict[str, list[str]] = {}
    # (a frame may be opened twice: the second time for its circle, the node named
    # after the frame)
    for m in re.finditer(r"subgraph cluster_(\w+) \{(.*?)\n\t\}", src, re.S):
        clusters.setdefault(m[1], []).extend(n for n in dot_nodes(m[2]) if n != m[1])
    out = []
    for tail, head, attrs in dot_edges(src):
        if dot_attr(attrs, "style") == "invis":
            continue
        frame = (dot_attr(attrs, "ltail") or "").removeprefix("cluster_") or (
            tail if tail in clusters else None)
        sources = clusters[frame] if frame else [tail]
        events, guard, requirement = _label_parts(dot_attr(attrs, "label") or "")
        out += [(s.split("__")[-1], e, guard, head.split("__")[-1], requirement)
                for s in sources for e in events]
    return out


def expand_mermaid(src: str) -> list[tuple[str, str, str | None, str, str]]:
    """The same from the Mermaid text: a composite state's members, its edges."""
    members = {m[1]: re.findall(r" as (\w+)$", m[2], re.M)
               for m in re.finditer(r"^  state (\w+) \{\n(.*?)^  \}", src, re.S | re.M)}
    out = []
    for m in MMD_EDGE.finditer(src):
        events, guard, requirement = _label_parts(m[3].replace("<br/>", r"\n"))
        out += [(s.split("__")[-1], e, guard, m[2].split("__")[-1], requirement)
                for s in members.get(m[1], [m[1]]) for e in events]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_the_statechart_view_expands_back_to_the_rows(name: str) -> None:
    # Read off what is drawn (DOT and Mermaid), not off the model's own expansion.
    interp = get(name)
    dot = render(name, "dot", view="statechart").decode()
    mmd = render(name, "mermaid", view="statechart").decode()
    assert Counter(expand_dot(dot)) == Counter(row_keys(interp))
    assert Counter(expand_mermaid(mmd)) == Counter(row_keys(interp))
    # ... with fewer arrows, and one frame per superstate
    chart = statechart(interp)
    assert len([e for e in dot_edges(dot) if dot_attr(e[2], "style") != "invis"]) == \
        len(chart.edges) < len(interp.rows())
    assert set(re.findall(r"subgraph cluster_(\w+) \{", dot)) == {
        s.name for s in chart.superstates}


def test_the_statechart_svg_names_its_edges_and_frames() -> None:
    root = ET.fromstring(render("documented", "svg", view="statechart"))
    edges = {str(g.get("id")) for g in root.iter(f"{SVG_NS}g") if g.get("class") == "edge"}
    assert {e.name for e in statechart(get("documented")).edges} <= edges
    frames = [g.findtext(f"{SVG_NS}title") for g in root.iter(f"{SVG_NS}g")
              if g.get("class") == "cluster"]
    assert sorted(map(str, frames)) == ["cluster_SESSION_PENDING", "cluster_SESSION_UP"]


def test_a_highlight_on_the_statechart_marks_the_edges_that_stand_for_its_rows() -> None:
    path = documented_failover_path()
    src = render("documented", "dot", path, view="statechart",
                 caption="the failover path").decode()
    red = {dot_attr(a, "id") for _, _, a in dot_edges(src)
           if dot_attr(a, "color") == PATH_INK}
    chart = statechart(get("documented"))
    on_path = {k for _, _, k in path}
    assert red == {e.name for e in chart.edges if on_path & set(e.rows)}
    # The failover is taken twice, from the frame: both steps on the one arrow.
    failover = next(a for _, _, a in dot_edges(src) if dot_attr(a, "id") ==
                    "SESSION_PENDING--SESSION_TIMEOUT|CONNECT_FAILED[next_manager]-->CONNECTING")
    steps = [i for i, e in enumerate(path, 1) if "[next_manager]" in e[2]]
    assert (dot_attr(failover, "label") or "").startswith(f"({','.join(map(str, steps))}) ")
    styled = {n.split("__")[-1] for n, a in dot_nodes(src).items()
              if dot_attr(a, "color") == PATH_INK}
    assert styled == {n.split("@")[0] for e in path for n in e[:2]}
    assert f"Highlighted: the failover path, {len(path)} steps" in src


def test_coverage_on_the_statechart_counts_every_row_of_an_edge() -> None:
    rows = get("seed").rows()
    counts = {r.name: 2 for r in rows}
    counts["FETCHING_URLS--REQUEST_FAILED-->IDLE"] = 0
    src = render("seed", "dot", counts=counts, view="statechart").decode()
    labels = {dot_attr(a, "id"): dot_attr(a, "label") or "" for _, _, a in dot_edges(src)}
    assert labels["SESSION_UP--REQUEST_FAILED-->IDLE"].endswith(
        r"\n1 of 4 transitions NOT EXERCISED")
    assert labels["SESSION_PENDING--SESSION_TIMEOUT|CONNECT_FAILED-->IDLE"].endswith(
        r"\n8× exercised")
    assert "Coverage: 22 of 23 transitions exercised" in src


@pytest.mark.parametrize("view", VIEWS)
def test_every_picture_has_a_title_and_a_legend(view: str) -> None:
    dot = render("seed", "dot", view=view).decode()
    label = dot_attr(dot.split("\n")[1], "label") or ""
    assert label.startswith("SEP client heartbeat, interpretation 'seed'")
    assert ("Statechart view" if view == "statechart" else "Full view") in label
    assert "Arrow: EVENT [guard] over the requirement id" in label
    assert ("Frame: a superstate" in label) == (view == "statechart")
    mmd = render("seed", "mermaid", view=view).decode()
    assert "note left of IDLE" in mmd and "Arrow: EVENT [guard]" in mmd


def test_an_unknown_view_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown diagram view 'nested'; expected one of: "
                                         "full, statechart"):
        render("seed", "dot", view="nested")


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
