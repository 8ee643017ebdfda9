"""The client under test, guarded: whatever it does, the suite gives a verdict.

An in-process client runs in the suite's own thread, so what goes wrong inside it
would otherwise be the suite's failure: an exception would end the run with a
traceback of ``sephb``, and a loop that never returns would hang it. Every call
into the client goes through :class:`Guarded`:

* an exception (any :class:`Exception`: a bug, a protocol error the client raised
  for itself, a refusal of an event) becomes :class:`ClientFailed`, which the state
  machine turns into a REQ-X-ALIVE violation -- shrunk, reported and replayed like
  any other;
* a call that does not return within its wall budget is interrupted by the
  :class:`Watchdog`, a thread that raises :class:`ClientHung` inside the suite's
  thread (``PyThreadState_SetAsyncExc``): a loop that never asks for a timer, and
  so never lets the spin guard of the state machine see it, still ends.

:class:`ClientGone` (a process client that exited) is a ``BaseException`` and
passes through: it ends the run as an error, not as a finding.
"""

from __future__ import annotations

import ctypes
import gc
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

__all__ = ["AFTER_HANG_S", "CALL_BUDGET_S", "ClientFailed", "ClientHung", "ClientStopped",
           "Guarded", "Watchdog"]

#: Wall seconds one call into an in-process client may take. A call normally takes
#: microseconds; the budget only has to be longer than a loaded machine's pause.
CALL_BUDGET_S: Final = 5.0
#: The budget once a call of the run has hung: the verdict is made, and shrinking
#: replays the hang many times (each replay would otherwise cost the full budget).
AFTER_HANG_S: Final = 0.05


class ClientHung(Exception):
    """Raised inside a call into the client that overran its wall budget."""


class ClientStopped(Exception):
    """A client process that exited on its own (its message says how)."""


class ClientFailed(Exception):
    """A call into the client raised (or was cut short by the watchdog)."""

    def __init__(self, call: str, cause: BaseException, budget_s: float | None):
        self.call, self.cause = call, cause
        if isinstance(cause, ClientStopped):
            what = str(cause)
        elif isinstance(cause, ClientHung):
            what = (f"{call}() did not return within {budget_s:g} s of wall time: the "
                    f"client loops without letting model time pass (a later replay of "
                    f"the shrunk case may be cut short sooner, at {AFTER_HANG_S:g} s)")
        else:
            frames = traceback.extract_tb(cause.__traceback__)
            where = f" at {_short(frames[-1].filename)}:{frames[-1].lineno}" \
                if frames else ""
            what = f"{call}() raised {type(cause).__name__}: {cause}{where}"
        super().__init__(what)
        self.text = what


