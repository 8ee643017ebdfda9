"""The reference client against the simulated managers and GUP, over real sockets on
loopback, at time scale 0.001 (30,000 model ms = 30 wall ms)."""

from __future__ import annotations

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
           heartbeats: int = 1, cid: str = "c1", **kw: Any) -> ReferenceClient:
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
