"""The fuzzers' budget, one place for all of them (``test_fuzz_*.py``).

``make test`` runs each fuzzer for a few seconds; ``SEPHB_FUZZ=long`` multiplies its
examples by :data:`LONG_FACTOR` for a run of minutes (a benchmark or nightly job)::

    SEPHB_FUZZ=long .venv/bin/python -m pytest -p no:cacheprovider tests/test_fuzz_*.py

Settings objects, not a loaded profile: loading one would change every other test's
settings too.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import HealthCheck, settings

LONG: Final = os.environ.get("SEPHB_FUZZ") == "long"
LONG_FACTOR: Final = 100


def fuzz(examples: int) -> settings:
    """Hypothesis settings for a fuzzer of ``examples`` examples in ``make test``.

    No deadline (a slow example on a busy machine is not a finding) and no example
    database (a fuzzer's failures are reported with their input; none is replayed
    into the next run by surprise)."""
    return settings(max_examples=examples * (LONG_FACTOR if LONG else 1), deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))
