"""The wire profile: the seed's seven steps as plain HTTP/1.1 on loopback, as data.

Theory of operation
-------------------
The seed names the heartbeat's steps ("HTTP GET of index.dat", "GET request to
obtain URLs", "uploads log files", ...) but not their bytes. This module fixes them
once, for both sides: the reference client builds its requests from it, the simulated
manager and GUP (:mod:`sephb.conformance.site._server`) dispatch on it, and the servers'
trace records take their names from it. ``docs/wire-profile.md`` is the prose version;
where the two disagree, this module wins.

:data:`ROUTES` is the one table that says which request embodies which model
:class:`~sephb.model.protocol.Action`, which model
:class:`~sephb.model.protocol.Event` its successful answer means to the client, and
which event a failed answer means. Nothing else in ``sephb`` maps paths to actions.

Bodies are JSON, described by :mod:`msgspec` structs so that both sides decode with
validation and the same error messages. The real SEP wire format differs (obfuscated
``POST /secars/secars.dll``, ``index2.xml``, HTTPS); the profile keeps the seed's
names because the seed is the specification under test.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec

from sephb.model.protocol import (
    GUP_PORT,
    MANAGER_CONTENT_PORT,
    SESSION_LIMIT_MS,
    Action,
    Event,
    Source,
    failure_of,
)

__all__ = [
    "CONTENT_PREFIX",
    "GAVE_UP",
    "GUP_PORT",
    "HEADER_CLIENT",
    "HEADER_HOLD_MS",
    "HEADER_LOCATION",
    "HEADER_SERIAL",
    "INDEX_PATH",
    "LOGS_PATH",
    "MANAGER_PORT",
    "PUSH_PATH",
    "ROUTES",
    "SENSORS_PATH",
    "SERIAL_RE",
    "SESSION_LIMIT_MS",
    "URLS_PATH",
    "IndexAnswer",
    "LogEntry",
    "LogsAck",
    "LogsUpload",
    "PushAnswer",
    "Role",
    "Route",
    "SensorsAck",
    "SensorsUpload",
    "UrlsAnswer",
    "content_bytes",
    "content_chunks",
    "content_path",
    "content_url",
    "failure_event",
    "format_serial",
    "next_serial",
    "parse_content_path",
    "parse_serial",
    "route_for",
]

#: Every request names its client; servers key their records by it. Without it the
#: server falls back to the peer's "ip:port" (which changes with every connection).
HEADER_CLIENT: Final = "X-Sephb-Client"
#: On ``GET /index.dat``: the serial of the client's copy, empty when it has none.
HEADER_SERIAL: Final = "X-Sephb-Serial"
#: What a server's failure record says (in its ``error``) when the client gave up a
#: request the server left unanswered: the request limit's lower bound reads it.
GAVE_UP: Final = "the client gave up"
#: On ``GET /urls``: the client's current location; it selects the LiveUpdate policy.
HEADER_LOCATION: Final = "X-Sephb-Location"
#: On ``GET /push``: end the hold with 204 after this many model milliseconds (the
#: push heartbeat of the ``documented`` interpretation); absent, hold until a change.
HEADER_HOLD_MS: Final = "X-Sephb-Hold-Ms"

#: The manager's port for all client traffic, content included (seed, step 4).
MANAGER_PORT: Final = MANAGER_CONTENT_PORT

INDEX_PATH: Final = "/index.dat"
URLS_PATH: Final = "/urls"
#: Content lives under ``/content/<revision>/<file>`` on the manager and on the GUP.
CONTENT_PREFIX: Final = "/content/"
LOGS_PATH: Final = "/logs"
SENSORS_PATH: Final = "/sensors"
PUSH_PATH: Final = "/push"


class Role(enum.Enum):
    """What a simulated server is."""

    #: A Symantec Endpoint Protection Manager (steps 2-7, content on its own port).
    MANAGER = "manager"
    #: A Group Update Provider: serves content only, on TCP 2967.
    GUP = "gup"


# --- bodies ----------------------------------------------------------------------


class IndexAnswer(msgspec.Struct, frozen=True):
    """Answer to ``GET /index.dat`` (step 3): what the client compares with its copy."""

    #: Policy serial number, e.g. ``A3AF-11/26/2026 23:50:54 284`` (KB 156507 shape).
    serial: str
    #: Content revision; it changes together with the serial when content is published.
    content: int
    #: LiveUpdate content source of the policy for the client's location
    #: (``X-Sephb-Location``): step 3 checks a change against it before asking URLs.
    source: Source = Source.MANAGER


class UrlsAnswer(msgspec.Struct, frozen=True):
    """Answer to ``GET /urls`` (step 4): where the location's policy takes content."""

    source: Source
    #: Absolute ``http://`` URLs: the manager's port for ``manager``, the GUP's for
    #: ``gup``, none for ``none``.
    urls: list[str]


