"""The reference client's durable state: its ``--state-dir``.

Theory of operation
-------------------
A heartbeat client keeps two things across restarts: its copy of ``index.dat`` (what
it compares the manager's against in step 3) and the logs it has not yet delivered
(steps 5 and 6). The seed does not say what happens to logs when an upload fails; a
client that loses them is wrong (ambiguity 8), so a log leaves the queue only when the
manager has acknowledged it, and the process may be SIGKILLed between any two
syscalls without losing, duplicating or tearing an entry.

Layout of a state directory::

    <state-dir>/client-id                     the client's id, made once (X-Sephb-Client)
    <state-dir>/index.json                    the index copy (serial, revision)
    <state-dir>/logs/000000000042-<rand>.log  one file per queued log (step 5)
    <state-dir>/logs/000000000043=<id>.log    one taken in with an id of its own
    <state-dir>/logs/acked.json               ids of taken-in logs acknowledged lately
    <state-dir>/logs/damaged/                 entries found damaged, moved aside
    <state-dir>/sensors/...                   same, LAN-sensor/learned-app logs (step 6)

**The client id** (``client-id``, one line) is made the first time a client without
``--client-id`` starts, from the host name and 64 random bits, and written
atomically; every later start reads it back. The managers key logs by client, so a
log re-sent after a restart is recognised as the same only under the same id (an id
made per process let 58 of 212 logs be stored twice across 60 kills).

**Atomic files.** Every file is written whole or not at all: the bytes go to a
hidden temporary file in the same directory, which is fsynced, renamed over its final
name with ``os.replace`` (atomic on POSIX) and the directory is fsynced so that the
rename itself is durable. A crash leaves at most a stray ``.*.tmp`` file, which a
:class:`LogQueue` deletes when it opens and every reader ignores.

**The log queue is a directory, one file per entry.** An entry's id is its file's
name: a 12-digit sequence number, which gives the append order, and 64 random bits,
which make ids unique for ever (the sequence restarts after the highest entry when a
queue is reopened, so after the newest entries were acked a number can come back; the
random part cannot). ``append`` returns only after the entry's rename is durable, so
a returned id is never lost. ``ack`` deletes files; deleting an absent or unknown id
is a no-op, so a repeated acknowledgement after a crash is harmless. The crash
cases are therefore:

* killed during ``append``: the entry exists whole or not at all. If the rename
  happened but the caller never saw the id, the entry is still delivered (at least
  once); the manager drops duplicates by id.
* killed during ``ack``: some of the ids are deleted, the rest stay queued and are
  uploaded again with the same ids.

**Entries made elsewhere** (a log spool, ``sephb client --log-dir``) come in through
``ingest`` with ids of their own (:data:`ID_RE`): the file is ``<seq>=<id>.log``, so
the sequence still gives the order and the id survives restarts. Ingesting is
idempotent: an id already queued, or among the last :data:`ACKED_MEMORY` such ids
acknowledged (``acked.json``, written durably by ``ack`` before it deletes them), is
not queued again. So the caller may remove the source of an entry only after
``ingest`` returned, and a crash in between just ingests it again for nothing.

There is no journal to replay and no index to rebuild: the directory listing *is* the
queue. One process writes a state directory at a time (the client that owns it).

**Damage from outside.** Each entry file starts with a header that gives the length
and CRC-32 of its text (``sephb-log1 <12-digit length> <8 hex digits>``). An entry
whose header, length, checksum or UTF-8 does not hold (truncated, emptied, edited, a
stray file of the right name) is never uploaded: :meth:`LogQueue.pending` moves it to
``damaged/``, says so in :attr:`LogQueue.problems` and returns the others, so one bad
file blocks nothing. A damaged ``acked.json`` is moved there too (forgetting it costs
at most a re-sent log, which the manager drops by id).

A directory that cannot be created or listed is a :class:`UsageError` (a bad
``--state-dir``); an I/O failure later (a full disk) is the ``OSError`` itself, naming
the file, raised before the id is returned, so nothing is reported queued that is not.
An entry that cannot be read is left queued, skipped and reported in ``problems``.

``fsync=False`` skips the fsyncs for fast simulations: rename and unlink stay atomic,
so the queue still survives a killed process, just not a power cut.
"""

