"""Live validation: trace records judged one at a time, as a monitor makes them, by
the engine of ``sephb validate`` (:mod:`._engine`).

A live monitor (``sephb monitor``) sees a client's traffic as it happens, makes the
server-view records a trace holds (:mod:`.trace`), writes them to an NDJSON trace
and hands each one to :meth:`LiveValidation.feed`. The judgement is the offline
one, not a second implementation of it: every record goes through the file
reader's careful path (the record is encoded as the line a file would hold and
read as that line, so a record that breaks the format is reported exactly as the
reader reports the line), into the same :class:`~._engine._Run` that
:func:`~.validate.validate_file` runs a file through, numbered as the lines of the
file written alongside would be. So :meth:`LiveValidation.result` equals
``validate_file(that_file, data=True)`` (with the same options), and validating
the written file offline later gives the same verdicts.

What a monitor can read while records come in, without changing anything:

* :meth:`LiveValidation.clients`: per client stream (a client id in one view) the
  records and events seen, its last time, its verdict so far (a violation shows as
  soon as the record that proves it is fed) and, with ``data``, the deadlines
  pending;
* :meth:`LiveValidation.overdue`: the presumptive findings at a model time with no
  record since: what the end of the trace at that time would break.

:meth:`LiveValidation.result` ends the run (the engine parks every stream and
judges what is still open); nothing may be fed after it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from sephb.conformance.traces._engine import MAX_LINE, _careful, _Run, _side
from sephb.conformance.traces._verdicts import ClientVerdict, FileResult, Problem
from sephb.conformance.traces.clock import tolerance_for
from sephb.conformance.traces.properties import ClientConfig
from sephb.conformance.traces.trace import Record, header_record
from sephb.model.interpretations import DEFAULT
from sephb.model.protocol import Mode

__all__ = ["LiveClient", "LiveValidation", "Pending", "Violation"]

#: Records between two looks at the run's memory (a fold of long histories, a
#: parking pass over idle streams: what the file reader does between blocks).
_CHECK_EVERY: Final = 4096
#: Looks between two folds (the file reader folds every 64 MiB, some 500,000 lines).
_FOLD_EVERY: Final = 16

_encode: Final = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Pending:
    """A deadline open for a client: neither met nor broken yet."""

    #: The deadline's id (``act-at-once``, ``request``, ``next-heartbeat``,
    #: ``session``).
    deadline: str
    requirement: str
    #: What it asks for.
    text: str
    #: Model time it is due by (the tolerance comes on top).
    due: int
    #: The line a final verdict's ``pending`` holds for it.
    summary: str


@dataclass(frozen=True)
class Violation:
    """What a client violated (its final verdict says the same, and more)."""

    requirement: str
    message: str
    #: The line (in the trace written alongside) and model time of the record that
    #: proved it.
    line: int | None
    t: int | None


@dataclass(frozen=True)
class LiveClient:
    """One client stream (a client id in one view) as the records so far show it."""

    client: str
    #: Who observed its records: ``"server"`` or ``"client"`` (its own view).
    view: str
    #: Records of it the engine read (not bad lines).
    records: int
    #: Records it checked as steps of the model (a GUP's transport records are
    #: not; for a violation: up to and including it): the final verdict's
    #: ``events``.
    events: int
    #: Model time of its last record.
    last_t: int
    #: Its violation, if the records so far prove one (the first: a client's
    #: checks end there).
    violation: Violation | None = None
    #: With ``data``: the deadlines open now, by due time (none after a violation).
    pending: tuple[Pending, ...] = ()

    @property
    def verdict(self) -> Literal["conformant", "violation"]:
        """The verdict so far."""
        return "conformant" if self.violation is None else "violation"

    @property
    def conformant(self) -> bool:
        return self.violation is None


class LiveValidation:
    """Records judged as they arrive, by the engine of ``sephb validate``.

    The options are :func:`~.validate.validate_file`'s: ``data`` checks the data
    properties and deadlines too (``--data``), ``tolerance_ms`` fixes the timing
    rules' tolerance (None: it follows the time scale of the header, else of
    ``time_scale``), ``config`` is the clients' configuration (``--sylink`` read
    by :meth:`ClientConfig.of`; it implies ``data``), ``mode`` the clients' mode
    when no configuration says it. ``name`` is the path the findings name (the
    trace written alongside, for results equal to that file's)."""

    def __init__(self, interpretation: str = DEFAULT, *, data: bool = True,
                 tolerance_ms: int | None = None, time_scale: float | None = None,
                 config: ClientConfig | None = None, mode: Mode | str | None = None,
                 name: str = "<live>") -> None:
        if time_scale is not None:
            tolerance_for(time_scale)  # a scale that is not a number > 0: ValueError
        self._run = _Run(name, interpretation, Mode(mode) if mode else None, data,
                         tolerance_ms, config, time_scale)
        #: The line the last record (or header) would be on in the written trace.
        self._line = 0
        #: (view, client id) -> records read.
        self._records: dict[tuple[str, str], int] = {}
        self._until_check = _CHECK_EVERY
        self._checks = 0
        self._result: FileResult | None = None

    # --- feeding ------------------------------------------------------------------

    def header(self, time_scale: float, writer: str) -> None:
        """A trace header, as its line in a file sets it: before the first record,
        the recording's time scale (the tolerance follows it unless given). Raises
        ValueError for a scale that is not a number > 0 or an empty writer (as
        :func:`~.trace.header_record` does)."""
        self.feed_line(_encode(header_record(time_scale, writer)))

    def feed(self, record: Mapping[str, Any] | Record) -> ClientVerdict | None:
        """One trace record (a dict as in the NDJSON format, or a
        :class:`~.trace.Record`); a header's dict is taken as a header. A record
        that breaks the format is reported (:attr:`problems`) as the file reader
        reports its line, and skipped; nothing raises. Returns the violation this
        record proved, if it proved one (:meth:`clients` shows it from now on)."""
        try:
            raw = _encode(record if isinstance(record, (dict, Record)) else dict(record))
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            self._ended()
            self._line += 1
            self._run.bad(self._line, f"bad record: not JSON data: {exc}")
            return None
        return self.feed_line(raw)

    def feed_line(self, raw: bytes) -> ClientVerdict | None:
        """One line of a trace as written (a record or a header; one trailing
        newline is dropped): :meth:`feed` without the encoding."""
        self._ended()
        run = self._run
        self._line += 1
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if len(raw) > MAX_LINE:
            run.bad(self._line, f"line longer than {MAX_LINE} bytes: skipped")
            return None
        problems, verdicts = run.result.problem_count, len(run.verdicts)
        rec = _careful(run, raw, self._line, False)
        if rec is not None and run.result.problem_count == problems:
            key = (_side(rec.by), rec.client)
            self._records[key] = self._records.get(key, 0) + 1
        self._until_check -= 1
        if not self._until_check:
            self._look()
        if len(run.verdicts) != verdicts:  # a violation is recorded once a stream
            return next(reversed(run.verdicts.values()))
        return None

    def _look(self) -> None:
        """Keep memory bounded as the file reader does between blocks: long
        histories cut back now and then, idle streams parked when many are hot
        (neither changes a verdict)."""
        run = self._run
        self._until_check = _CHECK_EVERY
        self._checks += 1
        if self._checks % _FOLD_EVERY == 0:
            run.fold()
        if run.hot() > run.next_pass:
            run.park_idle()

    def _ended(self) -> None:
        if self._result is not None:
            raise RuntimeError("this live validation has ended: result() was called")

    # --- reading ------------------------------------------------------------------

    @property
    def tolerance_ms(self) -> int:
        """The timing rules' tolerance in use (model ms)."""
        return self._run.tolerance_ms

    @property
    def problems(self) -> list[Problem]:
        """The input problems so far (the first ones; see :attr:`problem_count`)."""
        return self._run.result.problems

    @property
    def problem_count(self) -> int:
        return self._run.result.problem_count

    def clients(self) -> list[LiveClient]:
        """Every client stream so far, in the order a result reports them (the
        server views, then the client views, each in the order first seen)."""
        self._ended()
        run = self._run
        code = run.streams.code
        out = []
        for row in sorted(range(len(code)), key=lambda r: code[r] & 3):
            client, view, last, events = run.peek(row)
            records = self._records.get((view, client), 0)
            v = run.verdicts.get(row)
            if v is not None:
                out.append(LiveClient(client, view, records, v.events, last,
                                      Violation(v.requirement or "", v.message or "",
                                                v.line, v.t)))
                continue
            props = run.props_of.get(row)
            pending = () if props is None else tuple(
                Pending(o.deadline, o.requirement, o.text, o.due, o.describe())
                for o in props.pending())
            out.append(LiveClient(client, view, records, events, last,
                                  pending=pending))
        return out

    def overdue(self, now: int) -> list[tuple[str, str, str]]:
        """The presumptive findings at model time ``now`` with no record since:
        (client, requirement, message) for each deadline pending whose due time
        plus the tolerance is before ``now``, as the end of the trace at ``now``
        would break it (the message is the one :meth:`result` would give). Changes
        nothing: each is read off a copy of the client's properties."""
        self._ended()
        run = self._run
        out: list[tuple[str, str, str]] = []
        memo: dict[int, Any] = {}  # one per call: what the copies share, once
        for row, props in run.props_of.items():
            if row in run.verdicts:
                continue
            tol = props.tolerance_ms
            if not any(now > o.due + tol for o in props.pending()):
                continue
            probe = copy.deepcopy(props, memo)
            client = run.streams.name(row)
            while (found := probe.finish(now)) is not None:
                out.append((client, *found))
        return out

    def result(self, end: int | None = None) -> FileResult:
        """The final result, as :func:`~.validate.validate_file` gives it for a file
        holding the same header and records (the same lines, in order). ``end``:
        the model time monitoring went on to, when later than the last record
        (deadlines due before it, plus the tolerance, are broken); None: the last
        record, as the file reader ends a file. It ends the run: a second call
        gives the same result, and nothing may be fed or read after it."""
        if self._result is None:
            run = self._run
            res = run.finish(end)
            if not res.problem_count and not res.events:  # as validate_file says it
                only = " (a header only: its writer recorded nothing)" if run.header \
                    else ""
                res.problem(Problem(res.path, None, f"empty trace: no records{only}"))
            self._result = res
        return self._result
