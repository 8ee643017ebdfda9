"""Structure, guard partitions and the seed's rules over every check-in path; pinned
path counts so that an accidental model change fails loudly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sephb.model import analysis as A
from sephb.model import graph as G
from sephb.model import protocol as P
from sephb.model.interpretations import INTERPRETATIONS, get

INTERPS = sorted(INTERPRETATIONS)


@pytest.mark.parametrize("interp", INTERPS)
def test_the_shipped_model_is_clean(interp: str) -> None:
    assert A.check_all(get(interp)) == []


@pytest.mark.parametrize("interp", INTERPS)
def test_structure_reaches_everything(interp: str) -> None:
    st = A.structure(get(interp).rows())
    assert st.reachable == sorted(s.value for s in P.State)
    assert (st.unreachable_states, st.dead_ends, st.unreachable_rows, st.no_way_back) == (
        [], [], [], []
    )


# (edges, check-in paths) per small configuration; see analysis.small_topologies.
PINNED = {
    "seed": {
        "1m/1p/no-gup/pull": (17, 15), "1m/1p/no-gup/push": (19, 29),
        "1m/1p/gup/pull": (20, 21), "1m/1p/gup/push": (22, 41),
        "2m/1p/no-gup/pull": (17, 15), "2m/1p/no-gup/push": (19, 29),
        "2m/1p/gup/pull": (20, 21), "2m/1p/gup/push": (22, 41),
        "3m/2p/no-gup/pull": (17, 15), "3m/2p/no-gup/push": (19, 29),
        "3m/2p/gup/pull": (20, 21), "3m/2p/gup/push": (22, 41),
    },
    "documented": {
        "1m/1p/no-gup/pull": (17, 15), "1m/1p/no-gup/push": (20, 42),
        "1m/1p/gup/pull": (20, 22), "1m/1p/gup/push": (23, 63),
        "2m/1p/no-gup/pull": (34, 86), "2m/1p/no-gup/push": (40, 196),
        "2m/1p/gup/pull": (40, 128), "2m/1p/gup/push": (46, 294),
        "3m/2p/no-gup/pull": (50, 366), "3m/2p/no-gup/push": (59, 783),
        "3m/2p/gup/pull": (59, 548), "3m/2p/gup/push": (68, 1175),
    },
}


@pytest.mark.parametrize("interp", INTERPS)
def test_pinned_checkin_path_counts(interp: str) -> None:
    found = {}
    for topo in A.small_topologies():
        g = G.concrete_graph(get(interp), topo)
        paths = sum(1 for _ in G.checkin_paths(g))
        found[A.topo_label(topo)] = (g.number_of_edges(), paths)
    assert found == PINNED[interp]


def test_failover_is_visible_as_paths_across_managers() -> None:
    topo = G.Topology(managers=3, priorities=2)
    doc = G.concrete_graph(get("documented"), topo)
    seed = G.concrete_graph(get("seed"), topo)
    assert doc.has_edge("CONNECTING@m1", "CONNECTING@m2")
    assert doc.has_edge("FETCHING_INDEX@m2", "CONNECTING@m3")
    assert not doc.has_edge("CONNECTING@m3", "CONNECTING@m4")
    assert "CONNECTING@m2" not in seed  # the seed ends the check-in instead
    # random choice within the top priority: m1 and m2 share priority 1
    assert {v for _, v in doc.out_edges("IDLE")} == {"CONNECTING@m1", "CONNECTING@m2"}
    assert {v for _, v in seed.out_edges("IDLE")} == {"CONNECTING@m1"}


def test_config_guards_are_resolved_runtime_guards_kept() -> None:
    pull = G.concrete_graph(get("seed"), G.Topology(gup=False, mode=P.Mode.PULL))
    assert "PUSH_HELD@m1" not in pull and "DOWNLOADING_GUP@m1" not in pull
    guards = {d["row"].guard for *_, d in pull.edges(keys=True, data=True)}
    assert P.Guard.DOWNLOAD_ALLOWED in guards and P.Guard.NO_DOWNLOAD in guards


# --- deliberately broken tables must be caught -------------------------------


def _mutate(interp: str, match: str, **change: object) -> list[P.Row]:
    rows = list(get(interp).rows())
    hits = [i for i, r in enumerate(rows) if r.name == match]
    assert hits, match
    rows[hits[0]] = replace(rows[hits[0]], **change)  # type: ignore[arg-type]
    return rows


BROKEN = [
    # sensors before logs: index answer goes straight to the sensor upload
    ("FETCHING_INDEX--INDEX_RECEIVED[no_download]-->UPLOADING_LOGS",
     {"dest": P.State.UPLOADING_SENSORS}, "rule_logs_before_sensors"),
    # a request after the session limit: timeout moves on to the index fetch
    ("CONNECTING--SESSION_TIMEOUT-->IDLE", {"dest": P.State.FETCHING_INDEX},
     "rule_nothing_after_session_failure"),
    # URLs fetched although the index did not change
    ("FETCHING_INDEX--INDEX_RECEIVED[no_download]-->UPLOADING_LOGS",
     {"dest": P.State.FETCHING_URLS}, "rule_urls_after_allowed_change"),
    # a GUP policy downloading from the manager's port
    ("FETCHING_URLS--URLS_RECEIVED[source_gup]-->DOWNLOADING_GUP",
     {"dest": P.State.DOWNLOADING_MANAGER}, "rule_download_port"),
    # push mode disconnecting
    ("UPLOADING_SENSORS--SENSORS_ACKED[push_mode]-->PUSH_HELD",
     {"dest": P.State.IDLE}, "rule_mode_ending"),
    # a backward step loops: logs acked goes back to the URL request
    ("UPLOADING_LOGS--LOGS_ACKED-->UPLOADING_SENSORS",
     {"dest": P.State.FETCHING_URLS}, "rule_checkin_ends"),
]


@pytest.mark.parametrize(("row", "change", "rule"), BROKEN)
def test_broken_table_is_caught_by_the_named_rule(
    row: str, change: dict[str, object], rule: str
) -> None:
    rows = _mutate("seed", row, **change)
    problems = A.check_all(get("seed"), rows)
    assert any(p.split(": ")[1] == rule for p in problems if ": " in p), problems


def test_step_order_allows_a_restart_only_by_failover() -> None:
    row = "FETCHING_INDEX--SESSION_TIMEOUT[next_manager]-->CONNECTING"
    rows = _mutate("documented", row, requirement="REQ-2-TIMEOUT-30000")
    problems = A.check_all(get("documented"), rows)
    assert any("rule_step_order: step 2 (CONNECTING) after step 3" in p for p in problems)


def test_overlapping_guards_are_caught() -> None:
    rows = _mutate("seed", "UPLOADING_SENSORS--SENSORS_ACKED[pull_mode]-->IDLE", guard=None)
    assert any("2 rows fire" in p for p in A.check_guard_partition(rows))


def test_missing_guard_case_is_caught() -> None:
    rows = [r for r in get("seed").rows() if r.guard is not P.Guard.SOURCE_NONE]
    assert any("0 rows fire" in p for p in A.check_guard_partition(rows))


def test_dead_end_and_unreachable_rows_are_reported() -> None:
    rows = [r for r in get("seed").rows() if r.source is not P.State.UPLOADING_SENSORS]
    st = A.structure(rows)
    assert st.dead_ends == ["UPLOADING_SENSORS"]
    assert "PUSH_HELD" in st.unreachable_states
    assert any("PUSH_HELD--" in r for r in st.unreachable_rows)
