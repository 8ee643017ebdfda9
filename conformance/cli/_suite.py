"""The commands that run things: ``manager`` (a simulated site), ``client`` (the
reference client), ``conform`` (the suite against a client) and ``mutants`` (the
suite against every seeded fault)."""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sephb.conformance.cli._common import (
    interpretation_option,
    json_option,
    log_size,
    make_dir,
    non_negative,
    output_dir,
    output_file,
    positive,
    print_json,
    profile_option,
    seconds,
    time_scale,
)
from sephb.conformance.client.faults import FAULTS
from sephb.model.errors import UsageError


def register(sub: Any) -> None:
    """Add this module's commands to the CLI's subparsers."""
    p = sub.add_parser("manager", help="run simulated managers and a GUP on loopback",
                       description="Start the simulated managers and GUP of a fleet "
                                   "file (see conformance/examples/managers.toml; `sephb "
                                   "examples DIR` writes it) as real HTTP servers, print "
                                   "their addresses and a control API on stdout, log "
                                   "each request on stderr, and run until "
                                   "SIGINT/SIGTERM.")
    p.add_argument("--config", "-c", required=True, metavar="FILE",
                   help="fleet file (TOML)")
    p.add_argument("--listen", metavar="ADDR",
                   help="bind every server to ADDR instead of its configured loopback "
                        "address (needed for anything outside 127.0.0.0/8)")
    p.add_argument("--time-scale", type=time_scale, default=1.0, metavar="S",
                   help="wall seconds per model second, for trace times (default: 1)")
    p.add_argument("--trace", type=output_file, metavar="FILE",
                   help="append what the servers observe to this NDJSON trace (its "
                        "missing directories are created)")
    _verbosity(p, "a line per request on stderr: [t=MODEL_MS ms] server client: method "
                  "path status event, bytes in and out, and what went wrong",
               "the requests that failed (a fault, an error status, a lost connection)",
               "also a line per request as it arrives and per connection opened or "
               "closed")
    p.set_defaults(run=cmd_manager)

    p = sub.add_parser("client", help="run the reference heartbeat client",
                       description="Run the reference client: read sylink.xml, check in "
                                   "with the managers it names, keep its index copy and "
                                   "log queue in --state-dir. It says what it does on "
                                   "stdout; trouble with the state directory goes to "
                                   "stderr.")
    interpretation_option(p)
    p.add_argument("--sylink", required=True, metavar="FILE", help="the sylink.xml to read")
    p.add_argument("--state-dir", required=True, type=output_dir, metavar="DIR",
                   help="index.dat copy and durable log queue (created if missing)")
    p.add_argument("--time-scale", type=time_scale, default=1.0, metavar="S",
                   help="wall seconds per model second: 0.001 makes the 30,000 ms "
                        "session limit 30 ms (default: 1)")
    p.add_argument("--trace", type=output_file, metavar="FILE",
                   help="append what the client does and sees to this NDJSON trace "
                        "(its missing directories are created)")
    p.add_argument("--heartbeats", type=positive, metavar="N",
                   help="stop after N check-ins (default: run until SIGINT/SIGTERM)")
    p.add_argument("--location", default="Default", metavar="NAME",
                   help="the client's current location (selects the LiveUpdate policy; "
                        "default: Default)")
    p.add_argument("--client-id", metavar="ID",
                   help="sent as X-Sephb-Client (default: an id made once and kept in "
                        "the state directory's client-id file, the same across "
                        "restarts)")
    p.add_argument("--log-bytes", type=log_size, default=0, metavar="N",
                   help="log volume produced before each heartbeat: a byte count, "
                        "'idle' (0) or 'full' (256000, maximum logging) (default: 0)")
    p.add_argument("--log-dir", metavar="DIR",
                   help="a spool of log entries written by others (<id>.log files): "
                        "taken into the durable queue under their ids before each log "
                        "upload, then removed (the conformance suite's {log_dir})")
    # Test only: spool entries kept in memory (a restart loses them), so that the
    # suite's lost-log property has a client to catch (tests/test_remote.py).
    p.add_argument("--volatile-logs", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help="seed for random choices (reproducible runs)")
    p.add_argument("--fault", choices=list(FAULTS), metavar="NAME",
                   help="run a seeded-fault client (for testing conformance suites): "
                        + ", ".join(FAULTS))
    _verbosity(p, "a line per check-in on stdout when it ends: [t=MODEL_MS ms] check-in "
                  "N via MANAGER: completed (what it did), or failed: how each manager "
                  "failed; bytes in and out; when the next heartbeat is due",
               "the check-ins that met a failure (a manager down, a timeout, a failed "
               "request)", "also a line per request, answer and timer as it happens")
    p.set_defaults(run=cmd_client)

    p = sub.add_parser("conform", help="run the conformance suite against a client",
                       description=textwrap.fill(
                           "Test a heartbeat client against the model with Hypothesis: "
                           "the suite plays managers, a GUP and time, provokes every "
                           "transition and checks every record the servers make. Every "
                           "requirement gets a verdict: passed, failed, not exercised, "
                           "skipped (not observable through this adapter) or not "
                           "reached (the run stopped at a failure).", 79) + "\n\n"
                       + textwrap.fill(
                           "Exit 0 conformant; 1 not (a failure, or something never "
                           "exercised); 2 usage error; 3 the client could not be "
                           "tested (it exited, or made no request within the start-up "
                           "wait); 4 inconclusive (over the wire: the machine was "
                           "busier than the run's measured jitter budget, more "
                           "timing findings than a tenth of the cases did not recur "
                           "when their case ran again, or its timing failure did not "
                           "come back in every replay, so its timing could not be "
                           "judged).", 79),
                       epilog="examples:\n"
                              "  sephb conform                          the reference, "
                              "in process\n"
                              "  sephb conform --client-cmd 'my-client --config {sylink} "
                              "--state {state_dir} --speed {time_scale}'\n"
                              "  sephb conform --client sensors-before-logs --report out/r"
                              "\n  sephb conform --json > result.json         the result "
                              "as report/result.json has it"
                              "\n  sephb conform --seed 7 --baseline out/r/result.json  "
                              "what changed since a run\n\n"
                              "Every run prints its seed and the command that runs it "
                              "again; --seed N replays the same cases and steps.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    interpretation_option(p)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--client", default="reference", metavar="NAME",
                     help="in-process client: 'reference' (default) or a seeded fault "
                          "(see `sephb mutants`)")
    who.add_argument("--client-cmd", metavar="CMD",
                     help="any client, over the wire: a command with {sylink}, "
                          "{state_dir} and {time_scale} placeholders (docs/adapters.md)")
    profile_option(p, "the suite's depth: ci (default): a fixed seed, the same cases "
                      "on every machine; nightly: 10,000+ cases; certify: 3,000 clean "
                      "cases for a 0.999 reliability statement (both draw a seed and "
                      "print it)")
    p.add_argument("--seed", type=int, metavar="N",
                   help="seed of every random choice: replays a run's cases and steps "
                        "(a run prints its own)")
    p.add_argument("--max-examples", type=positive, metavar="N",
                   help="random test cases to run, instead of the profile's; directed "
                        "cases for rows they miss, and the deadline probes, come on "
                        "top and are counted apart")
    wire = p.add_argument_group("over the wire (with --client-cmd)")
    wire.add_argument("--time-scale", type=time_scale, metavar="S",
                      help="wall seconds per model second (default: calibrated -- the "
                           "fastest this machine's measured scheduling jitter allows, "
                           "0.003 on a quiet machine, where the 300 s interval lasts "
                           "0.9 s)")
    wire.add_argument("--tolerance", type=non_negative, metavar="MS",
                      help="model ms of slack on every timing rule (default 10,000: a "
                           "third of the 30,000 ms session limit; at the time scale it "
                           "is the run's jitter budget in wall time; at most half the "
                           "session limit)")
    wire.add_argument("--jobs", "-j", type=positive, metavar="N",
                      help="test cases run at once, each on its own loopback site with "
                           "its own client process (default: two per core, at most 8); "
                           "the result is the same for every N")
    wire.add_argument("--startup-wait", type=seconds, metavar="SECONDS",
                      help="how long a started client has to make its first request "
                           "(default 3); a client that exits, or is silent that long at "
                           "the run's first start, ends the run with exit status 3")
    wire.add_argument("--start-allowance", type=seconds, metavar="SECONDS",
                      help="wall time a started client may take before its first "
                           "heartbeat, which is due at once (default 0.5; a slow "
                           "starter, a JVM say, needs more: lateness beyond it is a "
                           "REQ-7-PULL failure)")
    out = p.add_argument_group("outputs")
    out.add_argument("--report", type=output_dir, metavar="DIR",
                     help="write the HTML, Markdown, JUnit and result.json here, with "
                          "each failure's trace and replay file (created if missing; "
                          "checked before the run)")
    out.add_argument("--junitxml", "--junit", dest="junit", type=output_file,
                     metavar="FILE",
                     help="write JUnit XML here, as pytest's --junitxml (--junit is the "
                          "same option); it stands alone: failure traces inline unless "
                          "--report writes them")
    out.add_argument("--baseline", metavar="RESULT_JSON",
                     help="an earlier run's result.json: print and report what changed "
                          "per requirement (regressions first)")
    json_option(out, "the result on standard output, as the report's result.json "
                     "has it, instead of the summary")
    p.set_defaults(run=cmd_conform)

    p = sub.add_parser("mutants", help="check that the suite kills every seeded fault",
                       description="Run the suite against each seeded-fault client, in "
                                   "process and (with --wire) over the wire, and print "
                                   "whether it was killed, by which requirement, how "
                                   "fast, and how short the shrunk counterexample is. "
                                   "A fault that deviates under the other reading "
                                   "only is n/a. Exit 0 if every fault was killed (a "
                                   "violation found), 1 if any survived, 3 if one "
                                   "could not be tested (ERROR), 4 if one ended "
                                   "INCONCLUSIVE.")
    interpretation_option(p)
    p.add_argument("--wire", action="store_true",
                   help="also run each fault as a `sephb client --fault` process: its "
                        "counterexample is shrunk over the wire and replayed")
    p.add_argument("--jobs", "-j", type=positive, metavar="N",
                   help="over the wire: test cases (and shrink candidates) run at once "
                        "in all, two per fault, so N/2 faults are judged side by side "
                        "(default: two per core, at most 8)")
    profile_option(p, "the suite's depth for each fault (default: ci)")
    p.add_argument("--fault", action="append", choices=list(FAULTS), metavar="NAME",
                   dest="faults", help="only this fault (repeatable; default: all "
                                       "of `sephb client --help`'s --fault list)")
    json_option(p, "a row per fault and adapter, instead of the lines")
    p.set_defaults(run=cmd_mutants)


