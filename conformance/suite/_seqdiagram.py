"""Sequence diagrams of traces: a small SVG for pages without JavaScript, and Mermaid
for Markdown.

Theory of operation
-------------------
A trace record (``docs/trace-format.md``) names either a model
:class:`~sephb.model.protocol.Action` -- something the client did, drawn as an arrow
from the client to its peer -- or a model :class:`~sephb.model.protocol.Event` --
something that happened to the client, drawn from the peer back to it, dashed like
a UML reply. One record is one arrow, in trace order, so the picture shows exactly
what the trace says and no more: when both the client and the servers recorded a
step, both arrows are there, each with a dot on the lifeline of whoever recorded it.

The peer of a record is worked out in :func:`layout`, in this order:

1. the server the record names (``server``, written by the simulated servers);
2. the server known at the record's ``addr:port`` (another record named it), or a
   lifeline for that address when no record ever named one (a manager that refused
   the connection writes nothing);
3. the client's current peer: client-side answers (``INDEX_RECEIVED``, ``CONNECT_FAILED``)
   carry no address because they answer the request before them. ``DISCONNECT`` ends
   the current peer, so the next ``HEARTBEAT_DUE`` is the client's own timer: drawn as
   a self-arrow, like any record with no peer at all.

A peer's role (manager or GUP) comes from the records (``role``), else from the wire
profile's route for the action (``DOWNLOAD_GUP`` goes to a GUP); lifelines are the
clients, then the managers, then the GUPs, each in order of first appearance.

Failure records are highlighted: an event the wire profile or the model uses for a
failure (derived from :data:`sephb.conformance.traces.wire.ROUTES` and
:data:`sephb.model.analysis.SESSION_FAILURES`, never listed here), a record carrying
``error``, or an HTTP answer of 400 and up.

The SVG is laid out by hand on a fixed grid (one column per lifeline, one row per
record): there is no Python renderer for Mermaid, and the report must render
offline. Arrowheads are polygons rather than ``<marker>`` elements, so several
diagrams inlined in one page cannot clash over element ids.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from sephb.conformance.traces.wire import ROUTES, Role
from sephb.model.analysis import SESSION_FAILURES
from sephb.model.protocol import Action, Event

__all__ = [
    "FAILURE_EVENTS",
    "MAX_ROWS",
    "Arrow",
    "Layout",
    "Lifeline",
    "is_failure",
    "layout",
    "sequence_mermaid",
    "sequence_svg",
    "xml_safe",
]

#: Events that mean something failed, from the wire profile's failure column and the
#: model's session failures.
FAILURE_EVENTS: Final = frozenset(
    {r.failure.value for r in ROUTES} | {e.value for e in SESSION_FAILURES}
)
_ACTIONS: Final = frozenset(a.value for a in Action)
_EVENTS: Final = frozenset(e.value for e in Event)
#: The role of the server an action is sent to, where the wire profile says it.
_ACTION_ROLE: Final[dict[str, str]] = {}
for _r in ROUTES:
    _ACTION_ROLE.setdefault(_r.action.value, _r.role.value)
del _r
_ROLE_ORDER: Final = {"client": 0, Role.MANAGER.value: 1, Role.GUP.value: 2}

#: More rows than this are cut (a shrunk failure is short; a fleet trace is not).
MAX_ROWS: Final = 400

# XML 1.0 forbids most control characters even when escaped; an error text copied
# from an exception or a foreign client may contain them.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_safe(text: object) -> str:
    """``text`` as a string that XML 1.0 (and so SVG and JUnit) can carry."""
    return _NOT_XML.sub("\ufffd", str(text))


def _esc(text: object) -> str:
    return html.escape(xml_safe(text), quote=True)


# --- layout ----------------------------------------------------------------------


@dataclass
class Lifeline:
    """One participant: a client or a server."""

    key: str
    title: str
    role: str
    #: Addresses seen for it ("127.0.0.2:8014"), in order of first appearance.
    addresses: list[str] = field(default_factory=list)

    @property
    def subtitle(self) -> str:
        where = self.addresses[0] if self.addresses else ""
        if where and where != self.title:
            return f"{self.role} · {where}"
        return self.role


@dataclass(frozen=True)
class Arrow:
    """One record as drawn: from one lifeline index to another (equal: self-arrow)."""

    index: int
    source: int
    dest: int
    name: str
    t: str
    port: str
    #: Index of the lifeline that recorded it, if the record says.
    observer: int | None
    failure: bool
    #: Is this an Action (client -> peer), as opposed to an Event?
    action: bool
    error: str
    #: Every field of the record, for the tooltip.
    detail: str


@dataclass(frozen=True)
class Layout:
    """Lifelines and arrows of a trace, and how many records were cut."""

    lifelines: list[Lifeline]
    arrows: list[Arrow]
    omitted: int


def is_failure(record: Mapping[str, object]) -> bool:
    """Is this record a failure (see the module docstring)?"""
    status = record.get("status")
    return (
        str(record.get("event")) in FAILURE_EVENTS
        or bool(record.get("error"))
        or (isinstance(status, int) and status >= 400)
    )


def _address(record: Mapping[str, object]) -> str | None:
    addr, port = record.get("addr"), record.get("port")
    if addr is None and port is None:
        return None
    return f"{addr or ''}:{port}" if port is not None else str(addr)


def layout(records: Iterable[Mapping[str, object]], max_rows: int = MAX_ROWS) -> Layout:
    """Who talks to whom, record by record (see the module docstring)."""
    every = list(records)
    shown = every[:max_rows]
    # Pass 1: what every address is, from any record that says.
    server_at: dict[str, str] = {}
    role_of: dict[str, str] = {}
    for rec in shown:
        where, server = _address(rec), rec.get("server")
        if server is not None:
            key = f"server:{server}"
            if where:
                server_at.setdefault(where, key)
        else:
            key = f"addr:{where}" if where else ""
        if not key:
            continue
        role = rec.get("role") or _ACTION_ROLE.get(str(rec.get("event")))
        if isinstance(role, str) and (rec.get("role") or key not in role_of):
            role_of[key] = role

    lines: dict[str, Lifeline] = {}
    first_seen: dict[str, int] = {}

    def lifeline(key: str, title: str, role: str, where: str | None) -> str:
        line = lines.get(key)
        if line is None:
            line = lines[key] = Lifeline(key, title, role)
            first_seen[key] = len(first_seen)
        if where and where not in line.addresses:
            line.addresses.append(where)
        return key

    # Pass 2: each record's client and peer.
    raw: list[tuple[Mapping[str, object], str, str | None]] = []
    current: dict[str, str | None] = {}
    for rec in shown:
        client = str(rec.get("client", "?"))
        ckey = lifeline(f"client:{client}", client, "client", None)
        where, server = _address(rec), rec.get("server")
        peer: str | None
        if server is not None:
            peer = f"server:{server}"
        elif where:
            peer = server_at.get(where, f"addr:{where}")
        else:
            peer = current.get(ckey)
        if peer is not None:
            title = peer.split(":", 1)[1]
            lifeline(peer, title, role_of.get(peer, Role.MANAGER.value), where)
        if rec.get("by") != "server":
            # Only the client's own records move its current peer: a server's
            # records name their server, and the GUP's transport DISCONNECT in the
            # middle of a check-in must not end the session with the manager.
            name = str(rec.get("event", "?"))
            current[ckey] = None if name == Action.DISCONNECT.value else peer
        raw.append((rec, ckey, peer))

    order = sorted(lines, key=lambda k: (_ROLE_ORDER.get(lines[k].role, 1), first_seen[k]))
    pos = {k: i for i, k in enumerate(order)}
    arrows: list[Arrow] = []
    for i, (rec, ckey, peer) in enumerate(raw, 1):
        name = str(rec.get("event", "?"))
        c = pos[ckey]
        p = pos[peer] if peer is not None else c
        action = name in _ACTIONS or name not in _EVENTS
        by = rec.get("by")
        observer = c if by == "client" else (p if by == "server" else None)
        port = rec.get("port")
        if port is None and peer is not None and lines[peer].addresses:
            port = lines[peer].addresses[0].rpartition(":")[2] or None
        t = rec.get("t")
        arrows.append(Arrow(
            index=i,
            source=c if action else p,
            dest=p if action else c,
            name=name,
            t=f"{t:,} ms" if isinstance(t, int) else "? ms",
            port=f":{port}" if port is not None else "",
            observer=observer,
            failure=is_failure(rec),
            action=action,
            error=str(rec.get("error") or ""),
            detail=", ".join(f"{k}={v}" for k, v in rec.items()),
        ))
    return Layout([lines[k] for k in order], arrows, len(every) - len(shown))


# --- SVG -------------------------------------------------------------------------

_FONT: Final = ("system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', "
                "Arial, sans-serif")
_INK: Final = "#37474f"
_MUTED: Final = "#78909c"
_FAIL: Final = "#c62828"
_FAIL_BAND: Final = "#fdecea"
_BOX_FILL: Final = {"client": "#e3ecf5", Role.MANAGER.value: "#eef1f3",
                    Role.GUP.value: "#f1e9f5"}

_GUTTER: Final = 48  # row numbers
_COL: Final = 250  # between lifelines: an event name, its time and port fit
_BOX_W: Final = 176
_BOX_H: Final = 40
_TOP: Final = 16
_ROW: Final = 34
_ERR_ROW: Final = 15  # extra height of a row that shows an error line
_LOOP_W: Final = 26
_CHAR_W: Final = 6.2  # average width of an 11 px character, for truncation


def _truncate(text: str, width: float) -> str:
    n = max(8, int(width / _CHAR_W))
    return text if len(text) <= n else text[: n - 1] + "…"


def sequence_svg(
    records: Iterable[Mapping[str, object]], max_rows: int = MAX_ROWS,
    mark: int | None = None,
) -> str:
    """The trace as an SVG sequence diagram (a standalone ``<svg>`` element).
    ``mark``: the 0-based index of the record that broke a requirement, drawn
    outlined with its number and "violation" (``id="violation"``)."""
    every = list(records)
    if mark is not None and mark >= max_rows:  # keep the marked record in view
        max_rows = mark + 1
    seq = layout(every, max_rows)
    n = max(1, len(seq.lifelines))
    x = [_GUTTER + _BOX_W / 2 + 8 + i * _COL for i in range(n)]
    width = int(max(x[-1] + _BOX_W / 2 + 8 + (_COL / 2 if n == 1 else 0), _LEGEND_W))
    out: list[str] = []
    y = _TOP + _BOX_H + 22
    rows: list[str] = []
    for a in seq.arrows:
        h = _ROW + (_ERR_ROW if a.error else 0)
        rows.append(_arrow_svg(a, x, y, h, width, marked=mark is not None
                               and a.index == mark + 1))
        y += h
    if seq.omitted:
        rows.append(f'<text x="{_GUTTER}" y="{y + 18}" font-size="12" fill="{_MUTED}" '
                    f'font-style="italic">… {seq.omitted:,} more records, not drawn: '
                    'see the NDJSON trace</text>')
        y += _ROW
    rows_end = y + 4
    rows.append(_legend(y + 12))
    y += 34
    height = y + 4
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="seq" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'font-family="{_esc(_FONT)}" font-size="11">'
    )
    out.append(f"<title>Sequence diagram: {len(seq.arrows)} trace records"
               f"{f', {seq.omitted:,} more not drawn' if seq.omitted else ''}</title>")
    out.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    for i, line in enumerate(seq.lifelines):
        out.append(_lifeline_svg(line, x[i], rows_end))
    out.extend(rows)
    out.append("</svg>")
    return "\n".join(out)


def _lifeline_svg(line: Lifeline, cx: float, bottom: float) -> str:
    left = cx - _BOX_W / 2
    fill = _BOX_FILL.get(line.role, "#eef1f3")
    return (
        f'<g class="lifeline"><title>{_esc(line.role)} {_esc(line.title)}'
        f'{" at " + _esc(", ".join(line.addresses)) if line.addresses else ""}</title>'
        f'<line x1="{cx}" y1="{_TOP + _BOX_H}" x2="{cx}" y2="{bottom}" stroke="#b0bec5" '
        f'stroke-dasharray="4 4"/>'
        f'<rect x="{left}" y="{_TOP}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
        f'fill="{fill}" stroke="{_INK}" stroke-width="1.2"/>'
        f'<text x="{cx}" y="{_TOP + 17}" text-anchor="middle" font-size="13" '
        f'font-weight="600" fill="#263238">{_esc(_truncate(line.title, _BOX_W - 12))}'
        f'</text>'
        f'<text x="{cx}" y="{_TOP + 32}" text-anchor="middle" font-size="10.5" '
        f'fill="{_MUTED}">{_esc(_truncate(line.subtitle, _BOX_W - 12))}</text></g>'
    )


def _arrow_svg(a: Arrow, x: list[float], top: float, h: int, width: int,
               marked: bool = False) -> str:
    ink = _FAIL if a.failure or marked else _INK
    ay = top + 21  # the arrow's line; its label sits above it
    parts = [f'<g class="msg{" failure" if a.failure else ""}'
             f'{" violation" if marked else ""}"'
             f'{" id=" + chr(34) + "violation" + chr(34) if marked else ""}>'
             f"<title>{_esc(a.detail)}</title>"]
    if marked:  # the record that broke the requirement: outlined, and said in words
        parts.append(f'<rect x="2" y="{top}" width="{width - 4}" height="{h}" rx="5" '
                     f'fill="{_FAIL_BAND}" stroke="{_FAIL}" stroke-width="2"/>')
        parts.append(f'<text x="{width - 10}" y="{top + 13}" text-anchor="end" '
                     f'font-weight="700" fill="{_FAIL}">violation (record {a.index})'
                     "</text>")
    # Labels get a halo in the row's background colour, so that the lifelines an
    # arrow crosses do not run through its text.
    halo = (f' stroke="{_FAIL_BAND if a.failure else "white"}" stroke-width="4" '
            'stroke-linejoin="round" paint-order="stroke"')
    if a.failure and not marked:
        parts.append(f'<rect x="4" y="{top + 1}" width="{width - 8}" height="{h - 2}" '
                     f'rx="4" fill="{_FAIL_BAND}"/>')
    parts.append(f'<text x="{_GUTTER - 10}" y="{ay + 4}" text-anchor="end" '
                 f'fill="{_MUTED}" font-size="10.5">{a.index}</text>')
    dash = "" if a.action else ' stroke-dasharray="5 3"'
    sx, dx = x[a.source], x[a.dest]
    label = (f'<tspan font-weight="600" fill="{ink}">{_esc(a.name)}</tspan>'
             f'<tspan fill="{_FAIL if a.failure else _MUTED}" dx="6">'
             f"{_esc(a.t)}{' · ' + _esc(a.port) if a.port else ''}</tspan>")
    if a.source == a.dest:
        # A self-arrow: out to the right, down, and back into the lifeline.
        y0, y1 = ay - 12, ay + 3
        parts.append(f'<path d="M{sx},{y0} h{_LOOP_W} V{y1} H{sx + 7}" fill="none" '
                     f'stroke="{ink}" stroke-width="1.3"{dash}/>')
        parts.append(_head(sx + (4 if a.observer == a.dest else 0), y1, -1, ink))
        parts.append(f'<text x="{sx + _LOOP_W + 8}" y="{ay}"{halo}>{label}</text>')
        text_left, text_w = sx + _LOOP_W + 8, _COL * 1.6
    else:
        d = 1 if dx > sx else -1
        # Stop short of an observer's dot, so the head stays readable.
        tip = dx - d * (4 if a.observer == a.dest else 0)
        parts.append(f'<line x1="{sx}" y1="{ay}" x2="{tip - d * 7}" y2="{ay}" '
                     f'stroke="{ink}" stroke-width="1.3"{dash}/>')
        parts.append(_head(tip, ay, d, ink))
        parts.append(f'<text x="{(sx + dx) / 2}" y="{ay - 6}" text-anchor="middle"'
                     f"{halo}>{label}</text>")
        text_left, text_w = min(sx, dx) + 10, max(abs(dx - sx) - 20, _COL * 1.6)
    if a.observer is not None:
        parts.append(f'<circle cx="{x[a.observer]}" cy="{ay}" r="3.2" fill="{ink}"/>')
    if a.error:
        parts.append(f'<text x="{text_left}" y="{ay + 15}" font-size="10.5" '
                     f'font-style="italic" fill="{_FAIL}">'
                     f"{_esc(_truncate('error: ' + a.error, text_w))}</text>")
    parts.append("</g>")
    return "".join(parts)


def _legend(y: float) -> str:
    """One line that says how to read the arrows."""
    x = float(_GUTTER)
    parts = [f'<g class="legend" font-size="10.5" fill="{_MUTED}">']
    for sample, text in (("action", "action: the client did it"),
                         ("event", "event: it happened to the client"),
                         ("dot", "recorded by this side"),
                         ("band", "failure")):
        mid = y + 8
        if sample in ("action", "event"):
            dash = ' stroke-dasharray="5 3"' if sample == "event" else ""
            parts.append(f'<line x1="{x}" y1="{mid}" x2="{x + 26}" y2="{mid}" '
                         f'stroke="{_INK}" stroke-width="1.3"{dash}/>'
                         + _head(x + 32, mid, 1, _INK))
            x += 40
        elif sample == "dot":
            parts.append(f'<circle cx="{x + 4}" cy="{mid}" r="3.2" fill="{_INK}"/>')
            x += 14
        else:
            parts.append(f'<rect x="{x}" y="{mid - 7}" width="22" height="14" rx="3" '
                         f'fill="{_FAIL_BAND}" stroke="{_FAIL}" stroke-width="0.8"/>')
            x += 30
        parts.append(f'<text x="{x}" y="{mid + 4}">{text}</text>')
        x += len(text) * _CHAR_W + 28
    parts.append("</g>")
    return "".join(parts)


#: Width the legend needs (the diagram is at least this wide).
_LEGEND_W: Final = _GUTTER + 4 * 40 + 28 * 4 + _CHAR_W * len(
    "action: the client did itevent: it happened to the clientrecorded by this sidefailure")


def _head(tip_x: float, y: float, direction: int, ink: str) -> str:
    """A filled arrowhead whose tip is at (tip_x, y), pointing right (1) or left (-1)."""
    back = tip_x - direction * 8
    return (f'<polygon points="{tip_x},{y} {back},{y - 4} {back},{y + 4}" '
            f'fill="{ink}"/>')


# --- Mermaid ---------------------------------------------------------------------

# Mermaid reads ';' and '#' as syntax, and '<', '>' as HTML inside labels; a label
# ends at the line's end. Anything else passes.
_MERMAID_BAD: Final = re.compile(r"[;#<>\r\n\x00-\x1f]")


def _mm(text: str) -> str:
    return _MERMAID_BAD.sub(" ", text).strip()


def sequence_mermaid(
    records: Iterable[Mapping[str, object]], max_rows: int = MAX_ROWS,
    mark: int | None = None,
) -> str:
    """The trace as a Mermaid ``sequenceDiagram`` (for Markdown viewers that draw it);
    ``mark`` (0-based) is the record that broke a requirement, noted as such."""
    every = list(records)
    if mark is not None and mark >= max_rows:
        max_rows = mark + 1
    seq = layout(every, max_rows)
    out = ["sequenceDiagram"]
    for i, line in enumerate(seq.lifelines):
        # Participant aliases are plain words: the ':' of an address is dropped.
        alias = _mm(f"{line.title} ({line.subtitle})".replace(":", " port "))
        out.append(f"  participant P{i} as {alias}")
    for a in seq.arrows:
        arrow = "->>" if a.action else "-->>"
        text = _mm(f"{a.name} {a.t}{' ' + a.port if a.port else ''}")
        msg = f"  P{a.source}{arrow}P{a.dest}: {text}"
        if a.failure:
            out.append("  rect rgb(253, 236, 234)")
            out.append(msg)
            if a.error:
                lo, hi = sorted((a.source, a.dest))
                span = f"P{lo},P{hi}" if lo != hi else f"P{lo}"
                out.append(f"  Note over {span}: {_mm(_truncate(a.error, 80 * _CHAR_W))}")
            out.append("  end")
        else:
            out.append(msg)
        if mark is not None and a.index == mark + 1:
            lo, hi = sorted((a.source, a.dest))
            span = f"P{lo},P{hi}" if lo != hi else f"P{lo}"
            out.append(f"  Note over {span}: violation (record {a.index})")
    if seq.omitted:
        out.append(f"  Note over P0: {seq.omitted} more records not drawn")
    return "\n".join(out) + "\n"
