"""What a conformance run found: the data every report is written from.

The suite (:mod:`sephb.conformance.suite`) fills a :class:`SuiteResult`; the reports
(:mod:`sephb.conformance.report`: HTML, Markdown, JUnit XML) only read it. Keeping
the two apart lets a report be re-rendered from a saved result (``result.json``)
without running anything.
"""

from __future__ import annotations

import enum

import msgspec


class Status(enum.Enum):
    """A requirement's verdict in one run."""

    #: Exercised, never violated.
    PASSED = "PASSED"
    #: Violated at least once (see the failures).
    FAILED = "FAILED"
    #: Never exercised: the run says nothing about it, and fails for it.
    NOT_COVERED = "NOT_COVERED"


class RequirementResult(msgspec.Struct, frozen=True):
    id: str
    status: Status
    #: The requirement's text (the seed sentence or the documented rule).
    text: str
    #: How often a transition or property carrying this id was exercised.
    hits: int


class Failure(msgspec.Struct, frozen=True):
    """One violation, with the shrunk run that shows it."""

    requirement: str
    #: One line: what the client did, what the model allowed.
    message: str
    #: The shrunk program: one readable line per step (environment actions and the
    #: client's moves), as Hypothesis printed it.
    steps: list[str]
    #: The observable trace of the shrunk run, trace-format records as dicts.
    trace: list[dict[str, object]]
    #: A self-contained pytest file that replays the shrunk run.
    replay: str
    #: The Hypothesis seed that found it (reproduce with ``--seed``).
    seed: int | None = None


class SuiteResult(msgspec.Struct):
    """Everything one ``sephb conform`` run found."""

    #: "reference", a fault name, or the --client-cmd.
    client: str
    #: "in-process" or "wire".
    adapter: str
    interpretation: str
    profile: str
    seed: int | None
    #: Hypothesis test cases run, and model steps over all of them.
    cases: int
    steps: int
    duration_s: float
    #: Times each row of the interpretation's table was exercised, by Row.name.
    transitions: dict[str, int]
    requirements: list[RequirementResult]
    failures: list[Failure]
    #: Warnings that are not violations (e.g. heartbeat sizes outside the typical range).
    warnings: list[str] = msgspec.field(default_factory=list)

    @property
    def uncovered(self) -> list[str]:
        return sorted(name for name, n in self.transitions.items() if n == 0)

    @property
    def conformant(self) -> bool:
        """No violation and full coverage of transitions and requirements."""
        return not self.failures and not self.uncovered and all(
            r.status is Status.PASSED for r in self.requirements
        )


def dumps(result: SuiteResult) -> bytes:
    return msgspec.json.encode(result)


def loads(data: bytes) -> SuiteResult:
    return msgspec.json.decode(data, type=SuiteResult)
