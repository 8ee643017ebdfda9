"""The trace format: NDJSON records of what a heartbeat client did and what happened
to it, in model time. Writer, streaming reader and an in-process recorder.

Theory of operation
-------------------
A trace is one JSON object a line::

    {"t": 1234, "client": "c1", "event": "GET_INDEX", "by": "server", ...}

``t`` is model time in whole milliseconds (:mod:`sephb.conformance.traces.clock`),
so a trace taken at time scale 0.001 reads like one taken in real time.
``event`` is the name of
a model :class:`~sephb.model.protocol.Action` (what the client did) or
:class:`~sephb.model.protocol.Event` (what happened to it); the two vocabularies are
disjoint by construction of the model and the allowed names are derived from those
enums, never retyped. ``docs/trace-format.md`` is the prose version.

Decoding is typed (``msgspec.json.Decoder(Record)``): one C call a line checks JSON
syntax, field presence and types. The reader then checks what msgspec cannot: the name
is known, fields that belong to some names only are not elsewhere, and time does not
go backwards for a client. Unknown fields are ignored so that newer writers stay
readable. Every problem is a :class:`TraceError` naming file and line.

Every writer begins with a *header* line saying at what time scale the trace was
recorded and who wrote it (:func:`header_record`)::

    {"sephb": "trace", "version": 1, "time_scale": 0.001, "writer": "manager"}

Model times do not depend on the scale, but recording jitter does: a millisecond of
wall time is a thousand model ms at 0.001, so a judge of the timing rules needs the
scale to know how much slack the recording needs (``sephb validate``). The header is
recognised by its ``sephb`` member on a line that is not a record; readers skip it
(it is neither a record nor a bad line), :func:`read_header` returns it, and a trace
without one (written before headers) reads exactly as before.

The writer appends one line per record with a single ``write`` on an unbuffered file,
so a crash loses at most the line being written. The :class:`Recorder` is what the
simulated servers (and the reference client) record through: it stamps model time,
keeps records per client monotonic, keeps them in memory for tests and the control
API, and lets a test await a record instead of sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import io
import math
import operator
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Annotated, Any, Final, Literal, cast

import msgspec

from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.wire import Role
from sephb.model.errors import UsageError
from sephb.model.protocol import Action, Event, Source

__all__ = [
    "ACTIONS",
    "COMMON_FIELDS",
    "EVENTS",
    "HEADER_VERSION",
    "NAMES",
    "NESTED",
    "SPECIFIC_FIELDS",
    "Record",
    "Recorder",
    "TraceError",
    "TraceHeader",
    "TraceWriter",
    "dumps",
    "header_of",
    "header_record",
    "loads",
    "problem",
    "read_header",
    "read_trace",
]

#: Names of what a client does (model actions) and of what happens to it (events).
ACTIONS: Final = frozenset(a.value for a in Action)
EVENTS: Final = frozenset(e.value for e in Event)
NAMES: Final = ACTIONS | EVENTS
assert not ACTIONS & EVENTS, "the model's Action and Event names must not clash"

_NonNeg = Annotated[int, msgspec.Meta(ge=0)]


#: What a GUP's own connection records: ``CONNECT``/``DISCONNECT`` with ``role: "gup"``
#: are transport, not the model's session with a manager, so a model check skips them.
TRANSPORT: Final = frozenset({Action.CONNECT.value, Action.DISCONNECT.value})


def is_transport(name: str, role: str | None) -> bool:
    """Whether a record is a GUP connection's own connect or close (see TRANSPORT)."""
    return role == Role.GUP.value and name in TRANSPORT


