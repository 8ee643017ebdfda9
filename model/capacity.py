"""The traffic and connection load the seed's heartbeat sizes imply for a fleet.

Theory of operation
-------------------
The seed gives two size ranges (REQ-SIZE-IDLE: 3-5 KB when nothing is new;
REQ-SIZE-MAX: 200-300 KB with every technology and maximum logging) and, through the
vendor's knowledge base, a default interval of 300 s (:data:`PARAMETERS`). A fleet of
``N`` clients, each checking in every ``S`` seconds, makes ``N / S`` check-ins per
second; spread evenly over ``M`` managers (several managers at one priority share the
load, KB 151377), each manager sees ``N / (S * M)`` of them and
``N / M * 86400 / S`` a day, each between the low and high size of the profile. In
push mode every client also holds one connection to its manager
(REQ-7-PUSH), so a manager holds ``N / M`` connections at rest.

Everything here is arithmetic on the model's parameters; the assumptions are returned
with the numbers so that a reader can see what they rest on. The sizes are "typical",
not bounds (ambiguity A7), so the results are estimates, not limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import UsageError
from .protocol import FULL_HEARTBEAT_BYTES, HEARTBEAT_INTERVAL_S, IDLE_HEARTBEAT_BYTES, Mode

SECONDS_PER_DAY: Final = 86_400
#: Heartbeat size range (bytes) per profile, from the seed's size paragraph.
PROFILES: Final[dict[str, tuple[int, int]]] = {
    "idle": IDLE_HEARTBEAT_BYTES,
    "full": FULL_HEARTBEAT_BYTES,
}


@dataclass(frozen=True)
class Load:
    """The load on the managers of a fleet, with the inputs it came from."""

    clients: int
    interval_s: int
    profile: str
    mode: Mode
    managers: int
    checkins_per_s: float
    checkins_per_s_per_manager: float
    checkins_per_day_per_manager: float
    bytes_per_day_per_manager: tuple[float, float]
    mean_bits_per_s_per_manager: tuple[float, float]
    held_connections_per_manager: float
    assumptions: tuple[str, ...]


def capacity(clients: int, interval_s: int = HEARTBEAT_INTERVAL_S,
             profile: str = "idle", mode: Mode = Mode.PULL, managers: int = 1) -> Load:
    if clients < 1 or interval_s < 1 or managers < 1:
        raise UsageError("clients, interval and managers must be at least 1, got "
                         f"{clients}, {interval_s}, {managers}")
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; expected one of: "
                         f"{', '.join(PROFILES)}")
    low, high = PROFILES[profile]
    rate = clients / interval_s
    per_mgr = rate / managers
    per_day = per_mgr * SECONDS_PER_DAY
    assumptions = (
        f"every heartbeat has the {profile} size: {low:,} to {high:,} bytes "
        f"(seed: {'3-5 KB' if profile == 'idle' else '200-300 KB'}, KB = 1,024 bytes; "
        "'typical' sizes, not bounds)",
        f"each client checks in every {interval_s:,} s (the vendor default is "
        f"{HEARTBEAT_INTERVAL_S} s); in push mode too (PushHeartbeatSeconds, "
        "interpretation 'documented'), pushed policy changes come on top",
        f"check-ins are spread evenly over time and over the {managers} manager(s) "
        "(managers at one priority share the load; failover traffic not counted)",
        "push mode: each client holds one connection to its manager between check-ins; "
        "pull mode: clients disconnect, so none is held at rest",
    )
    return Load(
        clients, interval_s, profile, mode, managers,
        checkins_per_s=rate,
        checkins_per_s_per_manager=per_mgr,
        checkins_per_day_per_manager=per_day,
        bytes_per_day_per_manager=(per_day * low, per_day * high),
        mean_bits_per_s_per_manager=(per_mgr * low * 8, per_mgr * high * 8),
        held_connections_per_manager=clients / managers if mode is Mode.PUSH else 0.0,
        assumptions=assumptions,
    )


def _size(n: float) -> str:
    """Bytes, in the unit the seed's KB implies (1,024)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} B"


def _bits(n: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} bit/s"


def to_text(load: Load) -> str:
    lo, hi = load.bytes_per_day_per_manager
    blo, bhi = load.mean_bits_per_s_per_manager
    lines = [
        f"{load.clients:,} clients, interval {load.interval_s:,} s, logging "
        f"{load.profile}, {load.mode.value} mode, {load.managers} manager(s)",
        f"  check-ins per second (fleet):        {load.checkins_per_s:,.2f}",
        f"  check-ins per second per manager:    {load.checkins_per_s_per_manager:,.2f}",
        f"  check-ins per day per manager:       {load.checkins_per_day_per_manager:,.0f}",
        f"  bytes per day per manager:           {_size(lo)} to {_size(hi)} "
        f"({lo:,.0f} to {hi:,.0f} B)",
        f"  mean bandwidth per manager:          {_bits(blo)} to {_bits(bhi)}",
        f"  held connections per manager:        {load.held_connections_per_manager:,.0f}",
        "assumptions:",
        *(f"  - {a}" for a in load.assumptions),
    ]
    return "\n".join(lines) + "\n"


#: The worked examples of docs/capacity.md: (clients, managers).
EXAMPLES: Final = ((1_000, 1), (100_000, 1), (100_000, 4))


def render_doc() -> str:
    """docs/capacity.md, generated from :func:`capacity` (a test compares it)."""
    out = [
        "# Capacity: what the seed's heartbeat sizes imply for a fleet",
        "",
        "Generated by `sephb capacity --examples -o docs/capacity.md`; do not edit "
        "(a test fails when it is stale).",
        "",
        "The seed gives a heartbeat size of 3-5 KB when there is nothing new and "
        "200-300 KB with every technology and maximum logging (REQ-SIZE-IDLE, "
        "REQ-SIZE-MAX). The numbers below multiply those ranges by the check-in rate; "
        "try your own with `sephb capacity --clients N --interval S --logging "
        "idle|full [--mode push|pull] [--managers M]`.",
        "",
        f"All examples use the default interval of {HEARTBEAT_INTERVAL_S} s.",
        "",
        "| clients | managers | logging | check-ins/s per manager | bytes/day per manager "
        "| mean bandwidth per manager | held connections per manager (push) |",
        "|---:|---:|---|---:|---|---|---:|",
    ]
    for clients, managers in EXAMPLES:
        for profile in PROFILES:
            load = capacity(clients, HEARTBEAT_INTERVAL_S, profile, Mode.PUSH, managers)
            lo, hi = load.bytes_per_day_per_manager
            blo, bhi = load.mean_bits_per_s_per_manager
            out.append(
                f"| {clients:,} | {managers} | {profile} | "
                f"{load.checkins_per_s_per_manager:,.2f} | {_size(lo)} – {_size(hi)} | "
                f"{_bits(blo)} – {_bits(bhi)} | {load.held_connections_per_manager:,.0f} |"
            )
    out += ["", "In pull mode no connection is held between check-ins; the other "
            "columns are the same.", "", "## Assumptions", ""]
    out += [f"- {a}" for a in capacity(1).assumptions]
    out += ["", "## One example in full", "", "```",
            "$ sephb capacity --clients 100000 --interval 300 --logging full "
            "--mode push --managers 4"]
    out += to_text(capacity(100_000, 300, "full", Mode.PUSH, 4)).splitlines()
    out += ["```", ""]
    return "\n".join(out)
