"""Traces: what the protocol leaves on the wire and on disk, and how it is judged.

The bottom room of :mod:`sephb.conformance`. It holds the formats every other room
speaks and the judge that reads them offline:

==============  ====================================================================
``wire``        the wire profile: routes, headers, JSON bodies (docs/wire-profile.md)
``sylink``      sylink.xml, read and written (the client's configuration)
``trace``       the NDJSON trace format, its writer and reader (docs/trace-format.md)
``har``         HAR archives in and out
``clock``       model time vs wall time, and the jitter tolerance of a time scale
``files``       atomic file writes (sylink.xml, the client's state directory)
``lines``       the lines a running client or manager says about what it does
``properties``  the oracle's data and deadline rules over records -- one judge for
                the suite's live records and for recorded traces
``validate``    offline validation of recorded traces at fleet scale
==============  ====================================================================

May import: :mod:`sephb.model` only. Exports: the modules above (import them by
name, ``from sephb.conformance.traces import wire``); nothing is loaded until asked
for, so that a client process pays only for the formats it uses.
"""
