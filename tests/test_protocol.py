"""The table itself: requirement ids, parameters, enums with docs, pinned sizes."""

from __future__ import annotations

import inspect
import re

import pytest

from sephb.model import protocol as P
from sephb.model.errors import UsageError
from sephb.model.interpretations import AMBIGUITIES, INTERPRETATIONS, get

#: The requirement ids the issue names; each must be encoded by the protocol module.
NAMED = [
    "REQ-1-PRIORITY", "REQ-2-TIMEOUT-30000", "REQ-3-INDEX", "REQ-4-URLS",
    "REQ-4-PORT-8014", "REQ-4-PORT-2967", "REQ-5-LOGS", "REQ-6-SENSORS",
    "REQ-7-PULL", "REQ-7-PUSH", "REQ-SIZE-IDLE", "REQ-SIZE-MAX",
]


def _encoded_ids() -> set[str]:
    from sephb.model.promela import PROPERTIES

    return (
        {r.requirement for r in P.TABLE}
        | {g.requirement for g in P.GUARDS.values()}
        | {p.requirement for p in P.PARAMETERS.values()}
        # REQ-X-ALIVE: no row holds it; the model's liveness (every check-in ends)
        # does, and the suite judges a client by it.
        | {r for prop in PROPERTIES for r in prop.requirements}
    )


@pytest.mark.parametrize("req", NAMED)
def test_named_requirement_is_encoded(req: str) -> None:
    assert req in P.REQUIREMENTS
    assert req in _encoded_ids()


def test_every_requirement_is_encoded_and_every_encoded_id_is_known() -> None:
    assert _encoded_ids() == set(P.REQUIREMENTS)


def test_transition_requirements_are_rows_not_only_parameters() -> None:
    # Size requirements are parameters, REQ-X-ALIVE the model's liveness (an LTL
    # property); every other behavioural id is a row or guard.
    rows = {r.requirement for r in P.TABLE} | {g.requirement for g in P.GUARDS.values()}
    assert set(P.REQUIREMENTS) - rows == {"REQ-SIZE-IDLE", "REQ-SIZE-MAX", "REQ-X-ALIVE"}


def test_parameters_match_the_seed() -> None:
    assert P.SESSION_LIMIT_MS == 30_000
    assert P.MANAGER_CONTENT_PORT == 8014
    assert P.GUP_PORT == 2967
    assert P.HEARTBEAT_INTERVAL_S == 300
    assert P.IDLE_HEARTBEAT_BYTES == (3 * 1024, 5 * 1024)
    assert P.FULL_HEARTBEAT_BYTES == (200 * 1024, 300 * 1024)
    for p in P.PARAMETERS.values():
        assert p.source and p.requirement in P.REQUIREMENTS


@pytest.mark.parametrize("enum", [P.State, P.Event, P.Guard, P.Action, P.Switch])
def test_every_enum_member_has_a_doc_comment(enum: type) -> None:
    src = inspect.getsource(enum)
    for member in enum:  # type: ignore[attr-defined]
        assert re.search(rf"#: .+\n\s+{member.name} = ", src), member


def test_pinned_sizes() -> None:
    # A change to the model must change these on purpose.
    assert (len(P.State), len(P.Event), len(P.Guard), len(P.TABLE)) == (9, 13, 9, 33)
    assert {n: len(i.rows()) for n, i in INTERPRETATIONS.items()} == {
        "seed": 23,
        "documented": 28,
    }


def test_row_names_are_unique_within_an_interpretation() -> None:
    for interp in INTERPRETATIONS.values():
        names = [r.name for r in interp.rows()]
        assert len(names) == len(set(names))


def test_every_state_has_an_entry_action_and_a_step() -> None:
    assert set(P.ENTRY) == set(P.State) == set(P.STEP)
    assert len(set(P.ENTRY.values())) == len(P.State)
    assert not {a.value for a in P.Action} & {e.value for e in P.Event}


def test_interpretations_differ_exactly_in_their_switches() -> None:
    seed, doc = get("seed"), get("documented")
    only_doc = {r.requirement for r in set(doc.rows()) - set(seed.rows())}
    only_seed = {r.requirement for r in set(seed.rows()) - set(doc.rows())}
    assert only_doc == {
        "REQ-2-FAILOVER", "REQ-2-TIMEOUT-30000", "REQ-4-GUP-FALLBACK",
        "REQ-7-PUSH-HEARTBEAT",
    }
    assert only_seed == {"REQ-2-TIMEOUT-30000", "REQ-X-GUP-SKIP"}


def test_every_switch_is_in_the_ambiguity_register() -> None:
    assert {a.switch for a in AMBIGUITIES if a.switch} == set(P.Switch)
    for a in AMBIGUITIES:
        assert set(a.requirements) <= set(P.REQUIREMENTS), a.id


def test_unknown_interpretation_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="seed, documented"):
        get("literal")


@pytest.mark.parametrize("action", list(P.Action))
def test_failure_of_an_action_is_a_failure_its_state_accepts(action: P.Action) -> None:
    if action is P.Action.DISCONNECT or action is P.Action.CONNECT:
        return  # IDLE fails nothing; a connect's failure is asked of CONNECTING below
    state = next(s for s, a in P.ENTRY.items() if a is action)
    for timed_out in (False, True):
        event = P.failure_of(action, timed_out=timed_out)
        assert any(r.source is state and r.event is event for r in P.TABLE)
    assert P.failure_of(P.Action.GET_INDEX) is P.Event.CONNECT_FAILED
    assert P.failure_of(P.Action.GET_INDEX, timed_out=True) is P.Event.SESSION_TIMEOUT
    assert P.failure_of(P.Action.DOWNLOAD_GUP) is P.Event.DOWNLOAD_FAILED
    assert P.failure_of(P.Action.HOLD) is P.Event.CONNECTION_LOST


def test_a_connect_fails_as_the_session_limit_says() -> None:
    assert P.failure_of(P.Action.CONNECT) is P.Event.CONNECT_FAILED
    assert P.failure_of(P.Action.CONNECT, timed_out=True) is P.Event.SESSION_TIMEOUT