from __future__ import annotations

import math
import os
import random
import re
import secrets
import socket
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import msgspec

from sephb.conformance.traces.files import TMP_SUFFIX, atomic_write, fsync_dir, write_tmp
from sephb.model.errors import UsageError
from sephb.model.protocol import FULL_HEARTBEAT_BYTES

__all__ = [
    "ACKED_FILE",
    "ACKED_MEMORY",
    "CLIENT_ID_FILE",
    "DAMAGED_DIR",
    "DEFAULT_ENTRY_BYTES",
    "FULL_LOGGING_BYTES",
    "ID_RE",
    "INDEX_FILE",
    "LOGS_DIR",
    "SENSORS_DIR",
    "ClientState",
    "IndexCopy",
    "LogEntry",
    "LogQueue",
    "is_log_id",
    "make_logs",
]

INDEX_FILE: Final = "index.json"
CLIENT_ID_FILE: Final = "client-id"
LOGS_DIR: Final = "logs"
SENSORS_DIR: Final = "sensors"
#: In a queue directory: where damaged entries are moved.
DAMAGED_DIR: Final = "damaged"

#: Log bytes per heartbeat at maximum logging: the middle of the seed's 200-300 KB
#: band, which leaves the protocol's own few KB inside the band too.
FULL_LOGGING_BYTES: Final = (FULL_HEARTBEAT_BYTES[0] + FULL_HEARTBEAT_BYTES[1]) // 2
#: Size of one generated log entry when :func:`make_logs` is not told a count.
DEFAULT_ENTRY_BYTES: Final = 8 * 1024

_ENTRY_RE: Final = re.compile(r"[0-9]{12}-[0-9a-f]{16}")
#: The id of an entry made elsewhere (:meth:`LogQueue.ingest`): a spool file's name.
ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: A queued entry's file name without ``.log``: the queue's own id, or a sequence
#: number, ``=`` and an ingested id.
_NAME_RE: Final = re.compile(r"[0-9]{12}(?:-[0-9a-f]{16}|=(?P<id>" + ID_RE.pattern
                             + r"))")

#: In a queue directory: the ids of ingested entries acknowledged lately.
ACKED_FILE: Final = "acked.json"
#: How many of those it keeps (a spool's source may outlive the ack that long).
ACKED_MEMORY: Final = 4096
_SUFFIX: Final = ".log"

# An entry file: this header, then the text in UTF-8. Fixed width, so that sizes need
# no read (pending_bytes).
_MAGIC: Final = b"sephb-log1 "
_HEADER_RE: Final = re.compile(rb"sephb-log1 ([0-9]{12}) ([0-9a-f]{8})\n")
_HEADER_LEN: Final = len(_MAGIC) + 12 + 1 + 8 + 1


def _frame(blob: bytes) -> bytes:
    return _MAGIC + b"%012d %08x\n" % (len(blob), zlib.crc32(blob)) + blob


def _unframe(raw: bytes) -> str:
    """The text of an entry file; ValueError saying what is wrong with it."""
    m = _HEADER_RE.match(raw)
    if m is None:
        raise ValueError(f"no entry header ({len(raw)} bytes)" if len(raw) < _HEADER_LEN
                         else "no entry header")
    blob = raw[_HEADER_LEN:]
    if len(blob) != int(m[1]):
        raise ValueError(f"{len(blob)} bytes of text, the header says {int(m[1])}")
    if zlib.crc32(blob) != int(m[2], 16):
        raise ValueError("checksum mismatch")
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as e:  # only a bug could checksum bad text; say so
        raise ValueError(f"not UTF-8 ({e.reason} at byte {e.start})") from None