def _verbosity(p: argparse.ArgumentParser, default: str, quiet: str, verbose: str
               ) -> None:
    """``-q``/``-v`` of a long-running command, and what it says by default."""
    p.set_defaults(verbosity=0)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                   help=f"say only {quiet} (default: {default})")
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                   help=verbose)


def cmd_manager(args: argparse.Namespace) -> int:
    from sephb.conformance.site import run_manager_process

    if args.trace is not None:
        make_dir(args.trace.parent, "--trace")
    return run_manager_process(args.config, listen=args.listen,
                               time_scale=args.time_scale,
                               trace_path=args.trace,
                               verbosity=args.verbosity)


def cmd_client(args: argparse.Namespace) -> int:
    import asyncio

    from sephb.conformance.client import ClientOptions, run_client
    from sephb.conformance.traces import sylink
    from sephb.model.interpretations import get

    opts = ClientOptions(
        sylink=sylink.load(args.sylink),
        state_dir=args.state_dir,
        interpretation=get(args.interpretation),
        time_scale=args.time_scale,
        heartbeats=args.heartbeats,
        location=args.location,
        log_bytes=args.log_bytes,
        seed=args.seed,
        fault=args.fault,
        log_dir=Path(args.log_dir) if args.log_dir else None,
        volatile_logs=args.volatile_logs,
        verbosity=args.verbosity,
    )
    if args.client_id:
        opts.client_id = args.client_id
    if args.trace is not None:
        make_dir(args.trace.parent, "--trace")
    return asyncio.run(run_client(opts, args.trace))


