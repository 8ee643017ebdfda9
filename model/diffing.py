"""The behavioural difference between two interpretations of the seed.

Theory of operation
-------------------
Two readings differ in three ways, each computed from the table, never restated:

* **rows**: transitions present under one interpretation only (by
  :attr:`~sephb.model.protocol.Row.name`);
* **check-in paths**: for a small configuration (2 managers at one priority, a GUP,
  pull and push) every check-in path of each concrete graph, written as its sequence
  of row names. Row names carry no manager, so the manager indexes are abstracted
  away: a failover path ``CONNECTING@m1 -> CONNECTING@m2`` reads as the failover row
  taken once, whichever managers were involved. A path exists in one interpretation
  and not the other exactly when the readings disagree on a whole check-in;
* **data**: how the first manager is chosen (the one ambiguity that changes data,
  not rows).

Two views are printed: :func:`summary` (the differing rows grouped by state and
event, with the counts and what separates the two readings: short enough to read)
and :func:`to_text` (every differing row and check-in path); :func:`to_json` is the
whole diff as data.

The diagram of a diff is drawn by :func:`sephb.diagrams.diff_diagram` (``model``
never imports ``diagrams``): the ``--to`` interpretation with its differing rows
highlighted. Rows only in ``--from`` cannot be drawn on that diagram; the Mermaid
output lists them as comments and the text output always does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .graph import Topology, checkin_paths, concrete_graph, row_of
from .interpretations import Interpretation
from .protocol import Event, Mode, Row, State

#: A check-in path with managers abstracted: its row names in order.
AbstractPath = tuple[str, ...]

#: The configurations paths are compared on: small enough to list, rich enough that
#: failover (2 managers), the GUP and both endings of step 7 can show.
TOPOLOGIES: Final[tuple[Topology, ...]] = tuple(
    Topology(managers=2, priorities=1, gup=True, mode=mode) for mode in Mode
)


@dataclass(frozen=True)
class Diff:
    """What separates interpretation ``a`` (from) and ``b`` (to)."""

    a: Interpretation
    b: Interpretation
    rows_only_a: tuple[Row, ...]
    rows_only_b: tuple[Row, ...]
    #: Per configuration label: paths only under ``a``, paths only under ``b``.
    paths: tuple[tuple[str, tuple[AbstractPath, ...], tuple[AbstractPath, ...]], ...]

    @property
    def differing_rows(self) -> tuple[Row, ...]:
        return self.rows_only_a + self.rows_only_b

    def by_state_event(self) -> list[tuple[State, Event, str, tuple[Row, ...],
                                           tuple[Row, ...]]]:
        """Each (state, event) a differing row starts from, in table order, with how
        it differs -- ``changed`` (both readings have rows for it, not the same),
        ``only a`` or ``only b`` -- and every row of it under ``a`` and ``b``."""
        keys = dict.fromkeys((r.source, r.event) for r in self.differing_rows)
        out = []
        for key in sorted(keys, key=_table_order(self.a, self.b)):
            rows_a = tuple(r for r in self.a.rows() if (r.source, r.event) == key)
            rows_b = tuple(r for r in self.b.rows() if (r.source, r.event) == key)
            how = "changed" if rows_a and rows_b else "only a" if rows_a else "only b"
            out.append((key[0], key[1], how, rows_a, rows_b))
        return out


def _table_order(a: Interpretation, b: Interpretation
                 ) -> Callable[[tuple[State, Event]], int]:
    order: dict[tuple[State, Event], int] = {}
    for r in (*a.rows(), *b.rows()):
        order.setdefault((r.source, r.event), len(order))
    return lambda key: order[key]


def abstract_paths(interp: Interpretation, topo: Topology) -> set[AbstractPath]:
    """Every check-in path of ``interp`` under ``topo``, managers abstracted."""
    g = concrete_graph(interp, topo)
    return {tuple(row_of(g, e).name for e in p) for p in checkin_paths(g)}


def _label(topo: Topology) -> str:
    return (f"{topo.managers} managers, {topo.priorities} priority, "
            f"{'GUP' if topo.gup else 'no GUP'}, {topo.mode.value}")


def diff(a: Interpretation, b: Interpretation,
         topologies: tuple[Topology, ...] = TOPOLOGIES) -> Diff:
    names_a = {r.name for r in a.rows()}
    names_b = {r.name for r in b.rows()}
    paths = []
    for topo in topologies:
        pa, pb = abstract_paths(a, topo), abstract_paths(b, topo)
        paths.append((_label(topo), tuple(sorted(pa - pb)), tuple(sorted(pb - pa))))
    return Diff(
        a, b,
        tuple(r for r in a.rows() if r.name not in names_b),
        tuple(r for r in b.rows() if r.name not in names_a),
        tuple(paths),
    )


def _row_line(r: Row) -> str:
    switch = f" (switch {r.when[0].value}={r.when[1]})" if r.when else ""
    return f"  {r.name}  [{r.requirement}]{switch}"


def _path_line(p: AbstractPath) -> str:
    return "    " + " ; ".join(p)


def to_text(d: Diff) -> str:
    a, b = d.a.name, d.b.name
    out = [f"Behavioural difference: {a} -> {b}", ""]
    out.append(f"Transitions only in {a} ({len(d.rows_only_a)}):")
    out += [_row_line(r) for r in d.rows_only_a] or ["  (none)"]
    out.append(f"Transitions only in {b} ({len(d.rows_only_b)}):")
    out += [_row_line(r) for r in d.rows_only_b] or ["  (none)"]
    out.append("")
    out.append(f"First manager of a heartbeat: {a} {d.a.selection.value}, "
               f"{b} {d.b.selection.value}"
               + (" (same)" if d.a.selection is d.b.selection else ""))
    out.append("")
    out.append("Check-in paths (row names in order, managers abstracted):")
    for label, only_a, only_b in d.paths:
        out.append(f"  {label}: {len(only_a)} only in {a}, {len(only_b)} only in {b}")
        for name, paths in ((a, only_a), (b, only_b)):
            if paths:
                out.append(f"   only in {name}:")
                out += [_path_line(p) for p in paths]
    return "\n".join(out) + "\n"


def _dests(rows: tuple[Row, ...]) -> str:
    return ", ".join(r.dest.value + (f" [{r.guard.value}]" if r.guard else "")
                     for r in rows) or "(none)"


def _readings(d: Diff) -> list[tuple[str, str, str]]:
    """What the two readings set differently: (what, under a, under b)."""
    out = []
    for what, va, vb in (
        *((s.value, d.a.switches[s], d.b.switches[s]) for s in d.a.switches),
        ("first manager", d.a.selection.value, d.b.selection.value),
        *((k, v, d.b.timing.to_json()[k]) for k, v in d.a.timing.to_json().items()),
    ):
        if va != vb:
            out.append((what, _word(va), _word(vb)))
    return out


def _word(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def summary(d: Diff) -> str:
    """The diff in a screenful: the differing transitions by state and event, the
    counts, the settings that differ and how many check-in paths each reading has
    alone (:func:`to_text` lists them all)."""
    a, b = d.a.name, d.b.name
    groups = d.by_state_event()
    counts = {how: sum(1 for g in groups if g[2] == how)
              for how in ("changed", "only a", "only b")}
    out = [f"Behavioural difference: {a} -> {b}",
           f"  {a}: {d.a.summary}", f"  {b}: {d.b.summary}", ""]
    out.append(f"Transitions: {len(d.rows_only_a)} only in {a}, {len(d.rows_only_b)} "
               f"only in {b}; by state and event: {counts['changed']} changed, "
               f"{counts['only a']} only in {a}, {counts['only b']} only in {b}")
    if groups:
        table = [("state", "event", a, b)] + [
            (st.value, ev.value, _dests(ra), _dests(rb)) for st, ev, _, ra, rb in groups]
        out += _columns(table)
    out.append("")
    readings = _readings(d)
    out.append(f"Settings that differ ({len(readings) or 'none'}):")
    if readings:
        out += _columns([("setting", a, b), *readings])
    out.append("")
    out.append("Check-in paths only one reading has (row names in order, managers "
               "abstracted):")
    for label, only_a, only_b in d.paths:
        out.append(f"  {label}: {len(only_a)} only in {a}, {len(only_b)} only in {b}")
    out.append("")
    out.append("(every row and path: sephb diff --full; the whole diff as data: --json)")
    return "\n".join(out) + "\n"


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as aligned columns (the last one not padded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True))
            + "  " + r[-1] for r in rows]


def _row_json(r: Row) -> dict[str, Any]:
    return {"name": r.name, "source": r.source.value, "event": r.event.value,
            "dest": r.dest.value, "guard": r.guard.value if r.guard else None,
            "requirement": r.requirement,
            "switch": {r.when[0].value: r.when[1]} if r.when else None}


def to_json(d: Diff) -> dict[str, Any]:
    """The whole diff as JSON-ready data (``sephb diff --json``)."""
    how = {"changed": "changed", "only a": "only_from", "only b": "only_to"}
    return {
        "from": d.a.to_json(),
        "to": d.b.to_json(),
        "rows_only_from": [_row_json(r) for r in d.rows_only_a],
        "rows_only_to": [_row_json(r) for r in d.rows_only_b],
        "by_state_event": [
            {"state": st.value, "event": ev.value, "how": how[h],
             "from": [_row_json(r) for r in ra], "to": [_row_json(r) for r in rb]}
            for st, ev, h, ra, rb in d.by_state_event()],
        "settings": [{"setting": w, "from": va, "to": vb} for w, va, vb in _readings(d)],
        "paths": [{"configuration": label, "only_from": [list(p) for p in only_a],
                   "only_to": [list(p) for p in only_b]}
                  for label, only_a, only_b in d.paths],
    }