class LogEntry(msgspec.Struct, frozen=True):
    """One client log record; ``id`` is unique per client and makes uploads idempotent."""

    id: str
    data: str


class LogsUpload(msgspec.Struct, frozen=True):
    """Body of ``POST /logs`` (step 5)."""

    logs: list[LogEntry]


class LogsAck(msgspec.Struct, frozen=True):
    """Answer to ``POST /logs``: every id of the upload, duplicates included."""

    acked: list[str]


class SensorsUpload(msgspec.Struct, frozen=True):
    """Body of ``POST /sensors`` (step 6). The entries are opaque to the profile."""

    lan_sensor: list[Any]
    learned_apps: list[Any]


class SensorsAck(msgspec.Struct, frozen=True):
    """Answer to ``POST /sensors``."""

    acked: bool


class PushAnswer(msgspec.Struct, frozen=True):
    """Answer to a held ``GET /push`` when the manager announces a change (step 7)."""

    event: Literal["policy_changed"]
    serial: str


# --- the route table ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One request of the profile and what it means in the model."""

    role: Role
    method: str
    #: The exact path, or a prefix when it ends with "/".
    path: str
    #: What the client does by sending it (the entry action of a model state).
    action: Action
    #: What a successful answer means to the client.
    answer: Event
    #: Seed step and the requirement the request carries out.
    step: int
    requirement: str
    #: msgspec type of the JSON request body, if any.
    body: type[msgspec.Struct] | None
    #: msgspec type of the JSON answer; None for raw content bytes.
    reply: type[msgspec.Struct] | None

    @property
    def failure(self) -> Event:
        """What a failed answer (refused, reset, stalled, error, garbage) means to the
        client once the session is up; the table decides (see :func:`failure_event`
        for the first request)."""
        return failure_of(self.action)

    def matches(self, method: str, path: str) -> bool:
        if method != self.method:
            return False
        if self.path.endswith("/"):
            return path.startswith(self.path) and len(path) > len(self.path)
        return path == self.path


#: THE request -> action/event table. What a failed request means is not listed
#: here: the transition table decides it (:func:`~sephb.model.protocol.failure_of`).
ROUTES: Final[tuple[Route, ...]] = (
    Route(Role.MANAGER, "GET", INDEX_PATH, Action.GET_INDEX, Event.INDEX_RECEIVED,
          3, "REQ-3-INDEX", None, IndexAnswer),
    Route(Role.MANAGER, "GET", URLS_PATH, Action.GET_URLS, Event.URLS_RECEIVED,
          4, "REQ-4-URLS", None, UrlsAnswer),
    Route(Role.MANAGER, "GET", CONTENT_PREFIX, Action.DOWNLOAD_MANAGER,
          Event.CONTENT_RECEIVED, 4, "REQ-4-PORT-8014", None, None),
    Route(Role.GUP, "GET", CONTENT_PREFIX, Action.DOWNLOAD_GUP, Event.CONTENT_RECEIVED,
          4, "REQ-4-PORT-2967", None, None),
    Route(Role.MANAGER, "POST", LOGS_PATH, Action.UPLOAD_LOGS, Event.LOGS_ACKED,
          5, "REQ-5-LOGS", LogsUpload, LogsAck),
    Route(Role.MANAGER, "POST", SENSORS_PATH, Action.UPLOAD_SENSORS, Event.SENSORS_ACKED,
          6, "REQ-6-SENSORS", SensorsUpload, SensorsAck),
    Route(Role.MANAGER, "GET", PUSH_PATH, Action.HOLD, Event.POLICY_PUSHED,
          7, "REQ-7-PUSH", None, PushAnswer),
)


