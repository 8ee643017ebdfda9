"""``sephb monitor`` between real processes: `sephb manager` upstream, the monitor's
relays, `sephb client` (the reference, then a seeded fault) through them; the live
verdict, and the same verdict offline from the trace the monitor wrote."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_e2e import SCALE, SEPHB, client, running_manager, sylink

from sephb.conformance.traces.sylink import load
from sephb.model.protocol import Mode

#: The relays' addresses: a /24 the other tests' addresses (netutil) never reach.
LISTEN_BASE = f"127.{20 + os.getpid() % 200}.250.0"


class Lines:
    """A process's output lines, read as they come (a thread), to wait on."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._seen = threading.Condition()
        assert proc.stdout is not None
        out = proc.stdout

        def read() -> None:
            for line in out:
                with self._seen:
                    self.lines.append(line.rstrip("\n"))
                    self._seen.notify_all()
            with self._seen:
                self.lines.append("<eof>")
                self._seen.notify_all()

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, text: str, guard_s: float = 60) -> str:
        """The first line holding ``text``; the guard only stops a hang."""
        end = time.monotonic() + guard_s
        with self._seen:
            while True:
                hit = next((ln for ln in self.lines if text in ln), None)
                if hit is not None:
                    return hit
                assert "<eof>" not in self.lines, f"exited before {text!r}: {self.lines}"
                left = end - time.monotonic()
                assert left > 0, f"no {text!r} in {self.lines}"
                self._seen.wait(left)


