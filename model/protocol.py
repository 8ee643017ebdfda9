"""The SEP client heartbeat as data: states, events, guards, requirements, parameters
and THE transition table.

Theory of operation
-------------------
Everything that decides how a heartbeat client may move lives in this module, the way
h11 keeps HTTP/1.1 in ``h11/_state.py``. Every other part of ``sephb`` -- the
``transitions`` machine, the networkx graphs, the diagrams, the reference client, the
Hypothesis rules, the trace checker and every export -- is *generated* from
:data:`TABLE`. If you find yourself writing ``if state is CONNECTING and ...`` anywhere
else, generate it from here instead.

A row reads ``(state, event) -> (next state, guard, requirement id)``. Several rows
may share ``(state, event)`` when their guards partition the situations (a static
check in :mod:`sephb.model.analysis` proves the partition). A row may also exist only
under one reading of the ambiguous seed: ``when=(switch, value)`` names the
interpretation switch (see :mod:`sephb.model.interpretations`) that enables it.

The seed's steps map onto states as follows::

    step 1  IDLE --HEARTBEAT_DUE--> CONNECTING         (first manager by priority)
    step 2  CONNECTING --CONNECTED--> FETCHING_INDEX   (30,000 ms session limit)
    step 3  FETCHING_INDEX --INDEX_RECEIVED--> ...      (compare, LiveUpdate policy)
    step 4  FETCHING_URLS --URLS_RECEIVED--> DOWNLOADING_MANAGER (8014) | _GUP (2967)
    step 5  UPLOADING_LOGS --LOGS_ACKED--> UPLOADING_SENSORS
    step 6  UPLOADING_SENSORS --SENSORS_ACKED--> ...
    step 7  ... -> IDLE (pull: disconnect) | PUSH_HELD (push: connection kept)

The session counts as established when the manager answers the first request (the
GET of index.dat), so the 30,000 ms limit spans CONNECTING and FETCHING_INDEX.

A row's requirement id names the seed rule that makes the move *mandatory*: usually
the step the destination state performs, or for failures the rule that ends the
check-in. Guards carry their own requirement id (the rule that decides between rows).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


class State(enum.Enum):
    """Control states of a heartbeat client."""

    #: Between check-ins: disconnected, waiting for the next heartbeat interval.
    IDLE = "IDLE"
    #: Step 2: opening a session with the chosen manager (30,000 ms limit runs).
    CONNECTING = "CONNECTING"
    #: Step 3: GET index.dat sent; its answer establishes the session.
    FETCHING_INDEX = "FETCHING_INDEX"
    #: Step 4: GET of the download URLs sent to the manager.
    FETCHING_URLS = "FETCHING_URLS"
    #: Step 4: downloading content from the manager on TCP 8014.
    DOWNLOADING_MANAGER = "DOWNLOADING_MANAGER"
    #: Step 4: downloading content from the Group Update Provider on TCP 2967.
    DOWNLOADING_GUP = "DOWNLOADING_GUP"
    #: Step 5: uploading the client's log files to the manager.
    UPLOADING_LOGS = "UPLOADING_LOGS"
    #: Step 6: uploading LAN-sensor and learned-application logs.
    UPLOADING_SENSORS = "UPLOADING_SENSORS"
    #: Step 7, push mode: not fully disconnected; the manager can announce changes.
    PUSH_HELD = "PUSH_HELD"


class Event(enum.Enum):
    """What happens to a client: timers, answers from its peers, failures."""

    #: The heartbeat interval elapsed (or the client started).
    HEARTBEAT_DUE = "HEARTBEAT_DUE"
    #: The TCP connection to the chosen manager is open.
    CONNECTED = "CONNECTED"
    #: The connection was refused, reset or answered with an error before a session.
    CONNECT_FAILED = "CONNECT_FAILED"
    #: No session within the 30,000 ms limit.
    SESSION_TIMEOUT = "SESSION_TIMEOUT"
    #: The manager answered index.dat; the client compared it with its own copy.
    INDEX_RECEIVED = "INDEX_RECEIVED"
    #: The manager answered the request for download URLs.
    URLS_RECEIVED = "URLS_RECEIVED"
    #: Every content file downloaded.
    CONTENT_RECEIVED = "CONTENT_RECEIVED"
    #: The Group Update Provider could not deliver the content.
    DOWNLOAD_FAILED = "DOWNLOAD_FAILED"
    #: A request to the manager failed after the session was established.
    REQUEST_FAILED = "REQUEST_FAILED"
    #: The manager acknowledged the log upload.
    LOGS_ACKED = "LOGS_ACKED"
    #: The manager acknowledged the LAN-sensor and learned-application upload.
    SENSORS_ACKED = "SENSORS_ACKED"
    #: The manager announced a policy change on the held push connection.
    POLICY_PUSHED = "POLICY_PUSHED"
    #: The held push connection closed.
    CONNECTION_LOST = "CONNECTION_LOST"


class Source(enum.Enum):
    """Where the LiveUpdate policy of the current location takes content from."""

    #: The management server, over its content port (TCP 8014).
    MANAGER = "manager"
    #: A Group Update Provider, over TCP 2967.
    GUP = "gup"
    #: Neither: content is not taken during the heartbeat (e.g. an internet LiveUpdate
    #: server). A changed index then leads to no download in this check-in.
    NONE = "none"


class Mode(enum.Enum):
    """Communication mode from sylink.xml (``CommunicationMode``)."""

    #: Check in again at the next heartbeat interval.
    PULL = "pull"
    #: Keep the connection so that policy changes reach the client at once.
    PUSH = "push"


@dataclass(frozen=True)
class Context:
    """The data a guard may read: what the client knows when an event arrives."""

    #: index.dat from the manager differs from the client's copy.
    index_changed: bool = False
    #: LiveUpdate source of the current location's policy.
    source: Source = Source.MANAGER
    #: Communication mode of the current sylink.xml.
    mode: Mode = Mode.PULL
    #: Another manager is left to try in this heartbeat (failover order).
    has_next_manager: bool = False


class Scope(enum.Enum):
    """When a guard's value becomes known."""

    #: Fixed by the sylink configuration (mode, manager order); resolved when a
    #: configuration is expanded into a concrete graph.
    CONFIG = "config"
    #: Known only at run time (index contents, location policy).
    RUNTIME = "runtime"


