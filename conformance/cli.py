"""The ``sephb`` command line.

Every subcommand parses its arguments here and imports what it needs only when it
runs, so that ``sephb --help`` stays fast (no networkx, transitions, aiohttp or
Hypothesis at start-up). Errors the user can cause are printed as one line,
``sephb <command>: error: <what>``, with exit status 2; nothing prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from sephb.model.errors import SephbError, UsageError
from sephb.model.interpretations import DEFAULT, INTERPRETATIONS

from .faults import FAULTS

EPILOG = """\
examples:
  sephb model --json                         the table as JSON
  sephb paths --managers 3 --priorities 2 --interpretation documented
  sephb paths --cover edge-pairs --json      test cases covering every edge pair
  sephb diagram --format svg -o heartbeat.svg --highlight 0
  sephb diagram --all -o out/                every diagram of every interpretation

Interpretations: seed (the article read literally) and documented (the vendor's
knowledge base). `sephb model` lists the ambiguities each one settles.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 1000, got {value}")
    return value


def _size(text: str) -> int:
    named = {"idle": 0, "full": 256_000}
    if text in named:
        return named[text]
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a byte count, 'idle' or 'full', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _interpretation(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--interpretation", "-i", default=DEFAULT, choices=sorted(INTERPRETATIONS),
        help=f"reading of the ambiguous seed (default: {DEFAULT})",
    )


def _topology(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration (a concrete sylink.xml)")
    g.add_argument("--managers", "-n", type=_positive, default=1, metavar="N",
                   help="managers in the server list (default: 1)")
    g.add_argument("--priorities", "-p", type=_positive, default=1, metavar="P",
                   help="priority levels they are spread over (default: 1)")
    g.add_argument("--gup", action="store_true",
                   help="a Group Update Provider exists (content on TCP 2967)")
    g.add_argument("--mode", choices=("pull", "push"), default="pull",
                   help="CommunicationMode (default: pull)")
    g.add_argument("--cover", choices=("transitions", "edge-pairs", "all"),
                   default="transitions",
                   help="which paths: fewest covering every transition, fewest covering "
                        "every pair of consecutive transitions, or every check-in path "
                        "(default: transitions)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sephb",
        description="A formal, executable model of the Symantec Endpoint Protection "
                    "client heartbeat, with a conformance kit around it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("model", help="print the model: states, events, transitions",
                       description="Print the transition table, its parameters, the "
                                   "interpretations and the result of the static "
                                   "analyses.")
    _interpretation(p)
    p.add_argument("--json", action="store_true",
                   help="machine-readable: states, events, transitions, parameters, "
                        "interpretations")
    p.set_defaults(run=cmd_model)

    p = sub.add_parser("paths", help="check-in paths: test cases generated from the model",
                       description="Expand the model for a configuration and print "
                                   "check-in paths (heartbeat due -> back to idle or "
                                   "into the held push connection). Each path is a "
                                   "named test case.")
    _interpretation(p)
    _topology(p)
    p.add_argument("--json", action="store_true",
                   help="machine-readable: paths, covered_transitions, total_transitions")
    p.set_defaults(run=cmd_paths)

    p = sub.add_parser("diagram", help="draw the state diagram",
                       description="Draw the state diagram from the table (graphviz or "
                                   "Mermaid), optionally highlighting one check-in path "
                                   "from `sephb paths` with the same options.")
    _interpretation(p)
    p.add_argument("--format", "-f", default="svg",
                   choices=("svg", "png", "dot", "mermaid"),
                   help="output format (default: svg)")
    p.add_argument("--highlight", type=int, metavar="PATH_INDEX",
                   help="index of a path in `sephb paths` (same options) to highlight")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write here (default: standard output; a directory with --all)")
    p.add_argument("--all", action="store_true",
                   help="write every format of every interpretation into the -o directory")
    _topology(p)
    p.set_defaults(run=cmd_diagram)

    p = sub.add_parser("manager", help="run simulated managers and a GUP on loopback",
                       description="Start the simulated managers and GUP of a fleet "
                                   "file (see docs/examples/managers.toml) as real HTTP "
                                   "servers, print their addresses and a control API, "
                                   "and run until SIGINT/SIGTERM.")
    p.add_argument("--config", "-c", required=True, metavar="FILE",
                   help="fleet file (TOML)")
    p.add_argument("--listen", metavar="ADDR",
                   help="bind every server to ADDR instead of its configured loopback "
                        "address (needed for anything outside 127.0.0.0/8)")
    p.add_argument("--time-scale", type=_scale, default=1.0, metavar="S",
                   help="wall seconds per model second, for trace times (default: 1)")
    p.add_argument("--trace", metavar="FILE",
                   help="append what the servers observe to this NDJSON trace")
    p.set_defaults(run=cmd_manager)

    p = sub.add_parser("client", help="run the reference heartbeat client",
                       description="Run the reference client: read sylink.xml, check in "
                                   "with the managers it names, keep its index copy and "
                                   "log queue in --state-dir.")
    _interpretation(p)
    p.add_argument("--sylink", required=True, metavar="FILE", help="the sylink.xml to read")
    p.add_argument("--state-dir", required=True, metavar="DIR",
                   help="index.dat copy and durable log queue (created if missing)")
    p.add_argument("--time-scale", type=_scale, default=1.0, metavar="S",
                   help="wall seconds per model second: 0.001 makes the 30,000 ms "
                        "session limit 30 ms (default: 1)")
    p.add_argument("--trace", metavar="FILE",
                   help="append what the client does and sees to this NDJSON trace")
    p.add_argument("--heartbeats", type=_positive, metavar="N",
                   help="stop after N check-ins (default: run until SIGINT/SIGTERM)")
    p.add_argument("--location", default="Default", metavar="NAME",
                   help="the client's current location (selects the LiveUpdate policy)")
    p.add_argument("--client-id", metavar="ID",
                   help="sent as X-Sephb-Client (default: host name and process id)")
    p.add_argument("--log-bytes", type=_size, default=0, metavar="N",
                   help="log volume produced before each heartbeat: a byte count, "
                        "'idle' (0) or 'full' (256000, maximum logging)")
    p.add_argument("--seed", type=int, help="seed for random choices (reproducible runs)")
    p.add_argument("--fault", choices=list(FAULTS), metavar="NAME",
                   help="run a seeded-fault client (for testing conformance suites): "
                        + ", ".join(FAULTS))
    p.set_defaults(run=cmd_client)
    return parser


# --- commands ----------------------------------------------------------------------


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
        _print_json(doc)
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
        _print_json({
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


def cmd_manager(args: argparse.Namespace) -> int:
    from sephb.conformance.servers import run_manager_process

    return run_manager_process(args.config, listen=args.listen,
                               time_scale=args.time_scale, trace_path=args.trace)


def cmd_client(args: argparse.Namespace) -> int:
    import asyncio

    from sephb.conformance import sylink
    from sephb.conformance.client import ClientOptions, run_client
    from sephb.model.interpretations import get

    opts = ClientOptions(
        sylink=sylink.load(args.sylink),
        state_dir=Path(args.state_dir),
        interpretation=get(args.interpretation),
        time_scale=args.time_scale,
        heartbeats=args.heartbeats,
        location=args.location,
        log_bytes=args.log_bytes,
        seed=args.seed,
        fault=args.fault,
    )
    if args.client_id:
        opts.client_id = args.client_id
    return asyncio.run(run_client(opts, args.trace))


def _print_json(doc: object) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except UsageError as exc:
        print(f"sephb {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except SephbError as exc:
        print(f"sephb {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
