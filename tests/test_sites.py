"""Drawn sites (conformance/suite/world.py ``Site``, ``sites``): what is drawn, how it
shrinks, how a step names it, and both adapters building it -- virtual servers in
process, real ones on loopback over the wire."""

from __future__ import annotations

import socket

import hypothesis
from hypothesis import given, settings

from sephb.conformance.suite import narrate_program, site_of
from sephb.conformance.suite._wire_world import RemoteWorld
from sephb.conformance.suite.world import (
    DEFAULT_SITE,
    MAX_MANAGERS,
    Site,
    World,
    sites,
)
from sephb.conformance.traces.wire import GUP_PORT, MANAGER_PORT
from sephb.model.protocol import Source


@settings(max_examples=300, deadline=None, database=None)
@given(sites())
def test_drawn_sites_are_sylink_shaped(site: Site) -> None:
    prios = [p for p, _ in site.managers]
    assert 1 <= len(site.managers) <= MAX_MANAGERS
    assert prios == sorted(prios) and prios[0] == 1
    assert set(prios) == set(range(1, max(prios) + 1))  # blocks 1..k, none empty
    assert site.gup is not None or all(s != "gup" for _, s in site.policies)
    # Its repr is what a replay file's start step carries, and reads back.
    assert site_of([f"state.start(mode=Mode.PULL, site={site!r})"]) == site


def test_sites_shrink_toward_the_default_site() -> None:
    assert hypothesis.find(sites(), lambda s: True) == DEFAULT_SITE
    # A failure that needs a GUP on another port shrinks to the simplest such site.
    small = hypothesis.find(sites(), lambda s: s.gup not in (None, GUP_PORT))
    assert small.managers == ((1, MANAGER_PORT),) and small.policies == ()


def test_drawn_sites_vary_what_the_seed_leaves_open() -> None:
    seen: dict[str, set[object]] = {"n": set(), "gup": set(), "port": set(),
                                     "blocks": set(), "listed": set(), "spread": set()}

    @settings(max_examples=400, deadline=None, database=None)
    @given(sites())
    def draw(site: Site) -> None:
        seen["n"].add(len(site.managers))
        seen["gup"].add(site.gup)
        seen["port"].update(port for _, port in site.managers)
        seen["blocks"].add(max(p for p, _ in site.managers))
        seen["listed"].add(site.listed)
        seen["spread"].add(site.randomization_s)

    draw()
    assert seen["n"] >= {1, 2, 3, 4, 5, 6}
    assert seen["gup"] == {GUP_PORT, 2968, None}
    assert MANAGER_PORT in seen["port"] and len(seen["port"]) > 1
    assert seen["blocks"] == {1, 2, 3}
    # sylink.xml's block order is not priority: some sites list Priority1 later
    assert any(listed and listed[0] != 1 for listed in seen["listed"])  # type: ignore[index]
    assert seen["spread"] == {0, 60}  # RandomizationRange on and off (A15)


def test_steps_name_managers_within_the_site() -> None:
    site = Site(managers=((1, 8014), (2, 9014)), gup=None,
                policies=(("Office", "none"),))
    words = narrate_program([f"state.start(mode=Mode.PUSH, site={site!r})",
                             "state.fault(m=4, fault=Fault.STALL, path='/urls')",
                             "state.drop(m=3)"])
    assert words[0] == ("the client starts in push mode (site: m1 at priority 1, "
                        "m2 (port 9014) at priority 2, no GUP; policies: Office none)")
    assert words[1] == "m1 stalls GET /urls"  # 4 counts round two managers
    assert words[2] == "m2 drops its open connections"
    # a directed case's start names no site: the default one
    assert site_of(["state.start(mode=Mode.PULL)"]) == DEFAULT_SITE


def test_the_world_builds_the_site() -> None:
    site = Site(managers=((1, 8443), (1, 8014), (3, 9014)), gup=2968,
                policies=(("Default", "gup"),))
    w = World.of(site)
    assert [(m.port, m.priority) for m in w.managers] == [(8443, 1), (8014, 1),
                                                         (9014, 3)]
    assert w.gup is not None and w.gup.port == 2968
    assert w.source_for("Default").value == "gup"
    assert World.of(Site(gup=None)).gup is None


def _listening(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((address, port)) == 0


def test_the_wire_world_serves_the_site_on_its_ports() -> None:
    site = Site(managers=((1, 9014), (2, 8443)), gup=None,
                policies=(("Office", "none"),))
    world = RemoteWorld(site, time_scale=0.01)
    try:
        # (each world has 127.x addresses of its own: the drawn ports are free)
        assert [(m.port, m.priority) for m in world.managers] == [(9014, 1), (8443, 2)]
        assert world.gup is None and world.fleet.gup is None
        for m in world.managers:
            assert _listening(m.address, m.port)
        spec = world.fleet.servers[world.managers[0].name].spec
        assert dict(spec.locations) == {"Office": Source.NONE}
    finally:
        world.close()


def test_a_site_with_randomization_spreads_the_clients_heartbeats() -> None:
    """RandomizationRange (A15) reaches the client from the site in process, and the
    oracle accepts a heartbeat up to that much after the interval."""
    from sephb.conformance.suite.inproc import CoreClient
    from sephb.model.interpretations import get
    from sephb.model.protocol import Mode

    site = Site(managers=((1, 8014),), gup=None, randomization_s=60)
    assert "RandomizationRange 60 s" in site.words()
    client = CoreClient(World.of(site), get("seed"), Mode.PULL)
    assert client.core.randomization_ms == 60_000
    assert CoreClient(World.of(DEFAULT_SITE), get("seed"), Mode.PULL
                      ).core.randomization_ms == 0


def test_the_process_clients_sylink_says_what_the_site_says() -> None:
    """Over the wire the sylink.xml written for the client lists the blocks in the
    site's order and enables RandomizationRange when the site does."""
    from sephb.conformance.traces.sylink import Sylink, to_xml

    s = Sylink.build([[("127.0.0.2", 8014)], [("127.0.0.3", 9014)]],
                     randomization_s=60)
    xml = to_xml(s, (2, 1))
    assert xml.index('Name="Priority2"') < xml.index('Name="Priority1"')
    assert 'RandomizationEnabled="1" RandomizationRange="60"' in xml
    assert to_xml(s).index('Name="Priority1"') < to_xml(s).index('Name="Priority2"')
