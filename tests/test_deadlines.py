"""The deadlines of the model: read off the table, judged by one pure monitor."""

from __future__ import annotations

import pytest

from sephb.model.deadlines import (
    ACT_OPENERS,
    DEADLINES,
    Anchor,
    Deadlines,
    Open,
    RequestLimit,
    Timing,
    act_requirement,
)
from sephb.model.interpretations import AMBIGUITIES, get
from sephb.model.protocol import (
    ENTRY,
    REQUIREMENTS,
    SESSION_LIMIT_MS,
    TABLE,
    Action,
    Event,
    Mode,
    Switch,
)

INTERVAL = 300_000
START = Timing(Anchor.START, RequestLimit.SESSION)
END = Timing(Anchor.END, RequestLimit.INTERVAL)


def monitor(timing: Timing = START, mode: Mode | None = Mode.PULL, tol: int = 0,
            **kw: int | bool) -> Deadlines:
    return Deadlines(timing, mode, INTERVAL, tol, **kw)  # type: ignore[arg-type]


def feed(d: Deadlines, *records: tuple[str, int]) -> list[tuple[str, str]]:
    return [f for name, t in records if (f := d.feed(name, t)) is not None]


CHECK_IN = [("CONNECT", 0), ("GET_INDEX", 0), ("INDEX_RECEIVED", 5),
            ("UPLOAD_LOGS", 5), ("LOGS_ACKED", 9), ("UPLOAD_SENSORS", 9),
            ("SENSORS_ACKED", 12), ("DISCONNECT", 12)]


def test_deadlines_are_read_off_the_table() -> None:
    assert {d.id for d in DEADLINES} == {"act-at-once", "request", "next-heartbeat",
                                         "push-heartbeat"}
    # The push heartbeat is the documented reading's switch, opened by a hold and
    # ended by every way out of it.
    push = next(d for d in DEADLINES if d.id == "push-heartbeat")
    assert push.switch is Switch.PUSH_HEARTBEAT and push.opens == {Mode.PUSH: {"HOLD"}}
    assert push.closes == {"POLICY_PUSHED", "HEARTBEAT_DUE", "CONNECTION_LOST",
                           "DISCONNECT"}
    assert push.requirement == "REQ-7-PUSH-HEARTBEAT"
    for d in DEADLINES:
        assert d.requirement is None or d.requirement in REQUIREMENTS
    # Answers are acted on; failures that may end where no recorder sees are not.
    assert {"SENSORS_ACKED", "POLICY_PUSHED", "INDEX_RECEIVED",
            "DOWNLOAD_FAILED"} <= ACT_OPENERS[Mode.PULL]
    assert not {"CONNECT_FAILED", "SESSION_TIMEOUT", "REQUEST_FAILED",
                "CONNECTION_LOST"} & ACT_OPENERS[Mode.PULL]
    # A push heartbeat (the end of a hold) is an answer only in push mode; the mode
    # decides what SENSORS_ACKED leads to, but either way an action follows.
    assert "HEARTBEAT_DUE" in ACT_OPENERS[Mode.PUSH]
    assert "HEARTBEAT_DUE" not in ACT_OPENERS[Mode.PULL]
    assert "SENSORS_ACKED" in ACT_OPENERS[None]  # either ending is an action
    # Every entry action closes it; a request is every entry action of the check-in.
    act = next(d for d in DEADLINES if d.id == "act-at-once")
    assert act.closes == frozenset(a.value for a in Action)
    request = next(d for d in DEADLINES if d.id == "request")
    assert request.opens[Mode.PULL] == {"GET_URLS", "DOWNLOAD_MANAGER", "DOWNLOAD_GUP",
                                        "UPLOAD_LOGS", "UPLOAD_SENSORS"}
    assert all(a in {ENTRY[r.dest].value for r in TABLE}
               for a in request.opens[Mode.PULL])


def test_requirements_of_answers_left_unacted() -> None:
    assert act_requirement("SENSORS_ACKED", Mode.PULL) == "REQ-7-PULL"
    assert act_requirement("SENSORS_ACKED", Mode.PUSH) == "REQ-7-PUSH"
    assert act_requirement("POLICY_PUSHED", Mode.PUSH) == "REQ-7-PUSH-IMMEDIATE"
    assert act_requirement("HEARTBEAT_DUE", Mode.PUSH) == "REQ-7-PUSH-HEARTBEAT"


