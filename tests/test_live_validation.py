"""Live validation (:mod:`sephb.conformance.traces.live`): records fed one at a time
are judged as ``sephb validate --data`` judges the file holding them, and what a
monitor reads while they come in (violations at once, overdue deadlines) says the
same and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from sephb.conformance.traces import _engine as E
from sephb.conformance.traces import live as L
from sephb.conformance.traces.live import LiveValidation
from sephb.conformance.traces.trace import header_record
from sephb.conformance.traces.validate import FileResult, validate_file

HEADER: Final = header_record(0.01, "manager")
#: The tolerance the header above calls for (0.1 s of wall time at 0.01).
TOL: Final = 10_000


def check_in(t0: int, client: str = "c1", *, by: str | None = "server",
             sensors_first: bool = False, close: bool = True) -> list[dict[str, Any]]:
    """A pull check-in (index unchanged) as the manager records it (or, ``by``
    None, as the client does); ``sensors_first``: the sensors before the logs."""
    names = ["CONNECT", "GET_INDEX", "INDEX_RECEIVED", "UPLOAD_LOGS", "LOGS_ACKED",
             "UPLOAD_SENSORS", "SENSORS_ACKED", *(["DISCONNECT"] if close else [])]
    if by is None:
        names = ["HEARTBEAT_DUE", "CONNECT", "CONNECTED", *names[1:]]
    if sensors_first:
        i = names.index("UPLOAD_LOGS")
        names[i:i + 4] = names[i + 2:i + 4] + names[i:i + 2]
    out = []
    for i, n in enumerate(names):
        rec: dict[str, Any] = {"t": t0 + 10 * i, "client": client, "event": n}
        if by is not None:
            rec |= {"by": by, "server": "m1", "role": "manager", "addr": "127.0.0.2",
                    "port": 8014, "conn": 1}
        if n == "INDEX_RECEIVED":
            rec["changed"] = False
        if n in ("UPLOAD_LOGS", "LOGS_ACKED"):
            rec["ids"] = [f"{client}-{t0}"]
        out.append(rec)
    return out


def write(path: Path, lines: list[Any]) -> str:
    """A trace file of these lines: dicts (records, headers) and raw bytes."""
    path.write_bytes(b"".join(
        (x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines))
    return str(path)


def fed(lines: list[Any], name: str, **options: Any) -> LiveValidation:
    """A live validation fed these lines one at a time (a header as a header)."""
    live = LiveValidation(name=name, **options)
    for x in lines:
        if isinstance(x, bytes):
            live.feed_line(x)
        elif "sephb" in x:
            live.header(x["time_scale"], x["writer"])
        else:
            live.feed(x)
    return live


def same(live: FileResult, offline: FileResult) -> None:
    """Equal results, and the verdicts compared field by field for a readable
    failure."""
    def key(res: FileResult) -> list[tuple[Any, ...]]:
        return [(c.client, c.side, c.conformant, c.requirement, c.message, c.line,
                 c.events, c.pending, c.margin) for c in res.clients]

    assert key(live) == key(offline)
    assert [str(p) for p in live.problems] == [str(p) for p in offline.problems]
    assert live == offline


def file_lines(path: Path) -> list[Any]:
    """A written trace's lines, decoded: what its writer would have fed."""
    return [json.loads(line) for line in path.read_bytes().splitlines()]


# --- hand-written traces --------------------------------------------------------------

#: c1 conformant with a check-in, c2's sensors before its logs, c3 left waiting for
#: its index (a deadline pending), and the client view of c1.
MIXED: Final[list[Any]] = [
    HEADER, *check_in(0), *check_in(1000, "c2", sensors_first=True),
    *check_in(2000, "c3")[:3], *check_in(3000, by=None),
]


@pytest.mark.parametrize("options", [
    {}, {"data": False}, {"tolerance_ms": 5}, {"interpretation": "documented"},
    {"mode": "pull"}, {"time_scale": 0.001},
], ids=str)
@pytest.mark.parametrize("lines", [
    MIXED, MIXED[1:],  # without a header
    [HEADER],  # a header only: an empty trace
    [HEADER, *check_in(0), header_record(0.001, "client"), *check_in(500, "c2")],
], ids=["mixed", "no-header", "header-only", "two-scales"])
def test_a_hand_written_trace_fed_live_equals_its_file(lines: list[Any],
                                                       options: dict[str, Any],
                                                       tmp_path: Path) -> None:
    path = write(tmp_path / "t.ndjson", lines)
    same(fed(lines, path, **options).result(), validate_file(path, **{
        "data": True, **options}))


