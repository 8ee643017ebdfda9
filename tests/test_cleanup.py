"""The suite leaves nothing of a run behind (issue 15, item 7): no process the client
command started, also one that daemonized (a session of its own, SIGTERM ignored,
a double fork, a cleared environment), and no temporary directory, on every way out
of a run: its end, a client that dies at once, SIGTERM.

Real processes throughout. A run of the CLI gets a TMPDIR of its own, so that what
other runs on the machine leave cannot count, and a marker (in its environment, so
in every process it starts, and on the command lines of the client's daemons) by
which its survivors are found. A test kills what it finds, so that a failure leaves
nothing running either."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from sephb.conformance.suite import _process
from sephb.conformance.suite._process import CLIENT_MARK, ProcessClient
from sephb.conformance.suite._wire_world import RemoteWorld
from sephb.model.protocol import Mode

#: A client that dies at once (exit 3: the run ends as an ERROR within seconds).
#: With ``$DAEMON`` set it first leaves a daemon behind: in a session of its own
#: (``setsid``, so out of the command's process group), deaf to SIGTERM, SIGHUP and
#: SIGINT, with ``$MARKER`` on its command line. With ``$STOP`` set it signals the
#: suite (``$SUITE``: the CLI's pid, which is also its process group): ``each``
#: SIGTERMs the suite's process at each of its starts (a supervisor that says it
#: again; the run's several jobs), ``group`` SIGTERMs the suite's whole process group
#: once (what ``timeout`` and CI runners do: the job workers get it too), ``ctrl-c``
#: SIGINTs the group once (a Ctrl-C at a terminal).
DYING_CLIENT = """\
if [ -n "$DAEMON" ]; then
  setsid sh -c 'trap "" TERM HUP INT; while :; do sleep 1; done' "$MARKER-daemon" &
fi
case "$STOP" in
  each) kill -TERM "$SUITE" ;;
  group) mkdir "$STOP_ONCE" 2>/dev/null && kill -TERM "-$SUITE" ;;
  ctrl-c) mkdir "$STOP_ONCE" 2>/dev/null && kill -INT "-$SUITE" ;;
