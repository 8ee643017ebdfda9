"""The simulated managers and GUP over real sockets on 127.x, their trace records,
fault modes, control API and fleet config.

Every fleet gets addresses of its own (derived from the pid and a counter) so that the
real ports 8014 and 2967 are free for it; no test sleeps (but a slow client pacing
its bytes), and time only bounds hangs.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import hashlib
import logging
import socket
import subprocess
import sys
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from netutil import addresses, run

from sephb.conformance.site import GARBAGE, Fault, Fleet, run_manager_process
from sephb.conformance.site.config import (
    ControlSpec,
    FleetConfig,
    apply_listen,
    load_config,
    parse_config,
)
from sephb.conformance.traces import wire
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.trace import Record, TraceHeader, read_header, read_trace
from sephb.model.errors import ConfigError, UsageError
from sephb.model.protocol import Action, Event, Source

ROOT = Path(__file__).resolve().parent.parent
def fleet_config(managers: int = 2, gup: bool = True, **site: Any) -> FleetConfig:
    addrs = addresses(managers + 1)
    return FleetConfig.loopback(addrs[:managers], gup=addrs[-1] if gup else None,
                                control=ControlSpec("127.0.0.1", 0), **site)


def with_fleet(fn: Callable[[Fleet], Awaitable[None]], config: FleetConfig | None = None,
               **kw: Any) -> None:
    async def main() -> None:
        async with Fleet(config or fleet_config(), **kw) as fleet:
            await fn(fleet)

    run(main())


def base(fleet: Fleet, name: str = "m1") -> str:
    s = fleet[name]
    return f"http://{s.address}:{s.port}"


def session(client: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(headers={wire.HEADER_CLIENT: client})
    # aiohttp (3.10+) silently re-sends an idempotent request on a new connection when
    # the first one is reset or closed; the traces below must see one attempt only.
    s._retry_connection = False
    return s


def events(fleet: Fleet, client: str, server: str | None = None) -> list[str]:
    return [r.event for r in fleet.records
            if r.client == client and (server is None or r.server == server)]


async def disconnects(fleet: Fleet, client: str, count: int = 1) -> list[Record]:
    return await fleet.recorder.wait_for(
        lambda r: r.client == client and r.event == "DISCONNECT", count=count)


async def pull_checkin(fleet: Fleet, client: str, *, serial: str = "",
                       location: str | None = None, logs: int = 2) -> dict[str, Any]:
    """One pull check-in following the wire profile (URLs and content only when the
    index changed); returns what it got."""
    got: dict[str, Any] = {"urls": None, "content": []}
    async with session(client) as s:
        url = base(fleet)
        async with s.get(url + wire.INDEX_PATH, headers={wire.HEADER_SERIAL: serial}) as r:
            assert r.status == 200
            got["index"] = await r.json()
        if got["index"]["serial"] != serial:
            hdrs = {wire.HEADER_LOCATION: location} if location else {}
            async with s.get(url + wire.URLS_PATH, headers=hdrs) as r:
                got["urls"] = await r.json()
            for u in got["urls"]["urls"]:
                async with s.get(u) as r:
                    assert r.status == 200
                    got["content"].append(await r.read())
        body = {"logs": [{"id": f"{client}-{i}", "data": f"log {i}"} for i in range(logs)]}
        async with s.post(url + wire.LOGS_PATH, json=body) as r:
            got["logs"] = await r.json()
        async with s.post(url + wire.SENSORS_PATH,
                          json={"lan_sensor": [{"mac": "x"}], "learned_apps": []}) as r:
            got["sensors"] = await r.json()
    return got


# --- the happy path -------------------------------------------------------------------


def test_pull_checkin_on_the_real_ports_records_the_model_vocabulary() -> None:
    async def go(fleet: Fleet) -> None:
        assert [(e.name, e.port) for e in fleet.endpoints] == [
            ("m1", 8014), ("m2", 8014), ("gup", 2967)]
        got = await pull_checkin(fleet, "c1")
        assert got["index"] == {"serial": fleet.site.serial, "content": 1,
                                "source": "manager"}
        m1 = fleet["m1"]
        assert got["urls"] == {"source": "manager", "urls": [
            f"http://{m1.address}:8014/content/1/avdefs.zip"]}
        assert got["content"] == [wire.content_bytes(1, "avdefs.zip", 64 * 1024)]
        assert got["logs"] == {"acked": ["c1-0", "c1-1"]}
        assert got["sensors"] == {"acked": True}
        await disconnects(fleet, "c1")
        assert events(fleet, "c1") == [
            "CONNECT", "GET_INDEX", "INDEX_RECEIVED", "GET_URLS", "URLS_RECEIVED",
            "DOWNLOAD_MANAGER", "CONTENT_RECEIVED", "UPLOAD_LOGS", "LOGS_ACKED",
            "UPLOAD_SENSORS", "SENSORS_ACKED", "DISCONNECT"]
        recs = [r for r in fleet.records if r.client == "c1"]
        assert {(r.by, r.server, r.role, r.conn, r.addr, r.port) for r in recs} == {
            ("server", "m1", wire.Role.MANAGER, 1, m1.address, 8014)}
        index = recs[2]
        assert (index.changed, index.serial, index.content, index.status) == (
            True, fleet.site.serial, 1, 200)
        assert recs[1].serial == ""
        assert recs[4].source is Source.MANAGER
        assert recs[7].ids == recs[8].ids == ["c1-0", "c1-1"]
        assert recs[8].duplicates == []
        # The connection's totals are the sums of its requests and answers.
        end = recs[-1]
        assert end.bytes_in == sum(r.bytes_in or 0 for r in recs[1:-1])
        assert end.bytes_out == sum(r.bytes_out or 0 for r in recs[1:-1])
        assert [lg.id for lg in fleet.logs("c1")] == ["c1-0", "c1-1"]
        assert fleet.state()["clients"]["c1"]["sensors"] == {
            "uploads": 1, "lan_sensor": 1, "learned_apps": 0}
        ts = [r.t for r in recs]
        assert ts == sorted(ts)

    with_fleet(go)


def test_index_changed_compares_the_clients_serial() -> None:
    async def go(fleet: Fleet) -> None:
        async with session("c1") as s:
            for serial in (fleet.site.serial, "A3AF-01/01/2020 00:00:00 000"):
                async with s.get(base(fleet) + wire.INDEX_PATH,
                                 headers={wire.HEADER_SERIAL: serial}) as r:
                    assert r.status == 200
        got = [(r.serial, r.changed) for r in fleet.records if r.event == "INDEX_RECEIVED"]
        assert got == [(fleet.site.serial, False), (fleet.site.serial, True)]

    with_fleet(go)


def test_location_policies_choose_manager_gup_or_none() -> None:
    cfg = fleet_config()
    m1 = cfg.managers[0]
    from msgspec.structs import replace

    cfg = replace(cfg, managers=(replace(m1, locations={"Branch": Source.GUP,
                                                        "Internet": Source.NONE}),
                                 *cfg.managers[1:]))

    async def go(fleet: Fleet) -> None:
        gup = fleet.gup
        assert gup is not None
        branch = await pull_checkin(fleet, "b", location="Branch")
        assert branch["urls"] == {"source": "gup", "urls": [
            f"http://{gup.address}:2967/content/1/avdefs.zip"]}
        assert branch["content"] == [wire.content_bytes(1, "avdefs.zip", 64 * 1024)]
        none = await pull_checkin(fleet, "n", location="Internet")
        assert none["urls"] == {"source": "none", "urls": []}
        other = await pull_checkin(fleet, "o", location="Elsewhere")
        assert other["urls"]["source"] == "manager"
        fleet["m1"].set_policy("none")  # the default policy, at run time
        assert (await pull_checkin(fleet, "d", location="Elsewhere"))["urls"] == {
            "source": "none", "urls": []}
        await disconnects(fleet, "b", count=2)
        assert events(fleet, "b", "gup") == [
            "CONNECT", "DOWNLOAD_GUP", "CONTENT_RECEIVED", "DISCONNECT"]
        assert {r.role for r in fleet.records if r.server == "gup"} == {wire.Role.GUP}
        rec = next(r for r in fleet.records if r.client == "b"
                   and r.event == "URLS_RECEIVED")
        assert (rec.location, rec.source) == ("Branch", Source.GUP)
        with pytest.raises(UsageError, match="expected one of manager, gup, none"):
            fleet["m1"].set_policy("cdn")
        with pytest.raises(UsageError, match="only managers"):
            gup.set_policy("manager")

    with_fleet(go, cfg)


def test_duplicate_log_ids_are_acked_but_stored_once_across_managers() -> None:
    async def go(fleet: Fleet) -> None:
        async with session("c1") as s:
            for server, ids in (("m1", ["a", "b"]), ("m1", ["b", "c"]), ("m2", ["a", "d"])):
                body = {"logs": [{"id": i, "data": f"data {i}"} for i in ids]}
                async with s.post(base(fleet, server) + wire.LOGS_PATH, json=body) as r:
                    assert (await r.json()) == {"acked": ids}
        acks = [(r.server, r.ids, r.duplicates) for r in fleet.records
                if r.event == "LOGS_ACKED"]
        assert acks == [("m1", ["a", "b"], []), ("m1", ["b", "c"], ["b"]),
                        ("m2", ["a", "d"], ["a"])]
        assert [(lg.id, lg.server) for lg in fleet.logs("c1")] == [
            ("a", "m1"), ("b", "m1"), ("c", "m1"), ("d", "m2")]

    with_fleet(go)


def test_push_hold_is_answered_on_publish_and_index_follows_on_the_same_connection(
) -> None:
    async def go(fleet: Fleet) -> None:
        old = fleet.site.serial
        async with session("p1") as s:
            url = base(fleet)
            async with s.get(url + wire.INDEX_PATH, headers={wire.HEADER_SERIAL: old}):
                pass
            held = asyncio.create_task(s.get(url + wire.PUSH_PATH))
            await fleet.recorder.wait_for(lambda r: r.event == "HOLD")
            assert fleet["m1"].held == 1
            new = fleet.publish()
            async with await held as r:
                assert r.status == 200
                assert await r.json() == {"event": "policy_changed", "serial": new.serial}
            assert new.serial != old and new.content == 2
            async with s.get(url + wire.INDEX_PATH, headers={wire.HEADER_SERIAL: old}) as r:
                assert await r.json() == {"serial": new.serial, "content": 2,
                                          "source": "manager"}
        await disconnects(fleet, "p1")
        recs = [r for r in fleet.records if r.client == "p1"]
        assert [r.event for r in recs] == [
            "CONNECT", "GET_INDEX", "INDEX_RECEIVED", "HOLD", "POLICY_PUSHED", "GET_INDEX",
            "INDEX_RECEIVED", "DISCONNECT"]
        assert {r.conn for r in recs} == {1}
        assert recs[4].serial == new.serial and recs[6].changed is True
        assert fleet.push() == 0  # nobody holds any more

    with_fleet(go)


def test_push_hold_with_a_limit_ends_with_204_and_heartbeat_due() -> None:
    async def go(fleet: Fleet) -> None:
        url = base(fleet)
        async with session("h1") as s:
            async with s.get(url + wire.INDEX_PATH):
                pass
            # 50 model ms at the fleet's time scale (1.0): a 204 ends the hold.
            hold = {wire.HEADER_HOLD_MS: "50"}
            async with s.get(url + wire.PUSH_PATH, headers=hold) as r:
                assert r.status == 204
            async with s.get(url + wire.INDEX_PATH) as r:  # same connection goes on
                assert r.status == 200
        await disconnects(fleet, "h1")
        recs = [r for r in fleet.records if r.client == "h1"]
        assert [r.event for r in recs] == [
            "CONNECT", "GET_INDEX", "INDEX_RECEIVED", "HOLD", "HEARTBEAT_DUE", "GET_INDEX",
            "INDEX_RECEIVED", "DISCONNECT"]
        assert recs[4].t - recs[3].t >= 50 and {r.conn for r in recs} == {1}

    with_fleet(go)


def test_index_answer_carries_the_locations_source() -> None:
    async def go(fleet: Fleet) -> None:
        fleet["m1"].set_policy("gup", location="branch")
        url = base(fleet)
        async with session("l1") as s:
            hdr = {wire.HEADER_LOCATION: "branch"}
            async with s.get(url + wire.INDEX_PATH, headers=hdr) as r:
                assert (await r.json())["source"] == "gup"
            async with s.get(url + wire.INDEX_PATH) as r:
                assert (await r.json())["source"] == "manager"
        got = [(r.location, r.source) for r in fleet.records
               if r.client == "l1" and r.event == "INDEX_RECEIVED"]
        assert got == [("branch", Source.GUP), (None, Source.MANAGER)]

    with_fleet(go)


def test_push_without_change_and_held_connections_closing() -> None:
    async def go(fleet: Fleet) -> None:
        url = base(fleet)
        # The client ends its own hold (documented interpretation): only DISCONNECT.
        async with session("p1") as s:
            async with s.get(url + wire.INDEX_PATH):
                pass
            task = asyncio.create_task(s.get(url + wire.PUSH_PATH))
            await fleet.recorder.wait_for(lambda r: r.client == "p1" and r.event == "HOLD")
            task.cancel()
        await disconnects(fleet, "p1")
        assert events(fleet, "p1") == ["CONNECT", "GET_INDEX", "INDEX_RECEIVED", "HOLD",
                                       "DISCONNECT"]
        # The server drops it: CONNECTION_LOST, and the client sees the close.
        async with session("p2") as s:
            async with s.get(url + wire.INDEX_PATH):
                pass
            task = asyncio.create_task(s.get(url + wire.PUSH_PATH))
            await fleet.recorder.wait_for(lambda r: r.client == "p2" and r.event == "HOLD")
            assert fleet["m1"].drop() == 1
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await task
        await disconnects(fleet, "p2")
        assert events(fleet, "p2") == ["CONNECT", "GET_INDEX", "INDEX_RECEIVED", "HOLD",
                                       "CONNECTION_LOST", "DISCONNECT"]
        # A push without a publish announces the current serial.
        async with session("p3") as s:
            task = asyncio.create_task(s.get(url + wire.PUSH_PATH))
            await fleet.recorder.wait_for(lambda r: r.client == "p3" and r.event == "HOLD")
            assert fleet.push("m2") == 0
            assert fleet.push() == 1
            async with await task as r:
                assert (await r.json())["serial"] == fleet.site.serial

    with_fleet(go)


# --- faults ---------------------------------------------------------------------------


def raw_get(path: str, client: str = "raw") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\n{wire.HEADER_CLIENT}: {client}\r\n\r\n"
            ).encode()


async def raw_exchange(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


def test_fault_refuse_stops_listening_and_up_listens_again_on_the_same_port() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        await m1.set_fault(Fault.REFUSE)
        assert not m1.listening
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(m1.address, 8014)
        with pytest.raises(UsageError, match="whole server"):
            await m1.set_fault("refuse", "/urls")
        await m1.set_fault("up")
        assert m1.listening and m1.port == 8014
        assert (await pull_checkin(fleet, "c1"))["sensors"] == {"acked": True}

    with_fleet(go)


def test_fault_reset_aborts_the_connection_with_rst() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        await m1.set_fault("reset")
        with pytest.raises(ConnectionResetError):
            await raw_exchange(m1.address, m1.port, raw_get(wire.INDEX_PATH, "r1"))
        async with session("r2") as s:
            with pytest.raises(aiohttp.ClientConnectionError):
                await s.get(base(fleet) + wire.INDEX_PATH)
        await disconnects(fleet, "r1")
        assert events(fleet, "r1") == ["CONNECT", "GET_INDEX", "CONNECT_FAILED",
                                       "DISCONNECT"]
        failed = next(r for r in fleet.records if r.event == "CONNECT_FAILED")
        assert failed.error is not None and "reset" in failed.error

    with_fleet(go)


def test_fault_stall_reads_the_request_and_never_answers() -> None:
    """Who closed a stalled request decides its record: the client (its timer ran
    out) -- the table's timeout of the request, SESSION_TIMEOUT for index.dat, as
    the exchange reading and the suite's world say; the server's drop -- the
    server's failure (CONNECT_FAILED for a connection's first request), which no
    judge may read as the client giving up early."""
    async def go(fleet: Fleet) -> None:
        await fleet["m1"].set_fault("stall")
        async with session("s1") as s:
            with pytest.raises(asyncio.TimeoutError):
                await s.get(base(fleet) + wire.INDEX_PATH,
                            timeout=aiohttp.ClientTimeout(total=0.2))
        await disconnects(fleet, "s1")
        assert events(fleet, "s1") == ["CONNECT", "GET_INDEX", "SESSION_TIMEOUT",
                                       "DISCONNECT"]
        failed = next(r for r in fleet.records if r.event == "SESSION_TIMEOUT")
        assert failed.error is not None and failed.error.endswith(wire.GAVE_UP)
        async with session("s2") as s:
            task = asyncio.create_task(s.get(base(fleet) + wire.INDEX_PATH))
            await fleet.recorder.wait_for(
                lambda r: r.client == "s2" and r.event == "GET_INDEX")
            assert fleet["m1"].drop() == 1
            with pytest.raises(aiohttp.ClientError):
                await task
        await disconnects(fleet, "s2")
        assert events(fleet, "s2") == ["CONNECT", "GET_INDEX", "CONNECT_FAILED",
                                       "DISCONNECT"]
        dropped = next(r for r in fleet.records
                       if r.client == "s2" and r.event == "CONNECT_FAILED")
        assert dropped.error is not None and dropped.error.endswith(
            "dropped by the server") and wire.GAVE_UP not in dropped.error

    with_fleet(go)


def test_fault_error_answers_503_and_applies_to_one_path_only() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        await m1.set_fault("error", "/urls")
        async with session("e1") as s:
            async with s.get(base(fleet) + wire.INDEX_PATH) as r:
                assert r.status == 200
            async with s.get(base(fleet) + wire.URLS_PATH) as r:
                assert r.status == 503
            await m1.set_fault("up", "/urls")
            async with s.get(base(fleet) + wire.URLS_PATH) as r:
                assert r.status == 200
        await disconnects(fleet, "e1")
        assert events(fleet, "e1") == [
            "CONNECT", "GET_INDEX", "INDEX_RECEIVED", "GET_URLS", "REQUEST_FAILED",
            "GET_URLS", "URLS_RECEIVED", "DISCONNECT"]
        failed = next(r for r in fleet.records if r.event == "REQUEST_FAILED")
        assert (failed.status, failed.path) == (503, "/urls")

    with_fleet(go)


def test_fault_garbage_answers_bytes_that_are_not_http() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        await m1.set_fault("garbage", "/logs")
        data = (b"POST /logs HTTP/1.1\r\nHost: x\r\nX-Sephb-Client: g1\r\n"
                b"Content-Length: 10\r\n\r\n{\"logs\":[]")
        got = await raw_exchange(m1.address, m1.port, data)
        assert got == GARBAGE and not got.startswith(b"HTTP/")
        async with session("g2") as s:
            with pytest.raises((aiohttp.ClientResponseError,
                                aiohttp.ServerDisconnectedError)):
                await s.post(base(fleet) + wire.LOGS_PATH, json={"logs": []})
        await disconnects(fleet, "g1")
        assert events(fleet, "g1") == ["CONNECT", "UPLOAD_LOGS", "CONNECT_FAILED",
                                       "DISCONNECT"]

    with_fleet(go)


@pytest.mark.parametrize("mode", ["stall", "reset", "error", "garbage"])
def test_every_step_can_be_faulted(mode: str) -> None:
    """A fault on one path hits that step only, after a normal index."""
    async def go(fleet: Fleet) -> None:
        for i, path in enumerate([wire.URLS_PATH, "/content", wire.LOGS_PATH,
                                  wire.SENSORS_PATH, wire.PUSH_PATH]):
            client = f"{mode}-{i}"
            await fleet["m1"].set_fault(mode, path)
            async with session(client) as s:
                async with s.get(base(fleet) + wire.INDEX_PATH) as r:
                    assert r.status == 200
                method, url = {
                    wire.URLS_PATH: ("GET", wire.URLS_PATH),
                    "/content": ("GET", "/content/1/avdefs.zip"),
                    wire.LOGS_PATH: ("POST", wire.LOGS_PATH),
                    wire.SENSORS_PATH: ("POST", wire.SENSORS_PATH),
                    wire.PUSH_PATH: ("GET", wire.PUSH_PATH),
                }[path]
                body: dict[str, list[Any]] = (
                    {"logs": []} if path == wire.LOGS_PATH
                    else {"lan_sensor": [], "learned_apps": []})
                try:
                    async with s.request(method, base(fleet) + url,
                                         json=body if method == "POST" else None,
                                         timeout=aiohttp.ClientTimeout(total=0.2)) as r:
                        assert mode == "error" and r.status == 503
                except (TimeoutError, aiohttp.ClientError):
                    assert mode != "error"
            await fleet["m1"].set_fault("up", path)
            await disconnects(fleet, client)
            route = wire.route_for(wire.Role.MANAGER, method, url)
            assert route is not None
            assert events(fleet, client) == [
                "CONNECT", "GET_INDEX", "INDEX_RECEIVED", route.action.value,
                route.failure.value, "DISCONNECT"]

    with_fleet(go)


def test_gup_failures_are_download_failed() -> None:
    async def go(fleet: Fleet) -> None:
        gup = fleet.gup
        assert gup is not None
        await gup.set_fault("error")
        async with session("c1") as s:
            async with s.get(f"http://{gup.address}:{gup.port}/content/1/avdefs.zip") as r:
                assert r.status == 503
            async with s.get(f"http://{gup.address}:{gup.port}/content/9/avdefs.zip") as r:
                assert r.status == 503  # the fault comes before the lookup
            await gup.set_fault("up")
            async with s.get(f"http://{gup.address}:{gup.port}/content/9/avdefs.zip") as r:
                assert r.status == 404
        await disconnects(fleet, "c1")
        assert events(fleet, "c1", "gup") == [
            "CONNECT", "DOWNLOAD_GUP", "DOWNLOAD_FAILED", "DOWNLOAD_GUP", "DOWNLOAD_FAILED",
            "DOWNLOAD_GUP", "DOWNLOAD_FAILED", "DISCONNECT"]

    with_fleet(go)


def test_fault_values_are_checked() -> None:
    async def go(fleet: Fleet) -> None:
        with pytest.raises(UsageError, match="expected one of up, refuse, stall"):
            await fleet["m1"].set_fault("melt")
        with pytest.raises(UsageError, match="starting with '/'"):
            await fleet["m1"].set_fault("error", "urls")
        with pytest.raises(UsageError, match="no server named 'm9'"):
            fleet["m9"]

    with_fleet(go)


# --- robustness -----------------------------------------------------------------------


def test_port_taken_falls_back_to_an_ephemeral_port_and_says_so() -> None:
    cfg = fleet_config(managers=1, gup=False)
    blocker = socket.socket()
    blocker.bind((cfg.managers[0].address, 8014))
    blocker.listen()
    try:
        async def go(fleet: Fleet) -> None:
            ep = fleet["m1"].endpoint
            assert ep.fell_back and ep.port != 8014 and ep.requested_port == 8014
            assert "port 8014 was taken" in fleet.describe()[0]
            assert (await pull_checkin(fleet, "c1"))["index"]["content"] == 1

        with_fleet(go, cfg)
    finally:
        blocker.close()


def test_a_100_mb_upload_is_answered_413_without_buffering_it() -> None:
    cfg = fleet_config(managers=1, gup=False, max_upload=1024 * 1024)

    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        size, chunk = 100 * 1024 * 1024, b"x" * (1024 * 1024)
        tracemalloc.start()
        try:
            for declared in (True, False):  # Content-Length, then chunked
                reader, writer = await asyncio.open_connection(m1.address, m1.port)
                head = (f"POST /logs HTTP/1.1\r\nHost: x\r\n{wire.HEADER_CLIENT}: big\r\n"
                        + (f"Content-Length: {size}\r\n" if declared
                           else "Transfer-Encoding: chunked\r\n") + "\r\n")
                writer.write(head.encode())
                prefix = f"{len(chunk):x}\r\n".encode()
                for _ in range(size // len(chunk)):
                    writer.write(chunk if declared else prefix + chunk + b"\r\n")
                    await writer.drain()
                if not declared:
                    writer.write(b"0\r\n\r\n")
                status = await reader.readline()
                assert status.startswith(b"HTTP/1.1 413"), status
                writer.close()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 24 * 1024 * 1024, f"peak {peak} bytes while receiving 200 MB"
        fails = [r for r in fleet.records if r.event == "CONNECT_FAILED"]
        assert [r.status for r in fails] == [413, 413]
        assert (await pull_checkin(fleet, "after"))["sensors"] == {"acked": True}

    with_fleet(go, cfg)


def test_clients_that_vanish_or_send_garbage_do_not_hurt_the_server() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        # Connect and leave without a request: CONNECT + DISCONNECT by peer address.
        _, writer = await asyncio.open_connection(m1.address, m1.port)
        peer = "{}:{}".format(*writer.get_extra_info("sockname"))
        writer.close()
        await disconnects(fleet, peer)
        assert events(fleet, peer) == ["CONNECT", "DISCONNECT"]
        # Garbage instead of HTTP: answered 400, recorded, connection closed.
        got = await raw_exchange(m1.address, m1.port, b"\x16\x03\x01 hello\r\n\r\n")
        assert got.startswith(b"HTTP/1.") and got[8:13] == b" 400 "
        # Half a body, then gone.
        _, writer = await asyncio.open_connection(m1.address, m1.port)
        writer.write(b"POST /logs HTTP/1.1\r\nHost: x\r\nX-Sephb-Client: half\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"logs\": [")
        await writer.drain()
        await fleet.recorder.wait_for(lambda r: r.client == "half")
        writer.close()
        await disconnects(fleet, "half")
        assert events(fleet, "half") == ["CONNECT", "UPLOAD_LOGS", "CONNECT_FAILED",
                                         "DISCONNECT"]
        upload = next(r for r in fleet.records if r.client == "half"
                      and r.event == "UPLOAD_LOGS")
        end = next(r for r in fleet.records if r.client == "half"
                   and r.event == "DISCONNECT")
        assert upload.bytes_in == end.bytes_in and upload.ids is None
        bad = [r for r in fleet.records if r.status == 400]
        assert len(bad) == 1 and bad[0].event == "CONNECT_FAILED"
        assert (await pull_checkin(fleet, "after"))["sensors"] == {"acked": True}

    with_fleet(go)


def test_bad_requests_are_answered_and_recorded() -> None:
    async def go(fleet: Fleet) -> None:
        async with session("c1") as s:
            async with s.get(base(fleet) + wire.INDEX_PATH) as r:
                assert r.status == 200
            async with s.get(base(fleet) + "/nowhere") as r:
                assert r.status == 404
            async with s.post(base(fleet) + wire.LOGS_PATH,
                              json={"logs": [{"id": 1}]}) as r:
                assert r.status == 400
                assert "LogsUpload" in (await r.json())["error"]
            async with s.get(base(fleet) + "/content/7/avdefs.zip") as r:
                assert r.status == 404
            async with s.get(base(fleet) + "/content/1/other.zip") as r:
                assert r.status == 404
        gup = fleet.gup
        assert gup is not None
        async with session("c1") as s, s.get(
                f"http://{gup.address}:{gup.port}{wire.INDEX_PATH}") as r:
            assert r.status == 404  # a GUP serves content only
        await disconnects(fleet, "c1", count=2)
        assert events(fleet, "c1", "m1") == [
            "CONNECT", "GET_INDEX", "INDEX_RECEIVED", "REQUEST_FAILED", "UPLOAD_LOGS",
            "REQUEST_FAILED", "DOWNLOAD_MANAGER", "REQUEST_FAILED", "DOWNLOAD_MANAGER",
            "REQUEST_FAILED", "DISCONNECT"]

    with_fleet(go)


def test_many_concurrent_clients_lose_no_log_and_store_none_twice() -> None:
    async def go(fleet: Fleet) -> None:
        clients = [f"c{i}" for i in range(150)]
        results = await asyncio.gather(*(pull_checkin(fleet, c, logs=3) for c in clients))
        assert all(r["sensors"] == {"acked": True} for r in results)
        for c in clients:
            assert [lg.id for lg in fleet.logs(c)] == [f"{c}-0", f"{c}-1", f"{c}-2"]
        await fleet.recorder.wait_for(lambda r: r.event == "DISCONNECT",
                                      count=len(clients))
        for c in clients[:10]:
            assert events(fleet, c)[0] == "CONNECT"
            assert events(fleet, c)[-1] == "DISCONNECT"

    with_fleet(go)


# --- hostile input (issue 15) -------------------------------------------------------


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing the servers (or aiohttp under them) logged carries a traceback or is an
    error: bad input is the client's doing, answered and recorded, never a crash."""
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


