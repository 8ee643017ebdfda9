"""Offline trace validation: ``sephb validate FILE...``.

Theory of operation
-------------------
A trace file (NDJSON, plain or gzip, or a HAR capture, :mod:`sephb.conformance.traces.har`)
holds the records of many clients, interleaved. Each client's records are run through
the trace checker compiled from the transition table
(:func:`sephb.model.checker.tables_for`): a client's whole state is one *node* of the
compiled automaton, and a record moves it by one list index. Which events count as
hidden depends on who observed the record, decided **per record** by its ``by``
field: ``"server"`` records are checked with the events a server cannot see hidden
(:data:`sephb.conformance.traces.properties.HIDDEN`); ``"client"`` records (and records
without ``by``) with nothing hidden. A file that holds both views of one client
(``sephb manager`` and ``sephb client`` sharing a trace) checks them as two separate
streams, "c1 (server)" and "c1 (client)". A GUP's own ``CONNECT``/``DISCONNECT``
(``role: "gup"``) are transport records, not model steps, and are skipped.

The hot path is built for >= 1,000,000 events/s on one core:

* the file is read in 1 MiB blocks into one reused buffer, cut at the last newline;
  numpy finds the block's newlines (their count numbers the lines) and checks that
  every line boundary is ``}\\n{`` (:class:`_Scanner`: then no JSON value can span
  lines or share one);
* such a block is decoded in one C call, ``Decoder(_Line).decode_lines``, into a
  small Struct holding only the fields the checker reads (``t``, ``client``,
  ``event``, ``by``, ``role``, ``changed``, ``source``), with the event name typed as
  a Literal of the model's names so that msgspec validates it; the block is taken
  only if the decoder yields one record per line;
* each record costs a dict lookup for its client, a time-order check, a dict lookup
  for its column and ``node = node[col]`` (:meth:`_Run.fast`).

Anything unusual (a blank line, a syntax error, an unknown name, time going back)
makes that block fall back to line-by-line decoding; a line that still fails is
decoded once more by the careful reader's typed decoder
(:data:`sephb.conformance.traces.trace.Record` and
:func:`~sephb.conformance.traces.trace.problem`)
for the precise message. The bad line is reported with file and line and skipped;
the run goes on. Lines are capped at :data:`MAX_LINE` bytes: a longer line is
reported and skipped without being held in memory. Both paths give the same results
on every input (``test_fast_path_equals_careful_path``); :data:`FAST_PATH` turns the
fast one off.

Memory is per client and bounded: the node, the last time, and the accepted columns
(one byte each) that :meth:`~sephb.model.checker.Tables.explain` re-runs to explain a
violation. Every :data:`FOLD_EVERY` blocks a history longer than twice
:data:`WINDOW` is cut back to its last WINDOW columns: its *checkpoint* node moves
forward by stepping the compiled automaton over the columns cut (a C-level
``functools.reduce``, some 20 ns a column), and the window is kept long enough to
hold an event. Re-run from the checkpoint, the explanation is the same as from the
start (:meth:`Tables.explain` says why): same requirement, allowed names, index and
events before; the path is the suffix after the checkpoint, of which the last
:data:`KEEP_PATH` rows are shown either way.

The timing rules of ``--data`` allow ``tolerance_ms`` of recording jitter. Unless it
is given, it follows the time scale the trace was recorded at, read from the header
line its writer put first (:func:`sephb.conformance.traces.trace.header_of`): the jitter
budget of :func:`sephb.conformance.traces.clock.tolerance_for` (0.1 s of wall time) in
model time, and never less than :data:`DEFAULT_TOLERANCE_MS`. Header lines are
neither records nor bad lines. A timing finding carries its :class:`Margin` (how
late or early, and the tolerance that would accept it).

Files are independent (a client id in two files is two clients), so ``--jobs N``
validates files in a process pool and ``--engine dask`` on a Dask cluster, each with
the same :func:`validate_file`; results come back in file order either way. A file
whose validation fails on an error of ``sephb`` itself (a bug: bad input of any
kind is a :class:`Problem`, never an exception) gets a result saying so
(:attr:`FileResult.error`); the other files' results stand.

What a run keeps is bounded by its clients, never by its input: the first
:data:`MAX_PROBLEMS` input problems of a file and a count of them all, and per
client a compact state (``_engine``, "Memory for many clients") and, unless it
violated something or has deadlines pending, a row of a
:class:`~._verdicts.ClientTable` rather than a verdict object. :func:`write_json`
streams ``--json`` client by client for the same reason.

Exit status (:func:`exit_code`; docs/validate.md keeps the table): 0 every client
conformant, 1 a violation, 2 a usage error (the command line's), 3 input that could
not be read, 4 a file whose validation failed; the highest applies.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, fields
from typing import IO, Any, Final

from sephb.conformance.traces._engine import (
    MAX_LINE,
    _har,
    _ndjson,
    _open,
    _Run,
    _sniff,
    default_tolerance,
)
from sephb.conformance.traces._verdicts import (
    DEFAULT_TOLERANCE_MS,
    MAX_PROBLEMS,
    ClientTable,
    ClientVerdict,
    FileResult,
    Margin,
    Problem,
)
from sephb.conformance.traces.clock import tolerance_for
from sephb.conformance.traces.properties import (
    ClientConfig,
)
from sephb.model.interpretations import DEFAULT, get
from sephb.model.protocol import Mode

__all__ = [
    "DEFAULT_TOLERANCE_MS",
    "EXIT_CONFORMANT",
    "EXIT_FAILED",
    "EXIT_UNREADABLE",
    "EXIT_USAGE",
    "EXIT_VIOLATION",
    "MAX_LINE",
    "MAX_PROBLEMS",
    "ClientTable",
    "ClientVerdict",
    "FileResult",
    "Margin",
    "Problem",
    "default_tolerance",
    "exit_code",
    "render",
    "to_json",
    "validate_file",
    "validate_files",
    "write_json",
]

# The exit status of ``sephb validate`` (docs/validate.md, "Output and exit status").
#: Every client of every file conformant.
EXIT_CONFORMANT: Final = 0
#: Some client violated the model (and every input was read).
EXIT_VIOLATION: Final = 1
#: A usage error: the command line, or a --sylink file that cannot be used (the
#: CLI's status for every :class:`~sephb.model.errors.UsageError`).
EXIT_USAGE: Final = 2
#: Some input could not be read: a line, an entry, a file (the rest was checked).
EXIT_UNREADABLE: Final = 3
#: The validation of some file failed on an error of sephb itself (a bug; the
#: other files' results stand).
EXIT_FAILED: Final = 4


def validate_file(path: str, fmt: str = "auto", interpretation: str = DEFAULT,
                  mode: str | None = None, data: bool = False,
                  tolerance_ms: int | None = None, sylink: str | None = None,
                  time_scale: float | None = None) -> FileResult:
    """Validate one file (``-``: stdin); never raises for bad input (see
    :attr:`FileResult.problems`). ``mode`` is the clients' configured communication
    mode ("pull" or "push"; None: unknown, either allowed). ``data`` checks the data
    properties a trace shows too (:class:`~.properties.TraceProperties`), with
    ``tolerance_ms`` of recording jitter on the timing rules (None: the
    :func:`default_tolerance` of the time scale the trace's header records, else of
    ``time_scale``). ``time_scale``: the scale of a trace without a header; a HAR's
    wall-clock times are divided by it. ``sylink``: the clients' sylink.xml, for the
    rules of their configuration (priority, interval, mode); it implies ``data``. A
    sylink.xml that cannot be read raises
    :class:`~sephb.conformance.traces.sylink.ConfigError` (the command checks it first)."""
    if time_scale is not None:
        tolerance_for(time_scale)  # a scale that is not a number > 0: ValueError now
    config = None
    if sylink is not None:
        from sephb.conformance.traces.sylink import load

        config = ClientConfig.of(get(interpretation), load(sylink))
    run = _Run(path if path != "-" else "<stdin>", interpretation,
               Mode(mode) if mode else None, data, tolerance_ms, config, time_scale)
    fmt = _sniff(path) if fmt == "auto" else fmt
    # The records are short-lived and acyclic: collections in the middle of a block
    # cost a third of the time and free nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if fmt == "har":
            _har(path, run)
        else:
            stream, owned = _open(path)
            try:
                _ndjson(stream, run)
            finally:
                for f in owned:
                    f.close()
    except OSError as exc:
        run.bad(None, f"cannot open: {exc.strerror or exc}")
    finally:
        if collecting:
            gc.enable()
    res = run.finish()
    if not res.problem_count and not res.events:
        only = " (a header only: its writer recorded nothing)" if run.header else ""
        res.problem(Problem(res.path, None, f"empty trace: no records{only}"))
    return res


# --- many files ------------------------------------------------------------------


#: What one file's validation needs: path, format, interpretation, mode, data,
#: tolerance, sylink, time scale.
_Task = tuple[str, str, str, "str | None", bool, "int | None", "str | None",
              "float | None"]


def _one(task: _Task) -> FileResult:
    """One file's result, whatever happens: an exception here is a bug of sephb's
    (bad input is a Problem), and it costs this file's verdicts, not the run's."""
    from sephb.model.errors import SephbError, UsageError

    try:
        return validate_file(*task)
    except UsageError:
        raise
    except SephbError as exc:
        # An option's input that cannot be read (a bad --sylink, the same for every
        # file) stops the run as a usage error, exit 2: exit 1 is a violation.
        raise UsageError(str(exc)) from None
    except Exception as exc:
        path, fmt = task[0], task[1]
        return FileResult("<stdin>" if path == "-" else path,
                          _sniff(path) if fmt == "auto" else fmt,
                          error=f"{type(exc).__name__}: {exc}")


def validate_files(paths: Sequence[str], fmt: str = "auto",
                   interpretation: str = DEFAULT, *, mode: str | None = None,
                   data: bool = False, tolerance_ms: int | None = None,
                   sylink: str | None = None, jobs: int = 1, engine: str = "local",
                   scheduler: str | None = None, time_scale: float | None = None
                   ) -> list[FileResult]:
    """Validate files, in file order; ``jobs`` processes, or on a Dask cluster.
    The options are :func:`validate_file`'s."""
    tasks: list[_Task] = [(p, fmt, interpretation, mode, data, tolerance_ms, sylink,
                           time_scale) for p in paths]
    if engine == "dask":
        return _dask(tasks, jobs, scheduler)
    if jobs <= 1 or len(tasks) <= 1 or "-" in paths:
        return [_one(t) for t in tasks]
    import multiprocessing

    # One file per task: files are independent and a big file dominates anyway.
    import threading

    # Fork where there is one and no other thread could hold a lock across it: the
    # workers start with the modules imported (a spawned worker re-imports numpy
    # and msgspec, half a second of a two-second file).
    fork = "fork" in multiprocessing.get_all_start_methods() \
        and threading.active_count() == 1
    method = "fork" if fork else "spawn"
    with multiprocessing.get_context(method).Pool(min(jobs, len(tasks))) as pool:
        return pool.map(_one, tasks, chunksize=1)


