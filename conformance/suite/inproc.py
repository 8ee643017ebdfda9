"""In-process clients: the Python adapter interface, and the reference core behind it.

Theory of operation
-------------------
An in-process client is anything with the :class:`InProcessClient` methods. The
suite owns the clock: it calls :meth:`~InProcessClient.tick` whenever model time
advances to the client's :meth:`~InProcessClient.wakeup`, and the client does its
I/O through the :class:`~.world.World` it was given, which answers at once, fails at
once, or leaves a request pending (a stall, a held push). Answers to pending
requests arrive through :meth:`~InProcessClient.answer`. Third-party clients written
in Python implement the same five methods (see ``docs/adapters.md``).

:class:`CoreClient` is the reference: :class:`~sephb.conformance.client.core.ClientCore`
(or a seeded-fault subclass) plus an in-memory durable state (index copy and log queue
survive :meth:`~InProcessClient.restart`, as the state directory does on disk).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sephb.conformance.client.core import ClientCore, Effect, Peer
from sephb.conformance.suite.world import Reply, World
from sephb.model.interpretations import Interpretation
from sephb.model.protocol import Action, Event, Mode, State


class InProcessClient(Protocol):
    """What the suite needs of a client it drives without sockets."""

    client_id: str

    def start(self, now: int) -> None:
        """The client process starts (its state survives from earlier runs)."""

    def wakeup(self) -> int | None:
        """Model time at which the client wants :meth:`tick`, or None."""

    def tick(self, now: int) -> None:
        """Model time is ``now``: do whatever is due."""

    def answer(self, now: int, reply: Reply) -> None:
        """A pending request got its answer (or failed: ``reply.failed``)."""

    def restart(self, now: int) -> None:
        """Crash and start again: volatile state lost, durable state kept."""

    def produce_logs(self, count: int) -> list[str] | None:
        """The client's own activity: ``count`` new log entries to upload. Their ids
        when the caller made them (a log spool over the wire): the oracle then
        judges each by id; None (the client names its own): it counts them."""


CoreFactory = Callable[..., ClientCore]


class CoreClient:
    """The reference core (or a fault) driven against a :class:`World`."""

    def __init__(self, world: World, interpretation: Interpretation, mode: Mode, *,
                 client_id: str = "c1", location: str = "Default",
                 interval_ms: int = 300_000, push_interval_ms: int = 300_000,
                 core: CoreFactory = ClientCore, seed: int = 0) -> None:
        self.world = world
        self.client_id = client_id
        self.location = location
        peers = [Peer(m.address, m.port, m.priority) for m in world.managers]

        # What sylink.xml says of the heartbeat's spread (A15).
        spread_ms = world.site.randomization_s * 1000

        def make(index: tuple[str, int] | None) -> ClientCore:
            return core(peers, mode, interpretation, interval_ms=interval_ms,
                        push_interval_ms=push_interval_ms, rng=random.Random(seed),
                        index=index, randomization_ms=spread_ms)

        self._make = make
        # Durable state: survives restart().
        self.index: tuple[str, int] | None = None
        self.queue: list[str] = []
        self._ids = itertools.count(1)
        self._inflight: list[str] = []
        self.core = self._make(None)
        self._pending = False
        #: Rows of the table the client took, across restarts (white-box coverage).
        self.rows: list[str] = []

    # --- the interface -------------------------------------------------------------

    def start(self, now: int) -> None:
        self.core.start(now)

    def wakeup(self) -> int | None:
        timer = self.core.timer
        return timer.at if timer else None

    def tick(self, now: int) -> None:
        # The core decides whether its timer is due (expire): the suite wakes the
        # client at other times too (an answer, a hold's end), and a core that fires
        # early must show it.
        effects = self.core.expire(now)
        if not effects and self.core.timer is not None and now < self.core.timer.at:
            return
        if self._pending and effects:  # the timer won: give the request up
            self._pending = False
            self.world.abandon(self.client_id)
        self._run(effects, now)

    def answer(self, now: int, reply: Reply) -> None:
        self._pending = False
        self._feed(reply, now)

    def restart(self, now: int) -> None:
        self.rows += [r.name for r in self.core.path]
        self.world.disconnect(self.client_id)
        self._pending = False
        self._inflight = []
        self.core = self._make(self.index)
        self.core.start(now)

    def produce_logs(self, count: int) -> None:
        self.queue += [f"{self.client_id}-{next(self._ids)}" for _ in range(count)]

    @property
    def state(self) -> State:
        return self.core.state

    def taken(self) -> list[str]:
        """Every row taken so far, by name."""
        return self.rows + [r.name for r in self.core.path]

    # --- effects -------------------------------------------------------------------

    def _feed(self, reply: Reply, now: int) -> None:
        if reply.failed:
            self._run(self.core.fail(now, timed_out=False), now)
        elif reply.event is not None:
            self._run(self.core.handle(reply.event, now, **_kwargs(reply)), now)

    def _run(self, effects: Sequence[Effect], now: int) -> None:
        todo = list(effects)
        while todo:
            effect = todo.pop(0)
            reply = self._do(effect, now)
            if reply is None:
                continue
            if reply.pending:
                self._pending = True
                continue
            if reply.failed:
                todo += self.core.fail(now, timed_out=False)
            else:
                assert reply.event is not None
                todo += self.core.handle(reply.event, now, **_kwargs(reply))
            self._save()

    def _save(self) -> None:
        if self.core.index is not None:
            self.index = self.core.index

    def _do(self, effect: Effect, now: int) -> Reply | None:
        w, cid = self.world, self.client_id
        if effect.settle_logs:
            self.queue = [i for i in self.queue if i not in self._inflight]
            self._inflight = []
        action = effect.action
        if action is Action.DISCONNECT:
            w.disconnect(cid)
            return None
        if action is Action.CONNECT:
            ok = w.connect(cid, effect.host, effect.port)
            if ok is None:
                return Reply()  # dropped: pending until the session limit
            return Reply(Event.CONNECTED) if ok else Reply(failed=True)
        if action is Action.HOLD:
            timer = self.core.timer
            hold = None if timer is None else max(0, timer.at - now)
            return w.request(cid, action, effect.host, effect.port, hold_ms=hold)
        if action is Action.UPLOAD_LOGS:
            # In flight until the core settles it (only after an acknowledgement,
            # unless a seeded fault settles a failed upload too).
            self._inflight = list(self.queue)
            return w.request(cid, action, effect.host, effect.port, ids=self._inflight)
        return w.request(cid, action, effect.host, effect.port, location=self.location,
                         have=self.core.index)


def _kwargs(reply: Reply) -> dict[str, Any]:
    return {k: v for k, v in reply.data.items()
            if k in ("serial", "content", "source", "urls")}