def _named(e: OSError, path: Path) -> OSError:
    """``e`` naming ``path`` (an error from os.write names no file); same errno, so
    the same OSError subclass."""
    return OSError(e.errno, e.strerror or str(e), str(path))


def is_log_id(entry_id: str) -> bool:
    """Whether ``entry_id`` may name an ingested entry: :data:`ID_RE`, and not the
    form of the queue's own ids."""
    return bool(ID_RE.fullmatch(entry_id)) and not _ENTRY_RE.fullmatch(entry_id)


# -- the index copy --------------------------------------------------------------------


class _IndexFile(msgspec.Struct, forbid_unknown_fields=True):
    serial: str
    revision: Annotated[int, msgspec.Meta(ge=0)]


@dataclass(frozen=True)
class IndexCopy:
    """The client's copy of index.dat: what step 3 compares the manager's against."""

    #: Policy serial number, e.g. ``A3AF-01/30/2012 23:50:54 284``.
    serial: str
    #: Content revision (>= 0).
    revision: int

    def __post_init__(self) -> None:
        if not isinstance(self.serial, str):
            raise ValueError(f"serial must be a str, got {self.serial!r}")
        if isinstance(self.revision, bool) or not isinstance(self.revision, int) \
                or self.revision < 0:
            raise ValueError(f"revision must be an integer >= 0, got {self.revision!r}")

    @classmethod
    def load(cls, state_dir: str | Path) -> IndexCopy | None:
        """The copy saved in ``state_dir``; None if the client never saved one.

        A file that exists but cannot be decoded raises :class:`UsageError`: it was
        written atomically, so it is damage from outside, and guessing a value would
        hide it.
        """
        path = Path(state_dir) / INDEX_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:  # e.g. a directory in its place
            raise UsageError(f"{path}: cannot read the index copy: "
                             f"{e.strerror or e}") from None
        try:
            f = msgspec.json.decode(raw, type=_IndexFile)
        except msgspec.DecodeError as e:
            raise UsageError(
                f"{path}: not a client index copy ({e}); expected "
                '{"serial": "<policy serial>", "revision": <integer >= 0>}'
            ) from None
        return cls(f.serial, f.revision)

    def save(self, state_dir: str | Path, *, fsync: bool = True) -> None:
        """Store this copy in ``state_dir`` atomically."""
        data = msgspec.json.encode(_IndexFile(self.serial, self.revision))
        atomic_write(Path(state_dir) / INDEX_FILE, data + b"\n", fsync=fsync)


# -- the log queue ---------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One queued log: its stable id and its text."""

    id: str
    data: str


