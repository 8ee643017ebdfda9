"""The conformance suite over the wire: real simulated servers on 127.x addresses,
the reference client (and seeded faults) as processes, at time scale 0.01.

Correctness only: no assertion depends on how long something took."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from sephb.conformance import suite
from sephb.conformance.client.faults import FAULTS
from sephb.conformance.site import Fault
from sephb.conformance.suite import _process, _wire_world
from sephb.conformance.suite import _remote as remote
from sephb.conformance.suite._process import PLACEHOLDERS, ProcessClient, _signals_held
from sephb.conformance.suite._remote import uncoverable, wire_environment
from sephb.conformance.suite._run import run_program
from sephb.conformance.suite._wire_run import run_wire
from sephb.conformance.suite._wire_world import RemoteWorld, Size, measure
from sephb.conformance.suite.oracle import Manager, Oracle
from sephb.conformance.suite.results import RequirementResult, Status, SuiteResult, loads
from sephb.conformance.suite.world import DEFAULT_SITE
from sephb.model.errors import UsageError
from sephb.model.interpretations import get
from sephb.model.protocol import (
    FULL_HEARTBEAT_BYTES,
    IDLE_HEARTBEAT_BYTES,
    Mode,
    Source,
    Switch,
)

REFERENCE = (f"{sys.executable} -m sephb.conformance.cli client --sylink {{sylink}} "
             f"--state-dir {{state_dir}} --time-scale {{time_scale}}")
#: The reference with a log spool: the suite's logs rule is on over the wire.
SPOOLED = REFERENCE + " --log-dir {log_dir}"


def _helpers() -> set[int]:
    """multiprocessing's own helpers, which a run with --jobs starts once and which
    stay, idle, until this process exits: the fork server and the resource tracker
    (the workers themselves end with the run)."""
    from multiprocessing import forkserver, resource_tracker

    pids = {getattr(forkserver._forkserver, "_forkserver_pid", None),
            getattr(resource_tracker._resource_tracker, "_pid", None)}
    return {p for p in pids if p is not None}


def children() -> list[int]:
    """Live (or zombie) child processes of this test process (but multiprocessing's
    helpers, :func:`_helpers`)."""
    me, out = os.getpid(), []
    helpers = _helpers()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == me and int(entry) not in helpers:
            out.append(int(entry))
    return out


def nothing_left() -> None:
    assert not _process._LIVE_CLIENTS and not _wire_world._LIVE_WORLDS
    assert children() == []
    assert not [t for t in threading.enumerate() if t.name == "sephb-wire-fleet"]


def until(world: RemoteWorld, done: Any, intervals: int = 5) -> None:
    """Let model time pass until ``done()`` (at most ``intervals`` intervals)."""
    for _ in range(intervals * 30):
        if done():
            return
        world.advance(world.now + 10_000)
    raise AssertionError("the client never got there")


def refused(address: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((address, port)) != 0


# --- whole runs ------------------------------------------------------------------------


@pytest.mark.parametrize("interp", ["seed", "documented"])
def test_the_reference_client_passes_a_short_wire_run(interp: str) -> None:
    result = run_wire(get(interp), REFERENCE + " -i {interpretation}", max_examples=2,
                      steps=8, directed=False)
    # two Hypothesis cases, then the deadline probes of this reading (directed cases
    # of their own: the reference must pass them over the wire too)
    # (no log spool in this command: the log probe does not apply)
    probes = [p for p in suite.PROBES if not p.logs
              and (not p.failover or get(interp).switches[Switch.FAILOVER])]
    assert result.adapter == "wire" and result.cases == 2
    assert result.directed == len(probes)
    assert result.failures == [], [(f.requirement, f.message, f.steps)
                                   for f in result.failures]
    # (two short cases need not exercise everything: that is the directed cases' job)
    assert Status.FAILED not in {r.status for r in result.requirements}
    # the first check-in of every case is seen: the happy path is covered
    assert result.transitions["IDLE--HEARTBEAT_DUE-->CONNECTING"] >= 2
    # every requirement of the reading is listed; the sizes are measured, or
    # skipped with the reason (the client's own logs decide)
    status = {r.id: r for r in result.requirements}
    assert set(status) == set(suite.requirements_of(get(interp)))
    for rid in ("REQ-SIZE-IDLE", "REQ-SIZE-MAX"):
        r = status[rid]
        assert r.status is Status.PASSED or (
            r.status is Status.SKIPPED and "logs decide" in r.reason), r
    # what the wire cannot show is skipped with its reason, never a failure
    assert "a session that fails before the TCP connection is up" in result.skipped[
        "CONNECTING--CONNECT_FAILED-->IDLE" if interp == "seed"
        else "CONNECTING--CONNECT_FAILED[last_manager]-->IDLE"]
    nothing_left()


@pytest.mark.parametrize(("fault", "extra", "directed"), [
    # the first check-in shows these (every case has one)
    ("sensors-before-logs", "", False),
    ("skips-sensor-upload", "", False),
    ("stays-connected-in-pull", "", False),
    # a data property: the client logs on its own, uploads twice at its second one
    ("uploads-logs-twice", " --log-bytes 1000", True),
    # a timing property, judged with the wire's tolerance: needs a stalled manager,
    # which the suite's directed cases set up
    ("ignores-session-limit", "", True),
    # the process exits on an error answer: a finding (REQ-X-ALIVE), not an error
    ("crashes-on-error", "", True),
    # every start is one: the first heartbeat is due at once (A10)
    ("first-heartbeat-late", "", False),
])
def test_seeded_faults_are_caught_over_the_wire(fault: str, extra: str,
                                                directed: bool) -> None:
    """The probes run only when asked (directed) here: these faults show earlier."""
    result = run_wire(get("seed"), REFERENCE + f" --fault {fault}{extra}",
                      max_examples=3, steps=6, directed=directed, probes=directed)
    assert result.failures, f"{fault} survived"
    f = result.failures[0]
    assert f.requirement == FAULTS[fault].requirement, (f.requirement, f.message)
    assert f.steps and any(s.startswith("state.start(") for s in f.steps)
    assert f.trace and all(r["by"] == "server" for r in f.trace)
    status = {r.id: r.status for r in result.requirements}
    assert status[f.requirement] is Status.FAILED
    assert f"--fault {fault}" in f.replay  # the replay file runs the same command
    nothing_left()


@pytest.mark.parametrize(("fault", "interp"), [
    ("checks-in-late", "seed"),
    ("waits-forever-after-session", "seed"),
    ("answers-push-late", "seed"),
    ("gives-up-session-early", "seed"),
    ("keeps-connection-in-pull", "seed"),
    ("never-fails-over", "documented"),
    # the push probe's hold runs out with no 204 asked for
    ("no-push-heartbeat", "documented"),
    # the gup-down probe: a failed GUP download leaves no record over the wire
    ("no-gup-fallback", "documented"),
    ("waits-forever-after-session", "documented"),
    # only a site whose GUP is not on 2967 shows it: the other-ports probe's
    ("gup-port-ignored", "seed"),
])
def test_deadline_faults_are_caught_by_the_probes_over_the_wire(fault: str,
                                                               interp: str) -> None:
    """Each breaks a deadline (model/deadlines.py), not an order: one short random
    case, then the deadline probes, which must catch it with a FAILED requirement."""
    result = run_wire(get(interp), REFERENCE + f" -i {{interpretation}} --fault {fault}",
                      max_examples=1, steps=3, directed=False)
    assert result.failures, f"{fault} survived under {interp}"
    f = result.failures[0]
    assert f.requirement == FAULTS[fault].requirement, (f.requirement, f.message)
    status = {r.id: r.status for r in result.requirements}
    assert status[f.requirement] is Status.FAILED
    assert not result.conformant
    nothing_left()


def machine_state(env: suite.Environment, interp: str = "seed") -> Any:
    """A suite state machine of ``env``, for a program written as its rules."""
    reading = get(interp)
    machine = suite.make_machine(reading, env, suite.Coverage(
        {r.name: 0 for r in reading.rows()}))
    return machine()


def test_a_log_queue_kept_in_memory_is_caught_by_the_log_probe() -> None:
    """Random cases rarely kill a client between taking its spool in and the
    acknowledgement; the log-durability probe does it on purpose."""
    result = run_wire(get("seed"), SPOOLED + " --volatile-logs", max_examples=1,
                      steps=3, directed=False)
    assert result.failures, "a log queue kept in memory survived"
    f = result.failures[0]
    assert f.requirement == "REQ-5-LOGS" and "lost" in f.message, f.message
    assert "state.restart()" in f.steps
    nothing_left()


@pytest.mark.parametrize("interp", ["seed", "documented"])
def test_a_stalled_session_the_server_drops_is_not_the_client_giving_up(
        interp: str) -> None:
    """Found by a client written from the docs alone (and the reference failed it
    too): every manager stalls index.dat, then drops its connections while the
    first check-in waits. The server records the stall it ended as its own failure
    ("dropped by the server"); the adapter read every stall failure as the client
    giving its session up, so the reference was NON-CONFORMANT for giving it up
    before the limit (A14)."""
    env = wire_environment(REFERENCE + f" -i {interp}")
    machine = suite.make_machine(get(interp), env, suite.Coverage(
        {r.name: 0 for r in get(interp).rows()}))
    managers = range(len(suite.SITE))
    run_program(machine, [
        *(f"state.fault(m={m}, fault=Fault.STALL, path='/index.dat')" for m in managers),
        "state.start(mode=Mode.PULL)", *(f"state.drop(m={m})" for m in managers),
        "state.teardown()"])
    nothing_left()


def test_the_reference_goes_on_after_a_stalled_gup_download() -> None:
    # Found by the wire run (in process a stalled side download fails at once): the
    # program, as the suite's rules.
    env = wire_environment(REFERENCE)
    state = machine_state(env)
    try:
        state.start(mode=Mode.PULL)
        state.gup(up=False, fault=Fault.STALL)
        state.policy(location="Default", source=Source.GUP)
        state.publish()
        state.wait(dt=400_000)
    finally:
        env.close(state.world, state.client)  # not teardown: no Hypothesis test here
    nothing_left()


# --- the client as a process -----------------------------------------------------------


def test_restart_kills_the_process_and_starts_it_on_the_same_state() -> None:
    world = RemoteWorld(time_scale=0.01, tolerance_ms=10_000)
    client = ProcessClient(world, REFERENCE, Mode.PULL)
    try:
        client.start(world.now)
        first = client.pids[-1]
        assert client.alive()
        # the start waited for the first check-in: its records are there
        got = [r["event"] for r in world.records]
        assert got[0] == "CONNECT" and "SENSORS_ACKED" in got and got[-1] == "DISCONNECT"
        index = client.state_dir / "index.json"
        assert index.exists()  # the client saved what it downloaded
        # one interval later the second check-in is idle, and measured
        until(world, lambda: len(world.sizes()) == 1)
        sizes = world.sizes()
        assert [s.kind for s in sizes] == ["idle"]
        assert IDLE_HEARTBEAT_BYTES[0] <= sizes[0].bytes <= IDLE_HEARTBEAT_BYTES[1]

        before = len(world.records)
        client.restart(world.now)
        second = client.pids[-1]
        assert second != first and client.alive()
        assert first not in children()  # killed and reaped: no zombie
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
        # the new process checked in at once, from the kept state: nothing to fetch
        new = world.records[before:]
        assert [r["event"] for r in new][:3] == ["CONNECT", "GET_INDEX", "INDEX_RECEIVED"]
        assert next(r for r in new if r["event"] == "INDEX_RECEIVED")["changed"] is False
        assert client.state_dir == index.parent and index.exists()
        assert client.exits == []  # nothing died on its own
    finally:
        client.close()
        world.close()
    assert not client.state_dir.exists()
    assert refused(world.managers[0].address, world.managers[0].port)
    nothing_left()


def test_a_client_that_dies_is_reported() -> None:
    env = wire_environment("sh -c 'echo cannot start >&2; exit 3' {sylink} {state_dir} "
                           "{time_scale}")
    world = env.world(DEFAULT_SITE)
    client = env.client(world, get("seed"), Mode.PULL)
    assert isinstance(client, ProcessClient)
    client.startup_s = 5.0  # the wait ends when the process exits; room for a slow fork
    with pytest.raises(suite.ClientGone, match="exited with status 3 as it started, "
                       "before any request; its output ends: cannot start"):
        client.start(0)
    env.close(world, client)
    assert env.observations.notes == [
        "the client exited on its own with status 3; its output ends: cannot start"]
    nothing_left()


def test_sigterm_during_a_run_leaves_nothing_behind(tmp_path: Path) -> None:
    # A run in its own interpreter, terminated while a client process is up.
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from sephb.conformance.suite import run_wire\n"
        "from sephb.model.interpretations import get\n"
        "if __name__ == '__main__':  # its job workers import this module\n"
        f"    run_wire(get('seed'), {REFERENCE!r}, max_examples=50, steps=30, jobs=2)\n")
    import subprocess

    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        pids = _wait_for_client(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"client {pid} outlived the suite"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_held_around_a_spawn_arrive_after_it(signum: int) -> None:
    """A client is started inside ``_signals_held``: an interrupt that comes then
    reaches its usual handler only once the block is over (inside Popen, after the
    fork, it would have orphaned the child)."""
    class Stop(Exception):
        pass

    def stop(signum: int, frame: object) -> None:
        raise Stop(signum)

    before = signal.signal(signum, stop)
    went_on = []
    try:
        with pytest.raises(Stop), _signals_held():
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # the handler runs between bytecodes: give it some
                went_on.append(True)
        assert len(went_on) == 1000  # the whole block ran first
        assert signal.getsignal(signum) is stop  # and the handler is back
    finally:
        signal.signal(signum, before)


def _wait_for_client(parent: int) -> list[int]:
    """The pids of the clients under test among ``parent``'s descendants (its job
    workers' children), once there is one."""
    import time

    for _ in range(2000):
        tree, kids = {parent}, []
        for _ in range(4):  # run -> fork server -> worker -> client
            tree |= {int(p) for p in os.listdir("/proc") if p.isdigit()
                     and _ppid(int(p)) in tree}
        for pid in tree - {parent}:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"client\x00--sylink" in cmd:
                kids.append(pid)
        if kids:
            return kids
        time.sleep(0.01)
    raise AssertionError("the run never started a client")


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


