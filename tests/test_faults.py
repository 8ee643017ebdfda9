"""Seeded-fault cores against the reference core, on a virtual clock: no sockets.

For every fault two scripted scenarios run the reference and the fault side by side:
one where they first differ exactly as the fault intends (and agree on every step
before), and one where the fault's rule is not exercised and they agree on every
step. Together they show that each fault breaks its one rule and only that one.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sephb.conformance.cli import build_parser
from sephb.conformance.client import ClientOptions, ReferenceClient, faults
from sephb.conformance.client.core import ClientCore, Effect, Peer, Timer
from sephb.conformance.client.faults import FAULTS, StaleFault, core_class
from sephb.conformance.traces.sylink import Sylink
from sephb.conformance.traces.trace import Recorder
from sephb.model import protocol as P
from sephb.model.errors import ProtocolError, UsageError
from sephb.model.interpretations import INTERPRETATIONS, get

A, E, S = P.Action, P.Event, P.State
PULL, PUSH = P.Mode.PULL, P.Mode.PUSH
MANAGERS = (
    Peer("127.0.0.2", 8014, 1), Peer("127.0.0.3", 8014, 1), Peer("127.0.0.4", 8014, 2)
)
ONE_PRIORITY = (
    Peer("127.0.0.2", 8014, 1), Peer("127.0.0.3", 8014, 1), Peer("127.0.0.4", 8014, 1)
)
GUP_URL = "http://127.0.0.9:2967/content/1/a.zip"
MANAGER_URL = "http://127.0.0.2:8014/content/1/a.zip"
INTERVAL = 300_000
LIMIT = P.SESSION_LIMIT_MS

#: One scripted step: ("expire", now), ("fail", now, timed_out) or
#: (event, now, keyword arguments of ClientCore.handle).
Step = tuple[Any, ...]
#: What a step shows from outside: the effects, the state, the timer.
Obs = tuple[list[Effect], P.State, Timer | None]


def make(cls: type[ClientCore], interp: str = "seed", mode: P.Mode = PULL,
         managers: Sequence[Peer] = MANAGERS, index: tuple[str, int] | None = None,
         ) -> ClientCore:
    c = cls(managers, mode, get(interp), interval_ms=INTERVAL, push_interval_ms=INTERVAL,
            rng=random.Random(7), index=index)
    c.start(0)
    return c


def step(c: ClientCore, s: Step) -> Obs:
    if s[0] == "expire":
        effects = c.expire(s[1])
    elif s[0] == "fail":
        effects = c.fail(s[1], timed_out=s[2])
    else:
        effects = c.handle(s[0], s[1], **(s[2] if len(s) > 2 else {}))
    return effects, c.state, c.timer


def pair(name: str, **cfg: Any) -> tuple[ClientCore, ClientCore]:
    return make(ClientCore, **cfg), make(core_class(name), **cfg)


def diverge(name: str, script: Sequence[Step], **cfg: Any
            ) -> tuple[ClientCore, ClientCore, Obs, Obs]:
    """Run the script on both until they first differ; every earlier step agrees."""
    ref, bad = pair(name, **cfg)
    for s in script:
        a, b = step(ref, s), step(bad, s)
        if a != b:
            return ref, bad, a, b
    raise AssertionError(f"{name}: the fault never differed from the reference")


def agree(name: str, script: Sequence[Step], **cfg: Any) -> None:
    """Run the script on both: every step agrees (the fault is silent)."""
    ref, bad = pair(name, **cfg)
    for i, s in enumerate(script):
        a, b = step(ref, s), step(bad, s)
        # These faults *are* the session timer; they are silent as long as no limit
        # expires, which the script's expire probes check.
        n = 2 if name in ("ignores-session-limit", "gives-up-session-early") \
            and a[1] in P.SESSION_PENDING else 3
        assert a[:n] == b[:n], f"{name}: step {i} {s}: reference {a}, fault {b}"
    assert ref.path == bad.path


# --- script pieces -----------------------------------------------------------------


def index(t: int, serial: str = "s1", content: int = 1, source: str = "manager") -> Step:
    return (E.INDEX_RECEIVED, t, {"serial": serial, "content": content, "source": source})


def urls(t: int, source: str, url: str) -> Step:
    return (E.URLS_RECEIVED, t, {"source": source, "urls": [url]})


#: Connect and get an unchanged index (the client starts with ("s1", 1)).
OPEN: list[Step] = [("expire", 0), (E.CONNECTED, 5), index(9)]
#: Connect and get a changed index for ``source``, then its URLs.
def open_changed(source: str, url: str) -> list[Step]:
    return [("expire", 0), (E.CONNECTED, 5), index(9, "s2", 2, source),
            urls(12, source, url)]


UPLOADS: list[Step] = [(E.LOGS_ACKED, 25), (E.SENSORS_ACKED, 30)]
NEXT_HEARTBEAT: list[Step] = [("expire", INTERVAL - 1), ("expire", INTERVAL)]
UNCHANGED = {"index": ("s1", 1)}


def actions(obs: Obs) -> list[P.Action]:
    return [e.action for e in obs[0]]


# --- the registry ------------------------------------------------------------------


def test_fault_names_are_stable_and_name_known_requirements() -> None:
    assert list(FAULTS) == [
        "ignores-session-limit", "continues-after-timeout", "retries-at-once",
        "lowest-priority-first", "gup-download-on-8014", "manager-download-on-2967",
        "ignores-location-source", "urls-without-change", "sensors-before-logs",
        "skips-sensor-upload", "disconnects-in-push", "stays-connected-in-pull",
        "drops-logs-on-failure", "uploads-logs-twice", "checks-in-late",
        "waits-forever-after-session", "answers-push-late", "gives-up-session-early",
        "keeps-connection-in-pull", "never-fails-over", "no-gup-fallback",
        "gives-up-request-early",
        "adopts-index-before-content",
        "first-heartbeat-late",
        "no-push-heartbeat", "gup-port-ignored", "crashes-on-error", "hangs-on-error",
    ]
    for f in FAULTS.values():
        assert f.requirement in P.REQUIREMENTS and f.text
        assert issubclass(f.core, ClientCore) and f.core is not ClientCore
    assert len({f.core for f in FAULTS.values()}) == len(FAULTS)


def test_core_class() -> None:
    assert core_class(None) is ClientCore
    assert core_class("retries-at-once") is faults.RetriesAtOnce
    with pytest.raises(UsageError, match="unknown fault 'nope'; expected one of: "
                                         "ignores-session-limit, "):
        core_class("nope")


@pytest.mark.parametrize("interp", sorted(INTERPRETATIONS))
@pytest.mark.parametrize("name", list(FAULTS))
def test_every_fault_builds_and_mutations_change_the_table(name: str, interp: str) -> None:
    c = make(core_class(name), interp)
    reference = get(interp).rows()
    if name == "no-gup-fallback" and interp == "seed":
        assert c._table() == reference  # the seed's reading has no fallback to skip
    elif issubclass(type(c), faults.MutatedCore):
        assert c._table() != reference
    else:
        assert c._table() == reference


def test_a_mutation_that_matches_nothing_says_the_model_moved() -> None:
    rows = get("seed").rows()
    with pytest.raises(StaleFault, match="no row IDLE--CONNECTED-->CONNECTING"):
        faults.redirect(S.IDLE, E.CONNECTED, S.CONNECTING, S.IDLE)(rows)
    with pytest.raises(StaleFault):
        faults.bypass(S.IDLE, E.LOGS_ACKED)(rows)  # IDLE is never left on LOGS_ACKED
    with pytest.raises(StaleFault):
        faults.swap((S.PUSH_HELD, E.URLS_RECEIVED), (S.PUSH_HELD, E.URLS_RECEIVED))(rows)


# --- each fault: where it differs, and where it is silent --------------------------


def test_ignores_session_limit() -> None:
    ref, bad, a, b = diverge("ignores-session-limit", [("expire", 0)])
    assert a[:2] == b[:2]  # the same CONNECT, but no session limit runs
    assert a[2] == Timer(LIMIT, E.SESSION_TIMEOUT) and b[2] is None
    assert actions(step(ref, ("expire", LIMIT))) == [A.DISCONNECT]
    assert step(bad, ("expire", LIMIT)) == ([], S.CONNECTING, None)
    # Connected but index.dat never answered: still no limit.
    bad = make(core_class("ignores-session-limit"))
    step(bad, ("expire", 0))
    assert step(bad, (E.CONNECTED, 5)) == ([Effect(A.GET_INDEX, 0, "127.0.0.2", 8014)],
                                           S.FETCHING_INDEX, None)
    # A session that comes up in time: indistinguishable, and rest timers agree.
    agree("ignores-session-limit",
          [("expire", 0), ("expire", LIMIT - 1), (E.CONNECTED, 5),
           ("expire", LIMIT - 1), index(9), *UPLOADS, *NEXT_HEARTBEAT], **UNCHANGED)


def test_continues_after_timeout() -> None:
    script = [("expire", 0), (E.CONNECTED, 5), ("expire", LIMIT)]
    _, bad, a, b = diverge("continues-after-timeout", script)
    assert a == ([Effect(A.DISCONNECT, None)], S.IDLE, Timer(INTERVAL, E.HEARTBEAT_DUE))
    assert b[0] == [Effect(A.UPLOAD_LOGS, 0, "127.0.0.2", 8014)]
    assert b[1] is S.UPLOADING_LOGS
    # ...and it is a coherent client from there: the rest of the check-in follows.
    assert actions(step(bad, (E.LOGS_ACKED, LIMIT + 5))) == [A.UPLOAD_SENSORS]
    assert actions(step(bad, (E.SENSORS_ACKED, LIMIT + 9))) == [A.DISCONNECT]
    # A timeout before any connection has no session to go on with; under the
    # documented reading a timeout with a manager left fails over, as it should.
    agree("continues-after-timeout", [("expire", 0), ("expire", LIMIT), *NEXT_HEARTBEAT])
    agree("continues-after-timeout", [("expire", 0), (E.CONNECTED, 5), ("expire", LIMIT),
                                      (E.CONNECTED, LIMIT + 5)], interp="documented")
    agree("continues-after-timeout", [*OPEN, *UPLOADS, *NEXT_HEARTBEAT], **UNCHANGED)


def test_retries_at_once() -> None:
    script = [("expire", 0), ("fail", 3, False), ("expire", 3)]
    ref, bad, a, b = diverge("retries-at-once", script)
    assert a[:2] == b[:2] == ([Effect(A.DISCONNECT, None)], S.IDLE)
    assert a[2] == Timer(INTERVAL, E.HEARTBEAT_DUE) and b[2] == Timer(3, E.HEARTBEAT_DUE)
    assert step(ref, ("expire", 3)) == ([], S.IDLE, a[2])
    assert actions(step(bad, ("expire", 3))) == [A.CONNECT]
    # The same after the session limit expired waiting for index.dat.
    _, _, a, b = diverge("retries-at-once", [("expire", 0), (E.CONNECTED, 5),
                                             ("expire", LIMIT)])
    assert a[2] == Timer(INTERVAL, E.HEARTBEAT_DUE)
    assert b[2] == Timer(LIMIT, E.HEARTBEAT_DUE)
    # Once a session was established, a failure waits for the interval in both.
    agree("retries-at-once", [*OPEN, ("fail", 20, True), *NEXT_HEARTBEAT], **UNCHANGED)
    agree("retries-at-once", [*OPEN, *UPLOADS, *NEXT_HEARTBEAT], **UNCHANGED)


def test_lowest_priority_first() -> None:
    _, _, a, b = diverge("lowest-priority-first", [("expire", 0)])
    assert a[0] == [Effect(A.CONNECT, 0, "127.0.0.2", 8014)]
    assert b[0] == [Effect(A.CONNECT, 2, "127.0.0.4", 8014)]
    # Documented failover walks the priorities upwards: 2, then the block of 1.
    _, bad, _, b = diverge("lowest-priority-first", [("expire", 0)], interp="documented")
    assert b[0][0].manager == 2
    step(bad, ("fail", 1, False))
    assert bad.manager in (0, 1)
    # One priority level: no lower one to prefer; the reference's choice is kept,
    # random picks included.
    agree("lowest-priority-first", [("expire", 0), ("fail", 1, False), *NEXT_HEARTBEAT],
          managers=ONE_PRIORITY)
    agree("lowest-priority-first",
          # (the documented reading counts the interval from the check-in's end)
          [("expire", 0), ("fail", 1, False), ("fail", 2, False), ("fail", 3, False),
           ("expire", INTERVAL + 2), ("expire", INTERVAL + 3),
           ("fail", INTERVAL + 4, False)],
          interp="documented", managers=ONE_PRIORITY)


def test_gup_download_on_8014() -> None:
    _, _, a, b = diverge("gup-download-on-8014", open_changed("gup", GUP_URL))
    assert a[0] == [Effect(A.DOWNLOAD_GUP, 0, "127.0.0.9", 2967)]
    assert b[0] == [Effect(A.DOWNLOAD_GUP, 0, "127.0.0.9", 8014)]
    agree("gup-download-on-8014",
          [*open_changed("manager", MANAGER_URL), (E.CONTENT_RECEIVED, 20), *UPLOADS])
    # The documented fallback to the manager is a manager download: unaffected.
    agree("gup-download-on-8014",
          [("expire", 0), (E.CONNECTED, 5), index(9, "s2", 2, "manager"),
           urls(12, "manager", MANAGER_URL), ("fail", 15, True)], interp="documented")


def test_manager_download_on_2967() -> None:
    _, _, a, b = diverge("manager-download-on-2967", open_changed("manager", MANAGER_URL))
    assert a[0] == [Effect(A.DOWNLOAD_MANAGER, 0, "127.0.0.2", 8014)]
    assert b[0] == [Effect(A.DOWNLOAD_MANAGER, 0, "127.0.0.2", 2967)]
    agree("manager-download-on-2967",
          [*open_changed("gup", GUP_URL), (E.CONTENT_RECEIVED, 20), *UPLOADS,
           *NEXT_HEARTBEAT])


def test_ignores_location_source() -> None:
    _, bad, a, b = diverge("ignores-location-source", open_changed("gup", GUP_URL))
    assert a[0] == [Effect(A.DOWNLOAD_GUP, 0, "127.0.0.9", 2967)]
    assert b[0] == [Effect(A.DOWNLOAD_MANAGER, 0, "127.0.0.2", 8014)]
    assert actions(step(bad, (E.CONTENT_RECEIVED, 20))) == [A.UPLOAD_LOGS]
    assert bad.index == ("s2", 2)
    agree("ignores-location-source",
          [*open_changed("manager", MANAGER_URL), (E.CONTENT_RECEIVED, 20), *UPLOADS])
    # A policy naming no heartbeat source still skips the download.
    agree("ignores-location-source",
          [("expire", 0), (E.CONNECTED, 5), index(9, "s2", 2, "none"), *UPLOADS])
    agree("ignores-location-source",
          [("expire", 0), (E.CONNECTED, 5), index(9, "s2", 2, "gup"),
           urls(12, "none", GUP_URL), *UPLOADS])


def test_urls_without_change() -> None:
    _, _, a, b = diverge("urls-without-change", OPEN, **UNCHANGED)
    assert actions(a) == [A.UPLOAD_LOGS] and actions(b) == [A.GET_URLS]
    agree("urls-without-change", [*open_changed("gup", GUP_URL), (E.CONTENT_RECEIVED, 20),
                                  *UPLOADS, *NEXT_HEARTBEAT])
    # Unchanged, and the policy names no heartbeat source: nothing to fetch in both.
    agree("urls-without-change", [("expire", 0), (E.CONNECTED, 5),
                                  index(9, source="none"), *UPLOADS], **UNCHANGED)


@pytest.mark.parametrize("mode", [PULL, PUSH])
def test_sensors_before_logs(mode: P.Mode) -> None:
    _, bad, a, b = diverge("sensors-before-logs", OPEN, mode=mode, **UNCHANGED)
    assert actions(a) == [A.UPLOAD_LOGS] and actions(b) == [A.UPLOAD_SENSORS]
    end = A.DISCONNECT if mode is PULL else A.HOLD
    # The fault completes its check-in, logs last, and settles them on their own ack.
    assert step(bad, (E.SENSORS_ACKED, 25))[0] == [
        Effect(A.UPLOAD_LOGS, 0, "127.0.0.2", 8014)]
    last = step(bad, (E.LOGS_ACKED, 30))[0]
    assert actions((last, bad.state, None)) == [end] and last[0].settle_logs
    # The same after a download.
    _, _, a, b = diverge("sensors-before-logs",
                         [*open_changed("gup", GUP_URL), (E.CONTENT_RECEIVED, 20)],
                         mode=mode)
    assert actions(a) == [A.UPLOAD_LOGS] and actions(b) == [A.UPLOAD_SENSORS]
    # Check-ins that end before any upload are unaffected.
    agree("sensors-before-logs", [("expire", 0), (E.CONNECTED, 5), ("expire", LIMIT),
                                  *NEXT_HEARTBEAT], mode=mode)
    agree("sensors-before-logs", [*open_changed("manager", MANAGER_URL),
                                  ("fail", 15, False), *NEXT_HEARTBEAT], mode=mode)


@pytest.mark.parametrize("mode", [PULL, PUSH])
def test_skips_sensor_upload(mode: P.Mode) -> None:
    _, _, a, b = diverge("skips-sensor-upload", [*OPEN, *UPLOADS], mode=mode, **UNCHANGED)
    end = A.DISCONNECT if mode is PULL else A.HOLD
    assert actions(a) == [A.UPLOAD_SENSORS] and actions(b) == [end]
    assert a[0][0].settle_logs and b[0][0].settle_logs  # logs still settle, once
    agree("skips-sensor-upload", [*OPEN, ("fail", 20, False), *NEXT_HEARTBEAT], mode=mode,
          **UNCHANGED)


def test_disconnects_in_push() -> None:
    _, bad, a, b = diverge("disconnects-in-push", [*OPEN, *UPLOADS], mode=PUSH,
                           **UNCHANGED)
    assert actions(a) == [A.HOLD] and a[1] is S.PUSH_HELD
    assert b == ([Effect(A.DISCONNECT, None)], S.IDLE, Timer(INTERVAL, E.HEARTBEAT_DUE))
    assert actions(step(bad, ("expire", INTERVAL))) == [A.CONNECT]
    agree("disconnects-in-push", [*OPEN, *UPLOADS, *NEXT_HEARTBEAT], mode=PULL,
          **UNCHANGED)


@pytest.mark.parametrize("interp", sorted(INTERPRETATIONS))
def test_stays_connected_in_pull(interp: str) -> None:
    _, bad, a, b = diverge("stays-connected-in-pull", [*OPEN, *UPLOADS], interp=interp,
                           **UNCHANGED)
    assert a[:2] == ([Effect(A.DISCONNECT, None)], S.IDLE)
    assert actions(b) == [A.HOLD] and b[1] is S.PUSH_HELD
    assert b[0][0].manager == bad.manager is not None  # held with the session's manager
    assert actions(step(bad, (E.POLICY_PUSHED, 40))) == [A.GET_INDEX]
    agree("stays-connected-in-pull", [*OPEN, *UPLOADS, (E.POLICY_PUSHED, 40), index(45),
                                      *UPLOADS], interp=interp, mode=PUSH, **UNCHANGED)


def test_drops_logs_on_failure() -> None:
    _, _, a, b = diverge("drops-logs-on-failure", [*OPEN, ("fail", 20, False)],
                         **UNCHANGED)
    assert a[0] == [Effect(A.DISCONNECT, None)]
    assert b[0] == [Effect(A.DISCONNECT, None, settle_logs=True)]
    _, _, a, b = diverge("drops-logs-on-failure", [*OPEN, ("expire", 20 + LIMIT)],
                         **UNCHANGED)
    assert b[0] == [Effect(A.DISCONNECT, None, settle_logs=True)]  # a timeout too
    # Acknowledged logs settle in both; failures elsewhere settle nothing in both.
    agree("drops-logs-on-failure", [*OPEN, *UPLOADS, *NEXT_HEARTBEAT], **UNCHANGED)
    agree("drops-logs-on-failure", [*OPEN, (E.LOGS_ACKED, 25), ("fail", 28, False)],
          **UNCHANGED)
    agree("drops-logs-on-failure", [*open_changed("manager", MANAGER_URL),
                                    ("fail", 15, False)])


def test_uploads_logs_twice() -> None:
    _, _, a, b = diverge("uploads-logs-twice", [*OPEN, *UPLOADS], **UNCHANGED)
    assert a[0] == [Effect(A.UPLOAD_SENSORS, 0, "127.0.0.2", 8014, settle_logs=True)]
    assert b[0] == [Effect(A.UPLOAD_SENSORS, 0, "127.0.0.2", 8014)]
    agree("uploads-logs-twice", [*OPEN, ("fail", 20, False), *NEXT_HEARTBEAT], **UNCHANGED)


# --- the model's own trace checker names the fault's rule --------------------------

#: Faults whose wrong move shows in the sequence of actions and events (the others
#: show in addresses, ports, times or log ids, which the checker does not read), and
#: the requirement the checker reports for them. It names the row the client should
#: have taken; for urls-without-change that row is step 5's, while the rule broken is
#: the guard's (REQ-3-LU-POLICY), see faults.py.
CHECKER_SEES: dict[str, tuple[list[Step], dict[str, Any], str]] = {
    "continues-after-timeout": (
        [("expire", 0), (E.CONNECTED, 5), ("expire", LIMIT)], {}, "REQ-2-TIMEOUT-30000"),
    "ignores-location-source": (open_changed("gup", GUP_URL), {}, "REQ-4-PORT-2967"),
    "urls-without-change": (OPEN, UNCHANGED, "REQ-5-LOGS"),
    "sensors-before-logs": (OPEN, UNCHANGED, "REQ-5-LOGS"),
    "skips-sensor-upload": ([*OPEN, (E.LOGS_ACKED, 25)], UNCHANGED, "REQ-6-SENSORS"),
    "disconnects-in-push": ([*OPEN, *UPLOADS], {"mode": PUSH, **UNCHANGED}, "REQ-7-PUSH"),
    "stays-connected-in-pull": ([*OPEN, *UPLOADS], UNCHANGED, "REQ-7-PULL"),
}


def trace(c: ClientCore, script: Sequence[Step]) -> list[tuple[str, int, Any, Any]]:
    """The client's observations, as the adapters record them."""
    out: list[tuple[str, int, Any, Any]] = []
    for s in script:
        before, kw = len(c.path), (s[2] if isinstance(s[0], P.Event) and len(s) > 2
                                   else {})
        changed = ((kw["serial"], kw["content"]) != c.index if "serial" in kw else None)
        effects = step(c, s)[0]
        if len(c.path) > before:
            out.append((c.path[-1].event.value, s[1], changed, kw.get("source")))
        out += [(e.action.value, s[1], None, None) for e in effects]
    return out


