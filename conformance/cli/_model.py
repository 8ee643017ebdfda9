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
    json_option,
    mode_choices,
    output_format,
    output_option,
    output_path,
    positive,
    print_json,
    renamed,
    require_writable,
    topology_options,
    write_output,
)
from sephb.model.errors import UsageError
from sephb.model.interpretations import INTERPRETATIONS


def register(sub: Any) -> None:
    """Add this module's commands to the CLI's subparsers."""
    p = sub.add_parser("model", help="print the model: states, events, transitions",
                       description="Print the transition table, its parameters, the "
                                   "interpretations and the result of the static "
                                   "analyses.")
    interpretation_option(p)
    json_option(p, "states, events, transitions, parameters, interpretations")
    p.set_defaults(run=cmd_model)

    p = sub.add_parser("paths", help="check-in paths: test cases generated from the model",
                       description="Expand the model for a configuration and print "
                                   "check-in paths (heartbeat due -> back to idle or "
                                   "into the held push connection). Each path is a "
                                   "named test case.")
    interpretation_option(p)
    topology_options(p)
    json_option(p, "paths, covered_transitions, total_transitions")
    p.set_defaults(run=cmd_paths)

    p = sub.add_parser("diagram", help="draw the state diagram",
                       description="Draw the state diagram from the table (graphviz or "
                                   "Mermaid), optionally highlighting one check-in path "
                                   "from `sephb paths` with the same options.")
    interpretation_option(p)
    p.add_argument("--format", "-f", choices=("svg", "png", "dot", "mermaid"),
                   help="output format (default: the one -o FILE's extension names: "
                        ".svg, .png, .dot or .gv, .mmd; svg on standard output)")
    p.add_argument("--view", choices=("full", "statechart"), default="full",
                   help="full: one arrow per transition of the table; statechart: "
                        "states that share exits framed as superstates, each shared "
                        "exit drawn once (default: full)")
    p.add_argument("--highlight", type=int, metavar="PATH_INDEX",
                   help="index of a path in `sephb paths` (same options) to highlight: "
                        "3 is T03")
    p.add_argument("-o", "--output", type=output_path, metavar="FILE",
                   help="write here (default: standard output; a directory with --all; "
                        "missing directories are created)")
    p.add_argument("--all", action="store_true",
                   help="write every format and view of every interpretation into "
                        "the -o directory (files named as docs/diagrams/ names them)")
    topology_options(p)
    p.set_defaults(run=cmd_diagram)


def register_review(sub: Any) -> None:
    """Add the review commands (review, diff, export, capacity) to the subparsers."""
    p = sub.add_parser(
        "review", help="write the specification review (docs/spec-review.md)",
        description="Trace every behavioural sentence of the seed to its requirement "
                    "id, the transitions and parameters that encode it, the checks and "
                    "tests that exercise it, and list the ambiguities. Run from the "
                    "project root to trace the tests too. Exit 0; 1 with --check when "
                    "something is missing; 2 usage error.")
    p.add_argument("-i", "--interpretation", choices=sorted(INTERPRETATIONS),
                   help="only this interpretation's transitions (default: all)")
    p.add_argument("--seed-text", type=_seed_text, metavar="FILE",
                   help="the seed text to trace (default: $SEPHB_SEED, else the copy "
                        "shipped with sephb, model/seed/heartbeat-process.txt; "
                        "formerly --seed)")
    renamed(p, "--seed", "is a random seed (conform, client); the seed text to trace "
                         "is now --seed-text FILE")
    p.add_argument("--root", type=Path, default=Path("."), metavar="DIR",
                   help="project root holding tests/ and conformance/ (default: .)")
    output_option(p)
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a seed requirement has no model element or test "
                        "(the gaps on standard error; in the JSON with --json)")
    json_option(p, "every seed sentence and requirement with what encodes, checks "
                   "and tests it, instead of the Markdown")
    p.set_defaults(run=cmd_review)

    p = sub.add_parser(
        "diff", help="the behavioural difference between two interpretations",
        description="Transitions present under one interpretation only, check-in paths "
                    "(2 managers, a GUP, pull and push) that exist under one only, and "
                    "a diagram with the differing transitions highlighted. By default "
                    "a summary: the transitions that differ by state and event, and "
                    "the counts; --full lists every row and path.")
    names = sorted(INTERPRETATIONS)
    p.add_argument("--from", dest="from_", default="seed", choices=names,
                   help="the interpretation compared from (default: seed)")
    p.add_argument("--to", default="documented", choices=names,
                   help="the interpretation compared to (default: documented)")
    p.add_argument("--format", "-f", choices=DIFF_FORMATS,
                   help="output format: the text, or the --to diagram with the "
                        "differing transitions highlighted (default: the one -o FILE's "
                        "extension names: .txt, .svg, .png, .dot or .gv, .mmd, .json; "
                        "text on standard output)")
    p.add_argument("--full", action="store_true",
                   help="text: every differing row and check-in path (default: a "
                        "summary)")
    json_option(p, "the full structured diff (rows, changed state/event pairs, "
                   "paths, the interpretations)")
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
                    "./pan -a -N <property>. Exit 0; 1 with --verify when a property "
                    "is violated; 2 usage error (SPIN or gcc missing too).")
    interpretation_option(q)
    q.add_argument("--managers", "-n", type=positive, default=2, metavar="N",
                   help="managers in the modelled server list (default: 2)")
    q.add_argument("--gup", action=argparse.BooleanOptionalAction, default=True,
                   help="a Group Update Provider exists (default: --gup)")
    q.add_argument("--mode", choices=mode_choices(), default="pull",
                   help="CommunicationMode (default: pull)")
    q.add_argument("--verify", action="store_true",
                   help="also run SPIN on every property and print the verdicts (on "
                        "standard error; in the JSON with --json)")
    json_option(q, "the configuration, the Promela source (unless -o writes it) and "
                   "the verdicts of --verify")
    output_option(q)
    q.set_defaults(run=cmd_export)

    from sephb.model.capacity import PROFILES
    from sephb.model.protocol import HEARTBEAT_INTERVAL_S

    p = sub.add_parser(
        "capacity", help="traffic and connections the heartbeat sizes imply for a fleet",
        description="Bytes per day per manager (low/high from the seed's size ranges), "
                    "check-ins per second and held push connections, with the "
                    "assumptions they rest on.")
    p.add_argument("--clients", type=positive, metavar="N",
                   help="number of clients (required unless --examples)")
    p.add_argument("--interval", type=positive, default=HEARTBEAT_INTERVAL_S,
                   metavar="SECONDS",
                   help="heartbeat interval in seconds (default: %(default)s)")
    p.add_argument("--logging", choices=list(PROFILES), default="idle",
                   help="the clients' log volume, which sets the heartbeat's size: "
                        "idle (3-5 KB, nothing new) or full (200-300 KB, every "
                        "technology and maximum logging) (default: idle; formerly "
                        "--profile)")
    renamed(p, "--profile", "is the suite's depth (conform, mutants); the log volume "
                            "is now --logging idle|full")
    p.add_argument("--mode", choices=mode_choices(), default="pull",
                   help="CommunicationMode: push holds a connection per client "
                        "(default: pull)")
    p.add_argument("--managers", "-n", type=positive, default=1, metavar="N",
                   help="managers sharing the fleet (default: 1)")
    p.add_argument("--examples", action="store_true",
                   help="print the worked examples (docs/capacity.md) instead")
    json_option(p, "the figures and assumptions of one fleet")
    output_option(p)
    p.set_defaults(run=cmd_capacity)


