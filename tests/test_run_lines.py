"""What `sephb manager` and `sephb client` say as they run, as real processes: the
manager a line per request on stderr, the client a line per check-in on stdout; `-q`
only what failed, `-v` more; a reader that goes away stops neither. A fleet run in
process (the suite's, a test's) says nothing.

Every manager gets loopback addresses of its own (tests/netutil.py), so that port
8014 is free for it; the time scale is 0.001 (a 300 s interval lasts 0.3 s)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from netutil import addresses, run

from sephb.conformance.site import Fleet
from sephb.conformance.site.config import FleetConfig
from sephb.conformance.traces.sylink import Sylink, save

SEPHB = [sys.executable, "-m", "sephb.conformance.cli"]
T = r"\[t=[\d,]+ ms\]"  # the model time each line starts with


@dataclass
class Manager:
    proc: subprocess.Popen[str]
    addrs: list[str]
    control: str
    stderr: Path

    def fault(self, server: str, body: dict[str, str]) -> None:
        req = urllib.request.Request(f"{self.control}/control/{server}/fault",
                                     data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def lines(self) -> list[str]:
        """Its stderr, once it stopped (SIGTERM; it must stop cleanly)."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=20) == 0
        return self.stderr.read_text().splitlines()


@contextmanager
def manager(tmp: Path, *args: str, stderr: int | None = None) -> Iterator[Manager]:
    """`sephb manager` of two managers (m1, m2), until the block ends; its stderr
    goes to a file, or to ``stderr`` when given (a pipe)."""
    addrs = addresses(2)
    cfg = tmp / "managers.toml"
    cfg.write_text("".join(f'[[manager]]\nname = "m{i}"\naddress = "{a}"\npriority = {i}\n'
                           for i, a in enumerate(addrs, 1)) + "[control]\nport = 0\n")
    err = tmp / "manager.err"
    with open(err, "w") as f:
        proc = subprocess.Popen([*SEPHB, "manager", "--config", str(cfg),
                                 "--time-scale", "0.001", *args], stdout=subprocess.PIPE,
                                stderr=f if stderr is None else stderr, text=True)
    try:
        assert proc.stdout is not None
        control = ""
        while not control:  # the start-up lines, on stdout whatever the verbosity
            line = proc.stdout.readline()
            assert line, "the manager exited early"
            if line.startswith("control"):
                control = "http://" + line.split()[2]
        yield Manager(proc, addrs, control, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def client(tmp: Path, addrs: list[str], *args: str, cid: str = "c1",
           heartbeats: int = 2) -> list[str]:
    """`sephb client` of a sylink.xml naming ``addrs`` (priorities 1, 2, ...); its
    stdout lines (it must exit 0 and say nothing on stderr)."""
    sy = tmp / f"sylink-{cid}.xml"
    save(Sylink.build([[a] for a in addrs], heartbeat_s=300), sy)
    res = subprocess.run(
        [*SEPHB, "client", "--sylink", str(sy), "--state-dir", str(tmp / f"st-{cid}"),
         "--client-id", cid, "--heartbeats", str(heartbeats), "--time-scale", "0.001",
         *args], capture_output=True, text=True, timeout=120)
    assert (res.returncode, res.stderr) == (0, ""), res
    return res.stdout.splitlines()


def test_a_line_per_check_in_and_a_line_per_request(tmp_path: Path) -> None:
    with manager(tmp_path) as mgr:
        said = client(tmp_path, mgr.addrs, "--log-bytes", "20000")
        got = mgr.lines()
    m1 = f"{re.escape(mgr.addrs[0])}:8014"
    assert len(said) == 2, said
    assert re.fullmatch(
        rf"{T} check-in 1 via {m1}: completed \(new index, content from {m1}, 3 logs "
        rf"uploaded\); [\d,]+ B in, [\d,]+ B out; next heartbeat in [\d.,]+ s "
        rf"\(t=[\d,]+ ms\)", said[0]), said[0]
    assert re.fullmatch(rf"{T} check-in 2 via {m1}: completed \(index unchanged, 3 logs "
                        rf"uploaded\); .*", said[1]), said[1]
    # the manager: one line per request -- server, client, method, path, status,
    # event, bytes -- and nothing else by default
    assert [re.sub(r"[\d,]+ B", "N B", ln.split("] ", 1)[1]) for ln in got] == [
        "m1 c1: GET /index.dat 200 INDEX_RECEIVED, N B in, N B out",
        "m1 c1: GET /urls 200 URLS_RECEIVED, N B in, N B out",
        "m1 c1: GET /content/1/avdefs.zip 200 CONTENT_RECEIVED, N B in, N B out",
        "m1 c1: POST /logs 200 LOGS_ACKED, N B in, N B out",
        "m1 c1: POST /sensors 200 SENSORS_ACKED, N B in, N B out",
        "m1 c1: GET /index.dat 200 INDEX_RECEIVED, N B in, N B out",
        "m1 c1: POST /logs 200 LOGS_ACKED, N B in, N B out",
        "m1 c1: POST /sensors 200 SENSORS_ACKED, N B in, N B out"]
    assert all(re.match(T, ln) for ln in got)


def test_quiet_says_only_what_failed(tmp_path: Path) -> None:
    with manager(tmp_path, "-q") as mgr:
        assert client(tmp_path, mgr.addrs, "-q", cid="fine") == []
        mgr.fault("m1", {"mode": "error", "path": "/logs"})
        said = client(tmp_path, mgr.addrs, "-q", cid="bad")
        # a path with an escape sequence and a newline: said escaped, on one line
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://{mgr.addrs[0]}:8014/%1b%5b2J%0a", timeout=10)
        got = mgr.lines()
    assert len(said) == 2, said
    for n, line in enumerate(said, 1):
        assert re.fullmatch(
            rf"{T} check-in {n} failed: {re.escape(mgr.addrs[0])}:8014 UPLOAD_LOGS failed "
            r"\(HttpError: .*answered 503\); .*", line), line
    assert len(got) == 3, got
    assert all("m1 bad: POST /logs 503 REQUEST_FAILED" in ln and ln.endswith(
        ": fault error: answered 503 Service Unavailable") for ln in got[:2]), got
    assert " GET /\\x1b[2J\\x0a 404 CONNECT_FAILED, - B in, " in got[2], got


def test_a_client_whose_managers_are_all_down_says_so_each_check_in(
        tmp_path: Path) -> None:
    down = addresses(2)  # nobody listens there
    for args, tried in [((), down[:1]),  # the seed's client tries the first only
                        (("-i", "documented"), down)]:  # this one fails over
        said = client(tmp_path, down, *args, cid=f"down{len(tried)}")
        assert len(said) == 2, said
        for n, line in enumerate(said, 1):
            assert re.match(rf"{T} check-in {n} failed to reach a manager: ", line), line
            for a in tried:
                assert f"{a}:8014 connect failed (ConnectionRefusedError" in line
            assert re.search(r"; 0 B in, 0 B out; next heartbeat in [\d.,]+ s "
                             r"\(t=[\d,]+ ms\)$", line), line
        assert down[1] in said[0] if len(tried) == 2 else down[1] not in said[0]


def test_verbose_says_every_request_and_connection(tmp_path: Path) -> None:
    with manager(tmp_path, "-v") as mgr:
        said = client(tmp_path, mgr.addrs, "-v", heartbeats=1)
        got = mgr.lines()
    steps = [ln.split("] ", 1)[1].split(" ", 2)[:2] for ln in said[:-1]]
    assert steps == [
        ["<", "HEARTBEAT_DUE"], [">", "CONNECT"], ["<", "CONNECTED"], [">", "GET_INDEX"],
        ["<", "INDEX_RECEIVED"], [">", "GET_URLS"], ["<", "URLS_RECEIVED"],
        [">", "DOWNLOAD_MANAGER"], ["<", "CONTENT_RECEIVED"], [">", "UPLOAD_LOGS"],
        ["<", "LOGS_ACKED"], [">", "UPLOAD_SENSORS"], ["<", "SENSORS_ACKED"],
        [">", "DISCONNECT"]], said
    assert "check-in 1 via" in said[-1]
    assert "m1 c1: connection 1 to" in got[0] and got[0].endswith(" opened")
    assert re.search(r"m1 c1: GET /index.dat arrived \(GET_INDEX\), [\d,]+ B$", got[1])
    assert "GET /index.dat 200 INDEX_RECEIVED" in got[2]
    assert re.search(r"connection 1 to .* closed, [\d,]+ B in, [\d,]+ B out", got[-1])
    assert len(got) == 2 + 2 * 5  # a connection, five requests


def test_a_reader_that_goes_away_stops_neither(tmp_path: Path) -> None:
    with manager(tmp_path, stderr=subprocess.PIPE) as mgr:
        assert mgr.proc.stderr is not None
        mgr.proc.stderr.close()  # nobody reads what the manager says
        sy = tmp_path / "sylink.xml"
        save(Sylink.build([[a] for a in mgr.addrs], heartbeat_s=300), sy)
        proc = subprocess.Popen(
            [*SEPHB, "client", "--sylink", str(sy), "--state-dir", str(tmp_path / "st"),
             "--heartbeats", "3", "--time-scale", "0.001", "-v"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # nor what the client says
        assert proc.wait(timeout=120) == 0
        assert proc.stderr.read() == ""
        proc.stderr.close()
        # the manager served every request (its control API still answers)
        with urllib.request.urlopen(mgr.control + "/control/state", timeout=10) as r:
            state = json.loads(r.read())
        assert state["clients"], state
        mgr.proc.send_signal(signal.SIGTERM)
        assert mgr.proc.wait(timeout=20) == 0


def test_a_fleet_in_process_says_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    import aiohttp

    from sephb.conformance.traces import wire

    async def go() -> None:
        async with Fleet(FleetConfig.loopback(addresses(1))) as fleet, \
                aiohttp.ClientSession() as http:
            m1 = fleet["m1"]
            url = f"http://{m1.address}:{m1.port}{wire.INDEX_PATH}"
            async with http.get(url, headers={wire.HEADER_CLIENT: "c1"}) as resp:
                assert resp.status == 200
            await fleet.recorder.wait_for(lambda r: r.event == "INDEX_RECEIVED")

    run(go())
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("command", ["manager", "client"])
def test_help_says_where_the_lines_go(command: str) -> None:
    res = subprocess.run([*SEPHB, command, "--help"], capture_output=True, text=True,
                         timeout=60)
    text = " ".join(res.stdout.split())
    assert res.returncode == 0
    assert ("log each request on stderr" if command == "manager"
            else "says what it does on stdout") in text
    assert "-q, --quiet" in text and "-v, --verbose" in text


def test_a_reader_that_stops_reading_never_stalls_the_writer() -> None:
    # A pipe nobody reads fills up (64 KB on Linux); a write into it would block the
    # manager's servers or the client's heartbeat. The lines are dropped instead,
    # and counted.
    import os

    from sephb.conformance.traces.lines import QUEUE_LINES, LineOut

    r, w = os.pipe()
    try:
        out = LineOut(os.fdopen(w, "w", buffering=1))
        for i in range(QUEUE_LINES * 20):  # (a blocking write would hang here)
            out.say(i, "x" * 100)
        assert out.dropped > 0
        out.drain(0.2)  # the writer is stuck on the full pipe: drain gives up
        first = os.read(r, 200).decode()
        assert first.startswith("[t=0 ms] " + "x" * 100)
    finally:
        os.close(r)