@pytest.mark.parametrize("name", list(CHECKER_SEES))
def test_the_trace_checker_reports_the_fault(name: str) -> None:
    from sephb.model import checker
    script, cfg, requirement = CHECKER_SEES[name]
    if name != "urls-without-change":
        assert requirement == FAULTS[name].requirement
    verdicts = []
    for cls in (ClientCore, core_class(name)):
        ch = checker.Checker(cfg.get("interp", "seed"), mode=cfg.get("mode", PULL))
        found = [ch.feed(*obs) for obs in trace(make(cls, **cfg), script)]
        verdicts.append(next((v for v in found if v is not None), None))
    assert verdicts[0] is None, verdicts[0].message
    assert verdicts[1] is not None and verdicts[1].requirement == requirement, verdicts[1]


# --- the deadline faults: where each differs, and where it is silent --------------


def test_checks_in_late() -> None:
    _, _, a, b = diverge("checks-in-late", [*OPEN, *UPLOADS], **UNCHANGED)
    assert a == ([Effect(A.DISCONNECT, None)], S.IDLE, Timer(INTERVAL, E.HEARTBEAT_DUE))
    assert b[2] == Timer(2 * INTERVAL, E.HEARTBEAT_DUE)
    agree("checks-in-late", OPEN, **UNCHANGED)  # within a check-in: no difference


