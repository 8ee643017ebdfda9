"""Benchmark the compiled trace checker against the transitions-machine oracle.

Run it as a script (it is not a pytest test and asserts nothing about time)::

    .venv/bin/python tests/benchmarks/bench_checker.py
    .venv/bin/python tests/benchmarks/bench_checker.py --events 200000 --repeats 3

It generates, in memory, a valid interleaved trace of ``--events`` observations from
``--clients`` clients by walking the transition table (each client with its own mode,
mostly moving forward through the seed's steps, sometimes failing), checks that both
checkers accept it, then times:

* ``check_stream`` of :mod:`sephb.model.checker` over the whole trace, with every
  event observed and with the server-side view (client-side events hidden and removed
  from the trace);
* one compiled :class:`~sephb.model.checker.Checker` per client, through ``feed`` and
  through the ``feed_code`` fast path (codes precomputed outside the timing);
* ``check_stream`` of :mod:`sephb.model.oracle` on the whole traces of the first
  clients, about ``--oracle-events`` observations (it is slow); its rate is
  extrapolated per event.

Each time is the median of ``--repeats`` runs by ``time.perf_counter``; the speed-up is
against the oracle's events per second. This measures the checking core only: reading
and decoding NDJSON is not included.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sephb.model import checker, oracle
from sephb.model.analysis import all_contexts
from sephb.model.checker import StreamRecord
from sephb.model.interpretations import INTERPRETATIONS, get
from sephb.model.protocol import ENTRY, GUARDS, INITIAL, STEP, Event, Mode, Row, State

T = TypeVar("T")

#: What a recorder on the servers cannot see.
SERVER_SIDE = frozenset(
    {Event.HEARTBEAT_DUE, Event.SESSION_TIMEOUT, Event.CONNECT_FAILED, Event.CONNECTED}
)


def walk_options(rows: Sequence[Row], mode: Mode) -> dict[State, list[list[Row]]]:
    """For each state, the rows that fire in some context of ``mode``, grouped into
    (forward, all): a walk mostly picks forward rows (towards step 7)."""
    out: dict[State, list[list[Row]]] = {}
    for s in State:
        contexts = [c for c in all_contexts() if c.mode is mode]
        firing = [r for r in rows if r.source is s and any(
            r.guard is None or GUARDS[r.guard].holds(r.guard, c) for c in contexts)]
        forward = [r for r in firing if STEP[r.dest] > STEP[r.source]
                   or r.event is Event.SENSORS_ACKED]
        out[s] = [forward or firing, firing]
    return out


def fields(row: Row, rng: random.Random) -> tuple[bool | None, str | None]:
    """The recorded fields that make ``row`` the one that fires, as a trace carries
    them: ``changed`` on INDEX_RECEIVED, ``source`` on URLS_RECEIVED."""
    ctxs = [c for c in all_contexts() if row.guard is None
            or GUARDS[row.guard].holds(row.guard, c)]
    ctx = rng.choice(ctxs)
    if row.event is Event.INDEX_RECEIVED:
        return ctx.index_changed, None
    if row.event is Event.URLS_RECEIVED:
        return None, ctx.source.value
    return None, None


def generate(
    interp: str, n_events: int, n_clients: int, fail_rate: float, seed: int
) -> tuple[list[StreamRecord], dict[str, Mode | None]]:
    """A valid interleaved trace of ``n_events`` observations and each client's mode."""
    rng = random.Random(seed)
    rows = get(interp).rows()
    options = {m: walk_options(rows, m) for m in Mode}
    field_cache: dict[Row, list[tuple[bool | None, str | None]]] = {
        r: [fields(r, rng) for _ in range(8)] for r in rows
    }
    clients = [f"c{i}" for i in range(n_clients)]
    modes: dict[str, Mode | None] = {c: rng.choice(list(Mode)) for c in clients}
    state = dict.fromkeys(clients, INITIAL)
    pending: dict[str, str | None] = dict.fromkeys(clients)
    clock = dict.fromkeys(clients, 0)
    out: list[StreamRecord] = []
    for _ in range(n_events):
        c = rng.choice(clients)
        clock[c] += rng.randrange(1, 500)
        action = pending[c]
        if action is not None:
            out.append((c, action, clock[c], None, None))
            pending[c] = None
            continue
        mode = modes[c]
        assert mode is not None
        forward, every = options[mode][state[c]]
        row = rng.choice(every if rng.random() < fail_rate else forward)
        changed, source = rng.choice(field_cache[row])
        out.append((c, row.event.value, clock[c], changed, source))
        state[c], pending[c] = row.dest, ENTRY[row.dest].value
    return out, modes


def timed(fn: Callable[[], T], repeats: int) -> tuple[T, float]:
    """The last result and the median wall time in seconds over ``repeats`` runs."""
    times: list[float] = []
    result: T | None = None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return result, statistics.median(times)


def per_client_feed(
    records: Sequence[StreamRecord], interp: str, modes: dict[str, Mode | None]
) -> dict[str, checker.Violation | None]:
    checkers: dict[str, checker.Checker] = {}
    for client, name, t, changed, source in records:
        c = checkers.get(client)
        if c is None:
            c = checkers[client] = checker.Checker(interp, mode=modes[client])
        c.feed(name, t, changed, source)
    return {k: c.violation for k, c in checkers.items()}


