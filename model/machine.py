"""The executable model: a ``transitions`` Machine generated from the table.

The machine is the oracle the conformance suite compares clients with. It is built
with ``auto_transitions=False`` (no ``to_<state>()`` edges polluting the graph) and
never ignores invalid triggers: a trigger the current state does not accept raises
:class:`~sephb.model.errors.ProtocolError` naming state and event, and so does an
event whose guards all fail (``transitions`` itself would return ``False``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from transitions import Machine, MachineError

from .errors import ProtocolError
from .interpretations import Interpretation, get
from .protocol import GUARDS, INITIAL, Context, Event, Guard, Row, State


class HeartbeatModel:
    """The model object the machine drives: current state plus guard context.

    Each guard is exposed as a method named after it, so that the machine (and its
    diagrams) show guard names, not lambdas.
    """

    state: str

    def __init__(self, ctx: Context | None = None) -> None:
        self.ctx = ctx or Context()
        #: The rows taken so far, in order: the path of this run.
        self.path: list[Row] = []
        for guard in Guard:
            setattr(self, guard.value, _guard_method(guard, self))

    def fire(self, event: Event, **ctx: Any) -> State:
        """Apply ``event`` with context overrides; return the new state."""
        if ctx:
            self.ctx = replace(self.ctx, **ctx)
        source = self.state
        try:
            moved = getattr(self, event.value)()
        except (MachineError, AttributeError):
            raise ProtocolError(source, event.value) from None
        if not moved:
            raise ProtocolError(source, event.value, f"no guard holds for {self.ctx}")
        return State(self.state)


def _guard_method(guard: Guard, model: HeartbeatModel) -> Any:
    def check() -> bool:
        return GUARDS[guard].holds(guard, model.ctx)

    check.__name__ = guard.value
    return check


def build(
    interpretation: Interpretation | str = "seed", ctx: Context | None = None
) -> HeartbeatModel:
    """A fresh model in the initial state, driven by a machine made from the table."""
    interp = get(interpretation) if isinstance(interpretation, str) else interpretation
    model = HeartbeatModel(ctx)
    machine = Machine(
        model=model,
        states=[s.value for s in State],
        initial=INITIAL.value,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=False,
    )
    for row in interp.rows():
        machine.add_transition(
            trigger=row.event.value,
            source=row.source.value,
            dest=row.dest.value,
            conditions=[row.guard.value] if row.guard else None,
            after=_recorder(model, row),
        )
    model.machine = machine  # type: ignore[attr-defined]
    return model


def _recorder(model: HeartbeatModel, row: Row) -> Any:
    def record() -> None:
        model.path.append(row)

    return record
