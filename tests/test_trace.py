"""The trace format: writer and reader round trips, the header, and a file:line for
every kind of bad line."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import sys
from pathlib import Path

import msgspec
import pytest

from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.trace import (
    ACTIONS,
    EVENTS,
    NAMES,
    SPECIFIC_FIELDS,
    Record,
    Recorder,
    TraceError,
    TraceHeader,
    TraceWriter,
    dumps,
    header_record,
    loads,
    read_header,
    read_trace,
)
from sephb.conformance.traces.wire import Role
from sephb.model.errors import UsageError
from sephb.model.protocol import Action, Event, Source

RECORDS = [
    Record(t=0, client="c1", event="HEARTBEAT_DUE", by="client"),
    Record(t=1, client="c1", event="CONNECT", by="server", server="m1",
           role=Role.MANAGER, conn=1, addr="127.0.0.2", port=8014),
    Record(t=2, client="c1", event="GET_INDEX", method="GET", path="/index.dat",
           bytes_in=120, serial=""),
    Record(t=2, client="c2", event="CONNECT"),
    Record(t=5, client="c1", event="INDEX_RECEIVED", status=200, bytes_out=190,
           serial="A3AF-11/26/2026 23:50:54 284", content=1, changed=True),
    Record(t=6, client="c1", event="URLS_RECEIVED", source=Source.GUP, location="Branch",
           urls=["http://127.0.0.4:2967/content/1/a.zip"]),
    Record(t=7, client="c1", event="UPLOAD_LOGS", ids=["a", "b"]),
    Record(t=8, client="c1", event="LOGS_ACKED", ids=["a", "b"], duplicates=["b"]),
    Record(t=9, client="c1", event="SESSION_TIMEOUT", error="30000 ms"),
]
#: The header a TraceWriter writes by default (time scale 1, writer "sephb").
HEADER = b'{"sephb":"trace","version":1,"time_scale":1.0,"writer":"sephb"}\n'


def test_names_are_the_models_actions_and_events() -> None:
    assert {a.value for a in Action} == ACTIONS
    assert {e.value for e in Event} == EVENTS
    assert NAMES == ACTIONS | EVENTS and not ACTIONS & EVENTS
    assert Record(t=0, client="c", event="HOLD").name is Action.HOLD
    assert Record(t=0, client="c", event="POLICY_PUSHED").name is Event.POLICY_PUSHED


def test_records_are_one_compact_json_object_a_line_without_unset_fields() -> None:
    line = dumps(RECORDS[:1])
    assert line == b'{"t":0,"client":"c1","event":"HEARTBEAT_DUE","by":"client"}\n'
    assert dumps(RECORDS[5:6]) == (
        b'{"t":6,"client":"c1","event":"URLS_RECEIVED","location":"Branch",'
        b'"source":"gup","urls":["http://127.0.0.4:2967/content/1/a.zip"]}\n')


@pytest.mark.parametrize("name", ["t.ndjson", "t.ndjson.gz"])
def test_writer_and_reader_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with TraceWriter(str(path)) as w:
        for r in RECORDS[:4]:
            w.write(r)
    with TraceWriter(path) as w:  # appends
        for r in RECORDS[4:]:
            w.write(r)
    if name.endswith(".gz"):  # each writer's header, then its records
        assert gzip.decompress(path.read_bytes()).count(b"\n") == len(RECORDS) + 2
    assert list(read_trace(path)) == RECORDS
    assert list(read_trace(str(path))) == RECORDS


def test_each_record_reaches_the_file_when_written(tmp_path: Path) -> None:
    path = tmp_path / "t.ndjson"
    w = TraceWriter(path)
    assert path.read_bytes() == HEADER  # the header first, at once
    w.write(RECORDS[0])
    assert path.read_bytes() == HEADER + dumps(RECORDS[:1])  # not waiting for close()
    w.close()


def test_stdin_stdout_and_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    data = dumps(RECORDS)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert list(read_trace("-")) == RECORDS
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
    with TraceWriter("-") as w:
        w.write(RECORDS[0])
    assert out.getvalue() == HEADER + dumps(RECORDS[:1])
    buf = io.BytesIO()
    TraceWriter(buf).write(RECORDS[1])
    assert loads(buf.getvalue()) == RECORDS[1:2]


def test_blank_lines_are_skipped_and_unknown_fields_ignored() -> None:
    data = (b'\n{"t":1,"client":"c","event":"CONNECT","future":{"x":1}}\n  \n'
            b'{"t":2,"client":"c","event":"DISCONNECT"}\n')
    assert [r.event for r in loads(data)] == ["CONNECT", "DISCONNECT"]


GOOD = b'{"t":1,"client":"c","event":"CONNECT"}\n'
BAD_LINES = [
    (b'{"t":1,"client":"c",\n', r"bad JSON: .*"),
    (b'[1,2]\n', r"bad record: Expected `object`, got `array`"),
    (b'{"client":"c","event":"CONNECT"}\n', r"bad record: .*missing required field `t`"),
    (b'{"t":"1","client":"c","event":"CONNECT"}\n',
     r"bad record: Expected `int`, got `str` - at `\$\.t`"),
    (b'{"t":1.5,"client":"c","event":"CONNECT"}\n', r"bad record: .*at `\$\.t`"),
    (b'{"t":-1,"client":"c","event":"CONNECT"}\n', r"bad record: .*>= 0 - at `\$\.t`"),
    (b'{"t":1,"client":"","event":"CONNECT"}\n', r"bad record: .*at `\$\.client`"),
    (b'{"t":1,"client":"c","event":"CONNECT","port":70000}\n',
     r"bad record: .*at `\$\.port`"),
    (b'{"t":1,"client":"c","event":"INDEX_RECEIVED","changed":"yes"}\n',
     r"bad record: Expected `bool \| null`, got `str` - at `\$\.changed`"),
    (b'{"t":1,"client":"c","event":"URLS_RECEIVED","source":"cdn"}\n',
     r"bad record: Invalid enum value 'cdn' - at `\$\.source`"),
    (b'{"t":1,"client":"c","event":"CONNECT","role":"proxy"}\n',
     r"bad record: Invalid enum value 'proxy' - at `\$\.role`"),
    (b'{"t":1,"client":"c","event":"CONNECT","by":"proxy"}\n',
     r"bad record: .*at `\$\.by`"),
    (b'{"t":1,"client":"c","event":"FETCH"}\n',
     r"unknown event name 'FETCH': expected a model Action or Event name \(CONNECT, "),
    (b'{"t":1,"client":"c","event":"connect"}\n', r"unknown event name 'connect'"),
    (b'{"t":1,"client":"c","event":"UPLOAD_LOGS","changed":true}\n',
     r"field 'changed' does not belong on UPLOAD_LOGS \(only on INDEX_RECEIVED\)"),
    (b'{"t":0,"client":"c","event":"CONNECT"}\n',
     r"time goes backwards for client 'c': t=0 after t=1"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_LINES)
def test_bad_lines_are_reported_with_file_and_line(tmp_path: Path, bad: bytes,
                                                   message: str) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_bytes(GOOD + b"\n" + bad + GOOD.replace(b'"t":1', b'"t":9'))
    with pytest.raises(TraceError, match=rf"^{path}:3: {message}") as info:
        list(read_trace(path))
    assert (info.value.path, info.value.line) == (str(path), 3)
    assert isinstance(info.value, UsageError)
    assert "\n" not in str(info.value)


def test_a_truncated_last_line_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cut.ndjson"
    path.write_bytes(GOOD + b'{"t":2,"client":"c","event":"DISCO')
    with pytest.raises(TraceError, match=r"cut.ndjson:2: bad JSON: .*\(truncated last "):
        list(read_trace(path))


def test_a_deeply_nested_line_is_a_trace_error(tmp_path: Path) -> None:
    """A line nested far deeper than the decoder recurses (well under any sane
    line length) is a TraceError on its line, not a RecursionError; so is one the
    header reader looks at (it names "sephb")."""
    deep = b"[" * 200_000 + b"]" * 200_000
    path = tmp_path / "deep.ndjson"
    path.write_bytes(GOOD + b'{"t":2,"client":"c","event":"CONNECT","x":' + deep + b"}\n")
    with pytest.raises(TraceError, match=rf"^{path}:2: bad JSON: nested too deeply to "
                                         rf"read: expected one flat JSON object a line$"):
        list(read_trace(path))
    path.write_bytes(b'{"t":"x","sephb":"trace","y":' + deep + b"}\n")
    assert read_header(path) is None
    with pytest.raises(TraceError, match=rf"^{path}:1: bad record: Expected `int`"):
        list(read_trace(path))
    path.write_bytes(b'{"sephb":"trace","y":' + deep + b"}\n")
    assert read_header(path) is None
    with pytest.raises(TraceError, match=rf"^{path}:1: bad JSON: nested too deeply"):
        list(read_trace(path))


def test_records_before_the_bad_line_are_streamed() -> None:
    got = []
    with pytest.raises(TraceError, match="<bytes>:2: bad JSON"):
        for r in read_trace(io.BytesIO(GOOD + b"{\n"), name="<bytes>"):
            got.append(r)
    assert len(got) == 1


def test_time_is_monotonic_per_client_not_across_clients() -> None:
    data = (b'{"t":5,"client":"a","event":"CONNECT"}\n'
            b'{"t":1,"client":"b","event":"CONNECT"}\n'
            b'{"t":5,"client":"a","event":"DISCONNECT"}\n')
    assert len(loads(data)) == 3


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"missing.ndjson: cannot open trace: No such"):
        list(read_trace(tmp_path / "missing.ndjson"))
    broken = tmp_path / "broken.ndjson.gz"
    broken.write_bytes(gzip.compress(GOOD * 3)[:-12])
    with pytest.raises(TraceError, match=r"broken.ndjson.gz:\d: cannot read"):
        list(read_trace(broken))
    with pytest.raises(UsageError, match="cannot write trace"):
        TraceWriter(tmp_path / "no" / "dir.ndjson")


def test_the_writer_refuses_records_the_reader_would_reject() -> None:
    w = TraceWriter(io.BytesIO())
    with pytest.raises(ValueError, match="unknown event name 'NOPE'"):
        w.write(Record(t=0, client="c", event="NOPE"))
    with pytest.raises(ValueError, match="'source' does not belong on CONNECT"):
        w.write(Record(t=0, client="c", event="CONNECT", source=Source.GUP))


def test_every_specific_field_is_allowed_somewhere_and_names_exist() -> None:
    for field, names in SPECIFIC_FIELDS.items():
        assert names and names <= NAMES, field
        assert field in Record.__struct_fields__


# --- the header --------------------------------------------------------------------


def test_a_writer_begins_with_a_header_of_its_scale_and_name() -> None:
    buf = io.BytesIO()
    w = TraceWriter(buf, time_scale=0.001, writer="manager")
    w.write(RECORDS[0])
    first, rest = buf.getvalue().split(b"\n", 1)
    assert first == b'{"sephb":"trace","version":1,"time_scale":0.001,"writer":"manager"}'
    assert json.loads(first) == header_record(0.001, "manager") == {
        "sephb": "trace", "version": 1, "time_scale": 0.001, "writer": "manager"}
    assert rest == dumps(RECORDS[:1])
    assert (w.time_scale, w.writer) == (0.001, "manager")
    assert read_header(io.BytesIO(buf.getvalue())) == TraceHeader(0.001, "manager", 1)
    assert loads(buf.getvalue()) == RECORDS[:1]  # not a record


@pytest.mark.parametrize(("scale", "writer", "message"), [
    (0, "x", "time_scale must be a number > 0"), (-1.0, "x", "got -1.0"),
    (float("inf"), "x", "time_scale"), (float("nan"), "x", "time_scale"),
    (True, "x", "got true"), (1.0, "", "writer must be a non-empty string"),
    (1.0, None, "got None"),
])
def test_a_bad_header_is_refused_before_the_file_is_made(
        tmp_path: Path, scale: float, writer: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"bad trace header: .*{message}"):
        header_record(scale, writer)
    with pytest.raises(ValueError, match="bad trace header"):
        TraceWriter(tmp_path / "t.ndjson", time_scale=scale, writer=writer)
    assert not (tmp_path / "t.ndjson").exists()


@pytest.mark.parametrize("name", ["t.ndjson", "t.ndjson.gz"])
def test_read_header_returns_the_first_lines_header_or_none(tmp_path: Path,
                                                            name: str) -> None:
    path = tmp_path / name
    with TraceWriter(path, time_scale=0.01, writer="client") as w:
        w.write(RECORDS[0])
    assert read_header(path) == TraceHeader(0.01, "client")
    assert read_header(str(path)).time_scale == 0.01  # type: ignore[union-attr]
    old = tmp_path / "old.ndjson"  # written before headers: reads as before
    old.write_bytes(dumps(RECORDS))
    assert read_header(old) is None and list(read_trace(old)) == RECORDS
    assert read_header(io.BytesIO(b"")) is None
    assert read_header(io.BytesIO(b"not json\n")) is None
    assert read_header(io.BytesIO(b"\n  \n" + HEADER)) == TraceHeader(1.0, "sephb")
    # a header further down is skipped by readers, but is not the trace's header
    assert read_header(io.BytesIO(dumps(RECORDS[:1]) + HEADER)) is None


def test_headers_are_skipped_wherever_they_are_and_are_not_records(
        tmp_path: Path) -> None:
    path = tmp_path / "shared.ndjson"
    # two writers sharing a file (a manager and a client), one after the other
    with TraceWriter(path, time_scale=0.001, writer="manager") as w:
        for r in RECORDS[:4]:
            w.write(r)
    with TraceWriter(path, time_scale=0.001, writer="client") as w:
        for r in RECORDS[4:]:
            w.write(r)
    lines = path.read_bytes().splitlines()
    assert [json.loads(x).get("writer") for x in lines].count(None) == len(RECORDS)
    assert list(read_trace(path)) == RECORDS
    # a line that is a record stays one, whatever else it carries (unknown fields)
    odd = b'{"t":1,"client":"c","event":"CONNECT","sephb":"trace"}\n'
    assert [r.event for r in loads(odd)] == ["CONNECT"]


#: Headers a reader cannot read: each is one message naming the file and line.
BAD_HEADERS = [
    (b'{"sephb":"trace","version":1,"time_scale":-1,"writer":"m"}',
     r"time_scale must be a number > 0 \(the wall seconds a model second lasts\), "
     r"got -1"),
    (b'{"sephb":"trace","version":1,"time_scale":0,"writer":"m"}', "got 0"),
    (b'{"sephb":"trace","version":1,"time_scale":"fast","writer":"m"}', 'got "fast"'),
    (b'{"sephb":"trace","version":1,"writer":"m"}', "time_scale .* got nothing"),
    (b'{"sephb":"trace","version":1,"time_scale":null,"writer":"m"}', "got null"),
    (b'{"sephb":"trace","version":1,"time_scale":true,"writer":"m"}', "got true"),
    (b'{"sephb":"trace","version":2,"time_scale":1,"writer":"m"}',
     r"version must be 1, got 2 \(a header of another version cannot be read\)"),
    (b'{"sephb":"trace","time_scale":1,"writer":"m"}', "version must be 1, got nothing"),
    (b'{"sephb":"log","version":1,"time_scale":1,"writer":"m"}',
     '"sephb" must be "trace", got "log"'),
    (b'{"sephb":"trace","version":1,"time_scale":1}',
     "writer must be a non-empty string, got nothing"),
    (b'{"sephb":"trace","version":1,"time_scale":1,"writer":""}', 'got ""'),
]


@pytest.mark.parametrize(("bad", "message"), BAD_HEADERS)
def test_a_bad_header_is_one_message_with_file_and_line(tmp_path: Path, bad: bytes,
                                                        message: str) -> None:
    path = tmp_path / "h.ndjson"
    path.write_bytes(bad + b"\n" + GOOD)
    first = rf"^{re.escape(str(path))}:1: bad trace header: (.*){message}"
    with pytest.raises(TraceError, match=first):
        read_header(path)
    with pytest.raises(TraceError, match=first) as info:
        list(read_trace(path))
    assert "\n" not in str(info.value)
    path.write_bytes(GOOD + bad + b"\n")  # further down: the same message
    with pytest.raises(TraceError, match=first.replace(":1:", ":2:")):
        list(read_trace(path))
    assert read_header(path) is None  # the first line is a record


def test_recorder_stamps_orders_keeps_and_writes(tmp_path: Path) -> None:
    path = tmp_path / "r.ndjson"
    rec = Recorder(Clock(time_scale=0.001),
                   writer=TraceWriter(path, time_scale=0.001, writer="test"), maxlen=3)
    rec.emit(Action.CONNECT, "c", t=10)
    late = rec.emit(Event.CONNECTED, "c", t=4)  # observed late: moved up, not back
    assert late.t == 10
    rec.emit(Action.CONNECT, "d", t=1)
    now = rec.emit(Action.GET_INDEX, "c", serial="S")
    assert now.t >= 10
    assert [r.event for r in rec.records] == ["CONNECTED", "CONNECT", "GET_INDEX"]
    assert [r.event for r in rec.for_client("c")] == ["CONNECTED", "GET_INDEX"]
    rec.close()
    assert [r.event for r in read_trace(path)] == [
        "CONNECT", "CONNECTED", "CONNECT", "GET_INDEX"]
    assert read_header(path) == TraceHeader(0.001, "test")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"t":1}', type=Record)


def test_recorder_wait_for_returns_kept_and_future_records() -> None:
    async def go() -> None:
        rec = Recorder()
        rec.emit(Action.CONNECT, "c")
        seen: list[str] = []
        rec.listen(lambda r: seen.append(r.event))
        waiter = asyncio.create_task(
            rec.wait_for(lambda r: r.client == "c", count=3, timeout=5))
        await asyncio.sleep(0)
        rec.emit(Action.CONNECT, "other")
        rec.emit(Action.GET_INDEX, "c")
        rec.emit(Action.DISCONNECT, "c")
        got = await waiter
        assert [r.event for r in got] == ["CONNECT", "GET_INDEX", "DISCONNECT"]
        assert seen == ["CONNECT", "GET_INDEX", "DISCONNECT"]
        with pytest.raises(TimeoutError):
            await rec.wait_for(lambda r: r.event == "HOLD", timeout=0.01)

    asyncio.run(go())
