"""The client under test as a process: any program, driven through its command line.

The suite writes a sylink.xml naming the fleet, runs the command with ``{sylink}``,
``{state_dir}`` and ``{time_scale}`` filled in (and ``{log_dir}``, a log spool, when
it takes one), kills it with SIGKILL to restart it (the state and spool directories
stay), and kills it at the end of each test case. It is a black box: it gets no
calls, and the suite learns what it did only from what the servers record.

Every process the command starts dies with it
---------------------------------------------
The command runs in a session of its own, so a SIGKILL to its process group reaches a
wrapper script's children; but a daemon (``setsid``, a double fork, SIGTERM ignored)
leaves the group and, once its parent is gone, would be adopted by init and outlive
the run. So the process that runs clients is a child subreaper while one is live
(Linux ``PR_SET_CHILD_SUBREAPER``): orphans below it are re-parented to it instead of
init. A kill (:func:`_kill_all`) walks ``/proc`` and SIGKILLs, until none is left,
every process that is the command's by any of these signs: in its session or process
group; a descendant of one that is; carrying the client's mark in its environment
(:data:`CLIENT_MARK`, inherited by everything the command starts, wherever it went);
or adopted by this process from another session (a daemon that also cleared its
environment). Then it reaps those that were adopted (waitpid by pid, never -1: the
process's other children belong to others). Without ``/proc`` (not Linux) a kill is
the process group's only.

The temporary directory of a client (``sephb-wire-*``: sylink.xml, state, spool, log)
is made and registered, and removed, with SIGINT and SIGTERM held, so that an
interrupt never leaves one behind half made or half removed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
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

#: The environment variable set for the client command: ``<suite pid>-<n>``, one value
#: per ProcessClient. Every process the command starts inherits it (unless it clears
#: its environment), which is how the suite finds the command's daemons to kill them.
CLIENT_MARK: Final = "SEPHB_SUITE_CLIENT"


# --- the client ------------------------------------------------------------------------


class ProcessClient:
    """A client under test as a process: the :class:`~.inproc.InProcessClient`
    protocol, with every call but start and restart a no-op (a black box has its own
    timers and answers its own requests)."""

    def __init__(self, world: RemoteWorld, command: str, mode: Mode, *,
                 interpretation: str = "seed", client_id: str = "c1",
                 startup_s: float = STARTUP_S, quiet_s: float | None = None,
                 contact: list[bool] | None = None, tmp_dir: str | None = None) -> None:
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
        #: The value of CLIENT_MARK in the command's environment.
        self.mark = f"{os.getpid()}-{next(_client_ids)}"
        # Made and registered with interrupts held: an interrupt between the two
        # would leave a directory that nothing removes. (In ``tmp_dir``, the run's
        # own directory, when given: the run removes it whatever happens here.)
        with _signals_held():
            self._dir = Path(tempfile.mkdtemp(prefix="sephb-wire-", dir=tmp_dir))
            _LIVE_CLIENTS.add(self)
        self.state_dir = self._dir / "state"
        self.sylink_path = self._dir / "sylink.xml"
        self.log_path = self._dir / "client.log"
        #: The log spool (``{log_dir}``), when the command takes one.
        self.log_dir: Path | None = None
        if "{log_dir}" in command:
            self.log_dir = self._dir / "spool"
            self.log_dir.mkdir()

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
        # the suite, which then kills the client itself. The mark and the subreaper
        # find what leaves the session (a daemon): see the module's docstring.
        env = {**os.environ, CLIENT_MARK: self.mark}
        _adopt_orphans(True)
        with open(self.log_path, "ab") as log, _signals_held():
            # The first heartbeat is due at once from here (A10; the oracle's
            # ``started``, with the environment's allowance for a process start).
            self.world.spawned_at = self.world.now
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=env)
            self.pids.append(self.proc.pid)
            self._wait_base = 0  # a new session: its tasks start from nothing
            self._cpu.clear()  # and its run-queue samples
        proc = self.proc
        starved = self._await_start(since, proc)
        # Fail fast: a client that cannot run ends the run now, with its own words,
        # rather than as many test cases of silence.
        if proc.poll() is not None and self.world.heard == since:
            raise suite.ClientGone(
                f"the client exited with status {proc.returncode} as it started, "
                f"before any request{self._tail()} (command: {shlex.join(self.argv())})")
        if self.world.heard == since and not self.contact[0]:
            waited = (f" (and {starved:.1f} s more, the time it waited for a CPU)"
                      if starved else "")
            raise suite.ClientGone(
                f"the client made no request within {self.startup_s:g} s of its start"
                f"{waited} (a client checks in at once when it starts; a slow starter "
                f"needs a longer --startup-wait; command: {shlex.join(self.argv())})")
        if self.world.heard != since:
            self.contact[0] = True

    def _await_start(self, since: int, proc: subprocess.Popen[bytes]) -> float:
        """Wait for the client's first request: the start-up wait, plus the wall
        time the client spent waiting for a CPU meanwhile (at most
        STARVED_START_CAP times the wait in all). On a machine kept busy a process
        can wait seconds on a run queue before its first line runs; that is not the
        client's slowness, as the oracle's start allowance also says. Returns the
        seconds granted for it."""
        def alive() -> bool:
            return proc.poll() is None

        self.world.quiesce(since, alive, first_s=self.startup_s, quiet_s=self.quiet_s)
        granted = 0.0
        cap = STARVED_START_CAP * self.startup_s
        while self.world.heard == since and alive():
            starved = self.start_wait_ms() * self.world.time_scale / 1000
            more = min(starved, cap - self.startup_s) - granted
            if more < STARVED_MIN_MS / 1000:
                break
            granted += more
            self.world.quiesce(since, alive, first_s=more, quiet_s=self.quiet_s)
        return granted

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
        """SIGKILL the running process and every process the command started (its
        group, its descendants, its daemons: see the module's docstring); reap them
        (no zombie). Also when the process exited on its own: what it left runs on."""
        with _signals_held():  # an interrupt here would leave some of them running
            proc, self.proc = self.proc, None
            if proc is not None and proc.poll() is not None:
                self.exits.append(f"the client exited on its own with status "
                                  f"{proc.returncode}{self._tail()}")
            if not self.pids:
                return  # never started: nothing of it runs
            # (the sessions of this process's other live clients are spared)
            _kill_all(self.mark, proc, {c.pids[-1] for c in list(_LIVE_CLIENTS)
                                        if c is not self and c.pids})

    def _tail(self) -> str:
        try:
            text = self.log_path.read_bytes()[-400:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; its output ends: {text}" if text else ""

    def close(self) -> None:
        """Kill the process (and all it started) and remove the sylink.xml and state
        directory. An interrupt waits until both are done."""
        with _signals_held():
            try:
                self.kill()
            finally:
                shutil.rmtree(self._dir, ignore_errors=True)
                _LIVE_CLIENTS.discard(self)
                if not _LIVE_CLIENTS:
                    _adopt_orphans(False)


#: Wall ms of run-queue time below which a process was not starved (see
#: ProcessClient.cpu_wait_ms).
STARVED_MIN_MS: Final = 2.0
#: The longest a starved client's start-up wait grows to, in start-up waits (see
#: ProcessClient._await_start): a client that waits this long on a run queue is on a
#: machine too busy to test it.
STARVED_START_CAP: Final = 4


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


# --- every process of the command ------------------------------------------------------


#: Rounds of a kill (scan, SIGKILL, look again) before it gives up on a process that
#: will not die (one in uninterruptible sleep), and the pause between two rounds.
KILL_ROUNDS: Final = 1000
KILL_PAUSE_S: Final = 0.001

#: prctl(2) options (linux/prctl.h).
_PR_SET_CHILD_SUBREAPER: Final = 36
_PR_GET_CHILD_SUBREAPER: Final = 37


class _Subreaper:
    """Whether this process made itself a child subreaper (and so must undo it), and
    its children then: they are not adopted orphans."""

    ours = False
    before: frozenset[int] = frozenset()


def _prctl(option: int, arg: int | ctypes.c_void_p) -> int:
    """prctl(2) through libc; -1 where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return -1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        value = arg if isinstance(arg, ctypes.c_void_p) else ctypes.c_ulong(arg)
        return int(libc.prctl(option, value, ctypes.c_ulong(0), ctypes.c_ulong(0),
                              ctypes.c_ulong(0)))
    except (OSError, AttributeError):
        return -1


def _adopt_orphans(on: bool) -> None:
    """Make this process a child subreaper (``on``), or stop being one if it was the
    suite that made it one: while it is, the orphans of its clients' daemons become
    its children (to be killed and reaped, :func:`_kill_all`), not init's. The flag
    is not inherited by children, so it costs nothing but the adoptions; it is on only
    while clients are live, so that orphans of anything else this process runs are
    not adopted. A process that already was a subreaper stays one."""
    if on and not _Subreaper.ours:
        state = ctypes.c_int(0)
        if _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.c_void_p(ctypes.addressof(state))) \
                == 0 and not state.value:
            me = os.getpid()
            _Subreaper.before = frozenset(
                pid for pid, (_, ppid, _, _) in _stat_all().items() if ppid == me)
            _Subreaper.ours = _prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0
    elif not on and _Subreaper.ours:
        _prctl(_PR_SET_CHILD_SUBREAPER, 0)
        _Subreaper.ours = False


