"""Benchmark covering-path generation as the number of managers grows.

Run it as a script (it is not a pytest test and asserts nothing about time)::

    .venv/bin/python tests/benchmarks/bench_paths.py
    .venv/bin/python tests/benchmarks/bench_paths.py --managers 1 10 100 --repeats 3

For every interpretation and N it builds the concrete graph of
``Topology(managers=N, priorities=min(5, N), gup=True, mode=PUSH)`` and times graph
construction, ``cover_transitions`` and ``cover_edge_pairs``: the median of several
runs, by ``time.perf_counter``. The ``xG`` after a time is its growth over the
previous N, so linear behaviour shows as about 10x per row with the default sizes.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import networkx as nx

from sephb.model import graph as G
from sephb.model.interpretations import INTERPRETATIONS, get
from sephb.model.protocol import Mode

T = TypeVar("T")


def timed(fn: Callable[[], T], repeats: int) -> tuple[T, float]:
    """The last result and the median wall time in seconds over ``repeats`` runs."""
    times: list[float] = []
    result: T | None = None
    for _ in range(repeats):
        gc.collect()  # keep one run's garbage out of the next run's time
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return result, statistics.median(times)


def fmt_time(seconds: float, previous: float | None) -> str:
    text = f"{seconds * 1000:.1f} ms"
    if previous:
        text += f" (x{seconds / previous:.1f})"
    return text


def bench(interp: str, managers: list[int], repeats: int) -> None:
    print(f"\n### interpretation `{interp}`\n")
    print(
        "| N | nodes | edges | transition paths | pair paths | steps (T/P) "
        "| build | cover_transitions | cover_edge_pairs |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    prev: tuple[float, float, float] | None = None
    for n in managers:
        topo = G.Topology(managers=n, priorities=min(5, n), gup=True, mode=Mode.PUSH)
        g, t_build = timed(partial(G.concrete_graph, get(interp), topo), repeats)
        cover_t, t_trans = timed(partial(G.cover_transitions, g), repeats)
        cover_p, t_pairs = timed(partial(G.cover_edge_pairs, g), repeats)
        steps = f"{sum(map(len, cover_t))}/{sum(map(len, cover_p))}"
        p_build, p_trans, p_pairs = prev or (None, None, None)
        print(
            f"| {n} | {g.number_of_nodes()} | {g.number_of_edges()} | {len(cover_t)} "
            f"| {len(cover_p)} | {steps} | {fmt_time(t_build, p_build)} "
            f"| {fmt_time(t_trans, p_trans)} | {fmt_time(t_pairs, p_pairs)} |"
        )
        sys.stdout.flush()
        prev = (t_build, t_trans, t_pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time concrete-graph construction and the covering-path "
        "generators (cover_transitions, cover_edge_pairs) for growing N managers "
        "(priorities=min(5, N), GUP, push mode). Prints a Markdown table.",
    )
    parser.add_argument(
        "--managers", type=int, nargs="+", default=[1, 10, 100, 1000], metavar="N",
        help="numbers of managers to run (default: 1 10 100 1000)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5,
        help="runs per measurement; the median is reported (default: 5)",
    )
    parser.add_argument(
        "--interpretation", choices=sorted(INTERPRETATIONS), action="append",
        help="interpretation to run; repeat for several (default: documented and seed)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if min(args.managers) < 1:
        parser.error("--managers must all be at least 1")

    print("## Covering paths benchmark\n")
    print(f"- machine: {platform.platform()} ({platform.machine()}), "
          f"{os.cpu_count()} CPUs")
    print(f"- python: {platform.python_implementation()} {platform.python_version()}, "
          f"networkx {nx.__version__}")
    print(f"- median of {args.repeats} runs; steps = total edges over all paths; "
          "(xG) = growth over the previous N")
    for interp in args.interpretation or ["documented", "seed"]:
        bench(interp, args.managers, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