def test_waits_forever_after_session() -> None:
    script = [("expire", 0), (E.CONNECTED, 5), index(9, "s2", 2)]
    _, _, a, b = diverge("waits-forever-after-session", script)
    assert a[:2] == b[:2] and a[1] is S.FETCHING_URLS
    assert a[2] == Timer(9 + LIMIT, E.REQUEST_FAILED) and b[2] is None
    # Under the documented reading the reference waits one interval (A12).
    _, _, a, b = diverge("waits-forever-after-session", script, interp="documented")
    assert a[2] == Timer(9 + INTERVAL, E.REQUEST_FAILED) and b[2] is None
    # The session limit still runs before the session.
    agree("waits-forever-after-session", [("expire", 0), (E.CONNECTED, 5)])


def test_answers_push_late() -> None:
    script = [*OPEN, *UPLOADS, (E.POLICY_PUSHED, 40, {})]
    _, bad, a, b = diverge("answers-push-late", script, mode=PUSH, **UNCHANGED)
    assert actions(a) == [A.GET_INDEX] and b == ([], S.PUSH_HELD,
                                                 Timer(40 + INTERVAL, E.POLICY_PUSHED))
    assert actions(step(bad, ("expire", 40 + INTERVAL))) == [A.GET_INDEX]
    agree("answers-push-late", [*OPEN, *UPLOADS, (E.CONNECTION_LOST, 50)], mode=PUSH,
          **UNCHANGED)


