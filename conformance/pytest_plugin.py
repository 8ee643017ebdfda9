"""A pytest plugin: run the conformance suite inside a project's own test run.

Installed with ``sephb`` (entry point ``pytest11``), it does nothing unless asked::

    pytest --sephb-client-cmd 'my-client --config {sylink} --state {state_dir} \\
           --speed {time_scale}' [--sephb-interpretation documented] \\
           [--sephb-profile ci] [--sephb-report out/sephb]

It adds one test item, ``sephb-conformance``, that runs the suite against the
command over the wire and fails with the suite's summary (violations with their
shrunk steps, uncovered transitions and requirements) when the client does not
conform. ``--sephb-client reference`` (or a seeded fault's name) runs in process.

The options are ``sephb conform``'s, prefixed ``--sephb-``, with the same meanings;
a bad value is a usage error when pytest starts (``pytest_configure``), not a failed
test after it ran.
"""

from __future__ import annotations

from typing import Any

import pytest

#: The defaults, as ``sephb conform`` has them; a default needs no check at start.
INTERPRETATION, PROFILE = "seed", "ci"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sephb", "SEP heartbeat conformance (sephb)")
    group.addoption("--sephb-client-cmd", metavar="CMD",
                    help="test this client over the wire: a command with {sylink}, "
                         "{state_dir} and {time_scale} placeholders (default: none; "
                         "the plugin does nothing without this or --sephb-client)")
    group.addoption("--sephb-client", metavar="NAME",
                    help="test an in-process client: 'reference' or a seeded fault "
                         "(see `sephb mutants`)")
    group.addoption("--sephb-interpretation", default=INTERPRETATION,
                    metavar="NAME",
                    help="reading of the ambiguous seed: seed or documented (default: "
                         f"{INTERPRETATION})")
    group.addoption("--sephb-profile", default=PROFILE, metavar="NAME",
                    help="the suite's depth: ci, a fixed seed; nightly, 10,000+ cases; "
                         f"certify, 3,000 clean cases (default: {PROFILE})")
    group.addoption("--sephb-seed", type=int, default=None, metavar="N",
                    help="seed of every random choice: replays a run's cases and steps "
                         "(default: the profile's)")
    group.addoption("--sephb-report", metavar="DIR",
                    help="also write the HTML/Markdown/JUnit report here (created if "
                         "missing)")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a bad option before any test runs, in one line (pytest's exit 4)."""
    problem = _bad_option(config.getoption)
    if problem:
        raise pytest.UsageError(problem)


def _bad_option(opt: Any) -> str | None:
    # Imports only for what was given: pytest runs that do not use sephb stay fast.
    interp, profile = opt("sephb_interpretation"), opt("sephb_profile")
    if interp != INTERPRETATION:
        from sephb.model.interpretations import INTERPRETATIONS

        if interp not in INTERPRETATIONS:
            return (f"--sephb-interpretation {interp!r}: expected one of "
                    f"{', '.join(sorted(INTERPRETATIONS))}")
    if profile != PROFILE:
        from sephb.conformance.cli._common import SUITE_PROFILES

        if profile not in SUITE_PROFILES:
            return (f"--sephb-profile {profile!r}: expected one of "
                    f"{', '.join(SUITE_PROFILES)}")
    cmd, client = opt("sephb_client_cmd"), opt("sephb_client")
    if cmd and client:
        return "--sephb-client-cmd and --sephb-client: give one (over the wire, or in " \
               "process)"
    if cmd:
        missing = [p for p in ("{sylink}", "{state_dir}") if p not in cmd]
        if missing:
            return (f"--sephb-client-cmd needs the placeholders {', '.join(missing)} "
                    "(see docs/adapters.md)")
    if client and client != "reference":
        from sephb.conformance.client.faults import FAULTS

        if client not in FAULTS:
            return (f"--sephb-client {client!r}: expected 'reference' or a seeded "
                    "fault (`sephb mutants` lists them)")
    report = opt("sephb_report")
    if report:
        from pathlib import Path

        from sephb.conformance.cli._common import unwritable

        why = unwritable(Path(report), directory=True)
        if why:
            return f"--sephb-report {report!r}: cannot write: {why}"
    return None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if config.getoption("sephb_client_cmd") or config.getoption("sephb_client"):
        items.append(ConformanceItem.from_parent(session, name="sephb-conformance"))


class ConformanceFailed(Exception):
    """The client under test does not conform."""


class ConformanceItem(pytest.Item):
    """One item: the whole suite against the configured client."""

    def runtest(self) -> None:
        from sephb.conformance import suite
        from sephb.model.interpretations import get

        opt = self.config.getoption
        cmd = opt("sephb_client_cmd")
        name = opt("sephb_client") or "reference"
        interp = get(opt("sephb_interpretation"))
        if cmd:
            from sephb.conformance.suite import run_wire

            result = run_wire(interp, cmd, profile=opt("sephb_profile"),
                              seed=opt("sephb_seed"))
        else:
            result = suite.run(interp, factory=suite.environment_for(name),
                               profile=opt("sephb_profile"), seed=opt("sephb_seed"),
                               client=name)
        self.user_properties.append(("sephb_cases", result.cases))
        if opt("sephb_report"):
            from pathlib import Path

            from sephb.conformance.suite.report import write_report

            write_report(result, Path(opt("sephb_report")))
        if not result.conformant:
            raise ConformanceFailed(_summary(result))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "sephb", None, f"sephb conformance: {self.name}"


def _summary(result: Any) -> str:
    from sephb.conformance.suite.results import Status, Tally, cases_text, shrink_text

    tally = Tally.of(result)
    lines = [f"{result.client}: {result.verdict} ({result.adapter}, interpretation "
             f"{result.interpretation}, seed {result.seed}, {cases_text(result)} cases)",
             f"requirements: {Tally.line(tally.requirements)}; transitions: "
             f"{Tally.line(tally.rows)}"]
    if result.error:
        lines.append(f"the client could not be tested: {result.error}")
    if result.inconclusive:
        lines.append(f"timing cannot be trusted: {result.inconclusive}")
    for f in result.failures:
        lines.append(f"{f.requirement}: {f.message}")
        if shrink_text(f):
            lines.append(f"  ({shrink_text(f)})")
        lines += [f"    {s}" for s in f.steps]
    lines += [f"not exercised: {r.id}" for r in result.requirements
              if r.status is Status.NOT_EXERCISED]
    lines += [f"never exercised: {n}" for n in result.uncovered]
    return "\n".join(lines)
