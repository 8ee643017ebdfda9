"""What an upstream server's answer breaks of the wire profile: server findings.

The monitor judges clients; the servers behind it are not under test, but an answer
that breaks the wire profile (:mod:`sephb.conformance.traces.wire`) is worth saying
apart from the clients' findings: a client that then fails is not to blame. A failed
answer (no answer, a reset, 4xx/5xx) is not a finding -- servers may fail, and how
clients take a failure is what the model judges. What is:

* a success status the profile does not give for the request (``204`` is an answer
  only to a held ``GET /push``: the push heartbeat's end);
* a JSON answer that does not decode as the route's answer type (``route.reply``):
  not JSON, a missing or mistyped field -- msgspec's message says which;
* an answer to a request the profile does not have, that still succeeded.
"""

from __future__ import annotations

import msgspec

from sephb.conformance.monitor._relay import BODY_CAP, Exchange
from sephb.conformance.traces.wire import PUSH_PATH, Route

__all__ = ["server_finding"]


def server_finding(route: Route | None, ex: Exchange) -> str | None:
    """What ``ex``'s answer breaks of the wire profile (see the module), or None."""
    status = ex.status
    if ex.error is not None or status is None or not 200 <= status < 300:
        return None
    what = f"{ex.method} {ex.target} answered {status}"
    if route is None:
        return f"{what}: the wire profile has no such request"
    if status == 204:
        return None if route.path == PUSH_PATH else \
            f"{what}: 204 (no body) answers only a held GET {PUSH_PATH}"
    if status != 200:
        return f"{what}: the wire profile answers 200"
    if route.reply is None or len(ex.response_body) >= BODY_CAP:
        return None  # content bytes, or a body the relay did not keep whole
    try:
        msgspec.json.decode(ex.response_body, type=route.reply)
    except msgspec.DecodeError as exc:
        return f"{what} with a body that is not a {route.reply.__name__}: {exc}"
    except RecursionError:
        return f"{what} with a body that is not a {route.reply.__name__}: JSON nested " \
               f"too deeply"
    return None