esac
exit 3
"""

#: Daemons of two kinds, then the reference client (``"$@"``): one that called
#: setsid, and a double fork whose daemon cleared its environment (no mark: only the
#: suite's subreaper finds it).
DAEMONS_THEN_REFERENCE = """\
setsid sh -c 'trap "" TERM HUP INT; while :; do sleep 1; done' "$MARKER-setsid" &
setsid sh -c 'env -i sh -c "trap \\"\\" TERM HUP INT; while :; do sleep 1; done" \
"$MARKER-cleared" & exit 0' &
exec "$@"
"""

REFERENCE = (f"{sys.executable} -m sephb.conformance.cli client --sylink {{sylink}} "
             f"--state-dir {{state_dir}} --time-scale {{time_scale}}")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def survivors(marker: str) -> list[int]:
    """Live processes (not zombies) carrying ``marker``: on their command line (the
    client's daemons) or in their environment (everything the run started)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        pid = int(entry)
        if state != "Z" and (marker.encode() in _cmdline(pid)
                             or marker.encode() in _environ(pid)):
            out.append(pid)
    return out


def children() -> list[tuple[int, str]]:
    """This process's children (pid, state), zombies too."""
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            out.append((int(entry), fields[0]))
    return out


def eventually(done: Callable[[], bool], seconds: float = 30) -> bool:
    """Whether ``done()`` holds within ``seconds`` (a process killed or exiting needs
    a moment to be gone; the wait is generous, nothing is timed)."""
    end = time.monotonic() + seconds
    while not done():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def kill_all(pids: list[int]) -> None:
    """The test's own cleanup after a failure: SIGKILL what the run left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def conform(tmp_path: Path, marker: str, *args: str, daemon: bool = False,
            stop: str = "") -> tuple[int | None, str]:
    """``sephb conform`` against DYING_CLIENT, in a session of its own (its pid is
    its process group) with TMPDIR ``tmp_path/tmp``: its exit status (None: it did
    not exit within two minutes; it is killed) and its output. (The output goes to
    a file, not a pipe that a process it left behind would hold open.)"""
    script = tmp_path / "client.sh"
    script.write_text(DYING_CLIENT)
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "MARKER": marker,
           "DAEMON": "1" if daemon else "", "STOP": stop,
           "STOP_ONCE": str(tmp_path / "stopped")}
    cmd = f"sh {script} {{sylink}} {{state_dir}} {{time_scale}}"
    out = tmp_path / "output"
    with out.open("wb") as f:
        # `exec` keeps the shell's pid: $SUITE is the CLI's pid (and process group)
        proc = subprocess.Popen(
            ["sh", "-c", 'SUITE=$$; export SUITE; exec "$@"', "sh", sys.executable,
             "-m", "sephb.conformance.cli", "conform", "--client-cmd", cmd,
             "--profile", "ci", *args],
            env=env, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        status: int | None = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        status = None
    return status, out.read_text()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_daemon_of_the_client_does_not_outlive_the_run(tmp_path: Path,
                                                        jobs: str) -> None:
    """The client's daemon escapes a SIGKILL of the process group (setsid) and
    ignores SIGTERM; the suite kills it all the same, whether the client ran under
    the run's own process (--jobs 1) or under a job worker."""
    marker = f"sephb-test-{uuid.uuid4().hex}"
    try:
        status, output = conform(tmp_path, marker, "--jobs", jobs, daemon=True)
        assert status == 3, output  # the client died: nothing could be tested
        assert "exited with status 3" in output
        assert eventually(lambda: not survivors(marker)), survivors(marker)
        assert list((tmp_path / "tmp").iterdir()) == []
    finally:
        kill_all(survivors(marker))


@pytest.mark.parametrize("stop", ["each", "group", "ctrl-c"])
def test_sigterm_during_a_dead_client_run_leaves_nothing_behind(tmp_path: Path,
                                                                stop: str) -> None:
    """SIGTERM comes while the client is starting (it sends it): to the suite's
    process at each start, or once to its whole process group; or SIGINT to the
    group, as a Ctrl-C at a terminal sends it. The run ends as an
    interrupt (130), its processes (job workers, clients) are gone, and so are its
    temporary directories (the suite's ``sephb-*`` and the one of the
    multiprocessing it runs its jobs with). (Before: the suite died of a later
    SIGTERM, or hung, leaving both; or it left job workers waiting forever.)"""
    marker = f"sephb-test-{uuid.uuid4().hex}"
    try:
        status, output = conform(tmp_path, marker, "--jobs", "2", stop=stop)
        assert status == 130, output  # it ended as an interrupt (None: it hung)
        assert eventually(lambda: not survivors(marker)), [
            _cmdline(p) for p in survivors(marker)]
        assert list((tmp_path / "tmp").iterdir()) == []
    finally:
        kill_all(survivors(marker))


def _subreaper() -> int:
    """PR_GET_CHILD_SUBREAPER of this process."""
    state = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(37, ctypes.byref(state), 0, 0, 0) == 0
    return state.value


def test_restart_and_close_kill_the_daemons_and_reap_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process: a restart kills the daemons of the first start, a close
    those of the second, including the one that cleared its environment; every one
    that was adopted is reaped (no zombie child), and this process is a subreaper
    only while the client lives."""
    marker = f"sephb-test-{uuid.uuid4().hex}"
    script = tmp_path / "client.sh"
    script.write_text(DAEMONS_THEN_REFERENCE)
    monkeypatch.setenv("MARKER", marker)  # the client inherits this environment
    before = children()  # (multiprocessing's helpers, if earlier tests started them)
    world = RemoteWorld(time_scale=0.01, tolerance_ms=10_000)
    client = ProcessClient(world, f"sh {script} {REFERENCE}", Mode.PULL)
    try:
        assert _subreaper() == 0
        client.start(world.now)
        daemons = [f"{marker}-setsid".encode(), f"{marker}-cleared".encode()]

        def started() -> list[int]:
            return [p for p in survivors(marker)
                    if any(d in _cmdline(p) for d in daemons)]

        assert eventually(lambda: len(started()) == 2), started()
        first = started()
        # the cleared one has no mark (so only the subreaper can tell it is ours)
        assert [p for p in first if CLIENT_MARK.encode() in _environ(p)] != first
        client.restart(world.now)
        assert all(not Path(f"/proc/{p}").exists() for p in first)  # killed, reaped
        assert eventually(lambda: len(started()) == 2), started()
        assert set(started()).isdisjoint(first)
        assert _subreaper() == 1  # while the client lives
    finally:
        client.close()
        world.close()
        left = survivors(marker)
        kill_all(left)
    assert left == []
    assert [c for c in children() if c not in before] == []  # not even a zombie
    assert _subreaper() == 0
    assert not client.state_dir.parent.exists()


def test_a_kill_reaps_a_zombie_read_as_the_child_of_a_process_that_died_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A walk of /proc is not one instant: the kill can read a daemon as the zombie
    child of the client, and the client, a moment later, as dead -- its exit has
    since re-parented the zombie to this process (the subreaper). The kill reaps it
    all the same. (Before: it was left a zombie child; CI saw it once in a run of
    the restart test above.) The stale walk is made, not waited for: the zombie's
    parent reads as the client until the client is reaped."""
    assert not _process._LIVE_CLIENTS  # (the subreaper flag is this test's alone)
    _process._adopt_orphans(True)
    proc = subprocess.Popen(["sh", "-c", "sh -c 'exit 0' & exec sleep 60"],
                            start_new_session=True)
    try:
        def zombies() -> list[int]:  # sleep never waits for the child: it stays one
            return [pid for pid, (state, ppid, _, _) in _process._stat_all().items()
                    if ppid == proc.pid and state == b"Z"]

        assert eventually(lambda: len(zombies()) == 1), zombies()
        [zombie] = zombies()
        real = _process._stat_all

        def stale() -> dict[int, tuple[bytes, int, int, int]]:
            procs = real()
            if proc.returncode is None and zombie in procs:
                state, _, group, session = procs[zombie]
                procs[zombie] = (state, proc.pid, group, session)
            return procs

        monkeypatch.setattr(_process, "_stat_all", stale)
        _process._kill_all("no-such-mark", proc)
        assert not Path(f"/proc/{zombie}").exists()  # reaped
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        _process._adopt_orphans(False)