# gc=False: a record holds only strings, numbers and lists of strings, so it cannot be
# part of a reference cycle; untracked, reading a million lines skips many GC passes.
class Record(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One trace line. Optional fields are omitted from the JSON when unset."""

    #: Model time in milliseconds; never decreases for one client.
    t: _NonNeg
    #: The client's id (``X-Sephb-Client``), or the peer "ip:port" when unknown.
    client: Annotated[str, msgspec.Meta(min_length=1)]
    #: A model Action or Event name (see :data:`NAMES`).
    event: str
    # -- common: any record may carry these --
    #: Who observed it: the simulated server or the client itself.
    by: Literal["server", "client"] | None = None
    #: The server's name from the fleet config ("m1", "gup").
    server: str | None = None
    #: What that server is. A GUP connection's CONNECT and DISCONNECT are transport
    #: records, not the model's session with a manager: a model check skips them.
    role: Role | None = None
    #: The server's connection number (per server, from 1): ties requests to their
    #: CONNECT and DISCONNECT.
    conn: _NonNeg | None = None
    #: Address and port of the server the client talked to.
    addr: str | None = None
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    method: str | None = None
    path: str | None = None
    #: HTTP status of the answer.
    status: Annotated[int, msgspec.Meta(ge=100, le=999)] | None = None
    #: Bytes received / sent: of one request or answer, or a connection's totals on
    #: DISCONNECT.
    bytes_in: _NonNeg | None = None
    bytes_out: _NonNeg | None = None
    #: What went wrong, as text.
    error: str | None = None
    # -- specific: only the names in SPECIFIC_FIELDS may carry these --
    #: Policy serial: the client's copy (GET_INDEX), the manager's (INDEX_RECEIVED),
    #: the new one (POLICY_PUSHED).
    serial: str | None = None
    #: Content revision of the manager's index (INDEX_RECEIVED).
    content: _NonNeg | None = None
    #: The client's serial differed from the manager's (INDEX_RECEIVED).
    changed: bool | None = None
    #: The client's location (GET_URLS, URLS_RECEIVED).
    location: str | None = None
    #: The LiveUpdate source of that location (URLS_RECEIVED).
    source: Source | None = None
    #: The download URLs handed out (URLS_RECEIVED).
    urls: list[str] | None = None
    #: Log ids uploaded (UPLOAD_LOGS) or acknowledged (LOGS_ACKED).
    ids: list[str] | None = None
    #: Ids acknowledged but dropped because they were accepted before (LOGS_ACKED).
    duplicates: list[str] | None = None

    @property
    def name(self) -> Action | Event:
        """The model Action or Event this record names."""
        return Action(self.event) if self.event in ACTIONS else Event(self.event)


#: Fields every record may carry.
COMMON_FIELDS: Final = (
    "by", "server", "role", "conn", "addr", "port", "method", "path", "status", "bytes_in",
    "bytes_out", "error",
)

A, E = Action, Event
#: Fields only some names may carry: field -> the names that may.
SPECIFIC_FIELDS: Final[dict[str, frozenset[str]]] = {
    f: frozenset(n.value for n in names)
    for f, names in (
        ("serial", (A.GET_INDEX, E.INDEX_RECEIVED, E.POLICY_PUSHED)),
        ("content", (E.INDEX_RECEIVED,)),
        ("changed", (E.INDEX_RECEIVED,)),
        ("location", (A.GET_INDEX, E.INDEX_RECEIVED, A.GET_URLS, E.URLS_RECEIVED)),
        ("source", (E.INDEX_RECEIVED, E.URLS_RECEIVED)),
        ("urls", (E.URLS_RECEIVED,)),
        ("ids", (A.UPLOAD_LOGS, E.LOGS_ACKED)),
        ("duplicates", (E.LOGS_ACKED,)),
    )
}
del A, E
assert set(COMMON_FIELDS) | set(SPECIFIC_FIELDS) | {"t", "client", "event"} == set(
    Record.__struct_fields__
), "every Record field is either common or specific"


def _misplaced_getter(name: str) -> Callable[[Record], tuple[Any, ...]]:
    fields = [f for f, allowed in SPECIFIC_FIELDS.items() if name not in allowed]
    get = operator.attrgetter(*fields) if fields else (lambda rec: ())
    return (lambda rec: (get(rec),)) if len(fields) == 1 else get


#: Per name: fetch the specific fields it must not carry, in one C call (the reader
#: checks every line, so this is on the hot path).
_MISPLACED: Final = {n: (_misplaced_getter(n), (None,) * sum(
    n not in a for a in SPECIFIC_FIELDS.values())) for n in NAMES}


def problem(rec: Record) -> str | None:
    """What is wrong with a decoded record beyond its types, or None."""
    check = _MISPLACED.get(rec.event)
    if check is None:
        return (f"unknown event name {rec.event!r}: expected a model Action or Event "
                f"name ({', '.join(sorted(NAMES))})")
    get, nones = check
    if get(rec) == nones:
        return None
    for f, allowed in SPECIFIC_FIELDS.items():
        if getattr(rec, f) is not None and rec.event not in allowed:
            return (f"field {f!r} does not belong on {rec.event} "
                    f"(only on {', '.join(sorted(allowed))})")
    return None  # pragma: no cover - get() found a misplaced field above


# --- the header ------------------------------------------------------------------

#: The header's format version: a reader refuses a header of another version (its
#: fields may mean something else), and ignores header fields it does not know.
HEADER_VERSION: Final = 1
#: The value of the member that marks a line as a trace header.
_MARK: Final = "trace"


@dataclass(frozen=True)
class TraceHeader:
    """What a trace's header line says: how it was recorded and by whom."""

    #: Wall seconds per model second of the recording (1: real time).
    time_scale: float
    #: Who wrote it: ``"client"`` (``sephb client --trace``), ``"manager"``
    #: (``sephb manager --trace``), ``"suite"`` (a conformance failure's trace), ...
    writer: str
    version: int = HEADER_VERSION


def _check_scale(time_scale: object) -> str | None:
    """What is wrong with a header's time scale, or None."""
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) \
            or not math.isfinite(time_scale) or time_scale <= 0:
        return f"time_scale must be a number > 0 (the wall seconds a model second " \
               f"lasts), got {_shown(time_scale)}"
    return None