def _conform_client_cmd(args: argparse.Namespace) -> str | None:
    cmd: str | None = args.client_cmd
    if cmd is not None:
        missing = [p for p in ("{sylink}", "{state_dir}") if p not in cmd]
        if missing:
            raise UsageError(f"--client-cmd needs the placeholders {', '.join(missing)}"
                             " (see docs/adapters.md)")
    return cmd


def cmd_conform(args: argparse.Namespace) -> int:
    from sephb.conformance import suite
    from sephb.conformance.suite.results import loads
    from sephb.model.interpretations import get

    cmd = _conform_client_cmd(args)
    wire_only = [f"--{n.replace('_', '-')}" for n in ("time_scale", "tolerance",
                                                       "startup_wait", "jobs",
                                                       "start_allowance")
                 if getattr(args, n) is not None]
    if cmd is None and wire_only:
        raise UsageError(f"{', '.join(wire_only)}: only over the wire (with --client-cmd)")
    baseline = None
    if args.baseline:
        try:
            baseline = loads(Path(args.baseline).read_bytes())
        except OSError as exc:
            raise UsageError(f"--baseline {args.baseline!r}: {exc.strerror or exc}"
                             ) from None
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--baseline {args.baseline!r}: not a result.json of "
                             f"sephb conform ({exc})") from None
    if cmd is not None:
        from sephb.conformance.suite import START_ALLOWANCE_S, STARTUP_S, run_wire

        result = _with_progress(lambda progress: run_wire(
            get(args.interpretation), cmd, profile=args.profile, seed=args.seed,
            max_examples=args.max_examples, progress=progress,
            time_scale=args.time_scale, jobs=args.jobs,
            tolerance_ms=args.tolerance, startup_s=args.startup_wait or STARTUP_S,
            start_allowance_s=(START_ALLOWANCE_S if args.start_allowance is None
                               else args.start_allowance)))
    else:
        env = suite.environment_for(args.client, cmd)
        result = _with_progress(lambda progress: suite.run(
            get(args.interpretation), factory=env, profile=args.profile,
            seed=args.seed, client=args.client, max_examples=args.max_examples,
            progress=progress))
    result.replay = _replay(args, result.seed)
    if args.json:
        from sephb.conformance.suite.results import dumps

        sys.stdout.buffer.write(dumps(result) + b"\n")
        sys.stdout.flush()
    else:
        _print_result(result, baseline)
    _write_reports(args, result, baseline)
    return int(result.exit_status)


