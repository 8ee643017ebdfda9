"""The statechart view (sephb.model.hierarchy): superstates derived from the table,
and a view that stands for exactly the table's rows under every reading."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from sephb.model.hierarchy import PHASES, expand, statechart
from sephb.model.interpretations import INTERPRETATIONS, Interpretation, Selection, get
from sephb.model.protocol import State, Switch

#: Every reading the switches allow, not only the two named ones.
READINGS = [Interpretation("-".join(f"{s.value}={v}" for s, v in sw.items()), "", sw,
                           Selection.FIRST)
            for sw in (dict(zip(Switch, values, strict=True)) for values in
                       itertools.product((False, True), repeat=len(Switch)))]


def keys(interp: Interpretation) -> Counter[tuple[object, ...]]:
    return Counter((r.source, r.event, r.guard, r.dest, r.requirement)
                   for r in interp.rows())


@pytest.mark.parametrize("interp", READINGS, ids=lambda i: i.name)
def test_the_view_stands_for_exactly_the_rows(interp: Interpretation) -> None:
    chart = statechart(interp)
    assert Counter(expand(chart)) == keys(interp)
    # Each row is named by exactly one edge, and an edge of one row keeps its name.
    named = [r for e in chart.edges for r in e.rows]
    assert sorted(named) == sorted(r.name for r in interp.rows())
    for e in chart.edges:
        if len(e.rows) == 1:
            assert e.name == e.rows[0]


@pytest.mark.parametrize("interp", READINGS, ids=lambda i: i.name)
def test_superstates_form_a_tree_and_each_saves_arrows(interp: Interpretation) -> None:
    chart = statechart(interp)
    boxes = [set(s.states) for s in chart.superstates]
    for a, b in itertools.combinations(boxes, 2):
        assert a <= b or b <= a or not a & b
    assert len({s.name for s in chart.superstates}) == len(chart.superstates)
    for s in chart.superstates:
        assert len(s.states) >= 2
        assert any(e.source == s.name for e in chart.edges), s.name
    assert len(chart.edges) <= len(interp.rows())


def test_the_seed_reading_frames_the_session_and_the_post_session_failures() -> None:
    chart = statechart(get("seed"))
    assert {s.name: s.states for s in chart.superstates} == {
        "SESSION_PENDING": (State.CONNECTING, State.FETCHING_INDEX),
        # DOWNLOADING_GUP is out: a failed GUP download does not end the check-in
        "SESSION_UP": (State.FETCHING_URLS, State.DOWNLOADING_MANAGER,
                       State.UPLOADING_LOGS, State.UPLOADING_SENSORS)}
    shared = {e.name for e in chart.edges if len(e.rows) > 1}
    assert shared == {"SESSION_PENDING--SESSION_TIMEOUT|CONNECT_FAILED-->IDLE",
                      "SESSION_UP--REQUEST_FAILED-->IDLE"}
    assert (len(chart.edges), len(get("seed").rows())) == (17, 23)


def test_a_superstate_is_named_after_the_smallest_phase_that_holds_it() -> None:
    for name in INTERPRETATIONS:
        for s in statechart(get(name)).superstates:
            states, text = PHASES[s.name]
            assert set(s.states) <= states and s.text == text