DASK_MISSING: Final = ("--engine dask needs Dask: pip install 'sephb[dask]' "
                       "(or: pip install 'dask[distributed]')")


def _dask(tasks: list[_Task], jobs: int, scheduler: str | None
          ) -> list[FileResult]:
    from sephb.model.errors import UsageError

    try:
        from distributed import Client, LocalCluster  # untyped: hence the ignores
    except ImportError:
        raise UsageError(DASK_MISSING) from None
    if scheduler is not None:
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            return list(client.gather(client.map(_one, tasks, pure=False)))
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=max(1, jobs), threads_per_worker=1, processes=True,
        dashboard_address=None)
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        return list(client.gather(client.map(_one, tasks, pure=False)))


def exit_code(results: Iterable[FileResult]) -> int:
    """The exit status of a run: the highest of :data:`EXIT_FAILED` (a file whose
    validation failed), :data:`EXIT_UNREADABLE` (input that could not be read),
    :data:`EXIT_VIOLATION` and :data:`EXIT_CONFORMANT`."""
    results = list(results)
    if any(r.error for r in results):
        return EXIT_FAILED
    if any(r.problem_count for r in results):
        return EXIT_UNREADABLE
    if any(r.clients.violating for r in results):
        return EXIT_VIOLATION
    return EXIT_CONFORMANT