def _write_reports(args: argparse.Namespace, result: Any, baseline: Any) -> None:
    """``--report`` and ``--junitxml``, checked when parsed; a write that fails anyway
    (the disk filled during the run) is one line, never a traceback."""
    from sephb.conformance.suite.report import write_junit, write_report

    if args.report:
        try:
            written = write_report(result, make_dir(args.report, "--report"),
                                   baseline=baseline)
        except OSError as exc:
            raise UsageError(f"--report {str(args.report)!r}: cannot write: "
                             f"{exc.strerror or exc}") from None
        print(f"report: {written['index.html']}",
              file=sys.stderr if args.json else sys.stdout)
    if args.junit:
        try:
            write_junit(result, args.junit, report_dir=args.report, baseline=baseline)
        except OSError as exc:
            raise UsageError(f"--junitxml {str(args.junit)!r}: cannot write: "
                             f"{exc.strerror or exc}") from None


def _replay(args: argparse.Namespace, seed: int | None) -> str:
    """The command line that runs this run again: the same options, the seed fixed."""
    import shlex

    words = ["sephb", "conform", "-i", args.interpretation, "--profile", args.profile]
    if args.client_cmd is not None:
        words += ["--client-cmd", args.client_cmd]
        for name in ("time_scale", "tolerance", "startup_wait", "start_allowance"):
            # (--jobs is left out: it changes how fast, never what, a run finds)
            if getattr(args, name) is not None:
                words += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    elif args.client != "reference":
        words += ["--client", args.client]
    if args.max_examples:
        words += ["--max-examples", str(args.max_examples)]
    if seed is not None:
        words += ["--seed", str(seed)]
    return shlex.join(words)


def _with_progress(work: Callable[[Any], Any]) -> Any:
    """Run ``work`` with a rich progress bar on a terminal (cases, coverage, time
    left); silently otherwise."""
    if not sys.stderr.isatty():
        return work(None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} cases"),
                  TextColumn("{task.fields[covered]}"), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task("conform", total=None, covered="")

        def progress(coverage: Any, total: int) -> None:
            rows = coverage.rows
            done = sum(1 for n in rows.values() if n)
            bar.update(task, completed=coverage.cases, total=total,
                       covered=f"{done}/{len(rows)} transitions covered")

        return work(progress)