# --- the world over real servers -------------------------------------------------------


def test_world_faults_map_onto_the_servers() -> None:
    world = RemoteWorld(time_scale=0.01, tolerance_ms=10_000)
    try:
        m1 = world.managers[0]
        sim = world.fleet[m1.name]
        world.set_fault(0, None, Fault.REFUSE)
        assert m1.unreachable and refused(m1.address, m1.port)
        world.set_fault(0, "/urls", Fault.ERROR)  # a path fault under a refusal
        assert sim.faults == {None: Fault.REFUSE, "/urls": Fault.ERROR}
        world.heal()
        assert sim.faults == {} and not refused(m1.address, m1.port)
        # no wire equivalent for a connect that never completes: stall everything
        world.only_fault(1, None, Fault.BLACKHOLE)
        assert world.fleet["m2"].faults == {None: Fault.STALL}
        assert world.managers[1].unreachable
        world.only_fault(1, "/logs", Fault.RESET)
        assert world.fleet["m2"].faults == {"/logs": Fault.RESET}
        world.set_gup(Fault.REFUSE)
        assert world.gup is not None and refused(world.gup.address, world.gup.port)
        world.set_gup(None)
        assert not refused(world.gup.address, world.gup.port)
        # the site: priorities as the suite's SITE, time on the fleet's clock
        assert [m.priority for m in world.managers] == [1, 1, 2]
        t = world.now
        world.advance(t + 1_000)
        assert world.now >= t + 1_000
    finally:
        world.close()
    nothing_left()