def _short(path: str) -> str:
    """A source file named from the package on (no machine's directories)."""
    parts = path.replace("\\", "/").split("/")
    for anchor in ("sephb", "conformance", "site-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1:])
    return parts[-1]


class Watchdog:
    """One thread that interrupts a call overrunning its budget.

    The suite's thread announces each call (:meth:`watch`); the watchdog wakes when
    the budget of the current call runs out and raises :class:`ClientHung` in that
    thread. Announcing a call costs two assignments, so every call can be watched.
    A raise still pending when the call returned lands in :meth:`disarm`, dropped.
    """

    def __init__(self, budget_s: float = CALL_BUDGET_S) -> None:
        self.budget_s = budget_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._deadline: float | None = None
        self._thread_id = 0
        self._fired = False
        self._depth = 0
        #: A call of this run hung: later ones get :data:`AFTER_HANG_S`.
        self.hung = False
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Garbage collection was on when a watched call turned it off.
        self._gc_was_on = False

    @contextmanager
    def watch(self) -> Iterator[None]:
        if self._depth:  # a call made from inside a watched one: the outer budget
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sephb-watchdog",
                                            daemon=True)
            self._thread.start()
        with self._lock:
            self._deadline = time.monotonic() + self.budget_s
            if self.hung:
                self._deadline = time.monotonic() + min(self.budget_s, AFTER_HANG_S)
            self._thread_id = threading.get_ident()
            self._fired = False
        self._wake.set()
        self._depth = 1
        # No garbage collection inside a watched call: an interrupt raised while a
        # collector callback runs (Hypothesis installs one) would be swallowed there.
        self._gc_was_on = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            # First stop the watchdog (nothing may be raised into the suite's own
            # code), then drop an interrupt still pending, then collect again.
            self.disarm()
            self._depth = 0

    def disarm(self) -> None:
        """Stop watching, and let an interrupt already raised into this thread land
        here, where it is dropped. An interrupt can land in this very code (between
        the call's end and the lock): then disarm again, else the watchdog would go
        on raising into the suite (or whatever runs next in this thread)."""
        while True:
            try:
                with self._lock:
                    self._deadline = None
                    fired, self._fired = self._fired, False
                if fired:
                    _absorb()
                if self._gc_was_on:
                    self._gc_was_on = False
                    gc.enable()
                return
            except ClientHung:
                continue

    def close(self) -> None:
        """The run is over: disarm, and let the thread end."""
        self._closed = True
        self.disarm()
        self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    deadline = self._deadline
                    if deadline is None or self._closed:
                        break
                    if time.monotonic() >= deadline:
                        # Raised again every AFTER_HANG_S while the call goes on: an
                        # interrupt that lands where it is caught and dropped must
                        # not leave the loop running.
                        self._fired = True
                        self.hung = True
                        _set_async_exc(self._thread_id, ClientHung)
                        self._deadline = deadline = time.monotonic() + AFTER_HANG_S
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _set_async_exc(thread_id: int, exc: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc))


def _absorb() -> None:
    """Give a pending interrupt the chance to land, and drop it. CPython raises it
    at the next check of its eval breaker (a backward jump, a call). It is never
    withdrawn with ``PyThreadState_SetAsyncExc(id, NULL)``: once it has landed,
    that leaves CPython 3.11's "async exception pending" flag set for good, and
    later code (Hypothesis's shrinker) livelocks on it."""
    try:
        for _ in range(1_000):
            pass
    except ClientHung:
        pass


class Guarded:
    """A client whose every method call (and attribute set) is guarded.

    ``watchdog`` None: no wall budget (a process client bounds its own waits).
    ``fail`` makes the exception raised for a :class:`ClientFailed` (the state
    machine's violation); it is raised once, through any nesting of calls."""

    _client: Any
    _fail: Callable[[ClientFailed], BaseException] | None
    _watchdog: Watchdog | None

    def __init__(self, client: Any, watchdog: Watchdog | None,
                 fail: Callable[[ClientFailed], BaseException] | None = None) -> None:
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_fail", fail)
        object.__setattr__(self, "_watchdog", watchdog)

    @property
    def unguarded(self) -> Any:
        return self._client

    def _call(self, name: str, fn: Callable[[], Any]) -> Any:
        dog: Watchdog | None = self._watchdog
        try:
            if dog is None:
                return fn()
            with dog.watch():
                return fn()
        except Exception as exc:
            if dog is not None:
                dog.disarm()  # an interrupt that landed after the call: none after it
            if getattr(exc, "guarded", False):
                raise  # a nested call's finding, already made
            failed = ClientFailed(name, exc, dog.budget_s if dog else None)
            err: BaseException = self._fail(failed) if self._fail else failed
            err.guarded = True  # type: ignore[attr-defined]
            raise err from exc

    def __getattr__(self, name: str) -> Any:
        # Unguarded: a missing attribute stays an AttributeError (getattr with a
        # default asks whether a client has an optional method).
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *a, **kw: self._call(name, lambda: attr(*a, **kw))

    def __setattr__(self, name: str, value: Any) -> None:
        self._call(name, lambda: setattr(self._client, name, value))
