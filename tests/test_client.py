"""The reference client against the simulated managers and GUP, over real sockets on
loopback, at time scale 0.001 (30,000 model ms = 30 wall ms)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from netutil import addresses, run

from sephb.conformance.client import ClientOptions, ReferenceClient, run_client
from sephb.conformance.client.store import ClientState, make_logs
from sephb.conformance.site import Fleet
from sephb.conformance.site.config import FleetConfig
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.sylink import Sylink
from sephb.conformance.traces.trace import Record, TraceHeader, read_header, read_trace
from sephb.model import protocol as P
from sephb.model.interpretations import get
from sephb.model.protocol import Mode

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
from bench_kill import run as kill_bench

SCALE = 0.001


def config(managers: int = 2, gup: bool = True) -> FleetConfig:
    addrs = addresses(managers + 1)
    return FleetConfig.loopback(addrs[:managers], gup=addrs[-1] if gup else None)


def sylink_for(fleet: Fleet, mode: Mode = Mode.PULL) -> Sylink:
    blocks = [[(s.address, s.port)] for s in fleet.managers]
    gup = fleet.gup
    return Sylink.build(blocks, mode=mode, heartbeat_s=300,
                        gup=f"{gup.address}" if gup else None)


def client(fleet: Fleet, state: Path, *, interp: str = "seed", mode: Mode = Mode.PULL,
           heartbeats: int = 1, cid: str | None = "c1", **kw: Any) -> ReferenceClient:
    opts = ClientOptions(sylink=sylink_for(fleet, mode), state_dir=state,
                         interpretation=get(interp), time_scale=SCALE,
                         heartbeats=heartbeats, client_id=cid, seed=1, fsync=False, **kw)
    return ReferenceClient(opts, fleet.recorder)


def names(fleet: Fleet, cid: str = "c1", by: str = "client") -> list[str]:
    return [r.event for r in fleet.records if r.client == cid and r.by == by]


def recs(fleet: Fleet, cid: str = "c1", by: str = "client") -> list[Record]:
    return [r for r in fleet.records if r.client == cid and r.by == by]


def in_fleet(fn: Any, cfg: FleetConfig | None = None) -> None:
    async def main() -> None:
        async with Fleet(cfg or config(), clock=Clock(SCALE)) as fleet:
            with tempfile.TemporaryDirectory() as tmp:
                await fn(fleet, Path(tmp))

    run(main())


FULL_PULL = ["HEARTBEAT_DUE", "CONNECT", "CONNECTED", "GET_INDEX", "INDEX_RECEIVED",
             "GET_URLS", "URLS_RECEIVED", "DOWNLOAD_MANAGER", "CONTENT_RECEIVED",
             "UPLOAD_LOGS", "LOGS_ACKED", "UPLOAD_SENSORS", "SENSORS_ACKED", "DISCONNECT"]
IDLE_PULL = ["HEARTBEAT_DUE", "CONNECT", "CONNECTED", "GET_INDEX", "INDEX_RECEIVED",
             "UPLOAD_LOGS", "LOGS_ACKED", "UPLOAD_SENSORS", "SENSORS_ACKED", "DISCONNECT"]


def test_pull_checkins_follow_the_seed_and_keep_the_index() -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        c = client(fleet, tmp / "st", heartbeats=2, log_bytes=10_000)
        assert await c.run() == 0
        assert names(fleet) == FULL_PULL + IDLE_PULL
        state = ClientState(tmp / "st", fsync=False)
        idx = state.load_index()
        assert idx is not None and (idx.serial, idx.revision) == (fleet.site.serial, 1)
        assert len(state.logs) == 2  # produced after the last check-in, kept for the next
        uploaded = [log.id for log in fleet.logs("c1")]
        assert len(uploaded) == len(set(uploaded)) == 4  # 2 heartbeats x 2 entries
        # the second heartbeat waited the interval (model time)
        hb = [r.t for r in recs(fleet) if r.event == "HEARTBEAT_DUE"]
        assert hb[1] - hb[0] >= 300_000
        # the servers saw the same steps on the manager's port
        await fleet.recorder.wait_for(
            lambda r: r.by == "server" and r.event == "DISCONNECT", count=2)
        assert names(fleet, by="server") == [n for n in FULL_PULL + IDLE_PULL
                                              if n not in ("HEARTBEAT_DUE", "CONNECTED")]
        assert {r.port for r in recs(fleet, by="server")} == {fleet["m1"].port}

    in_fleet(go)


def test_the_clients_trace_begins_with_its_time_scale() -> None:
    """`sephb client --trace`: a header (the client's scale, writer "client"), then
    what the client did and saw, as the fleet's recorder saw it too."""
    async def go(fleet: Fleet, tmp: Path) -> None:
        opts = ClientOptions(sylink=sylink_for(fleet), state_dir=tmp / "st",
                             interpretation=get("seed"), time_scale=SCALE, heartbeats=1,
                             client_id="c1", seed=1, fsync=False)
        trace = tmp / "client.ndjson"
        assert await run_client(opts, str(trace)) == 0
        assert read_header(trace) == TraceHeader(SCALE, "client")
        assert [r.event for r in read_trace(trace)] == FULL_PULL

    in_fleet(go)


def test_gup_source_downloads_from_the_gup_port() -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        fleet["m1"].set_policy("gup", location="Branch")
        assert await client(fleet, tmp / "st", location="Branch").run() == 0
        assert "DOWNLOAD_GUP" in names(fleet)
        gup = [r for r in fleet.records if r.server == "gup" and r.event == "DOWNLOAD_GUP"]
        assert [r.port for r in gup] == [fleet.gup.port]  # type: ignore[union-attr]

    in_fleet(go)


@pytest.mark.parametrize(("interp", "want"), [
    ("seed", ["DOWNLOAD_GUP", "DOWNLOAD_FAILED", "UPLOAD_LOGS"]),
    ("documented", ["DOWNLOAD_GUP", "DOWNLOAD_FAILED", "DOWNLOAD_MANAGER",
                    "CONTENT_RECEIVED", "UPLOAD_LOGS"]),
])
def test_gup_down_seed_skips_documented_falls_back(interp: str, want: list[str]) -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        fleet["m1"].set_policy("gup")
        assert fleet.gup is not None
        await fleet.gup.set_fault("refuse")
        assert await client(fleet, tmp / "st", interp=interp).run() == 0
        got = names(fleet)
        start = got.index("DOWNLOAD_GUP")
        assert got[start:start + len(want)] == want
        assert got[-1] == "DISCONNECT"

    in_fleet(go)


@pytest.mark.parametrize("interp", ["seed", "documented"])
def test_refused_first_manager(interp: str) -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        await fleet["m1"].set_fault("refuse")
        assert await client(fleet, tmp / "st", interp=interp).run() == 0
        addrs = [r.addr for r in recs(fleet) if r.event == "CONNECT"]
        if interp == "seed":  # the check-in ends: m2 is not tried
            assert addrs == [fleet["m1"].address]
            assert names(fleet)[-2:] == ["CONNECT_FAILED", "DISCONNECT"]
        else:  # failover to the next priority in the same heartbeat
            assert addrs == [fleet["m1"].address, fleet["m2"].address]
            assert names(fleet)[-1] == "DISCONNECT" and "SENSORS_ACKED" in names(fleet)

    in_fleet(go)


STEPS = ["/index.dat", "/urls", "/content", "/logs", "/sensors"]
# A refusing server stops listening, so only the connect of a check-in can meet it.
CASES = [("refuse", "/index.dat")] + [
    (fault, path) for fault in ("stall", "reset", "error", "garbage") for path in STEPS
]


@pytest.mark.parametrize(("fault", "path"), CASES)
def test_every_fault_at_every_step_ends_the_checkin_and_keeps_logs(
    fault: str, path: str
) -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        st = tmp / "st"
        make_logs(ClientState(st, fsync=False).logs, 5000, 2, seed=3)
        await fleet["m1"].set_fault(fault, None if fault == "refuse" else path)
        # two heartbeats under the fault: each ends cleanly, the second tries again
        assert await client(fleet, st, heartbeats=2).run() == 0
        got = names(fleet)
        assert got.count("HEARTBEAT_DUE") == 2 and got.count("DISCONNECT") == 2
        failures = {"CONNECT_FAILED", "SESSION_TIMEOUT", "REQUEST_FAILED"}
        assert len([n for n in got if n in failures]) == 2, got
        if path != "/sensors":
            assert fleet.logs("c1") == []
            assert len(ClientState(st, fsync=False).logs) == 2  # kept for next time
        # the fault cleared: the next run uploads every kept log exactly once
        await fleet["m1"].set_fault("up")
        assert await client(fleet, st, heartbeats=1).run() == 0
        ids = [log.id for log in fleet.logs("c1")]
        assert len(ids) == len(set(ids)) == 2
        assert len(ClientState(st, fsync=False).logs) == 0

    in_fleet(go)


@pytest.mark.parametrize("interp", ["seed", "documented"])
def test_push_mode_holds_and_applies_a_published_change_at_once(interp: str) -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        import asyncio

        c = client(fleet, tmp / "st", interp=interp, mode=Mode.PUSH, heartbeats=2)
        task = asyncio.create_task(c.run())
        await fleet.recorder.wait_for(lambda r: r.event == "HOLD" and r.by == "server")
        assert fleet["m1"].held == 1
        new = fleet.publish()
        assert await task == 0
        got = names(fleet)
        first = got.index("HOLD")
        assert got[first:first + 5] == [
            "HOLD", "POLICY_PUSHED", "GET_INDEX", "INDEX_RECEIVED", "GET_URLS"]
        assert got[-1] == "HOLD" and "DISCONNECT" not in got
        idx = ClientState(tmp / "st", fsync=False).load_index()
        assert idx is not None and idx.serial == new.serial
        # one TCP connection throughout: push mode does not fully disconnect
        assert {r.conn for r in recs(fleet, by="server") if r.server == "m1"} == {1}

    in_fleet(go)


def test_documented_push_client_still_heartbeats() -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        c = client(fleet, tmp / "st", interp="documented", mode=Mode.PUSH, heartbeats=3)
        assert await c.run() == 0
        got = names(fleet)
        # check-in, hold, push heartbeat (204 ends the hold), check-in, hold, ...
        assert got.count("HOLD") == 3 and got.count("HEARTBEAT_DUE") == 3
        assert got[got.index("HOLD") + 1:got.index("HOLD") + 3] == [
            "HEARTBEAT_DUE", "GET_INDEX"]
        assert "DISCONNECT" not in got

    in_fleet(go)


@pytest.mark.parametrize(("log_bytes", "bounds"), [
    (0, P.IDLE_HEARTBEAT_BYTES), (256_000, P.FULL_HEARTBEAT_BYTES)])
def test_heartbeat_sizes_on_the_wire_land_in_the_seeds_ranges(
    log_bytes: int, bounds: tuple[int, int]
) -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        st = tmp / "st"
        # first check-in downloads the content; the second is the one measured
        assert await client(fleet, st, heartbeats=1).run() == 0
        assert await client(fleet, st, heartbeats=1, log_bytes=log_bytes).run() == 0
        last = [r for r in recs(fleet) if r.event == "DISCONNECT"][-1]
        size = (last.bytes_in or 0) + (last.bytes_out or 0)
        assert bounds[0] <= size <= bounds[1], size

    in_fleet(go)


# --- a log spool (--log-dir) -----------------------------------------------------------


def spool_entry(spool: Path, entry_id: str, text: str) -> None:
    """What the conformance suite writes: a JSON object, renamed into place."""
    import json

    tmp = spool / f".{entry_id}.tmp"
    tmp.write_text(json.dumps({"id": entry_id, "t": 0, "text": text}))
    tmp.rename(spool / f"{entry_id}.log")


def test_spool_entries_are_uploaded_under_their_ids() -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        spool = tmp / "spool"
        spool.mkdir()
        spool_entry(spool, "c1-spool-1", "one")
        spool_entry(spool, "c1-spool-2", "two")
        (spool / ".c1-spool-3.tmp").write_text("being written")  # not an entry yet
        (spool / "bad id.log").write_text("not an id")
        (spool / "raw-1.log").write_text("plain text")  # not JSON: sent as it is
        c = client(fleet, tmp / "st", log_dir=spool, log_bytes=100)
        assert await c.run() == 0
        got = {log.id: log.data for log in fleet.logs("c1")}
        assert {i: got[i] for i in ("c1-spool-1", "c1-spool-2", "raw-1")} == {
            "c1-spool-1": "one", "c1-spool-2": "two", "raw-1": "plain text"}
        # --log-bytes still makes the client's own logs, under its own ids
        own = [i for i in got if i not in ("c1-spool-1", "c1-spool-2", "raw-1")]
        assert len(own) == 1 and len(got[own[0]]) == 100
        assert sorted(p.name for p in spool.iterdir()) == [".c1-spool-3.tmp",
                                                           "bad id.log"]
        assert c.errors == [f"{spool / 'bad id.log'}: not a log id; left in the spool"]
        state = ClientState(tmp / "st", fsync=False)
        assert "c1-spool-1" not in {e.id for e in state.logs.pending()}  # acknowledged

    in_fleet(go)


@pytest.mark.parametrize("volatile", [False, True])
def test_spool_entries_survive_a_failed_upload_and_a_restart(volatile: bool) -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        spool = tmp / "spool"
        spool.mkdir()
        spool_entry(spool, "c1-spool-7", "seven")
        await fleet["m1"].set_fault("error", "/logs")
        # the upload fails: the entry left the spool, into the queue (or memory)
        c = client(fleet, tmp / "st", log_dir=spool, volatile_logs=volatile)
        assert await c.run() == 0
        assert list(spool.iterdir()) == [] and fleet.logs("c1") == []
        queued = [e.id for e in ClientState(tmp / "st", fsync=False).logs.pending()]
        assert queued == ([] if volatile else ["c1-spool-7"])
        # a new process on the same state: the durable entry is uploaded once
        await fleet["m1"].set_fault("up")
        c2 = client(fleet, tmp / "st", log_dir=spool, volatile_logs=volatile)
        assert await c2.run() == 0
        assert [log.id for log in fleet.logs("c1")] == ([] if volatile
                                                         else ["c1-spool-7"])
        if volatile:
            return
        # the same file again (a crash before its removal): not queued, not sent
        spool_entry(spool, "c1-spool-7", "seven")
        assert await client(fleet, tmp / "st", log_dir=spool).run() == 0
        assert list(spool.iterdir()) == []
        ups = [r.ids for r in fleet.records if r.by == "server"
               and r.event == "UPLOAD_LOGS"]
        assert [bool(ids and "c1-spool-7" in ids) for ids in ups] == [
            True, True, False]  # the failed upload, the acknowledged one, no more

    in_fleet(go)



# --- real `sephb client` processes against the fleet of this test --------------------


async def cli_client(fleet: Fleet, tmp: Path, *args: str, sylink_file: Path | None = None,
                     fsize: int | None = None) -> tuple[int, list[str]]:
    """Run `sephb client` (no --client-id) at SCALE against the fleet; its exit status
    and stderr lines. ``fsize``: RLIMIT_FSIZE, so that writing a larger file fails
    (EFBIG; Python ignores SIGXFSZ) as a full disk would."""
    import asyncio
    import resource

    from sephb.conformance.traces import sylink

    if sylink_file is None:
        sylink_file = tmp / "sylink.xml"
        sylink.save(sylink_for(fleet), sylink_file)

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sephb.conformance.cli", "client", "--sylink",
        str(sylink_file), "--state-dir", str(tmp / "st"), "--time-scale", str(SCALE),
        "--seed", "1", *args, stderr=asyncio.subprocess.PIPE, preexec_fn=limit)
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode().splitlines()