def _get(world: RemoteWorld, path: str, location: str) -> Any:
    import json

    m = world.managers[0]
    req = urllib.request.Request(f"http://{m.address}:{m.port}{path}", headers={
        "X-Sephb-Client": "t1", "X-Sephb-Location": location})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_policy_and_flip_reach_the_servers() -> None:
    world = RemoteWorld(time_scale=0.01, tolerance_ms=10_000)
    try:
        world.set_policy("Default", Source.GUP)
        assert _get(world, "/urls", "Default")["source"] == "gup"
        world.set_flip(Source.NONE)
        # the index is answered by the policy in force; the flip lands before /urls
        assert _get(world, "/index.dat", "Default")["source"] == "gup"
        assert _get(world, "/urls", "Default") == {"source": "none", "urls": []}
        assert _get(world, "/urls", "Default")["source"] == "none"  # it stays
        names = [r["event"] for r in world.records if r["client"] == "t1"]
        assert names.count("URLS_RECEIVED") == 3
    finally:
        world.close()
    nothing_left()


# --- what only the wire measures ------------------------------------------------------


def _checkin(*, changed: bool = False, ids: int = 0, log_bytes: int = 200,
             total: int = 4_000, hold: bool = False, conn: int = 1) -> list[dict[str, Any]]:
    base = {"by": "server", "server": "m1", "role": "manager", "conn": conn}
    names: list[tuple[str, dict[str, Any]]] = [
        ("CONNECT", {}), ("GET_INDEX", {}), ("INDEX_RECEIVED", {"changed": changed}),
        ("UPLOAD_LOGS", {"ids": [f"c1-{i}" for i in range(ids)], "bytes_in": log_bytes}),
        ("LOGS_ACKED", {}), ("UPLOAD_SENSORS", {}), ("SENSORS_ACKED", {}),
        ("HOLD", {}) if hold else ("DISCONNECT", {"bytes_in": total - 500,
                                                   "bytes_out": 500})]
    return [{"t": i, "client": "c1", "event": n, **base, **f}
            for i, (n, f) in enumerate(names)]