def test_gives_up_session_early() -> None:
    _, _, a, b = diverge("gives-up-session-early", [("expire", 0)])
    assert a[2] == Timer(LIMIT, E.SESSION_TIMEOUT)
    assert b[2] == Timer(10_000, E.SESSION_TIMEOUT)
    agree("gives-up-session-early", [("expire", 0), (E.CONNECTED, 5), index(9),
                                     *UPLOADS], **UNCHANGED)


@pytest.mark.parametrize("interp", sorted(INTERPRETATIONS))
def test_keeps_connection_in_pull(interp: str) -> None:
    _, _, a, b = diverge("keeps-connection-in-pull", [*OPEN, *UPLOADS], interp=interp,
                         **UNCHANGED)
    assert actions(a) == [A.DISCONNECT] and b[0] == [] and a[1:] == b[1:]
    agree("keeps-connection-in-pull", [*OPEN, *UPLOADS], mode=PUSH, interp=interp,
          **UNCHANGED)


def test_never_fails_over() -> None:
    script = [("expire", 0), ("fail", 3, False)]
    _, _, a, b = diverge("never-fails-over", script, interp="documented")
    assert actions(a) == [A.CONNECT] and a[1] is S.CONNECTING
    assert actions(b) == [A.DISCONNECT] and b[1] is S.IDLE
    # Under the seed's reading there is no failover to skip: the reference.
    agree("never-fails-over", [*script, *NEXT_HEARTBEAT])


