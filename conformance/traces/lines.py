"""Lines a running process says about what it does (``sephb client``'s check-ins,
``sephb manager``'s requests): ``[t=<model ms> ms] <text>``, one per event.

What the lines carry came from the network (a path, a client id), so control
characters are written escaped: an escape sequence never reaches a terminal, and a
line stays one line. A reader that goes away (``sephb client | head``) silences the
writer rather than killing the process it reports on.
"""

from __future__ import annotations

import contextlib
import os
from typing import Final, TextIO

__all__ = ["LineOut"]

#: C0 and C1 control characters, and DEL, as they are written: ``\x1b``.
_CONTROLS: Final = {c: f"\\x{c:02x}" for c in (*range(32), *range(127, 160))}


class LineOut:
    """Writes lines to ``out`` (None: says nothing), flushed one by one."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out

    def say(self, t: int, text: str) -> None:
        """One line at model time ``t``."""
        if self.out is None:
            return
        try:
            self.out.write(f"[t={t:,} ms] {text.translate(_CONTROLS)}\n")
            self.out.flush()
        except (OSError, ValueError):
            # The reader went away. Say no more, and point the stream at /dev/null so
            # that the interpreter's last flush at exit cannot fail the exit status.
            out, self.out = self.out, None
            with contextlib.suppress(OSError, ValueError):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, out.fileno())
                os.close(null)