def deep(n: int = 100_000) -> bytes:
    return b"[" * n + b"]" * n


def test_deep_json_in_an_unknown_field_is_400_and_recorded(
        caplog: pytest.LogCaptureFixture) -> None:
    async def go(fleet: Fleet) -> None:
        bodies = {wire.LOGS_PATH: b'{"logs": [], "x": ' + deep() + b"}",
                  wire.SENSORS_PATH: b'{"lan_sensor": [], "learned_apps": [], "x": '
                                     + deep() + b"}"}
        async with session("d1") as s:
            async with s.get(base(fleet) + wire.INDEX_PATH) as r:
                assert r.status == 200
            for path, body in bodies.items():
                async with s.post(base(fleet) + path, data=body) as r:
                    assert r.status == 400
                    assert "nested too deeply" in (await r.json())["error"]
            async with s.get(base(fleet) + wire.INDEX_PATH) as r:  # still serving
                assert r.status == 200
        await disconnects(fleet, "d1")
        assert events(fleet, "d1") == [
            "CONNECT", "GET_INDEX", "INDEX_RECEIVED", "UPLOAD_LOGS", "REQUEST_FAILED",
            "UPLOAD_SENSORS", "REQUEST_FAILED", "GET_INDEX", "INDEX_RECEIVED",
            "DISCONNECT"]
        # The control API's bodies too.
        assert fleet.control is not None
        async with aiohttp.ClientSession() as s:
            for body in (b'{"mode": "up", "x": ' + deep() + b"}", deep()):
                async with s.post(fleet.control.url + "/m1/fault", data=body) as r:
                    assert r.status == 400 and "bad body" in (await r.json())["error"]

    with caplog.at_level(logging.DEBUG):
        with_fleet(go)
    no_tracebacks(caplog)


