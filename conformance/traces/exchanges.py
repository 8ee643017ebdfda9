"""One HTTP exchange, as a server-side observer reads it: the model's action and event.

Two observers see the wire from the servers' side without being a server: a HAR
capture (:mod:`.har`, read offline) and ``sephb monitor`` (a relay in front of real
servers, live). Both turn a request and its answer into the same two observations,
here and only here, from the wire profile's table (:data:`.wire.ROUTES`):

* the request is the route's :class:`~sephb.model.protocol.Action` (with the log ids
  of an upload, when its body was kept);
* a 2xx answer is the route's event -- ``204`` on ``/push`` is the end of a hold
  (``HEARTBEAT_DUE``); ``changed`` on INDEX_RECEIVED compares the request's
  ``X-Sephb-Serial`` with the answer's serial, ``source`` is read from the index or
  URLs answer, and the acknowledged log ids from ``acked`` -- when the body was kept,
  otherwise they are unknown to the checker;
* anything else (no answer, a reset, 3xx-5xx) is :func:`.wire.failure_event`: on a
  manager, a failure of a connection's first request means the session was never
  established;
* but a request the *client* gave up (it closed or reset the connection before the
  answer, which only an observer of the connection knows) is its timer running out:
  :func:`~sephb.model.protocol.failure_of` with ``timed_out`` -- ``SESSION_TIMEOUT``
  for the session's ``GET /index.dat``, so that a session given up before its limit is
  judged (A14), not read as a connect that failed.

Which request a route is, :func:`.wire.route_for` says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sephb.conformance.traces.wire import (
    INDEX_PATH,
    PUSH_PATH,
    URLS_PATH,
    Route,
    failure_event,
)
from sephb.model.protocol import Action, Event, failure_of

__all__ = ["Answer", "answer_of", "json_object", "log_ids"]


@dataclass(frozen=True)
class Answer:
    """What an answer (or its absence) means to the client."""

    event: Event
    changed: bool | None = None
    source: str | None = None
    #: The log ids an acknowledgement names (LOGS_ACKED, when the body was kept).
    ids: list[str] | None = None


def answer_of(route: Route, status: int | None, body: Mapping[str, Any], *,
              request_serial: str | None, first_request: bool,
              gave_up: bool = False) -> Answer:
    """What the answer ``status`` (None: none came) with its decoded JSON ``body``
    (``{}`` when unknown) means, for a request on a connection's first request or
    not; ``gave_up``: no answer came because the client ended the connection."""
    if status is None and gave_up:
        return Answer(failure_of(route.action, timed_out=True))
    if status is None or not 200 <= status < 300:
        return Answer(failure_event(route, first_request=first_request))
    changed = source = None
    if route.path == INDEX_PATH:
        serial = body.get("serial")
        if isinstance(serial, str) and request_serial is not None:
            changed = serial != request_serial
        source = _source(body)
    elif route.path == URLS_PATH:
        source = _source(body)
    event = route.answer
    if route.path == PUSH_PATH and status == 204:
        event = Event.HEARTBEAT_DUE
    acked = body.get("acked") if event is Event.LOGS_ACKED else None
    return Answer(event, changed, source,
                  [_id(i) for i in acked] if isinstance(acked, list) else None)


def json_object(text: str | bytes | None) -> dict[str, Any]:
    """A body's JSON object, or ``{}`` when it is none (not kept, not JSON, not an
    object, nested too deeply): a body the profile does not know is unknown."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def log_ids(route: Route, body: str | bytes | None) -> list[str] | None:
    """The ids of an upload's logs (``{"logs": [{"id": ...}]}``); None for another
    request, or when no body was kept to read them from."""
    if route.action is not Action.UPLOAD_LOGS or not body:
        return None
    logs = json_object(body).get("logs")
    if not isinstance(logs, list):
        return None
    return [_id(log["id"]) for log in logs if isinstance(log, dict) and "id" in log]


def _id(value: Any) -> str:
    """A log id as text: a string as it is, anything else as its JSON (``str`` of
    a deeply nested list would recurse as deep)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return "(an id nested too deeply to show)"


def _source(body: Mapping[str, Any]) -> str | None:
    s = body.get("source")
    return s if s in ("manager", "gup", "none") else None