class Guard(enum.Enum):
    """Named conditions that choose between rows sharing (state, event)."""

    #: The index changed and the location's LiveUpdate policy lets the heartbeat fetch it.
    DOWNLOAD_ALLOWED = "download_allowed"
    #: The index is unchanged, or the policy takes content outside the heartbeat.
    NO_DOWNLOAD = "no_download"
    #: The location's LiveUpdate policy names the manager as content source.
    SOURCE_MANAGER = "source_manager"
    #: The location's LiveUpdate policy names a Group Update Provider.
    SOURCE_GUP = "source_gup"
    #: The location's policy (changed since the index was compared) names no source.
    SOURCE_NONE = "source_none"
    #: sylink.xml says pull mode.
    PULL_MODE = "pull_mode"
    #: sylink.xml says push mode.
    PUSH_MODE = "push_mode"
    #: Another manager is left in the priority order for this heartbeat.
    NEXT_MANAGER = "next_manager"
    #: The manager just tried was the last one.
    LAST_MANAGER = "last_manager"


@dataclass(frozen=True)
class GuardSpec:
    """A guard's meaning: its predicate, scope and the rule it encodes."""

    scope: Scope
    requirement: str
    text: str

    def holds(self, guard: Guard, ctx: Context) -> bool:
        return _PREDICATES[guard](ctx)