def route_for(role: Role, method: str, path: str) -> Route | None:
    """The route a request to a server of ``role`` takes, or None (answered 404)."""
    for r in ROUTES:
        if r.role is role and r.matches(method, path):
            return r
    return None


def failure_event(route: Route | None, *, first_request: bool) -> Event:
    """What a failed answer means to the client.

    On a manager, a failure of the first request of a connection means the session was
    never established (the seed's step 2), whatever was asked. Requests with no route
    fail as REQUEST_FAILED.
    """
    if route is None:
        return Event.CONNECT_FAILED if first_request else Event.REQUEST_FAILED
    if route.role is Role.MANAGER and first_request:
        return Event.CONNECT_FAILED
    return route.failure


# --- content ---------------------------------------------------------------------

_CONTENT_RE: Final = re.compile(r"^/content/(0|[1-9][0-9]{0,17})/([A-Za-z0-9._-]+)$")


def content_path(revision: int, file: str) -> str:
    return f"{CONTENT_PREFIX}{revision}/{file}"


def content_url(host: str, port: int, revision: int, file: str) -> str:
    """An absolute content URL, as ``GET /urls`` hands it out."""
    return f"http://{host}:{port}{content_path(revision, file)}"


def parse_content_path(path: str) -> tuple[int, str] | None:
    """``/content/<rev>/<file>`` -> (rev, file), or None when it is not one."""
    m = _CONTENT_RE.match(path)
    return (int(m.group(1)), m.group(2)) if m else None


def content_bytes(revision: int, file: str, size: int) -> bytes:
    """The deterministic bytes of one content file, so that a client can check what it
    downloaded without the server keeping copies: the SHA-256 of "<rev>/<file>",
    repeated to ``size`` bytes."""
    return b"".join(content_chunks(revision, file, size))


def content_chunks(revision: int, file: str, size: int,
                   chunk: int = 64 * 1024) -> Iterator[bytes]:
    """:func:`content_bytes` in pieces of at most ``chunk`` bytes (a multiple of 32),
    so that a server streams large content without holding it."""
    seed = hashlib.sha256(f"{revision}/{file}".encode()).digest()
    chunk -= chunk % len(seed)
    full = seed * (chunk // len(seed))
    while size > 0:
        n = min(size, chunk)
        yield full if n == chunk else full[:n]
        size -= n


# --- policy serials -----------------------------------------------------------------

#: ``<group id>-MM/DD/YYYY HH:MM:SS mmm`` in GMT (KB 156507).
SERIAL_RE: Final = re.compile(
    r"^([0-9A-F]{4})-(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d) (\d{3})$"
)


def parse_serial(serial: str) -> tuple[str, datetime]:
    """Split a policy serial into its group id and change time (UTC).

    Raises ValueError with the expected shape when it is not one.
    """
    m = SERIAL_RE.match(serial)
    if not m:
        raise ValueError(
            f"policy serial {serial!r} is not like 'A3AF-11/26/2026 23:50:54 284'"
        )
    when = datetime.strptime(m.group(2), "%m/%d/%Y %H:%M:%S").replace(tzinfo=UTC)
    return m.group(1), when + timedelta(milliseconds=int(m.group(3)))


def format_serial(group: str, when: datetime) -> str:
    ms = when.microsecond // 1000
    return f"{group}-{when:%m/%d/%Y %H:%M:%S} {ms:03d}"


def next_serial(previous: str, now: datetime | None = None) -> str:
    """The serial of the next policy change: stamped ``now`` (UTC), but always later
    than ``previous`` so that two changes within a millisecond still differ."""
    group, last = parse_serial(previous)
    now = now or datetime.now(UTC)
    when = max(now, last + timedelta(milliseconds=1))
    return format_serial(group, when)
