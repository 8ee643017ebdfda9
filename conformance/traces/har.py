"""HAR (HTTP Archive 1.2) captures as heartbeat events, and server traces as HAR.

Theory of operation
-------------------
A HAR file (what mitmproxy, Fiddler and browsers save) is one JSON document whose
``log.entries`` are request/answer pairs. :func:`har_events` maps them to model
observations by the wire profile, :data:`sephb.conformance.traces.wire.ROUTES`, and nothing
else:

* entries are taken in ``startedDateTime`` order; ``t`` is model milliseconds since
  the first entry; the answer's event is at start + ``time``. A HAR's times are
  wall-clock times and a HAR has no header to say the time scale of the run it
  captured: ``time_scale`` (wall seconds per model second, 1 by default: a real
  client) converts them, model ms = wall ms / ``time_scale``. Per client, a time
  earlier than the client's last is moved up to it (clock jitter between
  connections);
* the client is the ``X-Sephb-Client`` request header. Entries without it are a
  capture made beside one client (what a browser or a proxy in front of it saves):
  they are keyed by the peer the capture names, the entry's ``_clientAddress`` (a
  custom field a server-side capture can add), else read as one client named after
  the file (``har:<name>``), and ``warn`` is told once how many entries were read
  so;
* a server's role is the entry's ``_sephb_role`` (written by :func:`trace_to_har`),
  else ``gup`` on port 2967 and ``manager`` elsewhere;
* a new TCP connection (a new ``connection`` id, else ``serverIPAddress:port``) to a
  manager is a ``CONNECT`` before its first request; when a client moves on to a new
  manager connection, ``DISCONNECT`` for the old one first (a HAR shows no closes).
  A GUP's connections are transport, not model steps;
* method + path -> the route's Action; a 2xx answer -> the route's Event (``204`` on
  ``/push`` is the end of a hold, ``HEARTBEAT_DUE``); anything else (status 0, an
  ``_error``, 3xx-5xx) -> :func:`sephb.conformance.traces.wire.failure_event`, but
  an ``_error`` saying the client gave up is its timer running out (``SESSION_TIMEOUT``
  for the session's ``GET /index.dat``: see :mod:`.exchanges`);
* ``changed`` on INDEX_RECEIVED compares the request's ``X-Sephb-Serial`` with the
  answer's serial, and ``source`` is read from the answer body, when the capture
  kept the body; otherwise both are unknown to the checker;
* for the data properties (``sephb validate --data``): each request's address and
  port come from its URL (``serverIPAddress`` first), an upload's log ids from the
  request body (``postData``, when kept) and the acknowledged ids from the answer's
  ``acked``.

A HAR cannot see the client's timers, so it is checked with the server-side hidden
events. Problems are :class:`HarError`; their "line" is the entry's 1-based number
(``entries[N-1]``), or the JSON line for a syntax error. Every entry is checked
before any is mapped, and a HAR that breaks the format anywhere (JSON nested deeper
than the decoder follows, a URL that is no URL or whose port is not 0-65535, a
``startedDateTime`` without a time zone, which cannot be ordered against one with
it) is one HarError naming the entry and what was expected; nothing else escapes.

:func:`trace_to_har` goes the other way: the server records of a run (``sephb
manager --trace``) as HAR entries, their model times as the wall-clock times of a
run at ``time_scale``. ``conformance/examples/reference.har`` was made so (at 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePath
from typing import Annotated, Any, Final
from urllib.parse import SplitResult, urlsplit

import msgspec

from sephb.conformance.traces.exchanges import answer_of, json_object, log_ids
from sephb.conformance.traces.wire import (
    GAVE_UP,
    HEADER_CLIENT,
    HEADER_LOCATION,
    HEADER_SERIAL,
    PUSH_PATH,
    Role,
    route_for,
)
from sephb.model.protocol import GUP_PORT, Action, Event

__all__ = ["HarError", "HarEvent", "har_events", "trace_to_har"]


class HarError(Exception):
    """A HAR that cannot be read further."""

    def __init__(self, line: int | None, what: str) -> None:
        self.line, self.what = line, what
        super().__init__(f"{line}: {what}" if line else what)


@dataclass(frozen=True)
class HarEvent:
    client: str
    event: str
    t: int
    changed: bool | None
    source: str | None
    #: The entry's 1-based number.
    line: int
    #: Where the request went (requests and connects only).
    addr: str | None = None
    port: int | None = None
    #: Log ids: of an upload (from its body, when kept) or of an acknowledgement.
    ids: list[str] | None = None
    #: Why no answer came (the entry's ``_error``), on the failure it reads as.
    error: str | None = None


class _Header(msgspec.Struct):
    name: str
    value: str


class _Content(msgspec.Struct):
    text: str | None = None


class _PostData(msgspec.Struct):
    text: str | None = None


class _Request(msgspec.Struct):
    method: str
    url: str
    headers: list[_Header] = []
    postData: _PostData | None = None


class _Response(msgspec.Struct):
    status: int
    content: _Content | None = None
    _error: str | None = None


#: Added to msgspec's message for a ``startedDateTime`` without a zone.
_ZONE: Final = (" (HAR 1.2 times carry their zone: 2026-01-01T12:00:00.000Z or "
                "+02:00)")


class _Entry(msgspec.Struct):
    # HAR 1.2 requires the zone (YYYY-MM-DDThh:mm:ss.sTZD): a time without one
    # cannot be ordered against one with it.
    startedDateTime: Annotated[datetime, msgspec.Meta(tz=True)]
    request: _Request
    response: _Response
    time: float = 0.0
    serverIPAddress: str | None = None
    connection: str | None = None
    _sephb_role: str | None = None
    _clientAddress: str | None = None


#: What a HAR nested deeper than the decoder can follow gets told.
NESTED: Final = ("JSON nested too deeply to read: expected a HAR, {\"log\": "
                 "{\"entries\": [...]}}, whose entries nest a few levels")


def _decode_entries(data: bytes) -> list[tuple[int, Any]]:
    try:
        doc = msgspec.json.decode(data)
    except RecursionError:
        # msgspec recurses per level: a file of brackets would end the whole run.
        raise HarError(None, NESTED) from None
    except msgspec.DecodeError as exc:
        # msgspec names a byte offset: say which line that is.
        msg = str(exc)
        line = None
        if "(byte " in msg:
            try:
                line = data.count(b"\n", 0, int(msg.rsplit("(byte ", 1)[1].rstrip(")"))) + 1
            except ValueError:
                line = None
        elif "truncated" in msg:
            line = data.rstrip().count(b"\n") + 1
        raise HarError(line, f"bad JSON: {msg}") from None
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise HarError(None, "not a HAR file: expected {\"log\": {\"entries\": [...]}}")
    return list(enumerate(entries, 1))


def _header(req: _Request, name: str) -> str | None:
    low = name.lower()
    for h in req.headers:
        if h.name.lower() == low:
            return h.value
    return None


def _model_ms(wall_ms: float, time_scale: float) -> int:
    """Model ms of ``wall_ms`` of wall time at ``time_scale``, rounded down (a
    microsecond of float error does not cost a whole model millisecond). Raises
    ValueError when that is no finite number (a tiny scale, a huge ``time``)."""
    ms = wall_ms / time_scale + 1e-6
    if not math.isfinite(ms):
        raise ValueError(f"{wall_ms:g} wall ms at time scale {time_scale:g} is "
                         f"beyond any model time")
    return math.floor(ms)


def _url(n: int, url: str) -> tuple[SplitResult, int]:
    """An entry's request URL, split, and its port: a HarError for one that is no
    http(s) URL or whose port is not a number 0-65535."""
    shown = repr(url[:80])
    try:
        parts = urlsplit(url)
        port = parts.port  # parses the port: ValueError for "abc" or 99999
    except ValueError as exc:
        raise HarError(n, f"entries[{n - 1}]: bad request URL {shown}: {exc} "
                          f"(expected http://host[:port]/path, a port 0-65535)"
                       ) from None
    if parts.scheme not in ("http", "https"):
        raise HarError(n, f"entries[{n - 1}]: not an HTTP request "
                          f"({parts.scheme or 'no'} scheme: {shown})")
    return parts, port or (443 if parts.scheme == "https" else 80)


def har_events(path: str, *, time_scale: float = 1.0,
               warn: Callable[[str], None] | None = None) -> Iterator[HarEvent]:
    """The model observations of a HAR file, in time order; its wall-clock times
    are read as those of a run at ``time_scale`` (model ms = wall ms / scale).
    Raises :class:`HarError` for a file that is not a HAR at all; bad entries are
    raised too (the caller reports and the check of that file stops). ``warn``
    hears, once, how entries without a client header were keyed."""
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"time scale must be a number > 0, got {time_scale!r}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise HarError(None, f"cannot open: {exc.strerror}") from None
    if not data.strip():
        raise HarError(None, "empty file")
    parsed: list[tuple[int, _Entry, SplitResult, int]] = []
    for n, raw in _decode_entries(data):
        try:
            entry = msgspec.convert(raw, _Entry, strict=False)
        except msgspec.ValidationError as exc:
            raise HarError(n, f"entries[{n - 1}]: not an HTTP entry: {exc}"
                              f"{_ZONE if 'timezone' in str(exc) else ''}") from None
        if not math.isfinite(entry.time):
            raise HarError(n, f"entries[{n - 1}]: time must be a number of ms, got "
                              f"{entry.time}")
        parsed.append((n, entry, *_url(n, entry.request.url)))
    if not parsed:
        raise HarError(None, "no entries")
    parsed.sort(key=lambda p: p[1].startedDateTime)  # every one with its zone
    t0 = parsed[0][1].startedDateTime
    last: dict[str, int] = {}
    conns: dict[str, str | None] = {}  # client -> its current manager connection
    seen: set[tuple[str, str]] = set()
    out: list[HarEvent] = []
    keyed: dict[str, int] = {}  # client key -> entries without a client header

    def emit(client: str, name: str, t: int, n: int, changed: bool | None = None,
             source: str | None = None, **data: Any) -> None:
        t = max(t, last.get(client, 0))
        last[client] = t
        out.append(HarEvent(client, name, t, changed, source, n, **data))

    for n, e, url, port in parsed:
        client = _header(e.request, HEADER_CLIENT)
        if not client:
            client = (f"peer:{e._clientAddress}" if e._clientAddress
                      else f"har:{PurePath(path).name}")
            keyed[client] = keyed.get(client, 0) + 1
        addr = e.serverIPAddress or url.hostname or ""
        role = Role(e._sephb_role) if e._sephb_role in ("manager", "gup") else (
            Role.GUP if port == GUP_PORT else Role.MANAGER)
        conn = e.connection or f"{addr}:{port}"
        # Whole microseconds: no float error before the scale is applied.
        wall_ms = (e.startedDateTime - t0) // timedelta(microseconds=1) / 1000
        try:
            start = _model_ms(wall_ms, time_scale)
            end = _model_ms(wall_ms + max(0.0, e.time), time_scale)
        except ValueError as exc:
            raise HarError(n, f"entries[{n - 1}]: {exc}") from None
        first = (client, conn) not in seen
        if role is Role.MANAGER and first:
            if conns.get(client) is not None:
                emit(client, Action.DISCONNECT.value, start, n)
            conns[client] = conn
            emit(client, Action.CONNECT.value, start, n, addr=addr, port=port)
        seen.add((client, conn))
        route = route_for(role, e.request.method, url.path)
        if route is None:
            raise HarError(n, f"entries[{n - 1}]: {e.request.method} {url.path} on a "
                              f"{role.value} is not in the wire profile")
        emit(client, route.action.value, start, n, addr=addr, port=port,
             ids=log_ids(route, e.request.postData.text if e.request.postData else None))
        status = None if e.response._error else e.response.status
        answer = answer_of(route, status, json_object(
            e.response.content.text if e.response.content else None),
            request_serial=_header(e.request, HEADER_SERIAL), first_request=first,
            # the servers' and the monitor's records say so (trace_to_har keeps it)
            gave_up=GAVE_UP in (e.response._error or ""))
        emit(client, answer.event.value, end, n, answer.changed, answer.source,
             ids=answer.ids, error=e.response._error or None)
        failed = status is None or not 200 <= status < 300
        if failed and role is Role.MANAGER and (first or route.path == PUSH_PATH):
            conns[client] = None
    if keyed and warn is not None:
        total = sum(keyed.values())
        names = ", ".join(f"{k!r}" for k in list(keyed)[:3]) + (
            f" and {len(keyed) - 3} more" if len(keyed) > 3 else "")
        warn(f"{total:,} of {len(parsed):,} entries carry no {HEADER_CLIENT} "
             f"request header: keyed by the peer the capture names, {names} (a "
             f"capture beside one client is one client; add the header, or a "
             f"_clientAddress field per entry, to tell clients apart)")
    yield from out


# --- server trace -> HAR -----------------------------------------------------------

_EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
_CLOSED: Final = "the connection closed before an answer"


def trace_to_har(records: Iterable[Mapping[str, Any]], *, time_scale: float = 1.0
                 ) -> dict[str, Any]:
    """HAR 1.2 of the server records of a run: each request record paired with the
    answer record that follows it on the same server connection. CONNECT and
    DISCONNECT become connection ids; a request still unanswered when its connection
    closes (a held push request, say) is an entry with status 0 and an ``_error``,
    as a browser writes an aborted request; one unanswered at the end is left out.
    Times are those a capture of the run at ``time_scale`` would show: wall ms =
    model ms x scale (a HAR keeps whole milliseconds; ``time`` keeps fractions)."""
    pending: dict[tuple[str, int], Mapping[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    for rec in records:
        if rec.get("by") != "server" or rec["event"] == Action.CONNECT.value:
            continue
        key = (str(rec.get("server")), int(rec.get("conn", 0)))
        if rec["event"] == Action.DISCONNECT.value:
            req = pending.pop(key, None)
            if req is not None:
                entries.append(_entry(req, {"event": rec["event"], "t": rec["t"],
                                            "status": 0, "error": _CLOSED}, time_scale))
            continue
        if rec["event"] in {a.value for a in Action}:
            pending[key] = rec
            continue
        req = pending.pop(key, None)
        if req is None:
            continue
        entries.append(_entry(req, rec, time_scale))
    entries.sort(key=lambda e: e["startedDateTime"])
    return {"log": {"version": "1.2",
                    "creator": {"name": "sephb", "version": "0.1.0"},
                    "entries": entries}}


def _entry(req: Mapping[str, Any], ans: Mapping[str, Any], time_scale: float = 1.0
           ) -> dict[str, Any]:
    headers = [{"name": HEADER_CLIENT, "value": req["client"]}]
    if req["event"] == Action.GET_INDEX.value:
        headers.append({"name": HEADER_SERIAL, "value": req.get("serial", "")})
    if req.get("location"):
        headers.append({"name": HEADER_LOCATION, "value": req["location"]})
    body: dict[str, Any] = {k: ans[k] for k in ("serial", "content", "source", "urls")
                            if k in ans}
    if ans["event"] == Event.LOGS_ACKED.value:
        body = {"acked": ans.get("ids", [])}
    elif ans["event"] == Event.SENSORS_ACKED.value:
        body = {"acked": True}
    elif ans["event"] == Event.POLICY_PUSHED.value:
        body = {"event": "policy_changed", "serial": ans.get("serial", "")}
    status = int(ans.get("status", 0))
    started = _EPOCH + timedelta(milliseconds=int(req["t"]) * time_scale)
    waited = (int(ans["t"]) - int(req["t"])) * time_scale
    if time_scale == 1:
        waited = int(waited)  # as before scales: whole milliseconds
    post: dict[str, Any] = {}
    if req["event"] == Action.UPLOAD_LOGS.value and "ids" in req:
        # The ids (the server keeps no data); none recorded: no body, as unknown.
        post = {"postData": {"mimeType": "application/json", "text": json.dumps(
            {"logs": [{"id": i} for i in req["ids"] or []]})}}
    entry: dict[str, Any] = {
        # Always with milliseconds (microseconds at another scale, where a model
        # second is less than a wall second): the entries are sorted by this string.
        "startedDateTime": started.isoformat(
            timespec="milliseconds" if time_scale == 1 else "microseconds").replace(
            "+00:00", "Z"),
        "time": waited,
        "request": {"method": req.get("method", "GET"),
                    "url": f"http://{req.get('addr')}:{req.get('port')}{req.get('path')}",
                    "httpVersion": "HTTP/1.1", "headers": headers, "queryString": [],
                    "cookies": [], "headersSize": -1,
                    "bodySize": int(req.get("bytes_in", 0)), **post},
        "response": {"status": status, "statusText": "", "httpVersion": "HTTP/1.1",
                     "headers": [], "cookies": [], "redirectURL": "", "headersSize": -1,
                     "bodySize": int(ans.get("bytes_out", 0)),
                     "content": {"size": int(ans.get("bytes_out", 0)),
                                 "mimeType": "application/json",
                                 "text": json.dumps(body) if body else ""}},
        "cache": {}, "timings": {"send": 0, "wait": waited, "receive": 0},
        "serverIPAddress": req.get("addr"),
        "connection": f"{req.get('server')}-{req.get('conn')}",
        "_sephb_role": req.get("role"),
    }
    if ans.get("error"):
        entry["response"]["_error"] = ans["error"]
    return entry