def test_sizes_are_measured_only_where_they_mean_something() -> None:
    assert measure(_checkin()) == [Size("idle", 4_000, "m1", 7)]
    full = measure(_checkin(ids=32, log_bytes=260_000, total=275_000, conn=2))
    assert [(s.kind, s.bytes, s.requirement) for s in full] == [
        ("full", 275_000, "REQ-SIZE-MAX")]
    assert measure(_checkin(changed=True)) == []  # content came too: neither
    assert measure(_checkin(ids=3, log_bytes=20_000)) == []  # some logs: neither
    assert measure(_checkin(hold=True)) == []  # push: the connection stays open
    failed = _checkin()
    failed[6] = {**failed[6], "error": "fault error"}
    assert measure(failed) == []


def test_sizes_outside_the_seed_ranges_are_warnings_not_failures() -> None:
    interp = get("seed")
    unmeasured = [RequirementResult(rid, Status.NOT_EXERCISED, "", 0)
                  for rid in ("REQ-SIZE-IDLE", "REQ-SIZE-MAX")]
    base = SuiteResult(client="x", adapter="wire", interpretation="seed", profile="ci",
                       seed=None, cases=1, steps=1, duration_s=0.0,
                       transitions={r.name: 1 for r in interp.rows()},
                       requirements=unmeasured, failures=[])
    seen = remote.WireObservations(sizes=[
        Size("idle", IDLE_HEARTBEAT_BYTES[1] + 1, "m1", 5),
        Size("full", FULL_HEARTBEAT_BYTES[0], "m2", 9)])
    result = remote._wire_result(base, seen)
    status = {r.id: (r.status, r.hits) for r in result.requirements}
    assert status["REQ-SIZE-IDLE"] == (Status.PASSED, 1)
    assert status["REQ-SIZE-MAX"] == (Status.PASSED, 1)
    assert len([w for w in result.warnings if w.startswith("REQ-SIZE-IDLE")]) == 1
    assert not [w for w in result.warnings if w.startswith("REQ-SIZE-MAX")]
    assert result.failures == []
    # nothing measured: skipped with the reason, not held against the client
    none = remote._wire_result(base, remote.WireObservations())
    assert {r.status for r in none.requirements} == {Status.SKIPPED}
    assert all("the client's own logs decide" in r.reason for r in none.requirements)