def test_the_interpretations_read_the_timing_both_ways() -> None:
    assert get("seed").timing == START and get("documented").timing == END
    ids = {a.id for a in AMBIGUITIES}
    assert {"A11-INTERVAL-ANCHOR", "A12-REQUEST-LIMIT", "A13-PUSH-AT-ONCE",
            "A14-EARLY-GIVE-UP", "A15-RANDOMIZATION"} <= ids
    assert START.request_limit_ms(INTERVAL) == SESSION_LIMIT_MS
    assert END.request_limit_ms(INTERVAL) == INTERVAL
    # A check-in that began at 0 and ended at 400 s (past the interval): the next is
    # due at once by the start anchor, an interval later by the end anchor.
    assert START.next_heartbeat_ms(400_000, 0, INTERVAL) == 400_000
    assert START.next_heartbeat_ms(12, 0, INTERVAL) == INTERVAL
    assert END.next_heartbeat_ms(12, 0, INTERVAL) == INTERVAL + 12


def test_a_conformant_pull_run_meets_every_deadline() -> None:
    d = monitor()
    nxt = [(n, t + INTERVAL) for n, t in CHECK_IN]
    assert feed(d, *CHECK_IN, *nxt) == []
    assert [o.deadline for o in d.pending()] == ["next-heartbeat"]
    assert d.pending()[0].due == 2 * INTERVAL


def test_an_answer_not_acted_on_at_once() -> None:
    d = monitor(tol=50)
    assert feed(d, *CHECK_IN[:-1]) == []  # SENSORS_ACKED at 12, no close
    assert d.overdue(62) is None  # within the tolerance
    found = d.overdue(63)
    assert found is not None and found[0] == "REQ-7-PULL"
    assert "SENSORS_ACKED at t=12 was not acted on at once" in found[1]
    assert d.overdue(1_000) is None  # reported once


def test_a_push_acted_on_late() -> None:
    d = monitor(mode=Mode.PUSH, tol=10)
    found = feed(d, ("HOLD", 0), ("POLICY_PUSHED", 100), ("GET_INDEX", 100 + INTERVAL))
    assert [f[0] for f in found] == ["REQ-7-PUSH-IMMEDIATE"]


@pytest.mark.parametrize(("timing", "limit"), [(START, SESSION_LIMIT_MS),
                                               (END, INTERVAL)])
def test_a_request_waited_on_too_long(timing: Timing, limit: int) -> None:
    d = monitor(timing)
    assert feed(d, ("INDEX_RECEIVED", 0), ("GET_URLS", 0),
                ("URLS_RECEIVED", limit)) == []
    d = monitor(timing)
    feed(d, ("INDEX_RECEIVED", 0), ("GET_URLS", 0))
    assert d.overdue(limit) is None
    found = d.overdue(limit + 1)
    assert found is not None and found[0] == "REQ-X-ABORT"
    assert "GET_URLS at t=0 was neither answered nor given up" in found[1]


@pytest.mark.parametrize(("timing", "due"), [(START, INTERVAL), (END, INTERVAL + 12)])
def test_the_next_heartbeat_by_the_interval(timing: Timing, due: int) -> None:
    d = monitor(timing, tol=100)
    feed(d, *CHECK_IN)
    assert d.pending()[0].due == due
    assert feed(d, ("CONNECT", due + 100)) == []  # in time, with the tolerance
    d = monitor(timing, tol=100)
    feed(d, *CHECK_IN)
    found = feed(d, ("CONNECT", due + 101))
    assert [f[0] for f in found] == ["REQ-7-PULL"]
    assert f"the next heartbeat was due by t={due}" in found[0][1]


def test_randomization_and_slack_move_the_due_time_later() -> None:
    d = monitor(randomization_ms=60_000, heartbeat_slack_ms=1_000)
    feed(d, *CHECK_IN)
    assert d.pending()[0].due == INTERVAL + 61_000


def test_the_anchor_follows_heartbeats_not_failovers() -> None:
    d = monitor()
    # A heartbeat at 0 fails on m1 (a failure opens the next-heartbeat deadline,
    # the failover's connect meets it), then completes on m2.
    feed(d, ("CONNECT", 0), ("GET_INDEX", 0), ("SESSION_TIMEOUT", SESSION_LIMIT_MS),
         ("CONNECT", SESSION_LIMIT_MS), *[(n, SESSION_LIMIT_MS + t)
                                          for n, t in CHECK_IN[1:]])
    # Taking the failover's connect as the anchor only moves the due time later.
    assert d.pending()[0].due == SESSION_LIMIT_MS + INTERVAL
    # A push heartbeat on a held connection moves the anchor.
    d = monitor(mode=Mode.PUSH)
    feed(d, ("CONNECT", 0), ("HOLD", 0), ("HEARTBEAT_DUE", INTERVAL),
         ("GET_INDEX", INTERVAL), ("CONNECTION_LOST", INTERVAL + 5),
         ("DISCONNECT", INTERVAL + 5))
    assert [(o.deadline, o.due) for o in d.pending()] == [("next-heartbeat",
                                                            2 * INTERVAL)]


