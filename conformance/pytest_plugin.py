"""A pytest plugin: run the conformance suite inside a project's own test run.

Installed with ``sephb`` (entry point ``pytest11``), it does nothing unless asked::

    pytest --sephb-client-cmd 'my-client --config {sylink} --state {state_dir} \\
           --speed {time_scale}' [--sephb-interpretation documented] \\
           [--sephb-profile ci] [--sephb-report out/sephb]

It adds one test item, ``sephb-conformance``, that runs the suite against the
command over the wire and fails with the suite's summary (violations with their
shrunk steps, uncovered transitions and requirements) when the client does not
conform. ``--sephb-client reference`` (or a seeded fault's name) runs in process.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sephb", "SEP heartbeat conformance (sephb)")
    group.addoption("--sephb-client-cmd", metavar="CMD",
                    help="test this client over the wire: a command with {sylink}, "
                         "{state_dir} and {time_scale} placeholders")
    group.addoption("--sephb-client", metavar="NAME",
                    help="test an in-process client: 'reference' or a seeded fault")
    group.addoption("--sephb-interpretation", default="seed",
                    help="reading of the seed: seed (default) or documented")
    group.addoption("--sephb-profile", default="ci",
                    choices=("ci", "nightly", "certify"))
    group.addoption("--sephb-seed", type=int, default=None)
    group.addoption("--sephb-report", metavar="DIR",
                    help="also write the HTML/Markdown/JUnit report here")


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
