"""``sephb examples DIR``: the packaged examples (a fleet file, sylink files, a HAR
capture) copied out where a user can read and edit them, with the commands that use
them. They are package data, so this works from an install as from a checkout."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from sephb.conformance.cli._common import make_dir, output_dir, write_output
from sephb.model.errors import UsageError


def register(sub: Any) -> None:
    """Add ``examples`` to the CLI's subparsers."""
    p = sub.add_parser(
        "examples", help="write the example fleet file, sylink files and HAR to a "
                         "directory",
        description="Write the examples shipped with sephb -- managers.toml (a "
                    "simulated site: two managers and a GUP on loopback), "
                    "sylink-pull.xml and sylink-push.xml (clients of that site), "
                    "sylink-bad-*.xml (files the reader refuses, each with one clear "
                    "message) and reference.har (a capture of the reference client) "
                    "-- into DIR, and print the commands to try next. Exit 0; 2 when "
                    "DIR cannot be written or a file exists (without --force).")
    p.add_argument("dir", type=output_dir, metavar="DIR",
                   help="where to write them (created with its parents if missing)")
    p.add_argument("--force", action="store_true",
                   help="replace files of the same names in DIR (default: refuse, and "
                        "write nothing)")
    p.set_defaults(run=cmd_examples)


def cmd_examples(args: argparse.Namespace) -> int:
    from importlib.resources import files

    source = files("sephb.conformance") / "examples"
    examples = sorted((e for e in source.iterdir() if e.is_file()), key=lambda e: e.name)
    dest: Path = args.dir
    there = [e.name for e in examples if (dest / e.name).exists()]
    if there and not args.force:
        # All or nothing: half a set of examples would mix old and new files.
        raise UsageError(f"{dest}: {', '.join(there)} already there; pass --force to "
                         "replace them")
    make_dir(dest, "DIR")
    for e in examples:
        write_output(dest / e.name, e.read_bytes(), "DIR")
    print(f"wrote {len(examples)} files to {dest}:")
    for e in examples:
        print(f"  {dest / e.name}")
    d = shlex.quote(str(dest))
    print(f"""
next, a simulated site and a client in two terminals (docs/wire-profile.md):
  sephb manager --config {d}/managers.toml --time-scale 0.001
  sephb client --sylink {d}/sylink-pull.xml --state-dir state/ --time-scale 0.001 \\
      --heartbeats 3 --trace client.ndjson
then the client's trace, and the shipped capture, checked offline (docs/validate.md):
  sephb validate client.ndjson --sylink {d}/sylink-pull.xml
  sephb validate {d}/reference.har
and a file the reader refuses, in one line:
  sephb client --sylink {d}/sylink-bad-port.xml --state-dir state/""")
    return 0