def _stat_all() -> dict[int, tuple[bytes, int, int, int]]:
    """Every process's (state, ppid, process group, session), from /proc/<pid>/stat."""
    out: dict[int, tuple[bytes, int, int, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                # pid (comm) state ppid pgrp session ...: comm may hold ") ".
                fields = f.read().rsplit(b")", 1)[1].split()
            out[int(name)] = (fields[0], int(fields[1]), int(fields[2]), int(fields[3]))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _mark_of(pid: int) -> str | None:
    """The CLIENT_MARK in a process's environment: its value, "" without one, None
    when the environment cannot be read (another user's process, a zombie)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return None
    if not env:
        return None  # a zombie, or a kernel thread
    key = CLIENT_MARK.encode() + b"="
    for item in env.split(b"\0"):
        if item.startswith(key):
            return item[len(key):].decode("utf-8", "replace")
    return ""


def _processes_of(mark: str, sid: int | None,
                  other_sids: set[int]) -> dict[int, tuple[bytes, int]]:
    """The processes of the client whose mark is ``mark`` and whose running process
    (a session leader) is ``sid``, if there is one: pid -> (state, ppid). Processes
    with another mark, or in ``other_sids`` (other live clients), are not.

    One of them: in the session or process group ``sid``; marked ``mark``; adopted
    by this process while the suite made it a subreaper (a child in another session
    that was not a child before, :func:`_adopt_orphans`: only a client's daemon gets
    there, also one that cleared its environment); or below any of these."""
    procs = _stat_all()
    me, my_sid = os.getpid(), os.getsid(0)
    adopting = _Subreaper.ours
    found: set[int] = set()
    for pid, (_, ppid, pgrp, psid) in procs.items():
        if pid == me or psid in other_sids:
            continue
        m = _mark_of(pid)
        if m and m != mark:
            continue
        if (m == mark or (sid is not None and sid in (pgrp, psid))
                or (adopting and ppid == me and psid != my_sid
                    and pid not in _Subreaper.before)):
            found.add(pid)
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(found)
    while todo:
        for kid in children.get(todo.pop(), ()):
            if kid not in found and kid != me:
                found.add(kid)
                todo.append(kid)
    return {pid: (procs[pid][0], procs[pid][1]) for pid in found}


def _kill_all(mark: str, proc: subprocess.Popen[bytes] | None,
              other_sids: frozenset[int] | set[int] = frozenset()) -> None:
    """SIGKILL every process of a client (:func:`_processes_of`) until none is left
    alive, then reap: ``proc`` through its Popen, the orphans this process adopted by
    pid. ``other_sids``: the sessions of other live clients, spared."""
    sid = proc.pid if proc is not None else None
    me = os.getpid()
    found: dict[int, tuple[bytes, int]] = {}
    for _ in range(KILL_ROUNDS):
        if sid is not None:  # the group at once: most clients are nothing more
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(sid, signal.SIGKILL)
        found = _processes_of(mark, sid, set(other_sids))
        alive = [pid for pid, (state, _) in found.items() if state not in (b"Z", b"X")]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _reap(pid for pid, (_, ppid) in found.items() if ppid == me and pid != sid)
        if not alive:
            break
        time.sleep(KILL_PAUSE_S)
    if proc is not None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
    # A walk of /proc is not one instant: a zombie read as the child of a process
    # that died a moment later (the client's daemon, read before the client's exit
    # re-parented it to this process) was not reaped above. All are dead now, so a
    # fresh look sees every one of them that is this process's child.
    _reap(pid for pid, (_, ppid) in _processes_of(mark, sid, set(other_sids)).items()
          if ppid == me and pid != sid)


def _reap(pids: Iterator[int]) -> None:
    """waitpid each of ``pids`` (children of this process) that has exited."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _number(x: float) -> str:
    """A time scale as a command-line number (0.01, not 1e-02)."""
    text = f"{x:.12f}".rstrip("0").rstrip(".")
    return text or "0"



#: Numbers of spool entries: ids unique across a run (all its test cases).
_spool_ids = itertools.count(1)
#: Numbers of the clients of this process (their marks).
_client_ids = itertools.count(1)


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
