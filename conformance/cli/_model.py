"""The commands about the model itself: ``model``, ``paths``, ``diagram``, ``review``,
``diff``, ``export`` and ``capacity``. Each parses its arguments and calls
:mod:`sephb.model` or :mod:`sephb.diagrams`; the heavy imports happen when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sephb.conformance.cli._common import (
    interpretation_option,
    mode_choices,
    output_option,
    print_json,
    topology_options,
)
from sephb.model.errors import UsageError
from sephb.model.interpretations import DEFAULT, INTERPRETATIONS


def register(sub: Any) -> None:
    """Add this module's commands to the CLI's subparsers."""
    p = sub.add_parser("model", help="print the model: states, events, transitions",
                       description="Print the transition table, its parameters, the "
                                   "interpretations and the result of the static "
                                   "analyses.")
    interpretation_option(p)
    p.add_argument("--json", action="store_true",
                   help="machine-readable: states, events, transitions, parameters, "
                        "interpretations")
    p.set_defaults(run=cmd_model)

    p = sub.add_parser("paths", help="check-in paths: test cases generated from the model",
                       description="Expand the model for a configuration and print "
                                   "check-in paths (heartbeat due -> back to idle or "
                                   "into the held push connection). Each path is a "
                                   "named test case.")
    interpretation_option(p)
    topology_options(p)
    p.add_argument("--json", action="store_true",
                   help="machine-readable: paths, covered_transitions, total_transitions")
    p.set_defaults(run=cmd_paths)

    p = sub.add_parser("diagram", help="draw the state diagram",
                       description="Draw the state diagram from the table (graphviz or "
                                   "Mermaid), optionally highlighting one check-in path "
                                   "from `sephb paths` with the same options.")
    interpretation_option(p)
    p.add_argument("--format", "-f", default="svg",
                   choices=("svg", "png", "dot", "mermaid"),
                   help="output format (default: svg)")
    p.add_argument("--highlight", type=int, metavar="PATH_INDEX",
                   help="index of a path in `sephb paths` (same options) to highlight")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write here (default: standard output; a directory with --all)")
    p.add_argument("--all", action="store_true",
                   help="write every format of every interpretation into the -o directory")
    topology_options(p)
    p.set_defaults(run=cmd_diagram)


def register_review(sub: Any) -> None:
    """Add the review commands (review, diff, export, capacity) to the subparsers."""
    p = sub.add_parser(
        "review", help="write the specification review (docs/spec-review.md)",
        description="Trace every behavioural sentence of the seed to its requirement "
                    "id, the transitions and parameters that encode it, the checks and "
                    "tests that exercise it, and list the ambiguities. Run from the "
                    "project root to trace the tests too.")
    p.add_argument("-i", "--interpretation", choices=sorted(INTERPRETATIONS),
                   help="only this interpretation's transitions (default: all)")
    p.add_argument("--seed", type=Path, help="the seed text (default: $SEPHB_SEED, "
                   "model/seed/heartbeat-process.txt)")
    p.add_argument("--root", type=Path, default=Path("."),
                   help="project root holding tests/ and conformance/ (default: .)")
    output_option(p)
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a seed requirement has no model element or test")
    p.set_defaults(run=cmd_review)

    p = sub.add_parser(
        "diff", help="the behavioural difference between two interpretations",
        description="Transitions present under one interpretation only, check-in paths "
                    "(2 managers, a GUP, pull and push) that exist under one only, and "
                    "a diagram with the differing transitions highlighted.")
    names = sorted(INTERPRETATIONS)
    p.add_argument("--from", dest="from_", default="seed", choices=names)
    p.add_argument("--to", default="documented", choices=names)
    p.add_argument("--format", default="text", choices=["text", "svg", "mermaid", "dot"])
    output_option(p)
    p.set_defaults(run=cmd_diff)

    p = sub.add_parser("export", help="export the model for other tools (Promela for SPIN)",
                       description="Export the transition table in another notation.")
    formats = p.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    q = formats.add_parser(
        "promela", help="Promela for the SPIN model checker, with LTL properties",
        description="Translate the table of one interpretation into Promela (one "
                    "proctype, a branch per row) with the seed's rules as LTL "
                    "properties. Check with: spin -a FILE && gcc -o pan pan.c && "
                    "./pan -a -N <property>.")
    q.add_argument("-i", "--interpretation", default=DEFAULT,
                   choices=sorted(INTERPRETATIONS))
    q.add_argument("--managers", type=int, default=2)
    q.add_argument("--gup", action=argparse.BooleanOptionalAction, default=True)
    q.add_argument("--mode", choices=mode_choices(), default="pull")
    q.add_argument("--verify", action="store_true",
                   help="also run SPIN on every property and print the verdicts")
    output_option(q)
    q.set_defaults(run=cmd_export)

    from sephb.model.capacity import PROFILES
    from sephb.model.protocol import HEARTBEAT_INTERVAL_S

    p = sub.add_parser(
        "capacity", help="traffic and connections the heartbeat sizes imply for a fleet",
        description="Bytes per day per manager (low/high from the seed's size ranges), "
                    "check-ins per second and held push connections, with the "
                    "assumptions they rest on.")
    p.add_argument("--clients", type=int, help="number of clients (required unless "
                                               "--examples)")
    p.add_argument("--interval", type=int, default=HEARTBEAT_INTERVAL_S,
                   help="heartbeat interval in seconds (default: %(default)s)")
    p.add_argument("--profile", choices=list(PROFILES), default="idle")
    p.add_argument("--mode", choices=mode_choices(), default="pull")
    p.add_argument("--managers", type=int, default=1)
    p.add_argument("--examples", action="store_true",
                   help="print the worked examples (docs/capacity.md) instead")
    output_option(p)
    p.set_defaults(run=cmd_capacity)


def cmd_model(args: argparse.Namespace) -> int:
    from sephb.model import analysis, protocol
    from sephb.model.interpretations import AMBIGUITIES, get

    interp = get(args.interpretation)
    rows = interp.rows()
    if args.json:
        doc = {
            "interpretation": interp.name,
            "states": [s.value for s in protocol.State],
            "events": [e.value for e in protocol.Event],
            "transitions": [
                {
                    "source": r.source.value,
                    "event": r.event.value,
                    "dest": r.dest.value,
                    "guard": r.guard.value if r.guard else None,
                    "requirement": r.requirement,
                }
                for r in rows
            ],
            "guards": {
                g.value: {"scope": s.scope.value, "requirement": s.requirement,
                          "text": s.text}
                for g, s in protocol.GUARDS.items()
            },
            "parameters": {
                p.name: {"value": p.value, "unit": p.unit, "requirement": p.requirement,
                         "source": p.source}
                for p in protocol.PARAMETERS.values()
            },
            "requirements": {
                r.id: {"step": r.step, "origin": r.origin, "text": r.text}
                for r in protocol.REQUIREMENTS.values()
            },
            "interpretations": {i.name: i.to_json() for i in INTERPRETATIONS.values()},
        }
        print_json(doc)
        return 0
    st = analysis.structure(rows)
    problems = analysis.check_all(interp)
    print(f"sephb model, interpretation {interp.name!r}: {interp.summary}")
    print(f"  {len(protocol.State)} states, {len(protocol.Event)} events, "
          f"{len(rows)} transitions, {len(protocol.REQUIREMENTS)} requirements")
    print("\ntransitions (source --event[guard]--> dest   requirement):")
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"  {r.name:<{width}}  {r.requirement}")
    print("\nparameters:")
    for p in protocol.PARAMETERS.values():
        print(f"  {p.name:<26} {p.value:>7} {p.unit:<5}  {p.requirement}  ({p.source})")
    print("\nambiguities (seed | documented):")
    for a in AMBIGUITIES:
        print(f"  {a.id:<26} {a.seed_choice} | {a.documented_choice}")
    print(f"\nanalyses: {len(st.reachable)}/{len(protocol.State)} states reachable, "
          f"{len(st.dead_ends)} dead ends, {len(st.unreachable_rows)} unreachable "
          f"transitions, {len(problems)} problems")
    for problem in problems:
        print(f"  ! {problem}")
    return 1 if problems else 0


def _graph_and_paths(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from sephb.model import graph
    from sephb.model.interpretations import get
    from sephb.model.protocol import Mode

    topo = graph.Topology(args.managers, args.priorities, args.gup, Mode(args.mode))
    g = graph.concrete_graph(get(args.interpretation), topo)
    if args.cover == "transitions":
        paths = graph.cover_transitions(g)
    elif args.cover == "edge-pairs":
        paths = graph.cover_edge_pairs(g)
    else:
        paths = list(graph.checkin_paths(g))
    return g, paths


def cmd_paths(args: argparse.Namespace) -> int:
    from sephb.model import graph

    g, paths = _graph_and_paths(args)
    covered = {e for p in paths for e in p}
    total = g.number_of_edges()
    if args.json:
        print_json({
            "interpretation": args.interpretation,
            "cover": args.cover,
            "names": [f"T{i:0{len(str(len(paths)))}d}" for i in range(len(paths))],
            "paths": [[graph.edge_json(g, e) for e in p] for p in paths],
            "covered_transitions": len(covered),
            "total_transitions": total,
            "covered_edge_pairs": len(graph.edge_pairs(paths, g)),
            "total_edge_pairs": len(graph.all_edge_pairs(g)),
        })
        return 0
    pairs, all_pairs = len(graph.edge_pairs(paths, g)), len(graph.all_edge_pairs(g))
    print(f"{len(paths)} check-in paths ({args.cover}); transitions covered "
          f"{len(covered)}/{total}, edge pairs covered {pairs}/{all_pairs}")
    digits = len(str(len(paths)))
    for i, p in enumerate(paths):
        steps = " ".join(f"-{_label(graph.row_of(g, e))}-> {e[1]}" for e in p)
        print(f"T{i:0{digits}d}  {p[0][0]} {steps}")
    return 0


def _label(row: Any) -> str:
    guard = f"[{row.guard.value}]" if row.guard else ""
    return f"{row.event.value}{guard}"


def cmd_diagram(args: argparse.Namespace) -> int:
    from sephb import diagrams

    if args.all:
        if not args.output:
            raise UsageError("--all needs -o DIRECTORY")
        for path in diagrams.write_all(Path(args.output)):
            print(path)
        return 0
    highlight = None
    if args.highlight is not None:
        _, paths = _graph_and_paths(args)
        if not 0 <= args.highlight < len(paths):
            raise UsageError(
                f"--highlight {args.highlight}: there are {len(paths)} paths "
                f"(0..{len(paths) - 1}) with these options"
            )
        highlight = paths[args.highlight]
    data = diagrams.render(args.interpretation, args.format, highlight)
    if args.output:
        Path(args.output).write_bytes(data)
    elif args.format == "png":
        raise UsageError("PNG is binary: give -o FILE")
    else:
        sys.stdout.write(data.decode())
    return 0



def _write(args: argparse.Namespace, data: str | bytes) -> None:
    """Write to ``-o FILE``, or to standard output."""
    raw = data.encode() if isinstance(data, str) else data
    if args.output:
        args.output.write_bytes(raw)
    else:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()


def cmd_review(args: argparse.Namespace) -> int:
    from sephb.model.review import NO_TESTS, gaps, has_tests, render

    if not has_tests(args.root):
        print(f"sephb review: {NO_TESTS}", file=sys.stderr)
    _write(args, render(args.root, args.seed, args.interpretation))
    if args.check:
        problems = gaps(args.root, args.seed)
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from sephb.diagrams import diff_diagram
    from sephb.model.diffing import diff, to_text
    from sephb.model.interpretations import get

    d = diff(get(args.from_), get(args.to))
    _write(args, to_text(d) if args.format == "text" else diff_diagram(d, args.format))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``sephb export promela``: print or write the Promela program."""
    from sephb.model.graph import Topology
    from sephb.model.interpretations import get
    from sephb.model.promela import export, verify
    from sephb.model.protocol import Mode

    topo = Topology(managers=args.managers, priorities=1, gup=args.gup,
                    mode=Mode(args.mode))
    source = export(get(args.interpretation), topo)
    _write(args, source)
    if not args.verify:
        return 0
    failed = 0
    for v in verify(source):
        failed += not v.holds
        print(f"{v.property}: {'holds' if v.holds else 'VIOLATED'}", file=sys.stderr)
    return 1 if failed else 0


def cmd_capacity(args: argparse.Namespace) -> int:
    from sephb.model.capacity import capacity, render_doc, to_text
    from sephb.model.protocol import Mode

    if args.examples:
        text = render_doc()
    elif args.clients is None:
        raise UsageError("--clients is required (or --examples)")
    else:
        text = to_text(capacity(args.clients, args.interval, args.profile,
                                Mode(args.mode), args.managers))
    _write(args, text)
    return 0