def test_records_may_be_fed_as_dicts_structs_or_lines(tmp_path: Path) -> None:
    import msgspec

    from sephb.conformance.traces.trace import Record

    path = write(tmp_path / "t.ndjson", MIXED)
    want = validate_file(path, data=True)
    structs = LiveValidation(name=path)
    lines = LiveValidation(name=path)
    for x in MIXED:
        structs.feed(msgspec.convert(x, Record) if "sephb" not in x else x)
        lines.feed_line(json.dumps(x).encode() + b"\n")
    same(structs.result(), want)
    same(lines.result(), want)


def test_a_violation_shows_as_soon_as_its_record_is_fed(tmp_path: Path) -> None:
    lines = MIXED
    path = write(tmp_path / "t.ndjson", lines)
    offline = {(c.client, c.side): c for c in validate_file(path, data=True).clients}
    bad = offline["c2", "server"]
    assert not bad.conformant and bad.requirement == "REQ-5-LOGS"
    assert bad.line is not None
    live = LiveValidation(name=path)
    for n, x in enumerate(lines, 1):
        if "sephb" in x:
            live.header(x["time_scale"], x["writer"])
            continue
        found = live.feed(x)
        now = {(c.client, c.view): c for c in live.clients()}
        shown = now.get(("c2", "server"))
        if n < bad.line:
            assert found is None and (shown is None or shown.conformant), n
            continue
        assert shown is not None and shown.verdict == "violation"
        assert shown.violation is not None
        assert (shown.violation.requirement, shown.violation.message,
                shown.violation.line, shown.violation.t, shown.events) == (
            bad.requirement, bad.message, bad.line, bad.t, bad.events)
        if n == bad.line:  # the record that proved it says so at once
            assert found is not None and found == bad
        else:
            assert found is None
    assert all(c.conformant for c in live.clients() if c.client != "c2")
    same(live.result(), validate_file(path, data=True))


def test_a_data_rule_is_broken_live_at_its_record(tmp_path: Path) -> None:
    """A rule of --data (here a download on the wrong port) as the table's rules."""
    lines: list[Any] = [HEADER, *check_in(0)[:2],
                        {"t": 20, "client": "c1", "event": "INDEX_RECEIVED",
                         "by": "server", "changed": True},
                        {"t": 30, "client": "c1", "event": "GET_URLS", "by": "server"},
                        {"t": 40, "client": "c1", "event": "URLS_RECEIVED",
                         "by": "server", "source": "manager"},
                        {"t": 50, "client": "c1", "event": "DOWNLOAD_MANAGER",
                         "by": "server", "port": 2967}]
    path = write(tmp_path / "t.ndjson", lines)
    live = fed(lines[:-1], path)
    assert live.clients()[0].conformant
    found = live.feed(lines[-1])
    assert found is not None and found.requirement == "REQ-4-PORT-8014"
    v = live.clients()[0].violation
    assert v is not None and (v.requirement, v.line) == ("REQ-4-PORT-8014", 7)
    same(live.result(), validate_file(path, data=True))


def test_pending_deadlines_are_shown_as_the_result_will_list_them(tmp_path: Path
                                                                  ) -> None:
    path = write(tmp_path / "t.ndjson", MIXED)
    live = fed(MIXED, path)
    now = {(c.client, c.view): c for c in live.clients()}
    c3 = now["c3", "server"]
    assert c3.conformant and [p.requirement for p in c3.pending] == ["REQ-4-URLS"]
    assert c3.pending[0].due == 2020 and c3.last_t == 2020 and c3.records == 3
    assert now["c1", "client"].pending[0].deadline == "next-heartbeat"
    assert now["c2", "server"].pending == ()  # none after a violation
    offline = {(c.client, c.side): c for c in validate_file(path, data=True).clients}
    for k, c in now.items():
        if c.conformant:
            assert [p.summary for p in c.pending] == offline[k].pending
            assert c.events == offline[k].events
    assert [(c.client, c.view) for c in live.clients()] == list(offline)