def test_rows_the_wire_cannot_show_are_named_with_a_reason() -> None:
    seed = uncoverable(get("seed"))
    assert set(seed) == {"CONNECTING--SESSION_TIMEOUT-->IDLE",
                         "CONNECTING--CONNECT_FAILED-->IDLE"}
    doc = uncoverable(get("documented"))
    assert "FETCHING_INDEX--CONNECT_FAILED[next_manager]-->CONNECTING" in doc
    assert "FETCHING_INDEX--CONNECT_FAILED[last_manager]-->IDLE" not in doc
    assert all(doc.values())


def test_a_command_must_name_its_placeholders() -> None:
    with pytest.raises(UsageError, match=r"missing \{state_dir\}, \{time_scale\}"):
        wire_environment("my-client --config {sylink}")
    with pytest.raises(UsageError, match="not an executable program: no such file"):
        wire_environment("/nonexistent/client {sylink} {state_dir} {time_scale}")
    # a bare name looked up on PATH (the docs' `sephb client ...` outside the venv)
    with pytest.raises(UsageError, match=r"not found on PATH \(give its path"):
        wire_environment("no-such-sephb client {sylink} {state_dir} {time_scale}")
    with pytest.raises(UsageError, match=r"tolerance 20000 model ms: more than half"):
        wire_environment(REFERENCE, tolerance_ms=20_000)
    env = wire_environment(REFERENCE + " --client-id {client_id} -i {interpretation}")
    assert env.adapter == "wire" and env.tolerance_ms == 10_000 and not env.logs
    world = env.world(DEFAULT_SITE)
    client = env.client(world, get("documented"), Mode.PUSH)
    try:
        assert isinstance(client, ProcessClient)
        argv = client.argv()
        assert argv[argv.index("--sylink") + 1] == str(client.sylink_path)
        assert argv[argv.index("--state-dir") + 1] == str(client.state_dir)
        assert argv[argv.index("--time-scale") + 1] == "0.01"
        assert argv[-3:] == ["c1", "-i", "documented"]
        client.location = "Branch"  # the suite's move rule: a black box stays put
        assert client.location == "Default"
    finally:
        env.close(world, client)
    nothing_left()


