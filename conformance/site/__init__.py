"""Site: simulated SEP managers and a Group Update Provider over real HTTP on loopback.

==================  ================================================================
``config``          the fleet file (managers.toml): servers, policies, control API
``_server``         one simulated manager or GUP: routes, faults, policies, records
``_connections``    aiohttp's low-level connections: counted, numbered, timed
``_control``        the JSON control API of a running fleet
``_fleet``          a fleet (servers + shared site + control API), the site's
                    database of accepted logs, ``sephb manager``
==================  ================================================================

May import: :mod:`sephb.model` and :mod:`sephb.conformance.traces`. It never imports
the client or the suite: the suite drives a site, never the reverse. Exports the
names below; ``config`` is public too.
"""

from sephb.conformance.site._control import ControlApi
from sephb.conformance.site._fleet import (
    TRACE_WRITER,
    Fleet,
    Site,
    StoredLog,
    run_manager_process,
)
from sephb.conformance.site._server import (
    GARBAGE,
    SERVED,
    Endpoint,
    Fault,
    SimServer,
    SiteError,
)

__all__ = [
    "GARBAGE",
    "SERVED",
    "TRACE_WRITER",
    "ControlApi",
    "Endpoint",
    "Fault",
    "Fleet",
    "SimServer",
    "Site",
    "SiteError",
    "StoredLog",
    "run_manager_process",
]