def test_overdue_only_after_due_plus_tolerance_and_changes_nothing(tmp_path: Path
                                                                   ) -> None:
    lines = MIXED
    path = write(tmp_path / "t.ndjson", lines)
    live = fed(lines, path)
    assert live.tolerance_ms == TOL
    # c3's index answer (t=2020) is to be acted on at once.
    due = 2020
    assert live.overdue(due) == [] and live.overdue(due + TOL) == []
    late = live.overdue(due + TOL + 1)
    assert [(c, r) for c, r, _ in late] == [("c3", "REQ-4-URLS")]
    assert late == live.overdue(due + TOL + 1)  # nothing was forgotten
    assert [p.due for p in live.clients()[2].pending] == [due]
    # Later the client-view c1's next heartbeat (due an interval after its check-in
    # began, t=303,000) too; each message is the one the end of the trace then
    # would give.
    later = 400_000
    found = live.overdue(later)
    assert sorted((c, r) for c, r, _ in found) == [("c1", "REQ-7-PULL"),
                                                    ("c3", "REQ-4-URLS")]
    # The result is the file's: the overdue checks changed nothing.
    same(live.result(), validate_file(path, data=True))
    # ... and what overdue said is what a trace ending at that time says.
    ended = fed(lines, path).result(end=later)
    reasons = {(c.client, c.requirement, c.reason) for c in ended.clients
               if not c.conformant and c.t == later}
    assert {(c, r, m) for c, r, m in found} == reasons


def test_overdue_lists_every_deadline_past_due() -> None:
    """A client connected with nothing sent: its first request is due at once and
    the session within the limit; overdue() says each as it passes (the end of the
    trace would name the first)."""
    live = LiveValidation(tolerance_ms=0)
    for t, name in enumerate(("HEARTBEAT_DUE", "CONNECT", "CONNECTED")):
        live.feed({"t": 10 * t, "client": "a", "event": name})
    pending = live.clients()[0].pending
    assert [(p.deadline, p.due) for p in pending] == [("act-at-once", 20),
                                                     ("session", 30_010)]
    at_once, session = (p.requirement for p in pending)
    assert live.overdue(20) == []
    assert [r for _, r, _ in live.overdue(21)] == [at_once]
    assert [r for _, r, _ in live.overdue(30_010)] == [at_once]
    assert sorted(r for _, r, _ in live.overdue(30_011)) == sorted([at_once, session])
    assert live.clients()[0].pending == pending
    ended = LiveValidation(tolerance_ms=0)
    for t, name in enumerate(("HEARTBEAT_DUE", "CONNECT", "CONNECTED")):
        ended.feed({"t": 10 * t, "client": "a", "event": name})
    first = ended.result(end=30_011).clients[0]
    assert (first.requirement, first.reason) == live.overdue(30_011)[0][1:]


def test_result_with_an_end_judges_what_was_due_by_then(tmp_path: Path) -> None:
    path = write(tmp_path / "t.ndjson", MIXED)
    res = fed(MIXED, path).result(end=2020 + TOL + 1)
    c3 = next(c for c in res.clients if c.client == "c3")
    assert (c3.conformant, c3.requirement, c3.line) == (False, "REQ-4-URLS", None)
    assert c3.margin is not None and c3.margin.at_end
    # An end before the last record is the last record's.
    same(fed(MIXED, path).result(end=0), validate_file(path, data=True))


def test_result_ends_the_run() -> None:
    live = fed(MIXED, "<live>")
    res = live.result()
    assert live.result() is res
    with pytest.raises(RuntimeError, match="ended"):
        live.feed(MIXED[1])
    with pytest.raises(RuntimeError, match="ended"):
        live.clients()


