"""What ``sephb monitor`` shows while it runs: its state as rows, and those rows as a
terminal table and as a web page.

:func:`rows` is pure: it takes what the monitor knows -- the live judgement's client
streams (:meth:`~sephb.conformance.traces.live.LiveValidation.clients`), what the
monitor noted of each client's records (:class:`Seen`), the presumptive findings it
has said, the model time now and the relays -- and returns a :class:`View`: one
:class:`ClientRow` per client, one :class:`RelayRow` per upstream server. The
terminal table (:func:`table`), the page (:func:`page`) and ``/state`` (the
:class:`View` as JSON) are all made from it, so they say the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import jinja2
from rich.table import Table
from rich.text import Text

from sephb.conformance.traces.live import LiveClient

__all__ = ["ClientRow", "RelayRow", "Seen", "View", "page", "rows", "table"]

Verdict = Literal["CONFORMANT", "NON-CONFORMANT", "presumptively NON-CONFORMANT"]


@dataclass(frozen=True)
class Seen:
    """What the monitor noted of one client's records as they went by."""

    #: The last record's event (or action) name and model time.
    event: str
    t: int
    #: Model time of its last ``CONNECT`` to a manager (a check-in's start).
    checkin: int | None = None


@dataclass(frozen=True)
class ClientRow:
    """One client, as the monitor sees it now."""

    client: str
    #: The last record's event: where the client is ("state").
    state: str
    #: Model time of its last record ("last seen").
    last_seen: int
    #: Model time of its last check-in's start (``CONNECT`` to a manager).
    checkin: int | None
    #: The earliest deadline pending: its requirement, due time, model ms left
    #: (negative: past due, the tolerance not counted).
    next_requirement: str | None
    next_due: int | None
    next_in_ms: int | None
    verdict: Verdict
    #: The requirements it broke (proven first, then presumptive), and the first
    #: finding's message.
    requirements: tuple[str, ...]
    finding: str


@dataclass(frozen=True)
class RelayRow:
    """One upstream server and the relay in front of it."""

    name: str
    role: str
    upstream: str
    relay: str
    #: Client connections open through the relay now.
    open: int


@dataclass(frozen=True)
class View:
    """Everything the monitor shows, at model time ``now``."""

    now: int
    clients: tuple[ClientRow, ...]
    relays: tuple[RelayRow, ...]


def rows(clients: Sequence[LiveClient], seen: Mapping[str, Seen],
         presumed: Mapping[str, Sequence[tuple[str, str]]], now: int,
         relays: Sequence[RelayRow] = ()) -> View:
    """The monitor's state as rows. ``clients``: the live judgement's streams (the
    servers' view; a client view of the same id is skipped); ``seen``: per client
    id, its last record; ``presumed``: per client id, the (requirement, message) of
    each presumptive finding said, in order; ``now``: model ms."""
    out: list[ClientRow] = []
    done: set[str] = set()
    for c in clients:
        if c.client in done:
            continue
        done.add(c.client)
        s = seen.get(c.client)
        found: list[tuple[str, str]] = []
        if c.violation is not None:
            found.append((c.violation.requirement, c.violation.message))
        found += [f for f in presumed.get(c.client, ()) if f not in found]
        verdict: Verdict = ("NON-CONFORMANT" if c.violation is not None
                            else "presumptively NON-CONFORMANT" if found
                            else "CONFORMANT")
        nxt = min(c.pending, key=lambda p: p.due, default=None)
        reqs = tuple(dict.fromkeys(r for r, _ in found))
        out.append(ClientRow(
            client=c.client, state=s.event if s else "", last_seen=s.t if s else c.last_t,
            checkin=s.checkin if s else None,
            next_requirement=nxt.requirement if nxt else None,
            next_due=nxt.due if nxt else None,
            next_in_ms=nxt.due - now if nxt else None,
            verdict=verdict, requirements=reqs, finding=found[0][1] if found else ""))
    return View(now, tuple(out), tuple(relays))


def _t(t: int | None) -> str:
    return "" if t is None else str(t)


def _next(r: ClientRow) -> str:
    if r.next_requirement is None:
        return ""
    left = (f"in {r.next_in_ms} ms" if r.next_in_ms is not None and r.next_in_ms >= 0
            else f"{-(r.next_in_ms or 0)} ms ago")
    return f"{r.next_requirement} at t={r.next_due} ({left})"


#: The columns of both the table and the page.
HEADINGS: Final = ("client", "state", "last seen", "check-in", "next deadline",
                   "verdict", "findings")

_STYLE: Final = {"CONFORMANT": "green", "NON-CONFORMANT": "bold red",
                 "presumptively NON-CONFORMANT": "yellow"}


def _cells(r: ClientRow) -> tuple[str, ...]:
    finding = " ".join([", ".join(r.requirements), r.finding]).strip()
    return (r.client, r.state, _t(r.last_seen), _t(r.checkin), _next(r), r.verdict,
            finding)


def table(view: View) -> Table:
    """The rows as a rich table for the terminal (text only: no markup is read from
    client ids or messages)."""
    t = Table(title=f"sephb monitor  t={view.now} ms", title_justify="left",
              caption="  ".join(f"{r.name}: {r.upstream} <- {r.relay} ({r.open} open)"
                                for r in view.relays), caption_justify="left")
    for h in HEADINGS:
        t.add_column(h, overflow="fold")
    for r in view.clients:
        cells = [Text(c) for c in _cells(r)]
        cells[5].stylize(_STYLE[r.verdict])
        t.add_row(*cells)
    return t


_PAGE: Final = """\
<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="1">
<title>sephb monitor</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left;
         vertical-align: top; }
th { background: #f3f3f3; }
.CONFORMANT { color: #070; }
.NON-CONFORMANT { color: #b00; font-weight: bold; }
.presumptively { color: #a60; }
</style></head><body>
<h1>sephb monitor</h1>
<p>model time t={{ view.now }} ms; this page reloads every second
(<a href="state">state</a> as JSON)</p>
<table id="clients">
<tr>{% for h in headings %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r, cells in clients %}
<tr class="client">{% for c in cells %}<td{% if loop.index == 6 %} class="{{
 r.verdict.split()[0] }}"{% endif %}>{{ c }}</td>{% endfor %}</tr>
{% else %}
<tr><td colspan="{{ headings|length }}">no client yet</td></tr>
{% endfor %}
</table>
<table id="relays">
<tr><th>server</th><th>role</th><th>upstream</th><th>relay</th><th>open</th></tr>
{% for r in view.relays %}
<tr><td>{{ r.name }}</td><td>{{ r.role }}</td><td>{{ r.upstream }}</td>
<td>{{ r.relay }}</td><td>{{ r.open }}</td></tr>
{% endfor %}
</table>
</body></html>
"""

_TEMPLATE: Final = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                      trim_blocks=True).from_string(_PAGE)


def page(view: View) -> str:
    """The rows as a self-contained HTML page that reloads itself every second
    (everything from the clients is escaped)."""
    return _TEMPLATE.render(view=view, headings=HEADINGS,
                            clients=[(r, _cells(r)) for r in view.clients])
