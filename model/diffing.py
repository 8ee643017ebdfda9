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

The diagram of a diff is drawn by :func:`sephb.diagrams.diff_diagram` (``model``
never imports ``diagrams``): the ``--to`` interpretation with its differing rows
highlighted. Rows only in ``--from`` cannot be drawn on that diagram; the Mermaid
output lists them as comments and the text output always does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .graph import Topology, checkin_paths, concrete_graph, row_of
from .interpretations import Interpretation
from .protocol import Mode, Row

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