# --- item 1: an address the resolver cannot take -------------------------------------


def test_a_connect_the_resolver_refuses_is_a_failed_connect() -> None:
    """The attack run: a priority-2 server "a..b", manager 1 goes down, and the
    failover died with a UnicodeError traceback at the connect. The sylink reader
    now refuses such an address, so it is put straight into the client's list here:
    whatever an address is, a connect that raises is a failed connect."""
    from sephb.conformance.client.core import Peer

    async def go(fleet: Fleet, tmp: Path) -> None:
        c = client(fleet, tmp / "st", interp="documented", heartbeats=2)
        c.peers[1] = Peer("a..b", 8014, 2)  # the core reads this very list
        await fleet["m1"].set_fault("refuse")
        assert await c.run() == 0
        got = recs(fleet)
        tried = [i for i, r in enumerate(got) if r.event == "CONNECT" and r.addr == "a..b"]
        assert len(tried) == 2  # once per check-in, after m1 refused
        for i in tried:
            assert got[i + 1].event == "CONNECT_FAILED"
            assert "a..b" in (got[i + 1].error or "")
            assert "UnicodeError" in (got[i + 1].error or "")
        assert names(fleet).count("DISCONNECT") == 2  # both check-ins ended

    in_fleet(go)


def test_the_cli_refuses_a_bad_address_and_a_fifo_with_one_line(tmp_path: Path) -> None:
    import os
    import subprocess

    from sephb.conformance.traces import sylink

    good = sylink.to_xml(Sylink.build([["127.0.0.2"], ["127.0.0.3"]]))
    bad = tmp_path / "bad.xml"
    bad.write_text(good.replace('"127.0.0.3"', '"a..b"'))
    fifo = tmp_path / "fifo.xml"
    os.mkfifo(fifo)
    line = next(n for n, ln in enumerate(good.splitlines(), 1) if "127.0.0.3" in ln)
    for path, want in [
        (bad, f'{bad}:{line}: <Server> Address must be an IPv4 address, IPv6 literal or '
              'host name, got "a..b": it has an empty label (two dots in a row, or a dot '
              "at the start)"),
        (fifo, f"{fifo}: cannot read: not a regular file (a FIFO); sylink.xml must be a "
               "file"),
    ]:
        # The timeout only keeps a regression (a reader blocked on the FIFO) from
        # hanging the run.
        done = subprocess.run(
            [sys.executable, "-m", "sephb.conformance.cli", "client", "--sylink",
             str(path), "--state-dir", str(tmp_path / "st"), "--heartbeats", "1"],
            capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stderr) == (2, f"sephb client: error: {want}\n")