def _print_result(result: Any, baseline: Any = None) -> None:
    """The run in a few lines: the same verdict, counts and failures as every report."""
    from sephb.conformance.suite import site_of
    from sephb.conformance.suite.report import compare
    from sephb.conformance.suite.results import Status, Tally, cases_text, shrink_text

    tally = Tally.of(result)
    print(f"{result.verdict}: {result.client} ({result.adapter}, interpretation "
          f"{result.interpretation}, profile {result.profile}, seed {result.seed})")
    print(f"  cases: {cases_text(result)}; {result.steps:,} steps, "
          f"{result.duration_s:.1f} s")
    print(f"  requirements: {Tally.line(tally.requirements)}")
    print(f"  transitions:  {Tally.line(tally.rows)}")
    if result.error:
        print(f"  ERROR: the client could not be tested: {result.error}")
    if result.inconclusive:
        print(f"  INCONCLUSIVE: {result.inconclusive}")
    for f in result.failures:
        print(f"  FAILED {f.requirement}: {f.message}")
        shrunk = shrink_text(f)
        if shrunk:
            print(f"    {shrunk}")
        print(f"    site: {site_of(f.steps).words()}")
        for step in f.steps:
            print(f"      {step}")
    for r in result.requirements:
        if r.status is Status.NOT_EXERCISED:
            print(f"  not exercised: {r.id}")
    for name in result.uncovered:
        print(f"  never exercised: {name}")
    for w in result.warnings:
        print(f"  warning: {w}")
    if baseline is not None:
        changes = compare(baseline, result)
        print(f"  since the baseline: {len(changes) or 'no'} change(s)")
        for c in changes:
            print(f"    {c.text()}")
    print(f"  run again: {result.replay}")


def cmd_mutants(args: argparse.Namespace) -> int:
    import time

    from sephb.conformance import suite
    from sephb.conformance.client.faults import FAULTS
    from sephb.model.interpretations import get

    interp = get(args.interpretation)
    rows: list[dict[str, Any]] = []
    chosen = [(n, f) for n, f in FAULTS.items() if not args.faults or n in args.faults]
    for name, fault in chosen:
        if fault.applies(interp.name):
            continue
        # Under this reading the faulty client is the reference: nothing to kill,
        # and running it would only show that (tests/test_suite.py does).
        for adapter in ("in-process", *(["wire"] if args.wire else [])):
            rows.append({"fault": name, "adapter": adapter, "verdict": "n/a",
                         "killed": None, "expected": fault.requirement,
                         "requirement": None, "seconds": 0.0, "seconds_to_kill": None,
                         "steps": None, "replays": None,
                         "why": f"only a deviation under the {fault.only_under} reading"})
            if not args.json:
                print(f"{name:<26} {adapter:<10} {'n/a':<9} {rows[-1]['why']}", flush=True)
    tested = [name for name, fault in chosen if fault.applies(interp.name)]
    for name in tested:
        t0 = time.perf_counter()
        result = suite.run(interp, factory=suite.environment_for(name),
                           profile=args.profile, client=name)
        rows.append(_mutant_row(name, "in-process", FAULTS[name].requirement, result,
                                round(time.perf_counter() - t0, 2), args.json))
    if args.wire:
        for name, result, seconds in _wire_mutants(interp.name, tested, args.profile,
                                                   args.jobs):
            rows.append(_mutant_row(name, "wire", FAULTS[name].requirement, result,
                                    seconds, args.json))
    judged = [r for r in rows if r["killed"] is not None]
    if args.json:
        print_json(rows)
    else:
        n_killed = sum(1 for r in judged if r["killed"])
        print(f"\nkilled {n_killed}/{len(judged)} (and {len(rows) - len(judged)} not "
              f"applicable under the {interp.name} reading)")
    # Exit as `sephb conform` would for the worst fault: a fault the suite passed
    # (or judged NON-CONFORMANT on coverage alone, with no violation) survived: 1;
    # else a client that could not be tested: 3; else untrusted timing: 4.
    unkilled = {r["verdict"] for r in judged if not r["killed"]}
    if unkilled & {"CONFORMANT", "NON-CONFORMANT"}:
        return 1
    return 3 if "ERROR" in unkilled else 4 if unkilled else 0