def test_no_gup_fallback() -> None:
    failed = [*open_changed("gup", GUP_URL), ("fail", 14, False)]
    _, _, a, b = diverge("no-gup-fallback", failed, interp="documented")
    assert actions(a) == [A.DOWNLOAD_MANAGER] and actions(b) == [A.UPLOAD_LOGS]
    agree("no-gup-fallback", failed)  # the seed's reading skips it: the reference


def test_gives_up_request_early() -> None:
    script = [("expire", 0), (E.CONNECTED, 5), index(9, "s2", 2)]
    _, _, a, b = diverge("gives-up-request-early", script)
    assert a[2] == Timer(9 + LIMIT, E.REQUEST_FAILED)
    assert b[2] == Timer(9 + 5_000, E.REQUEST_FAILED)
    agree("gives-up-request-early", [("expire", 0), (E.CONNECTED, 5)])


def test_adopts_index_before_content() -> None:
    """The same moves while the download succeeds; after a failed one the reference
    asks for the URLs again, the fault finds nothing changed."""
    failed = [*open_changed("manager", MANAGER_URL), ("fail", 14, False),
              ("expire", INTERVAL), (E.CONNECTED, INTERVAL + 5)]
    _, _, a, b = diverge("adopts-index-before-content",
                         [*failed, index(INTERVAL + 9, "s2", 2)], **UNCHANGED)
    assert actions(a) == [A.GET_URLS] and actions(b) == [A.UPLOAD_LOGS]
    agree("adopts-index-before-content",
          [*open_changed("manager", MANAGER_URL), (E.CONTENT_RECEIVED, 14), *UPLOADS,
           *NEXT_HEARTBEAT, (E.CONNECTED, INTERVAL + 5), index(INTERVAL + 9, "s2", 2)],
          **UNCHANGED)


