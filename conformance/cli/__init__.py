"""The ``sephb`` command line: a thin layer that parses arguments and calls the rooms.

==================  ================================================================
``_model``          model, paths, diagram, review, diff, export, capacity
``_suite``          manager, client, conform, mutants
``_validate``       validate
``_examples``       examples
``_common``         argument types, shared options, output files, JSON output
==================  ================================================================

Every subcommand parses its arguments here and imports what it needs only when it
runs, so that ``sephb --help`` stays fast (no networkx, transitions, aiohttp or
Hypothesis at start-up). Errors the user can cause are printed as one line,
``sephb <command>: error: <what>``, with exit status 2; nothing prints a traceback.
One spelling means one thing in every command (``_common`` says which; the test is
``tests/test_cli_vocabulary.py``), and the exit statuses are tabled in README.md.

May import: every room (:mod:`sephb.model`, :mod:`sephb.diagrams`, and the rooms of
:mod:`sephb.conformance`); nothing imports it. Exports: :func:`main` (the ``sephb``
console script) and :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from sephb.conformance.cli import _examples, _model, _monitor, _suite, _validate
from sephb.model.errors import SephbError, UsageError

__all__ = ["build_parser", "main"]

EPILOG = """\
examples:
  sephb model --json                         the table as JSON
  sephb paths --managers 3 --priorities 2 --interpretation documented
  sephb paths --cover edge-pairs --json      test cases covering every edge pair
  sephb diagram --format svg -o heartbeat.svg --highlight 0
  sephb diagram -o heartbeat.png             the format follows the extension
  sephb diagram --all -o out/                every diagram of every interpretation
  sephb examples ex/                         a fleet file, sylink files and a HAR

Interpretations: seed (the article read literally) and documented (the vendor's
knowledge base). `sephb model` lists the ambiguities each one settles.

Exit status: 0 done (conformant, clean); 1 a finding (a violation, a gap, a
survivor); 2 usage error, or a file that cannot be read or written; 3 and 4 as
`conform`, `mutants` and `validate` say in their --help; 130 interrupted. The
table of every command is in README.md ("Exit codes").
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one --help away)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `--seed` must never be read as some other option's
        # prefix, and a new option must not change what an old command line means.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # The innermost command parsed sets it last, so that main() says an unknown
        # argument in that command's words ("sephb review: error: ..."), where
        # argparse would say it as the top parser ("sephb: error: ...").
        self.set_defaults(_parser=self)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _version() -> str:
    """The installed distribution's version (one place: pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sephb")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = _Parser(
        prog="sephb",
        description="A formal, executable model of the Symantec Endpoint Protection "
                    "client heartbeat, with a conformance kit around it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _model.register(sub)
    _suite.register(sub)
    _validate.register(sub)
    _model.register_review(sub)
    _examples.register(sub)
    _monitor.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
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
    except OSError as exc:
        # A file the command could not read or write, found only when it tried
        # (outputs are checked up front, but a disk can fill): the user's to fix.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"sephb {args.command}: error: {where}{exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
