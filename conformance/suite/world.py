"""The in-process environment: virtual managers, a GUP and a clock, with no sockets.

Theory of operation
-------------------
The conformance suite explores millions of situations; real sockets and wall time
would make each one cost milliseconds. The :class:`World` stands in for the
simulated servers of :mod:`sephb.conformance.site`: a client under test sends it model-level
requests (an :class:`~sephb.model.protocol.Action` to a host and port) and gets
answers at once, fails at once, or is left pending (a stalled request, a held push)
until time advances or the environment acts. The world records what it observed in
the trace vocabulary of ``docs/trace-format.md``, as the real servers would
(``by: "server"``), so one oracle judges in-process and over-the-wire runs alike.

Which request embodies which action, what its answer and failure mean, comes from
:data:`sephb.conformance.traces.wire.ROUTES`; the world adds no protocol rule of its
own. It only keeps the site's data: the index serial and content revision, the
LiveUpdate policy per location, faults per server and path, and the logs each client
uploaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from hypothesis import strategies as st

from sephb.conformance.site import Fault
from sephb.conformance.traces import wire
from sephb.conformance.traces.wire import ROUTES, Role, Route
from sephb.model.protocol import Action, Event, Source, failure_of

#: ``Fault`` is the site's vocabulary (:class:`sephb.conformance.site.Fault`); the
#: replay files of shrunk programs name it from here.
__all__ = ["DEFAULT_SITE", "LOCATIONS", "MAX_MANAGERS", "Fault", "Reply", "Site", "VServer",
           "World"]

#: Locations a client can be in; a site's policies name a LiveUpdate source for some.
LOCATIONS: Final = ("Default", "Office", "Branch")
#: The most managers a drawn site has (six, over up to three priority blocks).
MAX_MANAGERS: Final = 6


@dataclass(frozen=True)
class Site:
    """The site of one test case, as its sylink.xml and policies describe it.

    Drawn per case (:func:`sites`) and shrunk toward :data:`DEFAULT_SITE`: a failing
    case is reported, and replayed, with the smallest site that still fails. The
    repr is valid Python (the replay file's ``state.start(..., site=Site(...))``)."""

    #: Each manager's (priority, port), in sylink.xml order: priority blocks in
    #: order, 1 first (a larger number is a lower priority).
    managers: tuple[tuple[int, int], ...] = ((1, 8014), (1, 8014), (2, 8014))
    #: The GUP's port; None: the site has no GUP.
    gup: int | None = 2967
    #: (location, LiveUpdate source) of the policies the site starts with; a location
    #: not named takes its content from the manager.
    policies: tuple[tuple[str, str], ...] = ()
    #: The order sylink.xml lists its priority blocks in (empty: 1 first). A block's
    #: priority is its name's N, never its place in the document.
    listed: tuple[int, ...] = ()
    #: sylink.xml's RandomizationRange in seconds, enabled when > 0 (A15): each next
    #: heartbeat may come up to this much after the interval.
    randomization_s: int = 0

    def __post_init__(self) -> None:
        if not 1 <= len(self.managers) <= MAX_MANAGERS:
            raise ValueError(f"a site has 1 to {MAX_MANAGERS} managers, not "
                             f"{len(self.managers)}")
        if [p for p, _ in self.managers] != sorted(p for p, _ in self.managers):
            raise ValueError("managers are listed by priority block, 1 first")
        if self.gup is None and any(src == Source.GUP.value for _, src in self.policies):
            raise ValueError("a policy names the GUP of a site without one")
        if self.listed and sorted(self.listed) != sorted({p for p, _ in self.managers}):
            raise ValueError("listed is an order of the site's priority blocks")

    def addresses(self) -> list[tuple[str, int, int]]:
        """(address, port, priority) of each manager, on 127.0.10.x in process."""
        return [(f"127.0.10.{i + 2}", port, prio)
                for i, (prio, port) in enumerate(self.managers)]

    def gup_address(self) -> tuple[str, int] | None:
        return ("127.0.10.9", self.gup) if self.gup is not None else None

    def words(self) -> str:
        """The site in words: "m1, m2 at priority 1, m3 at priority 2 (port 8443), a
        GUP on 2967; policies: Office gup"."""
        blocks = []
        for prio in sorted({p for p, _ in self.managers}):
            names = [f"m{i + 1}" + (f" (port {port})" if port != wire.MANAGER_PORT
                                    else "")
                     for i, (p, port) in enumerate(self.managers) if p == prio]
            blocks.append(f"{', '.join(names)} at priority {prio}")
        gup = (f"a GUP on {self.gup}" if self.gup is not None else "no GUP")
        named = ", ".join(f"{loc} {src}" for loc, src in self.policies)
        policies = f"; policies: {named}" if named else ""
        listed = "" if list(self.listed) == sorted(self.listed) else \
            "; sylink.xml lists " + ", ".join(f"Priority{p}" for p in self.listed)
        spread = f"; RandomizationRange {self.randomization_s} s" \
            if self.randomization_s else ""
        return f"{', '.join(blocks)}, {gup}{policies}{listed}{spread}"


#: The site the suite used before sites were drawn: what drawn sites shrink toward.
DEFAULT_SITE: Final = Site()


def sites() -> st.SearchStrategy[Site]:
    """Sites to draw: 1 to 3 priority blocks of 1 to 3 managers (at most
    :data:`MAX_MANAGERS`), each on 8014 or another port, a GUP on 2967, on another
    port or none, the locations' policies, and the order sylink.xml lists the blocks
    in, and whether it enables RandomizationRange. Shrinks toward :data:`DEFAULT_SITE`
    (the first branch)."""

    @st.composite
    def drawn(draw: st.DrawFn) -> Site:
        blocks = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
        prios = [b for b, n in enumerate(blocks, 1) for _ in range(n)][:MAX_MANAGERS]
        ports = draw(st.lists(st.sampled_from(_MANAGER_PORTS), min_size=len(prios),
                              max_size=len(prios)))
        gup = draw(st.sampled_from(_GUP_PORTS))
        # A policy can name the GUP only where there is one (a SEPM refuses it).
        sources = [s.value for s in Source if gup is not None or s is not Source.GUP]
        policies = draw(st.lists(
            st.tuples(st.sampled_from(LOCATIONS), st.sampled_from(sources)),
            max_size=len(LOCATIONS), unique_by=lambda p: p[0]))
        # The document order of the blocks (shrinks toward 1 first): priority is
        # the block's name, not its place.
        listed = draw(st.permutations(sorted(set(prios))))
        return Site(tuple(zip(prios, ports, strict=True)), gup, tuple(sorted(policies)),
                    () if listed == sorted(listed) else tuple(listed),
                    draw(st.sampled_from(_RANDOMIZATION_S)))

    return st.one_of(st.just(DEFAULT_SITE), drawn())


#: Ports a drawn manager listens on: the seed's 8014 first (what shrinking prefers),
#: then ports sylink.xml allows as well.
_MANAGER_PORTS: Final = (wire.MANAGER_PORT, 8443, 9014)
#: RandomizationRange: off first (what shrinking prefers), then a minute.
_RANDOMIZATION_S: Final = (0, 60)
#: The GUP's port: the seed's 2967 first, then another, then no GUP.
_GUP_PORTS: Final = (wire.GUP_PORT, 2968, None)

_ROUTE: dict[Action, Route] = {r.action: r for r in ROUTES}
_DOWNLOADS = frozenset({Action.DOWNLOAD_MANAGER, Action.DOWNLOAD_GUP})


@dataclass
class VServer:
    name: str
    role: Role
    address: str
    port: int
    priority: int = 0
    #: Fault per path (None: every request).
    faults: dict[str | None, Fault] = field(default_factory=dict)

    def fault_for(self, path: str | None) -> Fault:
        for key, mode in self.faults.items():
            if key is not None and path is not None and path.startswith(key):
                return mode
        return self.faults.get(None, Fault.UP)

    @property
    def refusing(self) -> bool:
        return self.faults.get(None) is Fault.REFUSE

    @property
    def unreachable(self) -> bool:
        """Whether a client can get no session here at all."""
        return self.faults.get(None) in (Fault.REFUSE, Fault.BLACKHOLE)


@dataclass
class Reply:
    """The world's answer to one request."""

    #: The event an answer means (None: the request failed or is pending).
    event: Event | None = None
    data: dict[str, Any] = field(default_factory=dict)
    failed: bool = False

    @property
    def pending(self) -> bool:
        return self.event is None and not self.failed


@dataclass
class _Conn:
    server: VServer
    id: int
    requests: int = 0
    #: A request the server has not answered (stall or hold): its action.
    pending: Action | None = None
    hold_until: int | None = None


class World:
    """Virtual managers (and a GUP) of one site, and the records they make."""

    def __init__(self, managers: list[tuple[str, int, int]],
                 gup: tuple[str, int] | None = None, *, content_size: int = 4096) -> None:
        self.managers = [VServer(f"m{i}", Role.MANAGER, a, p, prio)
                         for i, (a, p, prio) in enumerate(managers, 1)]
        self.gup = VServer("gup", Role.GUP, *gup) if gup else None
        self.serial_n = 1
        self.content = 1
        self.content_size = content_size
        #: The site it plays (what its sylink.xml would say).
        self.site = DEFAULT_SITE
        self.default_source = Source.MANAGER
        self.policies: dict[str, Source] = {}
        #: A policy change that takes effect between the next index answer and the
        #: URLs request after it (the location's policy changing mid-heartbeat, A9).
        self.flip: Source | None = None
        #: Accepted log ids per client, in upload order (duplicates dropped).
        self.accepted: dict[str, list[str]] = {}
        self.records: list[dict[str, Any]] = []
        self.now = 0
        self._conns: dict[str, _Conn] = {}
        self._next_conn = 0
        #: Called when a pending request gets its answer (push, end of a hold).
        self.on_answer: Callable[[str, Reply], None] | None = None

    # --- the site -------------------------------------------------------------------

    @property
    def serial(self) -> str:
        return f"A3AF-11/26/2026 00:00:00 {self.serial_n:03d}"

    @property
    def servers(self) -> list[VServer]:
        return self.managers + ([self.gup] if self.gup else [])

    def server_at(self, host: str | None, port: int | None) -> VServer | None:
        for s in self.servers:
            if s.address == host and s.port == port:
                return s
        return None

    # --- what the environment does (the suite's rules call these; an adapter over
    # --- the wire implements the same methods on real servers) ------------------

    def set_fault(self, index: int, path: str | None, fault: Fault) -> None:
        """Manager ``index`` answers requests to ``path`` (None: all) with ``fault``;
        its other faults stay."""
        self.managers[index].faults[path] = fault

    def only_fault(self, index: int, path: str | None, fault: Fault) -> None:
        """Manager ``index`` has this one fault and no other."""
        self.managers[index].faults = {path: fault}

    def set_gup(self, fault: Fault | None) -> None:
        """The GUP fails every request with ``fault``, or answers (None)."""
        if self.gup is not None:
            self.gup.faults = {} if fault is None else {None: fault}

    def heal(self) -> None:
        """Every server answers again."""
        for s in self.servers:
            s.faults.clear()

    @classmethod
    def of(cls, site: Site, **kw: Any) -> World:
        """The virtual servers of a drawn site, its policies in force."""
        w = cls(site.addresses(), site.gup_address(), **kw)
        w.site = site
        for location, source in site.policies:
            w.set_policy(location, Source(source))
        return w

    def set_policy(self, location: str, source: Source) -> None:
        self.policies[location] = source

    def set_flip(self, source: Source | None) -> None:
        self.flip = source

    def source_for(self, location: str) -> Source:
        return self.policies.get(location, self.default_source)

    def publish(self) -> None:
        """New content: a new serial and revision; held push requests learn of it."""
        self.serial_n += 1
        self.content += 1
        self.push()

    def push(self) -> int:
        """Answer every held push request with the current serial."""
        n = 0
        for client, conn in list(self._conns.items()):
            if conn.pending is Action.HOLD:
                conn.pending, conn.hold_until = None, None
                n += 1
                self._answer(client, conn, Event.POLICY_PUSHED, {"serial": self.serial})
        return n

    def advance(self, now: int) -> None:
        """Time passes: holds whose limit ran out end with HEARTBEAT_DUE (204)."""
        self.now = now
        for client, conn in list(self._conns.items()):
            if conn.pending is Action.HOLD and conn.hold_until is not None \
                    and conn.hold_until <= now:
                conn.pending, conn.hold_until = None, None
                self._answer(client, conn, Event.HEARTBEAT_DUE, {})

    def next_deadline(self) -> int | None:
        """When the earliest held push request runs out of time, if any."""
        ends = [c.hold_until for c in self._conns.values()
                if c.pending is Action.HOLD and c.hold_until is not None]
        return min(ends, default=None)

    def drop(self, index: int) -> None:
        """Close every connection of manager ``index`` (held push connections see
        it)."""
        server = self.managers[index]
        for client, conn in list(self._conns.items()):
            if conn.server is server:
                was = conn.pending
                if was is not None:
                    # The server breaks the request it holds, and records it as the
                    # real servers do (a held push: CONNECTION_LOST).
                    failed = wire.failure_event(_ROUTE[was],
                                                first_request=conn.requests == 1)
                    self._emit(client, server, failed.value, conn=conn.id,
                               error="dropped by the server")
                self._close(client, conn)
                if was is not None and self.on_answer:
                    self.on_answer(client, Reply(failed=True))

    # --- what clients do ---------------------------------------------------------

    def connect(self, client: str, host: str | None, port: int | None) -> bool | None:
        """Open the client's session connection; False when refused, None when the
        attempt is dropped and never completes."""
        server = self.server_at(host, port)
        self.disconnect(client)
        if server is not None and server.faults.get(None) is Fault.BLACKHOLE:
            return None
        if server is None:
            return False
        if server.refusing:
            # A real server cannot see a refused connect; the in-process world can,
            # and tells the oracle, as a network observer would.
            self._next_conn += 1
            self._emit(client, server, Action.CONNECT.value, conn=self._next_conn)
            self._emit(client, server, Event.CONNECT_FAILED.value, conn=self._next_conn,
                       error="refused")
            return False
        self._next_conn += 1
        self._conns[client] = _Conn(server, self._next_conn)
        self._emit(client, server, Action.CONNECT.value, conn=self._next_conn)
        return True

    def request(self, client: str, action: Action, host: str | None, port: int | None,
                *, location: str = "Default", have: tuple[str, int] | None = None,
                ids: list[str] | None = None, hold_ms: int | None = None) -> Reply:
        """One request. Downloads may go elsewhere than the session (the GUP): they
        get a connection of their own, as in the wire profile."""
        route = _ROUTE[action]
        server = self.server_at(host, port)
        if server is None:
            # Nothing listens there (a wrong port, say). A real client's connect is
            # refused; the world still notes the attempt, as a trap listener would,
            # so that the oracle can name the port rule it breaks.
            self.records.append({"t": self.now, "client": client, "event": action.value,
                                 "by": "server", "server": "-", "addr": host,
                                 "port": port})
            return Reply(failed=True)
        conn = self._conns.get(client)
        if conn is None and action not in _DOWNLOADS:
            # A client going on without a session (after giving up a held request,
            # say) opens a new connection: the server sees it connect.
            if not self.connect(client, host, port):
                return Reply(failed=True)
            conn = self._conns[client]
        if conn is None or conn.server is not server:
            if action in _DOWNLOADS:
                return self._side_request(client, route, server, location, have, ids)
            return Reply(failed=True)
        return self._serve(client, conn, route, location, have, ids, hold_ms)

    def abandon(self, client: str) -> None:
        """The client gave up its pending request (its timer ran out)."""
        conn = self._conns.get(client)
        if conn is not None:
            if conn.pending is not None and conn.pending is not Action.HOLD:
                # The client's timer ran out: the table's timeout of the request
                # (SESSION_TIMEOUT for index.dat, the session's, also a pushed
                # check-in's on the held connection), as the exchange reading says.
                failed = failure_of(conn.pending, timed_out=True)
                self._emit(client, conn.server, failed.value, conn=conn.id,
                           error=wire.GAVE_UP)
            self._close(client, conn)

    def disconnect(self, client: str) -> None:
        conn = self._conns.get(client)
        if conn is not None:
            self._close(client, conn)

    # --- internals -----------------------------------------------------------------

    def _side_request(self, client: str, route: Route, server: VServer | None,
                      location: str, have: tuple[str, int] | None,
                      ids: list[str] | None) -> Reply:
        # A connection just for this download (the GUP's, or another port's).
        if server is None or server.role is not route.role:
            return Reply(failed=True)
        if server.refusing:
            # Seen by the in-process world only (see connect()).
            self._emit(client, server, route.action.value, error="refused")
            self._emit(client, server, route.failure.value, error="refused")
            return Reply(failed=True)
        self._next_conn += 1
        conn = _Conn(server, self._next_conn)
        reply = self._serve(client, conn, route, location, have, ids, None, side=True)
        if reply.pending:
            # A stalled download fails at once here: a side request is answered
            # synchronously, so no time passes on it (the request limit's lower
            # bound is judged on the session's connection, and over the wire).
            self._emit(client, server, route.failure.value, conn=conn.id,
                       error="stalled: a side request fails at once in process")
            return Reply(failed=True)
        return reply

    def _serve(self, client: str, conn: _Conn, route: Route, location: str,
               have: tuple[str, int] | None, ids: list[str] | None, hold_ms: int | None,
               *, side: bool = False) -> Reply:
        s = conn.server
        conn.requests += 1
        req = {"conn": conn.id}
        self._emit(client, s, route.action.value, **req,
                   **({"ids": list(ids)} if ids is not None else {}))
        fault = s.fault_for(route.path)
        if fault is Fault.STALL:
            conn.pending = route.action
            return Reply()
        if fault is not Fault.UP:
            failed = wire.failure_event(route, first_request=conn.requests == 1)
            self._emit(client, s, failed.value, **req, error=fault.value)
            if fault in (Fault.RESET, Fault.GARBAGE) and not side:
                self._close(client, conn)
            return Reply(failed=True)
        action = route.action
        data: dict[str, Any] = {}
        if action is Action.GET_INDEX:
            data = {"serial": self.serial, "content": self.content,
                    "source": self.source_for(location).value,
                    "changed": have != (self.serial, self.content)}
        elif action is Action.GET_URLS:
            if self.flip is not None:
                self.policies[location], self.flip = self.flip, None
            source = self.source_for(location)
            host = {Source.MANAGER: (s.address, s.port),
                    Source.GUP: (self.gup.address, self.gup.port) if self.gup else None,
                    Source.NONE: None}[source]
            urls = [wire.content_url(host[0], host[1], self.content, "defs.zip")] \
                if host else []
            data = {"source": source.value, "urls": urls}
        elif action is Action.UPLOAD_LOGS:
            seen = self.accepted.setdefault(client, [])
            dups = [i for i in ids or [] if i in seen]
            seen.extend(i for i in ids or [] if i not in seen)
            data = {"ids": list(ids or []), "duplicates": dups}
        elif action is Action.HOLD:
            conn.pending = Action.HOLD
            conn.hold_until = None if hold_ms is None else self.now + hold_ms
            return Reply()
        self._emit(client, s, route.answer.value, **req, **data)
        return Reply(route.answer, data)

    def _answer(self, client: str, conn: _Conn, event: Event, data: dict[str, Any]) -> None:
        self._emit(client, conn.server, event.value, conn=conn.id, **data)
        if self.on_answer:
            self.on_answer(client, Reply(event, data))

    def _close(self, client: str, conn: _Conn) -> None:
        self._emit(client, conn.server, Action.DISCONNECT.value, conn=conn.id)
        if self._conns.get(client) is conn:
            del self._conns[client]

    def _emit(self, client: str, server: VServer, name: str, **fields: Any) -> None:
        self.records.append({"t": self.now, "client": client, "event": name,
                             "by": "server", "server": server.name,
                             "role": server.role.value, "addr": server.address,
                             "port": server.port, **fields})