#: A header member that is not there.
_ABSENT: Final = object()


def _shown(value: object) -> str:
    """A header value as the line had it (JSON), for a message."""
    if value is _ABSENT:
        return "nothing"
    try:
        return _ENCODER.encode(value).decode()
    except (TypeError, ValueError):  # a caller's non-JSON argument
        return repr(value)


def header_record(time_scale: float, writer: str) -> dict[str, object]:
    """The header line of a trace recorded at ``time_scale`` by ``writer``, as the
    object to encode: ``{"sephb": "trace", "version": 1, "time_scale": ..., "writer":
    ...}``. Every trace writer puts it first (see docs/trace-format.md)."""
    what = _check_scale(time_scale)
    if what is None and not (isinstance(writer, str) and writer):
        what = f"writer must be a non-empty string, got {writer!r}"
    if what is not None:
        raise ValueError(f"bad trace header: {what}")
    return {"sephb": _MARK, "version": HEADER_VERSION, "time_scale": time_scale,
            "writer": writer}


def header_of(line: bytes) -> TraceHeader | None:
    """The header a line holds, or None when it is no header (not a JSON object with
    a ``sephb`` member). Call it on lines that are not records: a line that decodes
    as a :class:`Record` is one, whatever else it carries. Raises ValueError, with
    a message for people, for a header that cannot be read (another version, a
    time scale that is not a positive number, no writer)."""
    if b'"sephb"' not in line:
        return None
    try:
        doc = msgspec.json.decode(line)
    except (msgspec.DecodeError, RecursionError):  # nested too deeply: no header
        return None
    if not isinstance(doc, dict) or "sephb" not in doc:
        return None
    if doc["sephb"] != _MARK:
        raise ValueError(f"bad trace header: \"sephb\" must be \"{_MARK}\", got "
                         f"{_shown(doc['sephb'])}")
    version = doc.get("version", _ABSENT)
    if version != HEADER_VERSION or isinstance(version, bool):
        raise ValueError(f"bad trace header: version must be {HEADER_VERSION}, got "
                         f"{_shown(version)} (a header of another version cannot be "
                         f"read)")
    what = _check_scale(doc.get("time_scale", _ABSENT))
    if what is not None:
        raise ValueError(f"bad trace header: {what}")
    writer = doc.get("writer", _ABSENT)
    if not isinstance(writer, str) or not writer:
        raise ValueError(f"bad trace header: writer must be a non-empty string, got "
                         f"{_shown(writer)}")
    return TraceHeader(float(doc["time_scale"]), writer, version)


#: What a line nested deeper than the decoder can follow gets told (msgspec recurses
#: once a level, and a line of brackets under any sane length cap is deep enough to
#: raise RecursionError, which would end the whole run).
NESTED: Final = "nested too deeply to read: expected one flat JSON object a line"


class TraceError(UsageError):
    """A trace that cannot be read: names the file and the line."""

    def __init__(self, path: str, line: int | None, what: str):
        self.path, self.line, self.what = path, line, what
        super().__init__(f"{path}:{line}: {what}" if line else f"{path}: {what}")


# --- reading ---------------------------------------------------------------------

_DECODER: Final = msgspec.json.Decoder(Record)
_ENCODER: Final = msgspec.json.Encoder()

TraceTarget = str | os.PathLike[str] | IO[bytes]