BAD: Final[list[Any]] = [
    {"t": 5, "client": "a"},
    {"client": "a", "event": "CONNECT"},
    {"t": "1", "client": "a", "event": "CONNECT"},
    {"t": -1, "client": "a", "event": "CONNECT"},
    {"t": 1, "client": "", "event": "CONNECT"},
    {"t": 1, "client": "a", "event": "FETCH"},
    {"t": 1, "client": "a", "event": "CONNECT", "by": "proxy"},
    {"t": 1, "client": "a", "event": "INDEX_RECEIVED", "changed": "yes"},
    {"t": 1, "client": "c1", "event": "CONNECT", "by": "server"},  # time goes back
    {"sephb": "trace", "version": 7, "time_scale": 1, "writer": "m"},
    {"sephb": "trace", "version": 1, "time_scale": 0.001, "writer": "x"},  # 2 scales
    {"sephb": "other"},
    {"t": 1, "client": "a", "event": object()},  # no JSON: a bad line of its own
    b"{\"t\":1,",
    b"[1,2]",
]
#: Lines that look odd but are read as the file reader reads them: no problem.
ODD: Final[list[Any]] = [
    b"",
    b"  \r",
    {"t": 1, "client": "a", "event": "CONNECT", "port": 70000},  # not a field read
    {"t": 2**70, "client": "a", "event": "CONNECT"},  # beyond 64 bits
    {"t": 1, "client": "a", "event": "DISCONNECT", "serial": "x", "extra": [1]},
]


@pytest.mark.parametrize("bad", BAD + ODD, ids=repr)
def test_a_malformed_record_is_the_same_bad_line_as_in_a_file(bad: Any,
                                                              tmp_path: Path) -> None:
    lines = [HEADER, *check_in(0)[:3], bad, *check_in(100, "c2")]
    if isinstance(bad, dict) and any(type(v) is object for v in bad.values()):
        # No file holds it: its line there is one that cannot be a record.
        path = write(tmp_path / "t.ndjson", [*lines[:4], b"{}", *lines[5:]])
    else:
        path = write(tmp_path / "t.ndjson", lines)
    live = LiveValidation(name=path)
    for x in lines:
        if isinstance(x, bytes):
            live.feed_line(x)
        else:
            live.feed(x)  # a header too, as a dict
    offline = validate_file(path, data=True)
    if any(bad is x for x in ODD):
        assert not offline.problems and not live.problems
        same(live.result(), offline)
        return
    assert [p.line for p in offline.problems] == [5]
    if not isinstance(bad, dict) or "event" not in bad or isinstance(
            bad["event"], str):
        assert [str(p) for p in live.problems] == [str(p) for p in offline.problems]
        same(live.result(), offline)
        return
    # The record no file holds: a bad record at its line, then the same verdicts.
    assert [(p.line, p.message.split(": ")[:2]) for p in live.problems] == [
        (5, ["bad record", "not JSON data"])]
    res = live.result()
    assert res.clients == offline.clients and res.events == offline.events


def test_a_record_that_is_no_json_data_is_reported_not_raised() -> None:
    live = LiveValidation(name="m")
    live.header(0.01, "manager")
    assert live.feed({"t": 1, "client": "a", "event": object()}) is None
    live.feed({"t": 2, "client": "a", "event": "CONNECT", "by": "server"})
    assert [(p.line, p.message.split(":")[0]) for p in live.problems] == [
        (2, "bad record")]
    assert [(c.client, c.records) for c in live.clients()] == [("a", 1)]


