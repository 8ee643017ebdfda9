"""Shrunk programs in the words of the domain, and the replay file of a failure.

A step such as ``state.fault(m=0, fault=Fault.STALL, path='/index.dat')`` reads
``m1 stalls GET /index.dat`` in every report; :func:`replay_source` writes the
pytest file that runs the same program against the same client again.
"""

from __future__ import annotations

from typing import Any

from sephb.conformance.suite._machine import INTERVAL_MS
from sephb.conformance.suite.world import DEFAULT_SITE, Fault, Site
from sephb.conformance.traces import wire
from sephb.model.protocol import (
    Mode,
    Source,
)

_FAULT_WORDS = {
    Fault.UP: "answers normally",
    Fault.REFUSE: "refuses connections",
    Fault.STALL: "stalls {req}",
    Fault.RESET: "resets the connection on {req}",
    Fault.ERROR: "answers {req} with an HTTP error",
    Fault.GARBAGE: "answers {req} with bytes that are not HTTP",
    Fault.BLACKHOLE: "lets connects hang (they never complete)",
}


def _request(path: object) -> str:
    if not isinstance(path, str):
        return "every request"
    route = next((r for r in wire.ROUTES if r.path == path
                  or (r.path.endswith("/") and path.startswith(r.path))), None)
    return f"{route.method} {path}" if route else path


def _value(node: Any) -> Any:
    """A step's argument: a literal, an enum member named like ``Fault.STALL``, or a
    site written ``Site(managers=..., gup=..., policies=...)``."""
    import ast

    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        enum_type = {"Fault": Fault, "Mode": Mode, "Source": Source}.get(node.value.id)
        if enum_type is not None:
            return enum_type[node.attr]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == "Site":
        try:
            return Site(**{k.arg: ast.literal_eval(k.value) for k in node.keywords
                           if k.arg})
        except TypeError as exc:
            raise ValueError(str(exc)) from None
    return ast.literal_eval(node)


def parse_step(step: str) -> tuple[str, dict[str, Any]]:
    """A program's step (``state.rule(k=v, ...)``, as :func:`._machine.step_text`
    writes it) as its rule and arguments; ValueError for anything else. Nothing is
    evaluated: the arguments are literals, enum members and sites (:func:`_value`)."""
    import ast

    try:
        call = ast.parse(step.strip(), mode="eval").body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "state" and not call.args
                and all(k.arg for k in call.keywords)):
            raise ValueError("expected state.<rule>(<name>=<value>, ...)")
        return call.func.attr, {str(k.arg): _value(k.value) for k in call.keywords}
    except (SyntaxError, ValueError, KeyError) as exc:
        raise ValueError(f"not a step of a program: {step!r} ({exc})") from None


def site_of(steps: list[str]) -> Site:
    """The site a program runs against: its ``start`` step's (the default site for a
    directed case, whose start names none)."""
    import ast

    for step in steps:
        if step.startswith("state.start("):
            try:
                call = ast.parse(step.strip(), mode="eval").body
                for k in getattr(call, "keywords", []):
                    if k.arg == "site":
                        site = _value(k.value)
                        if isinstance(site, Site):
                            return site
            except (SyntaxError, ValueError, KeyError):
                break
    return DEFAULT_SITE


def narrate_program(steps: list[str], interpretation: str | None = None) -> list[str]:
    """Every step of a program in domain words, managers named within its site."""
    site = site_of(steps)
    return [narrate(step, interpretation, site) for step in steps]


