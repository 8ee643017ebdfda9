"""What the command-line parsers share: argument types (one message for one mistake),
options (one spelling of one option), and JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sephb.model.interpretations import DEFAULT, INTERPRETATIONS


def interpretation_option(p: argparse.ArgumentParser) -> None:
    """``--interpretation/-i``: which reading of the ambiguous seed."""
    p.add_argument(
        "--interpretation", "-i", default=DEFAULT, choices=sorted(INTERPRETATIONS),
        help=f"reading of the ambiguous seed (default: {DEFAULT})",
    )


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


def output_option(p: argparse.ArgumentParser) -> None:
    """``-o/--output FILE``: where a command writes instead of standard output."""
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")


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
    g.add_argument("--mode", choices=("pull", "push"), default="pull",
                   help="CommunicationMode (default: pull)")
    g.add_argument("--cover", choices=("transitions", "edge-pairs", "all"),
                   default="transitions",
                   help="which paths: fewest covering every transition, fewest covering "
                        "every pair of consecutive transitions, or every check-in path "
                        "(default: transitions)")


def print_json(doc: object) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
