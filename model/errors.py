"""The exception hierarchy of ``sephb``.

Every error a user can cause is a :class:`SephbError` whose message says what was
expected, what came, and where (file, line, element, event index). The CLI prints the
message on one line and exits 2 for :class:`UsageError` (and its subclasses), 1 for a
protocol verdict; nothing else reaches the user as a traceback.
"""

from __future__ import annotations


class SephbError(Exception):
    """Base of every error ``sephb`` raises on purpose."""


class UsageError(SephbError):
    """Bad arguments or input that cannot be read (exit status 2)."""


class ConfigError(UsageError):
    """A configuration file (sylink.xml, a manager config) that cannot be used."""

    def __init__(self, path: str, line: int | None, element: str | None, what: str):
        self.path, self.line, self.element, self.what = path, line, element, what
        where = path + (f":{line}" if line else "")
        elem = f" <{element}>" if element else ""
        super().__init__(f"{where}:{elem} {what}")


class ProtocolError(SephbError):
    """An event that the model does not allow in the current state.

    Like h11's ``ProtocolError``, it names the state and the event, and the machine
    that raised it stays where it was: nothing is half-applied.
    """

    def __init__(self, state: str, event: str, detail: str = ""):
        self.state, self.event = state, event
        msg = f"event {event} cannot happen in state {state}"
        super().__init__(msg + (f": {detail}" if detail else ""))
