"""Is a Graphviz SVG state diagram legible as a browser draws it? (helper, not a test)

:func:`measure` puts the SVG inline in an HTML page at a given rendered width, lets
headless Chromium lay it out and reads the geometry back: the screen box of every
``<text>`` with its on-screen font size, of every node's shape, of every cluster's
border and title, every edge's label (its text lines as one box) and points along
every edge's spline. :func:`problems` turns that into one readable line per problem:
labels on labels, labels on nodes or titles, labels nearer another edge than their
own, text too small to read.

The geometry is the browser's, not Graphviz's: text boxes come from the fonts Chromium
really uses (Graphviz sized its labels with its own font metrics, which may differ),
and everything is in CSS px of the page at that width.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from test_report import run_chromium

# Two boxes may overlap by this much (in both directions) before it is a problem. A
# text box is the browser's box of its glyph cells: advance widths by the font's ascent
# plus descent, already a little larger than the ink (a 10 px line is ~11.5 px tall
# around ~7 px of capitals), and anti-aliasing smears every edge over ~1 px anyway: an
# overlap of 1 px is not visible; 2 px starts to be.
OVERLAP_PX = 1.0

# Points along an edge are this far apart on screen. A distance measured to the
# nearest sample overestimates the distance to the curve by at most half of it (1 px).
SAMPLE_PX = 2.0

# "Nearest to its own edge" allows this much: the sampling error above (one side's
# distance may be 1 px too long while the other's is exact); a label equally far from
# two edges is still nearest to its own (ties allowed).
NEAREST_SLACK_PX = SAMPLE_PX / 2

# A font size is computed as attribute x screen scale; a 10 px font drawn at scale 1
# may come out as 9.9999999 px. This much below the minimum is not "below".
FONT_EPS_PX = 0.01


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in CSS px of the page (y down)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def overlap(self, other: Box) -> tuple[float, float]:
        """Width and height of the intersection (0, 0 when apart)."""
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        return (w, h) if w > 0 and h > 0 else (0.0, 0.0)

    def overlaps(self, other: Box, slack: float = OVERLAP_PX) -> bool:
        w, h = self.overlap(other)
        return w > slack and h > slack

    def distance(self, x: float, y: float) -> float:
        """From the point to the nearest point of the box (0 inside)."""
        dx = max(self.x0 - x, 0.0, x - self.x1)
        dy = max(self.y0 - y, 0.0, y - self.y1)
        return math.hypot(dx, dy)

    def distance_to(self, points: tuple[tuple[float, float], ...]) -> float:
        """To the nearest of the points (infinite when there are none)."""
        return min((self.distance(x, y) for x, y in points), default=math.inf)

    @staticmethod
    def of(raw: list[float]) -> Box:
        x0, y0, x1, y1 = raw
        return Box(x0, y0, x1, y1)


@dataclass(frozen=True)
class Label:
    """An edge's label: its text lines (joined with newlines) as one box."""

    edge: str
    text: str
    box: Box


@dataclass(frozen=True)
class Node:
    id: str  # the node's name (its <title>)
    box: Box  # its shape (its text when it has none)


@dataclass(frozen=True)
class Cluster:
    id: str  # the cluster's <title>
    box: Box  # its border
    title: Box | None  # its title text, if any


@dataclass(frozen=True)
class Polyline:
    """Points along an edge's spline (all its paths), every :data:`SAMPLE_PX`."""

    edge: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Text:
    text: str
    box: Box
    font_px: float  # on screen: font size x the element's screen scale
    owner: str  # "edge ID", "node ID", "cluster ID" or "graph"


@dataclass(frozen=True)
class Geometry:
    labels: tuple[Label, ...]
    nodes: tuple[Node, ...]
    clusters: tuple[Cluster, ...]
    edges: tuple[Polyline, ...]
    texts: tuple[Text, ...]
    title: Box | None  # the graph's title (texts directly in the top <g class="graph">)
    width: float  # the SVG as the page renders it, CSS px
    height: float