class LogQueue:
    """A durable FIFO of log entries in a directory, keyed by id (see the module
    docstring)."""

    def __init__(self, directory: str | Path, *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        #: Damage found and dealt with (moved aside, skipped), one line each, for the
        #: owner to report; it may clear the list.
        self.problems: list[str] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Leftovers of appends that were killed before their rename: never visible
            # as entries, removed so they do not pile up.
            for p in self.directory.glob(f".*{TMP_SUFFIX}"):
                p.unlink(missing_ok=True)
            names = list(self._listing().values())
            acked = self._load_acked()
        except OSError as e:
            raise UsageError(
                f"{self.directory}: cannot use as a log queue: {e.strerror or e}"
            ) from None
        self._next_seq = int(names[-1][:12]) + 1 if names else 0
        #: Ids of ingested entries acknowledged lately, oldest first (ACKED_FILE).
        self._acked = acked

    def _listing(self) -> dict[str, str]:
        """Id -> file name (without ``.log``) of the queued entries, in append order
        (names sort by sequence)."""
        names = sorted(
            name[: -len(_SUFFIX)]
            for name in os.listdir(self.directory)
            if name.endswith(_SUFFIX) and _NAME_RE.fullmatch(name[: -len(_SUFFIX)])
        )
        out: dict[str, str] = {}
        for name in names:
            m = _NAME_RE.fullmatch(name)
            assert m is not None
            out[m["id"] or name] = name
        return out

    def _ids(self) -> list[str]:
        """Ids of the queued entries, in append order."""
        return list(self._listing())

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}{_SUFFIX}"

    def _load_acked(self) -> list[str]:
        path = self.directory / ACKED_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        except IsADirectoryError:
            self.problems.append(f"{path}: is a directory, not the list of acknowledged "
                                 "log ids; a log taken in again may be re-sent")
            return []
        try:
            return msgspec.json.decode(raw, type=list[str])
        except msgspec.DecodeError as e:
            # Forgetting it costs at most a re-sent log (the manager drops it by id);
            # refusing to run would cost every log.
            self._move_aside(ACKED_FILE, f"not a list of acknowledged log ids ({e})")
            return []

    def _move_aside(self, file_name: str, why: str) -> None:
        """Move a damaged file of the queue to DAMAGED_DIR and say so in problems."""
        src = self.directory / file_name
        try:
            damaged = self.directory / DAMAGED_DIR
            damaged.mkdir(exist_ok=True)
            dst = damaged / file_name
            if dst.exists():  # never overwrite what an earlier quarantine kept
                dst = damaged / f"{secrets.token_hex(4)}-{file_name}"
            os.replace(src, dst)
            if self.fsync:
                fsync_dir(self.directory)
            done = f"moved to {dst}"
        except OSError as e:
            done = f"could not be moved aside ({e.strerror or e}), skipped"
        self.problems.append(f"{src}: damaged ({why}); {done}")

    def _put(self, name: str, blob: bytes) -> None:
        """Write one entry file atomically (the caller syncs the directory)."""
        try:
            tmp = write_tmp(self.directory, name, _frame(blob), self.fsync)
        except OSError as e:
            raise _named(e, self._path(name)) from None
        try:
            os.replace(tmp, self._path(name))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def append(self, data: str) -> str:
        """Queue ``data``; return its id once the entry is durable."""
        return self.append_many([data])[0]

    def append_many(self, items: Iterable[str]) -> list[str]:
        """Queue several entries in order, with one directory sync for the batch.

        Each entry is atomic on its own; a crash part-way leaves a prefix of the batch
        queued. The ids are returned only when all of them are durable.
        """
        # Encode first: a str that is not valid text fails before anything is written.
        blobs = [d.encode("utf-8") for d in items]
        ids: list[str] = []
        for blob in blobs:
            entry_id = f"{self._next_seq:012d}-{secrets.token_hex(8)}"
            self._next_seq += 1
            self._put(entry_id, blob)
            ids.append(entry_id)
        if ids and self.fsync:
            fsync_dir(self.directory)
        return ids

    def ingest(self, items: Iterable[tuple[str, str]]) -> list[str]:
        """Queue entries made elsewhere under their own ids, in order, with one
        directory sync for the batch; return the ids queued, once durable.

        An id already queued, or acknowledged lately (:data:`ACKED_MEMORY`), is
        skipped: ingesting the same entry again is harmless, so its source may be
        removed only after this returned. Ids must match :data:`ID_RE` and not look
        like the queue's own (``ValueError`` before anything is written).
        """
        batch = [(entry_id, data.encode("utf-8")) for entry_id, data in items]
        for entry_id, _ in batch:
            if not is_log_id(entry_id):
                raise ValueError(f"log id {entry_id!r}: expected 1-128 letters, digits, "
                                 f"'.', '_' or '-' (not the queue's own id form)")
        have = set(self._listing()) | set(self._acked)
        added: list[str] = []
        for entry_id, blob in batch:
            if entry_id in have:
                continue
            have.add(entry_id)
            self._put(f"{self._next_seq:012d}={entry_id}", blob)
            self._next_seq += 1
            added.append(entry_id)
        if added and self.fsync:
            fsync_dir(self.directory)
        return added

    def pending(self, limit: int | None = None) -> list[LogEntry]:
        """The oldest ``limit`` (default: all) entries not yet acknowledged.

        A damaged entry is moved aside and one that cannot be read is skipped (both
        reported in :attr:`problems`): neither is returned, neither blocks the rest.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        entries: list[LogEntry] = []
        for entry_id, name in self._listing().items():
            if limit is not None and len(entries) >= limit:
                break
            path = self._path(name)
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # acked between listing and reading
                continue
            except OSError as e:
                self.problems.append(f"{path}: cannot read queued log ({e.strerror or e}); "
                                     "left in the queue, not uploaded")
                continue
            try:
                entries.append(LogEntry(entry_id, _unframe(raw)))
            except ValueError as e:
                self._move_aside(path.name, f"queued log {entry_id}: {e}; not uploaded")
        return entries

    def ack(self, ids: Iterable[str]) -> int:
        """Remove acknowledged entries durably; return how many were removed.

        Ids that name no queued entry (already acked, or not an id at all) are
        ignored: a manager may acknowledge twice, and only listed entries' files are
        touched. Ingested ids are remembered (durably, first) so that ingesting them
        again does not queue them again.
        """
        listing = self._listing()
        gone: list[tuple[str, str]] = []
        for entry_id in ids:
            if isinstance(entry_id, str) and entry_id in listing:
                gone.append((entry_id, listing.pop(entry_id)))
        ingested = [entry_id for entry_id, name in gone if name != entry_id]
        if ingested:
            kept = set(ingested)
            self._acked = ([i for i in self._acked if i not in kept]
                           + ingested)[-ACKED_MEMORY:]
            try:
                atomic_write(self.directory / ACKED_FILE, msgspec.json.encode(self._acked),
                             fsync=self.fsync)
            except OSError as e:  # before any deletion: every entry stays queued
                raise _named(e, self.directory / ACKED_FILE) from None
        removed = 0
        for _, name in gone:
            try:
                self._path(name).unlink()
            except FileNotFoundError:
                continue
            removed += 1
        if removed and self.fsync:
            fsync_dir(self.directory)
        return removed

    def pending_bytes(self) -> int:
        """Total size of the queued entries, in bytes of UTF-8."""
        total = 0
        for name in self._listing().values():
            try:
                total += max(0, self._path(name).stat().st_size - _HEADER_LEN)
            except FileNotFoundError:
                continue
        return total

    def __len__(self) -> int:
        return len(self._listing())

    def __repr__(self) -> str:
        return f"LogQueue({str(self.directory)!r}, fsync={self.fsync})"


# -- the state directory ---------------------------------------------------------------


class ClientState:
    """A client's ``--state-dir``: the index copy and the two upload queues."""

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"{self.root}: cannot use as a state directory: "
                             f"{e.strerror or e}") from None
        self.fsync = fsync
        #: Step 5: client log files.
        self.logs = LogQueue(self.root / LOGS_DIR, fsync=fsync)
        #: Step 6: LAN-sensor and learned-application logs.
        self.sensors = LogQueue(self.root / SENSORS_DIR, fsync=fsync)

    def load_index(self) -> IndexCopy | None:
        return IndexCopy.load(self.root)

    def save_index(self, index: IndexCopy) -> None:
        """Store the index copy; an OSError names the file."""
        try:
            index.save(self.root, fsync=self.fsync)
        except OSError as e:
            raise _named(e, self.root / INDEX_FILE) from None

    def take_problems(self) -> list[str]:
        """The queues' problems (:attr:`LogQueue.problems`) since the last call."""
        out = self.logs.problems + self.sensors.problems
        self.logs.problems.clear()
        self.sensors.problems.clear()
        return out

    def client_id(self) -> str:
        """The client's stable id: read from :data:`CLIENT_ID_FILE`, or made and
        stored there the first time (see the module docstring).

        Raises :class:`UsageError` naming the file when it holds no id or cannot be
        read or written: the caller decides what to run under then.
        """
        path = self.root / CLIENT_ID_FILE
        try:
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                return self._make_client_id(path)
        except OSError as e:
            raise UsageError(f"{path}: cannot read or create the client id: "
                             f"{e.strerror or e}") from None
        text = raw.decode("utf-8", "replace")
        client_id = text[:-1] if text.endswith("\n") else text
        if not ID_RE.fullmatch(client_id):
            raise UsageError(f"{path}: not a client id: expected one line of 1-128 "
                             f"letters, digits, '.', '_' or '-', got {client_id[:80]!r}")
        return client_id

    def _make_client_id(self, path: Path) -> str:
        host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()).strip(".-")[:63]
        client_id = f"{host or 'sephb'}-{secrets.token_hex(8)}"
        tmp = write_tmp(self.root, path.name, f"{client_id}\n".encode(), self.fsync)
        try:
            # link, not replace: two first starts at once agree on the first id made.
            os.link(tmp, path)
        except FileExistsError:
            return self.client_id()
        except OSError:  # a file system without hard links
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        if self.fsync:
            fsync_dir(self.root)
        return client_id