# --- item 2: one client id across restarts ---------------------------------------------


def test_without_client_id_a_restart_keeps_the_id_and_logs_are_stored_once() -> None:
    """Two `sephb client` processes on one state directory, the second re-sending
    what the first had delivered (the state a SIGKILL between the manager's
    acknowledgement and the client's removal of the entries leaves: the queue as it
    was before). The id used to be host-pid: every log was then stored twice, once
    under each process's id, and the manager saw no duplicate."""
    import shutil

    async def go(fleet: Fleet, tmp: Path) -> None:
        st = tmp / "st"
        ids = make_logs(ClientState(st, fsync=False).logs, 5000, 2, seed=3)
        shutil.copytree(st / "logs", tmp / "queue-before")
        assert await cli_client(fleet, tmp, "--heartbeats", "1") == (0, [])
        shutil.rmtree(st / "logs")
        shutil.copytree(tmp / "queue-before", st / "logs")  # "killed" before the ack
        assert await cli_client(fleet, tmp, "--heartbeats", "1") == (0, [])
        [cid] = fleet.state()["clients"]  # one client, both processes
        assert (st / "client-id").read_text() == f"{cid}\n"
        assert [log.id for log in fleet.logs(cid)] == ids  # each stored once
        await fleet.recorder.wait_for(
            lambda r: r.by == "server" and r.event == "LOGS_ACKED", count=2)
        acks = [r for r in fleet.records if r.by == "server" and r.event == "LOGS_ACKED"]
        assert [a.client for a in acks] == [cid, cid]
        assert [a.duplicates for a in acks] == [[], ids]  # recognised as re-sent
        assert len(ClientState(st, fsync=False).logs) == 0

    in_fleet(go)


