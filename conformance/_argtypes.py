"""Argument types and options shared by the command-line parsers: one message for one
mistake, one spelling of one option."""

from __future__ import annotations

import argparse

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