# --- the log spool ({log_dir}) ----------------------------------------------------------


def test_the_spool_placeholder_turns_the_logs_rule_on() -> None:
    import json

    assert "{log_dir}" in PLACEHOLDERS
    assert not wire_environment(REFERENCE).logs
    env = wire_environment(SPOOLED)
    assert env.logs
    world = env.world(DEFAULT_SITE)
    one = env.client(world, get("seed"), Mode.PULL)
    two = env.client(world, get("seed"), Mode.PULL)
    try:
        assert isinstance(one, ProcessClient) and isinstance(two, ProcessClient)
        assert one.log_dir is not None and one.log_dir.is_dir()
        argv = one.argv()
        assert argv[argv.index("--log-dir") + 1] == str(one.log_dir)
        ids = one.produce_logs(3)
        later = two.produce_logs(1)
        assert len(set(ids + later)) == 4  # unique across the run, not per client
        assert all(i.startswith("c1-spool-") for i in ids + later)
        # whole files named <id>.log, nothing else left (no temporary name)
        assert sorted(p.name for p in one.log_dir.iterdir()) == sorted(
            f"{i}.log" for i in ids)
        entry = json.loads((one.log_dir / f"{ids[0]}.log").read_text())
        assert entry["id"] == ids[0] and isinstance(entry["t"], int) and entry["text"]
    finally:
        env.close(world, one)
        assert isinstance(two, ProcessClient)
        two.close()
    assert not one.log_dir.exists()
    nothing_left()


def _checkin_records(t: int, ids: list[str], m: Manager) -> list[dict[str, Any]]:
    """One idle pull check-in with m as the servers record it, uploading ``ids``."""
    base = {"by": "server", "client": "c1", "server": m.name, "role": "manager",
            "addr": m.address, "port": m.port, "conn": t}
    names: list[tuple[str, dict[str, Any]]] = [
        ("CONNECT", {}), ("GET_INDEX", {}),
        ("INDEX_RECEIVED", {"changed": False, "source": "manager"}),
        ("UPLOAD_LOGS", {"ids": ids}), ("LOGS_ACKED", {"ids": ids, "duplicates": []}),
        ("UPLOAD_SENSORS", {}), ("SENSORS_ACKED", {}), ("DISCONNECT", {})]
    return [{"t": t + i, "event": n, **base, **f} for i, (n, f) in enumerate(names)]


def _oracle() -> tuple[Oracle, Manager]:
    m = Manager("m1", "127.0.0.2", 8014, 1)
    return Oracle(get("seed"), Mode.PULL, [m], None, 300_000, tolerance_ms=10_000,
                  hidden=remote.WIRE_HIDDEN), m


