"""Monitor: live traffic between any client and any manager, judged as it happens.

==============  ====================================================================
``monitor``     ``sephb monitor``: a relay per upstream server, the records they
                observe, the live judgement and what is said about it
``_relay``      a transparent TCP relay that reads HTTP/1.1 exchanges off the bytes
==============  ====================================================================

May import: :mod:`sephb.model` and :mod:`~sephb.conformance.traces` (the wire profile,
the exchange reading shared with HAR captures, the trace writer, and the engine of
``sephb validate`` for the live judgement). Only the command line imports it.
Exports :mod:`.monitor`'s names.
"""
