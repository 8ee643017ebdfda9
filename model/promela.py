"""The transition table translated mechanically into Promela, with the seed's rules as
LTL properties, for the SPIN model checker.

Theory of operation
-------------------
SPIN is a second, independent checker of the same table: the networkx analyses of
:mod:`sephb.model.analysis` enumerate check-in paths in Python; here the table becomes
a Promela program and SPIN explores its state space against LTL formulas. A wrong
row should be caught by both.

The translation is row by row and knows nothing about particular rows:

* every :class:`~sephb.model.protocol.State` and every
  :class:`~sephb.model.protocol.Event` becomes an ``mtype`` constant (plus
  ``NO_EVENT`` for the start);
* one ``active proctype client`` loops over one ``if`` whose branches are the rows of
  ``interp.rows()``, each an ``atomic`` step: its enabling condition is
  ``st == SOURCE && <guard>``, its effect records the event and moves to ``DEST``;
* a guard of :class:`~sephb.model.protocol.Scope` ``CONFIG`` is an expression over
  ``#define`` constants of the configuration (``PUSH``, ``MANAGERS``) and the manager
  index ``m``; a ``RUNTIME`` guard is ``true``, so SPIN chooses nondeterministically
  among the rows sharing ``(state, event)`` -- exactly "any situation may arise".
  The one exception mirrors :func:`sephb.model.graph.concrete_graph`: a GUP source
  needs a configured GUP (``HAS_GUP``);
* the manager index follows the concrete graph: step 1 picks a first manager
  (nondeterministically among the top priority under random selection), a
  ``NEXT_MANAGER`` row increments it, returning to IDLE clears it;
* ghost variables ``prev_st`` and ``prev_m`` (state and manager before the last step)
  let the properties speak about a step without Promela's ``X`` operator, which
  would defeat partial-order reduction.

The properties (:data:`PROPERTIES`) are the seed's rules read as LTL, each tagged with
the requirement ids it checks. :func:`verify` runs ``spin -a``, ``gcc`` and
``./pan -a -N <name>`` for each, in a temporary directory.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import UsageError
from .graph import Topology
from .interpretations import Interpretation
from .protocol import GUARDS, INITIAL, REST_STATES, Event, Guard, Mode, Row, Scope, State


@dataclass(frozen=True)
class Property:
    """One LTL property: its name in Promela, its formula, what it checks."""

    name: str
    formula: str
    requirements: tuple[str, ...]
    text: str


#: The seed's rules as LTL over ``st`` (current state), ``ev`` (last event), the ghost
#: ``prev_st``/``prev_m`` and the configuration constants. ``rest`` and
#: ``session_failed`` are macros of the generated program.
PROPERTIES: Final[tuple[Property, ...]] = (
    Property(
        "timeout_no_request",
        "[] (session_failed -> (st == IDLE || (st == CONNECTING && m != prev_m)))",
        ("REQ-2-TIMEOUT-30000", "REQ-2-FAILOVER"),
        "a connect failure or session timeout is never followed by a request to the "
        "same manager: the check-in ends, or (failover) connects to another manager",
    ),
    Property(
        "checkin_ends",
        "[] (!rest -> <> rest)",
        ("REQ-2-TIMEOUT-30000", "REQ-X-ABORT", "REQ-7-PULL", "REQ-7-PUSH",
         "REQ-X-ALIVE"),
        "every check-in ends: from any non-rest state a rest state (IDLE, PUSH_HELD) "
        "is eventually reached (the model never stops where a client must go on)",
    ),
    Property(
        "pull_disconnect_first",
        "[] ((ev == HEARTBEAT_DUE && !PUSH) -> prev_st == IDLE)",
        ("REQ-7-PULL",),
        "in pull mode the client has disconnected (is IDLE) before the next heartbeat",
    ),
    Property(
        "mode_ending",
        "[] (ev == SENSORS_ACKED -> ((PUSH && st == PUSH_HELD) || (!PUSH && st == IDLE)))",
        ("REQ-7-PULL", "REQ-7-PUSH"),
        "a completed check-in disconnects in pull mode and holds the connection in "
        "push mode",
    ),
    Property(
        "logs_before_sensors",
        "[] (st == UPLOADING_SENSORS -> (prev_st == UPLOADING_LOGS && ev == LOGS_ACKED))",
        ("REQ-5-LOGS", "REQ-6-SENSORS"),
        "LAN sensors and learned applications are uploaded only right after the "
        "manager acknowledged the logs",
    ),
    Property(
        "push_immediate",
        "[] (ev == POLICY_PUSHED -> (prev_st == PUSH_HELD && st == FETCHING_INDEX))",
        ("REQ-7-PUSH-IMMEDIATE",),
        "a policy pushed on the held connection is fetched at once",
    ),
    Property(
        "next_heartbeat",
        "[] ((st == IDLE) -> <> (st == CONNECTING))",
        ("REQ-7-PULL",),
        "after a check-in ends the next heartbeat always begins (the time-abstracted "
        "half of the next-heartbeat deadline; its bound is judged by the suite)",
    ),
    Property(
        "gup_only_configured",
        "[] (st == DOWNLOADING_GUP -> HAS_GUP)",
        ("REQ-4-PORT-2967",),
        "content comes over TCP 2967 only when a GUP is configured",
    ),
)


def _guard_expr(guard: Guard | None) -> str:
    """The enabling condition of a guard: config guards as expressions over the
    constants, runtime guards open (SPIN picks any row that is enabled)."""
    if guard is None:
        return "true"
    if GUARDS[guard].scope is Scope.RUNTIME:
        # A GUP source is a runtime decision of the policy, but only possible when the
        # configuration has a GUP at all (as in graph.concrete_graph).
        return "HAS_GUP" if guard is Guard.SOURCE_GUP else "true"
    return {
        Guard.PULL_MODE: "!PUSH",
        Guard.PUSH_MODE: "PUSH",
        Guard.NEXT_MANAGER: "(m + 1 < MANAGERS)",
        Guard.LAST_MANAGER: "(m + 1 >= MANAGERS)",
    }[guard]


def _manager_update(row: Row, first: Sequence[int]) -> str:
    """How a row moves the manager index (as graph.concrete_graph does)."""
    if row.dest is State.IDLE:
        return "m = 0"
    if row.source is State.IDLE:
        if len(first) == 1:
            return f"m = {first[0]}"
        # Random selection within the top priority: any of them.
        return "if " + " ".join(f":: m = {k}" for k in first) + " fi"
    if row.guard is Guard.NEXT_MANAGER:
        return "m = m + 1"
    return "skip"


def export(
    interp: Interpretation,
    topo: Topology | None = None,
    rows: Sequence[Row] | None = None,
) -> str:
    """The Promela program of ``interp`` (or of ``rows``, e.g. a mutated table) for
    one configuration, with every property of :data:`PROPERTIES`."""
    topo = topo or Topology(managers=2, priorities=1, gup=True, mode=Mode.PULL)
    table = tuple(interp.rows() if rows is None else rows)
    first = topo.first_choices(interp.selection)
    lines = [
        f"/* SEP client heartbeat, interpretation '{interp.name}': {interp.summary}.",
        "   Generated by `sephb export promela` from the transition table; do not edit.",
        f"   Configuration: {topo.managers} managers over {topo.priorities} priorities, "
        f"{'a' if topo.gup else 'no'} GUP, {topo.mode.value} mode. */",
        "",
        "mtype = { " + ", ".join(s.value for s in State) + " };  /* states */",
        "mtype = { NO_EVENT, " + ", ".join(e.value for e in Event) + " };  /* events */",
        "",
        f"#define MANAGERS {topo.managers}",
        f"#define HAS_GUP {int(topo.gup)}",
        f"#define PUSH {int(topo.mode is Mode.PUSH)}",
        "",
        f"mtype st = {INITIAL.value};",
        "mtype ev = NO_EVENT;",
        f"mtype prev_st = {INITIAL.value};  /* ghost: state before the last step */",
        "byte m = 0;       /* index of the manager the client talks to */",
        "byte prev_m = 0;  /* ghost: manager before the last step */",
        "",
        "#define rest (" + " || ".join(f"st == {s.value}" for s in sorted(
            REST_STATES, key=lambda s: s.value)) + ")",
        "#define session_failed (ev == SESSION_TIMEOUT || ev == CONNECT_FAILED)",
        "",
        "active proctype client() {",
        "  do",
        "  :: if",
    ]
    for r in table:
        lines.append(f"     /* {r.requirement}: {r.name} */")
        lines.append(
            f"     :: atomic {{ st == {r.source.value} && {_guard_expr(r.guard)} -> "
            f"prev_st = st; prev_m = m; ev = {r.event.value}; st = {r.dest.value}; "
            f"{_manager_update(r, first)} }}"
        )
    lines += ["     fi", "  od", "}", ""]
    for p in PROPERTIES:
        lines.append(f"/* {', '.join(p.requirements)}: {p.text} */")
        lines.append(f"ltl {p.name} {{ {p.formula} }}")
    return "\n".join(lines) + "\n"


class SpinMissing(UsageError):
    """SPIN or a C compiler is not installed."""


@dataclass(frozen=True)
class Verdict:
    """The result of checking one property with SPIN."""

    property: str
    holds: bool
    output: str


_ERRORS = re.compile(r"errors: (\d+)")


def verify(source: str, names: Sequence[str] | None = None,
           timeout: float = 60.0) -> list[Verdict]:
    """Check the properties ``names`` (default: all) of a Promela program with SPIN.

    One ``spin -a`` and one ``gcc`` per program; then ``./pan -a -N name`` per property
    (``-a``: acceptance cycles, needed for the liveness property ``checkin_ends``).
    """
    for tool in ("spin", "gcc"):
        if shutil.which(tool) is None:
            raise SpinMissing(f"{tool!r} is not installed; `make test` installs it "
                              f"(apt-get install spin gcc)")
    with tempfile.TemporaryDirectory(prefix="sephb-spin-") as tmp:
        work = Path(tmp)
        (work / "model.pml").write_text(source)

        def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                                  timeout=timeout, check=False)

        for cmd in (["spin", "-a", "model.pml"], ["gcc", "-O0", "-o", "pan", "pan.c"]):
            done = run(cmd)
            if done.returncode != 0:
                raise UsageError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")
        verdicts = []
        for name in names or [p.name for p in PROPERTIES]:
            done = run(["./pan", "-a", "-N", name])
            m = _ERRORS.search(done.stdout)
            if m is None:
                raise UsageError(f"pan -N {name}: no verdict in its output:\n"
                                 f"{done.stdout}{done.stderr}")
            verdicts.append(Verdict(name, m.group(1) == "0", done.stdout))
        return verdicts