# The predicates are the only executable reading of a guard. They are total and, for
# guards sharing (state, event), mutually exclusive: analysis.check_guard_partition
# proves it over every Context.
_PREDICATES: Final[dict[Guard, Callable[[Context], bool]]] = {
    Guard.DOWNLOAD_ALLOWED: lambda c: c.index_changed and c.source is not Source.NONE,
    Guard.NO_DOWNLOAD: lambda c: not c.index_changed or c.source is Source.NONE,
    Guard.SOURCE_MANAGER: lambda c: c.source is Source.MANAGER,
    Guard.SOURCE_GUP: lambda c: c.source is Source.GUP,
    Guard.SOURCE_NONE: lambda c: c.source is Source.NONE,
    Guard.PULL_MODE: lambda c: c.mode is Mode.PULL,
    Guard.PUSH_MODE: lambda c: c.mode is Mode.PUSH,
    Guard.NEXT_MANAGER: lambda c: c.has_next_manager,
    Guard.LAST_MANAGER: lambda c: not c.has_next_manager,
}

GUARDS: Final[dict[Guard, GuardSpec]] = {
    Guard.DOWNLOAD_ALLOWED: GuardSpec(
        Scope.RUNTIME, "REQ-3-LU-POLICY", "index changed and the policy allows it"
    ),
    Guard.NO_DOWNLOAD: GuardSpec(
        Scope.RUNTIME, "REQ-3-LU-POLICY", "index unchanged or content not via heartbeat"
    ),
    Guard.SOURCE_MANAGER: GuardSpec(Scope.RUNTIME, "REQ-4-URLS", "policy source: manager"),
    Guard.SOURCE_GUP: GuardSpec(Scope.RUNTIME, "REQ-4-URLS", "policy source: GUP"),
    Guard.SOURCE_NONE: GuardSpec(
        Scope.RUNTIME, "REQ-3-LU-POLICY", "policy source: none (location changed)"
    ),
    Guard.PULL_MODE: GuardSpec(Scope.CONFIG, "REQ-7-PULL", "CommunicationMode=PULL"),
    Guard.PUSH_MODE: GuardSpec(Scope.CONFIG, "REQ-7-PUSH", "CommunicationMode=PUSH"),
    Guard.NEXT_MANAGER: GuardSpec(Scope.CONFIG, "REQ-2-FAILOVER", "another manager left"),
    Guard.LAST_MANAGER: GuardSpec(
        Scope.CONFIG, "REQ-2-TIMEOUT-30000", "no manager left to try"
    ),
}


class Switch(enum.Enum):
    """Interpretation switches that add or remove rows of the table.

    The full register of ambiguities, including those that change no row, is in
    :mod:`sephb.model.interpretations`.
    """

    #: A failed session moves on to the next manager in the same heartbeat.
    FAILOVER = "failover"
    #: Content falls back to the manager when the GUP cannot deliver it.
    GUP_FALLBACK = "gup_fallback"
    #: A client in push mode still checks in on PushHeartbeatSeconds.
    PUSH_HEARTBEAT = "push_heartbeat"


@dataclass(frozen=True)
class Row:
    """One transition: ``(source, event) -> (dest, guard, requirement)``."""

    source: State
    event: Event
    dest: State
    guard: Guard | None
    requirement: str
    #: The row exists only when this interpretation switch has this value.
    when: tuple[Switch, bool] | None = None

    @property
    def name(self) -> str:
        """A stable, readable identifier used by paths, coverage and reports."""
        g = f"[{self.guard.value}]" if self.guard else ""
        return f"{self.source.value}--{self.event.value}{g}-->{self.dest.value}"


S, E, G = State, Event, Guard
_SEED, _DOC = False, True