def _log_findings(oracle: Oracle) -> list[str]:
    return [f.message for f in oracle.findings if f.requirement == "REQ-5-LOGS"]


def test_the_oracle_judges_spool_logs_by_identity() -> None:
    oracle, m = _oracle()
    oracle.logs_produced(3, ids=["s-1", "s-2", "s-3"], at=1_000)
    # an upload within the tolerance of the entries may miss them (the spool race)
    for rec in _checkin_records(5_000, ["s-1"], m):
        oracle.feed(rec)
    assert _log_findings(oracle) == [] and set(oracle.owed) == {"s-2", "s-3"}
    # one that began later must have them all acknowledged (by it or before)
    for rec in _checkin_records(305_000, ["s-2"], m):
        oracle.feed(rec)
    assert _log_findings(oracle) == [
        "log s-3, produced at t=1000, is not among the ids acknowledged by t=305004, "
        "the answer to an upload that began at t=305003, 304003 ms later: lost"]
    assert oracle.owed == {}


def test_spool_logs_stay_owed_across_a_restart() -> None:
    oracle, m = _oracle()
    oracle.logs_produced(2, ids=["s-1", "s-2"], at=1_000)
    oracle.restarted(2_000)
    for rec in _checkin_records(2_000, ["s-1", "s-2"], m):
        oracle.feed(rec)
    assert _log_findings(oracle) == [] and oracle.owed == {}
    oracle.logs_produced(1, ids=["s-3"], at=100_000)
    oracle.restarted(200_000)  # the new process lost it
    for rec in _checkin_records(200_000, [], m):
        oracle.feed(rec)
    assert [msg.split(",")[0] for msg in _log_findings(oracle)] == ["log s-3"]
    with pytest.raises(ValueError, match="at"):
        oracle.logs_produced(1, ids=["s-4"])


def test_logs_without_ids_are_still_counted() -> None:
    oracle, m = _oracle()
    oracle.logs_produced(2)
    for rec in _checkin_records(5_000, ["own-1"], m):
        oracle.feed(rec)
    assert _log_findings(oracle) == ["1 produced log(s) never reached the manager: lost"]


def test_the_reference_with_a_spool_passes_a_short_wire_run() -> None:
    # the spool is the point here: no directed cases, no probes (tested elsewhere)
    result = run_wire(get("seed"), SPOOLED, max_examples=2, steps=8, directed=False,
                      probes=False)
    assert result.failures == [], [(f.requirement, f.message, f.steps)
                                   for f in result.failures]
    status = {r.id: (r.status, r.hits) for r in result.requirements}
    assert status["REQ-5-LOGS"][0] is Status.PASSED and status["REQ-5-LOGS"][1] > 0
    nothing_left()


@pytest.mark.parametrize("volatile", [False, True])
def test_a_log_queue_kept_in_memory_is_caught_over_the_wire(volatile: bool) -> None:
    """The suite's own rules: spool entries taken in by an upload that fails (the
    manager resets POST /logs, so its records carry no ids), then a SIGKILL restart.
    The reference keeps them in its state directory and uploads them once the
    manager heals; a client that kept them in memory lost them: REQ-5-LOGS."""
    env = wire_environment(SPOOLED + (" --volatile-logs" if volatile else ""))
    state = machine_state(env)
    try:
        state.start(mode=Mode.PULL)
        for m in range(len(suite.SITE)):
            state.fault(m=m, fault=Fault.RESET, path="/logs")
        state.logs(count=2)
        ids = list(state.oracle.owed)
        assert len(ids) == 2
        state.wait(dt=suite.INTERVAL_MS + 30_000)  # the next check-in takes them in
        client: ProcessClient = state.client
        assert client.log_dir is not None and list(client.log_dir.iterdir()) == []
        queue = client.state_dir / "logs"
        held = sorted(n.split("=", 1)[1][:-len(".log")]
                      for n in os.listdir(queue) if "=" in n)
        assert held == ([] if volatile else sorted(ids))
        state.restart()
        state.heal()
        if volatile:
            with pytest.raises(suite.Violation) as caught:
                state.wait(dt=suite.INTERVAL_MS + 30_000)
            v = caught.value
            assert v.requirement == "REQ-5-LOGS", v
            assert "lost" in v.message and v.message.startswith(f"log {ids[0]},"), v
        else:
            state.wait(dt=suite.INTERVAL_MS + 30_000)
            assert set(ids) <= state.oracle.acked and state.oracle.owed == {}
            assert state.oracle.findings == []
    finally:
        env.close(state.world, state.client)  # not teardown: no Hypothesis test here
    nothing_left()


