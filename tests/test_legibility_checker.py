"""The legibility checker (tests/legibility.py) can fail and can pass: tiny hand-written
SVGs shaped like Graphviz's, each with one known problem (and one with none), measured
in headless Chromium; and the diagram the project draws today measures sanely."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree as ET  # our own output: no untrusted XML

import pytest
from legibility import Box, Geometry, measure, problems

from sephb.diagrams import render

SVG_NS = "{http://www.w3.org/2000/svg}"

Rect = tuple[float, float, float, float]
# An edge: its id (a row name), the points of its spline (straight segments here), and
# its label: the centre x and first baseline y, then its lines (14 px apart).
Edge = tuple[str, Sequence[tuple[float, float]], float, float, Sequence[str]]


def diagram(nodes: dict[str, Rect], edges: Sequence[Edge], *, node_font: float = 12,
            title: str = "tiny", cluster: Rect | None = None) -> bytes:
    """A Graphviz-shaped SVG, 400 x 260 px: a top ``g.graph`` translated by (4, 4),
    nodes as boxes with their name centred, edges as paths with an arrowhead and a
    label (one edge wrapped in a tooltip ``<a>`` as Graphviz does), an optional
    cluster with a title, and the graph's title at the bottom."""
    font = 'font-family="Helvetica,Arial,sans-serif"'
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
           '<svg width="400px" height="260px" viewBox="0.00 0.00 400.00 260.00" '
           'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">',
           '<g id="graph0" class="graph" transform="scale(1 1) rotate(0) translate(4 4)">',
           f"<title>{title}</title>",
           '<polygon fill="white" stroke="transparent" '
           'points="-4,-4 396,-4 396,256 -4,256"/>',
           f'<text text-anchor="middle" x="196" y="245" {font} font-size="14.00">{title}'
           "</text>"]
    if cluster is not None:
        x0, y0, x1, y1 = cluster
        out += ['<g id="clust1" class="cluster"><title>cluster_left</title>',
                f'<polygon fill="none" stroke="black" points="{x0},{y0} {x1},{y0} '
                f'{x1},{y1} {x0},{y1} {x0},{y0}"/>',
                f'<text text-anchor="middle" x="{(x0 + x1) / 2}" y="{y0 + 14}" {font} '
                'font-size="12.00">left</text></g>']
    for i, (name, (x0, y0, x1, y1)) in enumerate(nodes.items(), 1):
        out += [f'<g id="node{i}" class="node"><title>{name}</title>',
                f'<polygon fill="none" stroke="black" points="{x0},{y0} {x1},{y0} '
                f'{x1},{y1} {x0},{y1} {x0},{y0}"/>',
                f'<text text-anchor="middle" x="{(x0 + x1) / 2}" y="{(y0 + y1) / 2 + 4}" '
                f'{font} font-size="{node_font:.2f}">{name}</text></g>']
    for i, (row, points, lx, ly, lines) in enumerate(edges):
        d = "M" + " L".join(f"{x},{y}" for x, y in points)
        (ax, ay), (bx, by) = points[-2], points[-1]
        # an arrowhead along the last segment, 8 px long
        length = ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5
        ux, uy = (bx - ax) / length, (by - ay) / length
        tip = (bx + 8 * ux, by + 8 * uy)
        left, right = (bx - 4 * uy, by + 4 * ux), (bx + 4 * uy, by - 4 * ux)
        spline = [f'<path fill="none" stroke="black" d="{d}"/>',
                  f'<polygon fill="black" stroke="black" points="{left[0]},{left[1]} '
                  f'{tip[0]},{tip[1]} {right[0]},{right[1]}"/>']
        if i == 0:
            spline = [f'<g id="a_{row}"><a xlink:title="{row}">', *spline, "</a></g>"]
        out += [f'<g id="{row}" class="edge"><title>{row}</title>', *spline]
        out += [f'<text text-anchor="middle" x="{lx}" y="{ly + 14 * k}" {font} '
                f'font-size="12.00">{line}</text>' for k, line in enumerate(lines)]
        out.append("</g>")
    out += ["</g>", "</svg>"]
    return "\n".join(out).encode()


# Four nodes in two columns, an edge down each column, labels just right of their edge.
NODES = {"A": (30.0, 30.0, 90.0, 60.0), "B": (30.0, 190.0, 90.0, 220.0),
         "C": (270.0, 30.0, 330.0, 60.0), "D": (270.0, 190.0, 330.0, 220.0)}
LEFT = "A--GO-->B"
RIGHT = "C--STOP-->D"
DOWN_LEFT = ((60.0, 60.0), (60.0, 182.0))
DOWN_RIGHT = ((300.0, 60.0), (300.0, 182.0))
CLEAN: list[Edge] = [(LEFT, DOWN_LEFT, 90, 120, ["GO [ok]", "REQ-1"]),
                     (RIGHT, DOWN_RIGHT, 325, 120, ["STOP", "REQ-2"])]


def kinds(found: list[str]) -> set[str]:
    return {line.split(" (")[0].split(":")[0] for line in found}