def _session_failures(source: State) -> list[Row]:
    """The rows for 'session cannot be established' from one state: the seed's
    reading ends the check-in; with failover the next manager is tried first."""
    rows: list[Row] = []
    for ev in (Event.SESSION_TIMEOUT, Event.CONNECT_FAILED):
        rows += [
            Row(source, ev, State.IDLE, None, "REQ-2-TIMEOUT-30000",
                (Switch.FAILOVER, _SEED)),
            Row(source, ev, State.CONNECTING, Guard.NEXT_MANAGER, "REQ-2-FAILOVER",
                (Switch.FAILOVER, _DOC)),
            Row(source, ev, State.IDLE, Guard.LAST_MANAGER, "REQ-2-TIMEOUT-30000",
                (Switch.FAILOVER, _DOC)),
        ]
    return rows


#: THE transition table. Order matters only for readability (it follows the seed).
TABLE: Final[tuple[Row, ...]] = (
    # Step 1: read sylink.xml, choose the first available manager by priority.
    Row(S.IDLE, E.HEARTBEAT_DUE, S.CONNECTING, None, "REQ-1-PRIORITY"),
    # Step 2: connect; the session limit ends the check-in (or fails over).
    Row(S.CONNECTING, E.CONNECTED, S.FETCHING_INDEX, None, "REQ-3-INDEX"),
    *_session_failures(S.CONNECTING),
    # Step 3: index.dat answered (session established) and compared.
    Row(S.FETCHING_INDEX, E.INDEX_RECEIVED, S.FETCHING_URLS, G.DOWNLOAD_ALLOWED,
        "REQ-4-URLS"),
    Row(S.FETCHING_INDEX, E.INDEX_RECEIVED, S.UPLOADING_LOGS, G.NO_DOWNLOAD,
        "REQ-5-LOGS"),
    *_session_failures(S.FETCHING_INDEX),
    # Step 4: URLs point at the manager (8014) or a GUP (2967) per LiveUpdate policy.
    Row(S.FETCHING_URLS, E.URLS_RECEIVED, S.DOWNLOADING_MANAGER, G.SOURCE_MANAGER,
        "REQ-4-PORT-8014"),
    Row(S.FETCHING_URLS, E.URLS_RECEIVED, S.DOWNLOADING_GUP, G.SOURCE_GUP,
        "REQ-4-PORT-2967"),
    # The location (and so its policy) may change between index and URLs: the
    # policy in force when the URLs are answered decides (ambiguity A9).
    Row(S.FETCHING_URLS, E.URLS_RECEIVED, S.UPLOADING_LOGS, G.SOURCE_NONE, "REQ-5-LOGS"),
    Row(S.FETCHING_URLS, E.REQUEST_FAILED, S.IDLE, None, "REQ-X-ABORT"),
    Row(S.DOWNLOADING_MANAGER, E.CONTENT_RECEIVED, S.UPLOADING_LOGS, None, "REQ-5-LOGS"),
    Row(S.DOWNLOADING_MANAGER, E.REQUEST_FAILED, S.IDLE, None, "REQ-X-ABORT"),
    Row(S.DOWNLOADING_GUP, E.CONTENT_RECEIVED, S.UPLOADING_LOGS, None, "REQ-5-LOGS"),
    Row(S.DOWNLOADING_GUP, E.DOWNLOAD_FAILED, S.UPLOADING_LOGS, None, "REQ-X-GUP-SKIP",
        (Switch.GUP_FALLBACK, _SEED)),
    Row(S.DOWNLOADING_GUP, E.DOWNLOAD_FAILED, S.DOWNLOADING_MANAGER, None,
        "REQ-4-GUP-FALLBACK", (Switch.GUP_FALLBACK, _DOC)),
    # Step 5: logs, then step 6: LAN sensors and learned applications.
    Row(S.UPLOADING_LOGS, E.LOGS_ACKED, S.UPLOADING_SENSORS, None, "REQ-6-SENSORS"),
    Row(S.UPLOADING_LOGS, E.REQUEST_FAILED, S.IDLE, None, "REQ-X-ABORT"),
    # Step 7: disconnect (pull) or keep the connection (push).
    Row(S.UPLOADING_SENSORS, E.SENSORS_ACKED, S.IDLE, G.PULL_MODE, "REQ-7-PULL"),
    Row(S.UPLOADING_SENSORS, E.SENSORS_ACKED, S.PUSH_HELD, G.PUSH_MODE, "REQ-7-PUSH"),
    Row(S.UPLOADING_SENSORS, E.REQUEST_FAILED, S.IDLE, None, "REQ-X-ABORT"),
    # Push mode: a policy change reaches the client at once.
    Row(S.PUSH_HELD, E.POLICY_PUSHED, S.FETCHING_INDEX, None, "REQ-7-PUSH-IMMEDIATE"),
    Row(S.PUSH_HELD, E.HEARTBEAT_DUE, S.FETCHING_INDEX, None, "REQ-7-PUSH-HEARTBEAT",
        (Switch.PUSH_HEARTBEAT, _DOC)),
    Row(S.PUSH_HELD, E.CONNECTION_LOST, S.IDLE, None, "REQ-X-ABORT"),
)
del S, E, G

