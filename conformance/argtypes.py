"""Argument types shared by the command-line parsers: one message for one mistake."""

from __future__ import annotations

import argparse


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
