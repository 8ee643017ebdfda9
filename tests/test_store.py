"""Tests of conformance/client/store.py on real files: the index copy, the durable log queue
(persistence, acks, ids, entries ingested under their own ids, a Hypothesis state
machine against an in-memory model, and real SIGKILL crash tests) and the log-volume
generator."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from sephb.conformance.client import store
from sephb.conformance.client.store import (
    FULL_LOGGING_BYTES,
    ClientState,
    IndexCopy,
    LogEntry,
    LogQueue,
    make_logs,
)
from sephb.conformance.traces.files import TMP_SUFFIX, atomic_write
from sephb.model.errors import UsageError
from sephb.model.protocol import FULL_HEARTBEAT_BYTES, IDLE_HEARTBEAT_BYTES

# -- atomic files and the index copy ---------------------------------------------------


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "f"
    atomic_write(p, b"one")
    atomic_write(p, b"two", fsync=False)
    assert p.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]


def test_index_copy_round_trip(tmp_path: Path) -> None:
    assert IndexCopy.load(tmp_path) is None
    ix = IndexCopy("A3AF-01/30/2012 23:50:54 284", 7)
    ix.save(tmp_path)
    assert IndexCopy.load(tmp_path) == ix
    IndexCopy("B", 8).save(tmp_path)
    assert IndexCopy.load(str(tmp_path)) == IndexCopy("B", 8)
    assert sorted(os.listdir(tmp_path)) == [store.INDEX_FILE]


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"serial": 1, "revision": 2}', b'{"serial": "s", "revision": -1}',
     b'{"serial": "s"}', b'{"serial": "s", "revision": 1, "x": 0}', b"\xff"],
)
def test_index_copy_damage_is_reported(tmp_path: Path, content: bytes) -> None:
    (tmp_path / store.INDEX_FILE).write_bytes(content)
    with pytest.raises(UsageError, match=r"index\.json: not a client index copy"):
        IndexCopy.load(tmp_path)


def test_index_copy_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="revision"):
        IndexCopy("s", -1)
    with pytest.raises(ValueError, match="serial"):
        IndexCopy(3, 1)  # type: ignore[arg-type]


def test_client_state(tmp_path: Path) -> None:
    st_ = ClientState(tmp_path / "state", fsync=False)
    assert st_.load_index() is None
    st_.save_index(IndexCopy("s", 1))
    st_.logs.append("log")
    st_.sensors.append("sensor")
    again = ClientState(tmp_path / "state")
    assert again.load_index() == IndexCopy("s", 1)
    assert [e.data for e in again.logs.pending()] == ["log"]
    assert [e.data for e in again.sensors.pending()] == ["sensor"]


def test_unusable_state_dir_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="cannot use as a state directory"):
        ClientState(tmp_path / "file")
    with pytest.raises(UsageError, match="cannot use as a log queue"):
        LogQueue(tmp_path / "file" / "logs")


# -- the log queue ---------------------------------------------------------------------


def test_queue_persists_and_acks(tmp_path: Path) -> None:
    q = LogQueue(tmp_path / "q")
    ids = [q.append(f"log {i}") for i in range(5)]
    assert len(set(ids)) == 5
    assert q.pending() == [LogEntry(i, f"log {n}") for n, i in enumerate(ids)]
    assert q.pending(limit=2) == q.pending()[:2]
    assert q.pending(limit=0) == []

    q2 = LogQueue(tmp_path / "q")  # a restart: same entries, same ids, same order
    assert q2.pending() == q.pending()
    assert q2.ack([ids[1], ids[3]]) == 2
    assert q2.ack([ids[1]]) == 0  # a repeated acknowledgement is harmless
    assert [e.id for e in LogQueue(tmp_path / "q").pending()] == [ids[0], ids[2], ids[4]]
    new = q2.append("after")
    assert [e.id for e in q2.pending()][-1] == new and len(q2) == 4


def test_ids_unique_after_tail_ack_and_reopen(tmp_path: Path) -> None:
    seen: set[str] = set()
    for _ in range(5):
        q = LogQueue(tmp_path, fsync=False)
        ids = q.append_many(["x", "y"])
        assert not seen & set(ids)
        seen |= set(ids)
        q.ack(ids)  # the sequence number restarts; the random part keeps ids unique
    assert len(seen) == 10


def test_ack_ignores_foreign_ids(tmp_path: Path) -> None:
    q = LogQueue(tmp_path / "q", fsync=False)
    (tmp_path / "victim").write_text("keep")
    i = q.append("a")
    bogus = ["../victim", "", "nope", i + "x", i.upper(), 3, None]
    assert q.ack(bogus) == 0  # type: ignore[arg-type]
    assert (tmp_path / "victim").exists() and len(q) == 1


def test_strays_are_ignored_and_temp_files_cleaned(tmp_path: Path) -> None:
    q = LogQueue(tmp_path, fsync=False)
    q.append("real")
    (tmp_path / ".000000000001-0123456789abcdef.1234.tmp").write_text("torn")
    (tmp_path / "README").write_text("not an entry")
    (tmp_path / "000000000009-zz.log").write_text("bad name")
    q2 = LogQueue(tmp_path, fsync=False)
    assert [e.data for e in q2.pending()] == ["real"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_append_rejects_non_text_before_writing(tmp_path: Path) -> None:
    q = LogQueue(tmp_path, fsync=False)
    with pytest.raises(UnicodeEncodeError):
        q.append_many(["fine", "\ud800"])
    assert len(q) == 0


def test_unicode_and_large_entries(tmp_path: Path) -> None:
    q = LogQueue(tmp_path)
    big = "é" * 150_000 + "\n\x00\t"
    i = q.append(big)
    assert LogQueue(tmp_path).pending() == [LogEntry(i, big)]
    assert q.pending_bytes() == len(big.encode())


def test_a_thousand_entries_in_one_batch_keep_their_order(tmp_path: Path) -> None:
    # (how fast: tests/benchmarks, never a timed assertion)
    q = LogQueue(tmp_path)
    ids = q.append_many(f"entry {i}" for i in range(1000))
    pending = LogQueue(tmp_path).pending()
    q.ack(ids[:500])
    assert [e.id for e in pending] == ids and len(q) == 500


# -- entries made elsewhere (a spool) ---------------------------------------------------


def test_ingest_keeps_ids_and_order_across_a_reopen(tmp_path: Path) -> None:
    q = LogQueue(tmp_path, fsync=False)
    own = q.append("own")
    assert q.ingest([("c1-spool-2", "two"), ("c1-spool-1", "one")]) == [
        "c1-spool-2", "c1-spool-1"]
    later = q.append("later")
    want = [LogEntry(own, "own"), LogEntry("c1-spool-2", "two"),
            LogEntry("c1-spool-1", "one"), LogEntry(later, "later")]
    assert q.pending() == want
    assert LogQueue(tmp_path, fsync=False).pending() == want  # a restart: same ids
    assert q.pending_bytes() == len("owntwoonelater") and len(q) == 4


def test_ingest_is_idempotent_for_queued_and_acknowledged_ids(tmp_path: Path) -> None:
    q = LogQueue(tmp_path, fsync=False)
    assert q.ingest([("a-1", "x"), ("a-2", "y")]) == ["a-1", "a-2"]
    assert q.ingest([("a-1", "other"), ("a-3", "z"), ("a-3", "z")]) == ["a-3"]
    assert [(e.id, e.data) for e in q.pending()] == [("a-1", "x"), ("a-2", "y"),
                                                     ("a-3", "z")]
    assert q.ack(["a-1", "a-1", "a-3"]) == 2
    # acknowledged: ingesting the same entry again (its source was not removed before
    # a crash) queues nothing, also after a reopen
    assert q.ingest([("a-1", "x"), ("a-3", "z")]) == []
    again = LogQueue(tmp_path, fsync=False)
    assert again.ingest([("a-1", "x"), ("a-4", "w")]) == ["a-4"]
    assert [e.id for e in again.pending()] == ["a-2", "a-4"]
    # the layout: <seq>=<id>.log, and the acknowledged ids beside them
    assert sorted(os.listdir(tmp_path)) == [
        "000000000001=a-2.log", "000000000002=a-4.log", store.ACKED_FILE]


def test_acked_memory_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "ACKED_MEMORY", 3)
    q = LogQueue(tmp_path, fsync=False)
    ids = [f"b-{i}" for i in range(5)]
    q.ingest((i, i) for i in ids)
    q.ack(ids)
    # only the last three are remembered: the oldest two may come back
    assert LogQueue(tmp_path, fsync=False).ingest((i, i) for i in ids) == ["b-0", "b-1"]


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "../x", "a b", "x" * 129, "é",
                                 "000000000001-0123456789abcdef"])
def test_ingest_rejects_bad_ids_before_writing(tmp_path: Path, bad: str) -> None:
    q = LogQueue(tmp_path, fsync=False)
    assert not store.is_log_id(bad)
    with pytest.raises(ValueError, match="log id"):
        q.ingest([("fine", "1"), (bad, "2")])
    assert len(q) == 0 and os.listdir(tmp_path) == []


def test_damaged_acked_memory_is_moved_aside_not_fatal(tmp_path: Path) -> None:
    """It used to stop the client from starting: every log was blocked by it."""
    (tmp_path / store.ACKED_FILE).write_text('{"not": "a list"}')
    q = LogQueue(tmp_path)
    [problem] = q.problems
    assert problem.startswith(f"{tmp_path / store.ACKED_FILE}: damaged (not a list of "
                              "acknowledged log ids")
    assert problem.endswith(f"moved to {tmp_path / store.DAMAGED_DIR / store.ACKED_FILE}")
    assert (tmp_path / store.DAMAGED_DIR / store.ACKED_FILE).read_text() == \
        '{"not": "a list"}'
    assert q.ingest([("a-1", "x")]) == ["a-1"] and q.ack(["a-1"]) == 1
    assert q.ingest([("a-1", "x")]) == []  # remembered again from here on


# -- damage from outside: checksums, quarantine, I/O errors -----------------------------


def entry_file(q: LogQueue, entry_id: str) -> Path:
    [path] = [p for p in q.directory.glob("*.log") if entry_id in p.name]
    return path


# How an entry of 6,667 bytes (a 33-byte header, then the text) is damaged, and what
# the queue says about it.
DAMAGE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    # what the attack run did: 100 bytes of the file left
    "truncated": (lambda raw: raw[:100], "67 bytes of text, the header says 6667"),
    "emptied": (lambda raw: b"", "no entry header (0 bytes)"),
    "a byte changed": (lambda raw: raw[:-1] + b"?", "checksum mismatch"),
    "not UTF-8": (lambda raw: b"\xff\xfe log", "no entry header (6 bytes)"),
    "headerless text": (lambda raw: raw[33:], "no entry header"),
    "grown": (lambda raw: raw + b"more", "6671 bytes of text, the header says 6667"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_entry_is_moved_aside_and_blocks_nothing(tmp_path: Path,
                                                           kind: str) -> None:
    damage, why = DAMAGE[kind]
    q = LogQueue(tmp_path, fsync=False)
    before = q.append("before")
    victim = q.append("x" * 6667)
    after = q.ingest([("spool-1", "after")])[0]
    path = entry_file(q, victim)
    path.write_bytes(damage(path.read_bytes()))
    # Never uploaded, never blocking: the others come back, in order.
    assert q.pending() == [LogEntry(before, "before"), LogEntry(after, "after")]
    [problem] = q.problems
    moved = tmp_path / store.DAMAGED_DIR / path.name
    assert problem == (f"{path}: damaged (queued log {victim}: {why}; not uploaded); "
                       f"moved to {moved}")
    assert moved.exists() and not path.exists()  # kept for a human, out of the queue
    assert len(LogQueue(tmp_path, fsync=False)) == 2 and q.pending_bytes() == 11


def test_an_entry_that_cannot_be_read_is_skipped_and_kept(tmp_path: Path) -> None:
    q = LogQueue(tmp_path, fsync=False)
    good = q.append("good")
    stuck = tmp_path / "000000000007-0123456789abcdef.log"
    stuck.mkdir()  # reading it fails (EISDIR), as an unreadable file would
    assert q.pending() == [LogEntry(good, "good")]
    assert q.problems == [f"{stuck}: cannot read queued log (Is a directory); left in "
                          "the queue, not uploaded"]
    assert stuck.is_dir()


def test_entry_files_carry_length_and_checksum(tmp_path: Path) -> None:
    import zlib

    q = LogQueue(tmp_path, fsync=False)
    i = q.append("héllo")
    body = "héllo".encode()
    assert entry_file(q, i).read_bytes() == (
        b"sephb-log1 %012d %08x\n" % (len(body), zlib.crc32(body)) + body)


def test_a_full_disk_names_the_entry_and_queues_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    q = LogQueue(tmp_path, fsync=False)
    q.append("kept")

    def full(directory: Path, name: str, data: bytes, fsync: bool) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")  # as os.write raises it

    monkeypatch.setattr(store, "write_tmp", full)
    with pytest.raises(OSError) as ei:
        q.append("lost before it was queued")
    assert ei.value.errno == errno.ENOSPC
    assert ei.value.filename is not None
    assert Path(ei.value.filename).parent == tmp_path
    assert Path(ei.value.filename).name.endswith(".log")
    assert [e.data for e in q.pending()] == ["kept"]


# -- the client id ---------------------------------------------------------------------


def test_client_id_is_made_once_and_kept(tmp_path: Path) -> None:
    a = ClientState(tmp_path / "st").client_id()
    assert store.ID_RE.fullmatch(a) and a.count("-") >= 1
    assert (tmp_path / "st" / store.CLIENT_ID_FILE).read_text() == a + "\n"
    # a restart: the same id; another state directory: another one
    assert ClientState(tmp_path / "st", fsync=False).client_id() == a
    assert ClientState(tmp_path / "other").client_id() != a
    assert not list((tmp_path / "st").glob(".*.tmp"))


def test_a_client_id_written_by_hand_is_used(tmp_path: Path) -> None:
    (tmp_path / store.CLIENT_ID_FILE).write_text("desk-042")
    assert ClientState(tmp_path).client_id() == "desk-042"


@pytest.mark.parametrize("content", [b"", b"\n", b"two words\n", b"a\nb\n", b"\xff\n",
                                     b"x" * 129])
def test_a_damaged_client_id_is_reported(tmp_path: Path, content: bytes) -> None:
    (tmp_path / store.CLIENT_ID_FILE).write_bytes(content)
    with pytest.raises(UsageError) as ei:
        ClientState(tmp_path).client_id()
    assert str(ei.value).startswith(f"{tmp_path / store.CLIENT_ID_FILE}: not a client id: "
                                    "expected one line of 1-128 letters")
    assert len(str(ei.value).splitlines()) == 1
    # left as it was, for a human to look at
    assert (tmp_path / store.CLIENT_ID_FILE).read_bytes() == content


def test_an_unreadable_client_id_is_reported(tmp_path: Path) -> None:
    (tmp_path / store.CLIENT_ID_FILE).mkdir()
    with pytest.raises(UsageError, match="client-id: cannot read or create the client "
                                         "id: Is a directory"):
        ClientState(tmp_path).client_id()


def test_an_index_copy_that_is_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / store.INDEX_FILE).mkdir()
    with pytest.raises(UsageError, match=r"index\.json: cannot read the index copy: Is a "
                                         "directory"):
        IndexCopy.load(tmp_path)
    with pytest.raises(OSError) as ei:
        ClientState(tmp_path).save_index(IndexCopy("s", 1))
    assert ei.value.filename == str(tmp_path / store.INDEX_FILE)


# -- log volume ------------------------------------------------------------------------


def test_make_logs_sizes(tmp_path: Path) -> None:
    q = LogQueue(tmp_path, fsync=False)
    assert make_logs(q, 0) == [] and len(q) == 0  # idle: the 3-5 KB heartbeat
    assert IDLE_HEARTBEAT_BYTES[0] > 0
    ids = make_logs(q, FULL_LOGGING_BYTES)
    assert FULL_HEARTBEAT_BYTES[0] < FULL_LOGGING_BYTES < FULL_HEARTBEAT_BYTES[1]
    assert q.pending_bytes() == FULL_LOGGING_BYTES
    assert len(ids) == -(-FULL_LOGGING_BYTES // store.DEFAULT_ENTRY_BYTES)
    q.ack(ids)
    ids = make_logs(q, 1001, 10)
    sizes = [len(e.data.encode()) for e in q.pending()]
    assert sizes == [101] + [100] * 9
    assert all("\t0x1207" in e.data for e in q.pending())


def test_make_logs_is_deterministic(tmp_path: Path) -> None:
    a, b = LogQueue(tmp_path / "a", fsync=False), LogQueue(tmp_path / "b", fsync=False)
    make_logs(a, 5000, 3, seed=4)
    make_logs(b, 5000, 3, seed=4)
    assert [e.data for e in a.pending()] == [e.data for e in b.pending()]


@pytest.mark.parametrize(("total", "count"), [(-1, None), (10, 0), (0, 1), (3, 4),
                                              (5, -1)])
def test_make_logs_rejects_impossible_splits(tmp_path: Path, total: int,
                                             count: int | None) -> None:
    with pytest.raises(ValueError):
        make_logs(LogQueue(tmp_path, fsync=False), total, count)


# -- the queue against a model ---------------------------------------------------------


class QueueMachine(RuleBasedStateMachine):
    """The queue must behave like a list of (id, data) under append, ack, reopen and
    crashes that leave temporary files behind."""

    ids = Bundle("ids")

    @initialize()
    def open(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sephb-queue-"))
        self.queue = LogQueue(self.dir, fsync=False)
        self.model: list[tuple[str, str]] = []
        self.gone: set[str] = set()

    def teardown(self) -> None:
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(target=ids, data=st.text(max_size=50))
    def append(self, data: str) -> str:
        i = self.queue.append(data)
        assert i not in self.gone and i not in dict(self.model)
        self.model.append((i, data))
        return i

    @rule(datas=st.lists(st.text(max_size=10), max_size=4))
    def append_many(self, datas: list[str]) -> None:
        new = self.queue.append_many(datas)
        assert len(set(new)) == len(datas)
        self.model += list(zip(new, datas, strict=True))

    @rule(i=consumes(ids), again=st.booleans())
    def ack_one(self, i: str, again: bool) -> None:
        expected = int(i in dict(self.model))
        assert self.queue.ack([i, i] if again else [i]) == expected
        self.model = [(k, d) for k, d in self.model if k != i]
        self.gone.add(i)

    @precondition(lambda self: bool(self.model))
    @rule(n=st.integers(1, 5))
    def ack_oldest(self, n: int) -> None:
        # What the client does: upload pending(limit), then ack what came back.
        batch = [e.id for e in self.queue.pending(limit=n)]
        assert batch == [k for k, _ in self.model[:n]]
        assert self.queue.ack(batch) == len(batch)
        self.gone |= set(batch)
        del self.model[:n]

    @rule(names=st.lists(st.sampled_from(["s-1", "s-2", "s-3", "s-4"]), max_size=3),
          data=st.text(max_size=10))
    def ingest(self, names: list[str], data: str) -> None:
        # Ids from a small pool: some are queued already, some acknowledged.
        want = []
        for name in names:
            if name not in dict(self.model) and name not in self.gone \
                    and name not in want:
                want.append(name)
        assert self.queue.ingest((n, data) for n in names) == want
        self.model += [(n, data) for n in want]

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 100))
    def ack_any(self, pick: int) -> None:
        i, _ = self.model[pick % len(self.model)]
        assert self.queue.ack([i]) == 1
        self.model = [(k, d) for k, d in self.model if k != i]
        self.gone.add(i)

    @rule()
    def reopen(self) -> None:
        self.queue = LogQueue(self.dir, fsync=False)

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 100), keep=st.integers(0, 40))
    def truncate_from_outside(self, pick: int, keep: int) -> None:
        # Damage: the entry must never come back (moved aside), the rest unchanged.
        i, _ = self.model[pick % len(self.model)]
        [path] = [p for p in self.dir.glob("*.log") if p.stem.split("=")[-1] == i]
        raw = path.read_bytes()
        path.write_bytes(raw[:keep % len(raw)])
        # Gone from the queue, not acknowledged: an ingested id may be taken in again.
        self.model = [(k, d) for k, d in self.model if k != i]

    @rule(name=st.from_regex(r"[0-9]{12}-[0-9a-f]{16}", fullmatch=True))
    def crash_mid_append(self, name: str) -> None:
        # What a kill between write and rename leaves: a temporary file.
        (self.dir / f".{name}.dead{TMP_SUFFIX}").write_text("torn")
        self.queue = LogQueue(self.dir, fsync=False)

    @invariant()
    def matches_model(self) -> None:
        if hasattr(self, "queue"):
            assert [(e.id, e.data) for e in self.queue.pending()] == self.model
            assert len(self.queue) == len(self.model)


QueueMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30,
                                          deadline=None)
TestQueueMachine = QueueMachine.TestCase


# -- a real crash test -----------------------------------------------------------------

# A child works on a queue at random, forever, noting each step in a progress file
# with one os.write per line: what is written survives the SIGKILL (it is in the
# kernel), so the parent knows what the child was told and what it was doing. Its
# arguments: the progress file, the run's number, then its own.
CHILD_COMMON = r"""
import os, random, sys
from pathlib import Path
from sephb.conformance.client.store import LogQueue