#: ``sephb diff --format``: the text, or a diagram in one of the diagram formats.
DIFF_FORMATS = ("text", "svg", "png", "dot", "mermaid")


def _diagram_suffixes() -> dict[str, str]:
    """File extensions and the diagram format each names (``-o FILE`` without
    ``--format``): the ones ``diagram --all`` writes, and Graphviz's ``.gv``."""
    from sephb.diagrams import SUFFIXES

    return {**{suffix: fmt for fmt, suffix in SUFFIXES.items()}, ".gv": "dot"}


def _seed_text(text: str) -> Path:
    """``review --seed-text``: a text file that can be read (argparse ``type=``)."""
    try:
        Path(text).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: {why or exc}") from None
    return Path(text)


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


def _configuration(args: argparse.Namespace) -> str:
    """The concrete configuration of the topology options, in words."""
    n, p = args.managers, args.priorities
    return (f"{n} manager{'s' if n != 1 else ''} over {p} priorit"
            f"{'ies' if p != 1 else 'y'}, {args.mode} mode, "
            f"{'a GUP' if args.gup else 'no GUP'}")


def cmd_diagram(args: argparse.Namespace) -> int:
    from sephb import diagrams

    if args.all:
        if not args.output:
            raise UsageError("--all needs -o DIRECTORY")
        if args.format:
            raise UsageError("--all writes every format; --format chooses one (leave "
                             "out one of the two)")
        if args.view != "full" or args.highlight is not None:
            raise UsageError("--all writes every view, without a highlight; --view and "
                             "--highlight draw one diagram (leave out --all)")
        require_writable(args.output, "-o", directory=True)
        for path in diagrams.write_all(args.output):
            print(path)
        return 0
    if args.output and args.output.is_dir():
        raise UsageError(f"-o {str(args.output)!r} is a directory: give a file, or "
                         "--all to write every diagram into it")
    fmt = output_format(args.format, args.output, _diagram_suffixes(), "svg")
    if fmt == "png" and not args.output:
        raise UsageError("PNG is binary: give -o FILE")
    highlight, caption = None, None
    if args.highlight is not None:
        _, paths = _graph_and_paths(args)
        if not 0 <= args.highlight < len(paths):
            raise UsageError(
                f"--highlight {args.highlight}: there are {len(paths)} paths "
                f"(0..{len(paths) - 1}) with these options"
            )
        highlight = paths[args.highlight]
        last = len(paths) - 1
        caption = (f"path T{args.highlight:02d} of `sephb paths` (T00-T{last:02d}, "
                   f"--cover {args.cover}) for {_configuration(args)}")
    write_output(args.output, diagrams.render(args.interpretation, fmt, highlight,
                                              view=args.view, caption=caption))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from sephb.model import review

    seed = args.seed_text or _default_seed()
    if not review.has_tests(args.root):
        print(f"sephb review: {review.NO_TESTS}", file=sys.stderr)
    problems = review.gaps(args.root, seed) if args.check else []
    if args.json:
        write_output(args.output, _json_text(_review_json(args, seed, problems)))
    else:
        write_output(args.output, review.render(args.root, seed, args.interpretation))
        for problem in problems:
            print(problem, file=sys.stderr)
    return 1 if problems else 0