# The page's script. Everything is in viewport coordinates: getBoundingClientRect for
# boxes, getScreenCTM (same coordinate system) for points along paths and for the
# scale that turns a font size into on-screen px. The page does not scroll (the script
# runs during load), so viewport = page.
_SCRIPT = r"""
(function () {
  const out = document.getElementById('out');
  try {
    const svg = document.querySelector('#fig svg');
    const WIDTH = __WIDTH__, STEP = __STEP__;
    if (WIDTH !== null) {
      const natural = svg.getBoundingClientRect();
      const vb = svg.viewBox.baseVal;
      let w = natural.width, h = natural.height;
      if (vb && vb.width > 0 && vb.height > 0) { w = vb.width; h = vb.height; }
      else { svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h); }
      svg.setAttribute('width', WIDTH + 'px');
      svg.setAttribute('height', (WIDTH * h / w) + 'px');
    }
    const rect = (el) => {
      const r = el.getBoundingClientRect();
      return [r.left, r.top, r.right, r.bottom];
    };
    const union = (boxes) => boxes.length === 0 ? null : [
      Math.min(...boxes.map(b => b[0])), Math.min(...boxes.map(b => b[1])),
      Math.max(...boxes.map(b => b[2])), Math.max(...boxes.map(b => b[3]))];
    const scale = (el) => {
      const m = el.getScreenCTM();
      return Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
    };
    const title = (g) => {
      const t = g.querySelector(':scope > title');
      return t ? t.textContent : (g.id || '');
    };
    const texts = (root) => Array.from(root.querySelectorAll('text'))
      .filter(t => t.textContent.trim() !== '');
    const SHAPES = 'polygon, path, ellipse, rect, polyline, circle';
    const owners = new Map();
    const res = {labels: [], nodes: [], clusters: [], edges: [], texts: [], title: null};

    for (const g of svg.querySelectorAll('g.node')) {
      const id = title(g);
      const shapes = Array.from(g.querySelectorAll(SHAPES)).map(rect);
      res.nodes.push({id: id, box: union(shapes.length ? shapes : texts(g).map(rect))});
      for (const t of texts(g)) owners.set(t, 'node ' + id);
    }
    for (const g of svg.querySelectorAll('g.cluster')) {
      const id = title(g);
      const border = Array.from(g.querySelectorAll(SHAPES)).map(rect);
      res.clusters.push({id: id, box: union(border), title: union(texts(g).map(rect))});
      for (const t of texts(g)) owners.set(t, 'cluster ' + id);
    }
    for (const g of svg.querySelectorAll('g.edge')) {
      const id = g.id || title(g);
      const lines = texts(g);
      if (lines.length) {
        res.labels.push({edge: id, text: lines.map(t => t.textContent).join('\n'),
                         box: union(lines.map(rect))});
      }
      for (const t of lines) owners.set(t, 'edge ' + id);
      const points = [];
      for (const p of g.querySelectorAll('path')) {
        const len = p.getTotalLength(), m = p.getScreenCTM();
        const n = Math.max(1, Math.ceil(len * scale(p) / STEP));
        for (let i = 0; i <= n; i++) {
          const q = p.getPointAtLength(len * i / n);
          points.push([m.a * q.x + m.c * q.y + m.e, m.b * q.x + m.d * q.y + m.f]);
        }
      }
      res.edges.push({edge: id, points: points});
    }
    const graph = svg.querySelector('g.graph');
    if (graph) {
      const own = Array.from(graph.querySelectorAll(':scope > text'))
        .filter(t => t.textContent.trim() !== '');
      res.title = union(own.map(rect));
    }
    for (const t of texts(svg)) {
      res.texts.push({text: t.textContent, box: rect(t), owner: owners.get(t) || 'graph',
                      font_px: parseFloat(getComputedStyle(t).fontSize) * scale(t)});
    }
    const r = svg.getBoundingClientRect();
    res.width = r.width; res.height = r.height;
    out.textContent = JSON.stringify(res);
  } catch (e) {
    out.textContent = JSON.stringify({error: String(e && e.stack || e)});
  }
})();
"""

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>legibility</title>
<style>html,body{{margin:0;padding:0}}#fig{{display:inline-block;line-height:0}}
#fig svg{{display:block}}</style></head>
<body><div id="fig">{svg}</div><pre id="out"></pre>
<script>{script}</script></body></html>
"""

_OUT = re.compile(r'<pre id="out">(.*?)</pre>', re.DOTALL)


def page(svg: bytes, width_px: float | None) -> str:
    """The HTML page :func:`measure` opens (the SVG inline, from its ``<svg`` on)."""
    text = svg.decode("utf-8")
    start = text.find("<svg")
    if start < 0:
        raise ValueError("not an SVG: no <svg element")
    script = (_SCRIPT.replace("__WIDTH__", "null" if width_px is None else repr(width_px))
              .replace("__STEP__", repr(SAMPLE_PX)))
    return _PAGE.format(svg=text[start:], script=script)


def measure(svg: bytes, width_px: float | None, tmp_path: Path) -> Geometry:
    """The geometry of ``svg`` as headless Chromium draws it ``width_px`` CSS px wide
    (None: at its natural size, its own width and height attributes)."""
    path = tmp_path / "legibility.html"
    path.write_text(page(svg, width_px), encoding="utf-8")
    dom = run_chromium(tmp_path, "--force-device-scale-factor=1", "--dump-dom",
                       path.as_uri()).stdout
    m = _OUT.search(dom)
    if m is None or not m.group(1).strip():
        raise RuntimeError(f"chromium printed no geometry; dump starts {dom[:300]!r}")
    raw: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    if "error" in raw:
        raise RuntimeError(f"the measuring script failed: {raw['error']}")
    return _geometry(raw)


def _geometry(raw: dict[str, Any]) -> Geometry:
    def box(b: list[float] | None) -> Box | None:
        return None if b is None else Box.of(b)

    def need(b: list[float] | None, what: str) -> Box:
        if b is None:
            raise RuntimeError(f"{what} has no box")
        return Box.of(b)

    return Geometry(
        labels=tuple(Label(d["edge"], d["text"], need(d["box"], f"label of {d['edge']}"))
                     for d in raw["labels"]),
        nodes=tuple(Node(d["id"], need(d["box"], f"node {d['id']}"))
                    for d in raw["nodes"]),
        clusters=tuple(Cluster(d["id"], need(d["box"], f"cluster {d['id']}"),
                               box(d["title"])) for d in raw["clusters"]),
        edges=tuple(Polyline(d["edge"], tuple((float(x), float(y)) for x, y in d["points"]))
                    for d in raw["edges"]),
        texts=tuple(Text(d["text"], Box.of(d["box"]), float(d["font_px"]), d["owner"])
                    for d in raw["texts"]),
        title=box(raw["title"]),
        width=float(raw["width"]),
        height=float(raw["height"]),
    )


def _quote(text: str) -> str:
    return '"' + text.replace("\n", " / ") + '"'


def _by(w: float, h: float) -> str:
    return f"{w:.1f} x {h:.1f} px"


def problems(g: Geometry, min_font_px: float = 10.0) -> list[str]:
    """One readable line per legibility problem of ``g`` (none: the list is empty)."""
    out: list[str] = []
    labels = g.labels
    # (1) a label on another edge's label.
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            if a.edge != b.edge and a.box.overlaps(b.box):
                out.append(f"labels overlap ({_by(*a.box.overlap(b.box))}): "
                           f"{_quote(a.text)} of edge {a.edge} and {_quote(b.text)} "
                           f"of edge {b.edge}")
    # (2) a label on a node, a cluster's title or the graph's title.
    for a in labels:
        for n in g.nodes:
            if a.box.overlaps(n.box):
                out.append(f"label on node ({_by(*a.box.overlap(n.box))}): "
                           f"{_quote(a.text)} of edge {a.edge} on node {n.id}")
        for c in g.clusters:
            if c.title is not None and a.box.overlaps(c.title):
                out.append(f"label on cluster title ({_by(*a.box.overlap(c.title))}): "
                           f"{_quote(a.text)} of edge {a.edge} on cluster {c.id}'s title")
        if g.title is not None and a.box.overlaps(g.title):
            out.append(f"label on graph title ({_by(*a.box.overlap(g.title))}): "
                       f"{_quote(a.text)} of edge {a.edge}")
    # (3) a label nearer another edge than its own.
    lines = {e.edge: e.points for e in g.edges}
    for a in labels:
        own = a.box.distance_to(lines.get(a.edge, ()))
        if own == math.inf:
            out.append(f"label without its edge: {_quote(a.text)} of edge {a.edge} "
                       "has no drawn path")
            continue
        others = sorted((a.box.distance_to(pts), e) for e, pts in lines.items()
                        if e != a.edge and pts)
        if others and others[0][0] + NEAREST_SLACK_PX < own:
            d, e = others[0]
            out.append(f"label nearer another edge: {_quote(a.text)} of edge {a.edge} "
                       f"is {own:.1f} px from its edge but {d:.1f} px from edge {e}")
    # (4) text too small.
    for t in g.texts:
        if t.font_px < min_font_px - FONT_EPS_PX:
            out.append(f"small text ({t.font_px:.1f} px < {min_font_px:g} px): "
                       f"{_quote(t.text)} ({t.owner})")
    return out