progress, run = sys.argv[1], int(sys.argv[2])
rnd = random.Random(run)
fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def note(*words):
    os.write(fd, (" ".join(map(str, words)) + "\n").encode())

def ack_some(q):
    # Acks lag appends, so a backlog builds up across the restarts.
    ids = [e.id for e in q.pending(limit=rnd.randint(1, 3))]
    if ids:
        note("k?", *ids)
        q.ack(ids)
        note("k", *ids)
"""

# This one appends and acks.
CHILD = CHILD_COMMON + r"""
q = LogQueue(sys.argv[3])

def payload(n):
    return f"{n}|" + "x" * ((n * 7919) % 3000) + f"|{n}"

n = run * 1_000_000
while True:
    r = rnd.random()
    if r < 0.5:
        n += 1
        note("a?", n)
        note("a", n, q.append(payload(n)))
    elif r < 0.7:
        batch = list(range(n + 1, n + 1 + rnd.randint(1, 4)))
        n = batch[-1]
        note("m?", *batch)
        for k, i in zip(batch, q.append_many(payload(k) for k in batch)):
            note("a", k, i)
    else:
        ack_some(q)
"""


def payload(n: int) -> str:
    return f"{n}|" + "x" * ((n * 7919) % 3000) + f"|{n}"


def kill_midway(script: str, progress: Path, run: int, args: list[Path],
                rnd: random.Random) -> list[list[str]]:
    """Run a child (CHILD_COMMON) until it is under way, SIGKILL it at a random
    moment; the complete lines it noted in this run, split in words."""
    before = progress.stat().st_size if progress.exists() else 0
    child = subprocess.Popen([sys.executable, "-c", script, str(progress), str(run),
                              *map(str, args)])
    # Let it get going, then kill it somewhere in the middle of its work.
    deadline = time.monotonic() + 30
    while (not progress.exists() or progress.stat().st_size < before + 200) \
            and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rnd.uniform(0, 0.15))
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "the child must not exit by itself"
    text = progress.read_bytes()[before:].decode()
    return [ln.split() for ln in text.splitlines(keepends=True) if ln.endswith("\n")]


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    qdir, progress = tmp_path / "queue", tmp_path / "progress"
    rnd = random.Random(20120627)
    live: dict[str, int] = {}  # id -> n of every entry known to be queued
    acked: set[str] = set()
    kills = 0
    for run in range(1, 9):
        # What the child was told (complete lines of this run only).
        lines = kill_midway(CHILD, progress, run, [qdir], rnd)
        kills += 1
        in_flight_ack: set[str] = set()
        in_flight_append: set[int] = set()
        for op, *args in lines:
            if op == "a?":
                in_flight_append = {int(args[0])}
            elif op == "m?":
                in_flight_append = {int(a) for a in args}
            elif op == "a":
                n, i = int(args[0]), args[1]
                assert i not in live and i not in acked, "an id was handed out twice"
                live[i] = n
                in_flight_append.discard(n)
            elif op == "k?":
                in_flight_ack = set(args)
            elif op == "k":
                for i in args:
                    live.pop(i, None)
                    acked.add(i)
                in_flight_ack = set()

        entries = LogQueue(qdir).pending()
        ids = [e.id for e in entries]
        assert len(ids) == len(set(ids)), "an entry is present twice"
        for e in entries:
            n = int(e.data.split("|", 1)[0])
            assert e.data == payload(n), f"torn entry {e.id}"
            assert e.id not in acked, f"acked entry {e.id} came back"
            if e.id not in live:
                # Only an append the kill interrupted after its rename may appear
                # without the child having seen its id.
                assert n in in_flight_append, f"unknown entry {e.id} ({n})"
                live[e.id] = n
        present = set(ids)
        for i, n in list(live.items()):
            if i not in present:
                assert i in in_flight_ack, f"entry {i} ({n}) lost"
                del live[i]  # its ack got through before the kill
                acked.add(i)
        assert [int(e.data.split("|", 1)[0]) for e in entries] == sorted(live.values()), \
            "entries out of append order"
        assert not list(qdir.glob(".*.tmp"))
    assert kills == 8 and acked and live


# The child plays a client with a spool: it writes spool files (as the suite does),
# takes the spool in (ingest, then remove each file) and acks at random, noting each
# step as above. An ack may come between an ingest and the removal of its files when
# a kill fell there: the next take must then drop those files, not queue them again.
SPOOL_CHILD = CHILD_COMMON + r"""
q, spool = LogQueue(sys.argv[3]), Path(sys.argv[4])
n = run * 1_000_000
while True:
    r = rnd.random()
    if r < 0.4:
        n += 1
        name = f"s-{n}"
        (spool / f".{name}.tmp").write_text(f"entry {n}")
        os.rename(spool / f".{name}.tmp", spool / f"{name}.log")
        note("w", name)
    elif r < 0.75:
        files = sorted(spool.glob("*.log"))
        q.ingest((p.stem, p.read_text()) for p in files)
        for p in files:
            p.unlink()
    else:
        ack_some(q)