def test_an_explicit_client_id_wins_and_is_not_stored() -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        c = client(fleet, tmp / "st")
        assert c.client_id == "c1" and await c.run() == 0
        assert not (tmp / "st" / "client-id").exists()
        d = client(fleet, tmp / "st2", cid=None)
        assert d.client_id == (tmp / "st2" / "client-id").read_text().strip()
        assert client(fleet, tmp / "st2", cid=None).client_id == d.client_id

    in_fleet(go)


# --- item 5: the state directory's troubles never stop the heartbeat ------------------


def test_a_full_disk_is_reported_once_and_check_ins_go_on(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """ENOSPC when the client makes its logs and when it saves the index copy used
    to end the process with a traceback; the heartbeat stopped."""
    import errno

    from sephb.conformance.client import store

    def full(*_: Any, **__: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    async def go(fleet: Fleet, tmp: Path) -> None:
        st = tmp / "st"
        kept = ClientState(st, fsync=False).logs.append("queued before the disk filled")
        monkeypatch.setattr(store, "write_tmp", full)  # every new log entry
        monkeypatch.setattr(store, "atomic_write", full)  # index.json
        c = client(fleet, st, heartbeats=3, log_bytes=10_000)
        assert await c.run() == 0
        # Every check-in whole; the index kept in memory (the 2nd and 3rd are idle).
        assert names(fleet) == FULL_PULL + IDLE_PULL + IDLE_PULL
        assert [log.id for log in fleet.logs("c1")] == [kept]  # the queue still works
        [logs, index] = c.errors
        assert logs.startswith(f"{st / 'logs'}/") and ".log: cannot queue new log " \
            "entries: No space left on device; the entries not queued are not made" in logs
        assert index == (f"{st / 'index.json'}: cannot save the index copy: No space left "
                         "on device; kept in memory, saved once possible")
        assert capsys.readouterr().err.splitlines() == [
            f"sephb client: {logs}", f"sephb client: {index}"]  # once each
        monkeypatch.undo()  # space again: the next run saves what it has
        assert await client(fleet, st, heartbeats=1, log_bytes=100).run() == 0
        saved = ClientState(st, fsync=False).load_index()
        assert saved is not None and saved.serial == fleet.site.serial

    in_fleet(go)


def test_a_full_disk_in_a_real_process() -> None:
    """The same in a `sephb client` process whose files may not grow past 200 bytes:
    every log entry fails to be written (EFBIG), the index copy and the id fit."""
    async def go(fleet: Fleet, tmp: Path) -> None:
        rc, err = await cli_client(fleet, tmp, "--heartbeats", "2", "--log-bytes", "5000",
                                   fsize=200)
        assert rc == 0
        assert len(err) == 1, err
        assert err[0].startswith(f"sephb client: {tmp / 'st' / 'logs'}/")
        assert "cannot queue new log entries: File too large" in err[0]
        await fleet.recorder.wait_for(
            lambda r: r.by == "server" and r.event == "DISCONNECT", count=2)
        server = names(fleet, (tmp / "st" / "client-id").read_text().strip(), "server")
        assert server.count("SENSORS_ACKED") == 2  # both check-ins went through
        assert ClientState(tmp / "st", fsync=False).load_index() is not None

    in_fleet(go)


def test_an_index_copy_that_is_a_directory_is_reported_and_check_ins_go_on(
        capsys: pytest.CaptureFixture[str]) -> None:
    async def go(fleet: Fleet, tmp: Path) -> None:
        st = tmp / "st"
        (st / "index.json").mkdir(parents=True)
        c = client(fleet, st, heartbeats=2)
        assert await c.run() == 0
        assert names(fleet) == FULL_PULL + IDLE_PULL
        assert c.errors == [
            f"{st / 'index.json'}: cannot read the index copy: Is a directory; starting "
            "without an index copy (the content is downloaded again)",
            f"{st / 'index.json'}: cannot save the index copy: Is a directory; kept in "
            "memory, saved once possible"]
        assert len(capsys.readouterr().err.splitlines()) == 2

    in_fleet(go)


def test_damaged_queued_logs_are_moved_aside_never_uploaded() -> None:
    """A truncated entry used to be uploaded as it was (100 of 6,667 bytes stored);
    one that was not UTF-8 stopped the client at every upload, blocking the rest."""
    async def go(fleet: Fleet, tmp: Path) -> None:
        st = tmp / "st"
        q = ClientState(st, fsync=False).logs
        cut, bad, good = q.append_many(["a" * 6667, "b" * 50, "c" * 500])
        files = {p.stem: p for p in (st / "logs").glob("*.log")}
        files[cut].write_bytes(files[cut].read_bytes()[:100])
        files[bad].write_bytes(b"\xff\xfe not text")
        c = client(fleet, st, heartbeats=2)
        assert await c.run() == 0
        assert names(fleet) == FULL_PULL + IDLE_PULL
        assert [(log.id, log.data) for log in fleet.logs("c1")] == [(good, "c" * 500)]
        assert sorted(p.stem for p in (st / "logs" / "damaged").iterdir()) == sorted(
            [cut, bad])
        assert len(c.errors) == 2  # one line each, not one per upload
        assert all("damaged" in e and "not uploaded" in e for e in c.errors)
        assert f"{files[cut]}: damaged (queued log {cut}: 67 bytes of text, the header " \
               "says 6667" in c.errors[0]

    in_fleet(go)


# --- the kill bench, small -------------------------------------------------------------


def test_random_sigkills_under_faults_lose_no_log_and_store_none_twice() -> None:
    """tests/benchmarks/bench_kill.py at 6 kills (it runs 200): `sephb client`
    without --client-id, SIGKILLed at random and right after log uploads, under a
    rotation of faults. Before the stable id, 10 kills left 5 client ids at the site
    and logs stored under two of them."""
    fig = kill_bench(6, addresses=addresses(3))
    assert (fig.lost, fig.twice, fig.wrong, fig.died) == (0, 0, 0, 0)
    assert fig.complaints == []
    assert fig.kills == 6 and fig.client_ids == 1 and fig.stored > 0
