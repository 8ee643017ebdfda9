"""Argument types shared by the command-line parsers: one message for one mistake."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """A whole number of at least 1 (argparse ``type=``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
