"""The formal model of the SEP client heartbeat.

Start at :mod:`sephb.model.protocol`: the one transition table every other part of
``sephb`` is generated from.
"""

from .errors import ConfigError, ProtocolError, SephbError, UsageError
from .interpretations import AMBIGUITIES, INTERPRETATIONS, Interpretation
from .protocol import (
    ENTRY,
    GUARDS,
    PARAMETERS,
    REQUIREMENTS,
    REST_STATES,
    TABLE,
    Action,
    Context,
    Event,
    Guard,
    Mode,
    Row,
    Source,
    State,
)

__all__ = [
    "AMBIGUITIES",
    "ENTRY",
    "GUARDS",
    "INTERPRETATIONS",
    "PARAMETERS",
    "REQUIREMENTS",
    "REST_STATES",
    "TABLE",
    "Action",
    "ConfigError",
    "Context",
    "Event",
    "Guard",
    "Interpretation",
    "Mode",
    "ProtocolError",
    "Row",
    "SephbError",
    "Source",
    "State",
    "UsageError",
]