# --- one honest verdict over the wire ------------------------------------------------


def test_a_seed_replays_the_same_cases_and_steps_over_the_wire() -> None:
    """The seed fixes the programs over the wire too: the same cases and steps (what
    the servers record may differ by a few timing-dependent records)."""
    runs = [run_wire(get("seed"), REFERENCE, profile="nightly", seed=7, max_examples=2,
                     steps=5, directed=False, probes=False, time_scale=0.002,
                     tolerance_ms=10_000)
            for _ in range(2)]
    assert runs[0].seed == runs[1].seed == 7
    assert (runs[0].cases, runs[0].steps) == (runs[1].cases, runs[1].steps)
    assert runs[0].cases == 2 and runs[0].steps > 0
    nothing_left()


def test_a_client_that_exits_at_once_ends_the_run_with_its_words(tmp_path: Path) -> None:
    """Fail fast: a client that cannot run is an ERROR (exit 3) within seconds, with
    its exit status and the end of its output, and every output says so."""
    cmd = "sh -c 'echo boom >&2; exit 3' {sylink} {state_dir} {time_scale}"
    proc = subprocess.run(
        [sys.executable, "-m", "sephb.conformance.cli", "conform", "--max-examples",
         "1", "--client-cmd", cmd, "--junit", str(tmp_path / "j.xml"),
         "--report", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "ERROR" in proc.stdout and "exited with status 3" in proc.stdout
    assert "boom" in proc.stdout
    root = ET.parse(tmp_path / "j.xml").getroot()
    [error] = root.iter("error")
    assert "boom" in str(error.get("message"))
    assert not list(root.iter("failure"))
    saved = loads((tmp_path / "r" / "result.json").read_bytes())
    assert saved.verdict == "ERROR" and "exited with status 3" in saved.error
    assert "ERROR" in (tmp_path / "r" / "report.md").read_text().splitlines()[0]
    nothing_left()


@pytest.mark.parametrize(("starved_s", "tested"), [(1.0, True), (0.3, False)])
def test_a_client_starved_of_a_cpu_at_start_gets_the_time_it_waited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starved_s: float,
        tested: bool) -> None:
    """On a machine kept busy a client can wait seconds on a run queue before its
    first request: its start-up wait grows by that time (before, a loaded run of the
    reference client once ended ERROR, "made no request within 3 s"). The wait for
    a CPU is measured by schedstat; here it is given (starving a process on demand
    is not deterministic), and the client takes 1.2 s to start: 0.5 s of start-up
    wait and 1 s of CPU wait cover it, 0.3 s do not."""
    script = tmp_path / "slow-start.sh"
    script.write_text('#!/bin/sh\nsleep 1.2\nexec "$@"\n')
    script.chmod(0o755)
    monkeypatch.setattr(ProcessClient, "start_wait_ms",
                        lambda self: round(starved_s / self.world.time_scale * 1000))
    result = run_wire(get("seed"), f"{script} {REFERENCE}", max_examples=1, steps=2,
                      directed=False, probes=False, jobs=1, startup_s=0.5)
    if tested:
        assert result.error == "" and result.cases == 1, result.error
    else:
        assert result.verdict == "ERROR"
        assert ("made no request within 0.5 s of its start (and 0.3 s more, the time "
                "it waited for a CPU)") in result.error
    nothing_left()


def test_a_silent_client_ends_the_run_after_the_startup_wait() -> None:
    result = run_wire(get("seed"), "sh -c 'sleep 60' {sylink} {state_dir} {time_scale}",
                      max_examples=3, startup_s=0.5)
    assert "made no request within 0.5 s" in result.error
    assert result.verdict == "ERROR" and not result.conformant
    assert result.cases <= 1
    nothing_left()
