"""Client: the reference SEP heartbeat client, and its seeded-fault variants.

==============  ====================================================================
``core``        the pure core: events and ``now`` in, effects out (no I/O)
``store``       the durable state directory: index copy, log queue, client id
``faults``      seeded faults: cores that deviate from the model in one named way
``_http``       a minimal HTTP/1.1 client connection (h11) for the process
``_runner``     the process: sylink.xml, timers, HTTP, the state directory
==============  ====================================================================

May import: :mod:`sephb.model` and :mod:`sephb.conformance.traces` (the wire profile,
sylink.xml, the trace writer, the clock). Nothing here knows the simulated site or
the suite. Exports: :class:`ClientOptions`, :class:`ReferenceClient` (one client in
this event loop) and :func:`run_client` (``sephb client``), and the public modules
above.
"""

from sephb.conformance.client._runner import ClientOptions, ReferenceClient, run_client

__all__ = ["ClientOptions", "ReferenceClient", "run_client"]
