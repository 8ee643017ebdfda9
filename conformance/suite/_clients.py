"""Which environment a named client gets, and the state machine that replays a case.

The one place that knows every adapter: the reference client and the seeded faults
in process, any command over the wire (:mod:`._remote`). Nothing below it imports
it, so the state machine and the runner depend on no adapter.
"""

from __future__ import annotations

from hypothesis.stateful import RuleBasedStateMachine

from sephb.conformance.client.faults import core_class
from sephb.conformance.suite._machine import (
    Coverage,
    Environment,
    make_machine,
    reference_factory,
)
from sephb.conformance.suite._remote import wire_environment
from sephb.model.interpretations import get


def environment_for(client: str = "reference", client_cmd: str | None = None
                    ) -> Environment:
    """The environment of a named client: ``reference``, a seeded fault's name (in
    process), or any command over the wire."""
    if client_cmd is not None:
        return wire_environment(client_cmd)
    if client == "reference":
        return Environment(reference_factory())
    return Environment(reference_factory(core_class(client)))


def machine_for(interpretation: str, client: str = "reference",
                client_cmd: str | None = None) -> type[RuleBasedStateMachine]:
    """The suite's state machine for one client, to replay a shrunk program."""
    interp = get(interpretation)
    coverage = Coverage({r.name: 0 for r in interp.rows()})
    return make_machine(interp, environment_for(client, client_cmd), coverage)