#: Where a check-in begins and ends: the client rests here between check-ins.
REST_STATES: Final = frozenset({State.IDLE, State.PUSH_HELD})
#: The state a client starts in.
INITIAL: Final = State.IDLE
#: States in which the 30,000 ms session limit runs (the session is not yet up).
SESSION_PENDING: Final = frozenset({State.CONNECTING, State.FETCHING_INDEX})
#: The seed step each state performs; static checks assert steps never go backwards
#: within one check-in.
STEP: Final[dict[State, int]] = {
    State.IDLE: 1,
    State.CONNECTING: 2,
    State.FETCHING_INDEX: 3,
    State.FETCHING_URLS: 4,
    State.DOWNLOADING_MANAGER: 4,
    State.DOWNLOADING_GUP: 4,
    State.UPLOADING_LOGS: 5,
    State.UPLOADING_SENSORS: 6,
    State.PUSH_HELD: 7,
}


class Action(enum.Enum):
    """What a client does on entering a state (the state's entry action).

    Action names never clash with :class:`Event` names: a trace mixes both (what the
    client did, what happened to it) in one vocabulary.
    """

    #: Close any connection and wait for the next heartbeat interval.
    DISCONNECT = "DISCONNECT"
    #: Read sylink.xml, choose the manager, open a TCP connection to it.
    CONNECT = "CONNECT"
    #: HTTP GET of index.dat from the manager.
    GET_INDEX = "GET_INDEX"
    #: HTTP GET of the download URLs from the manager.
    GET_URLS = "GET_URLS"
    #: Download content from the manager's content port (8014).
    DOWNLOAD_MANAGER = "DOWNLOAD_MANAGER"
    #: Download content from the GUP (2967).
    DOWNLOAD_GUP = "DOWNLOAD_GUP"
    #: Upload queued log files.
    UPLOAD_LOGS = "UPLOAD_LOGS"
    #: Upload LAN-sensor and learned-application logs.
    UPLOAD_SENSORS = "UPLOAD_SENSORS"
    #: Keep the connection open and wait for the manager's announcements.
    HOLD = "HOLD"


#: Entry actions. A state is entered only through a row of TABLE; its action is the
#: protocol's side effect, executed by whichever adapter drives the model.
ENTRY: Final[dict[State, Action]] = {
    State.IDLE: Action.DISCONNECT,
    State.CONNECTING: Action.CONNECT,
    State.FETCHING_INDEX: Action.GET_INDEX,
    State.FETCHING_URLS: Action.GET_URLS,
    State.DOWNLOADING_MANAGER: Action.DOWNLOAD_MANAGER,
    State.DOWNLOADING_GUP: Action.DOWNLOAD_GUP,
    State.UPLOADING_LOGS: Action.UPLOAD_LOGS,
    State.UPLOADING_SENSORS: Action.UPLOAD_SENSORS,
    State.PUSH_HELD: Action.HOLD,
}


