"""``sephb monitor``: live traffic between clients and their managers, judged live.

The arguments are parsed here; the work is :mod:`sephb.conformance.monitor`, imported
when the command runs."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from sephb.conformance.cli._common import (
    interpretation_option,
    json_option,
    make_dir,
    non_negative,
    output_file,
    seconds,
    time_scale,
)

DESCRIPTION = """\
Judge the heartbeats of running clients against running managers, live. For each
manager and the GUP of the upstream sylink.xml, a relay listens on its own loopback
address (--listen-base's network, the upstream's port, or an ephemeral one when that
is taken) and forwards every byte both ways, unchanged but for the download URLs of a
GET /urls answer, which are pointed at the relays. The monitor writes the
sylink.xml the clients should use (--client-sylink), turns what the relays see into the
records a server writes, and judges them with the engine of `sephb validate --data`:
a violation is said the moment it shows, with its requirement id; a deadline past
due is said presumptively. On a terminal a table of the clients (state, last
check-in, next deadline, verdict) is redrawn below those lines; --web serves it as a
page too. Ctrl-C (or SIGTERM, or --duration) prints the summary
`sephb validate` prints for the written trace, which validates offline to the same
verdicts.

Exit status: as `sephb validate` (0 every client conformant, 1 some client violated
the model, 2 usage error; docs/monitor.md)."""

EPILOG = """\
examples:
  sephb monitor --upstream site/sylink.xml --client-sylink client/sylink.xml
  sephb monitor --upstream up.xml --client-sylink mine.xml --trace live.ndjson \\
      --time-scale 0.01                                    clients run at that scale
  sephb validate live.ndjson --data --sylink mine.xml     the same verdicts, offline
  sephb monitor --upstream up.xml --client-sylink mine.xml --web 127.0.0.1:8080

See docs/monitor.md."""


def web_address(text: str) -> tuple[str, int]:
    """``--web``'s ``HOST:PORT``: ``localhost``, an IPv4 or a bracketed IPv6 loopback
    address, and a port (0: an ephemeral one)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    host = "127.0.0.1" if host == "localhost" else host
    try:
        number = int(port)
        address = ipaddress.ip_address(host)
    except ValueError:
        number, address = -1, None
    if not sep or not 0 <= number <= 65535 or address is None:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT (a loopback address; port 0: any free one), got {text!r}")
    if not address.is_loopback:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the page is served on loopback only (127.0.0.0/8, ::1)")
    return str(address), number


def register(sub: Any) -> None:
    """Add ``monitor`` to the CLI's subparsers."""
    p = sub.add_parser("monitor", help="relay and judge live traffic between clients "
                                       "and their managers",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, metavar="UPSTREAM_SYLINK",
                   help="the sylink.xml that names the real managers (and GUP)")
    p.add_argument("--client-sylink", required=True, type=output_file,
                   metavar="CLIENT_SYLINK",
                   help="write here the sylink.xml the clients should use: the "
                        "upstream's, with each server replaced by its relay")
    p.add_argument("--listen-base", default="127.0.9.0", metavar="ADDRESS",
                   help="the relays listen on the next addresses after it, one per "
                        "server, on loopback (default: 127.0.9.0)")
    p.add_argument("--trace", type=output_file, metavar="FILE",
                   help="write the records the relays observe here (NDJSON, the "
                        "servers' view; .gz compresses) (default: none)")
    p.add_argument("--har", type=output_file, metavar="FILE",
                   help="write the exchanges here as an HTTP Archive when the monitor "
                        "stops (`sephb validate FILE --data --time-scale S` reads it; "
                        "the records are kept until then) (default: none)")
    interpretation_option(p)
    p.add_argument("--time-scale", type=time_scale, default=1.0, metavar="S",
                   help="wall seconds per model second of the clients: 1 for a real "
                        "client, 0.01 for one run at that scale (default: 1)")
    p.add_argument("--tolerance", type=non_negative, metavar="MS",
                   help="model ms of timing slack (default: 0.1 s of wall time at "
                        "--time-scale, at least 1,000, as `sephb validate`)")
    p.add_argument("--duration", type=seconds, metavar="SECONDS",
                   help="stop after this many wall seconds (default: run until "
                        "Ctrl-C or SIGTERM)")
    p.add_argument("--web", type=web_address, metavar="HOST:PORT",
                   help="also serve a page of the clients, reloading every second, and "
                        "/state, the same rows as JSON, on this loopback address (port "
                        "0: any free one; the URL is printed) (default: none)")
    json_option(p, "the summary as `sephb validate --json` writes it")
    p.set_defaults(run=cmd_monitor)


def cmd_monitor(args: argparse.Namespace) -> int:
    """The ``monitor`` command."""
    from sephb.conformance.monitor.monitor import run_monitor

    make_dir(args.client_sylink.parent, "--client-sylink")
    if args.trace is not None:
        make_dir(args.trace.parent, "--trace")
    if args.har is not None:
        make_dir(args.har.parent, "--har")
    return run_monitor(args.upstream, args.client_sylink, listen_base=args.listen_base,
                       interpretation=args.interpretation, time_scale=args.time_scale,
                       trace=args.trace, tolerance_ms=args.tolerance,
                       duration_s=args.duration, as_json=args.json, web_at=args.web,
                       har=args.har)