def _file_json(r: FileResult, clients: Any) -> dict[str, Any]:
    """A file's result as JSON values, its clients given."""
    out: dict[str, Any] = {}
    for f in fields(r):
        value = getattr(r, f.name)
        if f.name == "clients":
            value = clients
        elif f.name == "problems":
            value = [asdict(p) for p in value]
        out[f.name] = value
    return out


def _totals(results: Sequence[FileResult]) -> dict[str, int]:
    return {
        "events": sum(r.events for r in results),
        "clients": sum(len(r.clients) for r in results),
        "violations": sum(r.clients.violating for r in results),
        "problems": sum(r.problem_count for r in results),
        "exit": exit_code(results),
    }


def to_json(results: Sequence[FileResult]) -> dict[str, Any]:
    """Every verdict and kept problem, and the totals, as one JSON document in
    memory (:func:`write_json` writes the same document without holding it)."""
    return {"files": [_file_json(r, [asdict(c) for c in r.clients]) for r in results],
            **_totals(results)}


#: A conformant client's JSON after its event count: the same for every one.
_PLAIN: Final = json.dumps(asdict(ClientVerdict("", "", "", 0))).partition(
    '"events": 0')[2]


def _clients_json(r: FileResult) -> Iterator[str]:
    """The JSON of each client of a file, one string each; a plainly conformant
    client by a template (a fleet's millions would take an asdict each)."""
    path = json.dumps(r.path)
    for c in r.clients.raw():
        if isinstance(c, ClientVerdict):
            yield json.dumps(asdict(c))
        else:
            client, side, events = c
            yield (f'{{"path": {path}, "client": {json.dumps(client)}, "side": '
                   f'"{side}", "events": {events}{_PLAIN}')