def _default_seed() -> Path:
    """The seed text review reads without --seed-text (as model/review.py finds it),
    or a usage error in this command's words."""
    from sephb.model.review import SEED_CANDIDATES, find_seed

    try:
        return find_seed(None)
    except UsageError:
        raise UsageError("seed text not found; pass --seed-text FILE or set SEPHB_SEED "
                         f"(looked in {', '.join(map(str, SEED_CANDIDATES))})") from None


def _review_json(args: argparse.Namespace, seed: Path, problems: list[str]
                 ) -> dict[str, Any]:
    """``review --json``: what the Markdown tables say, as data."""
    from sephb.model import review
    from sephb.model.interpretations import get
    from sephb.model.protocol import REQUIREMENTS

    interp = get(args.interpretation) if args.interpretation else None
    traces = {rid: review.trace(rid, args.root, interp) for rid in REQUIREMENTS}
    requirements = []
    for rid, req in REQUIREMENTS.items():
        t = traces[rid]
        requirements.append({
            "id": rid, "origin": req.origin, "text": req.text,
            "transitions": [r.name for r in t.rows], "guards": list(t.guards),
            "parameters": list(t.parameters), "rules": list(t.rules),
            "ltl": list(t.ltl), "oracle": list(t.oracle),
            # None: no tests/ under --root, so not traced (not "untested")
            "tests": None if t.tests is None else list(t.tests),
            "status": t.status})
    doc: dict[str, Any] = {
        "seed": str(seed),
        "interpretation": args.interpretation,
        "sentences": [
            {"where": s.where, "text": s.text, "requirements": list(s.requirements),
             "status": [traces[r].status for r in s.requirements] or ["UNMATCHED"]}
            for s in review.sentences(seed.read_text(encoding="utf-8"))],
        "requirements": requirements,
    }
    if args.check:
        doc["gaps"] = problems
    return doc


def _json_text(doc: object) -> str:
    import json

    return json.dumps(doc, indent=2) + "\n"


def cmd_diff(args: argparse.Namespace) -> int:
    from sephb.model.diffing import diff, summary, to_json, to_text
    from sephb.model.interpretations import get

    if args.json and args.format:
        raise UsageError("--json and --format both choose the output: give one")
    fmt = "json" if args.json else output_format(
        args.format, args.output, {".txt": "text", **_diagram_suffixes(), ".json": "json"},
        "text")
    if args.full and fmt != "text":
        raise UsageError(f"--full applies to the text output, not to {fmt}")
    if fmt == "png" and not args.output:
        raise UsageError("PNG is binary: give -o FILE")
    d = diff(get(args.from_), get(args.to))
    if fmt == "json":
        data: str | bytes = _json_text(to_json(d))
    elif fmt == "text":
        data = to_text(d) if args.full else summary(d)
    else:
        from sephb.diagrams import diff_diagram

        data = diff_diagram(d, fmt)
    write_output(args.output, data)
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
    if not args.json or args.output:
        write_output(args.output, source)
    verdicts = verify(source) if args.verify else []
    failed = sum(not v.holds for v in verdicts)
    if args.json:
        doc: dict[str, Any] = {
            "interpretation": args.interpretation, "managers": args.managers,
            "gup": args.gup, "mode": args.mode,
            "output": str(args.output) if args.output else None,
            "source": None if args.output else source,
        }
        if args.verify:
            doc["verdicts"] = [{"property": v.property, "holds": v.holds}
                               for v in verdicts]
        print_json(doc)
    else:
        for v in verdicts:
            print(f"{v.property}: {'holds' if v.holds else 'VIOLATED'}", file=sys.stderr)
    return 1 if failed else 0


def cmd_capacity(args: argparse.Namespace) -> int:
    from sephb.model.capacity import capacity, render_doc, to_text
    from sephb.model.protocol import Mode

    if args.examples:
        if args.json or args.clients is not None:
            raise UsageError("--examples prints the worked examples as Markdown; "
                             "--clients (and --json) describe one fleet: give one")
        write_output(args.output, render_doc())
        return 0
    if args.clients is None:
        raise UsageError("--clients is required (or --examples)")
    load = capacity(args.clients, args.interval, args.logging, Mode(args.mode),
                    args.managers)
    if args.json:
        import dataclasses

        # the model's "profile" of sizes is this command's --logging
        doc = {"logging" if k == "profile" else k: v
               for k, v in dataclasses.asdict(load).items()}
        doc["mode"] = load.mode.value
        write_output(args.output, _json_text(doc))
    else:
        write_output(args.output, to_text(load))
    return 0
