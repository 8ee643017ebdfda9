"""The Promela export checked by SPIN: every property holds on every interpretation,
and a broken table is caught by SPIN and by the networkx analyses alike."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from sephb.conformance.cli import main
from sephb.model import promela
from sephb.model.analysis import check_all
from sephb.model.graph import Topology
from sephb.model.interpretations import INTERPRETATIONS, get
from sephb.model.protocol import Event, Mode, Row, State


@pytest.fixture(scope="module", autouse=True)
def _spin_installed() -> None:
    # Not a skip: a missing model checker must fail the run, loudly.
    for tool in ("spin", "gcc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool!r} is not installed: `make test` installs it "
                        f"(apt-get install spin gcc)")


def _verdicts(source: str) -> dict[str, bool]:
    return {v.property: v.holds for v in promela.verify(source)}


@pytest.mark.parametrize("mode", list(Mode), ids=lambda m: m.value)
@pytest.mark.parametrize("name", sorted(INTERPRETATIONS))
def test_every_property_holds_on_every_interpretation(name: str, mode: Mode) -> None:
    source = promela.export(get(name), Topology(2, 1, gup=True, mode=mode))
    verdicts = _verdicts(source)
    assert set(verdicts) == {p.name for p in promela.PROPERTIES}
    assert all(verdicts.values()), verdicts


def test_export_is_mechanical_one_branch_per_row() -> None:
    for interp in INTERPRETATIONS.values():
        source = promela.export(interp)
        branches = [ln for ln in source.splitlines() if ln.strip().startswith(":: atomic")]
        assert len(branches) == len(interp.rows())
        for r in interp.rows():
            assert f"/* {r.requirement}: {r.name} */" in source
        assert source.count("ltl ") == len(promela.PROPERTIES)


def test_push_immediate_ltl_checks_REQ_7_PUSH_IMMEDIATE() -> None:
    """REQ-7-PUSH-IMMEDIATE: the pushed policy is fetched at once; SPIN proves it on
    the push configuration and refutes it when the push row is redirected."""
    prop = next(p for p in promela.PROPERTIES if p.name == "push_immediate")
    assert "REQ-7-PUSH-IMMEDIATE" in prop.requirements
    interp = get("seed")
    push = Topology(1, 1, gup=False, mode=Mode.PUSH)
    rows = _mutate(interp.rows(), State.PUSH_HELD, Event.POLICY_PUSHED,
                   State.UPLOADING_LOGS)
    assert _verdicts(promela.export(interp, push))["push_immediate"]
    assert not _verdicts(promela.export(interp, push, rows))["push_immediate"]


def _mutate(rows: tuple[Row, ...], source: State, event: Event, dest: State,
            old_dest: State | None = None) -> list[Row]:
    hit = [r for r in rows if r.source is source and r.event is event
           and (old_dest is None or r.dest is old_dest)]
    assert len(hit) == 1, hit
    return [dataclasses.replace(r, dest=dest) if r is hit[0] else r for r in rows]


def test_sensors_before_logs_is_caught_by_spin_and_by_analysis() -> None:
    """REQ-5-LOGS / REQ-6-SENSORS: an unchanged index jumping straight to the sensor
    upload skips step 5."""
    interp = get("seed")
    rows = _mutate(interp.rows(), State.FETCHING_INDEX, Event.INDEX_RECEIVED,
                   State.UPLOADING_SENSORS, old_dest=State.UPLOADING_LOGS)
    verdicts = _verdicts(promela.export(interp, rows=rows))
    assert not verdicts["logs_before_sensors"]
    problems = check_all(interp, rows)
    assert any("rule_logs_before_sensors" in p for p in problems), problems


def test_timeout_followed_by_request_is_caught_by_spin_and_by_analysis() -> None:
    """REQ-2-TIMEOUT-30000: a session timeout that goes on to GET index.dat."""
    interp = get("seed")
    rows = _mutate(interp.rows(), State.CONNECTING, Event.SESSION_TIMEOUT,
                   State.FETCHING_INDEX)
    verdicts = _verdicts(promela.export(interp, rows=rows))
    assert not verdicts["timeout_no_request"]
    problems = check_all(interp, rows)
    assert any("rule_nothing_after_session_failure" in p for p in problems), problems


def test_cli_writes_the_export(tmp_path: Path) -> None:
    out = tmp_path / "seed.pml"
    assert main(["export", "promela", "-i", "documented", "-o", str(out)]) == 0
    assert out.read_text() == promela.export(get("documented"))