def _open_read(source: TraceTarget) -> tuple[IO[bytes], str, list[IO[bytes]]]:
    """(stream, name for messages, what to close when done)."""
    if not isinstance(source, (str, os.PathLike)):
        return source, getattr(source, "name", "<stream>"), []
    path = os.fspath(source)
    if path == "-":
        return sys.stdin.buffer, "<stdin>", []
    try:
        raw = open(path, "rb")  # noqa: SIM115 -- closed by read_trace
    except OSError as exc:
        raise TraceError(path, None, f"cannot open trace: {exc.strerror}") from None
    # Sniff the gzip magic rather than trust the suffix.
    if raw.peek(2)[:2] == b"\x1f\x8b":
        gz = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        return gz, path, [gz, raw]
    return raw, path, [raw]


def read_trace(source: TraceTarget, *, name: str | None = None) -> Iterator[Record]:
    """Stream the records of a trace: a path (plain or gzip), ``-`` for stdin, or a
    binary stream. Blank lines are skipped. Raises :class:`TraceError` with file and
    line for the first malformed line."""
    stream, where, owned = _open_read(source)
    where = name or where
    last: dict[str, int] = {}
    lineno = 0
    try:
        while True:
            try:
                line = stream.readline()
            except (OSError, EOFError, zlib.error) as exc:
                raise TraceError(where, lineno + 1, f"cannot read: {exc}") from None
            if not line:
                return
            lineno += 1
            if not line.strip():
                continue
            try:
                rec = _DECODER.decode(line)
            except msgspec.ValidationError as exc:
                if _skip_header(line, where, lineno):
                    continue
                raise TraceError(where, lineno, f"bad record: {exc}") from None
            except msgspec.DecodeError as exc:
                hint = "" if line.endswith(b"\n") else " (truncated last line?)"
                raise TraceError(where, lineno, f"bad JSON: {exc}{hint}") from None
            except RecursionError:
                raise TraceError(where, lineno, f"bad JSON: {NESTED}") from None
            what = problem(rec)
            if what:
                raise TraceError(where, lineno, what)
            prev = last.get(rec.client)
            if prev is not None and rec.t < prev:
                raise TraceError(
                    where, lineno,
                    f"time goes backwards for client {rec.client!r}: t={rec.t} after "
                    f"t={prev}",
                )
            last[rec.client] = rec.t
            yield rec
    finally:
        for f in owned:
            f.close()


def _skip_header(line: bytes, where: str, lineno: int) -> bool:
    """Whether a line that is not a record is a header (to skip); raises TraceError
    for a header that cannot be read."""
    try:
        return header_of(line) is not None
    except ValueError as exc:
        raise TraceError(where, lineno, str(exc)) from None


def read_header(source: TraceTarget, *, name: str | None = None
                ) -> TraceHeader | None:
    """The header of a trace: its first line that is not blank, when that is a
    header (None: a trace written without one). Reads one line of a path (plain or
    gzip) or a binary stream. Raises :class:`TraceError` for a header that cannot be
    read, or a file that cannot be opened."""
    stream, where, owned = _open_read(source)
    where = name or where
    lineno = 0
    try:
        while True:
            try:
                line = stream.readline(1 << 16)
            except (OSError, EOFError, zlib.error) as exc:
                raise TraceError(where, lineno + 1, f"cannot read: {exc}") from None
            lineno += 1
            if not line:
                return None
            if line.strip():
                break
        try:
            _DECODER.decode(line)
            return None  # a record
        except msgspec.ValidationError:
            pass
        except (msgspec.DecodeError, RecursionError):
            return None  # not JSON (or nested too deeply): read_trace says so
        try:
            return header_of(line)
        except ValueError as exc:
            raise TraceError(where, lineno, str(exc)) from None
    finally:
        for f in owned:
            f.close()


def loads(data: bytes, *, name: str = "<bytes>") -> list[Record]:
    """Decode a whole NDJSON trace held in memory."""
    return list(read_trace(io.BytesIO(data), name=name))


def dumps(records: Iterable[Record]) -> bytes:
    """Encode records as NDJSON."""
    return b"".join(_ENCODER.encode(r) + b"\n" for r in records)


# --- writing ---------------------------------------------------------------------