def _mutant_row(name: str, adapter: str, expected: str, result: Any, seconds: float,
                quiet: bool) -> dict[str, Any]:
    """One fault's row (and, unless ``quiet``, its line): killed means a verdict --
    a timing failure the run could not trust (INCONCLUSIVE) or a client that could
    not be tested (ERROR; also a run that gave no ``result``) is not one."""
    from sephb.conformance import suite

    verdict = "ERROR" if result is None else result.verdict
    killed = verdict == "NON-CONFORMANT" and bool(result.failures)
    f = result.failures[0] if killed else None
    row = {
        "fault": name, "adapter": adapter, "verdict": verdict, "killed": killed,
        "expected": expected, "requirement": f.requirement if f else None,
        "seconds": seconds,
        # over the wire: until the violation was seen (then shrinking and replays);
        # in process the whole run, shrinking included
        "seconds_to_kill": (f.found_after_s or seconds) if f else None,
        "steps": suite.program_length(f.steps) if f else None,
        "replays": f"{f.reproduced}/{f.replays}" if f and f.replays else None,
        # why a fault that was not killed was not: what its run said
        "why": None if killed or result is None else (
            result.error or result.inconclusive or None),
    }
    if not quiet:
        word = "killed" if killed else (
            "SURVIVED" if verdict == "CONFORMANT" else verdict)
        print(f"{name:<26} {adapter:<10} {word:<9} {row['requirement'] or '-':<22} "
              f"{row['seconds_to_kill'] or 0:>6.1f} s to kill, {seconds:>6.1f} s in all"
              f"  {row['steps'] if f else '-'} steps"
              + (f", reproduced {row['replays']}" if row["replays"] else ""), flush=True)
        if row["why"]:
            print(f"{'':<26} {verdict.lower()}: {row['why']}", flush=True)
    return row


#: Wire cases each fault's run gets when faults run side by side.
_JOBS_PER_FAULT = 2


def _wire_mutants(interp: str, faults: list[str], profile: str, jobs: int | None
                  ) -> Iterator[tuple[str, Any, float]]:
    """Each fault's client judged over the wire, as ``sephb conform --client-cmd``
    judges it (a process each, its ``result.json`` read back), in the order of
    ``faults``. A wire run mostly waits on model time, so faults run side by side:
    ``jobs`` wire cases at once in all (default: what the machine holds), two per
    fault, one time scale calibrated here for all of them (each run calibrating
    while the others start clients would measure them, not the machine)."""
    import concurrent.futures as cf
    import subprocess
    import tempfile
    import time

    from sephb.conformance import suite
    from sephb.conformance.suite.results import loads

    calibration = suite.calibrate()
    total = jobs or suite.default_jobs(calibration.busy)
    at_once = max(1, total // _JOBS_PER_FAULT)
    per_fault = max(1, total // at_once)
    procs: list[subprocess.Popen[bytes]] = []

    def one(name: str, report: Path) -> tuple[str, Any, float]:
        client = (f"{shlex.quote(sys.executable)} -m sephb.conformance.cli client "
                  f"--sylink {{sylink}} --state-dir {{state_dir}} --time-scale "
                  f"{{time_scale}} -i {interp} --fault {name} --log-bytes 1000 "
                  # with the suite's spool the log probe applies: it shows a lost
                  # upload in seconds, where random cases need two uploads to meet
                  f"--log-dir {{log_dir}}")
        argv = [sys.executable, "-m", "sephb.conformance.cli", "conform", "-i", interp,
                "--profile", profile, "--client-cmd", client, "--jobs", str(per_fault),
                "--time-scale", f"{calibration.time_scale:g}", "--report", str(report)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        _, err = proc.communicate()
        seconds = round(time.perf_counter() - t0, 2)
        try:
            return name, loads((report / "result.json").read_bytes()), seconds
        except (OSError, ValueError):
            # The run itself failed (killed, out of memory): the fault was not
            # judged, which is an ERROR row, and its words go to stderr.
            print(f"sephb mutants: fault {name}: its wire run ended with exit status "
                  f"{proc.returncode} and no result: "
                  f"{err.decode(errors='replace').strip()[-2000:]}", file=sys.stderr)
            return name, None, seconds

    with tempfile.TemporaryDirectory(prefix="sephb-mutants-") as tmp, \
            cf.ThreadPoolExecutor(at_once) as pool:
        futures = [pool.submit(one, name, Path(tmp) / name) for name in faults]
        try:
            for fut in futures:
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()

