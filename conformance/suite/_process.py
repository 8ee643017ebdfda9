"""The client under test as a process: any program, driven through its command line.

The suite writes a sylink.xml naming the fleet, runs the command with ``{sylink}``,
``{state_dir}`` and ``{time_scale}`` filled in (and ``{log_dir}``, a log spool, when
it takes one), kills it with SIGKILL to restart it (the state and spool directories
stay), and kills it at the end of each test case. It is a black box: it gets no
calls, and the suite learns what it did only from what the servers record.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import msgspec

from sephb.conformance.suite import _machine as suite
from sephb.conformance.suite._guard import ClientStopped
from sephb.conformance.suite._wire_world import (
    STARTUP_S,
    RemoteWorld,
    quiet_for,
)
from sephb.conformance.suite.world import DEFAULT_SITE, Reply
from sephb.conformance.traces.sylink import Gup, Sylink, save
from sephb.model.protocol import (
    Mode,
)

#: Placeholders of a client command; the first three are required.
PLACEHOLDERS: Final = ("{sylink}", "{state_dir}", "{time_scale}", "{client_id}",
                       "{interpretation}", "{log_dir}")


# --- the client ------------------------------------------------------------------------


class ProcessClient:
    """A client under test as a process: the :class:`~.inproc.InProcessClient`
    protocol, with every call but start and restart a no-op (a black box has its own
    timers and answers its own requests)."""

    def __init__(self, world: RemoteWorld, command: str, mode: Mode, *,
                 interpretation: str = "seed", client_id: str = "c1",
                 startup_s: float = STARTUP_S, quiet_s: float | None = None,
                 contact: list[bool] | None = None) -> None:
        self.world = world
        #: Whether any start of the client in this run made a request (shared by
        #: the run's clients): until one has, silence at a start ends the run.
        self.contact = contact if contact is not None else [False]
        self.command = command
        self.mode = mode
        self.interpretation = interpretation
        self.client_id = client_id
        self.startup_s = startup_s
        self.quiet_s = quiet_for(world.time_scale) if quiet_s is None else quiet_s
        self.proc: subprocess.Popen[bytes] | None = None
        #: Process ids of every start (the last one is running).
        self.pids: list[int] = []
        #: One line per process that ended on its own (not killed by the suite).
        self.exits: list[str] = []
        self._wait_base = 0
        #: (model ms, run-queue wait ns so far) of the running process.
        self._cpu: list[tuple[int, int]] = []
        self._dir = Path(tempfile.mkdtemp(prefix="sephb-wire-"))
        self.state_dir = self._dir / "state"
        self.sylink_path = self._dir / "sylink.xml"
        self.log_path = self._dir / "client.log"
        #: The log spool (``{log_dir}``), when the command takes one.
        self.log_dir: Path | None = None
        if "{log_dir}" in command:
            self.log_dir = self._dir / "spool"
            self.log_dir.mkdir()
        _LIVE_CLIENTS.add(self)

    # --- the location is the client's own -------------------------------------------

    @property
    def location(self) -> str:
        """Fixed: a black box reports its own location; the suite's ``move`` rule
        cannot change it (docs/adapters.md)."""
        return "Default"

    @location.setter
    def location(self, value: str) -> None:
        pass

    # --- the protocol ---------------------------------------------------------------

    def start(self, now: int) -> None:
        """Write sylink.xml, start the command, and wait until its first requests
        are answered and the servers are quiet again (the first check-in is then
        part of every test case, however short)."""
        w = self.world
        blocks: dict[int, list[tuple[str, int]]] = {}
        for m in w.managers:
            blocks.setdefault(m.priority, []).append((m.address, m.port))
        gup = Gup(w.gup.address, w.gup.port) if w.gup else None
        site = getattr(w, "site", DEFAULT_SITE)
        save(Sylink.build([blocks[p] for p in sorted(blocks)], mode=self.mode,
                          heartbeat_s=suite.INTERVAL_MS // 1000, gup=gup,
                          randomization_s=site.randomization_s),
             self.sylink_path, site.listed)
        self.state_dir.mkdir(exist_ok=True)
        self._spawn()

    def wakeup(self) -> int | None:
        self._check_running()
        return None

    def tick(self, now: int) -> None:
        self._check_running()

    def _check_running(self) -> None:
        """A client that exits on its own in the middle of a case has stopped
        checking in: a finding (REQ-X-ALIVE), not an error of the run. (At its
        first start, silence or an exit is ClientGone: nothing was tested.)"""
        proc = self.proc
        if proc is not None and proc.poll() is not None:
            self.proc = None
            proc.wait()
            raise ClientStopped(f"the client exited on its own with status "
                                f"{proc.returncode}{self._tail()}")

    def answer(self, now: int, reply: Reply) -> None:
        pass

    def restart(self, now: int) -> None:
        """SIGKILL the process (and its process group), start it again on the same
        state directory."""
        with self.world.crash():
            self.kill()
        self._spawn()

    def produce_logs(self, count: int) -> list[str]:
        """Write ``count`` new entries into the client's spool (``{log_dir}``) and
        return their ids; none when the command takes no spool (a process makes its
        own logs, and the suite's logs rule is off).

        Each entry is its own file, ``<id>.log``, whole when it appears: written
        under a name that does not end in ``.log``, then renamed. The id is unique
        across the run (``c1-spool-17``); the content is a JSON object, ``{"id":
        "c1-spool-17", "t": <model ms when written>, "text": "<a log line>"}``."""
        if self.log_dir is None:
            return []
        ids = []
        for _ in range(count):
            n = next(_spool_ids)
            entry_id = f"{self.client_id}-spool-{n}"
            now = self.world.now
            body = msgspec.json.encode({
                "id": entry_id, "t": now,
                "text": f"t={now}\t0x12070900\tconformance suite log entry {n}\n"})
            tmp = self.log_dir / f".{entry_id}.tmp"
            tmp.write_bytes(body)
            os.rename(tmp, self.log_dir / f"{entry_id}.log")
            ids.append(entry_id)
        return ids

    # --- processes ------------------------------------------------------------------------

    def argv(self) -> list[str]:
        values = {
            "{sylink}": str(self.sylink_path),
            "{state_dir}": str(self.state_dir),
            "{time_scale}": _number(self.world.time_scale),
            "{client_id}": self.client_id,
            "{interpretation}": self.interpretation,
            "{log_dir}": str(self.log_dir),
        }
        out = []
        for token in shlex.split(self.command):
            for key, value in values.items():
                token = token.replace(key, value)
            out.append(token)
        return out

    def _spawn(self) -> None:
        since = self.world.heard
        # A session of its own: a restart kills the command's whole process group (a
        # wrapper script's children too), and a Ctrl-C at the terminal reaches only
        # the suite, which then kills the client itself.
        with open(self.log_path, "ab") as log, _signals_held():
            # The first heartbeat is due at once from here (A10; the oracle's
            # ``started``, with the environment's allowance for a process start).
            self.world.spawned_at = self.world.now
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            self.pids.append(self.proc.pid)
            self._wait_base = 0  # a new session: its tasks start from nothing
            self._cpu.clear()  # and its run-queue samples
        proc = self.proc
        self.world.quiesce(since, lambda: proc.poll() is None, first_s=self.startup_s,
                           quiet_s=self.quiet_s)
        # Fail fast: a client that cannot run ends the run now, with its own words,
        # rather than as many test cases of silence.
        if proc.poll() is not None and self.world.heard == since:
            raise suite.ClientGone(
                f"the client exited with status {proc.returncode} as it started, "
                f"before any request{self._tail()} (command: {shlex.join(self.argv())})")
        if self.world.heard == since and not self.contact[0]:
            raise suite.ClientGone(
                f"the client made no request within {self.startup_s:g} s of its start "
                f"(a client checks in at once when it starts; a slow starter needs a "
                f"longer --startup-wait; command: {shlex.join(self.argv())})")
        if self.world.heard != since:
            self.contact[0] = True

    def sample_cpu(self, now: int) -> None:
        """Note, at model time ``now``, how long the running process's threads have
        waited on a run queue so far (see :meth:`cpu_wait_ms`)."""
        proc = self.proc
        if proc is None:
            return
        ns = _task_wait_ns(proc.pid)
        if self._cpu and self._cpu[-1][1] > ns:  # a new process: start over
            self._cpu.clear()
        self._cpu.append((now, ns))
        if len(self._cpu) > 4096:
            del self._cpu[:2048]

    def cpu_wait_ms(self, since: int) -> int:
        """Model ms the running process has waited for a CPU since model time
        ``since`` (from the samples of :meth:`sample_cpu`; 0 without them): an
        action made late because it was starved is not the client's lateness.
        (The servers' own thread is not counted: its many short wake-ups add up
        to an excuse that grows with time, which would hide a client that never
        acts; the jitter monitor judges the servers' side.)"""
        if not self._cpu:
            return 0
        base = next((ns for t, ns in reversed(self._cpu) if t <= since), self._cpu[0][1])
        proc = self.proc
        now_ns = _task_wait_ns(proc.pid) if proc is not None else self._cpu[-1][1]
        # Waits below STARVED_MIN_MS of wall time are the ordinary cost of waking
        # up (microseconds per wake-up): not an excuse.
        wall_ms = (now_ns - base) / 1e6 - STARVED_MIN_MS
        return max(0, round(wall_ms / self.world.time_scale))

    def start_wait_ms(self) -> int:
        """Model ms the running process and its children (its session) have spent
        waiting on a CPU run queue since it was spawned (Linux schedstat; 0 where
        the kernel does not keep it)."""
        proc = self.proc
        if proc is None:
            return 0
        waited_ns = run_queue_wait_ns(proc.pid) - self._wait_base
        return max(0, round(waited_ns / 1e6 / self.world.time_scale))

    def exited(self, timeout_s: float) -> bool:
        """Whether the running process has exited, waiting up to ``timeout_s`` for
        it (a process that crashes closes its connections as it exits)."""
        proc = self.proc
        if proc is None:
            return True
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the running process and its group; reap it (no zombie)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is not None:
            self.exits.append(f"the client exited on its own with status "
                              f"{proc.returncode}{self._tail()}")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()

    def _tail(self) -> str:
        try:
            text = self.log_path.read_bytes()[-400:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; its output ends: {text}" if text else ""

    def close(self) -> None:
        """Kill the process and remove the sylink.xml and state directory."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            _LIVE_CLIENTS.discard(self)


#: Wall ms of run-queue time below which a process was not starved (see
#: ProcessClient.cpu_wait_ms).
STARVED_MIN_MS: Final = 2.0


def _task_wait_ns(pid: int) -> int:
    """Nanoseconds the threads of process ``pid`` have waited on a run queue (its
    children are not counted; 0 once it is gone)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return total


def run_queue_wait_ns(sid: int) -> int:
    """Nanoseconds every task (thread) of every process in session ``sid`` has spent
    waiting on a run queue, from ``/proc/<pid>/task/<tid>/schedstat`` (its second
    field). A process that exited no longer counts: only the live ones are summed,
    which is what a start that is still going on needs. 0 without procfs."""
    total = 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) == sid:  # state ppid pgrp session
                total += _task_wait_ns(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    return total


def _number(x: float) -> str:
    """A time scale as a command-line number (0.01, not 1e-02)."""
    text = f"{x:.12f}".rstrip("0").rstrip(".")
    return text or "0"



#: Numbers of spool entries: ids unique across a run (all its test cases).
_spool_ids = itertools.count(1)


# Whatever a test case leaves, the interpreter's exit kills it: no client process
# outlives the suite.
_LIVE_CLIENTS: set[ProcessClient] = set()


@atexit.register
def close_all_clients() -> None:
    for c in list(_LIVE_CLIENTS):
        with contextlib.suppress(Exception):
            c.close()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first that came
    to the handler it would have met. Around Popen: an interrupt raised inside it,
    after the fork, would orphan the child (no handle left to kill it by). Only on
    the main thread, where Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def hold(signum: int, frame: object) -> None:
        came.append(signum)

    old = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():  # (None: one set outside Python; the default)
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if came:  # now the usual handler runs (KeyboardInterrupt, or termination)
            signal.raise_signal(came[0])