"""


def test_sigkill_while_taking_in_a_spool(tmp_path: Path) -> None:
    qdir, spool, progress = tmp_path / "queue", tmp_path / "spool", tmp_path / "progress"
    spool.mkdir()
    rnd = random.Random(20260127)
    written: set[str] = set()
    acked: set[str] = set()
    for run in range(1, 9):
        in_flight: set[str] = set()
        for op, *args in kill_midway(SPOOL_CHILD, progress, run, [qdir, spool], rnd):
            if op == "w":
                written.add(args[0])
            elif op == "k?":
                in_flight = set(args)
            elif op == "k":
                acked |= set(args)
                in_flight = set()
        # A file renamed into the spool just before the kill, not yet noted.
        spooled = {p.stem for p in spool.glob("*.log")}
        written |= spooled
        names = [p.name for p in qdir.glob("*.log")]
        queued = [name[:-len(".log")].split("=", 1)[1] for name in names]
        assert len(queued) == len(set(queued)), "an entry is queued twice"
        assert set(queued) == {e.id for e in LogQueue(qdir).pending()}
        assert not set(queued) & acked, "an acknowledged entry was queued again"
        for i in written:
            assert i in spooled or i in queued or i in acked or i in in_flight, \
                f"entry {i} lost"
        acked |= in_flight - set(queued)  # acks that got through before the kill
        assert not list(qdir.glob(".*.tmp"))
    assert acked and written - acked
