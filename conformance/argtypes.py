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
