"""What the command-line parsers share: argument types (one message for one mistake),
options (one spelling of one option, one meaning of one spelling), output files and
JSON output.

The vocabulary, held by ``tests/test_cli_vocabulary.py``: ``--seed`` is a random seed;
``--format`` an output format (``--input-format`` an input one); ``--profile`` the
suite's depth; ``--json`` the machine-readable form of what a command reports;
``-o/--output``, ``--report`` and ``--junitxml`` files or directories it writes,
checked before any work starts and created with their missing parents.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sephb.model.errors import UsageError
from sephb.model.interpretations import DEFAULT, INTERPRETATIONS

#: The conformance suite's profiles (``suite.PROFILES``; a test holds them equal),
#: spelled here so that ``sephb --help`` need not import the suite.
SUITE_PROFILES: tuple[str, ...] = ("ci", "nightly", "certify")


def interpretation_option(p: argparse.ArgumentParser) -> None:
    """``--interpretation/-i``: which reading of the ambiguous seed."""
    p.add_argument(
        "--interpretation", "-i", default=DEFAULT, choices=sorted(INTERPRETATIONS),
        help=f"reading of the ambiguous seed (default: {DEFAULT})",
    )


def json_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--json``: the machine-readable form of what the command reports."""
    p.add_argument("--json", action="store_true", help=f"machine-readable: {what}")


def profile_option(p: argparse.ArgumentParser, text: str) -> None:
    """``--profile``: the suite's depth, one of :data:`SUITE_PROFILES`."""
    p.add_argument("--profile", choices=SUITE_PROFILES, default="ci", help=text)


class Renamed(argparse.Action):
    """A spelling this command no longer has: using it is a one-line usage error
    that says what to write now (instead of argparse taking it for a prefix of a
    longer option, or a traceback)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, now: str,
                 **_: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs="?",
                         default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        self.now = now

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error(f"{option_string} {self.now}")


def renamed(p: argparse.ArgumentParser, old: str, now: str) -> None:
    """Keep ``old`` on ``p`` only to say, when it is used, what changed (``now``)."""
    p.add_argument(old, action=Renamed, now=now)


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def positive(text: str) -> int:
    """A whole number of at least 1 (argparse ``type=``)."""
    return _whole(text, 1)


def non_negative(text: str) -> int:
    """A whole number of at least 0 (argparse ``type=``)."""
    return _whole(text, 0)


def _number(text: str, what: str, most: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not 0 < value <= most:  # NaN fails here too
        raise argparse.ArgumentTypeError(f"must be > 0 and <= {most:g}, got {value}")
    return value


def time_scale(text: str) -> float:
    """A time scale, wall seconds per model second (argparse ``type=``): a number
    > 0 and at most 1000."""
    return _number(text, "a number", 1000)


def seconds(text: str) -> float:
    """A wait in wall seconds (argparse ``type=``): > 0 and at most an hour."""
    return _number(text, "seconds", 3600)


# --- output files ---------------------------------------------------------------------
# Every file or directory a command writes goes through here: checked when the
# arguments are parsed (before a run of minutes, not after it), written with its
# missing parents created, and refused in one line that names the path and the reason.


def unwritable(path: Path, *, directory: bool | None = False) -> str | None:
    """Why ``path`` cannot be written, or None if it can; nothing is created.
    ``directory``: True a directory is wanted, False a file, None either."""
    if path.is_dir():
        if directory is False:
            return "it is a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else "permission denied"
    if path.exists() or path.is_symlink():
        if directory is True:
            return "it exists and is not a directory"
        return None if os.access(path, os.W_OK) else "permission denied"
    parent = path.parent
    while not parent.exists():  # the missing parents are created when writing
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create anything in {parent}: permission denied"
    return None


def _output_type(text: str, directory: bool | None) -> Path:
    path = Path(text)
    why = unwritable(path, directory=directory)
    if why:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {why}")
    return path


def output_file(text: str) -> Path:
    """A file to write (argparse ``type=``), refused at once when it cannot be."""
    return _output_type(text, False)


def output_dir(text: str) -> Path:
    """A directory to write into (argparse ``type=``), refused at once when it
    cannot be."""
    return _output_type(text, True)


def output_path(text: str) -> Path:
    """A file or a directory, as another option decides (argparse ``type=``; the
    command then calls :func:`require_writable`)."""
    return _output_type(text, None)


#: The argparse types of paths a command writes (``tests/test_cli_vocabulary.py``).
OUTPUT_TYPES = (output_file, output_dir, output_path)


def require_writable(path: Path, option: str, *, directory: bool) -> None:
    """:func:`unwritable` as a usage error, for a path whose kind was known only
    after parsing."""
    why = unwritable(path, directory=directory)
    if why:
        raise UsageError(f"{option} {str(path)!r}: cannot write: {why}")


def make_dir(path: Path, option: str) -> Path:
    """Create ``path`` and its parents (an existing directory is fine)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {str(path)!r}: cannot create the directory: "
                         f"{exc.strerror or exc}") from None
    return path


def write_output(path: Path | None, data: str | bytes, option: str = "-o") -> None:
    """Write ``data`` to ``path`` (its missing parents created), or to standard
    output when ``path`` is None."""
    raw = data.encode() if isinstance(data, str) else data
    if path is None:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    except OSError as exc:
        raise UsageError(f"{option} {str(path)!r}: cannot write: "
                         f"{exc.strerror or exc}") from None


def output_option(p: argparse.ArgumentParser, what: str = "write here instead of "
                  "standard output") -> None:
    """``-o/--output FILE``: where a command writes instead of standard output."""
    p.add_argument("-o", "--output", type=output_file, metavar="FILE",
                   help=f"{what} (missing directories are created)")


def output_format(fmt: str | None, output: Path | None, by_suffix: Mapping[str, str],
                  default: str) -> str:
    """The format to write: ``--format`` when given, else the one ``-o FILE``'s
    extension names, else ``default`` (standard output)."""
    if fmt is not None:
        return fmt
    if output is None:
        return default
    suffix = output.suffix.lower()
    if suffix not in by_suffix:
        known = ", ".join(f"{s} ({f})" for s, f in by_suffix.items())
        raise UsageError(f"-o {str(output)!r}: the extension {suffix or '(none)'!r} "
                         f"names no format; use one of {known}, or give --format")
    return by_suffix[suffix]


# --- shared options -------------------------------------------------------------------


def mode_choices() -> list[str]:
    """The communication modes, as ``--mode`` spells them."""
    from sephb.model.protocol import Mode

    return [m.value for m in Mode]


def log_size(text: str) -> int:
    """A log volume (argparse ``type=``): a byte count, 'idle' or 'full'."""
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


def topology_options(p: argparse.ArgumentParser) -> None:
    """The options of a concrete configuration, and which paths to take."""
    g = p.add_argument_group("configuration (a concrete sylink.xml)")
    g.add_argument("--managers", "-n", type=positive, default=1, metavar="N",
                   help="managers in the server list (default: 1)")
    g.add_argument("--priorities", "-p", type=positive, default=1, metavar="P",
                   help="priority levels they are spread over (default: 1)")
    g.add_argument("--gup", action="store_true",
                   help="a Group Update Provider exists (content on TCP 2967)")
    g.add_argument("--mode", choices=mode_choices(), default="pull",
                   help="CommunicationMode (default: pull)")
    g.add_argument("--cover", choices=("transitions", "edge-pairs", "all"),
                   default="transitions",
                   help="which paths: fewest covering every transition, fewest covering "
                        "every pair of consecutive transitions, or every check-in path "
                        "(default: transitions)")


def print_json(doc: object) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
