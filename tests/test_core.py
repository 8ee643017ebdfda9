"""The pure client core against a virtual clock: no sockets, no sleeps."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sephb.conformance.client.core import ClientCore, Effect, Peer, Timer
from sephb.model import protocol as P
from sephb.model.errors import ProtocolError
from sephb.model.interpretations import INTERPRETATIONS, get

A = P.Action
E = P.Event
MANAGERS = [
    Peer("127.0.0.2", 8014, 1), Peer("127.0.0.3", 8014, 1), Peer("127.0.0.4", 8014, 2)
]


def core(interp: str = "seed", mode: P.Mode = P.Mode.PULL, **kw: object) -> ClientCore:
    c = ClientCore(MANAGERS, mode, get(interp), interval_ms=300_000,
                   push_interval_ms=300_000, rng=random.Random(1), **kw)  # type: ignore[arg-type]
    c.start(0)
    return c


def actions(effects: list[Effect]) -> list[A]:
    return [e.action for e in effects]


def test_first_heartbeat_is_due_at_start_and_goes_to_the_first_manager() -> None:
    c = core()
    assert c.timer == Timer(0, E.HEARTBEAT_DUE)
    assert c.expire(0) == [Effect(A.CONNECT, 0, "127.0.0.2", 8014)]
    assert c.timer is not None and c.timer.at == P.SESSION_LIMIT_MS


def test_full_pull_checkin_with_new_content_from_the_gup() -> None:
    c = core()
    c.expire(0)
    assert actions(c.handle(E.CONNECTED, 5)) == [A.GET_INDEX]
    assert actions(c.handle(E.INDEX_RECEIVED, 9, serial="s1", content=1, source="gup")) == [
        A.GET_URLS
    ]
    effects = c.handle(E.URLS_RECEIVED, 12, source="gup",
                       urls=["http://127.0.0.9:2967/content/1/a.zip"])
    assert effects == [Effect(A.DOWNLOAD_GUP, 0, "127.0.0.9", 2967)]
    assert c.index is None  # not adopted before the content arrived
    assert actions(c.handle(E.CONTENT_RECEIVED, 20)) == [A.UPLOAD_LOGS]
    assert c.index == ("s1", 1)
    assert actions(c.handle(E.LOGS_ACKED, 25)) == [A.UPLOAD_SENSORS]
    assert actions(c.handle(E.SENSORS_ACKED, 30)) == [A.DISCONNECT]
    assert c.state is P.State.IDLE and c.timer == Timer(300_000, E.HEARTBEAT_DUE)


def _one_checkin(c: ClientCore, t: int) -> None:
    c.expire(t)
    c.handle(E.CONNECTED, t + 5)
    c.handle(E.INDEX_RECEIVED, t + 9, serial="s1", content=1)
    c.handle(E.LOGS_ACKED, t + 25)
    c.handle(E.SENSORS_ACKED, t + 30)


@pytest.mark.parametrize(("interp", "due"), [("seed", 300_000), ("documented", 300_030)])
def test_the_interval_counts_from_the_interpretations_anchor(interp: str, due: int
                                                             ) -> None:
    # seed: from the check-in's start (A11); documented: from its end.
    c = core(interp, index=("s1", 1))
    _one_checkin(c, 0)
    assert c.timer == Timer(due, E.HEARTBEAT_DUE)


@pytest.mark.parametrize(("interp", "limit"), [("seed", P.SESSION_LIMIT_MS),
                                               ("documented", 300_000)])
def test_a_request_after_the_session_waits_the_interpretations_limit(
        interp: str, limit: int) -> None:
    c = core(interp)
    c.expire(0)
    c.handle(E.CONNECTED, 5)
    c.handle(E.INDEX_RECEIVED, 9, serial="s2", content=2)
    assert c.state is P.State.FETCHING_URLS
    assert c.timer == Timer(9 + limit, E.REQUEST_FAILED)


def test_randomization_spreads_the_next_heartbeat_within_the_range() -> None:
    seen = set()
    for seed in range(20):
        c = ClientCore(MANAGERS, P.Mode.PULL, get("seed"), interval_ms=300_000,
                       push_interval_ms=300_000, rng=random.Random(seed),
                       randomization_ms=60_000, index=("s1", 1))
        c.start(0)
        _one_checkin(c, 0)
        assert c.timer is not None and 300_000 <= c.timer.at <= 360_000
        seen.add(c.timer.at)
    assert len(seen) > 10  # spread, not one fixed delay


def test_unchanged_index_skips_urls() -> None:
    c = core(index=("s1", 1))
    c.expire(0)
    c.handle(E.CONNECTED, 1)
    assert actions(c.handle(E.INDEX_RECEIVED, 2, serial="s1", content=1)) == [A.UPLOAD_LOGS]


def test_policy_without_heartbeat_source_skips_urls() -> None:
    c = core()
    c.expire(0)
    c.handle(E.CONNECTED, 1)
    effects = c.handle(E.INDEX_RECEIVED, 2, serial="s2", content=2, source="none")
    assert actions(effects) == [A.UPLOAD_LOGS]


@pytest.mark.parametrize("limit_edge", [P.SESSION_LIMIT_MS - 1, P.SESSION_LIMIT_MS])
def test_session_limit_is_exactly_30000_ms(limit_edge: int) -> None:
    c = core()
    c.expire(0)
    effects = c.expire(limit_edge)
    if limit_edge < P.SESSION_LIMIT_MS:
        assert effects == [] and c.state is P.State.CONNECTING
    else:
        assert actions(effects) == [A.DISCONNECT] and c.state is P.State.IDLE
        assert c.timer is not None and c.timer.at == 300_000  # not before the interval


def test_session_limit_spans_connect_and_first_answer() -> None:
    c = core()
    c.expire(0)
    c.handle(E.CONNECTED, 29_000)
    assert c.timer is not None and c.timer.at == P.SESSION_LIMIT_MS


def test_documented_fails_over_in_priority_order() -> None:
    c = core("documented")
    c.expire(0)
    first = c.manager
    assert first in (0, 1)  # random within priority 1
    c.expire(P.SESSION_LIMIT_MS)
    assert first is not None
    assert c.state is P.State.CONNECTING and c.manager == 1 - first
    c.fail(P.SESSION_LIMIT_MS + 5, timed_out=False)
    assert c.manager == 2
    assert actions(c.fail(P.SESSION_LIMIT_MS + 9, timed_out=False)) == [A.DISCONNECT]


def test_seed_ends_the_checkin_on_a_refused_connection() -> None:
    c = core()
    c.expire(0)
    assert actions(c.fail(3, timed_out=False)) == [A.DISCONNECT]
    assert c.path[-1].requirement == "REQ-2-TIMEOUT-30000"


def test_gup_failure_seed_skips_documented_falls_back() -> None:
    for interp, want in (("seed", A.UPLOAD_LOGS), ("documented", A.DOWNLOAD_MANAGER)):
        c = core(interp)
        c.expire(0)
        c.handle(E.CONNECTED, 1)
        c.handle(E.INDEX_RECEIVED, 2, serial="s", content=1, source="gup")
        c.handle(E.URLS_RECEIVED, 3, source="gup")
        assert actions(c.fail(4, timed_out=True)) == [want], interp


def test_push_mode_holds_and_applies_a_pushed_policy_at_once() -> None:
    for interp in ("seed", "documented"):
        c = core(interp, P.Mode.PUSH, index=("s", 1))
        c.expire(0)
        c.handle(E.CONNECTED, 1)
        c.handle(E.INDEX_RECEIVED, 2, serial="s", content=1)
        c.handle(E.LOGS_ACKED, 3)
        assert actions(c.handle(E.SENSORS_ACKED, 4)) == [A.HOLD]
        assert c.manager == 0
        # the seed's push client only reacts; the documented one also heartbeats
        assert (c.timer is not None) is (interp == "documented")
        assert actions(c.handle(E.POLICY_PUSHED, 50)) == [A.GET_INDEX]


def test_an_event_the_state_does_not_accept_is_a_protocol_error() -> None:
    c = core()
    with pytest.raises(ProtocolError, match="LOGS_ACKED cannot happen in state IDLE"):
        c.handle(E.LOGS_ACKED, 0)


@settings(max_examples=300)
@given(
    interp=st.sampled_from(sorted(INTERPRETATIONS)),
    mode=st.sampled_from(P.Mode),
    steps=st.lists(
        st.tuples(st.sampled_from(E), st.integers(0, 400_000), st.sampled_from(P.Source)),
        max_size=40,
    ),
)
def test_core_only_ever_takes_rows_of_its_table(
    interp: str, mode: P.Mode, steps: list[tuple[P.Event, int, P.Source]]
) -> None:
    c = core(interp, mode)
    rows = set(get(interp).rows())
    now = 0
    for event, dt, source in steps:
        now += dt
        try:
            effects = c.handle(event, now, serial="s", content=now, source=source.value)
        except ProtocolError:
            assert not c.accepts(event) or event is E.INDEX_RECEIVED
            continue
        assert [(e.action, e.manager) for e in effects] == [(P.ENTRY[c.state], c.manager)]
        assert effects[0].settle_logs is (c.path[-1].event is E.LOGS_ACKED)
        assert c.path[-1] in rows
        assert (c.manager is None) is (c.state is P.State.IDLE)