# -- log volume ------------------------------------------------------------------------

# Event ids and texts of the client System Log (syslog.log), from SEPparser's format
# notes: generated logs look like what a real client uploads.
_EVENTS: Final = (
    (0x12070301, "Connected to Symantec Endpoint Protection Manager"),
    (0x12070302, "No response from Symantec Endpoint Protection Manager"),
    (0x12070303, "Failed to connect to the server"),
    (0x12070304, "Disconnected from Symantec Endpoint Protection Manager"),
    (0x12070306, "New policy received"),
    (0x12070307, "New policy has been applied"),
    (0x1207030A, "The client has the latest policy"),
    (0x1207020F, "Location has been changed to Default"),
    (0x12070900, "Group Update Provider message"),
)


def _log_text(rnd: random.Random, size: int) -> str:
    """Exactly ``size`` bytes (ASCII) of tab-separated System Log lines."""
    lines: list[str] = []
    n = 0
    while n < size:
        event, text = rnd.choice(_EVENTS)
        line = (
            f"{rnd.randint(1, 12):02d}/{rnd.randint(1, 28):02d} "
            f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}"
            f"\t0x{event:08X}\t{text}\t{rnd.getrandbits(64):016x}\n"
        )
        lines.append(line)
        n += len(line)
    return "".join(lines)[:size]


def make_logs(
    queue: LogQueue, total_bytes: int, count: int | None = None, *, seed: int = 0
) -> list[str]:
    """Queue ``count`` generated log entries totalling exactly ``total_bytes``.

    ``total_bytes=0`` is an idle client (the seed's 3-5 KB heartbeat carries no logs);
    :data:`FULL_LOGGING_BYTES` is maximum logging (200-300 KB). ``count`` defaults to
    one entry per :data:`DEFAULT_ENTRY_BYTES`. The text is deterministic for a seed.
    Returns the new ids in order.
    """
    if total_bytes < 0:
        raise ValueError(f"total_bytes must be >= 0, got {total_bytes}")
    if count is None:
        count = math.ceil(total_bytes / DEFAULT_ENTRY_BYTES)
    if count < 0 or (count == 0) != (total_bytes == 0) or count > total_bytes:
        raise ValueError(
            f"cannot split {total_bytes} bytes into {count} non-empty log entries"
        )
    rnd = random.Random(seed)
    base, extra = divmod(total_bytes, count) if count else (0, 0)
    return queue.append_many(
        _log_text(rnd, base + (1 if i < extra else 0)) for i in range(count)
    )