def test_an_excuse_moves_a_deadline_on() -> None:
    d = monitor()
    seen: list[Open] = []

    def excuse(late: Open, now: int) -> int | None:
        seen.append(late)
        return late.due + INTERVAL if len(seen) == 1 else None

    d.excuse = excuse
    feed(d, *CHECK_IN)
    assert d.overdue(INTERVAL + 1) is None  # excused once: due one interval later
    assert d.pending()[0].due == 2 * INTERVAL
    found = d.overdue(2 * INTERVAL + 1)
    assert found is not None and found[0] == "REQ-7-PULL"


def test_a_callers_deadline() -> None:
    d = monitor(tol=5)
    d.expect("failover", "REQ-2-FAILOVER", "SESSION_TIMEOUT", 10, 10, "fail over",
             {"CONNECT"}, broken="{opener} at t={opened}: no connect by t={now}")
    assert feed(d, ("DISCONNECT", 12), ("CONNECT", 14)) == []
    d.expect("failover", "REQ-2-FAILOVER", "SESSION_TIMEOUT", 20, 20, "fail over",
             {"CONNECT"}, broken="{opener} at t={opened}: no connect by t={now}")
    assert feed(d, ("DISCONNECT", 26)) == [
        ("REQ-2-FAILOVER", "SESSION_TIMEOUT at t=20: no connect by t=26")]


def test_a_client_without_heartbeats_leaves_nothing_pending() -> None:
    d = monitor(next_heartbeat=False)
    feed(d, *CHECK_IN)
    assert d.pending() == [] and not d.watching
    assert Event.SENSORS_ACKED.value in d.names


def test_a_view_that_does_not_time_closes_does_not_judge_them() -> None:
    # A HAR puts each DISCONNECT where the next connection begins: an answer that
    # may lead to a close cannot be judged there, the others still are.
    d = Deadlines(START, None, INTERVAL, 0, next_heartbeat=False,
                  unseen=frozenset({"CONNECT", "DISCONNECT"}))
    assert feed(d, ("SENSORS_ACKED", 0), ("DISCONNECT", INTERVAL)) == []
    assert feed(d, ("INDEX_RECEIVED", INTERVAL + 1), ("GET_URLS", INTERVAL + 1)) == []
    found = feed(d, ("LOGS_ACKED", INTERVAL + 2), ("UPLOAD_SENSORS", INTERVAL + 9))
    assert [f[0] for f in found] == ["REQ-6-SENSORS"]


HELD = [*CHECK_IN[:-1], ("HOLD", 12)]


@pytest.mark.parametrize("interp", ["seed", "documented"])
def test_a_held_push_request_ends_by_the_push_heartbeat(interp: str) -> None:
    """REQ-7-PUSH-HEARTBEAT as a deadline: under the documented reading a hold ends
    within PushHeartbeatSeconds (the manager's 204, a push, a lost connection, a
    close); the seed's reading has no push heartbeat to wait for."""
    switches = get(interp).switches
    d = Deadlines(START, Mode.PUSH, INTERVAL, 100, switches=switches)
    assert feed(d, *HELD) == []
    late = d.overdue(12 + INTERVAL + 101)
    if interp == "seed":
        assert late is None and not d.pending()
        return
    assert late is not None and late[0] == "REQ-7-PUSH-HEARTBEAT"
    assert "push heartbeat was due by t=300012" in late[1]
    # Met in time: the hold ends with the manager's 204, then the check-in.
    d = Deadlines(START, Mode.PUSH, INTERVAL, 100, switches=switches)
    assert feed(d, *HELD, ("HEARTBEAT_DUE", 12 + INTERVAL), ("GET_INDEX", 12 + INTERVAL)
                ) == []
    assert all(o.deadline != "push-heartbeat" for o in d.pending())
    # In pull mode a hold opens nothing of it.
    d = Deadlines(START, Mode.PULL, INTERVAL, 100, switches=switches)
    feed(d, *HELD)
    assert all(o.deadline != "push-heartbeat" for o in d.pending())