@pytest.mark.parametrize("hold", ["9" * 400, "1e3", "-5", "5 ms", "\u00b2", "\u0661"])
def test_a_malformed_hold_is_400_and_recorded(hold: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        head = (f"GET /push HTTP/1.1\r\nHost: x\r\nX-Sephb-Client: h1\r\n"
                f"X-Sephb-Hold-Ms: {hold}\r\nConnection: close\r\n\r\n").encode()
        got = await raw_exchange(m1.address, m1.port, head)
        assert got.startswith(b"HTTP/1.1 400 "), got[:80]
        assert b"X-Sephb-Hold-Ms: expected model milliseconds" in got
        await disconnects(fleet, "h1")
        assert events(fleet, "h1") == ["CONNECT", "HOLD", "CONNECT_FAILED", "DISCONNECT"]
        assert fleet["m1"].held == 0

    with caplog.at_level(logging.DEBUG):
        with_fleet(go, fleet_config(managers=1, gup=False))
    no_tracebacks(caplog)


def test_profile_headers_that_are_not_utf8_are_400_and_the_trace_still_reads(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trace = tmp_path / "t.ndjson"

    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        for head in (b"X-Sephb-Client: \xff\xfebad\r\n",
                     b"X-Sephb-Client: loc\r\nX-Sephb-Location: \xc3\x28\r\n",
                     b"X-Sephb-Client: ser\r\nX-Sephb-Serial: \x80\r\n"):
            got = await raw_exchange(m1.address, m1.port, b"GET /index.dat HTTP/1.1\r\n"
                                     b"Host: x\r\n" + head + b"Connection: close\r\n\r\n")
            assert got.startswith(b"HTTP/1.1 400 ") and b"not UTF-8 text" in got
        await fleet.recorder.wait_for(lambda r: r.event == "DISCONNECT", count=3)

    with caplog.at_level(logging.DEBUG):
        with_fleet(go, fleet_config(managers=1, gup=False), trace=str(trace))
    no_tracebacks(caplog)
    recs = list(read_trace(trace))  # every record was written, and reads back
    assert [(r.client, r.event) for r in recs if r.event.endswith("FAILED")] == [
        ("\\xff\\xfebad", "CONNECT_FAILED"), ("loc", "CONNECT_FAILED"),
        ("ser", "CONNECT_FAILED")]
    assert {r.location for r in recs if r.client == "loc"} == {None, "\\xc3("}


# Timeouts. The slow clients below pace their bytes with sleeps: that is the behaviour
# under test, not a measurement; nothing is asserted about how long anything took.


def timed_config(**timeouts: float) -> FleetConfig:
    return fleet_config(managers=1, gup=False, **{
        "header_timeout": 30.0, "body_timeout": 30.0, "idle_timeout": 30.0, **timeouts})


def test_a_chunked_body_broken_mid_way_is_answered_400_at_once() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        reader, writer = await asyncio.open_connection(m1.address, m1.port)
        writer.write(b"POST /logs HTTP/1.1\r\nHost: x\r\nX-Sephb-Client: k1\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"log\r\n")
        while not any(c.busy for c in m1.conns):  # the handler reads the body
            await asyncio.sleep(0)
        writer.write(b"zz\r\n")  # not a chunk size
        got = await reader.read()
        writer.close()
        # (the body timeout is 30 s: this answer is not a timeout's)
        assert got.startswith(b"HTTP/1.1 400 "), got[:80]
        assert b"Invalid character in chunk size" in got
        await disconnects(fleet, "k1")
        assert events(fleet, "k1") == ["CONNECT", "UPLOAD_LOGS", "CONNECT_FAILED",
                                       "DISCONNECT"]

    with_fleet(go, timed_config())


def test_a_trickled_head_is_answered_408_at_the_header_timeout() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        reader, writer = await asyncio.open_connection(m1.address, m1.port)
        head = raw_get(wire.INDEX_PATH, "t1")
        answer = asyncio.create_task(reader.read())

        async def trickle() -> None:
            # One byte at a time, well inside the timeout: bytes that keep coming do
            # not keep a head alive (the connection would otherwise never end).
            for b in head[:-2]:  # never the blank line that ends the head
                writer.write(bytes([b]))
                await asyncio.sleep(0.02)

        slow = asyncio.create_task(trickle())
        got = await answer
        slow.cancel()
        writer.close()
        assert got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), got[:80]
        assert b"request head not received within 0.3 s" in got
        end = (await fleet.recorder.wait_for(lambda r: r.event == "DISCONNECT"))[0]
        recs = [r for r in fleet.records if r.conn == end.conn]
        assert [r.event for r in recs] == ["CONNECT", "CONNECT_FAILED", "DISCONNECT"]
        assert (recs[1].status, recs[1].error) == (
            408, "request head not received within 0.3 s")
        assert fleet["m1"].conns == set()

    with_fleet(go, timed_config(header_timeout=0.3))


def test_a_body_that_stops_coming_is_answered_408_at_the_body_timeout() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        got = await raw_exchange(m1.address, m1.port, (
            b"POST /logs HTTP/1.1\r\nHost: x\r\nX-Sephb-Client: b1\r\n"
            b"Content-Length: 100\r\n\r\n{\"logs\": ["))
        assert got.startswith(b"HTTP/1.1 408 "), got[:80]
        await disconnects(fleet, "b1")
        recs = [r for r in fleet.records if r.client == "b1"]
        assert [r.event for r in recs] == ["CONNECT", "UPLOAD_LOGS", "CONNECT_FAILED",
                                           "DISCONNECT"]
        assert recs[1].bytes_in is not None and recs[1].bytes_in > 10
        assert recs[2].status == 408 and "no byte of it for 0.3 s" in (recs[2].error or "")

    with_fleet(go, timed_config(body_timeout=0.3))


def test_idle_connections_are_closed_at_the_idle_timeout() -> None:
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        # Never a byte: closed, and its DISCONNECT says why.
        reader, writer = await asyncio.open_connection(m1.address, m1.port)
        assert await reader.read() == b""
        writer.close()
        # Silent between two requests of a keep-alive connection: the same.
        async with session("k1") as s:
            async with s.get(base(fleet) + wire.INDEX_PATH) as r:
                assert r.status == 200
                await r.read()  # (an unread answer makes aiohttp close the connection)
            end = (await disconnects(fleet, "k1"))[0]
        assert end.error == "idle for 0.3 s: closed by the server"
        assert events(fleet, "k1") == ["CONNECT", "GET_INDEX", "INDEX_RECEIVED",
                                       "DISCONNECT"]
        first = next(r for r in fleet.records if r.event == "DISCONNECT")
        assert first.error == "idle for 0.3 s: closed by the server"

    with_fleet(go, timed_config(idle_timeout=0.3))


def test_held_and_stalled_requests_outlive_the_timeouts() -> None:
    """A held push and a stalled request are the server's doing: a connection opened
    after them idles out, and they are still there."""
    async def go(fleet: Fleet) -> None:
        m1 = fleet["m1"]
        await m1.set_fault("stall", wire.URLS_PATH)
        async with session("p1") as push, session("s1") as stall:
            held = asyncio.create_task(push.get(base(fleet) + wire.PUSH_PATH))
            stalled = asyncio.create_task(stall.get(base(fleet) + wire.URLS_PATH))
            await fleet.recorder.wait_for(lambda r: r.event in ("HOLD", "GET_URLS"),
                                          count=2)
            reader, writer = await asyncio.open_connection(m1.address, m1.port)
            assert await reader.read() == b""  # idled out
            writer.close()
            await fleet.recorder.wait_for(
                lambda r: r.event == "DISCONNECT" and r.error is not None
                and r.error.startswith("idle for"))
            assert m1.held == 1
            assert {c.client for c in m1.conns} == {"p1", "s1"}
            fleet.publish()
            async with await held as r:
                assert r.status == 200
            stalled.cancel()
        await disconnects(fleet, "s1")
        assert events(fleet, "p1")[:4] == ["CONNECT", "HOLD", "POLICY_PUSHED",
                                           "DISCONNECT"]
        # the client gave the stalled request up: the table's timeout of GET_URLS
        assert events(fleet, "s1") == ["CONNECT", "GET_URLS", "REQUEST_FAILED",
                                       "DISCONNECT"]

    with_fleet(go, timed_config(header_timeout=0.2, body_timeout=0.2, idle_timeout=0.2))


def test_accepted_logs_stay_on_disk_and_the_state_streams_their_digests() -> None:
    cfg = fleet_config(managers=1, gup=False)
    data = "x" * 6_000_000
    uploads = 6

    async def go(fleet: Fleet) -> None:
        assert fleet.control is not None
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            async with session("big") as s:
                for i in range(uploads):
                    body = msgspec.json.encode({"logs": [{"id": f"big-{i}", "data": data}]})
                    async with s.post(base(fleet) + wire.LOGS_PATH, data=body) as r:
                        assert r.status == 200
                    del body
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
            # 36 MB accepted; what stays in memory is ids and digests
            assert kept < 8_000_000, kept
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            async with aiohttp.ClientSession() as s, s.get(
                    fleet.control.url + "/state") as r:
                assert r.headers.get("Transfer-Encoding") == "chunked"  # streamed
                state = await r.json()
            peak = tracemalloc.get_traced_memory()[1] - before
            assert peak < 8_000_000, peak
        finally:
            tracemalloc.stop()
        digest = hashlib.sha256(data.encode()).hexdigest()
        assert state["clients"]["big"]["logs"] == [
            {"id": f"big-{i}", "server": "m1", "t": log["t"], "size": len(data),
             "sha256": digest} for i, log in enumerate(state["clients"]["big"]["logs"])]
        assert len(state["clients"]["big"]["logs"]) == uploads
        # The data is still there, read back from the site's database.
        stored = fleet.logs("big")
        assert [lg.id for lg in stored] == [f"big-{i}" for i in range(uploads)]
        assert stored[-1].data == data and stored[0].sha256 == digest

    with_fleet(go, cfg)


def test_a_client_id_is_trusted_and_a_spoofed_upload_shows_as_differing() -> None:
    """X-Sephb-Client is the client's identity (docs/wire-profile.md, "Client
    identity"): whoever sends a client's id uploads as that client. The client's own
    upload of the same id is then acknowledged and dropped as a duplicate; the site
    counts it as ``differing`` because its bytes are not the stored ones."""
    async def go(fleet: Fleet) -> None:
        url = base(fleet) + wire.LOGS_PATH
        forged = {"logs": [{"id": "v-1", "data": "forged"}]}
        # another process, sending the victim's id
        async with session("victim") as spoofer, spoofer.post(url, json=forged) as r:
            assert await r.json() == {"acked": ["v-1"]}
        async with session("victim") as victim:
            body = {"logs": [{"id": "v-1", "data": "real"}, {"id": "v-2", "data": "b"}]}
            async with victim.post(url, json=body) as r:
                assert await r.json() == {"acked": ["v-1", "v-2"]}
            async with victim.post(url, json={"logs": [{"id": "v-2", "data": "b"}]}) as r:
                assert await r.json() == {"acked": ["v-2"]}
        acks = [(r.ids, r.duplicates) for r in fleet.records if r.event == "LOGS_ACKED"]
        assert acks == [(["v-1"], []), (["v-1", "v-2"], ["v-1"]), (["v-2"], ["v-2"])]
        stored = fleet.logs("victim")
        assert [(lg.id, lg.data, lg.differing) for lg in stored] == [
            ("v-1", "forged", 1), ("v-2", "b", 0)]  # an identical re-send is no alarm
        logs = fleet.state()["clients"]["victim"]["logs"]
        assert [lg.get("differing") for lg in logs] == [1, None]

    with_fleet(go, fleet_config(managers=1, gup=False))
    profile = (ROOT / "docs" / "wire-profile.md").read_text()
    section = profile.split("### Client identity", 1)[1].split("\n## ", 1)[0]
    assert "X-Sephb-Client" in section and "differing" in section
    assert "hardware id" in section and "duplicate" in section


def test_the_control_api_answers_only_requests_addressed_to_it() -> None:
    async def go(fleet: Fleet) -> None:
        assert fleet.control is not None
        ctl = fleet.control
        own = f"{ctl.address}:{ctl.port}"
        async with aiohttp.ClientSession() as s:
            for headers in ({"Host": f"evil.example:{ctl.port}"},  # DNS rebinding
                            {"Host": f"localhost:{ctl.port}"},
                            {"Origin": "http://evil.example"},  # a page's form or fetch
                            {"Origin": "null"},
                            {"Sec-Fetch-Site": "cross-site"}):
                async with s.post(ctl.url + "/m1/fault", json={"mode": "error"},
                                  headers=headers) as r:
                    assert r.status == 403, headers
                    err = (await r.json())["error"]
                    assert f"Host {own}" in err and "web page" in err
                async with s.get(ctl.url + "/state", headers=headers) as r:
                    assert r.status == 403
            assert fleet["m1"].faults == {}  # none of them got through
            # Its own origin, and a request from no page at all, are served.
            async with s.post(ctl.url + "/m1/fault", json={"mode": "error"}, headers={
                    "Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"}) as r:
                assert r.status == 200
            assert fleet["m1"].faults == {None: Fault.ERROR}
        # Without a Host header at all (HTTP/1.0): refused too.
        got = await raw_exchange(ctl.address, ctl.port,
                                 b"GET /control/state HTTP/1.0\r\n\r\n")
        assert got.startswith(b"HTTP/1.0 403 ") and b"no Host header" in got

    with_fleet(go, fleet_config(managers=1, gup=False))


# --- trace files ----------------------------------------------------------------------


def test_the_fleet_trace_file_reads_back_as_the_kept_records(tmp_path: Path) -> None:
    """...after its header, which names the clock's time scale and the manager."""
    for name in ("t.ndjson", "t.ndjson.gz"):
        path = tmp_path / name
        kept: list[Record] = []

        async def go(fleet: Fleet, kept: list[Record] = kept) -> None:
            await pull_checkin(fleet, "c1")
            await disconnects(fleet, "c1")
            kept.extend(fleet.records)

        with_fleet(go, trace=str(path), clock=Clock(0.002))
        if name.endswith(".gz"):
            with gzip.open(path) as f:
                assert f.read(1) == b"{"
        assert read_header(path) == TraceHeader(0.002, "manager")
        assert list(read_trace(path)) == kept


# --- control API ----------------------------------------------------------------------


def test_control_api_over_http() -> None:
    async def go(fleet: Fleet) -> None:
        assert fleet.control is not None
        ctl = fleet.control.url
        async with aiohttp.ClientSession() as s:
            async def post(path: str, body: Any = None) -> tuple[int, Any]:
                async with s.post(ctl + path, json=body) as r:
                    return r.status, await r.json()

            assert await post("/m1/fault", {"mode": "error", "path": "/urls"}) == (
                200, {**fleet["m1"].state(), "server": "m1"})
            assert fleet["m1"].faults == {"/urls": Fault.ERROR}
            status, body = await post("/m1/fault", {"mode": "melt"})
            assert status == 400 and "melt" in body["error"]
            status, body = await post("/m9/fault", {"mode": "up"})
            assert status == 404 and "no server named 'm9'" in body["error"]
            status, body = await post("/m1/fault", {"mode": "up", "colour": 1})
            assert status == 400 and "colour" in body["error"]
            await post("/m1/fault", {"mode": "up"})
            assert fleet["m1"].faults == {}
            await post("/m1/fault", {"mode": "refuse"})
            assert not fleet["m1"].listening
            await post("/m1/fault", {"mode": "up"})
            assert fleet["m1"].listening

            status, body = await post("/m1/policy", {"location": "Branch", "source": "gup"})
            assert status == 200 and body["policy"]["locations"] == {"Branch": "gup"}
            status, body = await post("/m1/policy", {"source": "cdn"})
            assert status == 400

            async with session("p1") as c:
                held = asyncio.create_task(c.get(base(fleet) + wire.PUSH_PATH))
                await fleet.recorder.wait_for(lambda r: r.event == "HOLD")
                status, body = await post("/publish")
                assert status == 200 and body["content"] == 2 and body["notified"] == 1
                async with await held as r:
                    assert (await r.json())["serial"] == body["serial"]
                held = asyncio.create_task(c.get(base(fleet) + wire.PUSH_PATH))
                await fleet.recorder.wait_for(lambda r: r.event == "HOLD", count=2)
                assert await post("/publish", {"push": False}) == (
                    200, {"serial": fleet.site.serial, "content": 3, "notified": 0})
                assert await post("/push", {"server": "m1"}) == (
                    200, {"serial": fleet.site.serial, "notified": 1})
                async with await held as r:
                    assert r.status == 200
                status, body = await post("/push", {"server": "m7"})
                assert status == 404
                held = asyncio.create_task(c.get(base(fleet) + wire.PUSH_PATH))
                await fleet.recorder.wait_for(lambda r: r.event == "HOLD", count=3)
                assert await post("/m1/drop") == (200, {"server": "m1", "dropped": 1})
                with pytest.raises(aiohttp.ServerDisconnectedError):
                    await held

            await pull_checkin(fleet, "c1")
            async with s.get(ctl + "/state") as r:
                state = await r.json()
            assert [lg["id"] for lg in state["clients"]["c1"]["logs"]] == ["c1-0", "c1-1"]
            assert state["content"] == 3 and state["servers"]["m2"]["port"] == 8014
            async with s.get(ctl + "/trace", params={"client": "c1"}) as r:
                assert r.content_type == "application/x-ndjson"
                lines = (await r.read()).splitlines()
            assert lines and all(b'"client":"c1"' in ln for ln in lines)
            assert b'"event":"LOGS_ACKED"' in b"".join(lines)

    with_fleet(go)


# --- the manager process --------------------------------------------------------------


@pytest.mark.parametrize("listen", [False, True])
def test_manager_process_prints_its_servers_and_stops_on_sigterm(tmp_path: Path,
                                                                 listen: bool) -> None:
    a = addresses(4)
    cfg = tmp_path / "fleet.toml"
    cfg.write_text(f"""
[[manager]]
name = "m1"
address = "{a[0]}"
priority = 1
[[manager]]
name = "m2"
address = "{a[1]}"
priority = 2
[gup]
address = "{a[2]}"
""")
    trace = tmp_path / "trace.ndjson"
    code = ("import sys; from sephb.conformance.site import run_manager_process as r; "
            f"sys.exit(r({str(cfg)!r}, listen={a[3] if listen else None!r}, "
            f"time_scale=0.001, trace_path={str(trace)!r}))")
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(4)]
            fields = [ln.split() for ln in lines]
            if listen:  # every server on one address: m2 finds 8014 taken by m1
                assert [f[:2] for f in fields] == [
                    ["m1", "manager"], ["m2", "manager"], ["gup", "gup"],
                    ["control", "control"]], lines
                assert fields[0][2] == f"{a[3]}:8014" and fields[2][2] == f"{a[3]}:2967"
                assert fields[1][2].startswith(f"{a[3]}:")
                assert "(port 8014 was taken; using an ephemeral port)" in lines[1]
            else:
                assert [f[:3] for f in fields[:3]] == [
                    ["m1", "manager", f"{a[0]}:8014"], ["m2", "manager", f"{a[1]}:8014"],
                    ["gup", "gup", f"{a[2]}:2967"]], lines
            assert fields[3][:2] == ["control", "control"], lines
            assert fields[3][2].startswith("127.0.0.1:")
            m1 = a[3] if listen else a[0]
            with socket.create_connection((m1, 8014)) as sock:
                sock.sendall(raw_get(wire.INDEX_PATH, "proc"))
                with sock.makefile("rb") as answer:
                    assert answer.readline().startswith(b"HTTP/1.1 200 ")
            proc.terminate()
            assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
    assert [r.event for r in read_trace(trace)] == [
        "CONNECT", "GET_INDEX", "INDEX_RECEIVED", "DISCONNECT"]
    assert trace.read_bytes().startswith(  # `sephb manager --trace`: its header first
        b'{"sephb":"trace","version":1,"time_scale":0.001,"writer":"manager"}\n')


def test_manager_process_refuses_bad_arguments(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet.toml"
    cfg.write_text('[[manager]]\nname = "m1"\naddress = "10.1.2.3"\n')
    with pytest.raises(ConfigError, match=r"fleet.toml:3: <manager\[1\].address> "
                       r"10.1.2.3 is outside 127.0.0.0/8; pass --listen"):
        run_manager_process(str(cfg), listen=None, time_scale=1.0, trace_path=None)
    with pytest.raises(UsageError, match="--time-scale 0"):
        run_manager_process(str(cfg), listen=None, time_scale=0, trace_path=None)
    with pytest.raises(UsageError, match="--listen 'nowhere': expected an IPv4"):
        run_manager_process(str(cfg), listen="nowhere", time_scale=1, trace_path=None)
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        run_manager_process(str(tmp_path / "missing.toml"), listen=None, time_scale=1,
                            trace_path=None)


# --- fleet config ---------------------------------------------------------------------


def test_the_example_config_has_three_managers_and_a_gup() -> None:
    cfg = load_config(str(ROOT / "conformance" / "examples" / "managers.toml"))
    assert [(m.name, m.address, m.port, m.priority) for m in cfg.managers] == [
        ("m1", "127.0.0.2", 8014, 1), ("m2", "127.0.0.3", 8014, 2),
        ("m3", "127.0.0.5", 8015, 1)]
    assert cfg.gup is not None and (cfg.gup.address, cfg.gup.port) == ("127.0.0.4", 2967)
    assert cfg.managers[0].locations["Branch"] is Source.GUP
    assert apply_listen(cfg, None) is cfg


def test_listen_rebinds_every_server_on_one_address() -> None:
    cfg = FleetConfig.loopback(["127.0.0.2", "127.0.0.3"], gup="127.0.0.4")
    moved = apply_listen(cfg, "0.0.0.0")
    assert {s.address for s in moved.servers} == {"0.0.0.0"}
    assert [s.port for s in moved.servers] == [8014, 8014, 2967]


CONFIG_ERRORS = [
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\nport = "8014"\n',
     r"x.toml:4: <manager\[1\].port> expected an integer 0..65535, got '8014'"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\nport = true\n',
     r"x.toml:4: <manager\[1\].port> expected an integer 0..65535, got True"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n\n[[manager]]\nname = "m1"\n'
     'address = "127.0.0.3"\n', r"x.toml:6: <manager\[2\].name> name 'm1' is already used"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n[[manager]]\nname = "m2"\n'
     'address = "127.0.0.2"\n', r"x.toml:4: <manager\[2\].port> 127.0.0.2:8014 is already"),
    ('[[manager]]\nname = "m1"\naddress = "localhost"\n',
     r"x.toml:3: <manager\[1\].address> expected an IPv4 address"),
    ('[[manager]]\naddress = "127.0.0.2"\n',
     r"x.toml:1: <manager\[1\]> missing key 'name'"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\nsource = "gup"\n',
     r"x.toml:4: <manager\[1\].source> source 'gup' needs a \[gup\] table"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\nlocations = { Home = "cdn" }\n',
     r"x.toml:4: <manager\[1\].locations.Home> expected one of manager, gup, none"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n[manager.locations]\n'
     'Home = "gup"\n', r"x.toml:5: <manager\[1\].locations.Home> source 'gup' needs"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\nprio = 1\n',
     r"x.toml:4: <manager\[1\].prio> unknown key \(expected one of: address"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\npriority = 0\n',
     r"x.toml:4: <manager\[1\].priority> expected an integer 1..99"),
    ('[site]\nserial = "today"\n[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n',
     r"x.toml:2: <site.serial> policy serial 'today' is not like"),
    ('[site]\nfiles = ["../etc/passwd"]\n[[manager]]\nname="m1"\naddress="127.0.0.2"\n',
     r"x.toml:2: <site.files> expected a non-empty list of distinct file names"),
    ('[site]\nmax_upload = 10\n[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n',
     r"x.toml:2: <site.max_upload> expected an integer 1024.."),
    ('[site]\ncontent = 1\n', r"x.toml: <manager> at least one \[\[manager\]\] table"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n[control]\naddress = "10.0.0.1"\n',
     r"x.toml:5: <control.address> 10.0.0.1 is outside 127.0.0.0/8"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n[gup]\naddress = "127.0.0.3"\n'
     'name = "m1"\n', r"x.toml:6: <gup.name> name 'm1' is already used by manager\[1\]"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n[extra]\n',
     r"x.toml:4: <extra> unknown key \(expected one of: control, gup, manager, site\)"),
    ('[site]\nheader_timeout = 0\n[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n',
     r"x.toml:2: <site.header_timeout> expected seconds, a number 0.01..86400, got 0$"),
    ('[site]\nidle_timeout = "60"\n[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n',
     r"x.toml:2: <site.idle_timeout> expected seconds, a number 0.01..86400, got '60'"),
    ('[site]\nbody_timeout = nan\n[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n',
     r"x.toml:2: <site.body_timeout> expected seconds, a number 0.01..86400, got nan"),
    ('[[manager]\nname = "m1"\n', r"x.toml:1: not valid TOML"),
    ('manager = 3\n', r"x.toml: <manager> at least one"),
    # msgspec's path names no dict key and no line: the scan finds both
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n[[manager]]\nname = "m2"\n'
     'address = "127.0.0.3"\nlocations = { A = "gup", B = "cdn" }\n',
     r"x.toml:7: <manager\[2\].locations.B> expected one of manager, gup, none, "
     r"got 'cdn'$"),
    ('x = 1\n[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n',
     r"x.toml:1: <x> unknown key \(expected one of: control, gup, manager, site\)"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.02"\n',
     r"x.toml:3: <manager\[1\].address> expected an IPv4 address like 127.0.0.2, "
     r"got '127.0.0.02'$"),
    ('[[manager]]\nname = 3\naddress = "127.0.0.2"\n',
     r"x.toml:2: <manager\[1\].name> expected a string, got 3$"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n[gup]\nname = "g"\n',
     r"x.toml:4: <gup> missing key 'address'$"),
    ('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n[site]\nfiles = ["a", "a"]\n',
     r"x.toml:5: <site.files> expected a non-empty list of distinct file names "
     r"\(\[A-Za-z0-9._-\], at most 64 characters\), got \['a', 'a'\]$"),
]