@contextmanager
def monitor(tmp: Path, upstream: Path, *extra: str) -> Iterator[tuple[
        subprocess.Popen[str], Lines, Path, Path]]:
    mine, trace = tmp / "client-sylink.xml", tmp / "monitor.ndjson"
    proc = subprocess.Popen(
        [*SEPHB, "monitor", "--upstream", str(upstream), "--client-sylink", str(mine),
         "--listen-base", LISTEN_BASE, "--trace", str(trace), "--time-scale", SCALE,
         *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = Lines(proc)
    try:
        lines.wait_for("clients: use")
        yield proc, lines, mine, trace
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=30)


def offline(trace: Path, sy: Path) -> tuple[int, dict[str, object]]:
    res = subprocess.run([*SEPHB, "validate", str(trace), "--data", "--sylink", str(sy),
                          "--json"], capture_output=True, text=True, timeout=120)
    return res.returncode, json.loads(res.stdout)


def same_summary(live: list[str], trace: Path, sy: Path) -> None:
    """The monitor's closing summary is the one `sephb validate --data --sylink`
    prints for its trace: the same counts of events, clients and violations."""
    res = subprocess.run([*SEPHB, "validate", str(trace), "--data", "--sylink", str(sy)],
                         capture_output=True, text=True, timeout=120)
    line = re.compile(r"^\d[\d,]* events?, ")
    assert [ln for ln in live if line.match(ln)] == [
        ln for ln in res.stdout.splitlines() if line.match(ln)], (live, res.stdout)


def test_the_reference_client_through_the_monitor_is_conformant_live_and_offline(
        tmp_path: Path) -> None:
    with running_manager(tmp_path, SCALE) as mgr, \
            monitor(tmp_path, sylink(tmp_path, mgr, Mode.PULL)) as (proc, lines, mine,
                                                                   trace):
        relays = load(mine)
        # The client is pointed at the relays, on the monitor's addresses.
        assert all(s.address.startswith(LISTEN_BASE.rsplit(".", 1)[0])
                   for s in relays.servers)
        client(tmp_path, mine, "--heartbeats", "2")
        code = stop(proc)
    out = "\n".join(lines.lines)
    assert code == 0, out
    assert "NON-CONFORMANT" not in out
    # the closing summary: one client, none violating
    assert re.search(r"^\d[\d,]* events, 1 client, 0 violating", out, re.M), out
    # Offline, the trace the monitor wrote: the same verdict.
    code, doc = offline(trace, mine)
    assert code == 0, doc
    same_summary(lines.lines, trace, mine)
    events = [json.loads(line)["event"] for line in trace.read_text().splitlines()[1:]]
    # what the relays saw: the check-ins, content fetched through them too
    assert events.count("INDEX_RECEIVED") >= 2 and "CONTENT_RECEIVED" in events


def test_a_seeded_fault_is_shown_live_with_its_requirement_and_offline_the_same(
        tmp_path: Path) -> None:
    har = tmp_path / "live.har"
    with running_manager(tmp_path, SCALE) as mgr, \
            monitor(tmp_path, sylink(tmp_path, mgr, Mode.PULL), "--har", str(har)) as (
                proc, lines, mine, trace):
        client(tmp_path, mine, "--heartbeats", "1", "--fault", "sensors-before-logs",
               check=False)
        # live: said while the monitor runs, before it is stopped
        said = lines.wait_for("NON-CONFORMANT")
        code = stop(proc)
    assert code == 1, lines.lines
    requirement = next(w.rstrip(":") for w in said.split() if w.startswith("REQ-"))
    code, doc = offline(trace, mine)
    assert code == 1
    assert requirement in json.dumps(doc)
    same_summary(lines.lines, trace, mine)
    # The HTTP Archive of the same exchanges, read by the HAR reader: the same finding.
    res = subprocess.run([*SEPHB, "validate", str(har), "--data", "--time-scale", SCALE,
                          "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert requirement in res.stdout


@contextmanager
def stalled(tmp: Path, path: str) -> Iterator[tuple[
        Any, subprocess.Popen[str], Lines, Path, Path]]:
    """A manager whose m1 stalls ``path``, and the monitor in front of it (pull)."""
    with running_manager(tmp, SCALE) as mgr, \
            monitor(tmp, sylink(tmp, mgr, Mode.PULL)) as (proc, lines, mine, trace):
        mgr.call("POST", "/control/m1/fault", {"mode": "stall", "path": path})
        yield mgr, proc, lines, mine, trace


def test_a_request_waited_on_for_ever_is_said_presumptively_while_it_waits(
        tmp_path: Path) -> None:
    # The manager stalls GET /urls; a client that never gives a request up waits
    # for ever: no record will ever prove it, so the monitor says it once the request
    # limit (and the tolerance) has passed -- presumptively, while the client waits.
    with stalled(tmp_path, "/urls") as (mgr, proc, lines, mine, _):
        mgr.call("POST", "/control/publish", {"push": False})  # content to fetch
        stuck = subprocess.Popen(
            [*SEPHB, "client", "--sylink", str(mine), "--state-dir",
             str(tmp_path / "stuck"), "--time-scale", SCALE, "--client-id", "stuck",
             "--heartbeats", "1", "--fault", "waits-forever-after-session"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            said = lines.wait_for("presumptively NON-CONFORMANT")
        finally:
            stuck.kill()
            stuck.wait(timeout=20)
        stop(proc)
    assert said.startswith("stuck: ") and "REQ-X-ABORT" in said, said


@pytest.mark.parametrize(("path", "fault", "requirement", "said_why"), [
    # A14: the session limit is when a stalled session is given up, not sooner
    ("/index.dat", "gives-up-session-early", "REQ-2-TIMEOUT-30000",
     "before the 30000 ms limit"),
    # A12: the same for a request after the session (the offline checker's rule,
    # RequestGiveUp, so the monitor says it live)
    ("/urls", "gives-up-request-early", "REQ-X-ABORT", "request limit"),
])
def test_a_stall_given_up_before_its_limit_is_said_and_one_at_it_is_not(
        tmp_path: Path, path: str, fault: str, requirement: str, said_why: str) -> None:
    # m1 stalls ``path``: the reference client gives it up at the limit (conformant);
    # the seeded fault gives it up early.
    with stalled(tmp_path, path) as (mgr, proc, lines, mine, trace):
        mgr.call("POST", "/control/publish", {"push": False})  # content to fetch
        client(tmp_path, mine, "--heartbeats", "1", cid="ontime")
        client(tmp_path, mine, "--heartbeats", "1", "--fault", fault, cid="early",
               check=False)
        said = lines.wait_for("early: NON-CONFORMANT")
        code = stop(proc)
    assert requirement in said and said_why in said, said
    assert not any(ln.startswith("ontime:") for ln in lines.lines), lines.lines
    assert code == 1
    same_summary(lines.lines, trace, mine)