#: Failure events in order of preference: when a request breaks (or its answer does
#: not come in time), the client reports the first one its state accepts in the table.
ON_ERROR: Final = (Event.CONNECT_FAILED, Event.REQUEST_FAILED, Event.DOWNLOAD_FAILED,
                   Event.CONNECTION_LOST)
ON_TIMEOUT: Final = (Event.SESSION_TIMEOUT, Event.REQUEST_FAILED, Event.DOWNLOAD_FAILED,
                     Event.CONNECTION_LOST)


def failure_of(action: Action, *, timed_out: bool = False) -> Event:
    """The event a failed request of ``action`` means: the first of :data:`ON_ERROR`
    (or :data:`ON_TIMEOUT`) that the state performing the action accepts, in any
    reading of the table. Adapters and recorders ask here instead of keeping a list."""
    state = next(s for s, a in ENTRY.items() if a is action)
    accepted = {r.event for r in TABLE if r.source is state}
    return next(e for e in (ON_TIMEOUT if timed_out else ON_ERROR) if e in accepted)


@dataclass(frozen=True)
class Requirement:
    """One rule the model encodes, traced to its source text."""

    id: str
    #: Seed step (1-7), or 0 for the heartbeat-size paragraph and derived rules.
    step: int
    #: "seed": stated by the seed; "documented": from the vendor's knowledge base
    #: (one interpretation only); "derived": the seed is silent and the model must
    #: still decide (see the ambiguity register).
    origin: str
    text: str


REQUIREMENTS: Final[dict[str, Requirement]] = {
    r.id: r
    for r in (
        Requirement("REQ-1-PRIORITY", 1, "seed",
                    "SEP client reads sylink.xml to determine first available SEPM "
                    "according to priority."),
        Requirement("REQ-2-TIMEOUT-30000", 2, "seed",
                    "If session cannot be established within 30,000 milliseconds, "
                    "check-in process terminates until the next heartbeat interval."),
        Requirement("REQ-2-FAILOVER", 2, "documented",
                    "Clients try the highest-priority managers first, then the next "
                    "(KB 151377): a failed session fails over within the heartbeat."),
        Requirement("REQ-3-INDEX", 3, "seed",
                    "SEP client performs an HTTP GET of index.dat from the SEPM and "
                    "compares it against the client copy for any deltas."),
        Requirement("REQ-3-LU-POLICY", 3, "seed",
                    "Content differences will check against LiveUpdate policy for "
                    "current location."),
        Requirement("REQ-4-URLS", 4, "seed",
                    "SEP client performs an HTTP GET request to obtain URLs to download "
                    "files. URLs will correspond to the SEPM or GUP depending on "
                    "LiveUpdate policy."),
        Requirement("REQ-4-PORT-8014", 4, "seed",
                    "If SEPM is specified, content will download over TCP 8014."),
        Requirement("REQ-4-PORT-2967", 4, "seed",
                    "If GUP is specified, content will download over TCP 2967."),
        Requirement("REQ-4-GUP-FALLBACK", 4, "documented",
                    "If the GUP is offline, clients get updates from the manager "
                    "(KB 151483)."),
        Requirement("REQ-X-GUP-SKIP", 4, "derived",
                    "The seed names no fallback: a GUP that cannot deliver leaves the "
                    "content for a later heartbeat and the check-in goes on."),
        Requirement("REQ-5-LOGS", 5, "seed", "SEP client uploads log files to SEPM."),
        Requirement("REQ-6-SENSORS", 6, "seed",
                    "SEP client uploads LAN sensors and learned application logs to "
                    "SEPM."),
        Requirement("REQ-7-PULL", 7, "seed",
                    "SEP client disconnects from SEPM. When communication mode is set to "
                    "Pull, the SEP client will check in again at the next heartbeat "
                    "interval."),
        Requirement("REQ-7-PUSH", 7, "seed",
                    "When communication mode is set to Push, the SEP client does not "
                    "fully disconnect."),
        Requirement("REQ-7-PUSH-IMMEDIATE", 7, "seed",
                    "[Push mode] allows any policy changes made in SEPM to occur "
                    "immediately on the SEP client."),
        Requirement("REQ-7-PUSH-HEARTBEAT", 7, "documented",
                    "A push-mode client still checks in every PushHeartbeatSeconds "
                    "(sylink.xml carries it)."),
        Requirement("REQ-X-ABORT", 0, "derived",
                    "The seed is silent on failures after the session is established: "
                    "the check-in ends, nothing queued is lost, and the client tries "
                    "again at the next heartbeat."),
        Requirement("REQ-X-ALIVE", 0, "derived",
                    "The seed describes a client that keeps checking in, heartbeat "
                    "after heartbeat: whatever it meets (answers, failures, time), it "
                    "neither stops (crashes), nor loops without letting time pass, nor "
                    "does what no step describes."),
        Requirement("REQ-SIZE-IDLE", 0, "seed",
                    "When there are no new client-side logs to upload, or policy or "
                    "content to download, the heartbeat is between 3KB and 5KB."),
        Requirement("REQ-SIZE-MAX", 0, "seed",
                    "With all protection technologies and maximum logging, a typical "
                    "heartbeat is between 200 KB and 300 KB."),
    )
}