def write_json(results: Sequence[FileResult], out: IO[str]) -> None:
    """:func:`to_json`'s document, written as it is made: client by client."""
    out.write('{"files": [')
    for i, r in enumerate(results):
        out.write(",\n{" if i else "\n{")
        for k, (name, value) in enumerate(_file_json(r, None).items()):
            out.write(f"{', ' if k else ''}{json.dumps(name)}: ")
            if name != "clients":
                out.write(json.dumps(value))
                continue
            out.write("[")
            for n, line in enumerate(_clients_json(r)):
                out.write(f"{',' if n else ''}\n  {line}")
            out.write("\n]")
        out.write("}")
    out.write("\n], " + json.dumps(_totals(results))[1:] + "\n")


def render(results: Sequence[FileResult], out: IO[str], *, limit: int = 20,
           every_client: bool = False, timing: bool = False,
           title: str = "sephb validate") -> None:
    """Input problems and violations in detail (the first ``limit`` of each per file;
    0: all there are, of problems all kept), a summary table per file (per client
    with ``every_client``), totals.
    ``timing``: the timing rules ran (``--data``), so say which tolerance they used.
    ``title``: the table's (``sephb monitor`` prints the same summary as its own).

    A fleet trace holds a hundred thousand clients: a row each would take minutes
    to draw and nobody would read it, so by default the table has a row per file and
    the detail goes to what needs a look. ``--json`` always has everything."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # A terminal gets its own width; a log or a pipe gets room for long file paths
    # rather than columns folded a few letters wide.
    wide = None if out.isatty() else 160
    # No markup but where a call asks for it: a client id, a path or a message
    # holding "[/x]" would otherwise be read as a tag (and a stray one raises).
    console = Console(file=out, highlight=False, soft_wrap=True, width=wide,
                      markup=False)

    def capped(items: Sequence[Any], what: str, path: str, total: int | None = None
               ) -> Sequence[Any]:
        """The first ``limit`` items, after a line saying how many of ``total``
        (default: all the items) are left out and why."""
        total = len(items) if total is None else total
        shown = items[:limit] if limit else items
        if len(shown) < total:
            kept = len(items) < total
            how = (f"validate keeps the first {MAX_PROBLEMS:,} of a file" if
                   kept and len(shown) == len(items) else
                   f"--limit 0 shows all{' kept' if kept else ''}, --json lists "
                   f"{'the first ' + format(len(items), ',') if kept else 'them'}")
            console.print(f"({total - len(shown):,} more {what} in {path} not shown: "
                          f"{how})", markup=False)
        return shown

    if timing:  # one line per tolerance, not per file: a fleet has thousands
        files: dict[str, list[str]] = {}
        for r in results:
            files.setdefault(r.tolerance, []).append(r.path)
        for why, paths in files.items():
            which = paths[0] if len(paths) == 1 else _count(len(paths), "file")
            console.print(f"{why} ({which})", markup=False)
    for r in results:
        if r.error:
            console.print(f"[bold red]failed[/] {escape(r.path)}: its validation "
                          f"stopped on an error of sephb itself, not of the input "
                          f"(a bug: please report it): {escape(r.error)}", markup=True)
    for r in results:
        for w in r.warnings:
            console.print(f"[yellow]warning[/] {escape(r.path)}: {escape(w)}",
                          markup=True)
    for r in results:
        for p in capped(r.problems, "input problems", r.path, r.problem_count):
            console.print(f"[bold red]input[/] {escape(str(p))}", markup=True)
    for r in results:
        open_ = [c for c in r.clients.flagged() if c.conformant and c.pending]
        for c in capped(open_, "clients with pending deadlines", r.path):
            console.print("[yellow]pending[/] " + escape(
                f"{c.path}: client {c.client!r} ({c.side} view): "
                f"{'; '.join(c.pending)} (the trace ends first: neither met nor "
                f"broken)"), markup=True)
    for r in results:
        violating = [c for c in r.clients.flagged() if not c.conformant]
        for c in capped(violating, "violating clients", r.path):
            where = f"{c.path}:{c.line}" if c.line else f"{c.path} (at its end)"
            # The reason --json gives: the table's (what the model allowed, in which
            # state) or the data or deadline rule's.
            console.print("[bold red]violation[/] " + escape(
                f"{where}: client {c.client!r} ({c.side} view) broke {c.requirement}: "
                f"{c.seen} at t={c.t} ms; {c.reason or c.message}"), markup=True)
            if c.margin is not None:
                console.print(f"  timing: {c.margin.describe()}", markup=False)
            console.print(f"  before: {' '.join(c.before) or '(start of trace)'}",
                          markup=False)
    table = Table(title=title)
    if every_client:
        for col in ("file", "client", "view", "events", "verdict"):
            table.add_column(col, justify="right" if col == "events" else "left",
                             overflow="fold")
        for r in results:
            if not r.clients:
                table.add_row(r.path, "-", "-", "0", "failed" if r.error else
                              "unreadable" if r.problem_count else "empty")
            for c in r.clients:
                verdict = "conformant" if c.conformant else \
                    f"{c.requirement} at line {c.line}"
                table.add_row(c.path, c.client, c.side, f"{c.events:,}", verdict)
    else:
        for col in ("file", "format", "events", "clients", "conformant", "violating",
                    "problems"):
            table.add_column(col, justify="left" if col in ("file", "format") else
                             "right", overflow="fold", no_wrap=col != "file")
        for r in results:
            nbad = r.clients.violating
            table.add_row(r.path, r.format + (" (failed)" if r.error else ""),
                          f"{r.events:,}", f"{len(r.clients):,}",
                          f"{len(r.clients) - nbad:,}", f"{nbad:,}",
                          f"{r.problem_count:,}")
    console.print(table)
    totals = _totals(results)
    failed = sum(bool(r.error) for r in results)
    console.print(f"{_count(totals['events'], 'event')}, "
                  f"{_count(totals['clients'], 'client')}, {totals['violations']:,} "
                  f"violating, {_count(totals['problems'], 'input problem')}"
                  + (f", {_count(failed, 'file')} failed" if failed else ""),
                  markup=False)


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"