def test_parked_and_folded_streams_read_and_end_the_same(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Memory is kept bounded as the file reader keeps it (idle streams parked,
    long histories cut back); neither shows in clients() or the result."""
    lines: list[Any] = [HEADER]
    for k in range(8):
        for c in range(6):
            lines += check_in(300_000 * k + 100 * c, f"c{c}",
                              sensors_first=(c == 5 and k == 6))
    lines += check_in(300_000 * 8, "c0", close=False)[:3]
    path = write(tmp_path / "t.ndjson", lines)
    monkeypatch.setattr(E, "WINDOW", 8)
    monkeypatch.setattr(E, "KEEP_PATH", 4)  # within the window: a fold shows the same
    plain = LiveValidation(name=path)
    monkeypatch.setattr(E, "HOT_LIMIT", 2)
    monkeypatch.setattr(L, "_CHECK_EVERY", 5)
    monkeypatch.setattr(L, "_FOLD_EVERY", 2)
    tight = LiveValidation(name=path)
    parked_at = []
    for n, x in enumerate(lines):
        for live in (plain, tight):
            if "sephb" in x:
                live.header(x["time_scale"], x["writer"])
            else:
                live.feed(x)
        assert tight.clients() == plain.clients(), n
        if tight._run.hot() < len(tight._run.streams):
            parked_at.append(n)
            assert tight.overdue(x["t"] + 10**6) == plain.overdue(x["t"] + 10**6)
    assert len(parked_at) > 10  # some streams were parked most of the time
    assert plain._run.hot() == 6  # never parked
    run = tight._run
    cut = [st[E._OFFSET] for states in run.states.values() for st in states.values()]
    assert max([*cut, *run.streams.offset]) > 0  # long histories were cut back
    res = tight.result()
    same(res, plain.result())
    same(res, validate_file(path, data=True))


# --- real recordings ------------------------------------------------------------------


#: The tolerance for real runs on a loaded machine (tests/test_validate.py's).
REAL_RUN_TOLERANCE: Final = 50_000
FAULT: Final = "sensors-before-logs"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """`sephb manager` and `sephb client` at time scale 0.01, as tests/test_e2e.py
    runs them: the reference client (two check-ins) and a seeded fault (one), the
    manager's trace (both clients, the server view) and each client's own."""
    from test_e2e import client, running_manager, sylink

    from sephb.model.protocol import Mode

    tmp = tmp_path_factory.mktemp("live")
    with running_manager(tmp, "0.01") as mgr:
        sy = sylink(tmp, mgr, Mode.PULL)
        client(tmp, sy, "--heartbeats", "2", cid="ref")
        client(tmp, sy, "--heartbeats", "1", "--fault", FAULT, cid="bad")
    yield {"server": mgr.trace, "ref": tmp / "ref.ndjson", "bad": tmp / "bad.ndjson"}


@pytest.mark.parametrize("trace", ["server", "ref", "bad"])
@pytest.mark.parametrize("tolerance_ms", [None, REAL_RUN_TOLERANCE])
def test_a_real_recording_fed_live_equals_validate(recorded: dict[str, Path],
                                                   trace: str,
                                                   tolerance_ms: int | None) -> None:
    path = recorded[trace]
    lines = file_lines(path)
    assert "sephb" in lines[0] and len(lines) > 5
    live = fed(lines, str(path), tolerance_ms=tolerance_ms)
    offline = validate_file(str(path), data=True, tolerance_ms=tolerance_ms)
    same(live.result(), offline)
    assert not offline.problems
    if tolerance_ms is None:
        return
    # What the recordings show, at a tolerance a loaded machine keeps within.
    verdicts = {(c.client, c.side): c for c in offline.clients}
    if trace == "server":
        assert set(verdicts) == {("ref", "server"), ("bad", "server")}
    assert all(c.conformant for (cid, _), c in verdicts.items() if cid == "ref")
    bad = [c for (cid, _), c in verdicts.items() if cid == "bad"]
    for c in bad:
        assert (c.conformant, c.requirement) == (False, "REQ-5-LOGS"), c
    if trace == "ref":
        # The client's own view: its next heartbeat is due after the run.
        assert [p.split(" ")[0] for p in offline.clients[0].pending] == [
            "next-heartbeat"]


def test_a_real_fault_shows_live_at_the_record_that_proves_it(
        recorded: dict[str, Path]) -> None:
    path = recorded["server"]
    lines = file_lines(path)
    offline = validate_file(str(path), data=True, tolerance_ms=REAL_RUN_TOLERANCE)
    bad = next(c for c in offline.clients if c.client == "bad")
    assert not bad.conformant and bad.line is not None
    live = LiveValidation(name=str(path), tolerance_ms=REAL_RUN_TOLERANCE)
    live.header(lines[0]["time_scale"], lines[0]["writer"])
    for n, rec in enumerate(lines[1:], 2):
        found = live.feed(rec)
        shown = [c for c in live.clients() if c.violation is not None]
        if n < bad.line:
            assert found is None and shown == [], n
        elif n == bad.line:
            assert found == bad
            assert [(c.client, c.violation and c.violation.requirement)
                    for c in shown] == [("bad", "REQ-5-LOGS")]
            assert live.overdue(bad.t or 0) == []  # a violator has nothing overdue
    same(live.result(), offline)


def test_the_module_is_installed_with_the_package() -> None:
    """A strict editable install links the module (a new one needs a reinstall)."""
    out = subprocess.run([sys.executable, "-c",
                          "import sephb.conformance.traces.live as m; print(m.__file__)"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("live.py"), out.stderr
