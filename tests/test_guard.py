"""A client that raises, hangs or spins is a finding of the suite, never its crash:
the guard around every call into the client (conformance/suite/_guard.py), the
REQ-X-ALIVE verdict in every output of a run, and the spin guard."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from sephb.conformance import suite
from sephb.conformance.suite._guard import ClientFailed, Guarded, Watchdog
from sephb.conformance.suite.inproc import CoreClient
from sephb.conformance.suite.results import Status
from sephb.model.interpretations import get

SEPHB = [sys.executable, "-m", "sephb.conformance.cli"]


class _Client:
    value = 1

    def boom(self) -> None:
        raise ZeroDivisionError("division by zero")

    def spin(self) -> None:
        x = 1
        while x:
            x = 1

    def outer(self, inner: Any) -> None:
        inner.boom()


def test_an_exception_becomes_a_finding_that_names_the_call_and_the_line() -> None:
    c = Guarded(_Client(), None)
    with pytest.raises(ClientFailed) as err:
        c.boom()
    assert "boom() raised ZeroDivisionError: division by zero at " in str(err.value)
    assert "test_guard.py:" in str(err.value)  # where, without the machine's paths
    assert c.value == 1  # attributes pass through
    assert getattr(c, "missing", "default") == "default"  # AttributeError stays one


def test_a_nested_call_is_reported_once() -> None:
    made: list[ClientFailed] = []

    def fail(f: ClientFailed) -> BaseException:
        made.append(f)
        return AssertionError(f.text)

    c = Guarded(_Client(), None, fail)
    with pytest.raises(AssertionError, match="boom"):
        c.outer(c)
    assert len(made) == 1


def test_the_watchdog_interrupts_a_loop_that_never_returns() -> None:
    dog = Watchdog(0.3)
    c = Guarded(_Client(), dog)
    # (a watchdog that never fired would hang here: the run's faulthandler says where)
    with pytest.raises(ClientFailed, match=r"spin\(\) did not return within 0.3 s"):
        c.spin()
    # the guard still works after a hang
    with pytest.raises(ClientFailed, match="ZeroDivisionError"):
        c.boom()


@pytest.mark.parametrize("fault", ["crashes-on-error", "hangs-on-error"])
def test_a_client_that_stops_fails_alive_in_process(fault: str) -> None:
    result = suite.run(get("seed"), factory=suite.environment_for(fault), client=fault)
    assert not result.conformant and not result.error
    f = result.failures[0]
    assert f.requirement == "REQ-X-ALIVE"
    assert ("raised RuntimeError" if fault == "crashes-on-error"
            else "did not return within") in f.message
    assert {r.id: r.status for r in result.requirements}["REQ-X-ALIVE"] is Status.FAILED


def test_every_output_of_a_crashing_client_tells_the_same_story(tmp_path: Path) -> None:
    out = tmp_path / "r"
    junit = tmp_path / "junit.xml"
    res = subprocess.run([*SEPHB, "conform", "--client", "crashes-on-error",
                          "--report", str(out), "--junit", str(junit)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stdout.startswith("NON-CONFORMANT")
    assert "FAILED REQ-X-ALIVE: tick() raised RuntimeError" in res.stdout
    assert "site: m1" in res.stdout  # the failing case's site, in words
    doc = json.loads((out / "result.json").read_text())
    status = {r["id"]: r["status"] for r in doc["requirements"]}
    assert status["REQ-X-ALIVE"] == Status.FAILED.value
    assert doc["failures"][0]["requirement"] == "REQ-X-ALIVE"
    case = next(c for c in ET.parse(junit).getroot().iter("testcase")
                if c.get("classname", "").endswith(".REQ-X-ALIVE"))
    failure = case.find("failure")
    assert failure is not None and "raised RuntimeError" in (failure.text or "")
    assert "Site: m1" in (failure.text or "")
    assert "REQ-X-ALIVE" in (out / "report.md").read_text()
    assert "raised RuntimeError" in (out / "index.html").read_text()
    # The replay file fails the same way while the client still crashes.
    replay_file = out / "failures" / "test_replay_1.py"
    replay = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p",
                             "no:cacheprovider", str(replay_file)],
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 1 and "REQ-X-ALIVE" in replay.stdout


class _Spinner(CoreClient):
    """Asks to be woken a millisecond in the past, for ever."""

    def wakeup(self) -> int | None:
        return self.world.now - 1


def test_a_client_whose_timer_is_always_in_the_past_is_caught() -> None:
    env = suite.Environment(lambda world, interp, mode: _Spinner(world, interp, mode))
    result = suite.run(get("seed"), factory=env, max_examples=5, probes=False)
    assert result.failures, "the spinning client survived"
    f = result.failures[0]
    assert f.requirement == "REQ-2-TIMEOUT-30000"
    assert "without time passing" in f.message and "its timer said" in f.message


def test_a_client_that_cannot_be_built_is_a_finding() -> None:
    """Building the client is a call into it: what its constructor raises is
    REQ-X-ALIVE with the line, not a traceback of the suite."""

    def broken(world: Any, interp: Any, mode: Any) -> Any:
        raise ValueError("a client needs at least one manager")

    result = suite.run(get("seed"), factory=suite.Environment(broken), max_examples=3,
                       probes=False)
    assert not result.conformant and not result.error
    f = result.failures[0]
    assert f.requirement == "REQ-X-ALIVE"
    assert "start() raised ValueError: a client needs at least one manager" in f.message
