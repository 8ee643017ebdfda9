"""``sephb validate``: recorded traces against the model, offline.

The arguments are parsed here; the work is :mod:`sephb.conformance.traces.validate`,
imported when the command runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sephb.conformance.cli._common import (
    interpretation_option,
    json_option,
    mode_choices,
    non_negative,
    positive,
    renamed,
    time_scale,
)
from sephb.model.errors import UsageError

DESCRIPTION = """\
Check recorded heartbeat traces against the model, offline. Each client of each
file gets a verdict: conformant, or its first violation with file and line, the
requirement it broke, the event seen, what the model allowed and the events before.

Records with "by": "server" are checked with the events a server cannot see hidden
(the client's timers, refused connects); "by": "client" (or no "by") with nothing
hidden; a GUP's own CONNECT/DISCONNECT ("role": "gup") are skipped. A HAR capture is
mapped to events by the wire profile (docs/wire-profile.md) and checked like a
server-side view. The order of the records is always checked; --mode, --data and
--sylink add what a trace cannot say by itself (the mode, the data rules the records
prove, the client's configuration). The timing rules allow --tolerance of recording
jitter: by default 0.1 s of wall time at the time scale the trace's header records
(at least 1,000 model ms).

Exit status (the highest applies; docs/validate.md):
  0  every client of every file conformant
  1  some client violated the model
  2  usage error: bad arguments, a --sylink file that cannot be used
  3  some input could not be read (the other lines, entries, clients and files
     are still checked)
  4  the validation of some file failed on an error of sephb itself (a bug; the
     other files' results stand)"""

EPILOG = """\
examples:
  sephb validate run.ndjson                        one trace, a table of verdicts
  sephb validate traces/*.ndjson.gz --jobs 4       files in parallel
  zcat run.ndjson.gz | sephb validate -            from stdin
  sephb validate capture.har --input-format har --json   a browser/mitmproxy capture
  sephb validate client.ndjson --mode push         hold push clients to step 7
  sephb validate manager.ndjson --data             ports, logs, session limit too
  sephb validate client.ndjson --data --tolerance 5000   timing slack: not the header's
  sephb validate capture.har --data --time-scale 0.01    a HAR of a run at scale 0.01
  sephb validate big/*.gz --engine dask --scheduler tcp://10.0.0.5:8786

See docs/validate.md."""


def register(sub: Any) -> None:
    """Add ``validate`` to the CLI's subparsers."""
    p = sub.add_parser("validate", help="check recorded traces (NDJSON, HAR) offline",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="NDJSON traces (plain or gzip), HAR files, or - for stdin")
    p.add_argument("--input-format", choices=("auto", "ndjson", "har"), default="auto",
                   help="input format (default: auto, .har files are HAR; formerly "
                        "--format)")
    renamed(p, "--format", "names an output format; the traces' input format is now "
                           "--input-format auto|ndjson|har")
    interpretation_option(p)
    p.add_argument("--mode", choices=mode_choices(),
                   help="the clients' configured communication mode (sylink.xml's "
                        "CommunicationMode): a pull client must not hold its "
                        "connection, a push client must (default: unknown, either)")
    p.add_argument("--data", action="store_true",
                   help="check the data properties a trace shows too: the 30,000 ms "
                        "session limit, content ports, logs lost or uploaded twice, "
                        "and with --mode push the held connection (slower; see "
                        "docs/validate.md)")
    p.add_argument("--sylink", metavar="FILE",
                   help="the clients' sylink.xml: also check the heartbeat's first "
                        "manager (priority), the interval and the mode (implies "
                        "--data and its --mode)")
    p.add_argument("--tolerance", type=non_negative, metavar="MS",
                   help="with --data: model ms of recording jitter allowed on the "
                        "timing rules (default: 0.1 s of wall time at the time scale "
                        "the trace's header records, at least 1000; 1000 without a "
                        "header or --time-scale)")
    p.add_argument("--time-scale", type=time_scale, metavar="S",
                   help="the time scale (wall seconds per model second) of traces "
                        "without a header, such as a HAR or an old trace: sets the "
                        "default --tolerance, and a HAR's wall-clock times are "
                        "divided by it (default: a header's scale; a HAR's is 1)")
    p.add_argument("--jobs", "-j", type=positive, default=1, metavar="N",
                   help="validate N files at a time (processes; default: 1)")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local processes (default) or a Dask cluster (pip install "
                        "'sephb[dask]')")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="with --engine dask: an existing scheduler (tcp://host:8786); "
                        "default: a LocalCluster of --jobs workers")
    json_option(p, "the verdicts of every client and the input problems kept (the "
                   "first 1,000 of a file, and their count)")
    p.add_argument("--per-client", action="store_true",
                   help="a table row per client (default: a row per file; formerly "
                        "--clients)")
    renamed(p, "--clients", "is a number of clients (capacity); a table row per client "
                            "is now --per-client")
    p.add_argument("--limit", type=non_negative, default=20, metavar="N",
                   help="show the first N input problems and violations of each file "
                        "(default: 20; 0: all, of input problems all kept: the first "
                        "1,000)")
    p.set_defaults(run=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    """The ``validate`` command."""
    from sephb.conformance.traces.validate import (
        exit_code,
        render,
        validate_files,
        write_json,
    )

    if args.scheduler and args.engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    if args.files.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    if args.sylink is not None:
        from sephb.conformance.traces.sylink import load

        configured = load(args.sylink).mode.value  # a bad file: one clear message
        if args.mode is not None and args.mode != configured:
            raise UsageError(f"--mode {args.mode} contradicts {args.sylink}, which "
                             f"says {configured}")
    results = validate_files(args.files, args.input_format, args.interpretation,
                             mode=args.mode, data=args.data,
                             tolerance_ms=args.tolerance, sylink=args.sylink,
                             jobs=args.jobs,
                             engine=args.engine,
                             scheduler=args.scheduler,
                             time_scale=args.time_scale)
    if args.json:
        write_json(results, sys.stdout)  # streamed: a fleet has millions of clients
    else:
        render(results, sys.stdout, limit=args.limit, every_client=args.per_client,
               timing=args.data or args.sylink is not None)
    return exit_code(results)