def test_a_clean_diagram_has_no_problem_and_its_geometry_is_the_drawings(
        tmp_path: Path) -> None:
    g = measure(diagram(NODES, CLEAN, cluster=(15, 8, 125, 230)), None, tmp_path)
    assert problems(g) == []
    # Natural size is the SVG's own; the graph's translate(4 4) moves everything.
    assert (g.width, g.height) == (400, 260)
    nodes = {n.id: n.box for n in g.nodes}
    assert nodes["A"] == Box(34, 34, 94, 64) and nodes["D"] == Box(274, 194, 334, 224)
    [cluster] = g.clusters
    assert cluster.id == "cluster_left" and cluster.box == Box(19, 12, 129, 234)
    assert cluster.title is not None and cluster.box.overlaps(cluster.title)
    assert g.title is not None and g.title.y1 > 240
    lines = {e.edge: e.points for e in g.edges}
    assert set(lines) == {LEFT, RIGHT}
    assert lines[LEFT][0] == (64, 64) and lines[LEFT][-1] == (64, 186)
    assert len(lines[LEFT]) >= 122 / 2  # a point every 2 px or less
    labels = {a.edge: a for a in g.labels}
    assert labels[LEFT].text == "GO [ok]\nREQ-1"
    # one box around both lines: about two lines of 12 px high, centred on x = 94
    box = labels[LEFT].box
    assert 24 < box.height < 34 and abs((box.x0 + box.x1) / 2 - 94) < 1
    assert {(t.text, round(t.font_px, 2)) for t in g.texts} >= {("tiny", 14), ("A", 12)}
    assert {t.owner for t in g.texts if t.text == "REQ-2"} == {f"edge {RIGHT}"}


def test_two_labels_on_each_other(tmp_path: Path) -> None:
    # Two edges 100 px apart, their labels between them, 10 px apart: each nearer its
    # own edge, but on each other.
    nodes = {"A": (120.0, 30.0, 180.0, 60.0), "B": (120.0, 190.0, 180.0, 220.0),
             "C": (220.0, 30.0, 280.0, 60.0), "D": (220.0, 190.0, 280.0, 220.0)}
    edges: list[Edge] = [
        ("A--ONE-->B", ((150, 60), (150, 182)), 195, 120, ["ONE"]),
        ("C--TWO-->D", ((250, 60), (250, 182)), 205, 124, ["TWO"]),
    ]
    found = problems(measure(diagram(nodes, edges), None, tmp_path))
    assert kinds(found) == {"labels overlap"}, found
    [line] = found
    assert "A--ONE-->B" in line and "C--TWO-->D" in line and '"ONE"' in line


def test_a_label_on_a_node(tmp_path: Path) -> None:
    edges = [(LEFT, DOWN_LEFT, 60.0, 50.0, ["ON_A"]), CLEAN[1]]
    found = problems(measure(diagram(NODES, edges), None, tmp_path))
    assert found == [found[0]] and kinds(found) == {"label on node"}, found
    assert f'"ON_A" of edge {LEFT} on node A' in found[0]


def test_a_label_nearer_another_edge(tmp_path: Path) -> None:
    # GO's label sits 20 px left of STOP's edge, 200 px from its own.
    edges = [(LEFT, DOWN_LEFT, 265.0, 120.0, ["GO [ok]", "REQ-1"]), CLEAN[1]]
    found = problems(measure(diagram(NODES, edges), None, tmp_path))
    assert kinds(found) == {"label nearer another edge"}, found
    [line] = found
    assert f"of edge {LEFT} is" in line and line.endswith(f"from edge {RIGHT}")


def test_small_text(tmp_path: Path) -> None:
    found = problems(measure(diagram(NODES, CLEAN, node_font=8), None, tmp_path))
    assert sorted(found) == [f'small text (8.0 px < 10 px): "{n}" (node {n})'
                             for n in "ABCD"], found


def test_small_text_from_scaling_down(tmp_path: Path) -> None:
    # The clean diagram drawn half as wide: its 12 and 14 px texts come out at 6 and
    # 7 px; nothing else changes.
    g = measure(diagram(NODES, CLEAN), 200, tmp_path)
    assert (g.width, g.height) == (200, 130)
    assert {round(t.font_px, 2) for t in g.texts} == {6, 7}
    found = problems(g)
    assert kinds(found) == {"small text"} and len(found) == len(g.texts) == 9, found
    assert problems(g, min_font_px=6) == []


def test_the_projects_diagram_measures_sanely(tmp_path: Path) -> None:
    svg = render("seed", "svg")
    root = ET.fromstring(svg)
    groups = list(root.iter(f"{SVG_NS}g"))
    edge_ids = [el.get("id") for el in groups if el.get("class") == "edge"]
    node_count = sum(1 for el in groups if el.get("class") == "node")
    texts = [el for el in root.iter(f"{SVG_NS}text") if (el.text or "").strip()]
    assert edge_ids and node_count

    g: Geometry = measure(svg, None, tmp_path)
    # Every edge has one label box and a polyline; every node a box; every text a size.
    assert sorted(a.edge for a in g.labels) == sorted(map(str, edge_ids))
    assert sorted(e.edge for e in g.edges) == sorted(map(str, edge_ids))
    assert all(len(e.points) >= 2 for e in g.edges)
    assert len(g.nodes) == node_count
    assert len(g.texts) == len(texts)
    # Natural size: Graphviz's pt as CSS px (4/3), so a 10 pt label is 13.3 px.
    width_pt = float(str(root.get("width")).removesuffix("pt"))
    assert g.width == pytest.approx(width_pt * 4 / 3, abs=1)
    sizes = [float(str(el.get("font-size"))) * 4 / 3 for el in texts]
    assert sorted(t.font_px for t in g.texts) == pytest.approx(sorted(sizes), abs=0.01)
    # Everything inside the drawing, every box the right way round.
    boxes = [a.box for a in g.labels] + [n.box for n in g.nodes] + [t.box for t in g.texts]
    for b in boxes:
        assert 0 <= b.x0 < b.x1 <= g.width + 1 and 0 <= b.y0 < b.y1 <= g.height + 1, b
    for e in g.edges:
        assert all(0 <= x <= g.width and 0 <= y <= g.height for x, y in e.points), e.edge
    # The checker runs on it (whether it finds problems is not asserted here).
    assert all(isinstance(line, str) for line in problems(g))
