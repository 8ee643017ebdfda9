"""Suite: the conformance suite -- Hypothesis stateful tests of any client against the
model, in process or over the wire, and the reports of a run.

==================  ================================================================
``world``           the virtual site of an in-process run (managers, GUP, faults)
``inproc``          the in-process adapter interface (docs/adapters.md)
``_machine``        the state machine: environment rules, oracle invariant, coverage
``oracle``          one client's server-side records judged as they arrive
``_guard``          the client under test, guarded: whatever it does, a verdict
``_run``            a run: random cases, directed top-ups, deadline probes, result
``_narrate``        shrunk programs in domain words, and replay files
``_remote``         the wire adapter: a real site and a client process
``_wire_world``     its world: the world interface over a real fleet
``_process``        the client under test as a process, through its command line
``_wire_run``       a wire run: calibrate, run jobs, merge, shrink, judge
``_jobs``           jobs N at a time, merged in a fixed order; shrinking, replays
``_timing``         the calibrated time scale and the jitter monitor
``_clients``        which environment a named client or command gets
``results``         the result model: five verdicts, ``result.json``
``report``          the reports of one result: what they show, as one view
``_html``           the HTML page, from ``templates/index.html`` (+ ``report.css``)
``_markdown``       ``report.md``, from ``templates/report.md``
``_junit``          ``junit.xml``
``_facts``          the facts and figures every report states alike
``_seqdiagram``     sequence diagrams of a failure's records
==================  ================================================================

May import: :mod:`sephb.model`, :mod:`sephb.diagrams`, and the rooms below it --
:mod:`~sephb.conformance.traces`, :mod:`~sephb.conformance.client` (seeded faults
in process), :mod:`~sephb.conformance.site` (the wire adapter's servers). Only the
command line and the pytest plugin import it. Exports the names below.
"""

from sephb.conformance.suite._clients import environment_for, machine_for
from sephb.conformance.suite._jobs import default_jobs
from sephb.conformance.suite._machine import (
    FIXED_SEED,
    GUP,
    INTERVAL_MS,
    PROFILES,
    PROPERTY_REQUIREMENTS,
    SITE,
    SIZE_REQUIREMENTS,
    SPIN_LIMIT,
    TIME_STEPS,
    ClientFactory,
    ClientGone,
    Coverage,
    Environment,
    Violation,
    make_machine,
    reference_factory,
    row_requirements,
)
from sephb.conformance.suite._narrate import (
    narrate,
    narrate_program,
    program_length,
    replay_source,
    site_of,
)
from sephb.conformance.suite._remote import wire_environment
from sephb.conformance.suite._run import PROBES, Probe, requirements_of, run
from sephb.conformance.suite._timing import calibrate
from sephb.conformance.suite._wire_run import run_wire
from sephb.conformance.suite._wire_world import (
    DEFAULT_TIME_SCALE,
    START_ALLOWANCE_S,
    STARTUP_S,
)

__all__ = [
    "DEFAULT_TIME_SCALE",
    "FIXED_SEED",
    "GUP",
    "INTERVAL_MS",
    "PROBES",
    "PROFILES",
    "PROPERTY_REQUIREMENTS",
    "SITE",
    "SIZE_REQUIREMENTS",
    "SPIN_LIMIT",
    "STARTUP_S",
    "START_ALLOWANCE_S",
    "TIME_STEPS",
    "ClientFactory",
    "ClientGone",
    "Coverage",
    "Environment",
    "Probe",
    "Violation",
    "calibrate",
    "default_jobs",
    "environment_for",
    "machine_for",
    "make_machine",
    "narrate",
    "narrate_program",
    "program_length",
    "reference_factory",
    "replay_source",
    "requirements_of",
    "row_requirements",
    "run",
    "run_wire",
    "site_of",
    "wire_environment",
]