class TraceWriter:
    """Appends records to a trace file (``.gz`` is compressed), ``-`` (stdout) or a
    binary stream. Each record is flushed as it is written.

    The first line it writes is the header (:func:`header_record`): the
    ``time_scale`` the records were made at (wall seconds per model second) and the
    ``writer``'s name. Appending to a trace writes a header again, at the start of
    what this writer adds (readers skip headers wherever they are)."""

    def __init__(self, target: TraceTarget, *, time_scale: float = 1.0,
                 writer: str = "sephb"):
        header = header_record(time_scale, writer)  # a bad argument: before opening
        self.time_scale, self.writer = time_scale, writer
        self._gz: gzip.GzipFile | None = None
        self._raw: Any = None  # an unbuffered FileIO, or a caller's stream
        self._owned = False
        if not isinstance(target, (str, os.PathLike)):
            self._raw, self.name = target, getattr(target, "name", "<stream>")
        else:
            path = self.name = os.fspath(target)
            if path == "-":
                self._raw = sys.stdout.buffer
            else:
                try:
                    # Unbuffered: each line reaches the OS in one write, so a crash
                    # cuts at most the line being written.
                    self._raw = open(path, "ab", buffering=0)  # noqa: SIM115
                except OSError as exc:
                    raise UsageError(f"{path}: cannot write trace: {exc.strerror}"
                                     ) from None
                self._owned = True
                if path.endswith(".gz"):
                    self._gz = gzip.GzipFile(fileobj=self._raw, mode="ab")
        self._put(_ENCODER.encode(header) + b"\n")

    def write(self, rec: Record) -> None:
        what = problem(rec)
        if what:
            raise ValueError(f"refusing to write a bad trace record: {what}")
        self._put(_ENCODER.encode(rec) + b"\n")

    def _put(self, line: bytes) -> None:
        if self._gz is not None:
            self._gz.write(line)
            self._gz.flush(zlib.Z_SYNC_FLUSH)
            return
        view = memoryview(line)
        while view:
            n = self._raw.write(view)
            view = view[n or len(view):]
        if not self._owned:
            self._raw.flush()

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
            self._gz = None
        if self._owned and self._raw is not None:
            self._raw.close()
            self._raw = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- recording -------------------------------------------------------------------


class Recorder:
    """Stamps, orders, keeps and writes the records of a run.

    Observers on the server side learn some facts late (a connection's client id comes
    with its first request); a record stamped earlier than the client's last record is
    moved up to that time, so the trace a recorder writes always reads back.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        writer: TraceWriter | None = None,
        keep: bool = True,
        maxlen: int | None = None,
    ):
        self.clock = clock or Clock()
        self.writer = writer
        self._kept: collections.deque[Record] | None = (
            collections.deque(maxlen=maxlen) if keep else None
        )
        self._last: dict[str, int] = {}
        self._listeners: list[Callable[[Record], None]] = []

    def now(self) -> int:
        """The current model time in ms."""
        return self.clock.now_ms()

    @property
    def records(self) -> list[Record]:
        """The kept records, oldest first."""
        return list(self._kept) if self._kept is not None else []

    def for_client(self, client: str) -> list[Record]:
        return [r for r in self.records if r.client == client]

    def emit(self, name: Action | Event, client: str, *, t: int | None = None,
             **fields: Any) -> Record:
        """Record ``name`` for ``client`` at model time ``t`` (default: now)."""
        return self.add(Record(t=self.now() if t is None else t, client=client,
                               event=name.value, **fields))

    def add(self, rec: Record) -> Record:
        last = self._last.get(rec.client)
        if last is not None and rec.t < last:
            rec = msgspec.structs.replace(rec, t=last)
        self._last[rec.client] = rec.t
        if self.writer is not None:
            self.writer.write(rec)
        if self._kept is not None:
            self._kept.append(rec)
        for listener in list(self._listeners):
            listener(rec)
        return rec

    def listen(self, listener: Callable[[Record], None]) -> None:
        """Call ``listener`` with every record from now on."""
        self._listeners.append(listener)

    async def wait_for(self, pred: Callable[[Record], bool], *, count: int = 1,
                       timeout: float = 10.0) -> list[Record]:
        """Wait until ``count`` records (kept ones included) satisfy ``pred``; return
        them. The timeout only guards against a hang."""
        found = [r for r in self.records if pred(r)]
        if len(found) >= count:
            return found[:count]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        # Collect synchronously in add(): records emitted back to back are not missed.
        def watch(rec: Record) -> None:
            if pred(rec):
                found.append(rec)
                if len(found) >= count and not done.done():
                    done.set_result(None)

        self._listeners.append(watch)
        try:
            async with asyncio.timeout(timeout):
                await done
        finally:
            self._listeners.remove(watch)
        return found[:count]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