def narrate(step: str, interpretation: str | None = None,
            site: Site = DEFAULT_SITE) -> str:
    """One step of a shrunk program (``state.fault(m=0, fault=Fault.STALL,
    path='/index.dat')``) in the words of the domain (``m1 stalls GET /index.dat``);
    a step it does not know comes back as it is. ``site``: the program's, whose
    managers the step's ``m`` counts round (as the state machine does)."""
    import ast

    try:
        call = ast.parse(step.strip(), mode="eval").body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            return step
        kw = {k.arg: _value(k.value) for k in call.keywords if k.arg}
    except (SyntaxError, ValueError, KeyError):
        return step
    rule = call.func.attr
    if rule == "start" and isinstance(kw.get("site"), Site):
        site = kw["site"]
    m = kw.get("m")
    manager = f"m{m % len(site.managers) + 1}" if isinstance(m, int) else "a manager"
    if rule == "start":
        mode = kw.get("mode")
        return (f"the client starts in {mode.value if isinstance(mode, Mode) else '?'} "
                f"mode (site: {site.words()})")
    if rule == "fault" and isinstance(kw.get("fault"), Fault):
        return f"{manager} " + _FAULT_WORDS[kw["fault"]].format(
            req=_request(kw.get("path")))
    if rule == "gup":
        if kw.get("up") or not isinstance(kw.get("fault"), Fault):
            return "the GUP answers normally"
        return "the GUP " + _FAULT_WORDS[kw["fault"]].format(req="every request")
    if rule == "wait":
        dt = kw.get("dt")
        if dt is None:
            return "time passes until the client's next timer (or one interval)"
        return f"{dt / 1000:,g} s of model time pass"
    if rule == "goal":
        names = _row_names(interpretation)
        pick = kw.get("pick")
        target = names[pick] if isinstance(pick, int) and 0 <= pick < len(names) \
            else f"row {pick}"
        return (f"the environment sets up the cause of {target}, then "
                f"{INTERVAL_MS // 1000} s pass")
    simple = {
        "heal": "every manager answers normally again",
        "publish": "new content is published (a new index.dat serial)",
        "policy": "the LiveUpdate policy of location {location} takes content from "
                  "{source}",
        "flip": "the location's LiveUpdate source becomes {source} between the index "
                "and the URLs",
        "move": "the client moves to location {location}",
        "logs": "the client gets {count} new log entries",
        "push": "the manager pushes a policy change on the held connection",
        "drop": "{manager} drops its open connections",
        "restart": "the client is killed and started again on its state directory",
        "conforms": "the suite judges the records so far",
        "teardown": "the case ends: open deadlines are waited for",
    }
    if rule not in simple:
        return step
    words = {k: (v.value if isinstance(v, Source | Mode) else v) for k, v in kw.items()}
    return simple[rule].format(manager=manager, **words)


def _row_names(interpretation: str | None) -> list[str]:
    from sephb.model.interpretations import INTERPRETATIONS

    interp = INTERPRETATIONS.get(interpretation or "")
    return [r.name for r in interp.rows()] if interp else []


def program_length(steps: list[str]) -> int:
    """Steps of a shrunk program that are environment actions (invariant checks and
    the teardown are the suite's own)."""
    return sum(1 for s in steps
               if not s.startswith(("state.conforms(", "state.teardown(")))


_REPLAY = '''"""Counterexample found by `sephb conform` ({requirement}).

{message}

Replays the shrunk run against the same client; the test fails while the client
still breaks {requirement}. Run it with pytest.
"""

from sephb.conformance.suite import machine_for
from sephb.conformance.suite.world import Fault, Site
from sephb.model.protocol import Mode, Source

__all__ = ["Fault", "Mode", "Site", "Source"]  # the steps below may name any of them


def test_counterexample() -> None:
    HeartbeatSuite = machine_for({interpretation!r}, {client!r}{cmd})
    state = HeartbeatSuite()
{body}
'''


def replay_source(interpretation: str, client: str, steps: list[str], requirement: str,
                  message: str, client_cmd: str | None = None) -> str:
    """A self-contained pytest file that replays a shrunk program; it fails while the
    client still breaks the requirement."""
    body = "\n".join(f"    {line}" for line in steps) or "    pass"
    return _REPLAY.format(
        requirement=requirement, message=message.replace('"""', "'''"),
        interpretation=interpretation, client=client, body=body,
        cmd=f", client_cmd={client_cmd!r}" if client_cmd else "")


