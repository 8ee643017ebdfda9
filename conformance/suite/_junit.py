"""The JUnit XML of a result: one test case per requirement and per transition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from xml.etree import ElementTree as ET  # writing only: nothing untrusted is parsed

from sephb.conformance.suite._facts import (
    _cases,
    _Facts,
    _failure_text,
    _seed,
)
from sephb.conformance.suite._seqdiagram import xml_safe
from sephb.conformance.suite.results import (
    Status,
    SuiteResult,
    replay_command,
)

# --- JUnit -------------------------------------------------------------------------

#: The JUnit element of each verdict (PASSED has none); a <failure>'s type is the
#: verdict's name.
_JUNIT_ELEMENT: Final = {Status.FAILED: "failure", Status.NOT_EXERCISED: "failure",
                         Status.SKIPPED: "skipped", Status.NOT_REACHED: "skipped"}


@dataclass(frozen=True)
class _Case:
    classname: str
    name: str
    seconds: float
    #: The verdict, or None for the ERROR case of a client that could not be tested.
    status: Status | None
    message: str = ""
    body: str = ""

    @property
    def element(self) -> str | None:
        return "error" if self.status is None else _JUNIT_ELEMENT.get(self.status)


def _junit_bytes(facts: _Facts) -> bytes:
    """One <testcase> per requirement (classname ``sephb.<interpretation>.<id>``)
    and one per transition of the table, under its requirement's classname. FAILED
    is a <failure>; NOT_EXERCISED too (the coverage gate: the run fails for it);
    SKIPPED and NOT_REACHED are <skipped> with the reason; an ERROR run (the client
    could not be tested) is one <error>. So the file fails exactly when the verdict
    is not CONFORMANT, with one failure per failed requirement."""
    res = facts.result
    base = f"sephb.{res.interpretation}"
    cases: list[_Case] = []
    if res.error:
        cases.append(_Case(f"{base}.client", "start", 0.0, None, res.error, res.error))
    if res.inconclusive:
        # An <error>, not a <failure>: the run could not judge timing.
        cases.append(_Case(f"{base}.timing", "jitter", 0.0, None, res.inconclusive,
                           res.inconclusive))
    listed = {r.id for r in res.requirements}
    for req in res.requirements:
        nums = facts.failures_of.get(req.id, [])
        cls = f"{base}.{req.id}"
        if req.status is Status.FAILED or nums:
            cases.append(_Case(cls, "requirement", req.seconds, Status.FAILED,
                               *_junit_failed(req.id, nums, res, facts.files)))
        elif req.status is Status.NOT_EXERCISED:
            cases.append(_Case(
                cls, "requirement", req.seconds, req.status,
                f"{req.id} was never exercised in {_cases(res)} cases",
                f"{req.id}: {req.text}\nNo transition or property carrying this "
                "requirement was exercised: the run says nothing about it."))
        else:
            cases.append(_Case(cls, "requirement", req.seconds, req.status,
                               f"{req.status.label}: {req.reason}" if req.reason
                               else req.status.label))
    # A failure whose requirement the run did not list still fails the build.
    for rid, nums in facts.failures_of.items():
        if rid not in listed:
            cases.append(_Case(f"{base}.{rid}", "requirement", 0.0, Status.FAILED,
                               *_junit_failed(rid, nums, res, facts.files)))
    req_of = {name: rid for name, rid, _ in facts.rows}
    reached = ("the client could not be tested" if res.error
               else "the run stopped at its first failure")
    for name in res.transitions:
        status = res.row_status(name)
        why = {Status.NOT_EXERCISED: f"never exercised in {_cases(res)} cases",
               Status.SKIPPED: f"skipped: {res.skipped.get(name, '')}",
               Status.NOT_REACHED: f"not reached: {reached}"}.get(status, "")
        cases.append(_Case(
            f"{base}.{req_of.get(name, 'transitions')}", f"transition {name}",
            res.row_seconds.get(name, 0.0), status, why,
            f"{name}: no test case took this transition"
            if status is Status.NOT_EXERCISED else ""))

    count = {kind: sum(1 for c in cases if c.element == kind)
             for kind in ("failure", "error", "skipped")}
    time = f"{res.duration_s:.3f}"
    totals = {"tests": str(len(cases)), "failures": str(count["failure"]),
              "errors": str(count["error"]), "skipped": str(count["skipped"]),
              "time": time}
    root = ET.Element("testsuites", {"name": "sephb conformance", **totals})
    suite = ET.SubElement(root, "testsuite", {"name": xml_safe(base), **totals})
    props = ET.SubElement(suite, "properties")
    for key, value in [("verdict", facts.verdict), ("client", res.client),
                       ("adapter", res.adapter), ("interpretation", res.interpretation),
                       ("profile", res.profile), ("seed", _seed(res.seed)),
                       ("cases", str(res.cases)), ("directed cases", str(res.directed)),
                       ("steps", str(res.steps)), ("records", str(res.records)),
                       *res.settings.items(), ("replay", replay_command(res))]:
        ET.SubElement(props, "property", name=key, value=xml_safe(value))
    for c in cases:
        el = ET.SubElement(suite, "testcase", classname=xml_safe(c.classname),
                           name=xml_safe(c.name), time=f"{c.seconds:.3f}")
        if c.element is not None:
            f = ET.SubElement(el, c.element, message=xml_safe(c.message))
            if c.element != "skipped":
                f.set("type", "ERROR" if c.status is None else c.status.value)
                f.text = xml_safe(c.body)
    out = [f"warning: {w}" for w in [*res.warnings, *facts.notes]]
    if facts.changes:
        out += [f"baseline: {c.text()}" for c in facts.changes]
    if out:
        ET.SubElement(suite, "system-out").text = xml_safe("\n".join(out))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _junit_failed(rid: str, nums: list[int], res: SuiteResult, files: str | None
                  ) -> tuple[str, str]:
    """(message, body) of a failed requirement's <failure>."""
    if not nums:  # FAILED without a recorded failure: say so rather than invent one
        return f"{rid} failed (no failure recorded)", rid
    first = res.failures[nums[0] - 1].message
    more = f" (and {len(nums) - 1} more)" if len(nums) > 1 else ""
    return (first + more,
            "\n\n".join(_failure_text(n, res.failures[n - 1], res, files)
                         for n in nums))
