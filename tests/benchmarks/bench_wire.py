"""Benchmark the wire suite: the old settings against the new ones, in one run.

Run it as a script (it is not a pytest test and asserts nothing about time)::

    .venv/bin/python tests/benchmarks/bench_wire.py
    .venv/bin/python tests/benchmarks/bench_wire.py --repeats 3 --loaded 2

Each round runs the reference client (``sephb client``) through ``ci`` over the
wire twice, paired:

* **old**: what ``ci`` did before the wire suite ran as jobs -- 4 Hypothesis cases
  of 12 steps, time scale 0.01 (a tolerance of 10,000 model ms is 0.1 s of wall
  time), one case at a time, and waits of whole intervals where a black box's timers
  are unknown (``eager=False``);
* **new**: the profile as it is -- 32 cases of 12 steps, the calibrated time scale,
  eager waits, ``--jobs`` the machine's default.

It prints each run's wall time, verdict, cases and rows covered, the medians and
the ratio old/new. ``--loaded N`` starts N busy-looping processes for the whole
benchmark (both cores loaded), to show that the verdicts hold on a busy machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import time
from typing import Any

from sephb.conformance.suite import run_wire
from sephb.conformance.suite._jobs import default_jobs
from sephb.model.interpretations import get

REFERENCE = (f"{sys.executable} -m sephb.conformance.cli client --sylink {{sylink}} "
             f"--state-dir {{state_dir}} --time-scale {{time_scale}} "
             f"--log-dir {{log_dir}} -i {{interpretation}}")

OLD: dict[str, Any] = {"max_examples": 4, "time_scale": 0.01, "jobs": 1, "eager": False}
NEW: dict[str, Any] = {}


def _busy() -> None:
    while True:
        pass


def one(interp: str, settings: dict[str, Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = run_wire(get(interp), REFERENCE, **settings)
    return time.perf_counter() - t0, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=1, help="paired rounds (default 1)")
    ap.add_argument("-i", "--interpretation", default="seed")
    ap.add_argument("--loaded", type=int, default=0, metavar="N",
                    help="busy-looping processes to run alongside (default 0)")
    ap.add_argument("--new-only", action="store_true",
                    help="run only the new settings (for --loaded soak runs)")
    args = ap.parse_args()
    print(f"# {platform.node() or 'machine'}: {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.system()} {platform.release()}; "
          f"jobs {default_jobs()}; loaded by {args.loaded} busy process(es)")
    busy = [multiprocessing.Process(target=_busy, daemon=True)
            for _ in range(args.loaded)]
    for p in busy:
        p.start()
    times: dict[str, list[float]] = {"old": [], "new": []}
    verdicts_seen: list[str] = []
    try:
        for r in range(args.repeats):
            for name, settings in (("old", OLD), ("new", NEW)):
                if name == "old" and args.new_only:
                    continue
                secs, res = one(args.interpretation, settings)
                times[name].append(secs)
                verdicts_seen.append(res.verdict)
                covered = sum(1 for n in res.transitions.values() if n)
                print(f"round {r + 1} {name}: {secs:6.1f} s  {res.verdict:<14} "
                      f"{res.cases} random + {res.directed} directed cases, "
                      f"{covered}/{len(res.transitions)} rows, scale "
                      f"{res.settings.get('time scale')}, "
                      f"{res.settings.get('scheduling lateness')}; findings set "
                      f"aside: {res.settings.get('findings set aside', '-')}",
                      flush=True)
                for f in res.failures:
                    print(f"    FAILED {f.requirement}: {f.message} "
                          f"({f.reproducibility})")
                if res.error:
                    print(f"    ERROR: {res.error}")
                if res.inconclusive:
                    print(f"    INCONCLUSIVE: {res.inconclusive}")
    finally:
        for p in busy:
            p.terminate()
    verdicts = [v for v in verdicts_seen if v]
    if verdicts:
        print("verdicts: " + ", ".join(f"{verdicts.count(v)} {v}"
                                       for v in sorted(set(verdicts))))
    if times["old"] and times["new"]:
        old, new = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"median old {old:.1f} s, new {new:.1f} s: new takes {new / old:.2f} of "
              f"the old time ({old / new:.1f}x faster, with 8x the random cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
