"""The wire profile as data: routes, bodies, content and serials."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from sephb.conformance.traces import wire
from sephb.conformance.traces.wire import Role
from sephb.model.protocol import ENTRY, PARAMETERS, Action, Event, Source, State


def test_ports_and_limit_come_from_the_model() -> None:
    assert wire.MANAGER_PORT == PARAMETERS["MANAGER_CONTENT_PORT"].value == 8014
    assert wire.GUP_PORT == PARAMETERS["GUP_PORT"].value == 2967
    assert wire.SESSION_LIMIT_MS == 30_000


def test_every_request_action_has_exactly_one_route_per_role() -> None:
    requests = set(ENTRY.values()) - {Action.CONNECT, Action.DISCONNECT}
    assert {r.action for r in wire.ROUTES} == requests
    assert len({(r.role, r.action) for r in wire.ROUTES}) == len(wire.ROUTES)
    # The GUP serves content only; everything else goes to the manager.
    assert [r.action for r in wire.ROUTES if r.role is Role.GUP] == [Action.DOWNLOAD_GUP]


def test_each_route_answers_with_an_event_the_model_allows_after_its_action() -> None:
    from sephb.model.protocol import TABLE

    state_of = {a: s for s, a in ENTRY.items()}
    for r in wire.ROUTES:
        state = state_of[r.action]
        allowed = {row.event for row in TABLE if row.source is state}
        assert r.answer in allowed, r
        assert r.failure in allowed, r
        assert r.step == {State.FETCHING_INDEX: 3, State.FETCHING_URLS: 4,
                          State.DOWNLOADING_MANAGER: 4, State.DOWNLOADING_GUP: 4,
                          State.UPLOADING_LOGS: 5, State.UPLOADING_SENSORS: 6,
                          State.PUSH_HELD: 7}[state]


@pytest.mark.parametrize(("role", "method", "path", "action"), [
    (Role.MANAGER, "GET", "/index.dat", Action.GET_INDEX),
    (Role.MANAGER, "GET", "/urls", Action.GET_URLS),
    (Role.MANAGER, "GET", "/content/3/avdefs.zip", Action.DOWNLOAD_MANAGER),
    (Role.GUP, "GET", "/content/3/avdefs.zip", Action.DOWNLOAD_GUP),
    (Role.MANAGER, "POST", "/logs", Action.UPLOAD_LOGS),
    (Role.MANAGER, "POST", "/sensors", Action.UPLOAD_SENSORS),
    (Role.MANAGER, "GET", "/push", Action.HOLD),
    (Role.MANAGER, "POST", "/index.dat", None),
    (Role.MANAGER, "GET", "/content/", None),
    (Role.MANAGER, "GET", "/index.dat/x", None),
    (Role.GUP, "GET", "/index.dat", None),
    (Role.GUP, "POST", "/logs", None),
])
def test_route_for(role: Role, method: str, path: str, action: Action | None) -> None:
    route = wire.route_for(role, method, path)
    assert (route.action if route else None) is action


def test_failure_events() -> None:
    index = wire.route_for(Role.MANAGER, "GET", "/index.dat")
    urls = wire.route_for(Role.MANAGER, "GET", "/urls")
    gup = wire.route_for(Role.GUP, "GET", "/content/1/a")
    push = wire.route_for(Role.MANAGER, "GET", "/push")
    assert wire.failure_event(index, first_request=False) is Event.CONNECT_FAILED
    assert wire.failure_event(urls, first_request=False) is Event.REQUEST_FAILED
    assert wire.failure_event(urls, first_request=True) is Event.CONNECT_FAILED
    assert wire.failure_event(gup, first_request=True) is Event.DOWNLOAD_FAILED
    assert wire.failure_event(push, first_request=False) is Event.CONNECTION_LOST
    assert wire.failure_event(None, first_request=True) is Event.CONNECT_FAILED
    assert wire.failure_event(None, first_request=False) is Event.REQUEST_FAILED


def test_content_paths_and_bytes() -> None:
    assert wire.content_path(7, "avdefs.zip") == "/content/7/avdefs.zip"
    assert wire.content_url("127.0.0.4", 2967, 7, "a.zip") == (
        "http://127.0.0.4:2967/content/7/a.zip")
    assert wire.parse_content_path("/content/7/avdefs.zip") == (7, "avdefs.zip")
    for bad in ("/content/07/a", "/content/x/a", "/content/1/../a", "/content/1/",
                "/content/1/a/b", "/urls"):
        assert wire.parse_content_path(bad) is None, bad
    data = wire.content_bytes(3, "a.zip", 100_001)
    assert len(data) == 100_001
    assert data != wire.content_bytes(4, "a.zip", 100_001)
    assert data == b"".join(wire.content_chunks(3, "a.zip", 100_001, chunk=1000))
    assert all(len(c) <= 992 for c in wire.content_chunks(3, "a.zip", 5000, chunk=1000))
    assert wire.content_bytes(3, "a.zip", 0) == b""


def test_serials() -> None:
    group, when = wire.parse_serial("A3AF-11/26/2026 23:50:54 284")
    assert group == "A3AF"
    assert when == datetime(2026, 11, 26, 23, 50, 54, 284_000, tzinfo=UTC)
    assert wire.format_serial(group, when) == "A3AF-11/26/2026 23:50:54 284"
    later = datetime(2027, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC)
    assert wire.next_serial("A3AF-11/26/2026 23:50:54 284", later) == (
        "A3AF-01/02/2027 03:04:05 006")
    # A clock behind the last change still yields a later serial.
    earlier = datetime(2020, 1, 1, tzinfo=UTC)
    assert wire.next_serial("A3AF-11/26/2026 23:50:54 999", earlier) == (
        "A3AF-11/26/2026 23:50:55 000")
    with pytest.raises(ValueError, match="is not like 'A3AF-11/26/2026"):
        wire.parse_serial("A3AF-2026-11-26")


def test_bodies_encode_as_the_profile_says() -> None:
    enc = msgspec.json.encode
    assert enc(wire.IndexAnswer("S", 3)) == b'{"serial":"S","content":3,"source":"manager"}'
    assert enc(wire.UrlsAnswer(Source.GUP, ["http://x/content/1/a"])) == (
        b'{"source":"gup","urls":["http://x/content/1/a"]}')
    assert enc(wire.LogsAck(["a"])) == b'{"acked":["a"]}'
    assert enc(wire.SensorsAck(True)) == b'{"acked":true}'
    assert enc(wire.PushAnswer("policy_changed", "S")) == (
        b'{"event":"policy_changed","serial":"S"}')
    up = msgspec.json.decode(b'{"logs":[{"id":"1","data":"x"}]}', type=wire.LogsUpload)
    assert up.logs == [wire.LogEntry("1", "x")]
    with pytest.raises(msgspec.ValidationError, match=r"\$\.logs\[0\]\.id"):
        msgspec.json.decode(b'{"logs":[{"id":1,"data":"x"}]}', type=wire.LogsUpload)
    with pytest.raises(msgspec.ValidationError, match="learned_apps"):
        msgspec.json.decode(b'{"lan_sensor":[]}', type=wire.SensorsUpload)
    with pytest.raises(msgspec.ValidationError, match="Invalid enum value 'cdn'"):
        msgspec.json.decode(b'{"source":"cdn","urls":[]}', type=wire.UrlsAnswer)