@dataclass(frozen=True)
class Parameter:
    """A named constant of the protocol, with the text it comes from."""

    name: str
    value: int
    unit: str
    requirement: str
    source: str


PARAMETERS: Final[dict[str, Parameter]] = {
    p.name: p
    for p in (
        Parameter("SESSION_LIMIT_MS", 30_000, "ms", "REQ-2-TIMEOUT-30000",
                  "seed, step 2"),
        Parameter("MANAGER_CONTENT_PORT", 8014, "tcp", "REQ-4-PORT-8014", "seed, step 4"),
        Parameter("GUP_PORT", 2967, "tcp", "REQ-4-PORT-2967", "seed, step 4"),
        Parameter("HEARTBEAT_INTERVAL_S", 300, "s", "REQ-7-PULL",
                  "KB 156653 (default 5 minutes; the seed says 'heartbeat interval')"),
        Parameter("IDLE_HEARTBEAT_MIN_BYTES", 3 * 1024, "bytes", "REQ-SIZE-IDLE",
                  "seed, heartbeat size"),
        Parameter("IDLE_HEARTBEAT_MAX_BYTES", 5 * 1024, "bytes", "REQ-SIZE-IDLE",
                  "seed, heartbeat size"),
        Parameter("FULL_HEARTBEAT_MIN_BYTES", 200 * 1024, "bytes", "REQ-SIZE-MAX",
                  "seed, heartbeat size"),
        Parameter("FULL_HEARTBEAT_MAX_BYTES", 300 * 1024, "bytes", "REQ-SIZE-MAX",
                  "seed, heartbeat size"),
    )
}

SESSION_LIMIT_MS: Final = PARAMETERS["SESSION_LIMIT_MS"].value
MANAGER_CONTENT_PORT: Final = PARAMETERS["MANAGER_CONTENT_PORT"].value
GUP_PORT: Final = PARAMETERS["GUP_PORT"].value
HEARTBEAT_INTERVAL_S: Final = PARAMETERS["HEARTBEAT_INTERVAL_S"].value
IDLE_HEARTBEAT_BYTES: Final = (
    PARAMETERS["IDLE_HEARTBEAT_MIN_BYTES"].value,
    PARAMETERS["IDLE_HEARTBEAT_MAX_BYTES"].value,
)
FULL_HEARTBEAT_BYTES: Final = (
    PARAMETERS["FULL_HEARTBEAT_MIN_BYTES"].value,
    PARAMETERS["FULL_HEARTBEAT_MAX_BYTES"].value,
)
