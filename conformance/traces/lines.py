"""Lines a running process says about what it does (``sephb client``'s check-ins,
``sephb manager``'s requests): ``[t=<model ms> ms] <text>``, one per event.

What the lines carry came from the network (a path, a client id), so control
characters are written escaped: an escape sequence never reaches a terminal, and a
line stays one line.

Saying a line never waits on its reader: a pipe nobody reads (a script that took the
start-up lines and stopped reading) fills up, and a write into it blocks until
someone reads -- a manager would stop answering, a client miss its deadlines. So
lines go through a bounded queue to a writer thread; when the queue is full they are
dropped and counted, and the count is said once the reader catches up. A reader that
goes away (``sephb client | head``) silences the writer rather than killing the
process it reports on. At exit the queue is written out (for at most a second).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
import time
from typing import Final, TextIO

__all__ = ["LineOut"]

#: C0 and C1 control characters, and DEL, as they are written: ``\x1b``.
_CONTROLS: Final = {c: f"\\x{c:02x}" for c in (*range(32), *range(127, 160))}
#: Lines waiting for a slow reader before more are dropped.
QUEUE_LINES: Final = 4096
#: How long the exit waits for the queue to be written out.
DRAIN_S: Final = 1.0


class LineOut:
    """Says lines on ``out`` (None: says nothing), never waiting on its reader."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.dropped = 0
        self._queue: queue.Queue[str] = queue.Queue(QUEUE_LINES)
        self._writer: threading.Thread | None = None

    def say(self, t: int, text: str) -> None:
        """One line at model time ``t``."""
        if self.out is None:
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write, name="sephb-lines",
                                            daemon=True)
            self._writer.start()
            atexit.register(self.drain)
        try:
            self._queue.put_nowait(f"[t={t:,} ms] {text.translate(_CONTROLS)}\n")
        except queue.Full:
            self.dropped += 1

    def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Wait until the lines said so far are written (at most ``timeout_s``)."""
        end = time.monotonic() + timeout_s
        while self.out is not None and self._queue.unfinished_tasks \
                and time.monotonic() < end:
            time.sleep(0.005)

    def _write(self) -> None:
        said_dropped = 0
        while self.out is not None:
            line = self._queue.get()
            try:
                self.out.write(line)
                if self.dropped > said_dropped and self._queue.empty():
                    # (after the backlog: the lines dropped came after it)
                    self.out.write(f"({self.dropped - said_dropped:,} lines not said: "
                                   f"the reader of this output was too slow)\n")
                    said_dropped = self.dropped
                self.out.flush()
            except (OSError, ValueError):
                self._silence()
            finally:
                self._queue.task_done()
        with contextlib.suppress(queue.Empty):  # what was left: not written
            while True:
                self._queue.get_nowait()
                self._queue.task_done()

    def _silence(self) -> None:
        # The reader went away. Say no more, and point the stream at /dev/null so
        # that the interpreter's last flush at exit cannot fail the exit status.
        out, self.out = self.out, None
        if out is None:
            return
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, out.fileno())
            os.close(null)
