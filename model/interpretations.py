"""The seed's ambiguities as named switches, and the interpretations that set them.

Every ambiguity of the seed (see ``docs/spec-review.md``) is an :class:`Ambiguity`
with the seed's words, the sources and the choice each interpretation makes. Three of
them add or remove rows of the transition table (:class:`~sephb.model.protocol.Switch`);
the others change data the rows act on (which manager comes first) or are recorded
as settled the same way by both readings.

Two interpretations ship:

``seed``
    The literal reading of the article: the first manager by priority, the check-in
    ends on a failed session, no GUP fallback, push mode only reacts to pushes.
``documented``
    What the vendor's knowledge base describes: failover to the next manager within
    the heartbeat, random choice within a priority, fall back to the manager when the
    GUP cannot deliver, push mode still heartbeating.

The seed is silent on some timing (A11-A15, :mod:`sephb.model.deadlines`). Where no
source decides, the two interpretations take the two readings, so that the suite
accepts a client following either and the reference client follows each:
``seed`` counts the interval from a check-in's start and bounds each request after
the session by the session limit; ``documented`` counts it from the check-in's end
and lets such a request wait one interval.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from .deadlines import Anchor, RequestLimit, Timing
from .errors import UsageError
from .protocol import TABLE, Row, Switch


class Selection(enum.Enum):
    """How the first manager of a heartbeat is chosen within the top priority."""

    #: The first listed server of the highest-priority block (the seed's "first").
    FIRST = "first"
    #: Any server of the highest-priority block, at random (KB 158744).
    RANDOM = "random"


@dataclass(frozen=True)
class Interpretation:
    """One consistent reading of the seed."""

    name: str
    summary: str
    switches: dict[Switch, bool]
    selection: Selection
    #: How it reads the seed's timing silences (A11, A12).
    timing: Timing = field(default_factory=Timing)

    def rows(self) -> tuple[Row, ...]:
        """The transition table under this reading."""
        return tuple(
            r for r in TABLE if r.when is None or self.switches[r.when[0]] is r.when[1]
        )

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "summary": self.summary,
            "switches": {s.value: v for s, v in self.switches.items()},
            "selection": self.selection.value,
            "timing": self.timing.to_json(),
        }


@dataclass(frozen=True)
class Ambiguity:
    """An ambiguity of the seed and how each interpretation settles it."""

    id: str
    title: str
    seed_words: str
    sources: str
    #: The switch it sets, when it changes rows of the table.
    switch: Switch | None
    seed_choice: str
    documented_choice: str
    requirements: tuple[str, ...]


AMBIGUITIES: Final[tuple[Ambiguity, ...]] = (
    Ambiguity("A1-FAILOVER", "Does a failed session fail over within the heartbeat?",
              "If session cannot be established within 30,000 milliseconds, check-in "
              "process terminates until the next heartbeat interval.",
              "KB 151377 (next priority is tried)", Switch.FAILOVER,
              "no: the check-in ends", "yes: next manager in priority order",
              ("REQ-2-TIMEOUT-30000", "REQ-2-FAILOVER")),
    Ambiguity("A2-SELECTION", "Which manager is 'first available by priority'?",
              "determine first available SEPM according to priority",
              "KB 158744 (rand() % count within a priority); KB 177570 (sticky last "
              "server, not modelled)", None,
              "the first listed server of the top priority",
              "a random server of the top priority", ("REQ-1-PRIORITY",)),
    Ambiguity("A3-INDEX", "What does comparing index.dat compare?",
              "compares it against the client copy for any deltas",
              "KB 156507 (policy serial), index2.xml checksum", None,
              "policy serial and content revisions, as one opaque token",
              "the same", ("REQ-3-INDEX",)),
    Ambiguity("A4-URLS-ON-CHANGE", "Are URLs requested when nothing changed?",
              "performs an HTTP GET request to obtain URLs to download files",
              "inference from step 3", None,
              "only after a changed index the policy allows", "the same",
              ("REQ-3-LU-POLICY", "REQ-4-URLS")),
    Ambiguity("A5-GUP-FALLBACK", "What if the GUP cannot deliver?",
              "If GUP is specified, content will download over TCP 2967.",
              "KB 151483 (updates from the manager when the GUP is offline)",
              Switch.GUP_FALLBACK, "skip the download this heartbeat",
              "download from the manager on 8014",
              ("REQ-4-PORT-2967", "REQ-4-GUP-FALLBACK", "REQ-X-GUP-SKIP")),
    Ambiguity("A6-PUSH-HEARTBEAT", "Does a push-mode client still heartbeat?",
              "the SEP client does not fully disconnect",
              "sylink.xml PushHeartbeatSeconds", Switch.PUSH_HEARTBEAT,
              "no: it acts only on pushed changes",
              "yes: it checks in every PushHeartbeatSeconds",
              ("REQ-7-PUSH", "REQ-7-PUSH-HEARTBEAT")),
    Ambiguity("A7-SIZES", "Are the heartbeat sizes bounds?",
              "the size ... is between 3KB and 5KB ... a typical heartbeat is between "
              "200 KB and 300 KB", "the seed's own word 'typical'", None,
              "typical sizes: a warning, not a violation", "the same",
              ("REQ-SIZE-IDLE", "REQ-SIZE-MAX")),
    Ambiguity("A8-LOG-FAILURE", "What happens to logs when an upload fails?",
              "SEP client uploads log files to SEPM.", "silent; a client that loses "
              "logs is wrong", None, "kept and uploaded at the next heartbeat, once",
              "the same", ("REQ-5-LOGS", "REQ-X-ABORT")),
    Ambiguity("A9-LOCATION", "A location change in the middle of a heartbeat?",
              "LiveUpdate policy for current location", "silent", None,
              "the policy in force when the URLs are requested decides",
              "the same", ("REQ-3-LU-POLICY", "REQ-4-URLS")),
    Ambiguity("A10-FIRST-AND-ACCELERATED", "First heartbeat and accelerated heartbeat",
              "check in again at the next heartbeat interval",
              "KB 156653 (first heartbeat at start), KB 177654 (accelerated)", None,
              "first heartbeat at start; no accelerated heartbeat",
              "the same (accelerated heartbeat not modelled)", ("REQ-7-PULL",)),
    Ambiguity("A11-INTERVAL-ANCHOR", "What does the heartbeat interval count from?",
              "the SEP client will check in again at the next heartbeat interval",
              "KB 156653 ('later ones follow the interval'); silent on the anchor",
              None,
              "the start of the check-in that ended (a period; a check-in that ran "
              "past the interval is followed by the next at once)",
              "the end of the check-in that ended (its close or its failure)",
              ("REQ-7-PULL",)),
    Ambiguity("A12-REQUEST-LIMIT", "How long may a request after the session wait?",
              "If session cannot be established within 30,000 milliseconds ...",
              "silent: the seed bounds only the session", None,
              "the session limit again: 30,000 ms per request; a stalled request is "
              "given up at the limit, not before it (as the session, A14)",
              "until the next heartbeat is due: one interval per request, given up "
              "at the limit, not before it",
              ("REQ-X-ABORT",)),
    Ambiguity("A13-PUSH-AT-ONCE", "What does 'immediately' allow a pushed change?",
              "allows any policy changes made in SEPM to occur immediately",
              "techdocs (push mode: the manager notifies the client as soon as "
              "something changes)", None,
              "the index request follows the push at once (within the run's "
              "tolerance), like every entry action after an answer",
              "the same", ("REQ-7-PUSH-IMMEDIATE",)),
    Ambiguity("A14-EARLY-GIVE-UP", "May a client give up a session before 30,000 ms?",
              "If session cannot be established within 30,000 milliseconds",
              "silent", None,
              "no: a stalled session is given up at the limit (within the tolerance), "
              "neither later nor earlier; an error answer ends it at once",
              "the same", ("REQ-2-TIMEOUT-30000",)),
    Ambiguity("A15-RANDOMIZATION", "Do check-ins spread over RandomizationRange?",
              "check in again at the next heartbeat interval",
              "sylink.xml RandomizationEnabled / RandomizationRange (seconds)", None,
              "when the file enables it, the next check-in may come up to "
              "RandomizationRange seconds after the interval (never before it)",
              "the same", ("REQ-7-PULL",)),
)

INTERPRETATIONS: Final[dict[str, Interpretation]] = {
    i.name: i
    for i in (
        Interpretation(
            "seed",
            "the article's literal reading",
            {Switch.FAILOVER: False, Switch.GUP_FALLBACK: False,
             Switch.PUSH_HEARTBEAT: False},
            Selection.FIRST,
            Timing(Anchor.START, RequestLimit.SESSION),
        ),
        Interpretation(
            "documented",
            "the vendor knowledge base: failover, random choice in a priority, GUP "
            "fallback, push heartbeat; the interval counts from a check-in's end and a "
            "request after the session may wait one interval",
            {Switch.FAILOVER: True, Switch.GUP_FALLBACK: True,
             Switch.PUSH_HEARTBEAT: True},
            Selection.RANDOM,
            Timing(Anchor.END, RequestLimit.INTERVAL),
        ),
    )
}

DEFAULT: Final = "seed"


def get(name: str) -> Interpretation:
    """The interpretation called ``name``, or a :class:`UsageError` listing them."""
    try:
        return INTERPRETATIONS[name]
    except KeyError:
        known = ", ".join(INTERPRETATIONS)
        raise UsageError(
            f"unknown interpretation {name!r}; expected one of: {known}"
        ) from None