def per_client_codes(
    coded: Sequence[tuple[str, int, int]], interp: str, modes: dict[str, Mode | None]
) -> dict[str, bool]:
    checkers = {c: checker.Checker(interp, mode=m) for c, m in modes.items()}
    ok = dict.fromkeys(modes, True)
    for client, code, case in coded:
        ok[client] = checkers[client].feed_code(code, case)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time the compiled trace checker (check_stream, Checker.feed, "
        "feed_code) against the transitions-machine oracle on a generated valid "
        "multi-client trace. Prints machine info and a Markdown table.",
    )
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="observations in the generated trace (default: 1000000)")
    parser.add_argument("--clients", type=int, default=1000,
                        help="interleaved clients (default: 1000)")
    parser.add_argument("--oracle-events", type=int, default=20_000,
                        help="observations the oracle checks (default: 20000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per measurement; the median is reported (default: 3)")
    parser.add_argument("--fail-rate", type=float, default=0.1,
                        help="chance that a step may take a failure row (default: 0.1)")
    parser.add_argument("--interpretation", choices=sorted(INTERPRETATIONS),
                        default="documented", help="(default: documented)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.events < 1 or args.clients < 1 or args.oracle_events < 1:
        parser.error("--events, --clients, --oracle-events and --repeats must be >= 1")

    interp = args.interpretation
    start = time.perf_counter()
    records, modes = generate(interp, args.events, args.clients, args.fail_rate,
                              args.seed)
    t_gen = time.perf_counter() - start
    hidden_names = {e.value for e in SERVER_SIDE}
    server = [r for r in records if r[1] not in hidden_names]
    coded = [(c, checker.Checker.code(n), checker.case_of(ch, so))
             for c, n, _, ch, so in records]
    # The oracle checks whole clients (the first ones, up to --oracle-events
    # observations), so that building one machine per client weighs on each event as
    # much as it would over the whole trace.
    per_client: dict[str, int] = {}
    for r in records:
        per_client[r[0]] = per_client.get(r[0], 0) + 1
    chosen: set[str] = set()
    total = 0
    for c in sorted(per_client, key=lambda c: int(c[1:])):
        if total >= args.oracle_events:
            break
        chosen.add(c)
        total += per_client[c]
    subset = [r for r in records if r[0] in chosen]
    checker.compile_tables.cache_clear()
    start = time.perf_counter()
    checker.compile_tables(get(interp).rows())
    t_compile = time.perf_counter() - start
    # Compile outside the timings what the measured runs use.
    checker.tables_for(interp)
    checker.tables_for(interp, SERVER_SIDE)

    print("## Trace checker benchmark\n")
    print(f"- machine: {platform.platform()} ({platform.machine()}), "
          f"{os.cpu_count()} CPUs")
    print(f"- python: {platform.python_implementation()} {platform.python_version()}")
    print(f"- trace: {len(records):,} observations of {args.clients:,} clients "
          f"(interpretation `{interp}`, fail rate {args.fail_rate}), generated in "
          f"{t_gen:.1f} s; server-side view: {len(server):,} observations")
    print(f"- compiling the tables (cold): {t_compile * 1000:.1f} ms")
    print(f"- oracle: the {len(chosen)} first clients' traces, {len(subset):,} "
          "observations; its rate is extrapolated per event")
    print(f"- median of {args.repeats} runs; time.perf_counter; core only (no NDJSON)")
    print()
    sys.stdout.flush()  # progress goes to stderr; keep the table in one piece

    results: list[tuple[str, int, float]] = []

    def measure(label: str, n: int, fn: Callable[[], dict[str, object]]) -> None:
        verdicts, seconds = timed(fn, args.repeats)
        bad = {c: v for c, v in verdicts.items() if v not in (None, True)}
        assert not bad, f"{label}: the generated trace should conform: {bad}"
        results.append((label, n, seconds))
        print(f"  measured {label}: {n / seconds:,.0f} events/s", file=sys.stderr)

    measure("compiled `check_stream`", len(records),
            lambda: dict(checker.check_stream(records, interp, modes=modes)))
    measure("compiled `check_stream`, server-side view", len(server),
            lambda: dict(checker.check_stream(server, interp, modes=modes,
                                              hidden=SERVER_SIDE)))
    measure("compiled `Checker.feed`, one per client", len(records),
            lambda: dict(per_client_feed(records, interp, modes)))
    measure("compiled `Checker.feed_code`, one per client", len(coded),
            lambda: dict(per_client_codes(coded, interp, modes)))
    measure("oracle `check_stream` (transitions)", len(subset),
            lambda: dict(oracle.check_stream(subset, interp, modes=modes)))

    oracle_rate = results[-1][1] / results[-1][2]
    print("| checker | observations | median time | events/s | vs oracle |")
    print("|---|---:|---:|---:|---:|")
    for label, n, seconds in results:
        rate = n / seconds
        print(f"| {label} | {n:,} | {seconds:.3f} s | {rate:,.0f} "
              f"| {rate / oracle_rate:,.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