def test_first_heartbeat_late() -> None:
    _, bad, a, b = diverge("first-heartbeat-late", [("expire", 0)])
    assert actions(a) == [A.CONNECT] and b == ([], S.IDLE,
                                               Timer(INTERVAL // 2, E.HEARTBEAT_DUE))
    assert actions(step(bad, ("expire", INTERVAL // 2))) == [A.CONNECT]
    # Once its first heartbeat began, it is the reference.
    assert step(bad, (E.CONNECTED, INTERVAL // 2 + 5))[1] is S.FETCHING_INDEX


@pytest.mark.parametrize("interp", sorted(INTERPRETATIONS))
def test_no_push_heartbeat(interp: str) -> None:
    script = [*OPEN, *UPLOADS]
    if interp == "documented":
        _, _, a, b = diverge("no-push-heartbeat", script, mode=PUSH, interp=interp,
                             **UNCHANGED)
        assert actions(a) == actions(b) == [A.HOLD] and a[1] is b[1] is S.PUSH_HELD
        assert a[2] == Timer(30 + INTERVAL, E.HEARTBEAT_DUE) and b[2] is None
    else:  # the seed's reading has no push heartbeat: the reference
        agree("no-push-heartbeat", [*script, (E.POLICY_PUSHED, 40, {})], mode=PUSH,
              interp=interp, **UNCHANGED)
    agree("no-push-heartbeat", [*script, *NEXT_HEARTBEAT], interp=interp, **UNCHANGED)


# --- random event sequences --------------------------------------------------------


#: Faults that stop the client (it raises, or never returns): the suite's guard
#: judges them (tests/test_guard.py), so the property below leaves them out.
STOPS: Final = ("crashes-on-error", "hangs-on-error")


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from([f for f in FAULTS if f not in STOPS]),
    interp=st.sampled_from(sorted(INTERPRETATIONS)),
    mode=st.sampled_from(P.Mode),
    steps=st.lists(
        st.tuples(st.sampled_from(("handle", "expire", "fail")), st.sampled_from(E),
                  st.integers(0, 400_000), st.sampled_from(P.Source), st.booleans()),
        max_size=40,
    ),
)
def test_faults_only_ever_raise_protocol_errors_and_stay_coherent(
    name: str, interp: str, mode: P.Mode,
    steps: list[tuple[str, P.Event, int, P.Source, bool]],
) -> None:
    c = make(core_class(name), interp, mode)
    rows = set(c._table())
    now = 0
    for kind, event, dt, source, flag in steps:
        now += dt
        try:
            if kind == "expire":
                effects = c.expire(now)
            elif kind == "fail":
                effects = c.fail(now, timed_out=flag)
            else:
                effects = c.handle(event, now, serial="s" if flag else None,
                                   content=now % 3, source=source.value,
                                   urls=[GUP_URL] if flag else [])
        except ProtocolError:
            continue
        # Whatever it does, it does as a client of its own (mutated) table would: the
        # adapters can drive it.
        if effects:
            assert c.path[-1] in rows
            assert [(e.action, e.manager) for e in effects] == [
                (P.ENTRY[c.state], c.manager)]
        assert (c.manager is None) is (c.state is S.IDLE)
        assert c.timer is None or c.accepts(c.timer.event)


# --- the adapters ------------------------------------------------------------------


def test_the_client_builds_its_core_from_the_fault_option() -> None:
    sy = Sylink.build([["127.0.0.2"]])
    with tempfile.TemporaryDirectory() as tmp:
        for fault in (None, "uploads-logs-twice"):
            opts = ClientOptions(sylink=sy, state_dir=Path(tmp), interpretation=get("seed"),
                                 fsync=False, fault=fault)
            client = ReferenceClient(opts, Recorder(keep=False))
            assert type(client.core) is core_class(fault)


def test_cli_client_takes_a_fault_name() -> None:
    base = ["client", "--sylink", "s.xml", "--state-dir", "d"]
    assert build_parser().parse_args(base).fault is None
    assert build_parser().parse_args([*base, "--fault", "retries-at-once"]).fault == (
        "retries-at-once")
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*base, "--fault", "nope"])
    assert exc.value.code == 2


# --- faults only some sites show, and faults that stop the client -----------------


def test_gup_port_ignored_differs_only_where_the_gup_is_not_on_2967() -> None:
    for port, differs in ((2967, False), (2968, True)):
        url = f"http://127.0.10.9:{port}/content/1/defs.zip"
        targets = []
        for cls in (ClientCore, core_class("gup-port-ignored")):
            c = make(cls)
            c.urls = [url]
            targets.append(c._target(P.Action.DOWNLOAD_GUP))
        assert targets[0] == ("127.0.10.9", port)
        assert (targets[1] != targets[0]) is differs, targets


@pytest.mark.parametrize("name", STOPS)
def test_faults_that_stop_differ_only_on_an_error_after_the_session(name: str) -> None:
    """Silent on a session failure (a timeout, a refused first request); on an error
    answer once the session is up, crashes-on-error raises (hangs-on-error loops;
    tests/test_guard.py interrupts it)."""
    c = make(core_class(name))
    c.start(0)
    c.handle(E.HEARTBEAT_DUE, 0)
    assert c.state in (S.CONNECTING,)
    c.fail(1, timed_out=False)  # a refused connect: the session never began
    assert c.state in (S.IDLE,)
    if name == "crashes-on-error":
        c.handle(E.HEARTBEAT_DUE, 300_000)
        c.handle(E.CONNECTED, 300_000)
        c.handle(E.INDEX_RECEIVED, 300_000, serial="s", content=1, source="manager")
        with pytest.raises(RuntimeError, match="unhandled error answer"):
            c.fail(300_001, timed_out=False)
