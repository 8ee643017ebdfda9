"""The conformance suite in process: speed, and how fast it kills the seeded faults.

Prints, for each interpretation: test cases, records judged and model transitions
taken per second against the reference client (profile ci), then for every seeded
fault the time to kill and the length of the shrunk counterexample, with medians.
Not a test: figures go in the README.
    .venv/bin/python tests/benchmarks/bench_suite.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from sephb.conformance import suite
from sephb.conformance.client.faults import FAULTS
from sephb.model.interpretations import INTERPRETATIONS, get


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interpretation", action="append",
                    choices=sorted(INTERPRETATIONS),
                    help="repeat for several (default: both)")
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    for name in args.interpretation or sorted(INTERPRETATIONS):
        interp = get(name)
        t0 = time.perf_counter()
        r = suite.run(interp, profile="ci")
        wall = time.perf_counter() - t0
        transitions = sum(r.transitions.values())
        print(f"### {name}: reference, profile ci")
        print(f"{r.cases} + {r.directed} directed cases, {r.steps} steps, {r.records} "
              f"records, {transitions} transitions in "
              f"{wall:.1f} s: {r.records / wall:,.0f} records/s, "
              f"{transitions / wall:,.0f} transitions/s; conformant={r.conformant}\n")
        print("| fault | killed by | time to kill | shrunk steps |")
        print("|---|---|---:|---:|")
        times, lengths = [], []
        for fault in FAULTS:
            t0 = time.perf_counter()
            res = suite.run(interp, factory=suite.environment_for(fault), client=fault)
            dt = time.perf_counter() - t0
            f = res.failures[0] if res.failures else None
            n = suite.program_length(f.steps) if f else None
            times.append(dt)
            if n is not None:
                lengths.append(n)
            print(f"| {fault} | {f.requirement if f else 'SURVIVED'} | {dt:.2f} s "
                  f"| {n if n is not None else '-'} |")
        print(f"\nkilled {len(lengths)}/{len(FAULTS)}; median time to kill "
              f"{statistics.median(times):.2f} s; median shrunk length "
              f"{statistics.median(lengths) if lengths else '-'}, longest "
              f"{max(lengths) if lengths else '-'}\n")


if __name__ == "__main__":
    main()