@pytest.mark.parametrize(("text", "message"), CONFIG_ERRORS)
def test_config_errors_name_file_line_and_element(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(text, "x.toml")
    assert "\n" not in str(info.value)


def test_config_defaults() -> None:
    cfg = parse_config('[[manager]]\nname = "m1"\naddress = "127.0.0.2"\n')
    m = cfg.managers[0]
    assert (m.port, m.priority, m.source, dict(m.locations)) == (8014, 1, Source.MANAGER,
                                                                 {})
    assert cfg.gup is None and cfg.control == ControlSpec("127.0.0.1", 0)
    assert (cfg.content, cfg.files, cfg.content_size) == (1, ("avdefs.zip",), 65536)
    assert (cfg.header_timeout, cfg.body_timeout, cfg.idle_timeout) == (10.0, 10.0, 60.0)
    timed = parse_config('[site]\nheader_timeout = 2\nidle_timeout = 0.5\n[[manager]]\n'
                         'name = "m1"\naddress = "127.0.0.2"\n')
    assert (timed.header_timeout, timed.idle_timeout) == (2.0, 0.5)


def test_routes_cover_every_request_action_and_are_served() -> None:
    served = {r.action for r in wire.ROUTES}
    assert served == set(Action) - {Action.CONNECT, Action.DISCONNECT}
    assert {r.answer for r in wire.ROUTES} <= set(Event)
