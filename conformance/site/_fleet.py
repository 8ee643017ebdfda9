"""A fleet: the managers, the GUP and the control API of one config, and the
``sephb manager`` process that serves them.

The fleet owns what its servers share: the :class:`~._server.Site` (one database),
the :class:`~sephb.conformance.traces.trace.Recorder` and its clock. The control API
(:mod:`._control`) drives a fleet; a server only reads its fleet's config, site and
recorder.
"""

from __future__ import annotations

import asyncio
import math
import signal
from typing import Any, Final

from sephb.conformance.site._control import ControlApi
from sephb.conformance.site._server import Endpoint, SimServer, Site, StoredLog
from sephb.conformance.site.config import FleetConfig, apply_listen, load_config
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.trace import Record, Recorder, TraceWriter
from sephb.conformance.traces.wire import IndexAnswer, Role
from sephb.model.errors import UsageError

# --- the fleet ------------------------------------------------------------------------

#: The ``writer`` of the header of a trace the servers write (``sephb manager
#: --trace``; docs/trace-format.md).
TRACE_WRITER: Final = "manager"


class Fleet:
    """Managers, an optional GUP and the control API of one config, started together.

    ``async with Fleet(config) as fleet:`` starts and stops it. ``trace`` (a path or a
    :class:`~sephb.conformance.traces.trace.TraceWriter`) also writes every record to a file
    (a path gets a header naming the clock's time scale and :data:`TRACE_WRITER`);
    records are always kept in memory (``maxlen`` bounds them) for tests and for
    ``GET /control/trace``.
    """

    def __init__(
        self,
        config: FleetConfig,
        *,
        clock: Clock | None = None,
        trace: TraceWriter | str | None = None,
        listen: str | None = None,
        maxlen: int | None = None,
        recorder: Recorder | None = None,
    ):
        self.config = apply_listen(config, listen)
        if recorder is not None and (trace is not None or clock is not None):
            raise UsageError("give a Fleet either a recorder or a clock and a trace")
        self.clock = recorder.clock if recorder else (clock or Clock())
        # A shared recorder (e.g. the reference client's) stays open after stop().
        self._own_recorder = recorder is None
        if recorder is None:
            writer = TraceWriter(trace, time_scale=self.clock.time_scale,
                                 writer=TRACE_WRITER) if isinstance(trace, str) else trace
            recorder = Recorder(self.clock, writer=writer, maxlen=maxlen)
        self.recorder = recorder
        self.site = Site(self.config.serial, self.config.content, self.config.files,
                         self.config.content_size)
        self.servers: dict[str, SimServer] = {
            s.name: SimServer(self, s) for s in self.config.servers
        }
        self.control: Any = None  # a control.ControlApi once started
        self._started = False

    # -- access --

    def __getitem__(self, name: str) -> SimServer:
        try:
            return self.servers[name]
        except KeyError:
            raise UsageError(f"no server named {name!r} (have: "
                             f"{', '.join(self.servers)})") from None

    @property
    def managers(self) -> list[SimServer]:
        """Managers in priority order, then config order."""
        ms = [s for s in self.servers.values() if s.role is Role.MANAGER]
        return sorted(ms, key=lambda s: s.spec.priority)

    @property
    def gup(self) -> SimServer | None:
        return next((s for s in self.servers.values() if s.role is Role.GUP), None)

    @property
    def endpoints(self) -> list[Endpoint]:
        return [s.endpoint for s in self.servers.values()]

    @property
    def records(self) -> list[Record]:
        return self.recorder.records

    def logs(self, client: str) -> list[StoredLog]:
        """The logs the site accepted from ``client``, in order of acceptance."""
        return list(self.site.logs.get(client, {}).values())

    def describe(self) -> list[str]:
        """One line per server (and the control API): name, role, address:port."""
        lines = [e.line() for e in self.endpoints]
        if self.control is not None:
            lines.append(self.control.endpoint.line())
        return lines

    # -- lifecycle --

    async def start(self) -> Fleet:
        if self._started:
            return self
        self._started = True
        try:
            for s in self.servers.values():
                await s.start()
            if self.config.control is not None:
                self.control = ControlApi(self, self.config.control)
                await self.control.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
            self.control = None
        for s in self.servers.values():
            await s.stop()
        if self._own_recorder:
            self.recorder.close()
        self._started = False

    async def __aenter__(self) -> Fleet:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- run-time control --

    def publish(self, *, push: bool = True) -> IndexAnswer:
        """Publish new content (new serial, next revision); by default announce it to
        every held push connection, as a real manager does in push mode."""
        answer = self.site.publish()
        if push:
            self.push()
        return answer

    def push(self, server: str | None = None) -> int:
        """Announce the current serial on held push requests (of one server or all);
        return how many were answered."""
        targets = [self[server]] if server else list(self.servers.values())
        return sum(s.push(self.site.serial) for s in targets)

    def state(self) -> dict[str, Any]:
        """Everything a test may want to assert on, as JSON-ready data."""
        return {
            "serial": self.site.serial,
            "content": self.site.content,
            "servers": {n: s.state() for n, s in self.servers.items()},
            "clients": {
                c: {
                    "logs": [{"id": lg.id, "data": lg.data, "server": lg.server,
                              "t": lg.t} for lg in self.logs(c)],
                    "sensors": vars(self.site.sensors[c]).copy()
                    if c in self.site.sensors else None,
                }
                for c in sorted(set(self.site.logs) | set(self.site.sensors))
            },
        }


# --- the `sephb manager` process -------------------------------------------------------


def run_manager_process(config_path: str, *, listen: str | None, time_scale: float,
                        trace_path: str | None) -> int:
    """Run the fleet of ``config_path`` until SIGINT or SIGTERM; return 0.

    Prints one line per server (name, role, address:port, and a note when the port
    was taken). Raises ConfigError / UsageError for a bad config, a bad argument or a
    port that cannot be bound.
    """
    if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale)
            and time_scale > 0):
        raise UsageError(f"--time-scale {time_scale!r}: expected a number > 0")
    config = load_config(config_path)
    apply_listen(config, listen)  # fail before starting anything
    return asyncio.run(_serve(config, listen, time_scale, trace_path))


async def _serve(config: FleetConfig, listen: str | None, time_scale: float,
                 trace_path: str | None) -> int:
    # Bounded memory: a long-running process keeps the last 100,000 records for
    # GET /control/trace; the trace file has them all.
    fleet = Fleet(config, clock=Clock(time_scale), trace=trace_path, listen=listen,
                  maxlen=100_000)
    await fleet.start()
    try:
        for line in fleet.describe():
            print(line, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    finally:
        await fleet.stop()
    return 0
